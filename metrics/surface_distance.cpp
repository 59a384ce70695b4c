// surface_distance and surface_distance_labels: argument checks; per (image, class) the two
// masks as bits of one byte per voxel, their bounding box, the border voxels, two EDTs and the
// four scores (the definitions are in surface_distance.hpp).
#include "surface_distance.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../backends/cpu/distance_transform.hpp"
#include "../core/checks.hpp"
#include "distance_transform.hpp"

#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/distance_transform.hpp"
#endif

namespace segloss {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The image geometry shared by every pair of a call.
struct Geometry {
  cpu::EdtGrid grid;  // the whole image, padded to three axes
  int axes = 0;       // real spatial axes (the last `axes` of the grid)
  double diagonal = 0.0;
};

struct PairScores {
  double hausdorff = kNaN, percentile = kNaN, average = kNaN, surface_dice = kNaN;
  int64_t pred_border = 0, true_border = 0;
  int empty_masks = 0;  // 0, 1 or 2
};

// Buffers reused across the pairs of a call.
struct Workspace {
  std::vector<uint8_t> masks, box, borders;
  std::vector<double> squared, d_pt, d_tp;
};

// The q-th quantile (q in [0, 1]) with linear interpolation between order statistics, as
// numpy.percentile and torch.quantile: h = q (n - 1), then their lerp (from the nearer end).
// Reorders x.
double quantile(std::vector<double>& x, double q) {
  const size_t n = x.size();
  const double h = q * static_cast<double>(n - 1);
  const size_t lo = std::min(n - 1, static_cast<size_t>(std::floor(h)));
  std::nth_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(lo), x.end());
  const double a = x[lo], w = h - static_cast<double>(lo);
  if (w <= 0.0 || lo + 1 >= n) return a;
  const double b = *std::min_element(x.begin() + static_cast<std::ptrdiff_t>(lo + 1), x.end());
  return w >= 0.5 ? b - (b - a) * (1.0 - w) : a + (b - a) * w;
}

double max_of(const std::vector<double>& x) {
  return *std::max_element(x.begin(), x.end());
}

// The scores of a pair with both masks empty (empty_masks = 2) or one (1).
PairScores empty_scores(int empty_masks, const Geometry& geo, const SurfaceDistanceOptions& o) {
  PairScores s;
  const bool bounded = o.empty == SurfaceEmpty::bounded;
  s.empty_masks = empty_masks;
  if (empty_masks == 2) {
    if (bounded) s.hausdorff = s.percentile = s.average = 0.0, s.surface_dice = 1.0;
    return s;
  }
  const double far = bounded ? geo.diagonal : kInf;
  s.hausdorff = s.percentile = s.average = far;
  if (!bounded) s.percentile = kNaN;  // MONAI's quantile of all-inf lists
  s.surface_dice = 0.0;
  return s;
}

// The four scores from the distance lists D_pt and D_tp (reordered by the percentiles).
void score_lists(PairScores& s, std::vector<double>& d_pt, std::vector<double>& d_tp,
                 const SurfaceDistanceOptions& o, double tolerance) {
  // Sums in index order: pred's border, then the truth's (torch.cat(D_pt, D_tp)).
  double sum_pt = 0.0, sum_tp = 0.0;
  int64_t within = 0;
  for (double v : d_pt) sum_pt += v, within += v <= tolerance ? 1 : 0;
  for (double v : d_tp) sum_tp += v, within += v <= tolerance ? 1 : 0;
  const double n_pt = static_cast<double>(d_pt.size()), n_tp = static_cast<double>(d_tp.size());
  s.surface_dice = static_cast<double>(within) / (n_pt + n_tp);
  const double q = o.percentile / 100.0;
  if (o.directed) {
    s.hausdorff = max_of(d_pt);
    s.average = sum_pt / n_pt;
    s.percentile = quantile(d_pt, q);
  } else {
    s.hausdorff = std::max(max_of(d_pt), max_of(d_tp));
    s.average = (sum_pt + sum_tp) / (n_pt + n_tp);
    s.percentile = std::max(quantile(d_pt, q), quantile(d_tp, q));
  }
}

// The scores of one pair from its masks over the whole image (bits kPredMask, kTrueMask).
PairScores score_pair(const uint8_t* masks, const Geometry& geo, const SurfaceDistanceOptions& o,
                      double tolerance, Workspace& ws) {
  const int64_t d = geo.grid.extent[0], h = geo.grid.extent[1], w = geo.grid.extent[2];
  // The bounding box of the union, [lo, hi] per axis.
  int64_t lo[3] = {d, h, w}, hi[3] = {-1, -1, -1};
  for (int64_t r = 0; r < d * h; ++r) {
    const uint8_t* row = masks + r * w;
    int64_t first = 0;
    while (first < w && !row[first]) ++first;
    if (first == w) continue;
    int64_t last = w - 1;
    while (!row[last]) --last;
    const int64_t z = r / h, y = r % h;
    lo[0] = std::min(lo[0], z), hi[0] = std::max(hi[0], z);
    lo[1] = std::min(lo[1], y), hi[1] = std::max(hi[1], y);
    lo[2] = std::min(lo[2], first), hi[2] = std::max(hi[2], last);
  }
  if (hi[0] < 0) return empty_scores(2, geo, o);  // both masks empty
  PairScores s;

  // Crop to the box: voxels outside it are background in both masks, so the borders and the
  // distances between border voxels are those of the whole image.
  cpu::EdtGrid box = geo.grid;
  for (int a = 0; a < 3; ++a) box.extent[a] = hi[a] - lo[a] + 1;
  const int64_t size = box.size();
  const uint8_t* bm = masks;
  if (size != geo.grid.size()) {
    ws.box.resize(static_cast<size_t>(size));
    const int64_t bh = box.extent[1], bw = box.extent[2];
    for (int64_t z = 0; z < box.extent[0]; ++z)
      for (int64_t y = 0; y < bh; ++y)
        std::memcpy(ws.box.data() + (z * bh + y) * bw,
                    masks + ((lo[0] + z) * h + lo[1] + y) * w + lo[2], static_cast<size_t>(bw));
    bm = ws.box.data();
  }
  ws.borders.resize(static_cast<size_t>(size));
  int64_t counts[2];
  cpu::mark_borders(bm, ws.borders.data(), box, geo.axes, counts);
  s.pred_border = counts[0];
  s.true_border = counts[1];
  if (counts[0] == 0 || counts[1] == 0) {  // one mask empty
    PairScores e = empty_scores(1, geo, o);
    e.pred_border = counts[0];
    e.true_border = counts[1];
    return e;
  }

  ws.squared.resize(static_cast<size_t>(size));
  ws.d_pt.clear();
  ws.d_tp.clear();
  cpu::squared_distance_transform(ws.borders.data(), cpu::kTrueBorder, box, ws.squared.data());
  cpu::gather_distances(ws.borders.data(), cpu::kPredBorder, ws.squared.data(), size, ws.d_pt);
  cpu::squared_distance_transform(ws.borders.data(), cpu::kPredBorder, box, ws.squared.data());
  cpu::gather_distances(ws.borders.data(), cpu::kTrueBorder, ws.squared.data(), size, ws.d_tp);

  score_lists(s, ws.d_pt, ws.d_tp, o, tolerance);
  return s;
}

void check_options(const char* fn, const SurfaceDistanceOptions& o, int64_t columns) {
  detail::check_enum(fn, "options.", "empty", o.empty, detail::kSurfaceEmptyNames);
  SEGLOSS_CHECK(std::isfinite(o.percentile) && o.percentile >= 0.0 && o.percentile <= 100.0, fn,
                "options.percentile is ", o.percentile, "; it must be in [0, 100]");
  SEGLOSS_CHECK(std::isfinite(o.tolerance) && o.tolerance >= 0.0, fn, "options.tolerance is ",
                o.tolerance, "; it must be finite and >= 0");
  if (o.class_tolerance.empty()) return;
  SEGLOSS_CHECK(static_cast<int64_t>(o.class_tolerance.size()) == columns, fn,
                "options.class_tolerance has ", o.class_tolerance.size(), " values for ", columns,
                " scored classes");
  for (size_t k = 0; k < o.class_tolerance.size(); ++k)
    SEGLOSS_CHECK(std::isfinite(o.class_tolerance[k]) && o.class_tolerance[k] >= 0.0, fn,
                  "options.class_tolerance[", k, "] is ", o.class_tolerance[k],
                  "; it must be finite and >= 0");
}

Geometry make_geometry(const char* fn, const Shape& s, int first_spatial,
                       const SurfaceDistanceOptions& o) {
  Geometry g;
  g.axes = s.rank() - first_spatial;
  const std::vector<double> spacing = detail::checked_spacing(fn, o.spacing, g.axes);
  double diag2 = 0.0;
  for (int a = 0; a < g.axes; ++a) {
    const int slot = 3 - g.axes + a;
    g.grid.extent[slot] = s[first_spatial + a];
    g.grid.spacing[slot] = spacing[static_cast<size_t>(a)];
    const double len = static_cast<double>(s[first_spatial + a]) * spacing[static_cast<size_t>(a)];
    diag2 += len * len;
  }
  g.diagonal = std::sqrt(diag2);
  return g;
}

// Runs pair(n, k, tau, ws) -> PairScores for every (image, column) in order and assembles the
// result.
template <class Pair>
SurfaceDistanceResult score_all_pairs(int64_t images, int64_t columns,
                                      const SurfaceDistanceOptions& o, Pair&& pair) {
  SurfaceDistanceResult r;
  const Shape shape{images, columns};
  r.hausdorff = Tensor<double>::empty(shape);
  r.hausdorff_percentile = Tensor<double>::empty(shape);
  r.average_surface_distance = Tensor<double>::empty(shape);
  r.surface_dice = Tensor<double>::empty(shape);
  r.pred_border = Tensor<int64_t>::zeros(shape);
  r.true_border = Tensor<int64_t>::zeros(shape);
  Workspace ws;
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t kept[4] = {0, 0, 0, 0};
  for (int64_t n = 0; n < images; ++n) {
    for (int64_t k = 0; k < columns; ++k) {
      const double tau =
          o.class_tolerance.empty() ? o.tolerance : o.class_tolerance[static_cast<size_t>(k)];
      const PairScores s = pair(n, k, tau, ws);
      const int64_t j = n * columns + k;
      r.hausdorff[j] = s.hausdorff;
      r.hausdorff_percentile[j] = s.percentile;
      r.average_surface_distance[j] = s.average;
      r.surface_dice[j] = s.surface_dice;
      r.pred_border[j] = s.pred_border;
      r.true_border[j] = s.true_border;
      r.empty += s.empty_masks == 2 ? 1 : 0;
      r.one_empty += s.empty_masks == 1 ? 1 : 0;
      const double v[4] = {s.hausdorff, s.percentile, s.average, s.surface_dice};
      for (int m = 0; m < 4; ++m) {
        if (std::isnan(v[m])) continue;
        sums[m] += v[m];
        ++kept[m];
      }
    }
  }
  const auto mean = [&](int m) {
    return kept[m] > 0 ? sums[m] / static_cast<double>(kept[m]) : kNaN;
  };
  r.mean_hausdorff = mean(0);
  r.mean_hausdorff_percentile = mean(1);
  r.mean_average_surface_distance = mean(2);
  r.mean_surface_dice = mean(3);
  return r;
}

// Runs fill(n, k, masks) then score_pair for every (image, column).
template <class Fill>
SurfaceDistanceResult score_all(int64_t images, int64_t columns, const Geometry& geo,
                                const SurfaceDistanceOptions& o, Fill&& fill) {
  return score_all_pairs(images, columns, o, [&](int64_t n, int64_t k, double tau, Workspace& ws) {
    ws.masks.resize(static_cast<size_t>(geo.grid.size()));
    fill(n, k, ws.masks.data());
    return score_pair(ws.masks.data(), geo, o, tau, ws);
  });
}

#if defined(SEGLOSS_WITH_CUDA)
// The result from the device's pairs (pair n columns + k for image n, column k): the CPU's
// scores of the same distance lists.
SurfaceDistanceResult score_pairs(int64_t images, int64_t columns, const Geometry& geo,
                                  const SurfaceDistanceOptions& o,
                                  std::vector<cuda::SurfacePair>& pairs) {
  return score_all_pairs(images, columns, o, [&](int64_t n, int64_t k, double tau, Workspace&) {
    cuda::SurfacePair& pair = pairs[static_cast<size_t>(n * columns + k)];
    PairScores sc;
    if (pair.empty_masks)
      sc = empty_scores(pair.empty_masks, geo, o);
    else
      score_lists(sc, pair.d_pt, pair.d_tp, o, tau);
    sc.pred_border = pair.pred_border;
    sc.true_border = pair.true_border;
    return sc;
  });
}
#endif

// masks[i] = bits from code(i) over [0, size), in parallel blocks; returns the lowest index
// where code reported a bad value (-1: none).
template <class Code>
int64_t fill_masks(uint8_t* masks, int64_t size, Code&& code) {
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (size + kBlock - 1) / kBlock;
  std::vector<int64_t> bad(static_cast<size_t>(blocks), -1);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (blocks > 1)
#endif
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(size, (b + 1) * kBlock);
    int64_t first_bad = -1;
    for (int64_t i = b * kBlock; i < end; ++i) {
      const int bits = code(i);
      if (bits < 0 && first_bad < 0) first_bad = i;
      masks[i] = static_cast<uint8_t>(bits < 0 ? 0 : bits);
    }
    bad[static_cast<size_t>(b)] = first_bad;
  }
  for (int64_t v : bad)
    if (v >= 0) return v;
  return -1;
}

}  // namespace

template <class T>
SurfaceDistanceResult surface_distance(const Tensor<T>& pred, const Tensor<T>& target,
                                       const SurfaceDistanceOptions& options) {
  const char* fn = "surface_distance";
  detail::check_same_shape_pair(fn, pred, target, "pred", /*cuda_path=*/true,
                                "an empty batch has no distances");
  const Shape& s = pred.shape();
  const Geometry geo = make_geometry(fn, s, 2, options);
  check_options(fn, options, s[1]);
  const int64_t size = geo.grid.size();
#if defined(SEGLOSS_WITH_CUDA)
  if (pred.device() == Device::cuda) {  // borders and EDTs on the device, the scores here
    std::vector<cuda::SurfacePair> pairs;
    const cuda::SurfaceBadValue bad =
        cuda::surface_pairs(fn, pred.data(), target.data(), s[0] * s[1], geo.grid, geo.axes, pairs);
    if (bad.index >= 0) {
      const bool in_pred = !(bad.pred == 0.0 || bad.pred == 1.0);
      SEGLOSS_CHECK(false, fn, in_pred ? "pred" : "target", " holds ",
                    in_pred ? bad.pred : bad.target, " at index ", bad.index, " ",
                    s.position(bad.index),
                    "; masks must be 0 or 1 (threshold probabilities first)");
    }
    return score_pairs(s[0], s[1], geo, options, pairs);
  }
#endif
  return score_all(s[0], s[1], geo, options, [&](int64_t n, int64_t c, uint8_t* masks) {
    const int64_t offset = (n * s[1] + c) * size;
    const T* p = pred.data() + offset;
    const T* t = target.data() + offset;
    const int64_t bad = fill_masks(masks, size, [&](int64_t i) {
      const T pv = p[i], tv = t[i];
      if (!((pv == T(0) || pv == T(1)) && (tv == T(0) || tv == T(1)))) return -1;
      return (pv == T(1) ? cpu::kPredMask : 0) | (tv == T(1) ? cpu::kTrueMask : 0);
    });
    if (bad >= 0) {
      const bool in_pred = !(p[bad] == T(0) || p[bad] == T(1));
      SEGLOSS_CHECK(false, fn, in_pred ? "pred" : "target", " holds ",
                    static_cast<double>(in_pred ? p[bad] : t[bad]), " at index ", offset + bad, " ",
                    s.position(offset + bad),
                    "; masks must be 0 or 1 (threshold probabilities first)");
    }
  });
}

template <class P, class L, class>
SurfaceDistanceResult surface_distance_labels(const Tensor<P>& pred_labels,
                                              const Tensor<L>& true_labels,
                                              const std::vector<int64_t>& classes,
                                              const SurfaceDistanceOptions& options) {
  const char* fn = "surface_distance_labels";
  SEGLOSS_CHECK(pred_labels.defined(), fn, "pred_labels is undefined");
  SEGLOSS_CHECK(true_labels.defined(), fn, "true_labels is undefined");
  const Shape& s = true_labels.shape();
  SEGLOSS_CHECK(s.rank() >= 2 && s.rank() <= 4, fn, "true_labels ", s, " has rank ", s.rank(),
                "; expected (N, spatial...) with 1 to 3 spatial axes");
  SEGLOSS_CHECK(pred_labels.shape() == s, fn, "pred_labels ", pred_labels.shape(),
                " does not match true_labels ", s);
  SEGLOSS_CHECK(s.numel() > 0, fn, "true_labels ", s, " is empty (a zero extent)");
  detail::check_input_device(fn, "pred_labels", pred_labels, /*cuda_path=*/true);
  detail::check_same_device(fn, "true_labels", true_labels, pred_labels.device(), "pred_labels");
  SEGLOSS_CHECK(!classes.empty(), fn, "classes is empty; name the classes to score");
  for (size_t k = 0; k < classes.size(); ++k) {
    SEGLOSS_CHECK(classes[k] >= 0, fn, "classes[", k, "] is ", classes[k], "; classes are >= 0");
    SEGLOSS_CHECK(classes[k] != options.ignore_index, fn, "classes[", k, "] is ", classes[k],
                  ", which is also options.ignore_index");
    for (size_t j = 0; j < k; ++j)
      SEGLOSS_CHECK(classes[j] != classes[k], fn, "class ", classes[k], " is listed twice (at ", j,
                    " and ", k, ")");
  }
  const Geometry geo = make_geometry(fn, s, 1, options);
  const int64_t columns = static_cast<int64_t>(classes.size());
  check_options(fn, options, columns);
  const int64_t size = geo.grid.size();
  const int64_t ignore = options.ignore_index;
#if defined(SEGLOSS_WITH_CUDA)
  if (pred_labels.device() == Device::cuda) {  // masks, borders, EDTs on the device; scores here
    std::vector<cuda::SurfacePair> pairs;
    cuda::surface_label_pairs(fn, pred_labels.data(), true_labels.data(), s[0], classes, ignore,
                              geo.grid, geo.axes, pairs);
    return score_pairs(s[0], columns, geo, options, pairs);
  }
#endif
  return score_all(s[0], columns, geo, options, [&](int64_t n, int64_t k, uint8_t* masks) {
    const P* p = pred_labels.data() + n * size;
    const L* t = true_labels.data() + n * size;
    const int64_t cls = classes[static_cast<size_t>(k)];
    fill_masks(masks, size, [&](int64_t i) {
      const int64_t tv = static_cast<int64_t>(t[i]);
      if (tv == ignore) return 0;
      return (static_cast<int64_t>(p[i]) == cls ? cpu::kPredMask : 0) |
             (tv == cls ? cpu::kTrueMask : 0);
    });
  });
}

template SurfaceDistanceResult surface_distance(const Tensor<float>&, const Tensor<float>&,
                                                const SurfaceDistanceOptions&);
template SurfaceDistanceResult surface_distance(const Tensor<double>&, const Tensor<double>&,
                                                const SurfaceDistanceOptions&);
#define SEGLOSS_INSTANTIATE(P, L)                                                            \
  template SurfaceDistanceResult surface_distance_labels(const Tensor<P>&, const Tensor<L>&, \
                                                         const std::vector<int64_t>&,        \
                                                         const SurfaceDistanceOptions&);
SEGLOSS_INSTANTIATE(int32_t, int32_t)
SEGLOSS_INSTANTIATE(int32_t, int64_t)
SEGLOSS_INSTANTIATE(int64_t, int32_t)
SEGLOSS_INSTANTIATE(int64_t, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
