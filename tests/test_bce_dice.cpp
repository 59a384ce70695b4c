// bce_dice: equal to the weighted sum of its two losses (value and gradient), gradients against
// finite differences, and its own bad-input checks.
#include <doctest/doctest.h>

#include <string>

#include "loss_check.hpp"

using namespace segloss;

namespace {

// Variant 0: BCE weight and pos_weight with the plain Dice; 1 to 3 add Dice options of
// losses/overlap.hpp (which run inside bce_dice's passes): 1 the Carvana weighted log form,
// 2 albu's weight placement with the clamp and squared sums, 3 class weights without the
// background, focal gamma and the skip policy.
BceDiceOptions<double> options_with_everything(int variant = 0) {
  BceDiceOptions<double> o;
  o.bce_weight = 0.7;
  o.dice_weight = 1.3;
  o.bce.weight = testing::uniform<double>({2, 1, 5, 4}, 1, 0.2, 2.0);
  o.bce.pos_weight = Tensor<double>::from({2.0, 0.5, 1.5}, {3});
  o.dice.smooth_nr = 2;
  o.dice.smooth_dr = 1;
  const Shape s{2, 3, 5, 4};
  if (variant == 1) {
    o.dice.weight = testing::uniform<double>(s, 6, 0.3, 3.0);
    o.dice.log = true;
  } else if (variant == 2) {
    o.dice.weight = testing::uniform<double>({2, 1, 5, 4}, 7, 0.3, 3.0);
    o.dice.weighting = OverlapWeighting::on_inputs;
    o.dice.squared = true;
    o.dice.clamp = true;
    o.dice.smooth_nr = o.dice.smooth_dr = 0.1;  // keeps the mean score inside (0, 1)
  } else if (variant == 3) {
    o.dice.class_weight = Tensor<double>::from({1.0, 0.5, 2.0}, {3});
    o.dice.include_background = false;
    o.dice.gamma = 1.5;
    o.dice.empty = EmptyPolicy::skip;
  }
  return o;
}

}  // namespace

TEST_CASE("bce_dice: equals bce_weight * bce_with_logits + dice_weight * soft_dice") {
  const Shape s{2, 3, 5, 4};
  const auto x = testing::randn<double>(s, 2, 3.0), z = testing::mask<double>(s, 3);
  for (int variant : {-1, 0, 1, 2, 3}) {
    for (bool per_image : {true, false}) {
      for (Reduction r : {Reduction::mean, Reduction::sum}) {
        CAPTURE(variant);
        CAPTURE(per_image);
        INFO("reduction ", std::string(reduction_name(r)));
        BceDiceOptions<double> o =
            variant < 0 ? BceDiceOptions<double>{} : options_with_everything(variant);
        o.dice.per_image = per_image;
        o.bce.reduction = r;
        o.dice.reduction = r;
        const auto b = bce_with_logits_value_and_grad(x, z, o.bce);
        const auto d = soft_dice_value_and_grad(x, z, o.dice);
        BceDiceParts parts;
        const auto bd = bce_dice_value_and_grad(x, z, o, &parts);
        CHECK(parts.bce == doctest::Approx(b.value).epsilon(1e-13));
        CHECK(parts.dice == doctest::Approx(d.value).epsilon(1e-13));
        CHECK(bd.value ==
              doctest::Approx(o.bce_weight * b.value + o.dice_weight * d.value).epsilon(1e-13));
        for (int64_t i = 0; i < x.numel(); ++i)
          CHECK(bd.grad[i] == doctest::Approx(o.bce_weight * b.grad[i] + o.dice_weight * d.grad[i])
                                  .epsilon(1e-12)
                                  .scale(1e-3));
        CHECK(bce_dice(x, z, o)[0] == doctest::Approx(bd.value).epsilon(1e-14));
      }
    }
  }
}

TEST_CASE("bce_dice: gradcheck, plain and with every option, 1D and 3D") {
  for (const Shape& s : {Shape{2, 3, 5, 4}, Shape{2, 1, 37}, Shape{1, 2, 3, 4, 3}}) {
    CAPTURE(s);
    const auto x = testing::randn<double>(s, 4, 2.0), z = testing::mask<double>(s, 5);
    for (int variant : {-1, 0, 1, 2, 3}) {
      CAPTURE(variant);
      if (variant >= 0 && s != Shape{2, 3, 5, 4}) continue;  // the weights are shaped for 2D
      const auto o = variant < 0 ? BceDiceOptions<double>{} : options_with_everything(variant);
      testing::check_loss_gradients(
          x, [&](const Tensor<double>& v) { return bce_dice(v, z, o); },
          [&](const Tensor<double>& v, const Tensor<double>& go) {
            return bce_dice_backward(v, z, go, o);
          },
          [&](const Tensor<double>& v) { return bce_dice_value_and_grad(v, z, o); });
    }
  }
}

TEST_CASE("bce_dice: the Carvana CombinedLoss (unweighted) is bce mean + SoftDiceLoss") {
  // CombinedLoss(is_weight=False): BCEWithLogitsLoss (mean) + (1 - mean_n 2(I+1)/(U+1)).
  const Shape s{3, 1, 8, 8};
  const auto x = testing::randn<double>(s, 6, 2.0), z = testing::mask<double>(s, 7);
  double bce = 0;
  std::vector<double> inter(3), uni(3);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = 1 / (1 + std::exp(-x[i]));
    bce += -(z[i] * std::log(p) + (1 - z[i]) * std::log(1 - p));
    inter[i / 64] += p * z[i];
    uni[i / 64] += p + z[i];
  }
  double score = 0;
  for (int n = 0; n < 3; ++n) score += 2 * (inter[n] + 1) / (uni[n] + 1);
  const double expected = bce / x.numel() + (1 - score / 3);
  BceDiceOptions<double> o;
  o.dice.smooth_nr = 2;
  o.dice.smooth_dr = 1;
  CHECK(bce_dice(x, z, o)[0] == doctest::Approx(expected).epsilon(1e-12));
}

TEST_CASE("bce_dice: bad input") {
  const auto x = testing::randn<double>({2, 1, 4, 4}, 8),
             z = testing::mask<double>({2, 1, 4, 4}, 9);
  BceDiceOptions<double> o;
  o.dice.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(bce_dice(x, z, o),
                       "bce_dice: reduction none is not supported (options.bce.reduction mean, "
                       "options.dice.reduction none); use the two losses separately",
                       Error);
  o = {};
  o.dice.activation = Activation::none;
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(x, z, o),
                       "bce_dice_value_and_grad: options.dice.activation must be sigmoid: BCE and "
                       "Dice both read logits",
                       Error);
  o = {};
  o.dice_weight = INFINITY;
  CHECK_THROWS_AS(bce_dice(x, z, o), Error);
  o = {};
  o.dice.smooth_dr = -1;
  CHECK_THROWS_WITH_AS(bce_dice(x, z, o),
                       "bce_dice: options.dice.smooth_dr is -1; it must be finite and >= 0", Error);
  // The Dice term's options are named by their path in BceDiceOptions.
  o = {};
  o.dice.gamma = 0;
  CHECK_THROWS_WITH_AS(bce_dice(x, z, o),
                       "bce_dice: options.dice.gamma is 0; it must be finite and > 0", Error);
  o = {};
  o.dice.weight = Tensor<double>::full({1, 1, 1, 4, 4}, 1.0);
  CHECK_THROWS_WITH_AS(bce_dice(x, z, o),
                       "bce_dice: options.dice.weight (1,1,1,4,4) has more axes than the input "
                       "(2,1,4,4)",
                       Error);
  o = {};
  o.dice.class_weight = Tensor<double>::full({2}, 1.0);
  CHECK_THROWS_WITH_AS(bce_dice(x, z, o),
                       "bce_dice: options.dice.class_weight (2) must have shape (1), one weight "
                       "per channel of the input (2,1,4,4)",
                       Error);
  CHECK_THROWS_WITH_AS(bce_dice(x, testing::mask<double>({2, 1, 4, 3}, 1)),
                       "bce_dice: target (2,1,4,3) does not match logits (2,1,4,4)", Error);
  o = {};
  CHECK_THROWS_AS(bce_dice_backward(x, z, Tensor<double>::zeros({2}), o), Error);
}
