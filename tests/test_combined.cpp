// ce_dice and dice_focal (losses/combined.hpp): equal to the weighted sum of their terms (value,
// parts and gradient), gradients against finite differences, and their own bad-input checks.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "lead_check.hpp"
#include "loss_check.hpp"

using namespace segloss;

namespace {

const Shape kShape{2, 4, 5, 3};

Tensor<double> logits_of(const Shape& s = kShape) {
  return testing::randn<double>(s, 71, 1.5);
}

template <class G>
void check_sum(const ValueAndGrad<double>& got, double value, const G& grad_of) {
  CHECK(got.value == doctest::Approx(value).epsilon(1e-13));
  for (int64_t i = 0; i < got.grad.numel(); ++i)
    CHECK(got.grad[i] == doctest::Approx(grad_of(i)).epsilon(1e-12).scale(1e-3));
}

}  // namespace

TEST_CASE("ce_dice: the weighted sum of cross_entropy and softmax_dice, labels and probabilities") {
  const auto x = logits_of();
  const auto y = testing::labels<int64_t>(kShape.without(1), 4, 72, 0.2);
  CeDiceOptions<double> o;
  o.ce_weight = 0.7;
  o.dice_weight = 1.6;
  o.ce.label_smoothing = 0.1;
  o.ce.weight = Tensor<double>::from({1.0, 2.0, 0.5, 1.5}, {4});
  o.dice.include_background = false;
  o.dice.per_image = false;
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    INFO("reduction ", std::string(reduction_name(r)));
    o.ce.reduction = o.dice.reduction = r;
    const auto ce = cross_entropy_value_and_grad(x, y, o.ce);
    const auto dice = softmax_dice_value_and_grad(x, y, o.dice);
    CeDiceParts parts;
    const auto got = ce_dice_value_and_grad(x, y, o, &parts);
    CHECK(parts.ce == doctest::Approx(ce.value).epsilon(1e-13));
    CHECK(parts.dice == doctest::Approx(dice.value).epsilon(1e-13));
    check_sum(got, 0.7 * ce.value + 1.6 * dice.value,
              [&](int64_t i) { return 0.7 * ce.grad[i] + 1.6 * dice.grad[i]; });
    CeDiceParts fparts;
    CHECK(ce_dice(x, y, o, &fparts)[0] == doctest::Approx(got.value).epsilon(1e-13));
    CHECK(fparts.ce == doctest::Approx(parts.ce).epsilon(1e-13));
    testing::check_loss_gradients(
        x, [&](const Tensor<double>& v) { return ce_dice(v, y, o); },
        [&](const Tensor<double>& v, const Tensor<double>& go) {
          return ce_dice_backward(v, y, go, o);
        },
        [&](const Tensor<double>& v) { return ce_dice_value_and_grad(v, y, o); });
  }
  // Probability targets.
  const auto q = testing::uniform<double>(kShape, 73, 0.0, 1.0);
  CeDiceOptions<double> p;
  testing::check_loss_gradients(
      x, [&](const Tensor<double>& v) { return ce_dice(v, q, p); },
      [&](const Tensor<double>& v, const Tensor<double>& go) {
        return ce_dice_backward(v, q, go, p);
      },
      [&](const Tensor<double>& v) { return ce_dice_value_and_grad(v, q, p); });
}

TEST_CASE("ce_dice: a label logit far ahead: the CE term keeps its precision in float") {
  // The CE term's value (the fused statistics pass) and its gradient (the Dice gradient pass's
  // term, q = sum_{c != y} p_c) at leads of 20 and 30, where log(1 + R) and p_y - 1 round to 0 in
  // float: float against double, element by element (both terms of a saturated pixel's gradient
  // are about R).
  for (int64_t C : {3, 21}) {
    CAPTURE(C);
    const auto in = testing::lead_pixels(C, 45, {20, 30});  // value: about (C - 1) e^-20
    CeDiceOptions<double> o;
    o.ce.reduction = Reduction::sum;
    CeDiceOptions<float> of;
    of.ce.reduction = Reduction::sum;
    CeDiceParts pd, pf;
    const auto d = ce_dice_value_and_grad(in.x, in.y, o, &pd);
    const auto f = ce_dice_value_and_grad(testing::cast<float>(in.x), in.y, of, &pf);
    CHECK(pf.ce == doctest::Approx(pd.ce).epsilon(1e-5));
    for (int64_t i = 0; i < d.grad.numel(); ++i) {
      CAPTURE(i);
      CHECK(std::fabs(f.grad[i] - d.grad[i]) <= 1e-4 * std::fabs(d.grad[i]));
    }
  }
}

TEST_CASE("dice_focal: the weighted sum of softmax_dice and softmax_focal, with ignore_index") {
  const auto x = logits_of({2, 3, 4, 4, 2});
  auto y = testing::labels<int32_t>({2, 4, 4, 2}, 3, 74, 0.15, 255);
  DiceFocalOptions<double> o;
  o.dice_weight = 1.2;
  o.focal_weight = 0.4;
  o.dice.ignore_index = o.focal.ignore_index = 255;
  o.focal.gamma = 1.5;
  o.focal.alpha = Tensor<double>::from({0.25, 0.5, 0.25}, {3});
  const auto dice = softmax_dice_value_and_grad(x, y, o.dice);
  const auto focal = softmax_focal_value_and_grad(x, y, o.focal);
  DiceFocalParts parts;
  const auto got = dice_focal_value_and_grad(x, y, o, &parts);
  CHECK(parts.dice == doctest::Approx(dice.value).epsilon(1e-13));
  CHECK(parts.focal == doctest::Approx(focal.value).epsilon(1e-13));
  check_sum(got, 1.2 * dice.value + 0.4 * focal.value,
            [&](int64_t i) { return 1.2 * dice.grad[i] + 0.4 * focal.grad[i]; });
  testing::check_loss_gradients(
      x, [&](const Tensor<double>& v) { return dice_focal(v, y, o); },
      [&](const Tensor<double>& v, const Tensor<double>& go) {
        return dice_focal_backward(v, y, go, o);
      },
      [&](const Tensor<double>& v) { return dice_focal_value_and_grad(v, y, o); });
}

TEST_CASE("combined: a caller's gradient buffer is overwritten, not added to") {
  const auto x = logits_of();
  const auto y = testing::labels<int64_t>(kShape.without(1), 4, 75);
  auto grad = Tensor<double>::full(kShape, NAN);
  ce_dice_value_and_grad(x, y, grad);
  const auto fresh = ce_dice_value_and_grad(x, y);
  for (int64_t i = 0; i < grad.numel(); ++i) CHECK(grad[i] == fresh.grad[i]);
}

TEST_CASE("combined: bad input names the function and options") {
  const auto x = logits_of();
  const auto y = testing::labels<int64_t>(kShape.without(1), 4, 76);
  CeDiceOptions<double> o;
  o.ce.ignore_index = 255;
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(x, y, o),
                       "ce_dice_value_and_grad: options.ce.ignore_index 255 differs from "
                       "options.dice.ignore_index -100; both terms must ignore the same pixels",
                       Error);
  o = CeDiceOptions<double>{};
  o.dice.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(ce_dice(x, y, o),
                       "ce_dice: options.dice.reduction is none; a combined loss needs both terms "
                       "reduced to one value (mean or sum)",
                       Error);
  o = CeDiceOptions<double>{};
  o.ce.ignore_negative = true;
  CHECK_THROWS_WITH_AS(ce_dice_backward(x, y, Tensor<double>::full({}, 1.0), o),
                       "ce_dice_backward: options.ce.ignore_negative is set; the Dice term ignores "
                       "one label value only, so both terms would not ignore the same pixels",
                       Error);
  auto in_place = logits_of();  // finalize's gradient buffer may not be the logits
  auto g = Tensor<double>::view(in_place.data(), kShape);
  CHECK_THROWS_WITH_AS(
      ce_dice_finalize(in_place, y, ce_dice_statistics(in_place, y), g),
      "ce_dice_finalize: grad overlaps the logits; a combined loss's finalize reads the "
      "logits again after writing its first term's gradient, so it cannot run in "
      "place",
      Error);
  auto bad = y;
  bad = bad.clone();
  bad[5] = 9;
  CHECK_THROWS_WITH_AS(ce_dice(x, bad),
                       "ce_dice: target has label 9 at (0,1,2), outside [0, 4) and not "
                       "ignore_index -100",
                       Error);
  CHECK_THROWS_WITH_AS(dice_focal_backward(x, y, Tensor<double>::full({}, 1.0),
                                           [] {
                                             DiceFocalOptions<double> d;
                                             d.focal.gamma = -1;
                                             return d;
                                           }()),
                       doctest::Contains("dice_focal_backward: in the focal term: "), Error);
  DiceFocalOptions<double> f;
  f.focal_weight = INFINITY;
  CHECK_THROWS_WITH_AS(dice_focal(x, y, f),
                       "dice_focal: options.dice_weight 1 and options.focal_weight inf must be "
                       "finite",
                       Error);
}

TEST_CASE("combined: the Dice term's option errors name options.dice, in every form") {
  using testing::error_of;
  const auto x = logits_of();
  const auto y = testing::labels<int64_t>(kShape.without(1), 4, 77);
  const auto go = Tensor<double>::full({}, 1.0);
  CeDiceOptions<double> cd;
  cd.dice.smooth_nr = -1;
  const std::string smooth = "options.dice.smooth_nr is -1; it must be finite and >= 0";
  CHECK(error_of([&] { ce_dice(x, y, cd); }) == "ce_dice: " + smooth);
  CHECK(error_of([&] { ce_dice_value_and_grad(x, y, cd); }) == "ce_dice_value_and_grad: " + smooth);
  CHECK(error_of([&] { ce_dice_backward(x, y, go, cd); }) == "ce_dice_backward: " + smooth);
  CHECK(error_of([&] { ce_dice_statistics(x, y, cd); }) == "ce_dice_statistics: " + smooth);
  cd = CeDiceOptions<double>{};
  cd.dice.class_weight = Tensor<double>::full({3}, 1.0);
  CHECK(error_of([&] { ce_dice(x, y, cd); }) ==
        "ce_dice: options.dice.class_weight (3) must have shape (4), one weight per channel of "
        "the input (2,4,5,3)");
  cd.dice.class_weight = Tensor<double>::full({4}, 1.0);
  cd.dice.class_weight[2] = -0.5;
  CHECK(error_of([&] { ce_dice_value_and_grad(x, y, cd); }) ==
        "ce_dice_value_and_grad: options.dice.class_weight[2] is -0.5; class weights must be "
        "finite and >= 0");
  const auto st = ce_dice_statistics(x, y);
  Tensor<double> g;
  cd = CeDiceOptions<double>{};
  cd.dice.log = true;
  cd.dice.clamp = true;
  CHECK(error_of([&] { ce_dice_finalize(x, y, st, g, cd); }) ==
        "ce_dice_finalize: options.dice.log and options.dice.clamp are both set; choose one");

  DiceFocalOptions<double> df;
  df.dice.gamma = 0;
  const std::string gamma = "options.dice.gamma is 0; it must be finite and > 0";
  CHECK(error_of([&] { dice_focal(x, y, df); }) == "dice_focal: " + gamma);
  CHECK(error_of([&] { dice_focal_value_and_grad(x, y, df); }) ==
        "dice_focal_value_and_grad: " + gamma);
  CHECK(error_of([&] { dice_focal_backward(x, y, go, df); }) == "dice_focal_backward: " + gamma);
  CHECK(error_of([&] { dice_focal_statistics(x, y, df); }) == "dice_focal_statistics: " + gamma);
  df = DiceFocalOptions<double>{};
  df.dice.include_background = false;
  const auto one = logits_of(Shape{2, 1, 5, 3});
  const auto zeros = testing::labels<int64_t>(Shape{2, 5, 3}, 1, 78);
  CHECK(error_of([&] { dice_focal(one, zeros, df); }) ==
        "dice_focal: options.dice.include_background is false but the input (2,1,5,3) has a "
        "single channel (C = 1): no score would remain");
}
