// @brief Binary cross-entropy on probabilities, as PyTorch's binary_cross_entropy (nn.BCELoss):
// the log clamp at -100, PyTorch's gradient with its epsilon, weight and reduction.
//
// Input: probabilities p (N, C, spatial...) with 1 to 3 spatial axes, float or double, every
// value in [0, 1]; target z of the same shape and type, every value in [0, 1] (soft targets
// allowed).
//
//   l_i = -w_i [ z_i max(log p_i, -100) + (1 - z_i) max(log(1 - p_i), -100) ]
//   dl_i/dp_i = w_i (p_i - z_i) / max((1 - p_i) p_i, EPSILON),   EPSILON = 1e-12f
//
// This is torch.nn.functional.binary_cross_entropy, value and gradient:
//  - The clamp keeps l finite at p = 0 and p = 1: p = 0 with z = 1 (or p = 1 with z = 0) costs
//    100 (times w), p = 0 with z = 0 (or p = 1 with z = 1) costs 0.
//  - The gradient is PyTorch's formula (ATen's binary_cross_entropy_backward), the derivative
//    of the unclamped loss with its denominator kept above EPSILON; it is NOT the derivative of
//    the clamped value: at p = 0 with z = 1 it is -1/EPSILON = -1e12 (times w), where the
//    clamped value is flat. EPSILON is ATen's float constant 1e-12f in both precisions (in
//    double 9.9999999600419720e-13, as ATen converts it). p = 0 with z = 0, and p = 1 with
//    z = 1, get gradient 0.
//  - Both logarithms keep full relative precision (log(1 - p) as log1p(-p), as current
//    PyTorch; torch 1.13 computed log(1 - p), which differs for p below about 1e-8).
// Derivation and numerics: docs/gradients.md, section "binary_cross_entropy".
//
// For logits, prefer bce_with_logits: sigmoid + binary_cross_entropy saturates (sigmoid(x)
// rounds to 1 for x > 17 in float, and the clamp then decides the loss), and its gradient with
// respect to the logits, (p - z) through p (1 - p), loses the precision bce_with_logits keeps.
//
// Options (defaults as in PyTorch):
//   reduction  mean (default): sum_i w_i l_i / numel; sum; none: the per-element losses.
//   weight     optional; any shape that broadcasts to the input by PyTorch's rule (aligned on
//              the right, each extent 1 or equal), as in bce_with_logits. Undefined: all 1.
//
// Errors (segloss::Error) for: rank outside 3..5, any zero extent, shape mismatch, a weight
// that does not broadcast, a CUDA tensor in a build without CUDA, and any probability or target
// outside [0, 1]. The message names the first bad element (linear index, position, value),
// probabilities checked before targets. NaN is outside [0, 1]: PyTorch's test
// (v >= 0) && (v <= 1) is false for NaN, so PyTorch refuses a NaN probability and so does
// segloss. (torch 1.13 checked only the probabilities; current PyTorch checks both, on the CPU
// too.) The check reads the inputs once before anything is written, so on error no output (not
// even a caller's grad buffer) is touched. NaN in the weight propagates. Weights of 0 give 0.
// The gradient buffer may be the probabilities themselves (an in-place update).
//
// CUDA (probabilities, target, weight and grad_out on the GPU;
// backends/cuda/binary_cross_entropy.cu): every form and option, in one pass that also checks the
// range: an element outside [0, 1] gets a NaN loss and gradient. The forms that return a host value
// (value_and_grad's double) wait and raise the CPU's message naming the first bad element, after
// writing grad (the CPU checks before writing anything); forwards, backward and the device-value
// form leave the NaN on the device without a wait.
#pragma once

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

template <class T>
struct BinaryCrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  Tensor<T> weight;  // undefined: no weight
};

// Forward: a scalar tensor (shape ()) for mean and sum, the per-element loss for none.
template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& probs, const Tensor<T>& target,
                               const BinaryCrossEntropyOptions<T>& options = {});

// Backward: d(loss)/d(probs) scaled by grad_out, which is a one-element tensor for mean and sum,
// and shaped like the probabilities for none.
template <class T>
Tensor<T> binary_cross_entropy_backward(const Tensor<T>& probs, const Tensor<T>& target,
                                        const Tensor<T>& grad_out,
                                        const BinaryCrossEntropyOptions<T>& options = {});

// Fused value and gradient (mean or sum): the range check, then one pass. The second form
// writes the gradient into `grad` (shaped like the probabilities; allocated when undefined).
template <class T>
ValueAndGrad<T> binary_cross_entropy_value_and_grad(
    const Tensor<T>& probs, const Tensor<T>& target,
    const BinaryCrossEntropyOptions<T>& options = {});
template <class T>
double binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                           Tensor<T>& grad,
                                           const BinaryCrossEntropyOptions<T>& options = {});
// The value into `value` instead: one element on the probabilities' device (allocated, shape (),
// when undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is.
template <class T>
void binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                         Tensor<T>& grad, Tensor<T>& value,
                                         const BinaryCrossEntropyOptions<T>& options = {});

}  // namespace segloss
