// bce_with_logits: argument checks, then the kernel for the tensors' device.
#include "bce_with_logits.hpp"

#include <algorithm>

#include "internal/bce_args.hpp"
#include "internal/shards.hpp"

namespace segloss {
namespace {

// A mean over a weight sum of 0 (scale 0): the loss is 0 and so is the gradient, whatever the
// logits; the kernel is not run.
template <class T>
bool zero_weight_mean(const BceWithLogitsOptions<T>& o, double scale) {
  return o.reduction == Reduction::mean && scale == 0.0;
}

}  // namespace

template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& logits, const Tensor<T>& target,
                          const BceWithLogitsOptions<T>& options) {
  auto a = detail::bce_with_logits_args("bce_with_logits", logits, target, options);
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(logits.shape());
    a.loss = out.data();
    cpu::bce_with_logits(a);
    return out;
  }
  const double scale = detail::bce_mean_scale(logits, options);
  if (zero_weight_mean(options, scale)) return Tensor<T>::zeros(Shape{});
  a.want_sum = true;
  const double sum = cpu::bce_with_logits(a);
  return Tensor<T>::full(Shape{}, static_cast<T>(sum * scale));
}

template <class T>
Tensor<T> bce_with_logits_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                   const Tensor<T>& grad_out,
                                   const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_backward";
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, logits.shape());
  if (scalar) {
    const double scale = detail::bce_mean_scale(logits, options);
    if (zero_weight_mean(options, scale)) return Tensor<T>::zeros(logits.shape());
    a.grad_scale = static_cast<double>(grad_out[0]) * scale;
  } else {
    a.grad_out = grad_out.data();
  }
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  a.grad = grad.data();
  cpu::bce_with_logits(a);
  return grad;
}

template <class T>
double bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                      Tensor<T>& grad, const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use bce_with_logits and "
                "bce_with_logits_backward");
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  const double scale = detail::bce_mean_scale(logits, options);
  if (zero_weight_mean(options, scale)) {
    std::fill(grad.begin(), grad.end(), T(0));
    return 0.0;
  }
  a.want_sum = true;
  a.grad = grad.data();
  a.grad_scale = scale;
  return cpu::bce_with_logits(a) * scale;
}

template <class T>
ValueAndGrad<T> bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                               const BceWithLogitsOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = bce_with_logits_value_and_grad(logits, target, r.grad, options);
  return r;
}

template <class T>
ShardStatistics bce_with_logits_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                           const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_statistics";
  detail::check_split_reduction(fn, options.reduction);
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  a.want_sum = true;
  const double sum = cpu::bce_with_logits(a);
  return detail::mean_statistics(sum, detail::bce_mean_divisor(logits, options),
                                 static_cast<double>(logits.numel()));
}

template <class T>
double bce_with_logits_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                                const ShardStatistics& reduced, Tensor<T>& grad,
                                const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_finalize";
  detail::check_split_reduction(fn, options.reduction);
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  const double scale = detail::bce_scale_of(options, reduced.global[detail::kDivisor]);
  if (zero_weight_mean(options, scale)) {
    std::fill(grad.begin(), grad.end(), T(0));
    return 0.0;
  }
  a.grad = grad.data();
  a.grad_scale = scale;
  cpu::bce_with_logits(a);
  return reduced.global[detail::kLossSum] * scale;
}

#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template Tensor<T> bce_with_logits(const Tensor<T>&, const Tensor<T>&,                         \
                                     const BceWithLogitsOptions<T>&);                            \
  template Tensor<T> bce_with_logits_backward(const Tensor<T>&, const Tensor<T>&,                \
                                              const Tensor<T>&, const BceWithLogitsOptions<T>&); \
  template double bce_with_logits_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, \
                                                 const BceWithLogitsOptions<T>&);                \
  template ValueAndGrad<T> bce_with_logits_value_and_grad(const Tensor<T>&, const Tensor<T>&,    \
                                                          const BceWithLogitsOptions<T>&);       \
  template ShardStatistics bce_with_logits_statistics(const Tensor<T>&, const Tensor<T>&,        \
                                                      const BceWithLogitsOptions<T>&);           \
  template double bce_with_logits_finalize(const Tensor<T>&, const Tensor<T>&,                   \
                                           const ShardStatistics&, Tensor<T>&,                   \
                                           const BceWithLogitsOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
