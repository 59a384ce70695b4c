// The softmax overlap losses store p in the gradient buffer during the statistics pass and read
// it back in the gradient pass (backends/cpu/softmax_overlap.hpp, probs_out / probs). These
// tests check that the stored path gives bit for bit the gradient of the path that recomputes
// the softmax (taken when the buffer overlaps a probability target, and by the combined losses,
// which accumulate into the buffer), that it runs in place on the logits, and that it does not
// depend on the thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include <segloss/segloss.hpp>

#include "helpers.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

// f(x, t, grad) -> value, the four losses' buffer form with non-default options.
template <class T, class U>
std::vector<std::function<double(const Tensor<T>&, const Tensor<U>&, Tensor<T>&)>> losses(
    bool squared) {
  SoftmaxOverlapOptions<T> d;
  d.squared = squared;
  d.per_image = false;
  SoftmaxOverlapOptions<T> j;
  j.squared = squared;
  j.log = true;
  SoftmaxTverskyOptions<T> tv;
  tv.alpha = 0.7;
  tv.beta = 0.3;
  GeneralizedDiceOptions<T> g;
  return {
      [=](const Tensor<T>& x, const Tensor<U>& t, Tensor<T>& gr) {
        return softmax_dice_value_and_grad(x, t, gr, d);
      },
      [=](const Tensor<T>& x, const Tensor<U>& t, Tensor<T>& gr) {
        return softmax_jaccard_value_and_grad(x, t, gr, j);
      },
      [=](const Tensor<T>& x, const Tensor<U>& t, Tensor<T>& gr) {
        return softmax_tversky_value_and_grad(x, t, gr, tv);
      },
      [=](const Tensor<T>& x, const Tensor<U>& t, Tensor<T>& gr) {
        return generalized_dice_value_and_grad(x, t, gr, g);
      },
  };
}

}  // namespace

TEST_CASE_TEMPLATE("stored softmax: equals the recomputing path bit for bit (probabilities)", T,
                   float, double) {
  // 37 pixels: packets and a scalar tail; 5 classes.
  const Shape s{2, 5, 37};
  const auto x = testing::randn<T>(s, 901, 3.0);
  const auto t = testing::soft_target<T>(s, 902);
  for (bool squared : {false, true}) {
    CAPTURE(squared);
    const auto fs = losses<T, T>(squared);
    for (size_t k = 0; k < fs.size(); ++k) {
      CAPTURE(k);
      // With the target itself as the buffer, the statistics pass must not store p there (the
      // gradient pass reads the target again), so that call recomputes the softmax.
      const auto r = testing::stored_and_recomputed(fs[k], x, t);
      CHECK(testing::same_bits(r.stored, r.recomputed));
    }
  }
}

TEST_CASE_TEMPLATE("stored softmax: softmax_dice equals ce_dice's recomputing Dice pass", T, float,
                   double) {
  // ce_dice with ce_weight 0 adds its Dice gradient (recomputed) to 0 times the CE gradient.
  const Shape s{3, 4, 9, 7};
  const auto x = testing::randn<T>(s, 911, 4.0);
  const auto y = testing::labels<int64_t>(s.without(1), 4, 912, 0.2);
  for (bool squared : {false, true}) {
    CAPTURE(squared);
    SoftmaxOverlapOptions<T> d;
    d.squared = squared;
    CeDiceOptions<T> cd;
    cd.dice = d;
    cd.ce_weight = 0.0;
    cd.dice_weight = 1.0;
    Tensor<T> g1, g2;
    const double v1 = softmax_dice_value_and_grad(x, y, g1, d);
    ce_dice_value_and_grad(x, y, g2, cd);
    CHECK(std::isfinite(v1));
    // -0 + 0 is +0, so compare values, not bits.
    for (int64_t i = 0; i < g1.numel(); ++i) {
      CAPTURE(i);
      REQUIRE(g1[i] == g2[i]);
    }
  }
}

TEST_CASE_TEMPLATE("stored softmax: in place on the logits, backward, thread counts", T, float,
                   double) {
  const Shape s{2, 6, 50};
  const auto x = testing::randn<T>(s, 921, 2.0);
  const auto y = testing::labels<int32_t>(s.without(1), 6, 922, 0.1);
  const auto fs = losses<T, int32_t>(false);
  for (size_t k = 0; k < fs.size(); ++k) {
    CAPTURE(k);
    testing::check_threads_and_in_place(fs[k], x, y);
  }
  // backward stores p in the tensor it returns.
  SoftmaxOverlapOptions<T> o;
  Tensor<T> ref;
  softmax_dice_value_and_grad(x, y, ref, o);
  CHECK(testing::same_bits(softmax_dice_backward(x, y, Tensor<T>::full(Shape{}, T(1)), o), ref));
  GeneralizedDiceOptions<T> go;
  generalized_dice_value_and_grad(x, y, ref, go);
  CHECK(
      testing::same_bits(generalized_dice_backward(x, y, Tensor<T>::full(Shape{}, T(1)), go), ref));
}
