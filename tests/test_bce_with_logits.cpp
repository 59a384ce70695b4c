// bce_with_logits: gradients against finite differences for every option that changes the
// math, values against a direct (unsimplified) formula, and bad input.
#include <doctest/doctest.h>

#include <string>

#include <cmath>

#include "loss_check.hpp"

using namespace segloss;
using testing::check_loss_gradients;

namespace {

// -w [pw z log p + (1 - z) log(1 - p)], straight from the definition (fine for moderate x).
double direct(double x, double z, double w, double pw) {
  const double p = 1.0 / (1.0 + std::exp(-x));
  return -w * (pw * z * std::log(p) + (1 - z) * std::log(1 - p));
}

void check_all_reductions(const Tensor<double>& x, const Tensor<double>& z,
                          BceWithLogitsOptions<double> o, int64_t samples = 0, double eps = 1e-6) {
  testing::check_all_reductions(
      x, z, o, [](auto&&... a) { return bce_with_logits(a...); },
      [](auto&&... a) { return bce_with_logits_backward(a...); },
      [](auto&&... a) { return bce_with_logits_value_and_grad(a...); }, samples, eps);
}

}  // namespace

TEST_CASE("bce_with_logits: gradcheck, no options, 1D/2D/3D spatial") {
  for (const Shape& s : {Shape{2, 1, 37}, Shape{2, 3, 5, 4}, Shape{2, 2, 3, 4, 3}}) {
    CAPTURE(s);
    check_all_reductions(testing::randn<double>(s, 1, 3.0), testing::mask<double>(s, 2), {});
  }
}

TEST_CASE("bce_with_logits: gradcheck, soft targets") {
  const Shape s{2, 2, 6, 5};
  check_all_reductions(testing::randn<double>(s, 3, 2.0), testing::uniform<double>(s, 4, 0, 1), {});
}

TEST_CASE("bce_with_logits: gradcheck, weight in every broadcast pattern") {
  const Shape s{2, 3, 5, 4};
  const auto x = testing::randn<double>(s, 5, 3.0);
  const auto z = testing::mask<double>(s, 6);
  for (const Shape& ws : {Shape{2, 3, 5, 4}, Shape{2, 1, 5, 4}, Shape{3, 1, 1}, Shape{1},
                          Shape{5, 1}, Shape{2, 3, 1, 4}}) {
    CAPTURE(ws);
    BceWithLogitsOptions<double> o;
    o.weight = testing::uniform<double>(ws, 7, 0.1, 2.0);
    check_all_reductions(x, z, o);
  }
}

TEST_CASE("bce_with_logits: gradcheck, pos_weight per channel and shared, with weight") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 8, 3.0);
  const auto z = testing::uniform<double>(s, 9, 0, 1);
  BceWithLogitsOptions<double> o;
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {3});
  check_all_reductions(x, z, o);
  o.pos_weight = Tensor<double>::from({3.0}, {1});
  check_all_reductions(x, z, o);
  o.weight = testing::uniform<double>({2, 1, 4, 5}, 10, 0.1, 2.0);
  check_all_reductions(x, z, o);
}

TEST_CASE("bce_with_logits: pos_weight as (C), (C,1,1) and (1,C,1,1) give the same loss") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 30, 3.0), z = testing::mask<double>(s, 31);
  BceWithLogitsOptions<double> o;
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {3});
  const double flat = bce_with_logits(x, z, o)[0];
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {3, 1, 1});
  CHECK(bce_with_logits(x, z, o)[0] == flat);
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {1, 3, 1, 1});
  CHECK(bce_with_logits(x, z, o)[0] == flat);
  // Up to the order of the additions: without a per-channel pos_weight the small planes are
  // walked as one (backends/cpu/flat_planes.hpp), with it plane by plane.
  o.pos_weight = Tensor<double>::from({1.0, 1.0, 1.0}, {3});
  CHECK(bce_with_logits(x, z, o)[0] == doctest::Approx(bce_with_logits(x, z)[0]).epsilon(1e-14));
}

TEST_CASE("bce_with_logits: the gradient may overwrite the logits (in place)") {
  const Shape s{2, 1, 9, 7};
  const auto x = testing::randn<float>(s, 32, 3.0), z = testing::mask<float>(s, 33);
  const auto ref = bce_with_logits_value_and_grad(x, z);
  auto inplace = x.clone();
  const double v = bce_with_logits_value_and_grad(inplace, z, inplace);
  CHECK(v == ref.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(inplace[i] == ref.grad[i]);
}

TEST_CASE("bce_with_logits: a CUDA tensor is rejected in a CPU-only build, or beside a CPU one") {
  std::vector<float> buf(16, 0.f);
  const auto x = Tensor<float>::view(buf.data(), {1, 1, 16}, Device::cuda);
  const auto z = Tensor<float>::view(buf.data(), {1, 1, 16});
  // Rejected before any kernel runs (x is host memory labelled cuda).
  CHECK_THROWS_WITH_AS(bce_with_logits(x, z),
                       cuda::built() ? "bce_with_logits: target (1,1,16) is on device cpu, but "
                                       "logits are on cuda: every tensor of a call must be on "
                                       "one device"
                                     : "bce_with_logits: logits (1,1,16) is on device cuda, but "
                                       "this build has no CUDA backend",
                       Error);
}

TEST_CASE("bce_with_logits: gradcheck across chunk boundaries (sampled)") {
  const Shape s{1, 2, 130, 130};  // a plane of 16900 elements spans two chunks
  BceWithLogitsOptions<double> o;
  o.weight = testing::uniform<double>({1, 1, 130, 130}, 11, 0.1, 2.0);
  o.pos_weight = Tensor<double>::from({1.5, 0.5}, {2});
  check_all_reductions(testing::randn<double>(s, 12, 3.0), testing::mask<double>(s, 13), o, 300,
                       1e-3);
}

TEST_CASE("bce_with_logits: values match the direct formula") {
  const Shape s{2, 3, 7, 3};
  const auto x = testing::randn<double>(s, 14, 3.0);
  const auto z = testing::uniform<double>(s, 15, 0, 1);
  BceWithLogitsOptions<double> o;
  o.weight = testing::uniform<double>({3, 1, 1}, 16, 0.1, 2.0);
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 4.0}, {3});
  o.reduction = Reduction::none;
  const auto l = bce_with_logits(x, z, o);
  double sum = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 21) % 3;
    const double ref = direct(x[i], z[i], o.weight[c], o.pos_weight[c]);
    CHECK(l[i] == doctest::Approx(ref).epsilon(1e-12));
    sum += ref;
  }
  o.reduction = Reduction::sum;
  CHECK(bce_with_logits(x, z, o)[0] == doctest::Approx(sum).epsilon(1e-12));
  o.reduction = Reduction::mean;
  CHECK(bce_with_logits(x, z, o)[0] == doctest::Approx(sum / x.numel()).epsilon(1e-12));
}

TEST_CASE("bce_with_logits: extreme logits stay finite and exact") {
  const auto x = Tensor<double>::from({-1e4, -100, -30, 0, 30, 100, 1e4, 1e4}, {1, 1, 8});
  const auto z = Tensor<double>::from({0, 1, 1, 0.5, 0, 1, 1, 0}, {1, 1, 8});
  BceWithLogitsOptions<double> o;
  o.reduction = Reduction::none;
  const auto l = bce_with_logits(x, z, o);
  const auto g = bce_with_logits_backward(x, z, Tensor<double>::full(l.shape(), 1.0), o);
  for (int64_t i = 0; i < 8; ++i) {
    CHECK(std::isfinite(l[i]));
    CHECK(std::isfinite(g[i]));
  }
  CHECK(l[0] < 1e-300);                   // log1p(exp(-1e4))
  CHECK(l[1] == doctest::Approx(100.0));  // -log(sigmoid(-100))
  CHECK(l[6] < 1e-300);                   // exp(-1e4) is 0 or a subnormal, depending on the exp
  CHECK(l[7] == doctest::Approx(1e4));
  CHECK(g[1] == doctest::Approx(-1.0));  // p - z
  CHECK(g[3] == doctest::Approx(0.0));
  CHECK(g[7] == doctest::Approx(1.0));
  // float: same finiteness at +-1e4
  auto xf = testing::cast<float>(x), zf = testing::cast<float>(z);
  BceWithLogitsOptions<float> of;
  of.reduction = Reduction::none;
  const auto lf = bce_with_logits(xf, zf, of);
  for (float v : lf) CHECK(std::isfinite(v));
}

TEST_CASE("bce_with_logits: confident correct predictions keep full relative precision") {
  // z = 0 with x << 0 and z = 1 with x >> 0: the loss is softplus(-|x|) ~ e^-|x| and the
  // gradient -+sigmoid(-|x|); a form that subtracts (PyTorch's, or p - z) loses every digit
  // here in float. Reference: the formula in double with std::log1p. Relative tolerance
  // (scale 0: doctest's default scale of 1 would make 2e-6 an absolute bound, met by any
  // value below it).
  // Three copies: the first 16 run as a SIMD packet (AVX-512 floats), the rest in the scalar tail.
  std::vector<double> xs;
  for (int copy = 0; copy < 3; ++copy)
    for (double v : {-30.0, -17.0, -11.0, 11.0, 15.5, 17.0, 30.0}) xs.push_back(v);
  std::vector<double> zs;
  for (double x : xs) zs.push_back(x < 0 ? 0.0 : 1.0);
  const Shape s{1, 1, static_cast<int64_t>(xs.size())};
  BceWithLogitsOptions<float> of;
  of.reduction = Reduction::none;
  const auto xf = testing::cast<float>(Tensor<double>::from(xs, s));
  const auto zf = testing::cast<float>(Tensor<double>::from(zs, s));
  const auto l = bce_with_logits(xf, zf, of);
  const auto g = bce_with_logits_backward(xf, zf, Tensor<float>::full(s, 1.f), of);
  for (size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(xs[i]);
    const double e = std::exp(-std::fabs(static_cast<double>(xf[i])));
    const double loss = std::log1p(e), grad = (xs[i] < 0 ? 1 : -1) * e / (1 + e);
    CHECK(l[i] == doctest::Approx(loss).epsilon(2e-6).scale(0));
    CHECK(g[i] == doctest::Approx(grad).epsilon(2e-6).scale(0));
  }
}

TEST_CASE("bce_with_logits: NaN propagates") {
  auto x = testing::randn<double>({1, 1, 40}, 17);
  x[21] = NAN;
  const auto z = testing::mask<double>({1, 1, 40}, 18);
  const auto vg = bce_with_logits_value_and_grad(x, z);
  CHECK(std::isnan(vg.value));
  CHECK(std::isnan(vg.grad[21]));
  CHECK(std::isfinite(vg.grad[20]));
}

TEST_CASE("bce_with_logits: the caller's gradient buffer is used") {
  const Shape s{2, 1, 9, 9};
  const auto x = testing::randn<float>(s, 19), z = testing::mask<float>(s, 20);
  std::vector<float> buf(s.numel(), -7.f);
  auto grad = Tensor<float>::view(buf.data(), s);
  const double v = bce_with_logits_value_and_grad(x, z, grad);
  const auto ref = bce_with_logits_value_and_grad(x, z);
  CHECK(v == ref.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(buf[i] == ref.grad[i]);
}

TEST_CASE("bce_with_logits: bad input names the function, argument and values") {
  const auto x = testing::randn<double>({2, 3, 4, 4}, 21);
  const auto z = testing::mask<double>({2, 3, 4, 4}, 22);
  CHECK_THROWS_WITH_AS(bce_with_logits(x, testing::mask<double>({2, 3, 4, 3}, 1)),
                       "bce_with_logits: target (2,3,4,3) does not match logits (2,3,4,4)", Error);
  CHECK_THROWS_WITH_AS(
      bce_with_logits(Tensor<double>::zeros({2, 3}), Tensor<double>::zeros({2, 3})),
      "bce_with_logits: logits (2,3) has rank 2; expected (N, C, spatial...) "
      "with 1 to 3 spatial axes",
      Error);
  CHECK_THROWS_WITH_AS(
      bce_with_logits(Tensor<double>::zeros({0, 3, 4}), Tensor<double>::zeros({0, 3, 4})),
      "bce_with_logits: logits (0,3,4) is empty (a zero extent); an empty batch has no loss",
      Error);
  CHECK_THROWS_WITH_AS(bce_with_logits(x, Tensor<double>{}), "bce_with_logits: target is undefined",
                       Error);
  BceWithLogitsOptions<double> o;
  o.weight = Tensor<double>::zeros({3, 4, 1, 1});
  CHECK_THROWS_WITH_AS(bce_with_logits(x, z, o),
                       "bce_with_logits: options.weight (3,4,1,1) does not broadcast to the input "
                       "(2,3,4,4) (axis 1: 4 vs 3)",
                       Error);
  o.weight = Tensor<double>::zeros({1, 2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(
      bce_with_logits(x, z, o),
      "bce_with_logits: options.weight (1,2,3,4,4) has more axes than the input (2,3,4,4)", Error);
  o.weight = {};
  o.pos_weight = Tensor<double>::zeros({2});
  CHECK_THROWS_WITH_AS(
      bce_with_logits(x, z, o),
      "bce_with_logits: options.pos_weight (2) is neither one value nor one per channel "
      "of logits (2,3,4,4): expected (3), or PyTorch's per-channel shape "
      "(3,1,...) with one axis fewer than the logits",
      Error);
  o.pos_weight = Tensor<double>::zeros({1, 1, 3});  // PyTorch would weight along W
  CHECK_THROWS_AS(bce_with_logits(x, z, o), Error);
  o.pos_weight = Tensor<double>::zeros({3, 1});  // neither (3) nor (3,1,1)
  CHECK_THROWS_AS(bce_with_logits(x, z, o), Error);
  o.pos_weight = {};
  CHECK_THROWS_WITH_AS(bce_with_logits_backward(x, z, Tensor<double>::zeros({2}), o),
                       "bce_with_logits_backward: grad_out (2) must hold one element for a mean "
                       "or sum reduction",
                       Error);
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(bce_with_logits_backward(x, z, Tensor<double>::zeros({1}), o),
                       "bce_with_logits_backward: grad_out (1) does not match the loss values "
                       "(2,3,4,4) of reduction none",
                       Error);
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(x, z, o),
                       "bce_with_logits_value_and_grad: reduction none has no single value; use "
                       "bce_with_logits and bce_with_logits_backward",
                       Error);
  auto wrong = Tensor<double>::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(
      bce_with_logits_value_and_grad(x, z, wrong),
      "bce_with_logits_value_and_grad: grad (2,3,4) does not match logits (2,3,4,4)", Error);
}

TEST_CASE("bce_with_logits: gradcheck, label_smoothing with weight and pos_weight") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 40, 3.0);
  const auto z = testing::mask<double>(s, 41);
  for (double eps : {0.1, 0.5, 1.0}) {
    CAPTURE(eps);
    BceWithLogitsOptions<double> o;
    o.label_smoothing = eps;
    check_all_reductions(x, z, o);
    o.weight = testing::uniform<double>({2, 1, 4, 5}, 42, 0.1, 2.0);
    o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {3});
    check_all_reductions(x, testing::uniform<double>(s, 43, 0, 1), o);
  }
}

TEST_CASE("bce_with_logits: gradcheck, mean_over weight_sum in every broadcast pattern") {
  const Shape s{2, 3, 5, 4};
  const auto x = testing::randn<double>(s, 44, 3.0);
  const auto z = testing::mask<double>(s, 45);
  for (const Shape& ws : {Shape{2, 3, 5, 4}, Shape{2, 1, 5, 4}, Shape{3, 1, 1}, Shape{1},
                          Shape{5, 1}, Shape{2, 3, 1, 4}}) {
    CAPTURE(ws);
    BceWithLogitsOptions<double> o;
    o.mean_over = BceMeanOver::weight_sum;
    o.weight = testing::uniform<double>(ws, 46, 0.1, 2.0);
    check_all_reductions(x, z, o);
    o.label_smoothing = 0.2;
    o.pos_weight = Tensor<double>::from({3.0}, {1});
    check_all_reductions(x, z, o);
  }
  // 3D volumes and a weight whose sum spans several chunks (sampled)
  const Shape v{1, 2, 3, 90, 70};
  BceWithLogitsOptions<double> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = testing::uniform<double>(v, 47, 0.0, 3.0);
  check_all_reductions(testing::randn<double>(v, 48, 3.0), testing::mask<double>(v, 49), o, 300,
                       1e-4);
}

TEST_CASE("bce_with_logits: mean_over weight_sum divides by the broadcast weight's sum") {
  const Shape s{2, 3, 7, 3};
  const auto x = testing::randn<double>(s, 50, 3.0);
  const auto z = testing::uniform<double>(s, 51, 0, 1);
  BceWithLogitsOptions<double> o;
  o.weight = testing::uniform<double>({3, 1, 1}, 52, 0.1, 2.0);
  o.reduction = Reduction::sum;
  const double sum = bce_with_logits(x, z, o)[0];
  // the (3,1,1) weight broadcast to (2,3,7,3): each channel's value covers 2 * 21 elements
  const double w_sum = 42.0 * (o.weight[0] + o.weight[1] + o.weight[2]);
  o.reduction = Reduction::mean;
  o.mean_over = BceMeanOver::weight_sum;
  const auto vg = bce_with_logits_value_and_grad(x, z, o);
  CHECK(vg.value == doctest::Approx(sum / w_sum).epsilon(1e-14));
  CHECK(bce_with_logits(x, z, o)[0] == doctest::Approx(sum / w_sum).epsilon(1e-14));
  o.mean_over = BceMeanOver::elements;
  const auto by_count = bce_with_logits_value_and_grad(x, z, o);
  for (int64_t i = 0; i < s.numel(); ++i)
    CHECK(vg.grad[i] == doctest::Approx(by_count.grad[i] * s.numel() / w_sum).epsilon(1e-13));
  // sum and none ignore mean_over
  for (Reduction r : {Reduction::sum, Reduction::none}) {
    o.reduction = r;
    o.mean_over = BceMeanOver::elements;
    const auto a = bce_with_logits(x, z, o);
    o.mean_over = BceMeanOver::weight_sum;
    const auto b = bce_with_logits(x, z, o);
    for (int64_t i = 0; i < a.numel(); ++i) CHECK(a[i] == b[i]);
  }
}

TEST_CASE("bce_with_logits: mean_over weight_sum without a weight is the plain mean") {
  const Shape s{2, 1, 9, 7};
  const auto x = testing::randn<float>(s, 53, 3.0), z = testing::mask<float>(s, 54);
  BceWithLogitsOptions<float> o;
  o.mean_over = BceMeanOver::weight_sum;
  const auto a = bce_with_logits_value_and_grad(x, z, o);
  const auto b = bce_with_logits_value_and_grad(x, z);
  CHECK(a.value == b.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(a.grad[i] == b.grad[i]);
}

TEST_CASE("bce_with_logits: mean_over weight_sum with all-zero weights gives 0 and no gradient") {
  const Shape s{2, 2, 6, 5};
  auto x = testing::randn<float>(s, 55, 3.0);
  x[7] = NAN;  // not read: a zero weight sum short-cuts the kernel
  const auto z = testing::mask<float>(s, 56);
  for (const Shape& ws : {Shape{2, 2, 6, 5}, Shape{2, 1, 1, 1}, Shape{1}}) {
    CAPTURE(ws);
    BceWithLogitsOptions<float> o;
    o.mean_over = BceMeanOver::weight_sum;
    o.weight = Tensor<float>::zeros(ws);
    CHECK(bce_with_logits(x, z, o)[0] == 0.f);
    for (float g : bce_with_logits_backward(x, z, Tensor<float>::full({}, 1.f), o)) CHECK(g == 0.f);
    const auto vg = bce_with_logits_value_and_grad(x, z, o);
    CHECK(vg.value == 0.0);
    for (float g : vg.grad) CHECK(g == 0.f);
    std::vector<float> buf(static_cast<size_t>(s.numel()), -7.f);
    auto grad = Tensor<float>::view(buf.data(), s);
    CHECK(bce_with_logits_value_and_grad(x, z, grad, o) == 0.0);
    for (float g : buf) CHECK(g == 0.f);
  }
  // Signed weights that cancel exactly count as a zero sum too.
  BceWithLogitsOptions<double> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = Tensor<double>::from({1.0, -1.0}, {2, 1, 1, 1});
  const auto xd = testing::randn<double>(s, 57), zd = testing::mask<double>(s, 58);
  CHECK(bce_with_logits(xd, zd, o)[0] == 0.0);
  // With the default mean over elements, zero weights give PyTorch's 0 through the kernel.
  o.mean_over = BceMeanOver::elements;
  o.weight = Tensor<double>::zeros({1});
  CHECK(bce_with_logits(xd, zd, o)[0] == 0.0);
}

TEST_CASE("bce_with_logits: label_smoothing equals BCE on the smoothed target") {
  const Shape s{2, 3, 6, 5};
  const auto x = testing::randn<double>(s, 59, 3.0);
  const auto z = testing::mask<double>(s, 60);
  for (double eps : {0.0, 0.1, 0.3, 1.0}) {
    CAPTURE(eps);
    auto smoothed = z.clone();
    for (auto& v : smoothed) v = v * (1 - eps) + eps / 2;  // Keras; smp with smooth_factor eps/2
    BceWithLogitsOptions<double> o;
    o.weight = testing::uniform<double>({2, 1, 6, 5}, 61, 0.1, 2.0);
    o.pos_weight = Tensor<double>::from({0.5, 2.0, 7.0}, {3});
    const auto ref = bce_with_logits_value_and_grad(x, smoothed, o);
    o.label_smoothing = eps;
    const auto got = bce_with_logits_value_and_grad(x, z, o);
    CHECK(got.value == doctest::Approx(ref.value).epsilon(1e-14));
    for (int64_t i = 0; i < s.numel(); ++i)
      CHECK(got.grad[i] == doctest::Approx(ref.grad[i]).epsilon(1e-13).scale(1e-3));
  }
  // eps = 1 makes every target 1/2: the loss no longer depends on the target
  BceWithLogitsOptions<double> o;
  o.label_smoothing = 1.0;
  auto flipped = z.clone();
  for (auto& v : flipped) v = 1 - v;
  CHECK(bce_with_logits(x, z, o)[0] == doctest::Approx(bce_with_logits(x, flipped, o)[0]));
  // eps = 0 is bit-identical to no smoothing
  o.label_smoothing = 0.0;
  const auto a = bce_with_logits_value_and_grad(x, z, o), b = bce_with_logits_value_and_grad(x, z);
  CHECK(a.value == b.value);
  for (int64_t i = 0; i < s.numel(); ++i) CHECK(a.grad[i] == b.grad[i]);
}

TEST_CASE("bce_with_logits: label_smoothing outside [0, 1] or NaN is an error, also in bce_dice") {
  const auto x = testing::randn<double>({1, 1, 8}, 62), z = testing::mask<double>({1, 1, 8}, 63);
  BceWithLogitsOptions<double> o;
  o.label_smoothing = -0.1;
  CHECK_THROWS_WITH_AS(bce_with_logits(x, z, o),
                       "bce_with_logits: options.label_smoothing is -0.1; it must be in [0, 1]",
                       Error);
  o.label_smoothing = 1.5;
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(x, z, o),
                       "bce_with_logits_value_and_grad: options.label_smoothing is 1.5; it must "
                       "be in [0, 1]",
                       Error);
  o.label_smoothing = NAN;
  CHECK_THROWS_WITH_AS(bce_with_logits_backward(x, z, Tensor<double>::full({}, 1.0), o),
                       "bce_with_logits_backward: options.label_smoothing is nan; it must be in "
                       "[0, 1]",
                       Error);
  BceDiceOptions<double> d;
  d.bce.label_smoothing = 2.0;
  CHECK_THROWS_WITH_AS(bce_dice(x, z, d),
                       "bce_dice: options.bce.label_smoothing is 2; it must be in [0, 1]", Error);
  // bce_dice names its BCE term's tensor options by their path too (the Dice term has a weight).
  d = {};
  d.bce.weight = Tensor<double>::full({3}, 1.0);
  CHECK_THROWS_WITH_AS(bce_dice(x, z, d),
                       "bce_dice: options.bce.weight (3) does not broadcast to the input (1,1,8) "
                       "(axis 2: 3 vs 8)",
                       Error);
  d = {};
  d.bce.pos_weight = Tensor<double>::full({2}, 1.0);
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(x, z, d),
                       "bce_dice_value_and_grad: options.bce.pos_weight (2) is neither one value "
                       "nor one per channel of logits (1,1,8): expected (1), or PyTorch's "
                       "per-channel shape (1,1,...) with one axis fewer than the logits",
                       Error);
}

TEST_CASE("bce_with_logits: label_smoothing and mean_over flow through bce_dice") {
  const Shape s{2, 1, 9, 8};
  const auto x = testing::randn<double>(s, 64, 3.0), z = testing::mask<double>(s, 65);
  BceDiceOptions<double> o;
  o.bce_weight = 0.7;
  o.bce.weight = testing::uniform<double>({2, 1, 9, 8}, 66, 0.1, 2.0);
  o.bce.mean_over = BceMeanOver::weight_sum;
  o.bce.label_smoothing = 0.2;
  const auto fused = bce_dice_value_and_grad(x, z, o);
  const auto b = bce_with_logits_value_and_grad(x, z, o.bce);
  const auto d = soft_dice_value_and_grad(x, z, o.dice);  // Dice reads the unsmoothed target
  CHECK(fused.value == doctest::Approx(0.7 * b.value + d.value).epsilon(1e-13));
  for (int64_t i = 0; i < s.numel(); ++i)
    CHECK(fused.grad[i] == doctest::Approx(0.7 * b.grad[i] + d.grad[i]).epsilon(1e-12));
  testing::check_loss_gradients(
      x, [&](const Tensor<double>& v) { return bce_dice(v, z, o); },
      [&](const Tensor<double>& v, const Tensor<double>& go) {
        return bce_dice_backward(v, z, go, o);
      },
      [&](const Tensor<double>& v) { return bce_dice_value_and_grad(v, z, o); });
  // all-zero weights: the BCE term is 0 and Dice remains
  o.bce.weight = Tensor<double>::zeros({1});
  const auto only_dice = bce_dice_value_and_grad(x, z, o);
  CHECK(only_dice.value == doctest::Approx(d.value).epsilon(1e-14));
  for (int64_t i = 0; i < s.numel(); ++i)
    CHECK(only_dice.grad[i] == doctest::Approx(d.grad[i]).epsilon(1e-13));
}
