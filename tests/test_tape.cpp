// The autodiff tape (core/tape.hpp): every primitive against finite differences in double,
// accumulation, scalar algebra, the fused loss nodes (losses/tape_losses.hpp) against the fused
// calls, the composed losses (losses/composed.hpp) against the fused losses to 1e-10 in double,
// and the tape's errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "loss_check.hpp"

using namespace segloss;
using ad::Tape;
using ad::Var;

namespace {

using Vars = std::vector<Var<double>>;
using Build = std::function<Var<double>(Tape<double>&, const Vars&)>;

// The value of sum(build(inputs) * r) for a fixed random r shaped like the output (so that
// outputs whose plain sum is constant, such as a softmax, are still tested), and, with `grads`,
// its gradient with respect to every input from the tape.
double weighted_output(const std::vector<Tensor<double>>& inputs, const Build& build,
                       std::vector<Tensor<double>>* grads) {
  Tape<double> tape;
  Vars v;
  for (const auto& t : inputs) v.push_back(tape.leaf(t));
  const Var<double> out = build(tape, v);
  const auto r = testing::randn<double>(out.shape(), 77);
  const Var<double> l = ad::sum(out * tape.constant(r));
  if (grads) {
    tape.backward(l);
    for (const auto& x : v) grads->push_back(tape.grad(x).clone());
  }
  return l.item();
}

// Gradchecks build with respect to each of its inputs.
void check_primitive(const std::vector<Tensor<double>>& inputs, const Build& build) {
  std::vector<Tensor<double>> grads;
  weighted_output(inputs, build, &grads);
  for (size_t k = 0; k < inputs.size(); ++k) {
    CAPTURE(k);
    const auto r = gradcheck(
        [&](const Tensor<double>& x) {
          auto in = inputs;
          in[k] = x;
          return weighted_output(in, build, nullptr);
        },
        inputs[k], grads[k]);
    INFO(r.summary());
    CHECK(r.passed);
  }
}

double max_abs(const Tensor<double>& t) {
  double m = 0;
  for (double v : t) m = std::max(m, std::fabs(v));
  return m;
}

// |a - b| <= tol * max(1, |b|), elementwise for tensors (relative to the largest entry).
void check_close(double a, double b, double tol = 1e-10) {
  CHECK(std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b)));
}
void check_close(const Tensor<double>& a, const Tensor<double>& b, double tol = 1e-10) {
  REQUIRE(a.shape() == b.shape());
  const double scale = std::max(max_abs(b), 1e-300);
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  INFO("worst difference ", worst, " against a largest entry of ", scale);
  CHECK(worst <= tol * scale);
}

// A composed loss against its fused value and gradient (mean or sum).
template <class Composed, class Fused>
void check_composed_scalar(const Tensor<double>& x, Composed composed, Fused fused) {
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  const Var<double> out = composed(tape, v);
  REQUIRE(out.shape().numel() == 1);
  tape.backward(out);
  const ValueAndGrad<double> f = fused(x);
  check_close(out.item(), f.value);
  check_close(tape.grad(v), f.grad);
}

// The same for any reduction: with none, against the forward values and the backward of
// sum(out * grad_out).
template <class Composed, class Fused, class Forward, class Backward>
void check_composed(const Tensor<double>& x, Reduction r, Composed composed, Fused fused,
                    Forward forward, Backward backward) {
  if (r != Reduction::none) return check_composed_scalar(x, composed, fused);
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  const Var<double> out = composed(tape, v);
  const Tensor<double> y = forward(x);
  check_close(out.value(), y);
  const auto go = testing::randn<double>(y.shape(), 5);
  tape.backward(ad::sum(out * tape.constant(go)));
  check_close(tape.grad(v), backward(x, go));
}

// check_composed for the three reductions of a loss with options o and target t.
#define CHECK_COMPOSED(NAME, x, t, o, reductions)                                             \
  for (Reduction r_ : reductions) {                                                           \
    INFO(#NAME " reduction ", std::string(reduction_name(r_)));                               \
    auto o_ = o;                                                                              \
    o_.reduction = r_;                                                                        \
    check_composed(                                                                           \
        x, r_,                                                                                \
        [&](Tape<double>& tp, const Var<double>& v) { return composed::NAME(tp, v, t, o_); }, \
        [&](const Tensor<double>& v) { return NAME##_value_and_grad(v, t, o_); },             \
        [&](const Tensor<double>& v) { return NAME(v, t, o_); },                              \
        [&](const Tensor<double>& v, const Tensor<double>& go) {                              \
          return NAME##_backward(v, t, go, o_);                                               \
        });                                                                                   \
  }

const std::vector<Reduction> kAll = {Reduction::mean, Reduction::sum, Reduction::none};
const std::vector<Reduction> kScalar = {Reduction::mean, Reduction::sum};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: elementwise arithmetic, same shape and broadcast, against finite differences") {
  const Shape s{2, 3, 4, 5};
  const auto a = testing::randn<double>(s, 1);
  const auto b = testing::uniform<double>(s, 2, 0.5, 2.0);  // away from 0 for division
  const std::vector<Shape> small = {Shape{},        Shape{2, 3, 1, 1}, Shape{1, 3, 1, 1}, Shape{3},
                                    Shape{3, 1, 1}, Shape{1, 1, 4, 5}, Shape{5}};
  const std::vector<std::pair<const char*, std::function<Var<double>(Var<double>, Var<double>)>>>
      ops = {{"add", [](Var<double> x, Var<double> y) { return x + y; }},
             {"sub", [](Var<double> x, Var<double> y) { return x - y; }},
             {"mul", [](Var<double> x, Var<double> y) { return x * y; }},
             {"div", [](Var<double> x, Var<double> y) { return x / y; }}};
  for (const auto& entry : ops) {
    CAPTURE(std::string(entry.first));
    const auto& op = entry.second;
    check_primitive({a, b}, [&](Tape<double>&, const Vars& v) { return op(v[0], v[1]); });
    for (const Shape& bs : small) {
      CAPTURE(bs);
      const auto c = testing::uniform<double>(bs, 3, 0.5, 2.0);
      // The broadcast operand second, then first.
      check_primitive({a, c}, [&](Tape<double>&, const Vars& v) { return op(v[0], v[1]); });
      check_primitive({c, b}, [&](Tape<double>&, const Vars& v) { return op(v[0], v[1]); });
    }
  }
}

TEST_CASE("tape: a rank-1 operand of C values is read along the class axis") {
  Tape<double> tape;
  const auto x = testing::randn<double>({2, 3, 2, 2}, 1);
  const auto w = Tensor<double>::from({1.0, 10.0, 100.0}, {3});
  const Var<double> y = tape.leaf(x) * tape.constant(w);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(y.value()[i] == x[i] * w[(i / 4) % 3]);
}

TEST_CASE("tape: operations with constants and scalar algebra") {
  const auto a = testing::uniform<double>({2, 1, 3, 3}, 4, 0.5, 2.0);
  check_primitive({a}, [](Tape<double>&, const Vars& v) {
    return 2.0 + v[0] * 3.0 - 1.5 + (4.0 - v[0]) / 2.0 + 3.0 / v[0] - 0.5 * v[0];
  });
  // Scalars: losses combined with each other and with constants.
  const auto s1 = Tensor<double>::full({}, 0.7), s2 = Tensor<double>::full({}, 1.9);
  check_primitive({s1, s2}, [](Tape<double>&, const Vars& v) {
    const Var<double>&p = v[0], &q = v[1];
    return ad::log(p) * q + ad::exp(p) / q - ad::pow(p, 3.0) + 2.0 / p - ad::pow(q, 0.5) * p +
           (p - q) * (p + q);
  });
}

TEST_CASE("tape: elementwise functions against finite differences, and finite at |x| = 1e4") {
  const Shape s{2, 2, 3, 4};
  const auto x = testing::randn<double>(s, 5, 2.0);
  const auto pos = testing::uniform<double>(s, 6, 0.2, 3.0);
  const auto unit = testing::uniform<double>(s, 7, -0.8, 2.0);
  check_primitive({x}, [](Tape<double>&, const Vars& v) { return -v[0]; });
  check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::exp(v[0]); });
  check_primitive({pos}, [](Tape<double>&, const Vars& v) { return ad::log(v[0]); });
  check_primitive({unit}, [](Tape<double>&, const Vars& v) { return ad::log1p(v[0]); });
  check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::sigmoid(v[0]); });
  check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::log_sigmoid(v[0]); });
  check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::softplus(v[0]); });
  for (double p : {2.0, 1.0, 0.5, 3.0, -1.5}) {
    CAPTURE(p);
    check_primitive({pos}, [p](Tape<double>&, const Vars& v) { return ad::pow(v[0], p); });
  }
  // clamp: inputs at least 0.05 from the bounds, where finite differences are valid.
  auto c = x.clone();
  for (auto& v : c)
    if (std::fabs(v - 0.5) < 0.05 || std::fabs(v + 1.0) < 0.05) v += 0.2;
  check_primitive({c}, [](Tape<double>&, const Vars& v) { return ad::clamp(v[0], -1.0, 0.5); });
  {
    Tape<double> tape;
    const Var<double> v = tape.leaf(Tensor<double>::from({-2.0, -1.0, 0.0, 0.5, 3.0}, {5}));
    tape.backward(ad::sum(ad::clamp(v, -1.0, 0.5)));
    const Tensor<double>& g = tape.grad(v);
    CHECK(g[0] == 0.0);  // below
    CHECK(g[1] == 1.0);  // at the bounds: passes, as torch.clamp
    CHECK(g[2] == 1.0);
    CHECK(g[3] == 1.0);
    CHECK(g[4] == 0.0);  // above
  }
  // |x| = 1e4: sigmoid, log_sigmoid and softplus stay finite, and so do their gradients.
  Tape<double> tape;
  const Var<double> big = tape.leaf(Tensor<double>::from({-1e4, 1e4}, {2}));
  const Var<double> l = ad::sum(ad::sigmoid(big) + ad::log_sigmoid(big) + ad::softplus(big));
  tape.backward(l);
  CHECK(std::isfinite(l.item()));
  CHECK(l.item() == doctest::Approx(-1e4 + 1.0 + 1e4).epsilon(1e-12));
  for (double g : tape.grad(big)) CHECK(std::isfinite(g));
}

TEST_CASE(
    "tape: softmax and log_softmax over the class axis, 2D and 3D, against finite "
    "differences") {
  for (const Shape& s : {Shape{2, 4, 3, 3}, Shape{1, 3, 2, 2, 2}, Shape{3, 5}, Shape{1, 1, 1, 1}}) {
    CAPTURE(s);
    const auto x = testing::randn<double>(s, 8, 2.0);
    check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::softmax(v[0]); });
    check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::log_softmax(v[0]); });
  }
  // Relative to the max logit: finite for logits of 1e4.
  Tape<double> tape;
  const Var<double> x = tape.leaf(Tensor<double>::from({1e4, -1e4, 0.0}, {1, 3, 1, 1}));
  const Var<double> y = ad::log_softmax(x);
  CHECK(y.value()[0] == 0.0);
  CHECK(y.value()[1] == -2e4);
  tape.backward(ad::sum(y * tape.constant(Tensor<double>::from({1.0, 2.0, 3.0}, {1, 3, 1, 1}))));
  for (double g : tape.grad(x)) CHECK(std::isfinite(g));
}

TEST_CASE(
    "tape: sums and means over chosen axes, reshape and where, against finite "
    "differences") {
  const auto x = testing::randn<double>({2, 3, 4, 5}, 9);
  const std::vector<std::pair<const char*, Var<double> (*)(const Var<double>&)>> reductions = {
      {"sum", ad::sum},
      {"mean", ad::mean},
      {"sum_per_image", ad::sum_per_image},
      {"mean_per_image", ad::mean_per_image},
      {"sum_per_class", ad::sum_per_class},
      {"mean_per_class", ad::mean_per_class},
      {"sum_per_image_class", ad::sum_per_image_class},
      {"mean_per_image_class", ad::mean_per_image_class},
      {"class_sum", ad::class_sum}};
  for (const auto& reduction : reductions) {
    const auto& name = reduction.first;  // CAPTURE cannot take bindings (clang 14)
    const auto& f = reduction.second;
    CAPTURE(std::string(name));
    check_primitive({x}, [f = f](Tape<double>&, const Vars& v) { return f(v[0]); });
  }
  // Shapes and values against plain loops.
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  CHECK(ad::sum(v).shape() == Shape{});
  CHECK(ad::sum_per_image(v).shape() == Shape{2});
  CHECK(ad::sum_per_class(v).shape() == Shape{3});
  CHECK(ad::sum_per_image_class(v).shape() == Shape{2, 3});
  CHECK(ad::class_sum(v).shape() == Shape{2, 1, 4, 5});
  double class1 = 0, image1 = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if ((i / 20) % 3 == 1) class1 += x[i];
    if (i / 60 == 1) image1 += x[i];
  }
  CHECK(ad::sum_per_class(v).value()[1] == doctest::Approx(class1).epsilon(1e-14));
  CHECK(ad::mean_per_image(v).value()[1] == doctest::Approx(image1 / 60).epsilon(1e-14));

  check_primitive({x}, [](Tape<double>&, const Vars& v) {
    return ad::reshape(v[0], Shape{6, 20});
  });
  const auto m = testing::mask<double>({2, 1, 4, 5}, 10);
  const auto y = testing::randn<double>({2, 3, 4, 5}, 11);
  check_primitive({x, y}, [&](Tape<double>&, const Vars& v) { return ad::where(m, v[0], v[1]); });
}

TEST_CASE("tape: where keeps a NaN in the branch not taken out of the value and gradient") {
  Tape<double> tape;
  const Var<double> a = tape.leaf(Tensor<double>::from({1.0, 4.0}, {2}));
  const Var<double> b = ad::log(a - 2.0);  // NaN at a = 1
  const Var<double> l = ad::sum(ad::where(Tensor<double>::from({0.0, 1.0}, {2}), b, a * 0.0));
  tape.backward(l);
  CHECK(l.item() == doctest::Approx(std::log(2.0)));
  CHECK(tape.grad(a)[0] == 0.0);
  CHECK(tape.grad(a)[1] == doctest::Approx(0.5));
}

TEST_CASE("tape: one_hot and valid_mask of int32 and int64 label maps") {
  const auto y32 = Tensor<int32_t>::from({0, 2, -100, 1, 2, 0}, {2, 3});
  const auto y64 = testing::cast<int64_t>(y32);
  Tape<double> tape;
  for (const Var<double>& oh : {ad::one_hot(tape, y32, 3), ad::one_hot(tape, y64, 3)}) {
    REQUIRE(oh.shape() == Shape{2, 3, 3});
    CHECK_FALSE(oh.requires_grad());
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t s = 0; s < 3; ++s)
          CHECK(oh.value()[(n * 3 + c) * 3 + s] == (y32[n * 3 + s] == c ? 1.0 : 0.0));
  }
  const Var<double> valid = ad::valid_mask(tape, y32);
  REQUIRE(valid.shape() == Shape{2, 1, 3});
  CHECK(valid.value()[2] == 0.0);
  CHECK(valid.value()[3] == 1.0);
  CHECK_THROWS_WITH_AS(ad::one_hot(tape, y32, 2),
                       doctest::Contains("ad::one_hot: label 2 at (0,1)"), Error);
}

TEST_CASE("tape: a value used twice accumulates both gradients") {
  const auto x = testing::randn<double>({1, 2, 3, 3}, 12);
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  tape.backward(ad::sum(v * v) + 3.0 * ad::sum(v) + ad::mean(ad::sigmoid(v)));
  const Tensor<double>& g = tape.grad(v);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-x[i]));
    CHECK(g[i] == doctest::Approx(2 * x[i] + 3 + p * (1 - p) / 18.0).epsilon(1e-13));
  }
  // The same through finite differences, and a chain that reuses an intermediate.
  check_primitive({x}, [](Tape<double>&, const Vars& v) {
    const Var<double> p = ad::sigmoid(v[0]);
    return p * p + p * v[0] - ad::exp(p);
  });
}

TEST_CASE("tape: two fused losses on the same logits add, and backward twice gives the same") {
  const Shape s{2, 1, 6, 5};
  const auto x = testing::randn<double>(s, 13, 2.0), z = testing::mask<double>(s, 14);
  const auto bce = bce_with_logits_value_and_grad(x, z);
  const auto dice = soft_dice_value_and_grad(x, z);
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  const Var<double> a = ad::bce_with_logits(v, z), b = ad::soft_dice(v, z);
  const Var<double> l = a + 0.5 * b;
  check_close(l.item(), bce.value + 0.5 * dice.value, 1e-15);
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    tape.backward(l);
    const Tensor<double>& g = tape.grad(v);
    for (int64_t i = 0; i < x.numel(); ++i)
      CHECK(g[i] == doctest::Approx(bce.grad[i] + 0.5 * dice.grad[i]).epsilon(1e-14));
  }
  // A loss alone: the fused gradient itself; then from a scaled copy (2 * a), twice.
  tape.backward(a);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(tape.grad(v)[i] == bce.grad[i]);
  const Var<double> twice = 2.0 * a;
  for (int round = 0; round < 2; ++round) {
    tape.backward(twice);
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(tape.grad(v)[i] == 2.0 * bce.grad[i]);
  }
  tape.backward(a);  // the adopted gradient was not changed by the rounds above
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(tape.grad(v)[i] == bce.grad[i]);
}

TEST_CASE("tape: results do not depend on the thread count") {
  const Shape s{2, 3, 64, 70};  // several chunks per plane
  const auto x = testing::randn<double>(s, 15, 2.0);
  const auto y = testing::labels<int64_t>({2, 64, 70}, 3, 16, 0.1);
  const auto run = [&](int threads) {
    const int before = num_threads();
    set_num_threads(threads);
    Tape<double> tape;
    const Var<double> v = tape.leaf(x);
    const Var<double> l = composed::ce_dice(tape, v, y);
    tape.backward(l);
    std::vector<double> r = {l.item()};
    r.insert(r.end(), tape.grad(v).begin(), tape.grad(v).end());
    set_num_threads(before);
    return r;
  };
  CHECK(run(1) == run(3));
}

// ---------------------------------------------------------------------------------------------
// Fused loss nodes
// ---------------------------------------------------------------------------------------------

// The node's value and its gradient (scaled by 1.5 through the scalar algebra) equal the fused
// call's.
template <class Node, class Fused>
void check_node(const Tensor<double>& x, Node node, Fused fused) {
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);
  const Var<double> l = node(v);
  tape.backward(1.5 * l);
  const ValueAndGrad<double> f = fused(x);
  CHECK(l.item() == f.value);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(tape.grad(v)[i] == 1.5 * f.grad[i]);
}

TEST_CASE("tape: every fused loss node equals its fused value and gradient") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 17, 2.0);
  const auto z = testing::mask<double>(s, 18);
  const auto p = testing::uniform<double>(s, 19, 0.05, 0.95);
  const auto y = testing::labels<int32_t>({2, 4, 5}, 3, 20, 0.1);
  const auto y64 = testing::cast<int64_t>(y);
  const auto q = [&] {  // probability targets
    Tape<double> t;
    return ad::softmax(t.leaf(testing::randn<double>(s, 21))).value().clone();
  }();
#define NODE(NAME, X, T, O)                                                       \
  SUBCASE(#NAME) {                                                                \
    check_node(                                                                   \
        X, [&](const Var<double>& v) { return ad::NAME(v, T, O); },               \
        [&](const Tensor<double>& v) { return NAME##_value_and_grad(v, T, O); }); \
  }
  BceWithLogitsOptions<double> bo;
  bo.pos_weight = Tensor<double>::from({2.0, 0.5, 1.0}, {3});
  NODE(bce_with_logits, x, z, bo)
  NODE(binary_cross_entropy, p, z, BinaryCrossEntropyOptions<double>{})
  NODE(sigmoid_focal, x, z, SigmoidFocalOptions<double>{})
  NODE(soft_dice, x, z, SoftDiceOptions<double>{})
  NODE(soft_jaccard, x, z, SoftJaccardOptions<double>{})
  NODE(tversky, x, z, TverskyOptions<double>{})
  NODE(bce_dice, x, z, BceDiceOptions<double>{})
  NODE(lovasz_hinge, x, z, LovaszHingeOptions<double>{})
  NODE(cross_entropy, x, y, CrossEntropyOptions<double>{})
  NODE(cross_entropy, x, q, CrossEntropyOptions<double>{})
  NODE(softmax_focal, x, y64, SoftmaxFocalOptions<double>{})
  NODE(softmax_dice, x, y, SoftmaxOverlapOptions<double>{})
  NODE(softmax_jaccard, x, q, SoftmaxOverlapOptions<double>{})
  NODE(softmax_tversky, x, y64, SoftmaxTverskyOptions<double>{})
  NODE(generalized_dice, x, y, GeneralizedDiceOptions<double>{})
  NODE(ce_dice, x, y, CeDiceOptions<double>{})
  NODE(dice_focal, x, y, DiceFocalOptions<double>{})
  NODE(lovasz_softmax, x, y, LovaszSoftmaxOptions<double>{})
#undef NODE
}

TEST_CASE("tape: a float tape runs the float fused losses") {
  const Shape s{2, 1, 8, 8};
  const auto x = testing::randn<float>(s, 22, 2.0), z = testing::mask<float>(s, 23);
  Tape<float> tape;
  const Var<float> v = tape.leaf(x);
  const Var<float> l = ad::bce_dice(v, z) + 0.1 * composed::soft_dice(tape, v, z);
  tape.backward(l);
  const auto bd = bce_dice_value_and_grad(x, z);
  const auto sd = soft_dice_value_and_grad(x, z);
  CHECK(l.item() == doctest::Approx(bd.value + 0.1 * sd.value).epsilon(1e-5));
  for (int64_t i = 0; i < x.numel(); ++i)
    CHECK(tape.grad(v)[i] == doctest::Approx(bd.grad[i] + 0.1f * sd.grad[i]).epsilon(1e-4));
}

// ---------------------------------------------------------------------------------------------
// Composed against fused, 1e-10 in double
// ---------------------------------------------------------------------------------------------

TEST_CASE(
    "composed: bce_with_logits equals the fused loss (weight, pos_weight, smoothing, "
    "mean_over)") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 24, 3.0), z = testing::mask<double>(s, 25);
  BceWithLogitsOptions<double> o;
  CHECK_COMPOSED(bce_with_logits, x, z, o, kAll)
  o.weight = testing::uniform<double>({2, 1, 4, 5}, 26, 0.2, 2.0);
  o.pos_weight = Tensor<double>::from({2.0, 0.5, 1.5}, {3, 1, 1});
  o.label_smoothing = 0.1;
  CHECK_COMPOSED(bce_with_logits, x, z, o, kAll)
  o.weight = testing::uniform<double>({5}, 27, 0.2, 2.0);  // along W, PyTorch's rule
  o.pos_weight = Tensor<double>::from({3.0}, {1});
  o.mean_over = BceMeanOver::weight_sum;
  CHECK_COMPOSED(bce_with_logits, x, z, o, kAll)
  // 1x1 images, N = 1, and |x| = 1e4.
  const auto big = Tensor<double>::from({1e4, -1e4, 3.0}, {1, 3, 1});
  const auto bz = Tensor<double>::from({0.0, 1.0, 1.0}, {1, 3, 1});
  CHECK_COMPOSED(bce_with_logits, big, bz, BceWithLogitsOptions<double>{}, kAll)
}

TEST_CASE("composed: binary_cross_entropy and sigmoid_focal equal the fused losses") {
  const Shape s{2, 2, 3, 4};
  const auto p = testing::uniform<double>(s, 28, 0.02, 0.98), z = testing::mask<double>(s, 29);
  BinaryCrossEntropyOptions<double> bo;
  CHECK_COMPOSED(binary_cross_entropy, p, z, bo, kAll)
  bo.weight = testing::uniform<double>({2, 1, 1, 1}, 30, 0.1, 2.0);
  CHECK_COMPOSED(binary_cross_entropy, p, z, bo, kAll)

  const auto x = testing::randn<double>(s, 31, 2.0);
  const auto soft = testing::uniform<double>(s, 32, 0.0, 1.0);
  for (double gamma : {2.0, 0.0, 1.5}) {
    for (double alpha : {0.25, -1.0}) {
      CAPTURE(gamma);
      CAPTURE(alpha);
      SigmoidFocalOptions<double> fo;
      fo.gamma = gamma;
      fo.alpha = alpha;
      CHECK_COMPOSED(sigmoid_focal, x, z, fo, kAll)
      fo.weight = testing::uniform<double>({2, 2, 1, 1}, 33, 0.1, 2.0);
      CHECK_COMPOSED(sigmoid_focal, x, soft, fo, kAll)
    }
  }
}

TEST_CASE("composed: binary_cross_entropy has PyTorch's gradient where the clamp is flat") {
  // At p = 0 or 1 and below log p = -100 the clamped value is flat, while PyTorch's gradient
  // (the fused loss's) is w (p - z) / max((1 - p) p, 1e-12f): -1e12 at p = 0 with z = 1, 0 at
  // p = 0 with z = 0. The primitives alone would give 0 inf = NaN, or 0 below -100.
  const Shape s{1, 1, 3, 4};
  const auto p = Tensor<double>::from(
      {0.0, 1.0, 0.0, 1.0, 1e-60, 1.0 - 1e-16, 0.25, 1e-13, 0.5, 1.0, 0.0, 0.75}, s);
  const auto z =
      Tensor<double>::from({1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.25, 0.5, 1.0, 0.3, 0.6, 0.0}, s);
  // Each element within 1e-12 of the fused one, relative to itself (the gradient spans 0 to
  // 1e12, so a tolerance relative to the largest entry would not see the small ones).
  const auto each_close = [](const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) {
      CAPTURE(i);
      CHECK(std::isfinite(a[i]));
      CHECK(std::fabs(a[i] - b[i]) <= 1e-12 * std::fabs(b[i]));
    }
  };
  for (bool weighted : {false, true}) {
    BinaryCrossEntropyOptions<double> o;
    if (weighted) o.weight = testing::uniform<double>({1, 1, 3, 1}, 34, 0.5, 2.0);
    for (Reduction r : kAll) {
      CAPTURE(weighted);
      CAPTURE(reduction_name(r));
      o.reduction = r;
      Tape<double> tape;
      const Var<double> v = tape.leaf(p);
      const Var<double> out = composed::binary_cross_entropy(tape, v, z, o);
      if (r == Reduction::none) {
        each_close(out.value(), binary_cross_entropy(p, z, o));
        const auto go = testing::uniform<double>(s, 35, 0.5, 2.0);
        tape.backward(ad::sum(out * tape.constant(go)));
        each_close(tape.grad(v), binary_cross_entropy_backward(p, z, go, o));
      } else {
        tape.backward(out);
        const auto f = binary_cross_entropy_value_and_grad(p, z, o);
        CHECK(out.item() == doctest::Approx(f.value).epsilon(1e-12));
        each_close(tape.grad(v), f.grad);
      }
    }
  }
}

// Option sets of the overlap family: 0 defaults, 1 batch scores with smooth terms and squared
// sums, 2 weights on inputs with class weights, no background and focal gamma, 3 the weighted
// log form, 4 the clamp form on probabilities, 5 the skip and one empty policies (an empty
// plane in the target), 6 per-image with the zero policy.
template <class O>
O overlap_variant(int k, const Shape& s) {
  constexpr bool binary = std::is_base_of_v<OverlapOptions<double>, O>;  // pixel weights
  O o;
  if (k == 1) {
    o.per_image = false;
    o.smooth_nr = 2;
    o.smooth_dr = 1;
    o.squared = true;
  } else if (k == 2) {
    if constexpr (binary) {
      o.weight = testing::uniform<double>({s[0], 1, s[2], s[3]}, 40, 0.2, 1.0);
      o.weighting = OverlapWeighting::on_inputs;
    }
    o.class_weight = Tensor<double>::from({1.0, 0.5, 2.0}, {3});
    o.include_background = false;
    o.gamma = 1.5;
  } else if (k == 3) {
    if constexpr (binary) o.weight = testing::uniform<double>(s, 41, 0.3, 3.0);
    o.log = true;
  } else if (k == 4) {
    o.clamp = true;
    o.smooth_nr = o.smooth_dr = 0.1;
    if constexpr (binary) o.activation = Activation::none;
  } else if (k == 5) {
    o.empty = EmptyPolicy::skip;
  } else if (k == 6) {
    o.empty = EmptyPolicy::one;
    o.per_image = false;
  } else if (k == 7) {
    o.empty = EmptyPolicy::zero;
  }
  return o;
}

// relu, clamp and pow(., 0) pass nothing where their slope is 0, as PyTorch's: the product
// 0 * inf (pow(., 0.5)'s slope at 0) was NaN. Reviewer's cases, PyTorch's gradients.
TEST_CASE("tape: a flat relu, clamp or pow(., 0) masks an infinite gradient from above") {
  const auto x = Tensor<double>::from({-1.0, 0.25, 0.0, 4.0}, {4});
  {
    Tape<double> t;
    const Var<double> v = t.leaf(x);
    t.backward(ad::sum(ad::pow(ad::relu(v), 0.5)));
    CHECK(t.grad(v)[0] == 0.0);  // was NaN
    CHECK(t.grad(v)[1] == 1.0);  // 0.5 / sqrt(0.25)
    CHECK(t.grad(v)[2] == 0.0);  // relu'(0) = 0 masks pow's inf
    CHECK(t.grad(v)[3] == 0.25);
  }
  {
    Tape<double> t;
    const Var<double> v = t.leaf(x);
    t.backward(ad::sum(ad::pow(ad::clamp(v, 0.0, 1.0), 0.5)));
    CHECK(t.grad(v)[0] == 0.0);  // was NaN
    CHECK(t.grad(v)[1] == 1.0);
    CHECK(std::isinf(t.grad(v)[2]));  // clamp'(lo) = 1, as PyTorch: pow's inf passes
    CHECK(t.grad(v)[3] == 0.0);
  }
  {
    Tape<double> t;
    const Var<double> v = t.leaf(x);
    t.backward(ad::sum(ad::pow(v, 0.0)));
    for (int i = 0; i < 4; ++i) CHECK(t.grad(v)[i] == 0.0);  // x = 0 gave 0 * inf = NaN
  }
  {
    // pow(., 3) is not masked, as PyTorch's: its slope 0 at x = 0 times pow(., 0.5)'s inf is NaN.
    Tape<double> t;
    const Var<double> v = t.leaf(x);
    t.backward(ad::sum(ad::pow(ad::pow(v, 3.0), 0.5)));
    CHECK(std::isnan(t.grad(v)[2]));
    CHECK(t.grad(v)[3] == doctest::Approx(1.5 * 2.0));  // d/dx x^1.5 = 1.5 sqrt(x)
  }
}

namespace {
// composed(tape, leaf of `in`) against the fused loss's value and gradient: the value to 1e-12,
// every gradient element finite and within 1e-10. Returns the composed gradient.
template <class Fused, class Composed>
Tensor<double> check_same_as_fused(const Tensor<double>& in, const Fused& fused,
                                   Composed composed_loss) {
  Tape<double> t;
  const Var<double> v = t.leaf(in);
  const Var<double> l = composed_loss(t, v);
  t.backward(l);
  CHECK(l.value()[0] == doctest::Approx(fused.value).epsilon(1e-12));
  const Tensor<double> g = t.grad(v).clone();
  for (int64_t i = 0; i < in.numel(); ++i) {
    CAPTURE(i);
    REQUIRE(std::isfinite(g[i]));
    CHECK(g[i] == doctest::Approx(fused.grad[i]).epsilon(1e-10).scale(1e-12));
  }
  return g;
}
}  // namespace

// gamma < 1 with a score above 1 (smooth_nr > smooth_dr on an empty target): the clamp of 1 - S
// is flat at 0, where pow(., gamma) is infinitely steep; the fused loss's gradient there is 0.
TEST_CASE("composed: soft_dice and softmax_dice with gamma < 1 and a score above 1") {
  const Shape s{2, 1, 2, 2};
  auto x = testing::randn<double>(s, 7);
  auto z = testing::mask<double>(s, 8);
  for (int64_t i = 0; i < 4; ++i) {  // image 0 empty and predicted empty: S near 2 / 1
    z[i] = 0;
    x[i] = -8.0;
  }
  SoftDiceOptions<double> o;
  o.gamma = 0.5;
  o.smooth_nr = 2.0;
  o.smooth_dr = 1.0;
  check_same_as_fused(x, soft_dice_value_and_grad(x, z, o),
                      [&](auto& t, auto& v) { return composed::soft_dice(t, v, z, o); });
  const Shape sc{1, 3, 2, 2};
  auto xc = testing::randn<double>(sc, 9);
  for (int64_t i = 8; i < 12; ++i) xc[i] = -8.0;  // class 2 absent and not predicted: S > 1
  const auto y = Tensor<int64_t>::from({0, 1, 0, 1}, {1, 2, 2});
  SoftmaxOverlapOptions<double> so;
  so.gamma = 0.5;
  so.smooth_nr = 2.0;
  so.smooth_dr = 1.0;
  check_same_as_fused(xc, softmax_dice_value_and_grad(xc, y, so),
                      [&](auto& t, auto& v) { return composed::softmax_dice(t, v, y, so); });
}

// S exactly 1 (an empty target predicted empty at x = -50, with the default smooth_nr =
// smooth_dr): pow(clamp(1 - S, 0, inf), gamma) passed clamp's slope 1 at 0 into pow's infinite
// slope, and the gradient was NaN (a review, 2026-12-02). relu(1 - S) has slope 0 there.
TEST_CASE("composed: the overlap focal form with gamma < 1 and a score of exactly 1") {
  const Shape s{2, 1, 2, 2};
  auto x = testing::randn<double>(s, 17);
  auto z = testing::mask<double>(s, 18);
  for (int64_t i = 0; i < 4; ++i) z[i] = 0, x[i] = -50.0;
  SoftDiceOptions<double> o;
  o.gamma = 0.5;
  check_same_as_fused(x, soft_dice_value_and_grad(x, z, o),
                      [&](auto& t, auto& v) { return composed::soft_dice(t, v, z, o); });
  // The softmax form: class 2 absent and predicted absent.
  const Shape sc{1, 3, 2, 2};
  auto xc = testing::randn<double>(sc, 19);
  for (int64_t i = 8; i < 12; ++i) xc[i] = -50.0;
  const auto y = Tensor<int64_t>::from({0, 1, 0, 1}, {1, 2, 2});
  SoftmaxOverlapOptions<double> so;
  so.gamma = 0.5;
  check_same_as_fused(xc, softmax_dice_value_and_grad(xc, y, so),
                      [&](auto& t, auto& v) { return composed::softmax_dice(t, v, y, so); });
}

// An ignored pixel's logits do not matter to the fused losses (NaN and inf included); the
// composed ones ran the softmax on them and multiplied by 0 afterwards, so the value and the
// pixel's gradient were NaN (a review, 2026-12-02). Now the softmax reads 0 in their place.
TEST_CASE("composed: a NaN or infinite logit at an ignored pixel changes nothing") {
  const Shape s{2, 3, 2, 3};
  const auto x0 = testing::randn<double>(s, 23, 2.0);
  auto y = testing::labels<int64_t>({2, 2, 3}, 3, 24);
  y[1] = -100;  // image 0, pixel 1
  y[9] = -100;  // image 1, pixel 3
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    CAPTURE(bad);
    auto x = x0.clone();
    x[1] = bad;               // image 0, class 0, pixel 1
    x[18 + 2 * 6 + 3] = bad;  // image 1, class 2, pixel 3
    auto check = [&](const char* what, const auto& fused, auto composed_loss) {
      CAPTURE(what);
      REQUIRE(std::isfinite(fused.value));
      const auto g = check_same_as_fused(x, fused, composed_loss);
      for (int64_t c = 0; c < 3; ++c) CHECK(g[c * 6 + 1] == 0.0);  // the ignored pixel
    };
    CrossEntropyOptions<double> ce;
    ce.label_smoothing = 0.1;
    check("cross_entropy", cross_entropy_value_and_grad(x, y, ce),
          [&](auto& t, auto& v) { return composed::cross_entropy(t, v, y, ce); });
    SoftmaxFocalOptions<double> sf;
    check("softmax_focal", softmax_focal_value_and_grad(x, y, sf),
          [&](auto& t, auto& v) { return composed::softmax_focal(t, v, y, sf); });
    SoftmaxOverlapOptions<double> sd;
    check("softmax_dice", softmax_dice_value_and_grad(x, y, sd),
          [&](auto& t, auto& v) { return composed::softmax_dice(t, v, y, sd); });
    GeneralizedDiceOptions<double> gd;
    check("generalized_dice", generalized_dice_value_and_grad(x, y, gd),
          [&](auto& t, auto& v) { return composed::generalized_dice(t, v, y, gd); });
    LovaszSoftmaxOptions<double> lo;
    lo.ignore_index = -100;
    check("lovasz_softmax", lovasz_softmax_value_and_grad(x, y, lo),
          [&](auto& t, auto& v) { return composed::lovasz_softmax(t, v, y, lo); });
  }
}

TEST_CASE("composed: soft_dice, soft_jaccard and tversky equal the fused losses") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 42, 2.0);
  auto z = testing::mask<double>(s, 43);
  for (int64_t i = 20; i < 40; ++i) z[i] = 0;  // image 0, channel 1 empty
  const auto probs = testing::uniform<double>(s, 44, 0.01, 0.99);
  for (int k = 0; k <= 7; ++k) {
    CAPTURE(k);
    const auto& in = k == 4 ? probs : x;
    const auto od = overlap_variant<SoftDiceOptions<double>>(k, s);
    CHECK_COMPOSED(soft_dice, in, z, od, kAll)
    CHECK_COMPOSED(soft_jaccard, in, z, od, kAll)
    auto ot = overlap_variant<TverskyOptions<double>>(k, s);
    ot.squared = false;
    ot.alpha = 0.3;
    ot.beta = 0.7;
    CHECK_COMPOSED(tversky, in, z, ot, kAll)
  }
  // A 3D volume, N = 1.
  const Shape v{1, 2, 3, 3, 2};
  const auto xv = testing::randn<double>(v, 45), zv = testing::mask<double>(v, 46);
  CHECK_COMPOSED(soft_dice, xv, zv, SoftDiceOptions<double>{}, kAll)
}

TEST_CASE("composed: bce_dice equals the fused loss") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 47, 2.0), z = testing::mask<double>(s, 48);
  BceDiceOptions<double> o;
  o.bce_weight = 0.7;
  o.dice_weight = 1.3;
  o.bce.pos_weight = Tensor<double>::from({2.0, 0.5, 1.5}, {3});
  o.dice.weight = testing::uniform<double>(s, 49, 0.3, 3.0);
  o.dice.log = true;
  for (Reduction r : kScalar) {
    o.bce.reduction = o.dice.reduction = r;
    check_composed_scalar(
        x, [&](Tape<double>& t, const Var<double>& v) { return composed::bce_dice(t, v, z, o); },
        [&](const Tensor<double>& v) { return bce_dice_value_and_grad(v, z, o); });
  }
}

TEST_CASE("composed: cross_entropy equals the fused loss (weights, ignore_index, smoothing)") {
  const Shape s{2, 4, 3, 5};
  const auto x = testing::randn<double>(s, 50, 2.0);
  const auto y = testing::labels<int64_t>({2, 3, 5}, 4, 51, 0.2);
  const auto y32 = testing::cast<int32_t>(y);
  CrossEntropyOptions<double> o;
  CHECK_COMPOSED(cross_entropy, x, y, o, kAll)
  o.weight = Tensor<double>::from({0.5, 2.0, 1.0, 0.25}, {4});
  o.label_smoothing = 0.2;
  CHECK_COMPOSED(cross_entropy, x, y, o, kAll)
  CHECK_COMPOSED(cross_entropy, x, y32, o, kAll)
  auto fcn = CrossEntropyOptions<double>::pytorch_fcn();
  fcn.weight = o.weight;
  auto yn = y32.clone();
  yn[3] = -1;
  yn[7] = -5;
  CHECK_COMPOSED(cross_entropy, x, yn, fcn, kAll)
  // Probability targets.
  Tape<double> t;
  const auto q = ad::softmax(t.leaf(testing::randn<double>(s, 52))).value().clone();
  CrossEntropyOptions<double> po;
  po.weight = o.weight;
  po.label_smoothing = 0.1;
  CHECK_COMPOSED(cross_entropy, x, q, po, kAll)
  po.ignore_index = -1;  // any negative ignore_index changes nothing with probabilities (PyTorch)
  CHECK_COMPOSED(cross_entropy, x, q, po, kAll)
  po.ignore_index = 2;
  {
    Tape<double> tape;
    CHECK_THROWS_WITH_AS(composed::cross_entropy(tape, tape.leaf(x), q, po),
                         doctest::Contains("composed::cross_entropy: options.ignore_index is 2; "
                                           "with probability targets it must be negative"),
                         Error);
  }
  // Every pixel ignored: 0 (default) or NaN, with a zero gradient.
  const auto all = Tensor<int64_t>::full({2, 3, 5}, -100);
  for (AllIgnored a : {AllIgnored::zero, AllIgnored::nan}) {
    CrossEntropyOptions<double> ao;
    ao.all_ignored = a;
    Tape<double> tape;
    const Var<double> v = tape.leaf(x);
    const Var<double> l = composed::cross_entropy(tape, v, all, ao);
    tape.backward(l);
    CHECK(std::isnan(l.item()) == (a == AllIgnored::nan));
    CHECK(max_abs(tape.grad(v)) == 0.0);
  }
}

TEST_CASE("composed: softmax_focal equals the fused loss") {
  const Shape s{2, 3, 4, 4};
  const auto x = testing::randn<double>(s, 53, 2.0);
  const auto y = testing::labels<int32_t>({2, 4, 4}, 3, 54, 0.15);
  for (double gamma : {2.0, 0.0, 0.5}) {
    CAPTURE(gamma);
    SoftmaxFocalOptions<double> o;
    o.gamma = gamma;
    CHECK_COMPOSED(softmax_focal, x, y, o, kAll)
    o.alpha = Tensor<double>::from({0.25, 1.0, 2.0}, {3});
    CHECK_COMPOSED(softmax_focal, x, y, o, kAll)
  }
}

TEST_CASE(
    "composed: softmax_dice, softmax_jaccard, softmax_tversky and generalized_dice equal "
    "the fused losses") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 55, 2.0);
  auto y = testing::labels<int64_t>({2, 4, 5}, 3, 56, 0.1);
  for (int64_t i = 0; i < 20; ++i)  // image 0 has no class 2
    if (y[i] == 2) y[i] = 0;
  Tape<double> t;
  const auto q = ad::softmax(t.leaf(testing::randn<double>(s, 57))).value().clone();
  for (int k = 0; k <= 7; ++k) {
    if (k == 3 || k == 4) continue;  // pixel weights and probabilities as input: binary only
    CAPTURE(k);
    auto o = overlap_variant<SoftmaxTverskyOptions<double>>(k, s);
    CHECK_COMPOSED(softmax_dice, x, y, static_cast<SoftmaxOverlapOptions<double>&>(o), kAll)
    CHECK_COMPOSED(softmax_jaccard, x, q, static_cast<SoftmaxOverlapOptions<double>&>(o), kAll)
    o.squared = false;
    o.alpha = 0.7;
    o.beta = 0.3;
    CHECK_COMPOSED(softmax_tversky, x, y, o, kAll)
  }
  SoftmaxOverlapOptions<double> lo;
  lo.log = true;
  CHECK_COMPOSED(softmax_dice, x, y, lo, kAll)

  for (auto w : {GeneralizedDiceWeight::square, GeneralizedDiceWeight::simple,
                 GeneralizedDiceWeight::uniform}) {
    for (bool per_image : {true, false}) {
      GeneralizedDiceOptions<double> g;
      g.w_type = w;
      g.per_image = per_image;
      CHECK_COMPOSED(generalized_dice, x, y, g, kAll)
      g.include_background = false;
      CHECK_COMPOSED(generalized_dice, x, q, g, kAll)
    }
  }
}

TEST_CASE("composed: ce_dice and dice_focal equal the fused losses") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 58, 2.0);
  const auto y = testing::labels<int32_t>({2, 4, 5}, 3, 59, 0.1);
  CeDiceOptions<double> o;
  o.ce_weight = 0.6;
  o.dice_weight = 1.4;
  o.ce.label_smoothing = 0.1;
  o.dice.include_background = false;
  DiceFocalOptions<double> f;
  f.focal.gamma = 1.5;
  f.dice.per_image = false;
  for (Reduction r : kScalar) {
    o.ce.reduction = o.dice.reduction = f.dice.reduction = f.focal.reduction = r;
    check_composed_scalar(
        x, [&](Tape<double>& t, const Var<double>& v) { return composed::ce_dice(t, v, y, o); },
        [&](const Tensor<double>& v) { return ce_dice_value_and_grad(v, y, o); });
    check_composed_scalar(
        x, [&](Tape<double>& t, const Var<double>& v) { return composed::dice_focal(t, v, y, f); },
        [&](const Tensor<double>& v) { return dice_focal_value_and_grad(v, y, f); });
  }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: errors") {
  Tape<double> tape, other;
  const auto x = testing::randn<double>({2, 3, 4, 4}, 60);
  const Var<double> v = tape.leaf(x);
  CHECK_THROWS_WITH_AS(tape.backward(v),
                       doctest::Contains("ad::Tape::backward: the loss (leaf, Var #0) has shape "
                                         "(2,3,4,4); backward starts from a one-element scalar"),
                       Error);
  const Var<double> w = tape.leaf(testing::randn<double>({2, 3, 4, 5}, 61));
  CHECK_THROWS_WITH_AS(v + w,
                       "ad::add: shapes (2,3,4,4) and (2,3,4,5) do not broadcast (one operand "
                       "must broadcast to the other's shape)",
                       Error);
  const Var<double> u = other.leaf(x);
  CHECK_THROWS_WITH_AS(v * u, doctest::Contains("ad::mul: Var #0 belongs to another tape"), Error);
  CHECK_THROWS_WITH_AS(other.backward(ad::sum(v)),
                       doctest::Contains("ad::Tape::backward: Var #2 belongs to another tape"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::exp(Var<double>()), doctest::Contains("undefined"), Error);
  const Var<double> c = tape.constant(x);
  tape.backward(ad::sum(v));
  CHECK_THROWS_WITH_AS(tape.grad(c), doctest::Contains("ad::Tape::grad: Var #"), Error);
  CHECK_THROWS_WITH_AS(ad::sum_per_class(ad::sum(v)),
                       doctest::Contains("ad::sum_per_class: the input () has no class axis"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::reshape(v, Shape{5}), doctest::Contains("ad::reshape: cannot reshape"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::clamp(v, 1.0, 0.0), "ad::clamp: lo 1 is above hi 0", Error);
  // Loss nodes are scalars; composed losses check their arguments as the fused ones do.
  BceWithLogitsOptions<double> none;
  none.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(ad::bce_with_logits(v, x, none),
                       doctest::Contains("ad::bce_with_logits: reduction none is not a loss node"),
                       Error);
  CHECK_THROWS_WITH_AS(composed::soft_dice(tape, v, testing::mask<double>({2, 3, 4, 5}, 62)),
                       "composed::soft_dice: target (2,3,4,5) does not match logits (2,3,4,4)",
                       Error);
  CHECK_THROWS_WITH_AS(composed::soft_dice(other, v, x),
                       doctest::Contains("composed::soft_dice: Var #0 belongs to another tape"),
                       Error);
  const auto bad = Tensor<int64_t>::full({2, 4, 4}, 3);
  CHECK_THROWS_WITH_AS(composed::cross_entropy(tape, v, bad),
                       doctest::Contains("composed::cross_entropy: target has label 3 at (0,0,0)"),
                       Error);
  // Tensor options are named by their path from `options`, as the scalar ones.
  CrossEntropyOptions<double> cw;
  cw.weight = Tensor<double>::full({4}, 1.0);
  CHECK_THROWS_WITH_AS(
      composed::cross_entropy(tape, v, testing::labels<int64_t>({2, 4, 4}, 3, 66), cw),
      "composed::cross_entropy: options.weight (4) has 4 values; expected one "
      "per class (3) of logits (2,3,4,4)",
      Error);
  SigmoidFocalOptions<double> fw;
  fw.weight = Tensor<double>::full({5, 1, 1}, 1.0);
  CHECK_THROWS_WITH_AS(composed::sigmoid_focal(tape, v, x, fw),
                       doctest::Contains("composed::sigmoid_focal: options.weight (5,1,1) does "
                                         "not broadcast to the input (2,3,4,4)"),
                       Error);
  BceWithLogitsOptions<double> bw;
  bw.pos_weight = Tensor<double>::full({2}, 1.0);
  CHECK_THROWS_WITH_AS(composed::bce_with_logits(tape, v, x, bw),
                       doctest::Contains("composed::bce_with_logits: options.pos_weight (2) is "
                                         "neither one value nor one per channel"),
                       Error);
  BceDiceOptions<double> bd;
  bd.dice.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(composed::bce_dice(tape, v, x, bd),
                       doctest::Contains("composed::bce_dice: reduction none is not supported"),
                       Error);
  // A combined loss's term errors name the combined loss and the term, as the fused ones do.
  bd = {};
  bd.bce.label_smoothing = 2.0;
  CHECK_THROWS_WITH_AS(composed::bce_dice(tape, v, testing::mask<double>({2, 3, 4, 4}, 63), bd),
                       "composed::bce_dice: in the BCE term: composed::bce_with_logits: "
                       "options.label_smoothing is 2; it must be in [0, 1]",
                       Error);
  bd = {};
  bd.dice.smooth_nr = -1.0;
  CHECK_THROWS_WITH_AS(composed::bce_dice(tape, v, testing::mask<double>({2, 3, 4, 4}, 64), bd),
                       "composed::bce_dice: in the Dice term: composed::soft_dice: "
                       "options.smooth_nr is -1; it must be finite and >= 0",
                       Error);
  const auto y = testing::labels<int64_t>({2, 4, 4}, 3, 65);
  CeDiceOptions<double> cd;
  cd.ce.label_smoothing = 1.5;
  CHECK_THROWS_WITH_AS(composed::ce_dice(tape, v, y, cd),
                       "composed::ce_dice: in the cross-entropy term: composed::cross_entropy: "
                       "options.label_smoothing is 1.5; it must be in [0, 1]",
                       Error);
  DiceFocalOptions<double> df;
  df.focal.gamma = -1.0;
  CHECK_THROWS_WITH_AS(composed::dice_focal(tape, v, y, df),
                       "composed::dice_focal: in the focal term: composed::softmax_focal: "
                       "options.gamma is -1; it must be finite and >= 0",
                       Error);
  df = {};
  df.dice.class_weight = Tensor<double>::full({5}, 1.0);
  CHECK_THROWS_WITH_AS(composed::dice_focal(tape, v, y, df),
                       doctest::Contains("composed::dice_focal: in the Dice term: "
                                         "composed::softmax_dice: options.class_weight (5)"),
                       Error);
  tape.clear();
  CHECK_THROWS_WITH_AS(ad::exp(v), doctest::Contains("was made before the tape was cleared"),
                       Error);
}

// From a review (2026-12-03): Tape::record took an undefined value (the next op read through a
// null pointer), accumulate took a contribution of another shape (it read past its end, or kept
// it as the gradient), a backward that failed half way left grad() returning zeros or a part of
// the gradients, and one_hot's overflowing class count was reported by Shape, not by the op.
TEST_CASE(
    "tape: record and accumulate check their tensors, and a failed backward leaves no gradient") {
  using Fn = Tape<double>::Backward;
  Tape<double> tape;
  const Var<double> x = tape.leaf(Tensor<double>::from({1, 2, 3, 4}, {4}));
  CHECK_THROWS_WITH_AS(tape.record("my_op", Tensor<double>(), {x}, Fn()),
                       "my_op: the value to record is undefined", Error);
  const Var<double> w = tape.leaf(Tensor<double>::from({1, 2, 3}, {3}));
  for (const bool adopt : {false, true}) {
    for (const double scale : {1.0, 2.0}) {
      CAPTURE(adopt);
      CAPTURE(scale);
      const Fn short_grad = [x, adopt, scale](Tape<double>& t, const Tensor<double>&) {
        t.accumulate(x, Tensor<double>::full({2}, 1.0), scale, adopt);
      };
      // Recorded before w's ops, so backward reaches it after w's gradient is made.
      const Var<double> bad = tape.record("my_op", x.value().clone(), {x}, short_grad);
      const Var<double> loss = ad::sum(bad) + ad::sum(w * w);
      tape.backward(ad::sum(w * w));  // a good backward first: its gradients are dropped
      CHECK(tape.grad(w)[2] == 6.0);
      CHECK_THROWS_WITH_AS(tape.backward(loss),
                           "ad::Tape::backward: a gradient of shape (2) flows into Var #0 (leaf) "
                           "of shape (4)",
                           Error);
      CHECK_THROWS_WITH_AS(tape.grad(w),
                           "ad::Tape::grad: no gradients: call backward(loss) first (a backward "
                           "that raised an error leaves none)",
                           Error);
      CHECK_THROWS_WITH_AS(tape.grad(x), doctest::Contains("no gradients"), Error);
    }
  }
  const Var<double> none =
      tape.record("my_op", x.value().clone(), {x}, [x](Tape<double>& t, const Tensor<double>&) {
        t.accumulate(x, Tensor<double>(), 1.0, true);
      });
  CHECK_THROWS_WITH_AS(tape.backward(ad::sum(none)),
                       "ad::Tape::backward: a gradient of shape (undefined) flows into Var #0 "
                       "(leaf) of shape (4)",
                       Error);
  // The tape works on after the errors.
  tape.backward(ad::sum(x * w.value()[0]) + ad::sum(w * w));
  CHECK(tape.grad(x)[3] == 1.0);
  CHECK(tape.grad(w)[1] == 4.0);
  CHECK_THROWS_WITH_AS(ad::one_hot(tape, Tensor<int64_t>::from({0, 1}, {2}), int64_t{1} << 62),
                       "ad::one_hot: classes is 4611686018427387904; a one-hot tensor of labels "
                       "(2) with as many classes has more than 2^63 - 1 elements",
                       Error);
  CHECK(ad::one_hot(tape, Tensor<int64_t>::from({0, 1}, {2}), 3).shape() == Shape{2, 3});
}

// From a review (2026-12-02): a Var of a cleared tape was accepted once new nodes filled its
// position (it read another node's value), grad() after clear() returned zeros instead of asking
// for backward(), an undefined first operand's error named ad::Var instead of the op, and clamp
// took NaN bounds (lo ignored in the value, every gradient 0).
TEST_CASE("tape: clear() invalidates old Vars and gradients, errors name the op") {
  Tape<double> tape;
  const Var<double> x = tape.leaf(Tensor<double>::from({1.0, 2.0, 3.0}, {3}));
  const Var<double> y = ad::exp(x);
  tape.backward(ad::sum(y));
  tape.clear();
  const Var<double> x2 = tape.leaf(Tensor<double>::from({4.0, 5.0}, {2}));
  tape.leaf(Tensor<double>::from({6.0}, {1}));
  tape.leaf(Tensor<double>::from({7.0}, {1}));  // positions 0..2 are taken again
  CHECK_THROWS_WITH_AS(ad::sum(x * 2.0), "ad::mul: Var #0 was made before the tape was cleared",
                       Error);
  CHECK_THROWS_WITH_AS(ad::sum(y), "ad::sum: Var #1 was made before the tape was cleared", Error);
  CHECK_THROWS_WITH_AS(tape.grad(x2), doctest::Contains("backward"), Error);
  const Var<double> l = ad::sum(x2 * x2);
  tape.backward(l);
  CHECK(tape.grad(x2)[1] == 10.0);

  const Var<double> none;
  CHECK_THROWS_WITH_AS(ad::add(none, x2), "ad::add: a Var is undefined (default-constructed)",
                       Error);
  CHECK_THROWS_WITH_AS(ad::exp(none), "ad::exp: a Var is undefined (default-constructed)", Error);
  CHECK_THROWS_WITH_AS(ad::sum(none), "ad::sum: a Var is undefined (default-constructed)", Error);
  CHECK_THROWS_WITH_AS(ad::where(Tensor<double>::from({1.0, 0.0}, {2}), none, x2),
                       "ad::where: a Var is undefined (default-constructed)", Error);
  CHECK_THROWS_WITH_AS(ad::pow(none, 0.5), "ad::pow: a Var is undefined (default-constructed)",
                       Error);
  CHECK_THROWS_WITH_AS(
      ad::bce_with_logits(none, Tensor<double>::zeros({2})),
      doctest::Contains("ad::bce_with_logits: a Var is undefined (default-constructed)"), Error);

  CHECK_THROWS_WITH_AS(ad::clamp(x2, std::nan(""), 1.0),
                       "ad::clamp: the bounds are lo nan and hi 1; neither may be NaN", Error);
  CHECK_THROWS_WITH_AS(ad::clamp(x2, 0.0, std::nan("")), doctest::Contains("neither may be NaN"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::clamp(x2, 2.0, 1.0), "ad::clamp: lo 2 is above hi 1", Error);
  CHECK(ad::clamp(x2, 0.0, std::numeric_limits<double>::infinity()).value()[0] == 4.0);
}

// ---------------------------------------------------------------------------------------------
// Group primitives (sort_desc, cumsum, adjacent_diff, segment_sum, gather, relu) and the
// composed Lovász losses
// ---------------------------------------------------------------------------------------------

namespace {

// Groups of 4, 0 (empty), 1 and 7 elements over 12 values.
const std::vector<int64_t> kGroups = {0, 4, 4, 5, 12};

}  // namespace

TEST_CASE("tape: group primitives against finite differences (an empty group, a group of 1)") {
  const auto x = testing::randn<double>({3, 4}, 90, 2.0);  // distinct values: no ties
  SUBCASE("sort_desc") {
    check_primitive(
        {x}, [](Tape<double>&, const Vars& v) { return ad::sort_desc(v[0], kGroups).values; });
    // The permutation: descending within each group, inside the group.
    Tape<double> t;
    const auto s = ad::sort_desc(t.leaf(x), kGroups);
    for (size_t j = 0; j + 1 < kGroups.size(); ++j)
      for (int64_t k = kGroups[j]; k < kGroups[j + 1]; ++k) {
        CHECK(s.perm[k] >= kGroups[j]);
        CHECK(s.perm[k] < kGroups[j + 1]);
        CHECK(s.values.value()[k] == x[s.perm[k]]);
        if (k > kGroups[j]) CHECK(s.values.value()[k - 1] > s.values.value()[k]);
      }
  }
  SUBCASE("cumsum") {
    check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::cumsum(v[0], kGroups); });
  }
  SUBCASE("adjacent_diff") {
    check_primitive({x},
                    [](Tape<double>&, const Vars& v) { return ad::adjacent_diff(v[0], kGroups); });
  }
  SUBCASE("segment_sum") {
    check_primitive({x},
                    [](Tape<double>&, const Vars& v) { return ad::segment_sum(v[0], kGroups); });
    Tape<double> t;
    const auto s = ad::segment_sum(t.leaf(x), kGroups).value();
    REQUIRE(s.shape() == Shape{4});
    CHECK(s[0] == doctest::Approx(x[0] + x[1] + x[2] + x[3]));
    CHECK(s[1] == 0.0);  // the empty group
    CHECK(s[2] == x[4]);
  }
  SUBCASE("gather, with repeated indices (scatter-add)") {
    const auto index = Tensor<int64_t>::from({3, 0, 3, 11, 7, 7, 7, 5}, {2, 4});
    check_primitive({x}, [&](Tape<double>&, const Vars& v) { return ad::gather(v[0], index); });
    Tape<double> t;
    const Var<double> v = t.leaf(x);
    const Var<double> y = ad::gather(v, index);
    CHECK(y.shape() == Shape{2, 4});
    CHECK(y.value()[3] == x[11]);
    t.backward(ad::sum(y));
    CHECK(t.grad(v)[7] == 3.0);  // used three times
    CHECK(t.grad(v)[1] == 0.0);  // not used
  }
  SUBCASE("relu (away from its kink)") {
    check_primitive({x}, [](Tape<double>&, const Vars& v) { return ad::relu(v[0]); });
  }
  SUBCASE("composed: the Lovász gradient vector of a sorted ground truth") {
    // The chain the composed losses use, with respect to every input, in one gradcheck.
    check_primitive({x}, [](Tape<double>&, const Vars& v) {
      const Var<double> c = ad::cumsum(ad::sort_desc(v[0], kGroups).values, kGroups);
      return ad::adjacent_diff(c * c, kGroups) / (1.0 + ad::relu(v[0]));
    });
  }
  // cumsum and adjacent_diff are inverses.
  Tape<double> t;
  const auto back = ad::adjacent_diff(ad::cumsum(t.leaf(x), kGroups), kGroups).value();
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(back[i] == doctest::Approx(x[i]).epsilon(1e-14));
}

TEST_CASE("tape: sort_desc ties keep index order, a NaN sorts first, and backward scatters") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Group 0: ties at 2 and at 0 (with -0), group 1: a NaN among ties, group 2: size 1.
  const auto x =
      Tensor<double>::from({0.0, 2.0, -0.0, 2.0, 1.0, 2.0, 3.0, 3.0, nan, 3.0, nan, 5.0}, {12});
  const std::vector<int64_t> groups = {0, 6, 11, 12};
  Tape<double> t;
  const Var<double> v = t.leaf(x);
  const auto s = ad::sort_desc(v, groups);
  const std::vector<int64_t> want = {1, 3, 5, 4, 0, 2, 8, 10, 6, 7, 9, 11};
  for (int64_t k = 0; k < 12; ++k) {
    CAPTURE(k);
    CHECK(s.perm[k] == want[static_cast<size_t>(k)]);
  }
  // Backward holds the permutation: x_bar[perm[k]] = r[k] exactly, also where values tie.
  const auto r = testing::randn<double>({12}, 91);
  t.backward(ad::sum(s.values * t.constant(r)));
  for (int64_t k = 0; k < 12; ++k) CHECK(t.grad(v)[want[static_cast<size_t>(k)]] == r[k]);
  // Float: the same order.
  Tape<float> tf;
  const auto sf = ad::sort_desc(tf.leaf(testing::cast<float>(x)), groups);
  for (int64_t k = 0; k < 12; ++k) CHECK(sf.perm[k] == want[static_cast<size_t>(k)]);
}

TEST_CASE("tape: relu passes no gradient at 0, and the group primitives' errors") {
  Tape<double> t;
  const auto x = Tensor<double>::from({-1.0, 0.0, 2.0}, {3});
  const Var<double> v = t.leaf(x);
  t.backward(ad::sum(ad::relu(v)));
  CHECK(t.grad(v)[0] == 0.0);
  CHECK(t.grad(v)[1] == 0.0);  // relu'(0) = 0; clamp(x, 0, inf) would give 1
  CHECK(t.grad(v)[2] == 1.0);
  CHECK_THROWS_WITH_AS(ad::sort_desc(v, {0, 2}),
                       doctest::Contains("ad::sort_desc: offsets must start at 0 and end at the "
                                         "element count 3"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::cumsum(v, {0, 2, 1, 3}),
                       "ad::cumsum: offsets[2] = 1 is smaller than offsets[1] = 2", Error);
  CHECK_THROWS_WITH_AS(ad::segment_sum(v, {}), doctest::Contains("ad::segment_sum: offsets"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::gather(v, Tensor<int64_t>::from({0, 3}, {2})),
                       "ad::gather: index 3 at (1) is outside [0, 3) of the input (3)", Error);
}

TEST_CASE("composed: lovasz_softmax equals the fused loss (every option)") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 92, 2.0);
  auto y = testing::labels<int64_t>({2, 4, 5}, 3, 93, 0.15);
  for (int64_t i = 0; i < 20; ++i)  // image 0 has no class 2
    if (y[i] == 2) y[i] = 1;
  const auto y32 = testing::cast<int32_t>(y);
  for (bool per_image : {false, true}) {
    CAPTURE(per_image);
    LovaszSoftmaxOptions<double> o;
    o.per_image = per_image;
    CHECK_COMPOSED(lovasz_softmax, x, y, o, kAll)
    o.classes = LovaszClasses::all;
    CHECK_COMPOSED(lovasz_softmax, x, y32, o, kAll)
    o.class_list = {2, 0};
    CHECK_COMPOSED(lovasz_softmax, x, y, o, kAll)
    auto y255 = y32.clone();  // ignore_index 255
    for (auto& v : y255)
      if (v == -100) v = 255;
    LovaszSoftmaxOptions<double> i255;
    i255.per_image = per_image;
    i255.ignore_index = 255;
    CHECK_COMPOSED(lovasz_softmax, x, y255, i255, kAll)
  }
  // Edge cases: image 1 all ignored (per image), a 3D volume, N = 1, a 1x1 image, |x| = 1e4
  // (probabilities 0 or 1: errors tie at 0 and keep pixel order in both).
  auto yi = y.clone();
  for (int64_t i = 20; i < 40; ++i) yi[i] = -100;
  LovaszSoftmaxOptions<double> pi;
  pi.per_image = true;
  CHECK_COMPOSED(lovasz_softmax, x, yi, pi, kAll)
  const auto all_ignored = Tensor<int64_t>::full({2, 4, 5}, -100);
  CHECK_COMPOSED(lovasz_softmax, x, all_ignored, pi, kAll)
  const auto x3 = testing::randn<double>({2, 4, 3, 3, 2}, 94, 2.0);
  const auto y3 = testing::labels<int64_t>({2, 3, 3, 2}, 4, 95, 0.1);
  CHECK_COMPOSED(lovasz_softmax, x3, y3, LovaszSoftmaxOptions<double>{}, kAll)
  const auto x1 = testing::randn<double>({1, 3, 1, 1}, 96);
  const auto y1 = Tensor<int64_t>::from({2}, {1, 1, 1});
  CHECK_COMPOSED(lovasz_softmax, x1, y1, pi, kAll)
  auto big = testing::randn<double>(s, 97);
  for (auto& v : big) v = v > 0 ? 1e4 : -1e4;
  CHECK_COMPOSED(lovasz_softmax, big, y, LovaszSoftmaxOptions<double>{}, kAll)
}

TEST_CASE("composed: lovasz_hinge equals the fused loss (every option, ties)") {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<double>(s, 98, 2.0);
  const auto z = testing::mask<double>(s, 99);
  for (bool per_image : {true, false}) {
    CAPTURE(per_image);
    LovaszHingeOptions<double> o;
    o.per_image = per_image;
    CHECK_COMPOSED(lovasz_hinge, x, z, o, kAll)
    auto zi = z.clone();
    for (int64_t i = 0; i < zi.numel(); i += 5) zi[i] = 255;
    o.ignore = 255.0;
    CHECK_COMPOSED(lovasz_hinge, x, zi, o, kAll)
    // Ties: logits on a grid of four values, so many errors are equal (and many are <= 0).
    auto grid = x.clone();
    for (auto& v : grid) v = std::round(v) / 2;
    CHECK_COMPOSED(lovasz_hinge, grid, z, o, kAll)
  }
  // One image all ignored, a 3D volume, N = 1 with a 1x1 image, |x| = 1e4.
  LovaszHingeOptions<double> ig;
  ig.ignore = 255.0;
  auto zi = z.clone();
  for (int64_t i = 60; i < 120; ++i) zi[i] = 255;
  CHECK_COMPOSED(lovasz_hinge, x, zi, ig, kAll)
  const auto x3 = testing::randn<double>({2, 1, 3, 3, 2}, 100, 2.0);
  CHECK_COMPOSED(lovasz_hinge, x3, testing::mask<double>(x3.shape(), 101),
                 LovaszHingeOptions<double>{}, kAll)
  const auto x1 = Tensor<double>::from({0.3}, {1, 1, 1, 1});
  CHECK_COMPOSED(lovasz_hinge, x1, Tensor<double>::from({1.0}, {1, 1, 1, 1}),
                 LovaszHingeOptions<double>{}, kAll)
  auto big = x.clone();
  for (auto& v : big) v = v > 0 ? 1e4 : -1e4;
  CHECK_COMPOSED(lovasz_hinge, big, z, LovaszHingeOptions<double>{}, kAll)
}

TEST_CASE("composed: the Lovász losses check their arguments as the fused ones do") {
  Tape<double> tape;
  const Var<double> v = tape.leaf(testing::randn<double>({2, 3, 4, 4}, 102));
  const auto bad = Tensor<int64_t>::full({2, 4, 4}, 3);
  CHECK_THROWS_WITH_AS(composed::lovasz_softmax(tape, v, bad),
                       doctest::Contains("composed::lovasz_softmax: target has label 3 at (0,0,0)"),
                       Error);
  LovaszSoftmaxOptions<double> o;
  o.class_list = {1, 3};
  CHECK_THROWS_WITH_AS(composed::lovasz_softmax(tape, v, Tensor<int64_t>::zeros({2, 4, 4}), o),
                       "composed::lovasz_softmax: options.class_list[1] is 3, outside [0, 3) of "
                       "logits (2,3,4,4)",
                       Error);
  o.class_list = {1, 1};
  CHECK_THROWS_WITH_AS(composed::lovasz_softmax(tape, v, Tensor<int64_t>::zeros({2, 4, 4}), o),
                       "composed::lovasz_softmax: options.class_list repeats class 1", Error);
  const auto t = Tensor<double>::full({2, 3, 4, 4}, 0.5);
  CHECK_THROWS_WITH_AS(composed::lovasz_hinge(tape, v, t),
                       doctest::Contains("composed::lovasz_hinge: target has label 0.5 at "
                                         "(0,0,0,0); expected 0 or 1"),
                       Error);
}
