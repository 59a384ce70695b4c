// The C API with CUDA descriptors for the functions that gained a CUDA path in session 9: the
// C entry points pass the descriptor's device through to the C++ call, so a CUDA mask or logits
// run on the device and give the C++ CPU result (boundary_weights bit for bit, lovasz_hinge's
// gradient bit for bit and its value to rounding).
#include <doctest/doctest.h>

#include <segloss/capi/segloss.h>

#include "capi_helpers.hpp"
#include "cuda_check.hpp"
#include "helpers.hpp"

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
