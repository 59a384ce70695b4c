// lovasz_softmax and lovasz_hinge: argument checks, which classes count in which problem, the
// reduction over problems, and the kernels for the tensors' device.
#include "lovasz.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../backends/cpu/lovasz.hpp"
#include "../core/checks.hpp"
#include "internal/half_options.hpp"
#include "internal/labels.hpp"
#include "internal/lovasz_args.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/lovasz.hpp"
#include "internal/cuda_result.hpp"
#endif

namespace segloss {
namespace {

// The reduction over the problems' losses L_j (the N images, or the one batch problem).
double reduce(const std::vector<double>& loss, Reduction r) {
  double sum = 0.0;
  for (double v : loss) sum += v;  // in problem order: deterministic
  return r == Reduction::mean ? sum / static_cast<double>(loss.size()) : sum;
}

// dL/dL_j of the reduced loss, times the upstream gradient.
template <class T>
std::vector<double> upstream(int64_t count, Reduction r, const T* grad_out, double scalar) {
  std::vector<double> u(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j)
    u[j] = grad_out ? static_cast<double>(grad_out[j])
                    : scalar * (r == Reduction::mean ? 1.0 / static_cast<double>(count) : 1.0);
  return u;
}

template <class T>
Tensor<T> values_tensor(const std::vector<double>& loss) {
  Tensor<T> out = Tensor<T>::empty(Shape{static_cast<int64_t>(loss.size())});
  for (size_t j = 0; j < loss.size(); ++j) out[static_cast<int64_t>(j)] = static_cast<T>(loss[j]);
  return out;
}

// ---- lovasz_softmax ----

template <class T, class L>
struct SoftmaxPlan {
  cpu::LovaszSoftmaxArgs<T, L> args;
  int64_t problems = 0;
  std::vector<int64_t> counts;         // per problem and class
  std::vector<unsigned char> counted;  // per problem and class
  std::vector<int64_t> kept;           // per problem: the classes counted, K_j
  std::vector<double> scale;           // per problem: upstream_j / K_j
};

template <class T, class L>
SoftmaxPlan<T, L> softmax_plan(const char* fn, const Tensor<T>& logits, const Tensor<L>& labels,
                               const LovaszSoftmaxOptions<T>& o) {
  detail::check_lovasz_softmax_args(fn, logits, labels, o);
  const Shape& s = logits.shape();
  const int64_t N = s[0], C = s[1], S = s.numel_from(2);

  SoftmaxPlan<T, L> p;
  p.problems = o.per_image ? N : 1;
  std::vector<int64_t> per_image(static_cast<size_t>(N * C));
  cpu::lovasz_label_counts(labels.data(), N, S, C, o.ignore_index, per_image.data());
  p.counts.assign(static_cast<size_t>(p.problems * C), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) p.counts[(o.per_image ? n : 0) * C + c] += per_image[n * C + c];

  std::vector<unsigned char> listed(static_cast<size_t>(C), 0);
  for (int64_t c : o.class_list) listed[c] = 1;
  p.counted.assign(static_cast<size_t>(p.problems * C), 0);
  p.kept.assign(static_cast<size_t>(p.problems), 0);
  for (int64_t j = 0; j < p.problems; ++j) {
    int64_t valid = 0;
    for (int64_t c = 0; c < C; ++c) valid += p.counts[j * C + c];
    if (valid == 0) continue;  // every pixel ignored: no class counts (the reference's 0)
    for (int64_t c = 0; c < C; ++c) {
      bool in = false;
      if (!o.class_list.empty())
        in = listed[c] != 0;
      else if (o.classes == LovaszClasses::all)
        in = true;
      else
        in = p.counts[j * C + c] > 0;
      p.counted[j * C + c] = in ? 1 : 0;
      p.kept[j] += in ? 1 : 0;
    }
  }

  auto& a = p.args;
  a.x = logits.data();
  a.images = N;
  a.classes = C;
  a.pixels = S;
  a.labels = labels.data();
  a.ignore_index = o.ignore_index;
  a.problem_images = o.per_image ? 1 : N;
  a.counts = p.counts.data();
  a.counted = p.counted.data();
  return p;
}

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA path of lovasz_softmax (backends/cuda/lovasz.cu): the label check, the counts per
// (problem, class), the classes counted and the scales are computed on the device; only a host
// value waits, and raises the CPU's message for a bad label.
template <class T, class L>
void softmax_cuda(const char* fn, const Tensor<T>& logits, const Tensor<L>& labels, T* grad,
                  const Tensor<T>* grad_out, T* losses, cuda::Result<T> res,
                  const LovaszSoftmaxOptions<T>& o) {
  const Shape& s = logits.shape();
  const int64_t N = s[0], C = s[1];
  cuda::LovaszClassRule rule;
  if (!o.class_list.empty()) {
    rule.mode = cuda::LovaszClassRule::listed;
    if (C <= cuda::kLovaszMaxListed) {
      for (int64_t c : o.class_list) rule.bits[c / 32] |= 1u << (c % 32);
    } else {  // the mask goes to the call's workspace (backends/cuda/lovasz.hpp)
      rule.wide = o.class_list.data();
      rule.wide_count = static_cast<int64_t>(o.class_list.size());
    }
  } else if (o.classes == LovaszClasses::all) {
    rule.mode = cuda::LovaszClassRule::all;
  }
  cpu::LovaszSoftmaxArgs<T, L> a;
  a.x = logits.data();
  a.images = N;
  a.classes = C;
  a.pixels = s.numel_from(2);
  a.labels = labels.data();
  a.ignore_index = o.ignore_index;
  a.problem_images = o.per_image ? 1 : N;
  a.grad = grad;
  const int64_t problems = o.per_image ? N : 1;
  cuda::LovaszUpstream<T> up;
  up.factor = o.reduction == Reduction::mean ? 1.0 / static_cast<double>(problems) : 1.0;
  if (grad_out) {
    up.grad_out = grad_out->data();
    up.per_problem = o.reduction == Reduction::none;
  }
  cuda::LovaszBadLabel bad;
  cuda::lovasz_softmax(fn, a, rule, o.reduction == Reduction::mean, up, losses, res, &bad);
  if (bad.index >= 0) {
    cpu::LabelRule lr;
    lr.ignore_index = o.ignore_index;
    detail::fail_bad_label(fn, labels.shape(), bad.index, static_cast<int64_t>(bad.value), C, lr);
  }
}
#endif

// L_j = (1 / K_j) sum_c loss_c, 0 without a class.
template <class T, class L>
std::vector<double> softmax_run(SoftmaxPlan<T, L>& p, T* grad, const std::vector<double>* up) {
  if (grad) {
    p.scale.assign(static_cast<size_t>(p.problems), 0.0);
    for (int64_t j = 0; j < p.problems; ++j)
      if (p.kept[j] > 0) p.scale[j] = (*up)[j] / static_cast<double>(p.kept[j]);
    p.args.scale = p.scale.data();
    p.args.grad = grad;
  }
  std::vector<double> loss(static_cast<size_t>(p.problems));
  cpu::lovasz_softmax(p.args, loss.data());
  for (int64_t j = 0; j < p.problems; ++j)
    loss[j] = p.kept[j] > 0 ? loss[j] / static_cast<double>(p.kept[j]) : 0.0;
  return loss;
}

// ---- lovasz_hinge ----

template <class T>
[[noreturn]] void hinge_bad_label(const char* fn, const Shape& s, int64_t bad, double label,
                                  const LovaszHingeOptions<T>& o) {
  if (o.ignore.has_value())
    detail::fail(fn, "target has label ", label, " at ", s.position(bad),
                 "; expected 0, 1 or options.ignore ", *o.ignore);
  detail::fail(fn, "target has label ", label, " at ", s.position(bad),
               "; expected 0 or 1 (options.ignore is not set)");
}

template <class T>
cpu::LovaszHingeArgs<T> hinge_args(const char* fn, const Tensor<T>& logits, const Tensor<T>& labels,
                                   const LovaszHingeOptions<T>& o) {
  detail::check_same_shape_pair(fn, logits, labels, "logits", /*cuda_path=*/true);
  detail::check_enum(fn, "options.", "reduction", o.reduction, detail::kReductionNames);
  const Shape& s = logits.shape();
  const bool has_ignore = o.ignore.has_value();
  const double ignore = detail::hinge_ignore(o);
  // On CUDA the kernel checks the labels (the forms with a host value raise the same message).
  const int64_t bad =
      logits.device() == Device::cuda
          ? -1
          : cpu::lovasz_hinge_first_bad(labels.data(), labels.numel(), has_ignore, ignore);
  if (bad >= 0) hinge_bad_label(fn, s, bad, static_cast<double>(labels.data()[bad]), o);
  cpu::LovaszHingeArgs<T> a;
  a.x = logits.data();
  a.t = labels.data();
  a.problems = o.per_image ? s[0] : 1;
  a.size = s.numel() / a.problems;
  a.has_ignore = has_ignore;
  a.ignore = ignore;
  return a;
}

template <class T>
std::vector<double> hinge_run(cpu::LovaszHingeArgs<T>& a, T* grad, const std::vector<double>* up) {
  if (grad) {
    a.scale = up->data();
    a.grad = grad;
  }
  std::vector<double> loss(static_cast<size_t>(a.problems));
  cpu::lovasz_hinge(a, loss.data());
  return loss;
}

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA path of lovasz_hinge (backends/cuda/lovasz.cu). grad_out (a device tensor) is read on
// the device; a host value waits and raises the CPU's message for a bad label.
template <class T>
void hinge_cuda(const char* fn, const Tensor<T>& labels, const cpu::LovaszHingeArgs<T>& a,
                Reduction r, const Tensor<T>* grad_out, T* losses, cuda::Result<T> res,
                const LovaszHingeOptions<T>& o) {
  cuda::LovaszUpstream<T> up;
  up.factor = r == Reduction::mean ? 1.0 / static_cast<double>(a.problems) : 1.0;
  if (grad_out) {
    up.grad_out = grad_out->data();
    up.per_problem = r == Reduction::none;
  }
  cuda::LovaszBadLabel bad;
  cuda::lovasz_hinge(fn, a, r == Reduction::mean, up, losses, res, &bad);
  if (bad.index >= 0) hinge_bad_label(fn, labels.shape(), bad.index, bad.value, o);
}
#endif

}  // namespace

// ---- lovasz_softmax: the public entry points ----

template <class T, class L, class>
Tensor<T> lovasz_softmax(const Tensor<T>& logits, const Tensor<L>& labels,
                         const LovaszSoftmaxOptions<T>& options) {
  const char* fn = "lovasz_softmax";
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the values stay on the device: no wait
    detail::check_lovasz_softmax_args(fn, logits, labels, options, /*cuda_path=*/true);
    if (options.reduction == Reduction::none) {
      Tensor<T> out =
          Tensor<T>::empty(Shape{options.per_image ? logits.shape()[0] : 1}, Device::cuda);
      softmax_cuda<T, L>(fn, logits, labels, nullptr, nullptr, out.data(), {}, options);
      return out;
    }
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      softmax_cuda<T, L>(fn, logits, labels, nullptr, nullptr, nullptr, r, options);
    });
  }
#endif
  auto p = softmax_plan(fn, logits, labels, options);
  const auto loss = softmax_run<T, L>(p, nullptr, nullptr);
  if (options.reduction == Reduction::none) return values_tensor<T>(loss);
  return Tensor<T>::full(Shape{}, static_cast<T>(reduce(loss, options.reduction)));
}

template <class T, class L, class>
Tensor<T> lovasz_softmax_backward(const Tensor<T>& logits, const Tensor<L>& labels,
                                  const Tensor<T>& grad_out,
                                  const LovaszSoftmaxOptions<T>& options) {
  const char* fn = "lovasz_softmax_backward";
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device: no wait
    detail::check_lovasz_softmax_args(fn, logits, labels, options, /*cuda_path=*/true);
    detail::check_grad_out(fn, grad_out, options.reduction != Reduction::none,
                           Shape{options.per_image ? logits.shape()[0] : 1}, Device::cuda);
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    softmax_cuda<T, L>(fn, logits, labels, grad.data(), &grad_out, nullptr, {}, options);
    return grad;
  }
#endif
  auto p = softmax_plan(fn, logits, labels, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, Shape{p.problems});
  const auto up =
      scalar ? upstream<T>(p.problems, options.reduction, nullptr, static_cast<double>(grad_out[0]))
             : upstream<T>(p.problems, options.reduction, grad_out.data(), 1.0);
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  softmax_run<T, L>(p, grad.data(), &up);
  return grad;
}

// lovasz_softmax writes dL/dp into grad, then applies the softmax's Jacobian, which reads the
// logits again (CPU and CUDA): grad may not be the logits. (Before session 9 the CPU accepted it
// and gave a wrong gradient.)
namespace {
template <class T>
void check_not_in_place(const char* fn, const Tensor<T>& logits, const Tensor<T>& grad) {
  SEGLOSS_CHECK(grad.data() != logits.data(), fn,
                "grad is the logits; lovasz_softmax needs a separate grad buffer (its softmax "
                "Jacobian step reads the logits after dL/dp was written into grad)");
}
}  // namespace

template <class T, class L, class>
double lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                     Tensor<T>& grad, const LovaszSoftmaxOptions<T>& options) {
  const char* fn = "lovasz_softmax_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use lovasz_softmax and "
                "lovasz_softmax_backward");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // waits for the value
    detail::check_lovasz_softmax_args(fn, logits, labels, options, /*cuda_path=*/true);
    detail::prepare_grad(fn, logits, grad, {detail::apart("labels", labels)});
    check_not_in_place(fn, logits, grad);
    return detail::cuda_value(static_cast<T*>(nullptr), [&](cuda::Result<T> r) {
      softmax_cuda<T, L>(fn, logits, labels, grad.data(), nullptr, nullptr, r, options);
    });
  }
#endif
  auto p = softmax_plan(fn, logits, labels, options);
  detail::prepare_grad(fn, logits, grad, {detail::apart("labels", labels)});
  check_not_in_place(fn, logits, grad);
  const auto up = upstream<T>(p.problems, options.reduction, nullptr, 1.0);
  return reduce(softmax_run<T, L>(p, grad.data(), &up), options.reduction);
}

template <class T, class L, class>
void lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                   Tensor<T>& grad, Tensor<T>& value,
                                   const LovaszSoftmaxOptions<T>& options) {
  const char* fn = "lovasz_softmax_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, labels, grad, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // no wait: a bad label makes the value NaN
    SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                  "reduction none has no single value; use lovasz_softmax and "
                  "lovasz_softmax_backward");
    detail::check_lovasz_softmax_args(fn, logits, labels, options, /*cuda_path=*/true);
    detail::prepare_grad(fn, logits, grad, {detail::apart("labels", labels)});
    check_not_in_place(fn, logits, grad);
    detail::cuda_value(value.data(), [&](cuda::Result<T> r) {
      softmax_cuda<T, L>(fn, logits, labels, grad.data(), nullptr, nullptr, r, options);
    });
    return;
  }
#endif
  const double host = lovasz_softmax_value_and_grad(logits, labels, grad, options);
  value[0] = static_cast<T>(host);  // a CPU tensor (prepare_value)
}

template <class T, class L, class>
ValueAndGrad<T> lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                              const LovaszSoftmaxOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = lovasz_softmax_value_and_grad(logits, labels, r.grad, options);
  return r;
}

// ---- lovasz_hinge: the public entry points ----

template <class T>
Tensor<T> lovasz_hinge(const Tensor<T>& logits, const Tensor<T>& labels,
                       const LovaszHingeOptions<T>& options) {
  const char* fn = "lovasz_hinge";
  auto a = hinge_args(fn, logits, labels, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the values stay on the device: no wait
    if (options.reduction == Reduction::none) {
      Tensor<T> out = Tensor<T>::empty(Shape{a.problems}, Device::cuda);
      hinge_cuda<T>(fn, labels, a, options.reduction, nullptr, out.data(), {}, options);
      return out;
    }
    return detail::cuda_scalar<T>([&](cuda::Result<T> r) {
      hinge_cuda<T>(fn, labels, a, options.reduction, nullptr, nullptr, r, options);
    });
  }
#endif
  const auto loss = hinge_run<T>(a, nullptr, nullptr);
  if (options.reduction == Reduction::none) return values_tensor<T>(loss);
  return Tensor<T>::full(Shape{}, static_cast<T>(reduce(loss, options.reduction)));
}

template <class T>
Tensor<T> lovasz_hinge_backward(const Tensor<T>& logits, const Tensor<T>& labels,
                                const Tensor<T>& grad_out, const LovaszHingeOptions<T>& options) {
  const char* fn = "lovasz_hinge_backward";
  auto a = hinge_args(fn, logits, labels, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, Shape{a.problems}, logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device: no wait
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    a.grad = grad.data();
    hinge_cuda<T>(fn, labels, a, options.reduction, &grad_out, nullptr, {}, options);
    return grad;
  }
#endif
  const auto up =
      scalar ? upstream<T>(a.problems, options.reduction, nullptr, static_cast<double>(grad_out[0]))
             : upstream<T>(a.problems, options.reduction, grad_out.data(), 1.0);
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  hinge_run<T>(a, grad.data(), &up);
  return grad;
}

template <class T>
double lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels,
                                   Tensor<T>& grad, const LovaszHingeOptions<T>& options) {
  const char* fn = "lovasz_hinge_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use lovasz_hinge and lovasz_hinge_backward");
  auto a = hinge_args(fn, logits, labels, options);
  detail::prepare_grad(fn, logits, grad, {detail::apart_or_same("labels", labels)});
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // waits for the value
    a.grad = grad.data();
    return detail::cuda_value(static_cast<T*>(nullptr), [&](cuda::Result<T> r) {
      hinge_cuda<T>(fn, labels, a, options.reduction, nullptr, nullptr, r, options);
    });
  }
#endif
  const auto up = upstream<T>(a.problems, options.reduction, nullptr, 1.0);
  return reduce(hinge_run<T>(a, grad.data(), &up), options.reduction);
}

template <class T>
void lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels, Tensor<T>& grad,
                                 Tensor<T>& value, const LovaszHingeOptions<T>& options) {
  const char* fn = "lovasz_hinge_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, labels, grad, options);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // no wait: a bad label makes the value NaN
    SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                  "reduction none has no single value; use lovasz_hinge and lovasz_hinge_backward");
    auto a = hinge_args(fn, logits, labels, options);
    detail::prepare_grad(fn, logits, grad, {detail::apart_or_same("labels", labels)});
    a.grad = grad.data();
    detail::cuda_value(value.data(), [&](cuda::Result<T> r) {
      hinge_cuda<T>(fn, labels, a, options.reduction, nullptr, nullptr, r, options);
    });
    return;
  }
#endif
  const double host = lovasz_hinge_value_and_grad(logits, labels, grad, options);
  value[0] = static_cast<T>(host);  // a CPU tensor (prepare_value)
}

template <class T>
ValueAndGrad<T> lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels,
                                            const LovaszHingeOptions<T>& options) {
  ValueAndGrad<T> r;
  r.value = lovasz_hinge_value_and_grad(logits, labels, r.grad, options);
  return r;
}

#define SEGLOSS_INSTANTIATE(T, L)                                                                  \
  template Tensor<T> lovasz_softmax(const Tensor<T>&, const Tensor<L>&,                            \
                                    const LovaszSoftmaxOptions<T>&);                               \
  template Tensor<T> lovasz_softmax_backward(const Tensor<T>&, const Tensor<L>&, const Tensor<T>&, \
                                             const LovaszSoftmaxOptions<T>&);                      \
  template double lovasz_softmax_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,    \
                                                const LovaszSoftmaxOptions<T>&);                   \
  template void lovasz_softmax_value_and_grad(const Tensor<T>&, const Tensor<L>&, Tensor<T>&,      \
                                              Tensor<T>&, const LovaszSoftmaxOptions<T>&);         \
  template ValueAndGrad<T> lovasz_softmax_value_and_grad(const Tensor<T>&, const Tensor<L>&,       \
                                                         const LovaszSoftmaxOptions<T>&);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template Tensor<T> lovasz_hinge(const Tensor<T>&, const Tensor<T>&,                            \
                                  const LovaszHingeOptions<T>&);                                 \
  template Tensor<T> lovasz_hinge_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                           const LovaszHingeOptions<T>&);                        \
  template double lovasz_hinge_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,    \
                                              const LovaszHingeOptions<T>&);                     \
  template void lovasz_hinge_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,      \
                                            Tensor<T>&, const LovaszHingeOptions<T>&);           \
  template ValueAndGrad<T> lovasz_hinge_value_and_grad(const Tensor<T>&, const Tensor<T>&,       \
                                                       const LovaszHingeOptions<T>&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
