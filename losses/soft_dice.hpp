// @brief Soft Dice loss for binary and multilabel segmentation (a sigmoid per channel).
//
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double, and target t
// of the same shape and type with values in [0, 1]. p = sigmoid(x), or p = x when
// activation = none (the input already holds probabilities).
//
// One score per image and channel (per_image = true), or per channel over the whole batch
// (per_image = false). With the sums running over the score's pixels:
//   I = sum p t,   U = sum p + sum t,   S = (2 I + smooth_nr) / (U + smooth_dr)
// and the loss of each score is 1 - S. Reduction:
//   mean (default): mean over scores of (1 - S) = 1 - mean S;   sum: sum of (1 - S);
//   none: the values 1 - S, shape (N, C) per image or (C) for the batch.
//
// Gradient (docs/gradients.md derives it): for pixel i of score j with loss weight c_j
// (1/#scores for mean, 1 for sum, grad_out_j for none),
//   dL/dp_i = c_j (S_j - 2 t_i) / (U_j + smooth_dr),   dL/dx_i = dL/dp_i * p_i (1 - p_i).
// The fused path makes one pass for the sums I and U and one for the gradient; it keeps no
// per-pixel temporary.
//
// Seed formulas: the Carvana SoftDiceLoss is smooth_nr = 2, smooth_dr = 1, per_image = true
// (it computes 2 (I + 1) / (U + 1)); MONAI's DiceLoss(sigmoid=True) is the default smooth
// terms 1e-5 and 1e-5.
//
// Edge cases: an image and channel whose target and prediction are both empty scores
// smooth_nr / smooth_dr (1 with the defaults). With smooth_dr = 0 and U = 0 the score is
// 0/0 = NaN, which propagates: U = 0 needs an all-zero target and p = 0 everywhere, i.e.
// activation = none, or sigmoid logits so negative that exp underflows (below about -104 in
// float; docs/conventions.md). Keep smooth_dr > 0 to rule it out. NaN inputs propagate.
// Errors (segloss::Error) for: rank outside 3..5, a zero extent, shape mismatch, negative or
// non-finite smooth terms, grad_out of the wrong shape.
#pragma once

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

struct SoftDiceOptions {
  Reduction reduction = Reduction::mean;
  double smooth_nr = 1e-5;  // added to the numerator 2 I
  double smooth_dr = 1e-5;  // added to the denominator sum p + sum t
  bool per_image = true;    // false: one score per channel, sums over the whole batch
  Activation activation = Activation::sigmoid;
};

// Forward: shape () for mean and sum; (N, C) or (C) for none.
template <class T>
Tensor<T> soft_dice(const Tensor<T>& logits, const Tensor<T>& target,
                    const SoftDiceOptions& options = {});

// Backward: grad_out has one element for mean and sum, and the forward's shape for none.
template <class T>
Tensor<T> soft_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                             const Tensor<T>& grad_out, const SoftDiceOptions& options = {});

// Fused value and gradient (mean or sum). The second form writes into `grad` (allocated when
// undefined; otherwise it must be shaped like the logits).
template <class T>
ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SoftDiceOptions& options = {});
template <class T>
double soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                const SoftDiceOptions& options = {});

}  // namespace segloss
