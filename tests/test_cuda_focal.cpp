// sigmoid_focal and softmax_focal on CUDA against the CPU: every entry point (forward,
// backward, both value_and_grad forms) for every option (alpha, gamma 0, 1, 2 and others, the
// weight's broadcasts, the class factors, ignore_index, every reduction), float (1e-5 relative)
// and double (1e-12); bitwise determinism over 10 runs; bad labels through the error flag;
// mixed devices. The tests that need a GPU skip with a message when none is present.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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
SigmoidFocalOptions<T> on_device(SigmoidFocalOptions<T> o) {
  o.weight = gpu(o.weight);
  return o;
}
template <class T>
SoftmaxFocalOptions<T> on_device(SoftmaxFocalOptions<T> o) {
  o.alpha = gpu(o.alpha);
  return o;
}

template <class T>
void check_sigmoid(const Tensor<T>& x, const Tensor<T>& z, const SigmoidFocalOptions<T>& o) {
  const double t = tol<T>();
  const auto od = on_device(o);
  const Tensor<T> xd = gpu(x), zd = gpu(z);
  const Tensor<T> f = sigmoid_focal(x, z, o), fd = sigmoid_focal(xd, zd, od);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, t, "forward");
  const Tensor<T> go = o.reduction == Reduction::none ? uniform<T>(x.shape(), 91, 0.5, 2.0)
                                                      : Tensor<T>::full(Shape{}, T(0.75));
  check_parity(sigmoid_focal_backward(x, z, go, o), sigmoid_focal_backward(xd, zd, gpu(go), od), t,
               "backward");
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = sigmoid_focal_value_and_grad(x, z, g, o);
  const double vd = sigmoid_focal_value_and_grad(xd, zd, gd, od);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, t, "value_and_grad value");
  check_parity(g, gd, t, "value_and_grad grad");
  const auto r = sigmoid_focal_value_and_grad(xd, zd, od);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
}

template <class T, class L>
void check_softmax(const Tensor<T>& x, const Tensor<L>& y, const SoftmaxFocalOptions<T>& o) {
  const double t = tol<T>();
  const auto od = on_device(o);
  const Tensor<T> xd = gpu(x);
  const Tensor<L> yd = gpu(y);
  const Tensor<T> f = softmax_focal(x, y, o), fd = softmax_focal(xd, yd, od);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, t, "forward");
  const Tensor<T> go = o.reduction == Reduction::none
                           ? uniform<T>(x.shape().without(1), 92, 0.5, 2.0)
                           : Tensor<T>::full(Shape{}, T(0.75));
  check_parity(softmax_focal_backward(x, y, go, o), softmax_focal_backward(xd, yd, gpu(go), od), t,
               "backward");
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = softmax_focal_value_and_grad(x, y, g, o);
  const double vd = softmax_focal_value_and_grad(xd, yd, gd, od);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, t, "value_and_grad value");
  check_parity(g, gd, t, "value_and_grad grad");
  const auto r = softmax_focal_value_and_grad(xd, yd, od);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
}

template <class T>
void sigmoid_options(const Shape& s, uint64_t seed) {
  const auto x = randn<T>(s, seed, 2.0);
  const auto z = mask<T>(s, seed + 1);
  const auto soft = uniform<T>(s, seed + 2, 0.0, 1.0);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(reduction_name(r));
    SigmoidFocalOptions<T> o;
    o.reduction = r;
    for (double gamma : {0.0, 1.0, 2.0, 0.5, 2.5}) {
      CAPTURE(gamma);
      o.gamma = gamma;
      check_sigmoid(x, z, o);
    }
    o.gamma = 2;
    o.alpha = -1;  // no alpha factor
    check_sigmoid(x, z, o);
    o.alpha = 0.7;
    check_sigmoid(x, soft, o);                     // soft targets
    o.weight = uniform<T>(s, seed + 3, 0.0, 2.0);  // the full shape
    check_sigmoid(x, z, o);
    o.weight = uniform<T>(Shape{s[1], 1, 1}, seed + 4, 0.0, 2.0);  // per channel
    if (s.rank() == 4) check_sigmoid(x, z, o);
    o.weight = uniform<T>(Shape{s[s.rank() - 1]}, seed + 5, 0.0, 2.0);  // the last axis
    check_sigmoid(x, z, o);
  }
}

template <class T, class L>
void softmax_options(const Shape& s, uint64_t seed) {
  const int64_t C = s[1];
  const auto x = randn<T>(s, seed, 2.0);
  const auto y = labels<L>(s.without(1), C, seed + 1, 0.2, -100);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(reduction_name(r));
    SoftmaxFocalOptions<T> o;
    o.reduction = r;
    for (double gamma : {0.0, 1.0, 2.0, 0.5, 3.5}) {
      CAPTURE(gamma);
      o.gamma = gamma;
      check_softmax(x, y, o);
    }
    o.gamma = 2;
    o.alpha = uniform<T>(Shape{C}, seed + 2, 0.1, 1.0);
    check_softmax(x, y, o);
    o.ignore_index = C - 1;  // a class ignored
    check_softmax(x, labels<L>(s.without(1), C, seed + 3), o);
  }
}

}  // namespace

TEST_CASE("cuda sigmoid_focal: CPU parity, every option, float and double") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float 2D") {
    sigmoid_options<float>(Shape{2, 3, 17, 19}, 1);
  }
  SUBCASE("double 3D") {
    sigmoid_options<double>(Shape{1, 2, 5, 6, 7}, 2);
  }
  SUBCASE("float, several blocks per plane") {
    sigmoid_options<float>(Shape{2, 1, 300, 301}, 3);
  }
  SUBCASE("1x1, N = 1") {
    sigmoid_options<double>(Shape{1, 1, 1, 1}, 4);
  }
}

TEST_CASE("cuda softmax_focal: CPU parity, every option, int32 and int64 labels") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float C = 21 2D int64") {
    softmax_options<float, int64_t>(Shape{2, 21, 17, 13}, 5);
  }
  SUBCASE("double C = 5 3D int32") {
    softmax_options<double, int32_t>(Shape{2, 5, 3, 5, 7}, 6);
  }
  SUBCASE("float C = 2 1D, N = 3") {
    softmax_options<float, int32_t>(Shape{3, 2, 40}, 7);
  }
  SUBCASE("double C = 1") {
    softmax_options<double, int64_t>(Shape{2, 1, 3, 3}, 8);
  }
  SUBCASE("float C = 21, several blocks per image") {
    softmax_options<float, int64_t>(Shape{2, 21, 300, 301}, 9);
  }
  SUBCASE("1x1") {
    softmax_options<double, int64_t>(Shape{1, 4, 1, 1}, 10);
  }
}

TEST_CASE(
    "cuda focal: |x| = 1e4 stays finite, and every pixel ignored gives 0 and a zero gradient") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{1, 3, 2, 2};
  const auto x = Tensor<float>::from({1e4f, -1e4f, 0, 1, -1e4f, 1e4f, 0, 2, 0, 0, 1e4f, 3}, s);
  const auto z = Tensor<float>::from({1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0}, s);
  SigmoidFocalOptions<float> so;
  check_sigmoid(x, z, so);
  const auto y = Tensor<int64_t>::from({0, 0, 2, 1}, s.without(1));
  SoftmaxFocalOptions<float> o;
  check_softmax(x, y, o);
  const auto r = softmax_focal_value_and_grad(gpu(x), gpu(y), o);
  CHECK(std::isfinite(r.value));
  for (float g : r.grad.to(Device::cpu)) CHECK(std::isfinite(g));
  const auto all = Tensor<int64_t>::full(s.without(1), -100);
  check_softmax(x, all, o);
  const auto ra = softmax_focal_value_and_grad(gpu(x), gpu(all), o);
  CHECK(ra.value == 0.0);
  for (float g : ra.grad.to(Device::cpu)) CHECK(g == 0.0f);
}

TEST_CASE("cuda focal: bitwise identical value and gradient over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 21, 129, 127};
  const auto xd = gpu(randn<float>(s, 11, 3.0));
  const auto yd = gpu(labels<int32_t>(s.without(1), 21, 12, 0.05));
  const auto zd = gpu(mask<float>(s, 13));
  SoftmaxFocalOptions<float> o;
  o.alpha = gpu(uniform<float>(Shape{21}, 14, 0.2, 1.0));
  o.gamma = 1.5;
  const auto first = softmax_focal_value_and_grad(xd, yd, o);
  const auto sfirst = sigmoid_focal_value_and_grad(xd, zd);
  for (int run = 1; run < 10; ++run) {
    const auto r = softmax_focal_value_and_grad(xd, yd, o);
    CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
    CHECK(same_bits(r.grad, first.grad));
    const auto q = sigmoid_focal_value_and_grad(xd, zd);
    CHECK(std::memcmp(&q.value, &sfirst.value, sizeof(double)) == 0);
    CHECK(same_bits(q.grad, sfirst.grad));
  }
}

TEST_CASE("cuda softmax_focal: a bad label makes value_and_grad raise and device results NaN") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto xd = gpu(randn<float>(s, 15));
  auto y = labels<int64_t>(s.without(1), 5, 16);
  y[21] = 5;  // image 1, (1, 1)
  y[30] = -3;
  const auto yd = gpu(y);
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(xd, yd),
                       "softmax_focal_value_and_grad: target has label 5 at (1,1,1), outside "
                       "[0, 5) and not ignore_index -100",
                       Error);
  CHECK(std::isnan(softmax_focal(xd, yd).to(Device::cpu)[0]));
  SoftmaxFocalOptions<float> o;
  o.reduction = Reduction::none;
  const auto loss = softmax_focal(xd, yd, o).to(Device::cpu);
  const auto g =
      softmax_focal_backward(xd, yd, gpu(Tensor<float>::full(s.without(1), 1)), o).to(Device::cpu);
  for (int64_t i = 0; i < loss.numel(); ++i) {
    CAPTURE(i);
    CHECK(std::isnan(loss[i]) == (i == 21 || i == 30));
  }
  for (int64_t c = 0; c < 5; ++c) {
    CHECK(std::isnan(g[(1 * 5 + c) * 16 + 5]));
    CHECK(std::isfinite(g[(1 * 5 + c) * 16 + 4]));
  }
  const auto good = gpu(labels<int64_t>(s.without(1), 5, 17));
  CHECK(std::isfinite(softmax_focal_value_and_grad(xd, good).value));
}

TEST_CASE("cuda focal: mixed devices are errors naming the tensor") {
  // Checked before any CUDA call: runs without a GPU (the pointers are never dereferenced).
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 3, 2, 2};
  const auto xd = unread_cuda_view<float>(s);
  const auto yd = unread_cuda_view<int64_t>(s.without(1));
  SoftmaxFocalOptions<float> o;
  o.alpha = Tensor<float>::full({3}, 1.0f);  // on the CPU
  CHECK_THROWS_WITH_AS(softmax_focal(xd, yd, o), doctest::Contains("alpha"), Error);
  CHECK_THROWS_WITH_AS(softmax_focal(xd, labels<int64_t>(s.without(1), 3, 18)),
                       doctest::Contains("target"), Error);
  SigmoidFocalOptions<float> so;
  so.weight = Tensor<float>::full({3, 1, 1}, 1.0f);  // on the CPU
  CHECK_THROWS_WITH_AS(sigmoid_focal(xd, unread_cuda_view<float>(s), so),
                       doctest::Contains("weight"), Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal(xd, Tensor<float>::full(s, 0.0f)), doctest::Contains("target"),
                       Error);
}
