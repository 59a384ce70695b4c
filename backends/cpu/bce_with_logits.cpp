// CPU kernel of bce_with_logits: one pass, SIMD packets with a scalar tail, the weight read
// through a broadcast pattern fixed per plane, the sum accumulated in double per chunk.
#include "bce_with_logits.hpp"

#include "../../core/parallel.hpp"
#include "bce_term.hpp"
#include "flat_planes.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T, Kind WK>
double run_chunk(const BceWithLogitsArgs<T>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  const auto term = BceTerm<T, WK>{a, static_cast<T>(a.grad_scale)}.at(ch);
  const int64_t plane_start = ch.plane * a.plane_size;
  double sum = 0.0;
  int64_t i = sum_packets<T, 1>(
      ch.begin, ch.end,
      [&](int64_t j, P* acc) SEGLOSS_LAMBDA_INLINE {
        const P x = load(a.x + j), z = load(a.z + j);
        const auto lg = pw::logit_with_log<P>(x);
        const P l = term.value(x, z, lg, j - plane_start);
        if (a.loss) store(a.loss + j, l);
        if (a.want_sum) acc[0] += l;
        if (a.grad) {
          const P g = term.grad(x, z, lg, j - plane_start);
          store(a.grad + j, a.grad_out ? P(g * load(a.grad_out + j)) : g);
        }
      },
      &sum);
  for (; i < ch.end; ++i) {
    const auto lg = pw::logit_with_log<T>(a.x[i]);
    const T l = term.value(a.x[i], a.z[i], lg, i - plane_start);
    if (a.loss) a.loss[i] = l;
    if (a.want_sum) sum += static_cast<double>(l);
    if (a.grad) {
      const T g = term.grad(a.x[i], a.z[i], lg, i - plane_start);
      a.grad[i] = a.grad_out ? g * a.grad_out[i] : g;
    }
  }
  return sum;
}

template <class T, Kind WK>
double run(const BceWithLogitsArgs<T>& a) {
  return detail::run_chunks(detail::ChunkGrid(a.planes, a.plane_size), a.want_sum,
                            [&](const detail::Chunk& ch) { return run_chunk<T, WK>(a, ch); });
}

}  // namespace

template <class T>
double bce_with_logits(const BceWithLogitsArgs<T>& args) {
  const BceWithLogitsArgs<T> a = flat_planes(
      args, args.pos_weight == nullptr || args.pos_weight_count == 1 || args.channels == 1);
  return with_weight_kind(a.weight, [&](auto kind) { return run<T, decltype(kind)::value>(a); });
}

template <class T>
double sum_values(const T* v, int64_t n) {
  double total = 0.0;
  detail::reduce_all<1>(
      detail::ChunkGrid(1, n),
      [&](const detail::Chunk& ch, double* acc) {
        int64_t i = sum_packets<T, 1>(
            ch.begin, ch.end, [&](int64_t j, Packet<T>* part) { part[0] += load(v + j); }, acc);
        for (; i < ch.end; ++i) acc[0] += static_cast<double>(v[i]);
      },
      &total);
  return total;
}

template double bce_with_logits<float>(const BceWithLogitsArgs<float>&);
template double bce_with_logits<double>(const BceWithLogitsArgs<double>&);
template double sum_values<float>(const float*, int64_t);
template double sum_values<double>(const double*, int64_t);

}  // namespace cpu
}  // namespace segloss
