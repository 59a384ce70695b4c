// Helpers of the kernels that walk the class axis of (N, C, S) logits a packet of pixels at a
// time (cross_entropy, the softmax overlap losses): the same code runs on a packet V = Packet<T>
// of consecutive pixels or on a single pixel V = T, and keeps C values per lane in a small
// per-thread buffer.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "simd.hpp"

namespace segloss {
namespace cpu {

// A per-thread buffer of at least n values, reused by later calls.
template <class T>
T* class_buffer(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// Lane access for a packet (P) or a single pixel (T).
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

// Pixels per chunk for a kernel that reads C values per pixel: about kChunk values, a multiple
// of 64, at least 64; so a single image of many classes still splits across threads. Depends
// only on C.
inline int64_t class_chunk_pixels(int64_t classes) {
  const int64_t per = 16384 / classes / 64 * 64;
  return per < 64 ? 64 : per;
}

}  // namespace cpu
}  // namespace segloss
