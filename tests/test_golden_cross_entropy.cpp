// Golden tests for cross_entropy: segloss against reference values computed by PyTorch in float64.
//
// tests/golden/cross_entropy.txt is written by tests/golden/generate_cross_entropy.py (see
// tests/golden/README.md for the format, the cases and how to regenerate). For every case this
// runs segloss in double and checks
//   forward (value for mean/sum, values for none), backward with the stored grad_out, and for
//   mean/sum both forms of value_and_grad
// against PyTorch at a relative tolerance of 1e-10, then repeats everything in float with the
// inputs rounded to float, at 1e-4 relative to the largest magnitude of the golden tensor.
// Hard-label cases run twice, with the labels as int32 and as int64 tensors (PyTorch took int64).
// A missing, truncated or short golden file fails the test.
//
// The file's parser and comparison helpers are in tests/golden_reader.hpp.
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
#include <stdexcept>
#include <string>
#include <vector>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

// ---------------------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------------------

constexpr const char* kFcnReference = "pytorch_fcn_cross_entropy2d";

bool is_labels(const GoldenCase& c) {
  return c.option("target") == "labels";
}
bool is_fcn(const GoldenCase& c) {
  return c.option("reference") == kFcnReference;
}

// segloss's options for a case. pytorch-fcn's cross_entropy2d: size_average True is the preset
// CrossEntropyOptions::pytorch_fcn(); size_average False is ignore_negative with reduction sum.
template <class T>
CrossEntropyOptions<T> make_options(const GoldenCase& c) {
  CrossEntropyOptions<T> o;
  const Reduction reduction = parse_reduction(c.option("reduction"));
  const std::string reference = c.option("reference");
  if (reference == kFcnReference) {
    const std::string size_average = c.option("size_average");
    if (size_average == "1") {
      o = CrossEntropyOptions<T>::pytorch_fcn();
      REQUIRE(reduction == Reduction::mean);
    } else {
      REQUIRE_MESSAGE(size_average == "0", "bad size_average '", size_average, "'");
      o.ignore_negative = true;
      o.reduction = Reduction::sum;
      REQUIRE(reduction == Reduction::sum);
    }
    REQUIRE(c.option("label_smoothing").empty());
    REQUIRE(c.option("ignore_index").empty());
  } else {
    REQUIRE_MESSAGE(reference.empty(), "unknown reference '", reference, "'");
    o.reduction = reduction;
    if (!c.option("ignore_index").empty()) o.ignore_index = parse_signed(c.option("ignore_index"));
    if (!c.option("label_smoothing").empty())
      o.label_smoothing = parse_double(c.option("label_smoothing"));
  }
  const std::string all_ignored = c.option("all_ignored");
  if (all_ignored == "nan") {
    o.all_ignored = AllIgnored::nan;
  } else {
    REQUIRE_MESSAGE(all_ignored.empty(), "bad all_ignored '", all_ignored, "'");
  }
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  return o;
}

// Forward, backward with the stored grad_out, and (mean/sum) both value_and_grad forms.
template <class T, class L>
void check_case(const GoldenCase& c, const Tensor<T>& x, const Tensor<L>& target,
                const CrossEntropyOptions<T>& o, const Tolerance& tol) {
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));

  const Tensor<T> out = cross_entropy(x, target, o);
  if (o.reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }

  check_tensor("backward grad", cross_entropy_backward(x, target, grad_out, o), c.tensor("grad"),
               tol);

  if (o.reduction == Reduction::none) return;
  // value_and_grad computes d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  const ValueAndGrad<T> vg = cross_entropy_value_and_grad(x, target, o);
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);

  // The second form writes into a caller's buffer (filled with NaN first).
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = cross_entropy_value_and_grad(x, target, buf, o);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);

  // Every pixel ignored, mean: PyTorch's NaN needs all_ignored = nan (checked above); the
  // default, all_ignored = zero, gives 0 and a zero gradient.
  if (o.all_ignored == AllIgnored::nan) {
    REQUIRE_MESSAGE(std::isnan(c.value), "all_ignored nan on a case whose value is not NaN");
    CrossEntropyOptions<T> z = o;
    z.all_ignored = AllIgnored::zero;
    const Tensor<T> zero_out = cross_entropy(x, target, z);
    CHECK_MESSAGE(static_cast<double>(zero_out[0]) == 0.0, "all_ignored zero: forward ",
                  static_cast<double>(zero_out[0]));
    check_all_zero("all_ignored zero: backward grad",
                   cross_entropy_backward(x, target, grad_out, z));
    const ValueAndGrad<T> zvg = cross_entropy_value_and_grad(x, target, z);
    CHECK_MESSAGE(zvg.value == 0.0, "all_ignored zero: value_and_grad value ", zvg.value);
    check_all_zero("all_ignored zero: value_and_grad grad", zvg.grad);
  }
}

// One case in precision T: hard labels as int32 and as int64, or probabilities.
template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");
  const CrossEntropyOptions<T> o = make_options<T>(c);
  if (is_labels(c)) {
    {
      INFO("labels int64");
      check_case<T>(c, x, to_labels<int64_t>(c.tensor("target")), o, tol);
    }
    {
      INFO("labels int32");
      check_case<T>(c, x, to_labels<int32_t>(c.tensor("target")), o, tol);
    }
  } else {
    REQUIRE(c.option("target") == "probs");
    check_case<T>(c, x, to_tensor<T>(c.tensor("target")), o, tol);
  }
}

// The generator writes 82 F.cross_entropy hard-label cases, 19 probability-target cases and 7
// pytorch-fcn cross_entropy2d cases (108); fewer means a broken or stale file.
constexpr size_t kMinCases = 108;
constexpr size_t kMinLabelCases = 82;  // F.cross_entropy with labels
constexpr size_t kMinProbCases = 19;
constexpr size_t kMinFcnCases = 7;

GoldenFile require_golden() {
  GoldenFile f = load_golden("cross_entropy.txt", "generate_cross_entropy.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE("cross_entropy.txt: ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= kMinCases, "only ", f.cases.size(),
                  " cases, expected >= ", kMinCases);
  size_t labels = 0, probs = 0, fcn = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.loss == "cross_entropy");
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
    const std::string target = c.option("target");
    REQUIRE_MESSAGE((target == "labels" || target == "probs"), "bad target '", target, "'");
    if (is_fcn(c)) {
      REQUIRE(target == "labels");
      ++fcn;
    } else if (target == "labels") {
      ++labels;
    } else {
      ++probs;
    }
  }
  REQUIRE_MESSAGE(labels >= kMinLabelCases, labels,
                  " hard-label cases, expected >= ", kMinLabelCases);
  REQUIRE_MESSAGE(probs >= kMinProbCases, probs, " probability cases, expected >= ", kMinProbCases);
  REQUIRE_MESSAGE(fcn >= kMinFcnCases, fcn, " pytorch-fcn cases, expected >= ", kMinFcnCases);
  return f;
}

}  // namespace

TEST_CASE("golden: cross_entropy matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: cross_entropy matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: cross_entropy covers the options that change the math") {
  // The semantics that differ between plausible implementations must each have a case:
  // label smoothing with ignored pixels under mean (with and without weight: the smoothing term
  // is divided by sum_i w_{y_i} over the pixels kept), ignore_index 0 (a real class), every pixel
  // ignored (NaN mean), int labels as both widths (every label case), probabilities with weight
  // and smoothing, and pytorch-fcn's cross_entropy2d in both size_average modes, with weight.
  const GoldenFile f = require_golden();
  int ls_ignore_mean = 0, ls_weight_ignore_mean = 0, ignore_zero = 0, ignore_255 = 0, nan_mean = 0,
      all_ignored_other = 0, probs_weight_ls = 0, fcn_mean = 0, fcn_sum = 0, fcn_weight = 0, c1 = 0,
      c21 = 0, rank3 = 0, rank5 = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    const bool ls = !c.option("label_smoothing").empty();
    const bool w = c.has("weight");
    const std::string r = c.option("reduction");
    if (c.shape.size() == 3) ++rank3;
    if (c.shape.size() == 5) ++rank5;
    if (c.shape.at(1) == 1) ++c1;
    if (c.shape.at(1) == 21) ++c21;
    if (is_fcn(c)) {
      (r == "mean" ? fcn_mean : fcn_sum) += 1;
      fcn_weight += w ? 1 : 0;
      // negative labels present (except in the one case named no_negatives)
      if (c.name.find("no_negatives") == std::string::npos) {
        const auto& t = c.tensor("target").values;
        CHECK(std::any_of(t.begin(), t.end(), [](double v) { return v == -1.0; }));
      }
      continue;
    }
    if (!is_labels(c)) {
      probs_weight_ls += (w && ls) ? 1 : 0;
      continue;
    }
    const int64_t ignore = parse_signed(c.option("ignore_index"));
    const auto& t = c.tensor("target").values;
    const auto ignored = std::count(t.begin(), t.end(), static_cast<double>(ignore));
    if (ignore == 0 && ignored > 0) ++ignore_zero;
    if (ignore == 255 && ignored > 0) ++ignore_255;
    if (ignored == static_cast<std::ptrdiff_t>(t.size())) {
      if (r == "mean") {
        CHECK(std::isnan(c.value));
        CHECK(c.option("all_ignored") == "nan");
        ++nan_mean;
      } else {
        ++all_ignored_other;
      }
    } else if (ls && r == "mean" && ignored > 0) {
      (w ? ls_weight_ignore_mean : ls_ignore_mean) += 1;
    }
  }
  CHECK(ls_ignore_mean >= 2);
  CHECK(ls_weight_ignore_mean >= 2);
  CHECK(ignore_zero >= 2);
  CHECK(ignore_255 >= 2);
  CHECK(nan_mean >= 2);
  CHECK(all_ignored_other >= 4);
  CHECK(probs_weight_ls >= 2);
  CHECK(fcn_mean >= 2);
  CHECK(fcn_sum >= 2);
  CHECK(fcn_weight >= 2);
  CHECK(c1 >= 2);
  CHECK(c21 >= 2);
  CHECK(rank3 >= 2);
  CHECK(rank5 >= 2);
}
