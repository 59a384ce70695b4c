// cpu::gather_lanes (backends/cpu/class_axis.hpp) picks each lane's label logit of a packet of
// float pixels with one AVX-512 int32 gather when every offset fits int32, and lane by lane
// otherwise: (C - 1) * S + 16 > 2^31 - 1, a float tensor over 8 GiB, which no test allocates.
// These tests force the lane-by-lane path on small tensors through the seam
// cpu::gather_offset_limit (backends/cpu/gather_fits.hpp) and check that cross_entropy and
// softmax_focal give the same bits either way: the value, the per-pixel loss, the
// value_and_grad gradient and the backward gradient, with and without weights, ignored pixels
// and int32 or int64 labels, on shapes whose C is not a multiple of the 16 float lanes and whose
// pixels end in a scalar tail. Float only: double, and builds without AVX-512, take the lane
// loop on both sides.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include <segloss/backends/cpu/gather_fits.hpp>
#include <segloss/segloss.hpp>

#include "helpers.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

struct Results {
  Tensor<float> loss, back, grad;  // reduction none's forward and backward; mean's gradient
  double value = 0;                // mean's value
};

// The loss's three calls, as generic lambdas fwd(x, y, o), bwd(x, y, grad_out, o) and
// vag(x, y, grad, o), with the gather and with the fallback: the same bits.
template <class L, class O, class Fwd, class Bwd, class Vag>
void check_fallback_bits(const Tensor<float>& x, const Tensor<L>& y, O o, Fwd fwd, Bwd bwd,
                         Vag vag) {
  const int64_t C = x.size(1), S = x.shape().numel_from(2);
  auto run = [&] {
    Results r;
    o.reduction = Reduction::none;
    r.loss = fwd(x, y, o);
    r.back = bwd(x, y, testing::randn<float>(r.loss.shape(), 17), o);
    o.reduction = Reduction::mean;
    r.value = vag(x, y, r.grad, o);
    return r;
  };
  REQUIRE(cpu::gather_fits(C, S, 16));
  const Results gathered = run();
  Results fallback;
  {
    // A bound of 0: no offset fits, every gather_lanes call of the kernels takes the lane loop
    // until the guard goes.
    const testing::ScopedValue<int64_t> force(cpu::gather_offset_limit, 0);
    REQUIRE_FALSE(cpu::gather_fits(C, S, 16));
    fallback = run();
  }
  CHECK(cpu::gather_fits(C, S, 16));  // the guard restored the bound
  CHECK(std::isfinite(gathered.value));
  CHECK(fallback.value == gathered.value);
  CHECK(testing::same_bits(fallback.loss, gathered.loss));
  CHECK(testing::same_bits(fallback.back, gathered.back));
  CHECK(testing::same_bits(fallback.grad, gathered.grad));
}

// The three calls of loss `name` (forward, backward, value_and_grad into a buffer) as the
// generic lambdas check_fallback_bits takes.
#define SEGLOSS_LOSS_CALLS(name)                                             \
  [](const auto& a, const auto& t, const auto& o) { return name(a, t, o); }, \
      [](const auto& a, const auto& t, const auto& go, const auto& o) {      \
        return name##_backward(a, t, go, o);                                 \
      },                                                                     \
      [](const auto& a, const auto& t, auto& g, const auto& o) {             \
        return name##_value_and_grad(a, t, g, o);                            \
      }

// (N, C, S...) shapes: C = 5, 19 and 17 (not multiples of 16) with 37, 63 and 105 pixels (two,
// three and six packets and a tail of 5, 15 and 9), a volume; and a 1x1 image of one item (a
// scalar tail only, no packet).
const Shape kShapes[] = {{2, 5, 37}, {1, 19, 7, 9}, {2, 17, 3, 5, 7}, {1, 3, 1, 1}};

}  // namespace

TEST_CASE_TEMPLATE("gather fallback: cross_entropy bit for bit", L, int32_t, int64_t) {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const int64_t C = s[1];
    const auto x = testing::randn<float>(s, 301, 3.0);
    const auto y = testing::labels<L>(s.without(1), C, 302, 0.2);
    CrossEntropyOptions<float> plain;
    CrossEntropyOptions<float> weighted;  // class weights and label smoothing
    weighted.weight = testing::uniform<float>(Shape{C}, 303, 0.5, 2.0);
    weighted.label_smoothing = 0.1;
    // Negative labels ignored (label_lanes' other rule), the mean over valid pixels.
    const auto fcn = CrossEntropyOptions<float>::pytorch_fcn();
    const CrossEntropyOptions<float> options[] = {plain, weighted, fcn};
    for (int k = 0; k < 3; ++k) {
      CAPTURE(k);
      const auto& o = options[k];
      check_fallback_bits(x, y, o, SEGLOSS_LOSS_CALLS(cross_entropy));
    }
  }
}

TEST_CASE_TEMPLATE("gather fallback: softmax_focal bit for bit", L, int32_t, int64_t) {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const int64_t C = s[1];
    const auto x = testing::randn<float>(s, 311, 3.0);
    const auto y = testing::labels<L>(s.without(1), C, 312, 0.2, -1);
    SoftmaxFocalOptions<float> plain;
    plain.ignore_index = -1;
    SoftmaxFocalOptions<float> weighted = plain;  // alpha per class, gamma 1.5
    weighted.alpha = testing::uniform<float>(Shape{C}, 313, 0.25, 1.0);
    weighted.gamma = 1.5;
    const SoftmaxFocalOptions<float> options[] = {plain, weighted};
    for (int k = 0; k < 2; ++k) {
      CAPTURE(k);
      const auto& o = options[k];
      check_fallback_bits(x, y, o, SEGLOSS_LOSS_CALLS(softmax_focal));
    }
  }
}
