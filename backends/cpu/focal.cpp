// CPU kernels of the focal losses.
//
// sigmoid_focal: one pass, SIMD packets with a scalar tail, the weight read through a broadcast
// pattern fixed per plane (weight_lane.hpp), gamma's evaluation fixed at compile time, the sum
// accumulated in double per chunk: the loop of bce_with_logits with pw::sigmoid_focal.
//
// softmax_focal: the loop of cross_entropy. A packet of pixels (consecutive spatial positions
// of one image) walks the class axis: pass A finds the max, the exponentials (kept in a small
// per-thread buffer), their sum and the sum over the classes other than each lane's label;
// pass B writes the gradient of every class from them. The logits are read from memory once.
#include "focal.hpp"

#include <algorithm>
#include <cassert>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "flat_planes.hpp"
#include "fold_images.hpp"
#include "softmax_overlap_pixels.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {
namespace {

// Calls f(std::integral_constant<int, K>) with gamma's kind as a compile-time value.
template <class F>
decltype(auto) with_gamma_kind(double gamma, F&& f) {
  switch (focal_gamma_kind(gamma)) {
    case 0:
      return f(std::integral_constant<int, 0>{});
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    default:
      return f(std::integral_constant<int, -1>{});
  }
}

// ---------------------------------------------------------------------------------------------
// sigmoid_focal
// ---------------------------------------------------------------------------------------------

template <class T, Kind WK, int K>
double sigmoid_chunk(const SigmoidFocalArgs<T>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  const int64_t plane_start = ch.plane * a.plane_size;
  const T* wbase = WK == Kind::absent ? nullptr : a.weight.data + a.weight.plane_offset(ch.plane);
  const T scale = static_cast<T>(a.grad_scale);
  // w a_t of the element or packet at plane position s with target z.
  const auto coefficient = [&](const auto& z, int64_t s) {
    using V = std::decay_t<decltype(z)>;
    if constexpr (std::is_same_v<V, T>)
      return WeightLane<T, WK>::scalar(a.weight, wbase, s) * (a.alpha_base + a.alpha_slope * z);
    else
      return V(WeightLane<T, WK>::packet(a.weight, wbase, s) * (a.alpha_base + a.alpha_slope * z));
  };
  double sum = 0.0;
  int64_t i = sum_packets<T, 1>(
      ch.begin, ch.end,
      [&](int64_t j, P* acc) SEGLOSS_LAMBDA_INLINE {
        const P x = load(a.x + j), z = load(a.z + j);
        const auto f = pw::sigmoid_focal<K, P>(x, z, a.gamma, pw::logit_with_log<P>(x));
        const P c = coefficient(z, j - plane_start);
        const P l = c * f.value;
        if (a.loss) store(a.loss + j, l);
        if (a.want_sum) acc[0] += l;
        if (a.grad) {
          const P g = (scale * c) * f.grad;
          store(a.grad + j, a.grad_out ? P(g * load(a.grad_out + j)) : g);
        }
      },
      &sum);
  for (; i < ch.end; ++i) {
    const T x = a.x[i], z = a.z[i];
    const auto f = pw::sigmoid_focal<K, T>(x, z, a.gamma, pw::logit_with_log<T>(x));
    const T c = coefficient(z, i - plane_start);
    const T l = c * f.value;
    if (a.loss) a.loss[i] = l;
    if (a.want_sum) sum += static_cast<double>(l);
    if (a.grad) {
      const T g = (scale * c) * f.grad;
      a.grad[i] = a.grad_out ? g * a.grad_out[i] : g;
    }
  }
  return sum;
}

template <class T, Kind WK, int K>
double sigmoid_run(const SigmoidFocalArgs<T>& a) {
  const detail::ChunkGrid grid(a.planes, a.plane_size);
  if (!a.want_sum) {
    detail::for_each_chunk(grid, [&](const detail::Chunk& ch) { sigmoid_chunk<T, WK, K>(a, ch); });
    return 0.0;
  }
  double total = 0.0;
  detail::reduce_all<1>(
      grid, [&](const detail::Chunk& ch, double* acc) { acc[0] += sigmoid_chunk<T, WK, K>(a, ch); },
      &total);
  return total;
}

// ---------------------------------------------------------------------------------------------
// softmax_focal
// ---------------------------------------------------------------------------------------------

// One packet (or pixel) at spatial position s of image n, e: the C x lanes buffer. Returns its
// losses. The formulas are pw::softmax_focal_pixel's; here the gathering.
template <int K, class T, class L, class V, bool kProbs = false>
SEGLOSS_INLINE V focal_pixels(const SoftmaxFocalArgs<T, L>& a, int64_t n, int64_t s, T* e,
                              bool stream = false) {
  // kProbs computes no gradient: dice_focal's two_passes (losses/combined.cpp) clears a.grad for
  // pass 1, whose gradient pass 2 writes from p. A gradient stored here would be a whole
  // gradient's stores for nothing: grad's buffer is the probs_out that receives p right after this
  // call (the values would be right, as e is normalised only after the gradient loop).
  assert(!kProbs || a.grad == nullptr);
  using M = Math<V>;
  constexpr int kW = lanes<T, V>();
  const int64_t C = a.classes, S = a.pixels;
  const int64_t base = n * C * S + s;  // [base + c * S] is class c of these pixels
  const int64_t pix = n * S + s;
  const T* x = a.x + base;

  // Per lane: the label (-1 when ignored, which matches no class) and its factor (0 when
  // ignored: without alpha min(label + 1, 1)).
  V label;
  const bool any_ignored =
      label_lanes<T, V>(a.labels + pix, a.rule.ignore_index, label, a.rule.ignore_negative);
  const V alpha_t = a.alpha ? gather_lanes<T, V>(a.alpha, label, 1, 0, M::splat(T(0)))
                            : V(M::min(V(label + T(1)), M::splat(T(1))));

  // Pass A: the max m, e_c = exp(x_c - m), their sum, and the sum over c != label.
  V m = load_lanes<T, V>(x);
  for (int64_t c = 1; c < C; ++c) m = M::max(m, load_lanes<T, V>(x + c * S));
  V se = M::splat(T(0)), rest = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V ec = M::exp(V(load_lanes<T, V>(x + c * S) - m));
    store_lanes<T, V>(e + c * kW, ec);
    se += ec;
    rest += ec * pw::label_complement<V>(label, static_cast<T>(c));
  }

  // Per lane: d = x_t - m (as pass A computed it) and e_t = exp(d); 0 and 1 where ignored.
  const V d = gather_lanes<T, V>(x, label, S, 1, m, gather_fits(C, S, kW)) - m;
  const V e_t = gather_lanes<T, V>(e, label, kW, 1, M::splat(T(1)));
  const V inv_se = M::recip(se);
  const auto f = pw::softmax_focal_pixel<K, V>(rest, inv_se, e_t, d, alpha_t, a.gamma);
  V loss = f.value;

  if (a.grad) {
    const V upstream =
        a.grad_out ? load_lanes<T, V>(a.grad_out + pix) : M::splat(static_cast<T>(a.grad_scale));
    const V factor = upstream * f.factor;
    const bool nt = stream && !any_ignored;  // ignored lanes are zeroed by ordinary stores below
    for (int64_t c = 0; c < C; ++c) {
      const V p = load_lanes<T, V>(e + c * kW) * inv_se;
      const V delta = pw::label_indicator<V>(label, static_cast<T>(c));
      store_grad_lanes<T, V>(a.grad + base + c * S,
                             pw::softmax_focal_grad<V>(factor, p, f.q, delta), nt);
    }
  }
  // Ignored pixels count nowhere: loss and gradient 0, whatever their logits or grad_out (a
  // product with alpha_t = 0 would keep a NaN or an infinity).
  if (any_ignored) {
    for (int l = 0; l < kW; ++l) {
      if (lane<T>(label, l) >= T(0)) continue;
      lane<T>(loss, l) = T(0);
      if (a.grad)
        for (int64_t c = 0; c < C; ++c) a.grad[base + c * S + l] = T(0);
    }
  }
  if (a.loss) store_lanes<T, V>(a.loss + pix, loss);
  if constexpr (kProbs)  // dice_focal's fused first pass: p, as the gradient loop computed it
    for (int64_t c = 0; c < C; ++c)
      store_lanes<T, V>(e + c * kW, V(load_lanes<T, V>(e + c * kW) * inv_se));
  return loss;
}

template <int K, class T, class L>
double focal_chunk(const SoftmaxFocalArgs<T, L>& a, const detail::Chunk& ch) {
  using P = Packet<T>;
  T* e = class_buffer<T>(static_cast<size_t>(a.classes * kLanes<T>));
  const int64_t n = ch.plane, s0 = ch.begin - n * a.pixels, s1 = ch.end - n * a.pixels;
  const bool stream = stream_gradient(a.grad, a.images * a.classes * a.pixels, sizeof(T));
  double sum = 0.0;
  int64_t s =
      s0 + (sum_packets<T, 1>(
                s0, s1,
                [&](int64_t j, P* acc) { acc[0] += focal_pixels<K, T, L, P>(a, n, j, e, stream); },
                &sum) -
            s0);
  for (; s < s1; ++s) sum += static_cast<double>(focal_pixels<K, T, L, T>(a, n, s, e));
  if (stream) stream_fence();
  return sum;
}

// Images smaller than a packet are walked as one run of pixels (fold_images.hpp).
template <int K, class T, class L>
double softmax_run(const SoftmaxFocalArgs<T, L>& a) {
  const detail::ChunkGrid grid =
      class_axis_grid<T>(a.images, a.pixels, class_chunk_pixels(a.classes));
  const auto run = [&](const detail::Chunk& ch) {
    if (!fold_images<T>(a.pixels)) return focal_chunk<K>(a, ch);
    return folded_chunk<T>(a, ch, [](const auto& b, int64_t n, int64_t s, T* e, auto v) {
      return focal_pixels<K, T, L, decltype(v)>(b, n, s, e);
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

}  // namespace

template <class T>
double sigmoid_focal(const SigmoidFocalArgs<T>& args) {
  const SigmoidFocalArgs<T> a = flat_planes(args);  // small planes as one
  return with_weight_kind(a.weight, [&](auto wk) {
    return with_gamma_kind(static_cast<double>(a.gamma), [&](auto gk) {
      return sigmoid_run<T, decltype(wk)::value, decltype(gk)::value>(a);
    });
  });
}

template <class T, class L>
double softmax_focal(const SoftmaxFocalArgs<T, L>& a) {
  return with_gamma_kind(static_cast<double>(a.gamma),
                         [&](auto gk) { return softmax_run<decltype(gk)::value>(a); });
}

template <class T, class L>
double softmax_focal_dice_statistics(const SoftmaxFocalArgs<T, L>& a,
                                     const SoftmaxOverlapArgs<T, L>& dice, double* stats) {
  return with_gamma_kind(static_cast<double>(a.gamma), [&](auto gk) {
    return overlap_pixels::run_statistics<true>(
        dice, stats, [&](auto v, int64_t n, int64_t s, T* e) {
          return focal_pixels<decltype(gk)::value, T, L, decltype(v), true>(a, n, s, e);
        });
  });
}

template double sigmoid_focal<float>(const SigmoidFocalArgs<float>&);
template double sigmoid_focal<double>(const SigmoidFocalArgs<double>&);
template double softmax_focal<float, int32_t>(const SoftmaxFocalArgs<float, int32_t>&);
template double softmax_focal<float, int64_t>(const SoftmaxFocalArgs<float, int64_t>&);
template double softmax_focal<double, int32_t>(const SoftmaxFocalArgs<double, int32_t>&);
template double softmax_focal<double, int64_t>(const SoftmaxFocalArgs<double, int64_t>&);
#define SEGLOSS_INSTANTIATE(T, L)                                                    \
  template double softmax_focal_dice_statistics<T, L>(const SoftmaxFocalArgs<T, L>&, \
                                                      const SoftmaxOverlapArgs<T, L>&, double*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
