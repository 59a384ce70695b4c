// CPU kernel of bce_with_logits: one pass, SIMD packets with a scalar tail, the weight read
// through a broadcast pattern fixed per plane, the sum accumulated in double per chunk.
#include "bce_with_logits.hpp"

#include "../../core/parallel.hpp"
#include "simd.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T, Kind WK>
double run_chunk(const BceWithLogitsArgs<T>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  using W = WeightLane<T, WK>;
  const T pw =
      a.pos_weight ? a.pos_weight[a.pos_weight_count == 1 ? 0 : ch.plane % a.channels] : T(1);
  const T* wbase = WK == Kind::absent ? nullptr : a.weight.data + a.weight.plane_offset(ch.plane);
  const int64_t plane_start = ch.plane * a.plane_size;
  const T scale = static_cast<T>(a.grad_scale);

  double sum = 0.0;
  int64_t i = sum_packets<T, 1>(
      ch.begin, ch.end,
      [&](int64_t j, P* acc) {
        const P x = load(a.x + j), z = load(a.z + j);
        const P w = W::packet(a.weight, wbase, j - plane_start);
        const auto lg = pw::logit_with_log<P>(x);
        const P l = w * pw::bce_logits_value<P>(x, z, pw, lg);
        if (a.loss) store(a.loss + j, l);
        if (a.want_sum) acc[0] += l;
        if (a.grad) {
          const P d = pw::bce_logits_grad<P>(x, z, pw, lg);
          store(a.grad + j, P(w * d * (a.grad_out ? load(a.grad_out + j) : P::Constant(scale))));
        }
      },
      &sum);
  for (; i < ch.end; ++i) {
    const T w = W::scalar(a.weight, wbase, i - plane_start);
    const auto lg = pw::logit_with_log<T>(a.x[i]);
    const T l = w * pw::bce_logits_value<T>(a.x[i], a.z[i], pw, lg);
    if (a.loss) a.loss[i] = l;
    if (a.want_sum) sum += static_cast<double>(l);
    if (a.grad)
      a.grad[i] =
          w * pw::bce_logits_grad<T>(a.x[i], a.z[i], pw, lg) * (a.grad_out ? a.grad_out[i] : scale);
  }
  return sum;
}

template <class T, Kind WK>
double run(const BceWithLogitsArgs<T>& a) {
  const detail::ChunkGrid grid(a.planes, a.plane_size);
  if (!a.want_sum) {
    detail::for_each_chunk(grid, [&](const detail::Chunk& ch) { run_chunk<T, WK>(a, ch); });
    return 0.0;
  }
  double total = 0.0;
  detail::reduce_all<1>(
      grid, [&](const detail::Chunk& ch, double* acc) { acc[0] += run_chunk<T, WK>(a, ch); },
      &total);
  return total;
}

}  // namespace

template <class T>
double bce_with_logits(const BceWithLogitsArgs<T>& a) {
  return with_weight_kind(a.weight, [&](auto kind) { return run<T, decltype(kind)::value>(a); });
}

template double bce_with_logits<float>(const BceWithLogitsArgs<float>&);
template double bce_with_logits<double>(const BceWithLogitsArgs<double>&);

}  // namespace cpu
}  // namespace segloss
