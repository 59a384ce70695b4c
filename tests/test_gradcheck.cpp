// gradcheck itself: it passes a correct gradient and catches a wrong one.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>

#include "helpers.hpp"

using namespace segloss;

namespace {
// f(x) = sum_i sin(x_i) x_i^2, df/dx_i = cos(x_i) x_i^2 + 2 x_i sin(x_i)
double f(const Tensor<double>& x) {
  double s = 0;
  for (double v : x) s += std::sin(v) * v * v;
  return s;
}
Tensor<double> df(const Tensor<double>& x) {
  auto g = Tensor<double>::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    g[i] = std::cos(x[i]) * x[i] * x[i] + 2 * x[i] * std::sin(x[i]);
  return g;
}
}  // namespace

TEST_CASE("gradcheck: a correct gradient passes") {
  const auto x = testing::randn<double>({2, 3, 4}, 1);
  const auto r = gradcheck(f, x, df(x));
  INFO(r.summary());
  CHECK(r.passed);
  CHECK(r.checked == 24);
  CHECK(r.max_rel_error < 1e-6);
}

TEST_CASE("gradcheck: a wrong element is found and named") {
  const auto x = testing::randn<double>({2, 3, 4}, 2);
  auto g = df(x);
  g[17] *= 1.01;
  const auto r = gradcheck(f, x, g);
  CHECK_FALSE(r.passed);
  CHECK(r.failures == 1);
  CHECK(r.worst_rel_index == 17);
  CHECK(r.worst_index == 17);
  CHECK(r.worst_ratio > 1.0);
  CHECK(r.analytic_at_worst == g[17]);
  CHECK(r.max_rel_error == doctest::Approx(0.01 / 1.01).epsilon(1e-4));
  CHECK(r.summary().find("FAILED: 24 elements, 1 outside tolerance; worst element 17 ") == 0);
}

// The summary names the failing element. It named the element of the largest relative error,
// which can be one that passes: a gradient of 3e-8 off by 5e-9 is 15% wrong and within
// atol = 1e-8, while the element that fails is 1% wrong.
TEST_CASE("gradcheck: the element named is the one outside its tolerance") {
  auto x = testing::randn<double>({2, 3, 4}, 2);
  x[5] = 1e-4;  // df/dx = 3e-8 there
  auto g = df(x);
  g[5] += 5e-9;  // half its tolerance: far from the finite differences' noise (1e-9)
  g[17] *= 1.01;
  const auto r = gradcheck(f, x, g);
  INFO(r.summary());
  CHECK_FALSE(r.passed);
  CHECK(r.failures == 1);
  CHECK(r.worst_rel_index == 5);  // passes: its error is below atol
  CHECK(r.max_rel_error > 0.1);
  CHECK(r.worst_index == 17);
  CHECK(r.worst_ratio > 1.0);
  CHECK(r.analytic_at_worst == g[17]);
  CHECK(r.numeric_at_worst == doctest::Approx(df(x)[17]).epsilon(1e-6));
  CHECK(r.summary().find("worst element 17 (analytic ") != std::string::npos);
  // All pass: the element nearest its tolerance, below 1.
  g[17] = df(x)[17];
  const auto ok = gradcheck(f, x, g);
  CHECK(ok.passed);
  CHECK(ok.worst_index == 5);
  CHECK(ok.worst_ratio > 0.3);
  CHECK(ok.worst_ratio < 1.0);
}

TEST_CASE("gradcheck: a sign error fails, NaN fails") {
  const auto x = testing::randn<double>({1, 1, 5}, 3);
  auto g = df(x);
  for (auto& v : g) v = -v;
  CHECK_FALSE(gradcheck(f, x, g).passed);
  g = df(x);
  g[2] = NAN;
  CHECK_FALSE(gradcheck(f, x, g).passed);
}

// A NaN is the worst error and stays named: the elements after it, with finite errors, replaced
// it in the summary (a reviewer's case: "max abs error 1.58e-10 at 99" with element 3 NaN).
TEST_CASE("gradcheck: a NaN element is the one named") {
  const auto x = testing::randn<double>({2, 3, 4}, 4);
  auto g = df(x);
  g[3] = NAN;
  g[20] *= 1.5;  // a finite failure after it
  const auto r = gradcheck(f, x, g);
  INFO(r.summary());
  CHECK_FALSE(r.passed);
  CHECK(r.failures == 2);
  CHECK(r.worst_abs_index == 3);
  CHECK(r.worst_rel_index == 3);
  CHECK(r.worst_index == 3);
  CHECK(std::isnan(r.worst_ratio));
  CHECK(std::isnan(r.max_abs_error));
  CHECK(std::isnan(r.max_rel_error));
  CHECK(std::isnan(r.analytic_at_worst));
}

// An infinite numeric derivative made the tolerance infinite (atol + rtol * inf), so any finite
// analytic value passed.
TEST_CASE("gradcheck: an infinite numeric or analytic value fails") {
  const auto x = Tensor<double>::from({0.5, -1.0, 2.0}, {3});
  const auto blows_up = [](const Tensor<double>& v) {  // infinite when x_1 moves up
    return v[0] * v[0] + (v[1] > -1.0 ? HUGE_VAL : 0.0) + v[2];
  };
  const auto g = Tensor<double>::from({1.0, 0.0, 1.0}, {3});
  const auto r = gradcheck(blows_up, x, g);
  INFO(r.summary());
  CHECK_FALSE(r.passed);
  CHECK(r.failures == 1);
  CHECK(r.worst_index == 1);
  CHECK(std::isnan(r.worst_ratio));
  auto h = Tensor<double>::from({1.0, 2.0, 1.0}, {3});
  h[0] = HUGE_VAL;
  const auto q =
      gradcheck([](const Tensor<double>& v) { return v[0] * v[0] + 2 * v[1] + v[2]; }, x, h);
  CHECK(q.failures == 1);
  CHECK(q.worst_index == 0);
}

TEST_CASE("gradcheck: a seeded sample checks that many elements, reproducibly") {
  const auto x = testing::randn<double>({4, 2, 50}, 4);
  GradcheckOptions o;
  o.samples = 30;
  const auto a = gradcheck(f, x, df(x), o);
  CHECK(a.checked == 30);
  CHECK(a.passed);
  auto g = df(x);
  for (auto& v : g) v += 1.0;  // every element wrong: any sample finds it
  const auto b = gradcheck(f, x, g, o);
  CHECK(b.failures == 30);
}

TEST_CASE("gradcheck: a sample has distinct elements") {
  const auto x = testing::randn<double>({1, 1, 40}, 6);
  std::set<int64_t> probed;
  const auto record = [&](const Tensor<double>& v) {
    for (int64_t i = 0; i < v.numel(); ++i)
      if (v[i] != x[i]) probed.insert(i);
    return f(v);
  };
  GradcheckOptions o;
  o.samples = 39;
  const auto r = gradcheck(record, x, df(x), o);
  CHECK(r.checked == 39);
  CHECK(probed.size() == 39);
}

TEST_CASE("gradcheck: bad arguments") {
  const auto x = testing::randn<double>({1, 1, 5}, 5);
  CHECK_THROWS_WITH_AS(gradcheck(f, x, Tensor<double>::zeros({1, 1, 4})),
                       "gradcheck: analytic (1,1,4) does not match x (1,1,5)", Error);
  GradcheckOptions o;
  o.eps = 0;
  CHECK_THROWS_AS(gradcheck(f, x, df(x), o), Error);
  CHECK_THROWS_WITH_AS(gradcheck(f, Tensor<double>{}, df(x)), "gradcheck: x is undefined", Error);
  // From a review (2026-12-02): an undefined analytic read as a 0-d one, rtol = inf passed a
  // gradient 10^6 too large, atol = -1 or rtol = NaN failed a right one without saying why, and
  // CUDA tensors crashed (host code read device memory).
  CHECK_THROWS_WITH_AS(gradcheck(f, x, Tensor<double>{}), "gradcheck: analytic is undefined",
                       Error);
  o = {};
  o.rtol = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(gradcheck(f, x, df(x), o),
                       "gradcheck: options.rtol is inf; it must be finite and >= 0", Error);
  o = {};
  o.rtol = std::nan("");
  CHECK_THROWS_WITH_AS(gradcheck(f, x, df(x), o), doctest::Contains("options.rtol is nan"), Error);
  o = {};
  o.atol = -1.0;
  CHECK_THROWS_WITH_AS(gradcheck(f, x, df(x), o),
                       "gradcheck: options.atol is -1; it must be finite and >= 0", Error);
  if (cuda::available()) {
    CHECK_THROWS_WITH_AS(gradcheck(f, x.to(Device::cuda), df(x)),
                         doctest::Contains("gradcheck: x (1,1,5) is on device cuda"), Error);
    CHECK_THROWS_WITH_AS(gradcheck(f, x, df(x).to(Device::cuda)),
                         doctest::Contains("gradcheck: analytic (1,1,5) is on device cuda"), Error);
  }
}
