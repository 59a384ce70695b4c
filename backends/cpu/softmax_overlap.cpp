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
#include "cross_entropy.hpp"
#include "simd.hpp"
#include "softmax_overlap_pixels.hpp"

namespace segloss {
namespace cpu {
namespace {

using overlap_pixels::kLabels;
using overlap_pixels::labels_of;
using overlap_pixels::softmax;

// ce_dice's first term in pass 2 (labels only): cross_entropy's gradient, computed from the p
// that pass 1 stored as cross_entropy's own kernel computes it (the same expression of the same
// p), times `scale`, added to the Dice gradient.
template <class T, class U>
struct CeTerm {
  const CrossEntropyArgs<T, U>* args = nullptr;  // null: no first term
  T scale = 1;
};

// Pass 2 for one packet (or pixel).
template <class T, class U, class V, bool kCe>
SEGLOSS_INLINE void gradient_at(const SoftmaxOverlapArgs<T, U>& a, int64_t n, int64_t s,
                                const double* ca, const double* cb, T* e, T* g, T* grad,
                                const CeTerm<T, U>& ce) {
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
    const V t = overlap_pixels::class_target<T, U, V>(a, label, base, c);
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
  if constexpr (kCe) {
    // The first term as cross_entropy's kernel writes it: upstream * cross_entropy_grad.
    const CrossEntropyArgs<T, U>& ce_args = *ce.args;
    const T eps = static_cast<T>(ce_args.eps), eps_over_c = static_cast<T>(ce_args.eps / C);
    const T w_total = static_cast<T>(ce_args.weight_total);
    const V upstream = M::splat(static_cast<T>(ce_args.grad_scale));
    const V w_y = ce_args.weight ? gather_lanes<T, V>(ce_args.weight, label, 1, 0, M::splat(T(0)))
                                 : V(M::min(V(label + T(1)), M::splat(T(1))));
    for (int64_t c = 0; c < C; ++c) {
      const V p = load_lanes<T, V>(e + c * kW);
      const V delta = pw::label_indicator<V>(label, static_cast<T>(c));
      const T w_c = ce_args.weight ? ce_args.weight[c] : T(1);
      const V first =
          upstream * pw::cross_entropy_grad<V>(p, delta, w_y, w_c, eps, eps_over_c, w_total);
      V out = p * (load_lanes<T, V>(g + c * kW) - dot);
      out += ce.scale * first;
      store_lanes<T, V>(grad + base + c * S, out);
    }
  } else {
    const T prior = static_cast<T>(a.prior_scale);
    for (int64_t c = 0; c < C; ++c) {
      const V p = load_lanes<T, V>(e + c * kW);
      V out = p * (load_lanes<T, V>(g + c * kW) - dot);
      if (a.accumulate) out += prior * load_lanes<T, V>(grad + base + c * S);
      store_lanes<T, V>(grad + base + c * S, out);
    }
  }
  if (any_ignored)
    for (int l = 0; l < kW; ++l)
      if (lane<T>(label, l) < T(0))
        for (int64_t c = 0; c < C; ++c) grad[base + c * S + l] = T(0);
}

}  // namespace

template <class T, class U>
void softmax_overlap_statistics(const SoftmaxOverlapArgs<T, U>& a, double* stats) {
  overlap_pixels::run_statistics<false>(a, stats, [&](auto v, int64_t n, int64_t s, T* e) {
    const int64_t C = a.classes, S = a.pixels;
    softmax<T, decltype(v)>(a.x + n * C * S + s, C, S, e);
  });
}

template <bool kCe, class T, class U>
void gradient_pass(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb, T* grad,
                   const CeTerm<T, U>& ce) {
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
    for (; s + L <= s1; s += L) gradient_at<T, U, P, kCe>(a, n, s, can, cbn, e, g, grad, ce);
    for (; s < s1; ++s) gradient_at<T, U, T, kCe>(a, n, s, can, cbn, e, g, grad, ce);
  });
}

template <class T, class U>
void softmax_overlap_gradient(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb,
                              T* grad) {
  gradient_pass<false>(a, ca, cb, grad, CeTerm<T, U>{});
}

template <class T, class L>
void softmax_overlap_gradient_ce(const SoftmaxOverlapArgs<T, L>& a, const double* ca,
                                 const double* cb, const CrossEntropyArgs<T, L>& ce,
                                 double ce_scale, T* grad) {
  gradient_pass<true>(a, ca, cb, grad, CeTerm<T, L>{&ce, static_cast<T>(ce_scale)});
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
#define SEGLOSS_INSTANTIATE(T, L)                                                                 \
  template void softmax_overlap_gradient_ce<T, L>(const SoftmaxOverlapArgs<T, L>&, const double*, \
                                                  const double*, const CrossEntropyArgs<T, L>&,   \
                                                  double, T*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
