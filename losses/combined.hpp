// @brief Multi-class combinations that return the total and its parts:
//   ce_dice:    L = ce_weight * cross_entropy + dice_weight * softmax_dice
//   dice_focal: L = dice_weight * softmax_dice + focal_weight * softmax_focal
// (MONAI's DiceCELoss and DiceFocalLoss have this shape, with lambda_ce / lambda_dice /
// lambda_focal as the weights; the terms are not MONAI's in every detail: softmax_focal's mean
// is over the pixels not ignored, summed over the classes, and keeps the background whatever
// dice.include_background, where MONAI's FocalLoss averages over N*C*spatial elements and drops
// the background channel with include_background = false, so its focal term is about 1/C of
// ours). Each term keeps every option of its own loss
// (cross_entropy.hpp, softmax_overlap.hpp, focal.hpp); the gradient is the weighted sum of the
// terms' gradients.
//
// Targets: ce_dice takes a label map (int32/int64) or probabilities, as both its terms do;
// dice_focal takes a label map. With labels, both terms must ignore the same pixels: the
// terms' ignore_index must be equal (and cross_entropy's ignore_negative off).
//
// Passes of value_and_grad and backward (no temporary the size of the input): pass 1 computes
// the softmax once per pixel for the first term's value and the Dice statistics and stores p in
// the gradient buffer; pass 2 reads it back and writes the first term's gradient, computed from
// p (cross_entropy's for labels or probabilities; the focal one from p_t, alpha and gamma),
// times its weight, plus the Dice gradient times dice_weight (backward: the weights times
// grad_out). The softmax is computed once. The statistics / finalize split runs the terms
// apart. value_and_grad's gradient buffer may be exactly the logits (in place: pass 1 reads a
// packet's logits before storing its p, pass 2 reads only p and the target); one that overlaps
// the logits at another offset, or overlaps a probability target (which pass 2 reads again after
// the buffer was written), is an error.
// Reduction none is rejected for either term (their shapes differ), as are non-finite term
// weights.
// An error raised by a term's own checks names the combined function and the term.
//
// CUDA logits (docs/cuda.md, "ce_dice and dice_focal on CUDA"): forward, backward and
// value_and_grad with every option of the terms' CUDA paths; the terms run apart (the first
// term's gradient times its weight, then the Dice term's added); grad may be exactly the logits
// there too (the terms write into the stream's cached scratch buffer, then one
// device copy into grad). The host-value value_and_grad waits twice (each term's value comes
// back); the device-value form waits for nothing: the first term's device value,
// then the Dice term's, combined on the device (in float it may differ from the host form's
// value rounded to float by an ulp: the first term's value is rounded to float before the sum).
// The statistics / finalize split runs on CUDA too (each term's split; two waits).
#pragma once

#include "cross_entropy.hpp"
#include "focal.hpp"
#include "softmax_overlap.hpp"

namespace segloss {

template <class T>
struct CeDiceOptions {
  double ce_weight = 1.0;
  double dice_weight = 1.0;
  CrossEntropyOptions<T> ce;
  SoftmaxOverlapOptions<T> dice;
};

struct CeDiceParts {
  double ce = 0.0;    // the cross-entropy term, before its weight
  double dice = 0.0;  // the Dice term, before its weight
};

template <class T>
struct DiceFocalOptions {
  double dice_weight = 1.0;
  double focal_weight = 1.0;
  SoftmaxOverlapOptions<T> dice;
  SoftmaxFocalOptions<T> focal;
};

struct DiceFocalParts {
  double dice = 0.0;
  double focal = 0.0;
};

namespace detail {
template <class L>
constexpr bool kLabelMap = std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>;
}  // namespace detail

// Forward: shape (); `parts`, when given, receives the two terms.
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Tensor<T> ce_dice(const Tensor<T>& logits, const Tensor<U>& target,
                  const CeDiceOptions<T>& options = {}, CeDiceParts* parts = nullptr);
// Backward: grad_out holds one element.
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Tensor<T> ce_dice_backward(const Tensor<T>& logits, const Tensor<U>& target,
                           const Tensor<T>& grad_out, const CeDiceOptions<T>& options = {});
// Fused value and gradient; the second form writes into `grad` (allocated when undefined).
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ValueAndGrad<T> ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                       const CeDiceOptions<T>& options = {},
                                       CeDiceParts* parts = nullptr);
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
double ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,
                              const CeDiceOptions<T>& options = {}, CeDiceParts* parts = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is; a
// bad label makes it NaN instead of raising. No `parts` (they would need a wait): the waiting
// forms above give them.
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
void ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,
                            Tensor<T>& value, const CeDiceOptions<T>& options = {});

template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
Tensor<T> dice_focal(const Tensor<T>& logits, const Tensor<L>& target,
                     const DiceFocalOptions<T>& options = {}, DiceFocalParts* parts = nullptr);
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
Tensor<T> dice_focal_backward(const Tensor<T>& logits, const Tensor<L>& target,
                              const Tensor<T>& grad_out, const DiceFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
ValueAndGrad<T> dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                          const DiceFocalOptions<T>& options = {},
                                          DiceFocalParts* parts = nullptr);
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
double dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                 const DiceFocalOptions<T>& options = {},
                                 DiceFocalParts* parts = nullptr);
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is; a
// bad label makes it NaN instead of raising. No `parts`, as for ce_dice.
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
void dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                               Tensor<T>& value, const DiceFocalOptions<T>& options = {});

// The statistics / finalize split for data-parallel shards (docs/distributed.md). OverlapStatistics
// whose global holds the first term's 3 values (cross_entropy_statistics' or
// softmax_focal_statistics' layout: loss sum, divisor, count) then the Dice term's
// (softmax_dice_statistics' layout); local holds the Dice term's per-(image, class) sums.
// finalize returns the batch's loss (its terms in `parts`, when given) and writes this shard's
// gradient; grad must not overlap the logits, not even exactly (finalize recomputes the softmax
// from the logits after writing the first term's gradient).
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
OverlapStatistics ce_dice_statistics(const Tensor<T>& logits, const Tensor<U>& target,
                                     const CeDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
double ce_dice_finalize(const Tensor<T>& logits, const Tensor<U>& target,
                        const OverlapStatistics& reduced, Tensor<T>& grad,
                        const CeDiceOptions<T>& options = {}, CeDiceParts* parts = nullptr);
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
OverlapStatistics dice_focal_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                        const DiceFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
double dice_focal_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                           const OverlapStatistics& reduced, Tensor<T>& grad,
                           const DiceFocalOptions<T>& options = {},
                           DiceFocalParts* parts = nullptr);

}  // namespace segloss
