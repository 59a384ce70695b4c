// ce_dice and dice_focal on CUDA against the CPU: forward (and its parts), backward, both
// value_and_grad forms (and their parts), for labels int32/int64 and probability targets
// (ce_dice), with ignore_index, class weights, label smoothing, alpha and gamma, both terms'
// weights, mean and sum, 1 to 3 spatial axes, float (1e-5 relative) and double (1e-11); bitwise
// identical over 10 runs; the errors (a bad label: the CPU's message; grad the logits, which the
// CPU allows and CUDA refuses; reduction none).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

// Probabilities (N, C, spatial...): the softmax over C of random numbers.
template <class T>
Tensor<T> probabilities(const Shape& s, uint64_t seed) {
  auto q = randn<T>(s, seed, 2.0);
  const int64_t N = s[0], C = s[1], S = s.numel_from(2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        T& v = q[(n * C + c) * S + i];
        v = static_cast<T>(std::exp(static_cast<double>(v)));
        sum += static_cast<double>(v);
      }
      for (int64_t c = 0; c < C; ++c) q[(n * C + c) * S + i] /= static_cast<T>(sum);
    }
  return q;
}

template <class T>
CeDiceOptions<T> on_device(CeDiceOptions<T> o) {
  o.ce.weight = gpu(o.ce.weight);
  o.dice.class_weight = gpu(o.dice.class_weight);
  return o;
}
template <class T>
DiceFocalOptions<T> on_device(DiceFocalOptions<T> o) {
  o.focal.alpha = gpu(o.focal.alpha);
  o.dice.class_weight = gpu(o.dice.class_weight);
  return o;
}

struct CeDiceLoss {
  using Parts = CeDiceParts;
  template <class T, class U>
  static Tensor<T> forward(const Tensor<T>& x, const Tensor<U>& y, const CeDiceOptions<T>& o,
                           CeDiceParts* p) {
    return ce_dice(x, y, o, p);
  }
  template <class T, class U>
  static Tensor<T> backward(const Tensor<T>& x, const Tensor<U>& y, const Tensor<T>& go,
                            const CeDiceOptions<T>& o) {
    return ce_dice_backward(x, y, go, o);
  }
  template <class T, class U>
  static double vg(const Tensor<T>& x, const Tensor<U>& y, Tensor<T>& g, const CeDiceOptions<T>& o,
                   CeDiceParts* p) {
    return ce_dice_value_and_grad(x, y, g, o, p);
  }
  template <class T, class U>
  static ValueAndGrad<T> vg(const Tensor<T>& x, const Tensor<U>& y, const CeDiceOptions<T>& o) {
    return ce_dice_value_and_grad(x, y, o);
  }
  static double first(const CeDiceParts& p) { return p.ce; }
  static double dice(const CeDiceParts& p) { return p.dice; }
};

struct DiceFocalLoss {
  using Parts = DiceFocalParts;
  template <class T, class L>
  static Tensor<T> forward(const Tensor<T>& x, const Tensor<L>& y, const DiceFocalOptions<T>& o,
                           DiceFocalParts* p) {
    return dice_focal(x, y, o, p);
  }
  template <class T, class L>
  static Tensor<T> backward(const Tensor<T>& x, const Tensor<L>& y, const Tensor<T>& go,
                            const DiceFocalOptions<T>& o) {
    return dice_focal_backward(x, y, go, o);
  }
  template <class T, class L>
  static double vg(const Tensor<T>& x, const Tensor<L>& y, Tensor<T>& g,
                   const DiceFocalOptions<T>& o, DiceFocalParts* p) {
    return dice_focal_value_and_grad(x, y, g, o, p);
  }
  template <class T, class L>
  static ValueAndGrad<T> vg(const Tensor<T>& x, const Tensor<L>& y, const DiceFocalOptions<T>& o) {
    return dice_focal_value_and_grad(x, y, o);
  }
  static double first(const DiceFocalParts& p) { return p.focal; }
  static double dice(const DiceFocalParts& p) { return p.dice; }
};

// Every entry point on both devices.
template <class Loss, class T, class U, class O>
void check_all(const Tensor<T>& x, const Tensor<U>& y, const O& o) {
  const double t = parity_tol<T>();
  const O od = on_device(o);
  const Tensor<T> xd = gpu(x);
  const Tensor<U> yd = gpu(y);
  typename Loss::Parts p, pd;
  const Tensor<T> f = Loss::forward(x, y, o, &p), fd = Loss::forward(xd, yd, od, &pd);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, t, "forward");
  check_parity(Loss::first(p), Loss::first(pd), t, "forward: the first term");
  check_parity(Loss::dice(p), Loss::dice(pd), t, "forward: the Dice term");
  // Without parts the terms' values and the total stay on the device (no wait).
  const Tensor<T> fn = Loss::forward(xd, yd, od, nullptr);
  CHECK(fn.device() == Device::cuda);
  check_parity(f, fn, t, "forward without parts (a device value)");
  const Tensor<T> go = Tensor<T>::full(Shape{}, T(0.75));
  const Tensor<T> b = Loss::backward(x, y, go, o), bd = Loss::backward(xd, yd, gpu(go), od);
  CHECK(bd.device() == Device::cuda);
  check_parity(b, bd, t, "backward");
  Tensor<T> g, gd;
  typename Loss::Parts q, qd;
  const double v = Loss::vg(x, y, g, o, &q);
  const double vd = Loss::vg(xd, yd, gd, od, &qd);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, t, "value_and_grad value");
  check_parity(g, gd, t, "value_and_grad grad");
  check_parity(Loss::first(q), Loss::first(qd), t, "value_and_grad: the first term");
  check_parity(Loss::dice(q), Loss::dice(qd), t, "value_and_grad: the Dice term");
  // A caller's grad full of garbage: the first term overwrites it, the Dice term adds to that.
  Tensor<T> gg = gpu(Tensor<T>::full(x.shape(), T(1e6)));
  CHECK(Loss::vg(xd, yd, gg, od, nullptr) == vd);
  CHECK(same_bits(gg, gd));
  const auto r = Loss::vg(xd, yd, od);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
}

const std::vector<Shape> kShapes = {Shape{2, 4, 37}, Shape{2, 5, 6, 7}, Shape{1, 3, 3, 4, 5}};

template <class T, class U>
void ce_dice_cases(const Tensor<T>& x, const Tensor<U>& y, bool labels) {
  const int64_t C = x.shape()[1];
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    CAPTURE(reduction_name(r));
    CeDiceOptions<T> base;
    base.ce.reduction = r;
    base.dice.reduction = r;
    {
      INFO("defaults");
      auto o = base;
      check_all<CeDiceLoss>(x, y, o);
    }
    {
      INFO("weights of the terms");
      auto o = base;
      o.ce_weight = 0.7;
      o.dice_weight = 1.9;
      check_all<CeDiceLoss>(x, y, o);
      o.ce_weight = 0.0;
      check_all<CeDiceLoss>(x, y, o);
    }
    {
      INFO("class weights");
      auto o = base;
      o.ce.weight = uniform<T>(Shape{C}, 31, 0.2, 2.0);
      o.dice.class_weight = uniform<T>(Shape{C}, 32, 0.2, 2.0);
      check_all<CeDiceLoss>(x, y, o);
    }
    {
      INFO("label smoothing, batch Dice, squared, no background");
      auto o = base;
      o.ce.label_smoothing = 0.1;
      o.dice.per_image = false;
      o.dice.squared = true;
      o.dice.include_background = false;
      o.ce_weight = 1.5;
      check_all<CeDiceLoss>(x, y, o);
    }
    if (labels) {
      {
        INFO("ignore_index, mean over valid pixels");
        auto o = base;
        o.ce.ignore_index = 2;
        o.dice.ignore_index = 2;
        o.ce.mean_over = MeanOver::valid_pixels;
        o.ce.weight = uniform<T>(Shape{C}, 33, 0.2, 2.0);
        o.dice_weight = 0.4;
        check_all<CeDiceLoss>(x, y, o);
      }
    }
  }
}

template <class T>
void ce_dice_parity() {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const int64_t C = s[1];
    const auto x = randn<T>(s, 11, 2.0);
    {
      INFO("int64 labels");
      ce_dice_cases(x, labels<int64_t>(s.without(1), C, 12), true);
    }
    {
      INFO("int32 labels");
      ce_dice_cases(x, labels<int32_t>(s.without(1), C, 13), true);
    }
    {
      INFO("probabilities");
      ce_dice_cases(x, probabilities<T>(s, 14), false);
    }
  }
}

template <class T, class L>
void dice_focal_cases(const Tensor<T>& x, const Tensor<L>& y) {
  const int64_t C = x.shape()[1];
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    CAPTURE(reduction_name(r));
    DiceFocalOptions<T> base;
    base.focal.reduction = r;
    base.dice.reduction = r;
    {
      INFO("defaults");
      auto o = base;
      check_all<DiceFocalLoss>(x, y, o);
    }
    {
      INFO("weights of the terms");
      auto o = base;
      o.focal_weight = 2.5;
      o.dice_weight = 0.3;
      check_all<DiceFocalLoss>(x, y, o);
      o.dice_weight = 0.0;
      check_all<DiceFocalLoss>(x, y, o);
    }
    {
      INFO("alpha, gamma, class weights");
      auto o = base;
      o.focal.alpha = uniform<T>(Shape{C}, 41, 0.1, 1.0);
      o.dice.class_weight = uniform<T>(Shape{C}, 42, 0.2, 2.0);
      for (double gamma : {0.0, 1.0, 2.0, 1.5}) {
        CAPTURE(gamma);
        o.focal.gamma = gamma;
        check_all<DiceFocalLoss>(x, y, o);
      }
    }
    {
      INFO("ignore_index, batch Dice, log");
      auto o = base;
      o.focal.ignore_index = 1;
      o.dice.ignore_index = 1;
      o.dice.per_image = false;
      o.dice.log = true;
      o.focal.gamma = 3.0;
      check_all<DiceFocalLoss>(x, y, o);
    }
  }
}

template <class T>
void dice_focal_parity() {
  for (const Shape& s : kShapes) {
    CAPTURE(s);
    const int64_t C = s[1];
    const auto x = randn<T>(s, 21, 2.0);
    {
      INFO("int64 labels");
      dice_focal_cases(x, labels<int64_t>(s.without(1), C, 22));
    }
    {
      INFO("int32 labels");
      dice_focal_cases(x, labels<int32_t>(s.without(1), C, 23));
    }
  }
}

}  // namespace

TEST_CASE("cuda ce_dice: CPU parity, every option, labels and probabilities, float") {
  SEGLOSS_REQUIRE_GPU();
  ce_dice_parity<float>();
}

TEST_CASE("cuda ce_dice: CPU parity, every option, labels and probabilities, double") {
  SEGLOSS_REQUIRE_GPU();
  ce_dice_parity<double>();
}

TEST_CASE("cuda dice_focal: CPU parity, every option, int32 and int64 labels, float") {
  SEGLOSS_REQUIRE_GPU();
  dice_focal_parity<float>();
}

TEST_CASE("cuda dice_focal: CPU parity, every option, int32 and int64 labels, double") {
  SEGLOSS_REQUIRE_GPU();
  dice_focal_parity<double>();
}

TEST_CASE("cuda combined: bitwise identical value and gradient over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 7, 19, 23};
  const auto xd = gpu(randn<float>(s, 51, 2.0));
  const auto yd = gpu(labels<int64_t>(s.without(1), 7, 52, 0.05, 3));
  CeDiceOptions<float> co;
  co.ce_weight = 0.6;
  co.ce.weight = gpu(uniform<float>(Shape{7}, 53, 0.2, 2.0));
  co.ce.ignore_index = 3;
  co.dice.ignore_index = 3;
  DiceFocalOptions<float> fo;
  fo.focal.alpha = gpu(uniform<float>(Shape{7}, 54, 0.2, 1.0));
  fo.focal.gamma = 1.5;
  fo.dice_weight = 0.8;
  const auto c0 = ce_dice_value_and_grad(xd, yd, co);
  const auto f0 = dice_focal_value_and_grad(xd, yd, fo);
  const auto go = gpu(Tensor<float>::full(Shape{}, 0.5f));
  const auto cb0 = ce_dice_backward(xd, yd, go, co);
  const auto fb0 = dice_focal_backward(xd, yd, go, fo);
  for (int k = 0; k < 10; ++k) {
    CAPTURE(k);
    const auto c = ce_dice_value_and_grad(xd, yd, co);
    const auto f = dice_focal_value_and_grad(xd, yd, fo);
    CHECK(c.value == c0.value);
    CHECK(f.value == f0.value);
    CHECK(same_bits(c.grad, c0.grad));
    CHECK(same_bits(f.grad, f0.grad));
    CHECK(same_bits(ce_dice_backward(xd, yd, go, co), cb0));
    CHECK(same_bits(dice_focal_backward(xd, yd, go, fo), fb0));
  }
}

TEST_CASE("cuda combined: with both terms' arguments wrong, the Dice term's error comes first") {
  // The CPU checks the Dice term's arguments before the first term's; since session 12 the CUDA
  // host-value forms (which run the terms apart) do too, as the device-value forms did.
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto x = randn<float>(s, 63);
  const auto y = labels<int64_t>(s.without(1), 5, 64);
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  CeDiceOptions<float> co, cod;
  co.ce.weight = Tensor<float>::full({4}, 1.0f);          // C = 5: wrong length
  co.dice.class_weight = Tensor<float>::full({3}, 1.0f);  // wrong length too
  cod = co;
  cod.ce.weight = gpu(co.ce.weight);
  cod.dice.class_weight = gpu(co.dice.class_weight);
  DiceFocalOptions<float> fo, fod;
  fo.focal.alpha = Tensor<float>::full({4}, 0.5f);
  fo.dice.class_weight = Tensor<float>::full({3}, 1.0f);
  fod = fo;
  fod.focal.alpha = gpu(fo.focal.alpha);
  fod.dice.class_weight = gpu(fo.dice.class_weight);

  const std::string ce_cpu = error_of([&] { ce_dice_value_and_grad(x, y, co); });
  CHECK(ce_cpu.find("class_weight") != std::string::npos);  // the Dice term's
  CHECK(error_of([&] { ce_dice_value_and_grad(xd, yd, cod); }) == ce_cpu);
  Tensor<float> g, v;
  CHECK(error_of([&] { ce_dice_value_and_grad(xd, yd, g, v, cod); }) == ce_cpu);
  const std::string fo_cpu = error_of([&] { dice_focal_value_and_grad(x, y, fo); });
  CHECK(fo_cpu.find("class_weight") != std::string::npos);
  CHECK(error_of([&] { dice_focal_value_and_grad(xd, yd, fod); }) == fo_cpu);
  CHECK(error_of([&] { dice_focal_value_and_grad(xd, yd, g, v, fod); }) == fo_cpu);
}

TEST_CASE("cuda combined: a bad label raises the CPU's message") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto x = randn<float>(s, 61);
  auto y = labels<int64_t>(s.without(1), 5, 62);
  y[21] = 5;  // image 1, (1, 1)
  y[30] = -3;
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const std::string ce_cpu = error_of([&] { ce_dice_value_and_grad(x, y); });
  CHECK(ce_cpu.find("label 5 at (1,1,1)") != std::string::npos);
  CHECK(error_of([&] { ce_dice_value_and_grad(xd, yd); }) == ce_cpu);
  const std::string fo_cpu = error_of([&] { dice_focal_value_and_grad(x, y); });
  CHECK(fo_cpu.find("label 5 at (1,1,1)") != std::string::npos);
  CHECK(error_of([&] { dice_focal_value_and_grad(xd, yd); }) == fo_cpu);
  // The forward with parts waits and raises the CPU's message; without parts its value stays on
  // the device, nothing waits, and it is NaN (as every CUDA forward's device value).
  CeDiceParts cp;
  DiceFocalParts fp;
  CHECK(error_of([&] { ce_dice(x, y); }) == error_of([&] { ce_dice(xd, yd, {}, &cp); }));
  CHECK(error_of([&] { dice_focal(x, y); }) == error_of([&] { dice_focal(xd, yd, {}, &fp); }));
  CHECK(std::isnan(ce_dice(xd, yd).to(Device::cpu)[0]));
  CHECK(std::isnan(dice_focal(xd, yd).to(Device::cpu)[0]));
  // backward does not wait: the bad pixels' gradient is NaN (the Dice term's sums make their
  // whole image's NaN), the other image's finite.
  const auto go = gpu(Tensor<float>::full(Shape{}, 1.0f));
  for (const auto& g : {ce_dice_backward(xd, yd, go).to(Device::cpu),
                        dice_focal_backward(xd, yd, go).to(Device::cpu)})
    for (int64_t c = 0; c < 5; ++c) {
      CHECK(std::isnan(g[(1 * 5 + c) * 16 + 5]));
      CHECK(std::isfinite(g[(0 * 5 + c) * 16 + 4]));  // the Dice term: image 1 is all NaN
    }
}

TEST_CASE("cuda combined: grad the logits (in place), reduction none and aliasing errors") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 5, 6};
  const auto x = randn<double>(s, 71);
  const auto y = labels<int32_t>(s.without(1), 4, 72);
  // Exactly in place: the CPU runs it, and CUDA too since session 10 (the terms write into the
  // stream's scratch buffer, then one device copy into the logits): the bits of a separate grad,
  // and the CPU's in-place result within the parity tolerance. (Until session 10 CUDA refused.)
  auto xd = gpu(x);
  const auto yd = gpu(y);
  {
    Tensor<double> xc = x.clone(), xf = x.clone();
    const double vc = ce_dice_value_and_grad(xc, y, xc);
    const double vf = dice_focal_value_and_grad(xf, y, xf);
    Tensor<double> apart, apart_f;
    const double va = ce_dice_value_and_grad(xd, yd, apart);
    const double vaf = dice_focal_value_and_grad(xd, yd, apart_f);
    auto in_place = gpu(x), in_place_f = gpu(x);
    CHECK(ce_dice_value_and_grad(in_place, yd, in_place) == va);
    CHECK(dice_focal_value_and_grad(in_place_f, yd, in_place_f) == vaf);
    CHECK(same_bits(apart, in_place));
    CHECK(same_bits(apart_f, in_place_f));
    check_parity(vc, va, parity_tol<double>(), "ce_dice in place value");
    check_parity(vf, vaf, parity_tol<double>(), "dice_focal in place value");
    check_parity(xc, in_place, parity_tol<double>(), "ce_dice in place grad");
    check_parity(xf, in_place_f, parity_tol<double>(), "dice_focal in place grad");
  }
  // A probability target that grad overlaps (the CPU's check).
  const auto q = gpu(probabilities<double>(s, 73));
  Tensor<double> gq = q;
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(xd, q, gq),
                       doctest::Contains("grad overlaps the target"), Error);
  CeDiceOptions<double> o;
  o.ce.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(xd, yd, o),
                       doctest::Contains("options.ce.reduction is none"), Error);
  DiceFocalOptions<double> fo;
  fo.dice.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(dice_focal(xd, yd, fo), doctest::Contains("options.dice.reduction is none"),
                       Error);
  // The term's own errors carry the term's name, as on the CPU.
  CeDiceOptions<double> w;
  w.ce.weight = gpu(Tensor<double>::full(Shape{3}, 1.0));
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(xd, yd, w),
                       doctest::Contains("ce_dice_value_and_grad: in the cross-entropy term: "),
                       Error);
  // The split's finalize refuses in place, on CUDA as on the CPU.
  {
    const auto st = ce_dice_statistics(xd, yd);
    Tensor<double> in_place = xd;
    CHECK_THROWS_WITH_AS(ce_dice_finalize(xd, yd, st, in_place),
                         doctest::Contains("ce_dice_finalize: grad overlaps the logits"), Error);
  }
  // A CPU grad_out with CUDA logits.
  CHECK_THROWS_WITH_AS(ce_dice_backward(xd, yd, Tensor<double>::full(Shape{}, 1.0)),
                       doctest::Contains("grad_out"), Error);
}
