// Shared by bce_with_logits and bce_dice (not installed): the BCE argument checks.
#pragma once

#include "../../backends/cpu/bce_with_logits.hpp"
#include "../../core/checks.hpp"
#include "../bce_with_logits.hpp"

namespace segloss {
namespace detail {

// Checks the inputs and options and fills everything the kernel reads.
template <class T>
cpu::BceWithLogitsArgs<T> bce_with_logits_args(const char* function, const Tensor<T>& logits,
                                               const Tensor<T>& target,
                                               const BceWithLogitsOptions<T>& o) {
  check_same_shape_pair(function, logits, target);
  const Shape& s = logits.shape();
  cpu::BceWithLogitsArgs<T> a;
  a.x = logits.data();
  a.z = target.data();
  a.channels = s[1];
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined()) check_on_cpu(function, "weight", o.weight);
  a.weight = make_broadcast_reader(function, "weight", s, o.weight.shape(), o.weight.data(),
                                   o.weight.defined());
  if (o.pos_weight.defined()) {
    const int64_t n = o.pos_weight.numel();
    SEGLOSS_CHECK(n == 1 || n == s[1], function, "pos_weight ", o.pos_weight.shape(), " has ", n,
                  " values; expected 1 or one per channel (", s[1], ") of logits ", s);
    check_on_cpu(function, "pos_weight", o.pos_weight);
    a.pos_weight = o.pos_weight.data();
    a.pos_weight_count = n;
  }
  return a;
}

// 1/numel for the mean (which divides by the element count, as PyTorch), 1 for the sum.
template <class T>
double bce_mean_scale(const Tensor<T>& logits, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(logits.numel()) : 1.0;
}

}  // namespace detail
}  // namespace segloss
