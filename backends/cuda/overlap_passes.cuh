// The passes of the overlap losses on CUDA, as templates over the BCE term so that bce_dice
// (bce_dice.cu) runs the same kernels with the term inside, as on the CPU
// (backends/cpu/overlap_kernels.hpp): pass 1 sums I, P, T (and the weighted BCE values) per
// plane, finalize turns the sums into the value and the per-plane coefficients a_p = G dS/dI,
// b_p = G dS/dP, and pass 2 writes
//   grad_i = (a_p t_i + b_p dP_i) dp_i/dx_i [+ bce_scale w_i dBCE_i/dx_i]
// with dP_i = 2 p_i for squared sums, else 1 (losses/overlap.hpp and docs/gradients.md derive it).
#pragma once

#include "../../core/pointwise.hpp"
#include "overlap.hpp"
#include "runtime.cuh"
#include "weight.cuh"

namespace segloss {
namespace cuda {
namespace overlap_detail {

// Offset in the call's header of the BCE term's gradient scale, which finalize leaves for pass 2.
constexpr size_t kBceScaleOffset = 16;

// The BCE term's per-plane constants (unused without the term).
template <class T>
struct BcePlane {
  const T* wrow = nullptr;
  const segloss::detail::BroadcastReader<T>* weight = nullptr;  // in the kernel's parameters
  T pos_weight = 1, zs = 1, zb = 0;

  __device__ static BcePlane make(const cpu::BceWithLogitsArgs<T>& b, int64_t plane) {
    BcePlane q;
    q.weight = &b.weight;
    q.wrow = weight_row(b.weight, plane);
    q.pos_weight =
        b.pos_weight ? b.pos_weight[b.pos_weight_count == 1 ? 0 : plane % b.channels] : T(1);
    q.zs = b.target_scale;
    q.zb = b.target_shift;
    return q;
  }
};

template <class T, bool kSigmoid, bool kBce>
struct StatsBody {
  using Part = T;
  cpu::OverlapArgs<T> a;
  cpu::BceWithLogitsArgs<T> bce;

  struct At {
    const T *x, *t;
    bool squared;
    BcePlane<T> b;

    struct In {
      T x, t;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], t[i]}; }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t s, int64_t, const In& in,
                                               T (&acc)[K]) const {
      const T xi = in.x, ti = in.t;
      T p;
      pw::LogitWithLog<T> lg;
      if constexpr (kBce) {  // the log's reciprocal too, for the BCE value
        lg = pw::logit_with_log<T>(xi);
        p = pw::sigmoid<T>(xi, lg);
      } else if constexpr (kSigmoid) {
        p = pw::sigmoid<T>(xi, pw::logit<T>(xi));
      } else {
        p = xi;
      }
      acc[0] += (p * ti);
      acc[1] += (squared ? p * p : p);
      acc[2] += (squared ? ti * ti : ti);
      if constexpr (kBce) {
        const T zz = ti * b.zs + b.zb;
        acc[3] +=
            (weight_at(*b.weight, b.wrow, s) * pw::bce_logits_value<T>(xi, zz, b.pos_weight, lg));
      }
    }
  };

  __device__ At at(int64_t plane) const {
    At q;
    q.x = a.x;
    q.t = a.t;
    q.squared = a.squared;
    if constexpr (kBce) q.b = BcePlane<T>::make(bce, plane);
    return q;
  }
};

template <class T, bool kSigmoid, bool kBce>
struct GradBody {
  using Part = T;
  cpu::OverlapArgs<T> a;
  cpu::BceWithLogitsArgs<T> bce;
  const double* coef;       // a_p at [plane], b_p at [planes + plane]
  const double* bce_scale;  // the BCE term's gradient scale (finalize wrote it)
  T* grad;

  struct At {
    const T *x, *t;
    T* grad;
    T ca, cb, bscale;
    bool squared;
    BcePlane<T> b;

    struct In {
      T x, t;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], t[i]}; }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t s, int64_t i, const In& in, T (&)[K]) const {
      const T xi = in.x, ti = in.t;
      T p, dp;
      pw::Logit<T> lg;
      if constexpr (kSigmoid) {
        lg = pw::logit<T>(xi);
        p = pw::sigmoid<T>(xi, lg);
        dp = pw::sigmoid_grad<T>(lg);
      } else {
        p = xi;
        dp = T(1);
      }
      const T gi = ca * ti, gp = squared ? cb * (p + p) : cb;
      T g = (gi + gp) * dp;
      if constexpr (kBce) {
        const T zz = ti * b.zs + b.zb;
        g += (bscale * weight_at(*b.weight, b.wrow, s)) *
             pw::bce_logits_grad<T>(xi, zz, b.pos_weight, lg);
      }
      grad[i] = g;
    }
  };

  __device__ At at(int64_t plane) const {
    At q;
    q.x = a.x;
    q.t = a.t;
    q.grad = grad;
    q.ca = static_cast<T>(coef[plane]);
    q.cb = static_cast<T>(coef[a.planes + plane]);
    q.bscale = kBce ? static_cast<T>(*bce_scale) : T(0);
    q.squared = a.squared;
    if constexpr (kBce) q.b = BcePlane<T>::make(bce, plane);
    return q;
  }
};

// One thread: the scores from the per-plane sums (stride K: I, P, T[, BCE sum]), the value,
// the per-plane coefficients, the BCE gradient scale, and the per-score losses when asked.
// Mirrors losses/internal/overlap_scores.hpp for the options CUDA supports (every score kept
// unless it is the excluded background; class weights 1; the linear form with gamma = 1).
template <class T>
__global__ void finalize_kernel(const double* sums, int K, OverlapForm f, Upstream<T> up, T* scores,
                                double* coef, double* value, double* bce_scale) {
  const int64_t C = f.channels, planes = f.images * C;
  const int64_t count = f.per_image ? planes : C;
  const int64_t excluded = f.include_background ? 0 : count / C;
  const double kept = static_cast<double>(count - excluded);
  const double g0 = up.grad_out && !up.per_score ? static_cast<double>(up.grad_out[0]) : 1.0;
  double* ca = coef;
  double* cb = coef + planes;
  double loss_sum = 0.0;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t c = j % C;
    double in = 0.0, pred = 0.0, targ = 0.0;  // in plane order, as the CPU
    for (int64_t n = 0; n < (f.per_image ? 1 : f.images); ++n) {
      const int64_t p = f.per_image ? j : n * C + c;
      in += sums[p * K + 0];
      pred += sums[p * K + 1];
      targ += sums[p * K + 2];
    }
    double a = 0.0, b = 0.0;
    if (c == 0 && !f.include_background) {
      if (scores) scores[j] = T(0);
    } else {
      const double num = f.a_n * in + f.smooth_nr;
      const double den = f.a_i * in + f.a_p * pred + f.a_t * targ + f.smooth_dr;
      const double s = num / den;
      const double ds_di = (f.a_n * den - f.a_i * num) / (den * den);
      const double ds_dp = -f.a_p * num / (den * den);
      loss_sum += 1.0 - s;
      if (scores) scores[j] = static_cast<T>(1.0 - s);
      const double gj = (up.per_score ? static_cast<double>(up.grad_out[j]) : g0) * f.dice_weight;
      const double G = gj * -1.0 * (f.mean ? 1.0 / kept : 1.0);  // dl/dS = -1 (l = 1 - S)
      a = G * ds_di;
      b = G * ds_dp;
    }
    for (int64_t n = 0; n < (f.per_image ? 1 : f.images); ++n) {
      const int64_t p = f.per_image ? j : n * C + c;
      ca[p] = a;
      cb[p] = b;
    }
  }
  const double dice = kept == 0.0 ? 0.0 : (f.mean ? loss_sum / kept : loss_sum);
  if (K == 4) {
    double bce_sum = 0.0;
    for (int64_t p = 0; p < planes; ++p) bce_sum += sums[p * K + 3];
    const double bce = f.bce_scale == 0.0 ? 0.0 : bce_sum * f.bce_scale;
    *value = f.bce_weight * bce + f.dice_weight * dice;
    *bce_scale = g0 * f.bce_weight * f.bce_scale;
  } else {
    *value = dice;
  }
}

template <class T, bool kSigmoid, bool kBce>
void run_passes(const Call& call, const PlaneGrid& g, const detail::Layout& l,
                const cpu::OverlapArgs<T>& a, const cpu::BceWithLogitsArgs<T>& bce,
                const OverlapForm& f, Upstream<T> up, T* grad, T* scores) {
  constexpr int K = kBce ? 4 : 3;
  double* partials = call.at<double>(l.partials);
  double* sums = call.at<double>(l.sums);
  double* coef = call.at<double>(l.coef);
  double* bce_scale = call.at<double>(kBceScaleOffset);
  plane_pass<K>(call, g, StatsBody<T, kSigmoid, kBce>{a, bce}, partials);
  combine(call, partials, g.planes, g.parts, K, sums);
  cuda::launch(finalize_kernel<T>, 1, 1, 0, call.stream(), sums, K, f, up, scores, coef,
               call.value(), bce_scale);
  call.launched();
  if (grad)
    plane_pass<0>(call, g, GradBody<T, kSigmoid, kBce>{a, bce, coef, bce_scale, grad}, nullptr);
}

// The whole call: the passes, then the value where r asks for it.
template <class T, bool kBce>
void run(const char* function, const cpu::OverlapArgs<T>& a, const cpu::BceWithLogitsArgs<T>& bce,
         const OverlapForm& f, Upstream<T> up, T* grad, T* scores, Result<T> r) {
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, kBce ? 4 : 3);
  Call call(function, l.total);
  if constexpr (kBce) {  // bce_dice reads logits: always the sigmoid
    run_passes<T, true, true>(call, g, l, a, bce, f, up, grad, scores);
  } else if (a.sigmoid) {
    run_passes<T, true, false>(call, g, l, a, bce, f, up, grad, scores);
  } else {
    run_passes<T, false, false>(call, g, l, a, bce, f, up, grad, scores);
  }
  if (r.device) call.device_value(r.device);
  if (r.host) *r.host = call.host_value();
}

}  // namespace overlap_detail
}  // namespace cuda
}  // namespace segloss
