// When the class-axis kernels (cross_entropy, softmax_focal) write a gradient with
// non-temporal stores (store_stream, backends/cpu/simd.hpp), and the variable that sets it.
// Apart from simd.hpp so that a test or the benchmark can include it: it needs neither Eigen
// nor the library's -march flags.
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

// Gradients of at least this many bytes are streamed. Measured (bench/L2_RESIDENT.md): -16 %
// time at 132 MB (C = 21), -32 % at 157 MB (C = 150); +10-25 % on arrays that fit in L2,
// where the next reader would also find the gradient out of cache. Between the two it was not
// measured; 32 MiB is about a server's L3. The library never writes it: a variable so that
// tests/test_stream_stores.cpp can take the streaming path on small tensors and
// segloss-bench --no-stream can turn it off (it changes no value). One variable for the
// library and its users (an inline variable); it must not change while a loss runs.
inline int64_t stream_gradient_bytes = int64_t(32) << 20;

// Whether a gradient of `elements` elements of `element_bytes` is streamed: its size alone
// decides.
inline bool stream_gradient(const void* grad, int64_t elements, int64_t element_bytes) {
  return grad != nullptr && elements * element_bytes >= stream_gradient_bytes;
}

}  // namespace cpu
}  // namespace segloss
