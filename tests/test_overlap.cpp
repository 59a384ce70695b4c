// The overlap losses (losses/overlap.hpp): soft_dice's options beyond the plain score,
// soft_jaccard and tversky. Gradients against finite differences for every option that changes
// the math; values against a direct computation written here from the header's definitions;
// empty-target policies; bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "loss_check.hpp"

using namespace segloss;

namespace {

enum class Loss { dice, jaccard, tversky };

const char* loss_name(Loss l) {
  return l == Loss::dice ? "soft_dice" : l == Loss::jaccard ? "soft_jaccard" : "tversky";
}

// One options type for the three losses (Tversky's alpha and beta are ignored by the others).
using Options = TverskyOptions<double>;

Tensor<double> forward(Loss l, const Tensor<double>& x, const Tensor<double>& t, const Options& o,
                       OverlapInfo* info = nullptr) {
  if (l == Loss::dice) return soft_dice(x, t, static_cast<const OverlapOptions<double>&>(o), info);
  if (l == Loss::jaccard)
    return soft_jaccard(x, t, static_cast<const OverlapOptions<double>&>(o), info);
  return tversky(x, t, o, info);
}

void check_all_reductions(Loss l, const Tensor<double>& x, const Tensor<double>& t, Options o,
                          int64_t samples = 0, double eps = 1e-6) {
  INFO(loss_name(l));
  const OverlapOptions<double> base = o;
  switch (l) {
    case Loss::dice:
      testing::check_all_reductions(
          x, t, base, [](auto&&... a) { return soft_dice(a...); },
          [](auto&&... a) { return soft_dice_backward(a...); },
          [](auto&&... a) { return soft_dice_value_and_grad(a...); }, samples, eps);
      break;
    case Loss::jaccard:
      testing::check_all_reductions(
          x, t, base, [](auto&&... a) { return soft_jaccard(a...); },
          [](auto&&... a) { return soft_jaccard_backward(a...); },
          [](auto&&... a) { return soft_jaccard_value_and_grad(a...); }, samples, eps);
      break;
    case Loss::tversky:
      testing::check_all_reductions(
          x, t, o, [](auto&&... a) { return tversky(a...); },
          [](auto&&... a) { return tversky_backward(a...); },
          [](auto&&... a) { return tversky_value_and_grad(a...); }, samples, eps);
      break;
  }
}

// The loss straight from overlap.hpp's definitions, for a weight of the input's own shape (or
// none): per-score sums, score, form, reduction. Returns the per-score values for none.
std::vector<double> direct(Loss l, const Tensor<double>& x, const Tensor<double>& t,
                           const Options& o, double* reduced) {
  const int64_t n = x.size(0), c = x.size(1), s = x.shape().numel_from(2);
  const int64_t count = o.per_image ? n * c : c;
  std::vector<double> I(count), P(count), T(count);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = o.activation == Activation::sigmoid ? 1 / (1 + std::exp(-x[i])) : x[i];
    const int64_t j = o.per_image ? i / s : (i / s) % c;
    double w = o.weight.defined() ? o.weight[i] : 1.0;
    double wp = p, wt = t[i];
    if (o.weighting == OverlapWeighting::on_inputs) {
      wp *= w;  // albu: the weight multiplies p and t before anything else
      wt *= w;
      w = 1.0;
    }
    const double k = o.squared ? 2.0 : 1.0;
    I[j] += w * w * wp * wt;
    P[j] += w * w * std::pow(wp, k);
    T[j] += w * w * std::pow(wt, k);
  }
  std::vector<double> values(count, 0.0), scores(count, 0.0);
  std::vector<bool> counted(count, false);
  double kept = 0;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t ch = j % c;
    if (ch == 0 && !o.include_background) continue;
    double S;
    if (T[j] == 0 && o.empty == EmptyPolicy::skip) continue;
    if (T[j] == 0 && o.empty == EmptyPolicy::one) {
      S = 1;
    } else if (T[j] == 0 && o.empty == EmptyPolicy::zero) {
      S = 0;
    } else if (l == Loss::dice) {
      S = (2 * I[j] + o.smooth_nr) / (P[j] + T[j] + o.smooth_dr);
    } else if (l == Loss::jaccard) {
      S = (I[j] + o.smooth_nr) / (P[j] + T[j] - I[j] + o.smooth_dr);
    } else {
      const double fp = P[j] - I[j], fn = T[j] - I[j];
      S = (I[j] + o.smooth_nr) / (I[j] + o.alpha * fp + o.beta * fn + o.smooth_dr);
    }
    const double cw = o.class_weight.defined() ? o.class_weight[ch] : 1.0;
    scores[j] = cw * S;
    counted[j] = true;
    kept += 1;
    if (o.log)
      values[j] = -cw * std::log(S);
    else if (o.clamp)
      values[j] = cw * (1 - std::min(std::max(S, 0.0), 1.0));
    else
      values[j] = cw * (o.gamma == 1 ? 1 - S : std::pow(std::max(1 - S, 0.0), o.gamma));
  }
  double sum = 0, msum = 0;
  for (int64_t j = 0; j < count; ++j) {
    sum += values[j];
    msum += scores[j];
  }
  if (o.reduction == Reduction::sum) *reduced = sum;
  if (o.reduction == Reduction::mean) {
    const double m = msum / kept;
    *reduced = kept == 0 ? 0.0
               : o.log   ? -std::log(m)
               : o.clamp ? 1 - std::min(std::max(m, 0.0), 1.0)
                         : sum / kept;
  }
  return values;
}

// Compares forward(reduction none, sum, mean) with direct().
void check_values(Loss l, const Tensor<double>& x, const Tensor<double>& t, Options o) {
  INFO(loss_name(l));
  double unused = 0, sum = 0, mean = 0;
  o.reduction = Reduction::none;
  const auto ref = direct(l, x, t, o, &unused);
  const auto v = forward(l, x, t, o);
  REQUIRE(v.numel() == static_cast<int64_t>(ref.size()));
  for (size_t j = 0; j < ref.size(); ++j) CHECK(v[j] == doctest::Approx(ref[j]).epsilon(1e-12));
  o.reduction = Reduction::sum;
  direct(l, x, t, o, &sum);
  CHECK(forward(l, x, t, o)[0] == doctest::Approx(sum).epsilon(1e-12));
  o.reduction = Reduction::mean;
  direct(l, x, t, o, &mean);
  CHECK(forward(l, x, t, o)[0] == doctest::Approx(mean).epsilon(1e-12));
}

const Shape kShape{2, 3, 5, 4};

Tensor<double> x_of(const Shape& s = kShape) {
  return testing::randn<double>(s, 21, 1.5);
}
Tensor<double> t_of(const Shape& s = kShape) {
  return testing::mask<double>(s, 22, 0.4);
}

// Both checks for one set of options, over the three losses.
void check_options(const Options& o, const Tensor<double>& x = x_of(),
                   const Tensor<double>& t = t_of()) {
  for (Loss l : {Loss::dice, Loss::jaccard, Loss::tversky}) {
    if (l == Loss::tversky && o.squared) continue;  // refused, tested below
    check_values(l, x, t, o);
    check_all_reductions(l, x, t, o);
  }
}

}  // namespace

TEST_CASE("overlap: plain scores, per image and batch, sigmoid and probabilities") {
  for (bool per_image : {true, false}) {
    for (Activation a : {Activation::sigmoid, Activation::none}) {
      CAPTURE(per_image);
      Options o;
      o.per_image = per_image;
      o.activation = a;
      o.smooth_nr = 0.5;
      o.smooth_dr = 1.0;
      if (a == Activation::none)
        check_options(o, testing::uniform<double>(kShape, 23, 0.05, 0.95));
      else
        check_options(o);
    }
  }
}

TEST_CASE("overlap: squared sums") {
  Options o;
  o.squared = true;
  check_options(o);
  o.activation = Activation::none;
  check_options(o, testing::uniform<double>(kShape, 24, 0.05, 0.95),
                testing::uniform<double>(kShape, 25, 0.0, 1.0));  // soft targets: t^2 != t
}

TEST_CASE("overlap: pixel weights in both placements, with and without squared sums") {
  for (OverlapWeighting wf : {OverlapWeighting::squared, OverlapWeighting::on_inputs}) {
    for (bool squared : {false, true}) {
      CAPTURE(static_cast<int>(wf));
      CAPTURE(squared);
      Options o;
      o.weight = testing::uniform<double>(kShape, 26, 0.2, 3.0);
      o.weighting = wf;
      o.squared = squared;
      o.smooth_nr = 1;
      o.smooth_dr = 1;
      check_options(o, x_of(), testing::uniform<double>(kShape, 27, 0.0, 1.0));
    }
  }
}

TEST_CASE("overlap: broadcast weights match the expanded weight") {
  // (N,1,H,W) per pixel for every channel, (C,1,1) per channel, (W) per column: the result must
  // equal the same loss with the weight expanded to the input's shape.
  const auto x = x_of(), t = t_of();
  for (const Shape& ws : {Shape{2, 1, 5, 4}, Shape{3, 1, 1}, Shape{4}, Shape{1, 3, 5, 1}}) {
    for (OverlapWeighting wf : {OverlapWeighting::squared, OverlapWeighting::on_inputs}) {
      CAPTURE(ws);
      const auto w = testing::uniform<double>(ws, 28, 0.2, 3.0);
      auto full = Tensor<double>::empty(kShape);
      const int64_t H = 5, W = 4, C = 3;
      for (int64_t i = 0; i < full.numel(); ++i) {
        const int64_t col = i % W, row = (i / W) % H, ch = (i / (W * H)) % C, n = i / (W * H * C);
        int64_t k = 0;
        if (ws == Shape{2, 1, 5, 4}) k = (n * H + row) * W + col;
        if (ws == Shape{3, 1, 1}) k = ch;
        if (ws == Shape{4}) k = col;
        if (ws == Shape{1, 3, 5, 1}) k = ch * H + row;
        full[i] = w[k];
      }
      Options a, b;
      a.weight = w;
      b.weight = full;
      a.weighting = b.weighting = wf;
      const auto va = soft_dice_value_and_grad(x, t, static_cast<const OverlapOptions<double>&>(a));
      const auto vb = soft_dice_value_and_grad(x, t, static_cast<const OverlapOptions<double>&>(b));
      CHECK(va.value == doctest::Approx(vb.value).epsilon(1e-13));
      for (int64_t i = 0; i < x.numel(); ++i)
        CHECK(va.grad[i] == doctest::Approx(vb.grad[i]).epsilon(1e-12));
      check_all_reductions(Loss::dice, x, t, a);
    }
  }
}

TEST_CASE("overlap: class weights and include_background") {
  Options o;
  o.class_weight = Tensor<double>::from({0.5, 2.0, 0.0}, {3});
  check_options(o);
  o.include_background = false;
  check_options(o);
  o.per_image = false;
  check_options(o);
}

TEST_CASE("overlap: empty-target policies") {
  auto t = t_of();
  for (int64_t i = 0; i < 20; ++i) t[i] = 0;             // image 0, channel 0: empty
  for (int64_t i = 60 + 20; i < 60 + 40; ++i) t[i] = 0;  // image 1, channel 1: empty
  for (EmptyPolicy e :
       {EmptyPolicy::formula, EmptyPolicy::one, EmptyPolicy::zero, EmptyPolicy::skip}) {
    CAPTURE(std::string(empty_policy_name(e)));
    Options o;
    o.empty = e;
    check_options(o, x_of(), t);
    OverlapInfo info;
    soft_dice(x_of(), t, static_cast<const OverlapOptions<double>&>(o), &info);
    CHECK(info.kept == (e == EmptyPolicy::skip ? 4 : 6));
    CHECK(info.skipped == (e == EmptyPolicy::skip ? 2 : 0));
    // A fixed or skipped score passes no gradient: the empty planes' gradient is 0.
    if (e != EmptyPolicy::formula) {
      const auto g =
          soft_dice_value_and_grad(x_of(), t, static_cast<const OverlapOptions<double>&>(o));
      for (int64_t i = 0; i < 20; ++i) CHECK(g.grad[i] == 0.0);
      CHECK(g.grad[20] != 0.0);
    }
  }
}

TEST_CASE("overlap: all scores skipped gives loss 0 and a zero gradient") {
  Options o;
  o.empty = EmptyPolicy::skip;
  const auto zero = Tensor<double>::zeros(kShape);
  OverlapInfo info;
  const auto g =
      soft_dice_value_and_grad(x_of(), zero, static_cast<const OverlapOptions<double>&>(o), &info);
  CHECK(g.value == 0.0);
  CHECK(info.kept == 0);
  CHECK(info.skipped == 6);
  for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(g.grad[i] == 0.0);
}

TEST_CASE("overlap: focal form, gamma per score before the mean") {
  for (double gamma : {0.5, 4.0 / 3.0, 2.0, 3.0}) {
    CAPTURE(gamma);
    Options o;
    o.gamma = gamma;
    check_options(o);
  }
  // Not the mean raised to gamma (segmentation_models_pytorch's form): differs for C > 1.
  Options o;
  o.gamma = 2.0;
  TverskyOptions<double> lin;
  lin.reduction = Reduction::none;
  const auto per_score = tversky(x_of(), t_of(), lin);
  double mean_sq = 0, mean = 0;
  for (int64_t j = 0; j < per_score.numel(); ++j) {
    mean_sq += per_score[j] * per_score[j] / per_score.numel();
    mean += per_score[j] / per_score.numel();
  }
  CHECK(tversky(x_of(), t_of(), o)[0] == doctest::Approx(mean_sq).epsilon(1e-13));
  CHECK(std::fabs(mean_sq - mean * mean) > 1e-4);
}

TEST_CASE("overlap: focal form with gamma < 1 stays finite at a perfect score") {
  Options o;
  o.gamma = 0.5;
  o.activation = Activation::none;
  o.smooth_nr = o.smooth_dr = 0;
  const auto t = t_of();
  const auto g = soft_dice_value_and_grad(t, t, static_cast<const OverlapOptions<double>&>(o));
  CHECK(g.value == 0.0);
  for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(std::isfinite(g.grad[i]));
}

TEST_CASE("overlap: log and clamp forms") {
  Options o;
  o.log = true;
  check_options(o);
  o.log = false;
  o.clamp = true;
  check_options(o);
  // Clamp: smooth terms that push the mean score above 1 give loss 0 and no gradient (albu).
  o.activation = Activation::none;
  o.smooth_nr = 50;
  o.smooth_dr = 1;
  const auto t = t_of();
  const auto g = soft_dice_value_and_grad(t, t, static_cast<const OverlapOptions<double>&>(o));
  CHECK(g.value == 0.0);
  for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(g.grad[i] == 0.0);
}

TEST_CASE("overlap: Tversky alpha and beta, with Dice and Jaccard as special cases") {
  for (auto ab : {std::pair{0.3, 0.7}, {0.7, 0.3}, {1.0, 0.0}, {0.0, 2.0}}) {
    const double alpha = ab.first, beta = ab.second;  // CAPTURE cannot take bindings (clang 14)
    CAPTURE(alpha);
    CAPTURE(beta);
    Options o;
    o.alpha = alpha;
    o.beta = beta;
    check_values(Loss::tversky, x_of(), t_of(), o);
    check_all_reductions(Loss::tversky, x_of(), t_of(), o);
  }
  // alpha = beta = 1/2 is Dice with halved smooth terms; alpha = beta = 1 is Jaccard.
  Options o;
  o.smooth_nr = 0.25;
  o.smooth_dr = 0.5;
  o.reduction = Reduction::none;
  const auto tv = tversky(x_of(), t_of(), o);
  Options d = o;
  d.smooth_nr = 0.5;
  d.smooth_dr = 1.0;
  const auto dv = soft_dice(x_of(), t_of(), static_cast<const OverlapOptions<double>&>(d));
  o.alpha = o.beta = 1.0;
  const auto tj = tversky(x_of(), t_of(), o);
  const auto jv = soft_jaccard(x_of(), t_of(), static_cast<const OverlapOptions<double>&>(o));
  for (int64_t j = 0; j < tv.numel(); ++j) {
    CHECK(tv[j] == doctest::Approx(dv[j]).epsilon(1e-13));
    CHECK(tj[j] == doctest::Approx(jv[j]).epsilon(1e-13));
  }
}

TEST_CASE("overlap: 1D and 3D inputs, N = 1, a 1x1 image, chunk boundaries") {
  Options o;
  o.weight = testing::uniform<double>({1, 2, 3, 4, 3}, 29, 0.5, 2.0);
  check_options(o, x_of({1, 2, 3, 4, 3}), t_of({1, 2, 3, 4, 3}));
  check_options(Options{}, x_of({3, 2, 17}), t_of({3, 2, 17}));
  check_options(Options{}, x_of({1, 1, 1, 1}), Tensor<double>::full({1, 1, 1, 1}, 1.0));
  Options big;
  big.weight = testing::uniform<double>({1, 2, 131, 129}, 30, 0.5, 2.0);
  big.squared = true;
  check_all_reductions(Loss::dice, x_of({1, 2, 131, 129}), t_of({1, 2, 131, 129}), big, 200, 1e-3);
}

TEST_CASE("overlap: logits of +-1e4 give a finite loss and gradient") {
  auto x = x_of();
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = (i % 3 == 0 ? 1e4 : -1e4);
  const auto xf = testing::cast<float>(x), tf = testing::cast<float>(t_of());
  for (Loss l : {Loss::dice, Loss::jaccard, Loss::tversky}) {
    TverskyOptions<float> o;
    o.weight = testing::uniform<float>(kShape, 31, 0.5, 2.0);
    const auto g =
        l == Loss::dice
            ? soft_dice_value_and_grad(xf, tf, static_cast<const OverlapOptions<float>&>(o))
        : l == Loss::jaccard
            ? soft_jaccard_value_and_grad(xf, tf, static_cast<const OverlapOptions<float>&>(o))
            : tversky_value_and_grad(xf, tf, o);
    CHECK(std::isfinite(g.value));
    for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(std::isfinite(g.grad[i]));
  }
}

TEST_CASE("overlap: bad input names the function, argument and values") {
  const auto x = x_of(), t = t_of();
  auto dice = [&](const Options& o) {
    return soft_dice(x, t, static_cast<const OverlapOptions<double>&>(o));
  };
  Options o;
  o.gamma = 0;
  CHECK_THROWS_WITH_AS(dice(o), "soft_dice: options.gamma is 0; it must be finite and > 0", Error);
  o = Options{};
  o.log = o.clamp = true;
  CHECK_THROWS_WITH_AS(dice(o), "soft_dice: options.log and options.clamp are both set; choose one",
                       Error);
  o = Options{};
  o.log = true;
  o.gamma = 2;
  CHECK_THROWS_WITH_AS(
      dice(o),
      "soft_dice: options.gamma is 2 with options.log; the focal form (gamma != 1) is a "
      "linear-form option",
      Error);
  o = Options{};
  o.class_weight = Tensor<double>::from({1.0, 1.0}, {2});
  CHECK_THROWS_WITH_AS(dice(o),
                       "soft_dice: options.class_weight (2) must have shape (3), one weight per "
                       "channel of the input (2,3,5,4)",
                       Error);
  o.class_weight = Tensor<double>::from({1.0, -1.0, 1.0}, {3});
  CHECK_THROWS_WITH_AS(
      dice(o), "soft_dice: options.class_weight[1] is -1; class weights must be finite and >= 0",
      Error);
  o = Options{};
  o.weight = Tensor<double>::full({2, 2, 5, 4}, 1.0);
  CHECK_THROWS_WITH_AS(dice(o),
                       "soft_dice: options.weight (2,2,5,4) does not broadcast to the input "
                       "(2,3,5,4) (axis 1: 2 vs 3)",
                       Error);
  o = Options{};
  o.include_background = false;
  CHECK_THROWS_WITH_AS(
      soft_dice(x_of({2, 1, 3}), t_of({2, 1, 3}), static_cast<const OverlapOptions<double>&>(o)),
      "soft_dice: options.include_background is false but the input (2,1,3) has "
      "a single channel (C = 1): no score would remain",
      Error);
  o = Options{};
  o.alpha = -0.5;
  CHECK_THROWS_WITH_AS(tversky(x, t, o),
                       "tversky: options.alpha -0.5 and options.beta 0.5 must be finite and >= 0, "
                       "with alpha + beta > 0",
                       Error);
  o = Options{};
  o.squared = true;
  CHECK_THROWS_WITH_AS(
      tversky(x, t, o),
      "tversky: options.squared is not defined for Tversky (FP = P - I holds for plain sums)",
      Error);
  o = Options{};
  o.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(tversky_value_and_grad(x, t, o),
                       "tversky_value_and_grad: reduction none has no single value; use tversky "
                       "and tversky_backward",
                       Error);
}

TEST_CASE("overlap: all-zero pixel weights leave only the smooth terms, with a zero gradient") {
  for (OverlapWeighting wf : {OverlapWeighting::squared, OverlapWeighting::on_inputs}) {
    CAPTURE(static_cast<int>(wf));
    Options o;
    o.weight = Tensor<double>::zeros(kShape);
    o.weighting = wf;
    o.smooth_nr = 0.5;
    o.smooth_dr = 2.0;
    // I = P = T = 0 for every score: S = smooth_nr / smooth_dr, loss 1 - 0.25.
    const auto g =
        soft_dice_value_and_grad(x_of(), t_of(), static_cast<const OverlapOptions<double>&>(o));
    CHECK(g.value == doctest::Approx(0.75).epsilon(1e-15));
    for (int64_t i = 0; i < g.grad.numel(); ++i) CHECK(g.grad[i] == 0.0);
    // The empty policy sees these scores as empty targets (T = 0).
    o.empty = EmptyPolicy::skip;
    OverlapInfo info;
    CHECK(soft_dice(x_of(), t_of(), static_cast<const OverlapOptions<double>&>(o), &info)[0] ==
          0.0);
    CHECK(info.skipped == 6);
  }
}

TEST_CASE("overlap: the statistics / finalize split across shards equals one process") {
  // A batch of 4 images split into shards of 1 and 3 images (views of the same memory): the
  // summed statistics give every shard the whole batch's loss and its own part of the gradient.
  const Shape s{4, 3, 5, 4};
  const auto x = testing::randn<double>(s, 81, 1.5);
  auto t = testing::mask<double>(s, 82, 0.4);
  for (int64_t i = 0; i < 20; ++i) t[i] = 0;  // image 0, channel 0: an empty target
  const int64_t plane = 3 * 5 * 4;
  auto shard = [&](const Tensor<double>& v, int64_t first, int64_t count) {
    return Tensor<double>::view(v.data() + first * plane, {count, 3, 5, 4});
  };
  for (bool per_image : {true, false}) {
    for (int variant = 0; variant < 5; ++variant) {
      CAPTURE(per_image);
      CAPTURE(variant);
      TverskyOptions<double> o;
      o.per_image = per_image;
      if (variant == 1) o.log = true;
      if (variant == 2) o.clamp = true, o.reduction = Reduction::sum;
      if (variant == 3) o.gamma = 2.0, o.empty = EmptyPolicy::skip;
      if (variant == 4) {
        o.class_weight = Tensor<double>::from({0.5, 1.0, 2.0}, {3});
        o.include_background = false;
        o.weight = testing::uniform<double>(s, 83, 0.5, 2.0);
      }
      for (int loss = 0; loss < 3; ++loss) {
        CAPTURE(loss);
        const OverlapOptions<double>& base = o;
        auto whole = [&]() {
          return loss == 0   ? soft_dice_value_and_grad(x, t, base)
                 : loss == 1 ? soft_jaccard_value_and_grad(x, t, base)
                             : tversky_value_and_grad(x, t, o);
        };
        const auto ref = whole();
        std::vector<OverlapStatistics> st;
        std::vector<TverskyOptions<double>> opts;
        for (auto [first, count] : {std::pair<int64_t, int64_t>{0, 1}, {1, 3}}) {
          TverskyOptions<double> so = o;
          if (o.weight.defined()) so.weight = shard(o.weight, first, count);
          const OverlapOptions<double>& sb = so;
          const auto xs = shard(x, first, count), ts = shard(t, first, count);
          st.push_back(loss == 0   ? soft_dice_statistics(xs, ts, sb)
                       : loss == 1 ? soft_jaccard_statistics(xs, ts, sb)
                                   : tversky_statistics(xs, ts, so));
          opts.push_back(so);
        }
        std::vector<double> reduced = st[0].global;  // the caller's all-reduce (sum)
        REQUIRE(st[1].global.size() == reduced.size());
        for (size_t k = 0; k < reduced.size(); ++k) reduced[k] += st[1].global[k];
        auto grad = Tensor<double>::full(s, NAN);
        int shard_index = 0;
        for (auto [first, count] : {std::pair<int64_t, int64_t>{0, 1}, {1, 3}}) {
          OverlapStatistics r = st[shard_index];
          r.global = reduced;
          const auto& so = opts[shard_index++];
          const OverlapOptions<double>& sb = so;
          const auto xs = shard(x, first, count), ts = shard(t, first, count);
          auto gs = shard(grad, first, count);
          const double v = loss == 0   ? soft_dice_finalize(xs, ts, r, gs, sb)
                           : loss == 1 ? soft_jaccard_finalize(xs, ts, r, gs, sb)
                                       : tversky_finalize(xs, ts, r, gs, so);
          CHECK(v == doctest::Approx(ref.value).epsilon(1e-13));
        }
        for (int64_t i = 0; i < x.numel(); ++i)
          CHECK(grad[i] == doctest::Approx(ref.grad[i]).epsilon(1e-12).scale(1e-6));
      }
    }
  }
  // Statistics from another layout are refused.
  const auto st = soft_dice_statistics(x, t);
  Tensor<double> g;
  SoftDiceOptions<double> batch;
  batch.per_image = false;
  CHECK_THROWS_WITH_AS(soft_dice_finalize(x, t, st, g, batch),
                       "soft_dice_finalize: the statistics (per_image true, 3 channels, 12 local "
                       "planes, 3 global values) do not come from this shard's (4,3,5,4) with "
                       "these options (per_image false, 9 global values)",
                       Error);
}
