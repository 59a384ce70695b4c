// Golden tests for distance_transform and the surface metrics: segloss against scipy.ndimage
// references written to MONAI's definitions (tests/golden/generate_surface.py writes
// tests/golden/surface.txt; see tests/golden/README.md).
//
// distance_transform cases run on the mask as float, double, int32 and int64 and compare every
// distance with scipy's distance_transform_edt (1e-12 relative; +inf exactly). Surface cases
// run the masks form in float and double, or the labels form with int32 and int64 maps as the
// case stores them, and compare the four (N, K) metrics (1e-12 relative; NaN and inf exactly)
// and the border counts (exactly). A missing or short file fails.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

constexpr int64_t kMinCases = 47;
constexpr int64_t kMinEdtCases = 12;
constexpr double kRtol = 1e-12;

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> v;
  std::stringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) v.push_back(parse_double(tok));
  return v;
}

// NaN matches NaN, inf matches inf of the same sign, finite values within kRtol.
bool same(double a, double g) {
  if (std::isnan(g)) return std::isnan(a);
  if (std::isinf(g)) return a == g;
  return a == g || std::abs(a - g) <= kRtol * std::abs(g);
}

template <class T>
void check_values(const char* what, const Tensor<T>& actual, const GoldenTensor& golden) {
  REQUIRE_MESSAGE(actual.shape() == Shape(golden.dims.begin(), golden.dims.end()), what,
                  " has shape ", actual.shape().str(), ", golden ", shape_str(golden.dims));
  int64_t failures = 0, first = -1;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    if (same(static_cast<double>(actual[i]), golden.values[static_cast<size_t>(i)])) continue;
    if (first < 0) first = i;
    ++failures;
  }
  std::ostringstream msg;
  msg.precision(17);
  if (first >= 0)
    msg << what << ": " << failures << " of " << actual.numel() << " differ; first at " << first
        << ": segloss " << static_cast<double>(actual[first]) << ", scipy "
        << golden.values[static_cast<size_t>(first)];
  CHECK_MESSAGE(failures == 0, msg.str());
}

template <class T>
void run_edt(const GoldenCase& c) {
  DistanceTransformOptions o;
  o.spacing = parse_list(c.option("spacing"));
  o.to = c.option("to") == "foreground" ? DistanceTo::foreground : DistanceTo::background;
  o.squared = c.option("squared") == "1";
  const Tensor<double> d = distance_transform(to_tensor<T>(c.tensor("mask")), o);
  check_values("distance", d, c.tensor("distance"));
}

SurfaceDistanceOptions options_of(const GoldenCase& c) {
  SurfaceDistanceOptions o;
  o.spacing = parse_list(c.option("spacing"));
  o.percentile = parse_double(c.option("percentile"));
  o.tolerance = parse_double(c.option("tolerance"));
  o.class_tolerance = parse_list(c.option("class_tolerance"));
  o.directed = c.option("directed") == "1";
  const std::string empty = c.option("empty");
  REQUIRE_MESSAGE((empty == "monai" || empty == "bounded"), "unknown policy ", empty);
  o.empty = empty == "monai" ? SurfaceEmpty::monai : SurfaceEmpty::bounded;
  if (!c.option("ignore_index").empty()) o.ignore_index = parse_signed(c.option("ignore_index"));
  return o;
}

void check_result(const GoldenCase& c, const SurfaceDistanceResult& r) {
  check_values("hausdorff", r.hausdorff, c.tensor("hausdorff"));
  check_values("hausdorff_percentile", r.hausdorff_percentile, c.tensor("hausdorff_percentile"));
  check_values("average_surface_distance", r.average_surface_distance,
               c.tensor("average_surface_distance"));
  check_values("surface_dice", r.surface_dice, c.tensor("surface_dice"));
  check_values("pred_border", r.pred_border, c.tensor("pred_border"));
  check_values("true_border", r.true_border, c.tensor("true_border"));
  // The means: each metric's nanmean, from the golden values.
  const auto nanmean = [](const GoldenTensor& g) {
    double s = 0.0;
    int64_t n = 0;
    for (double v : g.values)
      if (!std::isnan(v)) s += v, ++n;
    return n ? s / static_cast<double>(n) : std::nan("");
  };
  CHECK(same(r.mean_hausdorff, nanmean(c.tensor("hausdorff"))));
  CHECK(same(r.mean_hausdorff_percentile, nanmean(c.tensor("hausdorff_percentile"))));
  CHECK(same(r.mean_average_surface_distance, nanmean(c.tensor("average_surface_distance"))));
  CHECK(same(r.mean_surface_dice, nanmean(c.tensor("surface_dice"))));
}

template <class P, class L>
void run_labels(const GoldenCase& c, const SurfaceDistanceOptions& o) {
  std::vector<int64_t> classes;
  for (double v : parse_list(c.option("classes"))) classes.push_back(static_cast<int64_t>(v));
  check_result(c, surface_distance_labels(to_labels<P>(c.tensor("pred")),
                                          to_labels<L>(c.tensor("target")), classes, o));
}

}  // namespace

TEST_CASE("surface edt: golden values from scipy (distance_transform_edt, MONAI's metrics)") {
  const GoldenFile f = load_golden("surface.txt", "generate_surface.py");
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  CHECK(static_cast<int64_t>(f.cases.size()) >= kMinCases);
  int64_t edt = 0;
  for (const GoldenCase& c : f.cases) {
    CAPTURE(c.name);
    if (c.loss == "distance_transform") {
      ++edt;
      run_edt<double>(c);
      run_edt<float>(c);
      run_edt<int32_t>(c);
      run_edt<int64_t>(c);
      continue;
    }
    REQUIRE(c.loss == "surface_distance");
    const SurfaceDistanceOptions o = options_of(c);
    if (c.option("form") == "labels") {
      // The generator stores the maps in the types the case names; run every combination.
      run_labels<int32_t, int32_t>(c, o);
      run_labels<int64_t, int64_t>(c, o);
      run_labels<int32_t, int64_t>(c, o);
      continue;
    }
    {
      INFO("double");
      check_result(c, surface_distance(to_tensor<double>(c.tensor("pred")),
                                       to_tensor<double>(c.tensor("target")), o));
    }
    {
      INFO("float");
      check_result(c, surface_distance(to_tensor<float>(c.tensor("pred")),
                                       to_tensor<float>(c.tensor("target")), o));
    }
  }
  CHECK(edt >= kMinEdtCases);
}
