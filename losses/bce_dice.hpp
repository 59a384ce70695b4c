// @brief BCE + soft Dice on logits, fused: L = bce_weight * BCE + dice_weight * Dice.
//
// The combination every binary segmentation seed trains with (Carvana CombinedLoss without
// weights, albu's BCEDiceLoss without the clamp). It equals
//   bce_weight * bce_with_logits(x, z, options.bce) + dice_weight * soft_dice(x, z, options.dice)
// to rounding, but costs the two passes of Dice alone: the statistics pass also sums the BCE
// values, the gradient pass also writes the BCE gradient, and both share exp(-|x|).
//
//   dL/dx_i = bce_weight * dBCE/dx_i + dice_weight * dDice/dx_i    (see each loss's header)
//
// Options: bce (weight, pos_weight, mean_over, label_smoothing; reduction mean or sum; the
// smoothing changes the BCE term's target only, Dice reads the target as given), dice (smooth
// terms, per_image; reduction mean or sum; activation must be sigmoid: both terms read logits).
// Reduction none is rejected: the two terms' per-element and per-score shapes differ. bce_weight
// and dice_weight must be finite. Inputs, shapes and edge cases as in bce_with_logits and
// soft_dice.
#pragma once

#include "bce_with_logits.hpp"
#include "soft_dice.hpp"

namespace segloss {

template <class T>
struct BceDiceOptions {
  double bce_weight = 1.0;
  double dice_weight = 1.0;
  BceWithLogitsOptions<T> bce;
  SoftDiceOptions dice;
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

}  // namespace segloss
