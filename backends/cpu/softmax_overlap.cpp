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
#include "focal.hpp"
#include "simd.hpp"
#include "softmax_overlap_pixels.hpp"

namespace segloss {
namespace cpu {
namespace {

using overlap_pixels::kLabels;
using overlap_pixels::labels_of;
using overlap_pixels::softmax;

// The first terms of pass 2 (ce_dice, dice_focal): their gradient computed from the p that pass
// 1 stored, times `scale`, added to the Dice gradient. Each has pixel(label, base, e), the
// per-pixel values the term needs (e: the C x lanes probabilities), and at(px, p, label, c),
// the term's gradient in class c.
struct NoTerm {
  template <class V>
  struct Pixel {};
  template <class V, class T>
  SEGLOSS_INLINE Pixel<V> pixel(const V&, int64_t, const T*) const {
    return {};
  }
};

// q = sum_{c != label} p_c per lane, from the pixel's probabilities e (class c at e + c * lanes):
// 1 - p_label summed on its own, so that it keeps its relative precision as p_label -> 1 (CeTerm
// and FocalTerm; their kernels sum R beside S in pass A instead).
template <class T, class V>
SEGLOSS_INLINE V sum_other_classes(const T* e, const V& label, int64_t classes) {
  constexpr int kW = lanes<T, V>();
  V q = Math<V>::splat(T(0));
  for (int64_t c = 0; c < classes; ++c)
    q += load_lanes<T, V>(e + c * kW) * pw::label_complement<V>(label, static_cast<T>(c));
  return q;
}

// cross_entropy's gradient from p by its own kernel's expressions: upstream *
// pw::cross_entropy_grad with labels, its q = 1 - p_y summed as sum_{c != y} p_c (as FocalTerm
// does; the kernel has rest / S, which this pass does not keep), so that the label's entry keeps
// its relative precision as p_y -> 1; upstream * (p_c W_q - w_c q'_c) with probabilities q
// (W_q = sum_c w_c q'_c, q'_c = (1 - eps) q_c + eps / C).
template <class T, class U>
struct CeTerm {
  const CrossEntropyArgs<T, U>* args;
  T scale;
  // Per pixel: w_y and q = 1 - p_y (labels) or W_q (probabilities), and the call's constants
  // as values (kept in registers across the class loop's stores to grad, which could alias
  // members read through `this`).
  template <class V>
  struct Pixel {
    V w, q, upstream;
    T scale, eps, eps_over_c, w_total;
  };
  SEGLOSS_INLINE T weight(int64_t c) const { return args->weight ? args->weight[c] : T(1); }
  template <class V>
  SEGLOSS_INLINE V smoothed(const Pixel<V>& px, int64_t base, int64_t c) const {
    return load_lanes<T, V>(args->probs + base + c * args->pixels) * (T(1) - px.eps) +
           px.eps_over_c;
  }
  template <class V>
  SEGLOSS_INLINE Pixel<V> pixel(const V& label, int64_t base, const T* e) const {
    using M = Math<V>;
    Pixel<V> px;
    px.q = M::splat(T(0));
    px.upstream = M::splat(static_cast<T>(args->grad_scale));
    px.scale = scale;
    px.eps = static_cast<T>(args->eps);
    px.eps_over_c = static_cast<T>(args->eps / args->classes);
    px.w_total = static_cast<T>(args->weight_total);
    if constexpr (overlap_pixels::kLabels<T, U>) {
      px.w = args->weight ? gather_lanes<T, V>(args->weight, label, 1, 0, M::splat(T(0)))
                          : V(M::min(V(label + T(1)), M::splat(T(1))));
      px.q = sum_other_classes<T, V>(e, label, args->classes);
    } else {
      (void)label;
      (void)e;
      px.w = M::splat(T(0));
      for (int64_t c = 0; c < args->classes; ++c) px.w += weight(c) * smoothed<V>(px, base, c);
    }
    return px;
  }
  template <class V>
  SEGLOSS_INLINE V at(const Pixel<V>& px, const V& p, const V& label, int64_t base,
                      int64_t c) const {
    if constexpr (overlap_pixels::kLabels<T, U>) {
      const V delta = pw::label_indicator<V>(label, static_cast<T>(c));
      return px.scale *
             V(px.upstream * pw::cross_entropy_grad<V>(p, px.q, delta, px.w, weight(c), px.eps,
                                                       px.eps_over_c, px.w_total));
    } else {
      (void)label;
      return px.scale * V(px.upstream * V(p * px.w - weight(c) * smoothed<V>(px, base, c)));
    }
  }
};

// The factor F of pw::softmax_focal_pixel from the probabilities alone (dice_focal's second
// pass, which reads back the p its first pass stored): p_t and q = sum_{c != t} p_c, summed
// rather than 1 - p_t so that it keeps its relative precision as p_t -> 1. As p_t + q = 1,
//   nll = -log p_t = log1p(q / p_t),   h = p_t nll / q,   F = a q^gamma (1 + gamma h),
// with p_t and q floored at the smallest normal number in the divisions: an underflowed p_t
// gives h = 0 (its limit, p_t log p_t -> 0), q = 0 gives h = 0 as pw::softmax_focal_pixel's
// rest = 0 does. h <= 1 (log1p(u) <= u).
template <int K, class V, class M = Math<V>>
SEGLOSS_INLINE V focal_factor_from_probs(V p_t, V q, V a, typename M::Scalar gamma) {
  using T = typename M::Scalar;
  if constexpr (K == 0) {
    return a;
  } else {
    const V tiny = M::splat(pw::tiny_normal<T>());
    const V nll = M::log1p(V(q * M::recip(M::max(p_t, tiny))));
    const V h = nll * p_t * M::recip(M::max(q, tiny));
    return a * pw::focal_power<K, V, M>(q, gamma) * V(T(1) + gamma * h);
  }
}

// softmax_focal's gradient from p: F (p_c - [c = t]) (pw::softmax_focal_grad) with F from p_t
// and q = sum_{c != t} p_c (focal_factor_from_probs); K is gamma's kind (focal_gamma_kind).
template <class T, class L, int K>
struct FocalTerm {
  const SoftmaxFocalArgs<T, L>* args;
  T scale;
  template <class V>
  struct Pixel {
    V factor, q;  // F times upstream and scale; q = sum_{c != t} p_c
  };
  template <class V>
  SEGLOSS_INLINE Pixel<V> pixel(const V& label, int64_t, const T* e) const {
    using M = Math<V>;
    constexpr int kW = lanes<T, V>();
    const V alpha_t = args->alpha ? gather_lanes<T, V>(args->alpha, label, 1, 0, M::splat(T(0)))
                                  : V(M::min(V(label + T(1)), M::splat(T(1))));
    const V p_t = gather_lanes<T, V>(e, label, kW, 1, M::splat(T(1)));
    const V q = sum_other_classes<T, V>(e, label, args->classes);
    const V upstream = M::splat(static_cast<T>(args->grad_scale));
    const V f = upstream * focal_factor_from_probs<K, V>(p_t, q, alpha_t, args->gamma);
    return {V(scale * f), q};
  }
  template <class V>
  SEGLOSS_INLINE V at(const Pixel<V>& px, const V& p, const V& label, int64_t, int64_t c) const {
    const V delta = pw::label_indicator<V>(label, static_cast<T>(c));
    return pw::softmax_focal_grad<V>(px.factor, p, px.q, delta);
  }
};

// Pass 2 for one packet (or pixel).
template <class T, class U, class V, class First>
SEGLOSS_INLINE void gradient_at(const SoftmaxOverlapArgs<T, U>& a, int64_t n, int64_t s,
                                const double* ca, const double* cb, T* e, T* g, T* grad,
                                const First& first) {
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  constexpr bool kFirst = !std::is_same_v<First, NoTerm>;
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
    const T a_c = pw::narrow_coefficient<T>(ca[c]), b_c = pw::narrow_coefficient<T>(cb[c]);
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
  const auto px = first.template pixel<V>(label, base, e);
  const T prior = static_cast<T>(a.prior_scale);
  for (int64_t c = 0; c < C; ++c) {
    const V p = load_lanes<T, V>(e + c * kW);
    V out = p * (load_lanes<T, V>(g + c * kW) - dot);
    if constexpr (kFirst)
      out += first.template at<V>(px, p, label, base, c);
    else if (a.accumulate)
      out += prior * load_lanes<T, V>(grad + base + c * S);
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
  overlap_pixels::run_statistics<false>(a, stats, [&](auto v, int64_t n, int64_t s, T* e) {
    const int64_t C = a.classes, S = a.pixels;
    softmax<T, decltype(v)>(a.x + n * C * S + s, C, S, e);
  });
}

template <class T, class U, class First>
void gradient_pass(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb, T* grad,
                   const First& first) {
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
    for (; s + L <= s1; s += L) gradient_at<T, U, P>(a, n, s, can, cbn, e, g, grad, first);
    for (; s < s1; ++s) gradient_at<T, U, T>(a, n, s, can, cbn, e, g, grad, first);
  });
}

template <class T, class U>
void softmax_overlap_gradient(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb,
                              T* grad) {
  gradient_pass(a, ca, cb, grad, NoTerm{});
}

template <class T, class L>
void softmax_overlap_gradient_ce(const SoftmaxOverlapArgs<T, L>& a, const double* ca,
                                 const double* cb, const CrossEntropyArgs<T, L>& ce,
                                 double ce_scale, T* grad) {
  gradient_pass(a, ca, cb, grad, CeTerm<T, L>{&ce, static_cast<T>(ce_scale)});
}

template <class T, class L>
void softmax_overlap_gradient_focal(const SoftmaxOverlapArgs<T, L>& a, const double* ca,
                                    const double* cb, const SoftmaxFocalArgs<T, L>& focal,
                                    double focal_scale, T* grad) {
  const T scale = static_cast<T>(focal_scale);
  switch (focal_gamma_kind(static_cast<double>(focal.gamma))) {
    case 0:
      return gradient_pass(a, ca, cb, grad, FocalTerm<T, L, 0>{&focal, scale});
    case 1:
      return gradient_pass(a, ca, cb, grad, FocalTerm<T, L, 1>{&focal, scale});
    case 2:
      return gradient_pass(a, ca, cb, grad, FocalTerm<T, L, 2>{&focal, scale});
    default:
      return gradient_pass(a, ca, cb, grad, FocalTerm<T, L, -1>{&focal, scale});
  }
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
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE
#define SEGLOSS_INSTANTIATE(T, L)                                                     \
  template void softmax_overlap_gradient_focal<T, L>(const SoftmaxOverlapArgs<T, L>&, \
                                                     const double*, const double*,    \
                                                     const SoftmaxFocalArgs<T, L>&, double, T*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
