// The device-value form of value_and_grad (`Tensor<T>& value`, session 11) of softmax_dice,
// softmax_jaccard, softmax_tversky, generalized_dice, lovasz_softmax and lovasz_hinge on the
// CPU: its value is the host form's value rounded to T (the same bits) and its gradient has the
// host form's bits, float and double, label targets int32 and int64 and probability targets; an
// undefined value is allocated with shape (), a caller's one-element value is written in place;
// a value of the wrong size, reduction none, undefined logits and a bad label raise, the last
// two with the host form's message. tests/test_cuda_value_into_softmax.cpp has the CUDA side.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include <segloss/segloss.hpp>

#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
bool bits_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<size_t>(a.numel())) == 0;
}

template <class T>
bool bits_equal(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// host(g) is the host form (returns the double), into(g, v) the device-value form of one call.
template <class T, class Host, class Into>
void check_into(const Host& host, const Into& into) {
  Tensor<T> g_host, g_into, value;
  const double want = host(g_host);
  into(g_into, value);
  REQUIRE(value.defined());
  CHECK(value.shape() == Shape{});
  CHECK(value.device() == Device::cpu);
  INFO("host ", want, " into ", static_cast<double>(value[0]));
  CHECK(bits_equal(value[0], static_cast<T>(want)));
  CHECK(bits_equal(g_into, g_host));
  // A caller's one-element value (and grad) is written in place.
  auto one = Tensor<T>::full(Shape{1, 1}, T(-7));
  const T* where = one.data();
  Tensor<T> g_caller = Tensor<T>::full(g_host.shape(), T(3));
  into(g_caller, one);
  CHECK(one.data() == where);
  CHECK(one.shape() == Shape{1, 1});
  CHECK(bits_equal(one[0], static_cast<T>(want)));
  CHECK(bits_equal(g_caller, g_host));
}

#define SEGLOSS_CHECK_INTO(FN, X, Y, O)                                        \
  check_into<T>([&](Tensor<T>& g) { return FN##_value_and_grad(X, Y, g, O); }, \
                [&](Tensor<T>& g, Tensor<T>& v) { FN##_value_and_grad(X, Y, g, v, O); })

// The argument errors of the device-value form: a value of two elements, reduction none, and
// undefined logits (the host form's message) raise.
#define SEGLOSS_CHECK_INTO_ERRORS(FN, X, Y, O)                                                     \
  do {                                                                                             \
    Tensor<T> g;                                                                                   \
    auto two = Tensor<T>::zeros(Shape{2});                                                         \
    CHECK_THROWS_WITH_AS(FN##_value_and_grad(X, Y, g, two, O),                                     \
                         #FN "_value_and_grad: value (2) must hold one element", Error);           \
    auto none = O;                                                                                 \
    none.reduction = Reduction::none;                                                              \
    auto v = Tensor<T>::zeros(Shape{});                                                            \
    const std::string host_none = error_of([&] { FN##_value_and_grad(X, Y, g, none); });           \
    CHECK(host_none.find("reduction none has no single value") != std::string::npos);              \
    CHECK(error_of([&] { FN##_value_and_grad(X, Y, g, v, none); }) == host_none);                  \
    Tensor<T> undefined_value;                                                                     \
    CHECK(error_of([&] { FN##_value_and_grad(X, Y, g, undefined_value, none); }) == host_none);    \
    const Tensor<T> no_logits;                                                                     \
    const std::string host_undefined = error_of([&] { FN##_value_and_grad(no_logits, Y, g, O); }); \
    CHECK(host_undefined == #FN "_value_and_grad: logits is undefined");                           \
    Tensor<T> v2;                                                                                  \
    CHECK(error_of([&] { FN##_value_and_grad(no_logits, Y, g, v2, O); }) == host_undefined);       \
    CHECK_FALSE(v2.defined());                                                                     \
  } while (0)

template <class T, class U>
void softmax_family(const Tensor<T>& x, const Tensor<U>& y) {
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (bool per_image : {true, false}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(per_image);
      SoftmaxOverlapOptions<T> o;
      o.reduction = r;
      o.per_image = per_image;
      if constexpr (!std::is_floating_point_v<U>) o.ignore_index = 3;
      SEGLOSS_CHECK_INTO(softmax_dice, x, y, o);
      SEGLOSS_CHECK_INTO(softmax_jaccard, x, y, o);
      o.squared = true;
      o.empty = EmptyPolicy::skip;
      o.gamma = 2.0;
      o.class_weight = uniform<T>(Shape{x.size(1)}, 7, 0.5, 2.0);
      SEGLOSS_CHECK_INTO(softmax_dice, x, y, o);
      SoftmaxTverskyOptions<T> t;
      t.reduction = r;
      t.per_image = per_image;
      t.alpha = 0.3;
      t.beta = 0.7;
      t.log = true;
      SEGLOSS_CHECK_INTO(softmax_tversky, x, y, t);
      GeneralizedDiceOptions<T> gd;
      gd.reduction = r;
      gd.per_image = per_image;
      SEGLOSS_CHECK_INTO(generalized_dice, x, y, gd);
      gd.w_type = GeneralizedDiceWeight::simple;
      gd.include_background = false;
      SEGLOSS_CHECK_INTO(generalized_dice, x, y, gd);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("value into (CPU): softmax overlap losses and generalized_dice", T, float,
                   double) {
  const Shape s{2, 5, 7, 9};
  const auto x = randn<T>(s, 1, 2.0);
  softmax_family(x, labels<int32_t>(s.without(1), 5, 2, 0.1, 3));
  softmax_family(x, labels<int64_t>(s.without(1), 5, 3, 0.1, 3));
  softmax_family(x, normalized_uniform<T>(s, 4));
}

TEST_CASE_TEMPLATE("value into (CPU): lovasz_softmax and lovasz_hinge", T, float, double) {
  const Shape s{3, 4, 6, 7};
  const auto x = randn<T>(s, 11, 2.0);
  const auto y32 = labels<int32_t>(s.without(1), 4, 12, 0.1);
  const auto y64 = labels<int64_t>(s.without(1), 4, 13, 0.1);
  auto t = mask<T>(s, 14);
  t[5] = T(255);
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (bool per_image : {true, false}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(per_image);
      LovaszSoftmaxOptions<T> o;
      o.reduction = r;
      o.per_image = per_image;
      SEGLOSS_CHECK_INTO(lovasz_softmax, x, y32, o);
      o.classes = LovaszClasses::all;
      SEGLOSS_CHECK_INTO(lovasz_softmax, x, y64, o);
      o.class_list = {0, 2};
      SEGLOSS_CHECK_INTO(lovasz_softmax, x, y32, o);
      LovaszHingeOptions<T> h;
      h.reduction = r;
      h.per_image = per_image;
      h.ignore = 255.0;
      SEGLOSS_CHECK_INTO(lovasz_hinge, x, t, h);
    }
}

TEST_CASE_TEMPLATE("value into (CPU): argument errors and bad labels", T, float, double) {
  const Shape s{2, 3, 4, 5};
  const auto x = randn<T>(s, 21);
  const auto y = labels<int64_t>(s.without(1), 3, 22);
  const auto q = normalized_uniform<T>(s, 23);
  const auto t = mask<T>(s, 24);
  SoftmaxOverlapOptions<T> o;
  SoftmaxTverskyOptions<T> tv;
  GeneralizedDiceOptions<T> gd;
  LovaszSoftmaxOptions<T> lo;
  LovaszHingeOptions<T> h;
  SEGLOSS_CHECK_INTO_ERRORS(softmax_dice, x, y, o);
  SEGLOSS_CHECK_INTO_ERRORS(softmax_jaccard, x, q, o);
  SEGLOSS_CHECK_INTO_ERRORS(softmax_tversky, x, y, tv);
  SEGLOSS_CHECK_INTO_ERRORS(generalized_dice, x, q, gd);
  SEGLOSS_CHECK_INTO_ERRORS(lovasz_softmax, x, y, lo);
  SEGLOSS_CHECK_INTO_ERRORS(lovasz_hinge, x, t, h);

  // A bad label raises the host form's message (on the CPU the value is a host value).
  auto bad = y;
  bad[17] = 7;
  auto bad_t = t;
  bad_t[9] = T(2);
  Tensor<T> g, v;
  const auto same = [&](auto host, auto into) {
    const std::string want = error_of(host);
    CHECK(want.find("label") != std::string::npos);
    CHECK(error_of(into) == want);
  };
  same([&] { softmax_dice_value_and_grad(x, bad, g, o); },
       [&] { softmax_dice_value_and_grad(x, bad, g, v, o); });
  same([&] { softmax_tversky_value_and_grad(x, bad, g, tv); },
       [&] { softmax_tversky_value_and_grad(x, bad, g, v, tv); });
  same([&] { generalized_dice_value_and_grad(x, bad, g, gd); },
       [&] { generalized_dice_value_and_grad(x, bad, g, v, gd); });
  same([&] { lovasz_softmax_value_and_grad(x, bad, g, lo); },
       [&] { lovasz_softmax_value_and_grad(x, bad, g, v, lo); });
  same([&] { lovasz_hinge_value_and_grad(x, bad_t, g, h); },
       [&] { lovasz_hinge_value_and_grad(x, bad_t, g, v, h); });
}
