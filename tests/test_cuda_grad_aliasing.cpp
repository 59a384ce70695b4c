// tests/test_grad_aliasing.cpp on CUDA: a caller's grad buffer in device memory that shares it
// with the target (or a per-pixel weight) instead of the logits. The overlap checks run on the
// host before the dispatch, so the offsets are refused on CUDA as on the CPU; what only a device
// run shows is the placement the CPU accepts, the grad exactly over the target (or the weight):
// each CUDA gradient pass must read an element's inputs before it stores its gradient over them,
// so the result must be the separate buffer's, bit for bit.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using segloss::testing::gpu;
using segloss::testing::same_bits;

namespace {

// f(x, t, grad) on CUDA with the target t copied to the start of one device buffer and the grad
// at `shift` bytes into it: refused (an Error about the overlap), or the result of a separate
// device grad, bit for bit. Returns whether it was refused.
template <class T, class U, class F>
bool refused_or_same_on_device(const Tensor<T>& x_host, const Tensor<U>& t_host, size_t shift,
                               F&& f) {
  const Tensor<T> x = gpu(x_host);
  const Tensor<U> t = gpu(t_host);
  Tensor<T> apart = Tensor<T>::empty(x.shape(), Device::cuda);
  const double want = f(x, t, apart);
  const size_t t_bytes = static_cast<size_t>(t.numel()) * sizeof(U);
  const size_t g_bytes = static_cast<size_t>(x.numel()) * sizeof(T);
  const int64_t words = static_cast<int64_t>((std::max(t_bytes, shift + g_bytes) + 7) / 8 + 1);
  const Tensor<double> storage = Tensor<double>::empty(Shape{words}, Device::cuda);
  auto* base = reinterpret_cast<unsigned char*>(storage.data());
  const auto tv = Tensor<U>::view(reinterpret_cast<U*>(base), t.shape(), Device::cuda);
  tv.copy_from(t);
  auto gv = Tensor<T>::view(reinterpret_cast<T*>(base + shift), x.shape(), Device::cuda);
  double got = 0;
  try {
    got = f(x, tv, gv);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("overlaps") != std::string::npos);
    return true;
  }
  CHECK(got == want);
  CHECK(same_bits(gv, apart));
  return false;
}

// Whether the CPU refuses the grad exactly over the target.
template <class T, class U, class F>
bool cpu_refuses_exact(const Tensor<T>& x, const Tensor<U>& t, F&& f) {
  Tensor<U> storage = t.to(Device::cpu);
  auto gv = Tensor<T>::view(reinterpret_cast<T*>(storage.data()), x.shape());
  try {
    f(x, storage, gv);
  } catch (const Error&) {
    return true;
  }
  return false;
}

// One element after the target's start: refused. Exactly over it (when the element types
// match): the CPU's decision, and where it accepts, the separate buffer's bits. `exact_accepted`
// is what the CPU is documented to do (docs/conventions.md), checked too.
template <class T, class U, class F>
void check_device_target_aliasing(const char* name, const Tensor<T>& x, const Tensor<U>& t, F&& f,
                                  bool exact_accepted) {
  const std::string loss = name;
  CAPTURE(loss);
  CHECK(refused_or_same_on_device(x, t, sizeof(T), f));
  if (sizeof(T) != sizeof(U)) return;
  CHECK(cpu_refuses_exact(x, t, f) == !exact_accepted);
  CHECK(refused_or_same_on_device(x, t, 0, f) == !exact_accepted);
}

const Shape kShape{2, 3, 8, 10};

}  // namespace

TEST_CASE("cuda grad aliasing: binary losses, grad exactly over the target") {
  SEGLOSS_REQUIRE_GPU();
  const auto x = testing::randn<double>(kShape, 1, 2.0);
  const auto t = testing::mask<double>(kShape, 2);
  const auto each = [&](const char* name, auto f) {
    check_device_target_aliasing(name, x, t, f, /*exact_accepted=*/true);
  };
  each("bce_with_logits",
       [](auto& a, auto& b, auto& g) { return bce_with_logits_value_and_grad(a, b, g); });
  each("sigmoid_focal",
       [](auto& a, auto& b, auto& g) { return sigmoid_focal_value_and_grad(a, b, g); });
  each("soft_dice", [](auto& a, auto& b, auto& g) { return soft_dice_value_and_grad(a, b, g); });
  each("soft_jaccard",
       [](auto& a, auto& b, auto& g) { return soft_jaccard_value_and_grad(a, b, g); });
  each("tversky", [](auto& a, auto& b, auto& g) { return tversky_value_and_grad(a, b, g); });
  each("bce_dice", [](auto& a, auto& b, auto& g) { return bce_dice_value_and_grad(a, b, g); });
  each("lovasz_hinge",
       [](auto& a, auto& b, auto& g) { return lovasz_hinge_value_and_grad(a, b, g); });
  const auto p = testing::uniform<double>(kShape, 3, 0.05, 0.95);
  check_device_target_aliasing(
      "binary_cross_entropy", p, t,
      [](auto& a, auto& b, auto& g) { return binary_cross_entropy_value_and_grad(a, b, g); },
      /*exact_accepted=*/true);
}

TEST_CASE("cuda grad aliasing: multi-class losses, grad over the labels or the probabilities") {
  SEGLOSS_REQUIRE_GPU();
  const auto x = testing::randn<double>(kShape, 4, 2.0);
  const auto y = testing::labels<int64_t>(kShape.without(1), 3, 5);
  const auto q = testing::normalized_uniform<double>(kShape, 6);
  // Labels (int64, the grad's element size) are always refused; probability targets exactly
  // under the grad are accepted by the losses whose passes read them first (the CPU's rule).
  const auto each = [&](const char* name, bool prob_exact, auto f) {
    check_device_target_aliasing((std::string(name) + " (labels)").c_str(), x, y, f, false);
    check_device_target_aliasing((std::string(name) + " (probabilities)").c_str(), x, q, f,
                                 prob_exact);
  };
  each("cross_entropy", false,
       [](auto& a, auto& b, auto& g) { return cross_entropy_value_and_grad(a, b, g); });
  each("softmax_dice", true,
       [](auto& a, auto& b, auto& g) { return softmax_dice_value_and_grad(a, b, g); });
  each("generalized_dice", true,
       [](auto& a, auto& b, auto& g) { return generalized_dice_value_and_grad(a, b, g); });
  each("ce_dice", false, [](auto& a, auto& b, auto& g) { return ce_dice_value_and_grad(a, b, g); });
  check_device_target_aliasing(
      "softmax_focal", x, y,
      [](auto& a, auto& b, auto& g) { return softmax_focal_value_and_grad(a, b, g); }, false);
  check_device_target_aliasing(
      "dice_focal", x, y,
      [](auto& a, auto& b, auto& g) { return dice_focal_value_and_grad(a, b, g); }, false);
  check_device_target_aliasing(
      "lovasz_softmax", x, y,
      [](auto& a, auto& b, auto& g) { return lovasz_softmax_value_and_grad(a, b, g); }, false);
}

TEST_CASE("cuda grad aliasing: a grad exactly over a per-pixel weight") {
  SEGLOSS_REQUIRE_GPU();
  const auto x = testing::randn<double>(kShape, 7, 2.0);
  // The target on the device of the call (the CPU's decision is asked with host tensors).
  const auto th = testing::mask<double>(kShape, 8);
  const auto td = gpu(th);
  const auto target = [&](const Tensor<double>& a) -> const Tensor<double>& {
    return a.device() == Device::cuda ? td : th;
  };
  const auto w = testing::uniform<double>(kShape, 9, 0.5, 2.0);
  const auto weighted = [&](const char* name, auto f, const Tensor<double>& logits) {
    check_device_target_aliasing(
        name, logits, w, [&](auto& a, auto& ww, auto& g) { return f(a, ww, g); }, true);
  };
  weighted(
      "bce_with_logits weight",
      [&](auto& a, auto& ww, auto& g) {
        BceWithLogitsOptions<double> o;
        o.weight = ww;
        return bce_with_logits_value_and_grad(a, target(a), g, o);
      },
      x);
  weighted(
      "sigmoid_focal weight",
      [&](auto& a, auto& ww, auto& g) {
        SigmoidFocalOptions<double> o;
        o.weight = ww;
        return sigmoid_focal_value_and_grad(a, target(a), g, o);
      },
      x);
  weighted(
      "binary_cross_entropy weight",
      [&](auto& a, auto& ww, auto& g) {
        BinaryCrossEntropyOptions<double> o;
        o.weight = ww;
        return binary_cross_entropy_value_and_grad(a, target(a), g, o);
      },
      testing::uniform<double>(kShape, 3, 0.05, 0.95));
  weighted(
      "soft_dice weight",
      [&](auto& a, auto& ww, auto& g) {
        SoftDiceOptions<double> o;
        o.weight = ww;
        return soft_dice_value_and_grad(a, target(a), g, o);
      },
      x);
  weighted(
      "bce_dice weights",
      [&](auto& a, auto& ww, auto& g) {
        BceDiceOptions<double> o;
        o.bce.weight = ww;
        o.dice.weight = ww;
        return bce_dice_value_and_grad(a, target(a), g, o);
      },
      x);
}
