// @brief Multi-class cross-entropy on logits: a fused log-softmax + NLL with PyTorch's weight,
// ignore_index, label_smoothing and reduction, for hard labels or probability targets.
//
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double, C >= 1
// (float16 and bfloat16, with labels or probability targets: losses/half_logits.hpp).
// Target: labels (N, spatial...) as int32 or int64, or probabilities q (N, C, spatial...) of the
// logits' type. With lse_i = log sum_c exp(x_ic) and log p_ic = x_ic - lse_i, for pixel i:
//
// clang-format off
//   hard labels y_i:
//     l_i = (1 - eps) w_{y_i} (lse_i - x_{i,y_i}) + (eps / C) sum_c w_c (lse_i - x_ic)
//     dl_i/dx_ic = (1 - eps) w_{y_i} (p_ic - [c = y_i]) + (eps / C) (p_ic W - w_c),  W = sum_c w_c
//   probabilities q, with q' = (1 - eps) q + eps / C:
//     l_i = sum_c w_c q'_ic (lse_i - x_ic)
//     dl_i/dx_ic = p_ic sum_k w_k q'_ik - w_c q'_ic
// clang-format on
//
// which is torch.nn.functional.cross_entropy. Derivation: docs/gradients.md. With hard labels,
// lse_i - x_{i,y_i} is computed as log1p(R / e_y) and p_{iy} - 1 as -R / S, from R, the sum of
// exp(x_ic - m) over the classes other than the label, kept on its own: a confident pixel's
// loss and gradient keep their relative precision (float: tested to a lead of the label's logit
// of 80; the plain log S rounded them to 0 from about 16; docs/gradients.md §3b). Probability
// targets, and the smoothing term's value when every other class weighs 0, still use log S.
//
// Options (defaults as in PyTorch, except all_ignored):
//   reduction        mean (default), sum or none (per pixel, shape (N, spatial...)).
//                    Hard labels, mean: sum_i l_i / sum_i w_{y_i} over the pixels not ignored
//                    (PyTorch's weighted mean; with no weight, the count of those pixels).
//                    Probabilities, mean: sum_i l_i / (N * spatial), as PyTorch.
//   weight           optional class weights, C values (w_c = 1 when undefined).
//   ignore_index     a label whose pixels count nowhere: loss 0 and gradient 0 (whatever their
//                    logits or grad_out, even NaN), not in the mean's divisor. Default -100.
//                    Hard labels only: with probabilities a negative ignore_index changes
//                    nothing and one >= 0 is an error (as PyTorch), as are ignore_negative and
//                    mean_over valid_pixels (options of labels).
//   label_smoothing  eps in [0, 1].
//   ignore_negative  every negative label is ignored (pytorch-fcn's cross_entropy2d), besides
//                    ignore_index. Default false.
//   mean_over        weights (default, PyTorch) or valid_pixels: the mean divides by the count
//                    of pixels not ignored, whatever the weights (pytorch-fcn's
//                    cross_entropy2d: nll_loss(sum) / mask.sum()).
//   all_ignored      what the mean gives when every pixel is ignored (no pixel counts): zero
//                    (default: loss 0 and a zero gradient) or nan (PyTorch: loss NaN, and a zero
//                    gradient). Sum and none are 0 there either way.
//   pytorch_fcn()    the preset for cross_entropy2d: ignore_negative, mean over valid pixels.
//
// Errors (segloss::Error): rank outside 3..5, a zero extent, more than 2^24 = 16,777,216
// classes (the CPU kernels carry a label as a float lane; the bound of every class-axis loss),
// a target shape other than the logits' without the class axis (or equal to it, for
// probabilities), a label outside [0, C) that is not ignored (the message names its position
// and value), weight without C values, label_smoothing outside [0, 1], grad_out of the wrong
// shape, a `value` that overlaps the logits, the target or grad.
// NaN logits propagate to the value and gradient of their pixel. Class weights whose sum over
// the counted pixels is 0 make the mean divide by 0: NaN where the summed loss is 0 (as PyTorch),
// +-inf where it is not, which with label_smoothing > 0 it can be (weights (0, 1), label 0,
// smoothing 0.5: +inf, and a gradient of +-inf); PyTorch gives NaN there, as it divides its NLL
// and smoothing terms separately and the first is 0 / 0.
//
// CUDA (docs/cuda.md): logits on a CUDA device run backends/cuda/cross_entropy.cu; the target,
// weight, grad, grad_out and value must then be on the device too (an error otherwise). Labels
// and probabilities, every option. The label pass (validation, the mean's divisor) runs on the
// device, so nothing waits for it: the forward's scalar, backward and the value_and_grad form
// with `value` stay on the device, and a bad label shows there as NaN (the reduced value, and the
// loss and gradient of its pixel); the forms returning a double wait for the stream and raise the
// CPU's error for it. The sums are deterministic but add in another order than the CPU's: CPU and
// CUDA agree to rounding.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

enum class MeanOver { weights, valid_pixels };
enum class AllIgnored { zero, nan };
namespace detail {
inline constexpr const char* kMeanOverNames[] = {"weights", "valid_pixels"};
inline constexpr const char* kAllIgnoredNames[] = {"zero", "nan"};
}  // namespace detail

template <class T>
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  Tensor<T> weight;  // (C), undefined: all 1
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  bool ignore_negative = false;
  MeanOver mean_over = MeanOver::weights;
  AllIgnored all_ignored = AllIgnored::zero;

  // pytorch-fcn's cross_entropy2d(size_average=True): negative labels ignored, the weighted
  // sum divided by the count of valid pixels.
  static CrossEntropyOptions pytorch_fcn() {
    CrossEntropyOptions o;
    o.ignore_negative = true;
    o.mean_over = MeanOver::valid_pixels;
    return o;
  }
};

// The target types: int32_t or int64_t labels, or T probabilities shaped like the logits.
template <class T, class L>
inline constexpr bool kCrossEntropyTarget =
    std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t> || std::is_same_v<L, T>;

// Forward: shape () for mean and sum; the per-pixel loss for none.
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<L>& target,
                        const CrossEntropyOptions<T>& options = {});

// Backward: grad_out has one element for mean and sum, the forward's shape for none.
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<L>& target,
                                 const Tensor<T>& grad_out,
                                 const CrossEntropyOptions<T>& options = {});

// Fused value and gradient (mean or sum): one pass over the labels (validation and the
// mean's divisor), one over the logits. The second form writes into `grad`.
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
ValueAndGrad<T> cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                             const CrossEntropyOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
double cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                    Tensor<T>& grad, const CrossEntropyOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is.
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
void cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const CrossEntropyOptions<T>& options = {});

// The statistics / finalize split for data-parallel shards (docs/distributed.md; mean or sum).
// statistics: global = {sum_i l_i over the shard, the mean's divisor over the shard (the weight
// sum sum_i w_{y_i} of its counted pixels, their count with mean_over valid_pixels, or N *
// spatial with probabilities), the count of its counted pixels}; one pass over the labels and
// one over the logits. The caller sums global across the shards; finalize then returns the
// batch's loss (all_ignored applies when no shard counts a pixel) and writes this shard's part
// of the batch's gradient into `grad` (allocated when undefined): one pass over the logits. A
// shard whose pixels are all ignored is fine (its statistics are zeros, its gradient is 0).
// finalize refuses a count that is NaN, infinite or negative.
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
ShardStatistics cross_entropy_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                         const CrossEntropyOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kCrossEntropyTarget<T, L>>>
double cross_entropy_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const CrossEntropyOptions<T>& options = {});

}  // namespace segloss
