// Concurrent calls from several std::threads (each with its own reduction workspace) give the
// results of serial calls; the thread-count API.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

TEST_CASE("threads: eight std::threads calling the losses at once get the serial results") {
  constexpr int kCallers = 8;
  const Shape s{2, 2, 130, 70};  // several chunks per plane
  std::vector<Tensor<float>> xs, ts;
  std::vector<double> serial;
  SoftDiceOptions<float> dice;
  dice.per_image = false;
  for (int k = 0; k < kCallers; ++k) {
    xs.push_back(testing::randn<float>(s, 100 + k, 3.0));
    ts.push_back(testing::mask<float>(s, 200 + k));
    serial.push_back(bce_with_logits_value_and_grad(xs[k], ts[k]).value +
                     soft_dice_value_and_grad(xs[k], ts[k], dice).value +
                     bce_dice_value_and_grad(xs[k], ts[k]).value);
  }
  std::vector<double> concurrent(kCallers);
  std::vector<std::thread> callers;
  for (int k = 0; k < kCallers; ++k)
    callers.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        concurrent[k] = bce_with_logits_value_and_grad(xs[k], ts[k]).value +
                        soft_dice_value_and_grad(xs[k], ts[k], dice).value +
                        bce_dice_value_and_grad(xs[k], ts[k]).value;
    });
  for (auto& c : callers) c.join();
  for (int k = 0; k < kCallers; ++k) CHECK(concurrent[k] == serial[k]);
}

TEST_CASE("threads: num_threads and set_num_threads") {
  const int saved = num_threads();
  CHECK(saved >= 1);
  set_num_threads(3);
#if defined(_OPENMP)
  CHECK(num_threads() == 3);
#else
  CHECK(num_threads() == 1);
#endif
  set_num_threads(saved);
  CHECK_THROWS_WITH_AS(set_num_threads(0), "set_num_threads: n is 0; it must be >= 1", Error);
}
