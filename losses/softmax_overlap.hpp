// @brief The overlap losses for multi-class segmentation, on softmax probabilities: soft Dice,
// soft Jaccard and Tversky (with its focal form) per class, with label-map or probability
// targets and ignore_index. generalized_dice.hpp has the generalized Dice loss.
//
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double; p = softmax of
// x over the class axis (computed relative to the max logit). The target is either
//   a label map (N, spatial...) of int32 or int64 class indices: t_c = [y = c], never
//   materialized as a one-hot tensor; a pixel labelled ignore_index counts nowhere (not in I,
//   P, T, and it gets a zero gradient); any other label outside [0, C) is an error naming its
//   position and value;  or
//   probabilities (N, C, spatial...) of the logits' type (no ignore_index).
//
// Everything else is the binary overlap family of overlap.hpp, with channel c of image n as
// the plane: the sums I, P, T per image and class (or per class over the batch), the score
// forms of Dice, Jaccard and Tversky, the class weights, include_background, the empty policy
// (a class absent from an image's target has T = 0), the focal, log and clamp forms, and the
// reductions, with the per-score shape (N, C) or (C). Pixel weights are not offered here.
//
// Gradient. With dL/dp_c = ca t_c + cb k p_c^(k-1) from overlap.hpp (ca = G dS/dI and
// cb = G dS/dP of the pixel's image and class), the softmax's Jacobian gives
//   dL/dx_c = p_c (dL/dp_c - sum_k p_k dL/dp_k).
// Two passes: the sums, then the gradient; each reads the logits (and target) once, and keeps
// only the C values of a packet of pixels in a buffer. docs/gradients.md derives it.
//
// Reference semantics: MONAI DiceLoss(softmax=True, to_onehot_y=True) is softmax_dice with the
// same smooth terms; include_background and batch (per_image = false) mean the same (but
// class_weight always has C entries, where MONAI takes C - 1 without the background); MONAI's
// jaccard = True is softmax_jaccard with both smooth terms halved. MONAI's TverskyLoss is
// softmax_tversky (alpha on the false positives). Errors: as in overlap.hpp, plus label
// values and target shapes, more than 2^24 classes (as cross_entropy), and ignore_index with
// probability targets.
#pragma once

#include <cstdint>
#include <type_traits>

#include "overlap.hpp"

namespace segloss {

template <class T>
struct SoftmaxOverlapOptions {
  Reduction reduction = Reduction::mean;
  double smooth_nr = 1e-5;         // added to the numerator
  double smooth_dr = 1e-5;         // added to the denominator
  bool per_image = true;           // false: one score per class, sums over the whole batch
  bool squared = false;            // sums of p^2 and t^2 in the denominator
  Tensor<T> class_weight;          // shape (C), >= 0; undefined: 1 for every class
  bool include_background = true;  // false: class 0 is left out
  EmptyPolicy empty = EmptyPolicy::formula;  // for a class absent from the target
  double gamma = 1.0;                        // focal form: max(1 - S, 0)^gamma per score
  bool log = false;                          // log form: -log of the (mean) score
  bool clamp = false;                        // clamp form: 1 - clamp((mean) score, 0, 1)
  int64_t ignore_index = -100;               // label targets only
};

template <class T>
struct SoftmaxTverskyOptions : SoftmaxOverlapOptions<T> {
  double alpha = 0.5;  // weight of the false positives
  double beta = 0.5;   // weight of the false negatives
};

namespace detail {
// A target of class indices (int32, int64) or of probabilities of the logits' type T.
template <class T, class U>
constexpr bool kClassTarget =
    std::is_same_v<U, int32_t> || std::is_same_v<U, int64_t> || std::is_same_v<U, T>;
}  // namespace detail

#define SEGLOSS_DECLARE_SOFTMAX_OVERLAP(NAME, OPTIONS)                                             \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  Tensor<T> NAME(const Tensor<T>& logits, const Tensor<U>& target, const OPTIONS<T>& options = {}, \
                 OverlapInfo * info = nullptr);                                                    \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  Tensor<T> NAME##_backward(const Tensor<T>& logits, const Tensor<U>& target,                      \
                            const Tensor<T>& grad_out, const OPTIONS<T>& options = {});            \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  ValueAndGrad<T> NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,          \
                                        const OPTIONS<T>& options = {},                            \
                                        OverlapInfo * info = nullptr);                             \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  double NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,  \
                               const OPTIONS<T>& options = {}, OverlapInfo * info = nullptr);      \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  void NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,    \
                             Tensor<T>& value, const OPTIONS<T>& options = {});                    \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  OverlapStatistics NAME##_statistics(const Tensor<T>& logits, const Tensor<U>& target,            \
                                      const OPTIONS<T>& options = {});                             \
  template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>                \
  double NAME##_finalize(const Tensor<T>& logits, const Tensor<U>& target,                         \
                         const OverlapStatistics& reduced, Tensor<T>& grad,                        \
                         const OPTIONS<T>& options = {});

// Forward: shape () for mean and sum; (N, C) per image or (C) for the batch for none.
// Backward: grad_out has one element for mean and sum, and the forward's shape for none.
// Fused value and gradient (mean or sum); the second form writes into `grad`.
// The value into `value` instead (the third value_and_grad form): one element on the logits'
// device (allocated, shape (), when undefined). On CUDA nothing waits: the value is written on
// the stream, as the gradient is, and a bad label or class weight makes it NaN (and the
// gradient of the bad label's image, as in backward) instead of raising; on the CPU it is the
// host form's value rounded to T (a bad label raises). This form takes no `info`: its counts
// under an empty policy other than formula are known only after a wait (the forward and the
// host forms take it).
// statistics / finalize: the split for data-parallel shards of overlap.hpp (OverlapStatistics:
// 3 values per class with per_image = false, 3 in all with per_image = true; mean or sum). A
// shard whose pixels are all ignored is fine: its sums are 0 (with per_image, its images' scores
// are those of empty targets, as in one process).
SEGLOSS_DECLARE_SOFTMAX_OVERLAP(softmax_dice, SoftmaxOverlapOptions)
SEGLOSS_DECLARE_SOFTMAX_OVERLAP(softmax_jaccard, SoftmaxOverlapOptions)
SEGLOSS_DECLARE_SOFTMAX_OVERLAP(softmax_tversky, SoftmaxTverskyOptions)
#undef SEGLOSS_DECLARE_SOFTMAX_OVERLAP

}  // namespace segloss
