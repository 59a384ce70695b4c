// float32 against double on more than 10^6 elements: relative error <= 1e-5 for the value and
// for the gradient (max-norm relative).
#include <doctest/doctest.h>

#include <string>

#include <algorithm>
#include <cmath>

#include "helpers.hpp"

using namespace segloss;

namespace {

template <class F>
void compare(F run_both) {
  const auto [vf, vd] = run_both();
  CHECK(std::fabs(vf.value - vd.value) <= 1e-5 * std::fabs(vd.value));
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < vd.grad.numel(); ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(vf.grad[i]) - vd.grad[i]));
    max_ref = std::max(max_ref, std::fabs(vd.grad[i]));
  }
  CAPTURE(max_diff);
  CAPTURE(max_ref);
  CHECK(max_diff <= 1e-5 * max_ref);
}

const Shape kShape{4, 2, 384, 384};  // 1,179,648 elements

}  // namespace

TEST_CASE("precision: bce_with_logits float32 vs double") {
  const auto xd = testing::randn<double>(kShape, 1, 4.0);
  const auto zd = testing::mask<double>(kShape, 2);
  const auto wd = testing::uniform<double>({4, 1, 384, 384}, 3, 0.1, 3.0);
  const auto xf = testing::cast<float>(xd), zf = testing::cast<float>(zd),
             wf = testing::cast<float>(wd);
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    INFO("reduction ", std::string(reduction_name(r)));
    BceWithLogitsOptions<double> od;
    BceWithLogitsOptions<float> of;
    od.reduction = r;
    of.reduction = r;
    od.weight = wd;
    of.weight = wf;
    od.pos_weight = Tensor<double>::from({3.0, 0.5}, {2});
    of.pos_weight = Tensor<float>::from({3.f, 0.5f}, {2});
    compare([&] {
      return std::pair{bce_with_logits_value_and_grad(xf, zf, of),
                       bce_with_logits_value_and_grad(xd, zd, od)};
    });
  }
}

TEST_CASE("precision: soft_dice float32 vs double") {
  const auto xd = testing::randn<double>(kShape, 4, 3.0);
  const auto td = testing::mask<double>(kShape, 5, 0.2);
  const auto xf = testing::cast<float>(xd), tf = testing::cast<float>(td);
  for (bool per_image : {true, false}) {
    CAPTURE(per_image);
    SoftDiceOptions<float> of;
    SoftDiceOptions<double> od;
    of.per_image = od.per_image = per_image;
    compare([&] {
      return std::pair{soft_dice_value_and_grad(xf, tf, of), soft_dice_value_and_grad(xd, td, od)};
    });
  }
}

TEST_CASE("precision: bce_dice float32 vs double") {
  const auto xd = testing::randn<double>(kShape, 6, 3.0);
  const auto td = testing::mask<double>(kShape, 7, 0.3);
  const auto xf = testing::cast<float>(xd), tf = testing::cast<float>(td);
  BceDiceOptions<double> od;
  BceDiceOptions<float> of;
  od.bce.pos_weight = Tensor<double>::from({3.0, 0.5}, {2});
  of.bce.pos_weight = Tensor<float>::from({3.f, 0.5f}, {2});
  compare([&] {
    return std::pair{bce_dice_value_and_grad(xf, tf, of), bce_dice_value_and_grad(xd, td, od)};
  });
}

TEST_CASE("precision: cross_entropy float32 vs double (21 classes)") {
  const Shape s{2, 21, 160, 160};  // 1,075,200 logits
  const auto xd = testing::randn<double>(s, 8, 3.0);
  const auto xf = testing::cast<float>(xd);
  auto y = Tensor<int64_t>::empty({2, 160, 160});
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = i % 11 == 0 ? -100 : (i * 7) % 21;
  CrossEntropyOptions<double> od;
  CrossEntropyOptions<float> of;
  od.label_smoothing = of.label_smoothing = 0.1;
  compare([&] {
    return std::pair{cross_entropy_value_and_grad(xf, y, of),
                     cross_entropy_value_and_grad(xd, y, od)};
  });
}
