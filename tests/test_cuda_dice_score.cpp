// dice_score on CUDA: the sums, scores, counts and mean equal the CPU's for every option (the
// presets, per-channel scores, the border crop in 1D, 2D and 3D, round, soft targets, the empty
// policies), check_binary names the CPU's first bad value, the same bits over 10 runs, and mixed
// devices are errors. The tests that need a GPU skip with a message when none is present.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;

namespace {

template <class T>
Tensor<T> dev(const Tensor<T>& t) {
  return testing::gpu(t);
}

bool same_or_both_nan(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

// Binary targets give exact counts, so the sums agree exactly; soft targets to rounding.
void check_close(const Tensor<double>& got, const Tensor<double>& want, double rtol) {
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < want.numel(); ++i) {
    CAPTURE(i);
    if (std::isnan(want[i])) {
      CHECK(std::isnan(got[i]));
    } else {
      CHECK(std::abs(got[i] - want[i]) <= rtol * std::max(1.0, std::abs(want[i])));
    }
  }
}

template <class T>
void check_parity(const Tensor<T>& pred, const Tensor<T>& target, const DiceScoreOptions& o,
                  double rtol = 0.0) {
  const auto want = dice_score(pred, target, o);
  const auto got = dice_score(dev(pred), dev(target), o);
  check_close(got.intersection, want.intersection, rtol);
  check_close(got.prediction, want.prediction, rtol);
  check_close(got.target, want.target, rtol);
  check_close(got.scores, want.scores, rtol == 0.0 ? 1e-15 : rtol);
  CHECK(got.counted == want.counted);
  CHECK(got.skipped == want.skipped);
  CHECK(got.empty == want.empty);
  if (std::isnan(want.mean)) {
    CHECK(std::isnan(got.mean));
  } else {
    CHECK(std::abs(got.mean - want.mean) <= std::max(rtol, 1e-15) * std::max(1.0, want.mean));
  }
}

}  // namespace

TEST_CASE_TEMPLATE("cuda dice_score: CPU parity, presets and options, 1D/2D/3D", T, float, double) {
  SEGLOSS_REQUIRE_GPU();
  for (const Shape& s : {Shape{3, 2, 300}, Shape{2, 3, 37, 41}, Shape{2, 2, 9, 10, 11}}) {
    CAPTURE(s);
    const auto x = testing::randn<T>(s, 1, 3.0);
    auto t = testing::mask<T>(s, 2);
    const auto probs = testing::uniform<T>(s, 3, 0.0, 1.0);
    const auto masks = testing::mask<T>(s, 4);
    const int64_t plane = s.numel_from(2);
    for (int64_t i = 0; i < plane; ++i) t[i] = T(0);  // image 0, channel 0: an empty target
    DiceScoreOptions o;
    SUBCASE("default: sigmoid, > 0.5, per channel, skip") {
      check_parity(x, t, o);
    }
    SUBCASE("carvana") {
      check_parity(x, t, DiceScoreOptions::carvana(0.3));
    }
    SUBCASE("carvana_np: masks, check_binary") {
      check_parity(masks, t, DiceScoreOptions::carvana_np());
    }
    SUBCASE("pytorch_unet") {
      check_parity(x, t, DiceScoreOptions::pytorch_unet());
    }
    SUBCASE("albu_dice_clamp: round, border, clamp") {
      DiceScoreOptions a = DiceScoreOptions::albu_dice_clamp();
      a.border = 2;  // 6 leaves no pixel of the small axes
      check_parity(x, t, a);
    }
    SUBCASE("probabilities, round, per channel, every empty policy") {
      o.activation = Activation::none;
      o.round = true;
      for (EmptyPolicy e :
           {EmptyPolicy::skip, EmptyPolicy::formula, EmptyPolicy::one, EmptyPolicy::zero}) {
        o.empty = e;
        check_parity(probs, t, o);
      }
    }
    SUBCASE("soft targets, smoothing, border 1, threshold 0.7") {
      o.threshold = 0.7;
      o.smooth_nr = 1.0;
      o.smooth_dr = 1.0;
      o.border = 1;
      check_parity(x, probs, o, 1e-12);
    }
  }
}

TEST_CASE("cuda dice_score: a grid-stride size, and the same bits over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 300, 400};  // 120,000 pixels a plane: several blocks per plane
  const auto x = testing::randn<float>(s, 5, 2.0);
  const auto t = testing::uniform<float>(s, 6, 0.0, 1.0);
  DiceScoreOptions o;
  o.border = 3;
  check_parity(x, t, o, 1e-12);
  const auto xd = dev(x), td = dev(t);
  const auto first = dice_score(xd, td, o);
  for (int run = 0; run < 10; ++run) {
    const auto r = dice_score(xd, td, o);
    CHECK(testing::same_bits(r.intersection, first.intersection));
    CHECK(testing::same_bits(r.target, first.target));
    CHECK(same_or_both_nan(r.mean, first.mean));
  }
}

TEST_CASE("cuda dice_score: check_binary names the CPU's first bad value") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 3, 4};
  auto t = testing::mask<double>(s, 8);
  auto p = testing::mask<double>(s, 9);
  const DiceScoreOptions o = DiceScoreOptions::carvana_np();
  CHECK_NOTHROW(dice_score(dev(p), dev(t), o));
  t[17] = 0.5;
  t[20] = 2.0;
  p[17] = 3.0;  // the target's bad value comes first at one index
  CHECK_THROWS_WITH_AS(dice_score(dev(p), dev(t), o),
                       "dice_score: target holds 0.5 at index 17 (1,0,1,1); with check_binary "
                       "every scored value must be 0 or 1",
                       Error);
  p[5] = -1.0;
  CHECK_THROWS_WITH_AS(dice_score(dev(p), dev(t), o),
                       "dice_score: pred holds -1 at index 5 (0,0,1,1); with check_binary every "
                       "scored value must be 0 or 1",
                       Error);
  DiceScoreOptions b = o;
  b.border = 1;  // index 5 is scored, index 0 is not
  p[5] = 1.0;
  p[17] = 1.0;
  t[17] = 1.0;
  t[20] = 1.0;
  p[0] = 7.0;
  CHECK_NOTHROW(dice_score(dev(p), dev(t), b));
  t[6] = std::nan("");
  CHECK_THROWS_WITH_AS(dice_score(dev(p), dev(t), b),
                       "dice_score: target holds nan at index 6 (0,0,1,2); with check_binary every "
                       "scored value must be 0 or 1",
                       Error);
}

TEST_CASE("cuda dice_score: mixed devices are errors") {
  SEGLOSS_REQUIRE_CUDA_BUILD();  // checked before any CUDA call
  const Shape s{1, 1, 4, 4};
  const auto xd = testing::unread_cuda_view<float>(s);
  const auto t = testing::mask<float>(s, 1);
  CHECK_THROWS_WITH_AS(dice_score(xd, t),
                       "dice_score: target (1,1,4,4) is on device cpu, but pred is on cuda: every "
                       "tensor of a call must be on one device",
                       Error);
}
