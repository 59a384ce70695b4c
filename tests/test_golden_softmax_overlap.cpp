// Golden tests for the softmax overlap losses (softmax_dice, softmax_jaccard, softmax_tversky)
// and generalized_dice: segloss against reference values computed by PyTorch in float64.
//
// tests/golden/softmax_overlap.txt is written by tests/golden/generate_softmax_overlap.py
// (tests/golden/README.md, section "softmax_overlap", lists the cases and the references: MONAI's
// DiceLoss, TverskyLoss and GeneralizedDiceLoss with softmax=True and to_onehot_y=True
// re-implemented in torch ops; the formulas of losses/softmax_overlap.hpp and
// generalized_dice.hpp in torch ops for ignore_index, the empty policies, the focal, log and
// clamp forms and everything else MONAI lacks). Every option that changes the math is written in
// the case, so the test sets each one explicitly. For every case this runs segloss in double and
// checks
//   forward (value for mean/sum, per-score values for none) and, for the three overlap losses,
//   the kept / skipped counts of OverlapInfo; backward with the stored grad_out; for mean/sum
//   both forms of value_and_grad
// against PyTorch at a relative tolerance of 1e-10, then repeats everything in float with the
// inputs rounded to float (exact: they are multiples of 2^-10) at 1e-5 of the largest magnitude
// of each golden tensor and 1e-5 of each golden value. Label-map cases run twice, with the labels
// as int64 and as int32 tensors. A missing, truncated or short golden file fails the test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
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

bool is_labels(const GoldenCase& c) {
  const std::string kind = required(c, "target");
  REQUIRE_MESSAGE((kind == "labels" || kind == "probs"), "bad target kind '", kind, "'");
  return kind == "labels";
}

EmptyPolicy parse_empty(const std::string& s) {
  if (s == "formula") return EmptyPolicy::formula;
  if (s == "one") return EmptyPolicy::one;
  if (s == "zero") return EmptyPolicy::zero;
  REQUIRE_MESSAGE(s == "skip", "bad empty policy '", s, "'");
  return EmptyPolicy::skip;
}

// The options of softmax_dice / softmax_jaccard / softmax_tversky (losses/softmax_overlap.hpp).
template <class T>
void fill_overlap(const GoldenCase& c, SoftmaxOverlapOptions<T>& o) {
  o.reduction = parse_reduction(required(c, "reduction"));
  o.smooth_nr = parse_double(required(c, "smooth_nr"));
  o.smooth_dr = parse_double(required(c, "smooth_dr"));
  o.per_image = flag(c, "per_image");
  o.squared = flag(c, "squared");
  o.include_background = flag(c, "include_background");
  o.empty = parse_empty(required(c, "empty"));
  o.gamma = parse_double(required(c, "gamma"));
  o.log = flag(c, "log");
  o.clamp = flag(c, "clamp");
  o.ignore_index = parse_signed(required(c, "ignore_index"));
  if (c.has("class_weight")) o.class_weight = to_tensor<T>(c.tensor("class_weight"));
}

// The options of generalized_dice (losses/generalized_dice.hpp).
template <class T>
GeneralizedDiceOptions<T> gdl_options(const GoldenCase& c) {
  GeneralizedDiceOptions<T> o;
  o.reduction = parse_reduction(required(c, "reduction"));
  o.smooth_nr = parse_double(required(c, "smooth_nr"));
  o.smooth_dr = parse_double(required(c, "smooth_dr"));
  o.per_image = flag(c, "per_image");
  o.include_background = flag(c, "include_background");
  o.ignore_index = parse_signed(required(c, "ignore_index"));
  const std::string w = required(c, "w_type");
  if (w == "square") {
    o.w_type = GeneralizedDiceWeight::square;
  } else if (w == "simple") {
    o.w_type = GeneralizedDiceWeight::simple;
  } else {
    REQUIRE_MESSAGE(w == "uniform", "bad w_type '", w, "'");
    o.w_type = GeneralizedDiceWeight::uniform;
  }
  return o;
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

// Forward, backward with the stored grad_out, both value_and_grad forms, for a loss given as four
// callables taking an OverlapInfo* (null for generalized_dice, which has none).
template <class T, class Z, class Fwd, class Bwd, class Fused, class FusedInto>
void check_case(const GoldenCase& c, const Tensor<T>& x, const Tensor<Z>& z, Reduction reduction,
                bool has_info, const Tolerance& tol, Fwd fwd, Bwd bwd, Fused fused,
                FusedInto fused_into) {
  OverlapInfo info{-1, -1};
  OverlapInfo* pinfo = has_info ? &info : nullptr;
  const Tensor<T> out = fwd(x, z, pinfo);
  if (has_info) check_info("forward info", info, c);
  if (reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }

  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  check_tensor("backward grad", bwd(x, z, grad_out), c.tensor("grad"), tol);
  if (reduction == Reduction::none) return;

  // value_and_grad computes d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  info = OverlapInfo{-1, -1};
  const ValueAndGrad<T> vg = fused(x, z, pinfo);
  if (has_info) check_info("value_and_grad info", info, c);
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);

  // The second form writes into a caller's buffer (filled with NaN first).
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  info = OverlapInfo{-1, -1};
  const double v = fused_into(x, z, buf, pinfo);
  if (has_info) check_info("value_and_grad(into) info", info, c);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

// One loss on one target tensor Z (int32, int64 labels or T probabilities).
template <class T, class Z>
void run_with_target(const GoldenCase& c, const Tensor<T>& x, const Tensor<Z>& z,
                     const Tolerance& tol) {
  if (c.loss == "generalized_dice") {
    const auto o = gdl_options<T>(c);
    check_case<T>(
        c, x, z, o.reduction, false, tol,
        [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo*) {
          return generalized_dice(a, b, o);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, const Tensor<T>& go) {
          return generalized_dice_backward(a, b, go, o);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo*) {
          return generalized_dice_value_and_grad(a, b, o);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, Tensor<T>& grad, OverlapInfo*) {
          return generalized_dice_value_and_grad(a, b, grad, o);
        });
    return;
  }
  if (c.loss == "softmax_tversky") {
    SoftmaxTverskyOptions<T> o;
    fill_overlap<T>(c, o);
    o.alpha = parse_double(required(c, "alpha"));
    o.beta = parse_double(required(c, "beta"));
    check_case<T>(
        c, x, z, o.reduction, true, tol,
        [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo* info) {
          return softmax_tversky(a, b, o, info);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, const Tensor<T>& go) {
          return softmax_tversky_backward(a, b, go, o);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo* info) {
          return softmax_tversky_value_and_grad(a, b, o, info);
        },
        [&](const Tensor<T>& a, const Tensor<Z>& b, Tensor<T>& grad, OverlapInfo* info) {
          return softmax_tversky_value_and_grad(a, b, grad, o, info);
        });
    return;
  }
  REQUIRE_MESSAGE((c.loss == "softmax_dice" || c.loss == "softmax_jaccard"), "unknown loss '",
                  c.loss, "'");
  SoftmaxOverlapOptions<T> o;
  fill_overlap<T>(c, o);
  const bool dice = c.loss == "softmax_dice";
  check_case<T>(
      c, x, z, o.reduction, true, tol,
      [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo* info) {
        return dice ? softmax_dice(a, b, o, info) : softmax_jaccard(a, b, o, info);
      },
      [&](const Tensor<T>& a, const Tensor<Z>& b, const Tensor<T>& go) {
        return dice ? softmax_dice_backward(a, b, go, o) : softmax_jaccard_backward(a, b, go, o);
      },
      [&](const Tensor<T>& a, const Tensor<Z>& b, OverlapInfo* info) {
        return dice ? softmax_dice_value_and_grad(a, b, o, info)
                    : softmax_jaccard_value_and_grad(a, b, o, info);
      },
      [&](const Tensor<T>& a, const Tensor<Z>& b, Tensor<T>& grad, OverlapInfo* info) {
        return dice ? softmax_dice_value_and_grad(a, b, grad, o, info)
                    : softmax_jaccard_value_and_grad(a, b, grad, o, info);
      });
}

// One case in precision T: labels as int64 and as int32, or probabilities.
template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");
  if (is_labels(c)) {
    {
      INFO("labels int64");
      run_with_target<T>(c, x, to_labels<int64_t>(c.tensor("target")), tol);
    }
    {
      INFO("labels int32");
      run_with_target<T>(c, x, to_labels<int32_t>(c.tensor("target")), tol);
    }
  } else {
    run_with_target<T>(c, x, to_tensor<T>(c.tensor("target")), tol);
  }
}

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

// The generator writes 55 MONAI cases (28 DiceLoss, 8 TverskyLoss, 19 GeneralizedDiceLoss), 127
// header cases of the three overlap losses and 23 of generalized_dice (205); fewer means a broken
// or stale file.
constexpr size_t kMinCases = 205;
constexpr size_t kMinHeaderCases = 150;

const std::vector<std::pair<std::string, size_t>>& reference_minimums() {
  static const std::vector<std::pair<std::string, size_t>> m = {
      {"monai_DiceLoss", 28}, {"monai_TverskyLoss", 8}, {"monai_GeneralizedDiceLoss", 19}};
  return m;
}

// Float: 1e-5 relative to the largest magnitude of each golden tensor, and to each golden value.
constexpr Tolerance kFloat5{1e-5, 1.0};

GoldenFile require_golden() {
  GoldenFile f = load_golden("softmax_overlap.txt", "generate_softmax_overlap.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE("softmax_overlap.txt: ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= kMinCases, "only ", f.cases.size(),
                  " cases, expected >= ", kMinCases);
  std::map<std::string, size_t> per_reference;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    const bool known_loss = c.loss == "softmax_dice" || c.loss == "softmax_jaccard" ||
                            c.loss == "softmax_tversky" || c.loss == "generalized_dice";
    REQUIRE_MESSAGE(known_loss, "unknown loss '", c.loss, "'");
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
    ++per_reference[reference(c)];
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

template <class T>
void run_all(const GoldenFile& f, bool is_float) {
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", c.loss, ", reference ", reference(c), ", ", f.path, ")");
    run_case<T>(c, is_float ? kFloat5 : kDouble);
  }
}

// Per score (image and class, or class over the batch): whether its target sum is 0, from the
// stored target (labels one-hot with the ignored pixels removed, or probabilities).
bool has_absent_class(const GoldenCase& c) {
  const auto& t = c.tensor("target").values;
  const int64_t N = c.shape[0], C = c.shape[1];
  int64_t S = 1;
  for (size_t d = 2; d < c.shape.size(); ++d) S *= c.shape[d];
  const bool labels = c.option("target") == "labels";
  const int64_t ignore = parse_signed(c.option("ignore_index"));
  const bool per_image = c.option("per_image") == "1";
  const int64_t c0 = c.option("include_background") == "0" ? 1 : 0;
  std::vector<double> sum(static_cast<size_t>(N * C), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t k = 0; k < C; ++k) {
        double v = 0.0;
        if (labels) {
          const auto y = static_cast<int64_t>(t[static_cast<size_t>(n * S + s)]);
          v = (y != ignore && y == k) ? 1.0 : 0.0;
        } else {
          v = t[static_cast<size_t>((n * C + k) * S + s)];
        }
        sum[static_cast<size_t>((per_image ? n : 0) * C + k)] += v;
      }
  for (int64_t n = 0; n < (per_image ? N : 1); ++n)
    for (int64_t k = c0; k < C; ++k)
      if (sum[static_cast<size_t>(n * C + k)] == 0.0) return true;
  return false;
}

}  // namespace

TEST_CASE(
    "golden softmax_overlap: softmax_dice, softmax_jaccard, softmax_tversky, generalized_dice "
    "match PyTorch in double (rtol 1e-10)") {
  run_all<double>(require_golden(), false);
}

TEST_CASE(
    "golden softmax_overlap: softmax_dice, softmax_jaccard, softmax_tversky, generalized_dice "
    "match PyTorch in float (1e-5)") {
  run_all<float>(require_golden(), true);
}

TEST_CASE("golden softmax_overlap: the cases cover the option space") {
  // Each option that changes the math must have cases, for each loss where it applies.
  const GoldenFile f = require_golden();
  std::map<std::string, std::map<std::string, int>> n;  // loss -> feature -> count
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    auto& m = n[c.loss];
    const std::string r = c.option("reduction");
    const bool labels = c.option("target") == "labels";
    ++m["reduction " + r];
    ++m["rank " + std::to_string(c.shape.size())];
    ++m["C " + std::to_string(c.shape.at(1))];
    ++m[labels ? "labels" : "probs"];
    if (c.option("per_image") == "0") ++m["per batch"];
    if (c.option("include_background") == "0") ++m["no background"];
    if (c.has("class_weight")) ++m["class_weight"];
    if (c.option("squared") == "1") ++m["squared"];
    if (c.has("values") || c.has_value) {
      const std::string e = c.option("empty");
      if (has_absent_class(c)) ++m["absent " + (e.empty() ? std::string("gdl") : e) + " " + r];
    }
    if (c.option("gamma") != "" && c.option("gamma") != "1") ++m["gamma " + r];
    if (c.option("log") == "1") ++m["log " + r];
    if (c.option("clamp") == "1") ++m["clamp " + r];
    if (c.loss == "generalized_dice")
      ++m["w_type " + c.option("w_type") + (c.option("per_image") == "1" ? " img" : " batch")];
    if (labels) {
      const int64_t ignore = parse_signed(c.option("ignore_index"));
      const auto& t = c.tensor("target").values;
      const auto hits = std::count(t.begin(), t.end(), static_cast<double>(ignore));
      if (hits > 0) ++m["ignore " + std::to_string(ignore)];
      if (hits == static_cast<std::ptrdiff_t>(t.size())) ++m["every pixel ignored"];
    }
    double max_abs = 0.0;
    for (double v : c.tensor("logits").values) max_abs = std::max(max_abs, std::abs(v));
    if (max_abs >= 1e4) ++m["logits 1e4"];
    if (max_abs >= 30.0) ++m["logits >= 30"];
  }
  auto at_least = [&](const std::string& loss, const std::string& feature, int min) {
    const auto& m = n[loss];
    const auto it = m.find(feature);
    const int got = it == m.end() ? 0 : it->second;
    CHECK_MESSAGE(got >= min, loss, " ", feature, ": ", got, " cases, expected >= ", min);
  };
  for (const char* loss :
       {"softmax_dice", "softmax_jaccard", "softmax_tversky", "generalized_dice"}) {
    for (const char* r : {"mean", "sum", "none"}) at_least(loss, std::string("reduction ") + r, 3);
    for (const char* k : {"rank 3", "rank 4", "rank 5", "C 1", "C 2", "C 21", "labels", "probs",
                          "per batch", "no background", "ignore -100", "ignore 255", "ignore 0",
                          "every pixel ignored", "logits 1e4", "logits >= 30"})
      at_least(loss, k, 1);
  }
  for (const char* loss : {"softmax_dice", "softmax_jaccard", "softmax_tversky"}) {
    at_least(loss, "class_weight", 2);
    at_least(loss, "C 5", 1);
    for (const char* e : {"formula", "one", "zero", "skip"}) {
      int any = 0;
      for (const char* r : {"mean", "sum", "none"})
        any += n[loss][std::string("absent ") + e + " " + r];
      CHECK_MESSAGE(any >= 1, loss, " empty policy ", e, " with an absent class: ", any);
    }
    for (const char* r : {"mean", "none"}) at_least(loss, std::string("gamma ") + r, 1);
    int log = 0, clamp = 0;
    for (const char* r : {"mean", "sum", "none"}) {
      log += n[loss][std::string("log ") + r];
      clamp += n[loss][std::string("clamp ") + r];
    }
    CHECK_MESSAGE(log >= 1, loss, " log form: ", log);
    CHECK_MESSAGE(clamp >= 1, loss, " clamp form: ", clamp);
  }
  // Dice: every empty policy and form with every reduction; squared with both target kinds.
  for (const char* r : {"mean", "sum", "none"}) {
    for (const char* e : {"one", "zero", "skip"})
      at_least("softmax_dice", std::string("absent ") + e + " " + r, 1);
    at_least("softmax_dice", std::string("log ") + r, 1);
    at_least("softmax_dice", std::string("clamp ") + r, 1);
  }
  at_least("softmax_dice", "squared", 4);
  at_least("softmax_jaccard", "squared", 3);
  at_least("softmax_dice", "C 150", 1);
  at_least("generalized_dice", "C 150", 1);
  // generalized_dice: each weight type per image and per batch, and absent classes (MONAI's
  // inf-weight replacement) with each reduction.
  for (const char* w : {"square", "simple", "uniform"})
    for (const char* s : {" img", " batch"})
      at_least("generalized_dice", std::string("w_type ") + w + s, 1);
  for (const char* r : {"mean", "sum", "none"})
    at_least("generalized_dice", std::string("absent gdl ") + r, 1);
}
