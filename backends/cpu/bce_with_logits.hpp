// CPU kernel of bce_with_logits (losses/bce_with_logits.hpp has the contract and the math).
#pragma once

#include <cstdint>

#include "../../core/broadcast.hpp"

namespace segloss {
namespace cpu {

template <class T>
struct BceWithLogitsArgs {
  const T* x = nullptr;  // logits, planes * plane_size elements
  const T* z = nullptr;  // target
  int64_t planes = 0, plane_size = 0, channels = 1;
  detail::BroadcastReader<T> weight;
  const T* pos_weight = nullptr;         // null, or pos_weight_count values
  int64_t pos_weight_count = 0;          // 1 (shared) or channels
  T target_scale = 1, target_shift = 0;  // label smoothing: z' = z * target_scale + target_shift
  T* loss = nullptr;                     // if set: per-element loss (reduction none)
  bool want_sum = false;                 // if set: return sum_i loss_i
  T* grad = nullptr;                     // if set: gradient, scaled by grad_out[i] or grad_scale
  const T* grad_out = nullptr;           // per-element upstream gradient, or null
  double grad_scale = 1.0;  // the gradient's factor (1/numel for a mean, times grad_out[0])
};

// One pass over memory; returns the deterministic sum of the (weighted) losses when want_sum.
template <class T>
double bce_with_logits(const BceWithLogitsArgs<T>& a);

// sum_i v[i] for i in [0, n), in double, deterministic (chunked, combined in order): the sum of
// a weight tensor for mean_over weight_sum.
template <class T>
double sum_values(const T* v, int64_t n);

}  // namespace cpu
}  // namespace segloss
