// float16 / bfloat16 logits (losses/half_logits.hpp) on the CPU: every entry point of
// bce_with_logits, soft_dice, bce_dice and cross_entropy against the float loss on the widened
// inputs (the value exactly, the gradient and the per-element results rounded once, checked both
// bit for bit against the conversion and as the nearest representable value by comparing with
// the neighbouring 16-bit values), over the options that change the math, every reduction, 1 to
// 3 spatial axes, N = 1 and a 1x1 image; |x| = 1e4, Inf logits, gradient overflow, in-place
// gradients, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

template <class H>
const char* type_name() {
  return std::is_same_v<H, float16> ? "float16" : "bfloat16";
}

// A 16-bit tensor of values drawn in float (randn * scale), and its exact float twin.
template <class H>
Tensor<H> half_randn(const Shape& s, uint64_t seed, double scale) {
  return to_half<H>(testing::randn<float>(s, seed, scale));
}
template <class H>
Tensor<H> half_mask(const Shape& s, uint64_t seed) {
  return to_half<H>(testing::mask<float>(s, seed));
}

// The neighbours of a finite 16-bit value (one step towards -Inf and +Inf in value).
template <class H>
void neighbours(H h, float& below, float& above) {
  const uint16_t mag = h.bits & 0x7fff, sign = h.bits & 0x8000;
  auto value = [&](uint16_t m, uint16_t s) { return static_cast<float>(H::from_bits(s | m)); };
  const float up = value(static_cast<uint16_t>(mag + 1), sign);  // one step away from zero
  const float down = mag == 0 ? value(1, static_cast<uint16_t>(sign ^ 0x8000))
                              : value(static_cast<uint16_t>(mag - 1), sign);
  below = sign ? up : down;
  above = sign ? down : up;
}

// got is want (a float result) rounded to H: bit for bit the conversion, and independently the
// nearest representable value (no neighbour is closer), Inf beyond the range, NaN for NaN.
template <class H>
void check_rounded(const Tensor<H>& got, const Tensor<float>& want, const char* what) {
  INFO(what, " (", type_name<H>(), ")");
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  int64_t bad_bits = 0, not_nearest = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float w = want[i];
    const H g = got[i];
    if (g.bits != H(w).bits) ++bad_bits;
    const float gf = static_cast<float>(g);
    if (std::isnan(w)) {
      if (!std::isnan(gf)) ++not_nearest;
      continue;
    }
    if (std::isinf(gf)) {  // only for a float beyond the largest finite value by half a step
      const float top =
          static_cast<float>(H::from_bits(std::is_same_v<H, float16> ? 0x7bff : 0x7f7f));
      if (!(std::fabs(w) > top) || std::signbit(gf) != std::signbit(w)) ++not_nearest;
      continue;
    }
    float below, above;
    neighbours(g, below, above);
    const double d = std::fabs(static_cast<double>(gf) - w);
    if (d > std::fabs(static_cast<double>(below) - w) ||
        (std::isfinite(above) && d > std::fabs(static_cast<double>(above) - w)))
      ++not_nearest;
  }
  CHECK(bad_bits == 0);
  CHECK(not_nearest == 0);
}

template <class H>
void check_value_tensor(const Tensor<H>& got, double want) {
  REQUIRE(got.numel() == 1);
  CHECK(got[0].bits == H(static_cast<float>(want)).bits);
}

// Every entry point of a loss against its float twin. `Loss` provides forward, backward and the
// value_and_grad forms on any tensor type; x16 and t16 are the 16-bit inputs, x and t their float
// widenings (the target may be a label map, the same in both).
template <class H, class Loss, class Target16, class TargetF, class O16, class OF>
void check_against_float(const Loss& loss, const Tensor<H>& x16, const Target16& t16,
                         const Tensor<float>& x, const TargetF& t, const O16& o16, const OF& o,
                         const Shape& value_shape, bool scalar) {
  check_rounded(loss.forward(x16, t16, o16), loss.forward(x, t, o), "forward");
  const Tensor<float> go = scalar ? Tensor<float>::full(Shape{}, 0.75f)
                                  : testing::uniform<float>(value_shape, 99, 0.5, 2.0);
  const Tensor<H> go16 = to_half<H>(go);
  check_rounded(loss.backward(x16, t16, go16, o16), loss.backward(x, t, to_float(go16), o),
                "backward");
  if (!scalar) return;
  const ValueAndGrad<float> ref = loss.value_and_grad(x, t, o);
  const ValueAndGrad<H> vg = loss.value_and_grad(x16, t16, o16);
  CHECK(vg.value == ref.value);  // the float loss's double, exactly
  check_rounded(vg.grad, ref.grad, "value_and_grad");
  Tensor<H> grad = Tensor<H>::empty(x16.shape());
  CHECK(loss.value_and_grad_into(x16, t16, grad, o16) == ref.value);
  check_rounded(grad, ref.grad, "value_and_grad into a buffer");
  Tensor<H> grad2, value;
  loss.value_and_grad_value(x16, t16, grad2, value, o16);
  CHECK(value.shape() == Shape{});
  check_value_tensor(value, ref.value);
  check_rounded(grad2, ref.grad, "value_and_grad with a value tensor");
  // In place: the gradient written over a copy of the logits.
  Tensor<H> in_place = x16.clone();
  loss.value_and_grad_into(in_place, t16, in_place, o16);
  check_rounded(in_place, ref.grad, "value_and_grad in place");
}

#define SEGLOSS_LOSS_ADAPTER(Name, fn)                                                \
  struct Name {                                                                       \
    template <class X, class Z, class O>                                              \
    auto forward(const X& x, const Z& z, const O& o) const {                          \
      return fn(x, z, o);                                                             \
    }                                                                                 \
    template <class X, class Z, class O>                                              \
    auto backward(const X& x, const Z& z, const X& go, const O& o) const {            \
      return fn##_backward(x, z, go, o);                                              \
    }                                                                                 \
    template <class X, class Z, class O>                                              \
    auto value_and_grad(const X& x, const Z& z, const O& o) const {                   \
      return fn##_value_and_grad(x, z, o);                                            \
    }                                                                                 \
    template <class X, class Z, class O>                                              \
    double value_and_grad_into(const X& x, const Z& z, X& g, const O& o) const {      \
      return fn##_value_and_grad(x, z, g, o);                                         \
    }                                                                                 \
    template <class X, class Z, class O>                                              \
    void value_and_grad_value(const X& x, const Z& z, X& g, X& v, const O& o) const { \
      fn##_value_and_grad(x, z, g, v, o);                                             \
    }                                                                                 \
  };
SEGLOSS_LOSS_ADAPTER(Bce, bce_with_logits)
SEGLOSS_LOSS_ADAPTER(Dice, soft_dice)
SEGLOSS_LOSS_ADAPTER(BceDice, bce_dice)
SEGLOSS_LOSS_ADAPTER(CrossEntropy, cross_entropy)
#undef SEGLOSS_LOSS_ADAPTER

const std::vector<Shape> kShapes = {Shape{2, 3, 5, 7}, Shape{1, 2, 9}, Shape{2, 2, 3, 4, 5},
                                    Shape{1, 1, 1, 1}};

template <class H>
void bce_cases() {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const auto x16 = half_randn<H>(s, 1, 3.0);
    const auto t16 = half_mask<H>(s, 2);
    const auto x = to_float(x16), t = to_float(t16);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      CAPTURE(std::string(reduction_name(r)));
      BceWithLogitsOptions<H> o16;
      o16.reduction = r;
      Shape per_channel{s[1]};  // (C, 1, ...): one weight per channel
      for (int k = 2; k < s.rank(); ++k) per_channel.push_back(1);
      o16.weight = to_half<H>(testing::uniform<float>(per_channel, 3, 0.2, 3.0));
      o16.pos_weight = to_half<H>(testing::uniform<float>(Shape{s[1]}, 4, 0.5, 2.0));
      o16.label_smoothing = 0.1;
      BceWithLogitsOptions<float> o;
      o.reduction = r;
      o.weight = to_float(o16.weight);
      o.pos_weight = to_float(o16.pos_weight);
      o.label_smoothing = 0.1;
      check_against_float(Bce{}, x16, t16, x, t, o16, o, s, r != Reduction::none);
      if (r == Reduction::mean) {  // mean_over weight_sum, and no options at all
        o16.mean_over = o.mean_over = BceMeanOver::weight_sum;
        check_against_float(Bce{}, x16, t16, x, t, o16, o, s, true);
        check_against_float(Bce{}, x16, t16, x, t, BceWithLogitsOptions<H>{},
                            BceWithLogitsOptions<float>{}, s, true);
      }
    }
  }
}

template <class H>
OverlapOptions<float> widened(const OverlapOptions<H>& o16) {
  OverlapOptions<float> o;
  o.reduction = o16.reduction;
  o.smooth_nr = o16.smooth_nr;
  o.smooth_dr = o16.smooth_dr;
  o.per_image = o16.per_image;
  o.squared = o16.squared;
  o.weight = to_float(o16.weight);
  o.class_weight = to_float(o16.class_weight);
  o.include_background = o16.include_background;
  o.empty = o16.empty;
  o.gamma = o16.gamma;
  o.log = o16.log;
  o.clamp = o16.clamp;
  return o;
}

template <class H>
void dice_cases() {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const auto x16 = half_randn<H>(s, 5, 2.0);
    const auto t16 = half_mask<H>(s, 6);
    const auto x = to_float(x16), t = to_float(t16);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(std::string(reduction_name(r)));
        CAPTURE(variant);
        OverlapOptions<H> o16;
        o16.reduction = r;
        if (variant == 1) {
          o16.per_image = false;
          o16.squared = true;
          o16.weight = to_half<H>(testing::uniform<float>(s, 7, 0.0, 2.0));
          o16.smooth_nr = 1.0;
          o16.smooth_dr = 1.0;
        }
        if (variant == 2) {
          o16.class_weight = to_half<H>(testing::uniform<float>(Shape{s[1]}, 8, 0.5, 2.0));
          o16.gamma = 1.5;
        }
        if (variant == 3) o16.log = r != Reduction::none;
        const Shape vshape = o16.per_image ? Shape{s[0], s[1]} : Shape{s[1]};
        check_against_float(Dice{}, x16, t16, x, t, o16, widened(o16), vshape,
                            r != Reduction::none);
      }
    }
  }
}

template <class H>
void bce_dice_cases() {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const auto x16 = half_randn<H>(s, 9, 2.0);
    const auto t16 = half_mask<H>(s, 10);
    const auto x = to_float(x16), t = to_float(t16);
    BceDiceOptions<H> o16;
    o16.bce_weight = 0.7;
    o16.dice_weight = 1.3;
    o16.bce.pos_weight = to_half<H>(testing::uniform<float>(Shape{s[1]}, 11, 0.5, 2.0));
    o16.dice.squared = true;
    BceDiceOptions<float> o;
    o.bce_weight = 0.7;
    o.dice_weight = 1.3;
    o.bce.pos_weight = to_float(o16.bce.pos_weight);
    o.dice.squared = true;
    check_against_float(BceDice{}, x16, t16, x, t, o16, o, Shape{}, true);
    BceDiceParts parts16, parts;
    bce_dice(x16, t16, o16, &parts16);
    bce_dice(x, t, o, &parts);
    CHECK(parts16.bce == parts.bce);
    CHECK(parts16.dice == parts.dice);
  }
}

template <class H, class L>
void cross_entropy_cases() {
  for (const Shape& s0 : kShapes) {
    const Shape s = s0[1] == 1 ? Shape{1, 4, 1, 1} : Shape(s0);
    CAPTURE(s);
    const auto x16 = half_randn<H>(s, 12, 3.0);
    const auto x = to_float(x16);
    const auto y = testing::labels<L>(s.without(1), s[1], 13, 0.2, -100);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      CAPTURE(std::string(reduction_name(r)));
      CrossEntropyOptions<H> o16;
      o16.reduction = r;
      o16.weight = to_half<H>(testing::uniform<float>(Shape{s[1]}, 14, 0.2, 3.0));
      o16.label_smoothing = 0.1;
      CrossEntropyOptions<float> o;
      o.reduction = r;
      o.weight = to_float(o16.weight);
      o.label_smoothing = 0.1;
      check_against_float(CrossEntropy{}, x16, y, x, y, o16, o, s.without(1), r != Reduction::none);
      o16.weight = Tensor<H>();
      o.weight = Tensor<float>();
      o16.label_smoothing = o.label_smoothing = 0.0;
      o16.mean_over = o.mean_over = MeanOver::valid_pixels;
      check_against_float(CrossEntropy{}, x16, y, x, y, o16, o, s.without(1), r != Reduction::none);
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("half logits: bce_with_logits is the float loss, rounded once", H, float16,
                   bfloat16) {
  bce_cases<H>();
}

TEST_CASE_TEMPLATE("half logits: soft_dice is the float loss, rounded once", H, float16, bfloat16) {
  dice_cases<H>();
}

TEST_CASE_TEMPLATE("half logits: bce_dice is the float loss, rounded once", H, float16, bfloat16) {
  bce_dice_cases<H>();
}

TEST_CASE_TEMPLATE("half logits: cross_entropy is the float loss, rounded once", H, float16,
                   bfloat16) {
  cross_entropy_cases<H, int32_t>();
  cross_entropy_cases<H, int64_t>();
}

TEST_CASE_TEMPLATE("half logits: |x| = 1e4 is finite, Inf logits follow the float loss", H, float16,
                   bfloat16) {
  const Shape s{1, 2, 2, 2};
  auto xf = Tensor<float>::from({1e4f, -1e4f, 3.0f, -2.0f, 1e4f, -1e4f, 0.5f, 0.0f}, s);
  const auto t16 = to_half<H>(Tensor<float>::from({0, 1, 1, 0, 1, 0, 1, 0}, s));
  const auto x16 = to_half<H>(xf);
  CHECK(static_cast<float>(x16[0]) ==
        (std::is_same_v<H, float16> ? 1e4f : 9984.0f));  // bf16: 8 bits
  const auto vg = bce_with_logits_value_and_grad(x16, t16);
  CHECK(std::isfinite(vg.value));
  for (const auto& g : vg.grad) CHECK(std::isfinite(static_cast<float>(g)));
  const auto ce =
      cross_entropy_value_and_grad(x16, Tensor<int32_t>::from({0, 1, 1, 0}, Shape{1, 2, 2}));
  CHECK(std::isfinite(ce.value));
  for (const auto& g : ce.grad) CHECK(std::isfinite(static_cast<float>(g)));
  // Inf logits: whatever the float loss gives (its NaN policy), rounded.
  xf[2] = INFINITY;
  xf[3] = -INFINITY;
  const auto xi16 = to_half<H>(xf);
  const auto ref = bce_with_logits_value_and_grad(to_float(xi16), to_float(t16));
  const auto got = bce_with_logits_value_and_grad(xi16, t16);
  CHECK(std::isnan(got.value) == std::isnan(ref.value));
  if (!std::isnan(ref.value)) CHECK(got.value == ref.value);
  check_rounded(got.grad, ref.grad, "Inf logits");
}

TEST_CASE_TEMPLATE("half logits: lovasz_hinge compares 16-bit labels with ignore in their type", H,
                   float16, bfloat16) {
  // PyTorch's labels != ignore converts 0.1 to the labels' dtype, so 16-bit labels of 0.1 are
  // ignored (before 2026-12-02 the float loss compared their widened value, H(0.1) as a float,
  // with 0.1 rounded to float, and refused them as labels neither 0 nor 1).
  const Shape s{2, 1, 3, 5};
  const auto x = half_randn<H>(s, 301, 2.0);
  auto t = half_mask<H>(s, 302), t255 = t.clone();
  for (int64_t i = 0; i < t.numel(); i += 4) t[i] = H(0.1f), t255[i] = H(255.0f);
  REQUIRE(static_cast<float>(H(0.1f)) != 0.1f);  // the case this test is about
  LovaszHingeOptions<H> o, o255;
  o.ignore = 0.1;
  o255.ignore = 255.0;
  for (bool per_image : {false, true}) {
    CAPTURE(per_image);
    o.per_image = o255.per_image = per_image;
    const auto a = lovasz_hinge_value_and_grad(x, t, o);
    const auto b = lovasz_hinge_value_and_grad(x, t255, o255);
    CHECK(a.value == b.value);
    CHECK(testing::same_bits(a.grad, b.grad));
  }
  // A value that is no label stays refused, and 0.2 does not ignore labels of 0.1.
  o.ignore = 0.2;
  CHECK_THROWS_WITH_AS(lovasz_hinge(x, t, o), doctest::Contains("lovasz_hinge"), Error);
}

TEST_CASE("half logits: a gradient beyond float16's range rounds to Inf, bfloat16 keeps it") {
  const Shape s{1, 1, 2, 2};
  const auto x = Tensor<float>::from({-3.0f, 2.0f, -1.0f, 0.5f}, s);
  const auto t = Tensor<float>::from({1, 0, 1, 0}, s);
  BceWithLogitsOptions<float16> o16;
  o16.reduction = Reduction::sum;
  o16.weight = to_half<float16>(Tensor<float>::full(Shape{1}, 60000.0f));
  o16.pos_weight = to_half<float16>(Tensor<float>::full(Shape{1}, 3.0f));
  const auto g16 = bce_with_logits_value_and_grad(to_half<float16>(x), to_half<float16>(t), o16);
  CHECK(std::isinf(static_cast<float>(g16.grad[0])));  // -60000 * 3 * (1 - p): beyond -65520
  CHECK(std::signbit(static_cast<float>(g16.grad[0])));
  CHECK(std::isfinite(g16.value));  // the value is the float loss's double
  BceWithLogitsOptions<bfloat16> ob;
  ob.reduction = Reduction::sum;
  ob.weight = to_half<bfloat16>(Tensor<float>::full(Shape{1}, 60000.0f));
  ob.pos_weight = to_half<bfloat16>(Tensor<float>::full(Shape{1}, 3.0f));
  const auto gb = bce_with_logits_value_and_grad(to_half<bfloat16>(x), to_half<bfloat16>(t), ob);
  CHECK(std::isfinite(static_cast<float>(gb.grad[0])));
}

TEST_CASE("half logits: errors name the function") {
  const Shape s{2, 3, 4, 4};
  const auto x = half_randn<float16>(s, 1, 1.0);
  const auto t = half_mask<float16>(s, 2);
  Tensor<float16> bad = Tensor<float16>::empty(Shape{2, 3, 4, 5});
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(x, t, bad),
                       doctest::Contains("bce_with_logits_value_and_grad: grad (2,3,4,5) does not "
                                         "match logits (2,3,4,4)"),
                       Error);
  CHECK_THROWS_WITH_AS(soft_dice(x, half_mask<float16>(Shape{2, 3, 4, 5}, 3)),
                       doctest::Contains("soft_dice: target (2,3,4,5) does not match"), Error);
  Tensor<float16> g, v = Tensor<float16>::empty(Shape{2});
  CHECK_THROWS_WITH_AS(
      bce_dice_value_and_grad(x, t, g, v),
      doctest::Contains("bce_dice_value_and_grad: value (2) must hold one element"), Error);
  auto y = testing::labels<int64_t>(Shape{2, 4, 4}, 3, 4);
  y[5] = 7;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y), doctest::Contains("cross_entropy"),
                       Error);
  BceWithLogitsOptions<bfloat16> o;
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(to_half<bfloat16>(to_float(x)),
                                                      to_half<bfloat16>(to_float(t)), o),
                       doctest::Contains("reduction none has no single value"), Error);
}
