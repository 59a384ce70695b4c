// @brief Soft Jaccard (IoU) loss for binary and multilabel segmentation (a sigmoid per channel, or
// probabilities), one of the overlap losses of overlap.hpp, which has the options, the math
// shared by the family, its gradient, edge cases and errors. Its score is
//   S = (I + smooth_nr) / (P + T - I + smooth_dr)
// with I, P and T the (weighted, optionally squared) sums of overlap.hpp.
//
// MONAI's DiceLoss(jaccard=True) computes (2I + s_nr) / (2 (P + T - I) + s_dr): that is this
// score with smooth_nr = s_nr / 2 and smooth_dr = s_dr / 2.
#pragma once

#include "overlap.hpp"

namespace segloss {

template <class T>
using SoftJaccardOptions = OverlapOptions<T>;

// Forward: shape () for mean and sum; (N, C) per image or (C) for the batch for none. `info`,
// when given, receives the number of scores kept and skipped.
template <class T>
Tensor<T> soft_jaccard(const Tensor<T>& logits, const Tensor<T>& target,
                       const SoftJaccardOptions<T>& options = {}, OverlapInfo* info = nullptr);

// Backward: grad_out has one element for mean and sum, and the forward's shape for none.
template <class T>
Tensor<T> soft_jaccard_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                const Tensor<T>& grad_out,
                                const SoftJaccardOptions<T>& options = {});

// Fused value and gradient (mean or sum). The second form writes into `grad` (allocated when
// undefined; otherwise it must be shaped like the logits).
template <class T>
ValueAndGrad<T> soft_jaccard_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                            const SoftJaccardOptions<T>& options = {},
                                            OverlapInfo* info = nullptr);
template <class T>
double soft_jaccard_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                   Tensor<T>& grad, const SoftJaccardOptions<T>& options = {},
                                   OverlapInfo* info = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits (overlap.hpp, "CUDA").
template <class T>
void soft_jaccard_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                 Tensor<T>& value, const SoftJaccardOptions<T>& options = {},
                                 OverlapInfo* info = nullptr);

// The statistics / finalize split for data-parallel shards (overlap.hpp, OverlapStatistics).
template <class T>
OverlapStatistics soft_jaccard_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                          const SoftJaccardOptions<T>& options = {});
template <class T>
double soft_jaccard_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                             const OverlapStatistics& reduced, Tensor<T>& grad,
                             const SoftJaccardOptions<T>& options = {});

}  // namespace segloss
