// @brief float16 and bfloat16 logits for bce_with_logits, soft_dice, bce_dice and cross_entropy.
//
// These four losses (the ones the CUDA benchmark of issue 7 measures) accept Tensor<float16> and
// Tensor<bfloat16> logits through the same calls as float and double:
//   forward, backward, and the three forms of value_and_grad.
// Every other tensor of a call has the logits' 16-bit type (BCE and Dice targets, weight,
// pos_weight, class_weight, cross_entropy's class weight, grad_out, grad, value); cross_entropy's
// labels stay int32 or int64. A float target with half logits is not a call that compiles
// (Tensor<float> is not Tensor<float16>); convert it with to_half below. The 16-bit types
// store exactly what a training engine keeps in memory: targets in {0, 1} and usual weights are
// exact in both.
//
// The one conversion path (the same on the CPU and on CUDA, so the API is device-agnostic):
//   1. every 16-bit input is widened to a float tensor on its device (exact);
//   2. the float loss runs (the math in float and double as for float logits; sums accumulate
//      in double, deterministic as the float loss is);
//   3. the float gradient (or per-element loss, or value) is rounded to nearest even into the
//      16-bit result, once (core/half.hpp).
// So a half call's value is the float loss's value on the widened inputs, exactly, and its
// gradient is that float gradient rounded: the CPU result is the reference the CUDA path is
// tested against (tests/test_cuda_half.cpp). The value_and_grad forms returning a double return
// the float loss's double. A mean over a huge tensor rounds its gradient (~1/numel per element)
// into float16's subnormals (below 6.1e-5) or to 0 (below 6e-8): use bfloat16, or reduction sum
// with a scale, when numel is large.
//
// Cost: the path makes float copies of the inputs (and of the gradient), 2 + 4 bytes read and
// written per element more than a fused kernel would. On the CPU the copies are allocated per
// call. On CUDA the widening and rounding are elementwise kernels on the current stream
// (backends/cuda/half.cu), and since session 10 the copies are views into the stream's cached
// scratch buffer (backends/cuda/scratch.hpp), so after a warm-up call the forms writing into the
// caller's grad allocate nothing; the one writing the value into a caller's device tensor also
// waits for nothing (a CUDA graph can capture it), while the one returning a double waits for
// its value. Forward and backward still allocate the tensors they return, as every returned
// CUDA tensor. A caller's WorkspaceScope does not cover the scratch (cuda::pool_bytes counts it,
// cuda::release_pool frees it). A fused half kernel (loading 16 bits in the loss kernels) is not
// written yet.
//
// Errors are the float loss's (they name the function; shapes and values as for float), plus a
// gradient or value buffer of the wrong shape or device. Other losses have no 16-bit
// instantiation: a call with Tensor<float16> logits fails to link, naming the function and
// segloss::float16; the C API answers SEGLOSS_ERROR_DTYPE naming the function and the dtype.
#pragma once

#include <cstdint>

#include "../core/half.hpp"
#include "../core/tensor.hpp"
#include "bce_dice.hpp"
#include "bce_with_logits.hpp"
#include "cross_entropy.hpp"
#include "soft_dice.hpp"

namespace segloss {

// Conversions between float tensors and 16-bit tensors, on the tensor's device (new storage;
// an undefined tensor converts to an undefined one). to_float is exact; to_half rounds to
// nearest even.
template <class H>
Tensor<float> to_float(const Tensor<H>& t);
template <class H>
Tensor<H> to_half(const Tensor<float>& t);

// The 16-bit specializations of the four losses' templates (defined in losses/half_logits.cpp).
#define SEGLOSS_HALF_BINARY(H, name, Options, Extra)                                        \
  template <>                                                                               \
  Tensor<H> name<H>(const Tensor<H>&, const Tensor<H>&, const Options<H>& Extra);           \
  template <>                                                                               \
  Tensor<H> name##_backward<H>(const Tensor<H>&, const Tensor<H>&, const Tensor<H>&,        \
                               const Options<H>&);                                          \
  template <>                                                                               \
  ValueAndGrad<H> name##_value_and_grad<H>(const Tensor<H>&, const Tensor<H>&,              \
                                           const Options<H>& Extra);                        \
  template <>                                                                               \
  double name##_value_and_grad<H>(const Tensor<H>&, const Tensor<H>&, Tensor<H>&,           \
                                  const Options<H>& Extra);                                 \
  template <>                                                                               \
  void name##_value_and_grad<H>(const Tensor<H>&, const Tensor<H>&, Tensor<H>&, Tensor<H>&, \
                                const Options<H>& Extra);
#define SEGLOSS_HALF_NO_EXTRA
#define SEGLOSS_HALF_DICE_EXTRA , OverlapInfo*
#define SEGLOSS_HALF_BCE_DICE_EXTRA , BceDiceParts*

#define SEGLOSS_HALF_CROSS_ENTROPY(H, L)                                                          \
  template <>                                                                                     \
  Tensor<H> cross_entropy<H, L, void>(const Tensor<H>&, const Tensor<L>&,                         \
                                      const CrossEntropyOptions<H>&);                             \
  template <>                                                                                     \
  Tensor<H> cross_entropy_backward<H, L, void>(const Tensor<H>&, const Tensor<L>&,                \
                                               const Tensor<H>&, const CrossEntropyOptions<H>&);  \
  template <>                                                                                     \
  ValueAndGrad<H> cross_entropy_value_and_grad<H, L, void>(const Tensor<H>&, const Tensor<L>&,    \
                                                           const CrossEntropyOptions<H>&);        \
  template <>                                                                                     \
  double cross_entropy_value_and_grad<H, L, void>(const Tensor<H>&, const Tensor<L>&, Tensor<H>&, \
                                                  const CrossEntropyOptions<H>&);                 \
  template <>                                                                                     \
  void cross_entropy_value_and_grad<H, L, void>(const Tensor<H>&, const Tensor<L>&, Tensor<H>&,   \
                                                Tensor<H>&, const CrossEntropyOptions<H>&);

#define SEGLOSS_HALF_DECLARE(H)                                                        \
  SEGLOSS_HALF_BINARY(H, bce_with_logits, BceWithLogitsOptions, SEGLOSS_HALF_NO_EXTRA) \
  SEGLOSS_HALF_BINARY(H, soft_dice, OverlapOptions, SEGLOSS_HALF_DICE_EXTRA)           \
  SEGLOSS_HALF_BINARY(H, bce_dice, BceDiceOptions, SEGLOSS_HALF_BCE_DICE_EXTRA)        \
  SEGLOSS_HALF_CROSS_ENTROPY(H, int32_t)                                               \
  SEGLOSS_HALF_CROSS_ENTROPY(H, int64_t)
SEGLOSS_HALF_DECLARE(float16)
SEGLOSS_HALF_DECLARE(bfloat16)
#undef SEGLOSS_HALF_DECLARE
#undef SEGLOSS_HALF_CROSS_ENTROPY
#undef SEGLOSS_HALF_BINARY
#undef SEGLOSS_HALF_NO_EXTRA
#undef SEGLOSS_HALF_DICE_EXTRA
#undef SEGLOSS_HALF_BCE_DICE_EXTRA

}  // namespace segloss
