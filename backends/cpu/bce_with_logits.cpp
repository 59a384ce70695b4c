// CPU kernel of bce_with_logits: one pass, SIMD packets with a scalar tail, the weight read
// through a broadcast pattern fixed per plane, the sum accumulated in double per chunk.
#include "bce_with_logits.hpp"

#include "../../core/parallel.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {
namespace {

using Kind = detail::BroadcastKind;

template <class T, Kind WK>
struct WeightLane {
  // The weights of elements [s, s + n) of a plane whose weight starts at `base`.
  static Packet<T> packet(const detail::BroadcastReader<T>& w, const T* base, int64_t s) {
    if constexpr (WK == Kind::absent) {
      return Packet<T>::Constant(T(1));
    } else if constexpr (WK == Kind::per_plane) {
      return Packet<T>::Constant(*base);
    } else if constexpr (WK == Kind::contiguous) {
      return load(base + s);
    } else {
      Packet<T> v;
      for (int l = 0; l < kLanes<T>; ++l) v[l] = base[w.spatial_offset(s + l)];
      return v;
    }
  }
  static T scalar(const detail::BroadcastReader<T>& w, const T* base, int64_t s) {
    if constexpr (WK == Kind::absent) {
      return T(1);
    } else if constexpr (WK == Kind::per_plane) {
      return *base;
    } else if constexpr (WK == Kind::contiguous) {
      return base[s];
    } else {
      return base[w.spatial_offset(s)];
    }
  }
};

template <class T, Kind WK>
double run_chunk(const BceWithLogitsArgs<T>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  using W = WeightLane<T, WK>;
  constexpr int L = kLanes<T>;
  const T pw = a.pos_weight ? a.pos_weight[a.pos_weight_count == 1 ? 0 : ch.plane % a.channels]
                            : T(1);
  const T* wbase = WK == Kind::absent ? nullptr : a.weight.data + a.weight.plane_offset(ch.plane);
  const int64_t plane_start = ch.plane * a.plane_size;
  const T scale = static_cast<T>(a.grad_scale);

  Eigen::Array<double, L, 1> acc = Eigen::Array<double, L, 1>::Zero();
  int64_t i = ch.begin;
  for (; i + L <= ch.end; i += L) {
    const P x = load(a.x + i), z = load(a.z + i);
    const P w = W::packet(a.weight, wbase, i - plane_start);
    P l, d;
    pw::bce_logits<P>(x, z, pw::bce_log_weight<P>(z, pw), l, d);
    if (a.loss) store(a.loss + i, P(w * l));
    if (a.want_sum) acc += (w * l).template cast<double>();
    if (a.grad) store(a.grad + i, P(w * d * (a.grad_out ? load(a.grad_out + i) : P::Constant(scale))));
  }
  double sum = acc.sum();
  for (; i < ch.end; ++i) {
    const T w = W::scalar(a.weight, wbase, i - plane_start);
    T l, d;
    pw::bce_logits<T>(a.x[i], a.z[i], pw::bce_log_weight<T>(a.z[i], pw), l, d);
    if (a.loss) a.loss[i] = w * l;
    if (a.want_sum) sum += static_cast<double>(w * l);
    if (a.grad) a.grad[i] = w * d * (a.grad_out ? a.grad_out[i] : scale);
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
  switch (a.weight.kind) {
    case Kind::absent: return run<T, Kind::absent>(a);
    case Kind::per_plane: return run<T, Kind::per_plane>(a);
    case Kind::contiguous: return run<T, Kind::contiguous>(a);
    default: return run<T, Kind::general>(a);
  }
}

template double bce_with_logits<float>(const BceWithLogitsArgs<float>&);
template double bce_with_logits<double>(const BceWithLogitsArgs<double>&);

}  // namespace cpu
}  // namespace segloss
