// Golden tests for dice_score: segloss against the header's formulas in torch ops and against
// the seeds' own metric code (Carvana DiceScore and dice_score_np, Pytorch-UNet's eval_net,
// albu's dice_clamp with its 6-pixel crop).
//
// tests/golden/dice_score.txt is written by tests/golden/generate_dice_score.py (see
// tests/golden/README.md). For every case this runs segloss in double and in float (inputs
// rounded to float; the generator checked that the hard predictions are the same) and checks
// the mean (1e-12 relative), every score (NaN where skipped), the sums I, P, G (exactly: they
// are counts or sums of multiples of 1/8), and the skipped and empty counts. Seed cases run
// with the preset named in the case, whose options must equal the case's, and also compare
// the mean with the seed's own value (1e-12; Pytorch-UNet 2e-7, since its DiceCoeff rounds each
// score to float32). A missing or short file fails.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

constexpr int64_t kMinCases = 46;
constexpr int64_t kMinSeedCases = 13;

EmptyPolicy parse_policy(const std::string& s) {
  if (s == "skip") return EmptyPolicy::skip;
  if (s == "formula") return EmptyPolicy::formula;
  if (s == "one") return EmptyPolicy::one;
  REQUIRE_MESSAGE(s == "zero", "unknown empty policy '", s, "'");
  return EmptyPolicy::zero;
}

DiceScoreOptions options_of(const GoldenCase& c) {
  DiceScoreOptions o;
  o.activation = c.option("activation") == "none" ? Activation::none : Activation::sigmoid;
  o.threshold = parse_double(c.option("threshold"));
  o.round = c.option("round") == "1";
  o.smooth_nr = parse_double(c.option("smooth_nr"));
  o.smooth_dr = parse_double(c.option("smooth_dr"));
  o.per_channel = c.option("per_channel") == "1";
  o.border = static_cast<int>(parse_signed(c.option("border")));
  o.empty = parse_policy(c.option("empty"));
  o.clamp = c.option("clamp") == "1";
  return o;
}

// The preset of a seed case; its options must be the case's (check_binary aside, which the
// file does not record).
DiceScoreOptions preset_of(const GoldenCase& c) {
  const std::string r = c.option("reference");
  DiceScoreOptions p;
  if (r == "carvana_DiceScore") {
    p = DiceScoreOptions::carvana(parse_double(c.option("threshold")));
  } else if (r == "carvana_dice_score_np") {
    p = DiceScoreOptions::carvana_np();
  } else if (r == "pytorch_unet_eval") {
    p = DiceScoreOptions::pytorch_unet();
  } else {
    REQUIRE_MESSAGE(r == "albu_dice_clamp", "unknown reference '", r, "'");
    p = DiceScoreOptions::albu_dice_clamp();
  }
  const DiceScoreOptions o = options_of(c);
  CHECK(p.activation == o.activation);
  CHECK(p.threshold == o.threshold);
  CHECK(p.round == o.round);
  CHECK(p.smooth_nr == o.smooth_nr);
  CHECK(p.smooth_dr == o.smooth_dr);
  CHECK(p.per_channel == o.per_channel);
  CHECK(p.border == o.border);
  CHECK(p.empty == o.empty);
  CHECK(p.clamp == o.clamp);
  return p;
}

constexpr Tolerance kExact{0.0, 0.0};
constexpr Tolerance kMean{1e-12, 0.0};

template <class T>
void run_case(const GoldenCase& c, const DiceScoreOptions& o) {
  const Tensor<T> pred = to_tensor<T>(c.tensor("pred"));
  const Tensor<T> target = to_tensor<T>(c.tensor("target"));
  const DiceScoreResult r = dice_score(pred, target, o);
  check_value("mean", r.mean, c.value, kMean);
  check_tensor("intersection", r.intersection, c.tensor("intersection"), kExact);
  check_tensor("prediction", r.prediction, c.tensor("prediction"), kExact);
  check_tensor("target", r.target, c.tensor("target_sum"), kExact);
  // Scores: NaN exactly where the file has NaN (skipped, or 0/0 by the formula).
  const GoldenTensor& want = c.tensor("scores");
  REQUIRE(r.scores.shape() == Shape(want.dims.begin(), want.dims.end()));
  for (int64_t j = 0; j < r.scores.numel(); ++j) {
    CAPTURE(j);
    check_value("score", r.scores[j], want.values[static_cast<size_t>(j)], kMean);
  }
  CHECK(r.skipped == parse_signed(c.option("skipped")));
  CHECK(r.empty == parse_signed(c.option("empty_count")));
  CHECK(r.counted + r.skipped == r.scores.numel());
  if (!c.option("seed_value").empty()) {
    const double seed = parse_double(c.option("seed_value"));
    const bool unet = c.option("reference") == "pytorch_unet_eval";
    check_value("seed value", r.mean, seed, Tolerance{unet ? 2e-7 : 1e-12, 0.0});
  }
}

}  // namespace

TEST_CASE("dice_score: golden values from the header's formulas in torch and the seeds' code") {
  const GoldenFile f = load_golden("dice_score.txt", "generate_dice_score.py");
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  CHECK(static_cast<int64_t>(f.cases.size()) >= kMinCases);
  int64_t seeds = 0;
  for (const GoldenCase& c : f.cases) {
    CAPTURE(c.name);
    REQUIRE(c.loss == "dice_score");
    const bool seed = !c.option("reference").empty();
    seeds += seed ? 1 : 0;
    const DiceScoreOptions o = seed ? preset_of(c) : options_of(c);
    {
      INFO("double");
      run_case<double>(c, o);
    }
    {
      INFO("float");
      run_case<float>(c, o);
    }
  }
  CHECK(seeds >= kMinSeedCases);
}
