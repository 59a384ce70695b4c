// Every registered loss on CUDA against the CPU (issue 7, item 6: "CPU-against-CUDA parity
// within 1e-5 relative in float32, for every registered loss"): each entry of losses/registry.cpp
// (every loss with its option presets, reductions mean, sum and none, the last through forward
// and backward) built on the CPU and on CUDA from the same numbers (Entry::make_float_on), its
// fused value and gradient compared, its composed form on a CUDA tape compared with the CPU
// tape's, and the CUDA result repeated bit for bit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;

namespace {

// max_i |a_i - b_i| / max(max_i |b_i|, floor), NaN when either holds a NaN.
template <class T>
double relative_difference(const Tensor<T>& a, const Tensor<T>& b, double floor) {
  double diff = 0.0, scale = floor;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a[i], y = b[i];
    if (std::isnan(x) || std::isnan(y)) return NAN;
    diff = std::max(diff, std::fabs(x - y));
    scale = std::max(scale, std::fabs(y));
  }
  return diff / scale;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(T)) == 0;
}

template <class T>
registry::Problem<T> make(const registry::Entry& e, Device d) {
  if constexpr (std::is_same_v<T, float>)
    return e.make_float_on(registry::default_shape(), 7, d);
  else
    return e.make_double_on(registry::default_shape(), 7, d);
}

// The entry's CUDA problem against its CPU problem: the fused value and gradient (value relative
// to max(|value|, 1e-3), the gradient to its largest element), the composed form likewise, and
// the CUDA fused result of a second and third call bit for bit. Returns whether it has a composed
// form.
template <class T>
bool check_entry(const registry::Entry& e, double tol) {
  const registry::Problem<T> host = make<T>(e, Device::cpu);
  const registry::Problem<T> dev = make<T>(e, Device::cuda);
  REQUIRE(bitwise_equal(host.input, dev.input));  // the same numbers
  const Tensor<T>& x = host.input;
  Tensor<T> gh, gd;
  const double vh = host.value_and_grad(x, gh);
  const double vd = dev.value_and_grad(x, gd);
  const double scale = std::max(std::fabs(vh), 1e-3);
  INFO("value: CPU ", vh, ", CUDA ", vd);
  REQUIRE(std::isfinite(vh));
  CHECK(std::fabs(vd - vh) <= tol * scale);
  CHECK(relative_difference(gd, gh, 1e-30) <= tol);
  CHECK(std::fabs(dev.value(x) - host.value(x)) <= tol * scale);
  for (int run = 0; run < 2; ++run) {
    Tensor<T> again;
    const double v = dev.value_and_grad(x, again);
    CHECK(std::memcmp(&v, &vd, sizeof v) == 0);
    CHECK(bitwise_equal(again, gd));
  }
  if (!host.composed) return false;
  REQUIRE(static_cast<bool>(dev.composed));
  Tensor<T> ch, cd;
  const double wh = host.composed(x, ch);
  const double wd = dev.composed(x, cd);
  INFO("composed value: CPU ", wh, ", CUDA ", wd);
  CHECK(std::fabs(wd - wh) <= tol * scale);
  CHECK(relative_difference(cd, ch, 1e-30) <= tol);
  return true;
}

template <class T>
void check_all(double tol) {
  size_t entries = 0, composed = 0;
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    ++entries;
    if (check_entry<T>(e, tol)) ++composed;
  }
  CHECK(entries == registry::entries().size());
  CHECK(entries >= 100);
  MESSAGE(entries, " registry entries on CUDA against the CPU, ", composed,
          " with their composed form on a CUDA tape");
}

}  // namespace

TEST_CASE("cuda registry: every registered loss and preset matches the CPU (float, 1e-5)") {
  SEGLOSS_REQUIRE_GPU();
  check_all<float>(1e-5);
}

TEST_CASE("cuda registry: every registered loss and preset matches the CPU (double, 1e-11)") {
  SEGLOSS_REQUIRE_GPU();
  check_all<double>(1e-11);
}
