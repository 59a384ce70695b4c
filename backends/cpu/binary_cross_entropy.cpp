// CPU kernels of binary_cross_entropy: a range check that reads each input once, then one pass
// with SIMD packets and a scalar tail, the weight read through a broadcast pattern fixed per
// plane, the sum accumulated in double per chunk (as bce_with_logits).
#include "binary_cross_entropy.hpp"

#include "../../core/parallel.hpp"
#include "flat_planes.hpp"
#include "simd.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T, Kind WK>
double run_chunk(const BinaryCrossEntropyArgs<T>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  const int64_t plane_start = ch.plane * a.plane_size;
  const T* wbase = WK == Kind::absent ? nullptr : a.weight.data + a.weight.plane_offset(ch.plane);
  const T scale = static_cast<T>(a.grad_scale);
  double sum = 0.0;
  int64_t i = sum_packets<T, 1>(
      ch.begin, ch.end,
      [&](int64_t j, P* acc) SEGLOSS_LAMBDA_INLINE {
        const P p = load(a.p + j), z = load(a.z + j);
        const P w = WeightLane<T, WK>::packet(a.weight, wbase, j - plane_start);
        if (a.loss || a.want_sum) {
          const P l = w * pw::bce_probs_value<P>(p, z);
          if (a.loss) store(a.loss + j, l);
          if (a.want_sum) acc[0] += l;
        }
        if (a.grad) {
          const P g = (scale * w) * pw::bce_probs_grad<P>(p, z);
          store(a.grad + j, a.grad_out ? P(g * load(a.grad_out + j)) : g);
        }
      },
      &sum);
  for (; i < ch.end; ++i) {
    const T w = WeightLane<T, WK>::scalar(a.weight, wbase, i - plane_start);
    if (a.loss || a.want_sum) {
      const T l = w * pw::bce_probs_value<T>(a.p[i], a.z[i]);
      if (a.loss) a.loss[i] = l;
      if (a.want_sum) sum += static_cast<double>(l);
    }
    if (a.grad) {
      const T g = (scale * w) * pw::bce_probs_grad<T>(a.p[i], a.z[i]);
      a.grad[i] = a.grad_out ? g * a.grad_out[i] : g;
    }
  }
  return sum;
}

template <class T, Kind WK>
double run(const BinaryCrossEntropyArgs<T>& a) {
  return detail::run_chunks(detail::ChunkGrid(a.planes, a.plane_size), a.want_sum,
                            [&](const detail::Chunk& ch) { return run_chunk<T, WK>(a, ch); });
}

}  // namespace

template <class T>
int64_t first_outside_unit_interval(const T* v, int64_t n) {
  const detail::ChunkGrid grid(1, n);
  // One slot per chunk: 1 when the chunk holds a bad value. The comparisons are written
  // without branches so that the loop vectorizes.
  const double* bad = detail::fill_slots<1>(grid, [&](const detail::Chunk& ch, double* acc) {
    int ok = 1;
    for (int64_t i = ch.begin; i < ch.end; ++i)
      ok &= static_cast<int>(v[i] >= T(0)) & static_cast<int>(v[i] <= T(1));
    acc[0] = ok ? 0.0 : 1.0;
  });
  for (int64_t c = 0; c < grid.chunks(); ++c) {
    if (bad[c] == 0.0) continue;
    const detail::Chunk ch = grid[c];
    for (int64_t i = ch.begin; i < ch.end; ++i)
      if (!(v[i] >= T(0) && v[i] <= T(1))) return i;
  }
  return -1;
}

template <class T>
double binary_cross_entropy(const BinaryCrossEntropyArgs<T>& args) {
  const BinaryCrossEntropyArgs<T> a = flat_planes(args);  // small planes as one
  return with_weight_kind(a.weight, [&](auto kind) { return run<T, decltype(kind)::value>(a); });
}

#define SEGLOSS_INSTANTIATE(T)                                        \
  template int64_t first_outside_unit_interval<T>(const T*, int64_t); \
  template double binary_cross_entropy<T>(const BinaryCrossEntropyArgs<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
