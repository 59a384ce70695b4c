// SIMD packets for the CPU loops: fixed-size Eigen arrays, which Eigen evaluates with its
// vectorized exp (SSE2 by default, AVX2/AVX-512 with SEGLOSS_NATIVE).
//
// Math<Packet<T>> gives the pointwise templates in core/pointwise.hpp the same primitives as
// the scalar Math<T>, so a loop runs the one formula on a register's width at a time and finishes
// the last few elements with the scalar instantiation.
#pragma once

#include <Eigen/Core>

#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <type_traits>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "../../core/pointwise.hpp"
#include "stream_threshold.hpp"

namespace segloss {
namespace cpu {

// One packet is one SIMD register: 64 bytes with AVX-512, 32 with AVX, 16 with SSE2 (the
// portable default). Wider packets than the registers made GCC stop inlining Eigen's
// unrolled evaluators: the portable build ran about 10x slower.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <class T>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(T));

// Forces a lambda's body inline where it is called, as SEGLOSS_INLINE does for functions:
// write it after the parameter list, [&](int64_t j, P* acc) SEGLOSS_LAMBDA_INLINE { ... }.
// GCC outlined the per-packet bodies given to sum_packets (a call per packet, with the
// accumulators and the constants going through memory each time).
#if defined(__GNUC__) || defined(__clang__)
#define SEGLOSS_LAMBDA_INLINE __attribute__((always_inline))
#else
#define SEGLOSS_LAMBDA_INLINE
#endif

template <class T>
using Packet = Eigen::Array<T, kLanes<T>, 1>;

template <class T>
SEGLOSS_INLINE Packet<T> load(const T* p) {
  return Eigen::Map<const Packet<T>>(p);
}
template <class T>
SEGLOSS_INLINE void store(T* p, const Packet<T>& v) {
  Eigen::Map<Packet<T>> out(p);
  out = v;
}

// A non-temporal store of a packet where p is aligned to the packet's width: the cache line
// is written without being read first (no read-for-ownership) and is not kept in cache.
// Elsewhere an ordinary store; and only with AVX-512, where a packet is a whole 64-byte line
// (the width it was measured at: with SSE2/AVX a packet is part of a line, and the partial
// write-combining flushes were not measured). The class-axis kernels use it for gradients too
// large to be read back from cache (stream_threshold.hpp): a pixel packet writes one line in
// each of C class rows, and with C = 150 the ordinary stores' line reads cost as much as the
// exps (bench/L2_RESIDENT.md). The stores are weakly ordered: call stream_fence() before the
// data is read by another thread or handed back to the caller.
template <class T>
SEGLOSS_INLINE void store_stream(T* p, const Packet<T>& v) {
#if defined(__AVX512F__)
  if ((reinterpret_cast<std::uintptr_t>(p) & 63) == 0) {
    if constexpr (std::is_same_v<T, float>)
      _mm512_stream_ps(p, _mm512_loadu_ps(v.data()));
    else
      _mm512_stream_pd(p, _mm512_loadu_pd(v.data()));
    return;
  }
#endif
  store(p, v);
}
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// Sums over the packets of [begin, end): body(i, part) adds the packet at i into the K
// accumulators part[0..K). They add in T for up to kBlock packets (float rounding over 8
// terms), then move into double lanes; out[k] += the lanes' sum. Every step depends only on
// the position in the range, so the sums are deterministic. Returns the first index that is
// left for a scalar tail. (The blocked loop keeps the accumulators in registers: a counter
// with a flush inside the loop, or a double conversion per packet, measured 5x slower.)
// wide += v, lane by lane, in double (exact: every float is a double).
template <class T>
SEGLOSS_INLINE void add_widened(Eigen::Array<double, kLanes<T>, 1>& wide, const Packet<T>& v) {
  if constexpr (std::is_same_v<T, double>) {
    wide += v;
  } else {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    // GCC turns the generic cast below into 16 scalar conversions.
    const __m512 f = _mm512_loadu_ps(v.data());
    double* w = wide.data();
    _mm512_storeu_pd(w,
                     _mm512_add_pd(_mm512_loadu_pd(w), _mm512_cvtps_pd(_mm512_castps512_ps256(f))));
    _mm512_storeu_pd(w + 8, _mm512_add_pd(_mm512_loadu_pd(w + 8),
                                          _mm512_cvtps_pd(_mm512_extractf32x8_ps(f, 1))));
#else
    wide += v.template cast<double>();
#endif
  }
}

template <class T, int K, class Body>
SEGLOSS_INLINE int64_t sum_packets(int64_t begin, int64_t end, Body&& body, double* out) {
  constexpr int L = kLanes<T>;
  constexpr int kBlock = 8;
  using Wide = Eigen::Array<double, L, 1>;
  Wide wide[K];
  for (int k = 0; k < K; ++k) wide[k].setZero();
  int64_t i = begin;
  while (i + L <= end) {
    Packet<T> part[K];
    for (int k = 0; k < K; ++k) part[k].setZero();
    const int64_t stop = std::min(end, i + kBlock * L);
    for (; i + L <= stop; i += L) body(i, part);
    for (int k = 0; k < K; ++k) add_widened<T>(wide[k], part[k]);
  }
  for (int k = 0; k < K; ++k) out[k] += wide[k].sum();
  return i;
}

// copysign(m, x) for m >= 0 (or NaN), and copysign(1, s): the stash of the overlap passes
// (overlap.hpp) keeps the sign of x in the sign bit of e = exp(-|x|), also where e is 0.
template <class T>
SEGLOSS_INLINE T with_sign_of(const T& x, const T& m) {
  return std::copysign(m, x);
}
template <class T>
SEGLOSS_INLINE Packet<T> with_sign_of(const Packet<T>& x, const Packet<T>& m) {
  Packet<T> out;
#if defined(__AVX512F__)
  const __m512i sign =
      std::is_same_v<T, float> ? _mm512_set1_epi32(INT32_MIN) : _mm512_set1_epi64(INT64_MIN);
  const __m512i xi = _mm512_loadu_si512(x.data()), mi = _mm512_loadu_si512(m.data());
  _mm512_storeu_si512(out.data(), _mm512_ternarylogic_epi32(sign, xi, mi, 0xCA));  // sign ? x : m
#else
  for (int k = 0; k < kLanes<T>; ++k) out[k] = std::copysign(m[k], x[k]);
#endif
  return out;
}

}  // namespace cpu

#if defined(__AVX512F__)
// exp for 16 floats, about twice as cheap as Eigen's (which spends its time in a general
// ldexp): Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2, e^r by the degree-7 minimax
// polynomial of Moshier's Cephes expf (about 1 ulp), and 2^n by vscalefps, which also
// underflows to subnormals and 0 correctly. Arguments below -104 are clamped there
// (exp(-104) is below the smallest float, so the result is 0 either way), which keeps -inf
// from turning into inf - inf; NaN passes through (vmaxps returns its second operand).
template <class V>
SEGLOSS_INLINE V exp_avx512(const V& v) {
  const __m512 x = _mm512_max_ps(_mm512_set1_ps(-104.f), _mm512_loadu_ps(v.data()));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  V out;
  _mm512_storeu_ps(out.data(), _mm512_scalef_ps(p, n));
  return out;
}

// 1 / x for 16 floats with 2^-126 <= |x| <= 2^126: the 14-bit estimate vrcp14ps and one Newton
// step r + r (1 - x r), whose error is the square of the estimate's (2^-28) plus the rounding of
// the two fused steps: within 2 ulp. A division costs 3 uops and blocks the divider for
// about 10 cycles per 16 floats; this is 1 + 2 FMA-port uops.
SEGLOSS_INLINE __m512 recip_newton_avx512(__m512 x) {
  const __m512 r = _mm512_rcp14_ps(x);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(1.f)), r);
}

// log(a) for 16 floats a >= 0, subnormal a included: a = m 2^k with m in [0.75, 1.5) from
// vgetmantps / vgetexpps (exact, and exact for subnormals), log m = 2 atanh(u) with
// u = (m - 1) / (m + 1) in [-1/7, 1/5] (m - 1 exact) by pw::atanh_series, and k ln 2 added in
// two parts (Cody-Waite). Within 3 ulp; log 0 = -inf, NaN passes through. Used where Eigen's
// log would need the subnormal scaling (bce_probs_value): about 2x cheaper than that.
template <class F>
SEGLOSS_INLINE __m512 log_avx512(__m512 a, F&& atanh_series) {
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 m = _mm512_getmant_ps(a, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src);
  __m512 k = _mm512_getexp_ps(a);  // floor(log2 a): m is that mantissa, or half of it (m < 1)
  k = _mm512_mask_add_ps(k, _mm512_cmp_ps_mask(m, one, _CMP_LT_OQ), k, one);
  const __m512 u = _mm512_mul_ps(_mm512_sub_ps(m, one), recip_newton_avx512(_mm512_add_ps(m, one)));
  const __m512 log_m = atanh_series(u);
  const __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(0.693359375f),
                                   _mm512_fmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), log_m));
  // a = 0: k = -inf, and the two parts would make -inf + inf.
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ), r,
                              _mm512_set1_ps(-INFINITY));
}
#endif

namespace cpu {

// Eigen's vectorized exp clamps its argument at -709.784 (double) or -88.723 (float), so below
// that it returns exp of the bound (about 5e-309, or 3e-39) instead of a smaller subnormal or 0,
// as std::exp and the scalar tail of the same loop do: a pixel's probability depended on whether
// it sat in a packet (a softmax_jaccard with zero smoothing gave log S = -710 for a class 800
// behind, where a single pixel gave -inf). After one horizontal min per packet, the lanes below
// kCut, the smallest argument whose exp is normal, take std::exp, or 0 below kZero, where
// std::exp is 0 too (so a class masked with -inf or -1e4 costs a comparison per lane, not an
// exp). A NaN lane keeps Eigen's NaN. Everywhere else Eigen's result is kept to the bit.
template <class T, class V>
SEGLOSS_INLINE V exp_underflowing(const V& x) {
  constexpr bool kDouble = std::is_same_v<T, double>;
  constexpr T kCut = kDouble ? T(-708.39641853226410) : T(-87.33654f);
  constexpr T kZero = kDouble ? T(-745.2) : T(-104.0f);  // exp rounds to 0 below: -745.13, -103.97
  V e = x.exp();
  if (__builtin_expect(!(x.minCoeff() >= kCut), 0)) {
    for (int l = 0; l < static_cast<int>(V::SizeAtCompileTime); ++l)
      if (x[l] < kCut) e[l] = x[l] < kZero ? T(0) : std::exp(x[l]);
  }
  return e;
}

}  // namespace cpu

template <class T>
struct Math<cpu::Packet<T>> {
  using Scalar = T;
  using V = cpu::Packet<T>;
  static SEGLOSS_INLINE V splat(T c) { return V::Constant(c); }
  // exp_avx512 for float with AVX-512 (it underflows by itself), else Eigen's made to underflow.
  static SEGLOSS_INLINE V exp(const V& x) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) return exp_avx512(x);
#endif
    return cpu::exp_underflowing<T>(x);
  }
  static SEGLOSS_INLINE V log(const V& x) {
    return x.log();
  }
  // log(x) for x >= 0 including subnormal x (bce_probs_value).
  static SEGLOSS_INLINE V log_denormal(const V& x) {
    if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
      V out;
      _mm512_storeu_ps(out.data(),
                       log_avx512(_mm512_loadu_ps(x.data()), [](__m512 u) SEGLOSS_LAMBDA_INLINE {
                         V uv;
                         _mm512_storeu_ps(uv.data(), u);
                         return _mm512_loadu_ps(pw::atanh_series<V, Math>(uv).data());
                       }));
      return out;
#else
      return log_scaling_subnormals<V, Math>(x);
#endif
    } else {
      return x.log();
    }
  }
  static SEGLOSS_INLINE V log1p(const V& x) {
    return x.log1p();
  }
  static SEGLOSS_INLINE V abs(const V& x) {
    return x.abs();
  }
  static SEGLOSS_INLINE V recip(const V& x) {
    return x.inverse();
  }
  static SEGLOSS_INLINE V recip_normal(const V& x) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      V out;
      _mm512_storeu_ps(out.data(), recip_newton_avx512(_mm512_loadu_ps(x.data())));
      return out;
    }
#endif
    return x.inverse();
  }
  static SEGLOSS_INLINE V div_normal(const V& a, const V& b) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) return a * recip_normal(b);
#endif
    return a / b;
  }
  static SEGLOSS_INLINE V max(const V& a, const V& b) {
    return a.max(b);
  }
  static SEGLOSS_INLINE V min(const V& a, const V& b) {
    return a.min(b);
  }
  // Without AVX-512: Eigen 3.4 evaluates Select one lane at a time, so blend arithmetically: h is 1
  // for x >= 2^-100, 0 for x <= 0, and in between only where |x| < 2^-100, where the caller's two
  // forms agree to the last bit (they are one function continuous at 0, and exp(-|x|) == 1).
  // a h + b (1 - h) is a or b exactly at h = 1 or 0; b + (a - b) h is not: with b = 1 and a
  // tiny (sigmoid_complement of a large x) it cancels to 1 + (a - 1), all digits of a lost.
  // With AVX-512 it is a true selection instead: one compare into a mask register and a blend
  // (a for x >= 0, b for x < 0 or NaN), exact everywhere.
  static SEGLOSS_INLINE V select_nonneg(const V& x, const V& a, const V& b) {
#if defined(__AVX512F__)
    V out;
    if constexpr (std::is_same_v<T, float>) {
      const __mmask16 m =
          _mm512_cmp_ps_mask(_mm512_loadu_ps(x.data()), _mm512_setzero_ps(), _CMP_GE_OQ);
      _mm512_storeu_ps(out.data(), _mm512_mask_blend_ps(m, _mm512_loadu_ps(b.data()),
                                                        _mm512_loadu_ps(a.data())));
    } else {
      const __mmask8 m =
          _mm512_cmp_pd_mask(_mm512_loadu_pd(x.data()), _mm512_setzero_pd(), _CMP_GE_OQ);
      _mm512_storeu_pd(out.data(), _mm512_mask_blend_pd(m, _mm512_loadu_pd(b.data()),
                                                        _mm512_loadu_pd(a.data())));
    }
    return out;
#else
    const V h = (x * T(0x1p100)).max(T(0)).min(T(1));
    return a * h + b * (T(1) - h);
#endif
  }
};

}  // namespace segloss
