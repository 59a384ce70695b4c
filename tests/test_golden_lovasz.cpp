// Golden tests for lovasz_softmax and lovasz_hinge: segloss against the authors' algorithm
// written with torch ops in float64 (tests/golden/generate_lovasz.py; format and cases in
// tests/golden/README.md). For every case this runs segloss in double and checks the forward
// value (mean/sum) or values (none), backward with the stored grad_out and, for mean/sum, both
// value_and_grad forms, at a relative tolerance of 1e-10; then everything again in float with
// the inputs rounded to float (exact: the generator rounds them to multiples of 2^-20) at 1e-4 of
// the largest magnitude. Label maps run as int32 and as int64. The generator keeps the sorted
// errors of every case at least 2e-6 apart, so float and double sort them alike.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

template <class T>
LovaszSoftmaxOptions<T> softmax_options(const GoldenCase& c) {
  LovaszSoftmaxOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  o.per_image = c.option("per_image") == "1";
  REQUIRE((c.option("per_image") == "0" || c.option("per_image") == "1"));
  const std::string classes = c.option("classes");
  if (classes == "all") {
    o.classes = LovaszClasses::all;
  } else if (classes == "list") {
    for (double v : c.tensor("class_list").values) o.class_list.push_back(static_cast<int64_t>(v));
    REQUIRE(!o.class_list.empty());
  } else {
    REQUIRE_MESSAGE(classes == "present", "bad classes '", classes, "'");
  }
  o.ignore_index = parse_signed(c.option("ignore_index"));
  return o;
}

template <class T>
LovaszHingeOptions<T> hinge_options(const GoldenCase& c) {
  LovaszHingeOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  REQUIRE((c.option("per_image") == "0" || c.option("per_image") == "1"));
  o.per_image = c.option("per_image") == "1";
  if (!c.option("ignore").empty()) o.ignore = parse_double(c.option("ignore"));
  return o;
}

// The four entry points of one loss, as callables, so one checker serves both losses.
template <class T, class Forward, class Backward, class Fused, class FusedInto>
void check_case(const GoldenCase& c, Reduction reduction, const Tensor<T>& x, Forward forward,
                Backward backward, Fused fused, FusedInto fused_into, const Tolerance& tol) {
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  const Tensor<T> out = forward();
  if (reduction == Reduction::none) {
    REQUIRE(c.has("values"));
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE(c.has_value);
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }
  check_tensor("backward grad", backward(grad_out), c.tensor("grad"), tol);
  if (reduction == Reduction::none) return;
  const double g = c.tensor("grad_out").values.at(0);  // value_and_grad: grad_out = 1
  const ValueAndGrad<T> vg = fused();
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = fused_into(buf);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

template <class T, class L>
void run_softmax(const GoldenCase& c, const Tensor<T>& x, const Tolerance& tol) {
  const Tensor<L> y = to_labels<L>(c.tensor("target"));
  const auto o = softmax_options<T>(c);
  check_case<T>(
      c, o.reduction, x, [&] { return lovasz_softmax(x, y, o); },
      [&](const Tensor<T>& go) { return lovasz_softmax_backward(x, y, go, o); },
      [&] { return lovasz_softmax_value_and_grad(x, y, o); },
      [&](Tensor<T>& buf) { return lovasz_softmax_value_and_grad(x, y, buf, o); }, tol);
}

template <class T>
void run_case(const GoldenCase& c, const Tolerance& tol) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  REQUIRE(x.shape() == Shape(c.shape.begin(), c.shape.end()));
  if (c.loss == "lovasz_softmax") {
    {
      INFO("labels int64");
      run_softmax<T, int64_t>(c, x, tol);
    }
    {
      INFO("labels int32");
      run_softmax<T, int32_t>(c, x, tol);
    }
    return;
  }
  REQUIRE(c.loss == "lovasz_hinge");
  const Tensor<T> t = to_tensor<T>(c.tensor("target"));
  const auto o = hinge_options<T>(c);
  check_case<T>(
      c, o.reduction, x, [&] { return lovasz_hinge(x, t, o); },
      [&](const Tensor<T>& go) { return lovasz_hinge_backward(x, t, go, o); },
      [&] { return lovasz_hinge_value_and_grad(x, t, o); },
      [&](Tensor<T>& buf) { return lovasz_hinge_value_and_grad(x, t, buf, o); }, tol);
}

// The generator writes 28 lovasz_softmax and 17 lovasz_hinge cases.
constexpr size_t kMinSoftmax = 28, kMinHinge = 17;

GoldenFile require_golden() {
  GoldenFile f = load_golden("lovasz.txt", "generate_lovasz.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  size_t soft = 0, hinge = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
    soft += c.loss == "lovasz_softmax" ? 1 : 0;
    hinge += c.loss == "lovasz_hinge" ? 1 : 0;
  }
  REQUIRE_MESSAGE(soft >= kMinSoftmax, soft, " lovasz_softmax cases, expected >= ", kMinSoftmax);
  REQUIRE_MESSAGE(hinge >= kMinHinge, hinge, " lovasz_hinge cases, expected >= ", kMinHinge);
  return f;
}

}  // namespace

TEST_CASE("golden lovasz: lovasz_softmax and lovasz_hinge match PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<double>(c, kDouble);
  }
}

TEST_CASE("golden lovasz: lovasz_softmax and lovasz_hinge match PyTorch in float") {
  const GoldenFile f = require_golden();
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case<float>(c, kFloat);
  }
}

TEST_CASE("golden lovasz: the cases cover the options that change the math") {
  const GoldenFile f = require_golden();
  int per_image = 0, batch = 0, present = 0, all = 0, list = 0, ignored = 0, image_ignored = 0,
      c2 = 0, c21 = 0, rank3 = 0, rank5 = 0, hinge_per_image = 0, hinge_batch = 0, hinge_ignore = 0,
      hinge_c3 = 0;
  for (const GoldenCase& c : f.cases) {
    const bool pi = c.option("per_image") == "1";
    if (c.loss == "lovasz_hinge") {
      (pi ? hinge_per_image : hinge_batch) += 1;
      hinge_ignore += c.option("ignore").empty() ? 0 : 1;
      hinge_c3 += c.shape.at(1) == 3 ? 1 : 0;
      continue;
    }
    (pi ? per_image : batch) += 1;
    const std::string cl = c.option("classes");
    present += cl == "present";
    all += cl == "all";
    list += cl == "list";
    const auto& t = c.tensor("target").values;
    const double ig = static_cast<double>(parse_signed(c.option("ignore_index")));
    int64_t n_ignored = 0;
    for (double v : t) n_ignored += v == ig ? 1 : 0;
    ignored += n_ignored > 0;
    const int64_t per = static_cast<int64_t>(t.size()) / c.shape.at(0);
    for (int64_t n = 0; n < c.shape.at(0); ++n) {
      int64_t k = 0;
      for (int64_t i = 0; i < per; ++i) k += t[static_cast<size_t>(n * per + i)] == ig ? 1 : 0;
      image_ignored += k == per ? 1 : 0;
    }
    c2 += c.shape.at(1) == 2;
    c21 += c.shape.at(1) == 21;
    rank3 += c.shape.size() == 3;
    rank5 += c.shape.size() == 5;
  }
  CHECK(per_image >= 8);
  CHECK(batch >= 8);
  CHECK(present >= 6);
  CHECK(all >= 4);
  CHECK(list >= 3);
  CHECK(ignored >= 5);
  CHECK(image_ignored >= 2);
  CHECK(c2 >= 2);
  CHECK(c21 >= 3);
  CHECK(rank3 >= 2);
  CHECK(rank5 >= 2);
  CHECK(hinge_per_image >= 6);
  CHECK(hinge_batch >= 6);
  CHECK(hinge_ignore >= 4);
  CHECK(hinge_c3 >= 2);
}
