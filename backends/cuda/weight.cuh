// Reading a broadcast weight (core/broadcast.hpp) in a kernel: the pattern is uniform over a
// launch, so the switch costs a predictable branch, not a variant per pattern.
#pragma once

#include "../../core/broadcast.hpp"

namespace segloss {
namespace cuda {

// The plane's weight row: the reader's data at the plane's offset (null when absent).
template <class T>
__device__ __forceinline__ const T* weight_row(const segloss::detail::BroadcastReader<T>& r,
                                               int64_t plane) {
  return r.kind == segloss::detail::BroadcastKind::absent ? nullptr
                                                          : r.data + r.plane_offset(plane);
}

// The weight of element s of the plane whose row is `row`, the pattern `kind` (r.kind) held in a
// register by the caller: r is a kernel parameter read through a pointer, and reading its kind
// there for every element cost a load each. Only the general pattern reads r.
template <class T>
__device__ __forceinline__ T weight_at(segloss::detail::BroadcastKind kind,
                                       const segloss::detail::BroadcastReader<T>& r, const T* row,
                                       int64_t s) {
  switch (kind) {
    case segloss::detail::BroadcastKind::absent:
      return T(1);
    case segloss::detail::BroadcastKind::per_plane:
      return row[0];
    case segloss::detail::BroadcastKind::contiguous:
      return row[s];
    default:
      return row[r.spatial_offset(s)];
  }
}

}  // namespace cuda
}  // namespace segloss
