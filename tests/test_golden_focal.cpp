// Golden tests for sigmoid_focal and softmax_focal: segloss against reference values computed by
// PyTorch in float64 (torchvision's sigmoid_focal_loss and kornia's focal_loss definitions written
// with torch ops, autograd gradients; tests/golden/generate_focal.py, README.md there).
//
// For every case this runs segloss in double and checks forward (value for mean/sum, values for
// none), backward with the stored grad_out, and for mean/sum both forms of value_and_grad, at
// 1e-10 relative; then everything again in float with the inputs rounded to float, at 1e-4 of
// the largest magnitude of each golden tensor. softmax cases run with int32 and int64 labels.
// A missing, truncated or short golden file fails the test.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

bool is_sigmoid(const GoldenCase& c) {
  return c.loss == "sigmoid_focal";
}

template <class T>
SigmoidFocalOptions<T> sigmoid_options(const GoldenCase& c) {
  SigmoidFocalOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  o.alpha = parse_double(c.option("alpha"));
  o.gamma = parse_double(c.option("gamma"));
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  return o;
}

template <class T>
SoftmaxFocalOptions<T> softmax_options(const GoldenCase& c) {
  SoftmaxFocalOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  o.gamma = parse_double(c.option("gamma"));
  o.ignore_index = parse_signed(c.option("ignore_index"));
  if (c.has("alpha")) o.alpha = to_tensor<T>(c.tensor("alpha"));
  return o;
}

// Forward, backward with the stored grad_out and (mean/sum) both value_and_grad forms, through
// the loss's three calls.
template <class T, class Forward, class Backward, class Fused, class FusedInto>
void check_case(const GoldenCase& c, const Tensor<T>& x, Reduction reduction, Forward forward,
                Backward backward, Fused fused, FusedInto fused_into, const Tolerance& tol) {
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  const Tensor<T> out = forward();
  if (reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }
  check_tensor("backward grad", backward(grad_out), c.tensor("grad"), tol);
  if (reduction == Reduction::none) return;
  // value_and_grad is d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  const ValueAndGrad<T> vg = fused();
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = fused_into(buf);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");
  if (is_sigmoid(c)) {
    const Tensor<T> z = to_tensor<T>(c.tensor("target"));
    const auto o = sigmoid_options<T>(c);
    check_case<T>(
        c, x, o.reduction, [&] { return sigmoid_focal(x, z, o); },
        [&](const Tensor<T>& go) { return sigmoid_focal_backward(x, z, go, o); },
        [&] { return sigmoid_focal_value_and_grad(x, z, o); },
        [&](Tensor<T>& buf) { return sigmoid_focal_value_and_grad(x, z, buf, o); }, tol);
    return;
  }
  const auto o = softmax_options<T>(c);
  const auto run = [&](const auto& y) {
    check_case<T>(
        c, x, o.reduction, [&] { return softmax_focal(x, y, o); },
        [&](const Tensor<T>& go) { return softmax_focal_backward(x, y, go, o); },
        [&] { return softmax_focal_value_and_grad(x, y, o); },
        [&](Tensor<T>& buf) { return softmax_focal_value_and_grad(x, y, buf, o); }, tol);
  };
  {
    INFO("labels int64");
    run(to_labels<int64_t>(c.tensor("target")));
  }
  {
    INFO("labels int32");
    run(to_labels<int32_t>(c.tensor("target")));
  }
}

// The generator writes 31 sigmoid_focal and 38 softmax_focal cases; fewer means a broken or
// stale file.
constexpr size_t kMinSigmoidCases = 31;
constexpr size_t kMinSoftmaxCases = 38;

GoldenFile require_golden() {
  GoldenFile f = load_golden("focal.txt", "generate_focal.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE("focal.txt: ", f.cases.size(), " cases from torch ", f.torch_version);
  size_t sigmoid = 0, softmax = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE_MESSAGE((c.loss == "sigmoid_focal" || c.loss == "softmax_focal"), "bad loss '", c.loss,
                    "'");
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
    REQUIRE(!c.option("gamma").empty());
    (is_sigmoid(c) ? sigmoid : softmax) += 1;
  }
  REQUIRE_MESSAGE(sigmoid >= kMinSigmoidCases, sigmoid,
                  " sigmoid_focal cases, expected >= ", kMinSigmoidCases);
  REQUIRE_MESSAGE(softmax >= kMinSoftmaxCases, softmax,
                  " softmax_focal cases, expected >= ", kMinSoftmaxCases);
  return f;
}

}  // namespace

TEST_CASE("golden: focal losses match PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: focal losses match PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: focal cases cover the options that change the math") {
  const GoldenFile f = require_golden();
  int gamma0 = 0, gamma_frac = 0, gamma_general = 0, no_alpha = 0, soft = 0, weight = 0,
      class_alpha = 0, ignored = 0, all_ignored = 0, ignore_real_class = 0, rank3 = 0, rank5 = 0,
      c1 = 0, c21 = 0;
  for (const GoldenCase& c : f.cases) {
    const double gamma = parse_double(c.option("gamma"));
    gamma0 += gamma == 0.0;
    gamma_frac += gamma > 0.0 && gamma < 1.0;
    gamma_general += gamma > 1.0 && gamma != 2.0;
    rank3 += c.shape.size() == 3;
    rank5 += c.shape.size() == 5;
    c1 += c.shape.at(1) == 1;
    c21 += c.shape.at(1) == 21;
    if (is_sigmoid(c)) {
      no_alpha += parse_double(c.option("alpha")) < 0.0;
      weight += c.has("weight");
      const auto& t = c.tensor("target").values;
      soft += std::any_of(t.begin(), t.end(), [](double v) { return v != 0.0 && v != 1.0; });
    } else {
      class_alpha += c.has("alpha");
      const int64_t ignore = parse_signed(c.option("ignore_index"));
      const auto& t = c.tensor("target").values;
      const auto n = std::count(t.begin(), t.end(), static_cast<double>(ignore));
      ignored += n > 0;
      all_ignored += n == static_cast<std::ptrdiff_t>(t.size());
      ignore_real_class += ignore == 0 && n > 0;
    }
  }
  CHECK(gamma0 >= 4);
  CHECK(gamma_frac >= 8);
  CHECK(gamma_general >= 6);
  CHECK(no_alpha >= 3);
  CHECK(soft >= 2);
  CHECK(weight >= 6);
  CHECK(class_alpha >= 10);
  CHECK(ignored >= 10);
  CHECK(all_ignored >= 3);
  CHECK(ignore_real_class >= 2);
  CHECK(rank3 >= 4);
  CHECK(rank5 >= 4);
  CHECK(c1 >= 4);
  CHECK(c21 >= 2);
}
