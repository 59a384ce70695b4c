// The registry's entries (losses/registry.hpp): input generators, the binding of each loss's
// calls into scalar problems, and one line per preset.
#include "registry.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tape.hpp"
#include "bce_dice.hpp"
#include "bce_with_logits.hpp"
#include "binary_cross_entropy.hpp"
#include "combined.hpp"
#include "composed.hpp"
#include "cross_entropy.hpp"
#include "focal.hpp"
#include "generalized_dice.hpp"
#include "half_logits.hpp"
#include "internal/half_options.hpp"
#include "lovasz.hpp"
#include "soft_dice.hpp"
#include "soft_jaccard.hpp"
#include "softmax_overlap.hpp"
#include "tversky.hpp"

namespace segloss::registry {

const char* input_kind_name(InputKind kind) {
  switch (kind) {
    case InputKind::binary_logits:
      return "binary logits + target";
    case InputKind::probabilities:
      return "probabilities + target";
    case InputKind::multiclass_labels:
      return "multiclass logits + labels";
    case InputKind::multiclass_probs:
      return "multiclass logits + probability targets";
  }
  return "?";
}

Shape default_shape() {
  return Shape{2, 3, 5, 6};
}

namespace {

// Numbers drawn in double and rounded to float, so the float and double problems of a seed
// hold the same values.
template <class T, class Dist>
Tensor<T> draw(const Shape& s, uint64_t seed, Dist dist) {
  std::mt19937_64 rng(seed);
  auto t = Tensor<T>::empty(s);
  for (auto& v : t) v = static_cast<T>(static_cast<float>(dist(rng)));
  return t;
}

template <class T>
Tensor<T> normal(const Shape& s, uint64_t seed, double scale) {
  return draw<T>(s, seed, std::normal_distribution<double>(0.0, scale));
}

template <class T>
Tensor<T> uniform(const Shape& s, uint64_t seed, double lo, double hi) {
  return draw<T>(s, seed, std::uniform_real_distribution<double>(lo, hi));
}

// The inputs of one problem. Which target a loss reads depends on its kind: `dense` (binary
// targets, probability targets) or `labels` / `labels32`.
template <class T>
struct Inputs {
  Shape shape;  // of the input x
  uint64_t seed = 0;
  Tensor<T> x;
  Tensor<T> dense;
  Tensor<int64_t> labels;
  Tensor<int32_t> labels32;

  int64_t n() const { return shape[0]; }
  int64_t c() const { return shape[1]; }
  int64_t pixels() const { return shape.numel() / (n() * c()); }
  Shape with_channels(int64_t channels) const {
    Shape s = shape;
    s.set(1, channels);
    return s;
  }
  // (C, 1, ...): one value per channel, broadcast over the spatial axes.
  Shape channel_shape() const {
    std::vector<int64_t> extents(static_cast<size_t>(shape.rank() - 1), 1);
    extents[0] = c();
    return Shape(extents.begin(), extents.end());
  }
  // A fresh tensor drawn from this problem's seed and a salt.
  Tensor<T> uniform(const Shape& s, uint64_t salt, double lo, double hi) const {
    return registry::uniform<T>(s, seed * 1000003 + salt, lo, hi);
  }
  Tensor<T> class_values(uint64_t salt, double lo, double hi) const {
    return uniform(Shape{c()}, salt, lo, hi);
  }
  // Every ignored label (-100) becomes `value`.
  void relabel_ignored(int64_t value) {
    for (auto& v : labels)
      if (v == -100) v = value;
    for (auto& v : labels32)
      if (v == -100) v = static_cast<int32_t>(value);
  }
};

// Binary targets: about 40% ones, with the plane (image 0, last channel) empty, so that the
// overlap losses' empty policies act.
template <class T>
Inputs<T> binary_inputs(const Shape& s, uint64_t seed, bool probabilities) {
  Inputs<T> in;
  in.shape = s;
  in.seed = seed;
  in.x = probabilities ? uniform<T>(s, seed, 0.05, 0.95) : normal<T>(s, seed, 2.0);
  in.dense = Tensor<T>::empty(s);
  std::mt19937_64 rng(seed + 1);
  std::bernoulli_distribution one(0.4);
  for (auto& v : in.dense) v = one(rng) ? T(1) : T(0);
  const int64_t plane = in.pixels();
  std::fill_n(in.dense.data() + (in.c() - 1) * plane, plane, T(0));
  return in;
}

// Labels in [0, C) with about 10% ignored (-100) and the last class absent from image 0; or
// probability targets, a softmax of random numbers over the class axis.
template <class T>
Inputs<T> multiclass_inputs(const Shape& s, uint64_t seed, bool probability_targets) {
  Inputs<T> in;
  in.shape = s;
  in.seed = seed;
  in.x = normal<T>(s, seed, 2.0);
  const int64_t n = in.n(), c = in.c(), hw = in.pixels();
  if (probability_targets) {
    in.dense = normal<T>(s, seed + 1, 1.5);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < hw; ++i) {
        double z = 0;
        for (int64_t k = 0; k < c; ++k) z += std::exp(double(in.dense[(b * c + k) * hw + i]));
        for (int64_t k = 0; k < c; ++k) {
          T& v = in.dense[(b * c + k) * hw + i];
          v = static_cast<T>(static_cast<float>(std::exp(double(v)) / z));
        }
      }
    return in;
  }
  std::vector<int64_t> extents{n};
  for (int a = 2; a < s.rank(); ++a) extents.push_back(s[a]);
  const Shape ls(extents.begin(), extents.end());
  in.labels = Tensor<int64_t>::empty(ls);
  std::mt19937_64 rng(seed + 1);
  std::uniform_int_distribution<int64_t> pick(0, c - 1);
  std::bernoulli_distribution ignored(0.1);
  for (int64_t i = 0; i < in.labels.numel(); ++i) {
    int64_t v = ignored(rng) ? -100 : pick(rng);
    if (c > 1 && i < hw && v == c - 1) v = 0;
    in.labels[i] = v;
  }
  in.labels32 = Tensor<int32_t>::empty(ls);
  for (int64_t i = 0; i < in.labels.numel(); ++i)
    in.labels32[i] = static_cast<int32_t>(in.labels[i]);
  return in;
}

template <class T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

template <class T>
double dot_magnitude(const Tensor<T>& a, const Tensor<T>& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += std::fabs(double(a[i]) * double(b[i]));
  return s;
}

// The target a loss of kind K reads.
enum class Target { dense, labels, labels32 };

template <Target K, class T>
const auto& target_of(const Inputs<T>& in) {
  if constexpr (K == Target::dense)
    return in.dense;
  else if constexpr (K == Target::labels)
    return in.labels;
  else
    return in.labels32;
}

struct Tolerance {
  double eps = 1e-6;
  double rtol = 1e-6;
  double float_tolerance = 5e-6;
};

// A loss's calls on (x, target, options): forward, backward, value_and_grad into a caller
// buffer, and its composed form from tape primitives (losses/composed.hpp) when `composed` is
// true (else that member is never called).
// Also the two other value_and_grad forms, for the 16-bit problems (HalfProblem): the one
// writing the value into a tensor, and the one returning a ValueAndGrad.
template <class F, class B, class V, class P, class VV, class VR>
struct Calls {
  F forward;
  B backward;
  V value_and_grad;
  P composed_form;
  bool composed;
  VV value_and_grad_value;
  VR value_and_grad_returned;
};
template <class F, class B, class V, class P, class VV, class VR>
Calls<F, B, V, P, VV, VR> calls(F f, B b, V v, P p, bool composed, VV vv, VR vr) {
  return {f, b, v, p, composed, vv, vr};
}

#define SEGLOSS_REGISTRY_FUSED(NAME)                                         \
  [](const auto& x, const auto& t, const auto& o) { return NAME(x, t, o); }, \
      [](const auto& x, const auto& t, const auto& go, const auto& o) {      \
        return NAME##_backward(x, t, go, o);                                 \
      },                                                                     \
      [](const auto& x, const auto& t, auto& g, const auto& o) {             \
        return NAME##_value_and_grad(x, t, g, o);                            \
      }
#define SEGLOSS_REGISTRY_CALLS(NAME)                                      \
  calls(                                                                  \
      SEGLOSS_REGISTRY_FUSED(NAME),                                       \
      [](auto& tape, const auto& v, const auto& t, const auto& o) {       \
        return composed::NAME(tape, v, t, o);                             \
      },                                                                  \
      true,                                                               \
      [](const auto& x, const auto& t, auto& g, auto& v, const auto& o) { \
        NAME##_value_and_grad(x, t, g, v, o);                             \
      },                                                                  \
      [](const auto& x, const auto& t, const auto& o) { return NAME##_value_and_grad(x, t, o); })

// Copies `from` into the caller's gradient buffer (allocated when undefined).
template <class T>
void copy_grad(const Tensor<T>& from, Tensor<T>& g) {
  if (!g.defined()) g = Tensor<T>::empty(from.shape());
  SEGLOSS_CHECK(g.shape() == from.shape(), "registry", "grad ", g.shape(),
                " is not shaped like the input ", from.shape());
  std::copy(from.begin(), from.end(), g.begin());
}

// The option tensors of a loss's options struct moved to a device (the registry's device
// problems): the members weight, pos_weight, class_weight and alpha where they are tensors, and
// the terms' options of the combined losses (bce, dice, ce, focal).
#define SEGLOSS_REGISTRY_HAS(M)        \
  template <class O, class = void>     \
  struct has_##M : std::false_type {}; \
  template <class O>                   \
  struct has_##M<O, std::void_t<decltype(std::declval<O&>().M)>> : std::true_type {};
SEGLOSS_REGISTRY_HAS(weight)
SEGLOSS_REGISTRY_HAS(pos_weight)
SEGLOSS_REGISTRY_HAS(class_weight)
SEGLOSS_REGISTRY_HAS(alpha)
SEGLOSS_REGISTRY_HAS(bce)
SEGLOSS_REGISTRY_HAS(dice)
SEGLOSS_REGISTRY_HAS(ce)
SEGLOSS_REGISTRY_HAS(focal)
#undef SEGLOSS_REGISTRY_HAS

template <class V>
void move_tensor(V& v, Device d) {
  if constexpr (std::is_same_v<V, Tensor<float>> || std::is_same_v<V, Tensor<double>>)
    if (v.defined()) v = v.to(d);
}

template <class O>
void options_to(O& o, Device d) {
  if constexpr (has_weight<O>::value) move_tensor(o.weight, d);
  if constexpr (has_pos_weight<O>::value) move_tensor(o.pos_weight, d);
  if constexpr (has_class_weight<O>::value) move_tensor(o.class_weight, d);
  if constexpr (has_alpha<O>::value) move_tensor(o.alpha, d);
  if constexpr (has_bce<O>::value) options_to(o.bce, d);
  if constexpr (has_dice<O>::value) options_to(o.dice, d);
  if constexpr (has_ce<O>::value) options_to(o.ce, d);
  if constexpr (has_focal<O>::value) options_to(o.focal, d);
}

// bind's problem with the loss on device d (not the CPU): the target and the option tensors are
// copied there once; each closure copies x there and the results back (Entry::make_float_on).
template <class T, class Opt, class Tgt, class C>
Problem<T> bind_on(const Inputs<T>& in, const Tgt& host_target, const Opt& host_options, const C& c,
                   Reduction reduction, Device d) {
  const Tgt target = host_target.to(d);
  Opt o = host_options;
  options_to(o, d);
  const Device cpu = Device::cpu;
  Problem<T> p;
  p.input = in.x;
  Tensor<T> r, rd;
  if (reduction != Reduction::none) {
    p.value = [=](const Tensor<T>& x) { return double(c.forward(x.to(d), target, o).to(cpu)[0]); };
    p.value_and_grad = [=](const Tensor<T>& x, Tensor<T>& g) {
      Tensor<T> gd;
      const double v = c.value_and_grad(x.to(d), target, gd, o);
      copy_grad(gd.to(cpu), g);
      return v;
    };
    p.magnitude = std::fabs(p.value(in.x));
  } else {
    const Tensor<T> y = c.forward(in.x.to(d), target, o).to(cpu);
    r = normal<T>(y.shape(), in.seed + 99, 1.0);
    rd = r.to(d);
    p.magnitude = dot_magnitude(y, r);
    p.value = [=](const Tensor<T>& x) { return dot(c.forward(x.to(d), target, o).to(cpu), r); };
    p.value_and_grad = [=](const Tensor<T>& x, Tensor<T>& g) {
      const Tensor<T> xd = x.to(d);
      copy_grad(c.backward(xd, target, rd, o).to(cpu), g);
      return dot(c.forward(xd, target, o).to(cpu), r);
    };
  }
  if (c.composed)
    p.composed = [=](const Tensor<T>& x, Tensor<T>& g) {
      ad::Tape<T> tape;
      const ad::Var<T> v = tape.leaf(x.to(d));
      const ad::Var<T> out = c.composed_form(tape, v, target, o);
      double value = 0;
      if (reduction != Reduction::none) {
        tape.backward(out);
        value = out.item();
      } else {
        tape.backward(ad::sum(out * tape.constant(rd)));
        value = dot(out.value().to(cpu), r);
      }
      copy_grad(tape.grad(v).to(cpu), g);
      return value;
    };
  return p;
}

// Binds the calls to the inputs and options: mean and sum as they are, none through a fixed
// random grad_out r (value <r, loss(x)>, gradient backward(x, r)).
template <class T, class Opt, class Tgt, class C>
Problem<T> bind(const Inputs<T>& in, const Tgt& target, const Opt& o, const C& c,
                Reduction reduction) {
  Problem<T> p;
  p.input = in.x;
  Tensor<T> r;  // none: the weights of the per-element (or per-score) losses
  if (reduction != Reduction::none) {
    p.value = [=](const Tensor<T>& x) { return double(c.forward(x, target, o)[0]); };
    p.value_and_grad = [=](const Tensor<T>& x, Tensor<T>& g) {
      return c.value_and_grad(x, target, g, o);
    };
    p.magnitude = std::fabs(p.value(in.x));
  } else {
    const Tensor<T> y = c.forward(in.x, target, o);
    r = normal<T>(y.shape(), in.seed + 99, 1.0);
    p.magnitude = dot_magnitude(y, r);
    p.value = [=](const Tensor<T>& x) { return dot(c.forward(x, target, o), r); };
    p.value_and_grad = [=](const Tensor<T>& x, Tensor<T>& g) {
      copy_grad(c.backward(x, target, r, o), g);
      return dot(c.forward(x, target, o), r);
    };
  }
  if (c.composed)
    p.composed = [=](const Tensor<T>& x, Tensor<T>& g) {
      ad::Tape<T> tape;
      const ad::Var<T> v = tape.leaf(x);
      const ad::Var<T> out = c.composed_form(tape, v, target, o);
      double value = 0;
      if (reduction != Reduction::none) {
        tape.backward(out);
        value = out.item();
      } else {
        tape.backward(ad::sum(out * tape.constant(r)));
        value = dot(out.value(), r);
      }
      copy_grad(tape.grad(v), g);
      return value;
    };
  return p;
}

// The inputs of a problem of kind `kind`.
template <class T>
Inputs<T> inputs_of(InputKind kind, const Shape& s, uint64_t seed) {
  switch (kind) {
    case InputKind::binary_logits:
      return binary_inputs<T>(s, seed, false);
    case InputKind::probabilities:
      return binary_inputs<T>(s, seed, true);
    case InputKind::multiclass_labels:
      return multiclass_inputs<T>(s, seed, false);
    case InputKind::multiclass_probs:
      return multiclass_inputs<T>(s, seed, true);
  }
  return {};
}

// t rounded to H and widened back: the float tensor of t's values representable in H.
template <class H>
Tensor<float> through(const Tensor<float>& t) {
  return t.defined() ? to_float(to_half<H>(t)) : t;
}

// A float problem's target as the 16-bit loss takes it on device d: a dense target rounded to
// H (its values are representable: bind_half rounded them), labels as they are.
template <class H, class Tgt>
auto half_target(const Tgt& t, Device d) {
  if constexpr (std::is_same_v<Tgt, Tensor<float>>)
    return to_half<H>(t).to(d);
  else
    return t.to(d);
}

// The option tensors of a float options struct rounded to H in place (the members options_to
// moves).
template <class H, class V>
void round_tensor(V& v) {
  if constexpr (std::is_same_v<V, Tensor<float>>) v = through<H>(v);
}
template <class H, class O>
void round_options(O& o) {
  if constexpr (has_weight<O>::value) round_tensor<H>(o.weight);
  if constexpr (has_pos_weight<O>::value) round_tensor<H>(o.pos_weight);
  if constexpr (has_class_weight<O>::value) round_tensor<H>(o.class_weight);
  if constexpr (has_alpha<O>::value) round_tensor<H>(o.alpha);
  if constexpr (has_bce<O>::value) round_options<H>(o.bce);
  if constexpr (has_dice<O>::value) round_options<H>(o.dice);
  if constexpr (has_ce<O>::value) round_options<H>(o.ce);
  if constexpr (has_focal<O>::value) round_options<H>(o.focal);
}

// The HalfProblem of a float problem's inputs and options, on device d: x, a dense target and
// the option tensors rounded to H first.
template <class H, class Opt, class Tgt, class C>
HalfProblem<H> bind_half(const Inputs<float>& in, const Tgt& host_target, const Opt& host_options,
                         const C& c, Reduction reduction, Device d) {
  Tgt target = host_target;
  if constexpr (std::is_same_v<Tgt, Tensor<float>>) target = through<H>(host_target);
  // The float options: the preset's, with their tensors rounded in place (not through the
  // field list of half_options.hpp, so that a field it forgets differs between the two).
  Opt rounded = host_options;
  round_options<H>(rounded);
  const auto oh = detail::convert_options<H>(rounded, [d](const auto& t, const char*) {
    return t.defined() ? to_half<H>(t).to(d) : Tensor<H>();
  });
  Opt of = rounded;
  if (d != Device::cpu) options_to(of, d);
  const auto th = half_target<H>(target, d);
  const auto tf = target.to(d);
  const Device cpu = Device::cpu;
  HalfProblem<H> p;
  p.input = to_half<H>(in.x);
  p.reduced = reduction != Reduction::none;
  // The forward's shape, from the CPU float loss (a device call costs the emulator more).
  const Shape ys = c.forward(in.x, target, rounded).shape();
  p.grad_out = to_half<H>(normal<float>(ys, in.seed + 99, 1.0));
  p.forward = [=](const Tensor<H>& x) { return c.forward(x.to(d), th, oh).to(cpu); };
  p.backward = [=](const Tensor<H>& x, const Tensor<H>& go) {
    return c.backward(x.to(d), th, go.to(d), oh).to(cpu);
  };
  p.value_and_grad = [=](const Tensor<H>& x, Tensor<H>& g) {
    Tensor<H> gd;
    const double v = c.value_and_grad(x.to(d), th, gd, oh);
    g = gd.to(cpu);
    return v;
  };
  p.value_and_grad_returned = [=](const Tensor<H>& x) {
    ValueAndGrad<H> r = c.value_and_grad_returned(x.to(d), th, oh);
    r.grad = r.grad.to(cpu);
    return r;
  };
  p.value_and_grad_value = [=](const Tensor<H>& x, Tensor<H>& g, Tensor<H>& v) {
    Tensor<H> gd, vd;
    c.value_and_grad_value(x.to(d), th, gd, vd, oh);
    g = gd.to(cpu);
    v = vd.to(cpu);
  };
  p.forward_float = [=](const Tensor<float>& x) { return c.forward(x.to(d), tf, of).to(cpu); };
  p.backward_float = [=](const Tensor<float>& x, const Tensor<float>& go) {
    return c.backward(x.to(d), tf, go.to(d), of).to(cpu);
  };
  p.value_and_grad_float = [=](const Tensor<float>& x, Tensor<float>& g) {
    Tensor<float> gd;
    const double v = c.value_and_grad(x.to(d), tf, gd, of);
    g = gd.to(cpu);
    return v;
  };
  p.value_and_grad_value_float = [=](const Tensor<float>& x, Tensor<float>& g, Tensor<float>& v) {
    Tensor<float> gd, vd;
    c.value_and_grad_value(x.to(d), tf, gd, vd, of);
    g = gd.to(cpu);
    v = vd.to(cpu);
  };
  return p;
}

class Builder {
 public:
  explicit Builder(std::vector<Entry>& out) : out_(out) {}

  // One entry of loss `loss`: inputs of `kind`, the options Opt<T> set by setup(o, inputs), the
  // target read as K, the calls c.
  template <template <class> class Opt, Target K, class C, class Setup>
  void add(const char* loss, const char* preset, const std::string& description, InputKind kind,
           Reduction reduction, const C& c, Setup setup, Tolerance tol = {}) {
    Entry e;
    e.loss = loss;
    e.preset = preset;
    e.description = description;
    e.kind = kind;
    e.eps = tol.eps;
    e.rtol = tol.rtol;
    e.float_tolerance = tol.float_tolerance;
    e.make_float_on = make<float, Opt, K>(kind, reduction, c, setup);
    e.make_double_on = make<double, Opt, K>(kind, reduction, c, setup);
    e.make_float16_on = make_half<float16, Opt, K>(kind, reduction, c, setup);
    e.make_bfloat16_on = make_half<bfloat16, Opt, K>(kind, reduction, c, setup);
    e.make_float = [f = e.make_float_on](const Shape& s, uint64_t seed) {
      return f(s, seed, Device::cpu);
    };
    e.make_double = [f = e.make_double_on](const Shape& s, uint64_t seed) {
      return f(s, seed, Device::cpu);
    };
    out_.push_back(std::move(e));
  }

 private:
  template <class T, template <class> class Opt, Target K, class C, class Setup>
  static std::function<Problem<T>(const Shape&, uint64_t, Device)> make(InputKind kind,
                                                                        Reduction reduction, C c,
                                                                        Setup setup) {
    return [=](const Shape& s, uint64_t seed, Device device) {
      Inputs<T> in;
      switch (kind) {
        case InputKind::binary_logits:
          in = binary_inputs<T>(s, seed, false);
          break;
        case InputKind::probabilities:
          in = binary_inputs<T>(s, seed, true);
          break;
        case InputKind::multiclass_labels:
          in = multiclass_inputs<T>(s, seed, false);
          break;
        case InputKind::multiclass_probs:
          in = multiclass_inputs<T>(s, seed, true);
          break;
      }
      Opt<T> o;
      set_reduction(o, reduction);
      setup(o, in);
      if (device != Device::cpu) return bind_on(in, target_of<K>(in), o, c, reduction, device);
      return bind(in, target_of<K>(in), o, c, reduction);
    };
  }

  // The float problem's inputs and options, rounded to H (bind_half).
  template <class H, template <class> class Opt, Target K, class C, class Setup>
  static std::function<HalfProblem<H>(const Shape&, uint64_t, Device)> make_half(
      InputKind kind, Reduction reduction, C c, Setup setup) {
    return [=](const Shape& s, uint64_t seed, Device device) {
      Inputs<float> in = inputs_of<float>(kind, s, seed);
      Opt<float> o;
      set_reduction(o, reduction);
      setup(o, in);
      in.x = through<H>(in.x);
      return bind_half<H>(in, target_of<K>(in), o, c, reduction, device);
    };
  }

  template <class O>
  static void set_reduction(O& o, Reduction r) {
    if constexpr (std::is_same_v<O, BceDiceOptions<float>> ||
                  std::is_same_v<O, BceDiceOptions<double>>) {
      o.bce.reduction = o.dice.reduction = r;
    } else if constexpr (std::is_same_v<O, CeDiceOptions<float>> ||
                         std::is_same_v<O, CeDiceOptions<double>>) {
      o.ce.reduction = o.dice.reduction = r;
    } else if constexpr (std::is_same_v<O, DiceFocalOptions<float>> ||
                         std::is_same_v<O, DiceFocalOptions<double>>) {
      o.dice.reduction = o.focal.reduction = r;
    } else {
      o.reduction = r;
    }
  }

  std::vector<Entry>& out_;
};

constexpr auto kNothing = [](auto&, auto&) {};
constexpr Reduction kMean = Reduction::mean, kSum = Reduction::sum, kNone = Reduction::none;
constexpr InputKind kLogits = InputKind::binary_logits, kProbs = InputKind::probabilities,
                    kLabels = InputKind::multiclass_labels,
                    kProbTargets = InputKind::multiclass_probs;

// The presets default (mean), sum and none of a loss; `what` describes the default's options.
template <template <class> class Opt, Target K, class C>
void add_reductions(Builder& b, const char* loss, const char* what, InputKind kind, const C& c) {
  b.add<Opt, K>(loss, "default", std::string(what) + ", reduction mean", kind, kMean, c, kNothing);
  b.add<Opt, K>(loss, "sum", std::string(what) + ", reduction sum", kind, kSum, c, kNothing);
  b.add<Opt, K>(loss, "none", std::string(what) + ", reduction none (<r, loss>)", kind, kNone, c,
                kNothing);
}

// A per-pixel weight (N, 1, spatial...) in [0.5, 2].
template <class T>
Tensor<T> pixel_weight(const Inputs<T>& in, double lo = 0.5, double hi = 2.0) {
  return in.uniform(in.with_channels(1), 11, lo, hi);
}

void add_binary_ce(Builder& b) {
  const auto bce = SEGLOSS_REGISTRY_CALLS(bce_with_logits);
  constexpr Target dense = Target::dense;
  add_reductions<BceWithLogitsOptions, dense>(b, "bce_with_logits", "no weight", kLogits, bce);
  b.add<BceWithLogitsOptions, dense>("bce_with_logits", "weight", "per-pixel weight (N,1,H,W)",
                                     kLogits, kMean, bce,
                                     [](auto& o, auto& in) { o.weight = pixel_weight(in); });
  b.add<BceWithLogitsOptions, dense>(
      "bce_with_logits", "weight_channel", "per-channel weight (C,1,...), sum", kLogits, kSum, bce,
      [](auto& o, auto& in) { o.weight = in.uniform(in.channel_shape(), 12, 0.5, 2.0); });
  b.add<BceWithLogitsOptions, dense>(
      "bce_with_logits", "pos_weight", "pos_weight (C)", kLogits, kMean, bce,
      [](auto& o, auto& in) { o.pos_weight = in.class_values(13, 0.5, 3.0); });
  b.add<BceWithLogitsOptions, dense>("bce_with_logits", "weight_sum",
                                     "weight + pos_weight, mean over the weight sum", kLogits,
                                     kMean, bce, [](auto& o, auto& in) {
                                       o.weight = pixel_weight(in);
                                       o.pos_weight = in.class_values(13, 0.5, 3.0);
                                       o.mean_over = BceMeanOver::weight_sum;
                                     });
  b.add<BceWithLogitsOptions, dense>("bce_with_logits", "smoothing", "label_smoothing 0.1", kLogits,
                                     kMean, bce, [](auto& o, auto&) { o.label_smoothing = 0.1; });
  b.add<BceWithLogitsOptions, dense>("bce_with_logits", "none_weighted",
                                     "reduction none, weight, pos_weight, smoothing 0.2", kLogits,
                                     kNone, bce, [](auto& o, auto& in) {
                                       o.weight = pixel_weight(in);
                                       o.pos_weight = in.class_values(13, 0.5, 3.0);
                                       o.label_smoothing = 0.2;
                                     });

  const auto bcep = SEGLOSS_REGISTRY_CALLS(binary_cross_entropy);
  add_reductions<BinaryCrossEntropyOptions, dense>(b, "binary_cross_entropy",
                                                   "probabilities in (0.05, 0.95)", kProbs, bcep);
  b.add<BinaryCrossEntropyOptions, dense>("binary_cross_entropy", "weight",
                                          "per-pixel weight (N,1,H,W)", kProbs, kMean, bcep,
                                          [](auto& o, auto& in) { o.weight = pixel_weight(in); });
}

void add_sigmoid_focal(Builder& b) {
  const auto f = SEGLOSS_REGISTRY_CALLS(sigmoid_focal);
  constexpr Target dense = Target::dense;
  add_reductions<SigmoidFocalOptions, dense>(b, "sigmoid_focal", "alpha 0.25, gamma 2", kLogits, f);
  b.add<SigmoidFocalOptions, dense>("sigmoid_focal", "no_alpha", "alpha -1 (no alpha factor)",
                                    kLogits, kMean, f, [](auto& o, auto&) { o.alpha = -1; });
  b.add<SigmoidFocalOptions, dense>("sigmoid_focal", "gamma0", "gamma 0 (weighted BCE)", kLogits,
                                    kMean, f, [](auto& o, auto&) { o.gamma = 0; });
  b.add<SigmoidFocalOptions, dense>("sigmoid_focal", "gamma1", "gamma 1", kLogits, kMean, f,
                                    [](auto& o, auto&) { o.gamma = 1; });
  b.add<SigmoidFocalOptions, dense>("sigmoid_focal", "gamma1.5", "gamma 1.5 (the pow path)",
                                    kLogits, kMean, f, [](auto& o, auto&) { o.gamma = 1.5; });
  b.add<SigmoidFocalOptions, dense>("sigmoid_focal", "weight", "per-pixel weight, alpha 0.6",
                                    kLogits, kMean, f, [](auto& o, auto& in) {
                                      o.weight = pixel_weight(in);
                                      o.alpha = 0.6;
                                    });
}

// The binary overlap losses share their options (overlap.hpp).
template <template <class> class Opt, class C>
void add_overlap_common(Builder& b, const char* loss, const C& c, InputKind kind_default) {
  constexpr Target dense = Target::dense;
  add_reductions<Opt, dense>(b, loss, "per_image, smooth 1e-5", kind_default, c);
  b.add<Opt, dense>(loss, "batch", "per_image false", kind_default, kMean, c,
                    [](auto& o, auto&) { o.per_image = false; });
  b.add<Opt, dense>(loss, "probabilities", "activation none (probability input)", kProbs, kMean, c,
                    [](auto& o, auto&) { o.activation = Activation::none; });
  b.add<Opt, dense>(loss, "weight", "pixel weight, weighting squared", kind_default, kMean, c,
                    [](auto& o, auto& in) { o.weight = pixel_weight(in); });
  b.add<Opt, dense>(loss, "class_weight", "class_weight (C), no background", kind_default, kMean, c,
                    [](auto& o, auto& in) {
                      o.class_weight = in.class_values(14, 0.5, 2.0);
                      o.include_background = false;
                    });
  b.add<Opt, dense>(loss, "log", "log form (-log of the mean score)", kind_default, kMean, c,
                    [](auto& o, auto&) { o.log = true; });
  b.add<Opt, dense>(loss, "log_sum", "log form, sum (-sum log S_j)", kind_default, kSum, c,
                    [](auto& o, auto&) {
                      o.log = true;
                      o.smooth_nr = o.smooth_dr = 1.0;
                    });
  b.add<Opt, dense>(loss, "clamp", "clamp form (1 - clamp(mean score, 0, 1))", kind_default, kMean,
                    c, [](auto& o, auto&) { o.clamp = true; });
  b.add<Opt, dense>(loss, "focal", "gamma 2 per score", kind_default, kMean, c,
                    [](auto& o, auto&) { o.gamma = 2; });
  b.add<Opt, dense>(loss, "empty_one", "empty one (an empty plane scores 1)", kind_default, kMean,
                    c, [](auto& o, auto&) { o.empty = EmptyPolicy::one; });
  b.add<Opt, dense>(loss, "empty_zero", "empty zero", kind_default, kMean, c,
                    [](auto& o, auto&) { o.empty = EmptyPolicy::zero; });
  b.add<Opt, dense>(loss, "empty_skip", "empty skip", kind_default, kMean, c,
                    [](auto& o, auto&) { o.empty = EmptyPolicy::skip; });
}

void add_overlap(Builder& b) {
  constexpr Target dense = Target::dense;
  const auto dice = SEGLOSS_REGISTRY_CALLS(soft_dice);
  add_overlap_common<SoftDiceOptions>(b, "soft_dice", dice, kLogits);
  b.add<SoftDiceOptions, dense>("soft_dice", "squared", "squared sums (p^2, t^2)", kLogits, kMean,
                                dice, [](auto& o, auto&) { o.squared = true; });
  b.add<SoftDiceOptions, dense>("soft_dice", "batch_squared", "per_image false, squared, sum",
                                kLogits, kSum, dice, [](auto& o, auto&) {
                                  o.per_image = false;
                                  o.squared = true;
                                });
  b.add<SoftDiceOptions, dense>("soft_dice", "weighted_squared",
                                "pixel weight, weighting squared, squared sums", kLogits, kMean,
                                dice, [](auto& o, auto& in) {
                                  o.weight = pixel_weight(in);
                                  o.squared = true;
                                });
  b.add<SoftDiceOptions, dense>("soft_dice", "on_inputs", "pixel weight, weighting on_inputs",
                                kLogits, kMean, dice, [](auto& o, auto& in) {
                                  o.weight = pixel_weight(in);
                                  o.weighting = OverlapWeighting::on_inputs;
                                });
  b.add<SoftDiceOptions, dense>("soft_dice", "on_inputs_squared",
                                "pixel weight, weighting on_inputs, squared sums", kLogits, kMean,
                                dice, [](auto& o, auto& in) {
                                  o.weight = pixel_weight(in);
                                  o.weighting = OverlapWeighting::on_inputs;
                                  o.squared = true;
                                });
  b.add<SoftDiceOptions, dense>("soft_dice", "albu", "albu: smooth 2/1, on_inputs, clamp", kLogits,
                                kMean, dice, [](auto& o, auto& in) {
                                  o.smooth_nr = 2;
                                  o.smooth_dr = 1;
                                  o.weight = pixel_weight(in, 0.5, 1.0);
                                  o.weighting = OverlapWeighting::on_inputs;
                                  o.clamp = true;
                                });

  const auto jac = SEGLOSS_REGISTRY_CALLS(soft_jaccard);
  add_overlap_common<SoftJaccardOptions>(b, "soft_jaccard", jac, kLogits);
  b.add<SoftJaccardOptions, dense>("soft_jaccard", "squared", "squared sums", kLogits, kMean, jac,
                                   [](auto& o, auto&) { o.squared = true; });

  const auto tv = SEGLOSS_REGISTRY_CALLS(tversky);
  add_overlap_common<TverskyOptions>(b, "tversky", tv, kLogits);
  b.add<TverskyOptions, dense>("tversky", "alpha0.3_beta0.7", "alpha 0.3, beta 0.7", kLogits, kMean,
                               tv, [](auto& o, auto&) {
                                 o.alpha = 0.3;
                                 o.beta = 0.7;
                               });
  b.add<TverskyOptions, dense>("tversky", "focal_tversky", "alpha 0.7, beta 0.3, gamma 0.75",
                               kLogits, kMean, tv, [](auto& o, auto&) {
                                 o.alpha = 0.7;
                                 o.beta = 0.3;
                                 o.gamma = 0.75;
                               });
  b.add<TverskyOptions, dense>("tversky", "focal_batch", "alpha 0.3, beta 0.7, gamma 4/3, batch",
                               kLogits, kSum, tv, [](auto& o, auto&) {
                                 o.alpha = 0.3;
                                 o.beta = 0.7;
                                 o.gamma = 4.0 / 3.0;
                                 o.per_image = false;
                               });
}

void add_bce_dice(Builder& b) {
  constexpr Target dense = Target::dense;
  const auto bd = SEGLOSS_REGISTRY_CALLS(bce_dice);
  b.add<BceDiceOptions, dense>("bce_dice", "default", "BCE + Dice, both mean", kLogits, kMean, bd,
                               kNothing);
  b.add<BceDiceOptions, dense>("bce_dice", "sum", "both reductions sum", kLogits, kSum, bd,
                               kNothing);
  b.add<BceDiceOptions, dense>("bce_dice", "weights", "bce_weight 0.3, dice_weight 1.7, batch",
                               kLogits, kMean, bd, [](auto& o, auto&) {
                                 o.bce_weight = 0.3;
                                 o.dice_weight = 1.7;
                                 o.dice.per_image = false;
                               });
  b.add<BceDiceOptions, dense>("bce_dice", "carvana",
                               "pixel weight in both (weight_sum mean, squared), smooth 2/1",
                               kLogits, kMean, bd, [](auto& o, auto& in) {
                                 o.bce.weight = o.dice.weight = pixel_weight(in);
                                 o.bce.mean_over = BceMeanOver::weight_sum;
                                 o.dice.smooth_nr = 2;
                                 o.dice.smooth_dr = 1;
                               });
  b.add<BceDiceOptions, dense>("bce_dice", "log_dice", "dice log form, pos_weight", kLogits, kMean,
                               bd, [](auto& o, auto& in) {
                                 o.dice.log = true;
                                 o.bce.pos_weight = in.class_values(13, 0.5, 3.0);
                               });
  b.add<BceDiceOptions, dense>("bce_dice", "albu", "dice clamp, on_inputs, smoothing 0.1", kLogits,
                               kMean, bd, [](auto& o, auto& in) {
                                 o.dice.clamp = true;
                                 o.dice.weight = pixel_weight(in, 0.5, 1.0);
                                 o.dice.weighting = OverlapWeighting::on_inputs;
                                 o.bce.label_smoothing = 0.1;
                               });
}

template <Target K>
void add_cross_entropy_labels(Builder& b, const char* suffix_default) {
  const auto ce = SEGLOSS_REGISTRY_CALLS(cross_entropy);
  const bool i32 = K == Target::labels32;
  if (i32) {
    b.add<CrossEntropyOptions, K>("cross_entropy", suffix_default,
                                  "int32 labels, weight, smoothing 0.1", kLabels, kMean, ce,
                                  [](auto& o, auto& in) {
                                    o.weight = in.class_values(15, 0.5, 2.0);
                                    o.label_smoothing = 0.1;
                                  });
    return;
  }
  add_reductions<CrossEntropyOptions, K>(b, "cross_entropy", "labels, 10% ignored", kLabels, ce);
  b.add<CrossEntropyOptions, K>(
      "cross_entropy", "weight", "class weight (C), weighted mean", kLabels, kMean, ce,
      [](auto& o, auto& in) { o.weight = in.class_values(15, 0.5, 2.0); });
  b.add<CrossEntropyOptions, K>("cross_entropy", "ignore_index", "ignore_index 255", kLabels, kMean,
                                ce, [](auto& o, auto& in) {
                                  o.ignore_index = 255;
                                  in.relabel_ignored(255);
                                });
  b.add<CrossEntropyOptions, K>("cross_entropy", "smoothing", "label_smoothing 0.1", kLabels, kMean,
                                ce, [](auto& o, auto&) { o.label_smoothing = 0.1; });
  b.add<CrossEntropyOptions, K>("cross_entropy", "weight_smoothing",
                                "class weight, label_smoothing 0.2, none", kLabels, kNone, ce,
                                [](auto& o, auto& in) {
                                  o.weight = in.class_values(15, 0.5, 2.0);
                                  o.label_smoothing = 0.2;
                                });
  b.add<CrossEntropyOptions, K>("cross_entropy", "pytorch_fcn",
                                "pytorch_fcn(): negative labels ignored, mean over valid pixels",
                                kLabels, kMean, ce, [](auto& o, auto& in) {
                                  const auto w = in.class_values(15, 0.5, 2.0);
                                  o = std::decay_t<decltype(o)>::pytorch_fcn();
                                  o.reduction = Reduction::mean;
                                  o.weight = w;
                                  in.relabel_ignored(-1);
                                });
}

void add_cross_entropy(Builder& b) {
  add_cross_entropy_labels<Target::labels>(b, "default");
  add_cross_entropy_labels<Target::labels32>(b, "int32");
  constexpr Target dense = Target::dense;
  const auto ce = SEGLOSS_REGISTRY_CALLS(cross_entropy);
  b.add<CrossEntropyOptions, dense>("cross_entropy", "prob_targets", "probability targets, mean",
                                    kProbTargets, kMean, ce, kNothing);
  b.add<CrossEntropyOptions, dense>("cross_entropy", "prob_targets_sum", "probability targets, sum",
                                    kProbTargets, kSum, ce, kNothing);
  b.add<CrossEntropyOptions, dense>("cross_entropy", "prob_targets_weight_smoothing",
                                    "probability targets, class weight, label_smoothing 0.1, none",
                                    kProbTargets, kNone, ce, [](auto& o, auto& in) {
                                      o.weight = in.class_values(15, 0.5, 2.0);
                                      o.label_smoothing = 0.1;
                                    });
}

void add_softmax_focal(Builder& b) {
  const auto f = SEGLOSS_REGISTRY_CALLS(softmax_focal);
  constexpr Target K = Target::labels;
  add_reductions<SoftmaxFocalOptions, K>(b, "softmax_focal", "gamma 2, 10% ignored", kLabels, f);
  b.add<SoftmaxFocalOptions, K>(
      "softmax_focal", "alpha", "alpha (C)", kLabels, kMean, f,
      [](auto& o, auto& in) { o.alpha = in.class_values(16, 0.25, 1.0); });
  b.add<SoftmaxFocalOptions, K>("softmax_focal", "gamma0", "gamma 0 (cross-entropy)", kLabels,
                                kMean, f, [](auto& o, auto&) { o.gamma = 0; });
  b.add<SoftmaxFocalOptions, K>("softmax_focal", "gamma0.5", "gamma 0.5 (the pow path)", kLabels,
                                kMean, f, [](auto& o, auto&) { o.gamma = 0.5; });
  b.add<SoftmaxFocalOptions, K>("softmax_focal", "ignore_index", "ignore_index 255", kLabels, kMean,
                                f, [](auto& o, auto& in) {
                                  o.ignore_index = 255;
                                  in.relabel_ignored(255);
                                });
}

template <template <class> class Opt, class C>
void add_softmax_overlap_common(Builder& b, const char* loss, const C& c, bool squared = true) {
  constexpr Target K = Target::labels;
  add_reductions<Opt, K>(b, loss, "labels, 10% ignored, per_image", kLabels, c);
  b.add<Opt, K>(loss, "batch", "per_image false", kLabels, kMean, c,
                [](auto& o, auto&) { o.per_image = false; });
  if (squared)  // Tversky refuses squared sums (FP = P - I holds for plain sums)
    b.add<Opt, K>(loss, "squared", "squared sums", kLabels, kMean, c,
                  [](auto& o, auto&) { o.squared = true; });
  b.add<Opt, K>(loss, "class_weight", "class_weight (C), no background", kLabels, kMean, c,
                [](auto& o, auto& in) {
                  o.class_weight = in.class_values(17, 0.5, 2.0);
                  o.include_background = false;
                });
  b.add<Opt, K>(loss, "log", "log form", kLabels, kMean, c, [](auto& o, auto&) { o.log = true; });
  b.add<Opt, K>(loss, "clamp", "clamp form", kLabels, kMean, c,
                [](auto& o, auto&) { o.clamp = true; });
  b.add<Opt, K>(loss, "focal", "gamma 2 per score", kLabels, kMean, c,
                [](auto& o, auto&) { o.gamma = 2; });
  b.add<Opt, K>(loss, "empty_skip", "empty skip (absent class)", kLabels, kMean, c,
                [](auto& o, auto&) { o.empty = EmptyPolicy::skip; });
  b.add<Opt, K>(loss, "empty_one", "empty one", kLabels, kMean, c,
                [](auto& o, auto&) { o.empty = EmptyPolicy::one; });
  b.add<Opt, K>(loss, "empty_zero", "empty zero", kLabels, kMean, c,
                [](auto& o, auto&) { o.empty = EmptyPolicy::zero; });
  b.add<Opt, K>(loss, "ignore_index", "ignore_index 255", kLabels, kMean, c, [](auto& o, auto& in) {
    o.ignore_index = 255;
    in.relabel_ignored(255);
  });
  b.add<Opt, Target::labels32>(loss, "int32", "int32 labels, sum", kLabels, kSum, c, kNothing);
  b.add<Opt, Target::dense>(loss, "prob_targets", "probability targets", kProbTargets, kMean, c,
                            kNothing);
  b.add<Opt, Target::dense>(loss, "prob_targets_batch", "probability targets, batch, none",
                            kProbTargets, kNone, c, [](auto& o, auto&) { o.per_image = false; });
}

void add_softmax_overlap(Builder& b) {
  add_softmax_overlap_common<SoftmaxOverlapOptions>(b, "softmax_dice",
                                                    SEGLOSS_REGISTRY_CALLS(softmax_dice));
  add_softmax_overlap_common<SoftmaxOverlapOptions>(b, "softmax_jaccard",
                                                    SEGLOSS_REGISTRY_CALLS(softmax_jaccard));
  const auto tv = SEGLOSS_REGISTRY_CALLS(softmax_tversky);
  add_softmax_overlap_common<SoftmaxTverskyOptions>(b, "softmax_tversky", tv, false);
  b.add<SoftmaxTverskyOptions, Target::labels>("softmax_tversky", "alpha0.3_beta0.7",
                                               "alpha 0.3, beta 0.7, gamma 0.75", kLabels, kMean,
                                               tv, [](auto& o, auto&) {
                                                 o.alpha = 0.3;
                                                 o.beta = 0.7;
                                                 o.gamma = 0.75;
                                               });

  const auto gd = SEGLOSS_REGISTRY_CALLS(generalized_dice);
  constexpr Target K = Target::labels;
  add_reductions<GeneralizedDiceOptions, K>(b, "generalized_dice", "w = 1/T^2, per_image, labels",
                                            kLabels, gd);
  b.add<GeneralizedDiceOptions, K>(
      "generalized_dice", "simple", "w = 1/T", kLabels, kMean, gd,
      [](auto& o, auto&) { o.w_type = GeneralizedDiceWeight::simple; });
  b.add<GeneralizedDiceOptions, K>("generalized_dice", "uniform", "w = 1, batch", kLabels, kMean,
                                   gd, [](auto& o, auto&) {
                                     o.w_type = GeneralizedDiceWeight::uniform;
                                     o.per_image = false;
                                   });
  b.add<GeneralizedDiceOptions, K>("generalized_dice", "batch", "per_image false", kLabels, kMean,
                                   gd, [](auto& o, auto&) { o.per_image = false; });
  b.add<GeneralizedDiceOptions, K>("generalized_dice", "no_background", "include_background false",
                                   kLabels, kMean, gd,
                                   [](auto& o, auto&) { o.include_background = false; });
  b.add<GeneralizedDiceOptions, Target::dense>(
      "generalized_dice", "prob_targets", "probability targets", kProbTargets, kMean, gd, kNothing);
}

void add_combined(Builder& b) {
  const auto cd = SEGLOSS_REGISTRY_CALLS(ce_dice);
  constexpr Target K = Target::labels;
  b.add<CeDiceOptions, K>("ce_dice", "default", "CE + softmax Dice, labels, mean", kLabels, kMean,
                          cd, kNothing);
  b.add<CeDiceOptions, K>("ce_dice", "sum", "both reductions sum", kLabels, kSum, cd, kNothing);
  b.add<CeDiceOptions, K>("ce_dice", "weights",
                          "ce_weight 0.4, dice_weight 1.5, CE weight and smoothing, batch Dice",
                          kLabels, kMean, cd, [](auto& o, auto& in) {
                            o.ce_weight = 0.4;
                            o.dice_weight = 1.5;
                            o.ce.weight = in.class_values(15, 0.5, 2.0);
                            o.ce.label_smoothing = 0.1;
                            o.dice.per_image = false;
                          });
  b.add<CeDiceOptions, Target::dense>("ce_dice", "prob_targets", "probability targets",
                                      kProbTargets, kMean, cd, kNothing);
  const auto df = SEGLOSS_REGISTRY_CALLS(dice_focal);
  b.add<DiceFocalOptions, K>("dice_focal", "default", "softmax Dice + focal (gamma 2), mean",
                             kLabels, kMean, df, kNothing);
  b.add<DiceFocalOptions, K>("dice_focal", "sum", "both reductions sum", kLabels, kSum, df,
                             kNothing);
  b.add<DiceFocalOptions, K>("dice_focal", "weights",
                             "dice_weight 0.7, focal_weight 2, alpha, squared Dice", kLabels, kMean,
                             df, [](auto& o, auto& in) {
                               o.dice_weight = 0.7;
                               o.focal_weight = 2;
                               o.focal.alpha = in.class_values(16, 0.25, 1.0);
                               o.dice.squared = true;
                             });
}

void add_lovasz(Builder& b) {
  const auto ls = SEGLOSS_REGISTRY_CALLS(lovasz_softmax);
  constexpr Target K = Target::labels;
  b.add<LovaszSoftmaxOptions, K>("lovasz_softmax", "default", "batch problem, present classes",
                                 kLabels, kMean, ls, kNothing);
  b.add<LovaszSoftmaxOptions, K>("lovasz_softmax", "per_image", "per_image, sum", kLabels, kSum, ls,
                                 [](auto& o, auto&) { o.per_image = true; });
  b.add<LovaszSoftmaxOptions, K>("lovasz_softmax", "none", "per_image, reduction none", kLabels,
                                 kNone, ls, [](auto& o, auto&) { o.per_image = true; });
  b.add<LovaszSoftmaxOptions, K>("lovasz_softmax", "all", "classes all", kLabels, kMean, ls,
                                 [](auto& o, auto&) { o.classes = LovaszClasses::all; });
  b.add<LovaszSoftmaxOptions, K>("lovasz_softmax", "class_list", "class_list {C-1, 0}, per_image",
                                 kLabels, kMean, ls, [](auto& o, auto& in) {
                                   o.class_list = {in.c() - 1, 0};
                                   o.per_image = true;
                                 });
  b.add<LovaszSoftmaxOptions, Target::labels32>("lovasz_softmax", "ignore_index",
                                                "ignore_index 255, int32 labels", kLabels, kMean,
                                                ls, [](auto& o, auto& in) {
                                                  o.ignore_index = 255;
                                                  in.relabel_ignored(255);
                                                });

  const auto lh = SEGLOSS_REGISTRY_CALLS(lovasz_hinge);
  constexpr Target dense = Target::dense;
  add_reductions<LovaszHingeOptions, dense>(b, "lovasz_hinge", "per_image", kLogits, lh);
  b.add<LovaszHingeOptions, dense>("lovasz_hinge", "batch", "per_image false", kLogits, kMean, lh,
                                   [](auto& o, auto&) { o.per_image = false; });
  b.add<LovaszHingeOptions, dense>("lovasz_hinge", "ignore", "ignore 255 (every 7th pixel)",
                                   kLogits, kMean, lh, [](auto& o, auto& in) {
                                     o.ignore = 255.0;
                                     for (int64_t i = 0; i < in.dense.numel(); i += 7)
                                       in.dense[i] = 255;
                                   });
}

std::vector<Entry> build() {
  std::vector<Entry> out;
  Builder b(out);
  add_binary_ce(b);
  add_sigmoid_focal(b);
  add_overlap(b);
  add_bce_dice(b);
  add_cross_entropy(b);
  add_softmax_focal(b);
  add_softmax_overlap(b);
  add_combined(b);
  add_lovasz(b);
  return out;
}

}  // namespace

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = build();
  return all;
}

std::vector<std::string> losses() {
  std::vector<std::string> names;
  for (const Entry& e : entries())
    if (std::find(names.begin(), names.end(), e.loss) == names.end()) names.push_back(e.loss);
  return names;
}

std::vector<const Entry*> find(const std::string& loss) {
  std::vector<const Entry*> r;
  for (const Entry& e : entries())
    if (e.loss == loss) r.push_back(&e);
  return r;
}

}  // namespace segloss::registry
