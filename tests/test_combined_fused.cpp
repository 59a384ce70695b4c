// The fused paths of the class-axis kernels in float, where the AVX-512 build gathers the
// labels' lanes (cpu::gather_lanes) and ce_dice / dice_focal compute the softmax once for both
// terms: against the terms computed apart (composed), against double, and across thread counts.
// Shapes with several packets per image and a scalar tail, a 3D volume, N = 1 and a 1x1 image.
// ce_dice with probability targets and the backward forms take the same two passes (pass 2
// computes the first term's gradient from the p pass 1 stored): the same comparisons, and
// finite differences in double for every option of the first term that changes its gradient.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "loss_check.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

const std::vector<Shape> kShapes{{2, 5, 37, 11}, {1, 3, 4, 5, 6}, {1, 4, 1, 1}, {3, 21, 8, 9}};

// |a - b| <= atol + rtol |b| elementwise.
void check_close(const Tensor<float>& a, const Tensor<float>& b, double rtol, double atol) {
  REQUIRE(a.numel() == b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) {
    INFO("element ", i);
    CHECK(std::abs(static_cast<double>(a[i]) - b[i]) <= atol + rtol * std::abs(b[i]));
  }
}

void check_close(const Tensor<float>& a, const Tensor<double>& b, double rtol, double atol) {
  REQUIRE(a.numel() == b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) {
    INFO("element ", i);
    CHECK(std::abs(static_cast<double>(a[i]) - b[i]) <= atol + rtol * std::abs(b[i]));
  }
}

// The fused call at 1 and at 2 threads: bit-identical value and gradient.
template <class F>
void check_thread_independent(F&& f) {
  const int before = num_threads();
  set_num_threads(1);
  const ValueAndGrad<float> one = f();
  set_num_threads(2);
  const ValueAndGrad<float> two = f();
  set_num_threads(before);
  CHECK(one.value == two.value);
  bool same = true;
  for (int64_t i = 0; i < one.grad.numel(); ++i) same = same && one.grad[i] == two.grad[i];
  CHECK(same);
}

// A label map with a share ignored (255), or for L = float probability targets q, uniform in
// [0, 1) and not normalized (cross_entropy weighs each class's -log p by q'_c).
template <class L>
Tensor<L> target_of(const Shape& s, uint64_t seed) {
  if constexpr (std::is_floating_point_v<L>)
    return testing::uniform<float>(s, seed, 0.0, 1.0);
  else
    return testing::labels<L>(s.without(1), s[1], seed, 0.15, 255);
}

template <class L>
void ce_dice_case(const Shape& s, uint64_t seed) {
  constexpr bool kProbs = std::is_floating_point_v<L>;
  const int64_t C = s[1];
  const auto x = testing::randn<float>(s, seed, 2.5);
  const auto y = target_of<L>(s, seed + 1);
  const auto y_double = [&] {
    if constexpr (kProbs)
      return testing::cast<double>(y);
    else
      return y;
  }();
  const int64_t ignore = kProbs ? -100 : 255;
  std::vector<float> w(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    w[static_cast<size_t>(c)] = 0.5f + 0.25f * static_cast<float>(c % 4);
  CeDiceOptions<float> o;
  o.ce_weight = 0.8;
  o.dice_weight = 1.3;
  o.ce.ignore_index = o.dice.ignore_index = ignore;
  for (int variant = 0; variant < 3; ++variant) {
    INFO("variant ", variant);
    o.ce.weight = variant == 1 ? Tensor<float>::from(w, {C}) : Tensor<float>();
    o.ce.label_smoothing = variant == 2 ? 0.1 : 0.0;
    o.dice.squared = variant == 2;
    o.dice.per_image = variant != 1;
    o.ce.reduction = o.dice.reduction = variant == 1 ? Reduction::sum : Reduction::mean;
    const auto ce = cross_entropy_value_and_grad(x, y, o.ce);
    const auto dice = softmax_dice_value_and_grad(x, y, o.dice);
    CeDiceParts parts;
    const auto got = ce_dice_value_and_grad(x, y, o, &parts);
    CHECK(parts.ce == doctest::Approx(ce.value).epsilon(1e-6));
    CHECK(parts.dice == doctest::Approx(dice.value).epsilon(1e-6));
    CHECK(got.value == doctest::Approx(0.8 * ce.value + 1.3 * dice.value).epsilon(1e-6));
    auto composed = Tensor<float>::empty(s);
    for (int64_t i = 0; i < composed.numel(); ++i)
      composed[i] = 0.8f * ce.grad[i] + 1.3f * dice.grad[i];
    const double atol = kProbs ? 1e-6 : 1e-7;  // a sum over unnormalized q: larger entries
    check_close(got.grad, composed, 1e-5, atol);
    // Against double: the float path is the double formula to float rounding.
    CeDiceOptions<double> od;
    od.ce_weight = o.ce_weight;
    od.dice_weight = o.dice_weight;
    od.ce.ignore_index = od.dice.ignore_index = ignore;
    if (variant == 1) od.ce.weight = testing::cast<double>(o.ce.weight);
    od.ce.label_smoothing = o.ce.label_smoothing;
    od.dice.squared = o.dice.squared;
    od.dice.per_image = o.dice.per_image;
    od.ce.reduction = od.dice.reduction = o.dice.reduction;
    const auto ref = ce_dice_value_and_grad(testing::cast<double>(x), y_double, od);
    CHECK(got.value == doctest::Approx(ref.value).epsilon(1e-5));
    check_close(got.grad, ref.grad, 1e-3, 1e-6);
    check_thread_independent([&] { return ce_dice_value_and_grad(x, y, o); });
    // backward(grad_out) is grad_out times value_and_grad's gradient, through the same passes.
    const auto go = Tensor<float>::full(Shape{}, 2.0f);
    const auto back = ce_dice_backward(x, y, go, o);
    auto scaled = Tensor<float>::empty(s);
    for (int64_t i = 0; i < scaled.numel(); ++i) scaled[i] = 2.0f * got.grad[i];
    check_close(back, scaled, 1e-5, atol);
    check_thread_independent([&] {
      ValueAndGrad<float> r{};
      r.grad = ce_dice_backward(x, y, go, o);
      return r;
    });
  }
}

template <class L>
void dice_focal_case(const Shape& s, uint64_t seed) {
  const int64_t C = s[1];
  const auto x = testing::randn<float>(s, seed, 2.5);
  const auto y = testing::labels<L>(s.without(1), C, seed + 1, 0.15, 255);
  std::vector<float> alpha(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    alpha[static_cast<size_t>(c)] = 0.25f + 0.2f * static_cast<float>(c % 3);
  DiceFocalOptions<float> o;
  o.dice_weight = 0.6;
  o.focal_weight = 1.7;
  o.focal.ignore_index = o.dice.ignore_index = 255;
  for (double gamma : {2.0, 1.5, 0.0, 1.0, 0.5}) {
    INFO("gamma ", gamma);
    o.focal.gamma = static_cast<float>(gamma);
    o.focal.alpha =
        gamma == 1.5 || gamma == 1.0 ? Tensor<float>::from(alpha, {C}) : Tensor<float>();
    o.dice.squared = gamma == 1.0;
    o.focal.reduction = o.dice.reduction = gamma == 0.5 ? Reduction::sum : Reduction::mean;
    const auto focal = softmax_focal_value_and_grad(x, y, o.focal);
    const auto dice = softmax_dice_value_and_grad(x, y, o.dice);
    DiceFocalParts parts;
    const auto got = dice_focal_value_and_grad(x, y, o, &parts);
    CHECK(parts.focal == doctest::Approx(focal.value).epsilon(1e-6));
    CHECK(parts.dice == doctest::Approx(dice.value).epsilon(1e-6));
    auto composed = Tensor<float>::empty(s);
    for (int64_t i = 0; i < composed.numel(); ++i)
      composed[i] = 1.7f * focal.grad[i] + 0.6f * dice.grad[i];
    check_close(got.grad, composed, 1e-5, 1e-7);
    // Against double: the focal factor from the stored p is the double formula to float rounding.
    DiceFocalOptions<double> od;
    od.dice_weight = o.dice_weight;
    od.focal_weight = o.focal_weight;
    od.focal.ignore_index = od.dice.ignore_index = 255;
    od.focal.gamma = gamma;
    if (o.focal.alpha.defined()) od.focal.alpha = testing::cast<double>(o.focal.alpha);
    od.dice.squared = o.dice.squared;
    od.focal.reduction = od.dice.reduction = o.dice.reduction;
    const auto ref = dice_focal_value_and_grad(testing::cast<double>(x), y, od);
    CHECK(got.value == doctest::Approx(ref.value).epsilon(1e-5));
    check_close(got.grad, ref.grad, 1e-3, 1e-6);
    check_thread_independent([&] { return dice_focal_value_and_grad(x, y, o); });
    // backward(grad_out) is grad_out times value_and_grad's gradient, through the same passes.
    const auto go = Tensor<float>::full(Shape{}, -0.75f);
    const auto back = dice_focal_backward(x, y, go, o);
    auto scaled = Tensor<float>::empty(s);
    for (int64_t i = 0; i < scaled.numel(); ++i) scaled[i] = -0.75f * got.grad[i];
    check_close(back, scaled, 1e-5, 1e-7);
    check_thread_independent([&] {
      ValueAndGrad<float> r{};
      r.grad = dice_focal_backward(x, y, go, o);
      return r;
    });
  }
}

}  // namespace

TEST_CASE("combined fused: ce_dice in float equals its terms apart, double, at 1 and 2 threads") {
  uint64_t seed = 900;
  for (const Shape& s : kShapes) {
    INFO("shape ", s);
    ce_dice_case<int64_t>(s, seed += 10);
    ce_dice_case<int32_t>(s, seed += 10);
  }
}

TEST_CASE("combined fused: dice_focal in float equals its terms apart, at 1 and 2 threads") {
  uint64_t seed = 950;
  for (const Shape& s : kShapes) {
    INFO("shape ", s);
    dice_focal_case<int64_t>(s, seed += 10);
    dice_focal_case<int32_t>(s, seed += 10);
  }
}

TEST_CASE("combined fused: ce_dice with probability targets in float, at 1 and 2 threads") {
  uint64_t seed = 970;
  for (const Shape& s : kShapes) {
    INFO("shape ", s);
    ce_dice_case<float>(s, seed += 10);
  }
}

TEST_CASE("combined fused: gradients in double against finite differences, every option") {
  // Each option of the first term that changes pass 2's formula, with each reduction and the
  // Dice options that change the Dice gradient (squared, per_image); a 3D volume, N = 1.
  const Shape s{2, 3, 3, 4};
  const auto x = testing::randn<double>(s, 981, 1.5);
  const auto y = testing::labels<int64_t>(s.without(1), 3, 982, 0.2, 255);
  const Tensor<double> alpha = Tensor<double>::from({0.25, 0.5, 1.0}, {3});
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    for (double gamma : {0.0, 1.0, 2.0, 1.5, 0.5}) {
      for (bool with_alpha : {false, true}) {
        INFO("reduction ", std::string(reduction_name(r)), " gamma ", gamma, " alpha ", with_alpha);
        DiceFocalOptions<double> o;
        o.dice_weight = 0.9;
        o.focal_weight = 1.4;
        o.focal.ignore_index = o.dice.ignore_index = 255;
        o.focal.reduction = o.dice.reduction = r;
        o.focal.gamma = gamma;
        if (with_alpha) o.focal.alpha = alpha;
        o.dice.squared = with_alpha;
        o.dice.per_image = gamma != 1.5;
        testing::check_loss_gradients(
            x, [&](const Tensor<double>& v) { return dice_focal(v, y, o); },
            [&](const Tensor<double>& v, const Tensor<double>& go) {
              return dice_focal_backward(v, y, go, o);
            },
            [&](const Tensor<double>& v) { return dice_focal_value_and_grad(v, y, o); });
      }
    }
  }
  const Shape v3{1, 4, 2, 3, 2};
  const auto xv = testing::randn<double>(v3, 983, 1.5);
  const auto q = testing::uniform<double>(v3, 984, 0.0, 1.0);
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    for (int variant = 0; variant < 4; ++variant) {
      INFO("reduction ", std::string(reduction_name(r)), " variant ", variant);
      CeDiceOptions<double> o;
      o.ce_weight = 0.6;
      o.dice_weight = 1.1;
      o.ce.reduction = o.dice.reduction = r;
      if (variant & 1) o.ce.weight = Tensor<double>::from({1.0, 2.0, 0.5, 1.5}, {4});
      if (variant & 2) o.ce.label_smoothing = 0.2;
      o.dice.squared = variant == 3;
      o.dice.per_image = variant != 1;
      testing::check_loss_gradients(
          xv, [&](const Tensor<double>& v) { return ce_dice(v, q, o); },
          [&](const Tensor<double>& v, const Tensor<double>& go) {
            return ce_dice_backward(v, q, go, o);
          },
          [&](const Tensor<double>& v) { return ce_dice_value_and_grad(v, q, o); });
    }
  }
}

TEST_CASE("combined fused: saturated logits (|x| = 1e4) and a 1x1 image stay finite") {
  // p_t = 1 (q = 0) or p_t underflowed to 0 (q = 1): the focal factor from p takes its limits.
  const Shape s{2, 3, 5, 4};
  auto x = testing::randn<float>(s, 990, 1.0);
  const auto y = testing::labels<int64_t>(s.without(1), 3, 991);
  for (int64_t i = 0; i < x.numel(); i += 3) x[i] = i % 2 ? 1e4f : -1e4f;
  for (double gamma : {2.0, 0.5}) {
    INFO("gamma ", gamma);
    DiceFocalOptions<float> o;
    o.focal.gamma = static_cast<float>(gamma);
    const auto got = dice_focal_value_and_grad(x, y, o);
    const auto focal = softmax_focal_value_and_grad(x, y, o.focal);
    const auto dice = softmax_dice_value_and_grad(x, y, o.dice);
    CHECK(std::isfinite(got.value));
    auto composed = Tensor<float>::empty(s);
    for (int64_t i = 0; i < composed.numel(); ++i) composed[i] = focal.grad[i] + dice.grad[i];
    for (int64_t i = 0; i < got.grad.numel(); ++i) REQUIRE(std::isfinite(got.grad[i]));
    check_close(got.grad, composed, 1e-5, 1e-7);
  }
  const Shape one{1, 4, 1, 1};
  const auto x1 = testing::randn<float>(one, 992, 3.0);
  const auto q1 = testing::uniform<float>(one, 993, 0.0, 1.0);
  const auto got = ce_dice_value_and_grad(x1, q1);
  const auto ce = cross_entropy_value_and_grad(x1, q1);
  const auto dice = softmax_dice_value_and_grad(x1, q1);
  auto composed = Tensor<float>::empty(one);
  for (int64_t i = 0; i < 4; ++i) composed[i] = ce.grad[i] + dice.grad[i];
  check_close(got.grad, composed, 1e-5, 1e-7);
}

TEST_CASE("combined fused: dice_focal in place (grad = the logits) equals the out-of-place call") {
  const Shape s{2, 4, 9, 5};
  const auto x = testing::randn<float>(s, 997, 2.0);
  const auto y = testing::labels<int64_t>(s.without(1), 4, 998, 0.1, 255);
  DiceFocalOptions<float> o;
  o.focal.ignore_index = o.dice.ignore_index = 255;
  const auto ref = dice_focal_value_and_grad(x, y, o);
  auto in_place = x.clone();
  auto g = Tensor<float>::view(in_place.data(), s);
  const double v = dice_focal_value_and_grad(in_place, y, g, o);
  CHECK(v == ref.value);
  bool same = true;
  for (int64_t i = 0; i < g.numel(); ++i) same = same && g[i] == ref.grad[i];
  CHECK(same);
}

// ce_dice_value_and_grad in place (grad is the logits) against the out-of-place call at 1
// thread: at 1, 2 and 3 threads, the out-of-place and the in-place call give its value and its
// gradient bit for bit. Pass 1 stores each packet's p over its logits after reading them; pass 2
// reads p and the target, never the logits.
template <class T, class U>
void check_ce_dice_in_place(const Tensor<T>& x, const Tensor<U>& y, const CeDiceOptions<T>& o) {
  const int before = num_threads();
  set_num_threads(1);
  Tensor<T> ref;
  const double v = ce_dice_value_and_grad(x, y, ref, o);
  CHECK(std::isfinite(v));
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    Tensor<T> apart;
    CHECK(ce_dice_value_and_grad(x, y, apart, o) == v);
    CHECK(testing::same_bits(apart, ref));
    Tensor<T> in_place = testing::copy_of(x);
    CHECK(ce_dice_value_and_grad(in_place, y, in_place, o) == v);
    CHECK(testing::same_bits(in_place, ref));
  }
  set_num_threads(before);
}

TEST_CASE_TEMPLATE(
    "combined fused: ce_dice in place (grad = the logits) equals the out-of-place "
    "call",
    T, float, double) {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const auto x = testing::randn<T>(s, 1201, 2.5);
    CeDiceOptions<T> o;  // labels, some ignored, with class weights and smoothing
    o.ce_weight = 0.7;
    o.dice_weight = 1.3;
    o.ce.ignore_index = o.dice.ignore_index = 255;
    o.ce.label_smoothing = 0.1;
    std::vector<T> w;
    for (int64_t c = 0; c < s[1]; ++c) w.push_back(static_cast<T>(0.5 + 0.25 * (c % 4)));
    o.ce.weight = Tensor<T>::from(w, {s[1]});
    auto y = testing::labels<int32_t>(s.without(1), s[1], 1202, 0.15, 255);
    y[0] = 1;  // one pixel counted at least (the 1x1 image's only one)
    check_ce_dice_in_place(x, y, o);
    CeDiceOptions<T> q;  // probability targets
    q.ce.label_smoothing = 0.05;
    check_ce_dice_in_place(x, testing::uniform<T>(s, 1203, 0.0, 1.0), q);
  }
}

TEST_CASE("combined fused: ce_dice refuses a grad over the logits at an offset") {
  const Shape s{1, 3, 4, 4};
  const int64_t n = s.numel();
  const auto x = testing::randn<float>(s, 1204, 1.0);
  const auto y = testing::labels<int64_t>(s.without(1), 3, 1205);
  auto big = Tensor<float>::empty({2 * n});
  for (int64_t i = 0; i < n; ++i) big[i] = x[i];
  const auto xv = Tensor<float>::view(big.data(), s);
  auto g = Tensor<float>::view(big.data() + 16, s);
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(xv, y, g),
                       "ce_dice_value_and_grad: grad overlaps logits at an offset of 16 elements; "
                       "pass logits itself (in place) or a separate buffer",
                       Error);
  // In place with the logits as the probability target too: grad overlaps the target.
  auto q = testing::uniform<float>(s, 1206, 0.0, 1.0);
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(q, q, q),
                       "ce_dice_value_and_grad: grad overlaps the target; a combined loss reads "
                       "the probability target again after storing the softmax in grad",
                       Error);
}

TEST_CASE("combined fused: a gradient buffer over a probability target is refused") {
  const Shape s{1, 3, 4, 4};
  const auto x = testing::randn<float>(s, 995, 1.0);
  auto q = testing::uniform<float>(s, 996, 0.0, 1.0);
  auto g = Tensor<float>::view(q.data(), s);
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(x, q, g),
                       "ce_dice_value_and_grad: grad overlaps the target; a combined loss reads "
                       "the probability target again after storing the softmax in grad",
                       Error);
}

TEST_CASE("combined fused: cross_entropy in float with ignore_negative and int32 labels") {
  // Negative labels of every kind (-1, -7, the default ignore_index -100) among packets.
  const Shape s{2, 6, 19, 7};
  const auto x = testing::randn<float>(s, 991, 3.0);
  auto y = testing::labels<int32_t>(s.without(1), 6, 992);
  for (int64_t i = 0; i < y.numel(); i += 5) y[i] = i % 3 == 0 ? -1 : (i % 3 == 1 ? -7 : -100);
  CrossEntropyOptions<float> o;
  o.ignore_negative = true;
  o.weight = Tensor<float>::from({1.0f, 0.5f, 2.0f, 1.5f, 0.25f, 1.0f}, {6});
  CrossEntropyOptions<double> od;
  od.ignore_negative = true;
  od.weight = testing::cast<double>(o.weight);
  const auto got = cross_entropy_value_and_grad(x, y, o);
  const auto ref = cross_entropy_value_and_grad(testing::cast<double>(x), y, od);
  CHECK(got.value == doctest::Approx(ref.value).epsilon(1e-5));
  check_close(got.grad, ref.grad, 1e-4, 1e-7);
  for (int64_t i = 0; i < y.numel(); i += 5) {  // an ignored pixel has no gradient
    const int64_t n = i / (19 * 7), p = i % (19 * 7);
    for (int64_t c = 0; c < 6; ++c) CHECK(got.grad[(n * 6 + c) * 19 * 7 + p] == 0.0f);
  }
  SoftmaxFocalOptions<float> fo;
  fo.ignore_index = -1;
  auto yf = testing::labels<int32_t>(s.without(1), 6, 993, 0.2, -1);
  SoftmaxFocalOptions<double> fod;
  fod.ignore_index = -1;
  const auto fgot = softmax_focal_value_and_grad(x, yf, fo);
  const auto fref = softmax_focal_value_and_grad(testing::cast<double>(x), yf, fod);
  CHECK(fgot.value == doctest::Approx(fref.value).epsilon(1e-5));
  check_close(fgot.grad, fref.grad, 1e-4, 1e-7);
}
