// @brief Tversky loss (Salehi et al., 2017), and with gamma the focal Tversky loss (Abraham and
// Khan, 2019), for binary and multilabel segmentation (a sigmoid per channel, or
// probabilities), one of the overlap losses of overlap.hpp, which has the options, the math
// shared by the family, its gradient, edge cases and errors. Its score is
//   S = (I + smooth_nr) / (I + alpha (P - I) + beta (T - I) + smooth_dr)
// with I, P and T the (weighted) sums of overlap.hpp: alpha weighs the false positives
// FP = P - I and beta the false negatives FN = T - I, as in MONAI's and
// segmentation_models_pytorch's TverskyLoss. alpha = beta = 0.5 is Dice and alpha = beta = 1 is
// Jaccard (with their smooth terms scaled). The focal Tversky loss raises each score's loss to
// gamma before the mean: l_j = max(1 - S_j, 0)^gamma (per class: segmentation_models_pytorch raises
// the mean instead; Abraham and Khan write the exponent as 1/gamma). `squared` is refused: FP = P -
// I holds only for plain sums. alpha and beta must be finite and >= 0, with alpha + beta > 0.
#pragma once

#include "overlap.hpp"

namespace segloss {

template <class T>
struct TverskyOptions : OverlapOptions<T> {
  double alpha = 0.5;  // weight of the false positives
  double beta = 0.5;   // weight of the false negatives
};

// Forward: shape () for mean and sum; (N, C) per image or (C) for the batch for none. `info`,
// when given, receives the number of scores kept and skipped.
template <class T>
Tensor<T> tversky(const Tensor<T>& logits, const Tensor<T>& target,
                  const TverskyOptions<T>& options = {}, OverlapInfo* info = nullptr);

// Backward: grad_out has one element for mean and sum, and the forward's shape for none.
template <class T>
Tensor<T> tversky_backward(const Tensor<T>& logits, const Tensor<T>& target,
                           const Tensor<T>& grad_out, const TverskyOptions<T>& options = {});

// Fused value and gradient (mean or sum). The second form writes into `grad` (allocated when
// undefined; otherwise it must be shaped like the logits).
template <class T>
ValueAndGrad<T> tversky_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                       const TverskyOptions<T>& options = {},
                                       OverlapInfo* info = nullptr);
template <class T>
double tversky_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                              const TverskyOptions<T>& options = {}, OverlapInfo* info = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits (overlap.hpp, "CUDA").
template <class T>
void tversky_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                            Tensor<T>& value, const TverskyOptions<T>& options = {},
                            OverlapInfo* info = nullptr);

// The statistics / finalize split for data-parallel shards (overlap.hpp, OverlapStatistics).
template <class T>
OverlapStatistics tversky_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                     const TverskyOptions<T>& options = {});
template <class T>
double tversky_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                        const OverlapStatistics& reduced, Tensor<T>& grad,
                        const TverskyOptions<T>& options = {});

}  // namespace segloss
