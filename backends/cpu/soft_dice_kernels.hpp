// The two passes of the soft Dice loss on the CPU, as templates so that a loss which adds a
// pointwise term to Dice (bce_dice: BCE + Dice) runs inside the same two passes instead of
// two more: pass 1 sums the Dice statistics and the term's value, pass 2 writes the Dice
// gradient plus the term's gradient.
//
// A Term has kActive, and for each chunk an object (term.at(chunk)) with
//   value(x, t, lg, s) -> the term's loss at the element(s), weighted
//   grad(x, t, lg, s)  -> the term's scaled gradient at the element(s)
// for a scalar or a packet V, where lg = pw::Logit (exp(-|x|) and reciprocals, shared with the
// sigmoid; made by logit_with_log in pass 1 when the term is active) and s is the position in
// the plane. NoTerm is plain Dice.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "simd.hpp"
#include "soft_dice.hpp"

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

template <class Term>
constexpr int kStats = Term::kActive ? 4 : 3;  // sum p t, sum p, sum t (, the term's sum)

// Pass 1 over one chunk: adds its sums to acc[0..kStats).
template <class T, bool kSigmoid, class Term>
void statistics_chunk(const SoftDiceArgs<T>& a, const Term& term, const detail::Chunk& ch,
                      double* acc) {
  using P = Packet<T>;
  const auto tc = term.at(ch);
  const int64_t plane_start = ch.plane * a.plane_size;
  int64_t i = sum_packets<T, kStats<Term>>(
      ch.begin, ch.end,
      [&](int64_t j, P* part) {
        const P x = load(a.x + j), t = load(a.t + j);
        P p, dp;
        LogitOf<P, Term::kActive> lg;
        probability<P, kSigmoid, Term::kActive>(x, p, dp, lg);
        part[0] += p * t;
        part[1] += p;
        part[2] += t;
        if constexpr (Term::kActive) part[3] += tc.value(x, t, lg, j - plane_start);
      },
      acc);
  for (; i < ch.end; ++i) {
    T p, dp;
    LogitOf<T, Term::kActive> lg;
    probability<T, kSigmoid, Term::kActive>(a.x[i], p, dp, lg);
    acc[0] += static_cast<double>(p * a.t[i]);
    acc[1] += static_cast<double>(p);
    acc[2] += static_cast<double>(a.t[i]);
    if constexpr (Term::kActive)
      acc[3] += static_cast<double>(tc.value(a.x[i], a.t[i], lg, i - plane_start));
  }
}

// Pass 2 over one chunk: grad_i = (ca - cb t_i) dp_i/dx_i (+ the term's gradient).
template <class T, bool kSigmoid, class Term>
void gradient_chunk(const SoftDiceArgs<T>& a, const Term& term, const detail::Chunk& ch,
                    double coef_a, double coef_b, T* grad) {
  using P = Packet<T>;
  constexpr int L = kLanes<T>;
  const auto tc = term.at(ch);
  const int64_t plane_start = ch.plane * a.plane_size;
  const T ca = static_cast<T>(coef_a), cb = static_cast<T>(coef_b);
  int64_t i = ch.begin;
  for (; i + L <= ch.end; i += L) {
    const P x = load(a.x + i), t = load(a.t + i);
    P p, dp;
    pw::Logit<P> lg;
    probability<P, kSigmoid>(x, p, dp, lg);
    P g = (ca - cb * t) * dp;
    if constexpr (Term::kActive) g += tc.grad(x, t, lg, i - plane_start);
    store(grad + i, g);
  }
  for (; i < ch.end; ++i) {
    T p, dp;
    pw::Logit<T> lg;
    probability<T, kSigmoid>(a.x[i], p, dp, lg);
    T g = (ca - cb * a.t[i]) * dp;
    if constexpr (Term::kActive) g += tc.grad(a.x[i], a.t[i], lg, i - plane_start);
    grad[i] = g;
  }
}

// Pass 1 over everything. stats[plane * kStats + k] (deterministic).
template <class T, bool kSigmoid, class Term>
void dice_statistics(const SoftDiceArgs<T>& a, const Term& term, double* stats) {
  detail::reduce_planes<kStats<Term>>(
      detail::ChunkGrid(a.planes, a.plane_size),
      [&](const detail::Chunk& ch, double* acc) {
        statistics_chunk<T, kSigmoid>(a, term, ch, acc);
      },
      stats);
}

// Pass 2 over everything, with per-plane coefficients.
template <class T, bool kSigmoid, class Term>
void dice_gradient(const SoftDiceArgs<T>& a, const Term& term, const double* coef_a,
                   const double* coef_b, T* grad) {
  detail::for_each_chunk(detail::ChunkGrid(a.planes, a.plane_size), [&](const detail::Chunk& ch) {
    gradient_chunk<T, kSigmoid>(a, term, ch, coef_a[ch.plane], coef_b[ch.plane], grad);
  });
}

}  // namespace cpu
}  // namespace segloss
