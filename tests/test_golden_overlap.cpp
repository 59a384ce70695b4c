// Golden tests for the overlap losses (soft_dice, soft_jaccard, tversky) and bce_dice: segloss
// against reference values computed by PyTorch in float64.
//
// tests/golden/overlap.txt is written by tests/golden/generate_overlap.py (tests/golden/README.md,
// section "overlap", lists the cases and the references: the formulas of losses/overlap.hpp in
// torch ops; MONAI's DiceLoss / TverskyLoss and segmentation_models_pytorch's Tversky / Dice /
// Jaccard semantics re-implemented in torch ops; the seeds' Carvana, albu and Pytorch-UNet code
// run verbatim). Every option that changes the math is written in the case, so the test sets
// each one explicitly. For every case this runs segloss in double and checks
//   forward (value for mean/sum, per-score values for none) and the kept / skipped counts of
//   OverlapInfo, backward with the stored grad_out, and for mean/sum both forms of
//   value_and_grad (and bce_dice's two parts)
// against PyTorch at a relative tolerance of 1e-10, then repeats everything in float with the
// inputs rounded to float, at 1e-5 of the largest magnitude of each golden tensor and 1e-5 of
// each golden value (ten times tighter than the other golden tests' 1e-4). The Pytorch-UNet cases
// hold values only (the seed's own backward is not a gradient). A missing, truncated or short
// golden file fails the test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
// Options from a case
// ---------------------------------------------------------------------------------------------

std::string required(const GoldenCase& c, const std::string& key) {
  const std::string v = c.option(key);
  REQUIRE_MESSAGE(!v.empty(), "case ", c.name, " has no option ", key);
  return v;
}

bool flag(const GoldenCase& c, const std::string& key) {
  const std::string v = required(c, key);
  REQUIRE_MESSAGE((v == "0" || v == "1"), "option ", key, " is '", v, "', not 0 or 1");
  return v == "1";
}

std::string reference(const GoldenCase& c) {
  const std::string r = c.option("reference");
  return r.empty() ? "header" : r;
}

// The overlap options every case spells out (losses/overlap.hpp).
template <class T>
void fill_overlap(const GoldenCase& c, OverlapOptions<T>& o) {
  o.reduction = parse_reduction(required(c, "reduction"));
  o.smooth_nr = parse_double(required(c, "smooth_nr"));
  o.smooth_dr = parse_double(required(c, "smooth_dr"));
  o.per_image = flag(c, "per_image");
  const std::string activation = required(c, "activation");
  REQUIRE_MESSAGE((activation == "sigmoid" || activation == "none"), "bad activation '", activation,
                  "'");
  o.activation = activation == "sigmoid" ? Activation::sigmoid : Activation::none;
  o.squared = flag(c, "squared");
  const std::string weighting = required(c, "weighting");
  REQUIRE_MESSAGE((weighting == "squared" || weighting == "on_inputs"), "bad weighting '",
                  weighting, "'");
  o.weighting = weighting == "squared" ? OverlapWeighting::squared : OverlapWeighting::on_inputs;
  o.include_background = flag(c, "include_background");
  const std::string empty = required(c, "empty");
  if (empty == "formula") {
    o.empty = EmptyPolicy::formula;
  } else if (empty == "one") {
    o.empty = EmptyPolicy::one;
  } else if (empty == "zero") {
    o.empty = EmptyPolicy::zero;
  } else {
    REQUIRE_MESSAGE(empty == "skip", "bad empty policy '", empty, "'");
    o.empty = EmptyPolicy::skip;
  }
  o.gamma = parse_double(required(c, "gamma"));
  o.log = flag(c, "log");
  o.clamp = flag(c, "clamp");
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  if (c.has("class_weight")) o.class_weight = to_tensor<T>(c.tensor("class_weight"));
}

// ---------------------------------------------------------------------------------------------
// Checking one case
// ---------------------------------------------------------------------------------------------

void check_info(const char* what, const OverlapInfo& info, const GoldenCase& c) {
  const int64_t kept = parse_count(required(c, "kept"));
  const int64_t skipped = parse_count(required(c, "skipped"));
  CHECK_MESSAGE(info.kept == kept, what, ": kept ", info.kept, ", torch reference ", kept);
  CHECK_MESSAGE(info.skipped == skipped, what, ": skipped ", info.skipped, ", torch reference ",
                skipped);
}

// Forward, backward with the stored grad_out, both value_and_grad forms, for a loss given as
// four callables (each taking an OverlapInfo* where the loss has one).
template <class T, class Fwd, class Bwd, class Fused, class FusedInto>
void check_overlap_case(const GoldenCase& c, Reduction reduction, const Tolerance& tol, Fwd fwd,
                        Bwd bwd, Fused fused, FusedInto fused_into) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  const Tensor<T> z = to_tensor<T>(c.tensor("target"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");

  OverlapInfo info{-1, -1};
  const Tensor<T> out = fwd(x, z, &info);
  check_info("forward info", info, c);
  if (reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }

  const bool has_grad = c.has("grad");
  if (has_grad) {
    const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
    check_tensor("backward grad", bwd(x, z, grad_out), c.tensor("grad"), tol);
  }
  if (reduction == Reduction::none) return;

  // value_and_grad computes d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = has_grad ? c.tensor("grad_out").values.at(0) : 1.0;
  info = OverlapInfo{-1, -1};
  const ValueAndGrad<T> vg = fused(x, z, &info);
  check_info("value_and_grad info", info, c);
  check_value("value_and_grad value", vg.value, c.value, tol);
  if (has_grad) check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);

  // The second form writes into a caller's buffer (filled with NaN first).
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  info = OverlapInfo{-1, -1};
  const double v = fused_into(x, z, buf, &info);
  check_info("value_and_grad(into) info", info, c);
  check_value("value_and_grad(into) value", v, c.value, tol);
  if (has_grad) check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

template <class T>
void run_overlap_case(const GoldenCase& c, const Tolerance& tol) {
  if (c.loss == "soft_dice" || c.loss == "soft_jaccard") {
    OverlapOptions<T> o;
    fill_overlap(c, o);
    const bool dice = c.loss == "soft_dice";
    check_overlap_case<T>(
        c, o.reduction, tol,
        [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
          return dice ? soft_dice(x, z, o, info) : soft_jaccard(x, z, o, info);
        },
        [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
          return dice ? soft_dice_backward(x, z, go, o) : soft_jaccard_backward(x, z, go, o);
        },
        [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
          return dice ? soft_dice_value_and_grad(x, z, o, info)
                      : soft_jaccard_value_and_grad(x, z, o, info);
        },
        [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad, OverlapInfo* info) {
          return dice ? soft_dice_value_and_grad(x, z, grad, o, info)
                      : soft_jaccard_value_and_grad(x, z, grad, o, info);
        });
    return;
  }
  REQUIRE_MESSAGE(c.loss == "tversky", "unknown loss '", c.loss, "'");
  TverskyOptions<T> o;
  fill_overlap<T>(c, o);
  o.alpha = parse_double(required(c, "alpha"));
  o.beta = parse_double(required(c, "beta"));
  check_overlap_case<T>(
      c, o.reduction, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
        return tversky(x, z, o, info);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return tversky_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
        return tversky_value_and_grad(x, z, o, info);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad, OverlapInfo* info) {
        return tversky_value_and_grad(x, z, grad, o, info);
      });
}

// bce_dice: the Dice options as above; BCE's reduction, weight and pos_weight (stored as the C
// values segloss takes; the generator reshaped them for torch); the two parts.
template <class T>
void run_bce_dice_case(const GoldenCase& c, const Tolerance& tol) {
  BceDiceOptions<T> o;
  fill_overlap(c, o.dice);
  o.bce_weight = parse_double(required(c, "bce_weight"));
  o.dice_weight = parse_double(required(c, "dice_weight"));
  o.bce.reduction = parse_reduction(required(c, "bce.reduction"));
  const std::string mean_over = c.option("bce.mean_over");
  REQUIRE_MESSAGE((mean_over.empty() || mean_over == "weight_sum"), "bad bce.mean_over '",
                  mean_over, "'");
  if (mean_over == "weight_sum") o.bce.mean_over = BceMeanOver::weight_sum;
  if (c.has("bce.weight")) o.bce.weight = to_tensor<T>(c.tensor("bce.weight"));
  if (c.has("bce.pos_weight")) o.bce.pos_weight = to_tensor<T>(c.tensor("bce.pos_weight"));
  const double part_bce = parse_double(required(c, "part_bce"));
  const double part_dice = parse_double(required(c, "part_dice"));
  auto check_parts = [&](const char* what, const BceDiceParts& parts) {
    INFO(what);
    check_value("part bce", parts.bce, part_bce, tol);
    check_value("part dice", parts.dice, part_dice, tol);
  };
  // bce_dice has no OverlapInfo: its counts are checked through a soft_dice call with the same
  // Dice options.
  check_overlap_case<T>(
      c, Reduction::mean, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
        soft_dice(x, z, o.dice, info);
        BceDiceParts parts;
        const Tensor<T> out = bce_dice(x, z, o, &parts);
        check_parts("forward parts", parts);
        return out;
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return bce_dice_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, OverlapInfo* info) {
        soft_dice(x, z, o.dice, info);
        BceDiceParts parts;
        const ValueAndGrad<T> vg = bce_dice_value_and_grad(x, z, o, &parts);
        check_parts("value_and_grad parts", parts);
        return vg;
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad, OverlapInfo* info) {
        soft_dice(x, z, o.dice, info);
        BceDiceParts parts;
        const double v = bce_dice_value_and_grad(x, z, grad, o, &parts);
        check_parts("value_and_grad(into) parts", parts);
        return v;
      });
}

template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  if (c.loss == "bce_dice")
    run_bce_dice_case<T>(c, tol);
  else
    run_overlap_case<T>(c, tol);
}

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

// The generator writes 175 option-space cases, 20 MONAI, 9 smp, 11 Carvana (2 with the weight-sum
// BCE), 12 albu, 4 Pytorch-UNet and 6 bce_dice cases (237); fewer means a broken or stale file.
constexpr size_t kMinCases = 237;
constexpr size_t kMinHeaderCases = 181;  // the option space and the bce_dice combinations

// The library and seed references, and the minimum number of cases of each.
const std::vector<std::pair<std::string, size_t>>& reference_minimums() {
  static const std::vector<std::pair<std::string, size_t>> m = {{"monai_DiceLoss", 15},
                                                                {"monai_TverskyLoss", 4},
                                                                {"smp_TverskyLoss", 7},
                                                                {"smp_DiceLoss", 1},
                                                                {"smp_JaccardLoss", 1},
                                                                {"carvana_SoftDiceLoss", 2},
                                                                {"carvana_WeightedSoftDiceLoss", 3},
                                                                {"carvana_CombinedLoss", 6},
                                                                {"albu_dice_loss", 5},
                                                                {"albu_DiceLoss", 5},
                                                                {"albu_BCEDiceLoss", 2},
                                                                {"unet_dice_coeff", 4}};
  return m;
}

// Float: 1e-5 relative to the largest magnitude of each golden tensor, and to each golden value.
constexpr Tolerance kFloat5{1e-5, 1.0};

GoldenFile require_golden() {
  GoldenFile f = load_golden("overlap.txt", "generate_overlap.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE("overlap.txt: ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= kMinCases, "only ", f.cases.size(),
                  " cases, expected >= ", kMinCases);
  std::map<std::string, size_t> per_reference;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    const bool known_loss = c.loss == "soft_dice" || c.loss == "soft_jaccard" ||
                            c.loss == "tversky" || c.loss == "bce_dice";
    REQUIRE_MESSAGE(known_loss, "unknown loss '", c.loss, "'");
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    const std::string ref = reference(c);
    // Only Pytorch-UNet's cases (its backward is not a gradient) are values only.
    if (ref != "unet_dice_coeff") {
      REQUIRE(c.has("grad_out"));
      REQUIRE(c.has("grad"));
    }
    ++per_reference[ref];
  }
  REQUIRE_MESSAGE(per_reference["header"] >= kMinHeaderCases, per_reference["header"],
                  " header cases, expected >= ", kMinHeaderCases);
  // Not a structured binding: doctest's message lambda captures these (clang 14, C++17).
  for (const auto& entry : reference_minimums()) {
    const std::string& ref = entry.first;
    const size_t min = entry.second;
    REQUIRE_MESSAGE(per_reference[ref] >= min, per_reference[ref], " ", ref,
                    " cases, expected >= ", min);
  }
  return f;
}

// Runs every case in precision T.
template <class T>
void run_all(const GoldenFile& f, bool is_float) {
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (reference ", reference(c), ", ", f.path, ")");
    run_case<T>(c, !is_float ? kDouble : kFloat5);
  }
}

}  // namespace

TEST_CASE(
    "golden overlap: soft_dice, soft_jaccard, tversky, bce_dice match PyTorch in double (rtol "
    "1e-10)") {
  run_all<double>(require_golden(), false);
}

TEST_CASE(
    "golden overlap: soft_dice, soft_jaccard, tversky, bce_dice match PyTorch in float (1e-5)") {
  run_all<float>(require_golden(), true);
}

TEST_CASE("golden overlap: the cases cover the option space") {
  // Each option that changes the math must have cases, for each of the three losses where it
  // applies; the seeds' and libraries' references must be present.
  const GoldenFile f = require_golden();
  std::map<std::string, std::map<std::string, int>> n;  // loss -> feature -> count
  int weight_sum = 0;  // the weighted Carvana CombinedLoss: BCE normalized by the weight sum
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    if (c.option("bce.mean_over") == "weight_sum") {
      CHECK(c.loss == "bce_dice");
      ++weight_sum;
    }
    auto& m = n[c.loss];
    const std::string r = c.option("reduction");
    const std::string empty = c.option("empty");
    ++m["reduction " + r];
    ++m["rank " + std::to_string(c.shape.size())];
    ++m["C " + std::to_string(c.shape.at(1))];
    if (c.option("per_image") == "0") ++m["per batch"];
    if (c.option("activation") == "none") ++m["probabilities"];
    if (c.option("squared") == "1") ++m["squared"];
    if (c.has("weight")) ++m["weight " + c.option("weighting")];
    if (c.has("class_weight")) ++m["class_weight"];
    if (c.option("include_background") == "0") ++m["no background"];
    if (c.option("gamma") != "1") ++m["gamma " + r];
    if (c.option("log") == "1") ++m["log " + r];
    if (c.option("clamp") == "1") ++m["clamp " + r];
    // a target plane with no positive pixel, under the case's empty policy
    const auto& t = c.tensor("target").values;
    const int64_t planes = c.shape[0] * c.shape[1];
    const auto plane = static_cast<std::ptrdiff_t>(t.size()) / planes;
    bool some_empty = false;
    for (int64_t p = 0; p < planes; ++p)
      some_empty |= std::all_of(t.begin() + p * plane, t.begin() + (p + 1) * plane,
                                [](double v) { return v == 0.0; });
    if (some_empty) ++m["empty " + empty + " " + r];
    double max_abs = 0.0;
    for (double v : c.tensor("logits").values) max_abs = std::max(max_abs, std::abs(v));
    if (max_abs >= 1e4) ++m["logits 1e4"];
    if (max_abs >= 30.0) ++m["logits >= 30"];
  }
  CHECK(weight_sum == 2);
  for (const char* loss : {"soft_dice", "soft_jaccard", "tversky"}) {
    INFO("loss ", loss);
    const auto& m = n[loss];
    auto at_least = [&](const std::string& feature, int min) {
      const auto it = m.find(feature);
      const int got = it == m.end() ? 0 : it->second;
      CHECK_MESSAGE(got >= min, feature, ": ", got, " cases, expected >= ", min);
    };
    for (const char* r : {"mean", "sum", "none"}) {
      at_least(std::string("reduction ") + r, 5);
      at_least(std::string("log ") + r, 1);
      at_least(std::string("clamp ") + r, 1);
    }
    for (const char* r : {"mean", "none"}) at_least(std::string("gamma ") + r, 2);
    for (const char* e : {"formula", "one", "zero", "skip"}) {
      int any = 0;
      for (const char* r : {"mean", "sum", "none"}) {
        const auto it = m.find(std::string("empty ") + e + " " + r);
        any += it == m.end() ? 0 : it->second;
      }
      CHECK_MESSAGE(any >= 2, "empty policy ", e, ": ", any, " cases, expected >= 2");
    }
    for (const char* k : {"rank 3", "rank 4", "rank 5", "C 1", "C 2", "C 3"}) at_least(k, 2);
    for (const char* k : {"per batch", "probabilities", "weight squared", "weight on_inputs",
                          "class_weight", "no background", "logits 1e4", "logits >= 30"})
      at_least(k, 2);
  }
  for (const char* loss : {"soft_dice", "soft_jaccard"}) {
    INFO("loss ", loss);
    CHECK(n[loss]["squared"] >= 4);
  }
  for (const char* e : {"formula", "one", "zero", "skip"})
    for (const char* r : {"mean", "sum", "none"}) {
      INFO("soft_dice empty ", e, " reduction ", r);
      CHECK(n["soft_dice"][std::string("empty ") + e + " " + r] >= 1);
    }
  CHECK(n["bce_dice"]["reduction mean"] + n["bce_dice"]["reduction sum"] >= 10);
}
