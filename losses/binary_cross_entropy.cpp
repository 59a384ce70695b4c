// binary_cross_entropy: argument checks (shapes, weight, the [0, 1] range of both inputs), then
// the kernel for the tensors' device.
#include "binary_cross_entropy.hpp"

#include "../backends/cpu/binary_cross_entropy.hpp"
#include "../core/checks.hpp"

namespace segloss {
namespace {

template <class T>
cpu::BinaryCrossEntropyArgs<T> prepare(const char* fn, const Tensor<T>& probs,
                                       const Tensor<T>& target,
                                       const BinaryCrossEntropyOptions<T>& o) {
  detail::check_same_shape_pair(fn, probs, target, "probs");
  const Shape& s = probs.shape();
  cpu::BinaryCrossEntropyArgs<T> a;
  a.p = probs.data();
  a.z = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined()) detail::check_on_cpu(fn, "weight", o.weight);
  a.weight = detail::make_broadcast_reader(fn, "weight", s, o.weight.shape(), o.weight.data(),
                                           o.weight.defined());
  const struct {
    const char* name;
    const T* data;
  } inputs[] = {{"probs", a.p}, {"target", a.z}};
  for (const auto& in : inputs) {
    const int64_t i = cpu::first_outside_unit_interval(in.data, s.numel());
    SEGLOSS_CHECK(i < 0, fn, in.name, " has value ", in.data[i], " at index ", i, " ",
                  s.position(i), ", outside [0, 1]");
  }
  return a;
}

template <class T>
double mean_scale(const Tensor<T>& probs, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(probs.numel()) : 1.0;
}

}  // namespace

template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& probs, const Tensor<T>& target,
                               const BinaryCrossEntropyOptions<T>& options) {
  auto a = prepare("binary_cross_entropy", probs, target, options);
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(probs.shape());
    a.loss = out.data();
    cpu::binary_cross_entropy(a);
    return out;
  }
  a.want_sum = true;
  const double sum = cpu::binary_cross_entropy(a);
  return Tensor<T>::full(Shape{}, static_cast<T>(sum * mean_scale(probs, options.reduction)));
}

template <class T>
Tensor<T> binary_cross_entropy_backward(const Tensor<T>& probs, const Tensor<T>& target,
                                        const Tensor<T>& grad_out,
                                        const BinaryCrossEntropyOptions<T>& options) {
  const char* fn = "binary_cross_entropy_backward";
  auto a = prepare(fn, probs, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, probs.shape());
  Tensor<T> grad = Tensor<T>::empty(probs.shape());
  a.grad = grad.data();
  if (scalar)
    a.grad_scale = static_cast<double>(grad_out[0]) * mean_scale(probs, options.reduction);
  else
    a.grad_out = grad_out.data();
  cpu::binary_cross_entropy(a);
  return grad;
}

template <class T>
double binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                           Tensor<T>& grad,
                                           const BinaryCrossEntropyOptions<T>& options) {
  const char* fn = "binary_cross_entropy_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use binary_cross_entropy and "
                "binary_cross_entropy_backward");
  auto a = prepare(fn, probs, target, options);
  detail::prepare_grad(fn, probs, grad,
                       {detail::apart_or_same("target", target),
                        detail::apart_or_same("options.weight", options.weight)},
                       "probs");
  const double scale = mean_scale(probs, options.reduction);
  a.want_sum = true;
  a.grad = grad.data();
  a.grad_scale = scale;
  return cpu::binary_cross_entropy(a) * scale;
}

template <class T>
ValueAndGrad<T> binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                                    const BinaryCrossEntropyOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = binary_cross_entropy_value_and_grad(probs, target, r.grad, options);
  return r;
}

#define SEGLOSS_INSTANTIATE(T)                                                                    \
  template Tensor<T> binary_cross_entropy(const Tensor<T>&, const Tensor<T>&,                     \
                                          const BinaryCrossEntropyOptions<T>&);                   \
  template Tensor<T> binary_cross_entropy_backward(                                               \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const BinaryCrossEntropyOptions<T>&); \
  template double binary_cross_entropy_value_and_grad(                                            \
      const Tensor<T>&, const Tensor<T>&, Tensor<T>&, const BinaryCrossEntropyOptions<T>&);       \
  template ValueAndGrad<T> binary_cross_entropy_value_and_grad(                                   \
      const Tensor<T>&, const Tensor<T>&, const BinaryCrossEntropyOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
