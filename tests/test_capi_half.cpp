// The C API with SEGLOSS_F16 and SEGLOSS_BF16 logits: the four losses that take them against the
// C++ calls (the same code, so bitwise equal), and the dtype errors of everything else.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include <segloss/capi/segloss.h>

#include "capi_helpers.hpp"
#include "helpers.hpp"

using namespace segloss;
using segloss::testing::desc;
using segloss::testing::last_error;

namespace {

template <class H>
bool same_bits(const Tensor<H>& a, const Tensor<H>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(H)) == 0;
}

}  // namespace

TEST_CASE_TEMPLATE("capi: 16-bit logits match C++", H, float16, bfloat16) {
  const Shape s{2, 3, 5, 4};
  const auto x = to_half<H>(testing::randn<float>(s, 1, 2.0));
  const auto z = to_half<H>(testing::mask<float>(s, 2));
  const auto y = testing::labels<int32_t>(s.without(1), 3, 3);
  segloss_tensor dx = desc(x), dz = desc(z), dy = desc(y);
  double v = 0;

  auto g = Tensor<H>::empty(s);
  segloss_tensor dg = desc(g);
  REQUIRE(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_OK);
  auto ref = bce_with_logits_value_and_grad(x, z);
  CHECK(v == ref.value);
  CHECK(same_bits(g, ref.grad));

  REQUIRE(segloss_cross_entropy_value_and_grad(&dx, &dy, nullptr, &v, &dg, nullptr) == SEGLOSS_OK);
  ref = cross_entropy_value_and_grad(x, y);
  CHECK(v == ref.value);
  CHECK(same_bits(g, ref.grad));

  // The value into a 16-bit tensor: the C++ form's value (the float value rounded to H).
  auto value = Tensor<H>::full(Shape{}, H(-7.f));
  const segloss_tensor dv = desc(value);
  auto g2 = Tensor<H>::empty(s);
  const segloss_tensor dg2 = desc(g2);
  REQUIRE(segloss_bce_dice_value_and_grad_into(&dx, &dz, nullptr, &dv, &dg2, nullptr) ==
          SEGLOSS_OK);
  Tensor<H> want_value, want_grad;
  bce_dice_value_and_grad(x, z, want_grad, want_value);
  CHECK(same_bits(value, want_value));
  CHECK(same_bits(g2, want_grad));
  CHECK(static_cast<float>(value[0]) ==
        static_cast<float>(H(static_cast<float>(bce_dice_value_and_grad(x, z).value))));

  segloss_overlap_options dice;
  segloss_overlap_options_init(&dice);
  dice.reduction = SEGLOSS_REDUCTION_NONE;
  auto out = Tensor<H>::empty(Shape{2, 3});
  segloss_tensor dout = desc(out);
  REQUIRE(segloss_soft_dice_forward(&dx, &dz, &dice, &dout, nullptr) == SEGLOSS_OK);
  OverlapOptions<H> o;
  o.reduction = Reduction::none;
  CHECK(same_bits(out, soft_dice(x, z, o)));

  const auto go = Tensor<H>::full(Shape{}, H(0.5f));
  segloss_tensor dgo = desc(go);
  REQUIRE(segloss_bce_dice_backward(&dx, &dz, &dgo, nullptr, &dg, nullptr) == SEGLOSS_OK);
  CHECK(same_bits(g, bce_dice_backward(x, z, go)));
}

TEST_CASE("capi: 16-bit logits elsewhere, and mixed dtypes, are dtype errors") {
  const Shape s{1, 2, 3, 3};
  const auto x = to_half<float16>(testing::randn<float>(s, 4, 1.0));
  const auto z = to_half<float16>(testing::mask<float>(s, 5));
  const auto zf = testing::mask<float>(s, 5);
  auto g = Tensor<float16>::empty(s);
  segloss_tensor dx = desc(x), dz = desc(z), dzf = desc(zf), dg = desc(g);
  double v = 0;
  CHECK(segloss_soft_jaccard_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error().find("segloss_soft_jaccard_value_and_grad: logits has dtype f16; this "
                          "function takes f32 or f64") == 0);
  const auto xb = to_half<bfloat16>(to_float(x));
  segloss_tensor dxb = desc(xb);
  CHECK(segloss_sigmoid_focal_forward(&dxb, &dz, nullptr, &dg, nullptr) == SEGLOSS_ERROR_DTYPE);
  CHECK(last_error().find("segloss_sigmoid_focal_forward: logits has dtype bf16") == 0);
  CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dzf, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error() ==
        "segloss_bce_with_logits_value_and_grad: target has dtype f32; expected f16");
  CHECK(segloss_cross_entropy_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error().find("target has dtype f16; with 16-bit logits the target is a label map") !=
        std::string::npos);
  segloss_statistics* st = nullptr;
  CHECK(segloss_bce_with_logits_statistics(&dx, &dz, nullptr, &st, nullptr) == SEGLOSS_ERROR_DTYPE);
  CHECK(st == nullptr);
  CHECK(std::string(segloss_status_name(SEGLOSS_ERROR_DTYPE)) == "SEGLOSS_ERROR_DTYPE");
}
