// Helpers shared by the CUDA kernels of cross_entropy and the confusion matrix: the block size,
// a fixed-order block sum, and the error check of a CUDA call.
#pragma once

#include <cuda_runtime.h>

#include "../../core/error.hpp"

namespace segloss {
namespace cuda {

constexpr int kThreads = 256;  // threads per block of the grid-stride kernels

// The sum over a block of kThreads threads, returned in thread 0: a shuffle tree in each warp,
// then one over the warps' sums. The order of the additions is fixed by the thread indices, so
// the result is the same from run to run. `sh` holds kThreads / 32 values.
template <class V>
__device__ __forceinline__ V block_sum(V v, V* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? sh[lane] : V(0);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

// Raises segloss::Error naming the call when a CUDA call failed.
inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) detail::fail(what, "CUDA error: ", cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace segloss
