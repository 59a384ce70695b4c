// cross_entropy: argument checks, the label pass (validation and the mean's divisor), then the
// fused kernel for the tensors' device.
#include "cross_entropy.hpp"

#include <cmath>
#include <limits>
#include <type_traits>

#include "../backends/cpu/cross_entropy.hpp"
#include "../core/checks.hpp"
#include "internal/cross_entropy_checks.hpp"
#include "internal/fused_terms.hpp"
#include "internal/half_options.hpp"
#include "internal/labels.hpp"
#include "internal/options_digest.hpp"
#include "internal/shards.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/cross_entropy.hpp"
#endif

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
  detail::check_ce_scalars(fn, o);
  const Shape& s = logits.shape();
  const int64_t n = s[0], c = s[1], pixels = s.numel_from(2);
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
    detail::check_same_device(fn, "options.weight", o.weight, logits.device());
    SEGLOSS_CHECK(o.weight.numel() == c, fn, "options.weight ", o.weight.shape(), " has ",
                  o.weight.numel(), " values; expected one per class (", c, ") of logits ", s);
    a.weight = o.weight.data();
    a.weight_total = 0.0;
    for (int64_t k = 0; k < c; ++k) a.weight_total += static_cast<double>(a.weight[k]);
  }
  p.values_shape = s.without(1);
  if constexpr (kSoft) {
    detail::check_ce_probability_options(fn, o);
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

// A caller's gradient buffer: the logits themselves or apart from them, and apart from the
// target (labels, or probabilities read again for the gradient) and the class weights.
template <class T, class L>
void prepare_ce_grad(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                     Tensor<T>& grad, const CrossEntropyOptions<T>& o) {
  detail::prepare_grad(
      fn, logits, grad,
      {detail::apart("target", target), detail::apart("options.weight", o.weight)});
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

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA path (backends/cuda/cross_entropy.cu): labels or probabilities, every option. The label
// pass, the mean's divisor and W run on the device, so nothing waits for them unless a host value
// is asked for.
template <class T, class L>
cuda::CrossEntropyArgs<T, L> cuda_args(const char* fn, const Tensor<T>& logits,
                                       const Tensor<L>& target, const CrossEntropyOptions<T>& o) {
  detail::check_class_target(fn, logits, target, true);
  detail::check_ce_scalars(fn, o);
  const Shape& s = logits.shape();
  cuda::CrossEntropyArgs<T, L> a;
  a.function = fn;
  if constexpr (std::is_floating_point_v<L>) {
    detail::check_ce_probability_options(fn, o);
    a.probs = target.data();
  } else {
    a.labels = target.data();
  }
  if (o.weight.defined()) {
    detail::check_same_device(fn, "options.weight", o.weight, Device::cuda);
    SEGLOSS_CHECK(o.weight.numel() == s[1], fn, "options.weight ", o.weight.shape(), " has ",
                  o.weight.numel(), " values; expected one per class (", s[1], ") of logits ", s);
    a.weight = o.weight.data();
  }
  a.x = logits.data();
  a.images = s[0];
  a.classes = s[1];
  a.pixels = s.numel_from(2);
  a.ignore_index = o.ignore_index;
  a.ignore_negative = o.ignore_negative;
  a.eps = o.label_smoothing;
  a.reduction = o.reduction;
  a.mean_over_valid = o.mean_over == MeanOver::valid_pixels;
  a.all_ignored_nan = o.all_ignored == AllIgnored::nan;
  return a;
}

// Runs the passes; with host_status, raises the CPU's error for the first bad label and returns
// the status read back (value, count, weight sum).
template <class T, class L>
cuda::CrossEntropyStatus cuda_status(const cuda::CrossEntropyArgs<T, L>& a, const Tensor<L>& target,
                                     bool host_status) {
  const auto st = cuda::cross_entropy(a, host_status);
  (void)target;                                  // read for a bad label only
  if constexpr (!std::is_floating_point_v<L>) {  // probabilities have no label to report
    if (st.first_bad >= 0) {
      cpu::LabelRule rule;
      rule.ignore_index = a.ignore_index;
      rule.ignore_negative = a.ignore_negative;
      detail::fail_bad_label(a.function, target.shape(), st.first_bad,
                             cuda::read_element(target.data(), st.first_bad), a.classes, rule);
    }
  }
  return st;
}

template <class T, class L>
double cuda_run(const cuda::CrossEntropyArgs<T, L>& a, const Tensor<L>& target, bool host_status) {
  return cuda_status(a, target, host_status).value;
}

template <class T, class L>
Tensor<T> cuda_forward(const Tensor<T>& logits, const Tensor<L>& target,
                       const CrossEntropyOptions<T>& o) {
  auto a = cuda_args("cross_entropy", logits, target, o);
  Tensor<T> out = Tensor<T>::empty(
      o.reduction == Reduction::none ? logits.shape().without(1) : Shape{}, Device::cuda);
  (o.reduction == Reduction::none ? a.loss : a.value) = out.data();
  cuda_run(a, target, false);
  return out;
}

template <class T, class L>
Tensor<T> cuda_backward(const Tensor<T>& logits, const Tensor<L>& target, const Tensor<T>& grad_out,
                        const CrossEntropyOptions<T>& o) {
  const char* fn = "cross_entropy_backward";
  auto a = cuda_args(fn, logits, target, o);
  detail::check_grad_out(fn, grad_out, o.reduction != Reduction::none, logits.shape().without(1),
                         Device::cuda);
  Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
  a.grad = grad.data();
  a.grad_out = grad_out.data();
  cuda_run(a, target, false);
  return grad;
}

// With `value` (a device scalar) nothing waits; without, the value comes back to the host.
template <class T, class L>
double cuda_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                           Tensor<T>* value, const CrossEntropyOptions<T>& o) {
  const char* fn = "cross_entropy_value_and_grad";
  auto a = cuda_args(fn, logits, target, o);
  prepare_ce_grad(fn, logits, target, grad, o);
  a.grad = grad.data();
  if (value) a.value = value->data();
  return cuda_run(a, target, value == nullptr);
}
#endif

}  // namespace

template <class T, class L, class>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<L>& target,
                        const CrossEntropyOptions<T>& options) {
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) return cuda_forward(logits, target, options);
#endif
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
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) return cuda_backward(logits, target, grad_out, options);
#endif
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
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)
    return cuda_value_and_grad(logits, target, grad, static_cast<Tensor<T>*>(nullptr), options);
#endif
  auto p = prepare(fn, logits, target, options);
  prepare_ce_grad(fn, logits, target, grad, options);
  p.args.want_sum = true;
  p.args.grad = grad.data();
  p.args.grad_scale = options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true);
  return reduce(cpu::cross_entropy(p.args), p, options);
}

template <class T, class L, class>
void cross_entropy_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                  Tensor<T>& value, const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                  "reduction none has no single value; use cross_entropy and "
                  "cross_entropy_backward");
    cuda_value_and_grad(logits, target, grad, &value, options);
    return;
  }
#endif
  value[0] = static_cast<T>(cross_entropy_value_and_grad(logits, target, grad, options));
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
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the sums come back to the host: waits
    auto a = cuda_args(fn, logits, target, options);
    a.reduction = Reduction::sum;  // the value is the loss sum
    const auto st = cuda_status(a, target, true);
    const double divisor = a.mean_over_valid ? st.count : st.weight_sum;
    return detail::mean_statistics(fn, st.value, divisor, st.count,
                                   detail::options_digest(options));
  }
#endif
  auto p = prepare(fn, logits, target, options);
  p.args.want_sum = true;
  const double sum = cpu::cross_entropy(p.args);
  return detail::mean_statistics(fn, sum, p.divisor, p.counted, detail::options_digest(options));
}

// The shard's gradient with the batch's divisor: mean_factor reads the reduced divisor and
// whether any shard counted a pixel.
#if defined(SEGLOSS_WITH_CUDA)
namespace {
// cross_entropy_finalize on CUDA, its gradient times grad_weight (a combined loss's first term
// passes its weight; the public call 1, the same bits as without it). Waits: a bad label raises,
// as on the CPU.
template <class T, class L>
double cuda_finalize(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                     const ShardStatistics& reduced, Tensor<T>& grad,
                     const CrossEntropyOptions<T>& options, double grad_weight) {
  auto a = cuda_args(fn, logits, target, options);
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_ce_grad(fn, logits, target, grad, options);
  a.grad = grad.data();
  a.grad_weight = grad_weight;
  a.use_reduced = true;
  a.reduced_divisor = reduced.global[detail::kDivisor];
  a.reduced_none_counted = reduced.global[detail::kCounted] == 0.0;
  cuda_status(a, target, true);
  Prepared<T, L> p;  // the value from the reduced sums, as on the CPU
  p.divisor = a.reduced_divisor;
  p.none_counted = a.reduced_none_counted;
  return reduce(reduced.global[detail::kLossSum], p, options);
}
}  // namespace
#endif

template <class T, class L, class>
double cross_entropy_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                              const ShardStatistics& reduced, Tensor<T>& grad,
                              const CrossEntropyOptions<T>& options) {
  const char* fn = "cross_entropy_finalize";
  detail::check_split_reduction(fn, options.reduction);
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda)
    return cuda_finalize(fn, logits, target, reduced, grad, options, 1.0);
#endif
  auto p = prepare(fn, logits, target, options);
  p.divisor = reduced.global[detail::kDivisor];
  p.none_counted = reduced.global[detail::kCounted] == 0.0;
  detail::check_split_options(fn, reduced, detail::options_digest(options));
  prepare_ce_grad(fn, logits, target, grad, options);
  p.args.grad = grad.data();
  p.args.grad_scale = options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true);
  cpu::cross_entropy(p.args);
  return reduce(reduced.global[detail::kLossSum], p, options);
}

namespace detail {

#if defined(SEGLOSS_WITH_CUDA)
template <class T, class L>
double cross_entropy_cuda_term(const Tensor<T>& logits, const Tensor<L>& target, T* grad,
                               const CrossEntropyOptions<T>& options, double grad_weight,
                               const T* grad_out, T* device_value) {
  const char* fn = grad_out ? "cross_entropy_backward" : "cross_entropy_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use cross_entropy and "
                "cross_entropy_backward");
  auto a = cuda_args(fn, logits, target, options);
  a.grad = grad;
  a.grad_out = grad_out;
  a.grad_weight = grad_weight;
  a.value = device_value;  // set: written on the stream, nothing waits
  (void)target;            // a bad label is the Dice term's to report (the CPU's message)
  return cuda::cross_entropy(a, grad_out == nullptr && device_value == nullptr).value;
}

template <class T, class L>
void cross_entropy_cuda_forward_into(const Tensor<T>& logits, const Tensor<L>& target,
                                     const CrossEntropyOptions<T>& options, T* out) {
  auto a = cuda_args("cross_entropy", logits, target, options);
  a.value = out;
  cuda_run(a, target, false);
}

template <class T, class L>
double cross_entropy_cuda_finalize_term(const Tensor<T>& logits, const Tensor<L>& target,
                                        const ShardStatistics& reduced, Tensor<T>& grad,
                                        const CrossEntropyOptions<T>& options, double grad_weight) {
  const char* fn = "cross_entropy_finalize";
  detail::check_split_reduction(fn, options.reduction);
  detail::check_mean_split(fn, reduced, detail::kMeanSplitSize);
  return cuda_finalize(fn, logits, target, reduced, grad, options, grad_weight);
}

#define SEGLOSS_INSTANTIATE_CUDA_TERM(T, L)                                                     \
  template double cross_entropy_cuda_term(const Tensor<T>&, const Tensor<L>&, T*,               \
                                          const CrossEntropyOptions<T>&, double, const T*, T*); \
  template void cross_entropy_cuda_forward_into(const Tensor<T>&, const Tensor<L>&,             \
                                                const CrossEntropyOptions<T>&, T*);             \
  template double cross_entropy_cuda_finalize_term(const Tensor<T>&, const Tensor<L>&,          \
                                                   const ShardStatistics&, Tensor<T>&,          \
                                                   const CrossEntropyOptions<T>&, double);
SEGLOSS_INSTANTIATE_CUDA_TERM(float, int32_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(float, int64_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(float, float)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, int32_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, int64_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, double)
#undef SEGLOSS_INSTANTIATE_CUDA_TERM
#endif

template <class T, class L>
double cross_entropy_value_and_grad_with(
    const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
    const CrossEntropyOptions<T>& options,
    const std::function<double(const cpu::CrossEntropyArgs<T, L>&)>& kernel) {
  const char* fn = "cross_entropy_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use cross_entropy and "
                "cross_entropy_backward");
  auto p = prepare(fn, logits, target, options);
  prepare_ce_grad(fn, logits, target, grad, options);
  p.args.want_sum = true;
  p.args.grad = grad.data();
  p.args.grad_scale = options.reduction == Reduction::sum ? 1.0 : mean_factor(p, options, true);
  return reduce(kernel(p.args), p, options);
}

template double cross_entropy_value_and_grad_with(
    const Tensor<float>&, const Tensor<int32_t>&, Tensor<float>&, const CrossEntropyOptions<float>&,
    const std::function<double(const cpu::CrossEntropyArgs<float, int32_t>&)>&);
template double cross_entropy_value_and_grad_with(
    const Tensor<float>&, const Tensor<int64_t>&, Tensor<float>&, const CrossEntropyOptions<float>&,
    const std::function<double(const cpu::CrossEntropyArgs<float, int64_t>&)>&);
template double cross_entropy_value_and_grad_with(
    const Tensor<double>&, const Tensor<int32_t>&, Tensor<double>&,
    const CrossEntropyOptions<double>&,
    const std::function<double(const cpu::CrossEntropyArgs<double, int32_t>&)>&);
template double cross_entropy_value_and_grad_with(
    const Tensor<double>&, const Tensor<int64_t>&, Tensor<double>&,
    const CrossEntropyOptions<double>&,
    const std::function<double(const cpu::CrossEntropyArgs<double, int64_t>&)>&);
template double cross_entropy_value_and_grad_with(
    const Tensor<float>&, const Tensor<float>&, Tensor<float>&, const CrossEntropyOptions<float>&,
    const std::function<double(const cpu::CrossEntropyArgs<float, float>&)>&);
template double cross_entropy_value_and_grad_with(
    const Tensor<double>&, const Tensor<double>&, Tensor<double>&,
    const CrossEntropyOptions<double>&,
    const std::function<double(const cpu::CrossEntropyArgs<double, double>&)>&);

}  // namespace detail

#define SEGLOSS_INSTANTIATE(T, L)                                                                 \
  template Tensor<T> cross_entropy(const Tensor<T>&, const Tensor<L>&,                            \
                                   const CrossEntropyOptions<T>&);                                \
  template Tensor<T> cross_entropy_backward(const Tensor<T>&, const Tensor<L>&, const Tensor<T>&, \
                                            const CrossEntropyOptions<T>&);                       \
  template double cross_entropy_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,    \
                                               const CrossEntropyOptions<T>&);                    \
  template void cross_entropy_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,      \
                                             Tensor<T>&, const CrossEntropyOptions<T>&);          \
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
