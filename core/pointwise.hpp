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
  static SEGLOSS_HD SEGLOSS_INLINE T splat(T c) {
    return c;
  }  // the value with every lane equal to c
  static SEGLOSS_HD SEGLOSS_INLINE T exp(T x) { return ::exp(x); }
  static SEGLOSS_HD SEGLOSS_INLINE T log(T x) { return ::log(x); }
  static SEGLOSS_HD SEGLOSS_INLINE T log1p(T x) { return ::log1p(x); }
  static SEGLOSS_HD SEGLOSS_INLINE T min(T a, T b) { return a < b ? a : b; }
  static SEGLOSS_HD SEGLOSS_INLINE T recip(T x) { return T(1) / x; }
  // 1 / x for a finite x with 2^-126 <= |x| <= 2^126 (or NaN, which it returns). A SIMD packet
  // of floats may use a reciprocal estimate refined by Newton steps (simd.hpp): within 2 ulp
  // instead of correctly rounded.
  static SEGLOSS_HD SEGLOSS_INLINE T recip_normal(T x) { return T(1) / x; }
  // a / b for such a b: a times recip_normal(b) in a SIMD packet of floats.
  static SEGLOSS_HD SEGLOSS_INLINE T div_normal(T a, T b) { return a / b; }
  static SEGLOSS_HD SEGLOSS_INLINE T abs(T x) { return x < T(0) ? -x : x; }
  static SEGLOSS_HD SEGLOSS_INLINE T max(T a, T b) {
    return a > b ? a : b;
  }  // NaN in a -> b, like maxps
  // a where x >= 0, b where x < 0. Callers pass two forms of one function that is continuous
  // at x = 0, so the SIMD version may blend them for |x| below 2^-100 (see simd.hpp).
  static SEGLOSS_HD SEGLOSS_INLINE T select_nonneg(T x, T a, T b) { return x >= T(0) ? a : b; }
};
// log(a) for a float a >= 0, subnormal a included: SIMD logs truncate subnormal arguments to the
// smallest normal, so a subnormal a (then 2^-126 - a >= 2^-149, h = 1; else h = 0) is scaled by
// 2^64 first (exact) and 64 ln 2 taken off. Only + * min max and M::log.
template <class V, class M>
SEGLOSS_HD SEGLOSS_INLINE V log_scaling_subnormals(V a) {
  using T = typename M::Scalar;
  const V h =
      M::min(M::max((T(0x1p-126) - a) * T(0x1p126), M::splat(T(0))) * T(0x1p23), M::splat(T(1)));
  return M::log(a * (T(1) + h * T(0x1p64))) - h * T(44.3614195558365);  // 64 ln 2
}

template <>
struct Math<float> : ScalarMath<float> {
  static SEGLOSS_HD SEGLOSS_INLINE float exp(float x) { return ::expf(x); }
  static SEGLOSS_HD SEGLOSS_INLINE float log(float x) { return ::logf(x); }
  static SEGLOSS_HD SEGLOSS_INLINE float log1p(float x) { return ::log1pf(x); }
  // log(x) for x >= 0 including subnormal x (bce_probs_value).
  static SEGLOSS_HD SEGLOSS_INLINE float log_denormal(float x) {
    return log_scaling_subnormals<float, Math<float>>(x);
  }
};
template <>
struct Math<double> : ScalarMath<double> {
  static SEGLOSS_HD SEGLOSS_INLINE double log_denormal(double x) { return ::log(x); }
};

namespace pw {

// What the sigmoid family needs from one logit x, from one exp and one reciprocal:
//   e = exp(-|x|) in [0, 1] (0 once it underflows), never overflowing;  r = 1 / (1 + e).
template <class V>
struct Logit {
  V e, r;
};

// The same plus q = 1 / (2 + e), which log1p(e) needs (see log1p_unit). A separate type, so a
// pass that made only a Logit cannot call something that reads q.
template <class V>
struct LogitWithLog : Logit<V> {
  V q;
};

template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE Logit<V> logit(V x) {
  using T = typename M::Scalar;
  const V e = M::exp(-M::abs(x));
  return {e, M::recip_normal(T(1) + e)};
}

// One reciprocal gives both: 1/((1+e)(2+e)) times (2+e) is r, times (1+e) is q.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE LogitWithLog<V> logit_with_log(V x) {
  using T = typename M::Scalar;
  const V e = M::exp(-M::abs(x));
  const V one = T(1) + e, two = T(2) + e;
  const V inv = M::recip_normal(one * two);
  LogitWithLog<V> l;
  l.e = e;
  l.r = two * inv;
  l.q = one * inv;
  return l;
}

// sigmoid(x) = 1 / (1 + exp(-x)):  x >= 0: 1 / (1 + e) = r;   x < 0: e / (1 + e) = e r.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V sigmoid(V x, const Logit<V>& l) {
  using T = typename M::Scalar;
  return M::select_nonneg(x, M::splat(T(1)), l.e) * l.r;
}

// 1 - sigmoid(x) = sigmoid(-x):  x >= 0: e r;   x < 0: r. No subtraction.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V sigmoid_complement(V x, const Logit<V>& l) {
  using T = typename M::Scalar;
  return M::select_nonneg(x, l.e, M::splat(T(1))) * l.r;
}

// sigmoid'(x) = p (1 - p) = e / (1 + e)^2 = e r^2, with full relative precision in both tails.
template <class V>
SEGLOSS_HD SEGLOSS_INLINE V sigmoid_grad(const Logit<V>& l) {
  return l.e * l.r * l.r;
}

// log((1 + u) / (1 - u)) = 2 atanh(u) for |u| <= 1/3: the series 2 u A(u^2),
//   A(s) = 1 + s/3 + s^2/5 + s^3/7 + ...,   s = u^2 <= 1/9.
// double sums 16 terms of the series (relative error below 2e-17: the terms fall by 1/9).
// float uses the degree-4 polynomial in s with the smallest maximum relative error on
// [0, 1/9], 8e-9 (fitted by scripts/fit_log1p_unit.py), evaluated as pairs to shorten the
// dependency chain. Only + and *: it vectorizes, and near u = 0 it behaves like 2u. (Eigen's
// general SIMD log1p made the BCE loop about 3x slower; bench/RESULTS.md.) The series is odd
// in u, so it serves log1p(y) for y in [-1/2, 1] through u = y / (2 + y).
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V atanh_series(V u) {
  using T = typename M::Scalar;
  const V s = u * u;
  if constexpr (sizeof(T) == 4) {
    const V s2 = s * s;
    const V lo = T(1) + T(0.333331585f) * s;
    const V hi = T(0.200124547f) + T(0.139803037f) * s + T(0.140891552f) * s2;
    return T(2) * u * (lo + s2 * hi);
  } else {
    constexpr int kTerms = 16;
    V series = M::splat(T(1) / T(2 * kTerms - 1));
    for (int k = kTerms - 2; k >= 0; --k) series = series * s + T(1) / T(2 * k + 1);
    return T(2) * u * series;
  }
}

// log1p(e) for e in [0, 1], as in softplus(x) = max(x, 0) + log1p(exp(-|x|)):
// u = e / (2 + e) = e q lies in [0, 1/3].
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V log1p_unit(const LogitWithLog<V>& l) {
  return atanh_series<V, M>(l.e * l.q);
}

// Binary cross-entropy on a logit with PyTorch's pos_weight pw:
//   l = -[pw z log p + (1 - z) log(1 - p)] = (1 - z) softplus(x) + pw z softplus(-x)
//   dl/dx = (1 - z) p - pw z (1 - p)
// with softplus(+-x) = max(+-x, 0) + log1p(e). (PyTorch writes the same loss as
// (1 - z) x + lw softplus(-x), lw = 1 + (pw - 1) z.) Every term is non-negative, so the value
// never cancels: a confident correct prediction, z = 0 with x << 0 or z = 1 with x >> 0, gets
// its tiny loss and gradient, about e, with full relative precision. The gradient's two
// terms have opposite signs only for soft targets, where it crosses zero. The value needs
// logit_with_log; value and gradient share its exp and its reciprocal.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V bce_logits_value(V x, V z, typename M::Scalar pw,
                                             const LogitWithLog<V>& l) {
  using T = typename M::Scalar;
  const V log1p_e = log1p_unit<V, M>(l);
  const V softplus_pos = M::max(x, M::splat(T(0))) + log1p_e;   // softplus(x)
  const V softplus_neg = M::max(-x, M::splat(T(0))) + log1p_e;  // softplus(-x)
  return (T(1) - z) * softplus_pos + (pw * z) * softplus_neg;
}

template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V bce_logits_grad(V x, V z, typename M::Scalar pw, const Logit<V>& l) {
  using T = typename M::Scalar;
  return (T(1) - z) * sigmoid<V, M>(x, l) - (pw * z) * sigmoid_complement<V, M>(x, l);
}

// Binary cross-entropy on a probability p in [0, 1], as PyTorch's binary_cross_entropy:
//   l = -[z max(log p, -100) + (1 - z) max(log(1 - p), -100)]
// Both logarithms to full relative precision from one log and one series: a = min(p, 1 - p)
// lies in [0, 1/2] and is exact (1 - p is exact for p >= 1/2), log(a) is a plain log, and
// log(1 - a) = log1p(-a) is the series above with u = -a / (2 - a), |u| <= 1/3. For p < 1/2
// they are log p and log(1 - p), for p >= 1/2 the other way round. Both terms of l are >= 0,
// so the value never cancels. The clamp at -100 makes p = 0 and p = 1 finite.
// A float a below the smallest normal (p < 1.2e-38, where log p is between -103.3 and -87.3)
// needs a log exact for subnormals (M::log_denormal): SIMD logs truncate subnormal arguments to
// the smallest normal, so it scales a by 2^64 first (log_scaling_subnormals), or, for AVX-512
// float packets, takes the exponent and mantissa apart with vgetexpps / vgetmantps.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V bce_probs_value(V p, V z) {
  using T = typename M::Scalar;
  const V lo = M::splat(T(-100));
  const V a = M::min(p, T(1) - p);
  V log_a = M::log_denormal(a);  // log_scaling_subnormals, or a log exact for subnormals
  // Clamped before the selection, so that log 0 = -inf never meets the blend of select_nonneg.
  log_a = M::max(log_a, lo);
  const V log_b = atanh_series<V, M>(-a * M::recip_normal(T(2) - a));  // log(1 - a), in [-log 2, 0]
  const V d = p - T(0.5);
  const V log_p = M::select_nonneg(d, log_b, log_a);
  const V log_q = M::select_nonneg(d, log_a, log_b);
  return -(z * log_p + (T(1) - z) * log_q);
}

// PyTorch's gradient of it (binary_cross_entropy_backward):
//   dl/dp = (p - z) / max((1 - p) p, EPSILON),   EPSILON = 1e-12f
// (ATen's constant is a float; the double kernel converts it, giving 9.9999999600419720e-13).
// The exact derivative of the unclamped loss; at p = 0 or 1 with a target that disagrees it is
// +-(1 - 0) / EPSILON = +-1e12, not the 0 of the clamped value.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V bce_probs_grad(V p, V z) {
  using T = typename M::Scalar;
  const T eps = static_cast<T>(1e-12f);
  return M::div_normal(p - z, M::max((T(1) - p) * p, M::splat(eps)));
}

// Cross-entropy of one pixel with hard label y over C classes (losses/cross_entropy.hpp), from
// what the caller gathered: nll = -log p_y (softmax_nll: log1p of the odds against the label,
// accurate as p_y -> 1), w_y, and, read only when eps > 0, lse = log sum_c exp(x_c) and
// wx = sum_c w_c x_c (x and lse relative to the same shift, the max logit). W = sum_c w_c.
//   l = (1 - eps) w_y nll + (eps / C) (W lse - wx),   nll = lse - x_y
// The first term keeps its relative precision where lse = log(1 + R) rounds to 0 (R =
// sum_{c != y} exp(x_c - x_y) below the rounding unit; docs/gradients.md §3b). The smoothing term
// takes lse as it is: beside the other classes' terms w_c (lse - x_c), each at least w_c times
// the class's distance to the max, its absolute error (about w_y R) is nothing, unless every other
// class weighs 0 (documented there).
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V cross_entropy_loss(V nll, V lse, V w_y, V wx_sum,
                                               typename M::Scalar eps,
                                               typename M::Scalar eps_over_c,
                                               typename M::Scalar w_total) {
  using T = typename M::Scalar;
  return (T(1) - eps) * w_y * nll + eps_over_c * (w_total * lse - wx_sum);
}

// Its derivative in x_c, with p_c = exp(x_c - lse), delta = [c = y] and q = 1 - p_y summed over
// the other classes (rest / S, never 1 - p_y, which rounds to 0 as p_y -> 1):
//   (1 - eps) w_y (p_c - delta) + (eps / C) (W p_c - w_c) = A p_c - (eps / C) w_c   (c != y)
//                                                         = (eps / C) (W - w_y) - A q  (c = y)
// with A = (1 - eps) w_y + (eps / C) W, so that the label's own entry does not cancel.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V cross_entropy_grad(V p_c, V q, V delta, V w_y, typename M::Scalar w_c,
                                               typename M::Scalar eps,
                                               typename M::Scalar eps_over_c,
                                               typename M::Scalar w_total) {
  using T = typename M::Scalar;
  const V a = (T(1) - eps) * w_y + eps_over_c * w_total;
  const V other = a * p_c - eps_over_c * w_c;
  const V label = eps_over_c * (w_total - w_y) - a * q;
  return (T(1) - delta) * other + delta * label;
}

// Cross-entropy of one pixel with probability targets q (losses/cross_entropy.hpp). The target's
// weighted, smoothed share u_c = w_c q'_c, with q'_c = (1 - eps) q_c + eps / C:
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V cross_entropy_soft_target(V q_c, typename M::Scalar w_c,
                                                      typename M::Scalar eps,
                                                      typename M::Scalar eps_over_c) {
  using T = typename M::Scalar;
  return w_c * (q_c * (T(1) - eps) + eps_over_c);
}

// From the sums the caller gathered, wq = sum_c u_c and wx = sum_c u_c x_c, and lse (x and lse
// relative to the same shift, the max logit): l = sum_c u_c (lse - x_c) = wq lse - wx.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V cross_entropy_soft_loss(V lse, V wq, V wx) {
  return wq * lse - wx;
}

// Its derivative in x_c, with p_c = exp(x_c - lse): p_c sum_k u_k - u_c.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V cross_entropy_soft_grad(V p_c, V wq, V u_c) {
  return p_c * wq - u_c;
}

// [c = y] for labels held as floating-point integers: 1 - |y - c|, clamped at 0, is exact for
// them and needs no comparison (which Eigen 3.4 would evaluate lane by lane).
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V label_indicator(V label, typename M::Scalar c) {
  using T = typename M::Scalar;
  return M::max(T(1) - M::abs(label - c), M::splat(T(0)));
}

// 1 - [c = y], for the same labels: min(|y - c|, 1), one operation fewer than
// 1 - label_indicator (the per-class factor of a sum over the classes other than the label).
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V label_complement(V label, typename M::Scalar c) {
  using T = typename M::Scalar;
  return M::min(M::abs(label - c), M::splat(T(1)));
}

// ---- Focal losses (losses/focal.hpp; derivations in docs/gradients.md, section "focal") ----

// The smallest normal number of T: the floor of a divisor that may underflow to 0.
template <class T>
SEGLOSS_HD SEGLOSS_INLINE constexpr T tiny_normal() {
  return sizeof(T) == 4 ? T(1.17549435e-38f) : T(2.2250738585072014e-308);
}

// q^gamma for q in [0, 1], with the exponent chosen at compile time: K = 0 is gamma = 0 (1, even
// at q = 0, where exp(0 log 0) would be NaN), K = 1 and K = 2 are exact products, and K = -1 is
// any gamma > 0 as exp(gamma log q), which is exp(-inf) = 0 at q = 0.
template <int K, class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V focal_power(V q, typename M::Scalar gamma) {
  using T = typename M::Scalar;
  if constexpr (K == 0) {
    return M::splat(T(1));
  } else if constexpr (K == 1) {
    return q;
  } else if constexpr (K == 2) {
    return q * q;
  } else {
    return M::exp(gamma * M::log(q));
  }
}

template <class V>
struct FocalTerm {
  V value, grad;
};

// The sigmoid focal loss of one element, before its factor alpha_t (RetinaNet; torchvision's
// sigmoid_focal_loss), and its derivative in x:
//   p = sigmoid(x), s = 1 - p = sigmoid(-x), ce = BCE-with-logits (bce_logits_value, pw = 1)
//   q = 1 - p_t = p (1 - z) + s z        (p_t = p z + s (1 - z); no subtraction, q >= 0)
//   l = q^gamma ce
//   dl/dx = q^gamma [ (1 - z) p - z s  +  gamma (1 - 2z) (p s / q) ce ]
// from dq/dx = p s (1 - 2z) and dce/dx = (1 - z) p - z s. The factor p s / q replaces
// q^(gamma - 1), which is infinite at q = 0 for gamma < 1: p s / q <= max(p, s) <= 1. It is
// divided with q floored at the smallest normal number: where q is 0, p s is 0 too (q = 0 needs
// p = 0 or s = 0), so the term is 0, its limit. With K = 0 (gamma = 0) this is exactly the BCE.
template <int K, class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE FocalTerm<V> sigmoid_focal(V x, V z, typename M::Scalar gamma,
                                                     const LogitWithLog<V>& l) {
  using T = typename M::Scalar;
  const V ce = bce_logits_value<V, M>(x, z, T(1), l);
  const V dce = bce_logits_grad<V, M>(x, z, T(1), l);
  if constexpr (K == 0) {
    return {ce, dce};
  } else {
    const V p = sigmoid<V, M>(x, l), s = sigmoid_complement<V, M>(x, l);
    const V q = p * (T(1) - z) + s * z;
    const V qg = focal_power<K, V, M>(q, gamma);
    const V ratio = sigmoid_grad<V>(l) * M::recip_normal(M::max(q, M::splat(tiny_normal<T>())));
    return {qg * ce, qg * (dce + (gamma * (T(1) - T(2) * z)) * ratio * ce)};
  }
}

// -log p_t of a softmax from rest = sum_{c != t} exp(x_c - m), e_t = exp(d) and d = x_t - m <= 0
// (m the max logit): log1p(rest / e_t), accurate as p_t -> 1 where log(S) - d rounds S = 1 + rest
// to 1. Written log1p(rest / max(e_t, e^-40)) + (max(d, -40) - d) so that an e_t that underflows
// (d < -40, and then rest >= 1: the max class is another one) costs under 1e-17 relative.
// cross_entropy and softmax_focal share it.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V softmax_nll(V rest, V e_t, V d) {
  using T = typename M::Scalar;
  constexpr T kFloor = T(40);  // exp(-40) = 4.2e-18
  const V e_floor = M::max(e_t, M::splat(T(4.2483542552915889e-18)));
  const V d_floor = M::max(d, M::splat(-kFloor));
  return M::log1p(rest * M::recip(e_floor)) + (d_floor - d);
}

// The softmax focal loss of one pixel with label t, before its class factor a = alpha[t]:
//   l = -(1 - p_t)^gamma log p_t,   p = softmax(x)
// from what the pass over the classes gathered, all relative to the max logit m: the sum of
// exponentials S = sum_c exp(x_c - m) (passed as 1/S), rest = sum_{c != t} exp(x_c - m) summed
// on its own (so 1 - p_t = rest / S never cancels), e_t = exp(x_t - m) and d = x_t - m <= 0.
//   nll = -log p_t = log1p(rest / e_t) (softmax_nll), accurate as p_t -> 1;
//   q = 1 - p_t = rest / S;   h = p_t nll / q = e_t nll / rest, in [0, 1]
// (-log p <= (1 - p) / p), 0 where rest = 0 (then nll = 0 too), and -> 1 as p_t -> 1.
// value = a q^gamma nll; factor F = a q^gamma (1 + gamma h), so that
//   dl/dx_c = F (p_c - [c = t])   (softmax_focal_grad).
template <class V>
struct SoftmaxFocalPixel {
  V value, factor, q;
};

template <int K, class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE SoftmaxFocalPixel<V> softmax_focal_pixel(V rest, V inv_sum, V e_t, V d,
                                                                   V a, typename M::Scalar gamma) {
  using T = typename M::Scalar;
  const V nll = softmax_nll<V, M>(rest, e_t, d);
  const V q = rest * inv_sum;
  if constexpr (K == 0) {
    return {a * nll, a, q};
  } else {
    const V qg = a * focal_power<K, V, M>(q, gamma);
    const V h = nll * e_t * M::recip(M::max(rest, M::splat(tiny_normal<T>())));
    return {qg * nll, qg * (T(1) + gamma * h), q};
  }
}

// dl/dx_c = F (p_c - [c = t]), written (1 - delta) p_c - delta q with delta = [c = t] so that
// the label's own entry, -q F, does not cancel as p_t -> 1.
template <class V, class M = Math<V>>
SEGLOSS_HD SEGLOSS_INLINE V softmax_focal_grad(V factor, V p_c, V q, V delta) {
  using T = typename M::Scalar;
  return factor * ((T(1) - delta) * p_c - delta * q);
}

// ---- Overlap losses: a score's loss and slope (losses/overlap.hpp; docs/gradients.md) ----
// The per-score loss l(S) and dl/dS of the linear form (1 - S, or max(1 - S, 0)^gamma), the
// log form (-log S) and the clamp form (1 - clamp(S, 0, 1)), in double: the CPU's scores
// (losses/internal/overlap_scores.hpp) and the CUDA finalize (backends/cuda/overlap_passes.cuh)
// call these. The mean log and clamp forms apply them to the mean score. max and clamp are
// written as std::max(m, 0) and std::clamp do: a NaN passes through.
SEGLOSS_HD SEGLOSS_INLINE double overlap_score_loss(double s, double gamma, bool log, bool clamp) {
  if (log) return -::log(s);
  if (clamp) return 1.0 - (s < 0.0 ? 0.0 : (1.0 < s ? 1.0 : s));
  if (gamma == 1.0) return 1.0 - s;
  const double m = 1.0 - s;
  return ::pow(m < 0.0 ? 0.0 : m, gamma);
}
SEGLOSS_HD SEGLOSS_INLINE double overlap_score_slope(double s, double gamma, bool log, bool clamp) {
  if (log) return -1.0 / s;
  if (clamp) return s >= 0.0 && s <= 1.0 ? -1.0 : 0.0;  // torch.clamp passes at the bounds
  if (gamma == 1.0) return -1.0;
  const double m = 1.0 - s;
  return m > 0.0 ? -gamma * ::pow(m, gamma - 1.0) : 0.0;
}

// A plane's gradient coefficient (computed in double) in the element type: a finite value
// beyond float's range becomes float's largest, not infinity. Otherwise, with both smoothing
// terms 0, an empty target and logits below about -88 (p subnormal, D about 1e-40), ca = 2G/D
// overflowed to inf and ca * t = inf * 0 made the gradient NaN where the double gradient is 0
// (a reviewer's case). An infinite or NaN coefficient passes as it is (D = 0 exactly:
// docs/conventions.md); double is unchanged.
template <class T>
SEGLOSS_HD SEGLOSS_INLINE T narrow_coefficient(double v) {
  if constexpr (sizeof(T) < sizeof(double)) {
    constexpr double kMax = 3.4028234663852886e38, kDoubleMax = 1.7976931348623157e308;
    if (v > kMax && v <= kDoubleMax) return static_cast<T>(kMax);
    if (v < -kMax && v >= -kDoubleMax) return static_cast<T>(-kMax);
  }
  return static_cast<T>(v);
}

}  // namespace pw
}  // namespace segloss
