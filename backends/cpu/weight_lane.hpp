// Reading a broadcast weight (core/broadcast.hpp) a packet or an element at a time, with the
// broadcast pattern fixed at compile time so the hot loop has no branch on it.
#pragma once

#include "../../core/broadcast.hpp"
#include "simd.hpp"

#include <type_traits>

namespace segloss {
namespace cpu {

using Kind = detail::BroadcastKind;

template <class T, Kind WK>
struct WeightLane {
  // The weights of elements [s, s + n) of a plane whose weight starts at `base`.
  SEGLOSS_INLINE static Packet<T> packet(const detail::BroadcastReader<T>& w, const T* base,
                                         int64_t s) {
    if constexpr (WK == Kind::absent) {
      return Packet<T>::Constant(T(1));
    } else if constexpr (WK == Kind::per_plane) {
      return Packet<T>::Constant(*base);
    } else if constexpr (WK == Kind::contiguous) {
      return load(base + s);
    } else {
      Packet<T> v;
      for (int l = 0; l < kLanes<T>; ++l) v[l] = base[w.spatial_offset(s + l)];
      return v;
    }
  }
  SEGLOSS_INLINE static T scalar(const detail::BroadcastReader<T>& w, const T* base, int64_t s) {
    if constexpr (WK == Kind::absent) {
      return T(1);
    } else if constexpr (WK == Kind::per_plane) {
      return *base;
    } else if constexpr (WK == Kind::contiguous) {
      return base[s];
    } else {
      return base[w.spatial_offset(s)];
    }
  }
};

// Calls f(std::integral_constant<Kind, K>) with the reader's pattern as a compile-time value.
template <class T, class F>
decltype(auto) with_weight_kind(const detail::BroadcastReader<T>& w, F&& f) {
  switch (w.kind) {
    case Kind::absent:
      return f(std::integral_constant<Kind, Kind::absent>{});
    case Kind::per_plane:
      return f(std::integral_constant<Kind, Kind::per_plane>{});
    case Kind::contiguous:
      return f(std::integral_constant<Kind, Kind::contiguous>{});
    default:
      return f(std::integral_constant<Kind, Kind::general>{});
  }
}

}  // namespace cpu
}  // namespace segloss
