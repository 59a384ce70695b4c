// CUDA kernel of bce_with_logits (losses/bce_with_logits.hpp has the contract and the math), on
// the arguments of the CPU kernel with device pointers. Not installed; no CUDA header.
#pragma once

#include "../cpu/bce_with_logits.hpp"
#include "result.hpp"

namespace segloss {
namespace cuda {

// One pass over logits and targets on the current stream: writes a.loss and a.grad when set
// (the gradient scaled by a.grad_scale, by grad_scale_by[0] when that device pointer is given,
// and by a.grad_out[i] when set); with a.want_sum, the value sum_i loss_i * value_scale goes
// to r (a deterministic two-stage sum in double).
//
// m: a mean over the weight sum (BceMeanOver::weight_sum). With m.weight (the weight's device
// values, m.count of them), W = (numel / m.count) * their sum is reduced on the device first
// (weight_sum.cuh) and the value and the gradient are also scaled by 1/W (0 when W = 0), read on
// the device: nothing waits. With m.zero (the host knows the scale is 0: the split's finalize),
// or W = 0, the gradient is stored as exact zeros and the value is 0, as on the CPU, whatever
// the logits and grad_out (NaN included).
template <class T>
struct WeightMean {
  const T* weight = nullptr;
  int64_t count = 0;
  bool zero = false;
};

template <class T>
void bce_with_logits(const char* function, const cpu::BceWithLogitsArgs<T>& a,
                     const T* grad_scale_by, double value_scale, Result<T> r,
                     const WeightMean<T>& m = {});

// W = (numel / count) * the sum of the weight's count device values, reduced on the device as
// bce_with_logits does (in the grid of the input's planes x plane_size, so within
// cuda::workspace_size of the input), copied back to the host (waits: the split's statistics
// want it).
template <class T>
double bce_weight_divisor(const char* function, const T* weight, int64_t count, int64_t planes,
                          int64_t plane_size);

}  // namespace cuda
}  // namespace segloss
