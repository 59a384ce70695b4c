// The softmax overlap losses (losses/softmax_overlap.hpp) and the generalized Dice loss
// (losses/generalized_dice.hpp): gradients against finite differences for every option and
// target kind; values against the binary overlap family applied to softmax probabilities and a
// one-hot target (ignored pixels masked by a 0/1 weight), and against a direct computation of
// the generalized Dice score; label validation and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "loss_check.hpp"

using namespace segloss;

namespace {

const Shape kShape{2, 4, 5, 3};

Tensor<double> logits_of(const Shape& s = kShape, uint64_t seed = 41) {
  return testing::randn<double>(s, seed, 1.5);
}

// Labels in [0, C), with every `ignore_every`-th pixel set to `ignore`.
template <class L>
Tensor<L> labels_of(const Shape& s, uint64_t seed, int ignore_every = 0, L ignore = -100) {
  std::mt19937_64 rng(seed);
  auto y = Tensor<L>::empty(s.without(1));
  for (int64_t i = 0; i < y.numel(); ++i) {
    y[i] = static_cast<L>(rng() % static_cast<uint64_t>(s[1]));
    if (ignore_every > 0 && i % ignore_every == 3) y[i] = ignore;
  }
  return y;
}

Tensor<double> softmax(const Tensor<double>& x) {
  const int64_t N = x.size(0), C = x.size(1), S = x.shape().numel_from(2);
  auto p = Tensor<double>::empty(x.shape());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      double m = -INFINITY, z = 0;
      for (int64_t c = 0; c < C; ++c) m = std::max(m, x[(n * C + c) * S + s]);
      for (int64_t c = 0; c < C; ++c) z += std::exp(x[(n * C + c) * S + s] - m);
      for (int64_t c = 0; c < C; ++c)
        p[(n * C + c) * S + s] = std::exp(x[(n * C + c) * S + s] - m) / z;
    }
  return p;
}

// One-hot of labels, and the 0/1 mask of the pixels not ignored (broadcast over classes).
template <class L>
void one_hot(const Tensor<L>& y, int64_t C, int64_t ignore, Tensor<double>& t,
             Tensor<double>& valid) {
  const int64_t N = y.size(0), S = y.numel() / N;
  Shape s = y.shape();
  std::vector<int64_t> dims{N, C};
  for (int d = 1; d < s.rank(); ++d) dims.push_back(s[d]);
  const Shape full(dims.begin(), dims.end());
  t = Tensor<double>::zeros(full);
  valid = Tensor<double>::zeros(full);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      const int64_t v = static_cast<int64_t>(y[n * S + i]);
      for (int64_t c = 0; c < C; ++c) {
        valid[(n * C + c) * S + i] = v == ignore ? 0.0 : 1.0;
        t[(n * C + c) * S + i] = v == c ? 1.0 : 0.0;
      }
    }
}

// The binary family's options that match the softmax options, on probabilities.
template <class O>
TverskyOptions<double> binary_options(const O& o) {
  TverskyOptions<double> b;
  b.reduction = o.reduction;
  b.smooth_nr = o.smooth_nr;
  b.smooth_dr = o.smooth_dr;
  b.per_image = o.per_image;
  b.squared = o.squared;
  b.class_weight = o.class_weight;
  b.include_background = o.include_background;
  b.empty = o.empty;
  b.gamma = o.gamma;
  b.log = o.log;
  b.clamp = o.clamp;
  b.activation = Activation::none;
  return b;
}

enum class Loss { dice, jaccard, tversky };

template <class U>
Tensor<double> softmax_forward(Loss l, const Tensor<double>& x, const Tensor<U>& y,
                               const SoftmaxTverskyOptions<double>& o) {
  const SoftmaxOverlapOptions<double>& base = o;
  if (l == Loss::dice) return softmax_dice(x, y, base);
  if (l == Loss::jaccard) return softmax_jaccard(x, y, base);
  return softmax_tversky(x, y, o);
}

Tensor<double> binary_forward(Loss l, const Tensor<double>& p, const Tensor<double>& t,
                              const TverskyOptions<double>& o) {
  const OverlapOptions<double>& base = o;
  if (l == Loss::dice) return soft_dice(p, t, base);
  if (l == Loss::jaccard) return soft_jaccard(p, t, base);
  return tversky(p, t, o);
}

// Values of every reduction against the binary family on (softmax(x), one-hot(y)).
template <class U>
void check_against_binary(Loss l, const Tensor<double>& x, const Tensor<U>& y,
                          SoftmaxTverskyOptions<double> o) {
  Tensor<double> t, valid;
  if constexpr (std::is_floating_point_v<U>) {
    t = y;
  } else {
    one_hot(y, x.size(1), o.ignore_index, t, valid);
  }
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    o.reduction = r;
    auto b = binary_options(o);
    b.alpha = o.alpha;
    b.beta = o.beta;
    if (valid.defined()) {
      b.weight = valid;
      b.weighting = OverlapWeighting::on_inputs;
    }
    const auto want = binary_forward(l, softmax(x), t, b);
    const auto got = softmax_forward(l, x, y, o);
    REQUIRE(got.shape() == want.shape());
    for (int64_t j = 0; j < got.numel(); ++j)
      CHECK(got[j] == doctest::Approx(want[j]).epsilon(1e-12));
  }
}

template <class U>
void check_gradients(Loss l, const Tensor<double>& x, const Tensor<U>& y,
                     const SoftmaxTverskyOptions<double>& o) {
  const SoftmaxOverlapOptions<double>& base = o;
  switch (l) {
    case Loss::dice:
      testing::check_all_reductions(
          x, y, base, [](auto&&... a) { return softmax_dice(a...); },
          [](auto&&... a) { return softmax_dice_backward(a...); },
          [](auto&&... a) { return softmax_dice_value_and_grad(a...); });
      break;
    case Loss::jaccard:
      testing::check_all_reductions(
          x, y, base, [](auto&&... a) { return softmax_jaccard(a...); },
          [](auto&&... a) { return softmax_jaccard_backward(a...); },
          [](auto&&... a) { return softmax_jaccard_value_and_grad(a...); });
      break;
    case Loss::tversky:
      testing::check_all_reductions(
          x, y, o, [](auto&&... a) { return softmax_tversky(a...); },
          [](auto&&... a) { return softmax_tversky_backward(a...); },
          [](auto&&... a) { return softmax_tversky_value_and_grad(a...); });
      break;
  }
}

template <class U>
void check_all(const SoftmaxTverskyOptions<double>& o, const Tensor<double>& x,
               const Tensor<U>& y) {
  for (Loss l : {Loss::dice, Loss::jaccard, Loss::tversky}) {
    if (l == Loss::tversky && o.squared) continue;
    CAPTURE(static_cast<int>(l));
    check_against_binary(l, x, y, o);
    check_gradients(l, x, y, o);
  }
}

}  // namespace

TEST_CASE("softmax_overlap: label targets (int32, int64) and probability targets") {
  for (bool per_image : {true, false}) {
    CAPTURE(per_image);
    SoftmaxTverskyOptions<double> o;
    o.per_image = per_image;
    o.smooth_nr = 0.5;
    o.smooth_dr = 1.0;
    check_all(o, logits_of(), labels_of<int32_t>(kShape, 42));
    check_all(o, logits_of(), labels_of<int64_t>(kShape, 43));
    auto q = softmax(testing::randn<double>(kShape, 44, 2.0));  // soft targets summing to 1
    check_all(o, logits_of(), q);
  }
}

TEST_CASE("softmax_overlap: ignore_index removes pixels from every sum") {
  SoftmaxTverskyOptions<double> o;
  check_all(o, logits_of(), labels_of<int64_t>(kShape, 45, 4));
  o.ignore_index = 255;
  check_all(o, logits_of(), labels_of<int32_t>(kShape, 46, 3, 255));
  // An ignored pixel's logits do not matter, and get a zero gradient, even when NaN.
  auto y = labels_of<int64_t>(kShape, 47, 5);
  auto x = logits_of();
  const auto before = softmax_dice_value_and_grad(x, y);
  const int64_t S = 15;
  x[3] = NAN;  // pixel 3 of image 0 (label ignored), class 0
  x[3 + S] = 1e30;
  const auto after = softmax_dice_value_and_grad(x, y);
  CHECK(after.value == before.value);
  for (int64_t c = 0; c < 4; ++c) CHECK(after.grad[3 + c * S] == 0.0);
}

TEST_CASE("softmax_overlap: squared, class weights, include_background, empty policies") {
  auto y = labels_of<int64_t>(kShape, 48);
  for (int64_t i = 0; i < 15; ++i)
    if (y[i] == 2) y[i] = 1;  // class 2 absent from image 0
  SoftmaxTverskyOptions<double> o;
  o.squared = true;
  check_all(o, logits_of(), y);
  o.squared = false;
  o.class_weight = Tensor<double>::from({0.5, 1.0, 2.0, 0.0}, {4});
  o.include_background = false;
  check_all(o, logits_of(), y);
  for (EmptyPolicy e : {EmptyPolicy::one, EmptyPolicy::zero, EmptyPolicy::skip}) {
    CAPTURE(std::string(empty_policy_name(e)));
    SoftmaxTverskyOptions<double> oe;
    oe.empty = e;
    check_all(oe, logits_of(), y);
    OverlapInfo info;
    softmax_dice(logits_of(), y, static_cast<const SoftmaxOverlapOptions<double>&>(oe), &info);
    CHECK(info.skipped == (e == EmptyPolicy::skip ? 1 : 0));
  }
}

TEST_CASE("softmax_overlap: focal, log and clamp forms, Tversky alpha and beta") {
  const auto x = logits_of();
  const auto y = labels_of<int32_t>(kShape, 49);
  SoftmaxTverskyOptions<double> o;
  o.gamma = 4.0 / 3.0;
  o.alpha = 0.3;
  o.beta = 0.7;
  check_all(o, x, y);
  o.gamma = 1.0;
  o.log = true;
  check_all(o, x, y);
  o.log = false;
  o.clamp = true;
  check_all(o, x, y);
}

TEST_CASE("softmax_overlap: 1D and 3D inputs, C = 1, 2 and 21, chunk boundaries") {
  check_all(SoftmaxTverskyOptions<double>{}, logits_of({2, 3, 7}),
            labels_of<int64_t>({2, 3, 7}, 50));
  check_all(SoftmaxTverskyOptions<double>{}, logits_of({1, 2, 3, 4, 3}),
            labels_of<int64_t>({1, 2, 3, 4, 3}, 51, 7));
  check_all(SoftmaxTverskyOptions<double>{}, logits_of({2, 1, 4, 3}),
            labels_of<int64_t>({2, 1, 4, 3}, 52));  // C = 1: p = 1 everywhere
  check_all(SoftmaxTverskyOptions<double>{}, logits_of({1, 21, 6, 5}),
            labels_of<int32_t>({1, 21, 6, 5}, 53, 9));
  // 2 classes x 20001 pixels: three chunks of 8192 pixels (class_chunk_pixels(2)), odd tail.
  const Shape big{1, 2, 20001};
  const auto x = logits_of(big);
  const auto y = labels_of<int64_t>(big, 54, 11);
  check_against_binary(Loss::dice, x, y, SoftmaxTverskyOptions<double>{});
  testing::check_all_reductions(
      x, y, SoftmaxOverlapOptions<double>{}, [](auto&&... a) { return softmax_dice(a...); },
      [](auto&&... a) { return softmax_dice_backward(a...); },
      [](auto&&... a) { return softmax_dice_value_and_grad(a...); }, 200, 1e-4);
}

TEST_CASE("softmax_overlap: float32 agrees with double, logits of +-1e4 stay finite") {
  const auto xd = logits_of({2, 5, 40, 30}, 55);
  const auto y = labels_of<int64_t>({2, 5, 40, 30}, 56, 13);
  const auto xf = testing::cast<float>(xd);
  const auto d = softmax_dice_value_and_grad(xd, y);
  const auto f = softmax_dice_value_and_grad(xf, y);
  CHECK(f.value == doctest::Approx(d.value).epsilon(1e-5));
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < xd.numel(); ++i) {
    worst = std::max(worst, std::fabs(f.grad[i] - d.grad[i]));
    scale = std::max(scale, std::fabs(d.grad[i]));
  }
  CHECK(worst <= 1e-5 * scale);
  auto huge = xf.clone();  // a copy of a Tensor shares its elements
  for (int64_t i = 0; i < huge.numel(); ++i) huge[i] = (i % 7 == 0 ? 1e4f : -1e4f);
  const auto h = softmax_tversky_value_and_grad(huge, y);
  CHECK(std::isfinite(h.value));
  for (int64_t i = 0; i < h.grad.numel(); ++i) CHECK(std::isfinite(h.grad[i]));
}

TEST_CASE("generalized_dice: values from the definition, every weight type, gradcheck") {
  const auto x = logits_of();
  auto y = labels_of<int64_t>(kShape, 57, 6);
  for (int64_t i = 0; i < 15; ++i)
    if (y[i] == 3) y[i] = 0;  // class 3 absent from image 0: an infinite weight
  for (auto w : {GeneralizedDiceWeight::square, GeneralizedDiceWeight::simple,
                 GeneralizedDiceWeight::uniform}) {
    for (bool per_image : {true, false}) {
      for (bool background : {true, false}) {
        CAPTURE(static_cast<int>(w));
        CAPTURE(per_image);
        CAPTURE(background);
        GeneralizedDiceOptions<double> o;
        o.w_type = w;
        o.per_image = per_image;
        o.include_background = background;
        // The definition, written out: sums per score and class, weights, the inf rule.
        Tensor<double> t, valid;
        one_hot(y, 4, -100, t, valid);
        const auto p = softmax(x);
        const int64_t N = 2, C = 4, S = 15, count = per_image ? N : 1;
        std::vector<double> I(count * C), P(count * C), T(count * C);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = 0; c < C; ++c)
            for (int64_t s = 0; s < S; ++s) {
              const int64_t i = (n * C + c) * S + s, k = (per_image ? n : 0) * C + c;
              I[k] += valid[i] * p[i] * t[i];
              P[k] += valid[i] * p[i];
              T[k] += valid[i] * t[i];
            }
        std::vector<double> loss(count);
        for (int64_t j = 0; j < count; ++j) {
          std::vector<double> wc(C, 0.0);
          double wmax = 0;
          for (int64_t c = background ? 0 : 1; c < C; ++c) {
            const double tc = T[j * C + c];
            wc[c] = w == GeneralizedDiceWeight::square   ? 1 / (tc * tc)
                    : w == GeneralizedDiceWeight::simple ? 1 / tc
                                                         : 1.0;
            if (std::isfinite(wc[c])) wmax = std::max(wmax, wc[c]);
          }
          double num = 0, den = 0;
          for (int64_t c = background ? 0 : 1; c < C; ++c) {
            const double v = std::isfinite(wc[c]) ? wc[c] : wmax;
            num += v * I[j * C + c];
            den += v * (P[j * C + c] + T[j * C + c]);
          }
          loss[j] = 1 - (2 * num + o.smooth_nr) / (den + o.smooth_dr);
        }
        o.reduction = Reduction::none;
        const auto v = generalized_dice(x, y, o);
        REQUIRE(v.numel() == count);
        double sum = 0;
        for (int64_t j = 0; j < count; ++j) {
          CHECK(v[j] == doctest::Approx(loss[j]).epsilon(1e-12));
          sum += loss[j];
        }
        o.reduction = Reduction::mean;
        CHECK(generalized_dice(x, y, o)[0] == doctest::Approx(sum / count).epsilon(1e-12));
        testing::check_all_reductions(
            x, y, o, [](auto&&... a) { return generalized_dice(a...); },
            [](auto&&... a) { return generalized_dice_backward(a...); },
            [](auto&&... a) { return generalized_dice_value_and_grad(a...); });
      }
    }
  }
  // Probability targets.
  testing::check_all_reductions(
      x, softmax(testing::randn<double>(kShape, 58, 2.0)), GeneralizedDiceOptions<double>{},
      [](auto&&... a) { return generalized_dice(a...); },
      [](auto&&... a) { return generalized_dice_backward(a...); },
      [](auto&&... a) { return generalized_dice_value_and_grad(a...); });
}

TEST_CASE("generalized_dice: every class absent gives the smooth ratio") {
  GeneralizedDiceOptions<double> o;
  o.ignore_index = 7;
  const auto y = Tensor<int64_t>::full(kShape.without(1), 7);  // every pixel ignored
  const auto g = generalized_dice_value_and_grad(logits_of(), y, o);
  CHECK(g.value == doctest::Approx(1 - o.smooth_nr / o.smooth_dr));
  for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(g.grad[i] == 0.0);
}

TEST_CASE("softmax_overlap: bad input names the function, argument and values") {
  const auto x = logits_of();
  auto y = labels_of<int64_t>(kShape, 59);
  y[17] = 4;
  CHECK_THROWS_WITH_AS(softmax_dice(x, y),
                       "softmax_dice: target has label 4 at (1,0,2), outside [0, 4) and not "
                       "ignore_index -100",
                       Error);
  y[17] = -1;
  CHECK_THROWS_WITH_AS(generalized_dice(x, y),
                       "generalized_dice: target has label -1 at (1,0,2), outside [0, 4) and not "
                       "ignore_index -100",
                       Error);
  CHECK_THROWS_WITH_AS(softmax_jaccard(x, Tensor<int32_t>::zeros({2, 5, 4})),
                       "softmax_jaccard: target (2,5,4) does not match logits (2,4,5,3) without "
                       "the class axis",
                       Error);
  SoftmaxOverlapOptions<double> o;
  o.ignore_index = 0;
  CHECK_THROWS_WITH_AS(softmax_dice(x, softmax(x), o),
                       "softmax_dice: options.ignore_index 0 applies to label targets only; with "
                       "probabilities it must keep its default -100",
                       Error);
  SoftmaxTverskyOptions<double> t;
  t.beta = NAN;
  CHECK_THROWS_WITH_AS(softmax_tversky(x, labels_of<int64_t>(kShape, 60), t),
                       "softmax_tversky: options.alpha 0.5 and options.beta nan must be finite "
                       "and >= 0, with alpha + beta > 0",
                       Error);
  GeneralizedDiceOptions<double> g;
  g.include_background = false;
  CHECK_THROWS_WITH_AS(generalized_dice(logits_of({2, 1, 3}), labels_of<int64_t>({2, 1, 3}, 61), g),
                       "generalized_dice: options.include_background is false but the input "
                       "(2,1,3) has a single class (C = 1): no class would remain",
                       Error);
}
