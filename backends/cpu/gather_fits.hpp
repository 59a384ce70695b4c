// Whether the offsets of cpu::gather_lanes (backends/cpu/class_axis.hpp) fit its int32 gather,
// and the test seam that lowers that bound. Apart from class_axis.hpp so that a test can include
// it: it needs neither Eigen nor the library's -march flags.
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

// The largest offset gather_lanes may form in an int32 gather: INT32_MAX. A test seam, written
// by nothing in the library: tests/test_gather_fallback.cpp lowers it to run the per-lane
// fallback (otherwise reached only when (C - 1) * S + lanes > 2^31 - 1, a float tensor over
// 8 GiB) on small tensors, and restores it. One variable for the library and the tests (an
// inline variable of a static library, or of a shared one with default visibility); it must not
// change while a loss runs.
inline int64_t gather_offset_limit = INT32_MAX;

// Whether every offset gather_lanes forms for rows `stride` apart, C rows and W lanes, fits int32.
inline bool gather_fits(int64_t classes, int64_t stride, int lanes_) {
  return (classes - 1) * stride + lanes_ <= gather_offset_limit;
}

}  // namespace cpu
}  // namespace segloss
