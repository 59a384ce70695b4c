// CUDA kernels of boundary_weights (losses/boundary_weights.hpp has the contract and the math).
// Host-side declarations only: no CUDA header, so losses/boundary_weights.cpp can include it.
//
// The CPU kernel's running box sums, one thread per line, in the CPU's order (the same band
// cut, backends/cpu/boundary_weights.hpp), so the weights are bit-identical to the CPU's for
// binary and soft masks alike; the count of edge pixels is an integer atomic, the levels pass
// reads it on the device. Everything is enqueued on the current stream, nothing waits, and the
// double scratch comes from the call's workspace (cuda::boundary_weights_workspace_size).
#pragma once

#include <cstdint>

#include "../cpu/boundary_weights.hpp"

namespace segloss {
namespace cuda {

// a.mask and a.out are device pointers (a.out may hold anything on entry). on_raw = 1 + boost,
// computed by the caller as the CPU path does; numel = planes * depth * height * width.
// `function` names the call in the messages of CUDA errors.
template <class T>
void boundary_weights(const char* function, const cpu::BoundaryWeightArgs<T>& a, double boost,
                      double on_raw, bool normalize);

}  // namespace cuda
}  // namespace segloss
