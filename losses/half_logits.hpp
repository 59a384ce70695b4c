// @brief float16 and bfloat16 logits for every loss.
//
// Every loss accepts Tensor<float16> and Tensor<bfloat16> logits through the same calls as
// float and double: forward, backward, and the three forms of value_and_grad (returning a
// ValueAndGrad, writing grad and returning the double, writing grad and a device value):
//   bce_with_logits, binary_cross_entropy (16-bit probabilities), sigmoid_focal, soft_dice,
//   soft_jaccard, tversky, bce_dice, lovasz_hinge (a target like the logits);
//   cross_entropy, softmax_dice, softmax_jaccard, softmax_tversky, generalized_dice, ce_dice
//   (int32 / int64 labels, or probability targets like the logits);
//   softmax_focal, dice_focal, lovasz_softmax (int32 / int64 labels).
// Every other floating tensor of a call has the logits' 16-bit type (targets, weight,
// pos_weight, class_weight, alpha, grad_out, grad, value); labels stay int32 or int64. A float
// target with half logits is not a call that compiles (Tensor<float> is not Tensor<float16>);
// convert it with to_half below. The 16-bit types store exactly what a training engine keeps in
// memory: targets in {0, 1} and usual weights are exact in both. The statistics / finalize split
// (docs/distributed.md) of every loss that has one takes 16-bit logits too: statistics are the
// float split's on the widened inputs (doubles, as they are), finalize is the form writing grad
// and returning the double.
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
// into float16's subnormals (below 6.1e-5) or to 0 (at most 2^-25, 3e-8): use bfloat16, or
// reduction sum with a scale, when numel is large.
//
// Cost: the path makes float copies of the inputs (and of the gradient), 2 + 4 bytes read and
// written per element more than a fused kernel would. On the CPU the copies are allocated per
// call. On CUDA the widening and rounding are elementwise kernels on the current stream
// (backends/cuda/half.cu), and the copies are views into the stream's cached
// scratch buffer (backends/cuda/scratch.hpp), so after a warm-up call the forms writing into the
// caller's grad allocate nothing; the one writing the value into a caller's device tensor also
// waits for nothing (a CUDA graph can capture it), while the one returning a double waits for
// its value. Forward and backward still allocate the tensors they return, as every returned
// CUDA tensor. A caller's WorkspaceScope does not cover the scratch (cuda::pool_bytes counts it,
// cuda::release_pool frees it). A fused half kernel (loading 16 bits in the loss kernels) is not
// written yet.
//
// Code: five generic helpers in half_logits.cpp (forward, backward, the form writing grad, the
// form writing grad and value, the split's statistics; the ValueAndGrad form calls the third,
// finalize is the third over the float finalize), instantiated for every loss by one macro per
// shape of call. The fields of every options struct are listed once, in
// losses/internal/half_options.hpp: a new option field must be added there too (the registry
// test tests/test_half_all.cpp fails for a preset setting a field the list forgets).
//
// Errors are the float loss's (they name the function; shapes and values as for float), plus a
// gradient or value buffer of the wrong shape or device.
//
// Tests: tests/test_half.cpp and tests/test_half_losses.cpp (the first four in depth),
// tests/test_half_all.cpp (every registry entry: the value exactly, every 16-bit result the
// float one rounded once, bit for bit), on CUDA tests/test_cuda_half.cpp and
// tests/test_cuda_half_all.cpp.
#pragma once

#include <cstdint>

#include "../core/half.hpp"
#include "../core/tensor.hpp"
#include "bce_dice.hpp"
#include "bce_with_logits.hpp"
#include "binary_cross_entropy.hpp"
#include "combined.hpp"
#include "cross_entropy.hpp"
#include "focal.hpp"
#include "generalized_dice.hpp"
#include "lovasz.hpp"
#include "soft_dice.hpp"
#include "soft_jaccard.hpp"
#include "softmax_overlap.hpp"
#include "tversky.hpp"

namespace segloss {

// Conversions between float tensors and 16-bit tensors, on the tensor's device (new storage;
// an undefined tensor converts to an undefined one). to_float is exact; to_half rounds to
// nearest even.
template <class H>
Tensor<float> to_float(const Tensor<H>& t);
template <class H>
Tensor<H> to_half(const Tensor<float>& t);

// The 16-bit specializations of every loss's five public forms (defined in
// losses/half_logits.cpp): for each, logits Tensor<H>, a target (Tensor<H>, or int32 / int64
// labels), options Opt<H>; EP() is the trailing pointer parameter (info, parts) of the forward
// and the two value_and_grad forms returning a value or a ValueAndGrad, VP() that of the form
// writing the value into a tensor (each with its leading comma, or nothing). The template
// arguments are deduced from the parameters (the class-target losses' third is its default).
#define SEGLOSS_HALF_FORMS(H, Target, name, Opt, EP, VP)                                      \
  template <>                                                                                 \
  Tensor<H> name(const Tensor<H>&, const Target&, const Opt& EP());                           \
  template <>                                                                                 \
  Tensor<H> name##_backward(const Tensor<H>&, const Target&, const Tensor<H>&, const Opt&);   \
  template <>                                                                                 \
  ValueAndGrad<H> name##_value_and_grad(const Tensor<H>&, const Target&, const Opt& EP());    \
  template <>                                                                                 \
  double name##_value_and_grad(const Tensor<H>&, const Target&, Tensor<H>&, const Opt& EP()); \
  template <>                                                                                 \
  void name##_value_and_grad(const Tensor<H>&, const Target&, Tensor<H>&, Tensor<H>&,         \
                             const Opt& VP());
#define SEGLOSS_HALF_NO()
#define SEGLOSS_HALF_INFO() , OverlapInfo*
#define SEGLOSS_HALF_BCE_DICE_PARTS() , BceDiceParts*
#define SEGLOSS_HALF_CE_DICE_PARTS() , CeDiceParts*
#define SEGLOSS_HALF_DICE_FOCAL_PARTS() , DiceFocalParts*
// Labels: int32 and int64. Classes: labels, or probabilities of the logits' type.
#define SEGLOSS_HALF_LABELS(H, name, Opt, EP, VP)           \
  SEGLOSS_HALF_FORMS(H, Tensor<int32_t>, name, Opt, EP, VP) \
  SEGLOSS_HALF_FORMS(H, Tensor<int64_t>, name, Opt, EP, VP)
#define SEGLOSS_HALF_CLASSES(H, name, Opt, EP, VP) \
  SEGLOSS_HALF_LABELS(H, name, Opt, EP, VP)        \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, name, Opt, EP, VP)

#define SEGLOSS_HALF_DECLARE(H)                                                                    \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, bce_with_logits, BceWithLogitsOptions<H>, SEGLOSS_HALF_NO,      \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, binary_cross_entropy, BinaryCrossEntropyOptions<H>,             \
                     SEGLOSS_HALF_NO, SEGLOSS_HALF_NO)                                             \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, sigmoid_focal, SigmoidFocalOptions<H>, SEGLOSS_HALF_NO,         \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, soft_dice, OverlapOptions<H>, SEGLOSS_HALF_INFO,                \
                     SEGLOSS_HALF_INFO)                                                            \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, soft_jaccard, OverlapOptions<H>, SEGLOSS_HALF_INFO,             \
                     SEGLOSS_HALF_INFO)                                                            \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, tversky, TverskyOptions<H>, SEGLOSS_HALF_INFO,                  \
                     SEGLOSS_HALF_INFO)                                                            \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, bce_dice, BceDiceOptions<H>, SEGLOSS_HALF_BCE_DICE_PARTS,       \
                     SEGLOSS_HALF_BCE_DICE_PARTS)                                                  \
  SEGLOSS_HALF_FORMS(H, Tensor<H>, lovasz_hinge, LovaszHingeOptions<H>, SEGLOSS_HALF_NO,           \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_CLASSES(H, cross_entropy, CrossEntropyOptions<H>, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO) \
  SEGLOSS_HALF_CLASSES(H, softmax_dice, SoftmaxOverlapOptions<H>, SEGLOSS_HALF_INFO,               \
                       SEGLOSS_HALF_NO)                                                            \
  SEGLOSS_HALF_CLASSES(H, softmax_jaccard, SoftmaxOverlapOptions<H>, SEGLOSS_HALF_INFO,            \
                       SEGLOSS_HALF_NO)                                                            \
  SEGLOSS_HALF_CLASSES(H, softmax_tversky, SoftmaxTverskyOptions<H>, SEGLOSS_HALF_INFO,            \
                       SEGLOSS_HALF_NO)                                                            \
  SEGLOSS_HALF_CLASSES(H, generalized_dice, GeneralizedDiceOptions<H>, SEGLOSS_HALF_NO,            \
                       SEGLOSS_HALF_NO)                                                            \
  SEGLOSS_HALF_CLASSES(H, ce_dice, CeDiceOptions<H>, SEGLOSS_HALF_CE_DICE_PARTS, SEGLOSS_HALF_NO)  \
  SEGLOSS_HALF_LABELS(H, softmax_focal, SoftmaxFocalOptions<H>, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO)  \
  SEGLOSS_HALF_LABELS(H, dice_focal, DiceFocalOptions<H>, SEGLOSS_HALF_DICE_FOCAL_PARTS,           \
                      SEGLOSS_HALF_NO)                                                             \
  SEGLOSS_HALF_LABELS(H, lovasz_softmax, LovaszSoftmaxOptions<H>, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO)
// The statistics / finalize split (docs/distributed.md): Stats is the statistics type, FP() the
// finalize's trailing `parts` parameter or nothing.
#define SEGLOSS_HALF_SPLIT(H, Target, name, Opt, Stats, FP)                         \
  template <>                                                                       \
  Stats name##_statistics(const Tensor<H>&, const Target&, const Opt&);             \
  template <>                                                                       \
  double name##_finalize(const Tensor<H>&, const Target&, const Stats&, Tensor<H>&, \
                         const Opt& FP());
#define SEGLOSS_HALF_SPLIT_LABELS(H, name, Opt, Stats, FP)     \
  SEGLOSS_HALF_SPLIT(H, Tensor<int32_t>, name, Opt, Stats, FP) \
  SEGLOSS_HALF_SPLIT(H, Tensor<int64_t>, name, Opt, Stats, FP)
#define SEGLOSS_HALF_SPLIT_CLASSES(H, name, Opt, Stats, FP) \
  SEGLOSS_HALF_SPLIT_LABELS(H, name, Opt, Stats, FP)        \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, name, Opt, Stats, FP)
#define SEGLOSS_HALF_DECLARE_SPLIT(H)                                                              \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, bce_with_logits, BceWithLogitsOptions<H>, ShardStatistics,      \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, sigmoid_focal, SigmoidFocalOptions<H>, ShardStatistics,         \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, soft_dice, OverlapOptions<H>, OverlapStatistics,                \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, soft_jaccard, OverlapOptions<H>, OverlapStatistics,             \
                     SEGLOSS_HALF_NO)                                                              \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, tversky, TverskyOptions<H>, OverlapStatistics, SEGLOSS_HALF_NO) \
  SEGLOSS_HALF_SPLIT(H, Tensor<H>, bce_dice, BceDiceOptions<H>, OverlapStatistics,                 \
                     SEGLOSS_HALF_BCE_DICE_PARTS)                                                  \
  SEGLOSS_HALF_SPLIT_CLASSES(H, cross_entropy, CrossEntropyOptions<H>, ShardStatistics,            \
                             SEGLOSS_HALF_NO)                                                      \
  SEGLOSS_HALF_SPLIT_CLASSES(H, softmax_dice, SoftmaxOverlapOptions<H>, OverlapStatistics,         \
                             SEGLOSS_HALF_NO)                                                      \
  SEGLOSS_HALF_SPLIT_CLASSES(H, softmax_jaccard, SoftmaxOverlapOptions<H>, OverlapStatistics,      \
                             SEGLOSS_HALF_NO)                                                      \
  SEGLOSS_HALF_SPLIT_CLASSES(H, softmax_tversky, SoftmaxTverskyOptions<H>, OverlapStatistics,      \
                             SEGLOSS_HALF_NO)                                                      \
  SEGLOSS_HALF_SPLIT_CLASSES(H, generalized_dice, GeneralizedDiceOptions<H>, OverlapStatistics,    \
                             SEGLOSS_HALF_NO)                                                      \
  SEGLOSS_HALF_SPLIT_CLASSES(H, ce_dice, CeDiceOptions<H>, OverlapStatistics,                      \
                             SEGLOSS_HALF_CE_DICE_PARTS)                                           \
  SEGLOSS_HALF_SPLIT_LABELS(H, softmax_focal, SoftmaxFocalOptions<H>, ShardStatistics,             \
                            SEGLOSS_HALF_NO)                                                       \
  SEGLOSS_HALF_SPLIT_LABELS(H, dice_focal, DiceFocalOptions<H>, OverlapStatistics,                 \
                            SEGLOSS_HALF_DICE_FOCAL_PARTS)
SEGLOSS_HALF_DECLARE(float16)
SEGLOSS_HALF_DECLARE(bfloat16)
SEGLOSS_HALF_DECLARE_SPLIT(float16)
SEGLOSS_HALF_DECLARE_SPLIT(bfloat16)
#undef SEGLOSS_HALF_DECLARE_SPLIT
#undef SEGLOSS_HALF_SPLIT_CLASSES
#undef SEGLOSS_HALF_SPLIT_LABELS
#undef SEGLOSS_HALF_SPLIT
#undef SEGLOSS_HALF_DECLARE
#undef SEGLOSS_HALF_CLASSES
#undef SEGLOSS_HALF_LABELS
#undef SEGLOSS_HALF_FORMS
#undef SEGLOSS_HALF_NO
#undef SEGLOSS_HALF_INFO
#undef SEGLOSS_HALF_BCE_DICE_PARTS
#undef SEGLOSS_HALF_CE_DICE_PARTS
#undef SEGLOSS_HALF_DICE_FOCAL_PARTS

}  // namespace segloss
