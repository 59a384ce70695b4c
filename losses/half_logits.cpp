// float16 and bfloat16 logits: widen to float, run the float loss, round the results back
// (losses/half_logits.hpp has the contract).
#include "half_logits.hpp"

#include "../core/checks.hpp"
#include "internal/half_convert.hpp"

namespace segloss {

template <class H>
Tensor<float> to_float(const Tensor<H>& t) {
  if (!t.defined()) return Tensor<float>();
  Tensor<float> out = Tensor<float>::empty(t.shape(), t.device());
  detail::convert_elements(out.data(), t.data(), t.numel(), t.device(), "to_float");
  return out;
}

template <class H>
Tensor<H> to_half(const Tensor<float>& t) {
  if (!t.defined()) return Tensor<H>();
  Tensor<H> out = Tensor<H>::empty(t.shape(), t.device());
  detail::convert_elements(out.data(), t.data(), t.numel(), t.device(), "to_half");
  return out;
}

namespace {

// Rounds the float result `src` into the caller's 16-bit buffer `dst` of the same shape and
// device (prepared by prepare_grad or prepare_value).
template <class H>
void round_into(const Tensor<float>& src, const Tensor<H>& dst, const char* fn) {
  detail::convert_elements(dst.data(), src.data(), src.numel(), src.device(), fn);
}

// The options with their tensors widened to float.
template <class H>
BceWithLogitsOptions<float> widen(const BceWithLogitsOptions<H>& o) {
  BceWithLogitsOptions<float> f;
  f.reduction = o.reduction;
  f.weight = to_float(o.weight);
  f.pos_weight = to_float(o.pos_weight);
  f.mean_over = o.mean_over;
  f.label_smoothing = o.label_smoothing;
  return f;
}

template <class H>
OverlapOptions<float> widen(const OverlapOptions<H>& o) {
  OverlapOptions<float> f;
  f.reduction = o.reduction;
  f.smooth_nr = o.smooth_nr;
  f.smooth_dr = o.smooth_dr;
  f.per_image = o.per_image;
  f.activation = o.activation;
  f.squared = o.squared;
  f.weight = to_float(o.weight);
  f.weighting = o.weighting;
  f.class_weight = to_float(o.class_weight);
  f.include_background = o.include_background;
  f.empty = o.empty;
  f.gamma = o.gamma;
  f.log = o.log;
  f.clamp = o.clamp;
  return f;
}

template <class H>
BceDiceOptions<float> widen(const BceDiceOptions<H>& o) {
  BceDiceOptions<float> f;
  f.bce_weight = o.bce_weight;
  f.dice_weight = o.dice_weight;
  f.bce = widen(o.bce);
  f.dice = widen(o.dice);
  return f;
}

template <class H>
CrossEntropyOptions<float> widen(const CrossEntropyOptions<H>& o) {
  CrossEntropyOptions<float> f;
  f.reduction = o.reduction;
  f.weight = to_float(o.weight);
  f.ignore_index = o.ignore_index;
  f.label_smoothing = o.label_smoothing;
  f.ignore_negative = o.ignore_negative;
  f.mean_over = o.mean_over;
  f.all_ignored = o.all_ignored;
  return f;
}

// A target of the logits' 16-bit type is widened; labels pass through unchanged.
template <class U>
decltype(auto) widen_target(const Tensor<U>& t) {
  if constexpr (kHalf<U>)
    return to_float(t);
  else
    return t;
}

// The entry points on 16-bit logits: `float_loss` (the float loss's call of the same form, as a
// generic lambda) on the widened inputs, its results rounded into 16 bits. `fn` names the call
// in the errors of a gradient or value buffer.
template <class H, class U, class O, class F>
Tensor<H> half_forward(const Tensor<H>& logits, const Tensor<U>& target, const O& options,
                       F&& float_loss) {
  return to_half<H>(float_loss(to_float(logits), widen_target(target), widen(options)));
}

template <class H, class U, class O, class F>
Tensor<H> half_backward(const Tensor<H>& logits, const Tensor<U>& target, const Tensor<H>& grad_out,
                        const O& options, F&& float_loss) {
  return to_half<H>(
      float_loss(to_float(logits), widen_target(target), to_float(grad_out), widen(options)));
}

// The value_and_grad form writing into the caller's `grad` (and returning the double).
template <class H, class U, class O, class F>
double value_and_grad_into(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                           Tensor<H>& grad, const O& options, F&& float_loss) {
  detail::prepare_grad(fn, logits, grad);
  Tensor<float> g;
  const double v = float_loss(to_float(logits), widen_target(target), g, widen(options));
  round_into(g, grad, fn);
  return v;
}

// The value_and_grad form writing the value into the caller's one-element `value` too.
template <class H, class U, class O, class F>
void value_and_grad_value(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                          Tensor<H>& grad, Tensor<H>& value, const O& options, F&& float_loss) {
  detail::prepare_grad(fn, logits, grad);
  detail::prepare_value(fn, logits, value);
  Tensor<float> g, v;
  float_loss(to_float(logits), widen_target(target), g, v, widen(options));
  round_into(g, grad, fn);
  round_into(v, value, fn);
}

}  // namespace

// The five 16-bit specializations of one loss (declared in losses/half_logits.hpp), for logits
// Tensor<H> and a target of type Target (Tensor<H>, or cross_entropy's labels). Their template
// arguments are deduced from the parameters (cross_entropy's third is its default, void).
// EXTRA_PARAM and EXTRA_ARG are the trailing pointer parameter of the loss's forward and
// value_and_grad and its name, each preceded by SEGLOSS_COMMA, or both empty.
#define SEGLOSS_HALF_LOSS(H, Target, name, Options, EXTRA_PARAM, EXTRA_ARG)                       \
  template <>                                                                                     \
  Tensor<H> name(const Tensor<H>& logits, const Target& target,                                   \
                 const Options<H>& options EXTRA_PARAM) {                                         \
    return half_forward(                                                                          \
        logits, target, options,                                                                  \
        [&](const auto& x, const auto& t, const auto& o) { return name(x, t, o EXTRA_ARG); });    \
  }                                                                                               \
  template <>                                                                                     \
  Tensor<H> name##_backward(const Tensor<H>& logits, const Target& target,                        \
                            const Tensor<H>& grad_out, const Options<H>& options) {               \
    return half_backward(logits, target, grad_out, options,                                       \
                         [](const auto& x, const auto& t, const auto& go, const auto& o) {        \
                           return name##_backward(x, t, go, o);                                   \
                         });                                                                      \
  }                                                                                               \
  template <>                                                                                     \
  double name##_value_and_grad(const Tensor<H>& logits, const Target& target, Tensor<H>& grad,    \
                               const Options<H>& options EXTRA_PARAM) {                           \
    return value_and_grad_into(                                                                   \
        #name "_value_and_grad", logits, target, grad, options,                                   \
        [&](const auto& x, const auto& t, Tensor<float>& g, const auto& o) {                      \
          return name##_value_and_grad(x, t, g, o EXTRA_ARG);                                     \
        });                                                                                       \
  }                                                                                               \
  template <>                                                                                     \
  void name##_value_and_grad(const Tensor<H>& logits, const Target& target, Tensor<H>& grad,      \
                             Tensor<H>& value, const Options<H>& options EXTRA_PARAM) {           \
    value_and_grad_value(#name "_value_and_grad", logits, target, grad, value, options,           \
                         [&](const auto& x, const auto& t, Tensor<float>& g, Tensor<float>& v,    \
                             const auto& o) { name##_value_and_grad(x, t, g, v, o EXTRA_ARG); }); \
  }                                                                                               \
  template <>                                                                                     \
  ValueAndGrad<H> name##_value_and_grad(const Tensor<H>& logits, const Target& target,            \
                                        const Options<H>& options EXTRA_PARAM) {                  \
    ValueAndGrad<H> r;                                                                            \
    r.value = name##_value_and_grad(logits, target, r.grad, options EXTRA_ARG);                   \
    return r;                                                                                     \
  }

#define SEGLOSS_HALF_DEFINE(H)                                                                 \
  template Tensor<float> to_float<H>(const Tensor<H>&);                                        \
  template Tensor<H> to_half<H>(const Tensor<float>&);                                         \
  SEGLOSS_HALF_LOSS(H, Tensor<H>, bce_with_logits, BceWithLogitsOptions, , )                   \
  SEGLOSS_HALF_LOSS(H, Tensor<H>, soft_dice, OverlapOptions, SEGLOSS_COMMA OverlapInfo* info,  \
                    SEGLOSS_COMMA info)                                                        \
  SEGLOSS_HALF_LOSS(H, Tensor<H>, bce_dice, BceDiceOptions, SEGLOSS_COMMA BceDiceParts* parts, \
                    SEGLOSS_COMMA parts)                                                       \
  SEGLOSS_HALF_LOSS(H, Tensor<int32_t>, cross_entropy, CrossEntropyOptions, , )                \
  SEGLOSS_HALF_LOSS(H, Tensor<int64_t>, cross_entropy, CrossEntropyOptions, , )
#define SEGLOSS_COMMA ,
SEGLOSS_HALF_DEFINE(float16)
SEGLOSS_HALF_DEFINE(bfloat16)

}  // namespace segloss
