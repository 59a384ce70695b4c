// CPU kernel of dice_score: one pass over the scored box, row by row, in fixed chunks of rows.
#include "dice_score.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/pointwise.hpp"

namespace segloss {
namespace cpu {
namespace {

// torch.round: the nearest integer, halves to the even one. Independent of the FPU's rounding
// mode; NaN stays NaN. p - floor(p) is exact in binary floating point.
template <class T>
T round_half_even(T p) {
  const T f = std::floor(p);
  const T frac = p - f;
  if (frac < T(0.5)) return f;
  if (frac > T(0.5)) return f + T(1);
  return std::fmod(f, T(2)) == T(0) ? f : f + T(1);  // a tie, or NaN / infinity (kept)
}

bool is_binary(double v) {
  return v == 0.0 || v == 1.0;
}

// The hard prediction q of one element: exact(x) computes p in T and compares it (or rounds
// it). With the sigmoid, most logits are decided by comparing x with logit(threshold) itself:
// sigmoid is increasing, and our sigmoid in T is within a few ulps (absolute, p <= 1) of the
// exact one, so when |x - logit(thr)| exceeds the margin
//   m = 16 eps_T / (thr (1 - thr))   (for m <= 1/2, sigmoid' >= thr (1 - thr) / 2 within m
//                                      of logit(thr), so p moves by >= 8 eps_T)
// the computed p falls on the same side of thr as the exact one. A row with any logit inside
// [lo, hi] (or NaN) is summed again with exact(), so the result is exactly that of computing p
// for every element. Thresholds too close to 0 or 1 for a margin below 1/2 use exact() only.
template <class T>
struct HardPrediction {
  bool sigmoid = true, round = false, fast = false;
  T thr = T(0.5), lo = T(0), hi = T(0);

  explicit HardPrediction(const DiceScoreArgs<T>& a)
      : sigmoid(a.sigmoid), round(a.round), thr(a.threshold) {
    // round(p) = [p > 0.5] for p in [0, 1] (0.5 itself rounds to 0).
    const double t = sigmoid && round ? 0.5 : static_cast<double>(thr);
    if (sigmoid && t > 0.0 && t < 1.0) {
      const double m = 16.0 * std::numeric_limits<T>::epsilon() / (t * (1.0 - t));
      if (m < 0.5) {
        const double x0 = std::log(t / (1.0 - t));
        fast = true;
        lo = static_cast<T>(x0 - m);
        hi = static_cast<T>(x0 + m);
      }
    }
  }

  T exact(T x) const {
    const T p = sigmoid ? pw::sigmoid<T>(x, pw::logit<T>(x)) : x;
    return round ? round_half_even(p) : (p > thr ? T(1) : T(0));
  }
};

// sum q t, sum q, sum t over one row into out[0..3), with q = q_of(x). Four interleaved partial
// sums per statistic, in a fixed order (deterministic), keep the adds' latency off the
// critical path; a compile-time lane index keeps them in registers.
template <class T, class Q>
void row_sums(const T* x, const T* t, int64_t len, const Q& q_of, double* out) {
  constexpr int kLanes = 4;
  double inter[kLanes] = {}, psum[kLanes] = {}, tsum[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double q = static_cast<double>(q_of(x[i + l])), v = static_cast<double>(t[i + l]);
      inter[l] += q * v;
      psum[l] += q;
      tsum[l] += v;
    }
  }
  for (; i < len; ++i) {
    const double q = static_cast<double>(q_of(x[i])), v = static_cast<double>(t[i]);
    inter[0] += q * v;
    psum[0] += q;
    tsum[0] += v;
  }
  out[0] = (inter[0] + inter[1]) + (inter[2] + inter[3]);
  out[1] = (psum[0] + psum[1]) + (psum[2] + psum[3]);
  out[2] = (tsum[0] + tsum[1]) + (tsum[2] + tsum[3]);
}

// The row's sums, by the logit comparison when no logit needs exact().
template <class T>
void row_statistics(const HardPrediction<T>& h, const T* x, const T* t, int64_t len, double* out) {
  if (h.fast) {
    // Integer flags, not && or ?:, so that the compiler emits no branch on random logits.
    const T lo = h.lo, hi = h.hi;
    int near = 0;  // a logit in [lo, hi], or NaN
    for (int64_t i = 0; i < len; ++i)
      near |= static_cast<int>(!(x[i] > hi)) & static_cast<int>(!(x[i] < lo));
    if (!near) {
      // q = [x > hi]: P is an integer count, and I sums t masked by q, lane-wise in a fixed
      // order; the mask is applied as a product by 0 or 1, with no branch.
      constexpr int kLanes = 4;
      int64_t count = 0;
      double inter[kLanes] = {}, tsum[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= len; i += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const int above = static_cast<int>(x[i + l] > hi);
          const double v = static_cast<double>(t[i + l]);
          count += above;
          inter[l] += v * static_cast<double>(above);
          tsum[l] += v;
        }
      }
      for (; i < len; ++i) {
        const int above = static_cast<int>(x[i] > hi);
        const double v = static_cast<double>(t[i]);
        count += above;
        inter[0] += v * static_cast<double>(above);
        tsum[0] += v;
      }
      out[0] = (inter[0] + inter[1]) + (inter[2] + inter[3]);
      out[1] = static_cast<double>(count);
      out[2] = (tsum[0] + tsum[1]) + (tsum[2] + tsum[3]);
      return;
    }
  }
  row_sums(
      x, t, len, [&h](T v) { return h.exact(v); }, out);
}

}  // namespace

template <class T>
DiceBadValue dice_score_statistics(const DiceScoreArgs<T>& a, double* stats) {
  const int64_t rows_d = a.end[0] - a.begin[0], rows_h = a.end[1] - a.begin[1];
  const int64_t len = a.end[2] - a.begin[2];
  const int64_t rows = rows_d * rows_h;  // rows of the scored box per plane
  const int64_t plane_size = a.extent[0] * a.extent[1] * a.extent[2];
  const detail::ChunkGrid grid(a.planes, rows, std::max<int64_t>(1, detail::kChunk / len));
  std::vector<DiceBadValue> bad(a.check_target || a.check_pred ? grid.chunks() : 0);
  const HardPrediction<T> hard(a);

  detail::reduce_planes<3>(
      grid,
      [&](const detail::Chunk& ch, double* acc) {
        DiceBadValue first;
        for (int64_t r = ch.begin; r < ch.end; ++r) {
          const int64_t local = r - ch.plane * rows;
          const int64_t z = a.begin[0] + local / rows_h, y = a.begin[1] + local % rows_h;
          const int64_t off =
              ch.plane * plane_size + (z * a.extent[1] + y) * a.extent[2] + a.begin[2];
          const T* x = a.pred + off;
          const T* t = a.target + off;
          double sums[3];
          row_statistics(hard, x, t, len, sums);
          for (int k = 0; k < 3; ++k) acc[k] += sums[k];
          if (first.index >= 0 || bad.empty()) continue;
          for (int64_t i = 0; i < len; ++i) {
            if (a.check_target && !is_binary(static_cast<double>(t[i]))) {
              first = {off + i, static_cast<double>(t[i]), false};
              break;
            }
            if (a.check_pred && !is_binary(static_cast<double>(x[i]))) {
              first = {off + i, static_cast<double>(x[i]), true};
              break;
            }
          }
        }
        if (!bad.empty()) bad[static_cast<size_t>(ch.index)] = first;
      },
      stats);

  for (const DiceBadValue& b : bad)  // chunks in index order: the first one found is the lowest
    if (b.index >= 0) return b;
  return {};
}

template DiceBadValue dice_score_statistics<float>(const DiceScoreArgs<float>&, double*);
template DiceBadValue dice_score_statistics<double>(const DiceScoreArgs<double>&, double*);

}  // namespace cpu
}  // namespace segloss
