// CUDA kernel of binary_cross_entropy (losses/binary_cross_entropy.hpp has the contract and the
// math), on the arguments of the CPU kernel with device pointers. Not installed; no CUDA header.
#pragma once

#include <cstdint>

#include "../cpu/binary_cross_entropy.hpp"
#include "result.hpp"

namespace segloss {
namespace cuda {

// The first value outside [0, 1] (or NaN) that the pass met, as the CPU's check finds it: the
// first bad probability, else the first bad target (index -1: none).
struct UnitIntervalError {
  int64_t index = -1;
  bool in_target = false;
  double value = 0.0;
};

// One pass over probabilities and targets on the current stream: writes a.loss and a.grad when
// set (the gradient scaled by a.grad_scale, by grad_scale_by[0] when that device pointer is
// given, and by a.grad_out[i] when set); with a.want_sum, sum_i loss_i * value_scale goes to r (a
// deterministic two-stage sum in double). An element whose probability or target is outside
// [0, 1] gets a NaN loss and gradient (so a device value is NaN), and is found by an integer
// atomicMin; `bad` (host memory, may be null) receives the first one after the stream has been
// waited for, which happens only when r.host or bad is set.
template <class T>
void binary_cross_entropy(const char* function, const cpu::BinaryCrossEntropyArgs<T>& a,
                          const T* grad_scale_by, double value_scale, Result<T> r,
                          UnitIntervalError* bad);

}  // namespace cuda
}  // namespace segloss
