// Elementwise conversion between float and the 16-bit types on a tensor's device: the widening
// and rounding steps of the 16-bit path (losses/half_logits.hpp). Not installed.
#pragma once

#include <cstdint>

#include "../../core/error.hpp"
#include "../../core/half.hpp"
#include "../../core/tensor.hpp"

namespace segloss {
namespace detail {

#if defined(SEGLOSS_WITH_CUDA)
// dst[i] = Dst(src[i]) for i < n on the current stream (backends/cuda/half.cu); no wait.
// Instantiated for float <- float16 / bfloat16 and float16 / bfloat16 <- float.
template <class Dst, class Src>
void cuda_convert(Dst* dst, const Src* src, int64_t n, const char* function);
#endif

// dst[i] = Dst(src[i]) for i < n, on `device` (both buffers are there). Exact from 16 bits to
// float; round to nearest even from float to 16 bits (core/half.hpp).
template <class Dst, class Src>
void convert_elements(Dst* dst, const Src* src, int64_t n, Device device, const char* function) {
  if (n <= 0) return;
  if (device == Device::cuda) {
#if defined(SEGLOSS_WITH_CUDA)
    cuda_convert(dst, src, n, function);
    return;
#else
    fail(function, "a CUDA tensor, but this build has no CUDA backend");
#endif
  }
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 16))
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = Dst(src[i]);
}

}  // namespace detail
}  // namespace segloss
