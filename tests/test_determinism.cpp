// Results are bit-identical on 1, 2, 3 and 8 threads, and from run to run.
#include <doctest/doctest.h>

#include <cstring>

#include "helpers.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace segloss;
using segloss::testing::same_bits;

namespace {

template <class Run>
void check_thread_invariance(Run run) {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const auto ref = run();
  for (int threads : testing::thread_counts({1, 2, 3, 8})) {
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
    CAPTURE(threads);
    for (int rep = 0; rep < 2; ++rep) {
      const auto r = run();
      CHECK(std::memcmp(&r.value, &ref.value, sizeof(double)) == 0);
      CHECK(same_bits(r.grad, ref.grad));
    }
  }
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
}

}  // namespace

TEST_CASE("determinism: bce_with_logits, float and double, across thread counts") {
  const Shape s{3, 2, 200, 210};  // 3 chunks per plane, 18 in all
  BceWithLogitsOptions<float> of;
  of.weight = testing::uniform<float>({3, 1, 200, 210}, 3, 0.1, 2.0);
  of.pos_weight = Tensor<float>::from({2.f, 0.5f}, {2});
  const auto xf = testing::randn<float>(s, 1, 3.0), zf = testing::mask<float>(s, 2);
  check_thread_invariance([&] { return bce_with_logits_value_and_grad(xf, zf, of); });
  const auto xd = testing::cast<double>(xf), zd = testing::cast<double>(zf);
  check_thread_invariance([&] { return bce_with_logits_value_and_grad(xd, zd); });
}

TEST_CASE("determinism: soft_dice, per image and batch, across thread counts") {
  const Shape s{3, 2, 200, 210};
  const auto x = testing::randn<float>(s, 4, 2.0), t = testing::mask<float>(s, 5);
  for (bool per_image : {true, false}) {
    SoftDiceOptions<float> o;
    o.per_image = per_image;
    check_thread_invariance([&] { return soft_dice_value_and_grad(x, t, o); });
  }
}

TEST_CASE("determinism: bce_dice with weights, across thread counts") {
  const Shape s{3, 2, 200, 210};
  BceDiceOptions<float> o;
  o.bce.weight = testing::uniform<float>({3, 1, 200, 210}, 8, 0.1, 2.0);
  o.dice.per_image = false;
  const auto x = testing::randn<float>(s, 9, 2.0), t = testing::mask<float>(s, 10);
  check_thread_invariance([&] { return bce_dice_value_and_grad(x, t, o); });
}

TEST_CASE("determinism: cross_entropy with weight, smoothing and ignored pixels") {
  const Shape s{2, 5, 150, 130};  // 2 chunks per image
  const auto x = testing::randn<float>(s, 14, 3.0);
  auto y = Tensor<int64_t>::empty({2, 150, 130});
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = i % 7 == 0 ? -100 : (i * 31) % 5;
  CrossEntropyOptions<float> o;
  o.weight = Tensor<float>::from({0.5f, 2.f, 1.f, 3.f, 0.25f}, {5});
  o.label_smoothing = 0.1;
  check_thread_invariance([&] { return cross_entropy_value_and_grad(x, y, o); });
}

TEST_CASE("determinism: the chunked reduction does not depend on the thread count") {
  // A sum whose float rounding would change with any change of grouping.
  const Shape s{1, 1, 1000003};
  const auto x = testing::randn<double>(s, 6, 1e3);
  BceWithLogitsOptions<double> o;
  o.reduction = Reduction::sum;
  check_thread_invariance(
      [&] { return bce_with_logits_value_and_grad(x, testing::mask<double>(s, 7), o); });
}

TEST_CASE("determinism: binary_cross_entropy with weight, across thread counts") {
  const Shape s{3, 2, 200, 210};
  BinaryCrossEntropyOptions<float> o;
  o.weight = testing::uniform<float>({3, 1, 200, 210}, 21, 0.1, 2.0);
  const auto p = testing::uniform<float>(s, 22, 0.0, 1.0), z = testing::mask<float>(s, 23);
  check_thread_invariance([&] { return binary_cross_entropy_value_and_grad(p, z, o); });
}

TEST_CASE("determinism: bce_with_logits with mean_over weight_sum and label_smoothing") {
  const Shape s{3, 2, 200, 210};
  BceWithLogitsOptions<float> o;
  o.weight = testing::uniform<float>(s, 24, 0.1, 2.0);  // its sum spans several chunks too
  o.mean_over = BceMeanOver::weight_sum;
  o.label_smoothing = 0.1;
  const auto x = testing::randn<float>(s, 25, 3.0), z = testing::mask<float>(s, 26);
  check_thread_invariance([&] { return bce_with_logits_value_and_grad(x, z, o); });
}
