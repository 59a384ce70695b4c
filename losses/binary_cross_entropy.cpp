// binary_cross_entropy: argument checks (shapes, weight, the [0, 1] range of both inputs), then
// the kernel for the tensors' device.
#include "binary_cross_entropy.hpp"

#include "../backends/cpu/binary_cross_entropy.hpp"
#include "../core/checks.hpp"
#include "internal/half_options.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/binary_cross_entropy.hpp"
#include "internal/cuda_result.hpp"
#endif

namespace segloss {
namespace {

template <class T>
cpu::BinaryCrossEntropyArgs<T> prepare(const char* fn, const Tensor<T>& probs,
                                       const Tensor<T>& target,
                                       const BinaryCrossEntropyOptions<T>& o) {
  detail::check_same_shape_pair(fn, probs, target, "probs", /*cuda_path=*/true);
  detail::check_enum(fn, "options.", "reduction", o.reduction, detail::kReductionNames);
  const Shape& s = probs.shape();
  cpu::BinaryCrossEntropyArgs<T> a;
  a.p = probs.data();
  a.z = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined())
    detail::check_same_device(fn, "options.weight", o.weight, probs.device(), "probs");
  a.weight = detail::make_broadcast_reader(fn, "options.weight", s, o.weight.shape(),
                                           o.weight.data(), o.weight.defined());
  if (probs.device() == Device::cuda) return a;  // checked by the kernel's pass (run below)
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

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA pass (backends/cuda/binary_cross_entropy.cu) checks the range of both inputs as it
// goes: an element outside [0, 1] gets a NaN loss and gradient. A call that returns a host value
// waits and raises the CPU's message (after writing grad, unlike the CPU, which checks first);
// the others leave the NaN on the device.
template <class T>
void cuda_run(const char* fn, const Tensor<T>& probs, const cpu::BinaryCrossEntropyArgs<T>& a,
              const T* grad_scale_by, double value_scale, cuda::Result<T> r) {
  cuda::UnitIntervalError bad;
  cuda::binary_cross_entropy(fn, a, grad_scale_by, value_scale, r, r.host ? &bad : nullptr);
  SEGLOSS_CHECK(bad.index < 0, fn, bad.in_target ? "target" : "probs", " has value ", bad.value,
                " at index ", bad.index, " ", probs.shape().position(bad.index),
                ", outside [0, 1]");
}
#endif

}  // namespace

template <class T>
Tensor<T> binary_cross_entropy(const Tensor<T>& probs, const Tensor<T>& target,
                               const BinaryCrossEntropyOptions<T>& options) {
  const char* fn = "binary_cross_entropy";
  auto a = prepare(fn, probs, target, options);
  const Device device = probs.device();
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(probs.shape(), device);
    a.loss = out.data();
#if defined(SEGLOSS_WITH_CUDA)
    if (device == Device::cuda) {
      cuda_run(fn, probs, a, static_cast<const T*>(nullptr), 1.0, {});
      return out;
    }
#endif
    cpu::binary_cross_entropy(a);
    return out;
  }
  a.want_sum = true;
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda)  // the value stays on the device: no wait
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      cuda_run(fn, probs, a, static_cast<const T*>(nullptr), mean_scale(probs, options.reduction),
               r);
    });
#endif
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
  detail::check_grad_out(fn, grad_out, scalar, probs.shape(), probs.device());
  Tensor<T> grad = Tensor<T>::empty(probs.shape(), probs.device());
  a.grad = grad.data();
#if defined(SEGLOSS_WITH_CUDA)
  if (probs.device() == Device::cuda) {  // grad_out[0] is read on the device
    if (scalar)
      a.grad_scale = mean_scale(probs, options.reduction);
    else
      a.grad_out = grad_out.data();
    cuda_run(fn, probs, a, scalar ? grad_out.data() : nullptr, 1.0, {});
    return grad;
  }
#endif
  if (scalar)
    a.grad_scale = static_cast<double>(grad_out[0]) * mean_scale(probs, options.reduction);
  else
    a.grad_out = grad_out.data();
  cpu::binary_cross_entropy(a);
  return grad;
}

namespace {

template <class T>
double value_and_grad(const char* fn, const Tensor<T>& probs, const Tensor<T>& target,
                      Tensor<T>& grad, const BinaryCrossEntropyOptions<T>& options,
                      T* device_value) {
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
#if defined(SEGLOSS_WITH_CUDA)
  if (probs.device() == Device::cuda)
    return detail::cuda_value(device_value, [&](cuda::Result<T> r) {
      cuda_run(fn, probs, a, static_cast<const T*>(nullptr), scale, r);
    });
#endif
  const double value = cpu::binary_cross_entropy(a) * scale;
  if (device_value) *device_value = static_cast<T>(value);
  return value;
}

}  // namespace

template <class T>
double binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                           Tensor<T>& grad,
                                           const BinaryCrossEntropyOptions<T>& options) {
  return value_and_grad<T>("binary_cross_entropy_value_and_grad", probs, target, grad, options,
                           nullptr);
}

template <class T>
void binary_cross_entropy_value_and_grad(const Tensor<T>& probs, const Tensor<T>& target,
                                         Tensor<T>& grad, Tensor<T>& value,
                                         const BinaryCrossEntropyOptions<T>& options) {
  const char* fn = "binary_cross_entropy_value_and_grad";
  detail::check_image(fn, "probs", probs, /*cuda_path=*/true);
  detail::prepare_value(fn, probs, value);
  detail::check_value_apart_all(fn, value, probs, target, grad, options, "probs");
  value_and_grad<T>(fn, probs, target, grad, options, value.data());
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
  template void binary_cross_entropy_value_and_grad(const Tensor<T>&, const Tensor<T>&,           \
                                                    Tensor<T>&, Tensor<T>&,                       \
                                                    const BinaryCrossEntropyOptions<T>&);         \
  template ValueAndGrad<T> binary_cross_entropy_value_and_grad(                                   \
      const Tensor<T>&, const Tensor<T>&, const BinaryCrossEntropyOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
