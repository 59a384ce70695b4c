// Concurrent calls from several std::threads (each with its own reduction workspace) give the
// results of serial calls; the thread-count API.
#include <doctest/doctest.h>

#include <cmath>
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

// Every family and the metrics at once: each caller runs the whole list on its own data, and
// every number (values, gradients' sums, matrix counts, metric means) equals the serial call.
// Run under ThreadSanitizer by .ci/run (OpenMP off there).
namespace {

std::vector<double> everything(const Tensor<float>& x, const Tensor<float>& t,
                               const Tensor<float>& xc, const Tensor<int64_t>& lab) {
  std::vector<double> r;
  auto add = [&](const ValueAndGrad<float>& vg) {
    r.push_back(vg.value);
    double g = 0;
    for (int64_t i = 0; i < vg.grad.numel(); ++i) g += vg.grad[i];
    r.push_back(g);
  };
  add(bce_with_logits_value_and_grad(x, t));
  add(soft_dice_value_and_grad(x, t));
  add(sigmoid_focal_value_and_grad(x, t));
  add(lovasz_hinge_value_and_grad(x, t));
  add(cross_entropy_value_and_grad(xc, lab));
  add(softmax_dice_value_and_grad(xc, lab));
  add(softmax_focal_value_and_grad(xc, lab));
  add(lovasz_softmax_value_and_grad(xc, lab));
  ConfusionMatrix cm(3);
  cm.update_from_logits(xc, lab);
  for (int64_t c : cm.counts()) r.push_back(static_cast<double>(c));
  r.push_back(average_score(cm, Score::iou, Average::macro));
  const DiceScoreResult ds = dice_score(x, t);
  r.push_back(ds.mean);
  // The surface metrics take masks; a smaller pair keeps the test fast under TSan.
  Tensor<float> pm = Tensor<float>::empty({2, 1, 40, 40}), tm = Tensor<float>::empty(pm.shape());
  for (int64_t i = 0; i < pm.numel(); ++i) {
    pm[i] = x[i] > 0.f ? 1.f : 0.f;
    tm[i] = t[i];
  }
  const SurfaceDistanceResult sd = surface_distance(pm, tm);
  r.push_back(sd.mean_hausdorff);
  r.push_back(sd.mean_hausdorff_percentile);
  r.push_back(sd.mean_average_surface_distance);
  r.push_back(sd.mean_surface_dice);
  return r;
}

}  // namespace

TEST_CASE("threads: eight std::threads calling losses and metrics at once get the serial results") {
  constexpr int kCallers = 8;
  const Shape s{2, 1, 150, 120};  // several chunks per plane
  std::vector<Tensor<float>> xs, ts, xcs;
  std::vector<Tensor<int64_t>> labs;
  std::vector<std::vector<double>> serial;
  for (int k = 0; k < kCallers; ++k) {
    xs.push_back(testing::randn<float>(s, 300 + k, 3.0));
    ts.push_back(testing::mask<float>(s, 400 + k));
    xcs.push_back(testing::randn<float>({2, 3, 150, 120}, 500 + k, 2.0));
    labs.push_back(testing::labels<int64_t>({2, 150, 120}, 3, 600 + k, 0.1));
    serial.push_back(everything(xs[k], ts[k], xcs[k], labs[k]));
  }
  std::vector<std::vector<double>> concurrent(kCallers);
  std::vector<std::thread> callers;
  for (int k = 0; k < kCallers; ++k)
    callers.emplace_back([&, k] {
      for (int rep = 0; rep < 2; ++rep) concurrent[k] = everything(xs[k], ts[k], xcs[k], labs[k]);
    });
  for (auto& c : callers) c.join();
  for (int k = 0; k < kCallers; ++k) {
    REQUIRE(concurrent[k].size() == serial[k].size());
    for (size_t i = 0; i < serial[k].size(); ++i) {
      CAPTURE(k);
      CAPTURE(i);
      // Bitwise: NaN == NaN is false, so compare NaN-ness first.
      if (std::isnan(serial[k][i]))
        CHECK(std::isnan(concurrent[k][i]));
      else
        CHECK(concurrent[k][i] == serial[k][i]);
    }
  }
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
