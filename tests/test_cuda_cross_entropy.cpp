// cross_entropy on CUDA: parity with the CPU path (float32 within 1e-5 relative, float64 within
// 1e-12) for every option, reduction and entry point, labels and probability targets, bitwise
// determinism over 10 runs, the error flag of bad labels, the device-resident value, and input
// errors. The tests that need a GPU
// skip with a message when none is present; the argument checks run everywhere.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <segloss/core/cuda_internal.hpp>

#include "cuda_check.hpp"
#include "helpers.hpp"
#include "lead_check.hpp"

using namespace segloss;
using testing::labels;

namespace {

template <class T>
Tensor<T> host(const Tensor<T>& t) {
  return t.to(Device::cpu);
}
template <class T>
Tensor<T> dev(const Tensor<T>& t) {
  return testing::gpu(t);
}

template <class T>
double tolerance() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

// |a - b| <= tol (|b| + max|b|): relative per element, with a floor at the tensor's scale for
// elements near 0 (a gradient p - 1 cancels in float on both sides).
template <class T>
void check_close(const Tensor<T>& got, const Tensor<T>& want, const char* what) {
  REQUIRE(got.shape() == want.shape());
  double scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  const double tol = tolerance<T>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = got[i], b = want[i];
    const bool ok =
        (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= tol * (std::abs(b) + scale);
    if (!ok && bad++ == 0) first = i;
  }
  INFO(what, ": ", bad, " of ", want.numel(), " differ; first at ", first, ": ",
       first >= 0 ? got[first] : T(0), " vs ", first >= 0 ? want[first] : T(0));
  CHECK(bad == 0);
}

void check_value(double got, double want, double tol) {
  if (std::isnan(want)) {
    CHECK(std::isnan(got));
    return;
  }
  CHECK(std::abs(got - want) <= tol * std::max(1.0, std::abs(want)));
}

// The CUDA options: the CPU's with the weight moved to the device.
template <class T>
CrossEntropyOptions<T> on_device(CrossEntropyOptions<T> o) {
  if (o.weight.defined()) o.weight = dev(o.weight);
  return o;
}

// Every entry point on both devices.
template <class T, class L>
void check_parity(const Tensor<T>& x, const Tensor<L>& y, const CrossEntropyOptions<T>& o) {
  const auto od = on_device(o);
  const Tensor<T> xd = dev(x);
  const Tensor<L> yd = dev(y);
  const double tol = tolerance<T>();
  // forward
  const Tensor<T> f_cpu = cross_entropy(x, y, o);
  const Tensor<T> f_gpu = cross_entropy(xd, yd, od);
  CHECK(f_gpu.device() == Device::cuda);
  check_close(host(f_gpu), f_cpu, "forward");
  // backward, with a grad_out that is not 1
  const Tensor<T> go = o.reduction == Reduction::none
                           ? testing::uniform<T>(x.shape().without(1), 77, 0.5, 2.0)
                           : Tensor<T>::full(Shape{}, T(0.75));
  check_close(host(cross_entropy_backward(xd, yd, dev(go), od)),
              cross_entropy_backward(x, y, go, o), "backward");
  if (o.reduction == Reduction::none) return;
  // value_and_grad, both forms
  const auto vg_cpu = cross_entropy_value_and_grad(x, y, o);
  const auto vg_gpu = cross_entropy_value_and_grad(xd, yd, od);
  check_value(vg_gpu.value, vg_cpu.value, tol);
  CHECK(vg_gpu.grad.device() == Device::cuda);
  check_close(host(vg_gpu.grad), vg_cpu.grad, "value_and_grad");
  Tensor<T> grad = Tensor<T>::empty(x.shape(), Device::cuda);
  const double v = cross_entropy_value_and_grad(xd, yd, grad, od);
  check_value(v, vg_cpu.value, tol);
  check_close(host(grad), vg_cpu.grad, "value_and_grad into a buffer");
  // the value kept on the device
  Tensor<T> grad2, value;
  cross_entropy_value_and_grad(xd, yd, grad2, value, od);
  REQUIRE(value.device() == Device::cuda);
  CHECK(value.shape() == Shape{});
  check_value(host(value)[0], static_cast<T>(vg_cpu.value), tol);
  check_close(host(grad2), vg_cpu.grad, "value_and_grad with a device value");
}

template <class T, class L>
void check_options(const Shape& s, uint64_t seed) {
  const int64_t c = s[1];
  const auto x = testing::randn<T>(s, seed, 2.0);
  const auto y = labels<L>(s.without(1), c, seed + 1, 0.2, -100);
  const auto w = testing::uniform<T>(Shape{c}, seed + 2, 0.2, 3.0);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(reduction_name(r));
    CrossEntropyOptions<T> o;
    o.reduction = r;
    SUBCASE("plain") {
      check_parity(x, y, o);
    }
    SUBCASE("weight") {
      o.weight = w;
      check_parity(x, y, o);
    }
    SUBCASE("label smoothing") {
      o.label_smoothing = 0.15;
      check_parity(x, y, o);
    }
    SUBCASE("weight and label smoothing") {
      o.weight = w;
      o.label_smoothing = 0.3;
      check_parity(x, y, o);
    }
    SUBCASE("ignore_index a class") {
      o.ignore_index = 2;
      const auto y2 = labels<L>(s.without(1), c, seed + 3, 0.0);
      check_parity(x, y2, o);
    }
    SUBCASE("ignore_negative and mean over valid pixels (pytorch_fcn)") {
      auto p = CrossEntropyOptions<T>::pytorch_fcn();
      p.reduction = r;
      p.weight = w;
      const auto y2 = labels<L>(s.without(1), c, seed + 4, 0.3, -1);
      check_parity(x, y2, p);
    }
  }
}

// Probability targets: per pixel, positive values summing to 1 over the classes.
template <class T>
Tensor<T> soft_targets(const Shape& s, uint64_t seed) {
  auto q = testing::uniform<T>(s, seed, 0.01, 1.0);
  const int64_t c = s[1], pixels = s.numel_from(2);
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t i = 0; i < pixels; ++i) {
      double total = 0;
      for (int64_t k = 0; k < c; ++k) total += q[(n * c + k) * pixels + i];
      for (int64_t k = 0; k < c; ++k)
        q[(n * c + k) * pixels + i] = static_cast<T>(q[(n * c + k) * pixels + i] / total);
    }
  return q;
}

// Every option that probability targets take (weight, label_smoothing, each reduction).
template <class T>
void check_probability_options(const Shape& s, uint64_t seed) {
  const int64_t c = s[1];
  const auto x = testing::randn<T>(s, seed, 2.0);
  const auto q = soft_targets<T>(s, seed + 1);
  const auto w = testing::uniform<T>(Shape{c}, seed + 2, 0.2, 3.0);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(reduction_name(r));
    CrossEntropyOptions<T> o;
    o.reduction = r;
    SUBCASE("plain") {
      check_parity(x, q, o);
    }
    SUBCASE("weight") {
      o.weight = w;
      check_parity(x, q, o);
    }
    SUBCASE("label smoothing") {
      o.label_smoothing = 0.15;
      check_parity(x, q, o);
    }
    SUBCASE("weight and label smoothing") {
      o.weight = w;
      o.label_smoothing = 0.3;
      check_parity(x, q, o);
    }
    SUBCASE("a negative ignore_index (no label to match: nothing changes, as PyTorch)") {
      o.weight = w;
      o.ignore_index = -1;
      check_parity(x, q, o);
    }
    SUBCASE("targets not summing to 1, and label smoothing 1") {
      o.weight = w;
      o.label_smoothing = 1.0;
      check_parity(x, testing::uniform<T>(s, seed + 3, 0.0, 2.0), o);
    }
  }
}

}  // namespace

TEST_CASE("cuda cross_entropy: CPU parity, float, C = 21, 2D, int64 and int32 labels") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("int64") {
    check_options<float, int64_t>(Shape{2, 21, 17, 13}, 1);
  }
  SUBCASE("int32") {
    check_options<float, int32_t>(Shape{2, 21, 17, 13}, 2);
  }
}

TEST_CASE("cuda cross_entropy: CPU parity, double, 1D and 3D, C = 5") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("1D") {
    check_options<double, int64_t>(Shape{3, 5, 101}, 3);
  }
  SUBCASE("3D") {
    check_options<double, int32_t>(Shape{2, 5, 3, 5, 7}, 4);
  }
}

TEST_CASE("cuda cross_entropy: C above the register bound (40) and C = 1, 2, 32") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("C = 40 float") {
    check_options<float, int64_t>(Shape{2, 40, 9, 11}, 5);
  }
  SUBCASE("C = 40 double") {
    check_options<double, int64_t>(Shape{1, 40, 33}, 6);
  }
  SUBCASE("C = 32") {
    check_options<float, int32_t>(Shape{1, 32, 7, 7}, 7);
  }
  SUBCASE("C = 2") {
    check_options<float, int64_t>(Shape{4, 2, 5, 5}, 8);
  }
  SUBCASE("C = 1") {
    check_options<double, int64_t>(Shape{2, 1, 3, 3}, 9);
  }
}

TEST_CASE("cuda cross_entropy: N = 1, a 1x1 image, and a grid-stride size (> 16384 blocks)") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("1x1") {
    check_options<float, int64_t>(Shape{1, 21, 1, 1}, 10);
  }
  SUBCASE("large") {
    // 4,196,352 pixels, above 16384 blocks of 256: some threads take two (the staged pass:
    // float labels, 8 < C <= 32)
    const Shape s{1, 9, 2048, 2049};
    const auto x = testing::randn<float>(s, 11, 2.0);
    const auto y = labels<int64_t>(s.without(1), 9, 12, 0.1);
    CrossEntropyOptions<float> o;
    o.label_smoothing = 0.1;
    check_parity(x, y, o);
  }
}

// value_and_grad with grad the logits themselves (in place) against the out-of-place call: the
// same value and the same gradient bits (targets y on the device: labels or probabilities).
template <class T, class Y>
void check_in_place(const Tensor<T>& x, const Tensor<Y>& yd, const CrossEntropyOptions<T>& o) {
  const auto want = cross_entropy_value_and_grad(dev(x), yd, o);
  Tensor<T> xd = dev(x);
  const double v = cross_entropy_value_and_grad(xd, yd, xd, o);
  CHECK(v == want.value);
  CHECK(testing::same_bits(xd, want.grad));
}

TEST_CASE("cuda cross_entropy: labels, grad the logits (in place), every path of the pass") {
  SEGLOSS_REQUIRE_GPU();
  // C = 5: registers; 12, 21, 30: float logits staged in shared memory (the 16, 24 and 32
  // buckets); 40: the walks. Each thread reads its pixel's logits before it writes any gradient.
  for (int64_t c : {int64_t{5}, int64_t{12}, int64_t{21}, int64_t{30}, int64_t{40}}) {
    CAPTURE(c);
    const Shape s{2, c, 9, 31};  // 558 pixels: three blocks, the last one partly idle
    const auto x = testing::randn<float>(s, 48, 2.0);
    const auto y = labels<int64_t>(s.without(1), c, 49, 0.1);
    CrossEntropyOptions<float> o;
    o.label_smoothing = 0.1;
    check_in_place(x, dev(y), o);
    check_parity(x, y, o);
  }
}

TEST_CASE(
    "cuda cross_entropy: a label logit far ahead keeps the relative precision of loss and grad") {
  SEGLOSS_REQUIRE_GPU();
  // As the CPU test: log1p(R / e_y) and -R / S from R summed on its own, at leads where
  // log(1 + R) rounds to 0 in float, in every path of the pass (C = 5 registers, 21 staged in
  // shared memory, 40 the walks), without and with class weights; float and double.
  const std::vector<double> leads = testing::lead_values();
  for (int64_t C : {int64_t{5}, int64_t{21}, int64_t{40}}) {
    CAPTURE(C);
    const auto in = testing::lead_pixels(C, 300, leads);
    const auto yd = dev(in.y);
    for (bool weighted : {false, true}) {
      CAPTURE(weighted);
      const std::vector<double> w = testing::lead_weights(C, weighted);
      CrossEntropyOptions<double> o;
      o.reduction = Reduction::none;
      CrossEntropyOptions<float> of;
      of.reduction = Reduction::none;
      if (weighted) {
        o.weight = dev(Tensor<double>::from(w, {C}));
        of.weight = dev(Tensor<float>::from(std::vector<float>(w.begin(), w.end()), {C}));
      }
      const auto xd = dev(in.x);
      testing::check_lead_pixels(
          in, host(cross_entropy(xd, yd, o)),
          host(cross_entropy_backward(xd, yd, dev(Tensor<double>::full({1, 300}, 1.0)), o)), w,
          1e-12, 300);
      const auto xf = dev(testing::cast<float>(in.x));
      testing::check_lead_pixels(
          in, host(cross_entropy(xf, yd, of)),
          host(cross_entropy_backward(xf, yd, dev(Tensor<float>::full({1, 300}, 1.f)), of)), w,
          1e-5, 80);
    }
  }
}

TEST_CASE("cuda cross_entropy: every pixel ignored: zero or NaN, and a zero gradient") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 3, 3};
  const auto x = testing::randn<float>(s, 13);
  const auto y = Tensor<int64_t>::full(s.without(1), -100);
  for (AllIgnored a : {AllIgnored::zero, AllIgnored::nan}) {
    CrossEntropyOptions<float> o;
    o.all_ignored = a;
    check_parity(x, y, o);
    const auto r = cross_entropy_value_and_grad(dev(x), dev(y), o);
    CHECK((a == AllIgnored::nan ? std::isnan(r.value) : r.value == 0.0));
    for (float g : host(r.grad)) CHECK(g == 0.0f);
  }
}

TEST_CASE("cuda cross_entropy: |x| = 1e4 stays finite, and NaN logits stay in their pixel") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{1, 3, 2, 2};
  auto x = Tensor<float>::from({1e4f, -1e4f, 0, 1, -1e4f, 1e4f, 0, 2, 0, 0, 1e4f, 3}, s);
  const auto y = Tensor<int64_t>::from({0, 0, 2, 1}, s.without(1));
  CrossEntropyOptions<float> o;
  o.reduction = Reduction::none;
  check_parity(x, y, o);
  for (float v : host(cross_entropy(dev(x), dev(y), o))) CHECK(std::isfinite(v));
  x[3] = NAN;  // pixel 3, class 0
  const auto loss = host(cross_entropy(dev(x), dev(y), o));
  CHECK(std::isnan(loss[3]));
  CHECK(std::isfinite(loss[0]));
  CHECK(std::isfinite(loss[2]));
}

TEST_CASE("cuda cross_entropy: bitwise identical value and gradient over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 21, 257, 255};
  const auto xd = dev(testing::randn<float>(s, 14, 3.0));
  const auto yd = dev(labels<int32_t>(s.without(1), 21, 15, 0.05));
  CrossEntropyOptions<float> o;
  o.weight = dev(testing::uniform<float>(Shape{21}, 16, 0.5, 2.0));
  o.label_smoothing = 0.1;
  const auto first = cross_entropy_value_and_grad(xd, yd, o);
  const auto g0 = host(first.grad);
  for (int run = 1; run < 10; ++run) {
    const auto r = cross_entropy_value_and_grad(xd, yd, o);
    CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
    const auto g = host(r.grad);
    CHECK(std::memcmp(g.data(), g0.data(), sizeof(float) * static_cast<size_t>(g0.numel())) == 0);
    const auto f = host(cross_entropy(xd, yd, o));
    CHECK(static_cast<double>(f[0]) == static_cast<double>(static_cast<float>(first.value)));
  }
}

// Bits of a float tensor on the device, NaN payloads folded to one pattern.
std::vector<uint32_t> float_bits(const Tensor<float>& t_any) {
  const Tensor<float> t = host(t_any);
  std::vector<uint32_t> b(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = std::isnan(t[i]) ? NAN : t[i];
    std::memcpy(&b[static_cast<size_t>(i)], &v, sizeof v);
  }
  return b;
}

TEST_CASE("cuda cross_entropy: the staged pass gives the register pass's bits (float labels)") {
  SEGLOSS_REQUIRE_GPU();
  // float logits with labels and 8 < C <= 32 run pixel_in_shared (the logits staged in shared
  // memory with cp.async on a GPU), which must do the register pass's operations in the same
  // order. The test turns the staging off (core/cuda_internal.hpp) to get the register pass.
  struct Restore {
    ~Restore() { cuda::detail::set_cross_entropy_staging(true); }
  } restore;
  for (int64_t c : {int64_t{12}, int64_t{21}, int64_t{30}}) {
    CAPTURE(c);
    const Shape s{2, c, 9, 31};
    auto x = testing::randn<float>(s, 50, 3.0);
    auto y = labels<int64_t>(s.without(1), c, 51, 0.1);
    x[(1 * c + 2) * 279 + 17] = NAN;  // image 1, class 2, pixel 17: its loss and gradient NaN
    y[279 + 40] = c + 3;              // image 1, pixel 40: a bad label (NaN on the device)
    const auto xd = dev(x);
    const auto yd = dev(y);
    CrossEntropyOptions<float> o;
    o.weight = dev(testing::uniform<float>(Shape{c}, 52, 0.5, 2.0));
    o.label_smoothing = 0.1;
    CrossEntropyOptions<float> none = o;
    none.reduction = Reduction::none;
    std::vector<std::vector<uint32_t>> got[2];
    for (int staged = 0; staged < 2; ++staged) {
      cuda::detail::set_cross_entropy_staging(staged == 1);
      Tensor<float> grad, value;
      cross_entropy_value_and_grad(xd, yd, grad, value, o);  // the device-value form: no raise
      got[staged] = {float_bits(value), float_bits(grad), float_bits(cross_entropy(xd, yd, none)),
                     float_bits(cross_entropy_backward(
                         xd, yd, dev(testing::uniform<float>(s.without(1), 53, 0.5, 2.0)), none))};
    }
    for (size_t k = 0; k < 4; ++k) {
      CAPTURE(k);  // value, gradient, loss (none), backward (none)
      CHECK(got[0][k] == got[1][k]);
    }
    // The NaN logit and the bad label stay in their pixels.
    const auto loss = host(cross_entropy(xd, yd, none));
    for (int64_t i = 0; i < loss.numel(); ++i) {
      CAPTURE(i);
      CHECK(std::isnan(loss[i]) == (i == 279 + 17 || i == 279 + 40));
    }
  }
}

// got against want: NaN at the same entries, elsewhere |got - want| <= tol (|want| + max|want|).
void check_near(const Tensor<float>& got_any, const Tensor<float>& want_any, double tol) {
  const Tensor<float> got = host(got_any), want = host(want_any);
  REQUIRE(got.shape() == want.shape());
  double scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    if (!std::isnan(want[i])) scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = got[i], b = want[i];
    const bool ok = std::isnan(b) ? std::isnan(a) : std::abs(a - b) <= tol * (std::abs(b) + scale);
    if (!ok && bad++ == 0) first = i;
  }
  INFO(bad, " of ", want.numel(), " differ; first at ", first);
  CHECK(bad == 0);
}

TEST_CASE("cuda cross_entropy: four pixels a thread agree with a pixel a thread (switch on)") {
  SEGLOSS_REQUIRE_GPU();
  // detail::set_cross_entropy_quads(true) runs fused_quads (off by default until a GPU has
  // measured it) for float logits with labels, 8 < C <= 32 and S % 4 == 0: each pixel gets the
  // one-pixel pass's operations, so the results agree to rounding (FMA contraction may differ),
  // NaN where that pass has NaN, bitwise from run to run, and the CPU's to its tolerance.
  struct Restore {
    ~Restore() { cuda::detail::set_cross_entropy_quads(false); }
  } restore;
  auto& launches = cuda::detail::cross_entropy_quad_launches();
  for (int64_t c : {int64_t{12}, int64_t{21}, int64_t{30}}) {
    CAPTURE(c);
    const int64_t S = 296;  // 8 x 37: 222 quads, four blocks of 64, the last partly idle
    const Shape s{3, c, 8, 37};
    auto x = testing::randn<float>(s, 54, 3.0);
    auto y = labels<int64_t>(s.without(1), c, 55, 0.1);
    x[(1 * c + 2) * S + 17] = NAN;  // image 1, class 2, pixel 17: its loss and gradient NaN
    y[S + 17] = 1;                  // (counted: an ignored pixel's loss is 0 whatever its logits)
    y[S + 42] = c + 3;              // image 1, pixel 42: a bad label (NaN on the device)
    y[2 * S + 3] = -100;            // ignored, the last of its quad
    const auto xd = dev(x);
    const auto yd = dev(y);
    CrossEntropyOptions<float> o;
    o.weight = dev(testing::uniform<float>(Shape{c}, 56, 0.5, 2.0));
    o.label_smoothing = 0.1;
    CrossEntropyOptions<float> none = o;
    none.reduction = Reduction::none;
    const auto go = dev(testing::uniform<float>(s.without(1), 57, 0.5, 2.0));
    Tensor<float> grad[2], value[2], loss[2], back[2];
    for (int quads = 0; quads < 2; ++quads) {
      cuda::detail::set_cross_entropy_quads(quads == 1);
      const int64_t before = launches.load();
      cross_entropy_value_and_grad(xd, yd, grad[quads], value[quads], o);  // device value
      loss[quads] = cross_entropy(xd, yd, none);
      back[quads] = cross_entropy_backward(xd, yd, go, none);
      CHECK(launches.load() - before == 3 * quads);
    }
    check_near(grad[1], grad[0], 1e-6);
    check_near(loss[1], loss[0], 1e-6);
    check_near(back[1], back[0], 1e-6);
    CHECK(std::isnan(host(value[1])[0]));  // the bad label
    const auto l = host(loss[1]);
    for (int64_t i = 0; i < l.numel(); ++i) {
      CAPTURE(i);
      CHECK(std::isnan(l[i]) == (i == S + 17 || i == S + 42));
    }
    CHECK(l[2 * S + 3] == 0.0f);
    // Without the bad label and the NaN: the CPU's results, in place too, and the same bits over
    // 10 runs.
    y[S + 42] = 1;
    x[(1 * c + 2) * S + 17] = 0.5f;
    cuda::detail::set_cross_entropy_quads(true);
    CrossEntropyOptions<float> oc = o;
    oc.weight = host(o.weight);
    const int64_t before = launches.load();
    check_parity(x, y, oc);
    check_in_place(x, dev(y), o);
    CHECK(launches.load() > before);
    const auto x2 = dev(x);
    const auto y2 = dev(y);
    const auto first = cross_entropy_value_and_grad(x2, y2, o);
    for (int run = 0; run < 9; ++run) {
      const auto again = cross_entropy_value_and_grad(x2, y2, o);
      CHECK(again.value == first.value);
      CHECK(testing::same_bits(again.grad, first.grad));
    }
  }
  // Where the pass cannot take four pixels a thread it takes one, the switch on: S % 4 != 0,
  // C <= 8, C > 32.
  cuda::detail::set_cross_entropy_quads(true);
  for (const Shape& s : {Shape{2, 21, 9, 31}, Shape{2, 8, 8, 8}, Shape{2, 33, 8, 8}}) {
    CAPTURE(s);
    const int64_t before = launches.load();
    check_parity(testing::randn<float>(s, 58, 2.0), labels<int64_t>(s.without(1), s[1], 59, 0.1),
                 CrossEntropyOptions<float>{});
    CHECK(launches.load() == before);
  }
}

TEST_CASE(
    "cuda cross_entropy: four pixels a thread: default options, raw and int32 labels, grid "
    "stride, finish in either place") {
  SEGLOSS_REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      cuda::detail::set_cross_entropy_quads(false);
      cuda::detail::set_label_codes(true);
      cuda::detail::set_last_block_tails(true);
    }
  } restore;
  auto& launches = cuda::detail::cross_entropy_quad_launches();
  // 19,200 pixels: 75 blocks, more than the 64 threads of the pass's last block, which adds the
  // partials in the order of finish as a kernel of its own (256 threads).
  const Shape s{2, 21, 96, 100};
  const auto x = testing::randn<float>(s, 60, 3.0);
  const auto y64 = labels<int64_t>(s.without(1), 21, 61, 0.1);
  const auto x_d = dev(x);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (int codes = 0; codes < 2; ++codes)
      for (int wide = 0; wide < 2; ++wide) {  // int64 or int32 labels
        CAPTURE(r);
        CAPTURE(codes);
        CAPTURE(wide);
        cuda::detail::set_label_codes(codes == 1);
        CrossEntropyOptions<float> o;  // no weight, no smoothing: the default options
        o.reduction = r;
        Tensor<float> got[2];
        double value[2] = {0, 0};
        for (int quads = 0; quads < 2; ++quads) {
          cuda::detail::set_cross_entropy_quads(quads == 1);
          const int64_t before = launches.load();
          if (r == Reduction::none) {
            got[quads] = wide ? cross_entropy(x_d, dev(y64), o)
                              : cross_entropy(x_d, dev(testing::cast<int32_t>(y64)), o);
          } else {
            const auto vg =
                wide ? cross_entropy_value_and_grad(x_d, dev(y64), o)
                     : cross_entropy_value_and_grad(x_d, dev(testing::cast<int32_t>(y64)), o);
            value[quads] = vg.value;
            got[quads] = vg.grad;
          }
          CHECK(launches.load() - before == quads);
        }
        check_near(got[1], got[0], 1e-6);
        CHECK(std::abs(value[1] - value[0]) <= 1e-6 * std::abs(value[0]));
      }
  cuda::detail::set_label_codes(true);
  cuda::detail::set_cross_entropy_quads(true);
  check_parity(x, y64, CrossEntropyOptions<float>{});
  // finish in the pass's last block (64 threads) or as a kernel (256): the same bits. The label's
  // logit leads by 0 to 60 (pixel losses from about 1 down to 1e-26), so that the partials' double
  // sum is not exact and its grouping shows in the value's bits.
  auto xl = x;
  const int64_t S = 96 * 100;
  for (int64_t i = 0; i < y64.numel(); ++i)
    if (y64[i] >= 0) xl[(i / S * 21 + y64[i]) * S + i % S] += static_cast<float>(i % 61);
  const auto xl_d = dev(xl);
  double v[2];
  std::vector<uint32_t> g[2];
  for (int tails = 0; tails < 2; ++tails) {
    cuda::detail::set_last_block_tails(tails == 1);
    const auto vg = cross_entropy_value_and_grad(xl_d, dev(y64), CrossEntropyOptions<float>{});
    v[tails] = vg.value;
    g[tails] = float_bits(vg.grad);
  }
  CHECK(v[0] == v[1]);
  CHECK(g[0] == g[1]);
  cuda::detail::set_last_block_tails(true);
  // 4,196,352 pixels: 16,384 blocks of 64 threads cover 1,048,576 of the 1,049,088 quads, so 512
  // threads take a second quad (the grid-stride loop, the tile used again).
  const Shape big{1, 9, 2048, 2049};
  const auto xb = dev(testing::randn<float>(big, 62, 2.0));
  const auto yb = dev(labels<int64_t>(big.without(1), 9, 63, 0.1));
  Tensor<float> gb[2];
  double vb[2];
  for (int quads = 0; quads < 2; ++quads) {
    cuda::detail::set_cross_entropy_quads(quads == 1);
    const auto vg = cross_entropy_value_and_grad(xb, yb, CrossEntropyOptions<float>{});
    vb[quads] = vg.value;
    gb[quads] = vg.grad;
  }
  check_near(gb[1], gb[0], 1e-6);
  CHECK(std::abs(vb[1] - vb[0]) <= 1e-6 * std::abs(vb[0]));
}

TEST_CASE("cuda cross_entropy: the label pass on its own grid, several labels a thread") {
  SEGLOSS_REQUIRE_GPU();
  // 1,310,701 pixels: the label pass runs 1024 blocks (core/cuda_internal.hpp
  // cross_entropy_label_blocks), 4 or 5 labels a thread, loaded 4 at a time (a second, partial
  // group for the first 262,125 threads); the fused pass runs 5120 blocks, a pixel a thread. The
  // count, the weights' sum and the first bad label must be what the pass on the fused pass's grid
  // (a label per thread, the switch off) finds, and the result the CPU's.
  struct Restore {
    ~Restore() { cuda::detail::set_label_pass_own_grid(true); }
  } restore;
  const Shape s{1, 2, 1163, 1127};
  const int64_t pixels = s.numel() / 2;
  REQUIRE(cuda::detail::cross_entropy_label_blocks(pixels) == 1024);
  REQUIRE(cuda::detail::cross_entropy_blocks(pixels) == 5120);
  const auto x = testing::randn<float>(s, 61, 2.0);
  auto y = labels<int64_t>(s.without(1), 2, 62, 0.1);  // about a tenth ignored (-100)
  CrossEntropyOptions<float> o;
  o.weight = Tensor<float>::from(std::vector<float>{0.75f, 2.5f}, {2});  // sums exact in double
  check_parity(x, y, o);
  // The same bits with the label pass on either grid (exact sums: no order to tell them apart).
  const auto xd = dev(x);
  const auto od = on_device(o);
  std::vector<uint32_t> bits[2];
  double values[2];
  for (int own = 0; own < 2; ++own) {
    cuda::detail::set_label_pass_own_grid(own == 1);
    const auto vg = cross_entropy_value_and_grad(xd, dev(y), od);
    values[own] = vg.value;
    bits[own] = float_bits(vg.grad);
  }
  CHECK(values[0] == values[1]);
  CHECK(bits[0] == bits[1]);
  // Bad labels in two threads (their first groups' fourth and third loads on the own grid), and
  // three in one thread (its first group's second and fourth loads, its second group's first):
  // the smallest index is reported, on either grid.
  const auto first_bad = [&](int64_t at_index, int64_t label) {
    const std::string at = "target has label " + std::to_string(label) + " at (0," +
                           std::to_string(at_index / 1127) + "," + std::to_string(at_index % 1127) +
                           "), outside [0, 2)";
    for (int own = 0; own < 2; ++own) {
      CAPTURE(own);
      cuda::detail::set_label_pass_own_grid(own == 1);
      CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, dev(y), od),
                           doctest::Contains(at.c_str()), Error);
    }
  };
  y[1000003] = 7;
  y[700001] = -5;
  first_bad(700001, -5);
  const int64_t stride = 1024 * 256;
  y[5 + 4 * stride] = 8;
  y[5 + 3 * stride] = 7;
  y[5 + stride] = 9;
  first_bad(5 + stride, 9);
}

TEST_CASE(
    "cuda cross_entropy: the label pass's grid: at least 1024 blocks, at most the fused grid") {
  for (int64_t p :
       {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{262144}, int64_t{262145}, int64_t{4194304},
        int64_t{4194305}, int64_t{67108864}, int64_t{67108865}, int64_t{1} << 31}) {
    CAPTURE(p);
    const int64_t label = cuda::detail::cross_entropy_label_blocks(p);
    const int64_t fused = cuda::detail::cross_entropy_blocks(p);
    CHECK(label >= 1);
    CHECK(label <= fused);
    CHECK(label == std::min<int64_t>(fused, std::max<int64_t>(1024, (p + 4095) / 4096)));
    CHECK(label * 256 * 16 >=
          std::min<int64_t>(p, 16384 * 256 * 16));  // at most 16 labels a thread up to 2^26 pixels
  }
  CHECK(cuda::detail::cross_entropy_label_blocks(1) == 1);
  CHECK(cuda::detail::cross_entropy_label_blocks(262144) == 1024);
  CHECK(cuda::detail::cross_entropy_label_blocks(4194305) == 1025);
  CHECK(cuda::detail::cross_entropy_label_blocks(int64_t{1} << 31) == 16384);
}

// The value, the gradient, the per-pixel loss and the backward of one configuration, as bits
// (the host value as its double's bits), and the host form's error message ("" when none).
// dirty() runs before each call: a call on other targets of the same shape, which leaves other
// partials in the workspace, so that a follow-up step that read a block's partial before that
// block wrote it would read another call's value, not this call's from the call before.
template <class T, class Y, class Dirty>
std::vector<std::vector<uint64_t>> ce_results(const Tensor<T>& xd, const Tensor<Y>& yd,
                                              CrossEntropyOptions<T> o, const Dirty& dirty,
                                              std::string& error) {
  using testing::bits_of;
  std::vector<std::vector<uint64_t>> got;
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    o.reduction = r;
    Tensor<T> grad, value;
    dirty();
    cross_entropy_value_and_grad(xd, yd, grad, value, o);  // the device value: no raise
    got.push_back(bits_of(value));
    got.push_back(bits_of(grad));
    dirty();
    got.push_back(bits_of(cross_entropy(xd, yd, o)));
    try {
      dirty();
      got.push_back(bits_of(cross_entropy_value_and_grad(xd, yd, o).value));
    } catch (const Error& e) {
      error = e.what();
    }
  }
  o.reduction = Reduction::none;
  dirty();
  got.push_back(bits_of(cross_entropy(xd, yd, o)));
  const Tensor<T> up = dev(testing::uniform<T>(xd.shape().without(1), 61, 0.5, 2.0));
  dirty();
  got.push_back(bits_of(cross_entropy_backward(xd, yd, up, o)));
  return got;
}

TEST_CASE(
    "cuda cross_entropy: prepare and finish in the pass's last block give their kernels' bits") {
  SEGLOSS_REQUIRE_GPU();
  // By default the label pass's last block to finish runs prepare, and the fused pass's runs
  // finish (runtime.cuh last_block); the test turns that off (core/cuda_internal.hpp) to run
  // them as kernels of their own. The same code on the same partials: the same bits, the same
  // error. Several blocks in each shape (the emulator runs the blocks in increasing and
  // decreasing order in turn, so the last block is the grid's last or its first).
  const auto both = [](auto run) { return testing::check_tails_same_bits(run); };
  for (int64_t c : {int64_t{5}, int64_t{21}, int64_t{40}}) {  // registers, staged, the walk
    CAPTURE(c);
    const Shape s{3, c, 41, 37};  // 4551 pixels: 18 blocks
    const auto xd = dev(testing::randn<float>(s, 62, 3.0));
    auto y = labels<int64_t>(s.without(1), c, 63, 0.1);
    const auto other = dev(labels<int64_t>(s.without(1), c, 68, 0.5));
    CrossEntropyOptions<float> o;
    o.weight = dev(testing::uniform<float>(Shape{c}, 64, 0.5, 2.0));
    o.label_smoothing = 0.1;
    const auto dirty = [&] { (void)cross_entropy_value_and_grad(xd, other, o); };
    CHECK(both([&](std::string& e) { return ce_results(xd, dev(y), o, dirty, e); }).empty());
    o.mean_over = MeanOver::valid_pixels;  // the divisor: the count of counted pixels
    CHECK(both([&](std::string& e) { return ce_results(xd, dev(y), o, dirty, e); }).empty());
    y[2 * 1517 + 900] = c + 2;  // two bad labels: the first is named, both ways
    y[1517 + 33] = -7;
    const std::string error =
        both([&](std::string& e) { return ce_results(xd, dev(y), o, dirty, e); });
    CHECK(error.find("target has label -7 at (1,0,33)") != std::string::npos);
  }
  {  // every pixel ignored: the NaN policy's value, both ways
    const Shape s{2, 21, 40, 40};
    const auto xd = dev(testing::randn<double>(s, 65, 2.0));
    const auto yd = dev(Tensor<int64_t>::full(s.without(1), -100));
    const auto other = dev(labels<int64_t>(s.without(1), 21, 69));
    CrossEntropyOptions<double> o;
    o.all_ignored = AllIgnored::nan;
    const auto dirty = [&] { (void)cross_entropy_value_and_grad(xd, other, o); };
    CHECK(both([&](std::string& e) { return ce_results(xd, yd, o, dirty, e); }).empty());
  }
#if defined(SEGLOSS_TEST_CUDA)
  {  // the tails are taken: prepare and finish, two launches fewer (one for probabilities)
    const Shape s{2, 21, 30, 20};
    const auto xd = dev(testing::randn<float>(s, 71, 3.0));
    const auto yd = dev(labels<int64_t>(s.without(1), 21, 72, 0.1));
    const auto qd = dev(soft_targets<float>(s, 73));
    Tensor<float> grad = Tensor<float>::empty(s, Device::cuda);
    Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
    CrossEntropyOptions<float> o;
    CHECK(testing::tail_launches_saved(
              [&] { cross_entropy_value_and_grad(xd, yd, grad, value, o); }) == 2);
    CHECK(testing::tail_launches_saved(
              [&] { cross_entropy_value_and_grad(xd, qd, grad, value, o); }) == 1);
    // The whole call with labels: the header's memset, the label pass, the fused pass.
    CHECK(testing::captured_nodes([&] { cross_entropy_value_and_grad(xd, yd, grad, value, o); }) ==
          3);
  }
#endif
  {  // probability targets: prepare is a kernel (no label pass), finish the last block's
    const Shape s{2, 21, 50, 45};
    const auto xd = dev(testing::randn<float>(s, 66, 3.0));
    const auto qd = dev(soft_targets<float>(s, 67));
    const auto other = dev(soft_targets<float>(s, 70));
    CrossEntropyOptions<float> o;
    o.label_smoothing = 0.05;
    const auto dirty = [&] { (void)cross_entropy_value_and_grad(xd, other, o); };
    CHECK(both([&](std::string& e) { return ce_results(xd, qd, o, dirty, e); }).empty());
  }
}

TEST_CASE("cuda cross_entropy: the fused pass reading the label codes gives the labels' bits") {
  SEGLOSS_REQUIRE_GPU();
  // Where C <= 254, the label pass writes each pixel's label as a byte (its class, 254 ignored,
  // 255 bad), which the fused pass reads instead of the label (backends/cuda/cross_entropy.cu);
  // the test turns that off (core/cuda_internal.hpp) to read the labels. Every bucket of C (8,
  // 16, 24, 32: registers or staged; the walk), float on both of its paths, the largest C with
  // codes and the smallest without, int32 and int64 labels, float and double; ignored, negative
  // and too large labels among them.
  struct Restore {
    ~Restore() {
      cuda::detail::set_label_codes(true);
      cuda::detail::set_cross_entropy_staging(true);
    }
  } restore;
  const auto run = [](auto x, auto y, auto o, int64_t c) {
    CAPTURE(c);
    CAPTURE(sizeof(typename decltype(x)::value_type));
    CAPTURE(sizeof(typename decltype(y)::value_type));
    CAPTURE(cuda::detail::cross_entropy_staging());
    const auto xd = dev(x);
    using L = typename decltype(y)::value_type;
    y[3] = static_cast<L>(c);                    // bad: C
    y[130] = static_cast<L>(-7);                 // bad unless ignore_negative
    y[y.numel() - 1] = static_cast<L>(c + 200);  // bad
    const auto yd = dev(y);
    const auto nothing = [] {};
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(variant);
      if (variant == 1) o.ignore_index = 2;  // a class ignored: code 254 for a valid class
      if (variant == 2) {
        o.ignore_negative = true;  // -7 ignored, not bad
        o.mean_over = MeanOver::valid_pixels;
      }
      std::string errors[2];
      std::vector<std::vector<uint64_t>> got[2];
      for (int codes = 0; codes < 2; ++codes) {
        cuda::detail::set_label_codes(codes == 1);
        const int64_t before = cuda::detail::label_code_launches().load();
        got[codes] = ce_results(xd, yd, o, nothing, errors[codes]);
        // Each of ce_results' 8 calls launches the fused pass once, on the codes where C <= 254.
        CHECK(cuda::detail::label_code_launches().load() - before ==
              (codes == 1 && c <= 254 ? 8 : 0));
      }
      CHECK(errors[0] == errors[1]);
      CHECK(!errors[0].empty());
      REQUIRE(got[0].size() == got[1].size());
      for (size_t k = 0; k < got[0].size(); ++k) {
        CAPTURE(k);
        CHECK(got[0][k] == got[1][k]);
      }
    }
  };
  for (int64_t c : {int64_t{5}, int64_t{12}, int64_t{21}, int64_t{30}, int64_t{40}, int64_t{254},
                    int64_t{255}}) {
    const Shape s{2, c, 13, 11};  // 286 pixels: 2 blocks
    CrossEntropyOptions<float> of;
    of.weight = dev(testing::uniform<float>(Shape{c}, 81, 0.5, 2.0));
    of.label_smoothing = 0.1;
    for (bool staged : {true, false}) {
      cuda::detail::set_cross_entropy_staging(staged);
      run(testing::randn<float>(s, 82, 3.0), labels<int64_t>(s.without(1), c, 83, 0.1), of, c);
      run(testing::randn<float>(s, 84, 3.0), labels<int32_t>(s.without(1), c, 85, 0.1), of, c);
    }
    CrossEntropyOptions<double> od;
    run(testing::randn<double>(s, 86, 3.0), labels<int64_t>(s.without(1), c, 87, 0.1), od, c);
    run(testing::randn<double>(s, 88, 3.0), labels<int32_t>(s.without(1), c, 89, 0.1), od, c);
  }
}

TEST_CASE("cuda cross_entropy: the label codes in the workspace, only where it holds them") {
  SEGLOSS_REQUIRE_GPU();
  // A caller's workspace with room for the codes after the call's layout gets them there, one
  // byte per pixel: the class, 254 ignored, 255 bad. One without that room (the call's own
  // size, which workspace_size() counts) runs without them, with the same bits, and nothing is
  // written past it.
  const int64_t c = 21;
  const Shape s{2, c, 13, 11};
  const int64_t total = 2 * 13 * 11;
  const auto x = dev(testing::randn<float>(s, 91, 3.0));
  auto y = labels<int64_t>(s.without(1), c, 92, 0.2);
  y[7] = 40;  // bad
  const auto yd = dev(y);
  const size_t codes_at = cuda::detail::align_up(cuda::detail::cross_entropy_bytes(total));
  const size_t codes_end = codes_at + cuda::detail::align_up(static_cast<size_t>(total));
  const size_t buffer_bytes = codes_end + 4096;
  std::vector<double> sentinel(buffer_bytes / sizeof(double));
  std::memset(sentinel.data(), 0xAB, sentinel.size() * sizeof(double));
  const auto raw = [](const Tensor<double>& t) {
    const Tensor<double> h = host(t);
    std::vector<uint8_t> b(static_cast<size_t>(h.numel()) * sizeof(double));
    std::memcpy(b.data(), h.data(), b.size());
    return b;
  };
  // The call's results, the buffer's bytes after it, and whether its fused pass took the codes.
  const auto results = [&](size_t bytes, std::vector<uint8_t>& after, bool& on_codes) {
    const Tensor<double> ws =
        dev(Tensor<double>::view(sentinel.data(), Shape{static_cast<int64_t>(sentinel.size())}));
    std::vector<std::vector<uint64_t>> got;
    {
      cuda::WorkspaceScope scope(ws.data(), bytes);
      Tensor<float> grad, value;
      const int64_t before = cuda::detail::label_code_launches().load();
      cross_entropy_value_and_grad(x, yd, grad, value);
      on_codes = cuda::detail::label_code_launches().load() - before == 1;
      got = {testing::bits_of(value), testing::bits_of(grad)};
    }
    after = raw(ws);
    return got;
  };
  std::vector<uint8_t> with, without;
  bool with_on_codes = false, without_on_codes = true;
  const auto got_with = results(codes_end, with, with_on_codes);
  const auto got_without =
      results(cuda::detail::cross_entropy_bytes(total), without, without_on_codes);
  CHECK(with_on_codes);
  CHECK(!without_on_codes);
  CHECK(got_with == got_without);
  for (int64_t i = 0; i < total; ++i) {
    CAPTURE(i);
    const int want = y[i] == -100 ? 254 : (y[i] < 0 || y[i] >= c) ? 255 : static_cast<int>(y[i]);
    CHECK(static_cast<int>(with[codes_at + static_cast<size_t>(i)]) == want);
  }
  // Nothing past either workspace is written.
  const auto untouched_from = [](const std::vector<uint8_t>& b, size_t from) {
    size_t n = 0;
    for (size_t i = from; i < b.size(); ++i) n += b[i] == 0xAB;
    return n == b.size() - from;
  };
  CHECK(untouched_from(with, codes_end));
  CHECK(untouched_from(without, cuda::detail::cross_entropy_bytes(total)));
}

TEST_CASE("cuda cross_entropy: a bad label makes value_and_grad raise and a device result NaN") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto xd = dev(testing::randn<float>(s, 17));
  auto y = labels<int64_t>(s.without(1), 5, 18);
  y[21] = 5;  // image 1, (1, 1)
  y[30] = -3;
  const auto yd = dev(y);
  CrossEntropyOptions<float> o;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, yd, o),
                       "cross_entropy_value_and_grad: target has label 5 at (1,1,1), outside "
                       "[0, 5) and not ignore_index -100",
                       Error);
  o.reduction = Reduction::sum;
  Tensor<float> grad;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, yd, grad, o),
                       doctest::Contains("target has label 5 at (1,1,1)"), Error);
  // The results that stay on the device carry it as NaN: the reduced value, and the loss and
  // gradient of the bad pixel only.
  CHECK(std::isnan(host(cross_entropy(xd, yd, o))[0]));
  o.reduction = Reduction::none;
  const auto loss = host(cross_entropy(xd, yd, o));
  const auto g = host(cross_entropy_backward(xd, yd, dev(Tensor<float>::full(s.without(1), 1)), o));
  for (int64_t i = 0; i < loss.numel(); ++i) {
    CAPTURE(i);
    CHECK(std::isnan(loss[i]) == (i == 21 || i == 30));
  }
  for (int64_t c = 0; c < 5; ++c) {
    CHECK(std::isnan(g[(1 * 5 + c) * 16 + 5]));
    CHECK(std::isfinite(g[(1 * 5 + c) * 16 + 4]));
  }
  // ignore_negative makes -3 ignored; 5 is still bad
  o.ignore_negative = true;
  o.reduction = Reduction::mean;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, yd, o),
                       doctest::Contains("label 5 at (1,1,1), outside [0, 5) and not ignore_index "
                                         "-100 (negative labels are ignored)"),
                       Error);
  // the device stays usable after a bad label
  const auto good = dev(labels<int64_t>(s.without(1), 5, 19));
  CHECK(std::isfinite(cross_entropy_value_and_grad(xd, good, CrossEntropyOptions<float>{}).value));
}

TEST_CASE("cuda cross_entropy: probability targets, CPU parity, C = 21 and 40, 1D, 2D, 3D") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("C = 21 float 2D") {
    check_probability_options<float>(Shape{2, 21, 17, 13}, 31);
  }
  SUBCASE("C = 21 double 2D") {
    check_probability_options<double>(Shape{2, 21, 9, 7}, 32);
  }
  SUBCASE("C = 40 float 1D (above the register bound)") {
    check_probability_options<float>(Shape{2, 40, 99}, 33);
  }
  SUBCASE("C = 40 double 3D") {
    check_probability_options<double>(Shape{2, 40, 3, 4, 5}, 34);
  }
}

TEST_CASE("cuda cross_entropy: probability targets, CPU parity, C = 1, 2, 5, 32") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("C = 1 float") {
    check_probability_options<float>(Shape{2, 1, 5, 5}, 35);
  }
  SUBCASE("C = 1 double") {
    check_probability_options<double>(Shape{3, 1, 7}, 36);
  }
  SUBCASE("C = 2 float 3D") {
    check_probability_options<float>(Shape{2, 2, 3, 5, 7}, 37);
  }
  SUBCASE("C = 2 double") {
    check_probability_options<double>(Shape{4, 2, 5, 5}, 38);
  }
  SUBCASE("C = 5 double 1D") {
    check_probability_options<double>(Shape{3, 5, 101}, 39);
  }
  SUBCASE("C = 32 float") {
    check_probability_options<float>(Shape{1, 32, 7, 7}, 40);
  }
}

TEST_CASE("cuda cross_entropy: probability targets, a grid-stride size, in place, NaN targets") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("large") {
    const Shape s{1, 3, 2048, 2049};  // above 16384 blocks of 256: a grid-stride loop
    CrossEntropyOptions<float> o;
    o.label_smoothing = 0.1;
    o.weight = testing::uniform<float>(Shape{3}, 41, 0.5, 2.0);
    check_parity(testing::randn<float>(s, 42, 2.0), soft_targets<float>(s, 43), o);
  }
  SUBCASE("in place: grad is the logits") {
    for (int64_t c : {int64_t{5}, int64_t{40}}) {  // registers and walks
      CAPTURE(c);
      const Shape s{2, c, 6, 7};
      CrossEntropyOptions<double> o;
      o.label_smoothing = 0.2;
      check_in_place(testing::randn<double>(s, 44, 2.0), dev(soft_targets<double>(s, 45)), o);
    }
  }
  SUBCASE("a NaN target stays in its pixel") {
    const Shape s{1, 3, 2, 2};
    const auto x = testing::randn<float>(s, 46);
    auto q = soft_targets<float>(s, 47);
    q[1 * 4 + 2] = NAN;  // class 1 of pixel 2
    CrossEntropyOptions<float> o;
    o.reduction = Reduction::none;
    check_parity(x, q, o);
    const auto loss = host(cross_entropy(dev(x), dev(q), o));
    for (int64_t i = 0; i < 4; ++i) CHECK(std::isnan(loss[i]) == (i == 2));
  }
}

TEST_CASE("cuda cross_entropy: a grad that overlaps the probability target is refused") {
  // As on the CPU (test_cross_entropy.cpp): the kernels read a pixel's targets again for its
  // gradient, so a grad sharing the target's memory is refused before anything is enqueued.
  SEGLOSS_REQUIRE_GPU();
  const Shape s{1, 3, 2, 2};
  const int64_t n = s.numel();
  const auto x = dev(testing::randn<float>(s, 48));
  auto buffer = Tensor<float>::zeros(Shape{2 * n}, Device::cuda);
  for (int64_t at : {int64_t(0), int64_t(5)}) {
    CAPTURE(at);
    const auto q = Tensor<float>::view(buffer.data() + at, s, Device::cuda);
    auto grad = Tensor<float>::view(buffer.data(), s, Device::cuda);
    CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, q, grad),
                         "cross_entropy_value_and_grad: grad overlaps target; pass a buffer "
                         "apart from it",
                         Error);
    auto value = Tensor<float>::zeros(Shape{}, Device::cuda);
    CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, q, grad, value),
                         doctest::Contains("grad overlaps target"), Error);
  }
}

TEST_CASE("cuda cross_entropy: probability targets, bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  for (int64_t c : {int64_t{21}, int64_t{40}}) {  // registers and walks
    CAPTURE(c);
    const Shape s{2, c, 67, 61};
    const auto xd = dev(testing::randn<float>(s, 48, 3.0));
    const auto qd = dev(soft_targets<float>(s, 49));
    CrossEntropyOptions<float> o;
    o.weight = dev(testing::uniform<float>(Shape{c}, 50, 0.5, 2.0));
    o.label_smoothing = 0.1;
    const auto first = cross_entropy_value_and_grad(xd, qd, o);
    const auto g0 = host(first.grad);
    o.reduction = Reduction::none;
    const auto l0 = host(cross_entropy(xd, qd, o));
    for (int run = 1; run < 10; ++run) {
      o.reduction = Reduction::mean;
      const auto r = cross_entropy_value_and_grad(xd, qd, o);
      CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
      CHECK(testing::same_bits(r.grad, g0));
      o.reduction = Reduction::none;
      CHECK(testing::same_bits(cross_entropy(xd, qd, o), l0));
    }
  }
}

TEST_CASE("cross_entropy: value_and_grad into a value tensor equals the double form (CPU)") {
  const Shape s{2, 4, 3, 5};
  const auto x = testing::randn<double>(s, 21);
  const auto y = labels<int32_t>(s.without(1), 4, 22, 0.2);
  CrossEntropyOptions<double> o;
  o.label_smoothing = 0.1;
  Tensor<double> grad, value;
  cross_entropy_value_and_grad(x, y, grad, value, o);
  const auto want = cross_entropy_value_and_grad(x, y, o);
  CHECK(value.shape() == Shape{});
  CHECK(value[0] == want.value);
  for (int64_t i = 0; i < grad.numel(); ++i) CHECK(grad[i] == want.grad[i]);
  auto two = Tensor<double>::zeros(Shape{2});
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, grad, two, o),
                       "cross_entropy_value_and_grad: value (2) must hold one element", Error);
  o.reduction = Reduction::none;
  Tensor<double> v2;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, grad, v2, o),
                       doctest::Contains("reduction none has no single value"), Error);
}

TEST_CASE("cuda cross_entropy: mixed devices and unsupported targets are errors") {
  // Checked before any CUDA call: runs without a GPU (the pointer is never dereferenced).
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 3, 2, 2};
  const auto xd = testing::unread_cuda_view<float>(s);
  const auto y = labels<int64_t>(s.without(1), 3, 20);
  CHECK_THROWS_WITH_AS(cross_entropy(xd, y), doctest::Contains("target"), Error);
  const auto yd = testing::unread_cuda_view<int64_t>(s.without(1));
  CrossEntropyOptions<float> o;
  o.weight = Tensor<float>::full(Shape{3}, 1.0f);  // on the CPU
  CHECK_THROWS_WITH_AS(cross_entropy(xd, yd, o), doctest::Contains("weight"), Error);
  // Probability targets: the options of labels keep their defaults, as on the CPU; the target
  // is on the logits' device and shaped like them.
  const auto q = testing::unread_cuda_view<float>(s);
  CrossEntropyOptions<float> p;
  p.ignore_index = 1;
  CHECK_THROWS_WITH_AS(cross_entropy(xd, q, p),
                       "cross_entropy: options.ignore_index is 1; with probability targets it "
                       "must be negative (it applies to label targets only; PyTorch refuses "
                       "ignore_index >= 0 for a floating point target)",
                       Error);
  p = CrossEntropyOptions<float>::pytorch_fcn();
  CHECK_THROWS_WITH_AS(cross_entropy_backward(xd, q, testing::unread_cuda_view<float>(Shape{}), p),
                       doctest::Contains("apply to label targets only"), Error);
  Tensor<float> grad;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, q, grad, p),
                       doctest::Contains("apply to label targets only"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(xd, testing::unread_cuda_view<float>(Shape{1, 2, 2, 2})),
                       doctest::Contains("(probabilities) does not match logits (1,3,2,2)"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(xd, Tensor<float>::zeros(s)), doctest::Contains("target"),
                       Error);
}
