// Small planes of the elementwise losses walked as one plane (backends/cpu/flat_planes.hpp):
// logits (N, 1, 1) or (N, C, 1), as a binary or multi-label classifier gives them, went element
// by element with a chunk each, 25x slower than the same elements as one plane. Where nothing
// depends on the plane (no weight or a full-shape weight; a pos_weight shared by the channels)
// the result must now be the same bits as the same elements laid out as (1, 1, N C S): the same
// chunks, packets and sums. Where something does (a broadcast weight, a per-channel
// pos_weight), the plane-by-plane walk stays, checked here by finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "fold_check.hpp"
#include "loss_check.hpp"

using namespace segloss;
using testing::check_same;
using testing::reshaped;

namespace {

template <class T>
Tensor<T> flat(const Tensor<T>& t) {
  return t.defined() ? reshaped(t, {1, 1, t.numel()}) : t;
}

// Every form of a loss on x against the same elements laid out as one plane; `flat_options`
// maps the options to that layout.
template <class T, class O, class F, class B, class V, class M>
void check_one_plane(const Tensor<T>& x, const Tensor<T>& z, O o, M flat_options, F forward,
                     B backward, V value_and_grad) {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(static_cast<int>(r));
    o.reduction = r;
    const O fo = flat_options(o);
    const Tensor<T> f = forward(x, z, o), f1 = forward(flat(x), flat(z), fo);
    check_same(f, f1, true);
    const Tensor<T> go =
        r == Reduction::none ? testing::randn<T>(f.shape(), 81) : Tensor<T>::from({T(0.5)}, {});
    check_same(backward(x, z, go, o), backward(flat(x), flat(z), flat(go), fo), true);
    if (r == Reduction::none) continue;
    const auto vg = value_and_grad(x, z, o), vg1 = value_and_grad(flat(x), flat(z), fo);
    CHECK(vg.value == vg1.value);
    check_same(vg.grad, vg1.grad, true);
  }
}

#define FORMS(name)                                                                          \
  [](auto&&... a) { return name(a...); }, [](auto&&... a) { return name##_backward(a...); }, \
      [](auto&&... a) { return name##_value_and_grad(a...); }

const std::vector<Shape>& small_planes() {
  static const std::vector<Shape> shapes{{1000, 1, 1},      {37, 3, 1},   {19, 2, 5},
                                         {300, 4, 1, 1, 1}, {7, 5, 3, 2}, {3000, 1, 7}};
  return shapes;
}

template <class T>
void check_shapes() {
  for (const Shape& s : small_planes()) {
    CAPTURE(s);
    const auto x = testing::randn<T>(s, 82, 3.0);
    const auto z = testing::mask<T>(s, 83);
    const auto w = testing::uniform<T>(s, 84, 0.25, 2.0);  // full shape: element i's weight
    const auto to_flat = [](auto o) {  // the options for the (1, 1, N C S) layout
      o.weight = flat(o.weight);
      return o;
    };
    {
      INFO("bce_with_logits");
      BceWithLogitsOptions<T> o;
      check_one_plane(x, z, o, to_flat, FORMS(bce_with_logits));
      o.weight = w;
      o.pos_weight = Tensor<T>::from({T(2.5)}, {1});  // one value for every channel
      o.label_smoothing = 0.1;
      check_one_plane(x, z, o, to_flat, FORMS(bce_with_logits));
      o.mean_over = BceMeanOver::weight_sum;
      check_one_plane(x, z, o, to_flat, FORMS(bce_with_logits));
    }
    {
      INFO("binary_cross_entropy");
      const auto p = testing::uniform<T>(s, 85, 0.02, 0.98);
      BinaryCrossEntropyOptions<T> o;
      check_one_plane(p, z, o, to_flat, FORMS(binary_cross_entropy));
      o.weight = w;
      check_one_plane(p, z, o, to_flat, FORMS(binary_cross_entropy));
    }
    {
      INFO("sigmoid_focal");
      for (double gamma : {2.0, 0.5, 0.0}) {
        CAPTURE(gamma);
        SigmoidFocalOptions<T> o;
        o.gamma = gamma;
        check_one_plane(x, z, o, to_flat, FORMS(sigmoid_focal));
        o.weight = w;
        o.alpha = -1.0;
        check_one_plane(x, z, o, to_flat, FORMS(sigmoid_focal));
      }
    }
  }
}

}  // namespace

TEST_CASE("flat planes: small planes of the elementwise losses equal one plane, bit for bit") {
  check_shapes<float>();
  check_shapes<double>();
}

// The walks that stay plane by plane on small planes, and the flat one, against finite
// differences: a per-sample weight (N, 1, 1) broadcast over C = 3 channels, a per-channel
// pos_weight, and a full-shape weight.
TEST_CASE("flat planes: gradcheck on one element per plane, flat and plane by plane") {
  const Shape s{9, 3, 1};
  const auto x = testing::randn<double>(s, 86, 2.0);
  const auto z = testing::uniform<double>(s, 87, 0.0, 1.0);
  const auto check = [&](const BceWithLogitsOptions<double>& o) {
    testing::check_all_reductions(x, z, o, FORMS(bce_with_logits));
  };
  BceWithLogitsOptions<double> o;
  check(o);  // flat
  o.weight = testing::uniform<double>({9, 1, 1}, 88, 0.25, 2.0);
  check(o);  // per sample, broadcast over the channels: plane by plane
  o.weight = testing::uniform<double>(s, 89, 0.25, 2.0);
  o.pos_weight = Tensor<double>::from({0.5, 2.0, 3.0}, {3});
  check(o);  // per-channel pos_weight: plane by plane
  o.pos_weight = Tensor<double>::from({2.0}, {1});
  check(o);  // flat
  SigmoidFocalOptions<double> f;
  f.weight = testing::uniform<double>({9, 1, 1}, 90, 0.25, 2.0);
  testing::check_all_reductions(x, testing::mask<double>(s, 91), f, FORMS(sigmoid_focal));
  BinaryCrossEntropyOptions<double> b;
  b.weight = testing::uniform<double>(s, 92, 0.25, 2.0);
  testing::check_all_reductions(testing::uniform<double>(s, 93, 0.05, 0.95), z, b,
                                FORMS(binary_cross_entropy));
}

// The guard itself: a weight or pos_weight that depends on the plane must not be joined (read as
// if it had the input's full shape, a (9, 1, 1) weight would be read out of its bounds). Each
// loss value against PyTorch's formula, in double, reduction none:
//   l = w [(1 - z) x + (1 + (pw_c - 1) z) (log1p(exp(-|x|)) + max(-x, 0))].
// And a full-shape weight of lower rank, (C, S) for an input (1, C, S), which is joined.
TEST_CASE("flat planes: a weight or pos_weight that depends on the plane is read per plane") {
  const Shape s{9, 3, 1};
  const auto x = testing::randn<double>(s, 94, 3.0);
  const auto z = testing::mask<double>(s, 95);
  const auto per_sample = testing::uniform<double>({9, 1, 1}, 96, 0.25, 2.0);
  const auto per_channel = Tensor<double>::from({0.5, 2.0, 3.0}, {3});
  const auto direct = [&](int64_t i, double w, double pw) {
    const double xi = x[i], zi = z[i];
    return w * ((1 - zi) * xi +
                (1 + (pw - 1) * zi) * (std::log1p(std::exp(-std::abs(xi))) + std::max(-xi, 0.0)));
  };
  BceWithLogitsOptions<double> o;
  o.reduction = Reduction::none;
  o.weight = per_sample;
  o.pos_weight = per_channel;
  const auto l = bce_with_logits(x, z, o);
  o.weight = {};
  const auto lp = bce_with_logits(x, z, o);  // pos_weight only
  o.weight = per_sample;
  o.pos_weight = {};
  const auto lw = bce_with_logits(x, z, o);  // weight only
  for (int64_t i = 0; i < s.numel(); ++i) {
    CAPTURE(i);
    const double w = per_sample[i / 3], pw = per_channel[i % 3];
    CHECK(l[i] == doctest::Approx(direct(i, w, pw)).epsilon(1e-13));
    CHECK(lp[i] == doctest::Approx(direct(i, 1.0, pw)).epsilon(1e-13));
    CHECK(lw[i] == doctest::Approx(direct(i, w, 1.0)).epsilon(1e-13));
  }
  // sigmoid_focal and binary_cross_entropy with the per-sample weight against the same weight
  // expanded to the input's shape (which is joined).
  auto expanded = Tensor<double>::empty(s);
  for (int64_t i = 0; i < s.numel(); ++i) expanded[i] = per_sample[i / 3];
  SigmoidFocalOptions<double> f, fe;
  f.reduction = fe.reduction = Reduction::none;
  f.weight = per_sample;
  fe.weight = expanded;
  const auto a = sigmoid_focal(x, z, f), b = sigmoid_focal(x, z, fe);
  const auto p = testing::uniform<double>(s, 97, 0.05, 0.95);
  BinaryCrossEntropyOptions<double> c, ce;
  c.reduction = ce.reduction = Reduction::none;
  c.weight = per_sample;
  ce.weight = expanded;
  const auto pa = binary_cross_entropy(p, z, c), pb = binary_cross_entropy(p, z, ce);
  for (int64_t i = 0; i < s.numel(); ++i) {
    CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-14));
    CHECK(pa[i] == doctest::Approx(pb[i]).epsilon(1e-14));
  }
  // A (C, S) weight for a (1, C, S) input has the input's elements, leading axis dropped.
  const Shape one{1, 3, 5};
  const auto x1 = testing::randn<float>(one, 98, 2.0);
  const auto z1 = testing::mask<float>(one, 99);
  BceWithLogitsOptions<float> o1, o1flat;
  o1.weight = testing::uniform<float>({3, 5}, 100, 0.25, 2.0);
  o1flat.weight = flat(o1.weight);
  const auto v = bce_with_logits_value_and_grad(x1, z1, o1),
             vf = bce_with_logits_value_and_grad(flat(x1), flat(z1), o1flat);
  CHECK(v.value == vf.value);
  check_same(v.grad, vf.grad, true);
}
