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
template <class T>
void bce_with_logits(const char* function, const cpu::BceWithLogitsArgs<T>& a,
                     const T* grad_scale_by, double value_scale, Result<T> r);

}  // namespace cuda
}  // namespace segloss
