// Golden tests: segloss against reference values computed by PyTorch in float64.
//
// tests/golden/*.txt are written by tests/golden/generate.py (see tests/golden/README.md for
// the format and how to regenerate). For every case this runs segloss in double and checks
//   forward (value for mean/sum, values for none), backward with the stored grad_out, and for
//   mean/sum both forms of value_and_grad
// against PyTorch at a relative tolerance of 1e-10, then repeats everything in float with the
// inputs rounded to float, at 1e-4 relative to the largest magnitude of the golden tensor.
// A missing, truncated or empty golden file fails the test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

// ---------------------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------------------

// The calls of one loss, bound to its options: forward, backward, and both value_and_grad forms.
template <class T, class Forward, class Backward, class Fused, class FusedInto>
void check_case(const GoldenCase& c, Reduction reduction, const Tolerance& tol,
                const Forward& forward, const Backward& backward, const Fused& fused,
                const FusedInto& fused_into) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  const Tensor<T> z = to_tensor<T>(c.tensor("target"));
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");

  // Forward.
  const Tensor<T> out = forward(x, z);
  if (reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }

  // Backward with the stored grad_out: golden grad = autograd with that grad_out.
  check_tensor("backward grad", backward(x, z, grad_out), c.tensor("grad"), tol);

  if (reduction == Reduction::none) return;
  // value_and_grad computes d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  const ValueAndGrad<T> vg = fused(x, z);
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);

  // The second form writes into a caller's buffer (filled with NaN first).
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = fused_into(x, z, buf);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

template <class T>
void run_bce_case(const GoldenCase& c, const Tolerance& tol) {
  BceWithLogitsOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  if (!c.option("label_smoothing").empty())
    o.label_smoothing = parse_double(c.option("label_smoothing"));
  const std::string mean_over = c.option("mean_over");
  if (mean_over == "weight_sum") {
    o.mean_over = BceMeanOver::weight_sum;
  } else {
    REQUIRE_MESSAGE(mean_over.empty(), "bad mean_over '", mean_over, "'");
  }
  if (c.has("pos_weight")) {
    // PyTorch got pos_weight as (C, 1, ..., 1) or (1); segloss takes the C (or 1) values.
    const GoldenTensor& pw = c.tensor("pos_weight");
    GoldenTensor flat{{static_cast<int64_t>(pw.values.size())}, pw.values};
    o.pos_weight = to_tensor<T>(flat);
  }
  check_case<T>(
      c, o.reduction, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z) { return bce_with_logits(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return bce_with_logits_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z) {
        return bce_with_logits_value_and_grad(x, z, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad) {
        return bce_with_logits_value_and_grad(x, z, grad, o);
      });
}

template <class T>
void run_dice_case(const GoldenCase& c, const Tolerance& tol) {
  SoftDiceOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  o.smooth_nr = parse_double(c.option("smooth_nr"));
  o.smooth_dr = parse_double(c.option("smooth_dr"));
  const std::string per_image = c.option("per_image"), activation = c.option("activation");
  REQUIRE_MESSAGE((per_image == "1" || per_image == "0"), "bad per_image '", per_image, "'");
  REQUIRE_MESSAGE((activation == "sigmoid" || activation == "none"), "bad activation '", activation,
                  "'");
  o.per_image = per_image == "1";
  o.activation = activation == "sigmoid" ? Activation::sigmoid : Activation::none;
  check_case<T>(
      c, o.reduction, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z) { return soft_dice(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return soft_dice_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z) { return soft_dice_value_and_grad(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad) {
        return soft_dice_value_and_grad(x, z, grad, o);
      });
}

// Loads a golden file and checks that it holds at least `min_cases` cases of `loss`, all with
// the tensors every case needs.
GoldenFile require_golden(const std::string& filename, const std::string& loss, size_t min_cases) {
  GoldenFile f = load_golden(filename, "generate.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE(filename, ": ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= min_cases, "only ", f.cases.size(),
                  " cases, expected >= ", min_cases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.loss == loss);
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
  }
  return f;
}

// The generator writes 53 bce_with_logits cases, 20 more with the label_smoothing and mean_over
// options, and 48 soft_dice cases; fewer means a broken file.
constexpr size_t kMinBceCases = 53;
constexpr size_t kMinBceOptionCases = 20;
constexpr size_t kMinDiceCases = 48;

}  // namespace

TEST_CASE("golden: bce_with_logits matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: bce_with_logits matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: bce_with_logits label_smoothing and mean_over match PyTorch in double") {
  const GoldenFile f =
      require_golden("bce_with_logits_options.txt", "bce_with_logits", kMinBceOptionCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: bce_with_logits label_smoothing and mean_over match PyTorch in float") {
  const GoldenFile f =
      require_golden("bce_with_logits_options.txt", "bce_with_logits", kMinBceOptionCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: bce_with_logits options cover smoothing, weight sums and the seeds") {
  // Each semantics that a plausible implementation could get wrong has a case: smoothing with
  // each reduction, eps = 1, smp's smooth_factor form, the weight sum over a broadcast weight
  // (counted once per element it covers), mean_over without a weight, both options together,
  // and Carvana's WeightedBCELoss2d evaluated by the seed code itself.
  const GoldenFile f =
      require_golden("bce_with_logits_options.txt", "bce_with_logits", kMinBceOptionCases);
  int smooth_mean = 0, smooth_sum = 0, smooth_none = 0, smooth_one = 0, smp = 0, sum_broadcast = 0,
      sum_no_weight = 0, both = 0, carvana = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    const bool ls = !c.option("label_smoothing").empty();
    const bool ws = c.option("mean_over") == "weight_sum";
    const std::string r = c.option("reduction"), ref = c.option("reference");
    if (ls) {
      (r == "mean" ? smooth_mean : r == "sum" ? smooth_sum : smooth_none) += 1;
      smooth_one += c.option("label_smoothing") == "1" ? 1 : 0;
    }
    smp += ref == "smp_SoftBCEWithLogitsLoss" ? 1 : 0;
    if (ws && r == "mean") {
      if (!c.has("weight"))
        ++sum_no_weight;
      else if (c.tensor("weight").values.size() < c.tensor("logits").values.size())
        ++sum_broadcast;
      both += ls ? 1 : 0;
    }
    if (ref == "carvana_WeightedBCELoss2d") {
      ++carvana;
      CHECK(ws);
      CHECK(r == "mean");
      CHECK(c.has("weight"));
    }
  }
  CHECK(smooth_mean >= 2);
  CHECK(smooth_sum >= 1);
  CHECK(smooth_none >= 2);
  CHECK(smooth_one >= 1);
  CHECK(smp >= 2);
  CHECK(sum_broadcast >= 3);
  CHECK(sum_no_weight >= 1);
  CHECK(both >= 1);
  CHECK(carvana >= 2);
}

TEST_CASE("golden: soft_dice matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_dice_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: soft_dice matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_dice_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: the Carvana seed cases are present") {
  // The equivalences the seeds note claims are proved by these cases, computed with the seed
  // code itself: BCELoss2d == bce_with_logits(mean); SoftDiceLoss == soft_dice(smooth_nr 2,
  // smooth_dr 1, per_image, mean) for one channel.
  const GoldenFile bce = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  const GoldenFile dice = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  int bce_seed = 0, dice_seed = 0;
  for (const GoldenCase& c : bce.cases)
    if (c.option("reference") == "carvana_BCELoss2d") {
      ++bce_seed;
      CHECK(c.option("reduction") == "mean");
    }
  for (const GoldenCase& c : dice.cases)
    if (c.option("reference") == "carvana_SoftDiceLoss") {
      ++dice_seed;
      INFO("case ", c.name);
      CHECK(c.option("smooth_nr") == "2");
      CHECK(c.option("smooth_dr") == "1");
      CHECK(c.option("per_image") == "1");
      CHECK(c.option("reduction") == "mean");
      CHECK(c.shape.at(1) == 1);
    }
  CHECK(bce_seed >= 1);
  CHECK(dice_seed >= 1);
}
