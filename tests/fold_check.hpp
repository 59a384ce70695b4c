// The check of the folded walk (backends/cpu/fold_images.hpp) of a class-axis loss: every form
// on (N, C, S) logits with few pixels per image against the same pixels laid out as one image.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "helpers.hpp"

namespace segloss::testing {

// (N, C, S) as one image (1, C, N * S): pixel n * S + s of that image is pixel s of image n.
template <class T>
Tensor<T> as_one_image(const Tensor<T>& x) {
  const int64_t n = x.size(0), c = x.size(1), px = x.shape().numel_from(2);
  auto r = Tensor<T>::empty({1, c, n * px});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t j = 0; j < px; ++j) r[k * n * px + i * px + j] = x[(i * c + k) * px + j];
  return r;
}

template <class T>
Tensor<T> reshaped(const Tensor<T>& t, const Shape& s) {
  return Tensor<T>::from(std::vector<T>(t.begin(), t.end()), s);
}

// The same bits where `exact`, else within a few roundings.
template <class T>
void check_same(const Tensor<T>& got, const Tensor<T>& want, bool exact) {
  REQUIRE(got.numel() == want.numel());
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  int64_t differ = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    if (exact ? std::memcmp(&got[i], &want[i], sizeof(T)) != 0
              : !(std::abs(g - w) <= tol * std::max(1.0, std::abs(w))))
      ++differ;
  }
  CHECK(differ == 0);
}

// Every form on (N, C, S) against the same pixels as one image of N * S pixels, whose walk
// vectorizes over pixels. With S = 1 the folded walk must give the same bits (the same lanes,
// chunks and sums: its grid is that one image's). A larger S is folded only below the build's
// packet width (4 to 16 lanes), so the walks may differ there by the order of the sums.
template <class T, class L, class O, class F, class B, class V>
void check_folded(const Tensor<T>& x, const Tensor<L>& t, O o, F&& forward, B&& backward,
                  V&& value_and_grad) {
  const bool exact = x.shape().numel_from(2) == 1;
  const Tensor<T> x1 = as_one_image(x);
  Tensor<L> t1;
  if constexpr (std::is_same_v<L, T>)
    t1 = as_one_image(t);
  else
    t1 = reshaped(t, {1, t.numel()});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(static_cast<int>(r));
    o.reduction = r;
    const Tensor<T> f = forward(x, t, o), f1 = forward(x1, t1, o);
    check_same(f, f1, exact);
    const Tensor<T> go =
        r == Reduction::none ? testing::randn<T>(f.shape(), 41) : Tensor<T>::from({T(0.75)}, {});
    check_same(as_one_image(backward(x, t, go, o)), backward(x1, t1, reshaped(go, f1.shape()), o),
               exact);
    if (r == Reduction::none) continue;
    const auto vg = value_and_grad(x, t, o), vg1 = value_and_grad(x1, t1, o);
    if (exact)
      CHECK(vg.value == vg1.value);
    else
      CHECK(vg.value == doctest::Approx(vg1.value).epsilon(1e-5));
    check_same(as_one_image(vg.grad), vg1.grad, exact);
    // In place (grad is the logits: each packet gathers its logits before its gradient is
    // written back), and on one thread: the same bits as the call above.
    Tensor<T> in_place = reshaped(x, x.shape());
    CHECK(value_and_grad(in_place, t, in_place, o) == vg.value);
    check_same(in_place, vg.grad, true);
    const int threads = num_threads();
    set_num_threads(1);
    const auto one = value_and_grad(x, t, o);
    set_num_threads(threads);
    CHECK(one.value == vg.value);
    check_same(one.grad, vg.grad, true);
  }
}

// check_folded for a loss named `name`: forward, backward and value_and_grad of segloss.
#define SEGLOSS_CHECK_FOLDED(name, x, t, o)              \
  ::segloss::testing::check_folded(                      \
      x, t, o, [](auto&&... a) { return name(a...); },   \
      [](auto&&... a) { return name##_backward(a...); }, \
      [](auto&&... a) { return name##_value_and_grad(a...); })

}  // namespace segloss::testing
