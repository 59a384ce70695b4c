// Golden tests for binary_cross_entropy: segloss against torch.nn.functional.binary_cross_entropy
// in float64 (tests/golden/binary_cross_entropy.txt, written by
// tests/golden/generate_binary_cross_entropy.py; format and cases in tests/golden/README.md).
// For every case: forward (value for mean/sum, values for none), backward with the stored
// grad_out, and for mean/sum both value_and_grad forms, in double at a relative tolerance of
// 1e-10 and in float (inputs rounded to float) at 1e-4 of the largest magnitude. The cases with
// probabilities at exactly 0 and 1 check the -100 clamp and PyTorch's EPSILON in the gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  const Tensor<T> p = to_tensor<T>(c.tensor("probs"));
  const Tensor<T> z = to_tensor<T>(c.tensor("target"));
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  REQUIRE_MESSAGE(p.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "probs shape differs from the case's shape line");
  BinaryCrossEntropyOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  const std::string reference = c.option("reference");
  if (!reference.empty()) {
    REQUIRE_MESSAGE(reference == "pytorch_unet_BCELoss", "unknown reference '", reference, "'");
    REQUIRE(o.reduction == Reduction::mean);  // nn.BCELoss() is the default options
    REQUIRE(!o.weight.defined());
  }

  const Tensor<T> out = binary_cross_entropy(p, z, o);
  if (o.reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }
  check_tensor("backward grad", binary_cross_entropy_backward(p, z, grad_out, o), c.tensor("grad"),
               tol);
  if (o.reduction == Reduction::none) return;

  // value_and_grad is d(loss)/dp, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  const ValueAndGrad<T> vg = binary_cross_entropy_value_and_grad(p, z, o);
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);
  Tensor<T> buf = Tensor<T>::full(p.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = binary_cross_entropy_value_and_grad(p, z, buf, o);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

// The generator writes 30 cases; fewer means a broken or stale file.
constexpr size_t kMinCases = 30;

GoldenFile require_golden() {
  GoldenFile f = load_golden("binary_cross_entropy.txt", "generate_binary_cross_entropy.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE("binary_cross_entropy.txt: ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= kMinCases, "only ", f.cases.size(),
                  " cases, expected >= ", kMinCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.loss == "binary_cross_entropy");
    REQUIRE(c.has("probs"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
  }
  return f;
}

}  // namespace

TEST_CASE("golden: binary_cross_entropy matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: binary_cross_entropy matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: binary_cross_entropy covers the clamp, the epsilon, weights and the seed") {
  // p = 0 and p = 1 against targets 0 and 1 (the clamp: values 0 and 100, gradients 0 and
  // +-1/EPSILON), a probability below EPSILON, every reduction, weights, and Pytorch-UNet's
  // nn.BCELoss line computed by the seed's own code.
  const GoldenFile f = require_golden();
  int edge_reductions = 0, weighted = 0, seed = 0, rank3 = 0, rank5 = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    if (c.shape.size() == 3) ++rank3;
    if (c.shape.size() == 5) ++rank5;
    weighted += c.has("weight") ? 1 : 0;
    seed += c.option("reference") == "pytorch_unet_BCELoss" ? 1 : 0;
    const auto& p = c.tensor("probs").values;
    const auto& t = c.tensor("target").values;
    bool p0t1 = false, p1t0 = false, p0t0 = false, p1t1 = false, tiny = false;
    for (size_t i = 0; i < p.size(); ++i) {
      p0t1 = p0t1 || (p[i] == 0 && t[i] == 1);
      p1t0 = p1t0 || (p[i] == 1 && t[i] == 0);
      p0t0 = p0t0 || (p[i] == 0 && t[i] == 0);
      p1t1 = p1t1 || (p[i] == 1 && t[i] == 1);
      tiny = tiny || (p[i] > 0 && p[i] < 1e-12);
    }
    if (p0t1 && p1t0 && p0t0 && p1t1 && tiny) {
      ++edge_reductions;
      // the clamp is visible in the golden data: p = 0 with t = 1 costs exactly 100 (times w)
      if (c.option("reduction") == "none") {
        const auto& v = c.tensor("values").values;
        for (size_t i = 0; i < p.size(); ++i)
          if (p[i] == 0 && t[i] == 1) CHECK(v[i] == 100.0);
      }
    }
  }
  CHECK(edge_reductions >= 4);
  CHECK(weighted >= 8);
  CHECK(seed >= 2);
  CHECK(rank3 >= 4);
  CHECK(rank5 >= 3);
}
