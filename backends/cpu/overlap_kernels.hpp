// The two passes of the overlap losses on the CPU, as templates so that a loss which adds a
// pointwise term (bce_dice: BCE + Dice) runs inside the same two passes instead of two more:
// pass 1 sums the overlap statistics and the term's value, pass 2 writes the overlap gradient
// plus the term's gradient.
//
// A Term has kActive, and for each chunk an object (term.at(chunk)) with
//   value(x, t, lg, s) -> the term's loss at the element(s), weighted
//   grad(x, t, lg, s)  -> the term's scaled gradient at the element(s)
// for a scalar or a packet V, where lg = pw::Logit (exp(-|x|) and reciprocals, shared with the
// sigmoid; made by logit_with_log in pass 1 when the term is active) and s is the position in
// the plane. NoTerm is the overlap loss alone.
//
// Compile-time variants: the sigmoid (or probabilities), squared sums, and the pixel weight's
// broadcast pattern (Kind) with its placement (kW2: w^2 in the P and T sums, else w).
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "overlap.hpp"
#include "simd.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {

struct NoTerm {
  static constexpr bool kActive = false;
  struct AtChunk {
    template <class V, class L>
    SEGLOSS_INLINE V value(const V& x, const V&, const L&, int64_t) const {
      return x;
    }
    template <class V>
    SEGLOSS_INLINE V grad(const V& x, const V&, const pw::Logit<V>&, int64_t) const {
      return x;
    }
  };
  AtChunk at(const detail::Chunk&) const { return {}; }
};

// The logit's terms a pass computes: with the log's reciprocal when a term needs its value.
template <class V, bool kWithLog>
using LogitOf = std::conditional_t<kWithLog, pw::LogitWithLog<V>, pw::Logit<V>>;

// p, dp/dx and the logit's terms for one value (scalar or packet). Without the sigmoid,
// p = x and dp/dx = 1 (and lg is unused).
template <class V, bool kSigmoid, bool kWithLog = false>
SEGLOSS_INLINE void probability(const V& x, V& p, V& dp, LogitOf<V, kWithLog>& lg) {
  using M = Math<V>;
  if constexpr (kSigmoid) {
    if constexpr (kWithLog)
      lg = pw::logit_with_log<V>(x);
    else
      lg = pw::logit<V>(x);
    p = pw::sigmoid<V>(x, lg);
    dp = pw::sigmoid_grad<V>(lg);
  } else {
    p = x;
    dp = M::splat(typename M::Scalar(1));
  }
}

// The compile-time shape of one pass: sigmoid, squared sums, weight pattern and placement.
template <bool kSigmoid_, bool kSquared_, Kind kWeight_, bool kW2_>
struct Variant {
  static constexpr bool kSigmoid = kSigmoid_, kSquared = kSquared_, kW2 = kW2_;
  static constexpr Kind kWeight = kWeight_;
};

// The weights of the intersection (w^2) and of the P and T sums (w^2 or w) at position s.
template <class T, class Var>
struct PixelWeight {
  const detail::BroadcastReader<T>& reader;
  const T* base;
  template <class V>
  SEGLOSS_INLINE void at(int64_t s, V& w_i, V& w_pt) const {
    V w;
    if constexpr (std::is_same_v<V, T>)
      w = WeightLane<T, Var::kWeight>::scalar(reader, base, s);
    else
      w = WeightLane<T, Var::kWeight>::packet(reader, base, s);
    w_i = w * w;
    if constexpr (Var::kW2)
      w_pt = w_i;
    else
      w_pt = w;
  }
};

template <class T, class Var>
PixelWeight<T, Var> pixel_weight(const OverlapArgs<T>& a, int64_t plane) {
  const T* base =
      Var::kWeight == Kind::absent ? nullptr : a.weight.data + a.weight.plane_offset(plane);
  return {a.weight, base};
}

template <class Term>
constexpr int kStats = Term::kActive ? 4 : 3;  // I, P, T (, the term's sum)

// One element or packet of pass 1: adds wI p t, wP p^k, wP t^k (and the term) to part[].
// With kStash (and the sigmoid), also stores copysign(e, x) at stash (overlap.hpp).
template <class Var, bool kStash, class V, class Acc, class W, class TC, class T>
SEGLOSS_INLINE void accumulate(const V& x, const V& t, int64_t s, const W& weight, const TC& tc,
                               Acc* part, T* stash) {
  constexpr bool kTerm = !std::is_same_v<TC, NoTerm::AtChunk>;
  V p, dp;
  LogitOf<V, kTerm> lg;
  probability<V, Var::kSigmoid, kTerm>(x, p, dp, lg);
  if constexpr (kStash && Var::kSigmoid) {
    if constexpr (std::is_same_v<V, T>)
      *stash = with_sign_of(x, lg.e);
    else
      store(stash, with_sign_of(x, lg.e));
  }
  V pt = p * t, pk = p, tk = t;
  if constexpr (Var::kSquared) {
    pk = p * p;
    tk = t * t;
  }
  if constexpr (Var::kWeight != Kind::absent) {
    V w_i, w_pt;
    weight.template at<V>(s, w_i, w_pt);
    pt *= w_i;
    pk *= w_pt;
    tk *= w_pt;
  }
  if constexpr (std::is_same_v<Acc, double>) {
    part[0] += static_cast<double>(pt);
    part[1] += static_cast<double>(pk);
    part[2] += static_cast<double>(tk);
    if constexpr (kTerm) part[3] += static_cast<double>(tc.value(x, t, lg, s));
  } else {
    part[0] += pt;
    part[1] += pk;
    part[2] += tk;
    if constexpr (kTerm) part[3] += tc.value(x, t, lg, s);
  }
}

// Pass 1 over one chunk: adds its sums to acc[0..kStats).
template <class T, class Var, bool kStash, class Term>
void statistics_chunk(const OverlapArgs<T>& a, const Term& term, const detail::Chunk& ch,
                      double* acc) {
  using P = Packet<T>;
  const auto tc = term.at(ch);
  const auto weight = pixel_weight<T, Var>(a, ch.plane);
  const int64_t plane_start = ch.plane * a.plane_size;
  int64_t i = sum_packets<T, kStats<Term>>(
      ch.begin, ch.end,
      [&](int64_t j, P* part) SEGLOSS_LAMBDA_INLINE {
        accumulate<Var, kStash>(load(a.x + j), load(a.t + j), j - plane_start, weight, tc, part,
                                kStash ? a.stash + j : nullptr);  // no offset on a null stash
      },
      acc);
  for (; i < ch.end; ++i) {
    const T x = a.x[i], t = a.t[i];  // copies: the stash may be x itself
    accumulate<Var, kStash>(x, t, i - plane_start, weight, tc, acc, kStash ? a.stash + i : nullptr);
  }
}

// One element or packet of pass 2. With kStash, x is pass 1's copysign(e, x): e, 1 / (1 + e)
// and p are rebuilt from it, and +-1 with the sign of x stands in for x (the sigmoid and the
// term's gradient read only its sign).
template <class Var, bool kStash, class V, class W, class TC>
SEGLOSS_INLINE V gradient_at(const V& x_or_stash, const V& t, int64_t s, const W& weight,
                             const TC& tc, const V& ca, const V& cb) {
  using M = Math<V>;
  using T = typename M::Scalar;
  V p, dp, x;
  pw::Logit<V> lg;
  if constexpr (kStash && Var::kSigmoid) {
    lg.e = M::abs(x_or_stash);
    lg.r = M::recip_normal(T(1) + lg.e);  // as pw::logit computes it from x
    x = with_sign_of(x_or_stash, M::splat(T(1)));
    p = pw::sigmoid<V>(x, lg);
    dp = pw::sigmoid_grad<V>(lg);
  } else {
    x = x_or_stash;
    probability<V, Var::kSigmoid>(x, p, dp, lg);
  }
  V gi = ca * t, gp = cb;
  if constexpr (Var::kSquared) gp = cb * (p + p);
  if constexpr (Var::kWeight != Kind::absent) {
    V w_i, w_pt;
    weight.template at<V>(s, w_i, w_pt);
    gi *= w_i;
    gp *= w_pt;
  }
  V g = (gi + gp) * dp;
  if constexpr (!std::is_same_v<TC, NoTerm::AtChunk>) g += tc.grad(x, t, lg, s);
  return g;
}

// Pass 2 over one chunk.
template <class T, class Var, bool kStash, class Term>
void gradient_chunk(const OverlapArgs<T>& a, const Term& term, const detail::Chunk& ch,
                    double coef_a, double coef_b, T* grad) {
  using P = Packet<T>;
  constexpr int L = kLanes<T>;
  const auto tc = term.at(ch);
  const auto weight = pixel_weight<T, Var>(a, ch.plane);
  const int64_t plane_start = ch.plane * a.plane_size;
  const T ca = pw::narrow_coefficient<T>(coef_a), cb = pw::narrow_coefficient<T>(coef_b);
  const P ca_p = P::Constant(ca), cb_p = P::Constant(cb);
  const T* src = kStash ? a.stash : a.x;  // the stash is grad itself: read before written
  int64_t i = ch.begin;
  for (; i + L <= ch.end; i += L)
    store(grad + i, gradient_at<Var, kStash>(load(src + i), load(a.t + i), i - plane_start, weight,
                                             tc, ca_p, cb_p));
  for (; i < ch.end; ++i)
    grad[i] = gradient_at<Var, kStash>(src[i], a.t[i], i - plane_start, weight, tc, ca, cb);
}

// Calls f(Variant<...>{}) with the arguments' variant as compile-time values. A term that reads
// logits (kActive) only runs with the sigmoid, which halves the variants compiled for it.
template <class T, bool kSigmoidOnly = false, class F>
void with_variant(const OverlapArgs<T>& a, F&& f) {
  auto with_weight = [&](auto sig, auto sq) {
    constexpr bool S = decltype(sig)::value, Q = decltype(sq)::value;
    if (a.weight.kind == Kind::absent) return f(Variant<S, Q, Kind::absent, true>{});
    with_weight_kind(a.weight, [&](auto kind) {
      constexpr Kind K = decltype(kind)::value;
      if constexpr (K != Kind::absent) {
        if (a.w_squared_pt)
          f(Variant<S, Q, K, true>{});
        else
          f(Variant<S, Q, K, false>{});
      }
    });
  };
  auto with_squared = [&](auto sig) {
    if (a.squared)
      with_weight(sig, std::true_type{});
    else
      with_weight(sig, std::false_type{});
  };
  if constexpr (kSigmoidOnly) {
    with_squared(std::true_type{});
  } else {
    if (a.sigmoid)
      with_squared(std::true_type{});
    else
      with_squared(std::false_type{});
  }
}

// Pass 1 over everything. stats[plane * kStats + k] (deterministic).
template <class T, class Term>
void overlap_statistics_with(const OverlapArgs<T>& a, const Term& term, double* stats) {
  with_variant<T, Term::kActive>(a, [&](auto var) {
    using Var = decltype(var);
    detail::reduce_planes<kStats<Term>>(
        detail::ChunkGrid(a.planes, a.plane_size),
        [&](const detail::Chunk& ch, double* acc) {
          if (Var::kSigmoid && a.stash)
            statistics_chunk<T, Var, Var::kSigmoid>(a, term, ch, acc);
          else
            statistics_chunk<T, Var, false>(a, term, ch, acc);
        },
        stats);
  });
}

// Pass 2 over everything, with per-plane coefficients. With a.stash set, pass 1 must have run
// with the same a (and a.stash must be grad).
template <class T, class Term>
void overlap_gradient_with(const OverlapArgs<T>& a, const Term& term, const double* coef_a,
                           const double* coef_b, T* grad) {
  with_variant<T, Term::kActive>(a, [&](auto var) {
    using Var = decltype(var);
    detail::for_each_chunk(detail::ChunkGrid(a.planes, a.plane_size), [&](const detail::Chunk& ch) {
      if (Var::kSigmoid && a.stash)
        gradient_chunk<T, Var, Var::kSigmoid>(a, term, ch, coef_a[ch.plane], coef_b[ch.plane],
                                              grad);
      else
        gradient_chunk<T, Var, false>(a, term, ch, coef_a[ch.plane], coef_b[ch.plane], grad);
    });
  });
}

}  // namespace cpu
}  // namespace segloss
