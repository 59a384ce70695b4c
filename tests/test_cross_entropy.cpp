// cross_entropy: gradients against finite differences for every option that changes the math,
// values against a direct log-softmax computation, the label policies, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "fold_check.hpp"
#include "lead_check.hpp"
#include "loss_check.hpp"
#include "stored_check.hpp"

using namespace segloss;
using testing::check_loss_gradients;
using testing::labels;

namespace {

// Softmax probabilities over the class axis of random logits.
Tensor<double> probabilities(const Shape& s, uint64_t seed) {
  auto q = testing::randn<double>(s, seed, 1.5);
  const int64_t n = s[0], c = s[1], px = s.numel_from(2);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < px; ++j) {
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(q[(i * c + k) * px + j]);
      for (int64_t k = 0; k < c; ++k)
        q[(i * c + k) * px + j] = std::exp(q[(i * c + k) * px + j]) / z;
    }
  return q;
}

template <class L>
void check_all_reductions(const Tensor<double>& x, const Tensor<L>& t,
                          CrossEntropyOptions<double> o) {
  testing::check_all_reductions(
      x, t, o, [](auto&&... a) { return cross_entropy(a...); },
      [](auto&&... a) { return cross_entropy_backward(a...); },
      [](auto&&... a) { return cross_entropy_value_and_grad(a...); });
}

// The loss straight from a log-softmax, for hard labels (PyTorch's definition).
double direct(const Tensor<double>& x, const Tensor<int64_t>& y,
              const CrossEntropyOptions<double>& o) {
  const int64_t n = x.size(0), c = x.size(1), px = x.shape().numel_from(2);
  double sum = 0, div = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < px; ++j) {
      const int64_t label = y[i * px + j];
      if (label == o.ignore_index || (o.ignore_negative && label < 0)) continue;
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(x[(i * c + k) * px + j]);
      const auto logp = [&](int64_t k) { return x[(i * c + k) * px + j] - std::log(z); };
      const auto w = [&](int64_t k) { return o.weight.defined() ? o.weight[k] : 1.0; };
      double smooth = 0;
      for (int64_t k = 0; k < c; ++k) smooth += -w(k) * logp(k);
      const double eps = o.label_smoothing;
      sum += (1 - eps) * -w(label) * logp(label) + eps / c * smooth;
      div += o.mean_over == MeanOver::weights ? w(label) : 1.0;
    }
  return o.reduction == Reduction::sum ? sum : sum / div;
}

}  // namespace

TEST_CASE("cross_entropy: gradcheck, hard labels, 1D/2D/3D, C = 1, 2, 5, 21, 150") {
  for (const Shape& s : {Shape{2, 5, 4, 3}, Shape{2, 3, 2, 3, 4}, Shape{3, 4, 7}, Shape{2, 1, 6},
                         Shape{2, 2, 5, 3}, Shape{1, 21, 3, 2}, Shape{1, 150, 2, 2}}) {
    CAPTURE(s);
    check_all_reductions(testing::randn<double>(s, 1, 2.0), labels<int64_t>(s.without(1), s[1], 2),
                         {});
  }
}

TEST_CASE("cross_entropy: gradcheck, weight, ignore_index, label smoothing and their mix") {
  const Shape s{2, 5, 4, 3};
  const auto x = testing::randn<double>(s, 3, 2.0);
  const auto y = labels<int64_t>(s.without(1), 5, 4, 0.25);
  const auto y255 = labels<int32_t>(s.without(1), 5, 4, 0.25, 255);
  CrossEntropyOptions<double> o;
  check_all_reductions(x, y, o);
  o.weight = Tensor<double>::from({0.5, 2.0, 1.0, 3.0, 0.25}, {5});
  check_all_reductions(x, y, o);
  o.label_smoothing = 0.2;
  check_all_reductions(x, y, o);
  o.weight = {};
  check_all_reductions(x, y, o);
  o.ignore_index = 255;
  check_all_reductions(x, y255, o);
}

TEST_CASE("cross_entropy: gradcheck, probability targets with weight and smoothing") {
  const Shape s{2, 4, 3, 5};
  const auto x = testing::randn<double>(s, 5, 2.0);
  const auto q = probabilities(s, 6);
  CrossEntropyOptions<double> o;
  check_all_reductions(x, q, o);
  o.weight = Tensor<double>::from({0.5, 2.0, 1.0, 3.0}, {4});
  o.label_smoothing = 0.1;
  check_all_reductions(x, q, o);
}

TEST_CASE("cross_entropy: gradcheck, the pytorch-fcn preset") {
  const Shape s{2, 3, 4, 4};
  auto o = CrossEntropyOptions<double>::pytorch_fcn();
  o.weight = Tensor<double>::from({0.5, 2.0, 1.0}, {3});
  check_all_reductions(testing::randn<double>(s, 7, 2.0),
                       labels<int64_t>(s.without(1), 3, 8, 0.3, -1), o);
}

TEST_CASE("cross_entropy: values match a direct log-softmax, every option") {
  const Shape s{2, 5, 3, 4};
  const auto x = testing::randn<double>(s, 9, 3.0);
  const auto y = labels<int64_t>(s.without(1), 5, 10, 0.2);
  for (int variant = 0; variant < 6; ++variant) {
    CAPTURE(variant);
    CrossEntropyOptions<double> o;
    if (variant & 1) o.weight = Tensor<double>::from({0.5, 2.0, 1.0, 3.0, 0.25}, {5});
    if (variant & 2) o.label_smoothing = 0.3;
    if (variant & 4) o.mean_over = MeanOver::valid_pixels;
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
      o.reduction = r;
      CHECK(cross_entropy(x, y, o)[0] == doctest::Approx(direct(x, y, o)).epsilon(1e-12));
    }
  }
}

TEST_CASE("cross_entropy: int32 and int64 labels give the same bits") {
  const Shape s{2, 4, 5, 5};
  const auto x = testing::randn<float>(s, 11, 3.0);
  const auto y64 = labels<int64_t>(s.without(1), 4, 12, 0.1);
  auto y32 = Tensor<int32_t>::empty(y64.shape());
  for (int64_t i = 0; i < y64.numel(); ++i) y32[i] = static_cast<int32_t>(y64[i]);
  const auto a = cross_entropy_value_and_grad(x, y64), b = cross_entropy_value_and_grad(x, y32);
  CHECK(a.value == b.value);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(a.grad[i] == b.grad[i]);
}

TEST_CASE("cross_entropy: every pixel ignored") {
  const Shape s{1, 3, 2, 2};
  const auto x = testing::randn<double>(s, 13);
  const auto y = Tensor<int64_t>::full({1, 2, 2}, -100);
  CrossEntropyOptions<double> o;
  auto vg = cross_entropy_value_and_grad(x, y, o);
  CHECK(vg.value == 0.0);
  for (double g : vg.grad) CHECK(g == 0.0);
  o.all_ignored = AllIgnored::nan;  // PyTorch: NaN loss, zero gradient
  vg = cross_entropy_value_and_grad(x, y, o);
  CHECK(std::isnan(vg.value));
  for (double g : vg.grad) CHECK(g == 0.0);
  o.reduction = Reduction::sum;
  CHECK(cross_entropy(x, y, o)[0] == 0.0);
}

TEST_CASE("cross_entropy: large logits stay finite, and NaN stays in its pixel") {
  // (1, 3, 2): pixel 0 has logits (1e4, -1e4, 0), pixel 1 has (-1e4, 1e4, 0).
  auto x = Tensor<double>::from({1e4, -1e4, -1e4, 1e4, 0, 0}, {1, 3, 2});
  const auto y = Tensor<int64_t>::from({0, 2}, {1, 2});
  const auto vg = cross_entropy_value_and_grad(x, y);
  CHECK(vg.value == doctest::Approx(1e4 / 2));  // pixel 0: 0; pixel 1: 1e4 (PyTorch: 5000)
  for (double g : vg.grad) CHECK(std::isfinite(g));
  x[0] = NAN;
  const auto n = cross_entropy_value_and_grad(x, y);
  CHECK(std::isnan(n.value));
  CHECK(std::isnan(n.grad[0]));
  CHECK(std::isfinite(n.grad[1]));
}

TEST_CASE("cross_entropy: an ignored pixel counts nowhere, even with non-finite logits") {
  // Pixel 1 is ignored and holds NaN, inf and -inf; PyTorch gives pixel 0's loss alone.
  const auto x = Tensor<double>::from({1.0, NAN, -2.0, INFINITY, 0.5, -INFINITY}, {1, 3, 2});
  const auto y = Tensor<int64_t>::from({0, -100}, {1, 2});
  const double pixel0 = std::log(std::exp(1.0) + std::exp(-2.0) + std::exp(0.5)) - 1.0;
  for (double eps : {0.0, 0.1}) {
    CrossEntropyOptions<double> o;
    o.label_smoothing = eps;
    const auto vg = cross_entropy_value_and_grad(x, y, o);
    CHECK(std::isfinite(vg.value));
    if (eps == 0.0) CHECK(vg.value == doctest::Approx(pixel0).epsilon(1e-14));
    for (int64_t c = 0; c < 3; ++c) {
      CHECK(std::isfinite(vg.grad[c * 2]));
      CHECK(vg.grad[c * 2 + 1] == 0.0);
    }
    o.reduction = Reduction::none;
    const auto l = cross_entropy(x, y, o);
    CHECK(l[1] == 0.0);
    const auto g = cross_entropy_backward(x, y, Tensor<double>::from({1.0, NAN}, {1, 2}), o);
    for (int64_t c = 0; c < 3; ++c) CHECK(g[c * 2 + 1] == 0.0);
  }
}

TEST_CASE("cross_entropy: a confident pixel keeps its small loss at any logit offset (float)") {
  // Logits (off + 10, off, off - 1), label 0: the loss is log(1 + e^-10 + e^-11) = 6.2106e-5
  // whatever off is; computing lse - x_y with lse = off + ... would round it away.
  const double exact = std::log1p(std::exp(-10.0) + std::exp(-11.0));
  for (float off : {0.f, 100.f, 1000.f, 1e4f}) {
    CAPTURE(off);
    const auto x = Tensor<float>::from({off + 10, off, off - 1}, {1, 3, 1});
    const auto y = Tensor<int64_t>::from({0}, {1, 1});
    CHECK(cross_entropy(x, y)[0] == doctest::Approx(exact).epsilon(1e-4));
  }
}

TEST_CASE("cross_entropy: a label logit far ahead keeps the relative precision of loss and grad") {
  // At a lead of 16 and more, log(sum_c e_c) rounds 1 + R to 1 in float: the loss and the label's
  // gradient entry, both about R, came out 0 (docs/gradients.md §3b). The kernel sums R on its own
  // (log1p(R / e_y) and -R / S). Negative leads: the label is not the max class (down to -100,
  // where e_y underflows in float and pw::softmax_nll's floor acts). Packets, a tail and ignored
  // lanes (every 7th pixel) at C = 2, 3 and 21, without and with class weights.
  const std::vector<double> leads = testing::lead_values();
  for (int64_t C : {2, 3, 21}) {
    CAPTURE(C);
    const auto in = testing::lead_pixels(C, 45, leads);
    for (bool weighted : {false, true}) {
      CAPTURE(weighted);
      const std::vector<double> w = testing::lead_weights(C, weighted);
      CrossEntropyOptions<double> o;
      o.reduction = Reduction::none;
      if (weighted) o.weight = Tensor<double>::from(w, {C});
      const auto ones = Tensor<double>::full({1, 45}, 1.0);
      testing::check_lead_pixels(in, cross_entropy(in.x, in.y, o),
                                 cross_entropy_backward(in.x, in.y, ones, o), w, 1e-12, 300);
      CrossEntropyOptions<float> of;
      of.reduction = Reduction::none;
      if (weighted) of.weight = testing::cast<float>(o.weight);
      const auto xf = testing::cast<float>(in.x);
      // Beyond a lead of about 87, e^-lead is subnormal in float.
      testing::check_lead_pixels(
          in, cross_entropy(xf, in.y, of),
          cross_entropy_backward(xf, in.y, Tensor<float>::full({1, 45}, 1.f), of), w, 1e-5, 80);
    }
  }
}

TEST_CASE(
    "cross_entropy: with smoothing and every other class weighted 0, the gradient keeps its "
    "precision") {
  // Weights (1, 0, 0), label 0 leading by 20, eps = 0.5: the smoothing term's label gradient
  // (eps / C) (W p_y - w_y) = (eps / C) w_y (p_y - 1) would round to 0 in float; written
  // (eps / C) (W - w_y) - A q with W - w_y = 0, the entry is -A q, A = (1 - eps) + eps / C.
  // (The value's smoothing term is not: docs/gradients.md §3b.)
  const auto x = Tensor<double>::from({20.0, 0.0, 0.25}, {1, 3, 1});
  const auto y = Tensor<int64_t>::from({0}, {1, 1});
  CrossEntropyOptions<float> o;
  o.label_smoothing = 0.5f;
  o.weight = Tensor<float>::from({1.f, 0.f, 0.f}, {3});
  o.reduction = Reduction::sum;
  const auto g =
      cross_entropy_backward(testing::cast<float>(x), y, Tensor<float>::full({}, 1.f), o);
  const long double e1 = std::exp(-20.0L), e2 = std::exp(-19.75L), sum = 1 + e1 + e2;
  const long double a = 0.5L + 0.5L / 3;
  CHECK(std::fabs(g[0] - static_cast<double>(-a * (e1 + e2) / sum)) <= 1e-5 * a * (e1 + e2));
  CHECK(std::fabs(g[1] - static_cast<double>(a * e1 / sum)) <= 1e-5 * a * e1);
  CHECK(std::fabs(g[2] - static_cast<double>(a * e2 / sum)) <= 1e-5 * a * e2);
}

TEST_CASE("cross_entropy: class weights summing to 0 divide by 0, as in PyTorch") {
  const auto x = testing::randn<double>({1, 3, 4}, 16);
  const auto y = Tensor<int64_t>::from({0, 0, 0, 0}, {1, 4});
  CrossEntropyOptions<double> o;
  o.weight = Tensor<double>::from({0.0, 1.0, 1.0}, {3});
  CHECK(std::isnan(cross_entropy(x, y, o)[0]));  // 0 / 0
  o.reduction = Reduction::sum;
  CHECK(cross_entropy(x, y, o)[0] == 0.0);
}

TEST_CASE("cross_entropy: bad input names the function, argument and values") {
  const Shape s{2, 3, 4, 4};
  const auto x = testing::randn<double>(s, 14);
  auto y = labels<int64_t>({2, 4, 4}, 3, 15);
  y[1 * 16 + 2 * 4 + 3] = 7;
  CHECK_THROWS_WITH_AS(cross_entropy(x, y),
                       "cross_entropy: target has label 7 at (1,2,3), outside [0, 3) and not "
                       "ignore_index -100",
                       Error);
  y[1 * 16 + 2 * 4 + 3] = -1;
  CHECK_THROWS_AS(cross_entropy(x, y), Error);
  CHECK_NOTHROW(cross_entropy(x, y, CrossEntropyOptions<double>::pytorch_fcn()));
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels<int64_t>({2, 4, 3}, 3, 1)),
                       "cross_entropy: target (2,4,3) does not match logits (2,3,4,4) without "
                       "the class axis",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, Tensor<double>::zeros({2, 3, 4, 3})),
                       "cross_entropy: target (2,3,4,3) (probabilities) does not match logits "
                       "(2,3,4,4)",
                       Error);
  CrossEntropyOptions<double> o;
  o.weight = Tensor<double>::zeros({2});
  CHECK_THROWS_WITH_AS(
      cross_entropy(x, labels<int64_t>({2, 4, 4}, 3, 1), o),
      "cross_entropy: options.weight (2) has 2 values; expected one per class (3) of "
      "logits (2,3,4,4)",
      Error);
  o = {};
  o.ignore_index = 1;
  const auto third = Tensor<double>::full(s, 1.0 / 3);
  CHECK_THROWS_WITH_AS(cross_entropy(x, third, o),
                       "cross_entropy: options.ignore_index is 1; with probability targets it "
                       "must be negative (it applies to label targets only; PyTorch refuses "
                       "ignore_index >= 0 for a floating point target)",
                       Error);
  o.ignore_index = 0;
  CHECK_THROWS_WITH_AS(cross_entropy(x, third, o), doctest::Contains("ignore_index is 0;"), Error);
  o = {};
  o.ignore_negative = true;
  CHECK_THROWS_WITH_AS(cross_entropy(x, third, o),
                       "cross_entropy: ignore_negative and mean_over apply to label targets only; "
                       "with probabilities they must keep their defaults (ignore_negative false, "
                       "mean_over weights), not ignore_negative true, mean_over weights",
                       Error);
  o = {};
  o.mean_over = MeanOver::valid_pixels;
  CHECK_THROWS_WITH_AS(cross_entropy(x, third, o),
                       doctest::Contains("not ignore_negative false, mean_over valid_pixels"),
                       Error);
  o = {};
  o.label_smoothing = 1.5;
  CHECK_THROWS_WITH_AS(cross_entropy(x, labels<int64_t>({2, 4, 4}, 3, 1), o),
                       "cross_entropy: options.label_smoothing is 1.5; it must be in [0, 1]",
                       Error);
}

TEST_CASE("cross_entropy: with probability targets a negative ignore_index changes nothing") {
  // PyTorch accepts any negative ignore_index with a floating point target (no label can equal
  // it) and refuses one >= 0: every form gives the default's bits with -1, -7 or INT64_MIN.
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 61, 2.0);
  const auto q = probabilities(s, 62);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CrossEntropyOptions<double> d;
    d.reduction = r;
    d.weight = Tensor<double>::from({0.5, 2.0, 1.25}, {3});
    d.label_smoothing = 0.1;
    const bool scalar = r != Reduction::none;  // value_and_grad needs one value
    const auto want = cross_entropy(x, q, d);
    const auto want_vg = scalar ? cross_entropy_value_and_grad(x, q, d) : ValueAndGrad<double>{};
    const auto go = r == Reduction::none ? testing::randn<double>(s.without(1), 63)
                                         : Tensor<double>::full(Shape{}, 0.7);
    const auto want_bw = cross_entropy_backward(x, q, go, d);
    for (int64_t ii : {int64_t{-1}, int64_t{-7}, std::numeric_limits<int64_t>::min()}) {
      CAPTURE(ii);
      CrossEntropyOptions<double> o = d;
      o.ignore_index = ii;
      CHECK(testing::same_bits(cross_entropy(x, q, o), want));
      if (scalar) {
        const auto vg = cross_entropy_value_and_grad(x, q, o);
        CHECK(vg.value == want_vg.value);
        CHECK(testing::same_bits(vg.grad, want_vg.grad));
      }
      CHECK(testing::same_bits(cross_entropy_backward(x, q, go, o), want_bw));
    }
  }
}

TEST_CASE("cross_entropy: a grad that overlaps the target or the weight is refused") {
  // The kernel reads a pixel's probabilities again for its gradient and reads the weights
  // throughout, after storing other pixels' gradients: a grad sharing their memory would give a
  // silently wrong result, so every form that takes a caller's grad refuses it.
  const Shape s{2, 3, 4, 4};
  const int64_t n = s.numel();
  const auto x = testing::randn<double>(s, 31);
  const auto q = probabilities(s, 32);
  std::vector<double> buffer(2 * static_cast<size_t>(n));
  for (int64_t at : {int64_t(0), int64_t(5), n - 1}) {
    CAPTURE(at);
    auto target = Tensor<double>::view(buffer.data() + at, s);
    target.copy_from(q);
    auto grad = Tensor<double>::view(buffer.data(), s);  // the target's memory from `at` on
    CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, target, grad),
                         "cross_entropy_value_and_grad: grad overlaps target; pass a buffer "
                         "apart from it",
                         Error);
    CHECK_THROWS_WITH_AS(
        cross_entropy_finalize(x, target, cross_entropy_statistics(x, target), grad),
        "cross_entropy_finalize: grad overlaps target; pass a buffer apart from it", Error);
  }
  // Labels share no element type with grad, but their bytes can still be the grad's.
  const auto y = labels<int64_t>({2, 4, 4}, 3, 33);
  std::vector<double> storage(static_cast<size_t>(n));
  auto in_grad = Tensor<int64_t>::view(reinterpret_cast<int64_t*>(storage.data()), {2, 4, 4});
  in_grad.copy_from(y);
  auto grad = Tensor<double>::view(storage.data(), s);
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, in_grad, grad),
                       "cross_entropy_value_and_grad: grad overlaps target; pass a buffer "
                       "apart from it",
                       Error);
  CrossEntropyOptions<double> o;
  o.weight = Tensor<double>::view(storage.data() + 7, {3});
  std::fill(o.weight.data(), o.weight.data() + 3, 1.0);
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, grad, o),
                       "cross_entropy_value_and_grad: grad overlaps options.weight; pass a "
                       "buffer apart from it",
                       Error);
  // Apart from both, and in place on the logits, the calls run and agree.
  auto apart = Tensor<double>::empty(s);
  const double v = cross_entropy_value_and_grad(x, q, apart);
  auto in_place = x.clone();
  CHECK(cross_entropy_value_and_grad(in_place, q, in_place) == v);
  for (int64_t i = 0; i < n; ++i) CHECK(in_place[i] == apart[i]);
}

namespace {

template <class T>
void check_folded_shapes() {
  // S below a packet's width in float and double, with N * S leaving a tail; C = 1 to 150.
  for (const Shape& s :
       {Shape{37, 5, 1}, Shape{4, 3, 1, 1, 1}, Shape{19, 3, 2}, Shape{11, 21, 3}, Shape{9, 4, 7},
        Shape{5, 2, 15}, Shape{300, 21, 1}, Shape{6, 150, 1}, Shape{23, 1, 1},
        // several chunks (768 pixels at C = 21, 64 at 150, 3264 at 5)
        Shape{1000, 21, 1}, Shape{200, 150, 1}, Shape{3000, 5, 3}}) {
    CAPTURE(s);
    const int64_t C = s[1];
    const auto x = testing::randn<T>(s, 51, 3.0);
    const auto y = labels<int64_t>(s.without(1), C, 52, 0.2, 255);
    CrossEntropyOptions<T> o;
    SEGLOSS_CHECK_FOLDED(cross_entropy, x, labels<int64_t>(s.without(1), C, 55), o);
    o.ignore_index = 255;
    SEGLOSS_CHECK_FOLDED(cross_entropy, x, y, o);
    std::vector<T> w(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) w[c] = static_cast<T>(0.25 * static_cast<double>(c % 7 + 1));
    o.weight = Tensor<T>::from(w, {C});
    o.label_smoothing = 0.2;
    SEGLOSS_CHECK_FOLDED(cross_entropy, x, y, o);
    SEGLOSS_CHECK_FOLDED(cross_entropy, x, labels<int32_t>(s.without(1), C, 53, 0.2, -3),
                         CrossEntropyOptions<T>::pytorch_fcn());
    o.ignore_index = -100;
    SEGLOSS_CHECK_FOLDED(cross_entropy, x, testing::normalized_uniform<T>(s, 54), o);
  }
}

}  // namespace

// (N, C, 1) logits (one pixel per image, as in classification) went pixel by pixel
// without vectorizing, 5x slower than the same pixels as one image. Images smaller than a
// packet are now walked as one run of N * S pixels (backends/cpu/fold_images.hpp).
TEST_CASE("cross_entropy: images smaller than a packet equal one image of N*S pixels") {
  check_folded_shapes<float>();
  check_folded_shapes<double>();
}

TEST_CASE("cross_entropy: gradcheck, one pixel per image (N, C, 1)") {
  for (const Shape& s : {Shape{13, 5, 1}, Shape{21, 4, 1}, Shape{3, 6, 2}}) {
    CAPTURE(s);
    const auto x = testing::randn<double>(s, 61, 2.0);
    const auto y = labels<int64_t>(s.without(1), s[1], 62, 0.2, 255);
    CrossEntropyOptions<double> o;
    o.ignore_index = 255;
    check_all_reductions(x, y, o);
    const std::vector<double> w{0.5, 2.0, 1.0, 3.0, 0.25, 1.5};
    o.weight = Tensor<double>::from(std::vector<double>(w.begin(), w.begin() + s[1]), {s[1]});
    o.label_smoothing = 0.1;
    check_all_reductions(x, y, o);
    o.ignore_index = -100;
    check_all_reductions(x, probabilities(s, 63), o);
  }
}

TEST_CASE("cross_entropy: class weights summing to 0 over the counted pixels divide by 0") {
  // Weights (0, 1), every label 0: the mean's divisor is 0. Without smoothing the summed loss is 0
  // too (NaN, as PyTorch); with smoothing 0.5 the smoothing term is (0.5 / 2) (lse - x_1) > 0, so
  // the mean is +inf (PyTorch: NaN, it divides the NLL term's 0 by 0 on its own; the header says).
  const auto x = Tensor<double>::from({0.0, 0.0}, {1, 2, 1});
  const auto y = Tensor<int64_t>::from({0}, {1, 1});
  CrossEntropyOptions<double> o;
  o.weight = Tensor<double>::from({0.0, 1.0}, {2});
  CHECK(std::isnan(cross_entropy(x, y, o)[0]));
  o.label_smoothing = 0.5;
  const auto r = cross_entropy_value_and_grad(x, y, o);
  CHECK(r.value == std::numeric_limits<double>::infinity());
  CHECK(r.grad[0] == std::numeric_limits<double>::infinity());
  CHECK(r.grad[1] == -std::numeric_limits<double>::infinity());
}
