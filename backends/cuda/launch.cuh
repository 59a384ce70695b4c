// A helper of the CUDA kernels of cross_entropy and the confusion matrix: a fixed-order block
// sum of one value of any arithmetic type (double, or a 64-bit integer count), by warp shuffles.
#pragma once

#include <cuda_runtime.h>

#include "runtime.cuh"

namespace segloss {
namespace cuda {

// The sum over a block of kBlock threads (kThreads unless given: a multiple of 32, at most
// kThreads), returned in thread 0: a shuffle tree in each warp, then one over the warps' sums.
// The order of the additions is fixed by the thread indices, so the result is the same from run
// to run. `sh` holds kBlock / 32 values.
template <class V, int kBlock = kThreads>
__device__ __forceinline__ V block_total(V v, V* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kBlock / 32 ? sh[lane] : V(0);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

}  // namespace cuda
}  // namespace segloss
