// distance_transform on CUDA: the output (a CUDA Tensor<double>) equals the CPU's bit for bit,
// for float, double, int32 and int64 masks in 1, 2 and 3 spatial axes, to background and to
// foreground, squared or not, anisotropic spacing, NaN as foreground, planes with nothing to
// measure to (+inf), several blocks per pass; the same bits over 10 runs; the CPU's messages.
#include <doctest/doctest.h>

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

// Bitwise equality, NaN included; the count of differing elements.
int64_t differing(const Tensor<double>& want, const Tensor<double>& got_any) {
  const Tensor<double> got = got_any.to(Device::cpu);
  if (want.shape() != got.shape()) return -1;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    bad += std::memcmp(&want[i], &got[i], sizeof(double)) != 0 ? 1 : 0;
  return bad;
}

template <class T>
void check_case(const Tensor<T>& m, const DistanceTransformOptions& o, const char* what) {
  INFO(what, " shape ", m.shape(), " squared ", o.squared, " to foreground ",
       o.to == DistanceTo::foreground);
  const Tensor<double> want = distance_transform(m, o);
  const Tensor<double> got = distance_transform(gpu(m), o);
  CHECK(got.device() == Device::cuda);
  CHECK(differing(want, got) == 0);
}

template <class T>
void parity() {
  const Shape shapes[] = {{2, 2, 13, 11}, {1, 2, 7, 9, 6}, {2, 1, 30}, {1, 1, 1, 7}};
  for (const Shape& s : shapes) {
    const int spatial = s.rank() - 2;
    auto m = mask<T>(s, 3, 0.3);
    if (std::numeric_limits<T>::has_quiet_NaN) m[1] = std::numeric_limits<T>::quiet_NaN();
    m[2] = T(3);  // any non-zero value is foreground
    // Plane 0 all background: nothing to measure to for to = foreground; the last plane all
    // foreground: nothing for to = background.
    const int64_t size = s.numel() / (s[0] * s[1]);
    auto edge = m.clone();  // a Tensor copy shares the elements
    for (int64_t i = 0; i < size; ++i) edge[i] = T(0);
    for (int64_t i = s.numel() - size; i < s.numel(); ++i) edge[i] = T(1);
    DistanceTransformOptions o;
    check_case(m, o, "noise");
    check_case(edge, o, "empty and full planes");
    o.to = DistanceTo::foreground;
    check_case(edge, o, "empty and full planes, to foreground");
    o.spacing.assign(static_cast<size_t>(spatial), 1.0);
    for (int a = 0; a < spatial; ++a) o.spacing[static_cast<size_t>(a)] = 0.6 + 0.45 * a;
    check_case(m, o, "spacing, to foreground");
    o.squared = true;
    o.to = DistanceTo::background;
    check_case(m, o, "spacing, squared");
  }
  // Several blocks per pass: sparse seeds in a larger image.
  DistanceTransformOptions o;
  check_case(mask<T>({1, 1, 70, 64}, 9, 0.995), o, "several blocks");
}

}  // namespace

TEST_CASE("cuda distance_transform: the CPU's values bit for bit (float, double, int32, int64)") {
  SEGLOSS_REQUIRE_GPU();
  parity<float>();
  parity<double>();
  parity<int32_t>();
  parity<int64_t>();
}

TEST_CASE("cuda distance_transform: the same bits over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const auto m = gpu(mask<float>({2, 1, 12, 11, 10}, 17, 0.8));
  DistanceTransformOptions o;
  o.spacing = {1.5, 0.7, 0.9};
  const Tensor<double> first = distance_transform(m, o).to(Device::cpu);
  CHECK(differing(distance_transform(m.to(Device::cpu), o), first) == 0);
  for (int i = 0; i < 10; ++i) CHECK(differing(first, distance_transform(m, o)) == 0);
}

TEST_CASE("cuda distance_transform: the CPU's messages") {
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const auto same = [](const Tensor<float>& cpu, const Tensor<float>& cuda,
                       const DistanceTransformOptions& o) {
    std::string want;
    try {
      distance_transform(cpu, o);
    } catch (const Error& e) {
      want = e.what();
    }
    REQUIRE(!want.empty());
    CHECK_THROWS_WITH_AS(distance_transform(cuda, o), want.c_str(), Error);
  };
  DistanceTransformOptions o;
  o.spacing = {1.0};
  same(Tensor<float>::zeros({1, 1, 4, 5}), unread_cuda_view<float>({1, 1, 4, 5}), o);
  o.spacing = {1.0, -2.0};
  same(Tensor<float>::zeros({1, 1, 4, 5}), unread_cuda_view<float>({1, 1, 4, 5}), o);
  o = {};
  same(Tensor<float>::zeros({4, 5}), unread_cuda_view<float>({4, 5}), o);
  same(Tensor<float>::zeros({1, 0, 5}), unread_cuda_view<float>({1, 0, 5}), o);
}

TEST_CASE("cuda distance_transform: a caller's workspace of distance_transform_workspace_size") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 1, 6, 7, 8};
  const auto m = mask<double>(s, 23, 0.7);
  const size_t bytes = cuda::distance_transform_workspace_size(s);
  // A byte per element and 32 per element of one plane, at least.
  CHECK(bytes >= static_cast<size_t>(s.numel()) + 32 * static_cast<size_t>(s.numel() / 4));
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda);
  {
    cuda::WorkspaceScope scope(ws.data(), bytes);
    CHECK(differing(distance_transform(m), distance_transform(gpu(m))) == 0);
    cuda::WorkspaceScope small(ws.data(), bytes - 300);
    CHECK_THROWS_WITH_AS(distance_transform(gpu(m)),
                         doctest::Contains("distance_transform: the caller's workspace holds"),
                         Error);
  }
}
