// ce_dice and dice_focal: two passes over the logits with one softmax. Pass 1 computes the first
// term's value and the Dice statistics from one softmax per pixel and stores p in the gradient
// buffer; pass 2 reads p back and writes both terms' gradients (value_and_grad and backward
// alike). The statistics / finalize split runs the terms apart.
#include "combined.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "../backends/cpu/cross_entropy.hpp"
#include "../backends/cpu/focal.hpp"
#include "internal/cross_entropy_checks.hpp"
#include "internal/focal_checks.hpp"
#include "internal/fused_terms.hpp"
#include "internal/half_options.hpp"
#include "internal/options_digest.hpp"
#include "internal/softmax_overlap_passes.hpp"
#include "internal/term_errors.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/focal.hpp"
#include "../backends/cuda/scratch.hpp"
#endif

namespace segloss {
namespace {

void check_weights(const char* fn, const char* a, double wa, const char* b, double wb) {
  SEGLOSS_CHECK(std::isfinite(wa) && std::isfinite(wb), fn, "options.", a, " ", wa, " and options.",
                b, " ", wb, " must be finite");
}

void check_scalar(const char* fn, const char* term, Reduction r) {
  SEGLOSS_CHECK(r != Reduction::none, fn, "options.", term,
                ".reduction is none; a combined loss needs both terms reduced to one value "
                "(mean or sum)");
}

template <class U>
void check_same_ignore(const char* fn, const char* term, int64_t a, int64_t dice) {
  if constexpr (!std::is_floating_point_v<U>)
    SEGLOSS_CHECK(a == dice, fn, "options.", term, ".ignore_index ", a,
                  " differs from options.dice.ignore_index ", dice,
                  "; both terms must ignore the same pixels");
}

// A combined loss's gradient buffer against its inputs (prepare_grad has refused a partial
// overlap with the logits already). split_finalize's Dice gradient pass recomputes the softmax
// from the logits after the first term has written the gradient: there grad must not be the
// logits either (in_place false). ce_dice's fused passes may run exactly in place (in_place
// true), as dice_focal's do (it does not call this): pass 1 reads all C logits of a packet (or
// tail pixel) before it stores that packet's p in grad, and each packet is read and written by
// one thread; pass 2 reads p back from grad and never the logits, all C classes of a packet
// before it writes that packet's gradient; the first term's value and every check that reads the
// logits come before pass 1. Nor may grad overlap a probability target, which pass 2 reads
// again (q'_c, class by class, between the gradient's stores) after pass 1 stored p in grad.
template <class T, class U>
void check_not_aliased(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                       const Tensor<T>& grad, bool in_place) {
  SEGLOSS_CHECK((in_place && grad.data() == logits.data()) ||
                    !detail::overlaps(grad.data(), detail::data_bytes(grad), logits.data(),
                                      detail::data_bytes(logits)),
                fn,
                "grad overlaps the logits; a combined loss's finalize reads the logits again "
                "after writing its first term's gradient, so it cannot run in place");
  if constexpr (std::is_same_v<T, U>) {
    SEGLOSS_CHECK(!detail::overlaps(grad.data(), detail::data_bytes(grad), target.data(),
                                    detail::data_bytes(target)),
                  fn,
                  "grad overlaps the target; a combined loss reads the probability target again "
                  "after storing the softmax in grad");
  } else {
    SEGLOSS_CHECK(!detail::overlaps(grad.data(), detail::data_bytes(grad), target.data(),
                                    detail::data_bytes(target)),
                  fn,
                  "grad overlaps the target; a combined loss reads the labels again after "
                  "storing the softmax in grad");
  }
}

// The two passes of ce_dice and dice_focal, one softmax per pixel. Pass 1 runs through the first
// term's value_and_grad_with (its checks and reduction): value_with(kernel) calls it, and the
// kernel is pass1(args, dice args, stats), the first term's value and the Dice statistics from
// one softmax, with p stored in grad and the first term's gradient left to pass 2 (args.grad
// null). Pass 2, pass2(dice args, ca, cb, args, grad), reads p back and writes the first term's
// gradient (computed from p, scaled by the caller) plus dice_scale times the Dice gradient.
// Returns the first term's value; the Dice term's goes to *dice_value.
template <class Args, class T, class U, class ValueWith, class Pass1, class Pass2>
double two_passes(const char* fn, const char* which, const Tensor<T>& logits,
                  const Tensor<U>& target, Tensor<T>& grad, const SoftmaxOverlapOptions<T>& dice,
                  double dice_scale, ValueWith&& value_with, Pass1&& pass1, Pass2&& pass2,
                  double* dice_value) {
  check_scalar(fn, "dice", dice.reduction);
  Args first;
  double first_value = 0.0;
  const auto r = detail::softmax_scored_with(
      fn, logits, target, dice, detail::dice_form(), [&](detail::SoftmaxPlan<T, U>& plan) {
        first_value = detail::in_term(fn, which, [&] {
          return value_with([&](const Args& a) {
            first = a;
            first.grad = nullptr;  // written in pass 2, from p
            plan.args.probs_out = grad.data();
            const double sum = pass1(first, plan.args, plan.stats.data());
            plan.args.probs_out = nullptr;
            plan.args.probs = grad.data();
            return sum;
          });
        });
      });
  std::vector<double> ca, cb;
  detail::overlap_coefficients(r.scores,
                               detail::overlap_slopes<T>(r.scores, dice, dice_scale, nullptr),
                               r.plan.args.images * r.plan.args.classes, ca, cb);
  pass2(r.plan.args, ca.data(), cb.data(), first, grad.data());
  *dice_value = detail::overlap_value(r.scores, dice);
  return first_value;
}

// ce_dice (labels or probability targets, U = T): pass 2 writes ce_scale times cross_entropy's
// gradient, computed from p as its own kernel computes it. value_and_grad passes the weights as
// the scales, backward the weights times grad_out.
template <class T, class U>
void ce_dice_fused(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                   Tensor<T>& grad, const CeDiceOptions<T>& o, double ce_scale, double dice_scale,
                   CeDiceParts& v) {
  using Args = cpu::CrossEntropyArgs<T, U>;
  v.ce = two_passes<Args>(
      fn, "cross-entropy", logits, target, grad, o.dice, dice_scale,
      [&](const auto& kernel) {
        return detail::cross_entropy_value_and_grad_with<T, U>(logits, target, grad, o.ce, kernel);
      },
      [](const Args& a, const cpu::SoftmaxOverlapArgs<T, U>& d, double* stats) {
        return cpu::cross_entropy_dice_statistics(a, d, stats);
      },
      [&](const cpu::SoftmaxOverlapArgs<T, U>& d, const double* ca, const double* cb, const Args& a,
          T* g) { cpu::softmax_overlap_gradient_ce(d, ca, cb, a, ce_scale, g); },
      &v.dice);
}

// dice_focal: pass 2 writes focal_scale times the focal gradient F (p_c - [c = t]), F a
// function of p_t, alpha_t and gamma only (softmax_overlap.cpp, focal_factor_from_probs).
template <class T, class L>
void dice_focal_fused(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                      Tensor<T>& grad, const DiceFocalOptions<T>& o, double focal_scale,
                      double dice_scale, DiceFocalParts& v) {
  using Args = cpu::SoftmaxFocalArgs<T, L>;
  v.focal = two_passes<Args>(
      fn, "focal", logits, target, grad, o.dice, dice_scale,
      [&](const auto& kernel) {
        return detail::softmax_focal_value_and_grad_with<T, L>(logits, target, grad, o.focal,
                                                               kernel);
      },
      [](const Args& a, const cpu::SoftmaxOverlapArgs<T, L>& d, double* stats) {
        return cpu::softmax_focal_dice_statistics(a, d, stats);
      },
      [&](const cpu::SoftmaxOverlapArgs<T, L>& d, const double* ca, const double* cb, const Args& a,
          T* g) { cpu::softmax_overlap_gradient_focal(d, ca, cb, a, focal_scale, g); },
      &v.dice);
}

// The Dice term's options, named by their path: the shared softmax passes check them again as
// "options." (a loss's own options), so these run first and an error names options.dice.
template <class T>
void check_dice_term(const char* fn, const Tensor<T>& logits,
                     const SoftmaxOverlapOptions<T>& dice) {
  detail::check_image(fn, "logits", logits, /*cuda_path=*/true);
  detail::check_overlap_options(fn, logits.shape(), dice, "options.dice.", logits.device());
}

template <class T, class U>
void check_ce_dice(const char* fn, const Tensor<T>& logits, const CeDiceOptions<T>& o) {
  detail::check_enum(fn, "options.ce.", "reduction", o.ce.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.ce.", "mean_over", o.ce.mean_over, detail::kMeanOverNames);
  detail::check_enum(fn, "options.ce.", "all_ignored", o.ce.all_ignored, detail::kAllIgnoredNames);
  check_dice_term(fn, logits, o.dice);
  check_weights(fn, "ce_weight", o.ce_weight, "dice_weight", o.dice_weight);
  check_scalar(fn, "ce", o.ce.reduction);
  check_same_ignore<U>(fn, "ce", o.ce.ignore_index, o.dice.ignore_index);
  if constexpr (!std::is_floating_point_v<U>)
    SEGLOSS_CHECK(!o.ce.ignore_negative, fn,
                  "options.ce.ignore_negative is set; the Dice term ignores one label value only, "
                  "so both terms would not ignore the same pixels");
}

template <class T, class L>
void check_dice_focal(const char* fn, const Tensor<T>& logits, const DiceFocalOptions<T>& o) {
  detail::check_enum(fn, "options.focal.", "reduction", o.focal.reduction, detail::kReductionNames);
  check_dice_term(fn, logits, o.dice);
  check_weights(fn, "dice_weight", o.dice_weight, "focal_weight", o.focal_weight);
  check_scalar(fn, "focal", o.focal.reduction);
  check_same_ignore<L>(fn, "focal", o.focal.ignore_index, o.dice.ignore_index);
}

// The split of a combined loss: the first term's statistics (3 values) then the Dice term's,
// tagged with the digest of the combined loss's options.
template <class T, class U, class FirstStatistics>
OverlapStatistics split_statistics(const char* fn, const char* which, const Tensor<T>& logits,
                                   const Tensor<U>& target, const SoftmaxOverlapOptions<T>& dice,
                                   uint64_t digest, FirstStatistics&& first) {
  check_scalar(fn, "dice", dice.reduction);
#if defined(SEGLOSS_WITH_CUDA)
  OverlapStatistics st =
      logits.device() == Device::cuda  // each term's sums come back: waits
          ? detail::softmax_dice_cuda_split_statistics(fn, logits, target, dice)
          : detail::softmax_split_statistics(fn, logits, target, dice, detail::dice_form());
#else
  OverlapStatistics st =
      detail::softmax_split_statistics(fn, logits, target, dice, detail::dice_form());
#endif
  const ShardStatistics a = detail::in_term(fn, which, first);
  st.global.insert(st.global.begin(), a.global.begin(), a.global.end());
  return detail::tagged(fn, std::move(st), digest);
}

// first(reduced first-term statistics, grad, grad_weight) writes the first term's gradient and
// returns its value; the Dice gradient (times dice_weight) is added to first_weight times it.
// `digest` is that of the combined loss's options (the statistics must carry it). On
// the CPU the first term writes its own gradient (grad_weight 1) and the Dice pass scales it by
// first_weight as it adds (prior_scale); on CUDA the first term's pass scales it (grad_weight
// first_weight) and the Dice pass adds (accumulate), as in the fused CUDA path below. Both
// terms wait on CUDA (each finalize reads its bad-label flag back).
template <class T, class U, class FirstFinalize>
void split_finalize(const char* fn, const char* which, const Tensor<T>& logits,
                    const Tensor<U>& target, const OverlapStatistics& reduced, Tensor<T>& grad,
                    const SoftmaxOverlapOptions<T>& dice, double dice_weight, double first_weight,
                    uint64_t digest, FirstFinalize&& first, double* first_value,
                    double* dice_value) {
  check_scalar(fn, "dice", dice.reduction);
  detail::check_overlap_split(fn, reduced, detail::kMeanSplitSize, logits.shape(), dice, digest);
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart("options.dice.class_weight", dice.class_weight)});
  check_not_aliased(fn, logits, target, grad, false);
  ShardStatistics a;
  a.global.assign(reduced.global.begin(), reduced.global.begin() + detail::kMeanSplitSize);
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {
    *first_value = detail::in_term(fn, which, [&] { return first(a, grad, first_weight); });
    *dice_value = detail::softmax_dice_cuda_split_finalize(
        fn, logits, target, reduced, detail::kMeanSplitSize, grad.data(), dice, dice_weight, true);
    return;
  }
#endif
  *first_value = detail::in_term(fn, which, [&] { return first(a, grad, 1.0); });
  *dice_value = detail::softmax_split_finalize(fn, logits, target, reduced, detail::kMeanSplitSize,
                                               grad.data(), dice, detail::dice_form(), dice_weight,
                                               true, first_weight);
}

#if defined(SEGLOSS_WITH_CUDA)
// ---- the CUDA path: the two terms run apart, each with its own CUDA passes (no shared softmax).
// The first term writes its gradient times its weight into grad (its prepare kernel scales the
// gradient), then the Dice term's gradient pass adds dice_weight times its own (the accumulate
// flag of backends/cuda/softmax_overlap.cu). value_and_grad waits twice (each term's value comes
// back to the host; a bad label is raised by the Dice term, with the CPU's message); backward
// waits for nothing. The first term's argument errors name the term, as on the CPU. The Dice term
// reads the logits after the first term wrote grad, so exactly in place (grad the logits, which
// the CPU allows) runs the terms into the stream's cached scratch buffer
// (backends/cuda/scratch.hpp: no allocation after warm-up) and then copies that gradient into
// grad (a device copy and a wait, in a form that waits anyway).
template <class T, class Run>
auto cuda_maybe_in_place(const char* fn, const Tensor<T>& logits, Tensor<T>& grad, Run&& run) {
  if (grad.data() != logits.data()) return run(grad.data());
  cuda::detail::ScratchLease lease(fn, static_cast<size_t>(logits.numel()) * sizeof(T));
  const Tensor<T> apart =
      Tensor<T>::view(reinterpret_cast<T*>(lease.data()), logits.shape(), Device::cuda);
  const auto r = run(apart.data());
  grad.copy_from(apart);  // after every kernel that reads the logits (stream order), then waits
  return r;
}

// first(grad, grad_weight, grad_out) runs the first term's CUDA passes (its value returned);
// the Dice term's are added. Returns the parts {first, dice}.
template <class T, class U, class First>
std::pair<double, double> cuda_terms(const char* fn, const char* which, const Tensor<T>& logits,
                                     const Tensor<U>& target, T* grad,
                                     const SoftmaxOverlapOptions<T>& dice, double first_weight,
                                     double dice_weight, const T* grad_out, First&& first) {
  check_scalar(fn, "dice", dice.reduction);
  // The Dice term's arguments are checked before the first term runs (the CPU's order).
  double a = 0;
  const double d = detail::softmax_dice_cuda_term(
      fn, logits, target, grad, dice, dice_weight, grad_out, /*accumulate=*/true,
      [&] { a = detail::in_term(fn, which, [&] { return first(grad, first_weight, grad_out); }); });
  return {a, d};
}

// value_and_grad's device-value form on CUDA: nothing waits. first(g, w, out) runs the first
// term's passes, its gradient times w stored into g and its value written into the device
// element out; then the Dice term's passes add dice_weight times its gradient (accumulate) and
// make *out first_weight * first + dice_weight * Dice on the device
// (detail::softmax_dice_cuda_total, the device forward's total). A bad label makes *out NaN
// (both terms' flags) and raises nothing. Exactly in place (grad the logits), the Dice term would
// read logits the first term had overwritten: both terms write into the stream's cached scratch
// buffer instead (no allocation after warm-up) and a device-to-device copy enqueued on the
// stream after them moves the gradient into grad (no wait, unlike the host form's copy_from,
// which waits anyway). The lease's buffer is reused only by later work on this stream, which
// the copy precedes.
template <class T, class U, class First>
void cuda_device_value(const char* fn, const char* which, const Tensor<T>& logits,
                       const Tensor<U>& target, Tensor<T>& grad, T* value,
                       const SoftmaxOverlapOptions<T>& dice, double first_weight,
                       double dice_weight, First&& first) {
  check_not_aliased(fn, logits, target, grad, true);  // exactly in place: through the scratch
  check_scalar(fn, "dice", dice.reduction);
  const auto run = [&](T* into) {
    detail::softmax_dice_cuda_total(
        fn, logits, target, dice, value, first_weight, dice_weight,
        [&] { detail::in_term(fn, which, [&] { first(into, first_weight, value); }); }, into);
  };
  if (grad.data() != logits.data()) {
    run(grad.data());
    return;
  }
  cuda::detail::ScratchLease lease(fn, static_cast<size_t>(logits.numel()) * sizeof(T));
  T* apart = reinterpret_cast<T*>(lease.data());
  run(apart);
  cuda::detail::copy_on_stream(fn, grad.data(), apart,
                               static_cast<size_t>(logits.numel()) * sizeof(T));
}
#endif

}  // namespace

// ---- ce_dice ----

template <class T, class U, class>
double ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,
                              const CeDiceOptions<T>& o, CeDiceParts* parts) {
  const char* fn = "ce_dice_value_and_grad";
  check_ce_dice<T, U>(fn, logits, o);
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart("options.ce.weight", o.ce.weight),
                        detail::apart("options.dice.class_weight", o.dice.class_weight)});
  CeDiceParts v;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {                // waits twice: each term's value
    check_not_aliased(fn, logits, target, grad, true);  // exactly in place: through the scratch
    const auto r = cuda_maybe_in_place(fn, logits, grad, [&](T* into) {
      return cuda_terms(fn, "cross-entropy", logits, target, into, o.dice, o.ce_weight,
                        o.dice_weight, static_cast<const T*>(nullptr),
                        [&](T* g, double w, const T* go) {
                          return detail::cross_entropy_cuda_term(logits, target, g, o.ce, w, go);
                        });
    });
    v.ce = r.first;
    v.dice = r.second;
    if (parts) *parts = v;
    return o.ce_weight * v.ce + o.dice_weight * v.dice;
  }
#endif
  check_not_aliased(fn, logits, target, grad, true);  // exactly in place allowed
  ce_dice_fused(fn, logits, target, grad, o, o.ce_weight, o.dice_weight, v);
  if (parts) *parts = v;
  return o.ce_weight * v.ce + o.dice_weight * v.dice;
}

template <class T, class U, class>
void ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target, Tensor<T>& grad,
                            Tensor<T>& value, const CeDiceOptions<T>& o) {
  const char* fn = "ce_dice_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, o);
#if defined(SEGLOSS_WITH_CUDA)
  // On CUDA nothing waits. The Dice term's arguments are checked before the first term's (the
  // CPU's order, and the CUDA host-value form's since session 12).
  if (logits.device() == Device::cuda) {
    check_ce_dice<T, U>(fn, logits, o);
    detail::prepare_grad(fn, logits, grad,
                         {detail::apart("options.ce.weight", o.ce.weight),
                          detail::apart("options.dice.class_weight", o.dice.class_weight)});
    cuda_device_value(fn, "cross-entropy", logits, target, grad, value.data(), o.dice, o.ce_weight,
                      o.dice_weight, [&](T* g, double w, T* out) {
                        detail::cross_entropy_cuda_term(logits, target, g, o.ce, w,
                                                        static_cast<const T*>(nullptr), out);
                      });
    return;
  }
#endif
  value[0] = static_cast<T>(ce_dice_value_and_grad(logits, target, grad, o, nullptr));
}

template <class T, class U, class>
ValueAndGrad<T> ce_dice_value_and_grad(const Tensor<T>& logits, const Tensor<U>& target,
                                       const CeDiceOptions<T>& o, CeDiceParts* parts) {
  ValueAndGrad<T> r;
  r.value = ce_dice_value_and_grad(logits, target, r.grad, o, parts);
  return r;
}

template <class T, class U, class>
Tensor<T> ce_dice(const Tensor<T>& logits, const Tensor<U>& target, const CeDiceOptions<T>& o,
                  CeDiceParts* parts) {
  const char* fn = "ce_dice";
  check_ce_dice<T, U>(fn, logits, o);
  check_scalar(fn, "dice", o.dice.reduction);
  CeDiceParts v;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // with parts: waits for both terms' values
    if (!parts) {  // nothing waits: the terms' values and the total stay on the device
      Tensor<T> out = Tensor<T>::empty(Shape{}, Device::cuda);
      detail::softmax_dice_cuda_total(
          fn, logits, target, o.dice, out.data(), o.ce_weight, o.dice_weight, [&] {
            detail::in_term(fn, "cross-entropy", [&] {
              detail::cross_entropy_cuda_forward_into(logits, target, o.ce, out.data());
            });
          });
      return out;
    }
    v.dice = detail::softmax_dice_cuda_term(fn, logits, target, static_cast<T*>(nullptr), o.dice,
                                            1.0, static_cast<const T*>(nullptr), false);
    v.ce = detail::in_term(fn, "cross-entropy", [&] {
      return static_cast<double>(cross_entropy(logits, target, o.ce).to(Device::cpu)[0]);
    });
    if (parts) *parts = v;
    return Tensor<T>::full(Shape{}, static_cast<T>(o.ce_weight * v.ce + o.dice_weight * v.dice))
        .to(Device::cuda);
  }
#endif
  v.dice = detail::overlap_value(
      detail::softmax_scored(fn, logits, target, o.dice, detail::dice_form()).scores, o.dice);
  v.ce = detail::in_term(fn, "cross-entropy", [&] {
    return static_cast<double>(cross_entropy(logits, target, o.ce)[0]);
  });
  if (parts) *parts = v;
  return Tensor<T>::full(Shape{}, static_cast<T>(o.ce_weight * v.ce + o.dice_weight * v.dice));
}

template <class T, class U, class>
Tensor<T> ce_dice_backward(const Tensor<T>& logits, const Tensor<U>& target,
                           const Tensor<T>& grad_out, const CeDiceOptions<T>& o) {
  const char* fn = "ce_dice_backward";
  check_ce_dice<T, U>(fn, logits, o);
  detail::check_grad_out(fn, grad_out, true, Shape{}, logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device: no wait
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    cuda_terms(fn, "cross-entropy", logits, target, grad.data(), o.dice, o.ce_weight, o.dice_weight,
               grad_out.data(), [&](T* g, double w, const T* go) {
                 return detail::cross_entropy_cuda_term(logits, target, g, o.ce, w, go);
               });
    return grad;
  }
#endif
  const double g = static_cast<double>(grad_out[0]);
  Tensor<T> grad;
  CeDiceParts v;
  ce_dice_fused(fn, logits, target, grad, o, g * o.ce_weight, g * o.dice_weight, v);
  return grad;
}

template <class T, class U, class>
OverlapStatistics ce_dice_statistics(const Tensor<T>& logits, const Tensor<U>& target,
                                     const CeDiceOptions<T>& o) {
  const char* fn = "ce_dice_statistics";
  check_ce_dice<T, U>(fn, logits, o);
  return split_statistics(fn, "cross-entropy", logits, target, o.dice, detail::options_digest(o),
                          [&] { return cross_entropy_statistics(logits, target, o.ce); });
}

template <class T, class U, class>
double ce_dice_finalize(const Tensor<T>& logits, const Tensor<U>& target,
                        const OverlapStatistics& reduced, Tensor<T>& grad,
                        const CeDiceOptions<T>& o, CeDiceParts* parts) {
  const char* fn = "ce_dice_finalize";
  check_ce_dice<T, U>(fn, logits, o);
  // The term's option values, named before split_finalize compares the statistics' digest
  // (which would only say "other options"); the same error as the term's finalize raises.
  detail::in_term(fn, "cross-entropy", [&] {
    detail::check_ce_scalars("cross_entropy_finalize", o.ce);
    if constexpr (std::is_floating_point_v<U>)
      detail::check_ce_probability_options("cross_entropy_finalize", o.ce);
  });
  CeDiceParts v;
  split_finalize(
      fn, "cross-entropy", logits, target, reduced, grad, o.dice, o.dice_weight, o.ce_weight,
      detail::options_digest(o),
      [&](const ShardStatistics& a, Tensor<T>& g, double w) {
#if defined(SEGLOSS_WITH_CUDA)
        if (logits.device() == Device::cuda)
          return detail::cross_entropy_cuda_finalize_term(logits, target, a, g, o.ce, w);
#endif
        (void)w;  // 1 on the CPU
        return cross_entropy_finalize(logits, target, a, g, o.ce);
      },
      &v.ce, &v.dice);
  if (parts) *parts = v;
  return o.ce_weight * v.ce + o.dice_weight * v.dice;
}

// ---- dice_focal ----

template <class T, class L, class>
double dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                                 const DiceFocalOptions<T>& o, DiceFocalParts* parts) {
  const char* fn = "dice_focal_value_and_grad";
  check_dice_focal<T, L>(fn, logits, o);
  detail::prepare_grad(fn, logits, grad,
                       {detail::apart("options.focal.alpha", o.focal.alpha),
                        detail::apart("options.dice.class_weight", o.dice.class_weight)});
  DiceFocalParts v;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {                // waits twice: each term's value
    check_not_aliased(fn, logits, target, grad, true);  // exactly in place: through the scratch
    const auto r = cuda_maybe_in_place(fn, logits, grad, [&](T* into) {
      return cuda_terms(fn, "focal", logits, target, into, o.dice, o.focal_weight, o.dice_weight,
                        static_cast<const T*>(nullptr), [&](T* g, double w, const T* go) {
                          return detail::softmax_focal_cuda_term(logits, target, g, o.focal, w, go);
                        });
    });
    v.focal = r.first;
    v.dice = r.second;
    if (parts) *parts = v;
    return o.dice_weight * v.dice + o.focal_weight * v.focal;
  }
#endif
  check_not_aliased(fn, logits, target, grad, true);  // exactly in place allowed
  dice_focal_fused(fn, logits, target, grad, o, o.focal_weight, o.dice_weight, v);
  if (parts) *parts = v;
  return o.dice_weight * v.dice + o.focal_weight * v.focal;
}

template <class T, class L, class>
void dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
                               Tensor<T>& value, const DiceFocalOptions<T>& o) {
  const char* fn = "dice_focal_value_and_grad";
  detail::prepare_logits_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, o);
#if defined(SEGLOSS_WITH_CUDA)
  // On CUDA nothing waits. The Dice term's arguments are checked before the first term's (the
  // CPU's order, and the CUDA host-value form's since session 12).
  if (logits.device() == Device::cuda) {
    check_dice_focal<T, L>(fn, logits, o);
    detail::prepare_grad(fn, logits, grad,
                         {detail::apart("options.focal.alpha", o.focal.alpha),
                          detail::apart("options.dice.class_weight", o.dice.class_weight)});
    cuda_device_value(fn, "focal", logits, target, grad, value.data(), o.dice, o.focal_weight,
                      o.dice_weight, [&](T* g, double w, T* out) {
                        detail::softmax_focal_cuda_term(logits, target, g, o.focal, w,
                                                        static_cast<const T*>(nullptr), out);
                      });
    return;
  }
#endif
  value[0] = static_cast<T>(dice_focal_value_and_grad(logits, target, grad, o, nullptr));
}

template <class T, class L, class>
ValueAndGrad<T> dice_focal_value_and_grad(const Tensor<T>& logits, const Tensor<L>& target,
                                          const DiceFocalOptions<T>& o, DiceFocalParts* parts) {
  ValueAndGrad<T> r;
  r.value = dice_focal_value_and_grad(logits, target, r.grad, o, parts);
  return r;
}

template <class T, class L, class>
Tensor<T> dice_focal(const Tensor<T>& logits, const Tensor<L>& target, const DiceFocalOptions<T>& o,
                     DiceFocalParts* parts) {
  const char* fn = "dice_focal";
  check_dice_focal<T, L>(fn, logits, o);
  check_scalar(fn, "dice", o.dice.reduction);
  DiceFocalParts v;
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // with parts: waits for both terms' values
    if (!parts) {  // nothing waits: the terms' values and the total stay on the device
      Tensor<T> out = Tensor<T>::empty(Shape{}, Device::cuda);
      detail::softmax_dice_cuda_total(
          fn, logits, target, o.dice, out.data(), o.focal_weight, o.dice_weight, [&] {
            detail::in_term(fn, "focal", [&] {
              detail::softmax_focal_cuda_forward_into(logits, target, o.focal, out.data());
            });
          });
      return out;
    }
    v.dice = detail::softmax_dice_cuda_term(fn, logits, target, static_cast<T*>(nullptr), o.dice,
                                            1.0, static_cast<const T*>(nullptr), false);
    v.focal = detail::in_term(fn, "focal", [&] {
      return static_cast<double>(softmax_focal(logits, target, o.focal).to(Device::cpu)[0]);
    });
    if (parts) *parts = v;
    return Tensor<T>::full(Shape{},
                           static_cast<T>(o.dice_weight * v.dice + o.focal_weight * v.focal))
        .to(Device::cuda);
  }
#endif
  v.dice = detail::overlap_value(
      detail::softmax_scored(fn, logits, target, o.dice, detail::dice_form()).scores, o.dice);
  v.focal = detail::in_term(
      fn, "focal", [&] { return static_cast<double>(softmax_focal(logits, target, o.focal)[0]); });
  if (parts) *parts = v;
  return Tensor<T>::full(Shape{},
                         static_cast<T>(o.dice_weight * v.dice + o.focal_weight * v.focal));
}

template <class T, class L, class>
Tensor<T> dice_focal_backward(const Tensor<T>& logits, const Tensor<L>& target,
                              const Tensor<T>& grad_out, const DiceFocalOptions<T>& o) {
  const char* fn = "dice_focal_backward";
  check_dice_focal<T, L>(fn, logits, o);
  detail::check_grad_out(fn, grad_out, true, Shape{}, logits.device());
#if defined(SEGLOSS_WITH_CUDA)
  if (logits.device() == Device::cuda) {  // grad_out is read on the device: no wait
    Tensor<T> grad = Tensor<T>::empty(logits.shape(), Device::cuda);
    cuda_terms(fn, "focal", logits, target, grad.data(), o.dice, o.focal_weight, o.dice_weight,
               grad_out.data(), [&](T* g, double w, const T* go) {
                 return detail::softmax_focal_cuda_term(logits, target, g, o.focal, w, go);
               });
    return grad;
  }
#endif
  const double g = static_cast<double>(grad_out[0]);
  Tensor<T> grad;
  DiceFocalParts v;
  dice_focal_fused(fn, logits, target, grad, o, g * o.focal_weight, g * o.dice_weight, v);
  return grad;
}

template <class T, class L, class>
OverlapStatistics dice_focal_statistics(const Tensor<T>& logits, const Tensor<L>& target,
                                        const DiceFocalOptions<T>& o) {
  const char* fn = "dice_focal_statistics";
  check_dice_focal<T, L>(fn, logits, o);
  return split_statistics(fn, "focal", logits, target, o.dice, detail::options_digest(o),
                          [&] { return softmax_focal_statistics(logits, target, o.focal); });
}

template <class T, class L, class>
double dice_focal_finalize(const Tensor<T>& logits, const Tensor<L>& target,
                           const OverlapStatistics& reduced, Tensor<T>& grad,
                           const DiceFocalOptions<T>& o, DiceFocalParts* parts) {
  const char* fn = "dice_focal_finalize";
  check_dice_focal<T, L>(fn, logits, o);
  // As ce_dice_finalize: the focal term's option values before the digest.
  detail::in_term(fn, "focal",
                  [&] { detail::check_reduction_gamma("softmax_focal_finalize", o.focal); });
  DiceFocalParts v;
  split_finalize(
      fn, "focal", logits, target, reduced, grad, o.dice, o.dice_weight, o.focal_weight,
      detail::options_digest(o),
      [&](const ShardStatistics& a, Tensor<T>& g, double w) {
#if defined(SEGLOSS_WITH_CUDA)
        if (logits.device() == Device::cuda)
          return detail::softmax_focal_cuda_finalize_term(logits, target, a, g, o.focal, w);
#endif
        (void)w;  // 1 on the CPU
        return softmax_focal_finalize(logits, target, a, g, o.focal);
      },
      &v.focal, &v.dice);
  if (parts) *parts = v;
  return o.dice_weight * v.dice + o.focal_weight * v.focal;
}

// ---- instantiations ----

#define SEGLOSS_INSTANTIATE_CE_DICE(T, U)                                                          \
  template Tensor<T> ce_dice<T, U, void>(const Tensor<T>&, const Tensor<U>&,                       \
                                         const CeDiceOptions<T>&, CeDiceParts*);                   \
  template Tensor<T> ce_dice_backward<T, U, void>(const Tensor<T>&, const Tensor<U>&,              \
                                                  const Tensor<T>&, const CeDiceOptions<T>&);      \
  template double ce_dice_value_and_grad<T, U, void>(                                              \
      const Tensor<T>&, const Tensor<U>&, Tensor<T>&, const CeDiceOptions<T>&, CeDiceParts*);      \
  template void ce_dice_value_and_grad<T, U, void>(const Tensor<T>&, const Tensor<U>&, Tensor<T>&, \
                                                   Tensor<T>&, const CeDiceOptions<T>&);           \
  template ValueAndGrad<T> ce_dice_value_and_grad<T, U, void>(                                     \
      const Tensor<T>&, const Tensor<U>&, const CeDiceOptions<T>&, CeDiceParts*);                  \
  template OverlapStatistics ce_dice_statistics<T, U, void>(const Tensor<T>&, const Tensor<U>&,    \
                                                            const CeDiceOptions<T>&);              \
  template double ce_dice_finalize<T, U, void>(const Tensor<T>&, const Tensor<U>&,                 \
                                               const OverlapStatistics&, Tensor<T>&,               \
                                               const CeDiceOptions<T>&, CeDiceParts*);
#define SEGLOSS_INSTANTIATE_DICE_FOCAL(T, L)                                                       \
  template Tensor<T> dice_focal<T, L, void>(const Tensor<T>&, const Tensor<L>&,                    \
                                            const DiceFocalOptions<T>&, DiceFocalParts*);          \
  template Tensor<T> dice_focal_backward<T, L, void>(                                              \
      const Tensor<T>&, const Tensor<L>&, const Tensor<T>&, const DiceFocalOptions<T>&);           \
  template double dice_focal_value_and_grad<T, L, void>(const Tensor<T>&, const Tensor<L>&,        \
                                                        Tensor<T>&, const DiceFocalOptions<T>&,    \
                                                        DiceFocalParts*);                          \
  template void dice_focal_value_and_grad<T, L, void>(                                             \
      const Tensor<T>&, const Tensor<L>&, Tensor<T>&, Tensor<T>&, const DiceFocalOptions<T>&);     \
  template ValueAndGrad<T> dice_focal_value_and_grad<T, L, void>(                                  \
      const Tensor<T>&, const Tensor<L>&, const DiceFocalOptions<T>&, DiceFocalParts*);            \
  template OverlapStatistics dice_focal_statistics<T, L, void>(const Tensor<T>&, const Tensor<L>&, \
                                                               const DiceFocalOptions<T>&);        \
  template double dice_focal_finalize<T, L, void>(const Tensor<T>&, const Tensor<L>&,              \
                                                  const OverlapStatistics&, Tensor<T>&,            \
                                                  const DiceFocalOptions<T>&, DiceFocalParts*);
SEGLOSS_INSTANTIATE_CE_DICE(float, int32_t)
SEGLOSS_INSTANTIATE_CE_DICE(float, int64_t)
SEGLOSS_INSTANTIATE_CE_DICE(float, float)
SEGLOSS_INSTANTIATE_CE_DICE(double, int32_t)
SEGLOSS_INSTANTIATE_CE_DICE(double, int64_t)
SEGLOSS_INSTANTIATE_CE_DICE(double, double)
SEGLOSS_INSTANTIATE_DICE_FOCAL(float, int32_t)
SEGLOSS_INSTANTIATE_DICE_FOCAL(float, int64_t)
SEGLOSS_INSTANTIATE_DICE_FOCAL(double, int32_t)
SEGLOSS_INSTANTIATE_DICE_FOCAL(double, int64_t)
#undef SEGLOSS_INSTANTIATE_CE_DICE
#undef SEGLOSS_INSTANTIATE_DICE_FOCAL

}  // namespace segloss
