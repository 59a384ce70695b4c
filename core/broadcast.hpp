// Reading an optional per-element tensor (a weight) broadcast against (N, C, spatial...)
// input, with PyTorch's broadcasting rule: shapes align on the right, and each extent of the
// weight is 1 or equal to the input's. Missing leading axes count as 1.
//
// The reader is plain data with __host__ __device__ offsets, so the CUDA kernels use it too.
//
// Loops walk the input plane by plane (plane = one image and channel, S spatial elements),
// so the reader answers two questions: where a plane starts in the weight, and how the
// weight moves inside a plane: not at all (spatial extents all 1), one step per element
// (spatial extents equal the input's), or some other pattern (index arithmetic per element).
#pragma once

#include <cstdint>

#include "config.hpp"
#include "error.hpp"
#include "shape.hpp"

namespace segloss {
namespace detail {

enum class BroadcastKind { absent, per_plane, contiguous, general };

template <class T>
struct BroadcastReader {
  using Kind = BroadcastKind;

  Kind kind = Kind::absent;
  const T* data = nullptr;
  int spatial_rank = 0;
  int64_t channels = 1;
  int64_t stride[Shape::kMaxRank] = {};  // weight stride per input axis, 0 where broadcast
  int64_t extent[Shape::kMaxRank] = {};  // the input's extents

  // Offset in the weight of the first element of plane p = n * C + c.
  SEGLOSS_HD int64_t plane_offset(int64_t p) const {
    return (p / channels) * stride[0] + (p % channels) * stride[1];
  }

  // Offset of spatial position s (0 <= s < S) inside a plane, for Kind::general.
  SEGLOSS_HD int64_t spatial_offset(int64_t s) const {
    int64_t off = 0;
    for (int d = 2 + spatial_rank - 1; d >= 2; --d) {
      off += (s % extent[d]) * stride[d];
      s /= extent[d];
    }
    return off;
  }
};

// Checks that `weight` broadcasts to `input` and builds its reader. An undefined weight gives
// Kind::absent (every weight is 1).
template <class T>
BroadcastReader<T> make_broadcast_reader(const char* function, const char* argument,
                                         const Shape& input, const Shape& weight_shape,
                                         const T* weight_data, bool weight_defined) {
  BroadcastReader<T> r;
  const int rank = input.rank();
  r.spatial_rank = rank - 2;
  r.channels = input[1];
  for (int d = 0; d < rank; ++d) r.extent[d] = input[d];
  if (!weight_defined) return r;
  SEGLOSS_CHECK(weight_shape.rank() <= rank, function, argument, " ", weight_shape,
                " has more axes than the input ", input);
  const int lead = rank - weight_shape.rank();
  int64_t step = 1;
  bool spatial_full = true, spatial_one = true;
  for (int d = rank - 1; d >= 0; --d) {
    const int64_t we = d >= lead ? weight_shape[d - lead] : 1;
    SEGLOSS_CHECK(we == 1 || we == input[d], function, argument, " ", weight_shape,
                  " does not broadcast to the input ", input, " (axis ", d, ": ", we, " vs ",
                  input[d], ")");
    r.stride[d] = we == 1 ? 0 : step;
    step *= we;
    if (d >= 2) {
      spatial_full = spatial_full && we == input[d];
      spatial_one = spatial_one && we == 1;
    }
  }
  r.data = weight_data;
  r.kind = spatial_one    ? BroadcastKind::per_plane
           : spatial_full ? BroadcastKind::contiguous
                          : BroadcastKind::general;
  return r;
}

}  // namespace detail
}  // namespace segloss
