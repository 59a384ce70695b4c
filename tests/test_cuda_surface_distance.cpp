// surface_distance on CUDA: every field of the result (the four scores per pair, the border
// sizes, the means and the empty counts) equals the CPU's exactly, for blobs and noisy masks in
// 1, 2 and 3 spatial axes with anisotropic spacing, percentiles, directed, per-class tolerances,
// both empty-mask policies with empty pairs, float and double; the same result over 10 runs; the
// CPU's message for a non-binary value. The labels form: every field equal to the CPU's for
// int32 / int64 label maps (mixed), ignore_index, absent classes, 1 to 3 axes, spacing, both
// empty policies; 10 runs; mixed devices and the CPU's messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

bool same_value(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

template <class U>
bool same_tensor(const Tensor<U>& a, const Tensor<U>& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!same_value(static_cast<double>(a[i]), static_cast<double>(b[i]))) return false;
  return true;
}

void check_same(const SurfaceDistanceResult& want, const SurfaceDistanceResult& got) {
  CHECK(same_tensor(want.hausdorff, got.hausdorff));
  CHECK(same_tensor(want.hausdorff_percentile, got.hausdorff_percentile));
  CHECK(same_tensor(want.average_surface_distance, got.average_surface_distance));
  CHECK(same_tensor(want.surface_dice, got.surface_dice));
  CHECK(same_tensor(want.pred_border, got.pred_border));
  CHECK(same_tensor(want.true_border, got.true_border));
  CHECK(same_value(want.mean_hausdorff, got.mean_hausdorff));
  CHECK(same_value(want.mean_hausdorff_percentile, got.mean_hausdorff_percentile));
  CHECK(same_value(want.mean_average_surface_distance, got.mean_average_surface_distance));
  CHECK(same_value(want.mean_surface_dice, got.mean_surface_dice));
  CHECK(want.empty == got.empty);
  CHECK(want.one_empty == got.one_empty);
}

// Ellipsoids (2D: ellipses) with centres and radii that vary by plane, plus a few flipped
// voxels: smooth borders with some noise, and an empty plane or two when asked.
template <class T>
Tensor<T> blobs(const Shape& s, uint64_t seed, double scale, bool empties) {
  auto t = Tensor<T>::zeros(s);
  const auto noise = mask<T>(s, seed, 0.03);
  const int spatial = s.rank() - 2;
  int64_t e[3] = {1, 1, 1};
  for (int a = 0; a < spatial; ++a) e[3 - spatial + a] = s[2 + a];
  const int64_t size = e[0] * e[1] * e[2], planes = s[0] * s[1];
  for (int64_t p = 0; p < planes; ++p) {
    if (empties && p % 3 == 2) continue;  // an empty mask
    const double c[3] = {e[0] * (0.4 + 0.05 * (p % 3)), e[1] * (0.5 - 0.04 * (p % 4)),
                         e[2] * (0.45 + 0.03 * (p % 5))};
    const double r[3] = {e[0] * scale, e[1] * scale * (1.0 + 0.1 * (p % 2)), e[2] * scale * 0.8};
    for (int64_t i = 0; i < size; ++i) {
      const int64_t x = i % e[2], y = (i / e[2]) % e[1], z = i / (e[1] * e[2]);
      double q = 0.0;
      const double pos[3] = {static_cast<double>(z), static_cast<double>(y),
                             static_cast<double>(x)};
      for (int a = 3 - spatial; a < 3; ++a) q += (pos[a] - c[a]) * (pos[a] - c[a]) / (r[a] * r[a]);
      const bool in = q <= 1.0;
      t[p * size + i] = (in != (noise[p * size + i] != T(0))) ? T(1) : T(0);
    }
  }
  return t;
}

template <class T>
void check_case(const Tensor<T>& pred, const Tensor<T>& target, const SurfaceDistanceOptions& o,
                const char* what) {
  INFO(what, " shape ", pred.shape(), " percentile ", o.percentile, " directed ", o.directed);
  const auto want = surface_distance(pred, target, o);
  const auto got = surface_distance(gpu(pred), gpu(target), o);
  check_same(want, got);
}

template <class T>
void parity() {
  const Shape shapes[] = {{2, 3, 20, 17}, {1, 2, 9, 12, 10}, {2, 2, 40}, {1, 1, 1, 7}};
  for (const Shape& s : shapes) {
    const int spatial = s.rank() - 2;
    const auto p = blobs<T>(s, 1, 0.3, true), t = blobs<T>(s, 2, 0.25, true);
    SurfaceDistanceOptions o;
    check_case(p, t, o, "blobs");
    check_case(mask<T>(s, 3, 0.3), mask<T>(s, 4, 0.5), o, "noise");
    o.spacing.assign(static_cast<size_t>(spatial), 1.0);
    for (int a = 0; a < spatial; ++a) o.spacing[static_cast<size_t>(a)] = 0.5 + 0.7 * a;
    o.percentile = 50;
    o.tolerance = 1.5;
    check_case(p, t, o, "spacing, median");
    o.directed = true;
    o.percentile = 100;
    o.empty = SurfaceEmpty::bounded;
    check_case(p, t, o, "directed, bounded");
    o = {};
    o.class_tolerance.assign(static_cast<size_t>(s[1]), 0.0);
    for (int64_t k = 0; k < s[1]; ++k) o.class_tolerance[static_cast<size_t>(k)] = 0.5 * k;
    o.percentile = 0;
    check_case(p, t, o, "class tolerances, minimum");
  }
  // Several blocks per pass, a box much smaller than the image, and whole-image masks.
  const Shape big{1, 2, 70, 64};
  SurfaceDistanceOptions o;
  check_case(blobs<T>(big, 5, 0.15, false), blobs<T>(big, 6, 0.2, false), o, "small boxes");
  check_case(Tensor<T>::full(big, T(1)), blobs<T>(big, 7, 0.4, false), o, "a full mask");
  const Shape all_empty{2, 1, 6, 5};
  check_case(Tensor<T>::zeros(all_empty), Tensor<T>::zeros(all_empty), o, "all empty");
  o.empty = SurfaceEmpty::bounded;
  check_case(Tensor<T>::zeros(all_empty), mask<T>(all_empty, 8), o, "one empty, bounded");
}

}  // namespace

TEST_CASE("cuda surface_distance: the CPU's result exactly (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  parity<float>();
  parity<double>();
}

TEST_CASE("cuda surface_distance: the same result over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 2, 16, 15, 14};
  const auto p = gpu(blobs<double>(s, 11, 0.3, false)), t = gpu(blobs<double>(s, 12, 0.3, false));
  SurfaceDistanceOptions o;
  o.spacing = {1.5, 0.7, 0.9};
  const auto first = surface_distance(p, t, o);
  for (int i = 0; i < 10; ++i) check_same(first, surface_distance(p, t, o));
}

TEST_CASE("cuda surface_distance: errors") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 2, 6, 5};
  auto p = mask<float>(s, 21), t = mask<float>(s, 22);
  p[37] = 0.5f;
  t[35] = std::numeric_limits<float>::quiet_NaN();
  std::string cpu_message;
  try {
    surface_distance(p, t);
  } catch (const Error& e) {
    cpu_message = e.what();
  }
  REQUIRE(!cpu_message.empty());
  CHECK_THROWS_WITH_AS(surface_distance(gpu(p), gpu(t)), cpu_message.c_str(), Error);
  CHECK(cpu_message.find("target holds nan at index 35") != std::string::npos);
  t[35] = 0.f;
  CHECK_THROWS_WITH_AS(surface_distance(gpu(p), gpu(t)),
                       doctest::Contains("surface_distance: pred holds 0.5 at index 37"), Error);
  // Mixed devices.
  CHECK_THROWS_WITH_AS(surface_distance(gpu(p), t),
                       doctest::Contains("target (2,2,6,5) is on device cpu, but pred is on cuda"),
                       Error);
}

// The labels form (surface_distance_labels): label maps (N, spatial...) whose masks come from
// the blobs above (class 1 and 2 overlapping, class 0 the rest), noise labels 3, and ignored
// true labels sprinkled where asked.
namespace {

template <class L>
Tensor<L> blob_labels(const Shape& s, uint64_t seed, double ignored, int64_t ignore) {
  std::vector<int64_t> dims{s[0], 1};  // the blobs' (N, 1, spatial...)
  for (int a = 1; a < s.rank(); ++a) dims.push_back(s[a]);
  const Shape m(dims.begin(), dims.end());
  const auto one = blobs<double>(m, seed, 0.3, false), two = blobs<double>(m, seed + 1, 0.2, true);
  const auto noise = labels<L>(s, 4, seed + 2, ignored, ignore);
  auto t = Tensor<L>::zeros(s);
  for (int64_t i = 0; i < t.numel(); ++i) {
    L v = one[i] != 0.0 ? L(1) : L(0);
    if (two[i] != 0.0) v = L(2);
    if (noise[i] == L(3) || noise[i] == static_cast<L>(ignore)) v = noise[i];
    t[i] = v;
  }
  return t;
}

template <class P, class L>
void check_labels(const Tensor<P>& pred, const Tensor<L>& truth, const std::vector<int64_t>& cls,
                  const SurfaceDistanceOptions& o, const char* what) {
  INFO(what, " shape ", pred.shape(), " classes ", cls.size(), " ignore ", o.ignore_index);
  const auto want = surface_distance_labels(pred, truth, cls, o);
  const auto got = surface_distance_labels(gpu(pred), gpu(truth), cls, o);
  check_same(want, got);
}

template <class P, class L>
void label_parity() {
  const Shape shapes[] = {{2, 20, 17}, {1, 9, 12, 10}, {2, 40}, {1, 1, 7}};
  for (const Shape& s : shapes) {
    const int spatial = s.rank() - 1;
    const auto p = blob_labels<P>(s, 31, 0.0, -100);
    const auto t = blob_labels<L>(s, 41, 0.05, -100);
    SurfaceDistanceOptions o;
    check_labels(p, t, {1, 2, 0}, o, "blobs");
    // A class absent from both maps (6), one absent from the truth only where ignored (3).
    check_labels(labels<P>(s, 4, 5), labels<L>(s, 4, 6, 0.1), {3, 6, 1}, o, "noise");
    o.spacing.assign(static_cast<size_t>(spatial), 1.0);
    for (int a = 0; a < spatial; ++a) o.spacing[static_cast<size_t>(a)] = 0.6 + 0.5 * a;
    o.percentile = 50;
    o.tolerance = 1.5;
    o.empty = SurfaceEmpty::bounded;
    check_labels(p, t, {2, 6, 1}, o, "spacing, median, bounded");
    o = {};
    o.ignore_index = 3;  // the noise labels are now ignored
    o.directed = true;
    o.class_tolerance = {0.0, 1.0};
    check_labels(p, t, {1, 2}, o, "ignore_index 3, directed, class tolerances");
  }
  // Several blocks per pass, small boxes in a larger image.
  const Shape big{1, 70, 64};
  check_labels(blob_labels<P>(big, 51, 0.0, -100), blob_labels<L>(big, 61, 0.02, -100), {2, 1},
               SurfaceDistanceOptions{}, "several blocks");
}

}  // namespace

TEST_CASE("cuda surface_distance_labels: the CPU's result exactly (int32, int64, mixed)") {
  SEGLOSS_REQUIRE_GPU();
  label_parity<int32_t, int32_t>();
  label_parity<int32_t, int64_t>();
  label_parity<int64_t, int32_t>();
  label_parity<int64_t, int64_t>();
}

TEST_CASE("cuda surface_distance_labels: the same result over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 16, 15, 14};
  const auto p = gpu(blob_labels<int64_t>(s, 71, 0.0, -100));
  const auto t = gpu(blob_labels<int32_t>(s, 81, 0.05, -100));
  SurfaceDistanceOptions o;
  o.spacing = {1.5, 0.7, 0.9};
  const auto first = surface_distance_labels(p, t, {1, 2, 3}, o);
  check_same(surface_distance_labels(p.to(Device::cpu), t.to(Device::cpu), {1, 2, 3}, o), first);
  for (int i = 0; i < 10; ++i) check_same(first, surface_distance_labels(p, t, {1, 2, 3}, o));
}

TEST_CASE("cuda surface_distance_labels: errors") {
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{2, 6, 5};
  const auto pd = unread_cuda_view<int32_t>(s);
  const auto td = unread_cuda_view<int64_t>(s);
  const auto pc = Tensor<int32_t>::zeros(s);
  const auto tc = Tensor<int64_t>::zeros(s);
  CHECK_THROWS_WITH_AS(surface_distance_labels(pd, tc, {1}),
                       "surface_distance_labels: true_labels (2,6,5) is on device cpu, but "
                       "pred_labels are on cuda: every tensor of a call must be on one device",
                       Error);
  CHECK_THROWS_WITH_AS(surface_distance_labels(pc, td, {1}),
                       "surface_distance_labels: true_labels (2,6,5) is on device cuda, but "
                       "pred_labels are on cpu: every tensor of a call must be on one device",
                       Error);
  // The CPU's messages for the other checks.
  const auto same = [&](auto&& call_cpu, auto&& call_cuda) {
    std::string want;
    try {
      call_cpu();
    } catch (const Error& e) {
      want = e.what();
    }
    REQUIRE(!want.empty());
    CHECK_THROWS_WITH_AS(call_cuda(), want.c_str(), Error);
  };
  same([&] { surface_distance_labels(pc, tc, {}); }, [&] { surface_distance_labels(pd, td, {}); });
  same(
      [&] {
        surface_distance_labels(pc, tc, {1, 2, 1});
      },
      [&] {
        surface_distance_labels(pd, td, {1, 2, 1});
      });
  SurfaceDistanceOptions o;
  o.ignore_index = 2;
  same(
      [&] {
        surface_distance_labels(pc, tc, {1, 2}, o);
      },
      [&] {
        surface_distance_labels(pd, td, {1, 2}, o);
      });
  o = {};
  o.class_tolerance = {1.0};
  same(
      [&] {
        surface_distance_labels(pc, tc, {1, 2}, o);
      },
      [&] {
        surface_distance_labels(pd, td, {1, 2}, o);
      });
  same(
      [&] {
        surface_distance_labels(Tensor<int32_t>::zeros({2, 6, 4}), tc, {1});
      },
      [&] {
        surface_distance_labels(unread_cuda_view<int32_t>({2, 6, 4}), td, {1});
      });
}

TEST_CASE("cuda surface_distance: a caller's workspace of the size queries, both forms") {
  SEGLOSS_REQUIRE_GPU();
  // The masks form: (N, C, D, H, W); the labels form: (N, D, H, W) with 3 classes.
  const Shape s{2, 2, 9, 8, 7};
  const auto p = blobs<float>(s, 13, 0.3, true), t = blobs<float>(s, 14, 0.3, false);
  const Shape ls{2, 9, 8, 7};
  const auto lp = blob_labels<int32_t>(ls, 91, 0.0, -100);
  const auto lt = blob_labels<int64_t>(ls, 92, 0.05, -100);
  const std::vector<int64_t> classes = {1, 2, 3};
  const size_t bytes = cuda::surface_distance_workspace_size(s);
  const size_t label_bytes = cuda::surface_distance_labels_workspace_size(ls, 3);
  // A byte per element of every pair, and the scratch of one pair (41 bytes per element).
  CHECK(bytes >= static_cast<size_t>(s.numel()) + 41 * static_cast<size_t>(s.numel() / 4));
  CHECK(label_bytes >= 3 * static_cast<size_t>(ls.numel()) + 41 * static_cast<size_t>(9 * 8 * 7));
  const SurfaceDistanceResult want = surface_distance(p, t);
  const SurfaceDistanceResult want_labels = surface_distance_labels(lp, lt, classes);
  const auto pd = gpu(p), td = gpu(t);
  const auto lpd = gpu(lp);
  const auto ltd = gpu(lt);
  const size_t most = std::max(bytes, label_bytes);
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(most / sizeof(double) + 1)}, Device::cuda);
  {
    cuda::WorkspaceScope scope(ws.data(), bytes);
    check_same(want, surface_distance(pd, td));
    cuda::WorkspaceScope small(ws.data(), bytes - 300);
    CHECK_THROWS_WITH_AS(surface_distance(pd, td),
                         doctest::Contains("surface_distance: the caller's workspace holds"),
                         Error);
  }
  {
    cuda::WorkspaceScope scope(ws.data(), label_bytes);
    check_same(want_labels, surface_distance_labels(lpd, ltd, classes));
    cuda::WorkspaceScope small(ws.data(), label_bytes - 300);
    CHECK_THROWS_WITH_AS(surface_distance_labels(lpd, ltd, classes),
                         doctest::Contains("surface_distance_labels: the caller's workspace holds"),
                         Error);
  }
}
