// soft_dice, soft_jaccard and tversky: one implementation over their score forms
// (losses/overlap.hpp has the math; internal/overlap_scores.hpp the scores and slopes).
#include "overlap.hpp"

#include <vector>

#include "internal/cuda_result.hpp"
#include "internal/half_options.hpp"
#include "internal/options_digest.hpp"
#include "internal/overlap_scores.hpp"
#include "internal/shards.hpp"
#include "soft_dice.hpp"
#include "soft_jaccard.hpp"
#include "tversky.hpp"

namespace segloss {
namespace {

// A caller's grad: the logits or apart from them, and apart from the other inputs (exactly the
// target or a per-pixel weight of the logits' shape allowed: each is read before its element's
// gradient is stored).
template <class T>
void prepare_overlap_grad(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                          Tensor<T>& grad, const OverlapOptions<T>& o) {
  detail::prepare_grad(
      fn, logits, grad,
      {detail::apart_or_same("target", target), detail::apart_or_same("options.weight", o.weight),
       detail::apart("options.class_weight", o.class_weight)});
}

template <class T>
struct Plan {
  cpu::OverlapArgs<T> args;
  detail::OverlapScores scores;
};

// With grad (checked or allocated here, after the other checks), pass 1 stashes exp(-|x|) in it
// for the gradient pass, unless it overlaps the target or the weight, or the logits other than
// exactly (cpu::OverlapArgs::stash).
template <class T>
Plan<T> statistics(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                   const OverlapOptions<T>& o, const detail::ScoreForm& f,
                   Tensor<T>* grad = nullptr) {
  Plan<T> p;
  p.args = detail::overlap_args(fn, logits, target, o);
  if (grad) {
    prepare_overlap_grad(fn, logits, target, *grad, o);
    const int64_t n = grad->numel();
    T* g = grad->data();
    if ((g == logits.data() || cpu::stash_disjoint(g, n, logits.data(), n)) &&
        cpu::stash_disjoint(g, n, target.data(), target.numel()) &&
        cpu::stash_disjoint(g, n, o.weight.data(), o.weight.numel()))
      p.args.stash = g;
  }
  std::vector<double> stats(static_cast<size_t>(p.args.planes * 3));
  cpu::overlap_statistics(p.args, stats.data());
  p.scores = detail::overlap_scores(stats, 3, logits.shape(), o, f);
  return p;
}

#if defined(SEGLOSS_WITH_CUDA)
// The CUDA finalize's device inputs besides grad_out: the class weights (a CUDA tensor).
template <class T>
cuda::Upstream<T> upstream(const OverlapOptions<T>& o) {
  cuda::Upstream<T> up;
  if (o.class_weight.defined()) up.class_weight = o.class_weight.data();
  return up;
}

// Where a CUDA call copies its counts of scores kept and skipped: only when info is asked for
// and the empty policy makes them depend on the data (the call then waits for the stream).
template <class T>
cuda::OverlapCounts* counts_wanted(const OverlapOptions<T>& o, const OverlapInfo* info,
                                   cuda::OverlapCounts* counts) {
  return info && o.empty != EmptyPolicy::formula ? counts : nullptr;
}

template <class T>
void cuda_info(const Shape& s, const OverlapOptions<T>& o, const cuda::OverlapCounts& counts,
               OverlapInfo* info) {
  if (info && o.empty != EmptyPolicy::formula)
    *info = OverlapInfo{counts.kept, counts.skipped};
  else
    detail::cuda_overlap_info(s, o, info);
}
#endif

// The gradient pass for slopes G (dL/dS per score).
template <class T>
void gradient(const Plan<T>& p, const std::vector<double>& G, T* grad) {
  std::vector<double> ca, cb;
  detail::overlap_coefficients(p.scores, G, p.args.planes, ca, cb);
  cpu::overlap_gradient(p.args, ca.data(), cb.data(), grad);
}

template <class T>
Tensor<T> forward(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                  const OverlapOptions<T>& o, const detail::ScoreForm& f, OverlapInfo* info) {
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // the value stays on the device: no wait
    const auto a = detail::overlap_args(fn, logits, target, o, /*cuda_path=*/true, "options.",
                                        /*cuda_all=*/true);
    const bool none = o.reduction == Reduction::none;
    Tensor<T> out = Tensor<T>::empty(
        none ? detail::overlap_scores_shape(logits.shape(), o) : Shape{}, Device::cuda);
    cuda::Result<T> r;
    if (!none) r.device = out.data();
    cuda::OverlapCounts counts;
    cuda::overlap_run<T>(fn, a, detail::cuda_overlap_form(logits.shape(), o, f), upstream(o),
                         nullptr, none ? out.data() : nullptr, r, counts_wanted(o, info, &counts));
    cuda_info(logits.shape(), o, counts, info);
    return out;
  }
#endif
  const auto p = statistics(fn, logits, target, o, f);
  p.scores.fill(info);
  if (o.reduction == Reduction::none) return detail::overlap_values<T>(p.scores, o);
  return Tensor<T>::full(Shape{}, static_cast<T>(detail::overlap_value(p.scores, o)));
}

template <class T>
Tensor<T> backward(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                   const Tensor<T>& grad_out, const OverlapOptions<T>& o,
                   const detail::ScoreForm& f) {
  detail::check_image(fn, "logits", logits, /*cuda_path=*/true);
  const bool scalar = o.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, detail::overlap_scores_shape(logits.shape(), o),
                         logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device
    const auto a = detail::overlap_args(fn, logits, target, o, /*cuda_path=*/true, "options.",
                                        /*cuda_all=*/true);
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    cuda::Upstream<T> up = upstream(o);
    up.grad_out = grad_out.data();
    up.per_score = !scalar;
    cuda::overlap_run<T>(fn, a, detail::cuda_overlap_form(logits.shape(), o, f), up, grad.data(),
                         nullptr, {});
    return grad;
  }
#endif
  Tensor<T> grad;
  const auto p = statistics(fn, logits, target, o, f, &grad);
  const auto G =
      scalar ? detail::overlap_slopes<T>(p.scores, o, static_cast<double>(grad_out[0]), nullptr)
             : detail::overlap_slopes<T>(p.scores, o, 1.0, grad_out.data());
  gradient(p, G, grad.data());
  return grad;
}

// The value is returned, and also written to device_value when given (one element on the
// logits' device; on CUDA then without a wait, and the returned value is 0).
template <class T>
double value_and_grad(const char* fn, const char* name, const Tensor<T>& logits,
                      const Tensor<T>& target, Tensor<T>& grad, const OverlapOptions<T>& o,
                      const detail::ScoreForm& f, OverlapInfo* info, T* device_value = nullptr) {
  SEGLOSS_CHECK(o.reduction != Reduction::none, fn, "reduction none has no single value; use ",
                name, " and ", name, "_backward");
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    const auto a = detail::overlap_args(fn, logits, target, o, /*cuda_path=*/true, "options.",
                                        /*cuda_all=*/true);
    prepare_overlap_grad(fn, logits, target, grad, o);
    cuda::OverlapCounts counts;
    const double value = detail::cuda_value(device_value, [&](cuda::Result<T> r) {
      cuda::overlap_run<T>(fn, a, detail::cuda_overlap_form(logits.shape(), o, f), upstream(o),
                           grad.data(), nullptr, r, counts_wanted(o, info, &counts));
    });
    cuda_info(logits.shape(), o, counts, info);
    return value;
  }
#endif
  const auto p = statistics(fn, logits, target, o, f, &grad);
  gradient(p, detail::overlap_slopes<T>(p.scores, o, 1.0, nullptr), grad.data());
  p.scores.fill(info);
  const double value = detail::overlap_value(p.scores, o);
  if (device_value) *device_value = static_cast<T>(value);
  return value;
}

// ---- the statistics / finalize split (overlap.hpp; internal/overlap_scores.hpp) ----

// On CUDA, statistics runs the statistics pass on the device and copies the per-plane sums back
// (it waits: the caller asked for host values); the rest is the CPU's code on them
// (detail::cuda_split_statistics). finalize uploads the reduced sums and runs the device
// finalize and the gradient pass (cuda::overlap_finalize_run).
template <class T>
OverlapStatistics split_statistics(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                                   const OverlapOptions<T>& o, const detail::ScoreForm& f) {
  detail::check_split_reduction(fn, o.reduction);
  const auto args = detail::overlap_args(fn, logits, target, o, /*cuda_path=*/true, "options.",
                                         /*cuda_all=*/true);
  std::vector<double> sums(static_cast<size_t>(args.planes * 3));
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    cuda::overlap_statistics_run<T>(fn, args, sums.data());
    return detail::cuda_split_statistics(fn, sums, 3, logits.shape(), o, f);
  }
#endif
  cpu::overlap_statistics(args, sums.data());
  return detail::overlap_split_statistics(sums, 3, logits.shape(), o, f);
}

template <class T>
double split_finalize(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                      const OverlapStatistics& st, Tensor<T>& grad, const OverlapOptions<T>& o,
                      const detail::ScoreForm& f, uint64_t digest) {
  detail::check_split_reduction(fn, o.reduction);
  const auto args = detail::overlap_args(fn, logits, target, o, /*cuda_path=*/true, "options.",
                                         /*cuda_all=*/true);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    detail::check_overlap_split(fn, st, 0, logits.shape(), o, digest);
    prepare_overlap_grad(fn, logits, target, grad, o);
    return cuda::overlap_finalize_run<T>(fn, args, detail::cuda_overlap_form(logits.shape(), o, f),
                                         upstream(o), detail::cuda_overlap_split(st, 0),
                                         grad.data());
  }
#endif
  std::vector<double> ca, cb;
  const double value =
      detail::overlap_split_coefficients<T>(fn, st, 0, logits.shape(), o, f, 1.0, ca, cb, digest);
  prepare_overlap_grad(fn, logits, target, grad, o);
  cpu::overlap_gradient(args, ca.data(), cb.data(), grad.data());
  return value;
}

template <class T>
detail::ScoreForm tversky_form(const char* fn, const TverskyOptions<T>& o) {
  SEGLOSS_CHECK(std::isfinite(o.alpha) && std::isfinite(o.beta) && o.alpha >= 0.0 &&
                    o.beta >= 0.0 && o.alpha + o.beta > 0.0,
                fn, "options.alpha ", o.alpha, " and options.beta ", o.beta,
                " must be finite and >= 0, with alpha + beta > 0");
  SEGLOSS_CHECK(!o.squared, fn,
                "options.squared is not defined for Tversky (FP = P - I holds for plain sums)");
  return detail::tversky_form(o.alpha, o.beta);
}

}  // namespace

// The three losses' public functions: each passes its name and score form.
#define SEGLOSS_OVERLAP_LOSS(NAME, OPTIONS, FORM)                                                 \
  template <class T>                                                                              \
  Tensor<T> NAME(const Tensor<T>& logits, const Tensor<T>& target, const OPTIONS<T>& options,     \
                 OverlapInfo* info) {                                                             \
    const char* fn = #NAME;                                                                       \
    return forward<T>(fn, logits, target, options, FORM, info);                                   \
  }                                                                                               \
  template <class T>                                                                              \
  Tensor<T> NAME##_backward(const Tensor<T>& logits, const Tensor<T>& target,                     \
                            const Tensor<T>& grad_out, const OPTIONS<T>& options) {               \
    const char* fn = #NAME "_backward";                                                           \
    return backward<T>(fn, logits, target, grad_out, options, FORM);                              \
  }                                                                                               \
  template <class T>                                                                              \
  double NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad, \
                               const OPTIONS<T>& options, OverlapInfo* info) {                    \
    const char* fn = #NAME "_value_and_grad";                                                     \
    return value_and_grad<T>(fn, #NAME, logits, target, grad, options, FORM, info);               \
  }                                                                                               \
  template <class T>                                                                              \
  void NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,   \
                             Tensor<T>& value, const OPTIONS<T>& options, OverlapInfo* info) {    \
    const char* fn = #NAME "_value_and_grad";                                                     \
    detail::check_image(fn, "logits", logits, /*cuda_path=*/true);                                \
    detail::prepare_value(fn, logits, value);                                                     \
    detail::check_value_apart_all(fn, value, logits, target, grad, options);                      \
    value_and_grad<T>(fn, #NAME, logits, target, grad, options, FORM, info, value.data());        \
  }                                                                                               \
  template void NAME##_value_and_grad(const Tensor<float>&, const Tensor<float>&, Tensor<float>&, \
                                      Tensor<float>&, const OPTIONS<float>&, OverlapInfo*);       \
  template void NAME##_value_and_grad(const Tensor<double>&, const Tensor<double>&,               \
                                      Tensor<double>&, Tensor<double>&, const OPTIONS<double>&,   \
                                      OverlapInfo*);                                              \
  template <class T>                                                                              \
  OverlapStatistics NAME##_statistics(const Tensor<T>& logits, const Tensor<T>& target,           \
                                      const OPTIONS<T>& options) {                                \
    const char* fn = #NAME "_statistics";                                                         \
    return detail::tagged(fn, split_statistics<T>(fn, logits, target, options, FORM),             \
                          detail::options_digest(options));                                       \
  }                                                                                               \
  template <class T>                                                                              \
  double NAME##_finalize(const Tensor<T>& logits, const Tensor<T>& target,                        \
                         const OverlapStatistics& reduced, Tensor<T>& grad,                       \
                         const OPTIONS<T>& options) {                                             \
    const char* fn = #NAME "_finalize";                                                           \
    return split_finalize<T>(fn, logits, target, reduced, grad, options, FORM,                    \
                             detail::options_digest(options));                                    \
  }                                                                                               \
  template OverlapStatistics NAME##_statistics(const Tensor<float>&, const Tensor<float>&,        \
                                               const OPTIONS<float>&);                            \
  template OverlapStatistics NAME##_statistics(const Tensor<double>&, const Tensor<double>&,      \
                                               const OPTIONS<double>&);                           \
  template double NAME##_finalize(const Tensor<float>&, const Tensor<float>&,                     \
                                  const OverlapStatistics&, Tensor<float>&,                       \
                                  const OPTIONS<float>&);                                         \
  template double NAME##_finalize(const Tensor<double>&, const Tensor<double>&,                   \
                                  const OverlapStatistics&, Tensor<double>&,                      \
                                  const OPTIONS<double>&);                                        \
  template <class T>                                                                              \
  ValueAndGrad<T> NAME##_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,         \
                                        const OPTIONS<T>& options, OverlapInfo* info) {           \
    ValueAndGrad<T> r;                                                                            \
    r.value = NAME##_value_and_grad(logits, target, r.grad, options, info);                       \
    return r;                                                                                     \
  }                                                                                               \
  template Tensor<float> NAME(const Tensor<float>&, const Tensor<float>&, const OPTIONS<float>&,  \
                              OverlapInfo*);                                                      \
  template Tensor<double> NAME(const Tensor<double>&, const Tensor<double>&,                      \
                               const OPTIONS<double>&, OverlapInfo*);                             \
  template Tensor<float> NAME##_backward(const Tensor<float>&, const Tensor<float>&,              \
                                         const Tensor<float>&, const OPTIONS<float>&);            \
  template Tensor<double> NAME##_backward(const Tensor<double>&, const Tensor<double>&,           \
                                          const Tensor<double>&, const OPTIONS<double>&);         \
  template double NAME##_value_and_grad(const Tensor<float>&, const Tensor<float>&,               \
                                        Tensor<float>&, const OPTIONS<float>&, OverlapInfo*);     \
  template double NAME##_value_and_grad(const Tensor<double>&, const Tensor<double>&,             \
                                        Tensor<double>&, const OPTIONS<double>&, OverlapInfo*);   \
  template ValueAndGrad<float> NAME##_value_and_grad(const Tensor<float>&, const Tensor<float>&,  \
                                                     const OPTIONS<float>&, OverlapInfo*);        \
  template ValueAndGrad<double> NAME##_value_and_grad(                                            \
      const Tensor<double>&, const Tensor<double>&, const OPTIONS<double>&, OverlapInfo*);

SEGLOSS_OVERLAP_LOSS(soft_dice, SoftDiceOptions, detail::dice_form())
SEGLOSS_OVERLAP_LOSS(soft_jaccard, SoftJaccardOptions, detail::jaccard_form())
SEGLOSS_OVERLAP_LOSS(tversky, TverskyOptions, tversky_form(fn, options))
#undef SEGLOSS_OVERLAP_LOSS

}  // namespace segloss
