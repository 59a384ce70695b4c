// The losses composed from tape primitives (losses/composed.hpp). Each is the formula of its
// fused loss's header, in the same notation, written with core/tape.hpp's ops; the tape
// differentiates it. The argument checks are the fused losses' own.
#include "composed.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../backends/cpu/lovasz.hpp"
#include "../core/pointwise.hpp"
#include "internal/bce_args.hpp"
#include "internal/cross_entropy_checks.hpp"
#include "internal/focal_checks.hpp"
#include "internal/labels.hpp"
#include "internal/lovasz_args.hpp"
#include "internal/overlap_scores.hpp"
#include "internal/term_errors.hpp"

namespace segloss::composed {

using ad::Tape;
using ad::Var;

namespace {

// ---- shared pieces ----

template <class T>
void check_input(const char* fn, Tape<T>& tape, const Var<T>& x) {
  tape.check_var(fn, x);
}

// The elements of t on the host: t itself, or a copy of a CUDA tensor (the call waits). On a
// CUDA tape the composed forms read the few things they check or plan on the host this way (the
// labels, the target sums of the empty policy, the Lovász groups); the values stay on the
// device.
template <class U>
Tensor<U> on_host(const Tensor<U>& t) {
  return t.device() == Device::cpu ? t : t.to(Device::cpu);
}

// A weight broadcast by PyTorch's rule (aligned on the right). The tape reads a rank-1 operand
// along the class axis, so a rank-1 weight (W) is given to it as (1, W).
template <class T>
Var<T> pytorch_weight(Tape<T>& tape, const Tensor<T>& w) {
  if (w.rank() != 1) return tape.constant(w);
  if (w.device() != Device::cpu)  // a device copy: its elements cannot be read on the host
    return tape.constant(Tensor<T>::view(w.data(), Shape{1, w.size(0)}, w.device()).clone());
  Tensor<T> v = Tensor<T>::empty(Shape{1, w.size(0)});
  std::copy(w.begin(), w.end(), v.begin());
  return tape.constant(v);
}

// A constant tensor of `shape` filled with v.
template <class T>
Var<T> filled(Tape<T>& tape, const Shape& shape, double v) {
  return tape.constant(Tensor<T>::full(shape, static_cast<T>(v)));
}

// The reduction of per-element (or per-pixel) losses l: mean = sum / divisor.
template <class T>
Var<T> reduce(const Var<T>& l, Reduction r, double divisor) {
  if (r == Reduction::none) return l;
  const Var<T> s = ad::sum(l);
  return r == Reduction::sum ? s : s / divisor;
}

// The loss and gradient of a mean with nothing to average: 0, and no gradient.
template <class T>
Var<T> zero_loss(Tape<T>& tape) {
  return tape.scalar(0.0);
}

// ---- the overlap family: scores from the sums I, P, T (overlap.hpp) ----

// I, P, T are (N, C) per image or (C) for the batch. The score
//   S = (a_n I + smooth_nr) / (a_I I + a_P P + a_T T + smooth_dr),
// the empty policy, the class weights c_j, include_background, then the form (linear, focal,
// log, clamp) and the reduction, as overlap.hpp writes them.
template <class T, class O>
Var<T> overlap_loss(Tape<T>& tape, const Var<T>& I, const Var<T>& P, const Var<T>& Tt,
                    const detail::ScoreForm& f, const O& o, const char* fn) {
  const Shape shape = I.shape();
  const int64_t count = shape.numel(), channels = shape[shape.rank() - 1];
  Var<T> S = (f.a_n * I + o.smooth_nr) / (f.a_i * I + f.a_p * P + f.a_t * Tt + o.smooth_dr);
  // Which scores count, and which are fixed by the empty policy (the target sum T is 0).
  const Tensor<T> t_sums = on_host(Tt.value());
  Tensor<T> kept = Tensor<T>::empty(shape), empty = Tensor<T>::zeros(shape);
  int64_t n = 0;
  for (int64_t j = 0; j < count; ++j) {
    const bool background = j % channels == 0 && !o.include_background;
    const bool is_empty = t_sums[j] == T(0) && o.empty != EmptyPolicy::formula;
    kept[j] = !background && !(is_empty && o.empty == EmptyPolicy::skip) ? T(1) : T(0);
    empty[j] = is_empty ? T(1) : T(0);
    n += kept[j] != T(0);
  }
  if (o.empty == EmptyPolicy::one || o.empty == EmptyPolicy::zero)
    S = ad::where(empty, filled(tape, shape, o.empty == EmptyPolicy::one ? 1.0 : 0.0), S);
  const Var<T> zeros = filled(tape, shape, 0.0);
  const Var<T> cw = o.class_weight.defined() ? tape.constant(o.class_weight) : tape.scalar(1.0);
  (void)fn;
  if (n == 0) return o.reduction == Reduction::none ? zeros : zero_loss(tape);
  const bool mean = o.reduction == Reduction::mean;
  if (mean && (o.log || o.clamp)) {  // the form of the mean score M = (1/n) sum_j c_j S_j
    const Var<T> M = ad::sum(ad::where(kept, cw * S, zeros)) / static_cast<double>(n);
    return o.log ? -ad::log(M) : 1.0 - ad::clamp(M, 0.0, 1.0);
  }
  Var<T> l;
  if (o.log)
    l = -ad::log(S);
  else if (o.clamp)
    l = 1.0 - ad::clamp(S, 0.0, 1.0);
  else if (o.gamma == 1.0)
    l = 1.0 - S;
  else
    l = ad::pow(ad::relu(1.0 - S), o.gamma);  // relu: slope 0 at S = 1, so pow's inf stops
  const Var<T> v = ad::where(kept, cw * l, zeros);
  return reduce(v, o.reduction, static_cast<double>(n));
}

// The sums of one score: per image and class (N, C), or per class over the batch (C).
template <class T>
Var<T> score_sum(const Var<T>& v, bool per_image) {
  return per_image ? ad::sum_per_image_class(v) : ad::sum_per_class(v);
}

// Binary and multilabel overlap losses: p = sigmoid(x) (or x), the weights wI = w^2 and
// wP = w^2 (weighting squared, or squared sums) or w (on_inputs).
template <class T>
Var<T> binary_overlap(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                      const OverlapOptions<T>& o, const detail::ScoreForm& f, const char* fn) {
  check_input(fn, tape, x);
  detail::overlap_args(fn, x.value(), target, o, true, "options.", true);  // the fused checks
  const Var<T> p = o.activation == Activation::sigmoid ? ad::sigmoid(x) : x;
  const Var<T> t = tape.constant(target);
  const double k = o.squared ? 2.0 : 1.0;
  Var<T> pt = p * t, pk = ad::pow(p, k), tk = ad::pow(t, k);
  if (o.weight.defined()) {
    const Var<T> w = pytorch_weight(tape, o.weight);
    const Var<T> w2 = w * w;
    const Var<T> wp = o.weighting == OverlapWeighting::squared || o.squared ? w2 : w;
    pt = pt * w2;
    pk = pk * wp;
    tk = tk * wp;
  }
  return overlap_loss(tape, score_sum(pt, o.per_image), score_sum(pk, o.per_image),
                      score_sum(tk, o.per_image), f, o, fn);
}

// Multi-class targets: one-hot labels (ignored pixels: a row of zeros and a 0 in `valid`) or
// probabilities (every pixel valid).
template <class T>
struct ClassTarget {
  Var<T> t;             // (N, C, spatial...)
  Var<T> valid;         // (N, 1, spatial...) or a scalar 1
  int64_t counted = 0;  // pixels not ignored
};

// The logits x with those of the ignored pixels replaced by 0, for the softmax: the fused losses
// skip an ignored pixel, so its logits (NaN or infinite too) reach neither the value nor a
// gradient. Multiplying its softmax by 0 afterwards would not do: 0 * NaN is NaN, in the value
// and in the chain rule. With `where` on the input, the ignored logits are not read, and their
// gradient is 0. A probability target ignores no pixel: x itself.
template <class T>
Var<T> valid_logits(Tape<T>& tape, const Var<T>& x, const Tensor<T>& valid) {
  if (valid.shape().rank() == 0) return x;
  return ad::where(valid, x, filled(tape, x.shape(), 0.0));
}

template <class T, class U>
ClassTarget<T> class_target(Tape<T>& tape, const char* fn, const Tensor<T>& logits,
                            const Tensor<U>& target, int64_t ignore_index,
                            bool ignore_negative = false) {
  detail::check_class_target(fn, logits, target, true);
  const int64_t classes = logits.size(1);  // read before recording: `logits` may be a tape value
  ClassTarget<T> c;
  if constexpr (std::is_floating_point_v<U>) {
    SEGLOSS_CHECK(ignore_index == -100 && !ignore_negative, fn,
                  "ignore_index and ignore_negative apply to label targets only; with "
                  "probabilities they must keep their defaults (ignore_index -100, "
                  "ignore_negative false), not ignore_index ",
                  ignore_index, ", ignore_negative ", ignore_negative ? "true" : "false");
    c.t = tape.constant(target);
    c.valid = tape.scalar(1.0);
    c.counted = target.numel() / classes;
  } else {
    cpu::LabelRule rule;
    rule.ignore_index = ignore_index;
    rule.ignore_negative = ignore_negative;
    const Tensor<U> host = on_host(target);  // CUDA labels: checked and counted on the host
    const auto sums = detail::check_labels<T>(fn, host, classes, rule);
    c.counted = sums.count;
    // ignore_negative: negative labels become ignore_index for one_hot and valid_mask.
    Tensor<U> labels = target;
    if (ignore_negative) {
      labels = host.clone();
      for (auto& y : labels)
        if (rule.ignored(static_cast<int64_t>(y))) y = static_cast<U>(ignore_index);
      if (target.device() != Device::cpu) labels = labels.to(target.device());
    }
    c.t = ad::one_hot(tape, labels, classes, ignore_index);
    c.valid = ad::valid_mask(tape, labels, ignore_index);
  }
  return c;
}

// Multi-class overlap losses: p = softmax(x) over the valid pixels.
template <class T, class U, class O>
Var<T> softmax_overlap(Tape<T>& tape, const Var<T>& x, const Tensor<U>& target, const O& o,
                       const detail::ScoreForm& f, const char* fn) {
  check_input(fn, tape, x);
  const ClassTarget<T> c = class_target(tape, fn, x.value(), target, o.ignore_index);
  detail::check_overlap_options(fn, x.shape(), o, "options.", x.value().device());
  const Var<T> p = ad::softmax(valid_logits(tape, x, c.valid.value())) * c.valid;
  const double k = o.squared ? 2.0 : 1.0;
  return overlap_loss(tape, score_sum(p * c.t, o.per_image), score_sum(ad::pow(p, k), o.per_image),
                      score_sum(ad::pow(c.t, k), o.per_image), f, o, fn);
}

template <class T>
detail::ScoreForm checked_tversky_form(const char* fn, double alpha, double beta, bool squared) {
  SEGLOSS_CHECK(std::isfinite(alpha) && std::isfinite(beta) && alpha >= 0.0 && beta >= 0.0 &&
                    alpha + beta > 0.0,
                fn, "options.alpha ", alpha, " and options.beta ", beta,
                " must be finite and >= 0, with alpha + beta > 0");
  SEGLOSS_CHECK(!squared, fn,
                "options.squared is not defined for Tversky (FP = P - I holds for plain sums)");
  return detail::tversky_form(alpha, beta);
}

void check_reduction(const char* fn, Reduction r) {
  detail::check_enum(fn, "options.", "reduction", r, detail::kReductionNames);
}

template <class T>
void check_term_weights(const char* fn, const char* a, double va, const char* b, double vb) {
  SEGLOSS_CHECK(std::isfinite(va) && std::isfinite(vb), fn, "options.", a, " ", va, " and options.",
                b, " ", vb, " must be finite");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Binary and multilabel losses
// ---------------------------------------------------------------------------------------------

// l = w [(1 - z') softplus(x) + pw z' softplus(-x)],  z' = z (1 - eps) + eps / 2.
template <class T>
Var<T> bce_with_logits(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                       const BceWithLogitsOptions<T>& o) {
  const char* fn = "composed::bce_with_logits";
  check_input(fn, tape, x);
  detail::bce_with_logits_args(fn, x.value(), target, o);
  const double eps = o.label_smoothing;
  const Var<T> z = tape.constant(target) * (1.0 - eps) + eps / 2;
  Var<T> positive = z * ad::softplus(-x);
  if (o.pos_weight.defined()) {
    const Tensor<T>& pw = o.pos_weight;
    const Shape pw_shape = pw.numel() == 1 ? Shape{} : Shape{pw.numel()};  // (C): per class
    const Var<T> pwv =
        pw.device() != Device::cpu  // a device copy, never read on the host
            ? tape.constant(Tensor<T>::view(pw.data(), pw_shape, pw.device()).clone())
            : pw.numel() == 1
                  ? tape.scalar(static_cast<double>(pw[0]))
                  : tape.constant(Tensor<T>::from(std::vector<T>(pw.begin(), pw.end()),
                                                  Shape{pw.numel()}));  // (C): per class
    positive = pwv * positive;
  }
  Var<T> l = (1.0 - z) * ad::softplus(x) + positive;
  if (o.weight.defined()) l = pytorch_weight(tape, o.weight) * l;
  double divisor = static_cast<double>(x.value().numel());
  if (o.reduction == Reduction::mean && o.mean_over == BceMeanOver::weight_sum &&
      o.weight.defined()) {
    // W = the weight broadcast to the logits' shape, summed.
    divisor = ad::sum(pytorch_weight(tape, o.weight) * filled(tape, x.shape(), 1.0)).item();
    if (divisor == 0.0) return zero_loss(tape);
  }
  return reduce(l, o.reduction, divisor);
}

// l = -w [z max(log p, -100) + (1 - z) max(log(1 - p), -100)], with PyTorch's gradient
// w (p - z) / max((1 - p) p, EPSILON), which is not the derivative of the clamped value
// (binary_cross_entropy.hpp): at p = 0 or 1 the clamp is flat while 1/p or 1/(1 - p) is
// infinite (0 inf = NaN through the primitives), and below log p = -100 the clamp would cut the
// gradient to 0. So the value is the clamped formula on p's value p' (a constant), plus a term
// that is exactly 0 in value and carries that gradient: l = w [V(p') + D (p - p')], V the
// clamped loss above and D the constant (p' - z) / max((1 - p') p', EPSILON)
// (pw::bce_probs_grad, the fused kernel's function).
template <class T>
Var<T> binary_cross_entropy(Tape<T>& tape, const Var<T>& p, const Tensor<T>& target,
                            const BinaryCrossEntropyOptions<T>& o) {
  const char* fn = "composed::binary_cross_entropy";
  check_input(fn, tape, p);
  check_reduction(fn, o.reduction);
  detail::check_same_shape_pair(fn, p.value(), target, "probs", true);
  const char* names[] = {"probs", "target"};
  const Tensor<T> host_p = on_host(p.value()), host_t = on_host(target);
  const Tensor<T>* inputs[] = {&host_p, &host_t};
  for (int k = 0; k < 2; ++k)
    for (int64_t i = 0; i < inputs[k]->numel(); ++i) {
      const T v = (*inputs[k])[i];
      SEGLOSS_CHECK(v >= T(0) && v <= T(1), fn, names[k], " has value ", v, " at index ", i, " ",
                    p.shape().position(i), ", outside [0, 1]");
    }
  const double inf = std::numeric_limits<double>::infinity();
  const Var<T> z = tape.constant(target);
  const Var<T> pv = tape.constant(p.value());  // p' (no gradient)
  Tensor<T> d = Tensor<T>::empty(p.shape());
  for (int64_t i = 0; i < d.numel(); ++i) d[i] = pw::bce_probs_grad<T>(host_p[i], host_t[i]);
  Var<T> l = -(z * ad::clamp(ad::log(pv), -100.0, inf) +
               (1.0 - z) * ad::clamp(ad::log1p(-pv), -100.0, inf)) +
             tape.constant(d) * (p - pv);
  if (o.weight.defined()) {
    detail::make_broadcast_reader(fn, "options.weight", p.shape(), o.weight.shape(),
                                  o.weight.data(), true);
    l = pytorch_weight(tape, o.weight) * l;
  }
  return reduce(l, o.reduction, static_cast<double>(p.value().numel()));
}

// l = w a_t q^gamma ce, ce = (1 - z) softplus(x) + z softplus(-x),
// q = p (1 - z) + (1 - p) z with 1 - p = sigmoid(-x), a_t = alpha z + (1 - alpha)(1 - z).
template <class T>
Var<T> sigmoid_focal(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                     const SigmoidFocalOptions<T>& o) {
  const char* fn = "composed::sigmoid_focal";
  check_input(fn, tape, x);
  detail::check_same_shape_pair(fn, x.value(), target, "logits", true);
  detail::check_reduction_gamma(fn, o);
  SEGLOSS_CHECK(!std::isnan(o.alpha) && o.alpha <= 1.0, fn, "options.alpha is ", o.alpha,
                "; it must be in [0, 1], or negative for no alpha factor");
  const Var<T> z = tape.constant(target);
  const Var<T> ce = (1.0 - z) * ad::softplus(x) + z * ad::softplus(-x);
  const Var<T> q = ad::sigmoid(x) * (1.0 - z) + ad::sigmoid(-x) * z;
  Var<T> l = o.gamma == 0.0 ? ce : ad::pow(q, o.gamma) * ce;
  if (o.alpha >= 0.0) l = (o.alpha * z + (1.0 - o.alpha) * (1.0 - z)) * l;
  if (o.weight.defined()) {
    detail::make_broadcast_reader(fn, "options.weight", x.shape(), o.weight.shape(),
                                  o.weight.data(), true);
    l = pytorch_weight(tape, o.weight) * l;
  }
  return reduce(l, o.reduction, static_cast<double>(x.value().numel()));
}

template <class T>
Var<T> soft_dice(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                 const SoftDiceOptions<T>& o) {
  return binary_overlap(tape, x, target, o, detail::dice_form(), "composed::soft_dice");
}
template <class T>
Var<T> soft_jaccard(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                    const SoftJaccardOptions<T>& o) {
  return binary_overlap(tape, x, target, o, detail::jaccard_form(), "composed::soft_jaccard");
}
template <class T>
Var<T> tversky(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
               const TverskyOptions<T>& o) {
  const char* fn = "composed::tversky";
  return binary_overlap<T>(tape, x, target, o,
                           checked_tversky_form<T>(fn, o.alpha, o.beta, o.squared), fn);
}

// bce_weight * bce_with_logits + dice_weight * soft_dice.
template <class T>
Var<T> bce_dice(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                const BceDiceOptions<T>& o) {
  const char* fn = "composed::bce_dice";
  // The enums first, by their path (a bad value would pass the none check below).
  detail::check_enum(fn, "options.bce.", "reduction", o.bce.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.dice.", "reduction", o.dice.reduction, detail::kReductionNames);
  check_term_weights<T>(fn, "bce_weight", o.bce_weight, "dice_weight", o.dice_weight);
  SEGLOSS_CHECK(o.bce.reduction != Reduction::none && o.dice.reduction != Reduction::none, fn,
                "reduction none is not supported: the two terms' shapes differ");
  SEGLOSS_CHECK(o.dice.activation == Activation::sigmoid, fn,
                "options.dice.activation must be sigmoid: both terms read logits");
  return o.bce_weight *
             detail::in_term(fn, "BCE", [&] { return bce_with_logits(tape, x, target, o.bce); }) +
         o.dice_weight *
             detail::in_term(fn, "Dice", [&] { return soft_dice(tape, x, target, o.dice); });
}

// ---------------------------------------------------------------------------------------------
// Multi-class losses
// ---------------------------------------------------------------------------------------------

// l_i = -sum_c w_c q'_ic log p_ic, with q' = (1 - eps) onehot + eps / C on the valid pixels
// (labels) or (1 - eps) q + eps / C (probabilities); the mean divides by sum_i w_{y_i} over
// the valid pixels (labels, mean_over weights), their count (valid_pixels), or N * spatial
// (probabilities).
template <class T, class U, class>
Var<T> cross_entropy(Tape<T>& tape, const Var<T>& x, const Tensor<U>& target,
                     const CrossEntropyOptions<T>& o) {
  const char* fn = "composed::cross_entropy";
  check_input(fn, tape, x);
  const int64_t C = x.value().size(1);
  detail::check_ce_scalars(fn, o);
  // With probabilities any negative ignore_index changes nothing (as cross_entropy, PyTorch):
  // class_target then takes its default.
  if constexpr (std::is_floating_point_v<U>) detail::check_ce_probability_options(fn, o);
  const int64_t ignore =
      std::is_floating_point_v<U> && o.ignore_index < 0 ? int64_t{-100} : o.ignore_index;
  const ClassTarget<T> c = class_target(tape, fn, x.value(), target, ignore, o.ignore_negative);
  if (o.weight.defined())
    SEGLOSS_CHECK(o.weight.numel() == C, fn, "options.weight ", o.weight.shape(), " has ",
                  o.weight.numel(), " values; expected one per class (", C, ") of logits ",
                  x.shape());
  const Var<T> w = o.weight.defined() ? tape.constant(o.weight) : tape.scalar(1.0);
  const double eps = o.label_smoothing;
  const Var<T> q = (1.0 - eps) * c.t + (eps / static_cast<double>(C)) * c.valid;
  const Var<T> l = -ad::class_sum(w * q * ad::log_softmax(valid_logits(tape, x, c.valid.value())));
  if (o.reduction == Reduction::none) return ad::reshape(l, x.shape().without(1));
  if (o.reduction == Reduction::sum) return ad::sum(l);
  double divisor = static_cast<double>(c.counted);
  if constexpr (!std::is_floating_point_v<U>) {
    if (c.counted == 0)
      return o.all_ignored == AllIgnored::zero
                 ? zero_loss(tape)
                 : tape.scalar(std::numeric_limits<double>::quiet_NaN());
    if (o.mean_over == MeanOver::weights) divisor = ad::sum(w * c.t).item();
  }
  return ad::sum(l) / divisor;
}

// l_i = -a (1 - p_t)^gamma log p_t, a = alpha[t]; the mean divides by the valid pixels.
template <class T, class L, class>
Var<T> softmax_focal(Tape<T>& tape, const Var<T>& x, const Tensor<L>& target,
                     const SoftmaxFocalOptions<T>& o) {
  const char* fn = "composed::softmax_focal";
  check_input(fn, tape, x);
  detail::check_reduction_gamma(fn, o);
  const int64_t C = x.value().size(1);
  const ClassTarget<T> c = class_target(tape, fn, x.value(), target, o.ignore_index);
  if (o.alpha.defined())
    SEGLOSS_CHECK(o.alpha.numel() == C, fn, "options.alpha ", o.alpha.shape(), " has ",
                  o.alpha.numel(), " values; expected one per class (", C, ") of logits ",
                  x.shape());
  const Var<T> log_pt =  // 0 where ignored
      ad::class_sum(c.t * ad::log_softmax(valid_logits(tape, x, c.valid.value())));
  // 1 - p_t, with 1 where ignored (so that q^gamma stays differentiable there).
  const Var<T> q =
      ad::where(c.valid.value(), 1.0 - ad::exp(log_pt), filled(tape, log_pt.shape(), 1.0));
  Var<T> l = -(o.gamma == 0.0 ? log_pt : ad::pow(q, o.gamma) * log_pt);
  if (o.alpha.defined()) l = ad::class_sum(c.t * tape.constant(o.alpha)) * l;
  if (o.reduction == Reduction::none) return ad::reshape(l, x.shape().without(1));
  if (o.reduction == Reduction::mean && c.counted == 0) return zero_loss(tape);
  return reduce(l, o.reduction, static_cast<double>(c.counted));
}

#define SEGLOSS_SOFTMAX_OVERLAP(NAME, OPTIONS, FORM)                                          \
  template <class T, class U, class>                                                          \
  Var<T> NAME(Tape<T>& tape, const Var<T>& x, const Tensor<U>& target, const OPTIONS<T>& o) { \
    const char* fn = "composed::" #NAME;                                                      \
    return softmax_overlap(tape, x, target, o, FORM, fn);                                     \
  }
SEGLOSS_SOFTMAX_OVERLAP(softmax_dice, SoftmaxOverlapOptions, detail::dice_form())
SEGLOSS_SOFTMAX_OVERLAP(softmax_jaccard, SoftmaxOverlapOptions, detail::jaccard_form())
SEGLOSS_SOFTMAX_OVERLAP(softmax_tversky, SoftmaxTverskyOptions,
                        checked_tversky_form<T>(fn, o.alpha, o.beta, o.squared))
#undef SEGLOSS_SOFTMAX_OVERLAP

// S = (2 sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + T_c) + smooth_dr), loss 1 - S, with the
// constant class weights w_c = 1 / T_c^2 (square), 1 / T_c (simple) or 1, an infinite weight
// replaced by the largest finite one of the score (MONAI).
template <class T, class U, class>
Var<T> generalized_dice(Tape<T>& tape, const Var<T>& x, const Tensor<U>& target,
                        const GeneralizedDiceOptions<T>& o) {
  const char* fn = "composed::generalized_dice";
  check_input(fn, tape, x);
  detail::check_image(fn, "logits", x.value(), true);
  check_reduction(fn, o.reduction);
  detail::check_enum(fn, "options.", "w_type", o.w_type, detail::kGeneralizedDiceWeightNames);
  detail::check_smooth(fn, "options.smooth_nr", o.smooth_nr);
  detail::check_smooth(fn, "options.smooth_dr", o.smooth_dr);
  const int64_t C = x.value().size(1);
  SEGLOSS_CHECK(o.include_background || C > 1, fn, "options.include_background is false",
                " but the input ", x.shape(), " has a single class (C = 1): no class would remain");
  const ClassTarget<T> c = class_target(tape, fn, x.value(), target, o.ignore_index);
  const Var<T> p = ad::softmax(valid_logits(tape, x, c.valid.value())) * c.valid;
  const Var<T> I = score_sum(p * c.t, o.per_image), P = score_sum(p, o.per_image),
               Tt = score_sum(c.t, o.per_image);
  // The weights: constants of the target, per score row (an image, or the batch).
  const Tensor<T> tv = on_host(Tt.value());
  Tensor<T> w = Tensor<T>::zeros(tv.shape());
  for (int64_t row = 0; row < tv.numel() / C; ++row) {
    double w_max = 0.0;
    std::vector<double> v(static_cast<size_t>(C), 0.0);
    for (int64_t k = o.include_background ? 0 : 1; k < C; ++k) {
      const double t = static_cast<double>(tv[row * C + k]);
      v[k] = o.w_type == GeneralizedDiceWeight::square   ? 1.0 / (t * t)
             : o.w_type == GeneralizedDiceWeight::simple ? 1.0 / t
                                                         : 1.0;
      if (std::isfinite(v[k])) w_max = std::max(w_max, v[k]);
    }
    for (int64_t k = o.include_background ? 0 : 1; k < C; ++k)
      w[row * C + k] = static_cast<T>(std::isfinite(v[k]) ? v[k] : w_max);
  }
  const Var<T> wv = tape.constant(w);
  const auto over_classes = [&](const Var<T>& v) {
    return o.per_image ? ad::sum_per_image(v) : ad::reshape(ad::sum(v), Shape{1});
  };
  const Var<T> S =
      (2.0 * over_classes(wv * I) + o.smooth_nr) / (over_classes(wv * (P + Tt)) + o.smooth_dr);
  return reduce(1.0 - S, o.reduction, static_cast<double>(S.shape().numel()));
}

template <class T, class U, class>
Var<T> ce_dice(Tape<T>& tape, const Var<T>& x, const Tensor<U>& target, const CeDiceOptions<T>& o) {
  const char* fn = "composed::ce_dice";
  detail::check_enum(fn, "options.ce.", "reduction", o.ce.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.dice.", "reduction", o.dice.reduction, detail::kReductionNames);
  check_term_weights<T>(fn, "ce_weight", o.ce_weight, "dice_weight", o.dice_weight);
  SEGLOSS_CHECK(o.ce.reduction != Reduction::none && o.dice.reduction != Reduction::none, fn,
                "reduction none is not supported: the two terms' shapes differ");
  if constexpr (!std::is_floating_point_v<U>)
    SEGLOSS_CHECK(o.ce.ignore_index == o.dice.ignore_index && !o.ce.ignore_negative, fn,
                  "the terms must ignore the same pixels: ce.ignore_index ", o.ce.ignore_index,
                  ", dice.ignore_index ", o.dice.ignore_index, ", ce.ignore_negative ",
                  o.ce.ignore_negative ? "true" : "false");
  return o.ce_weight * detail::in_term(fn, "cross-entropy",
                                       [&] { return cross_entropy(tape, x, target, o.ce); }) +
         o.dice_weight *
             detail::in_term(fn, "Dice", [&] { return softmax_dice(tape, x, target, o.dice); });
}

template <class T, class L, class>
Var<T> dice_focal(Tape<T>& tape, const Var<T>& x, const Tensor<L>& target,
                  const DiceFocalOptions<T>& o) {
  const char* fn = "composed::dice_focal";
  detail::check_enum(fn, "options.dice.", "reduction", o.dice.reduction, detail::kReductionNames);
  detail::check_enum(fn, "options.focal.", "reduction", o.focal.reduction, detail::kReductionNames);
  check_term_weights<T>(fn, "dice_weight", o.dice_weight, "focal_weight", o.focal_weight);
  SEGLOSS_CHECK(o.dice.reduction != Reduction::none && o.focal.reduction != Reduction::none, fn,
                "reduction none is not supported: the two terms' shapes differ");
  SEGLOSS_CHECK(o.dice.ignore_index == o.focal.ignore_index, fn,
                "the terms must ignore the same pixels: dice.ignore_index ", o.dice.ignore_index,
                ", focal.ignore_index ", o.focal.ignore_index);
  return o.dice_weight *
             detail::in_term(fn, "Dice", [&] { return softmax_dice(tape, x, target, o.dice); }) +
         o.focal_weight *
             detail::in_term(fn, "focal", [&] { return softmax_focal(tape, x, target, o.focal); });
}

// ---------------------------------------------------------------------------------------------
// The Lovász losses
// ---------------------------------------------------------------------------------------------

namespace {

// The groups of a Lovász loss laid out one after another: `index` holds, group by group, the
// flat indices (into the errors' tensor) of the group's pixels in pixel order; `offsets` the
// group boundaries; `group_of` the group of each gathered element; per problem, the groups it
// owns (`problem_offsets`) and the weight 1 / K_j of their losses (`weight`, one per group).
struct LovaszGroups {
  std::vector<int64_t> index, offsets{0}, group_of, problem_offsets{0};
  std::vector<double> weight;
  int64_t problems = 0;

  void add(int64_t i) {
    index.push_back(i);
    group_of.push_back(static_cast<int64_t>(offsets.size()) - 1);
  }
  void close_group(double w) {
    offsets.push_back(static_cast<int64_t>(index.size()));
    weight.push_back(w);
  }
  void close_problem() {
    problem_offsets.push_back(static_cast<int64_t>(weight.size()));
    ++problems;
  }
  int64_t groups() const { return static_cast<int64_t>(weight.size()); }
};

template <class V>
Tensor<V> vector_tensor(const std::vector<V>& v) {
  return Tensor<V>::from(v, Shape{static_cast<int64_t>(v.size())});
}

// The Lovász extension of the Jaccard loss over the groups (Alg. 1 of Berman et al., CVPR 2018):
// errors e gathered by groups.index, ground truth gt (0 or 1, same layout as e; a constant).
// Each group's errors are sorted in decreasing order (ties in pixel order); with
// G = sum gt, I_k = G - cumsum(gt_sorted), U_k = G + cumsum(1 - gt_sorted), J_k = 1 - I_k / U_k,
// g = adjacent_diff(J), the group's loss is sum_k f(e_(k)) g_k. Returns the loss per problem,
// sum over its groups of weight * loss, shape (problems).
template <class T>
Var<T> lovasz_extension(Tape<T>& tape, const Var<T>& e, const Var<T>& gt, const LovaszGroups& grp,
                        bool hinge) {
  const Tensor<int64_t> index = vector_tensor(grp.index);
  const auto& off = grp.offsets;
  const ad::Sorted<T> sorted = ad::sort_desc(ad::gather(e, index), off);
  const Var<T> gs = ad::gather(ad::gather(gt, index), sorted.perm);  // gt in sorted order
  const Var<T> G = ad::gather(ad::segment_sum(gs, off), vector_tensor(grp.group_of));
  const Var<T> inter = G - ad::cumsum(gs, off), uni = G + ad::cumsum(1.0 - gs, off);
  const Var<T> g = ad::adjacent_diff(1.0 - inter / uni, off);  // a constant: gt only
  const Var<T> f = hinge ? ad::relu(sorted.values) : sorted.values;
  const Var<T> loss = ad::segment_sum(f * g, off);  // per group
  return ad::segment_sum(
      loss * tape.constant(vector_tensor(std::vector<T>(grp.weight.begin(), grp.weight.end()))),
      grp.problem_offsets);
}

template <class T>
Var<T> lovasz_reduce(const Var<T>& per_problem, Reduction r) {
  if (r == Reduction::none) return per_problem;
  return r == Reduction::sum ? ad::sum(per_problem) : ad::mean(per_problem);
}

// Zeros per problem (none) or a scalar 0: every problem without a group.
template <class T>
Var<T> lovasz_zero(Tape<T>& tape, int64_t problems, Reduction r) {
  return r == Reduction::none ? filled(tape, Shape{problems}, 0.0) : zero_loss(tape);
}

}  // namespace

// Per problem j and counted class c: the pixels not ignored, e_i = |[y_i = c] - p_ic| written
// where(onehot, 1 - p, p), their Lovász extension; L_j the mean over the K_j counted classes.
template <class T, class L, class>
Var<T> lovasz_softmax(Tape<T>& tape, const Var<T>& x, const Tensor<L>& target,
                      const LovaszSoftmaxOptions<T>& o) {
  const char* fn = "composed::lovasz_softmax";
  check_input(fn, tape, x);
  detail::check_lovasz_softmax_args(fn, x.value(), target, o, true);
  const Tensor<L> host = on_host(target);  // CUDA labels: checked, and the groups planned, here
  if (target.device() != Device::cpu) {
    cpu::LabelRule rule;
    rule.ignore_index = o.ignore_index;
    detail::check_labels<T>(fn, host, x.value().size(1), rule);
  }
  const Shape shape = x.shape();
  const int64_t N = shape[0], C = shape[1], S = shape.numel_from(2);

  // The groups: which classes count in which problem (options.classes / class_list).
  const int64_t problems = o.per_image ? N : 1, PI = o.per_image ? 1 : N;
  std::vector<unsigned char> listed(static_cast<size_t>(C), 0);
  for (int64_t c : o.class_list) listed[c] = 1;
  LovaszGroups grp;
  for (int64_t j = 0; j < problems; ++j) {
    std::vector<int64_t> count(static_cast<size_t>(C), 0);
    int64_t valid = 0;
    for (int64_t n = j * PI; n < (j + 1) * PI; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t y = static_cast<int64_t>(host[n * S + s]);
        if (y != o.ignore_index) ++count[y], ++valid;
      }
    std::vector<int64_t> kept;
    for (int64_t c = 0; c < C && valid > 0; ++c)  // all ignored: no class counts
      if (!o.class_list.empty() ? listed[c] != 0 : o.classes == LovaszClasses::all || count[c] > 0)
        kept.push_back(c);
    for (int64_t c : kept) {
      for (int64_t n = j * PI; n < (j + 1) * PI; ++n)
        for (int64_t s = 0; s < S; ++s)
          if (static_cast<int64_t>(host[n * S + s]) != o.ignore_index) grp.add((n * C + c) * S + s);
      grp.close_group(1.0 / static_cast<double>(kept.size()));
    }
    grp.close_problem();
  }
  if (grp.index.empty()) return lovasz_zero(tape, problems, o.reduction);

  const Var<T> fg = ad::one_hot(tape, target, C, o.ignore_index);
  const Var<T> p =
      ad::softmax(valid_logits(tape, x, ad::valid_mask(tape, target, o.ignore_index).value()));
  const Var<T> e = ad::where(fg.value(), 1.0 - p, p);
  return lovasz_reduce(lovasz_extension(tape, e, fg, grp, false), o.reduction);
}

// Per problem (an image, or the batch) over its pixels not ignored: signs s = 2 t - 1, errors
// e = 1 - x s, the Lovász extension with f = relu.
template <class T>
Var<T> lovasz_hinge(Tape<T>& tape, const Var<T>& x, const Tensor<T>& target,
                    const LovaszHingeOptions<T>& o) {
  const char* fn = "composed::lovasz_hinge";
  check_input(fn, tape, x);
  check_reduction(fn, o.reduction);
  detail::check_same_shape_pair(fn, x.value(), target, "logits", true);
  const Shape shape = x.shape();
  const bool has_ignore = o.ignore.has_value();
  const double ignore = detail::hinge_ignore(o);
  const Tensor<T> host = on_host(target);  // a CUDA target: checked, and the groups planned, here
  const int64_t bad = cpu::lovasz_hinge_first_bad(host.data(), host.numel(), has_ignore, ignore);
  if (bad >= 0) {
    if (has_ignore)
      detail::fail(fn, "target has label ", static_cast<double>(host[bad]), " at ",
                   shape.position(bad), "; expected 0, 1 or options.ignore ", *o.ignore);
    detail::fail(fn, "target has label ", static_cast<double>(host[bad]), " at ",
                 shape.position(bad), "; expected 0 or 1 (options.ignore is not set)");
  }
  const int64_t problems = o.per_image ? shape[0] : 1, size = shape.numel() / problems;
  LovaszGroups grp;
  Tensor<T> sign = Tensor<T>::empty(shape);
  for (int64_t j = 0; j < problems; ++j) {
    for (int64_t i = j * size; i < (j + 1) * size; ++i) {
      const bool ignored = has_ignore && static_cast<double>(host[i]) == ignore;
      sign[i] = ignored ? T(0) : T(2) * host[i] - T(1);
      if (!ignored) grp.add(i);
    }
    grp.close_group(1.0);
    grp.close_problem();
  }
  if (grp.index.empty()) return lovasz_zero(tape, problems, o.reduction);  // all ignored
  const Var<T> e = 1.0 - x * tape.constant(sign);
  const Var<T> gt = tape.constant(target);
  return lovasz_reduce(lovasz_extension(tape, e, gt, grp, true), o.reduction);
}

// ---------------------------------------------------------------------------------------------
// Instantiations
// ---------------------------------------------------------------------------------------------

#define SEGLOSS_INSTANTIATE_LABELS(T, L)                                                \
  template Var<T> softmax_focal<T, L, void>(Tape<T>&, const Var<T>&, const Tensor<L>&,  \
                                            const SoftmaxFocalOptions<T>&);             \
  template Var<T> dice_focal<T, L, void>(Tape<T>&, const Var<T>&, const Tensor<L>&,     \
                                         const DiceFocalOptions<T>&);                   \
  template Var<T> lovasz_softmax<T, L, void>(Tape<T>&, const Var<T>&, const Tensor<L>&, \
                                             const LovaszSoftmaxOptions<T>&);
#define SEGLOSS_INSTANTIATE_TARGET(T, U)                                                  \
  template Var<T> cross_entropy<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&,    \
                                            const CrossEntropyOptions<T>&);               \
  template Var<T> softmax_dice<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&,     \
                                           const SoftmaxOverlapOptions<T>&);              \
  template Var<T> softmax_jaccard<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&,  \
                                              const SoftmaxOverlapOptions<T>&);           \
  template Var<T> softmax_tversky<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&,  \
                                              const SoftmaxTverskyOptions<T>&);           \
  template Var<T> generalized_dice<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&, \
                                               const GeneralizedDiceOptions<T>&);         \
  template Var<T> ce_dice<T, U, void>(Tape<T>&, const Var<T>&, const Tensor<U>&,          \
                                      const CeDiceOptions<T>&);
#define SEGLOSS_INSTANTIATE(T)                                                                     \
  template Var<T> bce_with_logits(Tape<T>&, const Var<T>&, const Tensor<T>&,                       \
                                  const BceWithLogitsOptions<T>&);                                 \
  template Var<T> binary_cross_entropy(Tape<T>&, const Var<T>&, const Tensor<T>&,                  \
                                       const BinaryCrossEntropyOptions<T>&);                       \
  template Var<T> sigmoid_focal(Tape<T>&, const Var<T>&, const Tensor<T>&,                         \
                                const SigmoidFocalOptions<T>&);                                    \
  template Var<T> soft_dice(Tape<T>&, const Var<T>&, const Tensor<T>&, const SoftDiceOptions<T>&); \
  template Var<T> soft_jaccard(Tape<T>&, const Var<T>&, const Tensor<T>&,                          \
                               const SoftJaccardOptions<T>&);                                      \
  template Var<T> tversky(Tape<T>&, const Var<T>&, const Tensor<T>&, const TverskyOptions<T>&);    \
  template Var<T> bce_dice(Tape<T>&, const Var<T>&, const Tensor<T>&, const BceDiceOptions<T>&);   \
  template Var<T> lovasz_hinge(Tape<T>&, const Var<T>&, const Tensor<T>&,                          \
                               const LovaszHingeOptions<T>&);                                      \
  SEGLOSS_INSTANTIATE_LABELS(T, int32_t)                                                           \
  SEGLOSS_INSTANTIATE_LABELS(T, int64_t)                                                           \
  SEGLOSS_INSTANTIATE_TARGET(T, int32_t)                                                           \
  SEGLOSS_INSTANTIATE_TARGET(T, int64_t)                                                           \
  SEGLOSS_INSTANTIATE_TARGET(T, T)
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE
#undef SEGLOSS_INSTANTIATE_TARGET
#undef SEGLOSS_INSTANTIATE_LABELS

}  // namespace segloss::composed
