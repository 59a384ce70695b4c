// Small planes of the elementwise losses on CUDA (backends/cpu/flat_planes.hpp, applied at the
// CUDA entry points too). The CUDA grid gives every plane at least one block, so logits
// (N, 1, 1) were N blocks of one element each, with N partial sums in the workspace. Where
// nothing depends on the plane (no weight or a full-shape weight; a pos_weight shared by the
// channels) the planes are now walked as one: the result must be the same bits as the same
// device memory viewed as (1, 1, N C S), and match the CPU. Where something does, the
// plane-by-plane grid stays, checked against the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using testing::gpu;
using testing::same_bits;

namespace {

// The same device (or host) memory viewed as one plane (1, 1, numel).
template <class T>
Tensor<T> flat(const Tensor<T>& t) {
  if (!t.defined()) return t;
  return Tensor<T>::view(const_cast<T*>(t.data()), Shape{1, 1, t.numel()}, t.device());
}

// The same elements with the same bits, whatever the two shapes.
template <class T>
bool same_elements(const Tensor<T>& a, const Tensor<T>& b) {
  return a.numel() == b.numel() && same_bits(flat(a), flat(b));
}

// Every form on the device against the flat view of the same memory (bits), and against the
// CPU (parity). x, z and the options' tensors are on the device; cx, cz, co their host copies.
template <class T, class O, class F, class B, class V>
void check_flat(const Tensor<T>& cx, const Tensor<T>& cz, const O& co, F forward, B backward,
                V value_and_grad) {
  const Tensor<T> x = gpu(cx), z = gpu(cz);
  O o = co;
  o.weight = gpu(co.weight);
  O fo = o;
  fo.weight = flat(o.weight);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(static_cast<int>(r));
    O ro = o, rfo = fo, rco = co;
    ro.reduction = rfo.reduction = rco.reduction = r;
    const Tensor<T> f = forward(x, z, ro), f1 = forward(flat(x), flat(z), rfo);
    CHECK(same_elements(f, f1));
    testing::check_parity(forward(cx, cz, rco), f, testing::parity_tol<T>(), "forward");
    const Tensor<T> hgo =
        r == Reduction::none ? testing::randn<T>(cx.shape(), 81) : Tensor<T>::from({T(0.5)}, {});
    const Tensor<T> go = gpu(hgo);
    const Tensor<T> g = backward(x, z, go, ro);
    const Tensor<T> g1 = backward(flat(x), flat(z), r == Reduction::none ? flat(go) : go, rfo);
    CHECK(same_elements(g, g1));
    testing::check_parity(backward(cx, cz, hgo, rco), g, testing::parity_tol<T>(), "backward");
    if (r == Reduction::none) continue;
    const auto vg = value_and_grad(x, z, ro), vg1 = value_and_grad(flat(x), flat(z), rfo);
    CHECK(vg.value == vg1.value);
    CHECK(same_elements(vg.grad, vg1.grad));
    const auto ref = value_and_grad(cx, cz, rco);
    CHECK(vg.value == doctest::Approx(ref.value).epsilon(testing::parity_tol<T>()));
    testing::check_parity(ref.grad, vg.grad, testing::parity_tol<T>(), "value_and_grad");
  }
}

#define FORMS(name)                                                                          \
  [](auto&&... a) { return name(a...); }, [](auto&&... a) { return name##_backward(a...); }, \
      [](auto&&... a) { return name##_value_and_grad(a...); }

template <class T>
void check_shapes() {
  for (const Shape& s :
       std::vector<Shape>{{1000, 1, 1}, {37, 3, 1}, {19, 2, 5}, {3000, 1, 7}, {7, 5, 3, 2}}) {
    CAPTURE(s);
    const auto x = testing::randn<T>(s, 182, 3.0);
    const auto z = testing::mask<T>(s, 183);
    const auto w = testing::uniform<T>(s, 184, 0.25, 2.0);  // full shape: element i's weight
    {
      INFO("bce_with_logits");
      BceWithLogitsOptions<T> o;
      check_flat(x, z, o, FORMS(bce_with_logits));
      o.weight = w;
      o.label_smoothing = 0.1;
      check_flat(x, z, o, FORMS(bce_with_logits));
      o.mean_over = BceMeanOver::weight_sum;
      check_flat(x, z, o, FORMS(bce_with_logits));
    }
    {
      INFO("binary_cross_entropy");
      const auto p = testing::uniform<T>(s, 185, 0.02, 0.98);
      BinaryCrossEntropyOptions<T> o;
      check_flat(p, z, o, FORMS(binary_cross_entropy));
      o.weight = w;
      check_flat(p, z, o, FORMS(binary_cross_entropy));
    }
    {
      INFO("sigmoid_focal");
      for (double gamma : {2.0, 0.5}) {
        CAPTURE(gamma);
        SigmoidFocalOptions<T> o;
        o.gamma = gamma;
        check_flat(x, z, o, FORMS(sigmoid_focal));
        o.weight = w;
        o.alpha = -1.0;
        check_flat(x, z, o, FORMS(sigmoid_focal));
      }
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("cuda flat planes: small planes equal one plane, bit for bit, and the CPU", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  check_shapes<T>();
}

// A shared pos_weight is joined (the bits of one plane); a per-sample weight (N, 1, 1) over C = 3
// channels and a per-channel pos_weight keep the plane-by-plane grid: against the CPU, which
// tests/test_flat_planes.cpp checks against PyTorch's formula.
TEST_CASE("cuda flat planes: a weight or pos_weight that depends on the plane is read per plane") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{9, 3, 1};
  const auto x = testing::randn<float>(s, 194, 3.0);
  const auto z = testing::mask<float>(s, 195);
  BceWithLogitsOptions<float> o;
  o.reduction = Reduction::none;
  o.pos_weight = Tensor<float>::from({2.5f}, {1});
  BceWithLogitsOptions<float> od = o, fo = o;
  od.pos_weight = fo.pos_weight = gpu(o.pos_weight);
  const Tensor<float> xd = gpu(x), zd = gpu(z);
  CHECK(same_elements(bce_with_logits(xd, zd, od), bce_with_logits(flat(xd), flat(zd), fo)));
  o.weight = testing::uniform<float>({9, 1, 1}, 196, 0.25, 2.0);
  o.pos_weight = Tensor<float>::from({0.5f, 2.0f, 3.0f}, {3});
  for (int k = 0; k < 3; ++k) {  // both, the pos_weight only, the weight only
    CAPTURE(k);
    BceWithLogitsOptions<float> ok = o;
    if (k == 1) ok.weight = {};
    if (k == 2) ok.pos_weight = {};
    BceWithLogitsOptions<float> dk = ok;
    dk.weight = gpu(ok.weight);
    dk.pos_weight = gpu(ok.pos_weight);
    testing::check_parity(bce_with_logits(x, z, ok), bce_with_logits(xd, zd, dk), 1e-6,
                          "bce_with_logits");
  }
  SigmoidFocalOptions<float> f;
  f.reduction = Reduction::none;
  f.weight = testing::uniform<float>({9, 1, 1}, 197, 0.25, 2.0);
  SigmoidFocalOptions<float> fd = f;
  fd.weight = gpu(f.weight);
  testing::check_parity(sigmoid_focal(x, z, f), sigmoid_focal(xd, zd, fd), 1e-6, "sigmoid_focal");
}

// The workspace no longer grows with the number of planes: 2^18 planes of one element took a
// partial sum per plane (2 MiB); joined, the grid is cut into at most 3168 blocks.
TEST_CASE("cuda flat planes: one element per plane needs a workspace of one plane") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{262144, 1, 1};
  const auto x = gpu(testing::randn<float>(s, 198, 3.0));
  const auto z = gpu(testing::mask<float>(s, 199));
  cuda::release_pool();
  const auto vg = bce_with_logits_value_and_grad(x, z);
  CHECK(std::isfinite(vg.value));
  CHECK(cuda::pool_bytes() < size_t(256) * 1024);
  // A bad probability is reported at its element, as on the CPU.
  auto p = testing::uniform<float>(s, 200, 0.05, 0.95);
  p[200001] = 1.5f;
  const std::string cpu = testing::error_of(
      [&] { binary_cross_entropy_value_and_grad(p, testing::mask<float>(s, 199)); });
  CHECK(cpu.find("(200001,0,0)") != std::string::npos);
  CHECK(testing::error_of([&] { binary_cross_entropy_value_and_grad(gpu(p), z); }) == cpu);
}

// softmax_focal joins images of fewer than 4096 pixels into one plane of N S pixels (each pixel
// finds its image): (N, C, 1) was N blocks of one pixel each. Every form against the CPU, with
// ignored pixels, alpha, and each gamma kind; 10 runs give the same bits; a bad label is
// reported at its pixel, as on the CPU.
TEST_CASE_TEMPLATE("cuda flat planes: softmax_focal on small images matches the CPU", T, float,
                   double) {
  SEGLOSS_REQUIRE_GPU();
  for (const Shape& s : std::vector<Shape>{{1000, 5, 1}, {37, 3, 2}, {300, 21, 1}, {9, 4, 3, 5}}) {
    CAPTURE(s);
    const auto x = testing::randn<T>(s, 201, 3.0);
    const auto y = testing::labels<int64_t>(s.without(1), s[1], 202, 0.1, 255);
    const Tensor<T> xd = gpu(x);
    const Tensor<int64_t> yd = gpu(y);
    for (double gamma : {2.0, 0.5, 0.0}) {
      CAPTURE(gamma);
      SoftmaxFocalOptions<T> o;
      o.gamma = gamma;
      o.ignore_index = 255;
      if (gamma == 0.5) o.alpha = testing::uniform<T>({s[1]}, 203, 0.2, 0.9);
      SoftmaxFocalOptions<T> od = o;
      od.alpha = gpu(o.alpha);
      const double tol = testing::parity_tol<T>();
      const auto ref = softmax_focal_value_and_grad(x, y, o);
      const auto got = softmax_focal_value_and_grad(xd, yd, od);
      CHECK(got.value == doctest::Approx(ref.value).epsilon(tol));
      testing::check_parity(ref.grad, got.grad, tol, "value_and_grad");
      o.reduction = od.reduction = Reduction::none;
      testing::check_parity(softmax_focal(x, y, o), softmax_focal(xd, yd, od), tol, "forward");
      const auto go = testing::randn<T>(s.without(1), 204);
      testing::check_parity(softmax_focal_backward(x, y, go, o),
                            softmax_focal_backward(xd, yd, gpu(go), od), tol, "backward");
    }
    SoftmaxFocalOptions<T> ignoring;
    ignoring.ignore_index = 255;
    const auto first = softmax_focal_value_and_grad(xd, yd, ignoring);
    for (int run = 0; run < 10; ++run) {
      const auto again = softmax_focal_value_and_grad(xd, yd, ignoring);
      CHECK(again.value == first.value);
      CHECK(same_bits(again.grad, first.grad));
    }
  }
  const Shape s{5000, 4, 1};
  const auto x = testing::randn<T>(s, 205);
  auto y = testing::labels<int64_t>({5000, 1}, 4, 206);
  y[4321] = 7;
  const std::string cpu = testing::error_of([&] { softmax_focal_value_and_grad(x, y); });
  CHECK(cpu.find("label 7 at (4321,0)") != std::string::npos);
  CHECK(testing::error_of([&] { softmax_focal_value_and_grad(gpu(x), gpu(y)); }) == cpu);
}
