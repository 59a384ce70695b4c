// The C API with SEGLOSS_F16 and SEGLOSS_BF16 logits: every loss's four entry points and the
// statistics / finalize split against the C++ calls (the same code, so bitwise equal), and the
// dtype errors of the functions that take f32 or f64 only (the metrics) and of mixed dtypes.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include <segloss/capi/segloss.h>

#include "capi_helpers.hpp"
#include "helpers.hpp"

using namespace segloss;
using segloss::testing::desc;
using segloss::testing::last_error;
using segloss::testing::same_bits;

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

// Every loss's forward, backward, value_and_grad and value_and_grad_into with default options
// (NULL) against the C++ calls on the same tensors, bit for bit.
#define SEGLOSS_TEST_C_LOSS(NAME, X, T)                                                         \
  do {                                                                                          \
    INFO(#NAME);                                                                                \
    segloss_tensor dx_ = desc(X), dt_ = desc(T);                                                \
    auto g_ = Tensor<H>::empty(X.shape());                                                      \
    segloss_tensor dg_ = desc(g_);                                                              \
    double v_ = 0;                                                                              \
    REQUIRE(segloss_##NAME##_value_and_grad(&dx_, &dt_, nullptr, &v_, &dg_, nullptr) ==         \
            SEGLOSS_OK);                                                                        \
    const auto r_ = NAME##_value_and_grad(X, T);                                                \
    CHECK(v_ == r_.value);                                                                      \
    CHECK(same_bits(g_, r_.grad));                                                              \
    const auto f_ = NAME(X, T);                                                                 \
    auto out_ = Tensor<H>::empty(f_.shape());                                                   \
    segloss_tensor do_ = desc(out_);                                                            \
    REQUIRE(segloss_##NAME##_forward(&dx_, &dt_, nullptr, &do_, nullptr) == SEGLOSS_OK);        \
    CHECK(same_bits(out_, f_));                                                                 \
    REQUIRE(segloss_##NAME##_backward(&dx_, &dt_, &dgo, nullptr, &dg_, nullptr) == SEGLOSS_OK); \
    CHECK(same_bits(g_, NAME##_backward(X, T, go)));                                            \
    auto val_ = Tensor<H>::full(Shape{}, H(-7.f));                                              \
    segloss_tensor dv_ = desc(val_);                                                            \
    REQUIRE(segloss_##NAME##_value_and_grad_into(&dx_, &dt_, nullptr, &dv_, &dg_, nullptr) ==   \
            SEGLOSS_OK);                                                                        \
    Tensor<H> wg_, wv_;                                                                         \
    NAME##_value_and_grad(X, T, wg_, wv_);                                                      \
    CHECK(same_bits(val_, wv_));                                                                \
    CHECK(same_bits(g_, wg_));                                                                  \
    ++calls;                                                                                    \
  } while (0)

TEST_CASE_TEMPLATE("capi: 16-bit logits in every loss's four entry points match C++", H, float16,
                   bfloat16) {
  const Shape s{2, 3, 5, 4};
  const auto x = to_half<H>(testing::randn<float>(s, 11, 2.0));
  const auto z = to_half<H>(testing::mask<float>(s, 12));
  const auto p = to_half<H>(testing::uniform<float>(s, 13, 0.05, 0.95));
  const auto q = to_half<H>(testing::normalized_uniform<float>(s, 14));
  const auto y = testing::labels<int32_t>(s.without(1), 3, 15);
  const auto y64 = testing::labels<int64_t>(s.without(1), 3, 16);
  const auto go = Tensor<H>::full(Shape{}, H(0.75f));
  segloss_tensor dgo = desc(go);
  int calls = 0;
  SEGLOSS_TEST_C_LOSS(bce_with_logits, x, z);
  SEGLOSS_TEST_C_LOSS(binary_cross_entropy, p, z);
  SEGLOSS_TEST_C_LOSS(sigmoid_focal, x, z);
  SEGLOSS_TEST_C_LOSS(soft_dice, x, z);
  SEGLOSS_TEST_C_LOSS(soft_jaccard, x, z);
  SEGLOSS_TEST_C_LOSS(tversky, x, z);
  SEGLOSS_TEST_C_LOSS(bce_dice, x, z);
  SEGLOSS_TEST_C_LOSS(lovasz_hinge, x, z);
  SEGLOSS_TEST_C_LOSS(cross_entropy, x, y);
  SEGLOSS_TEST_C_LOSS(cross_entropy, x, q);
  SEGLOSS_TEST_C_LOSS(softmax_dice, x, y64);
  SEGLOSS_TEST_C_LOSS(softmax_dice, x, q);
  SEGLOSS_TEST_C_LOSS(softmax_jaccard, x, y);
  SEGLOSS_TEST_C_LOSS(softmax_tversky, x, q);
  SEGLOSS_TEST_C_LOSS(generalized_dice, x, y);
  SEGLOSS_TEST_C_LOSS(generalized_dice, x, q);
  SEGLOSS_TEST_C_LOSS(ce_dice, x, y64);
  SEGLOSS_TEST_C_LOSS(ce_dice, x, q);
  SEGLOSS_TEST_C_LOSS(softmax_focal, x, y);
  SEGLOSS_TEST_C_LOSS(dice_focal, x, y64);
  SEGLOSS_TEST_C_LOSS(lovasz_softmax, x, y);
  CHECK(calls == 21);
  CHECK(registry::losses().size() == 17);  // every loss is above: a new one needs a line here
}

// The split with 16-bit logits: statistics and finalize against the C++ calls, bit for bit.
TEST_CASE_TEMPLATE("capi: 16-bit logits in statistics / finalize match C++", H, float16, bfloat16) {
  const Shape s{2, 3, 5, 4};
  const auto x = to_half<H>(testing::randn<float>(s, 31, 2.0));
  const auto z = to_half<H>(testing::mask<float>(s, 32));
  const auto y = testing::labels<int64_t>(s.without(1), 3, 33);
  segloss_tensor dx = desc(x), dz = desc(z), dy = desc(y);
  auto g = Tensor<H>::empty(s);
  segloss_tensor dg = desc(g);
  double v = 0;
  segloss_statistics* st = nullptr;
  REQUIRE(segloss_bce_dice_statistics(&dx, &dz, nullptr, &st, nullptr) == SEGLOSS_OK);
  const OverlapStatistics want = bce_dice_statistics(x, z);
  double* data = nullptr;
  int64_t count = 0;
  REQUIRE(segloss_statistics_global(st, &data, &count) == SEGLOSS_OK);
  REQUIRE(count == static_cast<int64_t>(want.global.size()));
  CHECK(std::memcmp(data, want.global.data(), want.global.size() * sizeof(double)) == 0);
  REQUIRE(segloss_bce_dice_finalize(&dx, &dz, st, nullptr, &v, &dg, nullptr) == SEGLOSS_OK);
  Tensor<H> want_g;
  CHECK(v == bce_dice_finalize(x, z, want, want_g));
  CHECK(same_bits(g, want_g));
  segloss_statistics_destroy(st);
  st = nullptr;
  REQUIRE(segloss_softmax_focal_statistics(&dx, &dy, nullptr, &st, nullptr) == SEGLOSS_OK);
  const ShardStatistics want_f = softmax_focal_statistics(x, y);
  REQUIRE(segloss_softmax_focal_finalize(&dx, &dy, st, nullptr, &v, &dg, nullptr) == SEGLOSS_OK);
  CHECK(v == softmax_focal_finalize(x, y, want_f, want_g));
  CHECK(same_bits(g, want_g));
  segloss_statistics_destroy(st);
}

TEST_CASE("capi: 16-bit tensors in the metrics, and mixed dtypes, are dtype errors") {
  const Shape s{1, 2, 3, 3};
  const auto x = to_half<float16>(testing::randn<float>(s, 4, 1.0));
  const auto z = to_half<float16>(testing::mask<float>(s, 5));
  const auto zf = testing::mask<float>(s, 5);
  auto g = Tensor<float16>::empty(s);
  segloss_tensor dx = desc(x), dz = desc(z), dzf = desc(zf), dg = desc(g);
  double v = 0;
  segloss_dice_score_result result;
  CHECK(segloss_dice_score(&dx, &dz, nullptr, &result, nullptr, nullptr) == SEGLOSS_ERROR_DTYPE);
  CHECK(last_error().find("segloss_dice_score: pred has dtype f16; this function takes f32 or "
                          "f64") == 0);
  const auto xb = to_half<bfloat16>(to_float(x));
  segloss_tensor dxb = desc(xb);
  CHECK(segloss_sigmoid_focal_forward(&dxb, &dz, nullptr, &dg, nullptr) == SEGLOSS_ERROR_DTYPE);
  CHECK(last_error() == "segloss_sigmoid_focal_forward: out has dtype f16; expected bf16");
  CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dzf, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error() ==
        "segloss_bce_with_logits_value_and_grad: target has dtype f32; expected f16");
  CHECK(segloss_cross_entropy_value_and_grad(&dx, &dzf, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error().find("target has dtype f32; expected i32, i64 or u8 labels, or f16 "
                          "probabilities like the logits") != std::string::npos);
  const auto yf = Tensor<float>::zeros(Shape{1, 3, 3});
  segloss_tensor dyf = desc(yf);
  CHECK(segloss_lovasz_softmax_value_and_grad(&dx, &dyf, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  segloss_statistics* st = nullptr;
  CHECK(segloss_bce_with_logits_statistics(&dx, &dzf, nullptr, &st, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(st == nullptr);
  CHECK(std::string(segloss_status_name(SEGLOSS_ERROR_DTYPE)) == "SEGLOSS_ERROR_DTYPE");
}
