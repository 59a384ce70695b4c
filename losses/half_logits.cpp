// float16 and bfloat16 logits: widen to float, run the float loss, round the results back
// (losses/half_logits.hpp has the contract).
#include "half_logits.hpp"

#include <optional>

#include "../core/checks.hpp"
#include "internal/half_convert.hpp"
#include "internal/half_options.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/scratch.hpp"
#endif

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

constexpr size_t kCopyAlign = 256;
size_t copy_bytes(int64_t elements) {
  return (static_cast<size_t>(elements) * sizeof(float) + kCopyAlign - 1) / kCopyAlign * kCopyAlign;
}
template <class U>
size_t copy_bytes(const Tensor<U>& t) {
  return t.defined() ? copy_bytes(t.numel()) : 0;
}

// Where one call's float tensors live (the widened inputs, and the float gradient and value of
// the into-buffer forms): new tensors on the CPU; on CUDA, views into one lease of the current
// stream's cached scratch buffer (backends/cuda/scratch.hpp), so that after the first call of
// the largest size the 16-bit path allocates nothing and nothing waits for a cudaFree. `bytes`:
// the sum of copy_bytes of every tensor the call takes. The lease lasts as long as this object:
// the float loss and the rounding run inside it, and a later call on the stream reuses the
// buffer after them (stream order).
class FloatCopies {
 public:
  FloatCopies(const char* fn, Device device, size_t bytes) : fn_(fn), device_(device) {
#if defined(SEGLOSS_WITH_CUDA)
    if (device == Device::cuda && bytes > 0) {
      lease_.emplace(fn, bytes);
      bytes_ = bytes;
    }
#else
    (void)bytes;
#endif
  }

  // An uninitialized float tensor of shape s, on the call's device.
  Tensor<float> take(const Shape& s) {
#if defined(SEGLOSS_WITH_CUDA)
    if (device_ == Device::cuda && lease_) {
      const size_t need = copy_bytes(s.numel());
      SEGLOSS_CHECK(used_ + need <= bytes_, fn_, "internal: the 16-bit path's scratch holds ",
                    bytes_, " bytes, but its copies need more");
      auto* p = reinterpret_cast<float*>(lease_->data() + used_);
      used_ += need;
      return Tensor<float>::view(p, s, Device::cuda);
    }
#endif
    return Tensor<float>::empty(s, device_);
  }

  // t widened to float (exact), on t's device; undefined stays undefined. A tensor on another
  // device than the call's gets a copy of its own on its device (as before the scratch), so the
  // float loss raises its usual device error instead of a host loop writing device memory.
  template <class H>
  Tensor<float> widen(const Tensor<H>& t) {
    if (!t.defined()) return Tensor<float>();
    if (t.device() != device_) return to_float(t);
    Tensor<float> out = take(t.shape());
    detail::convert_elements(out.data(), t.data(), t.numel(), t.device(), fn_);
    return out;
  }

 private:
  const char* fn_;  // the loss, named in the conversion's and the CUDA scratch's errors
  Device device_;
#if defined(SEGLOSS_WITH_CUDA)
  std::optional<cuda::detail::ScratchLease> lease_;
  size_t bytes_ = 0, used_ = 0;
#endif
};

// The options with their tensors widened to float (losses/internal/half_options.hpp lists the
// fields of every options struct), and the bytes of those copies.
template <class O>
auto widen(const O& o, FloatCopies& c) {
  return detail::convert_options<float>(o, [&](const auto& t, const char*) { return c.widen(t); });
}
template <class O>
size_t options_bytes(const O& o) {
  size_t bytes = 0;
  detail::convert_options<float>(o, [&](const auto& t, const char*) {
    bytes += copy_bytes(t);
    return Tensor<float>();
  });
  return bytes;
}

// A target of the logits' 16-bit type is widened; labels pass through unchanged.
template <class U>
decltype(auto) widen_target(const Tensor<U>& t, FloatCopies& c) {
  if constexpr (kHalf<U>)
    return c.widen(t);
  else
    return t;
}
template <class U>
size_t target_bytes(const Tensor<U>& t) {
  if constexpr (kHalf<U>)
    return copy_bytes(t);
  else
    return 0;
}

// The bytes of the copies of logits, target and options.
template <class H, class U, class O>
size_t input_bytes(const Tensor<H>& logits, const Tensor<U>& target, const O& options) {
  return copy_bytes(logits) + target_bytes(target) + options_bytes(options);
}

// The entry points on 16-bit logits: `float_loss` (the float loss's call of the same form, as a
// generic lambda) on the widened inputs, its results rounded into 16 bits. `fn` names the call
// in the errors of a gradient or value buffer.
template <class H, class U, class O, class F>
Tensor<H> half_forward(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                       const O& options, F&& float_loss) {
  FloatCopies c(fn, logits.device(), input_bytes(logits, target, options));
  return to_half<H>(float_loss(c.widen(logits), widen_target(target, c), widen(options, c)));
}

template <class H, class U, class O, class F>
Tensor<H> half_backward(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                        const Tensor<H>& grad_out, const O& options, F&& float_loss) {
  FloatCopies c(fn, logits.device(), input_bytes(logits, target, options) + copy_bytes(grad_out));
  return to_half<H>(
      float_loss(c.widen(logits), widen_target(target, c), c.widen(grad_out), widen(options, c)));
}

// A caller's grad must not overlap the target or an option tensor, as in the float losses
// (core/checks.hpp). Here the float loss reads copies, or the labels before grad is written, so
// the result would be right, but the rounding into grad would overwrite the caller's input. A
// target of the logits' type, or an option tensor, may be grad exactly (the float losses allow
// it for the target and the per-pixel weights; here every input is read before grad is written).
template <class H, class U, class O>
void check_grad_apart(const char* fn, const Tensor<H>& grad, const Tensor<U>& target,
                      const O& options) {
  detail::check_grad_apart(fn, grad, detail::target_input<H>(target));
  detail::convert_options<float>(options, [&](const auto& t, const char* name) {
    detail::check_grad_apart(fn, grad, detail::apart_or_same(name, t), "options.");
    return Tensor<float>();
  });
}

// The value_and_grad form writing into the caller's `grad` (and returning the double).
template <class H, class U, class O, class F>
double value_and_grad_into(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                           Tensor<H>& grad, const O& options, F&& float_loss) {
  detail::prepare_grad(fn, logits, grad);
  check_grad_apart(fn, grad, target, options);
  FloatCopies c(fn, logits.device(), input_bytes(logits, target, options) + copy_bytes(logits));
  Tensor<float> x = c.widen(logits);
  Tensor<float> g = c.take(logits.shape());
  const double v = float_loss(x, widen_target(target, c), g, widen(options, c));
  round_into(g, grad, fn);
  return v;
}

// The value_and_grad form writing the value into the caller's one-element `value` too.
template <class H, class U, class O, class F>
void value_and_grad_value(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                          Tensor<H>& grad, Tensor<H>& value, const O& options, F&& float_loss) {
  detail::prepare_grad(fn, logits, grad);
  check_grad_apart(fn, grad, target, options);
  detail::prepare_value(fn, logits, value);
  detail::check_value_apart_all(fn, value, logits, target, grad, options);
  FloatCopies c(fn, logits.device(),
                input_bytes(logits, target, options) + copy_bytes(logits) + copy_bytes(1));
  Tensor<float> x = c.widen(logits);
  Tensor<float> g = c.take(logits.shape());
  Tensor<float> v = c.take(value.shape());
  float_loss(x, widen_target(target, c), g, v, widen(options, c));
  round_into(g, grad, fn);
  round_into(v, value, fn);
}

// The statistics of the split (docs/distributed.md) on the widened inputs: the float loss's,
// as they are (doubles; on CUDA the call waits for them, as the float one does).
template <class H, class U, class O, class F>
auto half_statistics(const char* fn, const Tensor<H>& logits, const Tensor<U>& target,
                     const O& options, F&& float_statistics) {
  FloatCopies c(fn, logits.device(), input_bytes(logits, target, options));
  return float_statistics(c.widen(logits), widen_target(target, c), widen(options, c));
}

}  // namespace

// The five 16-bit specializations of one loss (declared in losses/half_logits.hpp), for logits
// Tensor<H> and a target of type Target (Tensor<H>, or labels). Their template arguments are
// deduced from the parameters (the class-target losses' third is its default, void). EP() and
// EA() are the trailing pointer parameter (named `extra`) of the forward and the value_and_grad
// forms returning a value, and its argument; VP() and VA() those of the form writing the value
// into a tensor: each with its leading comma, or nothing.
#define SEGLOSS_HALF_LOSS(H, Target, name, Options, EP, EA, VP, VA)                            \
  template <>                                                                                  \
  Tensor<H> name(const Tensor<H>& logits, const Target& target, const Options& options EP()) { \
    return half_forward(                                                                       \
        #name, logits, target, options,                                                        \
        [&](const auto& x, const auto& t, const auto& o) { return name(x, t, o EA()); });      \
  }                                                                                            \
  template <>                                                                                  \
  Tensor<H> name##_backward(const Tensor<H>& logits, const Target& target,                     \
                            const Tensor<H>& grad_out, const Options& options) {               \
    return half_backward(#name "_backward", logits, target, grad_out, options,                 \
                         [](const auto& x, const auto& t, const auto& go, const auto& o) {     \
                           return name##_backward(x, t, go, o);                                \
                         });                                                                   \
  }                                                                                            \
  template <>                                                                                  \
  double name##_value_and_grad(const Tensor<H>& logits, const Target& target, Tensor<H>& grad, \
                               const Options& options EP()) {                                  \
    return value_and_grad_into(                                                                \
        #name "_value_and_grad", logits, target, grad, options,                                \
        [&](const auto& x, const auto& t, Tensor<float>& g, const auto& o) {                   \
          return name##_value_and_grad(x, t, g, o EA());                                       \
        });                                                                                    \
  }                                                                                            \
  template <>                                                                                  \
  void name##_value_and_grad(const Tensor<H>& logits, const Target& target, Tensor<H>& grad,   \
                             Tensor<H>& value, const Options& options VP()) {                  \
    value_and_grad_value(#name "_value_and_grad", logits, target, grad, value, options,        \
                         [&](const auto& x, const auto& t, Tensor<float>& g, Tensor<float>& v, \
                             const auto& o) { name##_value_and_grad(x, t, g, v, o VA()); });   \
  }                                                                                            \
  template <>                                                                                  \
  ValueAndGrad<H> name##_value_and_grad(const Tensor<H>& logits, const Target& target,         \
                                        const Options& options EP()) {                         \
    ValueAndGrad<H> r;                                                                         \
    r.value = name##_value_and_grad(logits, target, r.grad, options EA());                     \
    return r;                                                                                  \
  }
#define SEGLOSS_HALF_NO()
#define SEGLOSS_HALF_EXTRA() , extra
#define SEGLOSS_HALF_INFO() , OverlapInfo* extra
#define SEGLOSS_HALF_BCE_DICE_PARTS() , BceDiceParts* extra
#define SEGLOSS_HALF_CE_DICE_PARTS() , CeDiceParts* extra
#define SEGLOSS_HALF_DICE_FOCAL_PARTS() , DiceFocalParts* extra
// A loss without a pointer parameter; one with `extra` in the forward and value_and_grad forms
// returning a value, in the value-tensor form too (_ALL) or not.
#define SEGLOSS_HALF_PLAIN(H, Target, name, Options)                                             \
  SEGLOSS_HALF_LOSS(H, Target, name, Options, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO, \
                    SEGLOSS_HALF_NO)
#define SEGLOSS_HALF_WITH(H, Target, name, Options, EP)                                \
  SEGLOSS_HALF_LOSS(H, Target, name, Options, EP, SEGLOSS_HALF_EXTRA, SEGLOSS_HALF_NO, \
                    SEGLOSS_HALF_NO)
#define SEGLOSS_HALF_WITH_ALL(H, Target, name, Options, EP) \
  SEGLOSS_HALF_LOSS(H, Target, name, Options, EP, SEGLOSS_HALF_EXTRA, EP, SEGLOSS_HALF_EXTRA)

#define SEGLOSS_HALF_DEFINE(H)                                                                  \
  template Tensor<float> to_float<H>(const Tensor<H>&);                                         \
  template Tensor<H> to_half<H>(const Tensor<float>&);                                          \
  SEGLOSS_HALF_PLAIN(H, Tensor<H>, bce_with_logits, BceWithLogitsOptions<H>)                    \
  SEGLOSS_HALF_PLAIN(H, Tensor<H>, binary_cross_entropy, BinaryCrossEntropyOptions<H>)          \
  SEGLOSS_HALF_PLAIN(H, Tensor<H>, sigmoid_focal, SigmoidFocalOptions<H>)                       \
  SEGLOSS_HALF_WITH_ALL(H, Tensor<H>, soft_dice, OverlapOptions<H>, SEGLOSS_HALF_INFO)          \
  SEGLOSS_HALF_WITH_ALL(H, Tensor<H>, soft_jaccard, OverlapOptions<H>, SEGLOSS_HALF_INFO)       \
  SEGLOSS_HALF_WITH_ALL(H, Tensor<H>, tversky, TverskyOptions<H>, SEGLOSS_HALF_INFO)            \
  SEGLOSS_HALF_WITH_ALL(H, Tensor<H>, bce_dice, BceDiceOptions<H>, SEGLOSS_HALF_BCE_DICE_PARTS) \
  SEGLOSS_HALF_PLAIN(H, Tensor<H>, lovasz_hinge, LovaszHingeOptions<H>)                         \
  SEGLOSS_HALF_CLASSES(H, Tensor<int32_t>)                                                      \
  SEGLOSS_HALF_CLASSES(H, Tensor<int64_t>)                                                      \
  SEGLOSS_HALF_CLASSES(H, Tensor<H>)                                                            \
  SEGLOSS_HALF_LABELS(H, Tensor<int32_t>)                                                       \
  SEGLOSS_HALF_LABELS(H, Tensor<int64_t>)
// The losses taking labels or probabilities of the logits' type (Target), and those taking
// labels only.
#define SEGLOSS_HALF_CLASSES(H, Target)                                                      \
  SEGLOSS_HALF_PLAIN(H, Target, cross_entropy, CrossEntropyOptions<H>)                       \
  SEGLOSS_HALF_WITH(H, Target, softmax_dice, SoftmaxOverlapOptions<H>, SEGLOSS_HALF_INFO)    \
  SEGLOSS_HALF_WITH(H, Target, softmax_jaccard, SoftmaxOverlapOptions<H>, SEGLOSS_HALF_INFO) \
  SEGLOSS_HALF_WITH(H, Target, softmax_tversky, SoftmaxTverskyOptions<H>, SEGLOSS_HALF_INFO) \
  SEGLOSS_HALF_PLAIN(H, Target, generalized_dice, GeneralizedDiceOptions<H>)                 \
  SEGLOSS_HALF_WITH(H, Target, ce_dice, CeDiceOptions<H>, SEGLOSS_HALF_CE_DICE_PARTS)
#define SEGLOSS_HALF_LABELS(H, Target)                                                         \
  SEGLOSS_HALF_PLAIN(H, Target, softmax_focal, SoftmaxFocalOptions<H>)                         \
  SEGLOSS_HALF_WITH(H, Target, dice_focal, DiceFocalOptions<H>, SEGLOSS_HALF_DICE_FOCAL_PARTS) \
  SEGLOSS_HALF_PLAIN(H, Target, lovasz_softmax, LovaszSoftmaxOptions<H>)
// The statistics / finalize split of one loss: finalize is the form writing grad and returning
// the double (value_and_grad_into) over the float finalize. FP() and FA() are its trailing
// `parts` parameter and argument, or nothing.
#define SEGLOSS_HALF_SPLIT(H, Target, name, Options, Stats, FP, FA)                                \
  template <>                                                                                      \
  Stats name##_statistics(const Tensor<H>& logits, const Target& target, const Options& options) { \
    return half_statistics(                                                                        \
        #name "_statistics", logits, target, options,                                              \
        [](const auto& x, const auto& t, const auto& o) { return name##_statistics(x, t, o); });   \
  }                                                                                                \
  template <>                                                                                      \
  double name##_finalize(const Tensor<H>& logits, const Target& target, const Stats& reduced,      \
                         Tensor<H>& grad, const Options& options FP()) {                           \
    return value_and_grad_into(                                                                    \
        #name "_finalize", logits, target, grad, options,                                          \
        [&](const auto& x, const auto& t, Tensor<float>& g, const auto& o) {                       \
          return name##_finalize(x, t, reduced, g, o FA());                                        \
        });                                                                                        \
  }
#define SEGLOSS_HALF_SPLIT_PLAIN(H, Target, name, Options, Stats) \
  SEGLOSS_HALF_SPLIT(H, Target, name, Options, Stats, SEGLOSS_HALF_NO, SEGLOSS_HALF_NO)
#define SEGLOSS_HALF_SPLIT_PARTS(H, Target, name, Options, FP) \
  SEGLOSS_HALF_SPLIT(H, Target, name, Options, OverlapStatistics, FP, SEGLOSS_HALF_EXTRA)
#define SEGLOSS_HALF_DEFINE_SPLIT(H)                                                               \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Tensor<H>, bce_with_logits, BceWithLogitsOptions<H>,                 \
                           ShardStatistics)                                                        \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Tensor<H>, sigmoid_focal, SigmoidFocalOptions<H>, ShardStatistics)   \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Tensor<H>, soft_dice, OverlapOptions<H>, OverlapStatistics)          \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Tensor<H>, soft_jaccard, OverlapOptions<H>, OverlapStatistics)       \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Tensor<H>, tversky, TverskyOptions<H>, OverlapStatistics)            \
  SEGLOSS_HALF_SPLIT_PARTS(H, Tensor<H>, bce_dice, BceDiceOptions<H>, SEGLOSS_HALF_BCE_DICE_PARTS) \
  SEGLOSS_HALF_SPLIT_CLASSES(H, Tensor<int32_t>)                                                   \
  SEGLOSS_HALF_SPLIT_CLASSES(H, Tensor<int64_t>)                                                   \
  SEGLOSS_HALF_SPLIT_CLASSES(H, Tensor<H>)                                                         \
  SEGLOSS_HALF_SPLIT_LABELS(H, Tensor<int32_t>)                                                    \
  SEGLOSS_HALF_SPLIT_LABELS(H, Tensor<int64_t>)
#define SEGLOSS_HALF_SPLIT_CLASSES(H, Target)                                                    \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, cross_entropy, CrossEntropyOptions<H>, ShardStatistics)    \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, softmax_dice, SoftmaxOverlapOptions<H>, OverlapStatistics) \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, softmax_jaccard, SoftmaxOverlapOptions<H>,                 \
                           OverlapStatistics)                                                    \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, softmax_tversky, SoftmaxTverskyOptions<H>,                 \
                           OverlapStatistics)                                                    \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, generalized_dice, GeneralizedDiceOptions<H>,               \
                           OverlapStatistics)                                                    \
  SEGLOSS_HALF_SPLIT_PARTS(H, Target, ce_dice, CeDiceOptions<H>, SEGLOSS_HALF_CE_DICE_PARTS)
#define SEGLOSS_HALF_SPLIT_LABELS(H, Target)                                                  \
  SEGLOSS_HALF_SPLIT_PLAIN(H, Target, softmax_focal, SoftmaxFocalOptions<H>, ShardStatistics) \
  SEGLOSS_HALF_SPLIT_PARTS(H, Target, dice_focal, DiceFocalOptions<H>,                        \
                           SEGLOSS_HALF_DICE_FOCAL_PARTS)
SEGLOSS_HALF_DEFINE(float16)
SEGLOSS_HALF_DEFINE(bfloat16)
SEGLOSS_HALF_DEFINE_SPLIT(float16)
SEGLOSS_HALF_DEFINE_SPLIT(bfloat16)

}  // namespace segloss
