// binary_cross_entropy on CUDA against the CPU: every entry point (forward, backward, the three
// value_and_grad forms) for every option (the weight's broadcasts, every reduction), float (1e-5
// relative) and double (1e-12), PyTorch's clamp at p = 0 and 1, bitwise determinism over 10
// runs, and the range check: the first bad value named as on the CPU by the host-value form, NaN
// in the device results. The tests that need a GPU skip with a message when none is present.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

template <class T>
void check(const Tensor<T>& p, const Tensor<T>& z, const BinaryCrossEntropyOptions<T>& o) {
  const double t = tol<T>();
  BinaryCrossEntropyOptions<T> od = o;
  od.weight = gpu(o.weight);
  const Tensor<T> pd = gpu(p), zd = gpu(z);
  const Tensor<T> f = binary_cross_entropy(p, z, o), fd = binary_cross_entropy(pd, zd, od);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, t, "forward");
  const Tensor<T> go = o.reduction == Reduction::none ? uniform<T>(p.shape(), 91, 0.5, 2.0)
                                                      : Tensor<T>::full(Shape{}, T(0.75));
  check_parity(binary_cross_entropy_backward(p, z, go, o),
               binary_cross_entropy_backward(pd, zd, gpu(go), od), t, "backward");
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = binary_cross_entropy_value_and_grad(p, z, g, o);
  const double vd = binary_cross_entropy_value_and_grad(pd, zd, gd, od);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, t, "value_and_grad value");
  check_parity(g, gd, t, "value_and_grad grad");
  const auto r = binary_cross_entropy_value_and_grad(pd, zd, od);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
  Tensor<T> g2, value;
  binary_cross_entropy_value_and_grad(pd, zd, g2, value, od);
  CHECK(value.device() == Device::cuda);
  CHECK(value.to(Device::cpu)[0] == static_cast<T>(vd));
  CHECK(same_bits(g2, gd));
}

}  // namespace

TEST_CASE_TEMPLATE("cuda binary_cross_entropy: CPU parity, every form, reduction and weight", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  for (const Shape& s : {Shape{2, 3, 37, 41}, Shape{3, 2, 300}, Shape{1, 2, 5, 6, 7}}) {
    CAPTURE(s);
    auto p = uniform<T>(s, 1, 0.0, 1.0);
    const auto z = uniform<T>(s, 2, 0.0, 1.0);
    p[0] = T(0);  // the clamp at -100 and PyTorch's epsilon in the gradient
    p[1] = T(1);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      CAPTURE(static_cast<int>(r));
      BinaryCrossEntropyOptions<T> o;
      o.reduction = r;
      check(p, z, o);
      o.weight = uniform<T>(s, 3, 0.5, 2.0);  // the full shape
      check(p, z, o);
      o.weight = uniform<T>(Shape{s[1], 1, 1}, 4, 0.5, 2.0);  // per channel, broadcast
      if (s.rank() == 4) check(p, z, o);
      o.weight = uniform<T>(Shape{s[s.rank() - 1]}, 5, 0.5, 2.0);  // along the last axis
      check(p, z, o);
    }
  }
}

TEST_CASE("cuda binary_cross_entropy: a grid-stride size, in place, the same bits over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 700, 800};
  const auto p = uniform<float>(s, 6, 0.0, 1.0), z = mask<float>(s, 7);
  check(p, z, BinaryCrossEntropyOptions<float>{});
  const auto pd = gpu(p), zd = gpu(z);
  const auto first = binary_cross_entropy_value_and_grad(pd, zd);
  for (int run = 0; run < 10; ++run) {
    const auto r = binary_cross_entropy_value_and_grad(pd, zd);
    CHECK(r.value == first.value);
    CHECK(same_bits(r.grad, first.grad));
  }
  Tensor<float> in_place = gpu(p);
  CHECK(binary_cross_entropy_value_and_grad(in_place, zd, in_place) == first.value);
  CHECK(same_bits(in_place, first.grad));
}

TEST_CASE(
    "cuda binary_cross_entropy: values outside [0, 1] are named as on the CPU, NaN on the "
    "device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 3, 4};
  auto p = uniform<double>(s, 8, 0.1, 0.9);
  auto z = mask<double>(s, 9);
  p[13] = 1.5;
  z[2] = -0.25;  // a bad target before the bad probability: the probability is named
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(gpu(p), gpu(z)),
                       "binary_cross_entropy_value_and_grad: probs has value 1.5 at index 13 "
                       "(1,0,0,1), outside [0, 1]",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(p, z),
                       "binary_cross_entropy_value_and_grad: probs has value 1.5 at index 13 "
                       "(1,0,0,1), outside [0, 1]",
                       Error);
  p[13] = 0.5;
  z[5] = std::nan("");
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(gpu(p), gpu(z)),
                       "binary_cross_entropy_value_and_grad: target has value -0.25 at index 2 "
                       "(0,0,0,2), outside [0, 1]",
                       Error);
  // In place (grad over the probabilities, or exactly over the target): the bad value is named
  // as it was read, and nothing is stored (a pass that only checks runs first).
  p[7] = 2.5;
  auto in_place = gpu(p);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(in_place, gpu(z), in_place),
                       "binary_cross_entropy_value_and_grad: probs has value 2.5 at index 7 "
                       "(0,0,1,3), outside [0, 1]",
                       Error);
  CHECK(same_bits(in_place, gpu(p)));
  auto zd = gpu(z);
  p[7] = 0.5;
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(gpu(p), zd, zd),
                       "binary_cross_entropy_value_and_grad: target has value -0.25 at index 2 "
                       "(0,0,0,2), outside [0, 1]",
                       Error);
  CHECK(same_bits(zd, gpu(z)));
  // Without a host value nothing waits: the bad elements' results are NaN, and so is the value.
  BinaryCrossEntropyOptions<double> none;
  none.reduction = Reduction::none;
  const auto loss = binary_cross_entropy(gpu(p), gpu(z), none).to(Device::cpu);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(std::isnan(loss[i]) == (i == 2 || i == 5));
  CHECK(std::isnan(binary_cross_entropy(gpu(p), gpu(z)).to(Device::cpu)[0]));
  Tensor<double> g, value;
  binary_cross_entropy_value_and_grad(gpu(p), gpu(z), g, value);
  CHECK(std::isnan(value.to(Device::cpu)[0]));
  const auto gh = g.to(Device::cpu);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(std::isnan(gh[i]) == (i == 2 || i == 5));
}

TEST_CASE("cuda binary_cross_entropy: mixed devices are errors") {
  SEGLOSS_REQUIRE_CUDA_BUILD();  // checked before any CUDA call
  const Shape s{1, 1, 4, 4};
  const auto pd = unread_cuda_view<float>(s);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(pd, mask<float>(s, 1)),
                       "binary_cross_entropy: target (1,1,4,4) is on device cpu, but probs are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  BinaryCrossEntropyOptions<float> o;
  o.weight = Tensor<float>::full(Shape{1}, 1.0f);
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy(pd, unread_cuda_view<float>(s), o),
      doctest::Contains("options.weight (1) is on device cpu, but probs are on cuda"), Error);
}
