// @brief Focal losses (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017): the
// sigmoid form, one-vs-rest per channel (torchvision.ops.sigmoid_focal_loss), and the softmax
// form on a label map.
//
// ---------------------------------------------------------------------------------------------
// sigmoid_focal
// ---------------------------------------------------------------------------------------------
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double; target z of the
// same shape and type, in [0, 1] (binary when C = 1, one-vs-rest over the C channels otherwise;
// soft targets are allowed and not checked). Per element, with p = sigmoid(x):
//
// clang-format off
//   ce    = -[z log p + (1 - z) log(1 - p)]                    (bce_with_logits, no pos_weight)
//   q     = 1 - p_t = p (1 - z) + (1 - p) z,    p_t = p z + (1 - p)(1 - z)
//   a_t   = alpha z + (1 - alpha)(1 - z)   when alpha >= 0;   1 when alpha < 0
//   l     = w a_t q^gamma ce
//   dl/dx = w a_t q^gamma [ (1 - z) p - z (1 - p)  +  gamma (1 - 2z) (p (1 - p) / q) ce ]
// clang-format on
//
// This is torchvision.ops.sigmoid_focal_loss(x, z, alpha, gamma) times the weight w. The
// gradient follows from dq/dx = p (1 - p)(1 - 2z) and dce/dx = (1 - z) p - z (1 - p); the
// factor p (1 - p) / q (<= 1) stands for q^(gamma - 1), which is infinite at q = 0 when
// gamma < 1, and is taken as 0 where q is 0. q, 1 - p and ce are computed without cancellation
// (core/pointwise.hpp, pw::sigmoid_focal), so the loss and gradient are finite for logits of any
// finite size. gamma = 0 is exactly bce_with_logits with the weight w a_t.
// Derivation: docs/gradients.md, section "focal".
//
// Options:
//   reduction  mean (default): sum_i l_i / numel (torchvision's reduction="mean"; note that
//              torchvision's own default is "none"); sum; none: l itself, shaped like x.
//              The mean divides by the element count, not by the weight sum.
//   alpha      0.25 (default): the weight a_t of positives (alpha) and negatives (1 - alpha);
//              in [0, 1], or negative (torchvision's -1) for no alpha factor (a_t = 1).
//              NaN or > 1 is an error.
//   gamma      2 (default): the focusing exponent, finite (in T too: 1e39 is refused for float
//              logits) and >= 0. 0, 1 and 2 are evaluated as products, any other value as
//              exp(gamma log q).
//   weight     optional per-element weight w broadcast to the logits like bce_with_logits'
//              weight (PyTorch's rule, core/broadcast.hpp). Undefined: every weight is 1.
//
// ---------------------------------------------------------------------------------------------
// softmax_focal
// ---------------------------------------------------------------------------------------------
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, C >= 1; target labels t
// (N, spatial...) as int32 or int64. Per pixel i, with p = softmax over the C classes:
//
// clang-format off
//   l_i      = -a (1 - p_t)^gamma log p_t,     a = alpha[t_i] (1 without alpha),  t = t_i
//   dl_i/dx_c = a (1 - p_t)^gamma [ 1 + gamma h ] (p_c - [c = t]),
//              h = p_t (-log p_t) / (1 - p_t)   in [0, 1], -> 1 as p_t -> 1
// clang-format on
//
// from d(-log p_t)/dx_c = p_c - [c = t] and d(1 - p_t)/dx_c = -p_t ([c = t] - p_c). Everything
// is relative to the max logit, as cross_entropy; 1 - p_t is the sum of the other classes'
// exponentials over their total (it never cancels), -log p_t is a log1p of their ratio to the
// label's, and the label's own entry -(1 - p_t) a (...) is computed as such, so a confident
// correct pixel keeps its tiny loss and gradient with full relative precision, and a gamma in
// (0, 1) gives no infinity. gamma = 0 with no alpha is cross_entropy. This is kornia's
// focal_loss (with its eps = 0 and a per-class alpha) with an ignore_index.
//
// Options:
//   reduction     mean (default): sum_i l_i / (the number of pixels not ignored), the mean of
//                 kornia and most implementations; not weighted by alpha (unlike cross_entropy's
//                 weighted mean). sum; none: l, shaped (N, spatial...).
//   alpha         optional class factors, C values (shape (C)); undefined: all 1.
//   gamma         2 (default), finite and >= 0 (as above).
//   ignore_index  -100 (default): pixels with this label have no loss and a zero gradient
//                 (whatever their logits or grad_out, even NaN) and are not counted by the mean.
//                 Every pixel ignored: the mean is 0 with a zero gradient (no NaN).
//
// Edge cases (both): NaN logits propagate to the value and gradient of their element or pixel.
// The gradient buffer of value_and_grad may be the logits themselves (in place).
// Errors (segloss::Error): rank outside 3..5, a zero extent, a target of the wrong shape, gamma
// NaN, infinite or negative; sigmoid_focal: alpha NaN or > 1, a weight that does not broadcast;
// softmax_focal: more than 2^24 classes (as cross_entropy), alpha without C values, a label
// outside [0, C) that is not ignore_index (the message names its position and value);
// grad_out of the wrong shape; reduction none in value_and_grad (in every form); a `value` that
// is not one element on the logits' device, or that overlaps the logits, the target or grad; a
// CUDA tensor in a build without CUDA.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

template <class T>
struct SigmoidFocalOptions {
  Reduction reduction = Reduction::mean;
  double alpha = 0.25;  // < 0: no alpha factor
  double gamma = 2.0;
  Tensor<T> weight;  // undefined: no weight
};

template <class T>
struct SoftmaxFocalOptions {
  Reduction reduction = Reduction::mean;
  Tensor<T> alpha;  // (C), undefined: all 1
  double gamma = 2.0;
  int64_t ignore_index = -100;
};

// Forward: shape () for mean and sum, the per-element loss (the logits' shape) for none.
template <class T>
Tensor<T> sigmoid_focal(const Tensor<T>& logits, const Tensor<T>& target,
                        const SigmoidFocalOptions<T>& options = {});

// Backward: grad_out has one element for mean and sum, the logits' shape for none.
template <class T>
Tensor<T> sigmoid_focal_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                 const Tensor<T>& grad_out,
                                 const SigmoidFocalOptions<T>& options = {});

// Fused value and gradient in one pass (mean or sum). The second form writes into `grad`
// (allocated when undefined, else shaped like the logits).
template <class T>
ValueAndGrad<T> sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                             const SigmoidFocalOptions<T>& options = {});
template <class T>
double sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                    Tensor<T>& grad, const SigmoidFocalOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is.
template <class T>
void sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const SigmoidFocalOptions<T>& options = {});

// The statistics / finalize split for data-parallel shards (docs/distributed.md; mean or sum).
// statistics: global = {sum_i l_i over the shard, the mean's divisor over the shard (numel),
// numel}: one pass. The caller sums global across the shards; finalize returns the batch's loss
// and writes this shard's part of the batch's gradient into `grad` (allocated when undefined).
// Both focal finalizes refuse a divisor or count that is NaN, infinite or negative.
template <class T>
ShardStatistics sigmoid_focal_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SigmoidFocalOptions<T>& options = {});
template <class T>
double sigmoid_focal_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const SigmoidFocalOptions<T>& options = {});

// The label types of softmax_focal.
template <class L>
inline constexpr bool kFocalLabel = std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>;

// Forward: shape () for mean and sum, the per-pixel loss (N, spatial...) for none.
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
Tensor<T> softmax_focal(const Tensor<T>& logits, const Tensor<L>& target,
                        const SoftmaxFocalOptions<T>& options = {});

// Backward: grad_out has one element for mean and sum, the forward's shape for none.
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
Tensor<T> softmax_focal_backward(const Tensor<T>& logits, const Tensor<L>& target,
                                 const Tensor<T>& grad_out,
                                 const SoftmaxFocalOptions<T>& options = {});

// Fused value and gradient (mean or sum): one pass over the labels (validation and the mean's
// divisor), one over the logits. The second form writes into `grad`.
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
ValueAndGrad<T> softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                             const SoftmaxFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
double softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                    Tensor<T>& grad, const SoftmaxFocalOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is; a
// bad label makes it NaN instead of raising.
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
void softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const SoftmaxFocalOptions<T>& options = {});

// The split for data-parallel shards, as sigmoid_focal's, with global = {sum_i l_i over the
// shard, the count of its pixels not ignored (the mean's divisor), that count again}. No pixel
// counted in any shard: the mean is 0 with a zero gradient.
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
ShardStatistics softmax_focal_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                         const SoftmaxFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
double softmax_focal_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const SoftmaxFocalOptions<T>& options = {});

}  // namespace segloss
