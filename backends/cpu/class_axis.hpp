// Helpers of the kernels that walk the class axis of (N, C, S) logits a packet of pixels at a
// time (cross_entropy, the softmax overlap losses): the same code runs on a packet V = Packet<T>
// of consecutive pixels or on a single pixel V = T, and keeps C values per lane in a small
// per-thread buffer.
#pragma once

#include <cstdint>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <type_traits>
#include <vector>

#include "gather_fits.hpp"  // gather_fits, and the test seam that forces the fallback
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
// store_lanes, or store_stream where `stream` (a packet of a large gradient, simd.hpp).
template <class T, class V>
SEGLOSS_INLINE void store_grad_lanes(T* p, const V& v, bool stream) {
  if constexpr (std::is_same_v<V, T>)
    *p = v;
  else if (stream)
    store_stream(p, v);
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
template <class T, class V>
SEGLOSS_INLINE const T& lane(const V& v, int l) {
  if constexpr (std::is_same_v<V, T>)
    return v;
  else
    return v[l];
}

// Per lane of a packet (or a pixel) of labels y: the label as T, or -1 where it equals
// ignore_index. Returns whether any lane is ignored. With AVX-512 a float packet converts its 16
// labels in registers: the lane-by-lane loop wrote 16 scalars to the stack and read them back
// as one vector, a store-forwarding stall per packet.
// With ignore_negative, every negative label is ignored too (cross_entropy's option).
template <class T, class V, class U>
SEGLOSS_INLINE bool label_lanes(const U* y, int64_t ignore_index, V& label,
                                bool ignore_negative = false) {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_same_v<T, float> && std::is_same_v<V, Packet<float>> &&
                (std::is_same_v<U, int64_t> || std::is_same_v<U, int32_t>)) {
    __m512 f;
    __mmask16 ignored;
    if constexpr (std::is_same_v<U, int64_t>) {
      const __m512i lo = _mm512_loadu_si512(y), hi = _mm512_loadu_si512(y + 8);
      const __m512i ig = _mm512_set1_epi64(ignore_index);
      ignored = static_cast<__mmask16>(_mm512_cmpeq_epi64_mask(lo, ig) |
                                       (_mm512_cmpeq_epi64_mask(hi, ig) << 8));
      if (ignore_negative)
        ignored |=
            static_cast<__mmask16>(_mm512_cmplt_epi64_mask(lo, _mm512_setzero_si512()) |
                                   (_mm512_cmplt_epi64_mask(hi, _mm512_setzero_si512()) << 8));
      f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtepi64_ps(lo)), _mm512_cvtepi64_ps(hi),
                             1);
    } else {
      const __m512i v = _mm512_loadu_si512(y);
      // An ignore_index outside int32's range matches no int32 label.
      const bool fits = ignore_index >= INT32_MIN && ignore_index <= INT32_MAX;
      ignored = fits ? _mm512_cmpeq_epi32_mask(
                           v, _mm512_set1_epi32(static_cast<int32_t>(fits ? ignore_index : 0)))
                     : static_cast<__mmask16>(0);
      if (ignore_negative) ignored |= _mm512_cmplt_epi32_mask(v, _mm512_setzero_si512());
      f = _mm512_cvtepi32_ps(v);
    }
    _mm512_storeu_ps(label.data(), _mm512_mask_blend_ps(ignored, f, _mm512_set1_ps(-1.f)));
    return ignored != 0;
  }
#endif
  bool any_ignored = false;
  for (int l = 0; l < lanes<T, V>(); ++l) {
    const int64_t v = static_cast<int64_t>(y[l]);
    const bool ignored = v == ignore_index || (ignore_negative && v < 0);
    any_ignored = any_ignored || ignored;
    lane<T>(label, l) = ignored ? T(-1) : static_cast<T>(v);
  }
  return any_ignored;
}

// Per lane l of a packet (or a pixel) whose label y_l (as label_lanes gives it) is >= 0:
// p[y_l * stride + l * lane_step]; a lane whose label is -1 (ignored) keeps `fallback`. With
// AVX-512 a float packet gathers in one instruction, its offsets in int32 when `fits` (the
// caller's bound on the largest offset, gather_fits); otherwise, or for other types, lane by lane.
// (Picking the lanes one by one through memory stalled on store forwarding, as label_lanes
// describes.)
template <class T, class V>
SEGLOSS_INLINE V gather_lanes(const T* p, const V& label, int64_t stride, int lane_step,
                              const V& fallback, bool fits = true) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && std::is_same_v<V, Packet<float>>) {
    if (fits) {
      const __m512 y = _mm512_loadu_ps(label.data());
      const __mmask16 ok = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GE_OQ);
      const __m512i lane_offset =
          _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                             _mm512_set1_epi32(lane_step));
      const __m512i index =
          _mm512_add_epi32(_mm512_mullo_epi32(_mm512_cvttps_epi32(y),
                                              _mm512_set1_epi32(static_cast<int32_t>(stride))),
                           lane_offset);
      V out;
      _mm512_storeu_ps(out.data(),
                       _mm512_mask_i32gather_ps(_mm512_loadu_ps(fallback.data()), ok, index, p, 4));
      return out;
    }
  }
#endif
  (void)fits;
  V out = fallback;
  for (int l = 0; l < lanes<T, V>(); ++l) {
    const T y = lane<T>(label, l);
    if (y >= T(0)) lane<T>(out, l) = p[static_cast<int64_t>(y) * stride + l * lane_step];
  }
  return out;
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
