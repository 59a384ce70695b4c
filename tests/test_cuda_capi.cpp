// The C API with CUDA descriptors for the functions that gained a CUDA path in session 9: the
// C entry points pass the descriptor's device through to the C++ call, so a CUDA mask or logits
// run on the device and give the C++ CPU result (boundary_weights bit for bit, lovasz_hinge's
// gradient bit for bit and its value to rounding).
#include <doctest/doctest.h>

#include <segloss/capi/segloss.h>

#include "capi_helpers.hpp"
#include "cuda_check.hpp"
#include "helpers.hpp"

#include <cmath>

using namespace segloss;
using segloss::testing::desc;
using segloss::testing::gpu;
using segloss::testing::same_bits;

namespace {
template <class T>
segloss_tensor cuda_desc(const Tensor<T>& t) {
  segloss_tensor d = desc(t);
  d.device = SEGLOSS_CUDA;
  return d;
}
}  // namespace

TEST_CASE("cuda capi: boundary_weights and lovasz_hinge with CUDA descriptors") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 24, 20};
  const auto m = testing::mask<float>(s, 3, 0.4);
  const auto want = boundary_weights(m);
  const auto md = gpu(m);
  auto wd = Tensor<float>::empty(s, Device::cuda);
  const segloss_tensor cm = cuda_desc(md), cw = cuda_desc(wd);
  segloss_boundary_weights_options bo;
  segloss_boundary_weights_options_init(&bo);
  REQUIRE(segloss_boundary_weights(&cm, &bo, &cw, nullptr) == SEGLOSS_OK);
  CHECK(same_bits(wd, want));

  const auto x = testing::randn<double>(s, 4, 2.0);
  const auto t = testing::mask<double>(s, 5);
  const auto ref = lovasz_hinge_value_and_grad(x, t);
  const auto xd = gpu(x), td = gpu(t);
  auto gd = Tensor<double>::empty(s, Device::cuda);
  const segloss_tensor cx = cuda_desc(xd), ct = cuda_desc(td), cg = cuda_desc(gd);
  segloss_lovasz_hinge_options ho;
  segloss_lovasz_hinge_options_init(&ho);
  double v = 0.0;
  REQUIRE(segloss_lovasz_hinge_value_and_grad(&cx, &ct, &ho, &v, &cg, nullptr) == SEGLOSS_OK);
  CHECK(v == doctest::Approx(ref.value).epsilon(1e-12));
  CHECK(same_bits(gd, ref.grad));
  // A CPU weights buffer with a CUDA mask: the C++ message under the C function's name.
  auto wh = Tensor<float>::empty(s);
  const segloss_tensor hw = desc(wh);
  CHECK(segloss_boundary_weights(&cm, &bo, &hw, nullptr) != SEGLOSS_OK);
  CHECK(segloss::testing::last_error().find("every tensor of a call must be on one device") !=
        std::string::npos);
}

// docs/c-api.md: forward and backward copy their result into `out`/`grad` on either device;
// value_and_grad and value_and_grad_into write straight into buffers that must be on the
// logits' device.
TEST_CASE("cuda capi: forward and backward fill a buffer on either device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 9, 7};
  const auto x = testing::randn<float>(s, 11, 2.0);
  const auto t = testing::mask<float>(s, 12);
  const auto xd = gpu(x), td = gpu(t);
  const segloss_tensor cx = cuda_desc(xd), ct = cuda_desc(td);
  segloss_bce_with_logits_options o;
  segloss_bce_with_logits_options_init(&o);
  BceWithLogitsOptions<float> co;  // the C defaults: reduction mean
  const auto want_value = bce_with_logits(xd, td, co);
  const auto grad_out = Tensor<float>::full(Shape{}, 1.5f);
  const auto want_grad = bce_with_logits_backward(xd, td, gpu(grad_out), co);
  const auto gd_out = gpu(grad_out);
  const segloss_tensor cgo = cuda_desc(gd_out);
  for (const bool out_on_cuda : {false, true}) {
    CAPTURE(out_on_cuda);
    const Device d = out_on_cuda ? Device::cuda : Device::cpu;
    auto value = Tensor<float>::full(Shape{}, -1.f).to(d);
    auto grad = Tensor<float>::full(s, -1.f).to(d);
    segloss_tensor cv = desc(value), cg = desc(grad);
    cv.device = cg.device = out_on_cuda ? SEGLOSS_CUDA : SEGLOSS_CPU;
    REQUIRE_MESSAGE(segloss_bce_with_logits_forward(&cx, &ct, &o, &cv, nullptr) == SEGLOSS_OK,
                    testing::last_error());
    CHECK(same_bits(value, want_value));
    REQUIRE_MESSAGE(
        segloss_bce_with_logits_backward(&cx, &ct, &cgo, &o, &cg, nullptr) == SEGLOSS_OK,
        testing::last_error());
    CHECK(same_bits(grad, want_grad));
  }
  // value_and_grad's gradient and value_and_grad_into's value on the host: refused, untouched.
  auto grad = Tensor<float>::full(s, -1.f), value = Tensor<float>::full(Shape{}, -1.f);
  const segloss_tensor hg = desc(grad), hv = desc(value);
  auto gdev = Tensor<float>::empty(s, Device::cuda);
  const segloss_tensor dg = cuda_desc(gdev);
  double v = 0.0;
  CHECK(segloss_bce_with_logits_value_and_grad(&cx, &ct, &o, &v, &hg, nullptr) != SEGLOSS_OK);
  CHECK(testing::last_error().find("every tensor of a call must be on one device") !=
        std::string::npos);
  CHECK(segloss_bce_with_logits_value_and_grad_into(&cx, &ct, &o, &hv, &dg, nullptr) != SEGLOSS_OK);
  CHECK(testing::last_error().find("every tensor of a call must be on one device") !=
        std::string::npos);
  CHECK(grad[0] == -1.f);
  CHECK(value[0] == -1.f);
}

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>

// segloss_X_value_and_grad_into with CUDA descriptors: the value stays on the device and has the
// C++ device form's bits; a bad label gives a NaN value, not an error status. The calls run on a
// created stream and are captured into a CUDA graph (which a wait or an allocation breaks) whose
// replay gives the same bits. On the emulator too (since session 12): libsegloss_c embeds its own
// copy of the library and of the emulator, and the emulator's copies in one process share one
// state (device memory, streams), as a GPU's runtime copies share the driver's handles.
TEST_CASE("cuda capi: value_and_grad_into keeps the value on the device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 12, 10};
  const auto x = gpu(testing::randn<float>(s, 6, 2.0));
  const auto y = gpu(testing::labels<int64_t>(s.without(1), 4, 7));
  const auto z = gpu(testing::mask<float>(s, 8));
  Tensor<float> want_ce_v, want_ce_g, want_bd_v, want_bd_g;
  ce_dice_value_and_grad(x, y, want_ce_g, want_ce_v);
  bce_dice_value_and_grad(x, z, want_bd_g, want_bd_v);
  REQUIRE(std::isfinite(want_ce_v.to(Device::cpu)[0]));  // valid labels: the bits below mean
  REQUIRE(std::isfinite(want_bd_v.to(Device::cpu)[0]));  // something

  auto v1 = Tensor<float>::empty(Shape{}, Device::cuda);
  auto v2 = Tensor<float>::empty({1}, Device::cuda);
  const auto v2_scalar = Tensor<float>::view(v2.data(), Shape{}, Device::cuda);
  auto g1 = Tensor<float>::empty(s, Device::cuda), g2 = Tensor<float>::empty(s, Device::cuda);
  const segloss_tensor cx = cuda_desc(x), cy = cuda_desc(y), cz = cuda_desc(z), cv1 = cuda_desc(v1),
                       cv2 = cuda_desc(v2), cg1 = cuda_desc(g1), cg2 = cuda_desc(g2);
  cudaStream_t st = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  // The warm-up: the pool of stream st reaches the calls' size.
  REQUIRE_MESSAGE(
      segloss_ce_dice_value_and_grad_into(&cx, &cy, nullptr, &cv1, &cg1, st) == SEGLOSS_OK,
      testing::last_error());
  REQUIRE_MESSAGE(
      segloss_bce_dice_value_and_grad_into(&cx, &cz, nullptr, &cv2, &cg2, st) == SEGLOSS_OK,
      testing::last_error());
  REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
  CHECK(same_bits(v1, want_ce_v));
  CHECK(same_bits(g1, want_ce_g));
  CHECK(same_bits(v2_scalar, want_bd_v));
  CHECK(same_bits(g2, want_bd_g));

  v1.copy_from(Tensor<float>::full(Shape{}, -1.f));
  v2.copy_from(Tensor<float>::full({1}, -1.f));
  REQUIRE(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  const segloss_status a = segloss_ce_dice_value_and_grad_into(&cx, &cy, nullptr, &cv1, &cg1, st);
  const segloss_status b = segloss_bce_dice_value_and_grad_into(&cx, &cz, nullptr, &cv2, &cg2, st);
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(st, &graph);
  cudaGetLastError();  // a failed capture's error must not reach later cases
  CHECK_MESSAGE(a == SEGLOSS_OK, testing::last_error());
  CHECK_MESSAGE(b == SEGLOSS_OK, testing::last_error());
  REQUIRE(ended == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, st) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
  CHECK(same_bits(v1, want_ce_v));
  CHECK(same_bits(v2_scalar, want_bd_v));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);

  // A bad label: the status is OK (nothing waited to see it), the value NaN; the host-value
  // entry point reports it.
  auto bad = testing::labels<int64_t>(s.without(1), 4, 7);
  bad[5] = 9;
  const auto yb = gpu(bad);
  const segloss_tensor cyb = cuda_desc(yb);
  CHECK(segloss_ce_dice_value_and_grad_into(&cx, &cyb, nullptr, &cv1, &cg1, st) == SEGLOSS_OK);
  REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
  CHECK(std::isnan(v1.to(Device::cpu)[0]));
  double host = 0.0;
  CHECK(segloss_ce_dice_value_and_grad(&cx, &cyb, nullptr, &host, &cg1, st) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(testing::last_error().find("label 9") != std::string::npos);
  cudaStreamDestroy(st);
}
#endif

// A failed device allocation is segloss::OutOfMemory (an Error) in C++ and
// SEGLOSS_ERROR_OUT_OF_MEMORY through the C API, as a failed host allocation, so that an engine
// can tell it from a bad argument. 2^39 floats (2 TiB) is more than any GPU (and the emulator)
// holds; the inputs are never read (the output's allocation fails first).
TEST_CASE("cuda capi: a failed device allocation is SEGLOSS_ERROR_OUT_OF_MEMORY") {
  SEGLOSS_REQUIRE_GPU();
  const Shape huge{1, 1, int64_t{1} << 20, int64_t{1} << 19};
  CHECK_THROWS_AS(Tensor<float>::empty(huge, Device::cuda), OutOfMemory);
  CHECK_THROWS_WITH_AS(Tensor<float>::empty(huge, Device::cuda),
                       doctest::Contains("cudaErrorMemoryAllocation"), Error);
  // A byte count past size_t (2^62 floats: 0 bytes once wrapped) is refused before cudaMalloc,
  // not turned into a small allocation (a reviewer's case).
  CHECK_THROWS_WITH_AS(Tensor<float>::empty(Shape{int64_t{1} << 62}, Device::cuda),
                       "Tensor::empty: a CUDA tensor (4611686018427387904) of 4-byte elements has "
                       "more bytes than size_t can count",
                       OutOfMemory);
  CHECK_THROWS_AS(Tensor<double>::empty(Shape{int64_t{1} << 61, 2}, Device::cuda), OutOfMemory);
  const auto x = testing::unread_cuda_view<float>(huge);
  const segloss_tensor cx = cuda_desc(x);
  segloss_bce_with_logits_options o;
  segloss_bce_with_logits_options_init(&o);
  o.reduction = SEGLOSS_REDUCTION_NONE;
  CHECK(segloss_bce_with_logits_forward(&cx, &cx, &o, &cx, nullptr) == SEGLOSS_ERROR_OUT_OF_MEMORY);
  const std::string e = testing::last_error();
  CHECK(e.rfind("segloss_bce_with_logits_forward: ", 0) == 0);
  CHECK(e.find("cudaErrorMemoryAllocation") != std::string::npos);
}

#if defined(SEGLOSS_TEST_CUDA)
// The surface distances with CUDA masks and label maps through the C API: the _on_stream forms
// run on the caller's stream (here one created non-blocking, which the legacy default stream
// does not wait for) and give the C++ CPU result exactly; per_pair must be on the CPU.
TEST_CASE("cuda capi: surface distances on the caller's stream") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 2, 11, 9};
  const auto pm = testing::mask<float>(s, 71, 0.5), tm = testing::mask<float>(s, 72, 0.5);
  SurfaceDistanceOptions so;
  so.spacing = {1.5, 0.5};
  so.percentile = 90;
  const auto want = surface_distance(pm, tm, so);
  cudaStream_t st = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  // The masks are copied to the device on st: the call must be ordered after the copies.
  auto pd = Tensor<float>::empty(s, Device::cuda), td = Tensor<float>::empty(s, Device::cuda);
  const size_t bytes = static_cast<size_t>(s.numel()) * sizeof(float);
  REQUIRE(cudaMemcpyAsync(pd.data(), pm.data(), bytes, cudaMemcpyHostToDevice, st) == cudaSuccess);
  REQUIRE(cudaMemcpyAsync(td.data(), tm.data(), bytes, cudaMemcpyHostToDevice, st) == cudaSuccess);
  const segloss_tensor cp = cuda_desc(pd), ct = cuda_desc(td);
  const double spacing[2] = {1.5, 0.5};
  segloss_surface_distance_options c;
  segloss_surface_distance_options_init(&c);
  c.spacing = spacing;
  c.spacing_size = 2;
  c.percentile = 90;
  segloss_surface_distance_result r;
  auto per_pair = Tensor<double>::empty({4, 2, 2});
  const segloss_tensor dpp = desc(per_pair);
  REQUIRE_MESSAGE(segloss_surface_distance_on_stream(&cp, &ct, &c, &r, &dpp, st) == SEGLOSS_OK,
                  testing::last_error());
  CHECK(r.mean_hausdorff == want.mean_hausdorff);
  CHECK(r.mean_hausdorff_percentile == want.mean_hausdorff_percentile);
  CHECK(r.mean_average_surface_distance == want.mean_average_surface_distance);
  CHECK(r.mean_surface_dice == want.mean_surface_dice);
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(per_pair[i] == want.hausdorff[i]);
    CHECK(per_pair[12 + i] == want.surface_dice[i]);
  }
  const auto pl = testing::labels<int32_t>(s.without(1), 3, 73);
  const auto tl = testing::labels<int32_t>(s.without(1), 3, 74);
  const auto lwant = surface_distance_labels(pl, tl, {1, 2});
  const auto pld = gpu(pl), tld = gpu(tl);
  const segloss_tensor cpl = cuda_desc(pld), ctl = cuda_desc(tld);
  const int64_t classes[2] = {1, 2};
  REQUIRE_MESSAGE(segloss_surface_distance_labels_on_stream(&cpl, &ctl, classes, 2, nullptr, &r,
                                                            &dpp, st) == SEGLOSS_OK,
                  testing::last_error());
  CHECK(r.mean_hausdorff == lwant.mean_hausdorff);
  CHECK(r.mean_surface_dice == lwant.mean_surface_dice);
  for (int64_t i = 0; i < 4; ++i) CHECK(per_pair[4 + i] == lwant.hausdorff_percentile[i]);
  // per_pair on the device is refused, naming the entry point.
  auto pp_dev = Tensor<double>::empty({4, 2, 2}, Device::cuda);
  const segloss_tensor cpp = cuda_desc(pp_dev);
  CHECK(segloss_surface_distance_on_stream(&cp, &ct, &c, &r, &cpp, st) == SEGLOSS_ERROR_DEVICE);
  CHECK(testing::last_error() ==
        "segloss_surface_distance_on_stream: per_pair is on cuda; it must be on the CPU (the "
        "surface distances' results are on the host, with CUDA inputs too)");
  REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
  cudaStreamDestroy(st);
}
#endif
