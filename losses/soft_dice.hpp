// @brief Soft Dice loss for binary and multilabel segmentation (a sigmoid per channel, or
// probabilities), one of the overlap losses of overlap.hpp, which has the options, the math
// shared by the family, its gradient, edge cases and errors. Its score is
//   S = (2 I + smooth_nr) / (P + T + smooth_dr)
// with I, P and T the (weighted, optionally squared) sums of overlap.hpp.
//
// Seed formulas (docs/seed-compatibility.md has them all):
//   Carvana SoftDiceLoss: smooth_nr = 2, smooth_dr = 1 (it computes 2 (I + 1) / (U + 1));
//   Carvana WeightedSoftDiceLoss: the same with weight = w, weighting = squared;
//   albu dice_loss / DiceLoss: smooth_nr = 2, smooth_dr = 1, weighting = on_inputs, clamp;
//   Carvana is_log_dice: log = true;   MONAI DiceLoss(sigmoid=True): the defaults
//   (smooth 1e-5 and 1e-5; squared_pred is `squared`).
#pragma once

#include "overlap.hpp"

namespace segloss {

template <class T>
using SoftDiceOptions = OverlapOptions<T>;

// Forward: shape () for mean and sum; (N, C) per image or (C) for the batch for none. `info`,
// when given, receives the number of scores kept and skipped.
template <class T>
Tensor<T> soft_dice(const Tensor<T>& logits, const Tensor<T>& target,
                    const SoftDiceOptions<T>& options = {}, OverlapInfo* info = nullptr);

// Backward: grad_out has one element for mean and sum, and the forward's shape for none.
template <class T>
Tensor<T> soft_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                             const Tensor<T>& grad_out, const SoftDiceOptions<T>& options = {});

// Fused value and gradient (mean or sum). The second form writes into `grad` (allocated when
// undefined; otherwise it must be shaped like the logits).
template <class T>
ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SoftDiceOptions<T>& options = {},
                                         OverlapInfo* info = nullptr);
template <class T>
double soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                const SoftDiceOptions<T>& options = {},
                                OverlapInfo* info = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits (overlap.hpp, "CUDA").
template <class T>
void soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                              Tensor<T>& value, const SoftDiceOptions<T>& options = {},
                              OverlapInfo* info = nullptr);

// The statistics / finalize split for data-parallel shards (overlap.hpp, OverlapStatistics).
template <class T>
OverlapStatistics soft_dice_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                       const SoftDiceOptions<T>& options = {});
template <class T>
double soft_dice_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                          const OverlapStatistics& reduced, Tensor<T>& grad,
                          const SoftDiceOptions<T>& options = {});

}  // namespace segloss
