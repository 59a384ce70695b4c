// surface_distance and surface_distance_labels: against a brute-force reference (border voxels
// by their face neighbours, every distance by a minimum over the other border, percentiles by
// sorting) in 1, 2 and 3 axes with anisotropic spacing, directed and per-class tolerances;
// known values; both empty-mask policies and the means; labels with ignore_index against masks;
// symmetry; thread-count independence; bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Plane {
  std::vector<int64_t> extent;  // spatial
  std::vector<double> spacing;
};

std::vector<int64_t> coords(int64_t i, const std::vector<int64_t>& e) {
  std::vector<int64_t> c(e.size());
  for (size_t a = e.size(); a-- > 0;) {
    c[a] = i % e[a];
    i /= e[a];
  }
  return c;
}

// Border voxels of one plane's mask: in the mask, with a face neighbour outside it or outside
// the image.
std::vector<int64_t> border(const double* m, const Plane& g) {
  int64_t size = 1;
  for (int64_t e : g.extent) size *= e;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size; ++i) {
    if (m[i] == 0.0) continue;
    const auto c = coords(i, g.extent);
    bool edge = false;
    int64_t stride = 1;
    for (size_t a = g.extent.size(); a-- > 0;) {
      edge = edge || c[a] == 0 || m[i - stride] == 0.0;
      edge = edge || c[a] == g.extent[a] - 1 || m[i + stride] == 0.0;
      stride *= g.extent[a];
    }
    if (edge) out.push_back(i);
  }
  return out;
}

std::vector<double> distances(const std::vector<int64_t>& from, const std::vector<int64_t>& to,
                              const Plane& g) {
  std::vector<double> d;
  for (int64_t i : from) {
    double best = kInf;
    const auto ci = coords(i, g.extent);
    for (int64_t j : to) {
      const auto cj = coords(j, g.extent);
      double s = 0.0;
      for (size_t a = 0; a < ci.size(); ++a) {
        const double v = g.spacing[a] * static_cast<double>(ci[a] - cj[a]);
        s += v * v;
      }
      best = std::min(best, s);
    }
    d.push_back(std::sqrt(best));
  }
  return d;
}

double percentile(std::vector<double> x, double p) {
  std::sort(x.begin(), x.end());
  const double h = p / 100.0 * static_cast<double>(x.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  const double w = h - static_cast<double>(lo);
  return lo + 1 < x.size() ? x[lo] + w * (x[lo + 1] - x[lo]) : x[lo];
}

struct Expected {
  double hd, hdp, assd, nsd;
  int64_t bp, bt;
};

// Both masks non-empty.
Expected reference(const double* p, const double* t, const Plane& g, double pct, double tau,
                   bool directed) {
  const auto bp = border(p, g), bt = border(t, g);
  const auto dpt = distances(bp, bt, g), dtp = distances(bt, bp, g);
  Expected e;
  e.bp = static_cast<int64_t>(bp.size());
  e.bt = static_cast<int64_t>(bt.size());
  const auto mx = [](const std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end());
  };
  double sum_pt = 0, sum_tp = 0;
  int64_t within = 0;
  for (double v : dpt) sum_pt += v, within += v <= tau;
  for (double v : dtp) sum_tp += v, within += v <= tau;
  e.nsd = static_cast<double>(within) / static_cast<double>(dpt.size() + dtp.size());
  if (directed) {
    e.hd = mx(dpt);
    e.hdp = percentile(dpt, pct);
    e.assd = sum_pt / static_cast<double>(dpt.size());
  } else {
    e.hd = std::max(mx(dpt), mx(dtp));
    e.hdp = std::max(percentile(dpt, pct), percentile(dtp, pct));
    e.assd = (sum_pt + sum_tp) / static_cast<double>(dpt.size() + dtp.size());
  }
  return e;
}

bool near(double a, double b) {
  return a == b || std::abs(a - b) <= 1e-12 * std::abs(b);
}

// Two overlapping random blobs per plane: a box with random voxels flipped.
Tensor<double> blob(const Shape& s, uint64_t seed, int64_t shift) {
  auto m = testing::mask<double>(s, seed, 0.08);
  const int spatial = s.rank() - 2;
  const int64_t size = s.numel_from(2);
  std::vector<int64_t> e(s.rank() - 2);
  for (int a = 0; a < spatial; ++a) e[static_cast<size_t>(a)] = s[2 + a];
  for (int64_t i = 0; i < m.numel(); ++i) {
    const auto c = coords(i % size, e);
    bool in = true;
    for (int a = 0; a < spatial; ++a) {
      const int64_t lo = e[a] / 4 + shift, hi = 3 * e[a] / 4 + shift;
      in = in && c[a] >= lo && c[a] < hi;
    }
    if (in) m[i] = 1.0 - m[i];
  }
  return m;
}

}  // namespace

TEST_CASE("surface: the four metrics equal a brute-force reference, 1 to 3 axes, anisotropic") {
  struct Setup {
    Shape shape;
    std::vector<double> spacing;
  };
  const std::vector<Setup> setups = {
      {{2, 1, 41}, {0.5}},
      {{1, 2, 14, 19}, {1.0, 1.0}},
      {{2, 1, 12, 11}, {2.0, 0.7}},
      {{1, 1, 8, 9, 10}, {1.0, 1.0, 1.0}},
      {{1, 2, 7, 10, 9}, {2.5, 1.0, 0.6}},
  };
  uint64_t seed = 100;
  for (const Setup& st : setups) {
    CAPTURE(st.shape);
    const auto p = blob(st.shape, seed++, 1), t = blob(st.shape, seed++, 0);
    Plane g{{}, st.spacing};
    for (int a = 2; a < st.shape.rank(); ++a) g.extent.push_back(st.shape[a]);
    const int64_t size = st.shape.numel_from(2), pairs = st.shape[0] * st.shape[1];
    for (bool directed : {false, true}) {
      for (double pct : {95.0, 50.0, 0.0, 100.0}) {
        SurfaceDistanceOptions o;
        o.spacing = st.spacing;
        o.directed = directed;
        o.percentile = pct;
        o.class_tolerance.assign(static_cast<size_t>(st.shape[1]), 0.0);
        for (size_t k = 0; k < o.class_tolerance.size(); ++k) o.class_tolerance[k] = 0.8 + k;
        const SurfaceDistanceResult r = surface_distance(p, t, o);
        for (int64_t j = 0; j < pairs; ++j) {
          CAPTURE(j);
          const Expected e =
              reference(p.data() + j * size, t.data() + j * size, g, pct,
                        o.class_tolerance[static_cast<size_t>(j % st.shape[1])], directed);
          CHECK(near(r.hausdorff[j], e.hd));
          CHECK(near(r.hausdorff_percentile[j], e.hdp));
          CHECK(near(r.average_surface_distance[j], e.assd));
          CHECK(near(r.surface_dice[j], e.nsd));
          CHECK(r.pred_border[j] == e.bp);
          CHECK(r.true_border[j] == e.bt);
        }
        if (pct == 100.0) {
          for (int64_t j = 0; j < pairs; ++j) CHECK(r.hausdorff_percentile[j] == r.hausdorff[j]);
        }
      }
    }
  }
}

TEST_CASE("surface: known values: shifted squares, single voxels, a perfect match") {
  // Two 4x4 squares in a 12x12 image, the prediction shifted by 3 columns.
  auto p = Tensor<double>::zeros({1, 1, 12, 12}), t = Tensor<double>::zeros({1, 1, 12, 12});
  for (int64_t y = 4; y < 8; ++y)
    for (int64_t x = 2; x < 6; ++x) {
      t[y * 12 + x] = 1.0;
      p[y * 12 + x + 3] = 1.0;
    }
  SurfaceDistanceOptions o;
  o.spacing = {1.0, 0.5};  // columns 0.5 apart: the shift is 1.5
  SurfaceDistanceResult r = surface_distance(p, t, o);
  CHECK(r.hausdorff[0] == 1.5);
  CHECK(r.pred_border[0] == 12);
  CHECK(r.true_border[0] == 12);
  r = surface_distance(t, t, o);
  CHECK(r.hausdorff[0] == 0.0);
  CHECK(r.hausdorff_percentile[0] == 0.0);
  CHECK(r.average_surface_distance[0] == 0.0);
  CHECK(r.surface_dice[0] == 1.0);
  // Single voxels (3, 4, 5) apart in a volume.
  auto a = Tensor<float>::zeros({1, 1, 6, 7, 8}), b = Tensor<float>::zeros({1, 1, 6, 7, 8});
  a[(1 * 7 + 1) * 8 + 1] = 1.f;
  b[(4 * 7 + 5) * 8 + 6] = 1.f;
  o.spacing = {1.0, 1.0, 1.0};
  o.tolerance = 7.0;  // just under sqrt(50) = 7.07
  r = surface_distance(a, b, o);
  CHECK(r.hausdorff[0] == std::sqrt(50.0));
  CHECK(r.hausdorff_percentile[0] == std::sqrt(50.0));
  CHECK(r.average_surface_distance[0] == std::sqrt(50.0));
  CHECK(r.surface_dice[0] == 0.0);
  o.tolerance = 7.1;
  CHECK(surface_distance(a, b, o).surface_dice[0] == 1.0);
  // A full mask's border is the image boundary; a one-slice volume is all border.
  const auto full = Tensor<double>::full({1, 1, 1, 5, 6}, 1.0);
  r = surface_distance(full, full);
  CHECK(r.pred_border[0] == 30);
  const auto full2 = Tensor<double>::full({1, 1, 5, 6}, 1.0);
  CHECK(surface_distance(full2, full2).pred_border[0] == 5 * 6 - 3 * 4);
}

TEST_CASE("surface: empty masks under the monai and bounded policies, and the means") {
  // Pairs: 0 both empty, 1 prediction empty, 2 truth empty, 3 both one voxel 2 apart, in a
  // 1x1-voxel-spaced 3x4 image.
  auto p = Tensor<double>::zeros({4, 1, 3, 4}), t = Tensor<double>::zeros({4, 1, 3, 4});
  t[12 + 5] = 1.0;
  p[24 + 6] = 1.0;
  p[36 + 0] = 1.0;
  t[36 + 2] = 1.0;
  SurfaceDistanceOptions o;
  o.tolerance = 2.0;  // pair 3 is within tolerance
  SurfaceDistanceResult r = surface_distance(p, t, o);
  CHECK(r.empty == 1);
  CHECK(r.one_empty == 2);
  CHECK(std::isnan(r.hausdorff[0]));
  CHECK(std::isnan(r.hausdorff_percentile[0]));
  CHECK(std::isnan(r.average_surface_distance[0]));
  CHECK(std::isnan(r.surface_dice[0]));
  for (int64_t j : {1, 2}) {
    CHECK(r.hausdorff[j] == kInf);
    CHECK(std::isnan(r.hausdorff_percentile[j]));  // MONAI's quantile of infinities
    CHECK(r.average_surface_distance[j] == kInf);
    CHECK(r.surface_dice[j] == 0.0);
  }
  CHECK(r.pred_border[1] == 0);
  CHECK(r.true_border[1] == 1);
  CHECK(r.hausdorff[3] == 2.0);
  CHECK(r.mean_hausdorff == kInf);
  CHECK(r.mean_hausdorff_percentile == 2.0);  // pairs 1 and 2 are NaN: skipped
  CHECK(r.mean_average_surface_distance == kInf);
  CHECK(r.mean_surface_dice == 1.0 / 3.0);  // (0 + 0 + 1) / 3
  o.directed = true;
  r = surface_distance(p, t, o);
  CHECK(r.hausdorff[1] == kInf);
  CHECK(r.hausdorff[2] == kInf);

  o = SurfaceDistanceOptions();
  o.empty = SurfaceEmpty::bounded;
  o.spacing = {2.0, 1.5};
  r = surface_distance(p, t, o);
  const double diagonal = std::sqrt(6.0 * 6.0 + 6.0 * 6.0);  // (3 * 2, 4 * 1.5)
  CHECK(r.empty == 1);
  CHECK(r.one_empty == 2);
  CHECK(r.hausdorff[0] == 0.0);
  CHECK(r.hausdorff_percentile[0] == 0.0);
  CHECK(r.average_surface_distance[0] == 0.0);
  CHECK(r.surface_dice[0] == 1.0);
  for (int64_t j : {1, 2}) {
    CHECK(r.hausdorff[j] == diagonal);
    CHECK(r.hausdorff_percentile[j] == diagonal);
    CHECK(r.average_surface_distance[j] == diagonal);
    CHECK(r.surface_dice[j] == 0.0);
  }
  CHECK(r.hausdorff[3] == 3.0);
  CHECK(near(r.mean_hausdorff, (2 * diagonal + 3.0) / 4.0));
  CHECK(r.mean_surface_dice == 0.25);  // (1 + 0 + 0 + 0) / 4: pair 3 is 3 apart, tau 1
  // Everything empty: every mean NaN under monai.
  r = surface_distance(Tensor<double>::zeros({2, 2, 1, 1}), Tensor<double>::zeros({2, 2, 1, 1}));
  CHECK(r.empty == 4);
  CHECK(std::isnan(r.mean_hausdorff));
  CHECK(std::isnan(r.mean_surface_dice));
}

TEST_CASE("surface: labels with ignore_index equal the masks form, classes in any order") {
  const Shape s{2, 15, 13};
  const auto tl = testing::labels<int64_t>(s, 4, 31, 0.1, 255);
  auto pl = testing::labels<int32_t>(s, 4, 32);
  for (int64_t i = 0; i < pl.numel(); ++i)
    if (i % 3) pl[i] = static_cast<int32_t>(tl[i] == 255 ? 1 : tl[i]);  // mostly right
  const std::vector<int64_t> classes = {3, 0, 2};
  SurfaceDistanceOptions o;
  o.ignore_index = 255;
  o.spacing = {1.2, 0.8};
  const SurfaceDistanceResult r = surface_distance_labels(pl, tl, classes, o);
  auto pm = Tensor<double>::zeros({2, 3, 15, 13}), tm = Tensor<double>::zeros({2, 3, 15, 13});
  const int64_t px = 15 * 13;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t i = 0; i < px; ++i) {
        const int64_t tv = tl[n * px + i], pv = pl[n * px + i];
        if (tv == 255) continue;
        pm[(n * 3 + k) * px + i] = pv == classes[static_cast<size_t>(k)];
        tm[(n * 3 + k) * px + i] = tv == classes[static_cast<size_t>(k)];
      }
  const SurfaceDistanceResult m = surface_distance(pm, tm, o);
  for (int64_t j = 0; j < 6; ++j) {
    CHECK(r.hausdorff[j] == m.hausdorff[j]);
    CHECK(r.hausdorff_percentile[j] == m.hausdorff_percentile[j]);
    CHECK(r.average_surface_distance[j] == m.average_surface_distance[j]);
    CHECK(r.surface_dice[j] == m.surface_dice[j]);
    CHECK(r.true_border[j] == m.true_border[j]);
  }
  // A class absent from both maps is an empty pair.
  const SurfaceDistanceResult absent = surface_distance_labels(pl, tl, {9}, o);
  CHECK(absent.empty == 2);
}

TEST_CASE("surface: symmetric in pred and truth unless directed") {
  const Shape s{1, 1, 9, 11, 10};
  const auto p = blob(s, 7, 1), t = blob(s, 8, 0);
  SurfaceDistanceOptions o;
  o.spacing = {2.0, 1.0, 0.7};
  const auto a = surface_distance(p, t, o), b = surface_distance(t, p, o);
  CHECK(a.hausdorff[0] == b.hausdorff[0]);
  CHECK(a.hausdorff_percentile[0] == b.hausdorff_percentile[0]);
  CHECK(near(a.average_surface_distance[0], b.average_surface_distance[0]));
  CHECK(a.surface_dice[0] == b.surface_dice[0]);
  o.directed = true;
  const auto c = surface_distance(p, t, o), d = surface_distance(t, p, o);
  CHECK(std::max(c.hausdorff[0], d.hausdorff[0]) == a.hausdorff[0]);
}

TEST_CASE("surface: the same bits at 1, 2 and 3 threads") {
  const int saved = num_threads();
  const Shape s{1, 2, 33, 40, 45};
  const auto p = blob(s, 17, 2), t = blob(s, 18, 0);
  SurfaceDistanceOptions o;
  o.spacing = {1.5, 1.0, 0.8};
  set_num_threads(1);
  const auto ref = surface_distance(p, t, o);
  for (int th : {2, 3}) {
    set_num_threads(th);
    const auto r = surface_distance(p, t, o);
    for (int64_t j = 0; j < 2; ++j) {
      CHECK(r.hausdorff[j] == ref.hausdorff[j]);
      CHECK(r.hausdorff_percentile[j] == ref.hausdorff_percentile[j]);
      CHECK(r.average_surface_distance[j] == ref.average_surface_distance[j]);
      CHECK(r.surface_dice[j] == ref.surface_dice[j]);
    }
    CHECK(r.mean_average_surface_distance == ref.mean_average_surface_distance);
  }
  set_num_threads(saved);
}

TEST_CASE("surface: bad input names the function, the argument and the value") {
  auto p = Tensor<double>::zeros({1, 2, 3, 4}), t = Tensor<double>::zeros({1, 2, 3, 4});
  t[17] = 0.5;
  CHECK_THROWS_WITH_AS(surface_distance(p, t),
                       "surface_distance: target holds 0.5 at index 17 (0,1,1,1); masks must be "
                       "0 or 1 (threshold probabilities first)",
                       Error);
  t[17] = 1.0;
  p[3] = std::nan("");
  CHECK_THROWS_WITH_AS(surface_distance(p, t), doctest::Contains("pred holds nan at index 3"),
                       Error);
  p[3] = 0.0;
  CHECK_THROWS_WITH_AS(surface_distance(p, Tensor<double>::zeros({1, 2, 4, 3})),
                       "surface_distance: target (1,2,4,3) does not match pred (1,2,3,4)", Error);
  SurfaceDistanceOptions o;
  o.percentile = 101.0;
  CHECK_THROWS_WITH_AS(surface_distance(p, t, o),
                       "surface_distance: options.percentile is 101; it must be in [0, 100]",
                       Error);
  o = SurfaceDistanceOptions();
  o.tolerance = -1.0;
  CHECK_THROWS_WITH_AS(surface_distance(p, t, o), doctest::Contains("options.tolerance is -1"),
                       Error);
  o = SurfaceDistanceOptions();
  o.class_tolerance = {1.0};
  CHECK_THROWS_WITH_AS(surface_distance(p, t, o),
                       "surface_distance: options.class_tolerance has 1 values for 2 scored "
                       "classes",
                       Error);
  o.class_tolerance = {1.0, std::nan("")};
  CHECK_THROWS_WITH_AS(surface_distance(p, t, o),
                       doctest::Contains("options.class_tolerance[1] is nan"), Error);
  o = SurfaceDistanceOptions();
  o.spacing = {1.0};
  CHECK_THROWS_WITH_AS(surface_distance(p, t, o),
                       doctest::Contains("options.spacing has 1 values; the input has 2"), Error);

  const auto l = Tensor<int32_t>::zeros({2, 5, 5});
  CHECK_THROWS_WITH_AS(surface_distance_labels(l, l, {}),
                       "surface_distance_labels: classes is empty; name the classes to score",
                       Error);
  CHECK_THROWS_WITH_AS(surface_distance_labels(l, l, {1, -2}),
                       "surface_distance_labels: classes[1] is -2; classes are >= 0", Error);
  CHECK_THROWS_WITH_AS(surface_distance_labels(l, l, {1, 2, 1}),
                       "surface_distance_labels: class 1 is listed twice (at 0 and 2)", Error);
  o = SurfaceDistanceOptions();
  o.ignore_index = 2;
  CHECK_THROWS_WITH_AS(surface_distance_labels(l, l, {1, 2}, o),
                       "surface_distance_labels: classes[1] is 2, which is also "
                       "options.ignore_index",
                       Error);
  CHECK_THROWS_WITH_AS(surface_distance_labels(l, Tensor<int64_t>::zeros({2, 5, 4}), {1}),
                       "surface_distance_labels: pred_labels (2,5,5) does not match true_labels "
                       "(2,5,4)",
                       Error);
  CHECK_THROWS_WITH_AS(
      surface_distance_labels(Tensor<int32_t>::zeros({5}), Tensor<int32_t>::zeros({5}), {1}),
      "surface_distance_labels: true_labels (5) has rank 1; expected (N, "
      "spatial...) with 1 to 3 spatial axes",
      Error);
}
