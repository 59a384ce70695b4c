// CUDA kernels of sigmoid_focal and softmax_focal (losses/focal.hpp has the contract and the
// math; backends/cpu/focal.hpp the CPU kernels, whose arguments they take with device pointers;
// core/pointwise.hpp the per-element formulas both share). Not installed; no CUDA header.
#pragma once

#include <cstdint>

#include "../cpu/focal.hpp"
#include "result.hpp"

namespace segloss {
namespace cuda {

// sigmoid_focal: one pass over logits and targets on the current stream, the loop of
// bce_with_logits.cu with pw::sigmoid_focal. Writes a.loss and a.grad when set (the gradient
// scaled by a.grad_scale, by grad_scale_by[0] when that device pointer is given, and by
// a.grad_out[i] when set); with a.want_sum, the value sum_i loss_i * value_scale goes to r (a
// deterministic two-stage sum in double).
template <class T>
void sigmoid_focal(const char* function, const cpu::SigmoidFocalArgs<T>& a, const T* grad_scale_by,
                   double value_scale, Result<T> r);

// What softmax_focal reports when asked for a host value.
struct FocalStatus {
  double value = 0.0;      // the reduced value (mean or sum)
  int64_t first_bad = -1;  // the linear index in the target of the first bad label, or -1
  double counted = 0.0;    // the pixels not ignored (with host_status)
};

// softmax_focal, in four launches: the label pass (each label checked; the count of pixels not
// ignored, per block), its combine and a one-thread prepare (the mean's factor 1 / count, 0 when
// every pixel is ignored, and the gradient's scale, kept on the device), then the fused pass
// (loss and gradient of every pixel, one partial per block) and the value's combine. `mean`:
// the value and the gradient are scaled by the mean's factor (else by 1). a.grad_scale is not
// read: the gradient's scale is that factor times grad_scale_by[0] when given (a device
// scalar), and a.grad_out[i] when set (reduction none). a.want_sum: the value goes to
// device_value (NaN when a label is bad; null: not wanted) and, with host_status, comes back
// (the call waits). A label outside [0, C) that is not ignored gets a NaN loss and gradient and
// sets the call's error flag with the smallest such index. reduced_count >= 0 (the split's
// finalize): the mean's factor is 1 / reduced_count (0 when it is 0), the count summed over every
// shard, in place of this call's own (a kernel argument: nothing is copied or waited for).
// grad_weight: a factor of the gradient's scale (dice_focal's focal weight, losses/combined.cpp;
// 1 leaves the scale's bits as they are).
template <class T, class L>
FocalStatus softmax_focal(const char* function, const cpu::SoftmaxFocalArgs<T, L>& a, bool mean,
                          const T* grad_scale_by, T* device_value, bool host_status,
                          double reduced_count = -1.0, double grad_weight = 1.0);

}  // namespace cuda
}  // namespace segloss
