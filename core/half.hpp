// float16 and bfloat16: 16-bit floating-point storage types for logits and their gradients.
//
// Both hold their bits in a uint16_t; arithmetic is never done on them. A value is loaded as
// float (exact: every float16 and bfloat16 is a float), the math runs in float or wider, and the
// result is rounded back once. The conversions are plain integer code, usable on the host and in
// CUDA kernels (SEGLOSS_HD), so host and device round bit for bit alike whatever the compiler's
// float modes (no dependence on FTZ or on the F16C / cvt instructions).
//
//   float16   IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits. Largest finite
//             65504, smallest normal 2^-14, smallest subnormal 2^-24.
//   bfloat16  the top 16 bits of a float: 1 sign, 8 exponent (bias 127), 7 fraction bits. The
//             float range with 8 significant bits.
//
// to_float (exact, as PyTorch's .float()):
//   float16: zeros, subnormals, normals and infinities map to the same value; a NaN keeps its
//   sign and payload (fraction << 13) and becomes quiet (bit 22 set), as torch does.
//   bfloat16: the bits shifted left by 16 (a NaN keeps its bits).
// from_float (round to nearest, ties to even, as PyTorch's .half() / .bfloat16()):
//   float16: magnitudes >= 65520 (the tie above 65504) become +-Inf; magnitudes <= 2^-25 (the tie
//   with 2^-24) become +-0; between 2^-25 and 2^-14 the result is subnormal, rounded to even;
//   the sign of zero is kept. A NaN becomes the canonical quiet NaN with its sign kept (0x7E00 or
//   0xFE00), as torch does (its payload is dropped).
//   bfloat16: the float rounded to its top 16 bits, ties to even; a finite float whose rounding
//   carries past the largest bfloat16 (>= 0x7F7F8000 in magnitude) becomes +-Inf. A NaN becomes
//   the canonical quiet NaN with its sign kept (0x7FC0 or 0xFFC0). (torch 1.13 is not
//   consistent here: its scalar path writes 0x7FC0 and its vectorized path 0xFFFF; both are NaN.)
//
// tests/test_half.cpp checks every one of the 65,536 bit patterns of each type against PyTorch
// (tests/golden/half.txt) and from_float on every rounding class.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "config.hpp"

namespace segloss {

namespace detail {
SEGLOSS_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
SEGLOSS_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// IEEE binary16 bits to float, exact.
SEGLOSS_HD inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t fraction = h & 0x3ffu;
  if (exponent == 0x1fu)  // Inf, or a NaN made quiet with its payload
    return bits_float(sign | 0x7f800000u | (fraction << 13) | (fraction ? 0x00400000u : 0u));
  if (exponent == 0) {
    // Zero or subnormal: fraction * 2^-24, exact in float (fraction < 2^10).
    const float m = static_cast<float>(fraction) * 5.9604644775390625e-08f;
    return bits_float(sign | float_bits(m));
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (fraction << 13));
}

// float to IEEE binary16 bits, round to nearest even.
SEGLOSS_HD inline uint16_t float_to_half_bits(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: Inf
  if (a >= 0x38800000u) {                                              // normal: >= 2^-14
    const uint32_t odd = (a >> 13) & 1u;
    return static_cast<uint16_t>(sign | ((a + 0xfffu + odd - (112u << 23)) >> 13));
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (2^-25 is a tie to even 0)
  // Subnormal result: the 24-bit significand m times 2^(e - 150) in units of 2^-24.
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (h & 1u))) ++h;  // may carry into the smallest normal
  return static_cast<uint16_t>(sign | h);
}

SEGLOSS_HD inline float bfloat16_bits_to_float(uint16_t b) {
  return bits_float(static_cast<uint32_t>(b) << 16);
}

// float to bfloat16 bits, round to nearest even.
SEGLOSS_HD inline uint16_t float_to_bfloat16_bits(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7fc0u);  // NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
}  // namespace detail

// IEEE binary16 storage. float16(x) rounds to nearest even; float(h) is exact.
struct float16 {
  uint16_t bits;  // uninitialized by default, as a float is: Tensor<float16>::empty writes nothing

  float16() = default;
  SEGLOSS_HD explicit float16(float f) : bits(detail::float_to_half_bits(f)) {}
  SEGLOSS_HD explicit operator float() const { return detail::half_bits_to_float(bits); }
  SEGLOSS_HD static float16 from_bits(uint16_t b) {
    float16 h;
    h.bits = b;
    return h;
  }
};

// bfloat16 storage (the top half of a float). bfloat16(x) rounds to nearest even; float(b) is
// exact.
struct bfloat16 {
  uint16_t bits;  // uninitialized by default, as for float16

  bfloat16() = default;
  SEGLOSS_HD explicit bfloat16(float f) : bits(detail::float_to_bfloat16_bits(f)) {}
  SEGLOSS_HD explicit operator float() const { return detail::bfloat16_bits_to_float(bits); }
  SEGLOSS_HD static bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }
};

static_assert(sizeof(float16) == 2 && sizeof(bfloat16) == 2, "16-bit storage types");
static_assert(std::is_trivially_copyable_v<float16> && std::is_trivially_copyable_v<bfloat16>,
              "half types are copied as bytes");
// new T[n] (Tensor::empty) leaves them uninitialized as it does float; float16{} and
// Tensor::zeros give +0.
static_assert(std::is_trivially_default_constructible_v<float16> &&
                  std::is_trivially_default_constructible_v<bfloat16>,
              "half types are not zeroed by default construction");

// The 16-bit logit types.
template <class T>
inline constexpr bool kHalf = std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

}  // namespace segloss
