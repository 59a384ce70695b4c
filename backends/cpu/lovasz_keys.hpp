// The Lovász losses' sort keys and the largest-logit indicator of lovasz_softmax, shared by the
// CPU kernels (lovasz.cpp) and the CUDA kernels (../cuda/lovasz.cu), which must sort alike: the
// same key for the same error, so the same permutation (docs/gradients.md §11.3).
//
// A key K (uint32 for a float error, uint64 for a double one; each backend names its own K) is
// unsigned, and ascending keys are descending errors:
//   - descending_key(e), e >= 0 or NaN: the error's bits with the sign cleared, complemented.
//     The top bit is always set; a NaN, whose bits exceed every finite value's, comes first.
//   - softmax_key (lovasz_softmax): an error e > 1/2 as the bits of d = 1 - e, plus 1, with the
//     top bit clear, so ascending in d and before every descending_key; key 0 is NaN.
// error_of decodes both, in double.
#pragma once

#include <cmath>  // NAN
#include <cstring>

#include "../../core/config.hpp"

namespace segloss {
namespace lovasz_keys {

template <class K>
constexpr K kLowBits = ~K(0) >> 1;  // every bit but the top one

template <class T, class K>
SEGLOSS_HD SEGLOSS_INLINE K descending_key(T e) {
  K b;
  memcpy(&b, &e, sizeof b);
  return static_cast<K>(~(b & kLowBits<K>));
}

// lovasz_softmax's key of a record of class c, whose probability of c is p (q = 1 - p_max of the
// pixel): the error e is 1 - p for a ground truth (c is the label), else p, in [0, 1], given by
// d = min(e, 1 - e) computed without cancellation. For e > 1/2, d is p (a ground truth with
// p < 1/2) or q (another label, c the most probable class, p > 1/2); for e <= 1/2, e is p
// (another label), 1 - p or, where p > 1/2 and c is the most probable class, q (a ground truth:
// 1 - p cancels). An error near 1 (a confident mistake: 1 - p of a ground truth whose p is 1e-9,
// or p_max of another class) had only float's spacing near 1, 6e-8: such errors tied and sorted
// by pixel order where double sorts them by value.
template <class T, class K>
SEGLOSS_HD SEGLOSS_INLINE K softmax_key(bool fg, T p, T q) {
  if (fg ? p < T(0.5) : p > T(0.5)) {  // e > 1/2
    const T d = fg ? p : q;
    if (d != d) return K(0);
    K b;
    memcpy(&b, &d, sizeof b);
    return static_cast<K>((b & kLowBits<K>)+1);
  }
  const T e = fg ? (p > T(0.5) ? q : T(1) - p) : p;
  if (e != e) return K(0);  // NaN p, or a NaN q where the error is q
  return descending_key<T, K>(e);
}

// The error of a key, in double (1 - d for a key of softmax_key's e > 1/2).
template <class T, class K>
SEGLOSS_HD SEGLOSS_INLINE double error_of(K key) {
  T v;
  if (key & ~kLowBits<K>) {
    const K b = ~key;
    memcpy(&v, &b, sizeof v);
    return static_cast<double>(v);
  }
  if (key == 0) return static_cast<double>(NAN);
  const K b = key - 1;
  memcpy(&v, &b, sizeof v);
  return 1.0 - static_cast<double>(v);
}

// h_c of lovasz_softmax's step A (and the CPU's step C) for d = x_c - m <= 0 (m the pixel's
// largest logit): 1 at d = 0 and 0 below -1 / the largest finite T, with adds, multiplies and a
// max only (no lane selection in a SIMD packet V; M is its Math). A subnormal d, where x_c and
// m are near the smallest normal, gives an h between, with exp(d) = 1.
template <class V, class M>
SEGLOSS_HD SEGLOSS_INLINE V top_logit_indicator(const V& d) {
  using T = typename M::Scalar;
  const T big = sizeof(T) == 4 ? T(3.40282347e38f) : T(1.7976931348623157e308);
  return V(M::max(V(d * big), M::splat(T(-1))) + T(1));
}

}  // namespace lovasz_keys
}  // namespace segloss
