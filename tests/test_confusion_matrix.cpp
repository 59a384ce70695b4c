// ConfusionMatrix: counts against a direct loop for label maps and logits (every label type,
// rank, and C = 1 to 150), argmax ties and NaN, the label policies, streaming, merge and reset,
// per-image matrices, thread-count independence, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

// Labels in [0, classes), with about `odd` of them set to `other`.
template <class L>
Tensor<L> labels(const Shape& s, int64_t classes, uint64_t seed, double odd = 0.0,
                 int64_t other = -100) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, classes - 1);
  std::bernoulli_distribution flip(odd);
  auto t = Tensor<L>::empty(s);
  for (auto& v : t) v = static_cast<L>(flip(rng) ? other : pick(rng));
  return t;
}

// The definition: a pixel counts when its true label is not ignore_index and in [0, C).
template <class P, class L>
std::vector<int64_t> direct(const Tensor<P>& pred, const Tensor<L>& truth, int64_t c,
                            int64_t ignore = -100) {
  std::vector<int64_t> h(static_cast<size_t>(c * c), 0);
  for (int64_t i = 0; i < truth.numel(); ++i) {
    const int64_t t = truth[i], p = pred[i];
    if (t == ignore || t < 0 || t >= c) continue;
    ++h[static_cast<size_t>(t * c + p)];
  }
  return h;
}

// argmax over axis 1 written plainly: first maximum, NaN above everything (numpy, torch).
template <class T>
Tensor<int64_t> argmax(const Tensor<T>& x) {
  const int64_t n = x.size(0), c = x.size(1), px = x.shape().numel_from(2);
  auto r = Tensor<int64_t>::empty(x.shape().without(1));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < px; ++j) {
      int64_t best = 0;
      T m = x[i * c * px + j];
      for (int64_t k = 1; k < c && !std::isnan(m); ++k) {
        const T v = x[(i * c + k) * px + j];
        if (std::isnan(v) || v > m) {
          m = v;
          best = k;
        }
      }
      r[i * px + j] = best;
    }
  return r;
}

template <class P, class L>
void check_counts(const Shape& s, int64_t c, uint64_t seed) {
  CAPTURE(s);
  CAPTURE(c);
  const auto pred = labels<P>(s, c, seed);
  const auto truth = labels<L>(s, c, seed + 1, 0.2);
  ConfusionMatrix m(c);
  m.update(pred, truth);
  CHECK(m.counts() == direct(pred, truth, c));
  int64_t counted = 0;
  for (int64_t i = 0; i < truth.numel(); ++i) counted += truth[i] != -100;
  CHECK(m.total() == counted);
}

}  // namespace

TEST_CASE("confusion_matrix: counts equal a direct loop, int32/int64, ranks 1 to 5, C = 1 to 150") {
  for (const Shape& s : {Shape{7}, Shape{3, 5}, Shape{2, 17, 9}, Shape{2, 3, 4, 5},
                         Shape{1, 2, 3, 4, 5}, Shape{1, 1}, Shape{3, 70000}}) {
    for (int64_t c : {1, 2, 5, 21, 150}) {
      check_counts<int32_t, int32_t>(s, c, 11);
      check_counts<int64_t, int32_t>(s, c, 12);
      check_counts<int32_t, int64_t>(s, c, 13);
      check_counts<int64_t, int64_t>(s, c, 14);
    }
  }
}

TEST_CASE("confusion_matrix: rows are truth, columns prediction") {
  ConfusionMatrix m(3);
  m.update(Tensor<int64_t>::from({2, 2, 0, 1}, {4}), Tensor<int64_t>::from({0, 0, 0, 2}, {4}));
  CHECK(m.count(0, 2) == 2);
  CHECK(m.count(0, 0) == 1);
  CHECK(m.count(2, 1) == 1);
  CHECK(m.total() == 4);
  CHECK(m.true_counts() == std::vector<int64_t>{3, 0, 1});
  CHECK(m.pred_counts() == std::vector<int64_t>{1, 1, 2});
  const ConfusionMatrix::Margins margins = m.margins();
  CHECK(margins.true_counts == std::vector<int64_t>{3, 0, 1});
  CHECK(margins.pred_counts == std::vector<int64_t>{1, 1, 2});
  CHECK(margins.total == 4);
  const Tensor<int64_t> t = m.matrix();
  REQUIRE(t.shape() == Shape{3, 3});
  CHECK(t[0 * 3 + 2] == 2);
  CHECK(t[2 * 3 + 1] == 1);
}

TEST_CASE("confusion_matrix: update_from_logits equals argmax + update (float, double, 1-3D)") {
  for (const Shape& s :
       {Shape{2, 5, 4, 3}, Shape{3, 4, 7}, Shape{1, 21, 300}, Shape{2, 3, 2, 3, 4},
        Shape{1, 1, 5, 5}, Shape{1, 150, 3, 3}, Shape{1, 2, 1, 1}, Shape{2, 21, 64, 65}}) {
    CAPTURE(s);
    const auto x = testing::randn<double>(s, 21, 2.0);
    const auto truth = labels<int64_t>(s.without(1), s[1], 22, 0.1);
    ConfusionMatrix fused(s[1]), plain(s[1]);
    fused.update_from_logits(x, truth);
    plain.update(argmax(x), truth);
    CHECK(fused.counts() == plain.counts());
    ConfusionMatrix fused_f(s[1]);
    const auto xf = testing::cast<float>(x);
    fused_f.update_from_logits(xf, testing::cast<int32_t>(truth));
    ConfusionMatrix plain_f(s[1]);
    plain_f.update(argmax(xf), truth);
    CHECK(fused_f.counts() == plain_f.counts());
  }
}

TEST_CASE("confusion_matrix: argmax ties go to the lowest class, NaN is the maximum") {
  // Logits from {-1, 0, 1}: most pixels have ties. The block of 256 pixels and the chunking
  // are crossed by 2 x 600 pixels.
  const Shape s{2, 4, 600};
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> pick(-1, 1);
  auto x = Tensor<float>::empty(s);
  for (auto& v : x) v = static_cast<float>(pick(rng));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  x[0 * 600 + 3] = nan;        // class 0 NaN: argmax 0
  x[2 * 600 + 10] = nan;       // class 2 NaN
  x[1 * 600 + 10] = nan;       // and class 1 NaN at the same pixel: the first, 1
  x[3 * 600 + 599] = nan;      // the last class, the last pixel of image 0
  x[(4 + 3) * 600 + 0] = nan;  // image 1
  const auto truth = labels<int64_t>(s.without(1), 4, 6);
  const auto am = argmax(x);
  CHECK(am[3] == 0);
  CHECK(am[10] == 1);
  CHECK(am[599] == 3);
  CHECK(am[600] == 3);
  ConfusionMatrix fused(4), plain(4);
  fused.update_from_logits(x, truth);
  plain.update(am, truth);
  CHECK(fused.counts() == plain.counts());
  // All classes equal everywhere: every prediction is class 0.
  ConfusionMatrix flat(4);
  flat.update_from_logits(Tensor<double>::full(s, 0.5), truth);
  CHECK(flat.count(0, 0) + flat.count(1, 0) + flat.count(2, 0) + flat.count(3, 0) == 1200);
  // Large logits stay exact comparisons.
  auto big = Tensor<double>::zeros({1, 3, 2});
  big[0] = 1e4;
  big[3] = -1e4;
  big[2 * 2 + 0] = 1e4;  // ties with class 0 at pixel 0: class 0
  big[2 * 2 + 1] = 1e-300;
  ConfusionMatrix b(3);
  b.update_from_logits(big, Tensor<int32_t>::from({1, 1}, {1, 2}));
  CHECK(b.count(1, 0) == 1);
  CHECK(b.count(1, 2) == 1);
}

TEST_CASE("confusion_matrix: ignore_index, also a class, and every pixel ignored") {
  const Shape s{2, 6, 5};
  const auto pred = labels<int32_t>(s, 4, 31);
  const auto truth = labels<int64_t>(s, 4, 32, 0.3, 255);
  ConfusionMatrixOptions o;
  o.ignore_index = 255;
  ConfusionMatrix m(4, o);
  m.update(pred, truth);
  CHECK(m.counts() == direct(pred, truth, 4, 255));
  // ignore_index 0: the background is not counted; the prediction there is not read (even
  // outside [0, C)).
  auto pred_bad = pred.clone();
  for (int64_t i = 0; i < truth.numel(); ++i)
    if (truth[i] == 0) pred_bad[i] = 99;
  o.ignore_index = 0;
  o.out_of_range = OutOfRange::drop;  // the 255s
  ConfusionMatrix z(4, o);
  z.update(pred_bad, truth);
  CHECK(z.counts() == direct(pred, truth, 4, 0));
  for (int64_t p = 0; p < 4; ++p) CHECK(z.count(0, p) == 0);
  // Every pixel ignored: nothing counted, no error.
  ConfusionMatrix none(4);
  none.update(pred, Tensor<int64_t>::full(s, -100));
  none.update_from_logits(testing::randn<float>({2, 4, 6, 5}, 3), Tensor<int32_t>::full(s, -100));
  CHECK(none.total() == 0);
}

TEST_CASE(
    "confusion_matrix: out-of-range true labels are an error by default, dropped on request") {
  const Shape s{2, 3, 4};
  const auto pred = labels<int64_t>(s, 3, 41);
  auto truth = labels<int64_t>(s, 3, 42);
  truth[1 * 12 + 2 * 4 + 1] = 7;
  truth[1 * 12 + 2 * 4 + 3] = -1;
  ConfusionMatrix m(3);
  m.update(pred, labels<int64_t>(s, 3, 43));
  const auto before = m.counts();
  CHECK_THROWS_WITH_AS(m.update(pred, truth),
                       "ConfusionMatrix::update: true_labels has label 7 at (1,2,1), outside [0, "
                       "3) and not ignore_index -100 (options.out_of_range = drop skips such "
                       "pixels silently, as pytorch-fcn)",
                       Error);
  CHECK(m.counts() == before);  // unchanged by the failed update
  const auto x = testing::randn<float>({2, 3, 3, 4}, 44);
  CHECK_THROWS_WITH_AS(m.update_from_logits(x, truth),
                       doctest::Contains("update_from_logits: true_labels has label 7 at (1,2,1)"),
                       Error);
  CHECK(m.counts() == before);
  // drop: pytorch-fcn's mask (t >= 0) & (t < C).
  ConfusionMatrix d(3, ConfusionMatrixOptions::pytorch_fcn());
  d.update(pred, truth);
  CHECK(d.counts() == direct(pred, truth, 3));
  CHECK(d.total() == 22);
  ConfusionMatrix dl(3, ConfusionMatrixOptions::pytorch_fcn());
  dl.update_from_logits(x, truth);
  CHECK(dl.total() == 22);
}

TEST_CASE("confusion_matrix: a predicted label that is not a class is always an error") {
  const Shape s{1, 4, 4};
  const auto truth = labels<int32_t>(s, 3, 51);
  for (int64_t bad : {3, -1, 255}) {
    auto pred = labels<int32_t>(s, 3, 52);
    pred[9] = static_cast<int32_t>(bad);
    for (auto o : {ConfusionMatrixOptions{}, ConfusionMatrixOptions::pytorch_fcn()}) {
      ConfusionMatrix m(3, o);
      CHECK_THROWS_WITH_AS(
          m.update(pred, truth),
          doctest::Contains(
              ("pred_labels has label " + std::to_string(bad) + " at (0,2,1)").c_str()),
          Error);
      CHECK(m.total() == 0);
    }
  }
}

TEST_CASE("confusion_matrix: the first bad pixel is reported, across chunks and threads") {
  // 3 x 100000 pixels span five chunks of the label kernel; the two bad labels sit in chunks 2
  // and 4, which two threads take on different threads. The first in linear order is reported.
  const Shape s{3, 100000};
  const auto pred = labels<int64_t>(s, 5, 61);
  auto truth = labels<int64_t>(s, 5, 62);
  truth[1 * 100000 + 50000] = 8;
  truth[2 * 100000 + 70000] = 9;
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    ConfusionMatrix m(5);
    CHECK_THROWS_WITH_AS(m.update(pred, truth),
                         doctest::Contains("true_labels has label 8 at (1,50000)"), Error);
  }
  set_num_threads(saved);
}

TEST_CASE("confusion_matrix: bit-identical counts at 1, 2 and 3 threads") {
  const Shape s{4, 21, 128, 96};
  const auto x = testing::randn<float>(s, 71, 3.0);
  const auto truth = labels<int64_t>(s.without(1), 21, 72, 0.1, 255);
  const auto pred = labels<int32_t>(s.without(1), 21, 73);
  ConfusionMatrixOptions o;
  o.ignore_index = 255;
  const int saved = num_threads();
  std::vector<std::vector<int64_t>> from_labels, from_logits;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    ConfusionMatrix a(21, o), b(21, o);
    a.update(pred, truth);
    b.update_from_logits(x, truth);
    from_labels.push_back(a.counts());
    from_logits.push_back(b.counts());
  }
  set_num_threads(saved);
  CHECK(from_labels[0] == direct(pred, truth, 21, 255));
  CHECK(from_labels[1] == from_labels[0]);
  CHECK(from_labels[2] == from_labels[0]);
  CHECK(from_logits[1] == from_logits[0]);
  CHECK(from_logits[2] == from_logits[0]);
}

TEST_CASE("confusion_matrix: streaming updates, merge, reset and from_counts") {
  const Shape s{4, 8, 8};
  const auto pred = labels<int64_t>(s, 5, 81);
  const auto truth = labels<int64_t>(s, 5, 82, 0.1);
  ConfusionMatrix whole(5), streamed(5), a(5), b(5);
  whole.update(pred, truth);
  const int64_t half = 2 * 64;
  const auto view = [](const Tensor<int64_t>& t, int64_t off) {
    return Tensor<int64_t>::view(t.data() + off, Shape{2, 8, 8});
  };
  streamed.update(view(pred, 0), view(truth, 0));
  streamed.update(view(pred, half), view(truth, half));
  CHECK(streamed.counts() == whole.counts());
  a.update(view(pred, 0), view(truth, 0));
  b.update(view(pred, half), view(truth, half));
  a.merge(b);
  CHECK(a.counts() == whole.counts());
  const auto copy = ConfusionMatrix::from_counts(5, whole.counts());
  CHECK(copy.counts() == whole.counts());
  a.reset();
  CHECK(a.total() == 0);
  CHECK(a.num_classes() == 5);
  // An empty update adds nothing.
  a.update(Tensor<int32_t>::empty({0, 3}), Tensor<int32_t>::empty({0, 3}));
  a.update_from_logits(Tensor<float>::empty({0, 5, 3}), Tensor<int64_t>::empty({0, 3}));
  CHECK(a.total() == 0);
}

// The counts' sum must fit in int64: from_counts (after an all-reduce, say), merge and update
// refuse what would pass 2^63 - 1, where the sums overflowed (signed overflow, a negative total
// and a pixel accuracy of -1; a reviewer's cases under UBSan).
TEST_CASE("confusion_matrix: counts that would sum past 2^63 - 1 are refused") {
  const int64_t max = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_WITH_AS(ConfusionMatrix::from_counts(2, {max, 1, 0, 0}),
                       "ConfusionMatrix::from_counts: the counts sum past 2^63 - 1; a matrix "
                       "holds at most that many pixels",
                       Error);
  CHECK_THROWS_AS(ConfusionMatrix::from_counts(2, {int64_t{1} << 62, 0, 0, int64_t{1} << 62}),
                  Error);
  auto full = ConfusionMatrix::from_counts(2, {max - 3, 0, 0, 0});
  CHECK(full.total() == max - 3);
  auto copy = full;
  CHECK_THROWS_WITH_AS(full.merge(copy),
                       doctest::Contains("ConfusionMatrix::merge: the matrix holds "
                                         "9223372036854775804 pixels; 9223372036854775804 more "
                                         "could pass 2^63 - 1"),
                       Error);
  const auto four = Tensor<int64_t>::from({0, 1, 1, 0}, {1, 4});
  CHECK_THROWS_WITH_AS(full.update(four, four),
                       "ConfusionMatrix::update: the matrix holds 9223372036854775804 pixels; 4 "
                       "more could pass 2^63 - 1",
                       Error);
  CHECK_THROWS_AS(full.update_from_logits(Tensor<float>::zeros({1, 2, 4}), four), Error);
  CHECK(full.total() == max - 3);  // nothing was added
  const auto three = Tensor<int64_t>::from({0, 1, 1}, {1, 3});
  full.update(three, three);  // exactly to 2^63 - 1
  CHECK(full.total() == max);
  CHECK(pixel_accuracy(full) == doctest::Approx(1.0));
  // Counts written through data() (an all-reduce in place) are checked where they are summed.
  ConfusionMatrix m(2);
  m.data()[0] = max;
  m.data()[3] = 1;
  CHECK_THROWS_WITH_AS(m.total(), doctest::Contains("ConfusionMatrix::total: the counts sum past"),
                       Error);
  CHECK_THROWS_WITH_AS(class_scores(m, Score::iou),
                       doctest::Contains("ConfusionMatrix::margins: the counts sum past"), Error);
  CHECK_THROWS_WITH_AS(m.true_counts(),
                       doctest::Contains("ConfusionMatrix::true_counts: the counts sum past"),
                       Error);
}

// A reviewer's report (through the C API): a negative count written through data() gave a
// pixel accuracy of 1.29 and an IoU of 2, where from_counts refuses the same counts. Every
// sum of the counts (total, true_counts, pred_counts, margins, so every score) now refuses it.
TEST_CASE("confusion_matrix: a negative count written through data() is refused by the scores") {
  ConfusionMatrix m(2);
  m.data()[0] = 5;
  m.data()[1] = -2;
  m.data()[3] = 4;
  const auto refused = [](const std::function<void()>& f, const std::string& where) {
    const std::string expected = where + ": count 1 of the matrix is -2";
    CHECK_THROWS_WITH_AS(f(), doctest::Contains(expected.c_str()), Error);
  };
  refused([&] { m.total(); }, "ConfusionMatrix::total");
  refused([&] { pixel_accuracy(m); }, "ConfusionMatrix::total");
  refused([&] { class_scores(m, Score::iou); }, "ConfusionMatrix::margins");
  refused([&] { m.true_counts(); }, "ConfusionMatrix::true_counts");
  refused([&] { m.pred_counts(); }, "ConfusionMatrix::pred_counts");
  refused([&] { m.margins(); }, "ConfusionMatrix::margins");
  refused([&] { cohen_kappa(m); }, "ConfusionMatrix::margins");
  refused([&] { label_accuracy_score(m); }, "ConfusionMatrix::margins");
  refused(
      [&] {
        m.update(Tensor<int32_t>::zeros({1, 2}), Tensor<int32_t>::zeros({1, 2}));
      },
      "ConfusionMatrix::update");
  m.data()[1] = 2;
  CHECK(pixel_accuracy(m) == doctest::Approx(9.0 / 11.0));
}

TEST_CASE("confusion_matrix: per-image matrices sum to the batch's") {
  const Shape s{3, 5, 6, 7};
  const auto x = testing::randn<double>(s, 91);
  const auto truth = labels<int32_t>(s.without(1), 5, 92, 0.2);
  const auto pred = argmax(x);
  const auto per = confusion_per_image(pred, truth, 5);
  const auto per_logits = confusion_per_image_from_logits(x, truth);
  REQUIRE(per.size() == 3);
  REQUIRE(per_logits.size() == 3);
  ConfusionMatrix sum(5), whole(5);
  for (int64_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    ConfusionMatrix one(5);
    one.update(Tensor<int64_t>::view(pred.data() + i * 42, Shape{6, 7}),
               Tensor<int32_t>::view(truth.data() + i * 42, Shape{6, 7}));
    CHECK(per[i].counts() == one.counts());
    CHECK(per_logits[i].counts() == one.counts());
    sum.merge(per[i]);
  }
  whole.update(pred, truth);
  CHECK(sum.counts() == whole.counts());
  // Errors name the position in the batch.
  auto bad = truth.clone();
  bad[2 * 42 + 8] = 5;
  CHECK_THROWS_WITH_AS(confusion_per_image(pred, bad, 5),
                       doctest::Contains("true_labels has label 5 at (2,1,1)"), Error);
  CHECK_THROWS_WITH_AS(confusion_per_image_from_logits(x, bad),
                       doctest::Contains("true_labels has label 5 at (2,1,1)"), Error);
}

TEST_CASE("confusion_matrix: bad arguments") {
  CHECK_THROWS_WITH_AS(ConfusionMatrix(0),
                       "ConfusionMatrix: num_classes is 0; it must be in [1, 32768]", Error);
  CHECK_THROWS_AS(ConfusionMatrix(40000), Error);
  ConfusionMatrix m(3);
  CHECK_THROWS_WITH_AS(
      m.update(Tensor<int32_t>::zeros({2, 3}), Tensor<int32_t>::zeros({3, 2})),
      "ConfusionMatrix::update: pred_labels (2,3) does not match true_labels (3,2)", Error);
  CHECK_THROWS_WITH_AS(m.update(Tensor<int32_t>::zeros({}), Tensor<int32_t>::zeros({})),
                       doctest::Contains("has rank 0"), Error);
  CHECK_THROWS_WITH_AS(m.update(Tensor<int32_t>(), Tensor<int32_t>::zeros({2})),
                       "ConfusionMatrix::update: pred_labels is undefined", Error);
  CHECK_THROWS_WITH_AS(
      m.update_from_logits(Tensor<float>::zeros({2, 4, 3}), Tensor<int32_t>::zeros({2, 3})),
      "ConfusionMatrix::update_from_logits: logits (2,4,3) has 4 classes on axis 1; the matrix "
      "has 3",
      Error);
  CHECK_THROWS_WITH_AS(
      m.update_from_logits(Tensor<float>::zeros({2, 3, 3}), Tensor<int32_t>::zeros({2, 4})),
      "ConfusionMatrix::update_from_logits: true_labels (2,4) does not match logits (2,3,3) "
      "without the class axis",
      Error);
  CHECK_THROWS_WITH_AS(
      m.update_from_logits(Tensor<float>::zeros({2, 3}), Tensor<int32_t>::zeros({2})),
      doctest::Contains("logits (2,3) has rank 2"), Error);
  CHECK_THROWS_WITH_AS(m.merge(ConfusionMatrix(4)),
                       "ConfusionMatrix::merge: other has 4 classes; this matrix has 3", Error);
  CHECK_THROWS_WITH_AS(ConfusionMatrix::from_counts(2, {1, 2, 3}),
                       doctest::Contains("counts has 3 values; 2 classes need 4"), Error);
  CHECK_THROWS_WITH_AS(ConfusionMatrix::from_counts(2, {1, 2, -3, 0}),
                       doctest::Contains("counts[2] is -3"), Error);
  CHECK_THROWS_WITH_AS(m.count(3, 0), doctest::Contains("class pair (3, 0) is outside [0, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(
      confusion_per_image(Tensor<int32_t>::zeros({4}), Tensor<int32_t>::zeros({4}), 3),
      doctest::Contains("has rank 1"), Error);
  CHECK_THROWS_WITH_AS(
      confusion_per_image(Tensor<int32_t>::zeros({1, 4}), Tensor<int32_t>::zeros({1, 4}), 0),
      doctest::Contains("num_classes is 0"), Error);
}
