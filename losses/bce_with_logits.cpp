// bce_with_logits: argument checks, then the kernel for the tensors' device.
#include "bce_with_logits.hpp"

#include "../backends/cpu/bce_with_logits.hpp"
#include "../core/checks.hpp"

namespace segloss {
namespace {

// Checks the inputs and options and fills everything the kernel reads.
template <class T>
cpu::BceWithLogitsArgs<T> prepare(const char* function, const Tensor<T>& logits,
                                  const Tensor<T>& target, const BceWithLogitsOptions<T>& o) {
  detail::check_same_shape_pair(function, logits, target);
  const Shape& s = logits.shape();
  cpu::BceWithLogitsArgs<T> a;
  a.x = logits.data();
  a.z = target.data();
  a.channels = s[1];
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined()) detail::check_on_cpu(function, "weight", o.weight);
  a.weight = detail::make_broadcast_reader(function, "weight", s, o.weight.shape(),
                                           o.weight.data(), o.weight.defined());
  if (o.pos_weight.defined()) {
    const int64_t n = o.pos_weight.numel();
    SEGLOSS_CHECK(n == 1 || n == s[1], function, "pos_weight ", o.pos_weight.shape(), " has ", n,
                  " values; expected 1 or one per channel (", s[1], ") of logits ", s);
    detail::check_on_cpu(function, "pos_weight", o.pos_weight);
    a.pos_weight = o.pos_weight.data();
    a.pos_weight_count = n;
  }
  return a;
}

template <class T>
double mean_scale(const Tensor<T>& logits, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(logits.numel()) : 1.0;
}

}  // namespace

template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& logits, const Tensor<T>& target,
                          const BceWithLogitsOptions<T>& options) {
  auto a = prepare("bce_with_logits", logits, target, options);
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(logits.shape());
    a.loss = out.data();
    cpu::bce_with_logits(a);
    return out;
  }
  a.want_sum = true;
  const double sum = cpu::bce_with_logits(a);
  return Tensor<T>::full(Shape{}, static_cast<T>(sum * mean_scale(logits, options.reduction)));
}

template <class T>
Tensor<T> bce_with_logits_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                   const Tensor<T>& grad_out,
                                   const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_backward";
  auto a = prepare(fn, logits, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, logits.shape());
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  a.grad = grad.data();
  if (scalar)
    a.grad_scale = static_cast<double>(grad_out[0]) * mean_scale(logits, options.reduction);
  else
    a.grad_out = grad_out.data();
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
  auto a = prepare(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  const double scale = mean_scale(logits, options.reduction);
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

#define SEGLOSS_INSTANTIATE(T)                                                                  \
  template Tensor<T> bce_with_logits(const Tensor<T>&, const Tensor<T>&,                         \
                                     const BceWithLogitsOptions<T>&);                            \
  template Tensor<T> bce_with_logits_backward(const Tensor<T>&, const Tensor<T>&,                \
                                              const Tensor<T>&, const BceWithLogitsOptions<T>&); \
  template double bce_with_logits_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, \
                                                 const BceWithLogitsOptions<T>&);                \
  template ValueAndGrad<T> bce_with_logits_value_and_grad(const Tensor<T>&, const Tensor<T>&,    \
                                                          const BceWithLogitsOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
