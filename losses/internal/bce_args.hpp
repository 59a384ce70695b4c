// Shared by bce_with_logits and bce_dice (not installed): the BCE argument checks.
#pragma once

#include <cmath>

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
  check_same_shape_pair(function, logits, target, "logits", /*cuda_path=*/true);
  const Shape& s = logits.shape();
  const Device device = logits.device();
  cpu::BceWithLogitsArgs<T> a;
  a.x = logits.data();
  a.z = target.data();
  a.channels = s[1];
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined()) check_same_device(function, "weight", o.weight, device);
  SEGLOSS_CHECK(
      device == Device::cpu || o.mean_over == BceMeanOver::elements || !o.weight.defined(),
      function, "options.mean_over weight_sum is not supported on cuda yet");
  a.weight = make_broadcast_reader(function, "weight", s, o.weight.shape(), o.weight.data(),
                                   o.weight.defined());
  if (o.pos_weight.defined()) {
    check_same_device(function, "pos_weight", o.pos_weight, device);
    const Shape& pws = o.pos_weight.shape();
    const int64_t n = o.pos_weight.numel();
    SEGLOSS_CHECK(n == 1 || is_per_channel(pws, s), function, "pos_weight ", pws,
                  " is neither one value nor one per channel of logits ", s, ": expected (", s[1],
                  "), or PyTorch's per-channel shape (", s[1],
                  ",1,...) with one axis fewer than the logits");
    a.pos_weight = o.pos_weight.data();
    a.pos_weight_count = n;
  }
  const double eps = o.label_smoothing;
  SEGLOSS_CHECK(std::isfinite(eps) && eps >= 0.0 && eps <= 1.0, function,
                "options.label_smoothing is ", eps, "; it must be in [0, 1]");
  a.target_scale = static_cast<T>(1.0 - eps);
  a.target_shift = static_cast<T>(eps / 2);
  return a;
}

// What the mean divides by: numel (the element count, as PyTorch), or with mean_over weight_sum
// and a weight W, the sum of the weight broadcast to the logits' shape = (numel /
// weight.numel()) * sum of the weight's values (each value is used that many times).
template <class T>
double bce_mean_divisor(const Tensor<T>& logits, const BceWithLogitsOptions<T>& o) {
  const double n = static_cast<double>(logits.numel());
  if (o.mean_over == BceMeanOver::elements || !o.weight.defined()) return n;
  const double repeats = n / static_cast<double>(o.weight.numel());  // an exact integer
  return cpu::sum_values(o.weight.data(), o.weight.numel()) * repeats;
}

// The factor of a scalar reduction for a divisor: 1 for the sum, 1/divisor for the mean; a
// divisor of 0 (W = 0) gives 0: the loss is 0 and so is the gradient.
template <class T>
double bce_scale_of(const BceWithLogitsOptions<T>& o, double divisor) {
  if (o.reduction != Reduction::mean) return 1.0;
  return divisor == 0.0 ? 0.0 : 1.0 / divisor;
}

// The factor of a scalar reduction of this input.
template <class T>
double bce_mean_scale(const Tensor<T>& logits, const BceWithLogitsOptions<T>& o) {
  if (o.reduction != Reduction::mean) return 1.0;
  return bce_scale_of(o, bce_mean_divisor(logits, o));
}

}  // namespace detail
}  // namespace segloss
