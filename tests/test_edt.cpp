// distance_transform (the exact EDT): against a brute-force minimum over every target voxel in
// 1, 2 and 3 spatial axes with anisotropic spacing, both directions and squared output; exact
// integers at unit spacing; planes with nothing to measure to; NaN and integer masks; results
// independent of the thread count; bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The definition, by brute force over every pair of voxels of each plane.
Tensor<double> brute_force(const Tensor<double>& mask, const std::vector<double>& spacing,
                           DistanceTo to, bool squared) {
  const Shape& s = mask.shape();
  const int spatial = s.rank() - 2;
  const int64_t planes = s[0] * s[1], size = s.numel_from(2);
  Tensor<double> out = Tensor<double>::empty(s);
  const auto coords = [&](int64_t i, int a) {
    int64_t stride = 1;
    for (int b = spatial - 1; b > a; --b) stride *= s[2 + b];
    return (i / stride) % s[2 + a];
  };
  for (int64_t p = 0; p < planes; ++p) {
    const double* m = mask.data() + p * size;
    for (int64_t i = 0; i < size; ++i) {
      double best = kInf;
      for (int64_t j = 0; j < size; ++j) {
        const bool target = to == DistanceTo::background ? m[j] == 0.0 : m[j] != 0.0;
        if (!target) continue;
        double d2 = 0.0;
        for (int a = 0; a < spatial; ++a) {
          const double d =
              spacing[static_cast<size_t>(a)] * static_cast<double>(coords(i, a) - coords(j, a));
          d2 += d * d;
        }
        best = std::min(best, d2);
      }
      out[p * size + i] = squared ? best : std::sqrt(best);
    }
  }
  return out;
}

void check_close(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  int64_t bad = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const bool ok = a[i] == b[i] || std::abs(a[i] - b[i]) <= 1e-12 * std::abs(b[i]);
    if (!ok && bad++ == 0) CHECK_MESSAGE(ok, "element ", i, ": ", a[i], " vs ", b[i]);
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("edt: equals the brute-force minimum in 1, 2 and 3 axes, anisotropic, both ways") {
  struct Setup {
    Shape shape;
    std::vector<double> spacing;
    double fraction;
  };
  const std::vector<Setup> setups = {
      {{2, 1, 37}, {0.3}, 0.1},
      {{1, 2, 13, 17}, {1.0, 1.0}, 0.3},
      {{2, 1, 11, 9}, {2.5, 0.4}, 0.05},
      {{1, 1, 7, 8, 9}, {1.0, 1.0, 1.0}, 0.5},
      {{1, 2, 6, 9, 7}, {3.0, 0.7, 1.3}, 0.02},
      {{1, 1, 1, 12, 10}, {5.0, 1.0, 2.0}, 0.2},  // a volume of one slice
  };
  uint64_t seed = 1;
  for (const Setup& st : setups) {
    CAPTURE(st.shape);
    const auto m = testing::mask<double>(st.shape, seed++, st.fraction);
    for (DistanceTo to : {DistanceTo::background, DistanceTo::foreground}) {
      for (bool squared : {false, true}) {
        DistanceTransformOptions o;
        o.spacing = st.spacing;
        o.to = to;
        o.squared = squared;
        check_close(distance_transform(m, o), brute_force(m, st.spacing, to, squared));
      }
    }
  }
}

TEST_CASE("edt: squared distances at unit spacing are exact integers, and spacing defaults to 1") {
  const Shape s{1, 1, 23, 31};
  const auto m = testing::mask<double>(s, 11, 0.02);
  DistanceTransformOptions o;
  o.squared = true;
  o.to = DistanceTo::foreground;
  const Tensor<double> d = distance_transform(m, o);
  const Tensor<double> want = brute_force(m, {1.0, 1.0}, o.to, true);
  for (int64_t i = 0; i < d.numel(); ++i) REQUIRE(d[i] == want[i]);
  o.spacing = {1.0, 1.0};
  const Tensor<double> d1 = distance_transform(m, o);
  for (int64_t i = 0; i < d.numel(); ++i) REQUIRE(d1[i] == d[i]);
}

TEST_CASE("edt: a plane with nothing to measure to is +inf, planes are independent, 1x1") {
  // Plane 0 empty, plane 1 full, plane 2 one voxel.
  auto m = Tensor<double>::zeros({3, 1, 4, 5});
  for (int64_t i = 20; i < 40; ++i) m[i] = 1.0;
  m[40 + 7] = 1.0;
  const Tensor<double> bg = distance_transform(m);  // to background
  const Tensor<double> fg = distance_transform(m, {{}, DistanceTo::foreground, false});
  for (int64_t i = 0; i < 20; ++i) {
    CHECK(bg[i] == 0.0);
    CHECK(fg[i] == kInf);
    CHECK(bg[20 + i] == kInf);
    CHECK(fg[20 + i] == 0.0);
  }
  CHECK(bg[47] == 1.0);                   // the single voxel touches the background
  CHECK(fg[40] == std::sqrt(1.0 + 4.0));  // (0,0) to (1,2)
  const auto one = Tensor<double>::from({0.0, 1.0}, {2, 1, 1, 1});
  const Tensor<double> d = distance_transform(one);
  CHECK(d[0] == 0.0);
  CHECK(d[1] == kInf);
}

TEST_CASE("edt: nonzero is foreground (NaN too, as numpy bool), integer and float masks agree") {
  auto m = Tensor<double>::zeros({1, 1, 1, 6});
  m[2] = std::nan("");
  m[4] = -3.0;
  const Tensor<double> d = distance_transform(m, {{}, DistanceTo::foreground, false});
  const std::vector<double> want = {2, 1, 0, 1, 0, 1};
  for (int64_t i = 0; i < 6; ++i) CHECK(d[i] == want[static_cast<size_t>(i)]);
  const auto md = testing::mask<double>({2, 1, 9, 8, 7}, 5, 0.3);
  auto mf = Tensor<float>::empty(md.shape());
  auto mi = Tensor<int32_t>::empty(md.shape());
  auto ml = Tensor<int64_t>::empty(md.shape());
  for (int64_t i = 0; i < md.numel(); ++i) {
    mf[i] = static_cast<float>(md[i]);
    mi[i] = static_cast<int32_t>(md[i]) * 7;
    ml[i] = static_cast<int64_t>(md[i]) * -2;
  }
  const DistanceTransformOptions o{{1.5, 1.0, 0.5}, DistanceTo::background, false};
  const Tensor<double> a = distance_transform(md, o), b = distance_transform(mf, o),
                       c = distance_transform(mi, o), e = distance_transform(ml, o);
  for (int64_t i = 0; i < a.numel(); ++i) {
    REQUIRE(a[i] == b[i]);
    REQUIRE(a[i] == c[i]);
    REQUIRE(a[i] == e[i]);
  }
}

TEST_CASE("edt: the same bits at 1, 2 and 3 threads") {
  const int saved = num_threads();
  const auto m = testing::mask<float>({1, 1, 37, 45, 53}, 21, 0.01);
  const DistanceTransformOptions o{{2.0, 0.9, 1.1}, DistanceTo::foreground, false};
  set_num_threads(1);
  const Tensor<double> ref = distance_transform(m, o);
  for (int t : {2, 3}) {
    set_num_threads(t);
    const Tensor<double> d = distance_transform(m, o);
    for (int64_t i = 0; i < d.numel(); ++i) REQUIRE(d[i] == ref[i]);
  }
  set_num_threads(saved);
}

TEST_CASE("edt: bad input names the function and the argument") {
  const auto m = Tensor<double>::zeros({1, 1, 4, 4});
  CHECK_THROWS_WITH_AS(distance_transform(Tensor<double>::zeros({4, 4})),
                       "distance_transform: mask (4,4) has rank 2; expected (N, C, spatial...) "
                       "with 1 to 3 spatial axes",
                       Error);
  CHECK_THROWS_WITH_AS(distance_transform(Tensor<double>::zeros({1, 1, 0, 4})),
                       "distance_transform: mask (1,1,0,4) is empty (a zero extent); an empty "
                       "batch has no distances",
                       Error);
  CHECK_THROWS_WITH_AS(distance_transform(Tensor<double>()),
                       "distance_transform: mask is undefined", Error);
  DistanceTransformOptions o;
  o.spacing = {1.0, 1.0, 1.0};
  CHECK_THROWS_WITH_AS(distance_transform(m, o),
                       "distance_transform: options.spacing has 3 values; the input has 2 "
                       "spatial axes",
                       Error);
  for (double bad : {0.0, -1.0, std::nan(""), kInf}) {
    o.spacing = {1.0, bad};
    CHECK_THROWS_WITH_AS(distance_transform(m, o), doctest::Contains("options.spacing[1] is "),
                         Error);
  }
  // Finite spacings whose squares overflow or underflow in double gave NaN distances (a review,
  // 2026-12-02: 1e-200 and 1e155, as against scipy's finite values); they are refused, for the
  // surface metrics too, and the bounds themselves give the exact distances.
  auto one = Tensor<double>::zeros({1, 1, 3, 4});
  one[5] = 1.0;  // (1, 1)
  DistanceTransformOptions f;
  f.to = DistanceTo::foreground;
  SurfaceDistanceOptions so;
  for (double bad : {1e-200, 1e-101, 1e101, 1e155}) {
    CAPTURE(bad);
    f.spacing = so.spacing = {bad, 1.0};
    CHECK_THROWS_WITH_AS(distance_transform(one, f), doctest::Contains("options.spacing[0] is "),
                         Error);
    CHECK_THROWS_WITH_AS(distance_transform(one, f),
                         doctest::Contains("; it must be in [1e-100, 1e+100]"), Error);
    CHECK_THROWS_WITH_AS(surface_distance(one, one, so),
                         doctest::Contains("surface_distance: options.spacing[0] is "), Error);
  }
  for (double edge : {1e-100, 1e100}) {
    CAPTURE(edge);
    f.spacing = {edge, 1.0};
    const auto d = distance_transform(one, f);
    CHECK(d[5] == 0.0);
    CHECK(d[4] == 1.0);   // (1, 0): one step along W
    CHECK(d[1] == edge);  // (0, 1): one step along H (sqrt(s^2) is s exactly)
    CHECK(d[0] == doctest::Approx(std::hypot(edge, 1.0)).epsilon(1e-15));  // (0, 0)
  }
  CHECK_THROWS_WITH_AS(
      surface_distance(Tensor<double>::zeros({1, 1, 0, 4}), Tensor<double>::zeros({1, 1, 0, 4})),
      "surface_distance: pred (1,1,0,4) is empty (a zero extent); an empty "
      "batch has no distances",
      Error);
}
