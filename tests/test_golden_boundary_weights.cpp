// Golden tests for boundary_weights: segloss against PyTorch's avg_pool2d / avg_pool3d-based
// weights, the Carvana seed's own code included.
//
// tests/golden/boundary_weights.txt is written by tests/golden/generate_boundary_weights.py
// (tests/golden/README.md has the format and the cases). Each case stores the mask, PyTorch's
// 0/1 edge indicator and the two weight levels; the map is levels[indicator]. This checks every
// element of segloss's map, in double (1e-15 relative) and in float (the mask as float, 1e-6
// relative, with the same indicator: the generator verified that PyTorch's float32 indicator
// equals its float64 one), through both forms of the call. The levels differ by the factor
// 1 + boost, so any pixel whose indicator differs fails. A missing or short file fails.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

constexpr int64_t kMinCases = 31;

BoundaryWeightOptions make_options(const GoldenCase& c) {
  BoundaryWeightOptions o;
  o.kernel_size = static_cast<int>(parse_signed(c.option("kernel_size")));
  o.low = parse_double(c.option("low"));
  o.high = parse_double(c.option("high"));
  o.boost = parse_double(c.option("boost"));
  o.normalize = c.option("normalize") == "1";
  return o;
}

// Every weight against levels[indicator], with relative tolerance rtol.
template <class T>
void check_map(const char* what, const Tensor<T>& w, const GoldenCase& c, double rtol) {
  const GoldenTensor& ind = c.tensor("indicator");
  const GoldenTensor& levels = c.tensor("levels");
  REQUIRE(levels.values.size() == 2);
  REQUIRE(w.shape() == Shape(c.shape.begin(), c.shape.end()));
  int64_t failures = 0, first = -1, edges = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const bool on = ind.values[static_cast<size_t>(i)] != 0.0;
    edges += on ? 1 : 0;
    const double want = levels.values[on ? 1 : 0];
    const double got = static_cast<double>(w[i]);
    if (!(std::abs(got - want) <= rtol * std::abs(want))) {
      if (first < 0) first = i;
      ++failures;
    }
  }
  CHECK(static_cast<double>(edges) == c.value);
  std::ostringstream msg;
  msg.precision(17);
  msg << what << ": " << failures << " of " << w.numel() << " weights differ";
  if (first >= 0)
    msg << "; first at " << first << ": segloss " << static_cast<double>(w[first]) << ", torch "
        << levels.values[ind.values[static_cast<size_t>(first)] != 0.0 ? 1 : 0] << " (indicator "
        << ind.values[static_cast<size_t>(first)] << ")";
  CHECK_MESSAGE(failures == 0, msg.str());
}

template <class T>
void run_case(const GoldenCase& c, double rtol) {
  const Tensor<T> mask = to_tensor<T>(c.tensor("mask"));
  const BoundaryWeightOptions o = make_options(c);
  check_map("boundary_weights", boundary_weights(mask, o), c, rtol);
  Tensor<T> buf = Tensor<T>::full(mask.shape(), std::numeric_limits<T>::quiet_NaN());
  boundary_weights(mask, buf, o);
  check_map("boundary_weights(into)", buf, c, rtol);
}

}  // namespace

TEST_CASE("boundary_weights: golden values from PyTorch avg_pool and the Carvana seed") {
  const GoldenFile f = load_golden("boundary_weights.txt", "generate_boundary_weights.py");
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  CHECK(static_cast<int64_t>(f.cases.size()) >= kMinCases);
  int64_t seeds = 0, volumes = 0;
  for (const GoldenCase& c : f.cases) {
    CAPTURE(c.name);
    REQUIRE(c.loss == "boundary_weights");
    const bool seed = c.option("reference") == "carvana_CombinedLoss";
    seeds += seed ? 1 : 0;
    volumes += c.shape.size() == 5 ? 1 : 0;
    if (seed) {
      // The seed's table decides the kernel; segloss's default (0) must reproduce it.
      CHECK(c.option("kernel_size") == "0");
      CHECK(boundary_kernel_size(c.shape[2]) ==
            static_cast<int>(parse_signed(c.option("resolved_kernel"))));
    }
    {
      INFO("double");
      run_case<double>(c, 1e-15);
    }
    {
      INFO("float");
      run_case<float>(c, 1e-6);
    }
  }
  CHECK(seeds >= 3);
  CHECK(volumes >= 6);
}
