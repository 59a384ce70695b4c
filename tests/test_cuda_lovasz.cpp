// lovasz_hinge (and lovasz_softmax) on CUDA against the CPU path of the same call: every form
// (forward with each reduction, backward with a scalar and a per-problem grad_out, both
// value_and_grad forms), per_image both ways, hinge's ignore, float and double. The permutation
// of the sort is the CPU's (a stable sort, ties by pixel index), and g_k is computed with the
// CPU's formulas from integer counts, so the hinge's gradients are checked bit for bit; the losses
// are summed in another order (parity to rounding). Softmax's probabilities differ by an ulp (the
// device's exp): its gradients agree to rounding, except where two float errors tie to an ulp
// and sort the other way round (check_parity_except: a few entries; a GPU run found them). Ties
// (equal logit rows, |x| = 1e4), a segment of several thousand records (every thread of the sort's
// block holds a chunk), NaN logits, bad labels (the CPU's message for a host value, NaN otherwise),
// 10 runs bitwise, the workspace.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

// The loss values agree to rounding; the gradients have the CPU's bits.
template <class T>
void check_hinge(const Tensor<T>& x, const Tensor<T>& t, const LovaszHingeOptions<T>& o) {
  const double tl = tol<T>();
  const Tensor<T> xd = gpu(x), td = gpu(t);
  const Tensor<T> f = lovasz_hinge(x, t, o), fd = lovasz_hinge(xd, td, o);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, tl, "forward");
  const int64_t problems = o.per_image ? x.size(0) : 1;
  const Tensor<T> go = o.reduction == Reduction::none ? uniform<T>(Shape{problems}, 91, 0.5, 2.0)
                                                      : Tensor<T>::full(Shape{}, T(0.75));
  const Tensor<T> b = lovasz_hinge_backward(x, t, go, o);
  const Tensor<T> bd = lovasz_hinge_backward(xd, td, gpu(go), o);
  CHECK(bd.device() == Device::cuda);
  CHECK(same_bits(b, bd));
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = lovasz_hinge_value_and_grad(x, t, g, o);
  const double vd = lovasz_hinge_value_and_grad(xd, td, gd, o);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, tl, "value_and_grad value");
  CHECK(same_bits(g, gd));
  const auto r = lovasz_hinge_value_and_grad(xd, td, o);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
}

template <class T>
void check_hinge_all(const Tensor<T>& x, const Tensor<T>& t, bool with_ignore) {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (bool per_image : {true, false}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(per_image);
      LovaszHingeOptions<T> o;
      o.reduction = r;
      o.per_image = per_image;
      if (with_ignore) o.ignore = 255.0;
      check_hinge(x, t, o);
    }
}

// Labels 0/1 with about `fraction` of them set to 255 (ignored under options.ignore = 255).
template <class T>
Tensor<T> with_ignored(Tensor<T> t, uint64_t seed, double fraction) {
  const auto m = mask<T>(t.shape(), seed, fraction);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (m[i] == T(1)) t[i] = T(255);
  return t;
}

}  // namespace

TEST_CASE_TEMPLATE("cuda lovasz_hinge: CPU parity, every form, reduction, per_image and ignore", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  for (const Shape& s : {Shape{3, 2, 7, 9}, Shape{2, 1, 5, 4, 3}, Shape{4, 1, 33}}) {
    CAPTURE(s);
    const auto x = randn<T>(s, 1, 2.0);
    const auto t = mask<T>(s, 2);
    check_hinge_all(x, t, false);
    check_hinge_all(x, with_ignored(t, 3, 0.2), true);
  }
  // An image without a foreground pixel, one all ignored, one with every error <= 0.
  const Shape s{3, 1, 6, 5};
  auto x = randn<T>(s, 4, 2.0);
  auto t = with_ignored(mask<T>(s, 5), 6, 0.3);
  for (int64_t i = 0; i < 30; ++i) {
    t[i] = T(0);
    t[30 + i] = T(255);
    t[60 + i] = T(i % 2);
    x[60 + i] = t[60 + i] == T(1) ? T(3) : T(-2);
  }
  check_hinge_all(x, t, true);
}

TEST_CASE_TEMPLATE("cuda lovasz_hinge: ties keep pixel order (quantized logits, |x| = 1e4)", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 24, 25};
  auto x = randn<T>(s, 7, 1.0);
  for (auto& v : x) v = static_cast<T>(std::round(static_cast<double>(v) * 2.0) / 2.0);
  const auto t = mask<T>(s, 8, 0.5);
  check_hinge_all(x, t, false);
  auto big = uniform<T>(s, 9, -1.0, 1.0);
  for (auto& v : big) v = v < T(0) ? T(-1e4) : T(1e4);
  check_hinge_all(big, t, false);
  check_hinge_all(big, with_ignored(t, 10, 0.25), true);
}

TEST_CASE_TEMPLATE("cuda lovasz_hinge: a segment of several thousand records", T, float, double) {
  SEGLOSS_REQUIRE_GPU();
  // One problem of 2 x 3 x 40 x 30 = 7200 pixels (28 per thread of the block), most kept.
  const Shape s{2, 3, 40, 30};
  const auto x = randn<T>(s, 11, 1.5);
  const auto t = mask<T>(s, 12);
  for (Reduction r : {Reduction::mean, Reduction::none}) {
    LovaszHingeOptions<T> o;
    o.per_image = false;
    o.reduction = r;
    check_hinge(x, t, o);
    o.per_image = true;
    check_hinge(x, t, o);
  }
}

TEST_CASE_TEMPLATE("cuda lovasz_hinge: NaN logits as on the CPU, 10 runs bitwise", T, float,
                   double) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 12, 10};
  auto x = randn<T>(s, 13, 2.0);
  const auto t = mask<T>(s, 14);
  x[7] = static_cast<T>(NAN);
  LovaszHingeOptions<T> o;
  const Tensor<T> xd = gpu(x), td = gpu(t);
  Tensor<T> g, gd;
  const double v = lovasz_hinge_value_and_grad(x, t, g, o);
  const double vd = lovasz_hinge_value_and_grad(xd, td, gd, o);
  CHECK(std::isnan(v));
  CHECK(std::isnan(vd));
  CHECK(same_bits(g, gd));  // the NaN pixel's entry is -s g_1, finite, as on the CPU
  o.reduction = Reduction::none;
  const auto f = lovasz_hinge(x, t, o).to(Device::cpu);
  const auto fd = lovasz_hinge(xd, td, o).to(Device::cpu);
  CHECK(std::isnan(static_cast<double>(fd[0])));
  CHECK(static_cast<double>(fd[1]) == doctest::Approx(static_cast<double>(f[1])).epsilon(tol<T>()));

  // Determinism: the same bits on every run (many ties, a batch problem and per image).
  auto q = randn<T>(Shape{2, 2, 30, 31}, 15, 1.0);
  for (auto& v2 : q) v2 = static_cast<T>(std::round(static_cast<double>(v2) * 4.0) / 4.0);
  const auto qd = gpu(q), qt = gpu(with_ignored(mask<T>(q.shape(), 16), 17, 0.1));
  for (bool per_image : {true, false}) {
    LovaszHingeOptions<T> oo;
    oo.per_image = per_image;
    oo.ignore = 255.0;
    Tensor<T> g0;
    const double v0 = lovasz_hinge_value_and_grad(qd, qt, g0, oo);
    for (int run = 0; run < 10; ++run) {
      Tensor<T> g1;
      const double v1 = lovasz_hinge_value_and_grad(qd, qt, g1, oo);
      CHECK(std::memcmp(&v0, &v1, sizeof v0) == 0);
      CHECK(same_bits(g0, g1));
    }
  }
}

TEST_CASE("cuda lovasz_hinge: a bad label raises the CPU's message or gives NaN") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{3, 1, 6, 7};
  const auto x = randn<double>(s, 18, 2.0);
  auto t = mask<double>(s, 19);
  t[50] = 2.0;  // image 1
  t[55] = 3.0;  // image 1 too, later: the first one is reported
  const auto xd = gpu(x), td = gpu(t);
  for (bool ignore : {false, true}) {
    LovaszHingeOptions<double> o;
    if (ignore) o.ignore = 255.0;
    std::string cpu_message;
    try {
      lovasz_hinge_value_and_grad(x, t, o);
    } catch (const Error& e) {
      cpu_message = e.what();
    }
    REQUIRE(!cpu_message.empty());
    CHECK_THROWS_WITH_AS(lovasz_hinge_value_and_grad(xd, td, o), cpu_message.c_str(), Error);
    Tensor<double> g;
    CHECK_THROWS_WITH_AS(lovasz_hinge_value_and_grad(xd, td, g, o), cpu_message.c_str(), Error);
    // grad being the labels (accepted): the bad label is still read intact for the message.
    Tensor<double> over = td.clone();
    CHECK_THROWS_WITH_AS(lovasz_hinge_value_and_grad(xd, over, over, o), cpu_message.c_str(),
                         Error);
    // No wait in the forward and backward: NaN where the bad label is (its problem only).
    CHECK(std::isnan(lovasz_hinge(xd, td, o).to(Device::cpu)[0]));
    o.reduction = Reduction::none;
    const auto f = lovasz_hinge(xd, td, o).to(Device::cpu);
    CHECK_FALSE(std::isnan(f[0]));
    CHECK(std::isnan(f[1]));
    CHECK_FALSE(std::isnan(f[2]));
    const auto b =
        lovasz_hinge_backward(xd, td, gpu(Tensor<double>::full(Shape{3}, 1.0)), o).to(Device::cpu);
    CHECK_FALSE(std::isnan(b[0]));
    CHECK(std::isnan(b[42]));
    CHECK(std::isnan(b[83]));
    CHECK_FALSE(std::isnan(b[84]));
  }
}

TEST_CASE("cuda lovasz: the workspace (pool and a caller's buffer) and mixed devices") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 20, 21};
  const auto x = gpu(randn<float>(s, 20, 2.0)), t = gpu(mask<float>(s, 21));
  Tensor<float> g = Tensor<float>::empty(s, Device::cuda);
  const double v = lovasz_hinge_value_and_grad(x, t, g);
  const size_t warm = cuda::pool_bytes();
  for (int i = 0; i < 3; ++i) CHECK(lovasz_hinge_value_and_grad(x, t, g) == v);
  CHECK(cuda::pool_bytes() == warm);
  const size_t bytes = cuda::lovasz_workspace_size(s);
  CHECK(bytes >= static_cast<size_t>(s.numel()) * 24);
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda);
  {
    cuda::WorkspaceScope scope(ws.data(), bytes);
    CHECK(lovasz_hinge_value_and_grad(x, t, g) == v);
    CHECK(cuda::pool_bytes() == warm);
    cuda::WorkspaceScope small(ws.data(), 4096);
    CHECK_THROWS_WITH_AS(lovasz_hinge_value_and_grad(x, t, g),
                         doctest::Contains("lovasz_hinge_value_and_grad: the caller's workspace "
                                           "holds"),
                         Error);
  }
  CHECK_THROWS_WITH_AS(lovasz_hinge(x, mask<float>(s, 21)),
                       "lovasz_hinge: target (2,1,20,21) is on device cpu, but logits are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_hinge_backward(x, t, Tensor<float>::full(Shape{}, 1.f)),
                       "lovasz_hinge_backward: grad_out () is on device cpu, but logits are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
}

// ---- lovasz_softmax ----

namespace {

// The losses agree to rounding; the gradients too (the device's exp is not the CPU's SIMD exp:
// p differs by an ulp, the permutation and dL/dp are the same where errors do not nearly tie).
template <class T, class L>
void check_softmax(const Tensor<T>& x, const Tensor<L>& y, const LovaszSoftmaxOptions<T>& o,
                   bool exact_grad = false, bool no_near_ties = false) {
  const double tl = sizeof(T) == 4 ? 1e-5 : 1e-11;
  const Tensor<T> xd = gpu(x);
  const Tensor<L> yd = gpu(y);
  const Tensor<T> f = lovasz_softmax(x, y, o), fd = lovasz_softmax(xd, yd, o);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, tl, "forward");
  const int64_t problems = o.per_image ? x.size(0) : 1;
  const Tensor<T> go = o.reduction == Reduction::none ? uniform<T>(Shape{problems}, 92, 0.5, 2.0)
                                                      : Tensor<T>::full(Shape{}, T(1.25));
  const Tensor<T> b = lovasz_softmax_backward(x, y, go, o);
  const Tensor<T> bd = lovasz_softmax_backward(xd, yd, gpu(go), o);
  CHECK(bd.device() == Device::cuda);
  // float: near-ties may sort the other way round on the device (check_parity_except), unless
  // the inputs have none.
  const bool swaps = sizeof(T) == 4 && !exact_grad && !no_near_ties;
  const int64_t most = lovasz_swap_allowance(b.numel(), x.size(1));
  if (swaps)
    check_parity_except(b, bd, tl, most, "backward");
  else
    check_parity(b, bd, tl, "backward");
  if (exact_grad) CHECK(same_bits(b, bd));
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = lovasz_softmax_value_and_grad(x, y, g, o);
  const double vd = lovasz_softmax_value_and_grad(xd, yd, gd, o);
  CHECK(gd.device() == Device::cuda);
  if (std::isnan(v))
    CHECK(std::isnan(vd));
  else
    check_parity(v, vd, tl, "value_and_grad value");
  if (swaps)
    check_parity_except(g, gd, tl, most, "value_and_grad grad");
  else
    check_parity(g, gd, tl, "value_and_grad grad");
  if (exact_grad) {
    const Tensor<T> gh = gd.to(Device::cpu);
    for (int64_t i = 0; i < g.numel(); ++i)
      if (std::memcmp(&g[i], &gh[i], sizeof(T)) != 0) {
        INFO("first differing gradient entry ", i, ": cpu ", g[i], " cuda ", gh[i]);
        CHECK(false);
        break;
      }
  }
  const auto r = lovasz_softmax_value_and_grad(xd, yd, o);
  CHECK(std::memcmp(&r.value, &vd, sizeof vd) == 0);
  CHECK(same_bits(r.grad, gd));
}

template <class T, class L>
void check_softmax_options(const Tensor<T>& x, const Tensor<L>& y, bool exact_grad = false) {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (bool per_image : {false, true}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(per_image);
      LovaszSoftmaxOptions<T> o;
      o.reduction = r;
      o.per_image = per_image;
      check_softmax(x, y, o, exact_grad);
      if (r == Reduction::sum) continue;  // the options below with mean and none
      o.classes = LovaszClasses::all;
      check_softmax(x, y, o, exact_grad);
      o.class_list = {2, 0};
      check_softmax(x, y, o, exact_grad);
      o.class_list.clear();
      o.classes = LovaszClasses::present;
      o.ignore_index = 1;  // a class's pixels ignored (and the pixels of -100 labelled 1)
      Tensor<L> y1 = y.clone();
      for (auto& v : y1) v = v == L(-100) ? L(1) : v;
      check_softmax(x, y1, o, exact_grad);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("cuda lovasz_softmax: CPU parity, every form, reduction and class option", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  for (const Shape& s : {Shape{2, 4, 6, 8}, Shape{3, 3, 5, 7}, Shape{2, 3, 2, 3, 4}}) {
    CAPTURE(s);
    const auto x = randn<T>(s, 31, 2.0);
    // Labels with ignored pixels; image 0 of the first shape lacks class 3 (absent class).
    auto y = labels<int64_t>(s.without(1), s[1], 32, 0.15);
    const int64_t S = s.numel_from(2);
    for (int64_t i = 0; i < S; ++i)
      if (y[i] == 3) y[i] = 1;
    if (s.rank() == 4 && s[1] == 4) {  // every option on one shape
      check_softmax_options(x, y);
    } else {  // the default classes, every reduction and per_image both ways
      for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
        LovaszSoftmaxOptions<T> o;
        o.reduction = r;
        check_softmax(x, y, o);
        o.per_image = true;
        check_softmax(x, y, o);
      }
    }
    LovaszSoftmaxOptions<T> o;  // int32 labels
    check_softmax(x, cast<int32_t>(y), o);
    o.per_image = true;
    o.classes = LovaszClasses::all;
    o.reduction = Reduction::none;
    check_softmax(x, cast<int32_t>(y), o);
  }
}

TEST_CASE(
    "cuda lovasz_softmax: ties (equal rows, |x| = 1e4, a palette of rows), an image ignored") {
  SEGLOSS_REQUIRE_GPU();
  // Rows of equal logits (a different value per pixel): p = 1/4 exactly on both devices, every
  // error is 3/4 (ground truth) or 1/4, so the order is pixel order within each: the gradients
  // have the CPU's bits only if the permutation is the CPU's.
  const Shape s{2, 4, 16, 32};  // 1024 records per class in the batch problem (4 per thread)
  const int64_t S = 512;
  auto x = Tensor<double>::empty(s);
  const auto v = randn<double>(Shape{2, S}, 33, 3.0);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t i = 0; i < S; ++i) x[(n * 4 + c) * S + i] = v[n * S + i];
  auto y = labels<int64_t>(s.without(1), 4, 34, 0.1);
  for (int64_t i = 0; i < 40; ++i) y[S + i] = -100;
  for (bool per_image : {false, true}) {
    LovaszSoftmaxOptions<double> o;
    o.per_image = per_image;
    check_softmax(x, y, o, true);
    o.classes = LovaszClasses::all;
    check_softmax(x, y, o, true);
    o.reduction = Reduction::none;
    check_softmax(x, y, o, true);
  }
  // |x| = 1e4: probabilities 0, 1/2, 1 and many tied errors; an image all ignored. (The CPU's
  // SIMD exp gives a denormal for exp(-2e4) where the device gives 0: parity to rounding.)
  auto big = uniform<double>(s, 35, -1.0, 1.0);
  for (auto& b : big) b = b < 0 ? -1e4 : 1e4;
  auto yi = y.clone();
  for (int64_t i = 0; i < S; ++i) yi[S + i] = -100;  // image 1 all ignored
  for (bool per_image : {false, true}) {
    LovaszSoftmaxOptions<double> o;
    o.per_image = per_image;
    check_softmax(big, yi, o);
    o.reduction = Reduction::none;
    check_softmax(big, yi, o);
  }
  // Many equal errors in float: every pixel's logits one of 6 rows, so equal errors come from
  // equal rows, computed alike on each device, and errors of different rows are far apart (the
  // rows are random). (Rows of independently quantized logits tie only to an ulp when they are
  // permutations of each other: a GPU run sorted such near-ties the other way round.)
  const auto palette = randn<float>(Shape{6, 4}, 35, 1.0);
  auto q = Tensor<float>::empty(s);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < S; ++i) {
      const int64_t row = (i * 7 + n * 3 + i / 5) % 6;
      for (int64_t c = 0; c < 4; ++c) q[(n * 4 + c) * S + i] = palette[row * 4 + c];
    }
  LovaszSoftmaxOptions<float> of;
  check_softmax(q, cast<int32_t>(y), of, false, true);
  of.per_image = true;
  check_softmax(q, cast<int32_t>(y), of, false, true);
}

// Saturated pixels (tests/test_lovasz.cpp has the same inputs against double): the top logit
// leads by 20 or 30, the label's or, at every fifth pixel with `wrong`, another class's; float's
// 1 - p rounds to 0 or 1 there. The device's q = 1 - p_max, its keys from 1 - e for errors above
// 1/2 and its Jacobian shifted by G_r agree with the CPU's. Errors well apart: no near ties.
TEST_CASE("cuda lovasz_softmax: saturated pixels as on the CPU") {
  SEGLOSS_REQUIRE_GPU();
  const int64_t N = 2, C = 3, S = 1021;
  const Shape s{N, C, 1, S};
  const auto y = labels<int64_t>(s.without(1), C, 38, 0.0);
  for (bool wrong : {false, true})
    for (double lead : {20.0, 30.0}) {
      CAPTURE(wrong);
      CAPTURE(lead);
      auto x = Tensor<float>::zeros(s);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t top = wrong && i % 5 == 3 ? (y[n * S + i] + 1) % C : y[n * S + i];
          x[(n * C + top) * S + i] = static_cast<float>(lead + (2.0 * i + 0.5 * n) / 1024);
        }
      for (bool per_image : {false, true}) {
        CAPTURE(per_image);
        LovaszSoftmaxOptions<float> o;
        o.per_image = per_image;
        check_softmax(x, y, o, false, true);
      }
    }
}

TEST_CASE_TEMPLATE("cuda lovasz_softmax: segments of several thousand records, 10 runs bitwise", T,
                   float, double) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 2, 50, 60};  // one problem: 6000 records per class
  const auto x = randn<T>(s, 36, 1.5);
  const auto y = labels<int32_t>(s.without(1), 2, 37, 0.05);
  LovaszSoftmaxOptions<T> o;
  check_softmax(x, y, o);
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  Tensor<T> g0;
  const double v0 = lovasz_softmax_value_and_grad(xd, yd, g0, o);
  for (int run = 0; run < 10; ++run) {
    Tensor<T> g1;
    const double v1 = lovasz_softmax_value_and_grad(xd, yd, g1, o);
    CHECK(std::memcmp(&v0, &v1, sizeof v0) == 0);
    CHECK(same_bits(g0, g1));
  }
}

TEST_CASE("cuda lovasz_softmax: NaN logits, bad labels, in place and class_list limits") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{3, 3, 5, 6};
  auto x = randn<double>(s, 38, 2.0);
  auto y = labels<int64_t>(s.without(1), 3, 39, 0.1);
  x[40] = NAN;  // image 0, class 1, pixel 10
  LovaszSoftmaxOptions<double> o;
  o.per_image = true;
  o.reduction = Reduction::none;
  check_softmax(x, y, o);  // NaN where the CPU has NaN (image 0), parity elsewhere
  o.reduction = Reduction::mean;
  check_softmax(x, y, o);
  x[40] = 0.5;
  y[35] = 3;  // image 1
  y[40] = -7;
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  std::string cpu_message;
  try {
    lovasz_softmax_value_and_grad(x, y, o);
  } catch (const Error& e) {
    cpu_message = e.what();
  }
  REQUIRE(!cpu_message.empty());
  CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(xd, yd, o), cpu_message.c_str(), Error);
  CHECK(std::isnan(lovasz_softmax(xd, yd, o).to(Device::cpu)[0]));
  o.reduction = Reduction::none;
  const auto f = lovasz_softmax(xd, yd, o).to(Device::cpu);
  CHECK_FALSE(std::isnan(f[0]));
  CHECK(std::isnan(f[1]));
  CHECK_FALSE(std::isnan(f[2]));
  const auto b =
      lovasz_softmax_backward(xd, yd, gpu(Tensor<double>::full(Shape{3}, 1.0)), o).to(Device::cpu);
  CHECK_FALSE(std::isnan(b[0]));
  CHECK(std::isnan(b[90]));
  CHECK_FALSE(std::isnan(b[180]));
  o.reduction = Reduction::mean;
  const auto good = gpu(labels<int64_t>(s.without(1), 3, 40));
  Tensor<double> in_place = xd.clone();
  CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(in_place, good, in_place, o),
                       "lovasz_softmax_value_and_grad: grad is the logits; lovasz_softmax needs a "
                       "separate grad buffer (its softmax Jacobian step reads the logits after "
                       "dL/dp was written into grad)",
                       Error);
}
