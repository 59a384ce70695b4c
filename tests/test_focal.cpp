// sigmoid_focal and softmax_focal: gradients against finite differences for every option that
// changes the math, values against direct formulas, the reductions to BCE and cross_entropy at
// gamma = 0, extreme and confident logits (gamma in (0, 1) included), ignored pixels, thread
// invariance and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fold_check.hpp"
#include "loss_check.hpp"

using namespace segloss;
using testing::labels;
using testing::same_bits;

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

void check_sigmoid_reductions(const Tensor<double>& x, const Tensor<double>& z,
                              SigmoidFocalOptions<double> o, int64_t samples = 0,
                              double eps = 1e-6) {
  testing::check_all_reductions(
      x, z, o, [](auto&&... a) { return sigmoid_focal(a...); },
      [](auto&&... a) { return sigmoid_focal_backward(a...); },
      [](auto&&... a) { return sigmoid_focal_value_and_grad(a...); }, samples, eps);
}

template <class L>
void check_softmax_reductions(const Tensor<double>& x, const Tensor<L>& t,
                              SoftmaxFocalOptions<double> o, int64_t samples = 0,
                              double eps = 1e-6) {
  testing::check_all_reductions(
      x, t, o, [](auto&&... a) { return softmax_focal(a...); },
      [](auto&&... a) { return softmax_focal_backward(a...); },
      [](auto&&... a) { return softmax_focal_value_and_grad(a...); }, samples, eps);
}

// torchvision's sigmoid_focal_loss of one element, term by term (fine for moderate x).
double sigmoid_direct(double x, double z, double alpha, double gamma) {
  const double p = 1.0 / (1.0 + std::exp(-x));
  const double ce = -(z * std::log(p) + (1 - z) * std::log(1 - p));
  const double p_t = p * z + (1 - p) * (1 - z);
  double l = ce * std::pow(1 - p_t, gamma);
  if (alpha >= 0) l *= alpha * z + (1 - alpha) * (1 - z);
  return l;
}

// The sigmoid focal loss and its derivative in long double, with q^(gamma - 1) written out
// (the textbook form; valid wherever q > 0 in long double).
void sigmoid_long_double(double xd, double zd, double gamma, long double& value,
                         long double& grad) {
  const long double x = xd, z = zd, g = gamma;
  const long double p = 1.0L / (1.0L + std::exp(-x)), s = 1.0L / (1.0L + std::exp(x));
  const long double ce = (1 - z) * std::log1p(std::exp(-std::fabs(x))) +
                         (1 - z) * std::fmax(x, 0.0L) +
                         z * (std::log1p(std::exp(-std::fabs(x))) + std::fmax(-x, 0.0L));
  const long double q = p * (1 - z) + s * z;
  value = std::pow(q, g) * ce;
  grad = g * std::pow(q, g - 1) * p * s * (1 - 2 * z) * ce + std::pow(q, g) * ((1 - z) * p - z * s);
}

// -alpha[t] (1 - p_t)^gamma log p_t per pixel, straight from a softmax (moderate logits).
double softmax_direct(const Tensor<double>& x, const Tensor<int64_t>& y,
                      const SoftmaxFocalOptions<double>& o, std::vector<double>* per_pixel) {
  const int64_t n = x.size(0), c = x.size(1), px = x.shape().numel_from(2);
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < px; ++j) {
      const int64_t label = y[i * px + j];
      double l = 0;
      if (label != o.ignore_index) {
        double zsum = 0;
        for (int64_t k = 0; k < c; ++k) zsum += std::exp(x[(i * c + k) * px + j]);
        const double p_t = std::exp(x[(i * c + label) * px + j]) / zsum;
        const double a = o.alpha.defined() ? o.alpha[label] : 1.0;
        l = -a * std::pow(1 - p_t, o.gamma) * std::log(p_t);
        ++count;
      }
      if (per_pixel) per_pixel->push_back(l);
      sum += l;
    }
  if (o.reduction == Reduction::sum) return sum;
  return count ? sum / static_cast<double>(count) : 0.0;
}

// v repeated k times: inputs long enough for the SIMD packets (up to 16 lanes) and a scalar tail.
std::vector<double> repeat(const std::vector<double>& v, int k) {
  std::vector<double> r;
  for (int i = 0; i < k; ++i) r.insert(r.end(), v.begin(), v.end());
  return r;
}

// |a - ref| <= rtol |ref| (doctest's Approx adds an absolute 1 to its scale, which says nothing
// about the tiny values here); a reference below 1e-290, which double cannot hold to rtol, needs
// |a| below 1e-290 too.
bool close_relative(double a, long double ref, double rtol) {
  if (std::fabs(ref) < 1e-290L) return std::fabs(a) < 1e-290;
  return std::fabs(static_cast<long double>(a) - ref) <= rtol * std::fabs(ref);
}

template <class Run>
void check_thread_invariance(Run run) {
  const int saved = num_threads();
  set_num_threads(1);
  const auto ref = run();
  for (int threads : testing::thread_counts({2, 3, 8})) {
    CAPTURE(threads);
    set_num_threads(threads);
    const auto r = run();
    CHECK(std::memcmp(&r.value, &ref.value, sizeof(double)) == 0);
    CHECK(same_bits(r.grad, ref.grad));
  }
  set_num_threads(saved);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// sigmoid_focal
// ---------------------------------------------------------------------------------------------

TEST_CASE("sigmoid_focal: gradcheck, defaults, 1D/2D/3D spatial, C = 1, 2, 5") {
  for (const Shape& s : {Shape{2, 1, 37}, Shape{2, 2, 5, 4}, Shape{2, 5, 3, 4},
                         Shape{2, 2, 3, 4, 3}, Shape{1, 1, 1, 1}}) {
    CAPTURE(s);
    check_sigmoid_reductions(testing::randn<double>(s, 1, 3.0), testing::mask<double>(s, 2), {});
  }
}

TEST_CASE("sigmoid_focal: gradcheck, gamma 0, 0.5, 1, 1.7, 2, 3.5 with and without alpha") {
  const Shape s{2, 3, 5, 4};
  const auto x = testing::randn<double>(s, 3, 3.0);
  const auto z = testing::mask<double>(s, 4);
  for (double gamma : {0.0, 0.5, 1.0, 1.7, 2.0, 3.5})
    for (double alpha : {0.25, 0.9, -1.0}) {
      CAPTURE(gamma);
      CAPTURE(alpha);
      SigmoidFocalOptions<double> o;
      o.gamma = gamma;
      o.alpha = alpha;
      check_sigmoid_reductions(x, z, o);
    }
}

TEST_CASE("sigmoid_focal: gradcheck, soft targets") {
  const Shape s{2, 2, 6, 5};
  const auto x = testing::randn<double>(s, 5, 2.0);
  const auto z = testing::uniform<double>(s, 6, 0, 1);
  for (double gamma : {0.5, 2.0, 2.5}) {
    CAPTURE(gamma);
    SigmoidFocalOptions<double> o;
    o.gamma = gamma;
    check_sigmoid_reductions(x, z, o);
  }
}

TEST_CASE("sigmoid_focal: gradcheck, weight in every broadcast pattern") {
  const Shape s{2, 3, 5, 4};
  const auto x = testing::randn<double>(s, 7, 3.0);
  const auto z = testing::mask<double>(s, 8);
  for (const Shape& ws : {Shape{2, 3, 5, 4}, Shape{2, 1, 5, 4}, Shape{3, 1, 1}, Shape{1},
                          Shape{5, 1}, Shape{2, 3, 1, 4}}) {
    CAPTURE(ws);
    SigmoidFocalOptions<double> o;
    o.weight = testing::uniform<double>(ws, 9, 0.1, 2.0);
    o.gamma = 1.5;
    check_sigmoid_reductions(x, z, o);
  }
}

TEST_CASE("sigmoid_focal: gradcheck across chunk boundaries (sampled)") {
  const Shape s{1, 2, 130, 130};  // a plane of 16900 elements spans two chunks
  SigmoidFocalOptions<double> o;
  o.weight = testing::uniform<double>({1, 1, 130, 130}, 10, 0.1, 2.0);
  o.gamma = 0.7;
  check_sigmoid_reductions(testing::randn<double>(s, 11, 3.0), testing::mask<double>(s, 12), o, 300,
                           1e-3);
}

TEST_CASE("sigmoid_focal: values match torchvision's formula, term by term") {
  const Shape s{2, 3, 7, 3};
  const auto x = testing::randn<double>(s, 13, 3.0);
  const auto z = testing::uniform<double>(s, 14, 0, 1);
  for (double gamma : {0.0, 0.5, 2.0, 2.7})
    for (double alpha : {0.25, -1.0}) {
      CAPTURE(gamma);
      CAPTURE(alpha);
      SigmoidFocalOptions<double> o;
      o.gamma = gamma;
      o.alpha = alpha;
      o.weight = testing::uniform<double>({3, 1, 1}, 15, 0.1, 2.0);
      o.reduction = Reduction::none;
      const auto l = sigmoid_focal(x, z, o);
      double sum = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double ref = o.weight[(i / 21) % 3] * sigmoid_direct(x[i], z[i], alpha, gamma);
        CHECK(l[i] == doctest::Approx(ref).epsilon(1e-11));
        sum += ref;
      }
      o.reduction = Reduction::sum;
      CHECK(sigmoid_focal(x, z, o)[0] == doctest::Approx(sum).epsilon(1e-12));
      o.reduction = Reduction::mean;
      CHECK(sigmoid_focal(x, z, o)[0] == doctest::Approx(sum / x.numel()).epsilon(1e-12));
    }
}

TEST_CASE("sigmoid_focal: the defaults are alpha 0.25, gamma 2, mean") {
  const Shape s{2, 1, 4, 5};
  const auto x = testing::randn<double>(s, 16, 2.0);
  const auto z = testing::mask<double>(s, 17);
  double sum = 0;
  for (int64_t i = 0; i < x.numel(); ++i) sum += sigmoid_direct(x[i], z[i], 0.25, 2.0);
  CHECK(sigmoid_focal(x, z)[0] == doctest::Approx(sum / x.numel()).epsilon(1e-12));
}

TEST_CASE("sigmoid_focal: gamma 0 is bce_with_logits weighted by w a_t") {
  const Shape s{2, 3, 6, 5};
  const auto w = testing::uniform<double>(s, 18, 0.1, 2.0);
  for (const bool soft : {false, true}) {
    const auto x = testing::randn<double>(s, 19, 4.0);
    const auto z = soft ? testing::uniform<double>(s, 20, 0, 1) : testing::mask<double>(s, 20);
    CAPTURE(soft);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      CAPTURE(std::string(reduction_name(r)));
      // The same formula (pw::sigmoid_focal at gamma 0 is the BCE term, with no power of q);
      // the compiler may fuse a multiply-add differently in the two loops, hence 2e-16.
      SigmoidFocalOptions<double> f;
      f.gamma = 0;
      f.reduction = r;
      BceWithLogitsOptions<double> b;
      b.reduction = r;
      const auto go =
          r == Reduction::none ? testing::randn<double>(s, 21) : Tensor<double>::full({}, 0.75);
      for (double alpha : {-1.0, 0.3}) {
        CAPTURE(alpha);
        f.alpha = alpha;
        f.weight = w;
        auto wa = w.clone();  // w a_t
        if (alpha >= 0)
          for (int64_t i = 0; i < wa.numel(); ++i)
            wa[i] = w[i] * (alpha * z[i] + (1 - alpha) * (1 - z[i]));
        b.weight = wa;
        const auto lf = sigmoid_focal(x, z, f), lb = bce_with_logits(x, z, b);
        const auto gf = sigmoid_focal_backward(x, z, go, f);
        const auto gb = bce_with_logits_backward(x, z, go, b);
        const double rtol = alpha < 0 ? 2.3e-16 : 1e-15;  // + the rounding of a_t
        for (int64_t i = 0; i < lf.numel(); ++i) CHECK(close_relative(lf[i], lb[i], rtol));
        for (int64_t i = 0; i < gf.numel(); ++i) CHECK(close_relative(gf[i], gb[i], rtol));
      }
    }
  }
}

TEST_CASE("sigmoid_focal: logits of +-1e4 give a finite value and gradient, float and double") {
  const std::vector<double> base_x = {-1e4, -1e4, -1e4, -100, 0, 100, 1e4, 1e4, 1e4};
  const std::vector<double> base_z = {0, 1, 0.5, 1, 0.5, 0, 0, 1, 0.5};
  const int64_t k = static_cast<int64_t>(base_x.size());
  const std::vector<double> xs = repeat(base_x, 5), zs = repeat(base_z, 5);
  const Shape s{1, 1, static_cast<int64_t>(xs.size())};
  for (double gamma : {0.0, 0.3, 1.0, 2.0, 2.5}) {
    CAPTURE(gamma);
    SigmoidFocalOptions<double> o;
    o.gamma = gamma;
    o.reduction = Reduction::none;
    const auto x = Tensor<double>::from(xs, s), z = Tensor<double>::from(zs, s);
    const auto l = sigmoid_focal(x, z, o);
    const auto g = sigmoid_focal_backward(x, z, Tensor<double>::full(s, 1.0), o);
    SigmoidFocalOptions<float> of;
    of.gamma = gamma;
    of.reduction = Reduction::none;
    const auto xf = testing::cast<float>(x), zf = testing::cast<float>(z);
    const auto lf = sigmoid_focal(xf, zf, of);
    const auto gf = sigmoid_focal_backward(xf, zf, Tensor<float>::full(s, 1.f), of);
    for (int64_t i = 0; i < s.numel(); ++i) {
      CAPTURE(i);
      CAPTURE(xs[static_cast<size_t>(i)]);
      CAPTURE(zs[static_cast<size_t>(i)]);
      CHECK(std::isfinite(l[i]));
      CHECK(std::isfinite(g[i]));
      CHECK(std::isfinite(lf[i]));
      CHECK(std::isfinite(gf[i]));
      if (i % k == 1) {
        // Confidently wrong (z = 1, x = -1e4): q = 1, l = alpha ce = 0.25e4, dl/dx = -alpha.
        CHECK(l[i] == doctest::Approx(0.25e4));
        CHECK(g[i] == doctest::Approx(-0.25));
        CHECK(lf[i] == doctest::Approx(0.25e4));
        CHECK(gf[i] == doctest::Approx(-0.25));
      } else if (i % k == 0 || i % k == 7) {
        // Confidently right: 0, or the smallest subnormal an exp may leave.
        CHECK(std::fabs(l[i]) < 1e-300);
        CHECK(std::fabs(g[i]) < 1e-300);
        CHECK(std::fabs(lf[i]) < 1e-37f);
        CHECK(std::fabs(gf[i]) < 1e-37f);
      }
    }
  }
}

TEST_CASE("sigmoid_focal: gamma in (0, 1) with confident correct predictions") {
  // q = 1 - p_t -> 0 where (1 - p_t)^(gamma - 1) is infinite: the gradient must stay finite and
  // accurate. Reference: the textbook form in long double, where q is not yet 0.
  const std::vector<double> xs = repeat({8, 20, 35, 60, -8, -20, -35, -60, 700, -700}, 4);
  for (double gamma : {0.1, 0.5, 0.9}) {
    CAPTURE(gamma);
    std::vector<double> zs;
    for (double v : xs) zs.push_back(v > 0 ? 1.0 : 0.0);
    const Shape s{1, 1, static_cast<int64_t>(xs.size())};
    const auto x = Tensor<double>::from(xs, s), z = Tensor<double>::from(zs, s);
    SigmoidFocalOptions<double> o;
    o.gamma = gamma;
    o.alpha = -1;
    o.reduction = Reduction::none;
    const auto l = sigmoid_focal(x, z, o);
    const auto g = sigmoid_focal_backward(x, z, Tensor<double>::full(s, 1.0), o);
    for (int64_t i = 0; i < s.numel(); ++i) {
      CAPTURE(xs[static_cast<size_t>(i)]);
      long double v = 0, d = 0;
      sigmoid_long_double(xs[static_cast<size_t>(i)], zs[static_cast<size_t>(i)], gamma, v, d);
      CHECK(std::isfinite(g[i]));
      CHECK(close_relative(l[i], v, 1e-12));
      CHECK(close_relative(g[i], d, 1e-12));
    }
    // float: finite everywhere, the same sign as double, accurate where float can hold it.
    SigmoidFocalOptions<float> of;
    of.gamma = gamma;
    of.alpha = -1;
    of.reduction = Reduction::none;
    const auto xf = testing::cast<float>(x), zf = testing::cast<float>(z);
    const auto gf = sigmoid_focal_backward(xf, zf, Tensor<float>::full(s, 1.f), of);
    for (int64_t i = 0; i < s.numel(); ++i) {
      CAPTURE(xs[static_cast<size_t>(i)]);
      CHECK(std::isfinite(gf[i]));
      if (std::fabs(xs[static_cast<size_t>(i)]) <= 35) CHECK(close_relative(gf[i], g[i], 1e-5));
    }
  }
}

TEST_CASE("sigmoid_focal: NaN propagates to its element only") {
  auto x = testing::randn<double>({1, 1, 40}, 22);
  x[21] = NAN;
  const auto z = testing::mask<double>({1, 1, 40}, 23);
  const auto vg = sigmoid_focal_value_and_grad(x, z);
  CHECK(std::isnan(vg.value));
  CHECK(std::isnan(vg.grad[21]));
  CHECK(std::isfinite(vg.grad[20]));
}

TEST_CASE("sigmoid_focal: in place and caller buffers, float") {
  const Shape s{2, 1, 9, 7};
  const auto x = testing::randn<float>(s, 24, 3.0), z = testing::mask<float>(s, 25);
  SigmoidFocalOptions<float> o;
  o.gamma = 0.5;
  const auto ref = sigmoid_focal_value_and_grad(x, z, o);
  auto inplace = x.clone();
  const double v = sigmoid_focal_value_and_grad(inplace, z, inplace, o);
  CHECK(v == ref.value);
  CHECK(same_bits(inplace, ref.grad));
  CHECK(ref.value == doctest::Approx(static_cast<double>(sigmoid_focal(x, z, o)[0])).epsilon(1e-6));
}

TEST_CASE("sigmoid_focal: bit-identical across thread counts") {
  const Shape s{3, 2, 200, 210};  // 3 chunks per plane
  SigmoidFocalOptions<float> o;
  o.weight = testing::uniform<float>({3, 1, 200, 210}, 26, 0.1, 2.0);
  const auto x = testing::randn<float>(s, 27, 3.0), z = testing::mask<float>(s, 28);
  for (double gamma : {2.0, 0.5}) {
    o.gamma = gamma;
    check_thread_invariance([&] { return sigmoid_focal_value_and_grad(x, z, o); });
  }
}

TEST_CASE("sigmoid_focal: bad input names the function, argument and values") {
  const auto x = testing::randn<double>({2, 3, 4, 4}, 29);
  const auto z = testing::mask<double>({2, 3, 4, 4}, 30);
  CHECK_THROWS_WITH_AS(sigmoid_focal(x, testing::mask<double>({2, 3, 4, 3}, 1)),
                       "sigmoid_focal: target (2,3,4,3) does not match logits (2,3,4,4)", Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal(Tensor<double>::zeros({2, 3}), Tensor<double>::zeros({2, 3})),
                       "sigmoid_focal: logits (2,3) has rank 2; expected (N, C, spatial...) "
                       "with 1 to 3 spatial axes",
                       Error);
  SigmoidFocalOptions<double> o;
  o.gamma = -0.5;
  CHECK_THROWS_WITH_AS(sigmoid_focal(x, z, o),
                       "sigmoid_focal: options.gamma is -0.5; it must be finite and >= 0", Error);
  o.gamma = NAN;
  CHECK_THROWS_WITH_AS(sigmoid_focal(x, z, o),
                       "sigmoid_focal: options.gamma is nan; it must be finite and >= 0", Error);
  o.gamma = INFINITY;
  CHECK_THROWS_AS(sigmoid_focal_value_and_grad(x, z, o), Error);
  // Finite in double but not in float, in which float logits raise to it (it gave NaN).
  const auto xf = testing::randn<float>({2, 3, 4, 4}, 29);
  const auto zf = testing::mask<float>({2, 3, 4, 4}, 30);
  SigmoidFocalOptions<float> huge;
  huge.gamma = 1e39;
  CHECK_THROWS_WITH_AS(
      sigmoid_focal(xf, zf, huge),
      "sigmoid_focal: options.gamma is 1e+39, more than float logits hold (3.4028235e+38)", Error);
  SoftmaxFocalOptions<float> huge_softmax;
  huge_softmax.gamma = 1e39;
  CHECK_THROWS_WITH_AS(
      softmax_focal_value_and_grad(xf, testing::labels<int64_t>(Shape{2, 4, 4}, 3, 31),
                                   huge_softmax),
      "softmax_focal_value_and_grad: options.gamma is 1e+39, more than float logits hold "
      "(3.4028235e+38)",
      Error);
  huge.gamma = 1e38;  // finite in float: taken
  CHECK(std::isfinite(sigmoid_focal(xf, zf, huge)[0]));
  o.gamma = 2;
  o.alpha = 1.5;
  CHECK_THROWS_WITH_AS(
      sigmoid_focal(x, z, o),
      "sigmoid_focal: options.alpha is 1.5; it must be in [0, 1], or negative for no alpha factor",
      Error);
  o.alpha = NAN;
  CHECK_THROWS_AS(sigmoid_focal_backward(x, z, Tensor<double>::full({}, 1.0), o), Error);
  o.alpha = 0.25;
  o.weight = Tensor<double>::zeros({3, 4, 1, 1});
  CHECK_THROWS_WITH_AS(sigmoid_focal(x, z, o),
                       "sigmoid_focal: options.weight (3,4,1,1) does not broadcast to the input "
                       "(2,3,4,4) (axis 1: 4 vs 3)",
                       Error);
  o.weight = {};
  CHECK_THROWS_WITH_AS(sigmoid_focal_backward(x, z, Tensor<double>::zeros({2}), o),
                       "sigmoid_focal_backward: grad_out (2) must hold one element for a mean "
                       "or sum reduction",
                       Error);
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(sigmoid_focal_backward(x, z, Tensor<double>::zeros({1}), o),
                       "sigmoid_focal_backward: grad_out (1) does not match the loss values "
                       "(2,3,4,4) of reduction none",
                       Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal_value_and_grad(x, z, o),
                       "sigmoid_focal_value_and_grad: reduction none has no single value; use "
                       "sigmoid_focal and sigmoid_focal_backward",
                       Error);
}

// ---------------------------------------------------------------------------------------------
// softmax_focal
// ---------------------------------------------------------------------------------------------

TEST_CASE("softmax_focal: gradcheck, defaults, 1D/2D/3D spatial, C = 1, 2, 5, 21") {
  for (const Shape& s : {Shape{3, 4, 7}, Shape{2, 5, 4, 3}, Shape{2, 3, 2, 3, 4}, Shape{2, 1, 6},
                         Shape{2, 2, 5, 3}, Shape{1, 21, 3, 2}, Shape{1, 5, 1, 1}}) {
    CAPTURE(s);
    check_softmax_reductions(testing::randn<double>(s, 31, 2.0),
                             labels<int64_t>(s.without(1), s[1], 32), {});
  }
}

TEST_CASE("softmax_focal: gradcheck, gamma 0, 0.5, 1, 1.3, 2, 3 with and without alpha") {
  const Shape s{2, 5, 4, 3};
  const auto x = testing::randn<double>(s, 33, 2.5);
  const auto y = labels<int64_t>(s.without(1), 5, 34);
  for (double gamma : {0.0, 0.5, 1.0, 1.3, 2.0, 3.0})
    for (bool alpha : {false, true}) {
      CAPTURE(gamma);
      CAPTURE(alpha);
      SoftmaxFocalOptions<double> o;
      o.gamma = gamma;
      if (alpha) o.alpha = Tensor<double>::from({0.25, 1.5, 0.75, 2.0, 0.5}, {5});
      check_softmax_reductions(x, y, o);
    }
}

// (N, C, 1) logits, one pixel per image, are walked as one run of pixels, as cross_entropy's
// are (backends/cpu/fold_images.hpp): every form equals the same pixels laid out as one image
// (the same bits at S = 1), for each gamma kind, alpha and ignore_index; and the gradient holds.
TEST_CASE("softmax_focal: images smaller than a packet equal one image of N*S pixels") {
  const auto check = [](auto zero) {
    using T = decltype(zero);
    for (const Shape& s :
         {Shape{37, 5, 1}, Shape{300, 21, 1}, Shape{19, 3, 2}, Shape{9, 4, 7}, Shape{5, 2, 15},
          Shape{23, 1, 1}, Shape{1000, 21, 1}, Shape{200, 150, 1}}) {
      CAPTURE(s);
      const int64_t C = s[1];
      const auto x = testing::randn<T>(s, 71, 3.0);
      const auto y = labels<int64_t>(s.without(1), C, 72, 0.2, 255);
      for (double gamma : {2.0, 0.0, 1.5}) {
        CAPTURE(gamma);
        SoftmaxFocalOptions<T> o;
        o.gamma = gamma;
        o.ignore_index = 255;
        SEGLOSS_CHECK_FOLDED(softmax_focal, x, y, o);
        std::vector<T> alpha(static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c)
          alpha[c] = static_cast<T>(0.25 * static_cast<double>(c % 5 + 1));
        o.alpha = Tensor<T>::from(alpha, {C});
        SEGLOSS_CHECK_FOLDED(softmax_focal, x, labels<int32_t>(s.without(1), C, 73), o);
      }
    }
  };
  check(0.0f);
  check(0.0);
  for (double gamma : {2.0, 0.5}) {
    SoftmaxFocalOptions<double> o;
    o.gamma = gamma;
    o.ignore_index = 255;
    o.alpha = Tensor<double>::from({0.25, 1.5, 0.75, 2.0}, {4});
    const Shape s{21, 4, 1};
    check_softmax_reductions(testing::randn<double>(s, 74, 2.0),
                             labels<int64_t>(s.without(1), 4, 75, 0.2, 255), o);
  }
}

TEST_CASE("softmax_focal: gradcheck, ignore_index -100, 255 and 0 (a real class), int32 labels") {
  const Shape s{2, 5, 4, 3};
  const auto x = testing::randn<double>(s, 35, 2.0);
  SoftmaxFocalOptions<double> o;
  o.alpha = Tensor<double>::from({0.25, 1.5, 0.75, 2.0, 0.5}, {5});
  o.gamma = 0.5;
  check_softmax_reductions(x, labels<int64_t>(s.without(1), 5, 36, 0.3), o);
  o.ignore_index = 255;
  check_softmax_reductions(x, labels<int32_t>(s.without(1), 5, 37, 0.3, 255), o);
  o.ignore_index = 0;
  o.gamma = 2;
  check_softmax_reductions(x, labels<int32_t>(s.without(1), 5, 38), o);
}

TEST_CASE("softmax_focal: gradcheck across chunk boundaries (sampled)") {
  const Shape s{1, 3, 90, 90};  // 8100 pixels, chunks of 5440
  SoftmaxFocalOptions<double> o;
  o.gamma = 0.7;
  o.alpha = Tensor<double>::from({0.5, 1.0, 2.0}, {3});
  check_softmax_reductions(testing::randn<double>(s, 39, 2.0),
                           labels<int64_t>(s.without(1), 3, 40, 0.1), o, 300, 1e-3);
}

TEST_CASE("softmax_focal: values match a direct softmax, every option") {
  const Shape s{2, 5, 4, 3};
  const auto x = testing::randn<double>(s, 41, 2.0);
  const auto y = labels<int64_t>(s.without(1), 5, 42, 0.25);
  for (double gamma : {0.0, 0.5, 2.0, 2.5})
    for (bool alpha : {false, true}) {
      CAPTURE(gamma);
      CAPTURE(alpha);
      SoftmaxFocalOptions<double> o;
      o.gamma = gamma;
      if (alpha) o.alpha = Tensor<double>::from({0.25, 1.5, 0.75, 2.0, 0.5}, {5});
      std::vector<double> ref;
      o.reduction = Reduction::none;
      softmax_direct(x, y, o, &ref);
      const auto l = softmax_focal(x, y, o);
      REQUIRE(l.shape() == s.without(1));
      for (int64_t i = 0; i < l.numel(); ++i)
        CHECK(l[i] == doctest::Approx(ref[static_cast<size_t>(i)]).epsilon(1e-12));
      for (Reduction r : {Reduction::mean, Reduction::sum}) {
        o.reduction = r;
        CHECK(softmax_focal(x, y, o)[0] ==
              doctest::Approx(softmax_direct(x, y, o, nullptr)).epsilon(1e-12));
      }
    }
}

TEST_CASE("softmax_focal: the defaults are gamma 2, no alpha, ignore_index -100, mean") {
  const Shape s{2, 4, 3, 3};
  const auto x = testing::randn<double>(s, 43, 2.0);
  const auto y = labels<int64_t>(s.without(1), 4, 44, 0.2);
  SoftmaxFocalOptions<double> o;
  o.gamma = 2;
  CHECK(softmax_focal(x, y)[0] == doctest::Approx(softmax_direct(x, y, o, nullptr)).epsilon(1e-12));
}

TEST_CASE("softmax_focal: gamma 0 is cross_entropy") {
  const Shape s{2, 5, 4, 3};
  const auto x = testing::randn<double>(s, 45, 3.0);
  const auto y = labels<int64_t>(s.without(1), 5, 46, 0.2);
  const auto w = Tensor<double>::from({0.25, 1.5, 0.75, 2.0, 0.5}, {5});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (bool alpha : {false, true}) {
      CAPTURE(std::string(reduction_name(r)));
      CAPTURE(alpha);
      // alpha = class weight: equal for sum and none; cross_entropy's mean is weighted.
      if (alpha && r == Reduction::mean) continue;
      SoftmaxFocalOptions<double> f;
      f.gamma = 0;
      f.reduction = r;
      CrossEntropyOptions<double> c;
      c.reduction = r;
      if (alpha) f.alpha = c.weight = w;
      const auto go = r == Reduction::none ? testing::randn<double>(s.without(1), 47)
                                           : Tensor<double>::full({}, -1.25);
      const auto lf = softmax_focal(x, y, f), lc = cross_entropy(x, y, c);
      const auto gf = softmax_focal_backward(x, y, go, f);
      const auto gc = cross_entropy_backward(x, y, go, c);
      REQUIRE(lf.shape() == lc.shape());
      for (int64_t i = 0; i < lf.numel(); ++i)
        CHECK(lf[i] == doctest::Approx(lc[i]).epsilon(1e-13));
      for (int64_t i = 0; i < gf.numel(); ++i)
        CHECK(gf[i] == doctest::Approx(gc[i]).epsilon(1e-13).scale(1e-3));
    }
}

TEST_CASE("softmax_focal: every pixel ignored gives 0 and a zero gradient") {
  const Shape s{2, 3, 4, 5};
  auto x = testing::randn<double>(s, 48, 2.0);
  x[7] = NAN;  // an ignored pixel's NaN must not leak
  x[13] = INFINITY;
  const auto y = Tensor<int64_t>::full(s.without(1), -100);
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    SoftmaxFocalOptions<double> o;
    o.reduction = r;
    o.gamma = 0.5;
    const auto vg = softmax_focal_value_and_grad(x, y, o);
    CHECK(vg.value == 0.0);
    CHECK(softmax_focal(x, y, o)[0] == 0.0);
    for (int64_t i = 0; i < vg.grad.numel(); ++i) CHECK(vg.grad[i] == 0.0);
  }
  SoftmaxFocalOptions<double> o;
  o.reduction = Reduction::none;
  const auto l = softmax_focal(x, y, o);
  const auto g = softmax_focal_backward(x, y, Tensor<double>::full(s.without(1), NAN), o);
  for (int64_t i = 0; i < l.numel(); ++i) CHECK(l[i] == 0.0);
  for (int64_t i = 0; i < g.numel(); ++i) CHECK(g[i] == 0.0);
}

TEST_CASE("softmax_focal: an ignored pixel counts nowhere, even with non-finite logits") {
  const Shape s{1, 3, 1, 20};
  auto x = testing::randn<float>(s, 49, 2.0);
  auto y = labels<int32_t>(s.without(1), 3, 50);
  y[4] = -100;
  y[17] = -100;
  x[4] = NAN;              // class 0 of pixel 4
  x[20 + 17] = -INFINITY;  // class 1 of pixel 17
  SoftmaxFocalOptions<float> o;
  const auto vg = softmax_focal_value_and_grad(x, y, o);
  CHECK(std::isfinite(vg.value));
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(vg.grad[c * 20 + 4] == 0.f);
    CHECK(vg.grad[c * 20 + 17] == 0.f);
  }
  // The mean divides by the 18 pixels that count.
  o.reduction = Reduction::sum;
  CHECK(vg.value == doctest::Approx(softmax_focal(x, y, o)[0] / 18.0).epsilon(1e-6));
}

TEST_CASE("softmax_focal: logits of +-1e4 give a finite value and gradient, float and double") {
  // Per group of 4 pixels: 0: the label is the max by 2e4; 1: the label is the min by 2e4;
  // 2: a tie at 1e4; 3: all equal. 5 groups: SIMD packets and a scalar tail.
  const int64_t P = 20;
  const Shape s{1, 3, 1, P};
  const std::vector<double> cls[3] = {
      {1e4, -1e4, 1e4, 0}, {-1e4, 1e4, 1e4, 0}, {-1e4, -1e4, -1e4, 0}};
  auto x = Tensor<double>::empty(s);
  auto y = Tensor<int64_t>::empty({1, 1, P});
  const int64_t label[4] = {0, 0, 1, 2};
  for (int64_t i = 0; i < P; ++i) {
    for (int c = 0; c < 3; ++c) x[c * P + i] = cls[c][static_cast<size_t>(i % 4)];
    y[i] = label[i % 4];
  }
  for (double gamma : {0.0, 0.4, 2.0, 2.5}) {
    CAPTURE(gamma);
    SoftmaxFocalOptions<double> o;
    o.gamma = gamma;
    o.reduction = Reduction::none;
    const auto l = softmax_focal(x, y, o);
    const auto g = softmax_focal_backward(x, y, Tensor<double>::full({1, 1, P}, 1.0), o);
    SoftmaxFocalOptions<float> of;
    of.gamma = gamma;
    of.reduction = Reduction::none;
    const auto xf = testing::cast<float>(x);
    const auto lf = softmax_focal(xf, y, of);
    const auto gf = softmax_focal_backward(xf, y, Tensor<float>::full({1, 1, P}, 1.f), of);
    for (int64_t i = 0; i < g.numel(); ++i) {
      CHECK(std::isfinite(g[i]));
      CHECK(std::isfinite(gf[i]));
    }
    for (int64_t i = 0; i < P; ++i) {
      CAPTURE(i);
      CHECK(std::isfinite(l[i]));
      CHECK(std::isfinite(lf[i]));
      switch (i % 4) {
        case 0:  // p_t = 1: 0, or what a subnormal exp(-2e4) leaves
          CHECK(std::fabs(l[i]) < 1e-300);
          CHECK(std::fabs(lf[i]) < 1e-37f);
          break;
        case 1:  // q = 1: -log p_t = 2e4; the label's entry -(1 + gamma h), h -> 0
          CHECK(l[i] == doctest::Approx(2e4));
          CHECK(lf[i] == doctest::Approx(2e4));
          CHECK(g[i] == doctest::Approx(-1.0));
          CHECK(gf[i] == doctest::Approx(-1.0));
          break;
        case 2:
          CHECK(l[i] == doctest::Approx(std::pow(0.5, gamma) * std::log(2.0)));
          break;
        default:
          CHECK(l[i] == doctest::Approx(std::pow(2.0 / 3.0, gamma) * std::log(3.0)));
      }
    }
  }
}

TEST_CASE("softmax_focal: gamma in (0, 1), confident correct pixels: finite, accurate gradient") {
  // The label's logit leads the others by `lead`: 1 - p_t ~ 2 exp(-lead) down to 0 in float.
  // Reference: the textbook form dl/dx_c = a [gamma (1-p_t)^(gamma-1) p_t (-log p_t) +
  // (1-p_t)^gamma] (p_c - [c = t]) in long double, with 1 - p_t from the other classes.
  const std::vector<double> leads = repeat({5, 15, 30, 60, 100}, 4);  // packets and a tail
  const int64_t P = static_cast<int64_t>(leads.size());
  const Shape s{1, 3, P};
  auto x = Tensor<double>::empty(s);
  for (int64_t i = 0; i < P; ++i) {
    x[0 * P + i] = 0.25;                                  // all exact in float
    x[1 * P + i] = leads[static_cast<size_t>(i)] + 0.25;  // label 1
    x[2 * P + i] = -0.5;
  }
  const auto y = Tensor<int64_t>::full({1, P}, 1);
  for (double gamma : {0.1, 0.5, 0.9}) {
    CAPTURE(gamma);
    SoftmaxFocalOptions<double> o;
    o.gamma = gamma;
    o.reduction = Reduction::none;
    const auto l = softmax_focal(x, y, o);
    const auto g = softmax_focal_backward(x, y, Tensor<double>::full({1, P}, 1.0), o);
    SoftmaxFocalOptions<float> of = {};
    of.gamma = gamma;
    of.reduction = Reduction::none;
    const auto gf =
        softmax_focal_backward(testing::cast<float>(x), y, Tensor<float>::full({1, P}, 1.f), of);
    for (int64_t i = 0; i < P; ++i) {
      CAPTURE(leads[static_cast<size_t>(i)]);
      long double e[3], sum = 0;
      for (int c = 0; c < 3; ++c) sum += e[c] = std::exp(static_cast<long double>(x[c * P + i]));
      const long double q = (e[0] + e[2]) / sum, p_t = e[1] / sum;
      const long double nll = std::log1p((e[0] + e[2]) / e[1]);
      const long double gm = gamma;
      const long double value = std::pow(q, gm) * nll;
      const long double k = gm * std::pow(q, gm - 1) * p_t * nll + std::pow(q, gm);
      CHECK(close_relative(l[i], value, 1e-12));
      for (int c = 0; c < 3; ++c) {
        CAPTURE(c);
        const long double ref = k * (c == 1 ? -q : e[c] / sum);
        CHECK(std::isfinite(g[c * P + i]));
        CHECK(std::isfinite(gf[c * P + i]));
        CHECK(close_relative(g[c * P + i], ref, 1e-12));
        if (leads[static_cast<size_t>(i)] <= 30) CHECK(close_relative(gf[c * P + i], ref, 1e-5));
      }
    }
  }
}

TEST_CASE("softmax_focal: int32 and int64 labels give the same bits") {
  const Shape s{2, 4, 9, 11};
  const auto x = testing::randn<float>(s, 51, 2.0);
  const auto y64 = labels<int64_t>(s.without(1), 4, 52, 0.1);
  const auto y32 = testing::cast<int32_t>(y64);
  SoftmaxFocalOptions<float> o;
  o.gamma = 1.5;
  const auto a = softmax_focal_value_and_grad(x, y64, o);
  const auto b = softmax_focal_value_and_grad(x, y32, o);
  CHECK(a.value == b.value);
  CHECK(same_bits(a.grad, b.grad));
}

TEST_CASE("softmax_focal: bit-identical across thread counts") {
  const Shape s{2, 5, 150, 130};  // several chunks per image
  const auto x = testing::randn<float>(s, 53, 3.0);
  auto y = Tensor<int64_t>::empty({2, 150, 130});
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = i % 7 == 0 ? -100 : (i * 31) % 5;
  SoftmaxFocalOptions<float> o;
  o.alpha = Tensor<float>::from({0.5f, 2.f, 1.f, 3.f, 0.25f}, {5});
  for (double gamma : {2.0, 0.5}) {
    o.gamma = gamma;
    check_thread_invariance([&] { return softmax_focal_value_and_grad(x, y, o); });
  }
}

TEST_CASE("softmax_focal: bad input names the function, argument and values") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 54);
  auto y = labels<int64_t>(s.without(1), 3, 55);
  CHECK_THROWS_WITH_AS(softmax_focal(x, labels<int64_t>({2, 4, 4}, 3, 1)),
                       "softmax_focal: target (2,4,4) does not match logits (2,3,4,5) without "
                       "the class axis",
                       Error);
  y[1 * 20 + 2 * 5 + 3] = 3;
  CHECK_THROWS_WITH_AS(softmax_focal(x, y),
                       "softmax_focal: target has label 3 at (1,2,3), outside [0, 3) and not "
                       "ignore_index -100",
                       Error);
  y[1 * 20 + 2 * 5 + 3] = -1;
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, y),
                       "softmax_focal_value_and_grad: target has label -1 at (1,2,3), outside "
                       "[0, 3) and not ignore_index -100",
                       Error);
  y[1 * 20 + 2 * 5 + 3] = 0;
  SoftmaxFocalOptions<double> o;
  o.alpha = Tensor<double>::from({1.0, 2.0}, {2});
  CHECK_THROWS_WITH_AS(
      softmax_focal(x, y, o),
      "softmax_focal: options.alpha (2) has 2 values; expected one per class (3) of "
      "logits (2,3,4,5)",
      Error);
  o.alpha = {};
  o.gamma = -1;
  CHECK_THROWS_WITH_AS(softmax_focal(x, y, o),
                       "softmax_focal: options.gamma is -1; it must be finite and >= 0", Error);
  o.gamma = NAN;
  CHECK_THROWS_AS(softmax_focal_backward(x, y, Tensor<double>::full({}, 1.0), o), Error);
  o.gamma = 2;
  CHECK_THROWS_WITH_AS(softmax_focal_backward(x, y, Tensor<double>::zeros({2}), o),
                       "softmax_focal_backward: grad_out (2) must hold one element for a mean "
                       "or sum reduction",
                       Error);
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(softmax_focal_backward(x, y, Tensor<double>::zeros({1}), o),
                       "softmax_focal_backward: grad_out (1) does not match the loss values "
                       "(2,4,5) of reduction none",
                       Error);
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, y, o),
                       "softmax_focal_value_and_grad: reduction none has no single value; use "
                       "softmax_focal and softmax_focal_backward",
                       Error);
  CHECK_THROWS_WITH_AS(
      softmax_focal(Tensor<double>::zeros({0, 3, 4}), Tensor<int64_t>::zeros({0, 4})),
      "softmax_focal: logits (0,3,4) is empty (a zero extent); an empty batch has no loss", Error);
}
