// cross_entropy: argument checks, the label pass (validation and the mean's divisor), then the
// fused kernel for the tensors' device.
#include "cross_entropy.hpp"

#include <cmath>
#include <limits>
#include <type_traits>

#include "../backends/cpu/cross_entropy.hpp"
#include "../core/checks.hpp"
#include "internal/labels.hpp"
#include "internal/shards.hpp"

namespace segloss {
namespace {

template <class T, class L>
struct Prepared {
  cpu::CrossEntropyArgs<T, L> args;
  Shape values_shape;         // the per-pixel loss: (N, spatial...)
  double divisor = 0;         // of the mean
  double counted = 0;         // pixels that count (not ignored)
  bool none_counted = false;  // no pixel counts (every label ignored)
};

template <class T, class L>
Prepared<T, L> prepare(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                       const CrossEntropyOptions<T>& o) {
  constexpr bool kSoft = std::is_floating_point_v<L>;
  detail::check_class_target(fn, logits, target);
  const Shape& s = logits.shape();
  const int64_t n = s[0], c = s[1], pixels = s.numel_from(2);
  SEGLOSS_CHECK(
      std::isfinite(o.label_smoothing) && o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, fn,
      "options.label_smoothing is ", o.label_smoothing, "; it must be in [0, 1]");
  Prepared<T, L> p;
  auto& a = p.args;
  a.x = logits.data();
  a.images = n;
  a.classes = c;
  a.pixels = pixels;
  a.eps = o.label_smoothing;
  a.rule.ignore_index = o.ignore_index;
  a.rule.ignore_negative = o.ignore_negative;
  a.weight_total = static_cast<double>(c);
  if (o.weight.defined()) {
    detail::check_on_cpu(fn, "weight", o.weight);
    SEGLOSS_CHECK(o.weight.numel() == c, fn, "weight ", o.weight.shape(), " has ", o.weight.numel(),
                  " values; expected one per class (", c, ") of logits ", s);
    a.weight = o.weight.data();
    a.weight_total = 0.0;
    for (int64_t k = 0; k < c; ++k) a.weight_total += static_cast<double>(a.weight[k]);
  }
  p.values_shape = s.without(1);
  if constexpr (kSoft) {
    SEGLOSS_CHECK(o.ignore_index == -100 && !o.ignore_negative && o.mean_over == MeanOver::weights,
                  fn,
                  "ignore_index, ignore_negative and mean_over apply to label targets only; "
                  "with probabilities they must keep their defaults (ignore_index ",
                  o.ignore_index, ", ignore_negative ", o.ignore_negative ? "true" : "false", ")");
    a.probs = target.data();
    p.divisor = static_cast<double>(n * pixels);
    p.counted = p.divisor;
  } else {
    a.labels = target.data();
    const auto sums = detail::check_labels(fn, target, c, a.rule, a.weight);
    p.divisor =
        o.mean_over == MeanOver::weights ? sums.weight_sum : static_cast<double>(sums.count);
    p.counted = static_cast<double>(sums.count);
    p.none_counted = sums.count == 0;
  }
  return p;
}

// The factor of the mean: 1/divisor; when no pixel counts, what all_ignored says (the
// gradient is 0 either way, as in PyTorch). Weights summing to 0 over counted pixels divide by
// 0 as PyTorch does.
template <class T, class L>
double mean_factor(const Prepared<T, L>& p, const CrossEntropyOptions<T>& o, bool for_gradient) {
  if (!p.none_counted) return 1.0 / p.divisor;
  if (for_gradient || o.all_ignored == AllIgnored::zero) return 0.0;
  return std::numeric_limits<double>::quiet_NaN();
}

template <class T, class L>
double reduce(double sum, const Prepared<T, L>& p, const CrossEntropyOptions<T>& o) {
  if (o.reduction == Reduction::sum) return sum;
  const double f = mean_factor(p, o, false);
  return std::isnan(f) ? f : sum * f;
}

}  // namespace

template <class T, class L, class>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<L>& target,
                        const CrossEntropyOptions<T>& options) {
  auto p = prepare("cross_entropy", logits, target, options);
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(p.values_shape);
    p.args.loss = out.data();
    cpu::cross_entropy(p.args);
    return out;
  }
  p.args.want_sum = true;
  const double sum = cpu::cross_entropy(p.args);
  return Tensor<T>::full(Shape{}, static_cast<T>(reduce(sum, p, options)));
}

template <class T, class L, class>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<L>& target,
                                 const Tensor<T>& grad_out, const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_backward";
  auto p = prepare(fn, logits, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, p.values_shape);
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  p.args.grad = grad.data();
  if (!scalar)
    p.args.grad_out = grad_out.data();
  else
    p.args.grad_scale = static_cast<double>(grad_out[0]) *
                        (options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true));
  cpu::cross_entropy(p.args);
  return grad;
}

template <class T, class L, class>
double cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                    Tensor<T>& grad, const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use cross_entropy and "
                "cross_entropy_backward");
  auto p = prepare(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  p.args.want_sum = true;
  p.args.grad = grad.data();
  p.args.grad_scale = options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true);
  return reduce(cpu::cross_entropy(p.args), p, options);
}

template <class T, class L, class>
ValueAndGrad<T> cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                             const CrossEntropyOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = cross_entropy_value_and_grad(logits, target, r.grad, options);
  return r;
}

template <class T, class L, class>
ShardStatistics cross_entropy_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                         const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_statistics";
  detail::check_split_reduction(fn, options.reduction);
  auto p = prepare(fn, logits, target, options);
  p.args.want_sum = true;
  const double sum = cpu::cross_entropy(p.args);
  return detail::mean_statistics(sum, p.divisor, p.counted);
}

// The shard's gradient with the batch's divisor: mean_factor reads the reduced divisor and
// whether any shard counted a pixel.
template <class T, class L, class>
double cross_entropy_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_finalize";
  detail::check_split_reduction(fn, options.reduction);
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
  auto p = prepare(fn, logits, target, options);
  p.divisor = reduced.global[detail::kDivisor];
  p.none_counted = reduced.global[detail::kCounted] == 0.0;
  detail::prepare_grad(fn, logits, grad);
  p.args.grad = grad.data();
  p.args.grad_scale = options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true);
  cpu::cross_entropy(p.args);
  return reduce(reduced.global[detail::kLossSum], p, options);
}

#define SEGLOSS_INSTANTIATE(T, L)                                                                 \
  template Tensor<T> cross_entropy(const Tensor<T>&, const Tensor<L>&,                            \
                                   const CrossEntropyOptions<T>&);                                \
  template Tensor<T> cross_entropy_backward(const Tensor<T>&, const Tensor<L>&, const Tensor<T>&, \
                                            const CrossEntropyOptions<T>&);                       \
  template double cross_entropy_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,    \
                                               const CrossEntropyOptions<T>&);                    \
  template ValueAndGrad<T> cross_entropy_value_and_grad(const Tensor<T>&, const Tensor<L>&,       \
                                                        const CrossEntropyOptions<T>&);           \
  template ShardStatistics cross_entropy_statistics(const Tensor<T>&, const Tensor<L>&,           \
                                                    const CrossEntropyOptions<T>&);               \
  template double cross_entropy_finalize(const Tensor<T>&, const Tensor<L>&,                      \
                                         const ShardStatistics&, Tensor<T>&,                      \
                                         const CrossEntropyOptions<T>&);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
