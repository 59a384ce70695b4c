// boundary_weights on CUDA: bit-identical to the CPU for binary and soft masks (2D and 3D, kernel
// sizes 1, 3, 5, 7 and the automatic one, bands of rows and slices that restart the running sums,
// normalize on and off, boosts, bands of averages), both forms (a returned tensor, a caller's
// buffer holding garbage), NaN and infinity in a plane, an all-zero mask, the same bits over 10
// runs, graph capture (no wait, no allocation after warm-up), a caller's workspace, the argument
// errors with a CUDA mask, and the boundary-weighted bce_dice run on CUDA against the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;
using namespace segloss::testing;

namespace {

// Equal bits, except that a NaN equals any NaN (the CPU and the device may spell NaN apart).
template <class T>
bool same_weights(const Tensor<T>& want, const Tensor<T>& got_any) {
  const Tensor<T> got = got_any.to(Device::cpu);
  if (got.shape() != want.shape()) return false;
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;
    if (std::memcmp(&want[i], &got[i], sizeof(T)) != 0) return false;
  }
  return true;
}

// A disk of ones (radius a third of the smaller extent) in every plane, the rest zeros: a mask
// with one smooth edge, as the Carvana masks are.
template <class T>
Tensor<T> disk(const Shape& s) {
  auto t = Tensor<T>::zeros(s);
  const int64_t h = s[s.rank() - 2], w = s[s.rank() - 1];
  const int64_t planes = t.numel() / (h * w);
  const double r = std::min(h, w) / 3.0;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double dy = y - h / 2.0, dx = x - w / 2.0 + p % 3;
        t[(p * h + y) * w + x] = dy * dy + dx * dx <= r * r ? T(1) : T(0);
      }
  return t;
}

// A mask of the inexact values 0.1 and 0.3, half each.
Tensor<double> two_values(const Shape& s, uint64_t seed) {
  auto m = mask<double>(s, seed, 0.5);
  for (auto& v : m) v = v != 0.0 ? 0.3 : 0.1;
  return m;
}

// The CPU's weights against both CUDA forms (the returned tensor, and a caller's CUDA buffer
// filled with garbage first).
template <class T>
void check_case(const Tensor<T>& m, const BoundaryWeightOptions& o, const char* what) {
  INFO(what, " shape ", m.shape(), " k ", o.kernel_size, " normalize ", o.normalize, " boost ",
       o.boost, " low ", o.low, " high ", o.high);
  const Tensor<T> want = boundary_weights(m, o);
  const Tensor<T> md = gpu(m);
  const Tensor<T> got = boundary_weights(md, o);
  CHECK(got.device() == Device::cuda);
  CHECK(same_weights(want, got));
  Tensor<T> buf = gpu(Tensor<T>::full(m.shape(), T(-7.5)));
  boundary_weights(md, buf, o);
  CHECK(same_weights(want, buf));
}

template <class T>
void parity_2d() {
  const Shape shapes[] = {{2, 2, 20, 17}, {1, 1, 1, 9}, {3, 1, 11, 5}};
  for (const Shape& s : shapes) {
    for (int k : {0, 1, 3, 5, 7}) {
      if (k > std::min(s[2], s[3])) continue;
      BoundaryWeightOptions o;
      o.kernel_size = k;
      check_case(mask<T>(s, 11 + k), o, "binary");
      check_case(disk<T>(s), o, "disk");
      o.normalize = false;
      o.boost = 0.7;
      check_case(mask<T>(s, 12 + k, 0.7), o, "binary, raw, boost 0.7");
      o.normalize = true;
      o.boost = 3.3;
      o.low = 0.2;
      o.high = 0.8;
      check_case(uniform<T>(s, 13 + k, 0.0, 1.0), o, "soft");
      o.boost = -0.4;
      o.low = 0.45;
      o.high = 0.55;
      check_case(uniform<T>(s, 14 + k, 0.0, 1.0), o, "soft, negative boost");
    }
  }
  // Bands of rows (64 or 4 k rows, each restarting its running sums) and several blocks.
  const Shape tall{2, 2, 150, 70};
  for (int k : {3, 21, 0}) {
    BoundaryWeightOptions o;
    o.kernel_size = k;
    check_case(mask<T>(tall, 15 + k), o, "binary, bands");
    o.low = 0.3;
    o.high = 0.6;
    o.boost = 1.25;
    check_case(uniform<T>(tall, 16 + k, 0.0, 1.0), o, "soft, bands");
  }
}

template <class T>
void parity_3d() {
  const Shape shapes[] = {{2, 1, 9, 10, 11}, {1, 2, 20, 8, 9}, {1, 1, 5, 1, 4}};
  for (const Shape& s : shapes) {
    for (int k : {0, 1, 3, 5}) {
      if (k > std::min({s[2], s[3], s[4]})) continue;
      BoundaryWeightOptions o;
      o.kernel_size = k;
      check_case(mask<T>(s, 21 + k), o, "binary volume");
      o.normalize = false;
      check_case(mask<T>(s, 22 + k, 0.6), o, "binary volume, raw");
      o.normalize = true;
      o.boost = 0.35;
      o.low = 0.25;
      o.high = 0.7;
      check_case(uniform<T>(s, 23 + k, 0.0, 1.0), o, "soft volume");
    }
  }
}

}  // namespace

TEST_CASE("cuda boundary_weights: bit-identical to the CPU, 2D (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  parity_2d<float>();
  parity_2d<double>();
}

TEST_CASE("cuda boundary_weights: bit-identical to the CPU, 3D (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  parity_3d<float>();
  parity_3d<double>();
}

TEST_CASE(
    "cuda boundary_weights: soft masks whose averages sit on a bound (the order of the sums)") {
  SEGLOSS_REQUIRE_GPU();
  // Masks of the inexact values 0.1 and 0.3, with low = the average of a window holding a of
  // them and b of the others: whether such a pixel's T(s) / k^d reaches low depends on the
  // rounding of its running sum s, so only the CPU's order of additions (bands, window starts,
  // one line in and one out) gives the CPU's indicator bit for bit. Constant planes of c with
  // low = c too.
  for (int k : {3, 5}) {
    const double box2 = k * k, box3 = box2 * k;
    for (double f : {0.4, 0.5, 0.6}) {  // a window of a values 0.3 is common at a = f k^d
      BoundaryWeightOptions o;
      o.kernel_size = k;
      o.high = 1.0;
      const double a2 = std::floor(f * box2), a3 = std::floor(f * box3);
      o.low = (a2 * 0.3 + (box2 - a2) * 0.1) / box2;
      INFO("k ", k, " f ", f);
      check_case(two_values({2, 1, 150, 23}, 70 + k), o, "0.1 and 0.3, on the bound");
      o.low = (a3 * 0.3 + (box3 - a3) * 0.1) / box3;
      check_case(two_values({1, 2, 30, 7, 8}, 80 + k), o, "0.1 and 0.3 volume, on the bound");
    }
  }
  for (double c : {0.1, 0.3, 0.7}) {
    for (int k : {3, 5, 21}) {
      BoundaryWeightOptions o;
      o.kernel_size = k;
      o.low = c;
      o.high = 1.0;
      const Shape s{1, 2, 140, 23};
      INFO("c ", c, " k ", k);
      check_case(Tensor<double>::full(s, c), o, "double, on the bound");
      check_case(Tensor<float>::full(s, static_cast<float>(c)), o, "float, on the bound");
      if (k <= 5) {
        const Shape v{1, 1, 30, 6, 7};
        check_case(Tensor<double>::full(v, c), o, "double volume, on the bound");
        check_case(Tensor<float>::full(v, static_cast<float>(c)), o, "float volume, on the bound");
      }
    }
  }
}

TEST_CASE("cuda boundary_weights: NaN or infinity in a plane, an all-zero mask") {
  SEGLOSS_REQUIRE_GPU();
  for (bool normalize : {true, false}) {
    BoundaryWeightOptions o;
    o.kernel_size = 3;
    o.normalize = normalize;
    auto m = mask<float>({3, 1, 12, 10}, 31);
    m[1 * 120 + 5 * 10 + 4] = std::numeric_limits<float>::quiet_NaN();
    check_case(m, o, "NaN in plane 1");
    const auto w = boundary_weights(gpu(m), o).to(Device::cpu);
    CHECK(std::isnan(w[120 + 7]));
    CHECK(std::isnan(w[0]) == normalize);  // another plane: NaN only when normalizing
    auto v = mask<double>({1, 2, 6, 7, 8}, 32);
    v[6 * 7 * 8 + 3] = std::numeric_limits<double>::infinity();
    check_case(v, o, "infinity in volume 1");
    auto big = mask<double>({2, 1, 9, 9}, 33);
    big[4] = -std::numeric_limits<double>::infinity();
    o.kernel_size = 0;
    check_case(big, o, "-infinity, automatic k");
  }
  for (int k : {0, 1, 5}) {
    BoundaryWeightOptions o;
    o.kernel_size = k;
    const auto w = boundary_weights(Tensor<float>::zeros({2, 3, 9, 8}, Device::cuda), o);
    CHECK(same_weights(Tensor<float>::full({2, 3, 9, 8}, 1.f), w));
    check_case(Tensor<double>::zeros({1, 1, 6, 6, 6}), o, "all-zero volume");
  }
}

TEST_CASE("cuda boundary_weights: the same bits over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  // Averages on the bound (as in the case above), where any change of the sums' order shows.
  const auto m = gpu(two_values({2, 1, 150, 23}, 75));
  const auto v = gpu(uniform<float>({1, 2, 10, 9, 12}, 42, 0.0, 1.0));
  for (int a : {10, 12, 15}) {
    BoundaryWeightOptions o;
    o.kernel_size = 5;
    o.low = (a * 0.3 + (25 - a) * 0.1) / 25;
    o.high = 1.0;
    const auto w0 = boundary_weights(m, o);
    const auto v0 = boundary_weights(v, o);
    Tensor<double> w = Tensor<double>::empty(m.shape(), Device::cuda);
    for (int i = 0; i < 10; ++i) {
      boundary_weights(m, w, o);
      CHECK(same_bits(w0, w));
      CHECK(same_bits(v0, boundary_weights(v, o)));
    }
  }
}

TEST_CASE("cuda boundary_weights: argument errors with a CUDA mask") {
  SEGLOSS_REQUIRE_CUDA_BUILD();
  // Raised before anything is enqueued: the views are never read.
  const auto md = unread_cuda_view<float>({2, 1, 16, 8});
  BoundaryWeightOptions o;
  o.kernel_size = 4;
  CHECK_THROWS_WITH_AS(boundary_weights(md, o),
                       "boundary_weights: options.kernel_size is 4; it must be odd (the box is "
                       "centred on each pixel)",
                       Error);
  o.kernel_size = 9;
  CHECK_THROWS_WITH_AS(boundary_weights(md, o),
                       "boundary_weights: options.kernel_size 9 is larger than the mask's spatial "
                       "extent 8 (axis 3 of (2,1,16,8))",
                       Error);
  o = {};
  o.low = 0.5;
  o.high = 0.4;
  CHECK_THROWS_WITH_AS(boundary_weights(md, o),
                       "boundary_weights: options.low 0.5 is greater than options.high 0.4", Error);
  o = {};
  o.boost = -1.0;
  CHECK_THROWS_WITH_AS(boundary_weights(md, o),
                       "boundary_weights: options.boost is -1; it must be finite and > -1 (every "
                       "weight 1 + boost positive)",
                       Error);
  CHECK_THROWS_WITH_AS(boundary_weights(unread_cuda_view<float>({2, 1, 16})),
                       "boundary_weights: mask (2,1,16) has rank 3; expected (N, C, H, W) or (N, "
                       "C, D, H, W)",
                       Error);
  // The caller's buffer.
  Tensor<float> wrong = unread_cuda_view<float>({2, 1, 16, 9});
  CHECK_THROWS_WITH_AS(boundary_weights(md, wrong),
                       "boundary_weights: weights (2,1,16,9) does not match mask (2,1,16,8)",
                       Error);
  Tensor<float> same = md;
  CHECK_THROWS_WITH_AS(boundary_weights(md, same),
                       "boundary_weights: weights shares its memory with the mask; the box sums "
                       "need the mask intact",
                       Error);
  Tensor<float> host = Tensor<float>::zeros({2, 1, 16, 8});
  CHECK_THROWS_WITH_AS(boundary_weights(md, host),
                       "boundary_weights: weights (2,1,16,8) is on device cpu, but mask is on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  Tensor<float> device_buf = unread_cuda_view<float>({2, 1, 16, 8});
  CHECK_THROWS_WITH_AS(boundary_weights(Tensor<float>::zeros({2, 1, 16, 8}), device_buf),
                       "boundary_weights: weights (2,1,16,8) is on device cuda, but mask is on "
                       "cpu: every tensor of a call must be on one device",
                       Error);
}

TEST_CASE("cuda boundary_weights: the boundary-weighted bce_dice runs on CUDA") {
  SEGLOSS_REQUIRE_GPU();
  // The README's Carvana recipe but for the BCE's mean_over (weight_sum has no CUDA path yet):
  // the weights, the weighted BCE and the weighted Dice all on the device.
  const Shape s{2, 1, 24, 20};
  const auto x = randn<float>(s, 51, 2.0);
  const auto t = disk<float>(s);
  BceDiceOptions<float> o;
  o.bce.weight = boundary_weights(t);
  o.dice.weight = o.bce.weight;
  o.dice.smooth_nr = 2;
  o.dice.smooth_dr = 1;
  const auto want = bce_dice_value_and_grad(x, t, o);
  const auto xd = gpu(x), td = gpu(t);
  BceDiceOptions<float> od = o;
  od.bce.weight = boundary_weights(td);
  od.dice.weight = od.bce.weight;
  CHECK(od.bce.weight.device() == Device::cuda);
  CHECK(same_bits(o.bce.weight, od.bce.weight));
  const auto got = bce_dice_value_and_grad(xd, td, od);
  check_parity(want.value, got.value, parity_tol<float>(), "value");
  check_parity(want.grad, got.grad, parity_tol<float>(), "grad");
  // Without the weights the loss differs: the weights reached the loss.
  BceDiceOptions<float> plain;
  plain.dice.smooth_nr = 2;
  plain.dice.smooth_dr = 1;
  CHECK(std::abs(bce_dice_value_and_grad(xd, td, plain).value - got.value) > 1e-4);
}

#if defined(SEGLOSS_TEST_CUDA)

TEST_CASE(
    "cuda boundary_weights: graph capture, no allocation after warm-up, a caller's workspace") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 1, 40, 30};
  const auto m = uniform<float>(shape, 61, 0.0, 1.0);
  BoundaryWeightOptions o;
  o.low = 0.3;
  o.high = 0.6;
  const auto want = boundary_weights(m, o);
  const auto md = gpu(m);
  Tensor<float> w = Tensor<float>::empty(shape, Device::cuda);
  {
    cuda::StreamScope scope(s);
    boundary_weights(md, w, o);  // warms the pool of stream s
    const size_t warm = cuda::pool_bytes();
    // A capture fails if the call syncs, allocates, or uses another stream.
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    boundary_weights(md, w, o);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes >= 5);  // two memsets, the axis pass, the row pass, the levels
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    w.copy_from(Tensor<float>::full(shape, -1.f));
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(same_weights(want, w));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    CHECK(cuda::pool_bytes() == warm);
  }
  cudaStreamDestroy(s);

  // A caller's workspace of boundary_weights_workspace_size bytes: used, the pool untouched.
  const Shape vol{1, 2, 6, 7, 8};
  const auto v = mask<double>(vol, 62);
  const size_t bytes = cuda::boundary_weights_workspace_size(vol);
  CHECK(bytes >= 2 * sizeof(double) * static_cast<size_t>(vol.numel()));
  CHECK(cuda::boundary_weights_workspace_size(shape) >=
        sizeof(double) * static_cast<size_t>(shape.numel()));
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda);
  cudaStream_t s2 = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking) == cudaSuccess);
  const size_t pool_before = cuda::pool_bytes();
  {
    cuda::StreamScope stream(s2);  // a new stream: the pool would grow if it were used
    cuda::WorkspaceScope scope(ws.data(), bytes);
    CHECK(same_weights(boundary_weights(v), boundary_weights(gpu(v))));
    CHECK(cuda::pool_bytes() == pool_before);
    cuda::WorkspaceScope small(ws.data(), bytes - 300);
    CHECK_THROWS_WITH_AS(boundary_weights(gpu(v)),
                         doctest::Contains("boundary_weights: the caller's workspace holds"),
                         Error);
  }
  cudaStreamDestroy(s2);
}

#endif
