// The autodiff tape's one device operation (core/tape.cpp, Tape::accumulate): a fused loss
// node's gradient, scaled by the incoming gradient of its scalar value, written or added into
// the gradient of a CUDA leaf. Elementwise, on the current stream, with no reduction: the
// result is the same bits on every run.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime.cuh"

namespace segloss {
namespace detail {
namespace {

template <class T>
__global__ void scale_add_kernel(T* dst, const T* src, T scale, int64_t n, bool assign) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = assign ? scale * src[i] : dst[i] + scale * src[i];
}

}  // namespace

template <class T>
void tape_scale_add(T* dst, const T* src, double scale, int64_t n, bool assign) {
  if (n <= 0) return;
  constexpr int kBlock = 256;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const unsigned grid = static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
  cuda::launch(scale_add_kernel<T>, grid, kBlock, 0, cuda::thread_stream(), dst, src,
               static_cast<T>(scale), n, assign);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "the gradient kernel's launch");
}

template void tape_scale_add<float>(float*, const float*, double, int64_t, bool);
template void tape_scale_add<double>(double*, const double*, double, int64_t, bool);

}  // namespace detail
}  // namespace segloss
