// Shared by bce_with_logits and bce_dice (not installed): the BCE argument checks.
#pragma once

#include <cmath>

#include "../../backends/cpu/bce_with_logits.hpp"
#include "../../core/checks.hpp"
#include "../bce_with_logits.hpp"
#include "option_name.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../../backends/cuda/bce_with_logits.hpp"
#endif

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

// Checks the inputs and options and fills everything the kernel reads. The options' errors name
// them by `path`: "options." for bce_with_logits ("options.weight (3,4,1,1) does not
// broadcast"), "options.bce." for bce_dice's BCE term (its Dice term has a weight too).
template <class T>
cpu::BceWithLogitsArgs<T> bce_with_logits_args(const char* function, const Tensor<T>& logits,
                                               const Tensor<T>& target,
                                               const BceWithLogitsOptions<T>& o,
                                               const char* path = "options.") {
  check_same_shape_pair(function, logits, target, "logits", /*cuda_path=*/true);
  check_enum(function, path, "reduction", o.reduction, kReductionNames);
  check_enum(function, path, "mean_over", o.mean_over, kBceMeanOverNames);
  const OptionName weight(path, "weight"), pos_weight(path, "pos_weight");
  const Shape& s = logits.shape();
  const Device device = logits.device();
  cpu::BceWithLogitsArgs<T> a;
  a.x = logits.data();
  a.z = target.data();
  a.channels = s[1];
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined()) check_same_device(function, weight.c_str(), o.weight, device);
  a.weight = make_broadcast_reader(function, weight.c_str(), s, o.weight.shape(), o.weight.data(),
                                   o.weight.defined());
  if (o.pos_weight.defined()) {
    check_same_device(function, pos_weight.c_str(), o.pos_weight, device);
    const Shape& pws = o.pos_weight.shape();
    const int64_t n = o.pos_weight.numel();
    SEGLOSS_CHECK(n == 1 || is_per_channel(pws, s), function, pos_weight.c_str(), " ", pws,
                  " is neither one value nor one per channel of logits ", s, ": expected (", s[1],
                  "), or PyTorch's per-channel shape (", s[1],
                  ",1,...) with one axis fewer than the logits");
    a.pos_weight = o.pos_weight.data();
    a.pos_weight_count = n;
  }
  const double eps = o.label_smoothing;
  SEGLOSS_CHECK(std::isfinite(eps) && eps >= 0.0 && eps <= 1.0, function, path,
                "label_smoothing is ", eps, "; it must be in [0, 1]");
  a.target_scale = static_cast<T>(1.0 - eps);
  a.target_shift = static_cast<T>(eps / 2);
  return a;
}

// What the mean divides by: numel (the element count, as PyTorch), or with mean_over weight_sum
// and a weight W, the sum of the weight broadcast to the logits' shape = (numel /
// weight.numel()) * sum of the weight's values (each value is used that many times). A CUDA
// weight is summed on the device and the divisor copied back: this waits (the split's
// statistics only; the fused CUDA paths keep W on the device, cuda::WeightMean).
template <class T>
double bce_mean_divisor(const char* function, const Tensor<T>& logits,
                        const BceWithLogitsOptions<T>& o) {
  const double n = static_cast<double>(logits.numel());
  if (o.mean_over == BceMeanOver::elements || !o.weight.defined()) return n;
#if defined(SEGLOSS_WITH_CUDA)
  if (o.weight.device() == Device::cuda) {
    const Shape& s = logits.shape();
    return cuda::bce_weight_divisor(function, o.weight.data(), o.weight.numel(), s[0] * s[1],
                                    s.numel_from(2));
  }
#else
  (void)function;
#endif
  const double repeats = n / static_cast<double>(o.weight.numel());  // an exact integer
  return cpu::sum_values(o.weight.data(), o.weight.numel()) * repeats;
}

// A mean over the weight sum whose divisor lives on the device (CUDA tensors): the host must not
// read the weight (bce_mean_divisor would), the CUDA kernels reduce it (cuda::WeightMean).
template <class T>
bool bce_device_weight_mean(const Tensor<T>& logits, const BceWithLogitsOptions<T>& o) {
  return logits.device() == Device::cuda && o.reduction == Reduction::mean &&
         o.mean_over == BceMeanOver::weight_sum && o.weight.defined();
}

// The factor of a scalar reduction for a divisor: 1 for the sum, 1/divisor for the mean; a
// divisor of 0 (W = 0) gives 0: the loss is 0 and so is the gradient.
template <class T>
double bce_scale_of(const BceWithLogitsOptions<T>& o, double divisor) {
  if (o.reduction != Reduction::mean) return 1.0;
  return divisor == 0.0 ? 0.0 : 1.0 / divisor;
}

// The factor of a scalar reduction of this input (on the host; not for a device weight mean,
// whose factor the CUDA kernels compute: see bce_device_weight_mean).
template <class T>
double bce_mean_scale(const char* function, const Tensor<T>& logits,
                      const BceWithLogitsOptions<T>& o) {
  if (o.reduction != Reduction::mean) return 1.0;
  return bce_scale_of(o, bce_mean_divisor(function, logits, o));
}

}  // namespace detail
}  // namespace segloss
