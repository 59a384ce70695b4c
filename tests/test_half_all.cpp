// float16 and bfloat16 logits for every loss (losses/half_logits.hpp) on the CPU, driven by the
// loss registry: for every entry (every loss and option preset, reductions mean, sum and none,
// int32 and int64 labels, probability targets) the entry's inputs rounded into the 16-bit type
// (registry::HalfProblem), and every public form of the 16-bit call checked against the float
// loss on the widened inputs (tests/half_all_check.hpp): the double value bit for bit, forward,
// backward, gradient and value tensor the float result rounded to nearest even once.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "half_all_check.hpp"

using namespace segloss;
namespace half_all = segloss::testing::half_all;

namespace {

template <class H>
void check_all_entries() {
  size_t entries = 0;
  std::set<std::string> losses;
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    const auto p = half_all::make<H>(e, registry::default_shape(), 7, Device::cpu);
    half_all::check_contract(p);
    ++entries;
    losses.insert(e.loss);
  }
  CHECK(entries == registry::entries().size());
  CHECK(entries >= 170);
  CHECK(losses.size() == registry::losses().size());
  MESSAGE(entries, " registry entries (", losses.size(), " losses) with ",
          std::string(half_all::type_name<H>()), " logits");
}

}  // namespace

TEST_CASE_TEMPLATE(
    "half all: every registered loss and preset, value exact and results rounded once", H, float16,
    bfloat16) {
  check_all_entries<H>();
}

// A second shape and seed: 1 spatial axis, N = 1, and 3 spatial axes.
TEST_CASE_TEMPLATE("half all: every registered loss on 1-D and 3-D inputs", H, float16, bfloat16) {
  for (const Shape& s : {Shape{1, 4, 23}, Shape{2, 2, 3, 4, 5}}) {
    for (const auto& e : registry::entries()) {
      CAPTURE(e.name());
      CAPTURE(s);
      half_all::check_contract(half_all::make<H>(e, s, 11, Device::cpu));
    }
  }
}

TEST_CASE_TEMPLATE("half all: the statistics / finalize split of every loss that has one", H,
                   float16, bfloat16) {
  int calls = 0;
  half_all::for_each_split<H>(Device::cpu, [&](auto&&... a) {
    half_all::check_split(a...);
    ++calls;
  });
  CHECK(calls == half_all::kSplitCalls);
}

// The 16-bit call raises the float loss's errors (the function's name, the float message) and
// the buffer errors of the into-buffer forms.
TEST_CASE_TEMPLATE("half all: errors are the float loss's", H, float16, bfloat16) {
  const Shape s{2, 3, 4, 4};
  const auto x = to_half<H>(Tensor<float>::full(s, 0.5f));
  const auto bad = to_half<H>(Tensor<float>::full(Shape{2, 3, 4, 5}, 1.0f));
  CHECK_THROWS_WITH_AS(soft_jaccard(x, bad), doctest::Contains("soft_jaccard"), Error);
  CHECK_THROWS_WITH_AS(tversky_value_and_grad(x, bad), doctest::Contains("tversky"), Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal_backward(x, x, bad), doctest::Contains("sigmoid_focal"),
                       Error);
  auto labels = Tensor<int64_t>::zeros(Shape{2, 4, 4});
  labels[5] = 7;
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, labels), doctest::Contains("softmax_focal"),
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_softmax(x, labels), doctest::Contains("lovasz_softmax"), Error);
  Tensor<H> g = Tensor<H>::empty(Shape{2, 3, 4, 5}), v;
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(x, Tensor<int32_t>::zeros(Shape{2, 4, 4}), g, v),
                       doctest::Contains("softmax_dice_value_and_grad"), Error);
  Tensor<H> g2, v2 = Tensor<H>::empty(Shape{2});
  CHECK_THROWS_WITH_AS(generalized_dice_value_and_grad(x, x, g2, v2),
                       doctest::Contains("generalized_dice_value_and_grad"), Error);
  TverskyOptions<H> o;
  o.alpha = -1;
  CHECK_THROWS_WITH_AS(tversky(x, x, o), doctest::Contains("alpha"), Error);
}
