// softmax_dice, softmax_jaccard and softmax_tversky on CUDA against the CPU: every entry point
// (forward, backward, both value_and_grad forms) for every option the CUDA path supports, label
// targets int32 and int64 and probability targets, float (1e-5 relative) and double (1e-12);
// bitwise determinism over 10 runs; bad labels through the error flag; the options CUDA does
// not cover are errors naming them. The tests that need a GPU skip with a message when none is
// present; the argument checks run in every build with the CUDA backend.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#include <segloss/core/cuda_internal.hpp>

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

template <class T>
struct SDice {
  using O = SoftmaxOverlapOptions<T>;
  template <class U>
  Tensor<T> forward(const Tensor<T>& x, const Tensor<U>& y, const O& o, OverlapInfo* i) const {
    return softmax_dice(x, y, o, i);
  }
  template <class U>
  Tensor<T> backward(const Tensor<T>& x, const Tensor<U>& y, const Tensor<T>& g, const O& o) const {
    return softmax_dice_backward(x, y, g, o);
  }
  template <class U>
  double vg(const Tensor<T>& x, const Tensor<U>& y, Tensor<T>& g, const O& o) const {
    return softmax_dice_value_and_grad(x, y, g, o);
  }
  template <class U>
  ValueAndGrad<T> vg2(const Tensor<T>& x, const Tensor<U>& y, const O& o) const {
    return softmax_dice_value_and_grad(x, y, o);
  }
};

template <class T>
struct SJaccard {
  using O = SoftmaxOverlapOptions<T>;
  template <class U>
  Tensor<T> forward(const Tensor<T>& x, const Tensor<U>& y, const O& o, OverlapInfo* i) const {
    return softmax_jaccard(x, y, o, i);
  }
  template <class U>
  Tensor<T> backward(const Tensor<T>& x, const Tensor<U>& y, const Tensor<T>& g, const O& o) const {
    return softmax_jaccard_backward(x, y, g, o);
  }
  template <class U>
  double vg(const Tensor<T>& x, const Tensor<U>& y, Tensor<T>& g, const O& o) const {
    return softmax_jaccard_value_and_grad(x, y, g, o);
  }
  template <class U>
  ValueAndGrad<T> vg2(const Tensor<T>& x, const Tensor<U>& y, const O& o) const {
    return softmax_jaccard_value_and_grad(x, y, o);
  }
};

template <class T>
struct STversky {
  using O = SoftmaxTverskyOptions<T>;
  template <class U>
  Tensor<T> forward(const Tensor<T>& x, const Tensor<U>& y, const O& o, OverlapInfo* i) const {
    return softmax_tversky(x, y, o, i);
  }
  template <class U>
  Tensor<T> backward(const Tensor<T>& x, const Tensor<U>& y, const Tensor<T>& g, const O& o) const {
    return softmax_tversky_backward(x, y, g, o);
  }
  template <class U>
  double vg(const Tensor<T>& x, const Tensor<U>& y, Tensor<T>& g, const O& o) const {
    return softmax_tversky_value_and_grad(x, y, g, o);
  }
  template <class U>
  ValueAndGrad<T> vg2(const Tensor<T>& x, const Tensor<U>& y, const O& o) const {
    return softmax_tversky_value_and_grad(x, y, o);
  }
};

// Every entry point of one loss on both devices, with one target (labels or probabilities).
// og: the same options with their tensors (class_weight) on the GPU.
template <class T, class U, class Loss, class O>
void check_parity_all(const Loss& loss, const Tensor<T>& x, const Tensor<U>& y, const O& o,
                      const O& og) {
  const double t = tol<T>();
  const Tensor<T> xd = gpu(x);
  const Tensor<U> yd = gpu(y);
  OverlapInfo info_cpu, info_gpu;
  const Tensor<T> f = loss.forward(x, y, o, &info_cpu);
  const Tensor<T> fd = loss.forward(xd, yd, og, &info_gpu);
  CHECK(fd.device() == Device::cuda);
  check_parity(f, fd, t, "forward");
  CHECK(info_gpu.kept == info_cpu.kept);
  CHECK(info_gpu.skipped == info_cpu.skipped);
  const Tensor<T> go = o.reduction == Reduction::none ? uniform<T>(f.shape(), 91, 0.5, 2.0)
                                                      : Tensor<T>::full(Shape{}, T(0.75));
  check_parity(loss.backward(x, y, go, o), loss.backward(xd, yd, gpu(go), og), t, "backward");
  if (o.reduction == Reduction::none) return;
  Tensor<T> g, gd;
  const double v = loss.vg(x, y, g, o);
  const double vd = loss.vg(xd, yd, gd, og);
  CHECK(gd.device() == Device::cuda);
  check_parity(v, vd, t, "value_and_grad value");
  check_parity(g, gd, t, "value_and_grad grad");
  const auto r = loss.vg2(xd, yd, og);
  CHECK(r.value == vd);
  CHECK(same_bits(r.grad, gd));
}
template <class T, class U, class Loss, class O>
void check_parity_all(const Loss& loss, const Tensor<T>& x, const Tensor<U>& y, const O& o) {
  check_parity_all(loss, x, y, o, o);
}

// The finalize's options (class_weight, empty, gamma, log, clamp), alone and together, for every
// reduction; the target (labels or probabilities) leaves some (image, class) empty.
template <class T, class U, class Loss>
void check_finalize_options(const Loss& loss, const Tensor<T>& x, const Tensor<U>& y) {
  using O = typename Loss::O;
  const int64_t C = x.shape()[1];
  const auto cw = uniform<T>(Shape{C}, 77, 0.2, 2.0);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (int k = 0; k < kFinalizeOptionCases; ++k) {
      CAPTURE(reduction_name(r));
      CAPTURE(k);
      const O o = finalize_option_case<O>(k, C, r, cw);
      O og = o;
      og.class_weight = gpu(o.class_weight);
      check_parity_all(loss, x, y, o, og);
    }
}

// Labels of C classes with class C - 1 absent from image 0 and class 1 from every image.
template <class U>
Tensor<U> labels_with_absent(const Shape& s, int64_t C, uint64_t seed) {
  auto y = labels<U>(s, C, seed, 0.1, -100);
  const int64_t S = s.numel_from(1);
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t i = 0; i < S; ++i) {
      U& v = y[n * S + i];
      if (v == 1 || (n == 0 && v == C - 1)) v = 0;
    }
  return y;
}

// Probabilities (N, C, S) with the same classes absent (0), the rest renormalized.
template <class T>
Tensor<T> probs_with_absent(const Shape& s, uint64_t seed) {
  auto p = uniform<T>(s, seed, 0.0, 1.0);
  const int64_t N = s[0], C = s[1], S = s.numel_from(2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        T& v = p[(n * C + c) * S + i];
        if (c == 1 || (n == 0 && c == C - 1)) v = T(0);
        sum += static_cast<double>(v);
      }
      for (int64_t c = 0; c < C; ++c) p[(n * C + c) * S + i] /= static_cast<T>(sum);
    }
  return p;
}

template <class T, class Loss>
void check_finalize(const Loss& loss, const Shape& s, uint64_t seed) {
  const int64_t C = s[1];
  const auto x = randn<T>(s, seed, 2.0);
  SUBCASE("int64 labels, some ignored") {
    check_finalize_options(loss, x, labels_with_absent<int64_t>(s.without(1), C, seed + 1));
  }
  SUBCASE("int32 labels") {
    check_finalize_options(loss, x, labels_with_absent<int32_t>(s.without(1), C, seed + 2));
  }
  SUBCASE("probabilities") {
    check_finalize_options(loss, x, probs_with_absent<T>(s, seed + 3));
  }
}

// The options CUDA supports, each on its own and some together, for every reduction.
template <class T, class U, class Loss>
void check_options(const Loss& loss, const Tensor<T>& x, const Tensor<U>& y, bool tversky) {
  using O = typename Loss::O;
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(reduction_name(r));
    O o;
    o.reduction = r;
    check_parity_all(loss, x, y, o);
    O p = o;
    p.per_image = false;
    check_parity_all(loss, x, y, p);
    if (x.shape()[1] > 1) {
      O b = o;
      b.include_background = false;
      check_parity_all(loss, x, y, b);
    }
    O sm = o;
    sm.smooth_nr = 0.5;
    sm.smooth_dr = 2.0;
    check_parity_all(loss, x, y, sm);
    if (!tversky) {
      O sq = o;
      sq.squared = true;
      check_parity_all(loss, x, y, sq);
      sq.per_image = false;
      sq.smooth_nr = 0;
      check_parity_all(loss, x, y, sq);
    }
  }
}

template <class T, class Loss>
void check_loss(const Loss& loss, const Shape& s, uint64_t seed, bool tversky = false) {
  const int64_t C = s[1];
  const auto x = randn<T>(s, seed, 2.0);
  SUBCASE("int64 labels, some ignored") {
    check_options(loss, x, labels<int64_t>(s.without(1), C, seed + 1, 0.2, -100), tversky);
  }
  SUBCASE("int32 labels") {
    check_options(loss, x, labels<int32_t>(s.without(1), C, seed + 2), tversky);
  }
  SUBCASE("ignore_index a class") {
    typename Loss::O o;
    o.ignore_index = C - 1;
    check_parity_all(loss, x, labels<int64_t>(s.without(1), C, seed + 3), o);
    o.reduction = Reduction::none;
    check_parity_all(loss, x, labels<int32_t>(s.without(1), C, seed + 4), o);
  }
  SUBCASE("probabilities") {
    check_options(loss, x, uniform<T>(s, seed + 5, 0.0, 1.0), tversky);
  }
}

}  // namespace

TEST_CASE("cuda softmax_dice: CPU parity, every option, float and double") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float 2D C = 4") {
    check_loss<float>(SDice<float>{}, Shape{2, 4, 17, 19}, 1);
  }
  SUBCASE("double 3D C = 3") {
    check_loss<double>(SDice<double>{}, Shape{1, 3, 5, 6, 7}, 2);
  }
  SUBCASE("float 1D C = 2, N = 3") {
    check_loss<float>(SDice<float>{}, Shape{3, 2, 40}, 3);
  }
}

TEST_CASE("cuda softmax_jaccard: CPU parity, every option, float and double") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float 2D C = 5") {
    check_loss<float>(SJaccard<float>{}, Shape{2, 5, 13, 11}, 4);
  }
  SUBCASE("double 2D C = 3") {
    check_loss<double>(SJaccard<double>{}, Shape{2, 3, 9, 8}, 5);
  }
}

TEST_CASE("cuda softmax_tversky: CPU parity, alpha and beta, every option") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float, default alpha = beta = 0.5") {
    check_loss<float>(STversky<float>{}, Shape{2, 4, 12, 10}, 6, true);
  }
  SUBCASE("double, alpha 0.3 beta 0.7") {
    const Shape s{2, 3, 7, 9};
    const auto x = randn<double>(s, 7, 2.0);
    const auto y = labels<int64_t>(s.without(1), 3, 8, 0.1);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      SoftmaxTverskyOptions<double> o;
      o.reduction = r;
      o.alpha = 0.3;
      o.beta = 0.7;
      check_parity_all(STversky<double>{}, x, y, o);
      o.per_image = false;
      o.include_background = false;
      check_parity_all(STversky<double>{}, x, y, o);
    }
  }
}

TEST_CASE("cuda softmax overlap: C = 1, C = 21, C = 200, a 1x1 image, several blocks per image") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("C = 1") {
    const Shape s{2, 1, 5, 5};
    check_parity_all(SDice<double>{}, randn<double>(s, 9), labels<int64_t>(s.without(1), 1, 10),
                     SoftmaxOverlapOptions<double>{});
  }
  SUBCASE("C = 21, 1x1") {
    const Shape s{1, 21, 1, 1};
    check_parity_all(SDice<float>{}, randn<float>(s, 11), labels<int64_t>(s.without(1), 21, 12),
                     SoftmaxOverlapOptions<float>{});
  }
  SUBCASE("C = 21, 2 x 100 x 125 (4 parts per image), float and double") {
    const Shape s{2, 21, 100, 125};  // 12,500 pixels: 4 blocks of at least kMinPerBlock
    const auto y = labels<int32_t>(s.without(1), 21, 13, 0.05);
    check_parity_all(SDice<float>{}, randn<float>(s, 14, 3.0), y, SoftmaxOverlapOptions<float>{});
    SoftmaxOverlapOptions<double> o;
    o.squared = true;
    check_parity_all(SJaccard<double>{}, randn<double>(s, 15, 3.0), y, o);
  }
  SUBCASE("C = 200 (the most on CUDA)") {
    const Shape s{1, 200, 9, 7};
    check_parity_all(SDice<float>{}, randn<float>(s, 16), labels<int64_t>(s.without(1), 200, 17),
                     SoftmaxOverlapOptions<float>{});
  }
}

TEST_CASE("cuda softmax overlap: |x| = 1e4 finite, and every pixel ignored") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{1, 3, 2, 2};
  const auto x = Tensor<float>::from({1e4f, -1e4f, 0, 1, -1e4f, 1e4f, 0, 2, 0, 0, 1e4f, 3}, s);
  const auto y = Tensor<int64_t>::from({0, 0, 2, 1}, s.without(1));
  check_parity_all(SDice<float>{}, x, y, SoftmaxOverlapOptions<float>{});
  const auto r = softmax_dice_value_and_grad(gpu(x), gpu(y));
  CHECK(std::isfinite(r.value));
  for (float g : r.grad.to(Device::cpu)) CHECK(std::isfinite(g));
  const auto all = Tensor<int64_t>::full(s.without(1), -100);
  check_parity_all(SDice<float>{}, x, all, SoftmaxOverlapOptions<float>{});
  for (float g : softmax_dice_value_and_grad(gpu(x), gpu(all)).grad.to(Device::cpu))
    CHECK(g == 0.0f);
}

TEST_CASE("cuda softmax overlap: bitwise identical value and gradient over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 21, 70, 61};  // 4,270 pixels: 2 blocks per image
  const auto xd = gpu(randn<float>(s, 18, 3.0));
  const auto yd = gpu(labels<int32_t>(s.without(1), 21, 19, 0.05));
  SoftmaxTverskyOptions<float> o;
  o.alpha = 0.3;
  o.beta = 0.7;
  const auto first = softmax_tversky_value_and_grad(xd, yd, o);
  const auto f0 = softmax_dice(xd, yd);
  for (int run = 1; run < 10; ++run) {
    const auto r = softmax_tversky_value_and_grad(xd, yd, o);
    CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
    CHECK(same_bits(r.grad, first.grad));
    CHECK(same_bits(softmax_dice(xd, yd), f0));
  }
}

TEST_CASE("cuda softmax overlap: a bad label makes value_and_grad raise and device results NaN") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto xd = gpu(randn<float>(s, 20));
  auto y = labels<int64_t>(s.without(1), 5, 21);
  y[21] = 5;  // image 1, (1, 1)
  y[30] = -3;
  const auto yd = gpu(y);
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xd, yd),
                       "softmax_dice_value_and_grad: target has label 5 at (1,1,1), outside "
                       "[0, 5) and not ignore_index -100",
                       Error);
  Tensor<float> grad;
  CHECK_THROWS_WITH_AS(softmax_jaccard_value_and_grad(xd, yd, grad),
                       doctest::Contains("target has label 5 at (1,1,1)"), Error);
  CHECK(std::isnan(softmax_dice(xd, yd).to(Device::cpu)[0]));
  SoftmaxOverlapOptions<float> o;
  o.reduction = Reduction::none;
  const auto scores = softmax_dice(xd, yd, o).to(Device::cpu);  // (N, C): image 1 only
  for (int64_t c = 0; c < 5; ++c) {
    CHECK(std::isfinite(scores[c]));
    CHECK(std::isnan(scores[5 + c]));
  }
  // the device stays usable after a bad label
  const auto good = gpu(labels<int64_t>(s.without(1), 5, 22));
  CHECK(std::isfinite(softmax_dice_value_and_grad(xd, good).value));
}

TEST_CASE("cuda softmax_dice: CPU parity for the finalize's options, float and double") {
  SEGLOSS_REQUIRE_GPU();
  check_finalize<float>(SDice<float>{}, Shape{2, 4, 9, 11}, 700);
  check_finalize<double>(SDice<double>{}, Shape{3, 3, 7, 5, 3}, 710);
}

TEST_CASE("cuda softmax_jaccard and softmax_tversky: CPU parity for the finalize's options") {
  SEGLOSS_REQUIRE_GPU();
  check_finalize<float>(SJaccard<float>{}, Shape{2, 4, 9, 11}, 720);
  check_finalize<double>(SJaccard<double>{}, Shape{2, 5, 40}, 730);
  check_finalize<float>(STversky<float>{}, Shape{2, 4, 9, 11}, 740);
  check_finalize<double>(STversky<double>{}, Shape{2, 3, 6, 7}, 750);
}

TEST_CASE("cuda softmax overlap: the finalize's options are bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{3, 21, 65, 63};
  const auto xd = gpu(randn<float>(s, 760, 3.0));
  const auto yd = gpu(labels_with_absent<int32_t>(s.without(1), 21, 761));
  SoftmaxOverlapOptions<float> o;
  o.class_weight = gpu(uniform<float>(Shape{21}, 762, 0.2, 2.0));
  o.empty = EmptyPolicy::skip;
  o.log = true;
  SoftmaxOverlapOptions<float> q = o;
  q.log = false;
  q.gamma = 1.5;
  q.empty = EmptyPolicy::one;
  for (const auto& opt : {o, q}) {
    const auto first = softmax_dice_value_and_grad(xd, yd, opt);
    for (int run = 1; run < 10; ++run) {
      const auto r = softmax_dice_value_and_grad(xd, yd, opt);
      CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
      CHECK(same_bits(r.grad, first.grad));
    }
  }
}

TEST_CASE("cuda softmax overlap: a bad class weight raises on a host value, NaN on the device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 5, 4};
  const auto xd = gpu(randn<float>(s, 770));
  const auto yd = gpu(labels<int64_t>(s.without(1), 3, 771));
  SoftmaxOverlapOptions<float> o;
  auto cw = Tensor<float>::full({3}, 1.0f);
  cw[2] = -0.5f;
  o.class_weight = gpu(cw);
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xd, yd, o),
                       "softmax_dice_value_and_grad: options.class_weight holds a negative or "
                       "non-finite value (checked on the device)",
                       Error);
  CHECK(std::isnan(softmax_jaccard(xd, yd, o).to(Device::cpu)[0]));
  cw[2] = std::nanf("");
  o.class_weight = gpu(cw);
  for (float g :
       softmax_dice_backward(xd, yd, gpu(Tensor<float>::full(Shape{}, 1.0f)), o).to(Device::cpu))
    CHECK(std::isnan(g));
  CHECK(std::isfinite(softmax_dice_value_and_grad(xd, yd).value));
}

TEST_CASE("cuda softmax overlap: options CUDA does not cover are errors naming them") {
  // Checked before any CUDA call: runs without a GPU (the pointers are never dereferenced).
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 3, 2, 2};
  const auto xd = unread_cuda_view<float>(s);
  const auto yd = unread_cuda_view<int64_t>(s.without(1));
  SoftmaxOverlapOptions<float> o;
  o.class_weight = Tensor<float>::full({3}, 1.0f);  // on CUDA, class_weight is a CUDA tensor
  CHECK_THROWS_WITH_AS(softmax_dice(xd, yd, o),
                       "softmax_dice: options.class_weight (3) is on device cpu, but logits are "
                       "on cuda: every tensor of a call must be on one device",
                       Error);
  o.class_weight = unread_cuda_view<float>({4});
  CHECK_THROWS_WITH_AS(softmax_tversky_value_and_grad(xd, yd, SoftmaxTverskyOptions<float>{o}),
                       doctest::Contains("class_weight (4) must have shape (3)"), Error);
  // mixed devices
  CHECK_THROWS_WITH_AS(softmax_dice(xd, labels<int64_t>(s.without(1), 3, 23)),
                       doctest::Contains("target"), Error);
}

namespace {

template <class T>
struct Gdl {
  using O = GeneralizedDiceOptions<T>;
  template <class U>
  Tensor<T> forward(const Tensor<T>& x, const Tensor<U>& y, const O& o, OverlapInfo* i) const {
    if (i) *i = OverlapInfo{};  // generalized Dice reports no OverlapInfo
    return generalized_dice(x, y, o);
  }
  template <class U>
  Tensor<T> backward(const Tensor<T>& x, const Tensor<U>& y, const Tensor<T>& g, const O& o) const {
    return generalized_dice_backward(x, y, g, o);
  }
  template <class U>
  double vg(const Tensor<T>& x, const Tensor<U>& y, Tensor<T>& g, const O& o) const {
    return generalized_dice_value_and_grad(x, y, g, o);
  }
  template <class U>
  ValueAndGrad<T> vg2(const Tensor<T>& x, const Tensor<U>& y, const O& o) const {
    return generalized_dice_value_and_grad(x, y, o);
  }
};

// Every weight type, per image or for the batch, with or without the background, every
// reduction; the target has a class absent (its infinite weight becomes the largest finite one).
template <class T, class U>
void gdl_options(const Tensor<T>& x, const Tensor<U>& y) {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (GeneralizedDiceWeight w : {GeneralizedDiceWeight::square, GeneralizedDiceWeight::simple,
                                    GeneralizedDiceWeight::uniform})
      for (bool per_image : {true, false})
        for (bool background : {true, false}) {
          CAPTURE(reduction_name(r));
          CAPTURE(static_cast<int>(w));
          CAPTURE(per_image);
          CAPTURE(background);
          GeneralizedDiceOptions<T> o;
          o.reduction = r;
          o.w_type = w;
          o.per_image = per_image;
          o.include_background = background;
          check_parity_all(Gdl<T>{}, x, y, o);
        }
}

}  // namespace

TEST_CASE("cuda generalized_dice: CPU parity, every option, labels and probabilities") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float 2D C = 4, int64 labels with ignored pixels, class 3 absent from image 0") {
    const Shape s{2, 4, 11, 13};
    auto y = labels<int64_t>(s.without(1), 3, 30, 0.1);  // classes 0..2 only in image 0
    const auto y1 = labels<int64_t>(s.without(1), 4, 31);
    for (int64_t i = 143; i < 286; ++i) y[i] = y1[i];  // image 1 has every class
    gdl_options(randn<float>(s, 32, 2.0), y);
  }
  SUBCASE("double 3D C = 3, int32 labels") {
    const Shape s{2, 3, 4, 5, 3};
    gdl_options(randn<double>(s, 33, 2.0), labels<int32_t>(s.without(1), 3, 34));
  }
  SUBCASE("float probabilities") {
    const Shape s{2, 3, 9, 7};
    gdl_options(randn<float>(s, 35, 2.0), uniform<float>(s, 36, 0.0, 1.0));
  }
  SUBCASE("ignore_index a class, several blocks per image") {
    const Shape s{2, 21, 200, 201};
    GeneralizedDiceOptions<float> o;
    o.ignore_index = 20;
    check_parity_all(Gdl<float>{}, randn<float>(s, 37, 3.0), labels<int64_t>(s.without(1), 21, 38),
                     o);
  }
}

TEST_CASE("cuda generalized_dice: bitwise determinism, and a bad label raises") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 5, 4, 4};
  const auto xd = gpu(randn<float>(s, 39));
  const auto good = gpu(labels<int64_t>(s.without(1), 5, 40));
  const auto first = generalized_dice_value_and_grad(xd, good);
  for (int run = 1; run < 10; ++run) {
    const auto r = generalized_dice_value_and_grad(xd, good);
    CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
    CHECK(same_bits(r.grad, first.grad));
  }
  auto y = labels<int64_t>(s.without(1), 5, 41);
  y[21] = 7;
  CHECK_THROWS_WITH_AS(generalized_dice_value_and_grad(xd, gpu(y)),
                       "generalized_dice_value_and_grad: target has label 7 at (1,1,1), outside "
                       "[0, 5) and not ignore_index -100",
                       Error);
  CHECK(std::isnan(generalized_dice(xd, gpu(y)).to(Device::cpu)[0]));
}

// The staged passes (labels, C <= 32 in float, 16 in double: backends/cuda/softmax_overlap.cu,
// staged_stats_kernel and staged_grad_kernel) against the passes that walk the class axis in
// memory (turned on by cuda::detail::set_softmax_overlap_staging(false)): from the same sums (the
// split's finalize) the same gradient bits; the values of the fused call within the last bits
// (the staged statistics add the same numbers in another order); the same bad-label index.
template <class T>
void staged_against_walk() {
  struct Restore {
    ~Restore() { cuda::detail::set_softmax_overlap_staging(true); }
  } restore;
  const double close = sizeof(T) == 4 ? 2e-6 : 1e-14;
  const std::vector<int64_t> classes =
      sizeof(T) == 4 ? std::vector<int64_t>{2, 5, 8, 9, 21, 32} : std::vector<int64_t>{3, 16};
  for (int64_t C : classes)
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(C);
      CAPTURE(variant);
      const Shape s{3, C, 37, 41};  // 1,517 pixels: 6 tiles, the last one partial
      const auto xd = gpu(randn<T>(s, 300 + C, 3.0));
      const auto yd = gpu(labels<int64_t>(s.without(1), C, 310 + C, 0.1, -100));
      SoftmaxOverlapOptions<T> o;
      o.squared = variant == 1;
      o.per_image = variant != 2;
      o.include_background = variant != 1;
      double v[2];
      Tensor<T> g[2], gs[2];
      OverlapStatistics st;
      for (int staged = 0; staged < 2; ++staged) {
        cuda::detail::set_softmax_overlap_staging(staged == 1);
        v[staged] = softmax_dice_value_and_grad(xd, yd, g[staged], o);
        if (staged == 0) st = softmax_dice_statistics(xd, yd, o);  // the walk's sums for both
        softmax_dice_finalize(xd, yd, st, gs[staged], o);
      }
      CHECK(same_bits(gs[0], gs[1]));
      check_parity(v[0], v[1], close, "value");
      check_parity(g[0].to(Device::cpu), g[1], close, "gradient");
    }
  // A bad label (the smallest index is reported) and an ignored pixel, either way.
  const Shape s{2, 5, 30, 20};
  const auto xd = gpu(randn<T>(s, 320));
  auto y = labels<int64_t>(s.without(1), 5, 321);
  y[600 + 301] = 9;  // image 1, (15, 1)
  y[600 + 77] = -4;  // image 1, (3, 17): the first
  y[5] = -100;
  const auto yd = gpu(y);
  for (int staged = 0; staged < 2; ++staged) {
    CAPTURE(staged);
    cuda::detail::set_softmax_overlap_staging(staged == 1);
    CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xd, yd),
                         "softmax_dice_value_and_grad: target has label -4 at (1,3,17), outside "
                         "[0, 5) and not ignore_index -100",
                         Error);
    CHECK(std::isnan(softmax_dice(xd, yd).to(Device::cpu)[0]));
  }
  // Two bad labels in one warp (pixels 35 and 40 of image 1: lanes 3 and 8 of warp 1): only the
  // statistics pass reports them in the split's statistics, through the warp's lowest bad lane.
  auto y2 = labels<int64_t>(s.without(1), 5, 322);
  y2[600 + 40] = 6;
  y2[600 + 35] = 8;  // (1, 1, 15): the first
  const auto y2d = gpu(y2);
  for (int staged = 0; staged < 2; ++staged) {
    CAPTURE(staged);
    cuda::detail::set_softmax_overlap_staging(staged == 1);
    CHECK_THROWS_WITH_AS(softmax_dice_statistics(xd, y2d),
                         doctest::Contains("target has label 8 at (1,1,15), outside [0, 5)"),
                         Error);
    CHECK_THROWS_WITH_AS(generalized_dice_statistics(xd, y2d),
                         doctest::Contains("target has label 8 at (1,1,15), outside [0, 5)"),
                         Error);
  }
}

TEST_CASE("cuda softmax overlap: the staged passes agree with the passes that walk the classes") {
  SEGLOSS_REQUIRE_GPU();
  staged_against_walk<float>();
  staged_against_walk<double>();
}

TEST_CASE("cuda workspace_size covers every loss of the backend on the shape") {
  // cross_entropy's workspace (docs/cuda.md: a 256-byte header and status, three arrays of a
  // double per block of 256 pixels, each rounded up to 256 bytes), the confusion matrix's C * C
  // counts, the softmax losses' per-(image, class) sums: all within workspace_size.
  const Shape s{2, 21, 64, 64};
  CHECK(cuda::workspace_size(s) >= 512 + 3 * 256 + 256);  // 32 blocks
  // 12544 blocks: 3 * 100352 bytes of partials.
  CHECK(cuda::workspace_size({16, 21, 448, 448}) >= 512 + 3 * 100352 + 256);
  CHECK(cuda::workspace_size({1, 150, 8, 8}) >= 2 * 256 + 150 * 150 * 8 + 256);
  CHECK(cuda::workspace_size({64, 150, 512, 512}) > cuda::workspace_size({1, 150, 8, 8}));
  SEGLOSS_REQUIRE_GPU();
  const auto xd = gpu(randn<float>(s, 42));
  const auto yd = gpu(labels<int64_t>(s.without(1), 21, 43, 0.1));
  const double dice = softmax_dice_value_and_grad(xd, yd).value;
  const double gdl = generalized_dice_value_and_grad(xd, yd).value;
  const double focal = softmax_focal_value_and_grad(xd, yd).value;
  const double ce = cross_entropy_value_and_grad(xd, yd).value;
  const size_t bytes = cuda::workspace_size(s);
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda);
  const size_t pool_before = cuda::pool_bytes();
  cuda::WorkspaceScope scope(ws.data(), bytes);
  CHECK(softmax_dice_value_and_grad(xd, yd).value == dice);
  CHECK(generalized_dice_value_and_grad(xd, yd).value == gdl);
  CHECK(softmax_focal_value_and_grad(xd, yd).value == focal);
  CHECK(cross_entropy_value_and_grad(xd, yd).value == ce);
  CHECK(cuda::pool_bytes() == pool_before);
}

// The finalize in the combine's last block (runtime.cuh combine_then) against a kernel of its own
// (cuda::detail::last_block_tails off): the same bits and the same error, for softmax_dice
// (labels staged and walked, probabilities) and generalized Dice. dirty() runs the loss on other
// targets first, as in test_cuda_losses.cpp's tails_overlap_all.
template <class T>
void tails_softmax_all() {
  for (int64_t C : {int64_t{5}, int64_t{40}}) {
    CAPTURE(C);
    const Shape s = C == 5 ? Shape{3, C, 37, 41} : Shape{2, C, 19, 23};  // the walk is slow here
    const int64_t pixels = s[2] * s[3];
    const auto xd = gpu(randn<T>(s, 330 + C, 3.0));
    auto y = labels<int64_t>(s.without(1), C, 331, 0.1, -100);
    const auto other = gpu(labels<int64_t>(s.without(1), C, 332, 0.3, -100));
    const auto q = gpu(uniform<T>(s, 333, 0.0, 1.0));
    const auto q_other = gpu(uniform<T>(s, 334, 0.0, 1.0));
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(variant);
      SoftmaxOverlapOptions<T> o;
      o.squared = variant == 1;
      o.per_image = variant != 2;
      o.include_background = variant != 1;
      GeneralizedDiceOptions<T> go;
      go.per_image = variant != 2;
      const auto yd = gpu(y);
      check_tails_same_bits([&](std::string&) {
        std::vector<std::vector<uint64_t>> got;
        Tensor<T> g, value;
        (void)softmax_dice_value_and_grad(xd, other, o);
        got.push_back(bits_of(softmax_dice_value_and_grad(xd, yd, g, o)));
        got.push_back(bits_of(g));
        (void)softmax_dice_value_and_grad(xd, other, o);
        softmax_dice_value_and_grad(xd, yd, g, value, o);
        got.push_back(bits_of(value));
        (void)softmax_dice_value_and_grad(xd, q_other, o);
        got.push_back(bits_of(softmax_dice_value_and_grad(xd, q, g, o)));
        got.push_back(bits_of(g));
        (void)generalized_dice_value_and_grad(xd, other, go);
        got.push_back(bits_of(generalized_dice_value_and_grad(xd, yd, g, go)));
        got.push_back(bits_of(g));
        return got;
      });
    }
    y[pixels + 200] = C + 1;  // a bad label: the same error both ways
    const auto yd = gpu(y);
    const std::string error = check_tails_same_bits([&](std::string& e) {
      std::vector<std::vector<uint64_t>> got;
      got.push_back(bits_of(softmax_dice(xd, yd)));
      try {
        (void)softmax_dice_value_and_grad(xd, yd);
      } catch (const Error& err) {
        e = err.what();
      }
      return got;
    });
    const std::string at =
        "at (1," + std::to_string(200 / s[3]) + "," + std::to_string(200 % s[3]) + ")";
    CHECK(error.find(at) != std::string::npos);
  }
}

TEST_CASE(
    "cuda softmax overlap: the finalize in the combine's last block gives its kernel's bits") {
  SEGLOSS_REQUIRE_GPU();
  tails_softmax_all<float>();
  tails_softmax_all<double>();
#if defined(SEGLOSS_TEST_CUDA)
  // The tails are taken: the finalize in the combine, one launch fewer.
  const Shape s{2, 5, 20, 30};
  const auto xd = gpu(randn<float>(s, 340, 3.0));
  const auto yd = gpu(labels<int64_t>(s.without(1), 5, 341));
  Tensor<float> g = Tensor<float>::empty(s, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  CHECK(tail_launches_saved([&] { softmax_dice_value_and_grad(xd, yd, g, value); }) == 1);
  CHECK(tail_launches_saved([&] { generalized_dice_value_and_grad(xd, yd, g, value); }) == 1);
#endif
}
