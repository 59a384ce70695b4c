// The per-element math of every loss, written once.
//
// Each function is a template over a value type V: a scalar (float, double) for the scalar
// tails of CPU loops and for the CUDA kernels, or a fixed-size Eigen array (a SIMD packet,
// see backends/cpu/simd.hpp) for the vectorized CPU loops. The primitives they use come from
// Math<V>, specialized per value type, so the formulas below are the only copy of the math.
//
// Notation (docs/gradients.md uses the same): x is a logit, z a target in [0, 1],
// e = exp(-|x|), p = sigmoid(x).
#pragma once

#include <cmath>

#include "config.hpp"

namespace segloss {

// Math<V>: the primitives. Specialized below for float and double; the CPU backend
// specializes it for its SIMD packets.
template <class V>
struct Math;

template <class T>
struct ScalarMath {
  using Scalar = T;
  static SEGLOSS_HD T splat(T c) { return c; }  // the value with every lane equal to c
  static SEGLOSS_HD T exp(T x) { return ::exp(x); }
  static SEGLOSS_HD T log1p(T x) { return ::log1p(x); }
  static SEGLOSS_HD T abs(T x) { return x < T(0) ? -x : x; }
  static SEGLOSS_HD T max(T a, T b) { return a > b ? a : b; }  // NaN in a -> b, like maxps
  // a where x >= 0, b where x < 0. Callers pass two forms of one function that is continuous
  // at x = 0, so the SIMD version may blend them for |x| below 2^-100 (see simd.hpp).
  static SEGLOSS_HD T select_nonneg(T x, T a, T b) { return x >= T(0) ? a : b; }
};
template <>
struct Math<float> : ScalarMath<float> {
  static SEGLOSS_HD float exp(float x) { return ::expf(x); }
  static SEGLOSS_HD float log1p(float x) { return ::log1pf(x); }
};
template <>
struct Math<double> : ScalarMath<double> {};

namespace pw {

// sigmoid(x) = 1 / (1 + exp(-x)), from e = exp(-|x|) so that no exp overflows:
//   x >= 0: 1 / (1 + e);   x < 0: e / (1 + e).
template <class V, class M = Math<V>>
SEGLOSS_HD V sigmoid_from_e(V x, V e) {
  using T = typename M::Scalar;
  return M::select_nonneg(x, M::splat(T(1)), e) / (T(1) + e);
}

template <class V, class M = Math<V>>
SEGLOSS_HD V sigmoid(V x) {
  return sigmoid_from_e<V, M>(x, M::exp(-M::abs(x)));
}

// sigmoid'(x) = p (1 - p) = e / (1 + e)^2, which keeps full relative precision in both tails.
template <class V, class M = Math<V>>
SEGLOSS_HD V sigmoid_grad_from_e(V e) {
  using T = typename M::Scalar;
  const V d = T(1) + e;
  return e / (d * d);
}

// Binary cross-entropy on a logit, with PyTorch's pos_weight through the log-weight
// lw = 1 + (pos_weight - 1) z:
//   l = (1 - z) x + lw * softplus(-x),   softplus(-x) = log1p(e) + max(-x, 0)
// which for lw = 1 is the stable form max(x, 0) - x z + log1p(exp(-|x|)).
//   dl/dx = (1 - z) - lw * sigmoid(-x) = (1 - z) - lw (1 - p)
// which for lw = 1 is p - z. Both come out of one exp and one log1p.
template <class V, class M = Math<V>>
SEGLOSS_HD void bce_logits(V x, V z, V lw, V& loss, V& dloss_dx) {
  using T = typename M::Scalar;
  const V e = M::exp(-M::abs(x));
  const V softplus_neg = M::log1p(e) + M::max(-x, M::splat(T(0)));
  const V one_minus_z = T(1) - z;
  loss = one_minus_z * x + lw * softplus_neg;
  // 1 - p = sigmoid(-x): e / (1 + e) for x >= 0, 1 / (1 + e) for x < 0.
  const V q = M::select_nonneg(x, e, M::splat(T(1))) / (T(1) + e);
  dloss_dx = one_minus_z - lw * q;
}

// PyTorch's log-weight for pos_weight pw: 1 + (pw - 1) z.
template <class V, class M = Math<V>>
SEGLOSS_HD V bce_log_weight(V z, typename M::Scalar pos_weight) {
  using T = typename M::Scalar;
  return T(1) + (pos_weight - T(1)) * z;
}

}  // namespace pw
}  // namespace segloss
