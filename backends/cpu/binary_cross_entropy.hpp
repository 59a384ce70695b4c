// CPU kernels of binary_cross_entropy (losses/binary_cross_entropy.hpp has the contract and the
// math): the range check of the inputs, and one fused pass for the loss and its gradient.
#pragma once

#include <cstdint>

#include "../../core/broadcast.hpp"

namespace segloss {
namespace cpu {

template <class T>
struct BinaryCrossEntropyArgs {
  const T* p = nullptr;  // probabilities, planes * plane_size elements
  const T* z = nullptr;  // target
  int64_t planes = 0, plane_size = 0;
  detail::BroadcastReader<T> weight;
  T* loss = nullptr;            // if set: per-element loss (reduction none)
  bool want_sum = false;        // if set: return sum_i loss_i
  T* grad = nullptr;            // if set: gradient, scaled by grad_out[i] or grad_scale
  const T* grad_out = nullptr;  // per-element upstream gradient, or null
  double grad_scale = 1.0;      // the gradient's factor (1/numel for a mean, times grad_out[0])
};

// The first index i of v[0, n) with v[i] outside [0, 1] or NaN (the negation of PyTorch's test
// 0 <= v <= 1), or -1. Deterministic: chunks scan in parallel, the lowest index wins.
template <class T>
int64_t first_outside_unit_interval(const T* v, int64_t n);

// One pass over memory; returns the deterministic sum of the (weighted) losses when want_sum.
template <class T>
double binary_cross_entropy(const BinaryCrossEntropyArgs<T>& a);

}  // namespace cpu
}  // namespace segloss
