// The binary overlap losses (soft_dice, soft_jaccard, tversky) and bce_dice store
// copysign(exp(-|x|), x) in the gradient buffer during the statistics pass and rebuild the
// sigmoid from it in the gradient pass (backends/cpu/overlap.hpp, OverlapArgs::stash). These
// tests check that the stored path gives the gradient of the path that recomputes exp(-|x|) from
// the logits (taken when the buffer overlaps the target or the weight), also at logits where
// exp(-|x|) is subnormal or 0 and at -0: the same e, 1 / (1 + e) and sign, so the same value to
// the rounding of the last operations (the two instantiations' scalar tails may contract a
// product and a sum into an FMA differently), that it runs in place on the logits, and that it
// does not depend on the thread count (bit for bit).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <segloss/segloss.hpp>

#include "helpers.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

// Equal to 8 ulp of the largest magnitude: an FMA contracted or not rounds one term differently,
// and the BCE and Dice terms of an element may cancel, so the bound is on the terms' scale.
template <class T>
bool close(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  T m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max({m, std::abs(a[i]), std::abs(b[i])});
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!(std::abs(a[i] - b[i]) <= 8 * std::numeric_limits<T>::epsilon() * m)) return false;
  return true;
}

// Logits of scale 4 with the extremes written in: exp(-|x|) subnormal (|x| = 90 in float, 730
// in double), 0 (|x| = 1e4), and x = +-0.
template <class T>
Tensor<T> logits(const Shape& s, uint64_t seed) {
  auto x = testing::randn<T>(s, seed, 4.0);
  const T big = sizeof(T) == 4 ? T(90) : T(730);
  const T extremes[] = {big, -big, T(1e4), T(-1e4), T(0), -T(0), T(40), T(-40)};
  for (int64_t i = 0; i < 8 && i < x.numel(); ++i) x[3 * i + 1] = extremes[i];
  return x;
}

// f(x, t, grad) -> value: the losses' buffer form, with non-default options.
template <class T>
std::vector<std::function<double(const Tensor<T>&, const Tensor<T>&, Tensor<T>&)>> losses(
    const Tensor<T>& w) {
  SoftDiceOptions<T> dice_w;
  dice_w.weight = w;
  SoftDiceOptions<T> dice_sq;
  dice_sq.squared = true;
  dice_sq.per_image = false;
  SoftJaccardOptions<T> jac;
  jac.log = true;
  TverskyOptions<T> tv;
  tv.alpha = 0.3;
  tv.beta = 0.7;
  tv.gamma = 4.0 / 3.0;
  BceDiceOptions<T> bd;
  BceDiceOptions<T> bd_w;  // weights in both terms, pos_weight, label smoothing, log Dice
  bd_w.bce.weight = w;
  bd_w.bce.pos_weight = Tensor<T>::full(Shape{1}, T(3));
  bd_w.bce.label_smoothing = 0.1;
  bd_w.dice.weight = w;
  bd_w.dice.log = true;
  using F = std::function<double(const Tensor<T>&, const Tensor<T>&, Tensor<T>&)>;
  return {
      F([](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return soft_dice_value_and_grad(x, t, g);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return soft_dice_value_and_grad(x, t, g, dice_w);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return soft_dice_value_and_grad(x, t, g, dice_sq);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return soft_jaccard_value_and_grad(x, t, g, jac);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return tversky_value_and_grad(x, t, g, tv);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return bce_dice_value_and_grad(x, t, g, bd);
      }),
      F([=](const Tensor<T>& x, const Tensor<T>& t, Tensor<T>& g) {
        return bce_dice_value_and_grad(x, t, g, bd_w);
      }),
  };
}

}  // namespace

TEST_CASE_TEMPLATE("stored sigmoid: equals the recomputing path", T, float, double) {
  // 3 images of 53 pixels: packets and a scalar tail in every plane; soft targets.
  const Shape s{3, 1, 53};
  const auto x = logits<T>(s, 931);
  const auto t = testing::uniform<T>(s, 932, 0.0, 1.0);
  const auto w = testing::uniform<T>(s, 933, 0.5, 2.0);
  const auto fs = losses<T>(w);
  for (size_t k = 0; k < fs.size(); ++k) {
    CAPTURE(k);
    // With the target itself as the buffer, pass 1 must not store there (pass 2 reads the target
    // again), so that call recomputes exp(-|x|) from the logits.
    const auto r = testing::stored_and_recomputed(fs[k], x, t);
    CHECK(std::isfinite(r.value));
    for (int64_t i = 0; i < r.stored.numel(); ++i) {
      CAPTURE(i);
      REQUIRE(std::isfinite(r.stored[i]));
    }
    CHECK(close(r.stored, r.recomputed));
  }
}

TEST_CASE_TEMPLATE("stored sigmoid: a buffer overlapping the weight is not stored to", T, float,
                   double) {
  const Shape s{2, 1, 40};
  const auto x = logits<T>(s, 941);
  const auto t = testing::mask<T>(s, 942);
  const auto w = testing::uniform<T>(s, 943, 0.5, 2.0);
  const auto fs = losses<T>(w);
  for (size_t k : {size_t(1), size_t(6)}) {  // the weighted soft_dice and bce_dice
    CAPTURE(k);
    Tensor<T> ref;
    const double v = fs[k](x, t, ref);
    // The weight's own storage as the buffer: the call reads the weight in both passes, so it
    // must recompute; its gradient is then the same as with a separate buffer.
    Tensor<T> w_copy = testing::copy_of(w);
    const auto fw = losses<T>(w_copy);
    const double v2 = fw[k](x, t, w_copy);
    CHECK(v == v2);
    CHECK(close(w_copy, ref));
  }
}

TEST_CASE_TEMPLATE("stored sigmoid: in place on the logits, backward, thread counts", T, float,
                   double) {
  const Shape s{4, 1, 9, 11};
  const auto x = logits<T>(s, 951);
  const auto t = testing::mask<T>(s, 952);
  const auto w = testing::uniform<T>(s, 953, 0.5, 2.0);
  const auto fs = losses<T>(w);
  for (size_t k = 0; k < fs.size(); ++k) {
    CAPTURE(k);
    testing::check_threads_and_in_place(fs[k], x, t);
  }
  // backward stores into the tensor it returns.
  Tensor<T> ref;
  soft_dice_value_and_grad(x, t, ref);
  CHECK(testing::same_bits(soft_dice_backward(x, t, Tensor<T>::full(Shape{}, T(1))), ref));
  bce_dice_value_and_grad(x, t, ref);
  CHECK(testing::same_bits(bce_dice_backward(x, t, Tensor<T>::full(Shape{}, T(1))), ref));
}
