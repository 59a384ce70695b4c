// One test case per row of docs/edge-cases.md: bad input and extreme values across the loss
// families and the metrics. Each TEST_CASE name starts with "edge:" and the row's key, which the
// table cites.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <locale>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "loss_check.hpp"

using namespace segloss;
using segloss::testing::error_of;
using segloss::testing::labels;
using segloss::testing::mask;
using segloss::testing::randn;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// f raises segloss::Error and its message contains every part.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  const std::string m = error_of(f);
  INFO("message: ", m);
  for (const auto& p : parts) CHECK(m.find(p) != std::string::npos);
}

template <class T>
bool all_finite(const Tensor<T>& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(static_cast<double>(t[i]))) return false;
  return true;
}

template <class T>
bool all_zero(const Tensor<T>& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t[i] != T(0)) return false;
  return true;
}

// A view of a host buffer tagged as a CUDA tensor (never dereferenced: the checks reject it).
template <class T>
Tensor<T> cuda_view(const Tensor<T>& host) {
  return Tensor<T>::view(host.data(), host.shape(), Device::cuda);
}

// Detection of a callable overload: mixing dtypes is a compile-time error.
template <class A, class B, class = void>
struct CanBce : std::false_type {};
template <class A, class B>
struct CanBce<A, B,
              std::void_t<decltype(bce_with_logits(std::declval<const Tensor<A>&>(),
                                                   std::declval<const Tensor<B>&>()))>>
    : std::true_type {};

template <class A, class B, class = void>
struct CanCrossEntropy : std::false_type {};
template <class A, class B>
struct CanCrossEntropy<A, B,
                       std::void_t<decltype(cross_entropy(std::declval<const Tensor<A>&>(),
                                                          std::declval<const Tensor<B>&>()))>>
    : std::true_type {};

template <class P, class L, class = void>
struct CanConfusion : std::false_type {};
template <class P, class L>
struct CanConfusion<P, L,
                    std::void_t<decltype(std::declval<ConfusionMatrix&>().update(
                        std::declval<const Tensor<P>&>(), std::declval<const Tensor<L>&>()))>>
    : std::true_type {};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shapes, ranks, dtypes, devices

TEST_CASE("edge: shape mismatch between input and target, every family") {
  const auto x = randn<float>({2, 3, 4, 5}, 1);
  const auto t = mask<float>({2, 3, 4, 4}, 2);
  const auto lab = labels<int64_t>({2, 4, 4}, 3, 3);
  expect_error([&] { bce_with_logits(x, t); }, {"bce_with_logits: target (2,3,4,4)", "(2,3,4,5)"});
  expect_error([&] { binary_cross_entropy(x, t); }, {"binary_cross_entropy:", "(2,3,4,4)"});
  expect_error([&] { soft_dice(x, t); }, {"soft_dice:", "(2,3,4,4)"});
  expect_error([&] { sigmoid_focal(x, t); }, {"sigmoid_focal:", "(2,3,4,4)"});
  expect_error([&] { lovasz_hinge(x, t); }, {"lovasz_hinge:", "(2,3,4,4)"});
  expect_error([&] { cross_entropy(x, lab); }, {"cross_entropy:", "(2,4,4)"});
  expect_error([&] { softmax_dice(x, lab); }, {"softmax_dice:", "(2,4,4)"});
  expect_error([&] { softmax_focal(x, lab); }, {"softmax_focal:", "(2,4,4)"});
  expect_error([&] { lovasz_softmax(x, lab); }, {"lovasz_softmax:", "(2,4,4)"});
  expect_error([&] { dice_score(x, t); }, {"dice_score:", "(2,3,4,4)"});
  expect_error([&] { surface_distance(x, t); }, {"surface_distance:", "(2,3,4,4)"});
  ConfusionMatrix cm(3);
  const auto pred = labels<int64_t>({2, 4, 5}, 3, 4);
  expect_error([&] { cm.update(pred, lab); }, {"(2,4,4)", "(2,4,5)"});
}

TEST_CASE("edge: rank outside 3..5 (N, C, 1 to 3 spatial axes) is an error") {
  for (const Shape& s : {Shape{7}, Shape{4, 5}}) {  // Shape itself stops at rank 5
    CAPTURE(s);
    const auto x = randn<float>(s, 1);
    const auto t = mask<float>(s, 2);
    expect_error([&] { bce_with_logits(x, t); }, {"bce_with_logits: logits", "has rank"});
    expect_error([&] { soft_dice(x, t); }, {"soft_dice: logits", "has rank"});
    expect_error([&] { sigmoid_focal(x, t); }, {"sigmoid_focal: logits", "has rank"});
    expect_error([&] { dice_score(x, t); }, {"dice_score:", "rank"});
  }
  const auto x2 = randn<float>({4, 5}, 1);
  const auto l1 = labels<int64_t>({4}, 5, 2);
  expect_error([&] { cross_entropy(x2, l1); }, {"cross_entropy: logits", "rank"});
  expect_error([&] { softmax_dice(x2, l1); }, {"softmax_dice: logits", "rank"});
}

TEST_CASE("edge: dtype mismatches are compile-time errors") {
  // A loss takes logits and targets of one floating type; labels are int32 or int64.
  static_assert(CanBce<float, float>::value && CanBce<double, double>::value);
  static_assert(!CanBce<float, double>::value && !CanBce<double, float>::value);
  static_assert(CanCrossEntropy<float, int64_t>::value && CanCrossEntropy<float, int32_t>::value);
  static_assert(CanCrossEntropy<float, float>::value);  // class probabilities
  static_assert(!CanCrossEntropy<float, double>::value);
  static_assert(CanConfusion<int32_t, int64_t>::value);
  static_assert(!CanConfusion<float, int64_t>::value && !CanConfusion<int64_t, double>::value);
  CHECK(!CanBce<float, double>::value);
}

// Without the CUDA backend every CUDA tensor is refused ("... is on device cuda"); with it, a
// call mixing devices is refused ("... is on device cpu, but logits are on cuda"), and so is a
// CUDA tensor given to a function without a CUDA path. Both messages name the function and cuda.
TEST_CASE("edge: a CUDA tensor beside a CPU one, or in a CPU-only build, is an error") {
  const auto x = randn<float>({1, 2, 3, 3}, 1);
  const auto t = mask<float>({1, 2, 3, 3}, 2);
  const auto lab = labels<int64_t>({1, 3, 3}, 2, 3);
  const std::string cuda = "cuda";
  expect_error([&] { bce_with_logits(cuda_view(x), t); }, {"bce_with_logits:", cuda});
  expect_error([&] { bce_with_logits(x, cuda_view(t)); }, {"bce_with_logits:", cuda});
  expect_error([&] { soft_dice(cuda_view(x), t); }, {"soft_dice:", cuda});
  expect_error([&] { cross_entropy(cuda_view(x), lab); }, {"cross_entropy:", cuda});
  expect_error([&] { cross_entropy(x, cuda_view(lab)); }, {"cross_entropy:", cuda});
  expect_error([&] { softmax_focal(cuda_view(x), lab); }, {"softmax_focal:", cuda});
  expect_error([&] { lovasz_softmax(cuda_view(x), lab); }, {"lovasz_softmax:", cuda});
  expect_error([&] { dice_score(cuda_view(x), t); }, {"dice_score:", cuda});
  ConfusionMatrix cm(2);
  expect_error([&] { cm.update(cuda_view(lab), lab); }, {cuda});
  expect_error([&] { surface_distance(cuda_view(x), t); }, {"surface_distance:", cuda});
}

TEST_CASE("edge: weight, pos_weight and class weights of the wrong shape") {
  const auto x = randn<float>({2, 3, 4, 5}, 1);
  const auto t = mask<float>({2, 3, 4, 5}, 2);
  const auto lab = labels<int64_t>({2, 4, 5}, 3, 3);
  BceWithLogitsOptions<float> b;
  b.weight = Tensor<float>::full({3, 2, 5}, 1.f);
  expect_error([&] { bce_with_logits(x, t, b); }, {"options.weight (3,2,5) does not broadcast"});
  b.weight = Tensor<float>();
  b.pos_weight = Tensor<float>::full({2}, 1.f);
  expect_error(
      [&] { bce_with_logits(x, t, b); },
      {"bce_with_logits: options.pos_weight (2) is neither one value nor one per channel"});
  CrossEntropyOptions<float> ce;
  ce.weight = Tensor<float>::full({4}, 1.f);
  expect_error([&] { cross_entropy(x, lab, ce); }, {"cross_entropy:", "options.weight (4)"});
  SoftmaxOverlapOptions<float> sd;
  sd.class_weight = Tensor<float>::full({2}, 1.f);
  expect_error([&] { softmax_dice(x, lab, sd); }, {"softmax_dice:", "class_weight"});
  SoftmaxFocalOptions<float> sf;
  sf.alpha = Tensor<float>::full({5}, 1.f);
  expect_error([&] { softmax_focal(x, lab, sf); }, {"softmax_focal:", "options.alpha (5)"});
}

TEST_CASE("edge: grad_out, grad buffers and value_and_grad with reduction none") {
  const auto x = randn<double>({2, 1, 4, 4}, 1);
  const auto t = mask<double>({2, 1, 4, 4}, 2);
  expect_error([&] { bce_with_logits_backward(x, t, Tensor<double>::full({2}, 1.0)); },
               {"bce_with_logits_backward: grad_out (2)"});
  auto grad = Tensor<double>::empty({2, 1, 4, 3});
  expect_error([&] { bce_with_logits_value_and_grad(x, t, grad); }, {"grad (2,1,4,3)"});
  expect_error([&] { soft_dice_value_and_grad(x, t, grad); }, {"grad (2,1,4,3)"});
  BceWithLogitsOptions<double> none;
  none.reduction = Reduction::none;
  expect_error([&] { bce_with_logits_value_and_grad(x, t, none); }, {"none"});
  SoftDiceOptions<double> dnone;
  dnone.reduction = Reduction::none;
  expect_error(
      [&] {
        soft_dice_backward(x, t, Tensor<double>::full({3, 1}, 1.0), dnone);
      },
      {"soft_dice_backward: grad_out (3,1)", "(2,1)"});
}

// ---------------------------------------------------------------------------------------------
// Options out of range

TEST_CASE("edge: options negative, NaN or out of range are errors naming the option") {
  const auto x = randn<double>({1, 2, 4, 4}, 1);
  const auto t = mask<double>({1, 2, 4, 4}, 2);
  const auto lab = labels<int64_t>({1, 4, 4}, 2, 3);
  for (double bad : {-1.0, kNaN, kInf}) {
    CAPTURE(bad);
    SoftDiceOptions<double> d;
    d.smooth_dr = bad;
    expect_error([&] { soft_dice(x, t, d); }, {"soft_dice: options.smooth_dr"});
    SoftmaxOverlapOptions<double> s;
    s.smooth_nr = bad;
    expect_error([&] { softmax_dice(x, lab, s); }, {"softmax_dice:", "smooth_nr"});
    BceWithLogitsOptions<double> b;
    b.label_smoothing = bad;
    expect_error([&] { bce_with_logits(x, t, b); }, {"bce_with_logits:", "label_smoothing"});
    CrossEntropyOptions<double> ce;
    ce.label_smoothing = bad;
    expect_error([&] { cross_entropy(x, lab, ce); }, {"cross_entropy:", "label_smoothing"});
    SigmoidFocalOptions<double> f;
    f.gamma = bad;
    expect_error([&] { sigmoid_focal(x, t, f); }, {"sigmoid_focal:", "gamma"});
    SoftmaxFocalOptions<double> sf;
    sf.gamma = bad;
    expect_error([&] { softmax_focal(x, lab, sf); }, {"softmax_focal:", "gamma"});
    SoftmaxTverskyOptions<double> tv;
    tv.alpha = bad;
    expect_error([&] { softmax_tversky(x, lab, tv); }, {"softmax_tversky:", "alpha"});
    SurfaceDistanceOptions so;
    so.tolerance = bad;
    expect_error([&] { surface_distance(x, t, so); }, {"surface_distance:", "tolerance"});
  }
  BceWithLogitsOptions<double> b;
  b.label_smoothing = 1.5;
  expect_error([&] { bce_with_logits(x, t, b); }, {"label_smoothing is 1.5"});
  SurfaceDistanceOptions so;
  so.percentile = 101;
  expect_error([&] { surface_distance(x, t, so); }, {"surface_distance:", "percentile"});
  so.percentile = 95;
  so.spacing = {1.0, -1.0};
  expect_error([&] { surface_distance(x, t, so); }, {"surface_distance:", "spacing"});
  DiceScoreOptions ds;
  ds.border = -1;
  expect_error([&] { dice_score(x, t, ds); }, {"dice_score:", "border"});
  expect_error([&] { ConfusionMatrix(0); }, {"num_classes is 0"});
  expect_error([&] { ConfusionMatrix(ConfusionMatrix::kMaxClasses + 1); }, {"num_classes is"});
  SoftmaxOverlapOptions<double> nobg;
  nobg.include_background = false;
  const auto x1 = randn<double>({1, 1, 4, 4}, 5);
  const auto l1 = Tensor<int64_t>::zeros({1, 4, 4});
  expect_error([&] { softmax_dice(x1, l1, nobg); }, {"softmax_dice:", "include_background"});
}

// ---------------------------------------------------------------------------------------------
// Labels out of range

TEST_CASE("edge: labels outside 0..C-1 and not ignore_index are errors naming the first one") {
  const auto x = randn<float>({2, 3, 4, 5}, 1);
  auto lab = labels<int64_t>({2, 4, 5}, 3, 3);
  lab[27] = 3;  // (1,1,2)
  lab[33] = -1;
  expect_error([&] { cross_entropy(x, lab); }, {"cross_entropy:", "(1,1,2)", "3"});
  expect_error([&] { softmax_focal(x, lab); }, {"softmax_focal:", "(1,1,2)"});
  expect_error([&] { softmax_dice(x, lab); }, {"softmax_dice:", "(1,1,2)"});
  expect_error([&] { lovasz_softmax(x, lab); }, {"lovasz_softmax:", "(1,1,2)"});
  ConfusionMatrix cm(3);
  const auto pred = labels<int64_t>({2, 4, 5}, 3, 4);
  expect_error([&] { cm.update(pred, lab); }, {"(1,1,2)"});
  // pytorch-fcn's rule drops them instead; the ignore_index is never an error.
  ConfusionMatrix dropped(3, ConfusionMatrixOptions::pytorch_fcn());
  dropped.update(pred, lab);
  CHECK(dropped.total() == 38);
  lab[27] = -100;
  lab[33] = -100;
  CHECK(std::isfinite(cross_entropy(x, lab)[0]));
}

// ---------------------------------------------------------------------------------------------
// NaN and infinity

TEST_CASE("edge: NaN in logits or targets propagates to the value, every family") {
  auto x = randn<double>({2, 3, 4, 5}, 1);
  auto t = mask<double>({2, 3, 4, 5}, 2);
  const auto lab = labels<int64_t>({2, 4, 5}, 3, 3);
  SUBCASE("in the logits") {
    x[17] = kNaN;
  }
  SUBCASE("in the target") {
    t[17] = kNaN;
  }
  const bool target_nan = std::isnan(t[17]);
  CHECK(std::isnan(bce_with_logits(x, t)[0]));
  CHECK(std::isnan(soft_dice(x, t)[0]));
  CHECK(std::isnan(soft_jaccard(x, t)[0]));
  CHECK(std::isnan(tversky(x, t)[0]));
  CHECK(std::isnan(sigmoid_focal(x, t)[0]));
  CHECK(std::isnan(bce_dice(x, t)[0]));
  CHECK(std::isnan(softmax_dice(x, t)[0]));  // class-probability targets
  if (!target_nan) {
    CHECK(std::isnan(cross_entropy(x, lab)[0]));
    CHECK(std::isnan(softmax_focal(x, lab)[0]));
    CHECK(std::isnan(softmax_dice(x, lab)[0]));
    CHECK(std::isnan(lovasz_softmax(x, lab)[0]));
    CHECK(std::isnan(lovasz_hinge(x, mask<double>(x.shape(), 3))[0]));
    // The value-and-gradient form: the NaN stays in its own element's gradient for the
    // pointwise losses.
    const auto vg = bce_with_logits_value_and_grad(x, t);
    CHECK(std::isnan(vg.value));
    CHECK(std::isnan(vg.grad[17]));
    CHECK(std::isfinite(vg.grad[16]));
  }
}

// conventions.md "NaN and infinity", gradients.md 3.6: a NaN in one Dice score makes that
// score's pixels NaN; the other score keeps a finite gradient in the linear form, NaN in the
// mean log form, and 0 in the mean clamp form (the clamp's slope at a NaN mean score is 0, as
// torch.clamp's backward).
TEST_CASE("edge: a NaN in one soft_dice score, by form: linear, log and clamp") {
  auto x = randn<double>({1, 2, 1, 4}, 5);
  const auto t = mask<double>({1, 2, 1, 4}, 6);
  x[1] = kNaN;  // plane 0
  for (int form = 0; form < 3; ++form) {
    CAPTURE(form);
    OverlapOptions<double> o;
    o.per_image = true;
    o.log = form == 1;
    o.clamp = form == 2;
    const auto r = soft_dice_value_and_grad(x, t, o);
    CHECK(std::isnan(r.value));
    for (int64_t i = 0; i < 4; ++i) CHECK(std::isnan(r.grad[i]));
    for (int64_t i = 4; i < 8; ++i) {
      if (form == 0) {
        CHECK(std::isfinite(r.grad[i]));
        CHECK(r.grad[i] != 0.0);
      } else if (form == 1) {
        CHECK(std::isnan(r.grad[i]));
      } else {
        CHECK(r.grad[i] == 0.0);
      }
    }
  }
}

TEST_CASE("edge: infinite logits are outside the contract: a non-finite value, never a crash") {
  auto x = randn<double>({1, 2, 3, 3}, 1);
  const auto t = mask<double>({1, 2, 3, 3}, 2);
  for (double inf : {kInf, -kInf}) {
    CAPTURE(inf);
    x[4] = inf;
    // BCE: +inf with target 1 is inf - inf, -inf with target 0 likewise; with the other target
    // the element loss is +inf. Either way the value is not finite, unless the target makes
    // the element exactly 0, which does not happen for both signs.
    auto t0 = t.clone();
    t0[4] = inf > 0 ? 0.0 : 1.0;
    CHECK(!std::isfinite(bce_with_logits(x, t0)[0]));
  }
  // check_finite reports them (next row).
  expect_error([&] { check_finite(x, "logits"); }, {"check_finite: logits (1,2,3,3) has -inf at"});
}

TEST_CASE("edge: check_finite raises with the first bad element, and the opt-in flag") {
  auto x = randn<float>({2, 3, 130, 70}, 1);  // several chunks per plane
  const auto t = mask<float>(x.shape(), 2);
  CHECK(first_non_finite(x) == -1);
  CHECK_NOTHROW(check_finite(x, "logits"));
  const int64_t late = x.numel() - 5, early = 30000;
  x[late] = static_cast<float>(kInf);
  x[early] = static_cast<float>(kNaN);
  CHECK(first_non_finite(x) == early);
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    CHECK(first_non_finite(x) == early);
  }
  set_num_threads(1);
  CHECK_THROWS_WITH_AS(check_finite(x, "logits"),
                       ("check_finite: logits (2,3,130,70) has nan at " +
                        x.shape().position(early) + " (element 30000)")
                           .c_str(),
                       Error);
  CHECK(first_non_finite(Tensor<int64_t>::zeros({3})) == -1);

  // The flag: off by default, the NaN propagates; on, the losses and metrics raise.
  CHECK(!check_finite_enabled());
  CHECK(std::isnan(bce_with_logits(x, t)[0]));
  set_check_finite(true);
  expect_error([&] { bce_with_logits(x, t); }, {"bce_with_logits: logits (2,3,130,70) has nan at"});
  expect_error([&] { soft_dice(x, t); }, {"soft_dice: logits", "nan"});
  expect_error(
      [&] {
        cross_entropy(x, labels<int64_t>({2, 130, 70}, 3, 4));
      },
      {"cross_entropy: logits", "nan"});
  expect_error([&] { dice_score(x, t); }, {"dice_score: pred", "nan"});
  auto tn = t.clone();
  tn[3] = static_cast<float>(-kInf);
  const auto xf = randn<float>(x.shape(), 5);
  expect_error([&] { bce_with_logits(xf, tn); }, {"bce_with_logits: target", "-inf at (0,0,0,3)"});
  CHECK_NOTHROW(bce_with_logits(xf, t));
  // Probability targets of the class-axis losses, and the confusion matrix's logits (a
  // reviewer's cases: they were not scanned).
  auto q = Tensor<double>::full({2, 3, 4, 4}, 1.0 / 3.0);
  const auto xq = randn<double>(q.shape(), 6);
  q[7] = std::nan("");
  expect_error([&] { cross_entropy(xq, q); }, {"cross_entropy: target (2,3,4,4) has nan at"});
  expect_error([&] { softmax_dice(xq, q); }, {"softmax_dice: target", "nan"});
  expect_error([&] { generalized_dice(xq, q); }, {"generalized_dice: target", "nan"});
  expect_error([&] { ce_dice(xq, q); }, {"ce_dice", "target", "nan"});
  ConfusionMatrix cm(3);
  auto xn = xq.clone();
  xn[5] = kInf;
  expect_error(
      [&] {
        cm.update_from_logits(xn, labels<int64_t>({2, 4, 4}, 3, 7));
      },
      {"ConfusionMatrix::update_from_logits: logits (2,3,4,4) has inf at"});
  CHECK(cm.total() == 0);
  set_check_finite(false);
  CHECK(std::isnan(soft_dice(x, t)[0]));
}

// A reviewer's case (2026-12-03): with both smoothing terms 0, an empty target and logits below
// about -88, p is subnormal in float, D about 1e-40, and the plane's coefficient ca = 2G/D
// overflowed when narrowed to float: ca * t = inf * 0 made every gradient NaN where the double
// gradient is 0. The coefficient is now clamped to float's range (pw::narrow_coefficient).
TEST_CASE("edge: an overlap coefficient beyond float's range does not make the gradient NaN") {
  auto run = [](Device d) {
    OverlapOptions<float> o;
    o.smooth_nr = o.smooth_dr = 0.0;
    for (const float x : {-95.f, -100.f, -103.f}) {
      CAPTURE(x);
      const auto logits = Tensor<float>::full({1, 1, 3}, x).to(d);
      const auto empty = Tensor<float>::zeros({1, 1, 3}).to(d);
      const auto vg = soft_dice_value_and_grad(logits, empty, o);
      const auto g = vg.grad.to(Device::cpu);
      CHECK(vg.value == 1.0);
      CHECK(all_zero(g));
    }
    // softmax_dice: class 1 absent from the target, its logits far below class 0's.
    SoftmaxOverlapOptions<float> so;
    so.smooth_nr = so.smooth_dr = 0.0;
    auto sx = Tensor<float>::zeros({1, 2, 4});
    for (int64_t i = 4; i < 8; ++i) sx[i] = i % 2 ? -95.f : -100.f;
    const auto lab = Tensor<int64_t>::zeros({1, 4});
    const auto svg = softmax_dice_value_and_grad(sx.to(d), lab.to(d), so);
    CHECK(all_finite(svg.grad.to(Device::cpu)));
  };
  run(Device::cpu);
  if (cuda::available()) run(Device::cuda);
}

TEST_CASE("edge: logits of +-1e4 give a finite value and gradient, every loss, float and double") {
  auto run = [](auto zero) {
    using T = decltype(zero);
    const Shape s{2, 3, 5, 4};
    auto x = Tensor<T>::empty(s);
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = T(i % 3 == 0 ? 1e4 : (i % 3 == 1 ? -1e4 : 0));
    const auto t = mask<T>(s, 2);
    const auto lab = labels<int64_t>({2, 5, 4}, 3, 3, 0.1);
    auto finite = [](const ValueAndGrad<T>& vg) {
      return std::isfinite(vg.value) && all_finite(vg.grad);
    };
    CHECK(finite(bce_with_logits_value_and_grad(x, t)));
    CHECK(finite(soft_dice_value_and_grad(x, t)));
    CHECK(finite(soft_jaccard_value_and_grad(x, t)));
    CHECK(finite(tversky_value_and_grad(x, t)));
    CHECK(finite(sigmoid_focal_value_and_grad(x, t)));
    CHECK(finite(bce_dice_value_and_grad(x, t)));
    CHECK(finite(lovasz_hinge_value_and_grad(x, t)));
    CHECK(finite(cross_entropy_value_and_grad(x, lab)));
    CHECK(finite(softmax_focal_value_and_grad(x, lab)));
    CHECK(finite(softmax_dice_value_and_grad(x, lab)));
    CHECK(finite(softmax_tversky_value_and_grad(x, lab)));
    CHECK(finite(generalized_dice_value_and_grad(x, lab)));
    CHECK(finite(lovasz_softmax_value_and_grad(x, lab)));
    CHECK(finite(ce_dice_value_and_grad(x, lab)));
    CHECK(finite(dice_focal_value_and_grad(x, lab)));
    const auto ds = dice_score(x, t);
    CHECK(std::isfinite(ds.mean));
    ConfusionMatrix cm(3);
    cm.update_from_logits(x, lab);
    CHECK(cm.total() > 0);
  };
  SUBCASE("float") {
    run(0.0f);
  }
  SUBCASE("double") {
    run(0.0);
  }
}

// ---------------------------------------------------------------------------------------------
// Empty masks, every pixel ignored, zero weights (the policies: docs/conventions.md)

TEST_CASE("edge: empty masks give the documented scores and finite gradients") {
  const auto x = Tensor<double>::full({2, 2, 4, 4}, -30.0);
  const auto t = Tensor<double>::zeros(x.shape());
  const auto vg = soft_dice_value_and_grad(x, t);
  CHECK(vg.value == doctest::Approx(0.0).epsilon(1e-6));  // smooth_nr / smooth_dr = 1
  CHECK(all_finite(vg.grad));
  CHECK(all_finite(soft_jaccard_value_and_grad(x, t).grad));
  const auto ds = dice_score(x, t);  // skip: nothing left, NaN mean
  CHECK(ds.skipped == 4);
  CHECK(std::isnan(ds.mean));
  const auto sd = surface_distance(t, t);  // masks; both empty in every pair
  CHECK(sd.empty == 4);
  CHECK(std::isnan(sd.mean_hausdorff));
  const auto lab = Tensor<int64_t>::zeros({2, 4, 4});  // class 1 absent
  CHECK(all_finite(softmax_dice_value_and_grad(x, lab).grad));
  CHECK(all_finite(generalized_dice_value_and_grad(x, lab).grad));

  // The documented trap (overlap.hpp, conventions.md): the log form with smooth_nr = 0 and
  // reduction sum scores an empty target 0, so its loss is inf and its pixels' gradient NaN;
  // the mean log form takes the log of the mean score and stays finite, as does empty = one.
  const auto xr = randn<double>({2, 2, 4, 4}, 91);
  auto tr = mask<double>(xr.shape(), 92);
  for (int64_t i = 16; i < 32; ++i) tr[i] = 0.0;  // image 0, channel 1: an empty target
  SoftDiceOptions<double> lo;
  lo.log = true;
  lo.smooth_nr = 0.0;
  lo.reduction = Reduction::sum;
  const auto trap = soft_dice_value_and_grad(xr, tr, lo);
  CHECK(trap.value == kInf);
  CHECK(std::isnan(trap.grad[16]));
  CHECK(std::isfinite(trap.grad[0]));  // the other scores' pixels
  lo.empty = EmptyPolicy::one;
  const auto one = soft_dice_value_and_grad(xr, tr, lo);
  CHECK(std::isfinite(one.value));
  CHECK(all_finite(one.grad));
  lo.empty = EmptyPolicy::formula;
  lo.reduction = Reduction::mean;
  const auto mean = soft_dice_value_and_grad(xr, tr, lo);
  CHECK(std::isfinite(mean.value));
  CHECK(all_finite(mean.grad));
}

TEST_CASE("edge: every pixel ignored gives 0 and a zero gradient") {
  const auto x = randn<double>({2, 3, 4, 4}, 1);
  const auto lab = Tensor<int64_t>::full({2, 4, 4}, -100);
  const auto ce = cross_entropy_value_and_grad(x, lab);
  CHECK(ce.value == 0.0);
  CHECK(all_zero(ce.grad));
  CrossEntropyOptions<double> pt;
  pt.all_ignored = AllIgnored::nan;
  CHECK(std::isnan(cross_entropy(x, lab, pt)[0]));
  const auto sf = softmax_focal_value_and_grad(x, lab);
  CHECK(sf.value == 0.0);
  CHECK(all_zero(sf.grad));
  const auto lv = lovasz_softmax_value_and_grad(x, lab);
  CHECK(lv.value == 0.0);
  CHECK(all_zero(lv.grad));
  const auto sd = softmax_dice_value_and_grad(x, lab);
  CHECK(std::isfinite(sd.value));
  CHECK(all_zero(sd.grad));
  ConfusionMatrix cm(3);
  cm.update(labels<int64_t>({2, 4, 4}, 3, 2), lab);
  CHECK(cm.total() == 0);
}

TEST_CASE("edge: zero weights") {
  const auto x = randn<double>({2, 3, 4, 4}, 1);
  const auto t = mask<double>(x.shape(), 2);
  BceWithLogitsOptions<double> b;
  b.weight = Tensor<double>::zeros({1, 3, 1, 1});
  auto vg = bce_with_logits_value_and_grad(x, t, b);
  CHECK(vg.value == 0.0);  // mean over the elements of zeros
  CHECK(all_zero(vg.grad));
  b.mean_over = BceMeanOver::weight_sum;  // 0 / 0 is defined as 0 here
  vg = bce_with_logits_value_and_grad(x, t, b);
  CHECK(vg.value == 0.0);
  CHECK(all_zero(vg.grad));
  SoftDiceOptions<double> d;  // all pixel weights 0: every target sum is 0, the empty rule
  d.weight = Tensor<double>::zeros({1, 1, 4, 4});
  const auto dv = soft_dice_value_and_grad(x, t, d);
  CHECK(dv.value == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(all_zero(dv.grad));
  // cross_entropy with every class weight 0: the mean divides by the weight sum, 0 / 0 = NaN
  // as in PyTorch (a sum is 0 with a zero gradient; mean_over = valid_pixels gives 0).
  const auto lab = labels<int64_t>({2, 4, 4}, 3, 3);
  CrossEntropyOptions<double> ce;
  ce.weight = Tensor<double>::zeros({3});
  CHECK(std::isnan(cross_entropy_value_and_grad(x, lab, ce).value));
  ce.reduction = Reduction::sum;
  auto cv = cross_entropy_value_and_grad(x, lab, ce);
  CHECK(cv.value == 0.0);
  CHECK(all_zero(cv.grad));
  ce.reduction = Reduction::mean;
  ce.mean_over = MeanOver::valid_pixels;
  cv = cross_entropy_value_and_grad(x, lab, ce);
  CHECK(cv.value == 0.0);
  CHECK(all_zero(cv.grad));
}

// ---------------------------------------------------------------------------------------------
// Sizes: N = 0, spatial size 1, C = 1, C = 1000

TEST_CASE("edge: N = 0 (or any zero extent) is an error, every family") {
  const auto x = Tensor<float>::empty({0, 2, 4, 4});
  const auto t = Tensor<float>::empty({0, 2, 4, 4});
  const auto lab = Tensor<int64_t>::empty({0, 4, 4});
  const std::string empty = "is empty (a zero extent)";
  expect_error([&] { bce_with_logits(x, t); }, {"bce_with_logits: logits (0,2,4,4)", empty});
  expect_error([&] { soft_dice(x, t); }, {"soft_dice:", empty});
  expect_error([&] { sigmoid_focal(x, t); }, {"sigmoid_focal:", empty});
  expect_error([&] { cross_entropy(x, lab); }, {"cross_entropy:", empty});
  expect_error([&] { softmax_dice(x, lab); }, {"softmax_dice:", empty});
  expect_error([&] { lovasz_softmax(x, lab); }, {"lovasz_softmax:", empty});
  expect_error([&] { dice_score(x, t); }, {"dice_score:", empty});
  // A confusion matrix counts nothing from an empty batch (it accumulates over updates).
  ConfusionMatrix cm(2);
  cm.update(lab, lab);
  CHECK(cm.total() == 0);
  const auto x2 = Tensor<float>::empty({2, 2, 0, 4});
  expect_error([&] { bce_with_logits(x2, x2); }, {"bce_with_logits:", empty});
}

TEST_CASE("edge: spatial size 1 (1, 1x1, 1x1x1), N = 1: gradients check") {
  for (const Shape& s : {Shape{1, 2, 1}, Shape{1, 2, 1, 1}, Shape{1, 2, 1, 1, 1}}) {
    CAPTURE(s);
    const auto x = randn<double>(s, 1);
    const auto t = mask<double>(s, 2, 0.5);
    std::vector<int64_t> le{1};
    for (int d = 2; d < s.rank(); ++d) le.push_back(1);
    const auto lab = Tensor<int64_t>::full(Shape(le.begin(), le.end()), 1);
    testing::check_loss_gradients(
        x, [&](const Tensor<double>& v) { return bce_with_logits(v, t); },
        [&](const Tensor<double>& v, const Tensor<double>& g) {
          return bce_with_logits_backward(v, t, g);
        },
        [&](const Tensor<double>& v) { return bce_with_logits_value_and_grad(v, t); });
    testing::check_loss_gradients(
        x, [&](const Tensor<double>& v) { return soft_dice(v, t); },
        [&](const Tensor<double>& v, const Tensor<double>& g) {
          return soft_dice_backward(v, t, g);
        },
        [&](const Tensor<double>& v) { return soft_dice_value_and_grad(v, t); });
    testing::check_loss_gradients(
        x, [&](const Tensor<double>& v) { return cross_entropy(v, lab); },
        [&](const Tensor<double>& v, const Tensor<double>& g) {
          return cross_entropy_backward(v, lab, g);
        },
        [&](const Tensor<double>& v) { return cross_entropy_value_and_grad(v, lab); });
    testing::check_loss_gradients(
        x, [&](const Tensor<double>& v) { return softmax_dice(v, lab); },
        [&](const Tensor<double>& v, const Tensor<double>& g) {
          return softmax_dice_backward(v, lab, g);
        },
        [&](const Tensor<double>& v) { return softmax_dice_value_and_grad(v, lab); });
    CHECK(dice_score(x, t).counted + dice_score(x, t).skipped == 2);
    ConfusionMatrix cm(2);
    cm.update_from_logits(x, lab);
    CHECK(cm.total() == 1);
  }
}

TEST_CASE("edge: C = 1") {
  const auto x = randn<double>({2, 1, 4, 4}, 1);
  const auto t = mask<double>(x.shape(), 2);
  const auto lab = Tensor<int64_t>::zeros({2, 4, 4});
  // Sigmoid losses: one channel is the usual binary case.
  CHECK(std::isfinite(bce_with_logits(x, t)[0]));
  CHECK(std::isfinite(soft_dice(x, t)[0]));
  // Softmax over one class is 1 everywhere: cross entropy 0 with a zero gradient, a perfect
  // softmax Dice.
  const auto ce = cross_entropy_value_and_grad(x, lab);
  CHECK(ce.value == 0.0);
  CHECK(all_zero(ce.grad));
  const auto sd = softmax_dice_value_and_grad(x, lab);
  CHECK(sd.value == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(all_finite(sd.grad));
  ConfusionMatrix cm(1);
  cm.update(lab, lab);
  CHECK(cm.count(0, 0) == 32);
}

TEST_CASE("edge: C = 1000 classes") {
  const int64_t C = 1000;
  const auto x = randn<double>({2, C, 3, 2}, 1, 3.0);
  const auto lab = labels<int64_t>({2, 3, 2}, C, 2);
  const auto vg = cross_entropy_value_and_grad(x, lab);
  // Reference: the mean of logsumexp - x_y, in long double.
  long double ref = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t s = 0; s < 6; ++s) {
      long double m = -1e300L, sum = 0;
      for (int64_t c = 0; c < C; ++c) m = std::max<long double>(m, x[(n * C + c) * 6 + s]);
      for (int64_t c = 0; c < C; ++c) sum += std::exp(x[(n * C + c) * 6 + s] - m);
      ref += m + std::log(sum) - x[(n * C + lab[n * 6 + s]) * 6 + s];
    }
  CHECK(vg.value == doctest::Approx(static_cast<double>(ref / 12)).epsilon(1e-12));
  // The softmax gradient sums to 0 over the classes of each pixel.
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t s = 0; s < 6; ++s) {
      double g = 0;
      for (int64_t c = 0; c < C; ++c) g += vg.grad[(n * C + c) * 6 + s];
      CHECK(std::fabs(g) < 1e-15);
    }
  CHECK(all_finite(softmax_dice_value_and_grad(x, lab).grad));
  CHECK(all_finite(softmax_focal_value_and_grad(x, lab).grad));
  CHECK(all_finite(lovasz_softmax_value_and_grad(x, lab).grad));
  ConfusionMatrix cm(C);
  cm.update_from_logits(x, lab);
  CHECK(cm.total() == 12);
}

// The class-axis losses take at most 2^24 classes: the CPU kernels carry a label as a float lane,
// and a reviewer found label 2^24 + 1 of 2^24 + 2 classes read as 2^24 (cross_entropy 16.5 in
// float where double gave 6.6). At the bound itself the float result is right.
TEST_CASE("edge: 2^24 classes are the most a class-axis loss takes") {
  const int64_t C = int64_t{1} << 24;
  auto x = Tensor<float>::zeros({1, C + 1, 1});
  const auto y = Tensor<int64_t>::from({0}, {1, 1});
  const std::string too_many =
      "logits (1,16777217,1) have 16777217 classes; the class-axis losses take at most 16777216 "
      "(2^24, the integers a float holds exactly)";
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y),
                       ("cross_entropy_value_and_grad: " + too_many).c_str(), Error);
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, y),
                       ("softmax_focal_value_and_grad: " + too_many).c_str(), Error);
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(x, y), doctest::Contains(too_many.c_str()),
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(x, y), doctest::Contains(too_many.c_str()),
                       Error);
  const auto q = Tensor<float>::zeros({1, C + 1, 1});
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, q), doctest::Contains(too_many.c_str()),
                       Error);

  // C = 2^24, the label the last class, its logit 10 and the others 0: the loss is
  // log(C - 1 + e^10) - 10, the gradient 1 / (C - 1 + e^10) at every other class and p - 1 at
  // the label's. The label is read right (the bug gave -1 at another class); the tolerance is
  // loose because a float sum of 2^24 terms e^-10 per pixel keeps few digits (6.527 for 6.637).
  auto xc = Tensor<float>::zeros({1, C, 1});
  xc[C - 1] = 10.0f;
  const auto yc = Tensor<int64_t>::from({C - 1}, {1, 1});
  const auto vg = cross_entropy_value_and_grad(xc, yc);
  const double z = static_cast<double>(C - 1) + std::exp(10.0);
  CHECK(vg.value == doctest::Approx(std::log(z) - 10.0).epsilon(0.03));
  CHECK(vg.grad[C - 2] == doctest::Approx(1.0 / z).epsilon(0.3));
  CHECK(vg.grad[C - 1] == doctest::Approx(std::exp(10.0) / z - 1.0).epsilon(1e-3));
}

// ---------------------------------------------------------------------------------------------
// Index arithmetic at chunk boundaries (the >= 2^31 case itself: tests/large, ctest -L large)

TEST_CASE("edge: planes of kChunk - 1, kChunk, kChunk + 1 and 2 kChunk + 1 elements") {
  const int64_t k = 16384;  // core/parallel.hpp kChunk
  for (int64_t len : {k - 1, k, k + 1, 2 * k + 1}) {
    CAPTURE(len);
    const Shape s{2, 2, len};
    const auto x = randn<double>(s, 11, 4.0);
    const auto t = mask<double>(s, 12);
    // bce_with_logits sum against a direct loop; the gradient's last element of each plane.
    BceWithLogitsOptions<double> o;
    o.reduction = Reduction::sum;
    double ref = 0;
    for (int64_t i = 0; i < x.numel(); ++i)
      ref += std::max(x[i], 0.0) - x[i] * t[i] + std::log1p(std::exp(-std::fabs(x[i])));
    const auto vg = bce_with_logits_value_and_grad(x, t, o);
    CHECK(vg.value == doctest::Approx(ref).epsilon(1e-12));
    for (int64_t p = 0; p < 4; ++p) {
      const int64_t i = (p + 1) * len - 1;
      CHECK(vg.grad[i] == doctest::Approx(1 / (1 + std::exp(-x[i])) - t[i]).epsilon(1e-12));
    }
    // Confusion matrix counts against a direct count.
    const auto pred = labels<int64_t>({2, len}, 3, 13);
    const auto truth = labels<int64_t>({2, len}, 3, 14);
    ConfusionMatrix cm(3);
    cm.update(pred, truth);
    std::vector<int64_t> direct(9, 0);
    for (int64_t i = 0; i < pred.numel(); ++i)
      ++direct[static_cast<size_t>(truth[i] * 3 + pred[i])];
    CHECK(cm.counts() == direct);
  }
}

TEST_CASE("edge: a grad buffer overlapping the logits at an offset is refused, in place is not") {
  const Shape s{2, 3, 4, 8};
  const int64_t n = s.numel();
  auto buf = Tensor<double>::empty({2 * n});
  const auto x0 = randn<double>(s, 41, 2.0);
  const auto y = labels<int64_t>(s.without(1), 3, 42);
  const auto t = mask<double>(s, 43);
  for (int64_t i = 0; i < n; ++i) buf[i] = x0[i];
  const auto x = Tensor<double>::view(buf.data(), s);
  for (int64_t offset : std::vector<int64_t>{1, 16, n - 1, -1, -(n - 1)}) {
    CAPTURE(offset);
    // The buffer's second half starts at n; offsets below 0 put grad before the logits.
    auto big = Tensor<double>::empty({3 * n});
    for (int64_t i = 0; i < n; ++i) big[n + i] = x0[i];
    const auto xv = Tensor<double>::view(big.data() + n, s);
    auto g = Tensor<double>::view(big.data() + n + offset, s);
    const std::string where = "grad overlaps logits at an offset of " + std::to_string(offset);
    CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(xv, t, g), doctest::Contains(where.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xv, y, g), doctest::Contains(where.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xv, y, g), doctest::Contains(where.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(dice_focal_value_and_grad(xv, y, g), doctest::Contains(where.c_str()),
                         Error);
  }
  // In place (grad is the logits) and a separate buffer give the same value and gradient.
  const auto ref = cross_entropy_value_and_grad(x0, y);
  Tensor<double> g = x;
  CHECK(cross_entropy_value_and_grad(x, y, g) == doctest::Approx(ref.value).epsilon(1e-15));
  for (int64_t i = 0; i < n; ++i) CHECK(buf[i] == ref.grad[i]);
  auto apart = Tensor<double>::view(buf.data() + n, s);
  for (int64_t i = 0; i < n; ++i) buf[i] = x0[i];
  CHECK(cross_entropy_value_and_grad(x, y, apart) == doctest::Approx(ref.value).epsilon(1e-15));
  for (int64_t i = 0; i < n; ++i) CHECK(apart[i] == ref.grad[i]);
}

// A reviewer's report: "options.percentile is 100; it must be in [0, 100]" for 100.0000001.
// Numbers in messages keep the 6-digit form when it reads back exactly, else are printed in
// full (core/error.hpp, message_number).
TEST_CASE("edge: a number in a message is printed in full when 6 digits would change it") {
  CHECK(detail::message("f", "x is ", 0.5) == "f: x is 0.5");
  CHECK(detail::message("f", "x is ", 1e-05) == "f: x is 1e-05");
  CHECK(detail::message("f", "x is ", 100000.0) == "f: x is 100000");
  CHECK(detail::message("f", "x is ", 100.0000001) == "f: x is 100.0000001");
  CHECK(detail::message("f", "x is ", 1.0 / 3.0) == "f: x is 0.3333333333333333");
  CHECK(detail::message("f", "x is ", 0.1f) == "f: x is 0.1");
  CHECK(detail::message("f", "x is ", 1.0000001f) == "f: x is 1.0000001");
  // A float element widened to double for its check prints as the float.
  CHECK(detail::message("f", "x is ", static_cast<double>(0.3f)) == "f: x is 0.3");
  CHECK(detail::message("f", "x is ", static_cast<double>(1.1f)) == "f: x is 1.1");
  CHECK(detail::message("f", "x is ", kNaN, " ", 7, " ", int64_t{1} << 40) ==
        "f: x is nan 7 1099511627776");
  SurfaceDistanceOptions o;
  o.percentile = 100.0000001;
  const auto m = Tensor<double>::zeros({1, 1, 3, 3});
  CHECK_THROWS_WITH_AS(surface_distance(m, m, o), doctest::Contains("percentile is 100.0000001"),
                       Error);
}

namespace {

// A German-style number format: ',' before the decimals, '.' between groups of 3 digits.
struct CommaDecimals : std::numpunct<char> {
  char do_decimal_point() const override { return ','; }
  char do_thousands_sep() const override { return '.'; }
  std::string do_grouping() const override { return "\3"; }
};

// Sets the global C++ locale for its lifetime and restores the previous one.
struct GlobalLocale {
  std::locale saved;
  explicit GlobalLocale(const std::locale& l) : saved(std::locale::global(l)) {}
  ~GlobalLocale() { std::locale::global(saved); }
};

}  // namespace

// A program that sets a global locale (std::locale::global) must not change segloss's messages:
// they were written through ostreams of the global locale, so "x is 0,25", a shape as
// "(1.048.576,2)" and 1048576 as "1.048.576"; and the 6-digit form was read back with strtod,
// which follows setlocale's LC_NUMERIC instead.
TEST_CASE("edge: messages do not follow the global locale") {
  const GlobalLocale comma(std::locale(std::locale::classic(), new CommaDecimals));
  {
    std::ostringstream check;  // the locale is in force: a stream of it groups and uses ','
    check << 0.25 << ' ' << 1048576;
    REQUIRE(check.str() == "0,25 1.048.576");
  }
  CHECK(detail::message("f", "x is ", 0.25, " n ", int64_t{1048576}, " ", Shape{1048576, 2}) ==
        "f: x is 0.25 n 1048576 (1048576,2)");
  CHECK(detail::message("f", "x is ", 100.0000001, " ", 0.1f) == "f: x is 100.0000001 0.1");
  // "0.0001" reads back exactly: printed as ostream writes it, not as to_chars ("1e-04").
  CHECK(detail::message("f", "x is ", 0.0001) == "f: x is 0.0001");
  GradcheckResult g;
  g.checked = 1048576;
  g.max_abs_error = 0.25;
  CHECK(g.summary().find("1048576 elements") != std::string::npos);
  CHECK(g.summary().find("max abs error 0.25") != std::string::npos);
  CHECK(Shape{1048576, 3}.position(1048576 * 3 - 1) == "(1048575,2)");
  SurfaceDistanceOptions o;
  o.percentile = 100.5;
  const auto m = Tensor<double>::zeros({1, 1, 3, 3});
  CHECK_THROWS_WITH_AS(surface_distance(m, m, o), doctest::Contains("percentile is 100.5;"), Error);
}

namespace {

// exp(-gap) / (1 + exp(-gap)), the probability of a class gap behind the other of two, within a
// few units in the last place of T's subnormals where it is one.
template <class T>
bool underflowed_like_std(T got, double gap) {
  const T e = std::exp(static_cast<T>(-gap)), want = e / (T(1) + e);
  const T tiny = std::numeric_limits<T>::denorm_min();
  return std::fabs(got - want) <= T(4) * std::numeric_limits<T>::epsilon() * want + T(2) * tiny;
}

template <class T>
void check_far_behind(const std::vector<double>& gaps) {
  CAPTURE(sizeof(T));
  // 2 classes, 16 pixels per gap (a whole packet of any width), and one more (gap 0, unchecked)
  // so that a scalar tail exists: class 0 leads, class 1 is gap behind. cross_entropy's gradient
  // of class 1 is p_1.
  const int64_t P = static_cast<int64_t>(16 * gaps.size()) + 1;
  auto x = Tensor<T>::zeros({1, 2, P});
  for (int64_t i = 0; i + 1 < P; ++i) x[P + i] = static_cast<T>(-gaps[static_cast<size_t>(i) / 16]);
  const auto y = Tensor<int64_t>::zeros({1, P});
  CrossEntropyOptions<T> o;
  o.reduction = Reduction::sum;
  const auto g = cross_entropy_value_and_grad(x, y, o).grad;
  for (int64_t i = 0; i + 1 < P; ++i) {
    const double gap = gaps[static_cast<size_t>(i) / 16];
    CAPTURE(i);
    CAPTURE(gap);
    CHECK(underflowed_like_std<T>(g[P + i], gap));
  }
  // A pixel's softmax_jaccard does not depend on its company (zero smoothing: an absent class
  // with p = 0 is 0 / 0): one pixel alone and 37 copies of it give the same per-class values.
  SoftmaxOverlapOptions<T> so;
  so.reduction = Reduction::none;
  so.smooth_nr = so.smooth_dr = 0;
  for (double gap : gaps) {
    CAPTURE(gap);
    const auto one = Tensor<T>::from({T(0), static_cast<T>(-gap)}, {1, 2, 1});
    auto many = Tensor<T>::zeros({1, 2, 37});
    for (int64_t i = 0; i < 37; ++i) many[37 + i] = static_cast<T>(-gap);
    const auto a = softmax_jaccard(one, Tensor<int64_t>::zeros({1, 1}), so);
    const auto b = softmax_jaccard(many, Tensor<int64_t>::zeros({1, 37}), so);
    for (int64_t c = 0; c < 2; ++c) {
      CAPTURE(c);
      const bool same = std::isnan(static_cast<double>(a[c]))
                            ? std::isnan(static_cast<double>(b[c]))
                            : std::fabs(static_cast<double>(a[c] - b[c])) <= 1e-6;
      CHECK(same);
    }
  }
}

}  // namespace

TEST_CASE("softmax: a class far behind the max underflows as std::exp does, in a packet too") {
  // Eigen's vectorized exp clamps its argument at -709.78 (double) or -88.72 (float), which gave
  // such a class about 5e-309 (3e-39) in a packet and its true subnormal or 0 in the scalar tail:
  // with zero smoothing a softmax_jaccard of 37 pixels said 1 where one pixel said NaN (0 / 0).
  // cpu::exp_underflowing recomputes the lanes below log(smallest normal) with std::exp.
  check_far_behind<double>({1, 700, 708.3, 708.5, 709.9, 720, 745, 745.5, 800, 1e4, kInf});
  check_far_behind<float>({1, 50, 87.2, 87.5, 88.8, 90, 100, 103.9, 104.5, 200, kInf});
}
