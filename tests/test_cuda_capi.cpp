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
