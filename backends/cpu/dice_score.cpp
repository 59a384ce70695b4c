// CPU kernel of dice_score: one pass over the scored box, row by row, in fixed chunks of rows.
#include "dice_score.hpp"

#include <algorithm>
#include <cmath>
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

}  // namespace

template <class T>
DiceBadValue dice_score_statistics(const DiceScoreArgs<T>& a, double* stats) {
  const int64_t rows_d = a.end[0] - a.begin[0], rows_h = a.end[1] - a.begin[1];
  const int64_t len = a.end[2] - a.begin[2];
  const int64_t rows = rows_d * rows_h;  // rows of the scored box per plane
  const int64_t plane_size = a.extent[0] * a.extent[1] * a.extent[2];
  const detail::ChunkGrid grid(a.planes, rows, std::max<int64_t>(1, detail::kChunk / len));
  std::vector<DiceBadValue> bad(a.check_target || a.check_pred ? grid.chunks() : 0);
  const T thr = a.threshold;

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
          double inter = 0.0, psum = 0.0, tsum = 0.0;
          for (int64_t i = 0; i < len; ++i) {
            const T p = a.sigmoid ? pw::sigmoid<T>(x[i], pw::logit<T>(x[i])) : x[i];
            const T q = a.round ? round_half_even(p) : (p > thr ? T(1) : T(0));
            const double qd = static_cast<double>(q), td = static_cast<double>(t[i]);
            inter += qd * td;
            psum += qd;
            tsum += td;
          }
          acc[0] += inter;
          acc[1] += psum;
          acc[2] += tsum;
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
