// @brief BCE + soft Dice on logits, fused: L = bce_weight * BCE + dice_weight * Dice.
//
// The combination every binary segmentation seed trains with (float16 / bfloat16 logits too:
// losses/half_logits.hpp). It equals
//   bce_weight * bce_with_logits(x, z, options.bce) + dice_weight * soft_dice(x, z, options.dice)
// to rounding, but costs the two passes of Dice alone: the statistics pass also sums the BCE
// values, the gradient pass also writes the BCE gradient, and both share exp(-|x|).
//
//   dL/dx_i = bce_weight * dBCE/dx_i + dice_weight * dDice/dx_i    (see each loss's header)
//
// Options: bce (every bce_with_logits option: weight, pos_weight, mean_over, label_smoothing;
// reduction mean or sum; the smoothing changes the BCE term's target only, Dice reads the target
// as given), dice (every soft_dice option of losses/overlap.hpp: weights, squared, class
// weights, log and clamp forms, ...; reduction mean or sum; activation must be sigmoid: both
// terms read logits). Reduction none is rejected: the two terms' per-element and per-score
// shapes differ. bce_weight and dice_weight must be finite. Inputs, shapes and edge cases as in
// bce_with_logits and
// soft_dice.
//
// The seeds' combinations (docs/seed-compatibility.md has the exact options):
//   Carvana CombinedLoss / combined_loss: BCE + Dice (smooth_nr 2, smooth_dr 1); with
//     is_log_dice, BCE - log(mean Dice score) is dice.log = true; with is_weight (the default),
//     the boundary weight map w (losses/boundary_weights.hpp) as bce.weight, normalized by the
//     weight sum, and as dice.weight (w^2 in every sum);
//   albu BCEDiceLoss: BCE (mean) + Dice (smooth_nr 2, smooth_dr 1) with dice.clamp = true.
//
// CUDA (docs/cuda.md): logits on a CUDA device run the fused passes there, with the options
// each term supports on CUDA (bce_with_logits.hpp: every option, mean_over weight_sum, its
// W summed on the device; overlap.hpp: every option, the
// weight and class_weight CUDA tensors), and the statistics / finalize split (finalize fills
// `parts` too). `parts` of the fused forms is copied
// back from the device: asking for it waits for the stream, even where the value stays on the
// device (a bad Dice class weight then gives NaN parts, where a host value raises). Three
// kernels and a small combine per call (three more for weight_sum's W), no wait unless a host
// value (or parts) is asked for.
#pragma once

#include "bce_with_logits.hpp"
#include "soft_dice.hpp"

namespace segloss {

template <class T>
struct BceDiceOptions {
  double bce_weight = 1.0;
  double dice_weight = 1.0;
  BceWithLogitsOptions<T> bce;
  SoftDiceOptions<T> dice;
};

// The two terms of a bce_dice value, before their weights.
struct BceDiceParts {
  double bce = 0.0;
  double dice = 0.0;
};

// Forward: shape (). `parts`, when given, receives the two terms.
template <class T>
Tensor<T> bce_dice(const Tensor<T>& logits, const Tensor<T>& target,
                   const BceDiceOptions<T>& options = {}, BceDiceParts* parts = nullptr);

// Backward: grad_out holds one element.
template <class T>
Tensor<T> bce_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                            const Tensor<T>& grad_out, const BceDiceOptions<T>& options = {});

// Fused value and gradient; the second form writes into `grad` (allocated when undefined).
template <class T>
ValueAndGrad<T> bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                        const BceDiceOptions<T>& options = {},
                                        BceDiceParts* parts = nullptr);
template <class T>
double bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                               const BceDiceOptions<T>& options = {},
                               BceDiceParts* parts = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits.
template <class T>
void bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                             Tensor<T>& value, const BceDiceOptions<T>& options = {},
                             BceDiceParts* parts = nullptr);

// The statistics / finalize split for data-parallel shards (docs/distributed.md), in the same
// two passes as the fused path. OverlapStatistics whose global holds the BCE term's 3 values
// first (bce_with_logits_statistics' layout: loss sum, divisor, numel), then the Dice term's
// (soft_dice_statistics' layout); local holds the Dice term's per-plane sums. finalize returns
// the batch's loss (its terms in `parts`, when given) and writes this shard's gradient.
template <class T>
OverlapStatistics bce_dice_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                      const BceDiceOptions<T>& options = {});
template <class T>
double bce_dice_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                         const OverlapStatistics& reduced, Tensor<T>& grad,
                         const BceDiceOptions<T>& options = {}, BceDiceParts* parts = nullptr);

}  // namespace segloss
