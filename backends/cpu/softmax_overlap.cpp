// CPU kernels of the softmax overlap losses. Like cross_entropy's kernel, each step takes a
// packet of pixels (consecutive spatial positions of one image) and walks the class axis, whose
// rows are S elements apart, keeping exp(x_c - max) of the packet in a small per-thread buffer.
// Pass 1 accumulates 3 sums per class in float packets over blocks of 8 packets, widened to
// double per block; pass 2 recomputes the softmax (or reads the p that pass 1 stored in the
// gradient buffer) and writes the gradient.
#include "softmax_overlap.hpp"

#include <algorithm>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T, class U>
constexpr bool kLabels = !std::is_same_v<T, U>;

// The softmax of one packet (or pixel): p_c = e[c * W] after the call (W = lanes). Returns
// nothing; e holds the probabilities.
template <class T, class V>
SEGLOSS_INLINE void softmax(const T* x, int64_t C, int64_t S, T* e) {
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  V m = load_lanes<T, V>(x);
  for (int64_t c = 1; c < C; ++c) m = M::max(m, load_lanes<T, V>(x + c * S));
  V se = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V ec = M::exp(V(load_lanes<T, V>(x + c * S) - m));
    store_lanes<T, V>(e + c * kW, ec);
    se += ec;
  }
  const V r = M::recip(se);
  for (int64_t c = 0; c < C; ++c)
    store_lanes<T, V>(e + c * kW, V(load_lanes<T, V>(e + c * kW) * r));
}

// Per lane of a packet of labels: the label as T (-1 when ignored) and whether any is ignored.
template <class T, class U, class V>
SEGLOSS_INLINE bool labels_of(const SoftmaxOverlapArgs<T, U>& a, const U* y, V& label) {
  return label_lanes<T, V>(y, a.ignore_index, label);
}

// Where pass 1 adds its sums: float packets kept as plain values (so no alignment is assumed),
// or doubles for the scalar tail.
template <class T>
struct PacketSums {
  T* v;
  SEGLOSS_INLINE void add(int64_t k, const Packet<T>& x) const {
    store(v + k * kLanes<T>, Packet<T>(load(v + k * kLanes<T>) + x));
  }
};
struct DoubleSums {
  double* v;
  template <class T>
  SEGLOSS_INLINE void add(int64_t k, T x) const {
    v[k] += static_cast<double>(x);
  }
};

// Pass 1 for one packet (or pixel) at position s of image n: adds into sums[3 c + k].
template <class T, class U, class V, class Sums>
SEGLOSS_INLINE void accumulate(const SoftmaxOverlapArgs<T, U>& a, int64_t n, int64_t s, T* e,
                               const Sums& acc) {
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  const int64_t C = a.classes, S = a.pixels;
  const int64_t base = n * C * S + s;
  softmax<T, V>(a.x + base, C, S, e);
  V label = M::splat(T(0));
  bool any_ignored = false;
  if constexpr (kLabels<T, U>) {
    any_ignored = labels_of<T, U, V>(a, a.target + n * S + s, label);
    if (any_ignored)  // ignored pixels count nowhere: their p is taken as 0
      for (int l = 0; l < kW; ++l)
        if (lane<T>(label, l) < T(0))
          for (int64_t c = 0; c < C; ++c) e[c * kW + l] = T(0);
  }
  for (int64_t c = 0; c < C; ++c) {
    const V p = load_lanes<T, V>(e + c * kW);
    V t;
    if constexpr (kLabels<T, U>)
      t = pw::label_indicator<V>(label, static_cast<T>(c));
    else
      t = load_lanes<T, V>(a.target + base + c * S);
    V pk = p, tk = t;
    if (a.squared) {
      pk = p * p;
      if constexpr (!kLabels<T, U>) tk = t * t;  // a 0/1 indicator is its own square
    }
    acc.add(3 * c + 0, V(p * t));
    acc.add(3 * c + 1, pk);
    acc.add(3 * c + 2, tk);
  }
  // Stored last: the buffer may be the logits or the pixel's own target was read above.
  if (a.probs_out)
    for (int64_t c = 0; c < C; ++c)
      store_lanes<T, V>(a.probs_out + base + c * S, load_lanes<T, V>(e + c * kW));
}

template <class T, class U>
void statistics_chunk(const SoftmaxOverlapArgs<T, U>& a, const detail::Chunk& ch, double* out) {
  using P = Packet<T>;
  constexpr int L = kLanes<T>;
  constexpr int kBlock = 8;
  const int64_t C = a.classes, K = 3 * C;
  // One buffer: the packet's probabilities (C x L), then the float accumulators (3C packets).
  T* e = class_buffer<T>(static_cast<size_t>(C * L + K * L));
  T* block = e + C * L;
  const int64_t n = ch.plane, s0 = ch.begin - n * a.pixels, s1 = ch.end - n * a.pixels;
  int64_t s = s0;
  while (s + L <= s1) {
    std::fill(block, block + K * L, T(0));
    const int64_t stop = std::min(s1, s + kBlock * L);
    for (; s + L <= stop; s += L) accumulate<T, U, P>(a, n, s, e, PacketSums<T>{block});
    for (int64_t k = 0; k < K; ++k) out[k] += load(block + k * L).template cast<double>().sum();
  }
  for (; s < s1; ++s) accumulate<T, U, T>(a, n, s, e, DoubleSums{out});
}

// Pass 2 for one packet (or pixel).
template <class T, class U, class V>
SEGLOSS_INLINE void gradient_at(const SoftmaxOverlapArgs<T, U>& a, int64_t n, int64_t s,
                                const double* ca, const double* cb, T* e, T* g, T* grad) {
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  const int64_t C = a.classes, S = a.pixels;
  const int64_t base = n * C * S + s;
  if (a.probs)  // pass 1 stored p (for an ignored pixel 0, whose gradient is 0 below anyway)
    for (int64_t c = 0; c < C; ++c)
      store_lanes<T, V>(e + c * kW, load_lanes<T, V>(a.probs + base + c * S));
  else
    softmax<T, V>(a.x + base, C, S, e);
  V label = M::splat(T(0));
  bool any_ignored = false;
  if constexpr (kLabels<T, U>) any_ignored = labels_of<T, U, V>(a, a.target + n * S + s, label);
  // g_c - sum_k p_k g_k is evaluated as d_c - sum_k p_k d_k with d_c = g_c - g_r, where r is a
  // class of the largest p (the two agree as sum_k p_k = 1). For a saturated pixel (p_r near 1)
  // the plain form cancels to an error of eps |g| while the gradient, about
  // (1 - p_r) |g_k - g_r|, is far smaller; the shifted form keeps its relative precision.
  V p_max = M::splat(T(-1)), g_ref = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V p = load_lanes<T, V>(e + c * kW);
    V t;
    if constexpr (kLabels<T, U>)
      t = pw::label_indicator<V>(label, static_cast<T>(c));
    else
      t = load_lanes<T, V>(a.target + base + c * S);
    const T a_c = static_cast<T>(ca[c]), b_c = static_cast<T>(cb[c]);
    V gc = t * a_c;
    if (a.squared)
      gc += p * (b_c + b_c);
    else
      gc += M::splat(b_c);
    store_lanes<T, V>(g + c * kW, gc);
    g_ref = M::select_nonneg(V(p - p_max), gc, g_ref);  // gc where p > p_max
    p_max = M::max(p_max, p);
  }
  V dot = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V d = load_lanes<T, V>(g + c * kW) - g_ref;
    store_lanes<T, V>(g + c * kW, d);
    dot += load_lanes<T, V>(e + c * kW) * d;
  }
  const T prior = static_cast<T>(a.prior_scale);
  for (int64_t c = 0; c < C; ++c) {
    const V p = load_lanes<T, V>(e + c * kW);
    V out = p * (load_lanes<T, V>(g + c * kW) - dot);
    if (a.accumulate) out += prior * load_lanes<T, V>(grad + base + c * S);
    store_lanes<T, V>(grad + base + c * S, out);
  }
  if (any_ignored)
    for (int l = 0; l < kW; ++l)
      if (lane<T>(label, l) < T(0))
        for (int64_t c = 0; c < C; ++c) grad[base + c * S + l] = T(0);
}

}  // namespace

template <class T, class U>
void softmax_overlap_statistics(const SoftmaxOverlapArgs<T, U>& a, double* stats) {
  // 3C double slots per chunk: at least 1024 pixels per chunk keeps them under 0.6% of the
  // logits whatever C (64-pixel chunks at C = 150 would need 9%).
  const detail::ChunkGrid grid(a.images, a.pixels,
                               std::max<int64_t>(1024, class_chunk_pixels(a.classes)));
  detail::reduce_planes_n(
      grid, static_cast<int>(3 * a.classes),
      [&](const detail::Chunk& ch, double* acc) { statistics_chunk(a, ch, acc); }, stats);
}

template <class T, class U>
void softmax_overlap_gradient(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb,
                              T* grad) {
  using P = Packet<T>;
  constexpr int L = kLanes<T>;
  const detail::ChunkGrid grid(a.images, a.pixels, class_chunk_pixels(a.classes));
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    const int64_t C = a.classes;
    T* e = class_buffer<T>(static_cast<size_t>(2 * C * L));
    T* g = e + C * L;
    const int64_t n = ch.plane, s0 = ch.begin - n * a.pixels, s1 = ch.end - n * a.pixels;
    const double *can = ca + n * C, *cbn = cb + n * C;
    int64_t s = s0;
    for (; s + L <= s1; s += L) gradient_at<T, U, P>(a, n, s, can, cbn, e, g, grad);
    for (; s < s1; ++s) gradient_at<T, U, T>(a, n, s, can, cbn, e, g, grad);
  });
}

#define SEGLOSS_INSTANTIATE(T, U)                                                              \
  template void softmax_overlap_statistics<T, U>(const SoftmaxOverlapArgs<T, U>&, double*);    \
  template void softmax_overlap_gradient<T, U>(const SoftmaxOverlapArgs<T, U>&, const double*, \
                                               const double*, T*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
