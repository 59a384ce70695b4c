// sigmoid_focal and softmax_focal: argument checks, the label pass (softmax_focal), then the
// kernel for the tensors' device.
#include "focal.hpp"

#include <cmath>

#include "../backends/cpu/focal.hpp"
#include "../core/checks.hpp"
#include "internal/focal_checks.hpp"
#include "internal/fused_terms.hpp"
#include "internal/half_options.hpp"
#include "internal/labels.hpp"
#include "internal/options_digest.hpp"
#include "internal/shards.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/cross_entropy.hpp"
#include "../backends/cuda/focal.hpp"
#include "internal/cuda_result.hpp"
#endif

namespace segloss {
namespace {

// A caller's grad: the logits or apart from them, and apart from the other inputs (sigmoid: the
// target or a weight of the logits' shape may be it exactly, each element read before its
// gradient is stored; softmax: the labels and alpha never).
template <class T>
void prepare_sigmoid_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                          Tensor<T>& grad, const SigmoidFocalOptions<T>& options) {
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart_or_same("target", target),
                        detail::apart_or_same("options.weight", options.weight)});
}

template <class T, class L>
void prepare_softmax_grad(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                          Tensor<T>& grad, const SoftmaxFocalOptions<T>& options) {
  detail::prepare_grad(
      fn, logits, grad,
      {detail::apart("target", target), detail::apart("options.alpha", options.alpha)});
}

// ---------------------------------------------------------------------------------------------
// sigmoid_focal
// ---------------------------------------------------------------------------------------------

// cuda_path: the caller has a CUDA path for CUDA logits (the weight is then on the device too).
template <class T>
cpu::SigmoidFocalArgs<T> sigmoid_args(const char* fn, const Tensor<T>& logits,
                                      const Tensor<T>& target, const SigmoidFocalOptions<T>& o,
                                      bool cuda_path = false) {
  detail::check_same_shape_pair(fn, logits, target, "logits", cuda_path);
  detail::check_reduction_gamma(fn, o);
  SEGLOSS_CHECK(!std::isnan(o.alpha) && o.alpha <= 1.0, fn, "options.alpha is ", o.alpha,
                "; it must be in [0, 1], or negative for no alpha factor");
  const Shape& s = logits.shape();
  cpu::SigmoidFocalArgs<T> a;
  a.x = logits.data();
  a.z = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  if (o.weight.defined())
    detail::check_same_device(fn, "options.weight", o.weight, logits.device());
  a.weight = detail::make_broadcast_reader(fn, "options.weight", s, o.weight.shape(),
                                           o.weight.data(), o.weight.defined());
  if (o.alpha >= 0.0) {  // alpha z + (1 - alpha)(1 - z) = (1 - alpha) + (2 alpha - 1) z
    a.alpha_base = static_cast<T>(1.0 - o.alpha);
    a.alpha_slope = static_cast<T>(2.0 * o.alpha - 1.0);
  }
  a.gamma = static_cast<T>(o.gamma);
  return a;
}

// 1/numel for the mean (torchvision's loss.mean()), 1 for the sum.
template <class T>
double sigmoid_mean_scale(const Tensor<T>& logits, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(logits.numel()) : 1.0;
}

// The scale of a mean over `divisor` elements or pixels (0 when there are none), or of a sum.
// The divisor is a count (check_focal_split refuses a NaN or negative one).
double split_scale(Reduction r, double divisor) {
  if (r != Reduction::mean) return 1.0;
  return divisor == 0.0 ? 0.0 : 1.0 / divisor;
}

// A focal loss's statistics: its own, three values long, and its divisor and count (both counts
// of elements or pixels) finite and >= 0.
void check_focal_split(const char* fn, const ShardStatistics& reduced) {
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
  detail::check_split_count(fn, reduced, detail::kDivisor, "divisor");
}

// ---------------------------------------------------------------------------------------------
// softmax_focal
// ---------------------------------------------------------------------------------------------

template <class T, class L>
struct Prepared {
  cpu::SoftmaxFocalArgs<T, L> args;
  Shape values_shape;   // the per-pixel loss: (N, spatial...)
  int64_t counted = 0;  // pixels not ignored

  // The mean's factor: 1 / counted, and 0 when every pixel is ignored (loss 0, gradient 0).
  double mean_factor() const { return counted > 0 ? 1.0 / static_cast<double>(counted) : 0.0; }
  double scale(Reduction r) const { return r == Reduction::mean ? mean_factor() : 1.0; }
};

template <class T, class L>
Prepared<T, L> prepare(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                       const SoftmaxFocalOptions<T>& o) {
  detail::check_class_target(fn, logits, target);
  const Shape& s = logits.shape();
  detail::check_reduction_gamma(fn, o);
  const int64_t c = s[1];
  Prepared<T, L> p;
  auto& a = p.args;
  a.x = logits.data();
  a.images = s[0];
  a.classes = c;
  a.pixels = s.numel_from(2);
  a.labels = target.data();
  a.rule.ignore_index = o.ignore_index;
  a.gamma = static_cast<T>(o.gamma);
  if (o.alpha.defined()) {
    detail::check_same_device(fn, "options.alpha", o.alpha, logits.device());
    SEGLOSS_CHECK(o.alpha.numel() == c, fn, "options.alpha ", o.alpha.shape(), " has ",
                  o.alpha.numel(), " values; expected one per class (", c, ") of logits ", s);
    a.alpha = o.alpha.data();
  }
  p.values_shape = s.without(1);
  p.counted = detail::check_labels<T>(fn, target, c, a.rule).count;
  return p;
}

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA path of softmax_focal (backends/cuda/focal.cu): the labels are checked and counted
// on the device, so nothing waits unless a host value is asked for.
template <class T, class L>
Prepared<T, L> cuda_prepare(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                            const SoftmaxFocalOptions<T>& o) {
  detail::check_class_target(fn, logits, target, /*cuda_path=*/true);
  const Shape& s = logits.shape();
  detail::check_reduction_gamma(fn, o);
  Prepared<T, L> p;
  auto& a = p.args;
  a.x = logits.data();
  a.images = s[0];
  a.classes = s[1];
  a.pixels = s.numel_from(2);
  a.labels = target.data();
  a.rule.ignore_index = o.ignore_index;
  a.gamma = static_cast<T>(o.gamma);
  if (o.alpha.defined()) {
    detail::check_same_device(fn, "options.alpha", o.alpha, Device::cuda);
    SEGLOSS_CHECK(o.alpha.numel() == s[1], fn, "options.alpha ", o.alpha.shape(), " has ",
                  o.alpha.numel(), " values; expected one per class (", s[1], ") of logits ", s);
    a.alpha = o.alpha.data();
  }
  p.values_shape = s.without(1);
  return p;
}

// Runs the passes; with host_status, waits and raises the CPU's error for the first bad label.
// reduced_count: cuda::softmax_focal's (the split's finalize).
template <class T, class L>
cuda::FocalStatus cuda_softmax_status(const char* fn, const cpu::SoftmaxFocalArgs<T, L>& a,
                                      const Tensor<L>& target, bool mean, const T* grad_scale_by,
                                      T* device_value, bool host_status,
                                      double reduced_count = -1.0, double grad_weight = 1.0) {
  const auto st = cuda::softmax_focal<T, L>(fn, a, mean, grad_scale_by, device_value, host_status,
                                            reduced_count, grad_weight);
  if (st.first_bad >= 0)
    detail::fail_bad_label(fn, target.shape(), st.first_bad,
                           cuda::read_element(target.data(), st.first_bad), a.classes, a.rule);
  return st;
}

template <class T, class L>
double cuda_softmax_run(const char* fn, const cpu::SoftmaxFocalArgs<T, L>& a,
                        const Tensor<L>& target, bool mean, const T* grad_scale_by, T* device_value,
                        bool host_status) {
  return cuda_softmax_status(fn, a, target, mean, grad_scale_by, device_value, host_status).value;
}

// softmax_focal_finalize on CUDA, its gradient times grad_weight (a combined loss's first term
// passes its weight; the public call 1). Waits: a bad label raises, as on the CPU.
template <class T, class L>
double cuda_softmax_finalize(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                             const ShardStatistics& reduced, Tensor<T>& grad,
                             const SoftmaxFocalOptions<T>& options, double grad_weight) {
  const double divisor = reduced.global[detail::kDivisor];
  auto p = cuda_prepare(fn, logits, target, options);
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_softmax_grad(fn, logits, target, grad, options);
  p.args.grad = grad.data();
  p.args.want_sum = true;  // the flag is read back with the (unused) shard value
  cuda_softmax_status<T, L>(fn, p.args, target, options.reduction == Reduction::mean, nullptr,
                            nullptr, true, divisor, grad_weight);
  return reduced.global[detail::kLossSum] * split_scale(options.reduction, divisor);
}
#endif

}  // namespace

template <class T>
Tensor<T> sigmoid_focal(const Tensor<T>& logits, const Tensor<T>& target,
                        const SigmoidFocalOptions<T>& options) {
  const char* fn = "sigmoid_focal";
  auto a = sigmoid_args(fn, logits, target, options, /*cuda_path=*/true);
  const Device device = logits.device();
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(logits.shape(), device);
    a.loss = out.data();
#if defined(SEGLOSS_WITH_CUDA)
    if (device == Device::cuda) {
      cuda::sigmoid_focal(fn, a, static_cast<const T*>(nullptr), 1.0, {});
      return out;
    }
#endif
    cpu::sigmoid_focal(a);
    return out;
  }
  a.want_sum = true;
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda)  // the value stays on the device: no wait
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      cuda::sigmoid_focal(fn, a, static_cast<const T*>(nullptr),
                          sigmoid_mean_scale(logits, options.reduction), r);
    });
#endif
  const double sum = cpu::sigmoid_focal(a);
  return Tensor<T>::full(Shape{},
                         static_cast<T>(sum * sigmoid_mean_scale(logits, options.reduction)));
}

template <class T>
Tensor<T> sigmoid_focal_backward(const Tensor<T>& logits, const Tensor<T>& target,
                                 const Tensor<T>& grad_out, const SigmoidFocalOptions<T>& options) {
  const char* fn = "sigmoid_focal_backward";
  auto a = sigmoid_args(fn, logits, target, options, /*cuda_path=*/true);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, logits.shape(), logits.device());
  Tensor<T> grad = Tensor<T>::empty(logits.shape(), logits.device());
  a.grad = grad.data();
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out[0] is read on the device
    if (scalar)
      a.grad_scale = sigmoid_mean_scale(logits, options.reduction);
    else
      a.grad_out = grad_out.data();
    cuda::sigmoid_focal(fn, a, scalar ? grad_out.data() : nullptr, 1.0, {});
    return grad;
  }
#endif
  if (scalar)
    a.grad_scale = static_cast<double>(grad_out[0]) * sigmoid_mean_scale(logits, options.reduction);
  else
    a.grad_out = grad_out.data();
  cpu::sigmoid_focal(a);
  return grad;
}

namespace {

// The value_and_grad forms of sigmoid_focal: device_value null, the host value (CUDA: the call
// waits); else, on CUDA, the value written into device_value on the stream (no wait, 0 returned).
template <class T>
double sigmoid_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                              const SigmoidFocalOptions<T>& options, T* device_value) {
  const char* fn = "sigmoid_focal_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use sigmoid_focal and "
                "sigmoid_focal_backward");
  auto a = sigmoid_args(fn, logits, target, options, /*cuda_path=*/true);
  prepare_sigmoid_grad(fn, logits, target, grad, options);
  const double scale = sigmoid_mean_scale(logits, options.reduction);
  a.want_sum = true;
  a.grad = grad.data();
  a.grad_scale = scale;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)  // waits for the value unless device_value is given
    return detail::cuda_value(device_value, [&](cuda::Result<T> r) {
      cuda::sigmoid_focal(fn, a, static_cast<const T*>(nullptr), scale, r);
    });
#endif
  (void)device_value;  // the CPU: the caller stores the host value
  return cpu::sigmoid_focal(a) * scale;
}

}  // namespace

template <class T>
double sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                    Tensor<T>& grad, const SigmoidFocalOptions<T>& options) {
  return sigmoid_value_and_grad(logits, target, grad, options, static_cast<T*>(nullptr));
}

template <class T>
void sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const SigmoidFocalOptions<T>& options) {
  detail::prepare_logits_value("sigmoid_focal_value_and_grad", logits, value);
  detail::check_value_apart_all("sigmoid_focal_value_and_grad", value, logits, target, grad,
                                options);
  if (logits.device() == Device::cuda) {  // nothing waits: the value is written on the stream
    sigmoid_value_and_grad(logits, target, grad, options, value.data());
    return;
  }
  value[0] = static_cast<T>(
      sigmoid_value_and_grad(logits, target, grad, options, static_cast<T*>(nullptr)));
}

template <class T>
ValueAndGrad<T> sigmoid_focal_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                             const SigmoidFocalOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = sigmoid_focal_value_and_grad(logits, target, r.grad, options);
  return r;
}

template <class T, class L, class>
Tensor<T> softmax_focal(const Tensor<T>& logits, const Tensor<L>& target,
                        const SoftmaxFocalOptions<T>& options) {
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the value stays on the device: no wait
    const char* fn = "softmax_focal";
    auto p = cuda_prepare(fn, logits, target, options);
    const bool none = options.reduction == Reduction::none;
    Tensor<T> out = Tensor<T>::empty(none ? p.values_shape : Shape{}, Device::cuda);
    if (none)
      p.args.loss = out.data();
    else
      p.args.want_sum = true;
    cuda_softmax_run<T, L>(fn, p.args, target, options.reduction == Reduction::mean, nullptr,
                           none ? nullptr : out.data(), false);
    return out;
  }
#endif
  auto p = prepare("softmax_focal", logits, target, options);
  if (options.reduction == Reduction::none) {
    Tensor<T> out = Tensor<T>::empty(p.values_shape);
    p.args.loss = out.data();
    cpu::softmax_focal(p.args);
    return out;
  }
  p.args.want_sum = true;
  const double sum = cpu::softmax_focal(p.args);
  return Tensor<T>::full(Shape{}, static_cast<T>(sum * p.scale(options.reduction)));
}

template <class T, class L, class>
Tensor<T> softmax_focal_backward(const Tensor<T>& logits, const Tensor<L>& target,
                                 const Tensor<T>& grad_out, const SoftmaxFocalOptions<T>& options) {
  const char* fn = "softmax_focal_backward";
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device
    auto p = cuda_prepare(fn, logits, target, options);
    const bool scalar = options.reduction != Reduction::none;
    detail::check_grad_out(fn, grad_out, scalar, p.values_shape, Device::cuda);
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    p.args.grad = grad.data();
    if (!scalar) p.args.grad_out = grad_out.data();
    cuda_softmax_run<T, L>(fn, p.args, target, options.reduction == Reduction::mean,
                           scalar ? grad_out.data() : nullptr, nullptr, false);
    return grad;
  }
#endif
  auto p = prepare(fn, logits, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, p.values_shape);
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  p.args.grad = grad.data();
  if (scalar)
    p.args.grad_scale = static_cast<double>(grad_out[0]) * p.scale(options.reduction);
  else
    p.args.grad_out = grad_out.data();
  cpu::softmax_focal(p.args);
  return grad;
}

namespace {

// The value_and_grad forms of softmax_focal, as sigmoid_value_and_grad: device_value null, the
// host value (CUDA: the call waits and raises a bad label); else, on CUDA, the value written into
// device_value on the stream (no wait; a bad label makes it NaN).
template <class T, class L>
double softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                              const SoftmaxFocalOptions<T>& options, T* device_value) {
  const char* fn = "softmax_focal_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use softmax_focal and "
                "softmax_focal_backward");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // waits for the value unless device_value is given
    auto p = cuda_prepare(fn, logits, target, options);
    prepare_softmax_grad(fn, logits, target, grad, options);
    p.args.want_sum = true;
    p.args.grad = grad.data();
    return cuda_softmax_run<T, L>(fn, p.args, target, options.reduction == Reduction::mean, nullptr,
                                  device_value, device_value == nullptr);
  }
#endif
  (void)device_value;  // the CPU: the caller stores the host value
  auto p = prepare(fn, logits, target, options);
  prepare_softmax_grad(fn, logits, target, grad, options);
  const double scale = p.scale(options.reduction);
  p.args.want_sum = true;
  p.args.grad = grad.data();
  p.args.grad_scale = scale;
  return cpu::softmax_focal(p.args) * scale;
}

}  // namespace

template <class T, class L, class>
double softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                    Tensor<T>& grad, const SoftmaxFocalOptions<T>& options) {
  return softmax_value_and_grad(logits, target, grad, options, static_cast<T*>(nullptr));
}

template <class T, class L, class>
void softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const SoftmaxFocalOptions<T>& options) {
  detail::prepare_logits_value("softmax_focal_value_and_grad", logits, value);
  detail::check_value_apart_all("softmax_focal_value_and_grad", value, logits, target, grad,
                                options);
  if (logits.device() == Device::cuda) {  // nothing waits: the value is written on the stream
    softmax_value_and_grad(logits, target, grad, options, value.data());
    return;
  }
  value[0] = static_cast<T>(
      softmax_value_and_grad(logits, target, grad, options, static_cast<T*>(nullptr)));
}

template <class T, class L, class>
ValueAndGrad<T> softmax_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                             const SoftmaxFocalOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = softmax_focal_value_and_grad(logits, target, r.grad, options);
  return r;
}

// ---- the statistics / finalize split ----

template <class T>
ShardStatistics sigmoid_focal_statistics(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SigmoidFocalOptions<T>& options) {
  const char* fn = "sigmoid_focal_statistics";
  detail::check_split_reduction(fn, options.reduction);
  auto a = sigmoid_args(fn, logits, target, options, /*cuda_path=*/true);
  a.want_sum = true;
  const double n = static_cast<double>(logits.numel());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the sum comes back to the host: waits
    double sum = 0.0;
    cuda::Result<T> r;
    r.host = &sum;
    cuda::sigmoid_focal(fn, a, static_cast<const T*>(nullptr), 1.0, r);
    return detail::mean_statistics(fn, sum, n, n, detail::options_digest(options));
  }
#endif
  return detail::mean_statistics(fn, cpu::sigmoid_focal(a), n, n, detail::options_digest(options));
}

template <class T>
double sigmoid_focal_finalize(const Tensor<T>& logits, const Tensor<T>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const SigmoidFocalOptions<T>& options) {
  const char* fn = "sigmoid_focal_finalize";
  detail::check_split_reduction(fn, options.reduction);
  check_focal_split(fn, reduced);
  auto a = sigmoid_args(fn, logits, target, options, /*cuda_path=*/true);
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_sigmoid_grad(fn, logits, target, grad, options);
  const double scale = split_scale(options.reduction, reduced.global[detail::kDivisor]);
  a.grad = grad.data();
  a.grad_scale = scale;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)  // the scale is a kernel argument: nothing waits
    cuda::sigmoid_focal(fn, a, static_cast<const T*>(nullptr), 1.0, {});
  else
    cpu::sigmoid_focal(a);
#else
  cpu::sigmoid_focal(a);
#endif
  return reduced.global[detail::kLossSum] * scale;
}

template <class T, class L, class>
ShardStatistics softmax_focal_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                         const SoftmaxFocalOptions<T>& options) {
  const char* fn = "softmax_focal_statistics";
  detail::check_split_reduction(fn, options.reduction);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the sum and the count come back: waits
    auto p = cuda_prepare(fn, logits, target, options);
    p.args.want_sum = true;
    const auto st = cuda_softmax_status<T, L>(fn, p.args, target, false, nullptr, nullptr, true);
    return detail::mean_statistics(fn, st.value, st.counted, st.counted,
                                   detail::options_digest(options));
  }
#endif
  auto p = prepare(fn, logits, target, options);
  p.args.want_sum = true;
  const double counted = static_cast<double>(p.counted);
  return detail::mean_statistics(fn, cpu::softmax_focal(p.args), counted, counted,
                                 detail::options_digest(options));
}

template <class T, class L, class>
double softmax_focal_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const SoftmaxFocalOptions<T>& options) {
  const char* fn = "softmax_focal_finalize";
  detail::check_split_reduction(fn, options.reduction);
  check_focal_split(fn, reduced);
  const double divisor = reduced.global[detail::kDivisor];
  const double scale = split_scale(options.reduction, divisor);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)
    return cuda_softmax_finalize(fn, logits, target, reduced, grad, options, 1.0);
#endif
  auto p = prepare(fn, logits, target, options);
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_softmax_grad(fn, logits, target, grad, options);
  p.args.grad = grad.data();
  p.args.grad_scale = scale;
  cpu::softmax_focal(p.args);
  return reduced.global[detail::kLossSum] * scale;
}

#define SEGLOSS_INSTANTIATE(T)                                                                    \
  template Tensor<T> sigmoid_focal(const Tensor<T>&, const Tensor<T>&,                            \
                                   const SigmoidFocalOptions<T>&);                                \
  template Tensor<T> sigmoid_focal_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                            const SigmoidFocalOptions<T>&);                       \
  template double sigmoid_focal_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,    \
                                               const SigmoidFocalOptions<T>&);                    \
  template void sigmoid_focal_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,      \
                                             Tensor<T>&, const SigmoidFocalOptions<T>&);          \
  template ValueAndGrad<T> sigmoid_focal_value_and_grad(const Tensor<T>&, const Tensor<T>&,       \
                                                        const SigmoidFocalOptions<T>&);           \
  template ShardStatistics sigmoid_focal_statistics(const Tensor<T>&, const Tensor<T>&,           \
                                                    const SigmoidFocalOptions<T>&);               \
  template double sigmoid_focal_finalize(const Tensor<T>&, const Tensor<T>&,                      \
                                         const ShardStatistics&, Tensor<T>&,                      \
                                         const SigmoidFocalOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

namespace detail {

#if defined(SEGLOSS_WITH_CUDA)
template <class T, class L>
double softmax_focal_cuda_term(const Tensor<T>& logits, const Tensor<L>& target, T* grad,
                               const SoftmaxFocalOptions<T>& options, double grad_weight,
                               const T* grad_out, T* device_value) {
  const char* fn = grad_out ? "softmax_focal_backward" : "softmax_focal_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use softmax_focal and "
                "softmax_focal_backward");
  auto p = cuda_prepare(fn, logits, target, options);
  p.args.want_sum = grad_out == nullptr;
  p.args.grad = grad;
  (void)target;  // a bad label is the Dice term's to report (the CPU's message)
  // device_value set: the value written on the stream (NaN for a bad label), nothing waits.
  return cuda::softmax_focal<T, L>(fn, p.args, options.reduction == Reduction::mean, grad_out,
                                   device_value, grad_out == nullptr && device_value == nullptr,
                                   -1.0, grad_weight)
      .value;
}

template double softmax_focal_cuda_term(const Tensor<float>&, const Tensor<int32_t>&, float*,
                                        const SoftmaxFocalOptions<float>&, double, const float*,
                                        float*);
template double softmax_focal_cuda_term(const Tensor<float>&, const Tensor<int64_t>&, float*,
                                        const SoftmaxFocalOptions<float>&, double, const float*,
                                        float*);
template double softmax_focal_cuda_term(const Tensor<double>&, const Tensor<int32_t>&, double*,
                                        const SoftmaxFocalOptions<double>&, double, const double*,
                                        double*);
template double softmax_focal_cuda_term(const Tensor<double>&, const Tensor<int64_t>&, double*,
                                        const SoftmaxFocalOptions<double>&, double, const double*,
                                        double*);

template <class T, class L>
void softmax_focal_cuda_forward_into(const Tensor<T>& logits, const Tensor<L>& target,
                                     const SoftmaxFocalOptions<T>& options, T* out) {
  const char* fn = "softmax_focal";
  auto p = cuda_prepare(fn, logits, target, options);
  p.args.want_sum = true;
  cuda_softmax_run<T, L>(fn, p.args, target, options.reduction == Reduction::mean, nullptr, out,
                         false);
}

template <class T, class L>
double softmax_focal_cuda_finalize_term(const Tensor<T>& logits, const Tensor<L>& target,
                                        const ShardStatistics& reduced, Tensor<T>& grad,
                                        const SoftmaxFocalOptions<T>& options, double grad_weight) {
  const char* fn = "softmax_focal_finalize";
  detail::check_split_reduction(fn, options.reduction);
  check_focal_split(fn, reduced);
  return cuda_softmax_finalize(fn, logits, target, reduced, grad, options, grad_weight);
}
#define SEGLOSS_INSTANTIATE_FINALIZE_TERM(T, L)                                        \
  template void softmax_focal_cuda_forward_into(const Tensor<T>&, const Tensor<L>&,    \
                                                const SoftmaxFocalOptions<T>&, T*);    \
  template double softmax_focal_cuda_finalize_term(const Tensor<T>&, const Tensor<L>&, \
                                                   const ShardStatistics&, Tensor<T>&, \
                                                   const SoftmaxFocalOptions<T>&, double);
SEGLOSS_INSTANTIATE_FINALIZE_TERM(float, int32_t)
SEGLOSS_INSTANTIATE_FINALIZE_TERM(float, int64_t)
SEGLOSS_INSTANTIATE_FINALIZE_TERM(double, int32_t)
SEGLOSS_INSTANTIATE_FINALIZE_TERM(double, int64_t)
#undef SEGLOSS_INSTANTIATE_FINALIZE_TERM
#endif

template <class T, class L>
double softmax_focal_value_and_grad_with(
    const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
    const SoftmaxFocalOptions<T>& options,
    const std::function<double(const cpu::SoftmaxFocalArgs<T, L>&)>& kernel) {
  const char* fn = "softmax_focal_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use softmax_focal and "
                "softmax_focal_backward");
  auto p = prepare(fn, logits, target, options);
  prepare_softmax_grad(fn, logits, target, grad, options);
  const double scale = p.scale(options.reduction);
  p.args.want_sum = true;
  p.args.grad = grad.data();
  p.args.grad_scale = scale;
  return kernel(p.args) * scale;
}

template double softmax_focal_value_and_grad_with(
    const Tensor<float>&, const Tensor<int32_t>&, Tensor<float>&, const SoftmaxFocalOptions<float>&,
    const std::function<double(const cpu::SoftmaxFocalArgs<float, int32_t>&)>&);
template double softmax_focal_value_and_grad_with(
    const Tensor<float>&, const Tensor<int64_t>&, Tensor<float>&, const SoftmaxFocalOptions<float>&,
    const std::function<double(const cpu::SoftmaxFocalArgs<float, int64_t>&)>&);
template double softmax_focal_value_and_grad_with(
    const Tensor<double>&, const Tensor<int32_t>&, Tensor<double>&,
    const SoftmaxFocalOptions<double>&,
    const std::function<double(const cpu::SoftmaxFocalArgs<double, int32_t>&)>&);
template double softmax_focal_value_and_grad_with(
    const Tensor<double>&, const Tensor<int64_t>&, Tensor<double>&,
    const SoftmaxFocalOptions<double>&,
    const std::function<double(const cpu::SoftmaxFocalArgs<double, int64_t>&)>&);

}  // namespace detail

#define SEGLOSS_INSTANTIATE(T, L)                                                                 \
  template Tensor<T> softmax_focal(const Tensor<T>&, const Tensor<L>&,                            \
                                   const SoftmaxFocalOptions<T>&);                                \
  template Tensor<T> softmax_focal_backward(const Tensor<T>&, const Tensor<L>&, const Tensor<T>&, \
                                            const SoftmaxFocalOptions<T>&);                       \
  template double softmax_focal_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,    \
                                               const SoftmaxFocalOptions<T>&);                    \
  template void softmax_focal_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,      \
                                             Tensor<T>&, const SoftmaxFocalOptions<T>&);          \
  template ValueAndGrad<T> softmax_focal_value_and_grad(const Tensor<T>&, const Tensor<L>&,       \
                                                        const SoftmaxFocalOptions<T>&);           \
  template ShardStatistics softmax_focal_statistics(const Tensor<T>&, const Tensor<L>&,           \
                                                    const SoftmaxFocalOptions<T>&);               \
  template double softmax_focal_finalize(const Tensor<T>&, const Tensor<L>&,                      \
                                         const ShardStatistics&, Tensor<T>&,                      \
                                         const SoftmaxFocalOptions<T>&);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
