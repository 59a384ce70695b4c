// Opt-in checks for NaN and infinity in the inputs.
//
// segloss's default is that NaN propagates (docs/conventions.md, "NaN and infinity"): nothing
// scans the inputs, and a NaN logit makes the loss NaN. To find where a NaN or an infinity came
// from instead, either
//   - call check_finite(tensor, "name") on a tensor yourself; or
//   - turn the global flag on with set_check_finite(true): then every loss and metric that
//     takes float or double logits, probabilities or targets scans them at its argument check,
//     before any work, and raises segloss::Error naming the function, the argument and the
//     first bad element. Weights, pos_weight, grad_out and integer labels are not scanned, nor
//     is any CUDA tensor: the scan reads host memory (a device scan would add a pass and a
//     wait to every call); check a device tensor's host copy yourself.
//
// check_finite raises
//   "check_finite: logits (2,1,4,4) has nan at (0,0,1,2) (element 6)"
// (or "inf" / "-inf"), where the element is the first bad one in row-major order (the scan is
// chunked and parallel; the answer is the same at any thread count). Integer tensors are always
// finite. The flag is one process-wide std::atomic<bool>, off by default; with it off the losses
// pay nothing; with it on, one extra read-only pass over each checked input.
#pragma once

#include <cstdint>

#include "tensor.hpp"

namespace segloss {

// The linear index of the first NaN or +-Inf element of `t`, or -1 when every element is
// finite (always -1 for integer tensors). Reads CPU tensors only.
template <class T>
int64_t first_non_finite(const Tensor<T>& t);

// Raises segloss::Error("<function>: <name> <shape> has nan at (n,c,...) (element i)") at the
// first non-finite element; returns quietly otherwise. function defaults to "check_finite".
template <class T>
void check_finite(const Tensor<T>& t, const char* name, const char* function = "check_finite");

// The process-wide flag (off by default): when on, the losses and metrics call check_finite on
// their floating-point inputs and targets. Safe to set from any thread.
void set_check_finite(bool on);
bool check_finite_enabled();

}  // namespace segloss
