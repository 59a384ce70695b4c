// dice_score: scores against a direct count, the empty policies, the crop, rounding, NaN,
// many chunks at any thread count, and bad input. Golden values from PyTorch and the seeds are
// in test_golden_dice_score.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <segloss/core/pointwise.hpp>

#include "helpers.hpp"

using namespace segloss;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per (image, channel) I, P, G by a plain loop over a 2-D (N, C, H, W) tensor with a crop.
template <class T>
std::vector<double> direct_sums(const Tensor<T>& x, const Tensor<T>& t, double thr, int border,
                                bool sigmoid) {
  const Shape& s = x.shape();
  const int64_t h = s[2], w = s[3];
  std::vector<double> out(static_cast<size_t>(s[0] * s[1] * 3), 0.0);
  for (int64_t p = 0; p < s[0] * s[1]; ++p)
    for (int64_t y = border; y < h - border; ++y)
      for (int64_t xx = border; xx < w - border; ++xx) {
        const int64_t i = (p * h + y) * w + xx;
        const double prob = sigmoid ? 1.0 / (1.0 + std::exp(-static_cast<double>(x[i]))) : x[i];
        const double q = prob > thr ? 1.0 : 0.0;
        out[static_cast<size_t>(p * 3)] += q * t[i];
        out[static_cast<size_t>(p * 3 + 1)] += q;
        out[static_cast<size_t>(p * 3 + 2)] += t[i];
      }
  return out;
}

}  // namespace

TEST_CASE("dice_score: scores and sums equal a direct count (many chunks, crop, float/double)") {
  const Shape s{2, 3, 150, 130};  // 19500 pixels per plane: two chunks of rows
  const auto x = testing::randn<double>(s, 1, 2.0);
  const auto t = testing::mask<double>(s, 2, 0.3);
  for (int border : {0, 4}) {
    for (double thr : {0.5, 0.2}) {
      CAPTURE(border);
      CAPTURE(thr);
      DiceScoreOptions o;
      o.threshold = thr;
      o.border = border;
      o.smooth_nr = 0.5;
      o.smooth_dr = 0.25;
      const auto sums = direct_sums(x, t, thr, border, true);
      const auto r = dice_score(x, t, o);
      REQUIRE(r.scores.shape() == Shape{2, 3});
      double mean = 0;
      for (int64_t j = 0; j < 6; ++j) {
        const double i = sums[j * 3], p = sums[j * 3 + 1], g = sums[j * 3 + 2];
        CHECK(r.intersection[j] == i);
        CHECK(r.prediction[j] == p);
        CHECK(r.target[j] == g);
        const double score = (2 * i + 0.5) / (p + g + 0.25);
        CHECK(r.scores[j] == doctest::Approx(score).epsilon(1e-15));
        mean += score / 6;
      }
      CHECK(r.mean == doctest::Approx(mean).epsilon(1e-14));
      CHECK(r.counted == 6);
      // float: the same counts (no logit lies within float rounding of the threshold's).
      const auto rf = dice_score(testing::cast<float>(x), testing::cast<float>(t), o);
      for (int64_t j = 0; j < 6; ++j) CHECK(rf.prediction[j] == r.prediction[j]);
      CHECK(rf.mean == r.mean);
      // per image: the channels' sums added.
      o.per_channel = false;
      const auto ri = dice_score(x, t, o);
      REQUIRE(ri.scores.shape() == Shape{2});
      for (int64_t n = 0; n < 2; ++n) {
        double i = 0, p = 0, g = 0;
        for (int64_t c = 0; c < 3; ++c) {
          i += sums[(n * 3 + c) * 3];
          p += sums[(n * 3 + c) * 3 + 1];
          g += sums[(n * 3 + c) * 3 + 2];
        }
        CHECK(ri.scores[n] == doctest::Approx((2 * i + 0.5) / (p + g + 0.25)).epsilon(1e-15));
      }
    }
  }
}

TEST_CASE("dice_score: a perfect prediction scores 1, a disjoint one 0") {
  const Shape s{2, 2, 5, 6};
  const auto t = testing::mask<double>(s, 3, 0.5);
  auto logits = Tensor<double>::empty(s);
  for (int64_t i = 0; i < s.numel(); ++i) logits[i] = t[i] > 0 ? 4.0 : -4.0;
  CHECK(dice_score(logits, t).mean == 1.0);
  for (int64_t i = 0; i < s.numel(); ++i) logits[i] = -logits[i];
  const auto r = dice_score(logits, t);
  CHECK(r.mean == 0.0);
  // Masks as input.
  DiceScoreOptions o;
  o.activation = Activation::none;
  CHECK(dice_score(t, t, o).mean == 1.0);
}

TEST_CASE("dice_score: empty policies on an empty target and prediction") {
  // Image 0: target and prediction empty. Image 1: target empty, prediction not.
  // Image 2: 2 of 3 predicted pixels right, target of 4: S = 4 / 7.
  const Shape s{3, 1, 1, 4};
  const auto t = Tensor<double>::from({0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, s);
  const auto p = Tensor<double>::from({0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0}, s);
  DiceScoreOptions o;
  o.activation = Activation::none;
  auto r = dice_score(p, t, o);  // default: skip
  CHECK(std::isnan(r.scores[0]));
  CHECK(r.scores[1] == 0.0);
  CHECK(r.scores[2] == doctest::Approx(4.0 / 6.0));
  CHECK(r.skipped == 1);
  CHECK(r.empty == 1);
  CHECK(r.counted == 2);
  CHECK(r.mean == doctest::Approx(2.0 / 6.0));
  o.empty = EmptyPolicy::formula;
  r = dice_score(p, t, o);
  CHECK(std::isnan(r.scores[0]));
  CHECK(std::isnan(r.mean));
  CHECK(r.skipped == 0);
  CHECK(r.empty == 1);
  o.smooth_nr = 1.0;
  o.smooth_dr = 1.0;
  r = dice_score(p, t, o);
  CHECK(r.scores[0] == 1.0);  // smooth_nr / smooth_dr
  CHECK(r.scores[1] == 0.5);  // 1 / (1 + 1)
  o = {};
  o.activation = Activation::none;
  o.empty = EmptyPolicy::one;
  r = dice_score(p, t, o);
  CHECK(r.scores[0] == 1.0);
  CHECK(r.mean == doctest::Approx((1.0 + 0.0 + 4.0 / 6.0) / 3.0));
  o.empty = EmptyPolicy::zero;
  r = dice_score(p, t, o);
  CHECK(r.scores[0] == 0.0);
  CHECK(r.mean == doctest::Approx((4.0 / 6.0) / 3.0));
  // Everything skipped: the mean is NaN, and stays NaN under clamp.
  o.empty = EmptyPolicy::skip;
  o.clamp = true;
  r = dice_score(Tensor<double>::zeros(s), Tensor<double>::zeros(s), o);
  CHECK(std::isnan(r.mean));
  CHECK(r.skipped == 3);
  CHECK(r.counted == 0);
}

TEST_CASE("dice_score: the border crop equals scoring the cropped tensor, in 1D, 2D and 3D") {
  for (const Shape& s : {Shape{2, 2, 19}, Shape{2, 1, 9, 11}, Shape{1, 2, 7, 6, 8}}) {
    CAPTURE(s);
    const auto x = testing::randn<float>(s, 4, 2.0);
    const auto t = testing::mask<float>(s, 5);
    // Build the cropped tensors by hand (border 2 on every spatial axis).
    const int b = 2;
    Shape cs{s[0], s[1]};
    for (int d = 2; d < s.rank(); ++d) cs.push_back(s[d] - 2 * b);
    auto cx = Tensor<float>::empty(cs), ct = Tensor<float>::empty(cs);
    int64_t k = 0;
    for (int64_t i = 0; i < s.numel(); ++i) {
      int64_t rest = i;
      bool inside = true;
      for (int d = s.rank() - 1; d >= 2; --d) {
        const int64_t c = rest % s[d];
        rest /= s[d];
        inside = inside && c >= b && c < s[d] - b;
      }
      if (inside) {
        cx[k] = x[i];
        ct[k] = t[i];
        ++k;
      }
    }
    REQUIRE(k == cs.numel());
    DiceScoreOptions o;
    o.border = b;
    const auto r = dice_score(x, t, o);
    const auto rc = dice_score(cx, ct);
    for (int64_t j = 0; j < r.scores.numel(); ++j) {
      CHECK(r.intersection[j] == rc.intersection[j]);
      CHECK(r.prediction[j] == rc.prediction[j]);
      CHECK(r.target[j] == rc.target[j]);
    }
    CHECK((r.mean == rc.mean || (std::isnan(r.mean) && std::isnan(rc.mean))));
  }
}

TEST_CASE("dice_score: round is torch.round (half to even), threshold is strict") {
  DiceScoreOptions o;
  o.activation = Activation::none;
  o.round = true;
  o.empty = EmptyPolicy::formula;
  const Shape s{1, 1, 1, 8};
  const auto ones = Tensor<double>::full(s, 1.0);
  // round: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, 0.49 -> 0, 0.51 -> 1, 3.5 -> 4, -1.5 -> -2
  const auto v = Tensor<double>::from({0.5, 1.5, 2.5, -0.5, 0.49, 0.51, 3.5, -1.5}, s);
  auto r = dice_score(v, ones, o);
  CHECK(r.prediction[0] == 0 + 2 + 2 + 0 + 0 + 1 + 4 - 2);
  CHECK(r.intersection[0] == r.prediction[0]);
  // threshold: p > 0.5, so 0.5 itself is negative.
  o.round = false;
  r = dice_score(v, ones, o);
  CHECK(r.prediction[0] == 4);  // 1.5, 2.5, 0.51, 3.5
  // sigmoid(0) = 0.5 is not > 0.5.
  o.activation = Activation::sigmoid;
  r = dice_score(Tensor<float>::zeros(s), Tensor<float>::full(s, 1.f), o);
  CHECK(r.prediction[0] == 0);
  CHECK(r.mean == 0.0);
}

TEST_CASE("dice_score: NaN") {
  const Shape s{1, 1, 1, 4};
  auto x = Tensor<double>::from({kNaN, 3.0, -3.0, 3.0}, s);
  const auto t = Tensor<double>::from({1, 1, 0, 0}, s);
  // A NaN logit is not > threshold.
  auto r = dice_score(x, t);
  CHECK(r.prediction[0] == 2);
  CHECK(r.intersection[0] == 1);
  // With round it propagates.
  DiceScoreOptions o;
  o.round = true;
  r = dice_score(x, t, o);
  CHECK(std::isnan(r.scores[0]));
  CHECK(std::isnan(r.mean));
  // A NaN target propagates.
  auto tn = t.clone();
  tn[2] = kNaN;
  r = dice_score(Tensor<double>::from({1, 1, 1, 1}, s), tn);
  CHECK(std::isnan(r.mean));
}

TEST_CASE("dice_score: bit-identical at any thread count") {
  const Shape s{3, 2, 140, 150};
  const auto x = testing::randn<float>(s, 6, 2.0);
  const auto t = testing::uniform<float>(s, 7, 0.0, 1.0);  // soft target: inexact sums
  const int before = num_threads();
  set_num_threads(1);
  const auto ref = dice_score(x, t);
  for (int n : {2, 3, 8}) {
    set_num_threads(n);
    const auto r = dice_score(x, t);
    CHECK(r.mean == ref.mean);
    for (int64_t j = 0; j < 6; ++j) CHECK(r.target[j] == ref.target[j]);
  }
  set_num_threads(before);
}

TEST_CASE("dice_score: presets") {
  const auto c = DiceScoreOptions::carvana(0.4);
  CHECK(c.threshold == 0.4);
  CHECK(c.activation == Activation::sigmoid);
  CHECK_FALSE(c.per_channel);
  CHECK(c.empty == EmptyPolicy::formula);
  const auto np = DiceScoreOptions::carvana_np();
  CHECK(np.activation == Activation::none);
  CHECK(np.check_binary);
  const auto u = DiceScoreOptions::pytorch_unet();
  CHECK(u.threshold == 0.6);
  CHECK(u.smooth_nr == 2e-4);
  CHECK(u.smooth_dr == 1e-4);
  const auto a = DiceScoreOptions::albu_dice_clamp();
  CHECK(a.round);
  CHECK(a.border == 6);
  CHECK(a.clamp);
  CHECK(a.smooth_nr == 2.0);
  CHECK(a.smooth_dr == 1.0);
  // Pytorch-UNet: an empty image scores 2e-4 / 1e-4 = 2.
  const Shape s{1, 1, 3, 3};
  const auto r = dice_score(Tensor<double>::full(s, -5.0), Tensor<double>::zeros(s), u);
  CHECK(r.scores[0] == doctest::Approx(2.0));
}

TEST_CASE("dice_score: check_binary names the first bad value") {
  const Shape s{2, 1, 3, 4};
  auto t = testing::mask<double>(s, 8);
  auto p = testing::mask<double>(s, 9);
  DiceScoreOptions o = DiceScoreOptions::carvana_np();
  CHECK_NOTHROW(dice_score(p, t, o));
  t[17] = 0.5;
  t[20] = 2.0;
  CHECK_THROWS_WITH_AS(dice_score(p, t, o),
                       "dice_score: target holds 0.5 at index 17 (1,0,1,1); with check_binary "
                       "every scored value must be 0 or 1",
                       Error);
  t[17] = 1.0;
  t[20] = 1.0;
  p[5] = -1.0;
  CHECK_THROWS_WITH_AS(dice_score(p, t, o),
                       "dice_score: pred holds -1 at index 5 (0,0,1,1); with check_binary every "
                       "scored value must be 0 or 1",
                       Error);
  // Logits are not checked; a cropped-away value is not scored, so not checked.
  o.activation = Activation::sigmoid;
  CHECK_NOTHROW(dice_score(p, t, o));
  o.activation = Activation::none;
  o.border = 1;
  p[5] = 1.0;
  p[0] = 7.0;  // (0,0,0,0): on the border
  CHECK_NOTHROW(dice_score(p, t, o));
  t[6] = kNaN;  // (0,0,1,2): scored
  CHECK_THROWS_WITH_AS(dice_score(p, t, o),
                       "dice_score: target holds nan at index 6 (0,0,1,2); with check_binary every "
                       "scored value must be 0 or 1",
                       Error);
}

TEST_CASE("dice_score: bad input") {
  const auto x = testing::randn<float>({2, 1, 8, 8}, 10);
  const auto t = testing::mask<float>({2, 1, 8, 8}, 11);
  CHECK_THROWS_WITH_AS(dice_score(x, testing::mask<float>({2, 1, 8, 7}, 1)),
                       "dice_score: target (2,1,8,7) does not match pred (2,1,8,8)", Error);
  CHECK_THROWS_WITH_AS(
      dice_score(Tensor<float>::empty({0, 1, 8, 8}), Tensor<float>::empty({0, 1, 8, 8})),
      "dice_score: pred (0,1,8,8) is empty (a zero extent); an empty batch has "
      "no score",
      Error);
  DiceScoreOptions o;
  o.threshold = std::nan("");
  CHECK_THROWS_WITH_AS(dice_score(x, t, o),
                       "dice_score: options.threshold is nan; it must be a probability in [0, 1] "
                       "(for logits too: it applies to sigmoid(x))",
                       Error);
  o.threshold = 1.5;
  CHECK_THROWS_AS(dice_score(x, t, o), Error);
  o.threshold = -0.1;
  CHECK_THROWS_AS(dice_score(x, t, o), Error);
  o = {};
  o.border = -1;
  CHECK_THROWS_WITH_AS(dice_score(x, t, o), "dice_score: options.border is -1; it must be >= 0",
                       Error);
  o.border = 4;
  CHECK_THROWS_WITH_AS(dice_score(x, t, o),
                       "dice_score: options.border 4 leaves no pixel of spatial axis 2 (extent 8) "
                       "of pred (2,1,8,8)",
                       Error);
  o = {};
  o.smooth_dr = -1;
  CHECK_THROWS_WITH_AS(dice_score(x, t, o),
                       "dice_score: options.smooth_dr is -1; it must be finite and >= 0", Error);
  CHECK_THROWS_WITH_AS(dice_score(Tensor<float>::zeros({2, 8}), Tensor<float>::zeros({2, 8})),
                       "dice_score: pred (2,8) has rank 2; expected (N, C, spatial...) with 1 to 3 "
                       "spatial axes",
                       Error);
  CHECK_THROWS_WITH_AS(dice_score(x, Tensor<float>()), "dice_score: target is undefined", Error);
  std::vector<float> buf(64 * 2, 0.f);
  const auto gpu = Tensor<float>::view(buf.data(), {2, 1, 8, 8}, Device::cuda);
  CHECK_THROWS_WITH_AS(dice_score(x, gpu),
                       cuda::built() ? "dice_score: target (2,1,8,8) is on device cuda, but "
                                       "pred is on cpu: every tensor of a call must be on one "
                                       "device"
                                     : "dice_score: target (2,1,8,8) is on device cuda, but this "
                                       "build has no CUDA backend",
                       Error);
}

TEST_CASE("dice_score: logits near the threshold's logit decide as sigmoid in T does") {
  // Rows of one pixel: each row takes the logit comparison when its logit is outside the
  // margin around logit(threshold), and the sigmoid otherwise. Both must agree with computing
  // sigmoid(x) in T and comparing it with T(threshold), pixel by pixel.
  for (double thr : {0.3, 0.5, 0.6, 0.9, 0.999}) {
    CAPTURE(thr);
    const double x0 = std::log(thr / (1.0 - thr));
    const int64_t n = 4001;
    auto xf = Tensor<float>::empty({1, 1, n, 1});
    auto xd = Tensor<double>::empty({1, 1, n, 1});
    for (int64_t j = 0; j < n; ++j) {
      const double step = (j - n / 2) * 1e-6;  // +-2e-3 around x0, through the margin
      xf[j] = static_cast<float>(x0 + step * (1.0 + std::fabs(x0)));
      xd[j] = x0 + (j - n / 2) * 1e-15 * (1.0 + std::fabs(x0));
    }
    DiceScoreOptions o;
    o.threshold = thr;
    const auto rf = dice_score(xf, Tensor<float>::full(xf.shape(), 1.f), o);
    const auto rd = dice_score(xd, Tensor<double>::full(xd.shape(), 1.0), o);
    int64_t want_f = 0, want_d = 0;
    for (int64_t j = 0; j < n; ++j) {
      want_f += pw::sigmoid<float>(xf[j], pw::logit<float>(xf[j])) > static_cast<float>(thr);
      want_d += pw::sigmoid<double>(xd[j], pw::logit<double>(xd[j])) > thr;
    }
    CHECK(rf.prediction[0] == static_cast<double>(want_f));
    CHECK(rd.prediction[0] == static_cast<double>(want_d));
    CHECK(want_f > 0);
    CHECK(want_f < n);
  }
}
