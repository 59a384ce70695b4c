// bce_with_logits: argument checks, then the kernel for the tensors' device.
#include "bce_with_logits.hpp"

#include <algorithm>

#include "internal/bce_args.hpp"
#include "internal/half_options.hpp"
#include "internal/options_digest.hpp"
#include "internal/shards.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/bce_with_logits.hpp"
#include "internal/cuda_result.hpp"
#endif

namespace segloss {
namespace {

// A caller's grad: the logits or apart from them, and apart from the other inputs (exactly the
// target or a weight of the logits' shape allowed: each is read before its element's gradient
// is stored).
template <class T>
void prepare_bce_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                      Tensor<T>& grad, const BceWithLogitsOptions<T>& options) {
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart_or_same("target", target),
                        detail::apart_or_same("options.weight", options.weight),
                        detail::apart("options.pos_weight", options.pos_weight)});
}

#if defined(SEGLOSS_WITH_CUDA)
// A CUDA mean over the weight sum: the weight's device values, for the kernels to reduce W.
template <class T>
cuda::WeightMean<T> device_weight_mean(const Tensor<T>& logits, const BceWithLogitsOptions<T>& o) {
  cuda::WeightMean<T> m;
  if (detail::bce_device_weight_mean(logits, o)) {
    m.weight = o.weight.data();  // a device pointer: passed on, never read here
    m.count = o.weight.numel();
  }
  return m;
}
#endif

// The host's factor of a scalar reduction: 1 for a CUDA mean over the weight sum, whose 1/W the
// kernels compute on the device (device_weight_mean).
template <class T>
double host_scale(const char* fn, const Tensor<T>& logits, const BceWithLogitsOptions<T>& o) {
  if (detail::bce_device_weight_mean(logits, o)) return 1.0;
  return detail::bce_mean_scale(fn, logits, o);
}

// A mean over a weight sum of 0 (scale 0): the loss is 0 and so is the gradient, whatever the
// logits; the kernel is not run on the CPU (CUDA stores the zeros: cuda::WeightMean).
template <class T>
bool zero_weight_mean(const BceWithLogitsOptions<T>& o, double scale) {
  return o.reduction == Reduction::mean && scale == 0.0;
}

// The value and gradient of a mean or sum into `grad`, and the value into r (CUDA) or returned
// (CPU).
template <class T>
double value_and_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                      Tensor<T>& grad, const BceWithLogitsOptions<T>& options, T* device_value) {
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use bce_with_logits and "
                "bce_with_logits_backward");
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  prepare_bce_grad(fn, logits, target, grad, options);
  const double scale = host_scale(fn, logits, options);
  a.want_sum = true;
  a.grad = grad.data();
  a.grad_scale = scale;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)
    return detail::cuda_value(device_value, [&](cuda::Result<T> r) {
      cuda::bce_with_logits(fn, a, static_cast<const T*>(nullptr), scale, r,
                            device_weight_mean(logits, options));
    });
#endif
  double value = 0.0;
  if (zero_weight_mean(options, scale)) {
    std::fill(grad.begin(), grad.end(), T(0));
  } else {
    value = cpu::bce_with_logits(a) * scale;
  }
  if (device_value) *device_value = static_cast<T>(value);
  return value;
}

}  // namespace

template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& logits, const Tensor<T>& target,
                          const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits";
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  const Device device = logits.device();
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(logits.shape(), device);
    a.loss = out.data();
#if defined(SEGLOSS_WITH_CUDA)
    if (device == Device::cuda) {
      cuda::bce_with_logits(fn, a, static_cast<const T*>(nullptr), 1.0, {});
      return out;
    }
#endif
    cpu::bce_with_logits(a);
    return out;
  }
  const double scale = host_scale(fn, logits, options);
  a.want_sum = true;
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda)  // the value stays on the device: no wait
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      cuda::bce_with_logits(fn, a, static_cast<const T*>(nullptr), scale, r,
                            device_weight_mean(logits, options));
    });
#endif
  if (zero_weight_mean(options, scale)) return Tensor<T>::zeros(Shape{});
  const double sum = cpu::bce_with_logits(a);
  return Tensor<T>::full(Shape{}, static_cast<T>(sum * scale));
}

template <class T>
Tensor<T> bce_with_logits_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                   const Tensor<T>& grad_out,
                                   const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_backward";
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  const Device device = logits.device();
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, logits.shape(), device);
  Tensor<T> grad = Tensor<T>::empty(logits.shape(), device);
  a.grad = grad.data();
  const double scale = scalar ? host_scale(fn, logits, options) : 1.0;
  if (scalar)
    a.grad_scale = scale;
  else
    a.grad_out = grad_out.data();
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda) {  // grad_out[0] is read on the device
    cuda::bce_with_logits(fn, a, scalar ? grad_out.data() : nullptr, 1.0, {},
                          device_weight_mean(logits, options));
    return grad;
  }
#endif
  if (scalar) {
    if (zero_weight_mean(options, scale)) return Tensor<T>::zeros(logits.shape());
    a.grad_scale = static_cast<double>(grad_out[0]) * scale;
  }
  cpu::bce_with_logits(a);
  return grad;
}

template <class T>
double bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                      Tensor<T>& grad, const BceWithLogitsOptions<T>& options) {
  return value_and_grad<T>("bce_with_logits_value_and_grad", logits, target, grad, options,
                           nullptr);
}

template <class T>
void bce_with_logits_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                    Tensor<T>& grad, Tensor<T>& value,
                                    const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_value_and_grad";
  detail::check_image(fn, "logits", logits, /*cuda_path=*/true);
  detail::prepare_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, options);
  value_and_grad<T>(fn, logits, target, grad, options, value.data());
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
  double sum = 0.0;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the sum comes back to the host: waits
    cuda::Result<T> r;
    r.host = &sum;
    cuda::bce_with_logits(fn, a, static_cast<const T*>(nullptr), 1.0, r);
  } else {
    sum = cpu::bce_with_logits(a);
  }
#else
  sum = cpu::bce_with_logits(a);
#endif
  return detail::mean_statistics(fn, sum, detail::bce_mean_divisor(fn, logits, options),
                                 static_cast<double>(logits.numel()),
                                 detail::options_digest(options));
}

template <class T>
double bce_with_logits_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                                const ShardStatistics& reduced, Tensor<T>& grad,
                                const BceWithLogitsOptions<T>& options) {
  const char* fn = "bce_with_logits_finalize";
  detail::check_split_reduction(fn, options.reduction);
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
  auto a = detail::bce_with_logits_args(fn, logits, target, options);
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_bce_grad(fn, logits, target, grad, options);
  const double scale = detail::bce_scale_of(options, reduced.global[detail::kDivisor]);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the scale is a kernel argument: nothing waits
    a.grad = grad.data();
    a.grad_scale = scale;
    cuda::WeightMean<T> m;
    m.zero = zero_weight_mean(options, scale);  // exact zeros, as the CPU's fill
    cuda::bce_with_logits(fn, a, static_cast<const T*>(nullptr), 1.0, {}, m);
    return m.zero ? 0.0 : reduced.global[detail::kLossSum] * scale;
  }
#endif
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
  template void bce_with_logits_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,   \
                                               Tensor<T>&, const BceWithLogitsOptions<T>&);      \
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
