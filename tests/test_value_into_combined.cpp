// The device-value form of value_and_grad (`Tensor<T>& value`, session 11) of sigmoid_focal,
// softmax_focal, ce_dice and dice_focal on the CPU: the value is the host form's rounded to T
// (the same bits), the gradient the host form's bits; an undefined value is allocated (shape (),
// on the CPU), a caller's one-element value of any shape is written; a value of another size and
// reduction none raise the host form's messages. docs/cuda.md and
// tests/test_cuda_value_into_combined.cpp have the CUDA side.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

// host(grad) is the host-value form, into(grad, value) the device-value form of one loss with one
// set of options: the same gradient bits, and the host value rounded to T in `value`.
template <class T, class Host, class Into>
void check_into(const Shape& shape, Host&& host, Into&& into) {
  Tensor<T> g_host, g_into, value;
  const double ref = host(g_host);
  into(g_into, value);  // undefined: allocated
  REQUIRE(value.defined());
  CHECK(value.shape() == Shape{});
  CHECK(value.device() == Device::cpu);
  INFO("host value ", ref, ", device-value form ", static_cast<double>(value[0]));
  CHECK(same_bits(value[0], static_cast<T>(ref)));
  CHECK(same_bits(g_host, g_into));
  // A caller's one-element value (shape (1)) and grad are written.
  auto given = Tensor<T>::full(Shape{1}, T(-7));
  auto g_given = Tensor<T>::full(shape, T(3));
  into(g_given, given);
  CHECK(same_bits(given[0], static_cast<T>(ref)));
  CHECK(same_bits(g_host, g_given));
  // Not one element.
  auto two = Tensor<T>::empty(Shape{2});
  CHECK(error_of([&] { into(g_given, two); }).find("value_and_grad: value") != std::string::npos);
  CHECK(error_of([&] { into(g_given, two); }).find("must hold one element") != std::string::npos);
}

// Reduction none: the device-value form raises the host form's message.
template <class T, class Host, class Into>
void check_none(Host&& host, Into&& into) {
  Tensor<T> g, v;
  const std::string want = error_of([&] { host(g); });
  CHECK(want.find("none") != std::string::npos);
  Tensor<T> g2;
  CHECK(error_of([&] { into(g2, v); }) == want);
}

template <class T>
void sigmoid_focal_case() {
  const Shape shape{2, 3, 7, 5};
  const auto x = randn<T>(shape, 11, 2.0);
  const auto z = mask<T>(shape, 12);
  SigmoidFocalOptions<T> o;
  for (int k = 0; k < 4; ++k) {
    o.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.alpha = k < 2 ? 0.25 : -1.0;
    o.gamma = k < 2 ? 2.0 : 1.5;
    o.weight = k == 1 ? uniform<T>(Shape{1, 3, 1, 1}, 13, 0.5, 2.0) : Tensor<T>();
    INFO("case ", k);
    check_into<T>(
        shape, [&](Tensor<T>& g) { return sigmoid_focal_value_and_grad(x, z, g, o); },
        [&](Tensor<T>& g, Tensor<T>& v) { sigmoid_focal_value_and_grad(x, z, g, v, o); });
  }
  o.reduction = Reduction::none;
  check_none<T>([&](Tensor<T>& g) { sigmoid_focal_value_and_grad(x, z, g, o); },
                [&](Tensor<T>& g, Tensor<T>& v) { sigmoid_focal_value_and_grad(x, z, g, v, o); });
}

template <class T, class L>
void softmax_focal_case() {
  const Shape shape{2, 4, 6, 5};
  const auto x = randn<T>(shape, 21, 2.0);
  const auto y = labels<L>(shape.without(1), 4, 22, 0.2, 255);
  SoftmaxFocalOptions<T> o;
  o.ignore_index = 255;
  for (int k = 0; k < 4; ++k) {
    o.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.gamma = k < 2 ? 2.0 : 0.5;
    o.alpha = k >= 2 ? Tensor<T>::from({T(0.25), T(1), T(0.5), T(2)}, {4}) : Tensor<T>();
    INFO("case ", k);
    check_into<T>(
        shape, [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x, y, g, o); },
        [&](Tensor<T>& g, Tensor<T>& v) { softmax_focal_value_and_grad(x, y, g, v, o); });
  }
  o.reduction = Reduction::none;
  check_none<T>([&](Tensor<T>& g) { softmax_focal_value_and_grad(x, y, g, o); },
                [&](Tensor<T>& g, Tensor<T>& v) { softmax_focal_value_and_grad(x, y, g, v, o); });
}

template <class T, class U>
void ce_dice_case(const Tensor<U>& y) {
  const Shape shape{2, 4, 6, 5};
  const auto x = randn<T>(shape, 31, 2.0);
  CeDiceOptions<T> o;
  o.ce_weight = 0.7;
  o.dice_weight = 1.3;
  for (int k = 0; k < 4; ++k) {
    o.ce.reduction = o.dice.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.ce.label_smoothing = k >= 2 ? 0.1 : 0.0;
    o.ce.weight = k >= 2 ? Tensor<T>::from({T(1), T(2), T(0.5), T(1.5)}, {4}) : Tensor<T>();
    o.dice.class_weight = k == 3 ? Tensor<T>::from({T(0.5), T(1), T(2), T(1)}, {4}) : Tensor<T>();
    INFO("case ", k);
    check_into<T>(
        shape, [&](Tensor<T>& g) { return ce_dice_value_and_grad(x, y, g, o); },
        [&](Tensor<T>& g, Tensor<T>& v) { ce_dice_value_and_grad(x, y, g, v, o); });
  }
  o.ce.reduction = Reduction::none;
  check_none<T>([&](Tensor<T>& g) { ce_dice_value_and_grad(x, y, g, o); },
                [&](Tensor<T>& g, Tensor<T>& v) { ce_dice_value_and_grad(x, y, g, v, o); });
  o.ce.reduction = Reduction::mean;
  o.dice.reduction = Reduction::none;
  check_none<T>([&](Tensor<T>& g) { ce_dice_value_and_grad(x, y, g, o); },
                [&](Tensor<T>& g, Tensor<T>& v) { ce_dice_value_and_grad(x, y, g, v, o); });
}

template <class T, class L>
void dice_focal_case() {
  const Shape shape{2, 4, 6, 5};
  const auto x = randn<T>(shape, 41, 2.0);
  const auto y = labels<L>(shape.without(1), 4, 42, 0.15);
  DiceFocalOptions<T> o;
  o.dice_weight = 0.6;
  o.focal_weight = 1.7;
  for (int k = 0; k < 4; ++k) {
    o.focal.reduction = o.dice.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.focal.gamma = k >= 2 ? 1.5 : 2.0;
    o.focal.alpha = k >= 2 ? Tensor<T>::from({T(0.25), T(1), T(0.5), T(2)}, {4}) : Tensor<T>();
    o.dice.class_weight = k == 3 ? Tensor<T>::from({T(0.5), T(1), T(2), T(1)}, {4}) : Tensor<T>();
    INFO("case ", k);
    check_into<T>(
        shape, [&](Tensor<T>& g) { return dice_focal_value_and_grad(x, y, g, o); },
        [&](Tensor<T>& g, Tensor<T>& v) { dice_focal_value_and_grad(x, y, g, v, o); });
  }
  o.focal.reduction = Reduction::none;
  check_none<T>([&](Tensor<T>& g) { dice_focal_value_and_grad(x, y, g, o); },
                [&](Tensor<T>& g, Tensor<T>& v) { dice_focal_value_and_grad(x, y, g, v, o); });
}

}  // namespace

TEST_CASE("value into: sigmoid_focal's device-value form equals its host form, float and double") {
  sigmoid_focal_case<float>();
  sigmoid_focal_case<double>();
}

TEST_CASE("value into: softmax_focal's device-value form equals its host form, float and double") {
  softmax_focal_case<float, int32_t>();
  softmax_focal_case<double, int64_t>();
}

TEST_CASE(
    "value into: ce_dice's device-value form equals its host form, labels and probabilities") {
  const Shape labels_shape{2, 6, 5};
  ce_dice_case<float>(labels<int64_t>(labels_shape, 4, 32, 0.2));
  ce_dice_case<double>(labels<int32_t>(labels_shape, 4, 33, 0.2));
  ce_dice_case<float>(normalized_uniform<float>(Shape{2, 4, 6, 5}, 34));
  ce_dice_case<double>(normalized_uniform<double>(Shape{2, 4, 6, 5}, 35));
}

TEST_CASE("value into: dice_focal's device-value form equals its host form, float and double") {
  dice_focal_case<float, int32_t>();
  dice_focal_case<double, int64_t>();
}

TEST_CASE("value into: the combined losses' device-value form in place and with a bad label") {
  const Shape shape{2, 4, 6, 5};
  const auto x0 = randn<double>(shape, 51, 2.0);
  const auto y = labels<int64_t>(shape.without(1), 4, 52, 0.1);
  // grad the logits, as the host form allows.
  CeDiceOptions<double> co;
  auto x1 = x0.clone();
  const double ref = ce_dice_value_and_grad(x1, y, x1, co);
  auto x2 = x0.clone();
  Tensor<double> v;
  ce_dice_value_and_grad(x2, y, x2, v, co);
  CHECK(same_bits(v[0], ref));
  CHECK(same_bits(x1, x2));
  DiceFocalOptions<double> fo;
  x1 = x0.clone();
  const double fref = dice_focal_value_and_grad(x1, y, x1, fo);
  x2 = x0.clone();
  dice_focal_value_and_grad(x2, y, x2, v, fo);
  CHECK(same_bits(v[0], fref));
  CHECK(same_bits(x1, x2));
  // A bad label raises on the CPU, as the host form does (the CPU has no device value to poison).
  auto bad = y.clone();
  bad[7] = 9;
  Tensor<double> g, g2;
  const std::string want = error_of([&] { ce_dice_value_and_grad(x0, bad, g, co); });
  CHECK(want.find("label 9") != std::string::npos);
  CHECK(error_of([&] { ce_dice_value_and_grad(x0, bad, g2, v, co); }) == want);
  const std::string fwant = error_of([&] { dice_focal_value_and_grad(x0, bad, g, fo); });
  CHECK(fwant.find("label 9") != std::string::npos);
  CHECK(error_of([&] { dice_focal_value_and_grad(x0, bad, g2, v, fo); }) == fwant);
}
