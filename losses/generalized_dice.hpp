// @brief Generalized Dice loss (Sudre et al., DLMIA 2017) for multi-class segmentation on
// softmax probabilities, with MONAI's GeneralizedDiceLoss semantics.
//
// Input as in softmax_overlap.hpp: logits (N, C, spatial...), p = softmax over classes, and a
// label map (N, spatial...) of int32/int64 (with ignore_index) or probabilities (N, C, ...).
//
// With the sums of overlap.hpp per image n and class c (or per class over the batch when
// per_image = false), I_c = sum p_c t_c, P_c = sum p_c, T_c = sum t_c, and the class weights
//   w_c = 1 / T_c^2 (w_type square, the default), 1 / T_c (simple), or 1 (uniform),
// one score per image (or one for the batch) combines the classes:
//   S = (2 sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + T_c) + smooth_dr),   loss 1 - S.
// A class absent from the target (T_c = 0) has an infinite weight; as MONAI does, it is
// replaced by the largest finite weight of the same score (0 if every class is absent, so the
// score is smooth_nr / smooth_dr). The weights are constants: no gradient flows through them
// (they depend on the target only). include_background = false leaves class 0 out.
// Reductions: mean or sum over the scores; none returns the scores' losses, shape (N) per
// image or (1) for the batch.
//
// Gradient: dS/dI_c = 2 w_c / D and dS/dP_c = -w_c N / D^2 (N, D the numerator and
// denominator), then the softmax's Jacobian as in softmax_overlap.hpp.
#pragma once

#include "softmax_overlap.hpp"

namespace segloss {

enum class GeneralizedDiceWeight { square, simple, uniform };
namespace detail {
inline constexpr const char* kGeneralizedDiceWeightNames[] = {"square", "simple", "uniform"};
}  // namespace detail

template <class T>
struct GeneralizedDiceOptions {
  Reduction reduction = Reduction::mean;
  double smooth_nr = 1e-5;
  double smooth_dr = 1e-5;
  bool per_image = true;  // false: one score over the whole batch (MONAI batch = True)
  GeneralizedDiceWeight w_type = GeneralizedDiceWeight::square;
  bool include_background = true;
  int64_t ignore_index = -100;  // label targets only
};

template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Tensor<T> generalized_dice(const Tensor<T>& logits, const Tensor<U>& target,
                           const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Tensor<T> generalized_dice_backward(const Tensor<T>& logits, const Tensor<U>& target,
                                    const Tensor<T>& grad_out,
                                    const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ValueAndGrad<T> generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                                const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
double generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                       Tensor<T>& grad,
                                       const GeneralizedDiceOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is; a
// bad label makes it NaN (and the gradient of its image) instead of raising. On the CPU it is the
// host form's value rounded to T.
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
void generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                     Tensor<T>& grad, Tensor<T>& value,
                                     const GeneralizedDiceOptions<T>& options = {});

// The statistics / finalize split for data-parallel shards (docs/distributed.md; mean or sum),
// with OverlapStatistics: per_image = false: global = I_c, P_c, T_c of every class summed over
// the shard (3 C values; the class weights come from the summed T_c, so they are the batch's);
// per_image = true: global = {the shard's number of images, sum of its scores' losses 1 - S_j}
// (2 values), and local keeps its per-(image, class) sums. finalize returns the batch's loss and
// writes this shard's part of the gradient into `grad` (allocated when undefined).
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
OverlapStatistics generalized_dice_statistics(const Tensor<T>& logits, const Tensor<U>& target,
                                              const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
double generalized_dice_finalize(const Tensor<T>& logits, const Tensor<U>& target,
                                 const OverlapStatistics& reduced, Tensor<T>& grad,
                                 const GeneralizedDiceOptions<T>& options = {});

}  // namespace segloss
