// ConfusionMatrix on CUDA: counts equal to the CPU's for label maps and logits (int32/int64,
// float/double, 1-3D, C from 1 to 150, so both the shared-memory and the global histograms),
// argmax ties and NaN, ignore_index, the out-of-range policy, the error flag (the first bad pixel,
// the matrix unchanged), repeated runs, per-image matrices, and mixed devices. The tests that need
// a GPU skip with a message when none is present.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using testing::labels;

namespace {

template <class T>
Tensor<T> dev(const Tensor<T>& t) {
  return testing::gpu(t);
}

template <class P, class L>
void check_labels_parity(const Shape& s, int64_t c, uint64_t seed, ConfusionMatrixOptions o = {}) {
  CAPTURE(s);
  CAPTURE(c);
  const auto pred = labels<P>(s, c, seed);
  const auto truth = labels<L>(s, c, seed + 1, 0.2, o.ignore_index);
  ConfusionMatrix cpu(c, o), gpu(c, o);
  cpu.update(pred, truth);
  gpu.update(dev(pred), dev(truth));
  CHECK(gpu.counts() == cpu.counts());
  CHECK(gpu.total() > 0);
}

template <class T, class L>
void check_logits_parity(const Shape& s, uint64_t seed, ConfusionMatrixOptions o = {}) {
  CAPTURE(s);
  const int64_t c = s[1];
  const auto x = testing::randn<T>(s, seed);
  const auto truth = labels<L>(s.without(1), c, seed + 1, 0.2, o.ignore_index);
  ConfusionMatrix cpu(c, o), gpu(c, o);
  cpu.update_from_logits(x, truth);
  gpu.update_from_logits(dev(x), dev(truth));
  CHECK(gpu.counts() == cpu.counts());
}

}  // namespace

TEST_CASE("cuda confusion_matrix: label maps equal the CPU, int32/int64, C = 1 to 150") {
  SEGLOSS_REQUIRE_GPU();
  for (int64_t c : {1, 2, 21, 110, 111, 150}) {
    check_labels_parity<int32_t, int64_t>(Shape{2, 37, 41}, c, 100 + c);
    check_labels_parity<int64_t, int32_t>(Shape{3, 5, 7, 9}, c, 200 + c);
  }
  check_labels_parity<int64_t, int64_t>(Shape{1000003}, 21, 300);  // rank 1, many blocks
  check_labels_parity<int32_t, int32_t>(Shape{4, 512, 512}, 21, 301);
}

TEST_CASE("cuda confusion_matrix: logits equal the CPU, float/double, 1-3D, C = 1 to 150") {
  SEGLOSS_REQUIRE_GPU();
  check_logits_parity<float, int64_t>(Shape{2, 21, 33, 35}, 1);
  check_logits_parity<double, int32_t>(Shape{3, 5, 101}, 2);
  check_logits_parity<float, int32_t>(Shape{1, 4, 5, 6, 7}, 3);
  check_logits_parity<float, int64_t>(Shape{2, 1, 9, 9}, 4);
  check_logits_parity<double, int64_t>(Shape{1, 150, 17, 19}, 5);  // global histogram
  check_logits_parity<float, int64_t>(Shape{8, 21, 256, 256}, 6);
}

TEST_CASE("cuda confusion_matrix: argmax ties go to the lowest class, NaN is the maximum") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 600};
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> pick(-1, 1);
  auto x = Tensor<float>::empty(s);
  for (auto& v : x) v = static_cast<float>(pick(rng));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  x[0 * 600 + 3] = nan;
  x[2 * 600 + 10] = nan;
  x[1 * 600 + 10] = nan;
  x[3 * 600 + 599] = nan;
  x[(4 + 3) * 600 + 0] = nan;
  const auto truth = labels<int64_t>(s.without(1), 4, 6);
  ConfusionMatrix cpu(4), gpu(4);
  cpu.update_from_logits(x, truth);
  gpu.update_from_logits(dev(x), dev(truth));
  CHECK(gpu.counts() == cpu.counts());
  ConfusionMatrix flat(4);
  flat.update_from_logits(dev(Tensor<double>::full(s, 0.5)), dev(truth));
  CHECK(flat.count(0, 0) + flat.count(1, 0) + flat.count(2, 0) + flat.count(3, 0) == 1200);
}

TEST_CASE("cuda confusion_matrix: ignore_index (void 255, or a class) and out_of_range drop") {
  SEGLOSS_REQUIRE_GPU();
  ConfusionMatrixOptions o;
  o.ignore_index = 255;
  check_labels_parity<int32_t, int64_t>(Shape{2, 60, 50}, 4, 7, o);
  check_logits_parity<float, int32_t>(Shape{2, 4, 60, 50}, 8, o);
  // ignore_index 0 with predictions outside [0, C) at the ignored pixels: not read.
  const Shape s{2, 6, 5};
  const auto pred = labels<int32_t>(s, 4, 31);
  const auto truth = labels<int64_t>(s, 4, 32, 0.3, 255);
  auto pred_bad = pred.clone();
  for (int64_t i = 0; i < truth.numel(); ++i)
    if (truth[i] == 0) pred_bad[i] = 99;
  o.ignore_index = 0;
  o.out_of_range = OutOfRange::drop;
  ConfusionMatrix cpu(4, o), gpu(4, o);
  cpu.update(pred, truth);
  gpu.update(dev(pred_bad), dev(truth));
  CHECK(gpu.counts() == cpu.counts());
  // drop (pytorch_fcn) with negatives and labels >= C.
  auto t2 = labels<int64_t>(s, 4, 33, 0.2, -1);
  t2[7] = 9;
  ConfusionMatrix d_cpu(4, ConfusionMatrixOptions::pytorch_fcn()),
      d_gpu(4, ConfusionMatrixOptions::pytorch_fcn());
  d_cpu.update(pred, t2);
  d_gpu.update(dev(pred), dev(t2));
  CHECK(d_gpu.counts() == d_cpu.counts());
  // every pixel ignored: nothing counted, no error
  ConfusionMatrix none(4);
  none.update(dev(pred), dev(Tensor<int64_t>::full(s, -100)));
  CHECK(none.total() == 0);
}

TEST_CASE(
    "cuda confusion_matrix: bad labels raise through the error flag, leaving the matrix "
    "unchanged") {
  SEGLOSS_REQUIRE_GPU();
  // The two bad labels are in different blocks; the first in linear order is reported.
  const Shape s{3, 100000};
  const auto pred = labels<int64_t>(s, 5, 61);
  auto truth = labels<int64_t>(s, 5, 62);
  truth[1 * 100000 + 50000] = 8;
  truth[2 * 100000 + 70000] = 9;
  ConfusionMatrix m(5);
  m.update(dev(pred), dev(labels<int64_t>(s, 5, 63)));
  const auto before = m.counts();
  CHECK_THROWS_WITH_AS(m.update(dev(pred), dev(truth)),
                       "ConfusionMatrix::update: true_labels has label 8 at (1,50000), outside "
                       "[0, 5) and not ignore_index -100 (options.out_of_range = drop skips such "
                       "pixels silently, as pytorch-fcn)",
                       Error);
  CHECK(m.counts() == before);
  const auto x = testing::randn<float>({3, 5, 100000}, 64);
  CHECK_THROWS_WITH_AS(
      m.update_from_logits(dev(x), dev(truth)),
      doctest::Contains("update_from_logits: true_labels has label 8 at (1,50000)"), Error);
  CHECK(m.counts() == before);
  // A bad prediction before the first bad true label is the one reported.
  auto pred_bad = pred.clone();
  pred_bad[40000] = -2;
  CHECK_THROWS_WITH_AS(m.update(dev(pred_bad), dev(truth)),
                       doctest::Contains("pred_labels has label -2 at (0,40000)"), Error);
  CHECK(m.counts() == before);
  // The device stays usable.
  m.update(dev(pred), dev(labels<int64_t>(s, 5, 63)));
  for (size_t i = 0; i < before.size(); ++i) CHECK(m.counts()[i] == 2 * before[i]);
}

TEST_CASE("cuda confusion_matrix: the same counts over 10 runs, and per-image matrices") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 21, 300, 200};
  const auto xd = dev(testing::randn<float>(s, 71));
  const auto td = dev(labels<int32_t>(s.without(1), 21, 72, 0.1));
  ConfusionMatrix first(21);
  first.update_from_logits(xd, td);
  for (int run = 1; run < 10; ++run) {
    ConfusionMatrix m(21);
    m.update_from_logits(xd, td);
    CHECK(m.counts() == first.counts());
  }
  const auto x = testing::randn<double>({3, 6, 11, 13}, 73);
  const auto t = labels<int64_t>({3, 11, 13}, 6, 74, 0.1);
  const auto per_cpu = confusion_per_image_from_logits(x, t);
  const auto per_gpu = confusion_per_image_from_logits(dev(x), dev(t));
  REQUIRE(per_gpu.size() == per_cpu.size());
  for (size_t i = 0; i < per_cpu.size(); ++i) CHECK(per_gpu[i].counts() == per_cpu[i].counts());
  const auto p = labels<int32_t>({3, 11, 13}, 6, 75);
  const auto lab_cpu = confusion_per_image(p, t, 6);
  const auto lab_gpu = confusion_per_image(dev(p), dev(t), 6);
  for (size_t i = 0; i < lab_cpu.size(); ++i) CHECK(lab_gpu[i].counts() == lab_cpu[i].counts());
}

TEST_CASE("cuda confusion_matrix: label maps on two devices are an error") {
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{2, 2};
  const auto pd = testing::unread_cuda_view<int64_t>(s);
  const auto t = Tensor<int64_t>::zeros(s);
  ConfusionMatrix m(3);
  CHECK_THROWS_WITH_AS(m.update(pd, t), doctest::Contains("true_labels"), Error);
  const auto xd = testing::unread_cuda_view<float>({1, 3, 2, 2});
  CHECK_THROWS_WITH_AS(m.update_from_logits(xd, Tensor<int64_t>::zeros({1, 2, 2})),
                       doctest::Contains("true_labels"), Error);
}
