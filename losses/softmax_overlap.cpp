// softmax_dice, softmax_jaccard, softmax_tversky and generalized_dice: the argument checks, the
// statistics pass, the scores (internal/overlap_scores.hpp, or the generalized Dice score
// below), and the gradient pass through the softmax.
#include "softmax_overlap.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "../backends/cpu/softmax_overlap.hpp"
#include "generalized_dice.hpp"
#include "internal/fused_terms.hpp"
#include "internal/half_options.hpp"
#include "internal/options_digest.hpp"
#include "internal/softmax_overlap_passes.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/cross_entropy.hpp"
#include "../backends/cuda/scratch.hpp"
#include "../backends/cuda/softmax_overlap.hpp"
#include "../core/cuda.hpp"
#endif

namespace segloss {
namespace {

#if defined(SEGLOSS_WITH_CUDA)
// ---- the CUDA path (backends/cuda/softmax_overlap.cu) ----
// The labels are checked on the device (the call's error flag), so nothing waits for the
// device unless a host value is asked for. Any number of classes (the statistics pass cuts the
// class axis into chunks above cuda::kSoftmaxOverlapChunk, session 10).

// The finalize's device inputs besides grad_out: the class weights (a CUDA tensor).
template <class T, class O>
cuda::Upstream<T> cuda_upstream(const O& o) {
  cuda::Upstream<T> up;
  if (o.class_weight.defined()) up.class_weight = o.class_weight.data();
  return up;
}

// Whether a call must copy its counts of scores kept and skipped back (and wait): info asked
// for, with an empty policy that makes them depend on the data.
template <class O>
bool counts_wanted(const O& o, const OverlapInfo* info) {
  return info && o.empty != EmptyPolicy::formula;
}

template <class O>
void cuda_info(const Shape& s, const O& o, const cuda::SoftmaxOverlapStatus& st,
               OverlapInfo* info) {
  if (counts_wanted(o, info))
    *info = OverlapInfo{st.kept, st.skipped};
  else
    detail::cuda_overlap_info(s, o, info);
}

template <class T, class U, class O>
cpu::SoftmaxOverlapArgs<T, U> cuda_args(const char* fn, const Tensor<T>& logits,
                                        const Tensor<U>& target, const O& o) {
  detail::check_class_target(fn, logits, target, /*cuda_path=*/true);
  detail::check_overlap_options(fn, logits.shape(), o, "options.", Device::cuda);
  if constexpr (std::is_floating_point_v<U>)
    SEGLOSS_CHECK(o.ignore_index == -100, fn, "options.ignore_index ", o.ignore_index,
                  " applies to label targets only; with probabilities it must keep its default "
                  "-100");
  const Shape& s = logits.shape();
  cpu::SoftmaxOverlapArgs<T, U> a;
  a.x = logits.data();
  a.images = s[0];
  a.classes = s[1];
  a.pixels = s.numel_from(2);
  a.target = target.data();
  a.ignore_index = o.ignore_index;
  a.squared = o.squared;
  return a;
}

// The value of a call's status; raises the CPU's error for the first bad label it reports.
template <class T, class U>
double cuda_status(const char* fn, const cuda::SoftmaxOverlapStatus& st,
                   const cpu::SoftmaxOverlapArgs<T, U>& a, const Tensor<U>& target) {
  SEGLOSS_CHECK(!st.bad_class_weight, fn,
                "options.class_weight holds a negative or non-finite value (checked on the "
                "device)");
  if constexpr (!std::is_floating_point_v<U>) {
    if (st.first_bad >= 0) {
      cpu::LabelRule rule;
      rule.ignore_index = a.ignore_index;
      detail::fail_bad_label(fn, target.shape(), st.first_bad,
                             cuda::read_element(target.data(), st.first_bad), a.classes, rule);
    }
  }
  return st.value;
}

// Runs the passes; with host_status, waits and raises the CPU's error for the first bad label.
// With host_status, st gets the status (the value, the counts).
template <class T, class U>
double cuda_run(const char* fn, const cpu::SoftmaxOverlapArgs<T, U>& a, const Tensor<U>& target,
                const cuda::OverlapForm& f, cuda::Upstream<T> up, T* grad, T* scores,
                T* device_value, bool host_status, cuda::SoftmaxOverlapStatus* st = nullptr,
                bool accumulate = false) {
  const auto status = cuda::softmax_overlap_run<T, U>(fn, a, f, up, grad, scores, device_value,
                                                      host_status, accumulate);
  if (st) *st = status;
  return cuda_status(fn, status, a, target);
}
#endif

template <class T, class U, class O>
Tensor<T> forward(const char* fn, const Tensor<T>& logits, const Tensor<U>& target, const O& o,
                  const detail::ScoreForm& f, OverlapInfo* info) {
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the value stays on the device: no wait
    const auto a = cuda_args(fn, logits, target, o);
    const bool none = o.reduction == Reduction::none;
    Tensor<T> out = Tensor<T>::empty(
        none ? detail::overlap_scores_shape(logits.shape(), o) : Shape{}, Device::cuda);
    // Waits only for counts that depend on the data; the value stays on the device, so a bad
    // label or class weight makes it NaN and never raises, with or without info.
    const auto st = cuda::softmax_overlap_run<T, U>(
        fn, a, detail::cuda_overlap_form(logits.shape(), o, f), cuda_upstream<T>(o), nullptr,
        none ? out.data() : nullptr, none ? nullptr : out.data(), counts_wanted(o, info));
    cuda_info(logits.shape(), o, st, info);
    return out;
  }
#endif
  const auto r = detail::softmax_scored(fn, logits, target, o, f);
  r.scores.fill(info);
  if (o.reduction == Reduction::none) return detail::overlap_values<T>(r.scores, o);
  return Tensor<T>::full(Shape{}, static_cast<T>(detail::overlap_value(r.scores, o)));
}

template <class T, class U, class O>
Tensor<T> backward(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                   const Tensor<T>& grad_out, const O& o, const detail::ScoreForm& f) {
  detail::check_image(fn, "logits", logits, /*cuda_path=*/true);
  const bool scalar = o.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, detail::overlap_scores_shape(logits.shape(), o),
                         logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device
    const auto a = cuda_args(fn, logits, target, o);
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    cuda::Upstream<T> up = cuda_upstream<T>(o);
    up.grad_out = grad_out.data();
    up.per_score = !scalar;
    cuda_run<T, U>(fn, a, target, detail::cuda_overlap_form(logits.shape(), o, f), up, grad.data(),
                   nullptr, nullptr, false);
    return grad;
  }
#endif
  Tensor<T> grad;
  const auto r = detail::softmax_scored(fn, logits, target, o, f, &grad);
  detail::softmax_overlap_grad(
      r,
      scalar ? detail::overlap_slopes<T>(r.scores, o, static_cast<double>(grad_out[0]), nullptr)
             : detail::overlap_slopes<T>(r.scores, o, 1.0, grad_out.data()),
      grad.data());
  return grad;
}

// device_value (one element on the logits' device, from detail::prepare_logits_value): the value
// goes there too (on CUDA only there, without a wait; then 0 is returned and info is not filled).
template <class T, class U, class O>
double value_and_grad(const char* fn, const char* name, const Tensor<T>& logits,
                      const Tensor<U>& target, Tensor<T>& grad, const O& o,
                      const detail::ScoreForm& f, OverlapInfo* info, T* device_value = nullptr) {
  SEGLOSS_CHECK(o.reduction != Reduction::none, fn, "reduction none has no single value; use ",
                name, " and ", name, "_backward");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // waits for the value, unless it stays on the device
    const auto a = cuda_args(fn, logits, target, o);
    detail::prepare_grad(
        fn, logits, grad,
        {detail::target_input<T>(target), detail::apart("options.class_weight", o.class_weight)});
    if (device_value) {  // no wait: a bad label or class weight makes the value NaN
      cuda_run<T, U>(fn, a, target, detail::cuda_overlap_form(logits.shape(), o, f),
                     cuda_upstream<T>(o), grad.data(), nullptr, device_value, false);
      return 0.0;
    }
    cuda::SoftmaxOverlapStatus st;
    const double value =
        cuda_run<T, U>(fn, a, target, detail::cuda_overlap_form(logits.shape(), o, f),
                       cuda_upstream<T>(o), grad.data(), nullptr, nullptr, true, &st);
    cuda_info(logits.shape(), o, st, info);
    return value;
  }
#endif
  const auto r = detail::softmax_scored(fn, logits, target, o, f, &grad);
  detail::softmax_overlap_grad(r, detail::overlap_slopes<T>(r.scores, o, 1.0, nullptr),
                               grad.data());
  r.scores.fill(info);
  const double value = detail::overlap_value(r.scores, o);
  if (device_value) *device_value = static_cast<T>(value);
  return value;
}

// ---- the statistics / finalize split: the CPU's (internal/softmax_overlap_passes.hpp), or on
// CUDA the device's statistics pass with its sums copied back (a wait: the caller asked for host
// values; a bad label raises then) and the CPU's code on them; finalize uploads the reduced sums
// and runs the device finalize and gradient pass (backends/cuda/softmax_overlap.cu).

template <class T, class U, class O>
OverlapStatistics split_statistics(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                                   const O& o, const detail::ScoreForm& f) {
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    detail::check_split_reduction(fn, o.reduction);
    const auto a = cuda_args(fn, logits, target, o);
    std::vector<double> sums(static_cast<size_t>(a.images * a.classes * 3));
    const auto status = cuda::softmax_overlap_statistics_run<T, U>(fn, a, sums.data());
    // The class weights (copied to the host) are checked before a bad label, as on the CPU.
    OverlapStatistics st = detail::cuda_split_statistics(fn, sums, 3, logits.shape(), o, f);
    cuda_status(fn, status, a, target);
    return st;
  }
#endif
  return detail::softmax_split_statistics(fn, logits, target, o, f);
}

template <class T, class U, class O>
double split_finalize(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                      const OverlapStatistics& reduced, Tensor<T>& grad, const O& o,
                      const detail::ScoreForm& f) {
  detail::check_overlap_layout(fn, reduced, 0, logits.shape(), o);
  const uint64_t digest = detail::options_digest(o);
  detail::prepare_grad(
      fn, logits, grad,
      {detail::target_input<T>(target), detail::apart("options.class_weight", o.class_weight)});
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    detail::check_split_reduction(fn, o.reduction);
    const auto a = cuda_args(fn, logits, target, o);
    detail::check_overlap_split(fn, reduced, 0, logits.shape(), o, digest);
    const auto st = cuda::softmax_overlap_finalize_run<T, U>(
        fn, a, detail::cuda_overlap_form(logits.shape(), o, f), cuda_upstream<T>(o),
        detail::cuda_overlap_split(reduced, 0), grad.data());
    return cuda_status(fn, st, a, target);
  }
#endif
  return detail::softmax_split_finalize(fn, logits, target, reduced, 0, grad.data(), o, f, 1.0,
                                        false, 1.0, digest);
}

}  // namespace

#if defined(SEGLOSS_WITH_CUDA)
namespace detail {
template <class T, class U>
double softmax_dice_cuda_term(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                              T* grad, const SoftmaxOverlapOptions<T>& o, double grad_weight,
                              const T* grad_out, bool accumulate,
                              const std::function<void()>& first) {
  SEGLOSS_CHECK(o.reduction != Reduction::none, fn,
                "options.dice.reduction is none; a combined loss needs both terms reduced to one "
                "value (mean or sum)");
  const auto a = cuda_args(fn, logits, target, o);
  if (first) first();
  cuda::OverlapForm f = detail::cuda_overlap_form(logits.shape(), o, detail::dice_form());
  f.dice_weight = grad_weight;
  cuda::Upstream<T> up = cuda_upstream<T>(o);
  up.grad_out = grad_out;
  return cuda_run<T, U>(fn, a, target, f, up, grad, nullptr, nullptr, grad_out == nullptr, nullptr,
                        accumulate);
}
template <class T, class U>
void softmax_dice_cuda_total(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                             const SoftmaxOverlapOptions<T>& o, T* out, double first_weight,
                             double dice_weight, const std::function<void()>& first, T* grad) {
  SEGLOSS_CHECK(o.reduction != Reduction::none, fn,
                "options.dice.reduction is none; a combined loss needs both terms reduced to one "
                "value (mean or sum)");
  const auto a = cuda_args(fn, logits, target, o);  // the Dice term's checks first, as on the CPU
  // Both terms' workspace at once (workspace_size covers cross_entropy, softmax_focal and the
  // softmax overlap layouts): under graph capture a pool too small raises here, before the first
  // term is recorded.
  cuda::detail::reserve_workspace(fn, cuda::workspace_size(logits.shape()));
  first();
  const cuda::DeviceTotal total{first_weight, dice_weight};
  cuda::OverlapForm f = detail::cuda_overlap_form(logits.shape(), o, detail::dice_form());
  // With grad: the Dice gradient times dice_weight added onto the first term's (value_and_grad's
  // device-value form; softmax_dice_cuda_term's scaling). The value is the Dice term's alone
  // either way (f.dice_weight scales the gradient's coefficients only); the total weighs it.
  if (grad) f.dice_weight = dice_weight;
  cuda::softmax_overlap_run<T, U>(fn, a, f, cuda_upstream<T>(o), grad, static_cast<T*>(nullptr),
                                  out, false, /*accumulate=*/grad != nullptr, &total);
}
template <class T, class U>
OverlapStatistics softmax_dice_cuda_split_statistics(const char* fn, const Tensor<T>& logits,
                                                     const Tensor<U>& target,
                                                     const SoftmaxOverlapOptions<T>& o) {
  return split_statistics(fn, logits, target, o, detail::dice_form());
}
template <class T, class U>
double softmax_dice_cuda_split_finalize(const char* fn, const Tensor<T>& logits,
                                        const Tensor<U>& target, const OverlapStatistics& reduced,
                                        size_t offset, T* grad, const SoftmaxOverlapOptions<T>& o,
                                        double grad_weight, bool accumulate) {
  detail::check_split_reduction(fn, o.reduction);
  const auto a = cuda_args(fn, logits, target, o);
  cuda::OverlapForm f = detail::cuda_overlap_form(logits.shape(), o, detail::dice_form());
  f.dice_weight = grad_weight;
  const auto st = cuda::softmax_overlap_finalize_run<T, U>(
      fn, a, f, cuda_upstream<T>(o), detail::cuda_overlap_split(reduced, offset), grad, accumulate);
  return cuda_status(fn, st, a, target);
}
#define SEGLOSS_INSTANTIATE_CUDA_TERM(T, U)                                                       \
  template double softmax_dice_cuda_term(const char*, const Tensor<T>&, const Tensor<U>&, T*,     \
                                         const SoftmaxOverlapOptions<T>&, double, const T*, bool, \
                                         const std::function<void()>&);                           \
  template void softmax_dice_cuda_total(const char*, const Tensor<T>&, const Tensor<U>&,          \
                                        const SoftmaxOverlapOptions<T>&, T*, double, double,      \
                                        const std::function<void()>&, T*);                        \
  template OverlapStatistics softmax_dice_cuda_split_statistics(                                  \
      const char*, const Tensor<T>&, const Tensor<U>&, const SoftmaxOverlapOptions<T>&);          \
  template double softmax_dice_cuda_split_finalize(                                               \
      const char*, const Tensor<T>&, const Tensor<U>&, const OverlapStatistics&, size_t, T*,      \
      const SoftmaxOverlapOptions<T>&, double, bool);
SEGLOSS_INSTANTIATE_CUDA_TERM(float, int32_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(float, int64_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(float, float)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, int32_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, int64_t)
SEGLOSS_INSTANTIATE_CUDA_TERM(double, double)
#undef SEGLOSS_INSTANTIATE_CUDA_TERM
}  // namespace detail
#endif

namespace {

template <class T>
detail::ScoreForm tversky_form(const char* fn, const SoftmaxTverskyOptions<T>& o) {
  SEGLOSS_CHECK(std::isfinite(o.alpha) && std::isfinite(o.beta) && o.alpha >= 0.0 &&
                    o.beta >= 0.0 && o.alpha + o.beta > 0.0,
                fn, "options.alpha ", o.alpha, " and options.beta ", o.beta,
                " must be finite and >= 0, with alpha + beta > 0");
  SEGLOSS_CHECK(!o.squared, fn,
                "options.squared is not defined for Tversky (FP = P - I holds for plain sums)");
  return detail::tversky_form(o.alpha, o.beta);
}

// ---- generalized Dice ----

struct GdlScores {
  std::vector<double> score, num, den;  // per score (image, or one for the batch)
  std::vector<double> w;                // per plane (n, c): the class weight of its score
  int64_t classes = 0;
  bool per_image = true;
  int64_t of_plane(int64_t p) const { return per_image ? p / classes : 0; }
};

template <class T>
GdlScores gdl_scores(const std::vector<double>& stats, const Shape& input,
                     const GeneralizedDiceOptions<T>& o) {
  const int64_t N = input[0], C = input[1], count = o.per_image ? N : 1;
  GdlScores s;
  s.classes = C;
  s.per_image = o.per_image;
  // Per score and class: I, P, T (batch sums in image order: deterministic).
  std::vector<double> I(count * C, 0.0), P(count * C, 0.0), Tt(count * C, 0.0);
  for (int64_t p = 0; p < N * C; ++p) {
    const int64_t k = s.of_plane(p) * C + p % C;
    I[k] += stats[p * 3 + 0];
    P[k] += stats[p * 3 + 1];
    Tt[k] += stats[p * 3 + 2];
  }
  std::vector<double> w(count * C, 0.0);
  s.score.resize(count);
  s.num.resize(count);
  s.den.resize(count);
  const int64_t c0 = o.include_background ? 0 : 1;
  for (int64_t j = 0; j < count; ++j) {
    double w_max = 0.0;  // the largest finite weight of the score
    for (int64_t c = c0; c < C; ++c) {
      const double t = Tt[j * C + c];
      double v = 1.0;
      if (o.w_type == GeneralizedDiceWeight::square) v = 1.0 / (t * t);
      if (o.w_type == GeneralizedDiceWeight::simple) v = 1.0 / t;
      w[j * C + c] = v;
      if (std::isfinite(v)) w_max = std::max(w_max, v);
    }
    double num = 0.0, den = 0.0;
    for (int64_t c = c0; c < C; ++c) {
      double& v = w[j * C + c];
      if (!std::isfinite(v)) v = w_max;  // an absent class: MONAI's rule
      num += v * I[j * C + c];
      den += v * (P[j * C + c] + Tt[j * C + c]);
    }
    s.num[j] = 2.0 * num + o.smooth_nr;
    s.den[j] = den + o.smooth_dr;
    s.score[j] = s.num[j] / s.den[j];
  }
  s.w.assign(static_cast<size_t>(N * C), 0.0);
  for (int64_t p = 0; p < N * C; ++p)
    if (p % C >= c0) s.w[p] = w[s.of_plane(p) * C + p % C];
  return s;
}

template <class T>
double gdl_value(const GdlScores& s, Reduction r) {
  double sum = 0.0;
  for (double v : s.score) sum += 1.0 - v;
  return r == Reduction::mean ? sum / static_cast<double>(s.score.size()) : sum;
}

// The gradient for slopes G_j = dL/dS_j: per plane ca = G 2 w / D, cb = -G w N / D^2.
template <class T, class U>
void gdl_gradient(const detail::SoftmaxPlan<T, U>& p, const GdlScores& s,
                  const std::vector<double>& G, T* grad) {
  const int64_t planes = p.args.images * p.args.classes;
  std::vector<double> ca(static_cast<size_t>(planes)), cb(static_cast<size_t>(planes));
  for (int64_t q = 0; q < planes; ++q) {
    const int64_t j = s.of_plane(q);
    const double w = s.w[s.per_image ? q : q % s.classes];  // for the batch: one w per class
    ca[q] = G[j] * 2.0 * w / s.den[j];
    cb[q] = -G[j] * w * s.num[j] / (s.den[j] * s.den[j]);
  }
  detail::softmax_gradient(p, ca, cb, grad);
}

template <class T>
void check_gdl_options(const char* fn, const Shape& input, const GeneralizedDiceOptions<T>& o) {
  detail::check_enum(fn, "options.", "reduction", o.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.", "w_type", o.w_type, detail::kGeneralizedDiceWeightNames);
  detail::check_smooth(fn, "options.smooth_nr", o.smooth_nr);
  detail::check_smooth(fn, "options.smooth_dr", o.smooth_dr);
  SEGLOSS_CHECK(o.include_background || input[1] > 1, fn, "options.include_background is false",
                " but the input ", input, " has a single class (C = 1): no class would remain");
}

Shape gdl_shape(const Shape& input, bool per_image) {
  return per_image ? Shape{input[0]} : Shape{1};
}

#if defined(SEGLOSS_WITH_CUDA)
// generalized Dice on CUDA (every option): the passes of the softmax overlap losses with the
// generalized Dice finalize (backends/cuda/softmax_overlap.cu).
template <class T, class U>
cpu::SoftmaxOverlapArgs<T, U> cuda_gdl_args(const char* fn, const Tensor<T>& logits,
                                            const Tensor<U>& target,
                                            const GeneralizedDiceOptions<T>& o) {
  detail::check_class_target(fn, logits, target, /*cuda_path=*/true);
  const Shape& s = logits.shape();
  check_gdl_options(fn, s, o);
  if constexpr (std::is_floating_point_v<U>)
    SEGLOSS_CHECK(o.ignore_index == -100, fn, "options.ignore_index ", o.ignore_index,
                  " applies to label targets only; with probabilities it must keep its default "
                  "-100");
  cpu::SoftmaxOverlapArgs<T, U> a;
  a.x = logits.data();
  a.images = s[0];
  a.classes = s[1];
  a.pixels = s.numel_from(2);
  a.target = target.data();
  a.ignore_index = o.ignore_index;
  return a;
}

template <class T, class U>
cuda::GdlForm cuda_gdl_form(const cpu::SoftmaxOverlapArgs<T, U>& a,
                            const GeneralizedDiceOptions<T>& o) {
  cuda::GdlForm f;
  f.images = a.images;
  f.classes = a.classes;
  f.w_type = o.w_type == GeneralizedDiceWeight::uniform  ? 0
             : o.w_type == GeneralizedDiceWeight::simple ? 1
                                                         : 2;
  f.smooth_nr = o.smooth_nr;
  f.smooth_dr = o.smooth_dr;
  f.per_image = o.per_image;
  f.include_background = o.include_background;
  f.mean = o.reduction == Reduction::mean;
  return f;
}

template <class T, class U>
double cuda_gdl_run(const char* fn, const cpu::SoftmaxOverlapArgs<T, U>& a, const Tensor<U>& target,
                    const GeneralizedDiceOptions<T>& o, cuda::Upstream<T> up, T* grad, T* scores,
                    T* device_value, bool host_status) {
  return cuda_status(fn,
                     cuda::generalized_dice_run<T, U>(fn, a, cuda_gdl_form(a, o), up, grad, scores,
                                                      device_value, host_status),
                     a, target);
}
#endif

}  // namespace

// ---- the public functions ----

#define SEGLOSS_SOFTMAX_OVERLAP_LOSS(NAME, OPTIONS, FORM)                                         \
  template <class T, class U, class>                                                              \
  Tensor<T> NAME(const Tensor<T>& logits, const Tensor<U>& target, const OPTIONS<T>& options,     \
                 OverlapInfo* info) {                                                             \
    const char* fn = #NAME;                                                                       \
    return forward(fn, logits, target, options, FORM, info);                                      \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  Tensor<T> NAME##_backward(const Tensor<T>& logits, const Tensor<U>& target,                     \
                            const Tensor<T>& grad_out, const OPTIONS<T>& options) {               \
    const char* fn = #NAME "_backward";                                                           \
    return backward(fn, logits, target, grad_out, options, FORM);                                 \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  double NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad, \
                               const OPTIONS<T>& options, OverlapInfo* info) {                    \
    const char* fn = #NAME "_value_and_grad";                                                     \
    return value_and_grad(fn, #NAME, logits, target, grad, options, FORM, info);                  \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  void NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,   \
                             Tensor<T>& value, const OPTIONS<T>& options) {                       \
    const char* fn = #NAME "_value_and_grad";                                                     \
    detail::prepare_logits_value(fn, logits, value);                                              \
    detail::check_value_apart_all(fn, value, logits, target, grad, options);                      \
    value_and_grad(fn, #NAME, logits, target, grad, options, FORM, nullptr, value.data());        \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  ValueAndGrad<T> NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,         \
                                        const OPTIONS<T>& options, OverlapInfo* info) {           \
    ValueAndGrad<T> r;                                                                            \
    r.value = NAME##_value_and_grad(logits, target, r.grad, options, info);                       \
    return r;                                                                                     \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  OverlapStatistics NAME##_statistics(const Tensor<T>& logits, const Tensor<U>& target,           \
                                      const OPTIONS<T>& options) {                                \
    const char* fn = #NAME "_statistics";                                                         \
    return detail::tagged(fn, split_statistics(fn, logits, target, options, FORM),                \
                          detail::options_digest(options));                                       \
  }                                                                                               \
  template <class T, class U, class>                                                              \
  double NAME##_finalize(const Tensor<T>& logits, const Tensor<U>& target,                        \
                         const OverlapStatistics& reduced, Tensor<T>& grad,                       \
                         const OPTIONS<T>& options) {                                             \
    const char* fn = #NAME "_finalize";                                                           \
    return split_finalize(fn, logits, target, reduced, grad, options, FORM);                      \
  }

SEGLOSS_SOFTMAX_OVERLAP_LOSS(softmax_dice, SoftmaxOverlapOptions, detail::dice_form())
SEGLOSS_SOFTMAX_OVERLAP_LOSS(softmax_jaccard, SoftmaxOverlapOptions, detail::jaccard_form())
SEGLOSS_SOFTMAX_OVERLAP_LOSS(softmax_tversky, SoftmaxTverskyOptions, tversky_form(fn, options))
#undef SEGLOSS_SOFTMAX_OVERLAP_LOSS

template <class T, class U, class>
Tensor<T> generalized_dice(const Tensor<T>& logits, const Tensor<U>& target,
                           const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice";
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the value stays on the device: no wait
    const auto a = cuda_gdl_args(fn, logits, target, o);
    const bool none = o.reduction == Reduction::none;
    Tensor<T> out =
        Tensor<T>::empty(none ? gdl_shape(logits.shape(), o.per_image) : Shape{}, Device::cuda);
    cuda_gdl_run<T, U>(fn, a, target, o, {}, nullptr, none ? out.data() : nullptr,
                       none ? nullptr : out.data(), false);
    return out;
  }
#endif
  detail::check_image(fn, "logits", logits);
  check_gdl_options(fn, logits.shape(), o);
  const auto p = detail::softmax_statistics(fn, logits, target, o.ignore_index, false);
  const auto s = gdl_scores(p.stats, logits.shape(), o);
  if (o.reduction != Reduction::none)
    return Tensor<T>::full(Shape{}, static_cast<T>(gdl_value<T>(s, o.reduction)));
  Tensor<T> out = Tensor<T>::empty(gdl_shape(logits.shape(), o.per_image));
  for (int64_t j = 0; j < out.numel(); ++j) out[j] = static_cast<T>(1.0 - s.score[j]);
  return out;
}

template <class T, class U, class>
Tensor<T> generalized_dice_backward(const Tensor<T>& logits, const Tensor<U>& target,
                                    const Tensor<T>& grad_out, const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice_backward";
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device
    const auto a = cuda_gdl_args(fn, logits, target, o);
    const bool scalar = o.reduction != Reduction::none;
    detail::check_grad_out(fn, grad_out, scalar, gdl_shape(logits.shape(), o.per_image),
                           Device::cuda);
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    cuda::Upstream<T> up;
    up.grad_out = grad_out.data();
    up.per_score = !scalar;
    cuda_gdl_run<T, U>(fn, a, target, o, up, grad.data(), nullptr, nullptr, false);
    return grad;
  }
#endif
  detail::check_image(fn, "logits", logits);
  check_gdl_options(fn, logits.shape(), o);
  const bool scalar = o.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, gdl_shape(logits.shape(), o.per_image));
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  const auto p = detail::softmax_statistics(fn, logits, target, o.ignore_index, false, grad.data());
  const auto s = gdl_scores(p.stats, logits.shape(), o);
  std::vector<double> G(s.score.size());
  const double uniform =
      o.reduction == Reduction::mean ? 1.0 / static_cast<double>(s.score.size()) : 1.0;
  for (size_t j = 0; j < G.size(); ++j)
    G[j] = -(scalar ? static_cast<double>(grad_out[0]) * uniform
                    : static_cast<double>(grad_out[static_cast<int64_t>(j)]));
  gdl_gradient(p, s, G, grad.data());
  return grad;
}

template <class T, class U, class>
double generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                       Tensor<T>& grad, const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice_value_and_grad";
  SEGLOSS_CHECK(o.reduction != Reduction::none, fn,
                "reduction none has no single value; use generalized_dice and "
                "generalized_dice_backward");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // waits for the value
    const auto a = cuda_gdl_args(fn, logits, target, o);
    detail::prepare_grad(fn, logits, grad, {detail::target_input<T>(target)});
    return cuda_gdl_run<T, U>(fn, a, target, o, {}, grad.data(), nullptr, nullptr, true);
  }
#endif
  detail::check_image(fn, "logits", logits);
  check_gdl_options(fn, logits.shape(), o);
  auto p = detail::softmax_plan(fn, logits, target, o.ignore_index, false);
  detail::prepare_grad(fn, logits, grad, {detail::target_input<T>(target)});
  detail::run_statistics(p, target, grad.data());  // stores p in grad for the gradient pass
  const auto s = gdl_scores(p.stats, logits.shape(), o);
  const double g = o.reduction == Reduction::mean ? 1.0 / static_cast<double>(s.score.size()) : 1.0;
  gdl_gradient(p, s, std::vector<double>(s.score.size(), -g), grad.data());
  return gdl_value<T>(s, o.reduction);
}

template <class T, class U, class>
void generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                     Tensor<T>& grad, Tensor<T>& value,
                                     const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, o);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // no wait: a bad label makes the value NaN
    SEGLOSS_CHECK(o.reduction != Reduction::none, fn,
                  "reduction none has no single value; use generalized_dice and "
                  "generalized_dice_backward");
    const auto a = cuda_gdl_args(fn, logits, target, o);
    detail::prepare_grad(fn, logits, grad, {detail::target_input<T>(target)});
    cuda_gdl_run<T, U>(fn, a, target, o, {}, grad.data(), nullptr, value.data(), false);
    return;
  }
#endif
  const double host = generalized_dice_value_and_grad(logits, target, grad, o);
  value[0] = static_cast<T>(host);  // a CPU tensor (prepare_value)
}

template <class T, class U, class>
ValueAndGrad<T> generalized_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                                const GeneralizedDiceOptions<T>& o) {
  ValueAndGrad<T> r;
  r.value = generalized_dice_value_and_grad(logits, target, r.grad, o);
  return r;
}

// ---- generalized Dice: the statistics / finalize split ----

template <class T, class U, class>
OverlapStatistics generalized_dice_statistics(const Tensor<T>& logits, const Tensor<U>& target,
                                              const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice_statistics";
  detail::check_split_reduction(fn, o.reduction);
  const Shape& shape = logits.shape();
  detail::SoftmaxPlan<T, U> p;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the device's sums copied back (a bad label raises)
    p.args = cuda_gdl_args(fn, logits, target, o);
    p.stats.resize(static_cast<size_t>(shape[0] * shape[1] * 3));
    cuda_status(fn, cuda::softmax_overlap_statistics_run<T, U>(fn, p.args, p.stats.data()), p.args,
                target);
  }
#endif
  if (logits.device() == Device::cpu) {
    detail::check_image(fn, "logits", logits);
    check_gdl_options(fn, logits.shape(), o);
    p = detail::softmax_statistics(fn, logits, target, o.ignore_index, false);
  }
  const int64_t C = shape[1], planes = shape[0] * C;
  OverlapStatistics st;
  st.per_image = o.per_image;
  st.channels = C;
  if (o.per_image) {  // the shard's own scores: the mean needs their count and loss sum
    const auto s = gdl_scores(p.stats, shape, o);
    st.global = {static_cast<double>(s.score.size()), gdl_value<T>(s, Reduction::sum)};
  } else {  // every class's sums, over the shard's images in order
    st.global.assign(static_cast<size_t>(3 * C), 0.0);
    for (int64_t q = 0; q < planes; ++q)
      for (int k = 0; k < 3; ++k) st.global[(q % C) * 3 + k] += p.stats[q * 3 + k];
  }
  st.local = std::move(p.stats);
  return detail::tagged(fn, std::move(st), detail::options_digest(o));
}

template <class T, class U, class>
double generalized_dice_finalize(const Tensor<T>& logits, const Tensor<U>& target,
                                 const OverlapStatistics& st, Tensor<T>& grad,
                                 const GeneralizedDiceOptions<T>& o) {
  const char* fn = "generalized_dice_finalize";
  detail::check_split_reduction(fn, o.reduction);
#if defined(SEGLOSS_WITH_CUDA)
  const auto a = logits.device() == Device::cuda ? cuda_gdl_args(fn, logits, target, o)
                                                 : cpu::SoftmaxOverlapArgs<T, U>{};
#endif
  if (logits.device() == Device::cpu) {
    detail::check_image(fn, "logits", logits);
    check_gdl_options(fn, logits.shape(), o);
  }
  const Shape& shape = logits.shape();
  const int64_t C = shape[1];
  const size_t want_global = o.per_image ? 2 : static_cast<size_t>(3 * C);
  detail::check_source(fn, st);
  SEGLOSS_CHECK(st.per_image == o.per_image && st.channels == C &&
                    st.local.size() == static_cast<size_t>(3 * shape[0] * C) &&
                    st.global.size() == want_global,
                fn, "the statistics (per_image ", st.per_image ? "true" : "false", ", ",
                st.channels, " classes, ", st.local.size() / 3, " local planes, ", st.global.size(),
                " global values) do not come from this shard's ", shape,
                " with these options (per_image ", o.per_image ? "true" : "false", ", ",
                want_global, " global values)");
  detail::check_split_options(fn, st, detail::options_digest(o));
  if (o.per_image) detail::check_split_score_count(fn, st, 0, shape[0], "images");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the reduced sums uploaded, the device's finalize
    detail::prepare_grad(fn, logits, grad, {detail::target_input<T>(target)});
    const auto status = cuda::generalized_dice_finalize_run<T, U>(
        fn, a, cuda_gdl_form(a, o), detail::cuda_overlap_split(st, 0), grad.data());
    return cuda_status(fn, status, a, target);
  }
#endif
  const auto p = detail::softmax_plan(fn, logits, target, o.ignore_index, false);
  detail::prepare_grad(fn, logits, grad, {detail::target_input<T>(target)});
  if (o.per_image) {  // the shard's scores; the mean over the batch's count of scores
    const double count = st.global[0];
    const auto s = gdl_scores(st.local, shape, o);
    const double g = o.reduction == Reduction::mean ? 1.0 / count : 1.0;
    gdl_gradient(p, s, std::vector<double>(s.score.size(), -g), grad.data());
    return o.reduction == Reduction::mean ? st.global[1] / count : st.global[1];
  }
  // One "image" holding every class's reduced sums: the batch score.
  const auto s = gdl_scores(st.global, Shape{1, C}, o);
  gdl_gradient(p, s, std::vector<double>(1, -1.0), grad.data());
  return gdl_value<T>(s, o.reduction);
}

// ---- instantiations: T float or double; U int32, int64 or T ----

#define SEGLOSS_INSTANTIATE_LOSS(NAME, OPTIONS, T, U)                                             \
  template Tensor<T> NAME<T, U, void>(const Tensor<T>&, const Tensor<U>&, const OPTIONS<T>&,      \
                                      OverlapInfo*);                                              \
  template Tensor<T> NAME##_backward<T, U, void>(const Tensor<T>&, const Tensor<U>&,              \
                                                 const Tensor<T>&, const OPTIONS<T>&);            \
  template double NAME##_value_and_grad<T, U, void>(const Tensor<T>&, const Tensor<U>&,           \
                                                    Tensor<T>&, const OPTIONS<T>&, OverlapInfo*); \
  template void NAME##_value_and_grad<T, U, void>(const Tensor<T>&, const Tensor<U>&, Tensor<T>&, \
                                                  Tensor<T>&, const OPTIONS<T>&);                 \
  template ValueAndGrad<T> NAME##_value_and_grad<T, U, void>(const Tensor<T>&, const Tensor<U>&,  \
                                                             const OPTIONS<T>&, OverlapInfo*);    \
  template OverlapStatistics NAME##_statistics<T, U, void>(const Tensor<T>&, const Tensor<U>&,    \
                                                           const OPTIONS<T>&);                    \
  template double NAME##_finalize<T, U, void>(const Tensor<T>&, const Tensor<U>&,                 \
                                              const OverlapStatistics&, Tensor<T>&,               \
                                              const OPTIONS<T>&);
#define SEGLOSS_INSTANTIATE(T, U)                                                               \
  SEGLOSS_INSTANTIATE_LOSS(softmax_dice, SoftmaxOverlapOptions, T, U)                           \
  SEGLOSS_INSTANTIATE_LOSS(softmax_jaccard, SoftmaxOverlapOptions, T, U)                        \
  SEGLOSS_INSTANTIATE_LOSS(softmax_tversky, SoftmaxTverskyOptions, T, U)                        \
  template Tensor<T> generalized_dice<T, U, void>(const Tensor<T>&, const Tensor<U>&,           \
                                                  const GeneralizedDiceOptions<T>&);            \
  template Tensor<T> generalized_dice_backward<T, U, void>(                                     \
      const Tensor<T>&, const Tensor<U>&, const Tensor<T>&, const GeneralizedDiceOptions<T>&);  \
  template double generalized_dice_value_and_grad<T, U, void>(                                  \
      const Tensor<T>&, const Tensor<U>&, Tensor<T>&, const GeneralizedDiceOptions<T>&);        \
  template ValueAndGrad<T> generalized_dice_value_and_grad<T, U, void>(                         \
      const Tensor<T>&, const Tensor<U>&, const GeneralizedDiceOptions<T>&);                    \
  template OverlapStatistics generalized_dice_statistics<T, U, void>(                           \
      const Tensor<T>&, const Tensor<U>&, const GeneralizedDiceOptions<T>&);                    \
  template double generalized_dice_finalize<T, U, void>(const Tensor<T>&, const Tensor<U>&,     \
                                                        const OverlapStatistics&, Tensor<T>&,   \
                                                        const GeneralizedDiceOptions<T>&);      \
  template void generalized_dice_value_and_grad<T, U, void>(const Tensor<T>&, const Tensor<U>&, \
                                                            Tensor<T>&, Tensor<T>&,             \
                                                            const GeneralizedDiceOptions<T>&);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE
#undef SEGLOSS_INSTANTIATE_LOSS

}  // namespace segloss
