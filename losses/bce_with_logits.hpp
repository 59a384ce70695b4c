// @brief Binary cross-entropy on logits, with PyTorch's weight, pos_weight and reduction.
//
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double (float16 and
// bfloat16: losses/half_logits.hpp); target z of the same shape and type, values in [0, 1] (soft
// targets are allowed and not checked).
//
//   l_i = -w_i [ pw_c z_i log p_i + (1 - z_i) log(1 - p_i) ],   p_i = sigmoid(x_i)
//       = w_i [ (1 - z_i) softplus(x_i) + pw_c z_i softplus(-x_i) ]
//   dl_i/dx_i = w_i [ (1 - z_i) p_i - pw_c z_i (1 - p_i) ]    = w_i (p_i - z_i) without pos_weight
// (c = channel of element i), evaluated in forms that never overflow and never cancel for
// binary targets (core/pointwise.hpp). This is
// torch.nn.functional.binary_cross_entropy_with_logits. Derivation: docs/gradients.md.
//
// Options (defaults as in PyTorch):
//   reduction   mean (default): sum_i l_i / numel; sum: sum_i l_i; none: l itself.
//               The mean divides by the element count, not by the weight sum (unless
//               mean_over says weight_sum).
//   weight      optional; any shape that broadcasts to the logits by PyTorch's rule (aligned on
//               the right, each extent 1 or equal): (N,C,H,W) per pixel, (N,1,H,W) per pixel
//               for every channel, (C,1,1) per channel, ... Undefined: every weight is 1.
//   pos_weight  optional; one value per channel, shaped (C), or as PyTorch's per-channel
//               pos_weight (C,1,1) [(C,1,1,1) for volumes] or (1,C,1,1); or one value for all.
//               Other shapes are an error. Note that PyTorch broadcasts a 1-D pos_weight
//               against the last axis (W), not the channel axis; segloss reads (C) per channel.
//   mean_over   what reduction mean divides by (not in PyTorch; sum and none ignore it):
//               elements (default, PyTorch): numel.
//               weight_sum: W = sum of the weight broadcast to the full input shape, i.e.
//               numel / weight.numel() times the sum of the weight tensor's own values (a
//               (C,1,1) weight counts once per pixel and image). value = sum_i w_i l_i / W: the
//               Carvana seed WeightedBCELoss2d, loss.sum() / w.sum() with w as big as the input.
//               No weight: W = numel, the same as elements. W = 0 (all weights 0, or signed
//               weights that cancel exactly): value 0 and a zero gradient (as cross_entropy's
//               default when every pixel is ignored), without reading logits or targets.
//               W is summed in double by a pre-pass over the weight tensor alone.
//   label_smoothing  eps in [0, 1], default 0: every target is replaced by
//               z' = z (1 - eps) + eps / 2 (Keras' binary label smoothing: 0 -> eps/2,
//               1 -> 1 - eps/2) in the loss and its gradient; dl/dx = w [(1 - z') p - pw z' (1 -
//               p)]. segmentation_models_pytorch's SoftBCEWithLogitsLoss(smooth_factor = s)
//               computes (1 - z) s + z (1 - s) = z (1 - 2s) + s: the same with eps = 2 s.
//               pos_weight applies to the smoothed target, as in those libraries.
//
// Edge cases: NaN in x or z propagates to the value and gradient (no check). Logits of any
// finite size give a finite value and gradient. The gradient buffer may be the logits
// themselves (an in-place update). Errors (segloss::Error) for: rank outside
// 3..5, any zero extent (empty batch), shape mismatch, a weight that does not broadcast,
// a pos_weight of another shape, label_smoothing outside [0, 1] or NaN, or a CUDA tensor in a
// build without CUDA.
//
// CUDA (docs/cuda.md): logits on a CUDA device run the CUDA kernel; target, weight, pos_weight,
// grad, grad_out and value must then be on the device too (an error otherwise). Every option
// works there, mean_over weight_sum too: W is summed on the device in a fixed order and 1/W
// read there, so it does not wait either (the split's statistics copy W back). The forward's
// scalar stays on the device (no wait); the value_and_grad returning a double waits for the
// stream; the form with `value` does not. The sum is deterministic but adds in another order
// than the CPU's: CPU and CUDA agree to rounding, not bit for bit.
#pragma once

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

// What reduction mean divides by: the element count (PyTorch) or the sum of the weight.
enum class BceMeanOver { elements, weight_sum };
namespace detail {
inline constexpr const char* kBceMeanOverNames[] = {"elements", "weight_sum"};
}  // namespace detail

template <class T>
struct BceWithLogitsOptions {
  Reduction reduction = Reduction::mean;
  Tensor<T> weight;      // undefined: no weight
  Tensor<T> pos_weight;  // undefined: 1 for every channel
  BceMeanOver mean_over = BceMeanOver::elements;
  double label_smoothing = 0.0;  // eps in [0, 1]: z -> z (1 - eps) + eps / 2
};

// Forward: a scalar tensor (shape ()) for mean and sum, the per-element loss for none.
template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& logits, const Tensor<T>& target,
                          const BceWithLogitsOptions<T>& options = {});

// Backward: d(loss)/d(logits) scaled by grad_out, which is a one-element tensor for mean and
// sum, and shaped like the logits for none.
template <class T>
Tensor<T> bce_with_logits_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                   const Tensor<T>& grad_out,
                                   const BceWithLogitsOptions<T>& options = {});

// Fused value and gradient in one pass over logits and targets (mean or sum only: a loss with
// reduction none has no single value; use forward and backward). mean_over weight_sum adds a
// pre-pass over the weight tensor alone. The second form writes the gradient
// into `grad`, which must be shaped like the logits (allocated when undefined), so a training
// loop can reuse one buffer and allocate nothing per call.
template <class T>
ValueAndGrad<T> bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                               const BceWithLogitsOptions<T>& options = {});
template <class T>
double bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                      Tensor<T>& grad, const BceWithLogitsOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is.
template <class T>
void bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                    Tensor<T>& grad, Tensor<T>& value,
                                    const BceWithLogitsOptions<T>& options = {});

// The statistics / finalize split for data-parallel shards (docs/distributed.md; mean or sum).
// statistics: global = {sum_i l_i over the shard, the mean's divisor over the shard (its
// numel, or with mean_over weight_sum its W), its numel}: one pass over the shard (and one over
// its weight for weight_sum). A weight is the shard's own: a per-image weight (N, ...) is sliced
// like the logits; a weight without the batch axis ((C,1,1), (1,C,1,1), ...) is passed whole to
// every shard, and its W adds up to the batch's. The caller sums global across the shards;
// finalize returns the batch's loss (0 with a zero gradient when the summed W is 0) and writes
// this shard's part of the batch's gradient into `grad` (allocated when undefined): one pass.
template <class T>
ShardStatistics bce_with_logits_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                           const BceWithLogitsOptions<T>& options = {});
template <class T>
double bce_with_logits_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                                const ShardStatistics& reduced, Tensor<T>& grad,
                                const BceWithLogitsOptions<T>& options = {});

}  // namespace segloss
