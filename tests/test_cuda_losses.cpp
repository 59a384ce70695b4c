// The binary losses on CUDA against the CPU: every entry point (forward, backward, both
// value_and_grad forms) for every option the CUDA path supports, float (1e-5 relative) and
// double; determinism over 10 runs. Each test skips with a message where no GPU is present.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#include <segloss/core/cuda_internal.hpp>

using namespace segloss;
using namespace segloss::testing;

namespace {

// The shapes every loss is checked on: several blocks per plane, odd sizes, a 3D volume, one
// pixel, one image.
const std::vector<Shape> kShapes = {
    {2, 3, 17, 19}, {2, 1, 300, 301}, {1, 2, 5, 6, 7}, {1, 1, 1, 1}, {3, 2, 40}};

// Runs forward, backward and value_and_grad of one loss on the CPU and on CUDA and compares.
// L has forward(x, z, o), backward(x, z, g, o), vg(x, z, grad, o) -> double,
// vg_dev(x, z, grad, value, o); o_gpu holds the same options with tensors on the GPU.
template <class T, class L, class O>
void check_loss(const L& loss, const Tensor<T>& x, const Tensor<T>& z, const O& o, const O& o_gpu,
                Reduction reduction) {
  const double tol = parity_tol<T>();
  const Tensor<T> xd = gpu(x), zd = gpu(z);
  const Tensor<T> f = loss.forward(x, z, o);
  const Tensor<T> fd = loss.forward(xd, zd, o_gpu);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, tol, "forward");
  const Tensor<T> go =
      reduction == Reduction::none ? randn<T>(f.shape(), 91) : Tensor<T>::full(Shape{}, T(0.75));
  check_parity(loss.backward(x, z, go, o), loss.backward(xd, zd, gpu(go), o_gpu), tol, "backward");
  if (reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = loss.vg(x, z, g, o);
  const double vd = loss.vg(xd, zd, gd, o_gpu);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, tol, "value_and_grad value");
  check_parity(g, gd, tol, "value_and_grad grad");
  Tensor<T> gd2, value;
  loss.vg_dev(xd, zd, gd2, value, o_gpu);
  CHECK(value.device() == Device::cuda);
  check_parity(v, static_cast<double>(value.to(Device::cpu)[0]), tol, "device value");
  CHECK(same_bits(gd, gd2));
}

template <class T>
struct Bce {
  using O = BceWithLogitsOptions<T>;
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& z, const O& o) const {
    return bce_with_logits(x, z, o);
  }
  Tensor<T> backward(const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& g, const O& o) const {
    return bce_with_logits_backward(x, z, g, o);
  }
  double vg(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, const O& o) const {
    return bce_with_logits_value_and_grad(x, z, g, o);
  }
  void vg_dev(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, Tensor<T>& v,
              const O& o) const {
    bce_with_logits_value_and_grad(x, z, g, v, o);
  }
};

template <class T>
struct Dice {
  using O = SoftDiceOptions<T>;
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& z, const O& o,
                    OverlapInfo* info = nullptr) const {
    return soft_dice(x, z, o, info);
  }
  Tensor<T> backward(const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& g, const O& o) const {
    return soft_dice_backward(x, z, g, o);
  }
  double vg(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, const O& o,
            OverlapInfo* info = nullptr) const {
    return soft_dice_value_and_grad(x, z, g, o, info);
  }
  void vg_dev(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, Tensor<T>& v,
              const O& o) const {
    soft_dice_value_and_grad(x, z, g, v, o);
  }
};

template <class T>
struct Jaccard {
  using O = SoftJaccardOptions<T>;
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& z, const O& o,
                    OverlapInfo* info = nullptr) const {
    return soft_jaccard(x, z, o, info);
  }
  Tensor<T> backward(const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& g, const O& o) const {
    return soft_jaccard_backward(x, z, g, o);
  }
  double vg(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, const O& o,
            OverlapInfo* info = nullptr) const {
    return soft_jaccard_value_and_grad(x, z, g, o, info);
  }
  void vg_dev(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, Tensor<T>& v,
              const O& o) const {
    soft_jaccard_value_and_grad(x, z, g, v, o);
  }
};

template <class T>
struct Tv {
  using O = TverskyOptions<T>;
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& z, const O& o,
                    OverlapInfo* info = nullptr) const {
    return tversky(x, z, o, info);
  }
  Tensor<T> backward(const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& g, const O& o) const {
    return tversky_backward(x, z, g, o);
  }
  double vg(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, const O& o,
            OverlapInfo* info = nullptr) const {
    return tversky_value_and_grad(x, z, g, o, info);
  }
  void vg_dev(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, Tensor<T>& v,
              const O& o) const {
    tversky_value_and_grad(x, z, g, v, o);
  }
};

template <class T>
struct BceDice {
  using O = BceDiceOptions<T>;
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& z, const O& o) const {
    return bce_dice(x, z, o);
  }
  Tensor<T> backward(const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& g, const O& o) const {
    return bce_dice_backward(x, z, g, o);
  }
  double vg(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, const O& o) const {
    return bce_dice_value_and_grad(x, z, g, o);
  }
  void vg_dev(const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& g, Tensor<T>& v,
              const O& o) const {
    bce_dice_value_and_grad(x, z, g, v, o);
  }
};

// The BCE options of one case, on the CPU and on the GPU.
template <class T>
BceWithLogitsOptions<T> bce_case(int k, const Shape& s, Reduction r) {
  BceWithLogitsOptions<T> o;
  o.reduction = r;
  const int rank = s.rank();
  if (k == 1) {  // a per-pixel weight shared by the channels: (N, 1, spatial...)
    Shape ws = s;
    ws.set(1, 1);
    o.weight = uniform<T>(ws, 41, 0.1, 2.0);
  } else if (k == 2) {  // a per-channel weight (C, 1, ..., 1)
    Shape ws{s[1]};
    for (int d = 2; d < rank; ++d) ws.push_back(1);
    o.weight = uniform<T>(ws, 42, 0.1, 2.0);
  } else if (k == 3) {  // a weight along the last axis only: the general broadcast
    o.weight = uniform<T>(Shape{s[rank - 1]}, 43, 0.1, 2.0);
  } else if (k == 4) {
    o.pos_weight = uniform<T>(Shape{s[1]}, 44, 0.5, 3.0);
  } else if (k == 5) {
    o.pos_weight = Tensor<T>::full(Shape{1}, T(2.5));
    o.label_smoothing = 0.1;
  }
  return o;
}

template <class T>
BceWithLogitsOptions<T> on_gpu(BceWithLogitsOptions<T> o) {
  o.weight = gpu(o.weight);
  o.pos_weight = gpu(o.pos_weight);
  return o;
}

const Reduction kReductions[] = {Reduction::mean, Reduction::sum, Reduction::none};

template <class T>
void bce_all() {
  for (const Shape& s : kShapes)
    for (Reduction r : kReductions)
      for (int k = 0; k < 6; ++k) {
        CAPTURE(s);
        CAPTURE(k);
        CAPTURE(reduction_name(r));
        const auto x = randn<T>(s, 10 + k, 3.0);
        const auto z = k == 5 ? uniform<T>(s, 20, 0, 1) : mask<T>(s, 20 + k);
        const auto o = bce_case<T>(k, s, r);
        check_loss<T>(Bce<T>{}, x, z, o, on_gpu(o), r);
      }
}

// The overlap options of one case (the CUDA subset).
template <class O>
O overlap_case(int k, const Shape& s, Reduction r) {
  O o;
  o.reduction = r;
  if (k & 1) o.per_image = false;
  if (k & 2) o.squared = true;
  if ((k & 4) && s[1] > 1) o.include_background = false;
  if (k & 8) {
    o.smooth_nr = 1.0;
    o.smooth_dr = 0.5;
  }
  return o;
}

template <class T, class L>
void overlap_all(const L& loss, bool allow_squared = true) {
  using O = typename L::O;
  for (const Shape& s : kShapes)
    for (Reduction r : kReductions)
      for (int k = 0; k < 16; ++k) {
        if ((k & 2) && !allow_squared) continue;
        for (bool probs : {false, true}) {
          CAPTURE(s);
          CAPTURE(k);
          CAPTURE(probs);
          CAPTURE(reduction_name(r));
          O o = overlap_case<O>(k, s, r);
          if constexpr (std::is_same_v<O, TverskyOptions<T>>) {  // a_I = 1 - alpha - beta != 0
            o.alpha = 0.3;
            o.beta = 0.9;
          }
          if (probs) o.activation = Activation::none;
          const auto x = probs ? uniform<T>(s, 30 + k, 0, 1) : randn<T>(s, 30 + k, 2.0);
          const auto z = mask<T>(s, 50 + k, 0.3);
          check_loss<T>(loss, x, z, o, o, r);
        }
      }
}

// The finalize's options (class_weight, empty, gamma, log, clamp) of one case k; the class
// weights are given on the CPU (the GPU's copy goes into o_gpu).
// The shared finalize cases (tests/cuda_check.hpp), and case 11: every score skipped where the
// target is empty everywhere.
template <class T, class O>
O finalize_case(int k, const Shape& s, Reduction r) {
  const auto cw = uniform<T>(Shape{s[1]}, 33 + k, 0.2, 2.0);
  if (k < kFinalizeOptionCases) return finalize_option_case<O>(k, s[1], r, cw);
  O o;
  o.reduction = r;
  o.empty = EmptyPolicy::skip;
  o.log = true;
  return o;
}
constexpr int kFinalizeCases = 12;

// A target with empty planes: plane (0, C - 1) everywhere, and channel 0 in every image when
// there are two channels or more (an empty batch score); case 11's target is all empty.
template <class T>
Tensor<T> target_with_empty(const Shape& s, uint64_t seed, bool all_empty) {
  auto z = mask<T>(s, seed, 0.3);
  const int64_t C = s[1], S = s.numel_from(2);
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < C; ++c)
      if (all_empty || (n == 0 && c == C - 1) || (C > 1 && c == 0))
        for (int64_t i = 0; i < S; ++i) z[(n * C + c) * S + i] = T(0);
  return z;
}

// Every finalize case on every shape and reduction, logits and probabilities: the forward (with
// OverlapInfo: the counts of an empty policy come back from the device), the backward, both
// value_and_grad forms against the CPU.
template <class T, class L>
void overlap_finalize_all(const L& loss) {
  using O = typename L::O;
  for (const Shape& s : kShapes)
    for (Reduction r : kReductions)
      for (int k = 0; k < kFinalizeCases; ++k)
        for (bool probs : {false, true}) {
          CAPTURE(s);
          CAPTURE(k);
          CAPTURE(probs);
          CAPTURE(reduction_name(r));
          O o = finalize_case<T, O>(k, s, r);
          if constexpr (std::is_same_v<O, TverskyOptions<T>>) {
            o.alpha = 0.3;
            o.beta = 0.9;
          }
          if (probs) o.activation = Activation::none;
          O og = o;
          og.class_weight = gpu(o.class_weight);
          const auto x = probs ? uniform<T>(s, 130 + k, 0, 1) : randn<T>(s, 130 + k, 2.0);
          const auto z = target_with_empty<T>(s, 150 + k, k == kFinalizeCases - 1);
          check_loss<T>(loss, x, z, o, og, r);
          OverlapInfo ic{-1, -1}, ig{-2, -2};
          loss.forward(x, z, o, &ic);
          loss.forward(gpu(x), gpu(z), og, &ig);
          CHECK(ig.kept == ic.kept);
          CHECK(ig.skipped == ic.skipped);
          if (r == Reduction::none) continue;
          Tensor<T> g;
          ig = {-2, -2};
          loss.vg(gpu(x), gpu(z), g, og, &ig);
          CHECK(ig.kept == ic.kept);
          CHECK(ig.skipped == ic.skipped);
        }
}

// The per-pixel weight: broadcast patterns (per pixel shared by the channels, per channel, the
// last axis only, the full shape), both weightings, with and without squared sums, alone and
// with the finalize's options.
template <class T, class L>
void overlap_weight_all(const L& loss, bool allow_squared = true) {
  using O = typename L::O;
  for (const Shape& s : kShapes)
    for (Reduction r : kReductions)
      for (int k = 0; k < 16; ++k) {
        const bool squared = k & 4, on_inputs = k & 8;
        if (squared && !allow_squared) continue;
        CAPTURE(s);
        CAPTURE(k);
        CAPTURE(reduction_name(r));
        O o;
        o.reduction = r;
        if constexpr (std::is_same_v<O, TverskyOptions<T>>) {
          o.alpha = 0.3;
          o.beta = 0.9;
        }
        const int rank = s.rank();
        Shape ws = s;
        if ((k & 3) == 0) {
          ws.set(1, 1);
        } else if ((k & 3) == 1) {
          ws = Shape{s[1]};
          for (int d = 2; d < rank; ++d) ws.push_back(1);
        } else if ((k & 3) == 2) {
          ws = Shape{s[rank - 1]};
        }
        o.weight = uniform<T>(ws, 170 + k, 0.1, 1.0);
        o.squared = squared;
        o.weighting = on_inputs ? OverlapWeighting::on_inputs : OverlapWeighting::squared;
        if (k == 3 || k == 9) {  // with the finalize's options
          o.class_weight = uniform<T>(Shape{s[1]}, 190 + k, 0.2, 2.0);
          o.empty = EmptyPolicy::skip;
          o.gamma = 1.5;
          o.per_image = k == 9;
        }
        if (k == 6) o.log = true;
        if (k & 1) o.activation = Activation::none;
        O og = o;
        og.weight = gpu(o.weight);
        og.class_weight = gpu(o.class_weight);
        const auto x = (k & 1) ? uniform<T>(s, 180 + k, 0, 1) : randn<T>(s, 180 + k, 2.0);
        const auto z = target_with_empty<T>(s, 200 + k, false);
        check_loss<T>(loss, x, z, o, og, r);
      }
}

template <class T>
void bce_dice_all() {
  for (const Shape& s : kShapes)
    for (Reduction r : {Reduction::mean, Reduction::sum})
      for (int k = 0; k < 6; ++k) {
        CAPTURE(s);
        CAPTURE(k);
        BceDiceOptions<T> o;
        o.bce = bce_case<T>(k, s, r);
        o.dice = overlap_case<SoftDiceOptions<T>>(k * 5, s, r);
        o.bce_weight = k == 3 ? 0.7 : 1.0;
        o.dice_weight = k == 3 ? 1.3 : 1.0;
        BceDiceOptions<T> og = o;
        og.bce = on_gpu(o.bce);
        const auto x = randn<T>(s, 60 + k, 3.0);
        const auto z = k == 5 ? uniform<T>(s, 70, 0, 1) : mask<T>(s, 70 + k);
        check_loss<T>(BceDice<T>{}, x, z, o, og, r);
      }
}

}  // namespace

TEST_CASE("cuda bce_with_logits: CPU parity for every option and reduction (float)") {
  SEGLOSS_REQUIRE_GPU();
  bce_all<float>();
}

TEST_CASE("cuda bce_with_logits: CPU parity for every option and reduction (double)") {
  SEGLOSS_REQUIRE_GPU();
  bce_all<double>();
}

TEST_CASE("cuda soft_dice: CPU parity for the supported options (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  overlap_all<float>(Dice<float>{});
  overlap_all<double>(Dice<double>{});
}

TEST_CASE("cuda soft_jaccard and tversky: CPU parity for the supported options") {
  SEGLOSS_REQUIRE_GPU();
  overlap_all<float>(Jaccard<float>{});
  overlap_all<double>(Jaccard<double>{});
  overlap_all<float>(Tv<float>{}, false);  // tversky has no squared form
}

TEST_CASE("cuda soft_dice: CPU parity for the finalize's options (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  overlap_finalize_all<float>(Dice<float>{});
  overlap_finalize_all<double>(Dice<double>{});
}

TEST_CASE("cuda soft_jaccard and tversky: CPU parity for the finalize's options") {
  SEGLOSS_REQUIRE_GPU();
  overlap_finalize_all<float>(Jaccard<float>{});
  overlap_finalize_all<double>(Jaccard<double>{});
  overlap_finalize_all<float>(Tv<float>{});
  overlap_finalize_all<double>(Tv<double>{});
}

TEST_CASE("cuda soft_dice: CPU parity with a per-pixel weight (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  overlap_weight_all<float>(Dice<float>{});
  overlap_weight_all<double>(Dice<double>{});
}

TEST_CASE("cuda soft_jaccard and tversky: CPU parity with a per-pixel weight") {
  SEGLOSS_REQUIRE_GPU();
  overlap_weight_all<float>(Jaccard<float>{});
  overlap_weight_all<double>(Jaccard<double>{});
  overlap_weight_all<float>(Tv<float>{}, false);
  overlap_weight_all<double>(Tv<double>{}, false);
}

TEST_CASE("cuda soft_dice: the finalize's options and weight are bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 3, 129, 131};
  const auto x = gpu(randn<float>(s, 92, 3.0));
  const auto z = gpu(target_with_empty<float>(s, 93, false));
  for (int k = 0; k < kFinalizeCases; ++k) {
    CAPTURE(k);
    auto o = finalize_case<float, SoftDiceOptions<float>>(k, s, Reduction::mean);
    o.class_weight = gpu(o.class_weight);
    if (k % 2) o.weight = gpu(uniform<float>(Shape{s[0], 1, s[2], s[3]}, 96, 0.1, 1.0));
    Tensor<float> g0;
    const double v0 = soft_dice_value_and_grad(x, z, g0, o);
    for (int run = 1; run < 10; ++run) {
      Tensor<float> g;
      const double v = soft_dice_value_and_grad(x, z, g, o);
      CHECK(std::memcmp(&v, &v0, sizeof(double)) == 0);
      CHECK(same_bits(g, g0));
    }
  }
}

TEST_CASE("cuda soft_dice: a bad class weight raises on a host value and is NaN on the device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 8, 9};
  const auto x = gpu(randn<float>(s, 94)), z = gpu(mask<float>(s, 95));
  for (float bad : {-1.0f, std::nanf(""), INFINITY}) {
    CAPTURE(bad);
    auto cw = Tensor<float>::full({3}, 1.0f);
    cw[1] = bad;
    SoftDiceOptions<float> o;
    o.class_weight = gpu(cw);
    Tensor<float> g;
    CHECK_THROWS_WITH_AS(soft_jaccard_value_and_grad(x, z, g, o),
                         "soft_jaccard_value_and_grad: options.class_weight holds a negative or "
                         "non-finite value (checked on the device)",
                         Error);
    CHECK(std::isnan(soft_dice(x, z, o).to(Device::cpu)[0]));
    Tensor<float> value;
    soft_dice_value_and_grad(x, z, g, value, o);
    CHECK(std::isnan(value.to(Device::cpu)[0]));
    for (float v : g.to(Device::cpu)) CHECK(std::isnan(v));
    o.reduction = Reduction::none;
    for (float v : soft_dice(x, z, o).to(Device::cpu)) CHECK(std::isnan(v));
  }
  // the device stays usable
  CHECK(std::isfinite(soft_dice_value_and_grad(x, z).value));
}

TEST_CASE("cuda bce_dice: CPU parity with both terms' options (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  bce_dice_all<float>();
  bce_dice_all<double>();
}

// bce_dice's parts (the BCE and Dice terms) from each fused form on CUDA against the CPU's, and
// the value they make: the finalize kernel writes them next to the value (the call header's
// kParts slot), and asking for them waits, in the forms whose value stays on the device too.
template <class T>
void bce_dice_parts_all() {
  const double tol = parity_tol<T>();
  for (const Shape& s : kShapes)
    for (int k = 0; k < 6; ++k) {
      CAPTURE(s);
      CAPTURE(k);
      BceDiceOptions<T> o;
      o.bce = bce_case<T>(k, s, Reduction::mean);
      o.dice = overlap_case<SoftDiceOptions<T>>(k * 5, s, Reduction::mean);
      o.bce_weight = k == 3 ? 0.7 : 1.0;
      o.dice_weight = k == 3 ? 1.3 : 2.0;
      if (k == 4) o.bce.mean_over = BceMeanOver::weight_sum;  // 1/W reduced on the device
      if (k == 4 && !o.bce.weight.defined()) o.bce.weight = uniform<T>(s, 43, 0.1, 2.0);
      BceDiceOptions<T> og = o;
      og.bce = on_gpu(o.bce);
      const auto x = randn<T>(s, 60 + k, 3.0);
      const auto z = k == 5 ? uniform<T>(s, 70, 0, 1) : mask<T>(s, 70 + k);
      const auto xd = gpu(x), zd = gpu(z);
      Tensor<T> g;
      BceDiceParts want;
      const double v = bce_dice_value_and_grad(x, z, g, o, &want);
      // The parts differ from each other and from the value: a swap or a copy of the value fails.
      REQUIRE(std::abs(want.bce - want.dice) > 1e-3);
      const auto check = [&](const BceDiceParts& got, const char* form) {
        CAPTURE(form);
        check_parity(want.bce, got.bce, tol, "parts.bce");
        check_parity(want.dice, got.dice, tol, "parts.dice");
      };
      BceDiceParts a, b, c, d;
      const Tensor<T> f = bce_dice(xd, zd, og, &a);
      CHECK(f.device() == Device::cuda);
      check(a, "forward");
      check_parity(v, static_cast<double>(f.to(Device::cpu)[0]), tol, "forward value");
      Tensor<T> gd;
      const double vd = bce_dice_value_and_grad(xd, zd, gd, og, &b);
      check(b, "value_and_grad");
      // The value is made from the parts the call returns (one rounding step apart at most).
      check_parity(vd, o.bce_weight * b.bce + o.dice_weight * b.dice, 1e-15, "value from parts");
      check_parity(g, gd, tol, "grad");
      Tensor<T> gd2, value;
      bce_dice_value_and_grad(xd, zd, gd2, value, og, &c);
      CHECK(value.device() == Device::cuda);
      check(c, "device value");
      CHECK(c.bce == b.bce);
      CHECK(c.dice == b.dice);
      CHECK(same_bits(gd, gd2));
      const ValueAndGrad<T> r = bce_dice_value_and_grad(xd, zd, og, &d);
      check(d, "ValueAndGrad");
      CHECK(r.value == vd);
    }
}

TEST_CASE("cuda bce_dice: parts from every fused form match the CPU (float and double)") {
  SEGLOSS_REQUIRE_GPU();
  bce_dice_parts_all<float>();
  bce_dice_parts_all<double>();
}

// bce_dice's fused value and gradient sums the BCE term in its gradient pass by default
// (backends/cuda/overlap_passes.cuh run_value_in_gradient); the other schedule sums it in pass 1.
// Both add the same BCE values in the same order, so the value and the parts have the same bits;
// the gradient takes p from logit_with_log in the first, so it may differ in the last bits.
template <class T>
void bce_dice_schedules_all() {
  struct Restore {
    ~Restore() {
      cuda::detail::set_bce_value_in_gradient(true);
      cuda::detail::set_bce_value_in_gradient_weighted(true);
    }
  } restore;
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  // Every BCE case (bce_case: 0 none; 1-3 a BCE weight of three broadcasts; 4 pos_weight, and
  // mean_over weight_sum with a weight; 5 pos_weight, label smoothing, soft targets), each with
  // Dice options covering per_image, squared, include_background and smooth (overlap_case's
  // bits), and both terms' weights. The weighted cases switch the schedule with
  // set_bce_value_in_gradient_weighted (on by default since 2026-12-04), the others with
  // set_bce_value_in_gradient.
  for (const Shape& s : kShapes)
    for (int k = 0; k < 6; ++k)
      for (int d : {0, 3, 6, 9, 12, 15}) {
        CAPTURE(s);
        CAPTURE(k);
        CAPTURE(d);
        BceDiceOptions<T> o;
        o.bce = bce_case<T>(k, s, Reduction::mean);
        o.dice = overlap_case<SoftDiceOptions<T>>(d, s, Reduction::mean);
        o.bce_weight = d == 3 ? 0.7 : 1.0;
        o.dice_weight = d == 3 ? 1.3 : 2.0;
        if (k == 4) o.bce.mean_over = BceMeanOver::weight_sum;  // 1/W reduced on the device
        if (k == 4) o.bce.weight = uniform<T>(s, 43, 0.1, 2.0);
        // The Dice term's pixel weight: alone (k 0) and with the BCE weight (k 4), as the
        // boundary-weighted recipe has both.
        if ((k == 0 || k == 4) && (d == 6 || d == 9)) o.dice.weight = uniform<T>(s, 44, 0.1, 2.0);
        // Either weight selects the weighted passes (overlap_passes.cuh, `plain`).
        const bool weighted = o.bce.weight.defined() || o.dice.weight.defined();
        BceDiceOptions<T> og = o;
        og.bce = on_gpu(o.bce);
        og.dice.weight = gpu(o.dice.weight);
        const auto xd = gpu(randn<T>(s, 160 + k + d, 3.0));
        const auto zd = gpu(k == 5 ? uniform<T>(s, 170, 0, 1) : mask<T>(s, 170 + d));
        double v[2];
        BceDiceParts p[2], q[2];
        Tensor<T> g[2], gd[2], value[2], gb[2];
        const auto one = gpu(Tensor<T>::full(Shape{}, T(1)));
        for (int in_gradient = 0; in_gradient < 2; ++in_gradient) {
          if (weighted)
            cuda::detail::set_bce_value_in_gradient_weighted(in_gradient == 1);
          else
            cuda::detail::set_bce_value_in_gradient(in_gradient == 1);
          v[in_gradient] = bce_dice_value_and_grad(xd, zd, g[in_gradient], og, &p[in_gradient]);
          bce_dice_value_and_grad(xd, zd, gd[in_gradient], value[in_gradient], og, &q[in_gradient]);
          gb[in_gradient] = bce_dice_backward(xd, zd, one, og);  // no value: no BCE sum
        }
        CHECK(v[0] == v[1]);
        CHECK(p[0].bce == p[1].bce);
        CHECK(p[0].dice == p[1].dice);
        CHECK(q[0].bce == q[1].bce);
        CHECK(q[0].dice == q[1].dice);
        CHECK(same_bits(value[0], value[1]));
        check_parity(g[0].to(Device::cpu), g[1], tol, "gradient");
        for (int in_gradient = 0; in_gradient < 2; ++in_gradient) {
          CAPTURE(in_gradient);  // each schedule: the same gradient from each form
          CHECK(same_bits(g[in_gradient], gd[in_gradient]));
          CHECK(same_bits(g[in_gradient], gb[in_gradient]));
        }
        if (s == Shape{2, 1, 300, 301} && (k == 0 || k == 1) && d == 0) {
          // The switch does change the path: some gradient entries differ in their last bits.
          const Tensor<T> a = g[0].to(Device::cpu), b = g[1].to(Device::cpu);
          int64_t differ = 0;
          for (int64_t i = 0; i < a.numel(); ++i) differ += a[i] != b[i];
          CHECK(differ > 0);
        }
      }
}

TEST_CASE("cuda bce_dice: the BCE term summed in either pass gives the same value bits") {
  SEGLOSS_REQUIRE_GPU();
  bce_dice_schedules_all<float>();
  bce_dice_schedules_all<double>();
}

// The one-block steps after a combine (the overlap losses' finalize, bce_dice's BCE value,
// bce_with_logits' scaled value) in the combine's last block, against kernels of their own
// (cuda::detail::last_block_tails off): the same bits of every result and the same error. Before
// each call, dirty() runs the same loss on other targets of the same shape, so that a step that
// read a sum before its block wrote it would see another call's value (the emulator runs the
// blocks one after another, in increasing and decreasing order in turn).
template <class T>
void tails_overlap_all() {
  for (const Shape& s : {Shape{2, 3, 17, 19}, Shape{2, 1, 300, 301}}) {
    CAPTURE(s);
    const auto xd = gpu(randn<T>(s, 400, 3.0));
    const auto zd = gpu(mask<T>(s, 401));
    const auto other = gpu(mask<T>(s, 402, 0.7));
    const auto up = gpu(randn<T>(Shape{s[0], s[1]}, 403));
    for (int d : {0, 5, 10, 15}) {  // per_image, squared, include_background, smooth
      CAPTURE(d);
      SoftDiceOptions<T> o = overlap_case<SoftDiceOptions<T>>(d, s, Reduction::mean);
      o.class_weight = gpu(uniform<T>(Shape{s[1]}, 404, 0.5, 2.0));
      const auto dirty = [&] { (void)soft_dice_value_and_grad(xd, other, o); };
      check_tails_same_bits([&](std::string& error) {
        std::vector<std::vector<uint64_t>> got;
        Tensor<T> g, value;
        OverlapInfo info;
        dirty();
        got.push_back(bits_of(soft_dice_value_and_grad(xd, zd, g, o, &info)));
        got.push_back(bits_of(g));
        got.push_back({static_cast<uint64_t>(info.kept), static_cast<uint64_t>(info.skipped)});
        dirty();
        soft_dice_value_and_grad(xd, zd, g, value, o);
        got.push_back(bits_of(value));
        SoftDiceOptions<T> none = o;  // the per-score values and their upstream
        none.reduction = Reduction::none;
        none.per_image = true;
        dirty();
        got.push_back(bits_of(soft_dice(xd, zd, none)));
        dirty();
        got.push_back(bits_of(soft_dice_backward(xd, zd, up, none)));
        error.clear();
        return got;
      });
    }
    {  // a bad class weight: NaN and the same error both ways
      SoftDiceOptions<T> o;
      o.class_weight = gpu(Tensor<T>::full(Shape{s[1]}, T(-1)));
      const std::string error = check_tails_same_bits([&](std::string& e) {
        std::vector<std::vector<uint64_t>> got;
        got.push_back(bits_of(soft_dice(xd, zd, o)));
        Tensor<T> g;
        try {
          (void)soft_dice_value_and_grad(xd, zd, g, o);
        } catch (const Error& err) {
          e = err.what();
        }
        return got;
      });
      CHECK(error.find("negative or non-finite") != std::string::npos);
    }
    for (int k : {0, 1, 4}) {  // bce_dice: no weight, a BCE weight, mean over the weight sum
      for (int in_gradient = 0; in_gradient < 2; ++in_gradient) {
        CAPTURE(k);
        CAPTURE(in_gradient);
        BceDiceOptions<T> o;
        o.bce = bce_case<T>(k, s, Reduction::mean);
        if (k == 4) o.bce.mean_over = BceMeanOver::weight_sum;
        if (k == 4) o.bce.weight = uniform<T>(s, 405, 0.1, 2.0);
        o.bce = on_gpu(o.bce);
        o.dice = overlap_case<SoftDiceOptions<T>>(5, s, Reduction::mean);
        cuda::detail::set_bce_value_in_gradient(in_gradient == 1);
        cuda::detail::set_bce_value_in_gradient_weighted(in_gradient == 1);
        const auto dirty = [&] { (void)bce_dice_value_and_grad(xd, other, o); };
        check_tails_same_bits([&](std::string&) {
          std::vector<std::vector<uint64_t>> got;
          Tensor<T> g, value;
          BceDiceParts p, q;
          dirty();
          got.push_back(bits_of(bce_dice_value_and_grad(xd, zd, g, o, &p)));
          got.push_back(bits_of(g));
          got.push_back(bits_of(p.bce));
          got.push_back(bits_of(p.dice));
          dirty();
          bce_dice_value_and_grad(xd, zd, g, value, o, &q);
          got.push_back(bits_of(value));
          got.push_back(bits_of(q.bce));
          dirty();
          got.push_back(bits_of(bce_dice(xd, zd, o)));
          return got;
        });
      }
      cuda::detail::set_bce_value_in_gradient(true);
      cuda::detail::set_bce_value_in_gradient_weighted(true);
    }
    for (int k : {0, 4}) {  // bce_with_logits: the mean, and the mean over the weight sum
      CAPTURE(k);
      BceWithLogitsOptions<T> o = bce_case<T>(k, s, Reduction::mean);
      if (k == 4) o.mean_over = BceMeanOver::weight_sum;
      if (k == 4) o.weight = uniform<T>(s, 406, 0.1, 2.0);
      o = on_gpu(o);
      const auto dirty = [&] { (void)bce_with_logits_value_and_grad(xd, other, o); };
      check_tails_same_bits([&](std::string&) {
        std::vector<std::vector<uint64_t>> got;
        Tensor<T> g, value;
        dirty();
        got.push_back(bits_of(bce_with_logits_value_and_grad(xd, zd, g, o)));
        got.push_back(bits_of(g));
        dirty();
        bce_with_logits_value_and_grad(xd, zd, g, value, o);
        got.push_back(bits_of(value));
        return got;
      });
    }
  }
}

TEST_CASE("cuda overlap losses: the finalize in the combine's last block gives its kernel's bits") {
  SEGLOSS_REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      cuda::detail::set_bce_value_in_gradient(true);
      cuda::detail::set_bce_value_in_gradient_weighted(true);
    }
  } restore;
  tails_overlap_all<float>();
  tails_overlap_all<double>();
#if defined(SEGLOSS_TEST_CUDA)
  // The tails are taken: one launch fewer per combine and step (bce_dice's default schedule has
  // two of them, the finalize and the BCE value).
  const Shape s{2, 3, 17, 19};
  const auto xd = gpu(randn<float>(s, 410, 3.0)), zd = gpu(mask<float>(s, 411));
  Tensor<float> g = Tensor<float>::empty(s, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  CHECK(tail_launches_saved([&] { soft_dice_value_and_grad(xd, zd, g, value); }) == 1);
  CHECK(tail_launches_saved([&] { bce_dice_value_and_grad(xd, zd, g, value); }) == 2);
  CHECK(tail_launches_saved([&] { bce_with_logits_value_and_grad(xd, zd, g, value); }) == 1);
  // The whole call, the device value included (the last step writes it): the header's memset,
  // the passes and the combines.
  CHECK(captured_nodes([&] { soft_dice_value_and_grad(xd, zd, g, value); }) == 4);
  CHECK(captured_nodes([&] { bce_dice_value_and_grad(xd, zd, g, value); }) == 5);
  CHECK(captured_nodes([&] { bce_with_logits_value_and_grad(xd, zd, g, value); }) == 3);
#endif
}

TEST_CASE("cuda bce_dice: a bad Dice class weight in the device-value form: NaN, either schedule") {
  SEGLOSS_REQUIRE_GPU();
  struct Restore {
    ~Restore() { cuda::detail::set_bce_value_in_gradient(true); }
  } restore;
  const Shape s{2, 3, 9, 8};
  const auto xd = gpu(randn<float>(s, 61, 2.0)), zd = gpu(mask<float>(s, 62));
  BceDiceOptions<float> o;
  std::vector<float> w = {1.0f, -1.0f, 1.0f};
  o.dice.class_weight = gpu(Tensor<float>::view(w.data(), {3}));
  for (int in_gradient = 0; in_gradient < 2; ++in_gradient) {
    CAPTURE(in_gradient);
    cuda::detail::set_bce_value_in_gradient(in_gradient == 1);
    Tensor<float> g, value;
    BceDiceParts p;
    bce_dice_value_and_grad(xd, zd, g, value, o, &p);
    CHECK(std::isnan(value.to(Device::cpu)[0]));  // NaN from the flag even without the check
    CHECK(std::isnan(p.bce));                     // this one fails if BceValue ignores the flag
    CHECK(std::isnan(p.dice));
    o.dice.class_weight = gpu(Tensor<float>::full({3}, 1.0f));
    bce_dice_value_and_grad(xd, zd, g, value, o, &p);  // the next call is clean again
    CHECK(std::isfinite(value.to(Device::cpu)[0]));
    CHECK(std::isfinite(p.bce));
    CHECK(std::isfinite(p.dice));
    o.dice.class_weight = gpu(Tensor<float>::view(w.data(), {3}));
  }
}

TEST_CASE("cuda bce_dice: a bad Dice class weight gives NaN parts, or raises with a host value") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 9, 8};
  const auto xd = gpu(randn<float>(s, 61, 2.0)), zd = gpu(mask<float>(s, 62));
  BceDiceOptions<float> o;
  o.dice.class_weight = gpu(Tensor<float>::full({3}, 1.0f));
  BceDiceParts p;
  bce_dice(xd, zd, o, &p);
  CHECK(std::isfinite(p.bce));
  CHECK(std::isfinite(p.dice));
  std::vector<float> w = {1.0f, -1.0f, 1.0f};
  o.dice.class_weight = gpu(Tensor<float>::view(w.data(), {3}));
  const Tensor<float> f = bce_dice(xd, zd, o, &p);
  CHECK(std::isnan(p.bce));
  CHECK(std::isnan(p.dice));
  CHECK(std::isnan(f.to(Device::cpu)[0]));
  Tensor<float> g;
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xd, zd, g, o, &p),
                       "bce_dice_value_and_grad: options.dice.class_weight holds a negative or "
                       "non-finite value (checked on the device)",
                       Error);
}

TEST_CASE("cuda losses: large logits (|x| = 1e4) give the CPU's finite values") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 33, 31};
  auto x = randn<float>(s, 80, 1.0);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = x[i] >= 0 ? 1e4f : -1e4f;
  const auto z = mask<float>(s, 81);
  BceDiceOptions<float> o;
  check_loss<float>(BceDice<float>{}, x, z, o, o, Reduction::mean);
  check_loss<float>(Bce<float>{}, x, z, BceWithLogitsOptions<float>{},
                    BceWithLogitsOptions<float>{}, Reduction::mean);
}

TEST_CASE("cuda losses: bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 2, 257, 263};
  const auto x = gpu(randn<float>(s, 90, 3.0)), z = gpu(mask<float>(s, 91));
  BceDiceOptions<float> o;
  o.dice.per_image = false;
  Tensor<float> g0, b0, d0;
  const double v0 = bce_dice_value_and_grad(x, z, g0, o);
  const double w0 = bce_with_logits_value_and_grad(x, z, b0);
  const double u0 = soft_dice_value_and_grad(x, z, d0);
  for (int run = 0; run < 10; ++run) {
    Tensor<float> g, b, d;
    CHECK(bce_dice_value_and_grad(x, z, g, o) == v0);
    CHECK(bce_with_logits_value_and_grad(x, z, b) == w0);
    CHECK(soft_dice_value_and_grad(x, z, d) == u0);
    CHECK(same_bits(g, g0));
    CHECK(same_bits(b, b0));
    CHECK(same_bits(d, d0));
  }
}

TEST_CASE(
    "cuda bce_dice: the Dice term's class_weight and weight are CUDA tensors, named by path") {
  // Checked before any CUDA call: runs without a GPU (the pointers are never dereferenced).
  // (The Dice term's options themselves run on CUDA since session 8:
  // tests/test_cuda_split_overlap.cpp.)
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 1, 2, 2};
  const auto xd = unread_cuda_view<float>(s);
  BceDiceOptions<float> o;
  o.dice.weight = Tensor<float>::full(s, 1.0f);
  CHECK_THROWS_WITH_AS(bce_dice(xd, xd, o),
                       "bce_dice: options.dice.weight (1,1,2,2) is on device cpu, but logits are "
                       "on cuda: every tensor of a call must be on one device",
                       Error);
  o = {};
  o.dice.class_weight = Tensor<float>::full({1}, 1.0f);
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xd, xd, o),
                       "bce_dice_value_and_grad: options.dice.class_weight (1) is on device cpu, "
                       "but logits are on cuda: every tensor of a call must be on one device",
                       Error);
}

TEST_CASE("cuda soft_dice: class_weight and weight on CUDA logits are CUDA tensors that fit") {
  // Checked before any CUDA call: runs without a GPU (the pointers are never dereferenced).
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 3, 2, 2};
  const auto xd = unread_cuda_view<float>(s);
  SoftDiceOptions<float> d;
  d.class_weight = Tensor<float>::full({3}, 1.0f);
  CHECK_THROWS_WITH_AS(soft_dice(xd, xd, d),
                       "soft_dice: options.class_weight (3) is on device cpu, but logits are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  d.class_weight = unread_cuda_view<float>({2});
  CHECK_THROWS_WITH_AS(soft_jaccard_value_and_grad(xd, xd, d),
                       doctest::Contains("class_weight (2) must have shape (3)"), Error);
  d.class_weight = {};
  d.weight = Tensor<float>::full({1, 1, 2, 2}, 1.0f);  // the weight too is a CUDA tensor there
  CHECK_THROWS_WITH_AS(soft_dice(xd, xd, d),
                       "soft_dice: options.weight (1,1,2,2) is on device cpu, but logits are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  d.weight = unread_cuda_view<float>({3, 2});
  CHECK_THROWS_WITH_AS(tversky(xd, xd, TverskyOptions<float>{d}),
                       doctest::Contains("options.weight (3,2)"), Error);
}
