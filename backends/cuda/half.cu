// The elementwise conversions of the 16-bit path (losses/internal/half_convert.hpp) on the GPU:
// the bit-exact conversions of core/half.hpp, the same code as on the host, so a CUDA call rounds
// exactly as the CPU reference does. One thread per element of a grid-stride loop, on the
// current stream; no reduction, so the result is the same bits on every run.
#include <cuda_runtime.h>

#include <cstdint>

#include "../../core/half.hpp"
#include "../../losses/internal/half_convert.hpp"
#include "runtime.cuh"

namespace segloss {
namespace detail {
namespace {

template <class Dst, class Src>
__global__ void convert_kernel(Dst* dst, const Src* src, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = Dst(src[i]);
}

}  // namespace

template <class Dst, class Src>
void cuda_convert(Dst* dst, const Src* src, int64_t n, const char* function) {
  if (n <= 0) return;
  cuda::launch_checked(function, "the 16-bit conversion kernel's launch", convert_kernel<Dst, Src>,
                       cuda::grid_blocks(n), cuda::kThreads, 0, cuda::thread_stream(), dst, src, n);
}

template void cuda_convert<float, float16>(float*, const float16*, int64_t, const char*);
template void cuda_convert<float, bfloat16>(float*, const bfloat16*, int64_t, const char*);
template void cuda_convert<float16, float>(float16*, const float*, int64_t, const char*);
template void cuda_convert<bfloat16, float>(bfloat16*, const float*, int64_t, const char*);

}  // namespace detail
}  // namespace segloss
