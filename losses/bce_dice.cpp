// bce_dice: the checks of both terms, then the two Dice passes with the BCE term inside.
#include "bce_dice.hpp"

#include <cmath>
#include <vector>

#include "../backends/cpu/bce_dice.hpp"
#include "internal/bce_args.hpp"
#include "internal/cuda_result.hpp"
#include "internal/half_options.hpp"
#include "internal/options_digest.hpp"
#include "internal/overlap_scores.hpp"
#include "internal/shards.hpp"

namespace segloss {
namespace {

constexpr int kStats = 4;  // per plane: I, P, T, sum of weighted BCE losses

template <class T>
struct Plan {
  cpu::OverlapArgs<T> dice;
  cpu::BceWithLogitsArgs<T> bce;
  double bce_scale = 1.0;  // the BCE term's reduction factor (1/numel, 1/sum(w) or 1)
  // CUDA with mean_over weight_sum: 1/W is reduced on the device (bce_scale is then 1 here).
  bool device_weight_mean = false;
  std::vector<double> stats;
};

template <class T>
Plan<T> plan(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
             const BceDiceOptions<T>& o) {
  // The enums first, named by their path (the terms' own checks would say "options.").
  detail::check_enum(fn, "options.bce.", "reduction", o.bce.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.bce.", "mean_over", o.bce.mean_over, detail::kBceMeanOverNames);
  detail::check_enum(fn, "options.dice.", "reduction", o.dice.reduction, detail::kReductionNames);
  SEGLOSS_CHECK(o.bce.reduction != Reduction::none && o.dice.reduction != Reduction::none, fn,
                "reduction none is not supported (options.bce.reduction ",
                reduction_name(o.bce.reduction), ", options.dice.reduction ",
                reduction_name(o.dice.reduction), "); use the two losses separately");
  SEGLOSS_CHECK(o.dice.activation == Activation::sigmoid, fn,
                "options.dice.activation must be sigmoid: BCE and Dice both read logits");
  SEGLOSS_CHECK(std::isfinite(o.bce_weight) && std::isfinite(o.dice_weight), fn,
                "options.bce_weight ", o.bce_weight, " and options.dice_weight ", o.dice_weight,
                " must be finite");
  Plan<T> p;
  p.dice = detail::overlap_args(fn, logits, target, o.dice, /*cuda_path=*/true, "options.dice.",
                                /*cuda_all=*/true);
  p.bce = detail::bce_with_logits_args(fn, logits, target, o.bce, "options.bce.");
  p.device_weight_mean = detail::bce_device_weight_mean(logits, o.bce);
  p.bce_scale = p.device_weight_mean ? 1.0 : detail::bce_mean_scale(fn, logits, o.bce);
  p.stats.resize(static_cast<size_t>(p.dice.planes * kStats));
  return p;
}

// The loss from the summed statistics.
template <class T>
double value(const Plan<T>& p, const Tensor<T>& logits, const BceDiceOptions<T>& o,
             BceDiceParts* parts) {
  double bce_sum = 0.0;
  for (int64_t q = 0; q < p.dice.planes; ++q) bce_sum += p.stats[q * kStats + 3];
  BceDiceParts v;
  v.bce = p.bce_scale == 0.0 ? 0.0 : bce_sum * p.bce_scale;
  v.dice = detail::overlap_value(
      detail::overlap_scores(p.stats, kStats, logits.shape(), o.dice, detail::dice_form()), o.dice);
  if (parts) *parts = v;
  return o.bce_weight * v.bce + o.dice_weight * v.dice;
}

// Both passes for the gradient of g * L; fills p.stats.
template <class T>
void gradient(Plan<T>& p, const Tensor<T>& logits, const BceDiceOptions<T>& o, double g, T* grad) {
  const double bce_scale = g * o.bce_weight * p.bce_scale;
  // Pass 1 stashes exp(-|x|) in grad for pass 2 unless grad overlaps an input that pass 2 reads
  // (or the logits other than exactly).
  const int64_t n = logits.numel();
  const auto disjoint = [&](const Tensor<T>& t) {
    return cpu::stash_disjoint<T>(grad, n, t.data(), t.numel());
  };
  if ((grad == p.dice.x || cpu::stash_disjoint<T>(grad, n, p.dice.x, n)) &&
      cpu::stash_disjoint<T>(grad, n, p.dice.t, n) && disjoint(o.dice.weight) &&
      disjoint(o.bce.weight) && disjoint(o.bce.pos_weight))
    p.dice.stash = grad;
  cpu::bce_dice_statistics(p.dice, p.bce, p.stats.data());
  const auto scores =
      detail::overlap_scores(p.stats, kStats, logits.shape(), o.dice, detail::dice_form());
  std::vector<double> ca, cb;
  detail::overlap_coefficients(
      scores, detail::overlap_slopes<T>(scores, o.dice, g * o.dice_weight, nullptr), p.dice.planes,
      ca, cb);
  cpu::bce_dice_gradient(p.dice, p.bce, bce_scale, ca.data(), cb.data(), grad);
}

#if defined(SEGLOSS_WITH_CUDA)
// The Dice term's device inputs besides grad_out: its class weights (a CUDA tensor).
template <class T>
cuda::Upstream<T> dice_upstream(const BceDiceOptions<T>& o, const T* grad_out = nullptr) {
  cuda::Upstream<T> up;
  up.grad_out = grad_out;
  if (o.dice.class_weight.defined()) up.class_weight = o.dice.class_weight.data();
  return up;
}

// The CUDA call: both terms' passes with grad (or none) and the value where r says. parts, when
// given, is copied back from the device: the call then waits for its stream, even in the forms
// whose value stays on the device (a bad Dice class weight then gives NaN parts, as it gives a
// NaN device value, where a host value raises).
template <class T>
void run_cuda(const char* fn, const Plan<T>& p, const Tensor<T>& logits, const BceDiceOptions<T>& o,
              BceDiceParts* parts, const T* grad_out, T* grad, cuda::Result<T> r) {
  cuda::OverlapForm f = detail::cuda_overlap_form(logits.shape(), o.dice, detail::dice_form());
  f.bce_weight = o.bce_weight;
  f.bce_scale = p.bce_scale;
  f.dice_weight = o.dice_weight;
  cuda::BceWeight<T> bw;  // the weight's device values when 1/W is reduced on the device
  if (p.device_weight_mean) {
    bw.weight = o.bce.weight.data();
    bw.count = o.bce.weight.numel();
  }
  double host_parts[2] = {0.0, 0.0};
  cuda::bce_dice_run<T>(fn, p.dice, p.bce, f, dice_upstream(o, grad_out), grad, r, bw,
                        parts ? host_parts : nullptr);
  if (parts) {
    parts->bce = host_parts[0];
    parts->dice = host_parts[1];
  }
}
#endif

// A caller's grad: the logits or apart from them, and apart from the other inputs (exactly the
// target or a per-pixel weight of the logits' shape allowed: each is read before its element's
// gradient is stored).
template <class T>
void prepare_bce_dice_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                           Tensor<T>& grad, const BceDiceOptions<T>& options) {
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart_or_same("target", target),
                        detail::apart_or_same("options.bce.weight", options.bce.weight),
                        detail::apart("options.bce.pos_weight", options.bce.pos_weight),
                        detail::apart_or_same("options.dice.weight", options.dice.weight),
                        detail::apart("options.dice.class_weight", options.dice.class_weight)});
}

// The value_and_grad forms: the value returned, or (device_value) also written to one element
// on the logits' device, which on CUDA happens without a wait (the returned value is then 0).
template <class T>
double value_and_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                      Tensor<T>& grad, const BceDiceOptions<T>& options, BceDiceParts* parts,
                      T* device_value) {
  auto p = plan(fn, logits, target, options);
  prepare_bce_dice_grad(fn, logits, target, grad, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)
    return detail::cuda_value(device_value, [&](cuda::Result<T> r) {
      run_cuda<T>(fn, p, logits, options, parts, nullptr, grad.data(), r);
    });
#endif
  gradient(p, logits, options, 1.0, grad.data());
  const double v = value(p, logits, options, parts);
  if (device_value) *device_value = static_cast<T>(v);
  return v;
}

}  // namespace

template <class T>
Tensor<T> bce_dice(const Tensor<T>& logits, const Tensor<T>& target,
                   const BceDiceOptions<T>& options, BceDiceParts* parts) {
  auto p = plan("bce_dice", logits, target, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)  // the value stays on the device: no wait (parts wait)
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      run_cuda<T>("bce_dice", p, logits, options, parts, nullptr, nullptr, r);
    });
#endif
  cpu::bce_dice_statistics(p.dice, p.bce, p.stats.data());
  return Tensor<T>::full(Shape{}, static_cast<T>(value(p, logits, options, parts)));
}

template <class T>
Tensor<T> bce_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                            const Tensor<T>& grad_out, const BceDiceOptions<T>& options) {
  const char* fn = "bce_dice_backward";
  auto p = plan(fn, logits, target, options);
  detail::check_grad_out(fn, grad_out, true, Shape{}, logits.device());
  Tensor<T> grad = Tensor<T>::empty(logits.shape(), logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device
    run_cuda<T>(fn, p, logits, options, nullptr, grad_out.data(), grad.data(), {});
    return grad;
  }
#endif
  gradient(p, logits, options, static_cast<double>(grad_out[0]), grad.data());
  return grad;
}

template <class T>
double bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                               const BceDiceOptions<T>& options, BceDiceParts* parts) {
  return value_and_grad<T>("bce_dice_value_and_grad", logits, target, grad, options, parts,
                           nullptr);
}

template <class T>
void bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                             Tensor<T>& value, const BceDiceOptions<T>& options,
                             BceDiceParts* parts) {
  const char* fn = "bce_dice_value_and_grad";
  detail::check_image(fn, "logits", logits, /*cuda_path=*/true);
  detail::prepare_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, options);
  value_and_grad<T>(fn, logits, target, grad, options, parts, value.data());
}

template <class T>
ValueAndGrad<T> bce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                        const BceDiceOptions<T>& options, BceDiceParts* parts) {
  ValueAndGrad<T> r;
  r.value = bce_dice_value_and_grad(logits, target, r.grad, options, parts);
  return r;
}

// ---- the statistics / finalize split ----

template <class T>
OverlapStatistics bce_dice_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                      const BceDiceOptions<T>& options) {
  const char* fn = "bce_dice_statistics";
  auto p = plan(fn, logits, target, options);
  OverlapStatistics st;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the device's per-plane sums, then the CPU's code
    cuda::bce_dice_statistics_run<T>(fn, p.dice, p.bce, p.stats.data());
    st = detail::cuda_split_statistics(fn, p.stats, kStats, logits.shape(), options.dice,
                                       detail::dice_form(), "options.dice.");
  }
#endif
  if (logits.device() == Device::cpu) {
    cpu::bce_dice_statistics(p.dice, p.bce, p.stats.data());
    st = detail::overlap_split_statistics(p.stats, kStats, logits.shape(), options.dice,
                                          detail::dice_form());
  }
  double bce_sum = 0.0;
  for (int64_t q = 0; q < p.dice.planes; ++q) bce_sum += p.stats[q * kStats + 3];
  st.global.insert(st.global.begin(), {bce_sum, detail::bce_mean_divisor(fn, logits, options.bce),
                                       static_cast<double>(logits.numel())});
  return detail::tagged(fn, std::move(st), detail::options_digest(options));
}

template <class T>
double bce_dice_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                         const OverlapStatistics& reduced, Tensor<T>& grad,
                         const BceDiceOptions<T>& options, BceDiceParts* parts) {
  const char* fn = "bce_dice_finalize";
  auto p = plan(fn, logits, target, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the reduced sums uploaded, the device's finalize
    detail::check_overlap_split(fn, reduced, detail::kMeanSplitSize, logits.shape(), options.dice,
                                detail::options_digest(options));
    const double bce_scale = detail::bce_scale_of(options.bce, reduced.global[detail::kDivisor]);
    BceDiceParts v;
    v.bce = bce_scale == 0.0 ? 0.0 : reduced.global[detail::kLossSum] * bce_scale;
    prepare_bce_dice_grad(fn, logits, target, grad, options);
    cuda::OverlapForm f =
        detail::cuda_overlap_form(logits.shape(), options.dice, detail::dice_form());
    f.dice_weight = options.dice_weight;  // scales the Dice term's gradient (its value: here)
    cuda::OverlapSplit split = detail::cuda_overlap_split(reduced, detail::kMeanSplitSize);
    split.bce_grad_scale = options.bce_weight * bce_scale;
    v.dice = cuda::bce_dice_finalize_run<T>(fn, p.dice, p.bce, f, dice_upstream(options), split,
                                            grad.data());
    if (parts) *parts = v;
    return options.bce_weight * v.bce + options.dice_weight * v.dice;
  }
#endif
  std::vector<double> ca, cb;
  BceDiceParts v;
  v.dice = detail::overlap_split_coefficients<T>(
      fn, reduced, detail::kMeanSplitSize, logits.shape(), options.dice, detail::dice_form(),
      options.dice_weight, ca, cb, detail::options_digest(options));
  const double bce_scale = detail::bce_scale_of(options.bce, reduced.global[detail::kDivisor]);
  v.bce = bce_scale == 0.0 ? 0.0 : reduced.global[detail::kLossSum] * bce_scale;
  prepare_bce_dice_grad(fn, logits, target, grad, options);
  cpu::bce_dice_gradient(p.dice, p.bce, options.bce_weight * bce_scale, ca.data(), cb.data(),
                         grad.data());
  if (parts) *parts = v;
  return options.bce_weight * v.bce + options.dice_weight * v.dice;
}

#define SEGLOSS_INSTANTIATE(T)                                                                    \
  template Tensor<T> bce_dice(const Tensor<T>&, const Tensor<T>&, const BceDiceOptions<T>&,       \
                              BceDiceParts*);                                                     \
  template Tensor<T> bce_dice_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,      \
                                       const BceDiceOptions<T>&);                                 \
  template double bce_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,         \
                                          const BceDiceOptions<T>&, BceDiceParts*);               \
  template void bce_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,           \
                                        Tensor<T>&, const BceDiceOptions<T>&, BceDiceParts*);     \
  template ValueAndGrad<T> bce_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&,            \
                                                   const BceDiceOptions<T>&, BceDiceParts*);      \
  template OverlapStatistics bce_dice_statistics(const Tensor<T>&, const Tensor<T>&,              \
                                                 const BceDiceOptions<T>&);                       \
  template double bce_dice_finalize(const Tensor<T>&, const Tensor<T>&, const OverlapStatistics&, \
                                    Tensor<T>&, const BceDiceOptions<T>&, BceDiceParts*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
