// Shared by bce_with_logits and bce_dice (not installed): the BCE argument checks.
#pragma once

#include "../../backends/cpu/bce_with_logits.hpp"
#include "../../core/checks.hpp"
#include "../bce_with_logits.hpp"

namespace segloss {
namespace detail {

// pos_weight shapes that mean one value per channel: (C), or (C,1,...,1) with one axis fewer
// than the logits (PyTorch's broadcast shape), or (1,C,1,...,1) with as many. A 1-D (W)
// tensor that happens to have C elements is accepted as per channel, as documented.
inline bool is_per_channel(const Shape& w, const Shape& input) {
  const int64_t c = input[1];
  if (w.rank() == 1) return w[0] == c;
  const int lead = input.rank() - w.rank();  // 1: (C,1,...); 0: (1,C,1,...)
  if (lead < 0 || lead > 1) return false;
  for (int d = 0; d < w.rank(); ++d)
    if (w[d] != (d + lead == 1 ? c : 1)) return false;
  return true;
}

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
    check_on_cpu(function, "pos_weight", o.pos_weight);
    const Shape& pws = o.pos_weight.shape();
    const int64_t n = o.pos_weight.numel();
    SEGLOSS_CHECK(n == 1 || is_per_channel(pws, s), function, "pos_weight ", pws,
                  " is neither one value nor one per channel of logits ", s, ": expected (", s[1],
                  "), or PyTorch's per-channel shape (", s[1],
                  ",1,...) with one axis fewer than the logits");
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
