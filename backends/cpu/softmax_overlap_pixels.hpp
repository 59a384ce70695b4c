// The per-packet steps of the softmax overlap losses' statistics pass (not installed): the
// softmax of a packet of pixels and the 3 sums per class it adds, and the chunk loop that blocks
// them. Shared by softmax_overlap.cpp and the fused first passes of ce_dice and dice_focal
// (cross_entropy.cpp, focal.cpp), which compute the softmax once for both terms.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "simd.hpp"
#include "softmax_overlap.hpp"

namespace segloss {
namespace cpu {
namespace overlap_pixels {

template <class T, class U>
constexpr bool kLabels = !std::is_same_v<T, U>;

// t_c of a packet (or pixel) at element `base` of class 0: the indicator [y = c] of its labels,
// or the probability target's row c.
template <class T, class U, class V>
SEGLOSS_INLINE V class_target(const SoftmaxOverlapArgs<T, U>& a, const V& label, int64_t base,
                              int64_t c) {
  if constexpr (kLabels<T, U>)
    return pw::label_indicator<V>(label, static_cast<T>(c));
  else
    return load_lanes<T, V>(a.target + base + c * a.pixels);
}

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

// Pass 1 for one packet (or pixel) at position s of image n whose probabilities e holds: adds
// into sums[3 c + k], and stores p in a.probs_out when set. Sets an ignored lane's p to 0.
template <class T, class U, class V, class Sums>
SEGLOSS_INLINE void accumulate_probs(const SoftmaxOverlapArgs<T, U>& a, int64_t n, int64_t s, T* e,
                                     const Sums& acc) {
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  const int64_t C = a.classes, S = a.pixels;
  const int64_t base = n * C * S + s;
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
    const V t = class_target<T, U, V>(a, label, base, c);
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

// The statistics pass's chunks: at least 1024 pixels, so the 3C double slots per chunk stay
// under 0.6% of the logits whatever C (64-pixel chunks at C = 150 would need 9%).
template <class T, class U>
detail::ChunkGrid statistics_grid(const SoftmaxOverlapArgs<T, U>& a) {
  return detail::ChunkGrid(a.images, a.pixels,
                           std::max<int64_t>(1024, class_chunk_pixels(a.classes)));
}

// Pass 1 over one chunk: for each packet (then each pixel of the tail) at position s,
// probs(V(), n, s, e) fills e with its probabilities; accumulate_probs adds the sums into
// out[0..3C). With kFirst, probs also returns the packet's losses of a first term (a combined
// loss's), whose sum goes to out[3C]. The float sums are blocked over 8 packets, then widened
// to double: every step depends only on the position in the chunk, so the sums are
// deterministic.
template <bool kFirst, class T, class U, class Probs>
void statistics_chunk(const SoftmaxOverlapArgs<T, U>& a, const detail::Chunk& ch, double* out,
                      Probs&& probs) {
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
    P first = P::Zero();
    const int64_t stop = std::min(s1, s + kBlock * L);
    for (; s + L <= stop; s += L) {
      if constexpr (kFirst)
        first += probs(P(), n, s, e);
      else
        probs(P(), n, s, e);
      accumulate_probs<T, U, P>(a, n, s, e, PacketSums<T>{block});
    }
    for (int64_t k = 0; k < K; ++k) out[k] += load(block + k * L).template cast<double>().sum();
    if constexpr (kFirst) out[K] += first.template cast<double>().sum();
  }
  for (; s < s1; ++s) {
    if constexpr (kFirst)
      out[K] += static_cast<double>(probs(T(), n, s, e));
    else
      probs(T(), n, s, e);
    accumulate_probs<T, U, T>(a, n, s, e, DoubleSums{out});
  }
}

// Runs statistics_chunk over the grid: stats[(n C + c) 3 + k] as softmax_overlap_statistics
// gives them; with kFirst returns the first term's total (combined per image, then over the
// images in order: deterministic).
template <bool kFirst, class T, class U, class Probs>
double run_statistics(const SoftmaxOverlapArgs<T, U>& a, double* stats, Probs&& probs) {
  const int64_t C = a.classes, K = 3 * C;
  const detail::ChunkGrid grid = statistics_grid(a);
  const auto body = [&](const detail::Chunk& ch, double* acc) {
    statistics_chunk<kFirst>(a, ch, acc, probs);
  };
  if constexpr (!kFirst) {
    detail::reduce_planes_n(grid, static_cast<int>(K), body, stats);
    return 0.0;
  } else {
    std::vector<double> sums(static_cast<size_t>(a.images * (K + 1)));
    detail::reduce_planes_n(grid, static_cast<int>(K + 1), body, sums.data());
    double total = 0.0;
    for (int64_t n = 0; n < a.images; ++n) {
      std::copy(sums.begin() + n * (K + 1), sums.begin() + n * (K + 1) + K, stats + n * K);
      total += sums[static_cast<size_t>(n * (K + 1) + K)];
    }
    return total;
  }
}

}  // namespace overlap_pixels
}  // namespace cpu
}  // namespace segloss
