// A caller's grad buffer that shares memory with the target (or a weight) instead of the logits.
// Every loss that takes a caller's grad must either refuse it with an Error or give exactly the
// result of a separate buffer: a kernel that reads a target element after storing a gradient
// over it gives a silently wrong result (and over int labels, reads out of bounds). The grad is
// placed at an offset after the target (the stores run ahead of the reads) and exactly on it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

#include "helpers.hpp"

using namespace segloss;

namespace {

// f(x, t, grad) for a target t that lives at the start of a buffer and a grad at `shift` bytes
// into it: refused (an Error about the overlap), or the separate-buffer result exactly. Returns
// whether it was refused.
template <class T, class U, class F>
bool refused_or_same(const Tensor<T>& x, const Tensor<U>& t, size_t shift, F&& f) {
  Tensor<T> apart = Tensor<T>::empty(x.shape());
  const double want = f(x, t, apart);
  const size_t t_bytes = static_cast<size_t>(t.numel()) * sizeof(U);
  const size_t g_bytes = static_cast<size_t>(x.numel()) * sizeof(T);
  std::vector<double> storage((std::max(t_bytes, shift + g_bytes) + 7) / 8 + 1);
  auto* base = reinterpret_cast<unsigned char*>(storage.data());
  std::memcpy(base, t.data(), t_bytes);
  const auto tv = Tensor<U>::view(reinterpret_cast<U*>(base), t.shape());
  auto gv = Tensor<T>::view(reinterpret_cast<T*>(base + shift), x.shape());
  double got = 0;
  try {
    got = f(x, tv, gv);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("overlaps") != std::string::npos);
    return true;
  }
  CHECK(got == want);
  bool same = true;
  for (int64_t i = 0; i < x.numel(); ++i) same = same && gv[i] == apart[i];
  CHECK(same);
  return false;
}

// Every placement: exactly over the target (when the types match: refused, or the same result),
// one element after its start and half-way into it (refused); one and two threads.
template <class T, class U, class F>
void check_target_aliasing(const char* name, const Tensor<T>& x, const Tensor<U>& t, F&& f) {
  for (int threads : {1, 2}) {
    const int before = num_threads();
    set_num_threads(threads);
    std::vector<size_t> shifts{sizeof(T), static_cast<size_t>(t.numel() / 2) * sizeof(U)};
    if (sizeof(T) == sizeof(U)) shifts.push_back(0);
    for (size_t shift : shifts) {
      const std::string loss = name;
      CAPTURE(loss);
      CAPTURE(threads);
      CAPTURE(shift);
      const bool r = refused_or_same(x, t, shift, f);
      if (shift != 0) CHECK(r);  // at an offset: always refused
    }
    set_num_threads(before);
  }
}

const Shape kShape{2, 3, 16, 20};

}  // namespace

TEST_CASE("grad aliasing: binary losses, grad over the target") {
  const auto x = testing::randn<double>(kShape, 1, 2.0);
  const auto t = testing::mask<double>(kShape, 2);
  check_target_aliasing("bce_with_logits", x, t, [](auto& a, auto& b, auto& g) {
    return bce_with_logits_value_and_grad(a, b, g);
  });
  check_target_aliasing("sigmoid_focal", x, t, [](auto& a, auto& b, auto& g) {
    return sigmoid_focal_value_and_grad(a, b, g);
  });
  check_target_aliasing("soft_dice", x, t, [](auto& a, auto& b, auto& g) {
    return soft_dice_value_and_grad(a, b, g);
  });
  check_target_aliasing("tversky", x, t,
                        [](auto& a, auto& b, auto& g) { return tversky_value_and_grad(a, b, g); });
  check_target_aliasing("bce_dice", x, t,
                        [](auto& a, auto& b, auto& g) { return bce_dice_value_and_grad(a, b, g); });
  check_target_aliasing("lovasz_hinge", x, t, [](auto& a, auto& b, auto& g) {
    return lovasz_hinge_value_and_grad(a, b, g);
  });
  const auto p = testing::uniform<double>(kShape, 3, 0.05, 0.95);
  check_target_aliasing("binary_cross_entropy", p, t, [](auto& a, auto& b, auto& g) {
    return binary_cross_entropy_value_and_grad(a, b, g);
  });
}

TEST_CASE("grad aliasing: multi-class losses, grad over the labels or the probabilities") {
  const auto x = testing::randn<double>(kShape, 4, 2.0);
  const auto y = testing::labels<int64_t>(kShape.without(1), 3, 5);
  const auto q = testing::normalized_uniform<double>(kShape, 6);
  const auto each = [&](const std::string& name, auto f) {
    check_target_aliasing((name + " (labels)").c_str(), x, y, f);
    check_target_aliasing((name + " (probabilities)").c_str(), x, q, f);
  };
  each("cross_entropy",
       [](auto& a, auto& b, auto& g) { return cross_entropy_value_and_grad(a, b, g); });
  each("softmax_dice",
       [](auto& a, auto& b, auto& g) { return softmax_dice_value_and_grad(a, b, g); });
  each("generalized_dice",
       [](auto& a, auto& b, auto& g) { return generalized_dice_value_and_grad(a, b, g); });
  each("ce_dice", [](auto& a, auto& b, auto& g) { return ce_dice_value_and_grad(a, b, g); });
  check_target_aliasing("softmax_focal", x, y, [](auto& a, auto& b, auto& g) {
    return softmax_focal_value_and_grad(a, b, g);
  });
  check_target_aliasing("dice_focal", x, y, [](auto& a, auto& b, auto& g) {
    return dice_focal_value_and_grad(a, b, g);
  });
  check_target_aliasing("lovasz_softmax", x, y, [](auto& a, auto& b, auto& g) {
    return lovasz_softmax_value_and_grad(a, b, g);
  });
}

TEST_CASE("grad aliasing: a grad over a weight is refused at an offset, exactly is the same") {
  // The per-pixel weights of the logits' shape may be the grad exactly (each weight is read
  // before its element's gradient is stored); per-class weights and any offset are refused.
  const auto x = testing::randn<double>(kShape, 7, 2.0);
  const auto t = testing::mask<double>(kShape, 8);
  const auto w = testing::uniform<double>(kShape, 9, 0.5, 2.0);
  const auto weighted = [&](const char* name, auto f) {
    check_target_aliasing(name, x, w, [&](auto& a, auto& ww, auto& g) { return f(a, ww, g); });
  };
  weighted("bce_with_logits weight", [&](auto& a, auto& ww, auto& g) {
    BceWithLogitsOptions<double> o;
    o.weight = ww;
    return bce_with_logits_value_and_grad(a, t, g, o);
  });
  weighted("sigmoid_focal weight", [&](auto& a, auto& ww, auto& g) {
    SigmoidFocalOptions<double> o;
    o.weight = ww;
    return sigmoid_focal_value_and_grad(a, t, g, o);
  });
  weighted("soft_dice weight", [&](auto& a, auto& ww, auto& g) {
    SoftDiceOptions<double> o;
    o.weight = ww;
    return soft_dice_value_and_grad(a, t, g, o);
  });
  weighted("bce_dice weights", [&](auto& a, auto& ww, auto& g) {
    BceDiceOptions<double> o;
    o.bce.weight = ww;
    o.dice.weight = ww;
    return bce_dice_value_and_grad(a, t, g, o);
  });
  const auto y = testing::labels<int64_t>(kShape.without(1), 3, 10);
  std::vector<double> storage(static_cast<size_t>(kShape.numel()));
  auto grad = Tensor<double>::view(storage.data(), kShape);
  const auto per_class = Tensor<double>::view(storage.data() + 11, Shape{3});
  CrossEntropyOptions<double> ce;
  ce.weight = per_class;
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, grad, ce),
                       doctest::Contains("grad overlaps options.weight"), Error);
  SoftmaxFocalOptions<double> sf;
  sf.alpha = per_class;
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, y, grad, sf),
                       doctest::Contains("grad overlaps options.alpha"), Error);
  SoftmaxOverlapOptions<double> sd;
  sd.class_weight = per_class;
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(x, y, grad, sd),
                       doctest::Contains("grad overlaps options.class_weight"), Error);
  BceWithLogitsOptions<double> pw;
  pw.pos_weight = per_class;
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(x, t, grad, pw),
                       doctest::Contains("grad overlaps options.pos_weight"), Error);
}

// The value of the _value_and_grad(x, t, grad, value) forms is written last: inside grad it
// replaced a gradient element with the loss, inside the logits or target it wrote into an input,
// with no error (a reviewer's case). Each placement is refused; a value apart works.
TEST_CASE("value aliasing: a value inside grad, the logits or the target is refused") {
  const auto x = testing::randn<double>(kShape, 11, 2.0);
  const auto t = testing::mask<double>(kShape, 12);
  const auto y = testing::labels<int64_t>(kShape.without(1), 3, 13);
  std::vector<double> x_copy(x.begin(), x.end()), t_copy(t.begin(), t.end());
  const auto xv = Tensor<double>::view(x_copy.data(), kShape);
  const auto tv = Tensor<double>::view(t_copy.data(), kShape);
  std::vector<double> g_storage(static_cast<size_t>(kShape.numel()));
  auto gv = Tensor<double>::view(g_storage.data(), kShape);
  // f(logits, probability target, label target, grad, value)
  using F = std::function<void(const Tensor<double>&, const Tensor<double>&, const Tensor<int64_t>&,
                               Tensor<double>&, Tensor<double>&)>;
  const std::vector<std::pair<const char*, F>> losses = {
      {"bce_with_logits", [](auto& a, auto& b, auto&, auto& g,
                             auto& v) { bce_with_logits_value_and_grad(a, b, g, v); }},
      {"soft_dice",
       [](auto& a, auto& b, auto&, auto& g, auto& v) { soft_dice_value_and_grad(a, b, g, v); }},
      {"bce_dice",
       [](auto& a, auto& b, auto&, auto& g, auto& v) { bce_dice_value_and_grad(a, b, g, v); }},
      {"sigmoid_focal",
       [](auto& a, auto& b, auto&, auto& g, auto& v) { sigmoid_focal_value_and_grad(a, b, g, v); }},
      {"lovasz_hinge",
       [](auto& a, auto& b, auto&, auto& g, auto& v) { lovasz_hinge_value_and_grad(a, b, g, v); }},
      {"cross_entropy",
       [](auto& a, auto&, auto& l, auto& g, auto& v) { cross_entropy_value_and_grad(a, l, g, v); }},
      {"cross_entropy (probabilities)",
       [](auto& a, auto& b, auto&, auto& g, auto& v) { cross_entropy_value_and_grad(a, b, g, v); }},
      {"softmax_dice",
       [](auto& a, auto&, auto& l, auto& g, auto& v) { softmax_dice_value_and_grad(a, l, g, v); }},
      {"generalized_dice", [](auto& a, auto&, auto& l, auto& g,
                              auto& v) { generalized_dice_value_and_grad(a, l, g, v); }},
      {"softmax_focal",
       [](auto& a, auto&, auto& l, auto& g, auto& v) { softmax_focal_value_and_grad(a, l, g, v); }},
      {"lovasz_softmax", [](auto& a, auto&, auto& l, auto& g,
                            auto& v) { lovasz_softmax_value_and_grad(a, l, g, v); }},
      {"ce_dice",
       [](auto& a, auto&, auto& l, auto& g, auto& v) { ce_dice_value_and_grad(a, l, g, v); }},
      {"dice_focal",
       [](auto& a, auto&, auto& l, auto& g, auto& v) { dice_focal_value_and_grad(a, l, g, v); }},
  };
  for (const auto& [name, f] : losses) {
    const std::string loss = name;
    CAPTURE(loss);
    const bool probs = loss.find("probabilities") != std::string::npos;
    const bool labels = !probs && loss.find("softmax") != std::string::npos;
    const bool multi = probs || labels || loss == "cross_entropy" || loss == "generalized_dice" ||
                       loss == "ce_dice" || loss == "dice_focal";
    // A value apart: no error, the inputs untouched.
    auto apart = Tensor<double>::empty(Shape{});
    f(xv, tv, y, gv, apart);
    CHECK(std::equal(x_copy.begin(), x_copy.end(), x.begin()));
    CHECK(std::equal(t_copy.begin(), t_copy.end(), t.begin()));
    auto in_grad = Tensor<double>::view(g_storage.data() + 5, Shape{});
    CHECK_THROWS_WITH_AS(f(xv, tv, y, gv, in_grad), doctest::Contains("value overlaps grad"),
                         Error);
    auto in_logits = Tensor<double>::view(x_copy.data() + 5, Shape{});
    CHECK_THROWS_WITH_AS(f(xv, tv, y, gv, in_logits), doctest::Contains("value overlaps logits"),
                         Error);
    if (!multi || probs) {
      auto in_target = Tensor<double>::view(t_copy.data() + 5, Shape{});
      CHECK_THROWS_WITH_AS(f(xv, tv, y, gv, in_target), doctest::Contains("value overlaps target"),
                           Error);
    }
    CHECK(std::equal(x_copy.begin(), x_copy.end(), x.begin()));  // nothing written
    CHECK(std::equal(t_copy.begin(), t_copy.end(), t.begin()));
  }
}

// 16-bit logits (losses/half_logits.hpp) run the float loss on copies and round the gradient
// into the caller's grad at the end: a grad over the labels or an option tensor did not change
// the result, but it was not refused and the rounding wrote into the caller's input (a
// reviewer's report, through the C API). Now refused as in the float losses.
TEST_CASE_TEMPLATE("grad aliasing: 16-bit logits refuse a grad over the target or an option", H,
                   float16, bfloat16) {
  const Shape s{1, 3, 2, 4};
  const auto x = to_half<H>(testing::randn<float>(s, 81));
  // int32 labels and a 16-bit grad in one buffer: grad starts at label 2.
  std::vector<int32_t> storage(64, 1);
  const auto y = Tensor<int32_t>::view(storage.data(), s.without(1));
  auto grad = Tensor<H>::view(reinterpret_cast<H*>(storage.data() + 2), s);
  const std::vector<int32_t> before(storage.begin(), storage.begin() + 8);
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, grad),
                       doctest::Contains("grad overlaps target; pass a buffer apart from it"),
                       Error);
  auto value = Tensor<H>::empty(Shape{});
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(x, y, grad, value),
                       doctest::Contains("grad overlaps target"), Error);
  CHECK(std::equal(before.begin(), before.end(), storage.begin()));
  // A class weight inside grad.
  auto g2 = Tensor<H>::empty(s);
  CrossEntropyOptions<H> o;
  o.weight = Tensor<H>::view(g2.data() + 5, Shape{3});
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y, g2, o),
                       doctest::Contains("grad overlaps options.weight"), Error);
  // A nested options struct's field is named with its struct, as in the float losses.
  const auto z = to_half<H>(testing::mask<float>(s, 82));
  std::vector<H> wbuf(static_cast<size_t>(2 * s.numel()), H(1.0f));
  BceDiceOptions<H> bd;
  bd.dice.weight = Tensor<H>::view(wbuf.data(), s);
  auto gw = Tensor<H>::view(wbuf.data() + 1, s);
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(x, z, gw, bd),
                       doctest::Contains("grad overlaps options.dice.weight"), Error);
  // The per-pixel weight itself may be grad (every input is read before grad is written), as
  // in the float losses; the value is the one with a separate grad.
  BceWithLogitsOptions<H> bw;
  bw.weight = to_half<H>(testing::uniform<float>(s, 83, 0.5, 2.0));
  const double separate = bce_with_logits_value_and_grad(x, z, bw).value;
  auto same = bw.weight.clone();
  bw.weight = same;
  CHECK(bce_with_logits_value_and_grad(x, z, same, bw) == separate);
  // A target of the logits' type may be grad exactly (read before grad is written), not at an
  // offset.
  const double v = bce_with_logits_value_and_grad(x, z.clone()).value;
  auto zin = z.clone();
  CHECK(bce_with_logits_value_and_grad(x, zin, zin) == v);
  std::vector<H> zbuf(static_cast<size_t>(2 * s.numel()));
  auto zoff = Tensor<H>::view(zbuf.data(), s);
  zoff.copy_from(z);
  auto goff = Tensor<H>::view(zbuf.data() + 3, s);
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(x, zoff, goff),
                       doctest::Contains("grad overlaps target; pass it exactly"), Error);
}

// The value of the device-value forms may not share memory with an option tensor either: on
// CUDA the overlap and combined losses write the value before a later pass reads the class
// weights (a reviewer's case: ce_dice with the value over options.dice.class_weight returned
// 2.7797 instead of 2.8154, with no error), and on the CPU the value overwrote the caller's
// option. Each placement is refused on every device the build has, for float and 16-bit logits.
namespace {
template <class T>
void check_value_over_options(Device device) {
  const Shape s{2, 3, 4, 5};
  const auto x = testing::randn<float>(s, 91, 2.0);
  const auto y = testing::labels<int64_t>(s.without(1), 3, 92);
  const auto t = testing::mask<float>(s, 93);
  auto on = [&](const auto& h) { return device == Device::cpu ? h : h.to(device); };
  const Tensor<T> xt = on(testing::cast<T>(x)), tt = on(testing::cast<T>(t));
  const Tensor<int64_t> yt = on(y);
  // One buffer holding the option tensor; the value at its element 1.
  const Tensor<T> buf = on(testing::cast<T>(testing::uniform<float>(Shape{64}, 94, 0.5, 2.0)));
  const Tensor<T> before = buf.to(Device::cpu);
  const auto per_class = Tensor<T>::view(buf.data(), Shape{3}, device);
  const auto per_pixel = Tensor<T>::view(buf.data(), Shape{1, 1, 1, 5}, device);
  Tensor<T> value = Tensor<T>::view(buf.data() + 1, Shape{}, device), grad;
  auto refused = [&](const char* loss_name, const char* what_name, auto&& f) {
    const std::string loss = loss_name, what = what_name;
    CAPTURE(loss);
    CAPTURE(what);
    const std::string want = std::string("value overlaps ") + what;
    CHECK_THROWS_WITH_AS(f(), doctest::Contains(want.c_str()), Error);
  };
  CeDiceOptions<T> cd;
  cd.dice.class_weight = per_class;
  refused("ce_dice", "options.dice.class_weight",
          [&] { ce_dice_value_and_grad(xt, yt, grad, value, cd); });
  cd = {};
  cd.ce.weight = per_class;
  refused("ce_dice", "options.ce.weight", [&] { ce_dice_value_and_grad(xt, yt, grad, value, cd); });
  DiceFocalOptions<T> df;
  df.focal.alpha = per_class;
  refused("dice_focal", "options.focal.alpha",
          [&] { dice_focal_value_and_grad(xt, yt, grad, value, df); });
  CrossEntropyOptions<T> ce;
  ce.weight = per_class;
  refused("cross_entropy", "options.weight",
          [&] { cross_entropy_value_and_grad(xt, yt, grad, value, ce); });
  SoftmaxOverlapOptions<T> so;
  so.class_weight = per_class;
  refused("softmax_dice", "options.class_weight",
          [&] { softmax_dice_value_and_grad(xt, yt, grad, value, so); });
  SoftmaxFocalOptions<T> sf;
  sf.alpha = per_class;
  refused("softmax_focal", "options.alpha",
          [&] { softmax_focal_value_and_grad(xt, yt, grad, value, sf); });
  SoftDiceOptions<T> sd;
  sd.weight = per_pixel;
  refused("soft_dice", "options.weight",
          [&] { soft_dice_value_and_grad(xt, tt, grad, value, sd); });
  BceWithLogitsOptions<T> bw;
  bw.weight = per_pixel;
  refused("bce_with_logits", "options.weight",
          [&] { bce_with_logits_value_and_grad(xt, tt, grad, value, bw); });
  BceDiceOptions<T> bd;
  bd.dice.weight = per_pixel;
  refused("bce_dice", "options.dice.weight",
          [&] { bce_dice_value_and_grad(xt, tt, grad, value, bd); });
  SigmoidFocalOptions<T> sg;
  sg.weight = per_pixel;
  refused("sigmoid_focal", "options.weight",
          [&] { sigmoid_focal_value_and_grad(xt, tt, grad, value, sg); });
  CHECK(testing::same_bits(buf.to(Device::cpu), before));  // nothing written
  // The same option with the value apart: accepted.
  Tensor<T> apart;
  cd = {};
  cd.dice.class_weight = per_class;
  ce_dice_value_and_grad(xt, yt, grad, apart, cd);
  CHECK(apart.numel() == 1);
}
}  // namespace

TEST_CASE_TEMPLATE("value aliasing: a value over an option tensor is refused", T, float, double,
                   float16, bfloat16) {
  check_value_over_options<T>(Device::cpu);
  if (cuda::available()) check_value_over_options<T>(Device::cuda);
}
