// The passes of the overlap losses on CUDA, as templates over the BCE term so that bce_dice
// (bce_dice.cu) runs the same kernels with the term inside, as on the CPU
// (backends/cpu/overlap_kernels.hpp): pass 1 sums I, P, T (and the weighted BCE values) per
// plane, finalize turns the sums into the value and the per-plane coefficients a_p = G dS/dI,
// b_p = G dS/dP, and pass 2 writes
//   grad_i = (a_p t_i + b_p dP_i) dp_i/dx_i [+ bce_scale w_i dBCE_i/dx_i]
// with dP_i = 2 p_i for squared sums, else 1 (losses/overlap.hpp and docs/gradients.md derive it).
#pragma once

#include <type_traits>

#include "../../core/pointwise.hpp"
#include "overlap.hpp"
#include "runtime.cuh"
#include "weight.cuh"
#include "weight_sum.cuh"

namespace segloss {
namespace cuda {
namespace overlap_detail {

// Offset in the call's header of the BCE term's gradient scale, which finalize leaves for pass 2.
constexpr size_t kBceScaleOffset = header::kBceScale;

// The BCE term's per-plane constants (unused without the term).
template <class T>
struct BcePlane {
  const T* wrow = nullptr;
  const segloss::detail::BroadcastReader<T>* weight = nullptr;  // in the kernel's parameters
  segloss::detail::BroadcastKind wkind = segloss::detail::BroadcastKind::absent;  // weight->kind
  T pos_weight = 1, zs = 1, zb = 0;

  __device__ static BcePlane make(const cpu::BceWithLogitsArgs<T>& b, int64_t plane) {
    BcePlane q;
    q.weight = &b.weight;
    q.wkind = b.weight.kind;
    q.wrow = weight_row(b.weight, plane);
    q.pos_weight =
        b.pos_weight ? b.pos_weight[b.pos_weight_count == 1 ? 0 : plane % b.channels] : T(1);
    q.zs = b.target_scale;
    q.zb = b.target_shift;
    return q;
  }
  // The weight of element s; 1 without reading anything when kWeighted is false.
  template <bool kWeighted>
  __device__ __forceinline__ T w(int64_t s) const {
    if constexpr (kWeighted)
      return weight_at(wkind, *weight, wrow, s);
    else
      return T(1);
  }
};

// The overlap's per-pixel weight w of a plane (cpu::OverlapArgs::weight, read through
// weight.cuh): the intersection's weight w^2 and that of the P and T sums, w^2 (w_squared_pt)
// or w, as backends/cpu/overlap_kernels.hpp's PixelWeight.
template <class T>
struct PixelWeight {
  const segloss::detail::BroadcastReader<T>* reader = nullptr;  // in the kernel's parameters
  segloss::detail::BroadcastKind kind = segloss::detail::BroadcastKind::absent;  // reader->kind
  const T* row = nullptr;
  bool weighted = false, w2 = true;

  __device__ static PixelWeight make(const cpu::OverlapArgs<T>& a, int64_t plane) {
    PixelWeight q;
    q.reader = &a.weight;
    q.kind = a.weight.kind;
    q.row = weight_row(a.weight, plane);
    q.weighted = a.weight.kind != segloss::detail::BroadcastKind::absent;
    q.w2 = a.w_squared_pt;
    return q;
  }
  __device__ __forceinline__ void at(int64_t s, T& w_i, T& w_pt) const {
    const T w = weight_at(kind, *reader, row, s);
    w_i = w * w;
    w_pt = w2 ? w_i : w;
  }
};

// The inputs of elements i .. i + 3 of x alone (16-byte aligned), for the gradient pass that
// reads the targets as bits (runtime.cuh TargetBits); read_quad (runtime.cuh) reads x and t.
template <class In>
__device__ __forceinline__ void read_quad_x(const float* x, int64_t i, In (&in)[4]) {
  float xv[4];
  load_quad(x + i, xv);
  for (int k = 0; k < 4; ++k) in[k].x = xv[k];
}

// kWeights: a weight may be present (the overlap's pixel weight, the BCE term's), read through
// weight.cuh; false when the caller knows that none is: the loop then has no weight code, fewer
// registers and more blocks per multiprocessor (bench/RESULTS.md, "CUDA on NVIDIA H200").
// kBceSum (bce_dice): pass 1 sums the BCE term too (K = 4); false when the gradient pass sums
// it (run_value_in_gradient), which leaves the Dice sums (K = 3) with the same p: p still
// comes from logit_with_log, as with the BCE sum, so the Dice sums have the same bits.
template <class T, bool kSigmoid, bool kBce, bool kWeights = true, bool kBceSum = kBce>
struct StatsBody {
  using Part = T;
  cpu::OverlapArgs<T> a;
  cpu::BceWithLogitsArgs<T> bce;
  // bce_dice's gradient, if the call writes one: its statistics pass runs with 16-byte loads only
  // where its gradient pass can too, so that the value (whose BCE term one schedule sums in the
  // gradient pass) takes one cut of the sums. The other losses' gradient pass sums nothing, so
  // their value does not depend on the gradient's alignment; they leave it null.
  const T* grad = nullptr;
  TargetBits bits = {};  // where the quad pass writes the targets as bits (none: data null)

  struct At {
    const T *x, *t;
    bool squared;
    PixelWeight<T> w;
    BcePlane<T> b;
    TargetBits bits;
    static constexpr int kTargetBits = 1;  // writes them (runtime.cuh)

    struct In {
      T x, t;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], t[i]}; }
    // 16-byte loads (runtime.cuh quad_pass_kernel), for the weight-free float passes only
    // (kQuads, as GradBody's, below).
    static constexpr bool kQuads = !kWeights && std::is_same_v<T, float>;
    __device__ __forceinline__ void load_quad(int64_t i, In (&in)[4]) const {
      read_quad(x, t, i, in);
    }

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
      T pt = p * ti, pk = squared ? p * p : p, tk = squared ? ti * ti : ti;
      if (kWeights && w.weighted) {  // wI p t, wP p^k, wP t^k
        T w_i, w_pt;
        w.at(s, w_i, w_pt);
        pt *= w_i;
        pk *= w_pt;
        tk *= w_pt;
      }
      acc[0] += pt;
      acc[1] += pk;
      acc[2] += tk;
      if constexpr (kBce && kBceSum) {
        const T zz = ti * b.zs + b.zb;
        acc[3] += b.template w<kWeights>(s) * pw::bce_logits_value<T>(xi, zz, b.pos_weight, lg);
      }
    }
  };

  // Whether the arrays quad_pass_kernel reads, and the call's gradient, are 16-byte aligned
  // (runtime.cuh runs_quads).
  bool aligned16() const {
    return cuda::aligned16(a.x) && cuda::aligned16(a.t) && cuda::aligned16(grad);
  }

  __device__ At at(int64_t plane) const {
    At q;
    q.x = a.x;
    q.t = a.t;
    q.squared = a.squared;
    q.w = PixelWeight<T>::make(a, plane);
    if constexpr (kBce) q.b = BcePlane<T>::make(bce, plane);
    q.bits = bits;
    return q;
  }
};

// bce_dice's run_value_in_gradient: kWithLog takes p and dp/dx from logit_with_log (as pass 1
// does with the BCE term), so the gradient may differ from the other schedule's in the last bits
// (r = (2 + e) / ((1 + e)(2 + e)) here, 1 / (1 + e) there); kBceValue also sums the weighted BCE
// values (K = 1), as pass 1 does with kBceSum: the same expression from the same logit_with_log,
// so the same bits. A gradient without a value (backward) takes kWithLog alone: the same
// gradient bits as value_and_grad's, without the BCE value's series.
template <class T, bool kSigmoid, bool kBce, bool kWeights = true, bool kWithLog = false,
          bool kBceValue = false>
struct GradBody {
  static_assert(!kWithLog || (kBce && kSigmoid), "kWithLog: bce_dice's gradient pass only");
  static_assert(!kBceValue || kWithLog, "kBceValue needs logit_with_log");
  using Part = T;
  cpu::OverlapArgs<T> a;
  cpu::BceWithLogitsArgs<T> bce;
  const double* coef;       // a_p at [plane], b_p at [planes + plane]
  const double* bce_scale;  // the BCE term's gradient scale (finalize wrote it)
  T* grad;
  TargetBits bits = {};  // the statistics pass's target bits, read instead of t (none: data null)

  struct At {
    const T *x, *t;
    T* grad;
    T ca, cb, bscale;
    bool squared;
    PixelWeight<T> w;
    BcePlane<T> b;
    TargetBits bits;
    static constexpr int kTargetBits = 2;  // reads them (runtime.cuh)

    struct In {
      T x, t;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], t[i]}; }
    // 16-byte loads and stores (runtime.cuh quad_pass_kernel); the pass stores the gradient
    // that operator() returns. Only in float without a weight (ptxas, sm_90): there the passes
    // keep about their registers (session 16, before the target bits: statistics 40 to 60,
    // gradient 39 to 48; with them 40 to 55 and 41 to 48), while with a weight the quad kernel
    // took 80 registers and spilled 16 to 24 bytes where the scalar one has 64 to 80 and spills
    // 0 to 8, and in double it took 12 to 18 registers more (a block fewer per multiprocessor).
    // The float pass that sums the BCE value and the one of probabilities ask for 5 blocks per
    // multiprocessor: unbounded ptxas gave them 53 and 58 registers (4 blocks; 46 and 40 in
    // plane_pass_kernel), bounded 48 and 40 (41 with the target bits), no spills.
    static constexpr bool kQuads = !kWeights && std::is_same_v<T, float>;
    static constexpr int kMinBlocks = kBceValue || !kSigmoid ? 5 : 0;
    __device__ __forceinline__ void load_quad(int64_t i, In (&in)[4]) const {
      read_quad(x, t, i, in);
    }
    __device__ __forceinline__ void load_quad_x(int64_t i, In (&in)[4]) const {
      read_quad_x(x, i, in);
    }
    __device__ __forceinline__ void store(int64_t i, T g) const { grad[i] = g; }
    __device__ __forceinline__ void store_quad(int64_t i, const T (&g)[4]) const {
      cuda::store_quad(grad + i, g);
    }

    template <int K>
    __device__ __forceinline__ T operator()(int64_t s, int64_t, const In& in, T (&acc)[K]) const {
      const T xi = in.x, ti = in.t;
      T p, dp;
      std::conditional_t<kWithLog, pw::LogitWithLog<T>, pw::Logit<T>> lg;
      if constexpr (kWithLog) {
        lg = pw::logit_with_log<T>(xi);
        p = pw::sigmoid<T>(xi, lg);
        dp = pw::sigmoid_grad<T>(lg);
      } else if constexpr (kSigmoid) {
        lg = pw::logit<T>(xi);
        p = pw::sigmoid<T>(xi, lg);
        dp = pw::sigmoid_grad<T>(lg);
      } else {
        p = xi;
        dp = T(1);
      }
      T gi = ca * ti, gp = squared ? cb * (p + p) : cb;
      if (kWeights && w.weighted) {
        T w_i, w_pt;
        w.at(s, w_i, w_pt);
        gi *= w_i;
        gp *= w_pt;
      }
      T g = (gi + gp) * dp;
      if constexpr (kBce) {
        const T zz = ti * b.zs + b.zb;
        const T wb = b.template w<kWeights>(s);
        g += (bscale * wb) * pw::bce_logits_grad<T>(xi, zz, b.pos_weight, lg);
        if constexpr (kBceValue) acc[0] += wb * pw::bce_logits_value<T>(xi, zz, b.pos_weight, lg);
      }
      return g;
    }
  };

  // Whether the arrays quad_pass_kernel reads and writes are 16-byte aligned (runs_quads).
  bool aligned16() const {
    return cuda::aligned16(a.x) && cuda::aligned16(a.t) && cuda::aligned16(grad);
  }

  __device__ At at(int64_t plane) const {
    At q;
    q.x = a.x;
    q.t = a.t;
    q.grad = grad;
    q.ca = pw::narrow_coefficient<T>(coef[plane]);
    q.cb = pw::narrow_coefficient<T>(coef[a.planes + plane]);
    q.bscale = kBce ? static_cast<T>(*bce_scale) : T(0);
    q.squared = a.squared;
    q.w = PixelWeight<T>::make(a, plane);
    if constexpr (kBce) q.b = BcePlane<T>::make(bce, plane);
    q.bits = bits;
    return q;
  }
};

// Gives a statistics pass and the gradient pass after it (in the same call) the target bits
// where both run quad_pass_kernel (runtime.cuh TargetBits); else neither has them.
template <class Stats, class Grad>
void share_target_bits(const PlaneGrid& g, Stats& stats, Grad& grad, const TargetBits& bits) {
  if (bits.data && runs_quads(g, stats) && runs_quads(g, grad)) stats.bits = grad.bits = bits;
}

// A pass of the overlap bodies: with the target bits, quad_pass_kernel without asking
// runs_quads again (share_target_bits did: both passes must run it, even if another thread
// switches quad_loads in between); else plane_pass's choice.
template <int K, class Body>
void overlap_pass(const Call& call, const PlaneGrid& g, const Body& body, double* partials,
                  PassOrder order = PassOrder::forward) {
  if constexpr (QuadBody<Body>) {
    if (body.bits.data) return quad_pass<K>(call, g, body, partials, order);
  }
  plane_pass<K>(call, g, body, partials, order);
}

// Offset in the call's header of the counts of scores kept and skipped (two doubles), which
// finalize leaves for a caller that asks for them (the softmax losses keep their first bad label
// at 24).
constexpr size_t kCountsOffset = header::kCounts;

// A score of the finalize: S and its slopes, and how it enters the loss.
struct FinalScore {
  double score = 0.0, ds_di = 0.0, ds_dp = 0.0, cw = 1.0;
  bool counted = false;  // in the loss: kept, or fixed by the empty policy
  bool kept = false;     // kept with its formula (a fixed score has no gradient)
  bool skipped = false;
};

// Score j from the sums (stride K: I, P, T, ...), as losses/internal/overlap_scores.hpp's
// overlap_scores: the planes of the score added in plane order, the class weight, the
// background left out, the empty policy for T = 0, then S and its slopes.
template <class T>
__device__ FinalScore final_score(const double* sums, int K, const OverlapForm& f,
                                  const T* class_weight, int64_t j) {
  const int64_t C = f.channels, c = j % C;
  double in = 0.0, pred = 0.0, targ = 0.0;  // in plane order, as the CPU
  for (int64_t n = 0; n < (f.per_image ? 1 : f.images); ++n) {
    const int64_t p = f.per_image ? j : n * C + c;
    in += sums[p * K + 0];
    pred += sums[p * K + 1];
    targ += sums[p * K + 2];
  }
  FinalScore s;
  if (class_weight) s.cw = static_cast<double>(class_weight[c]);
  if (c == 0 && !f.include_background) return s;
  if (targ == 0.0 && f.empty != EmptyPolicy::formula) {
    if (f.empty == EmptyPolicy::skip) {
      s.skipped = true;
      return s;
    }
    s.counted = true;
    s.score = f.empty == EmptyPolicy::one ? 1.0 : 0.0;
    return s;
  }
  const double num = f.a_n * in + f.smooth_nr;
  const double den = f.a_i * in + f.a_p * pred + f.a_t * targ + f.smooth_dr;
  s.score = num / den;
  s.ds_di = (f.a_n * den - f.a_i * num) / (den * den);
  s.ds_dp = -f.a_p * num / (den * den);
  s.counted = s.kept = true;
  return s;
}

// bce_dice's BCE term: the factor of its sum (bce_scale, times the device's 1/W with mean_over
// weight_sum), and the value w_bce BCE + w_dice Dice (the CPU's: two rounded products, no FMA),
// with the parts when asked.
__device__ __forceinline__ double bce_mean_scale(const OverlapForm& f) {
  return f.bce_scale_by ? f.bce_scale * *f.bce_scale_by : f.bce_scale;
}

__device__ __forceinline__ void bce_dice_value(double bce_sum, double dice, const OverlapForm& f,
                                               double* value) {
  const double bs = bce_mean_scale(f);
  const double bce = bs == 0.0 ? 0.0 : bce_sum * bs;
  *value = mul_rn(f.bce_weight, bce) + mul_rn(f.dice_weight, dice);
  if (f.parts) {
    f.parts[0] = bce;
    f.parts[1] = dice;
  }
}

// One block, which stages the sums (runtime.cuh stage_sums), then one thread: the scores from
// the per-plane sums (stride K: I, P, T[, BCE sum]), the value, the per-plane coefficients, the
// BCE gradient scale, the per-score losses when asked, and the counts of scores kept and
// skipped (counts[0], counts[1]). Mirrors
// losses/internal/overlap_scores.hpp: overlap_totals, overlap_value, overlap_values and
// overlap_slopes, with the per-score math of core/pointwise.hpp (overlap_score_loss, _slope).
// The scores are computed twice (the mean log and clamp forms need the totals before any
// slope) rather than stored. A class weight that is negative or not finite sets
// kBadClassWeight in the flag and makes the value, the scores and the coefficients NaN.
// A one-block step (runtime.cuh run_step, combine_then). No __launch_bounds__ on its kernels:
// it made ptxas spill (64 registers) in the one thread's long code.
template <class T>
struct Finalize {
  const double* all_sums;
  int K;
  OverlapForm f;
  Upstream<T> up;
  T* scores;
  double *coef, *value, *bce_scale, *counts;
  int* flag;
  T* device_out = nullptr;  // the caller's device value, when this step makes the call's last value
  __device__ void operator()() const;
};

template <class T>
__device__ void Finalize<T>::operator()() const {
  SEGLOSS_STATIC_SHARED(double, staged, [kStagedDoubles]);
  const int64_t C = f.channels, planes = f.images * C;
  const double* sums = stage_sums(all_sums, planes * K, staged);
  if (threadIdx.x != 0) return;
  const int64_t count = f.per_image ? planes : C;
  // The images whose planes get coefficients: those of the sums, or in the split without
  // per_image the shard's (the sums are then one image of the batch's channel sums).
  const int64_t coef_images = f.coef_images > 0 ? f.coef_images : f.images;
  const int64_t coef_planes = coef_images * C;
  const double g0 = up.grad_out && !up.per_score ? static_cast<double>(up.grad_out[0]) : 1.0;
  double* ca = coef;
  double* cb = coef + coef_planes;
  bool bad_weight = false;
  if (up.class_weight)
    for (int64_t c = 0; c < C; ++c) {
      const double w = static_cast<double>(up.class_weight[c]);
      if (!(w >= 0.0 && w <= 1.7976931348623157e308)) bad_weight = true;  // NaN, < 0 or inf
    }
  if (bad_weight) {
    *flag |= kBadClassWeight;
    for (int64_t p = 0; p < coef_planes; ++p) ca[p] = cb[p] = NAN;
    for (int64_t j = 0; scores && j < count; ++j) scores[j] = static_cast<T>(NAN);
    *value = NAN;
    if (bce_scale) *bce_scale = NAN;
    if (f.parts) f.parts[0] = f.parts[1] = NAN;
    counts[0] = counts[1] = 0.0;
    if (device_out) store_value(value, flag, device_out);
    return;
  }
  // overlap_totals: n, sum_j c_j l_j, sum_j c_j S_j over the scores counted.
  double kept = 0.0, skipped = 0.0, loss_sum = 0.0, score_sum = 0.0;
  for (int64_t j = 0; j < count; ++j) {
    const FinalScore s = final_score<T>(sums, K, f, up.class_weight, j);
    if (s.skipped) skipped += 1.0;
    if (!s.counted) continue;
    kept += 1.0;
    loss_sum += s.cw * pw::overlap_score_loss(s.score, f.gamma, f.log, f.clamp);
    score_sum += s.cw * s.score;
  }
  counts[0] = kept;
  counts[1] = skipped;
  if (up.totals) {  // the split with per_image: the batch's totals make the mean and the value
    kept = up.totals[0];
    loss_sum = up.totals[1];
    score_sum = up.totals[2];
  }
  // overlap_value
  double dice = 0.0;
  if (kept != 0.0) {
    if (f.mean && (f.log || f.clamp))  // the form of the mean score
      dice = pw::overlap_score_loss(score_sum / kept, 1.0, f.log, f.clamp);
    else
      dice = f.mean ? loss_sum / kept : loss_sum;
  }
  // overlap_slopes (G_j = dL/dS_j, 0 for a score not kept) and overlap_coefficients; the
  // per-score values of reduction none (overlap_values).
  const bool mean = !up.per_score && f.mean;
  const double inv_n = kept == 0.0 ? 0.0 : 1.0 / kept;
  double form_slope = 0.0;  // dL/dM of the mean log or clamp forms
  if (mean && (f.log || f.clamp) && kept != 0.0)
    form_slope = pw::overlap_score_slope(score_sum / kept, 1.0, f.log, f.clamp);
  for (int64_t j = 0; j < count; ++j) {
    const FinalScore s = final_score<T>(sums, K, f, up.class_weight, j);
    if (scores)
      scores[j] =
          s.counted
              ? static_cast<T>(s.cw * pw::overlap_score_loss(s.score, f.gamma, f.log, f.clamp))
              : T(0);
    double G = 0.0;
    if (s.kept && kept != 0.0) {
      // bce_dice's Dice term: the CPU passes g times dice_weight as g.
      const double gj = (up.per_score ? static_cast<double>(up.grad_out[j]) : g0) * f.dice_weight;
      if (mean && (f.log || f.clamp))
        G = gj * form_slope * s.cw * inv_n;
      else
        G = gj * s.cw * pw::overlap_score_slope(s.score, f.gamma, f.log, f.clamp) *
            (mean ? inv_n : 1.0);
    }
    const double a = G * s.ds_di, b = G * s.ds_dp;
    for (int64_t n = 0; n < (f.per_image ? 1 : coef_images); ++n) {
      const int64_t p = f.per_image ? j : n * C + j;
      ca[p] = a;
      cb[p] = b;
    }
  }
  // bce_dice: the BCE term's gradient scale; its value here from pass 1's sums (K = 4), or by
  // BceValue after the gradient pass (bce_in_gradient: the Dice value waits at *value).
  if (K == 4 || f.bce_in_gradient) *bce_scale = g0 * f.bce_weight * bce_mean_scale(f);
  if (K == 4) {
    double bce_sum = 0.0;
    for (int64_t p = 0; p < planes; ++p) bce_sum += sums[p * K + 3];
    bce_dice_value(bce_sum, dice, f, value);
  } else {
    *value = dice;
  }
  if (device_out) store_value(value, flag, device_out);
}

// bce_dice run_value_in_gradient's last step: the BCE sums of the planes (the gradient pass's,
// combined) added in plane order, as Finalize adds them at K = 4, and the value and the
// parts from them and the Dice value that finalize left at *value. After a bad class weight
// (finalize made the value and the parts NaN) it changes nothing. A one-block step, as Finalize.
// (A template, as the other kernels of this header, so that each .cu including it may
// instantiate it: T is not used.)
template <class T>
struct BceValue {
  const double* all_bce_sums;
  OverlapForm f;
  double* value;
  const int* flag;
  T* device_out = nullptr;  // the caller's device value, if any
  __device__ void operator()() const;
};

template <class T>
__device__ void BceValue<T>::operator()() const {
  SEGLOSS_STATIC_SHARED(double, staged, [kStagedDoubles]);
  const int64_t planes = f.images * f.channels;
  const double* bce_sums = stage_sums(all_bce_sums, planes, staged);
  if (threadIdx.x != 0) return;
  if (!(*flag & kBadClassWeight)) {
    double bce_sum = 0.0;
    for (int64_t p = 0; p < planes; ++p) bce_sum += bce_sums[p];
    bce_dice_value(bce_sum, *value, f, value);
  }
  if (device_out) store_value(value, flag, device_out);
}

// The order of a gradient pass that follows the statistics pass over the same inputs in the same
// call: from the end (runtime.cuh quad_pass_kernel), so that it starts on the ranges the
// statistics pass read last, unless detail::gradient_from_the_end is off (the bench's A/B).
inline PassOrder after_statistics() {
  return detail::gradient_from_the_end() ? PassOrder::from_the_end : PassOrder::forward;
}

// The error of a bad class weight that a host value reports (bce_dice: its Dice term's).
inline const char* bad_class_weight_message(bool bce_dice) {
  return bce_dice ? "options.dice.class_weight holds a negative or non-finite value (checked on "
                    "the device)"
                  : "options.class_weight holds a negative or non-finite value (checked on the "
                    "device)";
}

// bce_dice's value and gradient with the BCE term summed in the gradient pass instead of pass
// 1 (the default; detail::bce_value_in_gradient). Pass 1 sums I, P, T only; finalize leaves the
// Dice value, the coefficients and the BCE gradient scale; the gradient pass writes the gradient
// and sums the BCE values per block (in pass 1's order: the same bits); combine adds them per
// plane into the sums region's last quarter (layout(g, 4) holds 4 doubles per plane, the Dice
// sums take 3); BceValue makes the value. Why: on the H200 pass 1 was bound by
// instructions (bench/RESULTS.md, "CUDA on NVIDIA H200"), the BCE value's series being much of
// its work, while bce_with_logits, whose one pass makes the BCE value and gradient, ran at 0.78
// of the copy. On the H200 (2026-12-04) 0.425 ms against 0.430 for the other schedule
// (segloss-cuda-bench's bce_dice_vg_stats_bce line, the same process); with a BCE weight 0.794
// against 0.986 (bce_dice_weighted_vg_stats_bce).
// With value_wanted false (backward: no value, no parts) the gradient pass writes the same
// gradient without summing the BCE values, and the last combine and kernel do not run.
// device_out: the caller's device value, which the last step writes (BceValue).
template <class T, bool kWeights>
void run_value_in_gradient(const Call& call, const PlaneGrid& g, const detail::Layout& l,
                           const cpu::OverlapArgs<T>& a, const cpu::BceWithLogitsArgs<T>& bce,
                           OverlapForm f, Upstream<T> up, T* grad, T* device_out, bool value_wanted,
                           const TargetBits& bits) {
  double* partials = call.at<double>(l.partials);
  double* sums = call.at<double>(l.sums);
  double* bce_sums = sums + 3 * g.planes;
  double* coef = call.at<double>(l.coef);
  double* bce_scale = call.at<double>(kBceScaleOffset);
  f.bce_in_gradient = true;
  StatsBody<T, true, true, kWeights, false> stats{a, bce, grad};
  const auto statistics = [&] {
    overlap_pass<3>(call, g, stats, partials);
    combine_then(call, partials, g.planes, g.parts, 3, sums,
                 Finalize<T>{sums, 3, f, up, nullptr, coef, call.value(), bce_scale,
                             call.at<double>(kCountsOffset), call.flag()});
  };
  if (!value_wanted) {
    GradBody<T, true, true, kWeights, true, false> gradient{a, bce, coef, bce_scale, grad};
    share_target_bits(g, stats, gradient, bits);
    statistics();
    overlap_pass<0>(call, g, gradient, nullptr, after_statistics());
    return;
  }
  GradBody<T, true, true, kWeights, true, true> gradient{a, bce, coef, bce_scale, grad};
  share_target_bits(g, stats, gradient, bits);
  statistics();
  overlap_pass<1>(call, g, gradient, partials, after_statistics());
  combine_then(call, partials, g.planes, g.parts, 1, bce_sums,
               BceValue<T>{bce_sums, f, call.value(), call.flag(), device_out});
}

// value_wanted: the caller reads the value or the parts (a host or device value); false for a
// backward, which bce_dice's run_value_in_gradient then spares the BCE value. device_out: the
// caller's device value (or null), written by the step that makes the value (Finalize, or
// BceValue after the gradient pass): no store kernel after the passes.
template <class T, bool kSigmoid, bool kBce, bool kWeights = true>
void run_passes(const Call& call, const PlaneGrid& g, const detail::Layout& l,
                const cpu::OverlapArgs<T>& a, const cpu::BceWithLogitsArgs<T>& bce,
                const OverlapForm& f, Upstream<T> up, T* grad, T* scores, T* device_out,
                bool value_wanted, const TargetBits& bits) {
  constexpr int K = kBce ? 4 : 3;
  double* partials = call.at<double>(l.partials);
  double* sums = call.at<double>(l.sums);
  double* coef = call.at<double>(l.coef);
  double* bce_scale = call.at<double>(kBceScaleOffset);
  // bce_dice with a gradient: the BCE value in the gradient pass, by default. With a weight (the
  // BCE's or the Dice term's) the registers moved both ways (ptxas, sm_90, float: pass 1 80 ->
  // 64 with 16 bytes spilled, the gradient pass 64 with spills -> 78), yet on the H200 the call
  // with a BCE weight ran at 0.794 ms this way against 0.986 (2026-12-04); a Dice pixel weight
  // takes the same passes, not timed. detail::set_bce_value_in_gradient_weighted(false) runs the
  // other schedule (the tests, the bench's bce_dice_weighted_vg_stats_bce). Scores (none for
  // bce_dice today) would need pass 1's finalize: the other schedule.
  if constexpr (kBce) {
    const bool in_gradient =
        kWeights ? detail::bce_value_in_gradient_weighted() : detail::bce_value_in_gradient();
    if (grad && !scores && in_gradient) {
      run_value_in_gradient<T, kWeights>(call, g, l, a, bce, f, up, grad, device_out, value_wanted,
                                         bits);
      return;
    }
  }
  StatsBody<T, kSigmoid, kBce, kWeights> stats{a, bce, kBce ? grad : nullptr};
  GradBody<T, kSigmoid, kBce, kWeights> gradient{a, bce, coef, bce_scale, grad};
  if (grad) share_target_bits(g, stats, gradient, bits);
  overlap_pass<K>(call, g, stats, partials);
  combine_then(call, partials, g.planes, g.parts, K, sums,
               Finalize<T>{sums, K, f, up, scores, coef, call.value(), bce_scale,
                           call.at<double>(kCountsOffset), call.flag(), device_out});
  if (grad) overlap_pass<0>(call, g, gradient, nullptr, after_statistics());
}

// The whole call: the passes (whose last step writes r.device, the device value), then the host
// value where r asks for it. bce_weight (bce_dice's BCE weight, bce_weight_count values on the
// device): the BCE term's mean over the weight sum, W reduced first (weight_sum.cuh) and its 1/W
// read by the finalize step. host_parts (bce_dice's
// parts, two host doubles: BCE, Dice): copied back from the header's kParts slot, which waits
// for the stream (once, with the host value when r asks for one too).
template <class T, bool kBce>
void run(const char* function, const cpu::OverlapArgs<T>& a, const cpu::BceWithLogitsArgs<T>& bce,
         OverlapForm f, Upstream<T> up, T* grad, T* scores, Result<T> r,
         OverlapCounts* counts = nullptr, const T* bce_weight = nullptr,
         int64_t bce_weight_count = 0, double* host_parts = nullptr) {
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  detail::Layout l = detail::layout(g, kBce ? 4 : 3);
  constexpr auto absent = segloss::detail::BroadcastKind::absent;
  const bool plain = a.weight.kind == absent && (!kBce || bce.weight.kind == absent);
  // The target bits' region (runtime.cuh TargetBits) where the passes may take them: a float
  // call with a gradient and no weight (share_target_bits decides), whose workspace can hold
  // them (a caller's of cuda::workspace_size() bytes, or the pool under capture, may not: the
  // call then reads the targets, with the same results).
  const size_t bits_at = l.total;
  const size_t bits_bytes =
      detail::align_up(static_cast<size_t>(g.blocks() * target_bits_range_bytes(g)));
  const bool may_pack = std::is_same_v<T, float> && plain && grad && detail::target_bits() &&
                        detail::quad_loads() && a.plane_size % 4 == 0 && aligned16(a.x) &&
                        aligned16(a.t) && aligned16(grad) &&
                        detail::workspace_holds(bits_at + bits_bytes);
  const int64_t range_bytes = may_pack ? target_bits_range_bytes(g) : 0;
  if (may_pack) l.total += bits_bytes;
  Call call(function, l.total);
  const TargetBits bits{may_pack ? call.at<uint8_t>(bits_at) : nullptr, range_bytes};
  if (kBce && host_parts) f.parts = call.at<double>(header::kParts);
  if (kBce && bce_weight)
    f.bce_scale_by = weight_sum_scale(call, g, l.partials, bce_weight, bce_weight_count,
                                      a.planes * a.plane_size);
  const bool value_wanted = !kBce || r.host || r.device || host_parts;
  const auto passes = [&](auto sigmoid, auto bce_term, auto weights) {
    run_passes<T, decltype(sigmoid)::value, decltype(bce_term)::value, decltype(weights)::value>(
        call, g, l, a, bce, f, up, grad, scores, r.device, value_wanted, bits);
  };
  using yes = std::true_type;
  using no = std::false_type;
  if constexpr (kBce) {  // bce_dice reads logits: always the sigmoid
    if (plain)
      passes(yes{}, yes{}, no{});
    else
      passes(yes{}, yes{}, yes{});
  } else if (a.sigmoid) {
    if (plain)
      passes(yes{}, no{}, no{});
    else
      passes(yes{}, no{}, yes{});
  } else {
    if (plain)
      passes(no{}, no{}, no{});
    else
      passes(no{}, no{}, yes{});
  }
  if (counts) {  // asked for: copied back, with a wait
    double c[2];
    check(cudaMemcpyAsync(c, call.at<double>(kCountsOffset), sizeof(c), cudaMemcpyDeviceToHost,
                          call.stream()),
          function, "cudaMemcpyAsync of the counts");
    check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
    counts->kept = static_cast<int64_t>(c[0]);
    counts->skipped = static_cast<int64_t>(c[1]);
  }
  if (kBce && host_parts) {  // copied back before the value's wait (host_value), or its own
    check(cudaMemcpyAsync(host_parts, f.parts, 2 * sizeof(double), cudaMemcpyDeviceToHost,
                          call.stream()),
          function, "cudaMemcpyAsync of the parts");
    if (!r.host) check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
  }
  if (r.host) *r.host = call.host_value(bad_class_weight_message(kBce));
}

// ---- the statistics / finalize split ----

// statistics: pass 1 and its combine, the per-plane sums copied back (waits).
template <class T, bool kBce>
void run_statistics(const char* function, const cpu::OverlapArgs<T>& a,
                    const cpu::BceWithLogitsArgs<T>& bce, double* host_sums) {
  constexpr int K = kBce ? 4 : 3;
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, K);
  Call call(function, l.total);
  double* partials = call.at<double>(l.partials);
  double* sums = call.at<double>(l.sums);
  if (kBce || a.sigmoid)
    plane_pass<K>(call, g, StatsBody<T, true, kBce>{a, bce}, partials);
  else
    plane_pass<K>(call, g, StatsBody<T, false, false>{a, bce}, partials);
  combine(call, partials, g.planes, g.parts, K, sums);
  check(cudaMemcpyAsync(host_sums, sums, static_cast<size_t>(a.planes) * K * sizeof(double),
                        cudaMemcpyDeviceToHost, call.stream()),
        function, "cudaMemcpyAsync of the statistics");
  check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
}

// Copies n doubles of the host's statistics into the workspace, on the call's stream.
inline void upload(const Call& call, double* to, const double* from, size_t n) {
  if (n == 0) return;
  check(cudaMemcpyAsync(to, from, n * sizeof(double), cudaMemcpyHostToDevice, call.stream()),
        call.function(), "cudaMemcpyAsync of the reduced statistics");
}

// finalize: the fused call's workspace, whose partials region (unused: no statistics pass)
// receives the reduced global sums and the BCE gradient scale, and whose sums region the
// shard's local sums (per_image); then the finalize kernel and the gradient pass.
template <class T, bool kBce>
double run_finalize(const char* function, const cpu::OverlapArgs<T>& a,
                    const cpu::BceWithLogitsArgs<T>& bce, OverlapForm f, Upstream<T> up,
                    const OverlapSplit& s, T* grad) {
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, kBce ? 4 : 3);
  Call call(function, l.total);
  double* global = call.at<double>(l.partials);  // blocks * K >= 3 C + 1 doubles
  double* sums = call.at<double>(l.sums);
  double* coef = call.at<double>(l.coef);
  double* bce_scale = global + s.global_size;
  upload(call, global, s.global, s.global_size);
  if (kBce) upload(call, bce_scale, &s.bce_grad_scale, 1);
  const double* from = global;
  if (f.per_image) {  // the shard's scores from its own sums, the mean from the batch's totals
    upload(call, sums, s.local, static_cast<size_t>(a.planes) * 3);
    up.totals = global;
    from = sums;
  } else {  // the batch's scores: one image of reduced channel sums, for every image's planes
    f.coef_images = f.images;
    f.images = 1;
  }
  run_step(call, Finalize<T>{from, 3, f, up, nullptr, coef, call.value(), nullptr,
                             call.at<double>(kCountsOffset), call.flag()});
  if constexpr (kBce) {
    plane_pass<0>(call, g, GradBody<T, true, true>{a, bce, coef, bce_scale, grad}, nullptr);
  } else if (a.sigmoid) {
    plane_pass<0>(call, g, GradBody<T, true, false>{a, bce, coef, bce_scale, grad}, nullptr);
  } else {
    plane_pass<0>(call, g, GradBody<T, false, false>{a, bce, coef, bce_scale, grad}, nullptr);
  }
  return call.host_value(bad_class_weight_message(kBce));
}

}  // namespace overlap_detail
}  // namespace cuda
}  // namespace segloss
