// One loop body for a packet of pixels or a single pixel: the kernels that walk the class axis
// (cross_entropy, softmax_focal) are templates over V = Packet<T> (the SIMD loop) or V = T (its
// scalar tail), and read, write and index lanes through these.
#pragma once

#include <type_traits>
#include <vector>

#include "simd.hpp"

namespace segloss {
namespace cpu {

template <class T, class V>
SEGLOSS_INLINE V load_lanes(const T* p) {
  if constexpr (std::is_same_v<V, T>)
    return *p;
  else
    return load(p);
}
template <class T, class V>
SEGLOSS_INLINE void store_lanes(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>)
    *p = v;
  else
    store(p, v);
}
template <class T, class V>
constexpr int lanes() {
  if constexpr (std::is_same_v<V, T>)
    return 1;
  else
    return kLanes<T>;
}
template <class T, class V>
SEGLOSS_INLINE T& lane(V& v, int l) {
  if constexpr (std::is_same_v<V, T>)
    return v;
  else
    return v[l];
}

// A per-thread buffer of at least n values (the C x lanes exponentials of one packet of
// pixels), reused by later calls on the same thread.
template <class T>
T* class_buffer(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace cpu
}  // namespace segloss
