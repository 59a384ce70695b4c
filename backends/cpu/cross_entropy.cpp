// CPU kernels of cross_entropy. The fused pass takes a packet of pixels (consecutive spatial
// positions of one image) and walks the class axis, whose rows are S elements apart: pass A
// finds the max and sum of exponentials (keeping exp(x_c - max) in a small per-thread buffer),
// pass B writes the gradient from them. The logits are read from memory once; the C x lanes
// buffer stays in L1. Nothing the size of the input is allocated.
#include "cross_entropy.hpp"

#include <algorithm>
#include <cassert>
#include <type_traits>
#include <vector>

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "fold_images.hpp"
#include "simd.hpp"
#include "softmax_overlap_pixels.hpp"

namespace segloss {
namespace cpu {
namespace {

// One packet (or pixel) at spatial position s of image n. Returns its losses. With kProbs
// (ce_dice's fused first pass, no gradient), e holds the probabilities p_c afterwards.
// Everything is taken relative to the max logit m: lse - x_c = log(se) - (x_c - m), so a
// confident pixel's small loss is not the difference of two large numbers. With hard labels,
// pass A also sums rest = sum_{c != y} e_c, and the label's term is log1p(rest / e_y), not
// log(se) - (x_y - m), which rounds se = 1 + rest to 1 once rest < eps (docs/gradients.md §3b).
template <class T, class L, class V, bool kProbs = false>
SEGLOSS_INLINE V pixels(const CrossEntropyArgs<T, L>& a, int64_t n, int64_t s, T* e,
                        bool stream = false) {
  // kProbs computes no gradient: ce_dice's two_passes (losses/combined.cpp) clears a.grad for
  // pass 1, whose gradient pass 2 writes from p. It must: once e holds p (normalised below), the
  // gradient loops would multiply by 1 / se a second time, and grad's buffer is the probs_out that
  // receives p.
  assert(!kProbs || a.grad == nullptr);
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  const int64_t C = a.classes, S = a.pixels;
  const int64_t base = n * C * S + s;  // [base + c * S] is class c of these pixels
  const T* x = a.x + base;
  const T eps = static_cast<T>(a.eps), eps_over_c = static_cast<T>(a.eps / C);
  const T w_total = static_cast<T>(a.weight_total);
  const auto weight = [&](int64_t c) { return a.weight ? a.weight[c] : T(1); };
  // probabilities: u_c = w_c q'_c, q'_c = (1 - eps) q_c + eps / C
  const auto soft_target = [&](int64_t c) -> V {
    return pw::cross_entropy_soft_target<V>(load_lanes<T, V>(a.probs + base + c * S), weight(c),
                                            eps, eps_over_c);
  };

  // Hard labels: the label per lane (-1 where ignored, which matches no class).
  const int64_t pix = n * S + s;
  V label = M::splat(T(0));
  bool any_ignored = false;
  if (!a.probs)
    any_ignored =
        label_lanes<T, V>(a.labels + pix, a.rule.ignore_index, label, a.rule.ignore_negative);

  // Pass A: the max, the exponentials, their sum, the sum over c != label (hard labels), and
  // sum_c w_c (x_c - m) (times q'_c).
  V m = load_lanes<T, V>(x);
  for (int64_t c = 1; c < C; ++c) m = M::max(m, load_lanes<T, V>(x + c * S));
  V se = M::splat(T(0)), rest = M::splat(T(0)), wx = M::splat(T(0)), wq = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V xc = load_lanes<T, V>(x + c * S) - m;
    const V ec = M::exp(xc);
    store_lanes<T, V>(e + c * kW, ec);
    se += ec;
    if (a.probs) {
      const V wqc = soft_target(c);
      wq += wqc;
      wx += wqc * xc;
    } else {
      rest += ec * pw::label_complement<V>(label, static_cast<T>(c));
      if (a.eps > 0.0) wx += weight(c) * xc;
    }
  }
  // log(se), relative to m: read by probability targets and the smoothing term only (labels
  // without smoothing skip the log; their loss is nll's).
  const V lse = a.probs || a.eps > 0.0 ? V(M::log(se)) : M::splat(T(0));
  const V inv_se = M::recip(se);
  // Hard labels, per lane: nll = -log p_y from rest, d = x_y - m (as pass A computed it) and
  // e_y = exp(d), gathered before kProbs normalises e (0 and 1 where ignored).
  V nll = M::splat(T(0));
  if (!a.probs) {
    const V d = gather_lanes<T, V>(x, label, S, 1, m, gather_fits(C, S, kW)) - m;
    const V e_y = gather_lanes<T, V>(e, label, kW, 1, M::splat(T(1)));
    nll = pw::softmax_nll<V>(rest, e_y, d);
  }
  if constexpr (kProbs)  // p as the gradient loops below compute it
    for (int64_t c = 0; c < C; ++c)
      store_lanes<T, V>(e + c * kW, V(load_lanes<T, V>(e + c * kW) * inv_se));

  V loss, upstream = M::splat(T(0));
  if (a.grad)
    upstream =
        a.grad_out ? load_lanes<T, V>(a.grad_out + pix) : M::splat(static_cast<T>(a.grad_scale));

  if (a.probs) {
    loss = pw::cross_entropy_soft_loss<V>(lse, wq, wx);  // sum_c w_c q'_c (lse - x_c)
    if (a.grad) {
      for (int64_t c = 0; c < C; ++c) {
        const V p = load_lanes<T, V>(e + c * kW) * inv_se;
        store_grad_lanes<T, V>(a.grad + base + c * S,
                               upstream * pw::cross_entropy_soft_grad<V>(p, wq, soft_target(c)),
                               stream);
      }
    }
    if (a.loss) store_lanes<T, V>(a.loss + pix, loss);
    return loss;
  }

  // The label's weight, per lane (0 where ignored: without class weights min(label + 1, 1)).
  const V w_y = a.weight ? gather_lanes<T, V>(a.weight, label, 1, 0, M::splat(T(0)))
                         : V(M::min(V(label + T(1)), M::splat(T(1))));
  loss = pw::cross_entropy_loss<V>(nll, lse, w_y, wx, eps, eps_over_c, w_total);
  if (a.grad) {
    // A packet with an ignored lane is stored the ordinary way: its lanes are zeroed below,
    // and a streamed line is not overwritten by ordinary stores.
    const bool nt = stream && !any_ignored;
    const V q = rest * inv_se;  // 1 - p_y
    for (int64_t c = 0; c < C; ++c) {
      const V p = load_lanes<T, V>(e + c * kW) * inv_se;
      const V delta = pw::label_indicator<V>(label, static_cast<T>(c));
      store_grad_lanes<T, V>(a.grad + base + c * S,
                             upstream * pw::cross_entropy_grad<V>(p, q, delta, w_y, weight(c), eps,
                                                                  eps_over_c, w_total),
                             nt);
    }
  }
  // Ignored pixels count nowhere: loss and gradient 0, whatever their logits or grad_out (a
  // product with a 0/1 mask would keep a NaN or an infinity).
  if (any_ignored) {
    for (int l = 0; l < kW; ++l) {
      if (lane<T>(label, l) >= T(0)) continue;
      lane<T>(loss, l) = T(0);
      if (a.grad)
        for (int64_t c = 0; c < C; ++c) a.grad[base + c * S + l] = T(0);
    }
  }
  if (a.loss) store_lanes<T, V>(a.loss + pix, loss);
  return loss;
}

template <class T, class L>
double chunk(const CrossEntropyArgs<T, L>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  T* e = class_buffer<T>(static_cast<size_t>(a.classes * kLanes<T>));
  const int64_t n = ch.plane, s0 = ch.begin - n * a.pixels, s1 = ch.end - n * a.pixels;
  const bool stream = stream_gradient(a.grad, a.images * a.classes * a.pixels, sizeof(T));
  double sum = 0.0;
  int64_t s =
      s0 + (sum_packets<T, 1>(
                s0, s1, [&](int64_t j, P* acc) { acc[0] += pixels<T, L, P>(a, n, j, e, stream); },
                &sum) -
            s0);
  for (; s < s1; ++s) sum += static_cast<double>(pixels<T, L, T>(a, n, s, e));
  if (stream) stream_fence();
  return sum;
}

}  // namespace

template <class T, class L>
LabelSums cross_entropy_label_sums(const L* labels, int64_t images, int64_t pixels, int64_t classes,
                                   const LabelRule& rule, const T* weight) {
  // Folded as the fused pass is: with one chunk per image, (2^18, C, 1) held 6 MB of sums.
  const detail::ChunkGrid grid = class_axis_grid<T>(images, pixels, detail::kChunk);
  std::vector<LabelSums> per_chunk(static_cast<size_t>(grid.chunks()));
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    LabelSums r;
    for (int64_t i = ch.begin; i < ch.end; ++i) {
      const int64_t y = static_cast<int64_t>(labels[i]);
      if (rule.ignored(y)) continue;
      if (y < 0 || y >= classes) {
        if (r.first_bad < 0) r.first_bad = i;
        continue;
      }
      r.weight_sum += weight ? static_cast<double>(weight[y]) : 1.0;
      ++r.count;
    }
    per_chunk[static_cast<size_t>(ch.index)] = r;
  });
  LabelSums total;  // combined in chunk order: deterministic
  for (const LabelSums& r : per_chunk) {
    total.weight_sum += r.weight_sum;
    total.count += r.count;
    if (total.first_bad < 0) total.first_bad = r.first_bad;
  }
  return total;
}

template <class T, class L>
double cross_entropy(const CrossEntropyArgs<T, L>& a) {
  const detail::ChunkGrid grid =
      class_axis_grid<T>(a.images, a.pixels, class_chunk_pixels(a.classes));
  const auto run = [&](const detail::Chunk& ch) {
    if (!fold_images<T>(a.pixels)) return chunk(a, ch);
    return folded_chunk<T>(a, ch, [](const auto& b, int64_t n, int64_t s, T* e, auto v) {
      return pixels<T, L, decltype(v)>(b, n, s, e);
    });
  };
  if (!a.want_sum) {
    detail::for_each_chunk(grid, [&](const detail::Chunk& ch) { run(ch); });
    return 0.0;
  }
  double total = 0.0;
  detail::reduce_all<1>(
      grid, [&](const detail::Chunk& ch, double* acc) { acc[0] += run(ch); }, &total);
  return total;
}

template <class T, class L>
double cross_entropy_dice_statistics(const CrossEntropyArgs<T, L>& a,
                                     const SoftmaxOverlapArgs<T, L>& dice, double* stats) {
  return overlap_pixels::run_statistics<true>(dice, stats, [&](auto v, int64_t n, int64_t s, T* e) {
    return pixels<T, L, decltype(v), true>(a, n, s, e);
  });
}

#define SEGLOSS_INSTANTIATE(T, L)                                                        \
  template LabelSums cross_entropy_label_sums<T, L>(const L*, int64_t, int64_t, int64_t, \
                                                    const LabelRule&, const T*);         \
  template double cross_entropy<T, L>(const CrossEntropyArgs<T, L>&);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE
#define SEGLOSS_INSTANTIATE(T, L)                                                    \
  template double cross_entropy_dice_statistics<T, L>(const CrossEntropyArgs<T, L>&, \
                                                      const SoftmaxOverlapArgs<T, L>&, double*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
