// soft_dice: gradients against finite differences for every option that changes the math,
// values against a direct computation, the empty-mask behaviour, and bad input.
#include <doctest/doctest.h>

#include <string>

#include <cmath>

#include "loss_check.hpp"

using namespace segloss;
using testing::check_loss_gradients;

namespace {

void check_all_reductions(const Tensor<double>& x, const Tensor<double>& t,
                          SoftDiceOptions<double> o, int64_t samples = 0, double eps = 1e-6) {
  testing::check_all_reductions(
      x, t, o, [](auto&&... a) { return soft_dice(a...); },
      [](auto&&... a) { return soft_dice_backward(a...); },
      [](auto&&... a) { return soft_dice_value_and_grad(a...); }, samples, eps);
}

// Scores straight from the definition, for (N, C, S) data, per image or over the batch.
std::vector<double> direct_scores(const Tensor<double>& x, const Tensor<double>& t,
                                  const SoftDiceOptions<double>& o) {
  const int64_t n = x.size(0), c = x.size(1), s = x.shape().numel_from(2);
  std::vector<double> I(n * c), P(n * c), G(n * c);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = o.activation == Activation::sigmoid ? 1 / (1 + std::exp(-x[i])) : x[i];
    const int64_t j = o.per_image ? i / s : (i / s) % c;
    I[j] += p * t[i];
    P[j] += p;
    G[j] += t[i];
  }
  std::vector<double> scores;
  for (int64_t j = 0; j < (o.per_image ? n * c : c); ++j)
    scores.push_back((2 * I[j] + o.smooth_nr) / (P[j] + G[j] + o.smooth_dr));
  return scores;
}

}  // namespace

TEST_CASE("soft_dice: gradcheck, per image and batch, 1D/2D/3D spatial") {
  for (const Shape& s : {Shape{2, 1, 37}, Shape{2, 3, 5, 4}, Shape{2, 2, 3, 4, 3}}) {
    for (bool per_image : {true, false}) {
      CAPTURE(s);
      CAPTURE(per_image);
      SoftDiceOptions<double> o;
      o.per_image = per_image;
      check_all_reductions(testing::randn<double>(s, 1, 2.0), testing::mask<double>(s, 2), o);
    }
  }
}

TEST_CASE("soft_dice: gradcheck, smooth terms") {
  const Shape s{2, 2, 6, 5};
  const auto x = testing::randn<double>(s, 3, 2.0);
  const auto t = testing::mask<double>(s, 4, 0.3);
  for (auto smooth : {std::pair{0.0, 0.0}, {2.0, 1.0}, {0.0, 1.0}, {1.0, 0.0}, {5.0, 5.0}}) {
    const double nr = smooth.first, dr = smooth.second;  // CAPTURE cannot take bindings (clang 14)
    CAPTURE(nr);
    CAPTURE(dr);
    SoftDiceOptions<double> o;
    o.smooth_nr = nr;
    o.smooth_dr = dr;
    check_all_reductions(x, t, o);
  }
}

TEST_CASE("soft_dice: gradcheck, probabilities (activation none) and soft targets") {
  const Shape s{3, 2, 5, 5};
  const auto p = testing::uniform<double>(s, 5, 0.05, 0.95);
  const auto t = testing::uniform<double>(s, 6, 0.0, 1.0);
  for (bool per_image : {true, false}) {
    SoftDiceOptions<double> o;
    o.activation = Activation::none;
    o.per_image = per_image;
    check_all_reductions(p, t, o);
  }
}

TEST_CASE("soft_dice: gradcheck across chunk boundaries (sampled)") {
  const Shape s{2, 1, 131, 129};  // planes of 16899 elements: two chunks each
  SoftDiceOptions<double> o;
  o.per_image = false;
  check_all_reductions(testing::randn<double>(s, 7, 2.0), testing::mask<double>(s, 8), o, 300,
                       1e-3);
}

TEST_CASE("soft_dice: values match the direct formula") {
  const Shape s{3, 2, 7, 5};
  const auto x = testing::randn<double>(s, 9, 2.0);
  const auto t = testing::mask<double>(s, 10);
  for (bool per_image : {true, false}) {
    SoftDiceOptions<double> o;
    o.per_image = per_image;
    o.smooth_nr = 2;
    o.smooth_dr = 1;
    const auto ref = direct_scores(x, t, o);
    o.reduction = Reduction::none;
    const auto v = soft_dice(x, t, o);
    CHECK(v.shape() == (per_image ? Shape{3, 2} : Shape{2}));
    double sum = 0;
    for (size_t j = 0; j < ref.size(); ++j) {
      CHECK(v[j] == doctest::Approx(1 - ref[j]).epsilon(1e-13));
      sum += 1 - ref[j];
    }
    o.reduction = Reduction::sum;
    CHECK(soft_dice(x, t, o)[0] == doctest::Approx(sum).epsilon(1e-13));
    o.reduction = Reduction::mean;
    CHECK(soft_dice(x, t, o)[0] == doctest::Approx(sum / ref.size()).epsilon(1e-13));
  }
}

TEST_CASE("soft_dice: a perfect prediction scores 1, empty masks score smooth_nr/smooth_dr") {
  SoftDiceOptions<double> o;
  o.activation = Activation::none;
  o.smooth_nr = o.smooth_dr = 0;
  const auto t = testing::mask<double>({2, 1, 6, 6}, 11);
  CHECK(soft_dice(t, t, o)[0] == doctest::Approx(0.0));  // loss 1 - 1
  const auto zero = Tensor<double>::zeros({1, 1, 4, 4});
  o.smooth_nr = 3;
  o.smooth_dr = 4;
  CHECK(soft_dice(zero, zero, o)[0] == doctest::Approx(1 - 0.75));
  o.smooth_nr = o.smooth_dr = 0;
  CHECK(std::isnan(soft_dice(zero, zero, o)[0]));  // 0/0, documented
  o = SoftDiceOptions<double>{};
  o.activation = Activation::none;
  CHECK(soft_dice(zero, zero, o)[0] == doctest::Approx(0.0));  // default smooth: score 1
}

TEST_CASE("soft_dice: NaN propagates") {
  auto x = testing::randn<double>({2, 1, 30}, 12);
  x[5] = NAN;
  const auto vg = soft_dice_value_and_grad(x, testing::mask<double>({2, 1, 30}, 13));
  CHECK(std::isnan(vg.value));
  CHECK(std::isnan(vg.grad[5]));
  CHECK(std::isfinite(vg.grad[40]));  // the other image is untouched
}

TEST_CASE("soft_dice: bad input names the function, argument and values") {
  const auto x = testing::randn<double>({2, 1, 4, 4}, 14);
  const auto t = testing::mask<double>({2, 1, 4, 4}, 15);
  CHECK_THROWS_WITH_AS(soft_dice(x, testing::mask<double>({2, 1, 4, 5}, 1)),
                       "soft_dice: target (2,1,4,5) does not match logits (2,1,4,4)", Error);
  SoftDiceOptions<double> o;
  o.smooth_nr = -1;
  CHECK_THROWS_WITH_AS(soft_dice(x, t, o),
                       "soft_dice: options.smooth_nr is -1; it must be finite and >= 0", Error);
  o.smooth_nr = 0;
  o.smooth_dr = NAN;
  CHECK_THROWS_WITH_AS(soft_dice(x, t, o),
                       "soft_dice: options.smooth_dr is nan; it must be finite and >= 0", Error);
  CHECK_THROWS_WITH_AS(
      soft_dice(Tensor<double>::zeros({2, 0, 4}), Tensor<double>::zeros({2, 0, 4})),
      "soft_dice: logits (2,0,4) is empty (a zero extent); an empty batch has no loss", Error);
  CHECK_THROWS_WITH_AS(soft_dice(Tensor<double>::zeros({4, 4}), Tensor<double>::zeros({4, 4})),
                       "soft_dice: logits (4,4) has rank 2; expected (N, C, spatial...) with 1 "
                       "to 3 spatial axes",
                       Error);
  o = SoftDiceOptions<double>{};
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(soft_dice_backward(x, t, Tensor<double>::zeros({2, 2}), o),
                       "soft_dice_backward: grad_out (2,2) does not match the loss values (2,1) "
                       "of reduction none",
                       Error);
  CHECK_THROWS_WITH_AS(soft_dice_value_and_grad(x, t, o),
                       "soft_dice_value_and_grad: reduction none has no single value; use "
                       "soft_dice and soft_dice_backward",
                       Error);
}
