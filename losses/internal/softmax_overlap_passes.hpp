// The softmax overlap losses' two passes as the loss layer drives them (not installed): the
// checks and the statistics pass, the scores, and the gradient pass. Shared by
// softmax_overlap.cpp and the combined losses (combined.cpp), which add a second term.
#pragma once

#include <type_traits>
#include <vector>

#include "../../backends/cpu/softmax_overlap.hpp"
#include "../softmax_overlap.hpp"
#include "labels.hpp"
#include "overlap_scores.hpp"
#include "shards.hpp"

namespace segloss {
namespace detail {

template <class T, class U>
struct SoftmaxPlan {
  cpu::SoftmaxOverlapArgs<T, U> args;
  std::vector<double> stats;  // per (image, class): I, P, T
};

// Checks the logits and target (validating the labels) and fills the kernels' arguments.
template <class T, class U>
SoftmaxPlan<T, U> softmax_plan(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                               int64_t ignore_index, bool squared) {
  check_class_target(fn, logits, target);
  const Shape& s = logits.shape();
  SoftmaxPlan<T, U> p;
  auto& a = p.args;
  a.x = logits.data();
  a.images = s[0];
  a.classes = s[1];
  a.pixels = s.numel_from(2);
  a.target = target.data();
  a.ignore_index = ignore_index;
  a.squared = squared;
  if constexpr (std::is_floating_point_v<U>) {
    SEGLOSS_CHECK(ignore_index == -100, fn, "options.ignore_index ", ignore_index,
                  " applies to label targets only; with probabilities it must keep its default "
                  "-100");
  } else {
    cpu::LabelRule rule;
    rule.ignore_index = ignore_index;
    check_labels<T>(fn, target, a.classes, rule);
  }
  return p;
}

// The statistics pass. With `probs` (the gradient buffer of a value_and_grad or backward, the
// logits' shape), the pass also stores the softmax there and the plan's gradient pass reads
// it back instead of recomputing it. Not when `probs` overlaps a probability target, which
// the gradient pass reads again.
template <class T, class U>
void run_statistics(SoftmaxPlan<T, U>& p, const Tensor<U>& target, T* probs) {
  if constexpr (std::is_same_v<T, U>) {
    const int64_t n = p.args.images * p.args.classes * p.args.pixels;
    const T *t0 = target.data(), *t1 = t0 + target.numel();
    if (probs && !(probs + n <= t0 || t1 <= probs)) probs = nullptr;
  } else {
    (void)target;
  }
  p.stats.resize(static_cast<size_t>(p.args.images * p.args.classes * 3));
  p.args.probs_out = probs;
  cpu::softmax_overlap_statistics(p.args, p.stats.data());
  p.args.probs_out = nullptr;
  p.args.probs = probs;
}

// Checks the logits and target and runs the statistics pass (storing p in `probs` as above).
template <class T, class U>
SoftmaxPlan<T, U> softmax_statistics(const char* fn, const Tensor<T>& logits,
                                     const Tensor<U>& target, int64_t ignore_index, bool squared,
                                     T* probs = nullptr) {
  auto p = softmax_plan(fn, logits, target, ignore_index, squared);
  run_statistics(p, target, probs);
  return p;
}

// The gradient pass from per-(image, class) coefficients. With `accumulate`, the gradient is
// added to prior_scale times what `grad` holds (a combined loss's first term).
template <class T, class U>
void softmax_gradient(const SoftmaxPlan<T, U>& p, const std::vector<double>& ca,
                      const std::vector<double>& cb, T* grad, bool accumulate = false,
                      double prior_scale = 1.0) {
  auto a = p.args;
  a.accumulate = accumulate;
  a.prior_scale = prior_scale;
  if (accumulate) a.probs = nullptr;  // grad holds the prior gradient, not p
  cpu::softmax_overlap_gradient(a, ca.data(), cb.data(), grad);
}

// ---- soft Dice, Jaccard, Tversky: the scores of overlap.hpp ----

template <class T, class U, class O>
struct SoftmaxScored {
  SoftmaxPlan<T, U> plan;
  OverlapScores scores;
};

// With `grad` (value_and_grad's buffer, checked or allocated here after the other checks),
// pass 1 stores p in it for the gradient pass.
template <class T, class U, class O>
SoftmaxScored<T, U, O> softmax_scored(const char* fn, const Tensor<T>& logits,
                                      const Tensor<U>& target, const O& o, const ScoreForm& f,
                                      Tensor<T>* grad = nullptr) {
  check_image(fn, "logits", logits);
  check_overlap_options(fn, logits.shape(), o);
  SoftmaxScored<T, U, O> r;
  r.plan = softmax_plan(fn, logits, target, o.ignore_index, o.squared);
  if (grad)
    prepare_grad(fn, logits, *grad,
                 {target_input<T>(target), apart("options.class_weight", o.class_weight)});
  run_statistics(r.plan, target, grad ? grad->data() : nullptr);
  r.scores = overlap_scores(r.plan.stats, 3, logits.shape(), o, f);
  return r;
}

// softmax_scored with the statistics pass left to statistics(plan), which fills plan.stats
// (sized here) after the same checks: a combined loss's pass fused with its first term.
template <class T, class U, class O, class Statistics>
SoftmaxScored<T, U, O> softmax_scored_with(const char* fn, const Tensor<T>& logits,
                                           const Tensor<U>& target, const O& o, const ScoreForm& f,
                                           Statistics&& statistics) {
  check_image(fn, "logits", logits);
  check_overlap_options(fn, logits.shape(), o);
  SoftmaxScored<T, U, O> r;
  r.plan = softmax_plan(fn, logits, target, o.ignore_index, o.squared);
  r.plan.stats.resize(static_cast<size_t>(r.plan.args.images * r.plan.args.classes * 3));
  statistics(r.plan);
  r.scores = overlap_scores(r.plan.stats, 3, logits.shape(), o, f);
  return r;
}

// The gradient pass for slopes G (dL/dS per score); accumulate as in softmax_gradient.
template <class T, class U, class O>
void softmax_overlap_grad(const SoftmaxScored<T, U, O>& r, const std::vector<double>& G, T* grad,
                          bool accumulate = false, double prior_scale = 1.0) {
  std::vector<double> ca, cb;
  overlap_coefficients(r.scores, G, r.plan.args.images * r.plan.args.classes, ca, cb);
  softmax_gradient(r.plan, ca, cb, grad, accumulate, prior_scale);
}

// ---- the statistics / finalize split (overlap.hpp, OverlapStatistics) ----

template <class T, class U, class O>
OverlapStatistics softmax_split_statistics(const char* fn, const Tensor<T>& logits,
                                           const Tensor<U>& target, const O& o,
                                           const ScoreForm& f) {
  check_split_reduction(fn, o.reduction);
  check_image(fn, "logits", logits);
  check_overlap_options(fn, logits.shape(), o);
  const auto p = softmax_statistics(fn, logits, target, o.ignore_index, o.squared);
  return overlap_split_statistics(p.stats, 3, logits.shape(), o, f);
}

// Finalize from the reduced statistics, whose overlap part starts at `offset`: writes g times
// the shard's gradient into grad (accumulate and prior_scale as in softmax_gradient, for a
// combined loss's second term); returns the loss. `digest`: that of the caller's options, which
// the statistics must carry (check_split_options; 0 where the caller checked it already).
template <class T, class U, class O>
double softmax_split_finalize(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                              const OverlapStatistics& st, size_t offset, T* grad, const O& o,
                              const ScoreForm& f, double g = 1.0, bool accumulate = false,
                              double prior_scale = 1.0, uint64_t digest = 0) {
  check_split_reduction(fn, o.reduction);
  check_image(fn, "logits", logits);
  check_overlap_options(fn, logits.shape(), o);
  const auto p = softmax_plan(fn, logits, target, o.ignore_index, o.squared);
  std::vector<double> ca, cb;
  const double value =
      overlap_split_coefficients<T>(fn, st, offset, logits.shape(), o, f, g, ca, cb, digest);
  softmax_gradient(p, ca, cb, grad, accumulate, prior_scale);
  return value;
}

}  // namespace detail
}  // namespace segloss
