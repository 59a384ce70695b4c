// binary_cross_entropy (probabilities): gradients against finite differences for every option
// and reduction, values against the direct formula, the clamp and the epsilon at p = 0 and 1,
// precision near 0 and 1, the [0, 1] check (NaN included) and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "loss_check.hpp"

using namespace segloss;

namespace {

// -w [z log p + (1 - z) log(1 - p)] with each log clamped at -100, straight from the definition
// (std::log1p for log(1 - p), as PyTorch).
double direct(double p, double z, double w = 1.0) {
  return -w * (z * std::max(std::log(p), -100.0) + (1 - z) * std::max(std::log1p(-p), -100.0));
}

// ATen's EPSILON is the float 1e-12f; its double kernel converts it.
constexpr double kEps = static_cast<double>(1e-12f);

void check_all_reductions(const Tensor<double>& p, const Tensor<double>& z,
                          BinaryCrossEntropyOptions<double> o, int64_t samples = 0,
                          double eps = 1e-6) {
  testing::check_all_reductions(
      p, z, o, [](auto&&... a) { return binary_cross_entropy(a...); },
      [](auto&&... a) { return binary_cross_entropy_backward(a...); },
      [](auto&&... a) { return binary_cross_entropy_value_and_grad(a...); }, samples, eps);
}

// Probabilities away from the clamp (and from the kink of max(p (1 - p), EPSILON)), so that
// finite differences apply.
Tensor<double> probs(const Shape& s, uint64_t seed) {
  return testing::uniform<double>(s, seed, 0.03, 0.97);
}

}  // namespace

TEST_CASE("binary_cross_entropy: gradcheck, no options, 1D/2D/3D spatial, N = 1, 1x1 image") {
  for (const Shape& s : {Shape{2, 1, 37}, Shape{2, 3, 5, 4}, Shape{2, 2, 3, 4, 3},
                         Shape{1, 1, 1, 1}, Shape{1, 2, 9, 7}}) {
    CAPTURE(s);
    check_all_reductions(probs(s, 1), testing::mask<double>(s, 2), {});
  }
}

TEST_CASE("binary_cross_entropy: gradcheck, soft targets") {
  const Shape s{2, 2, 6, 5};
  check_all_reductions(probs(s, 3), testing::uniform<double>(s, 4, 0, 1), {});
}

TEST_CASE("binary_cross_entropy: gradcheck, weight in every broadcast pattern") {
  const Shape s{2, 3, 5, 4};
  const auto p = probs(s, 5);
  const auto z = testing::uniform<double>(s, 6, 0, 1);
  for (const Shape& ws : {Shape{2, 3, 5, 4}, Shape{2, 1, 5, 4}, Shape{3, 1, 1}, Shape{1},
                          Shape{5, 1}, Shape{2, 3, 1, 4}}) {
    CAPTURE(ws);
    BinaryCrossEntropyOptions<double> o;
    o.weight = testing::uniform<double>(ws, 7, 0.1, 2.0);
    check_all_reductions(p, z, o);
  }
}

TEST_CASE("binary_cross_entropy: gradcheck across chunk boundaries (sampled)") {
  const Shape s{1, 2, 130, 130};  // a plane of 16900 elements spans two chunks
  BinaryCrossEntropyOptions<double> o;
  o.weight = testing::uniform<double>({1, 1, 130, 130}, 8, 0.1, 2.0);
  check_all_reductions(probs(s, 9), testing::mask<double>(s, 10), o, 300, 1e-4);
}

TEST_CASE("binary_cross_entropy: values match the direct formula, every reduction") {
  const Shape s{2, 3, 7, 3};
  const auto p = testing::uniform<double>(s, 11, 0.0, 1.0);
  const auto z = testing::uniform<double>(s, 12, 0, 1);
  BinaryCrossEntropyOptions<double> o;
  o.weight = testing::uniform<double>({3, 1, 1}, 13, 0.1, 2.0);
  o.reduction = Reduction::none;
  const auto l = binary_cross_entropy(p, z, o);
  double sum = 0;
  for (int64_t i = 0; i < p.numel(); ++i) {
    const double ref = direct(p[i], z[i], o.weight[(i / 21) % 3]);
    CHECK(l[i] == doctest::Approx(ref).epsilon(1e-13));
    sum += ref;
  }
  o.reduction = Reduction::sum;
  CHECK(binary_cross_entropy(p, z, o)[0] == doctest::Approx(sum).epsilon(1e-13));
  o.reduction = Reduction::mean;
  CHECK(binary_cross_entropy(p, z, o)[0] == doctest::Approx(sum / p.numel()).epsilon(1e-13));
}

TEST_CASE("binary_cross_entropy: p = 0 and p = 1, the clamp and PyTorch's epsilon") {
  // Every (p, z) pair, repeated so that both the SIMD packets and the scalar tail see each.
  const std::vector<double> ps = {0, 1, 0, 1, 0, 1, 1e-13, 1e-13, 0.5, 0.75};
  const std::vector<double> zs = {0, 1, 1, 0, 0.25, 0.25, 1, 0, 0.25, 1};
  std::vector<double> pv, zv;
  for (int r = 0; r < 7; ++r)
    for (size_t k = 0; k < ps.size(); ++k) {
      pv.push_back(ps[k]);
      zv.push_back(zs[k]);
    }
  const Shape s{1, 1, static_cast<int64_t>(pv.size())};
  const auto p = Tensor<double>::from(pv, s), z = Tensor<double>::from(zv, s);
  BinaryCrossEntropyOptions<double> o;
  o.reduction = Reduction::none;
  const auto l = binary_cross_entropy(p, z, o);
  const auto g = binary_cross_entropy_backward(p, z, Tensor<double>::full(s, 1.0), o);
  const auto pf = testing::cast<float>(p), zf = testing::cast<float>(z);
  BinaryCrossEntropyOptions<float> of;
  of.reduction = Reduction::none;
  const auto lf = binary_cross_entropy(pf, zf, of);
  const auto gf = binary_cross_entropy_backward(pf, zf, Tensor<float>::full(s, 1.f), of);
  for (int64_t i = 0; i < s.numel(); ++i) {
    CAPTURE(i);
    CAPTURE(p[i]);
    CAPTURE(z[i]);
    const double pi = p[i], zi = z[i];
    // the value: each log clamped at -100
    const double want_l = direct(pi, zi);
    CHECK(l[i] == doctest::Approx(want_l).epsilon(1e-14));
    CHECK(static_cast<double>(lf[i]) == doctest::Approx(want_l).epsilon(1e-6));
    // the gradient: (p - z) / max((1 - p) p, EPSILON), EPSILON = 1e-12f in both precisions
    const double want_g = (pi - zi) / std::max((1 - pi) * pi, kEps);
    CHECK(g[i] == doctest::Approx(want_g).epsilon(1e-14));
    CHECK(static_cast<double>(gf[i]) == doctest::Approx(want_g).epsilon(1e-6));
  }
  CHECK(l[0] == 0.0);    // p = 0, z = 0
  CHECK(l[1] == 0.0);    // p = 1, z = 1
  CHECK(l[2] == 100.0);  // p = 0, z = 1: -max(log 0, -100)
  CHECK(l[3] == 100.0);  // p = 1, z = 0
  CHECK(l[4] == 25.0);   // p = 0, z = 1/4: 1/4 of the clamped 100, plus (3/4) log 1 = 0
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  CHECK(g[2] == -1.0 / kEps);  // -1000000003995.8029, not -1e12: ATen's float epsilon
  CHECK(g[3] == 1.0 / kEps);
  CHECK(g[2] != -1e12);
}

TEST_CASE("binary_cross_entropy: full relative precision near 0 and 1, float subnormals") {
  // log(1 - p) for tiny p is -p (log1p), log p for p near 1 is -(1 - p); a subnormal float p
  // has log p between -103.3 and -87.3 (SIMD logs that truncate it to the smallest normal
  // would give -87.3). Each value at the head (SIMD packets) and the tail (scalar) of a row.
  const std::vector<double> ps = {1e-10, 1 - 0x1p-30, 1e-40, 3e-42, 1e-20, 0x1p-126, 0.3};
  const std::vector<double> zs = {0, 1, 1, 1, 0, 1, 1};
  const int64_t n = 37;
  for (size_t k = 0; k < ps.size(); ++k) {
    CAPTURE(ps[k]);
    for (int64_t at : {int64_t{0}, n - 1}) {
      CAPTURE(at);
      std::vector<double> pv(n, 0.5), zv(n, 0.0);
      pv[at] = ps[k];
      zv[at] = zs[k];
      const Shape s{1, 1, n};
      const auto pf = testing::cast<float>(Tensor<double>::from(pv, s));
      const auto zf = testing::cast<float>(Tensor<double>::from(zv, s));
      BinaryCrossEntropyOptions<float> of;
      of.reduction = Reduction::none;
      const auto lf = binary_cross_entropy(pf, zf, of);
      const double pfl = static_cast<double>(pf[at]);  // the float input, exactly
      CHECK(static_cast<double>(lf[at]) == doctest::Approx(direct(pfl, zs[k])).epsilon(2e-6));
      if (pfl < 1e-6 || pfl > 0.99) {
        const auto pd = Tensor<double>::from(pv, s), zd = Tensor<double>::from(zv, s);
        BinaryCrossEntropyOptions<double> od;
        od.reduction = Reduction::none;
        const auto ld = binary_cross_entropy(pd, zd, od);
        CHECK(ld[at] == doctest::Approx(direct(pv[at], zs[k])).epsilon(1e-14));
      }
    }
  }
}

TEST_CASE("binary_cross_entropy: probabilities or targets outside [0, 1], and NaN, are errors") {
  const Shape s{2, 1, 3, 4};
  auto p = testing::uniform<double>(s, 14, 0, 1);
  auto z = testing::mask<double>(s, 15);
  auto bad = p.clone();
  bad[17] = 1.5;
  bad[20] = -0.25;
  CHECK_THROWS_WITH_AS(binary_cross_entropy(bad, z),
                       "binary_cross_entropy: probs has value 1.5 at index 17 (1,0,1,1), "
                       "outside [0, 1]",
                       Error);
  bad[17] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(binary_cross_entropy(bad, z),
                       "binary_cross_entropy: probs has value nan at index 17 (1,0,1,1), "
                       "outside [0, 1]",
                       Error);
  auto badz = z.clone();
  badz[3] = 255;  // a label map passed as target
  CHECK_THROWS_WITH_AS(binary_cross_entropy_backward(p, badz, Tensor<double>::full({}, 1.0)),
                       "binary_cross_entropy_backward: target has value 255 at index 3 "
                       "(0,0,0,3), outside [0, 1]",
                       Error);
  badz[3] = -std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(binary_cross_entropy(p, badz), Error);
  // Infinity, and the float path.
  auto badf = testing::cast<float>(p);
  badf[23] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(binary_cross_entropy(badf, testing::cast<float>(z)),
                       "binary_cross_entropy: probs has value inf at index 23 (1,0,2,3), "
                       "outside [0, 1]",
                       Error);
  // A bad value beyond the first chunk is found too (and printed in full: "1" would read as
  // inside the range), and nothing is written on error.
  const Shape big{1, 1, 40000};
  auto pb = testing::uniform<double>(big, 16, 0, 1);
  pb[39999] = 1.0000000000000002;
  std::vector<double> buf(static_cast<size_t>(big.numel()), -7.0);
  auto grad = Tensor<double>::view(buf.data(), big);
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy_value_and_grad(pb, testing::mask<double>(big, 17), grad),
      "binary_cross_entropy_value_and_grad: probs has value 1.0000000000000002 at index 39999 "
      "(0,0,39999), outside [0, 1]",
      Error);
  for (double v : buf) REQUIRE(v == -7.0);
  // 0 and 1 themselves, and -0, are fine
  auto edge = p.clone();
  edge[0] = 0.0;
  edge[1] = 1.0;
  edge[2] = -0.0;
  CHECK_NOTHROW(binary_cross_entropy(edge, z));
}

TEST_CASE("binary_cross_entropy: bad input names the function, argument and values") {
  const auto p = testing::uniform<double>({2, 3, 4, 4}, 18, 0, 1);
  const auto z = testing::mask<double>({2, 3, 4, 4}, 19);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(p, testing::mask<double>({2, 3, 4, 3}, 1)),
                       "binary_cross_entropy: target (2,3,4,3) does not match probs (2,3,4,4)",
                       Error);
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy(Tensor<double>::zeros({2, 3}), Tensor<double>::zeros({2, 3})),
      "binary_cross_entropy: probs (2,3) has rank 2; expected (N, C, spatial...) with 1 to 3 "
      "spatial axes",
      Error);
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy(Tensor<double>::zeros({0, 3, 4}), Tensor<double>::zeros({0, 3, 4})),
      "binary_cross_entropy: probs (0,3,4) is empty (a zero extent); an empty batch has no loss",
      Error);
  BinaryCrossEntropyOptions<double> o;
  o.weight = Tensor<double>::zeros({3, 4, 1, 1});
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy(p, z, o),
      "binary_cross_entropy: options.weight (3,4,1,1) does not broadcast to the input "
      "(2,3,4,4) (axis 1: 4 vs 3)",
      Error);
  o.weight = {};
  CHECK_THROWS_WITH_AS(binary_cross_entropy_backward(p, z, Tensor<double>::zeros({2}), o),
                       "binary_cross_entropy_backward: grad_out (2) must hold one element for a "
                       "mean or sum reduction",
                       Error);
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(binary_cross_entropy_value_and_grad(p, z, o),
                       "binary_cross_entropy_value_and_grad: reduction none has no single value; "
                       "use binary_cross_entropy and binary_cross_entropy_backward",
                       Error);
  o.reduction = Reduction::mean;
  auto wrong = Tensor<double>::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy_value_and_grad(p, z, wrong, o),
      "binary_cross_entropy_value_and_grad: grad (2,3,4) does not match probs (2,3,4,4)", Error);
  std::vector<float> buf(16, 0.5f);
  const auto cuda = Tensor<float>::view(buf.data(), {1, 1, 16}, Device::cuda);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(cuda, Tensor<float>::view(buf.data(), {1, 1, 16})),
                       cuda::built() ? "binary_cross_entropy: target (1,1,16) is on device cpu, "
                                       "but probs are on cuda: every tensor of a call must be on "
                                       "one device"
                                     : "binary_cross_entropy: probs (1,1,16) is on device cuda, "
                                       "but this build has no CUDA backend",
                       Error);
}

TEST_CASE("binary_cross_entropy: zero weights, the caller's buffer and an in-place gradient") {
  const Shape s{2, 1, 9, 7};
  const auto p = testing::uniform<float>(s, 20, 0, 1), z = testing::mask<float>(s, 21);
  BinaryCrossEntropyOptions<float> o;
  o.weight = Tensor<float>::zeros({1});
  const auto zero = binary_cross_entropy_value_and_grad(p, z, o);
  CHECK(zero.value == 0.0);
  for (float g : zero.grad) CHECK(g == 0.f);
  const auto ref = binary_cross_entropy_value_and_grad(p, z);
  std::vector<float> buf(static_cast<size_t>(s.numel()), -7.f);
  auto grad = Tensor<float>::view(buf.data(), s);
  CHECK(binary_cross_entropy_value_and_grad(p, z, grad) == ref.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(buf[static_cast<size_t>(i)] == ref.grad[i]);
  auto inplace = p.clone();
  CHECK(binary_cross_entropy_value_and_grad(inplace, z, inplace) == ref.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(inplace[i] == ref.grad[i]);
}

TEST_CASE("binary_cross_entropy: on sigmoid(x) it equals bce_with_logits for moderate logits") {
  // The Pytorch-UNet line nn.BCELoss()(sigmoid(y_pred), y) is bce_with_logits(y_pred, y) up to
  // the rounding of the sigmoid (and the clamp, which moderate logits never reach); the chain
  // rule dL/dx = dL/dp p (1 - p) gives bce_with_logits' gradient p - z.
  const Shape s{2, 1, 8, 9};
  const auto x = testing::randn<double>(s, 22, 3.0), z = testing::mask<double>(s, 23);
  auto p = Tensor<double>::empty(s);
  for (int64_t i = 0; i < s.numel(); ++i) p[i] = 1.0 / (1.0 + std::exp(-x[i]));
  const auto a = binary_cross_entropy_value_and_grad(p, z);
  const auto b = bce_with_logits_value_and_grad(x, z);
  CHECK(a.value == doctest::Approx(b.value).epsilon(1e-12));
  for (int64_t i = 0; i < s.numel(); ++i)
    CHECK(a.grad[i] * p[i] * (1 - p[i]) == doctest::Approx(b.grad[i]).epsilon(1e-9));
}
