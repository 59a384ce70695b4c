// CPU kernels of sigmoid_focal and softmax_focal (losses/focal.hpp has the contract and the
// math, core/pointwise.hpp the per-element formulas).
#pragma once

#include <cstdint>

#include "../../core/broadcast.hpp"
#include "cross_entropy.hpp"

namespace segloss {
namespace cpu {

// gamma's evaluation, chosen once per call: 0, 1 and 2 as products, anything else (-1) as
// exp(gamma log q) (pw::focal_power).
inline int focal_gamma_kind(double gamma) {
  return gamma == 0.0 ? 0 : gamma == 1.0 ? 1 : gamma == 2.0 ? 2 : -1;
}

template <class T>
struct SigmoidFocalArgs {
  const T* x = nullptr;  // logits, planes * plane_size elements
  const T* z = nullptr;  // target
  int64_t planes = 0, plane_size = 0;
  detail::BroadcastReader<T> weight;
  // a_t = alpha_base + alpha_slope z: alpha z + (1 - alpha)(1 - z) is base 1 - alpha, slope
  // 2 alpha - 1; no alpha factor is base 1, slope 0.
  T alpha_base = 1, alpha_slope = 0;
  T gamma = 2;
  T* loss = nullptr;            // if set: per-element loss (reduction none)
  bool want_sum = false;        // if set: return sum_i loss_i
  T* grad = nullptr;            // if set: gradient, scaled by grad_out[i] or grad_scale
  const T* grad_out = nullptr;  // per-element upstream gradient, or null
  double grad_scale = 1.0;      // the gradient's factor (1/numel for a mean, times grad_out[0])
};

// One pass over memory; returns the deterministic sum of the losses when want_sum.
template <class T>
double sigmoid_focal(const SigmoidFocalArgs<T>& a);

template <class T, class L>
struct SoftmaxFocalArgs {
  const T* x = nullptr;                         // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;  // N, C, S
  const L* labels = nullptr;                    // (N, S)
  LabelRule rule;                               // ignore_index
  const T* alpha = nullptr;                     // C class factors, or null (all 1)
  T gamma = 2;
  T* loss = nullptr;            // if set: per-pixel loss (N, S)
  bool want_sum = false;        // if set: return sum_i l_i
  T* grad = nullptr;            // if set: the gradient (N, C, S)
  const T* grad_out = nullptr;  // per-pixel upstream gradient, or null
  double grad_scale = 1.0;
};

// One pass over the logits (the labels were validated before); returns the deterministic sum
// of the per-pixel losses when want_sum.
template <class T, class L>
double softmax_focal(const SoftmaxFocalArgs<T, L>& a);

// dice_focal's fused first pass: softmax_focal(a) (value, and the gradient when a.grad is set)
// and, from the same softmax, `stats` as softmax_overlap_statistics(dice, stats) fills them,
// storing p in dice.probs_out when set (then a.grad must be null: the focal gradient comes in
// pass 2, softmax_overlap_gradient_focal, from that p).
template <class T, class L>
double softmax_focal_dice_statistics(const SoftmaxFocalArgs<T, L>& a,
                                     const SoftmaxOverlapArgs<T, L>& dice, double* stats);

}  // namespace cpu
}  // namespace segloss
