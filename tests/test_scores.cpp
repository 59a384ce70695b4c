// Scores from a ConfusionMatrix: the definitions on small matrices worked by hand, the empty
// policies, the identities between scores (micro = accuracy, F1 = Dice, binary MCC), symmetry,
// per-image averaging, large counts, and bad input. The numpy references are in
// test_golden_metrics.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

// hist[t][p] from a row-major list.
ConfusionMatrix matrix(int64_t c, std::vector<int64_t> counts) {
  return ConfusionMatrix::from_counts(c, std::move(counts));
}

ConfusionMatrix transpose(const ConfusionMatrix& m) {
  const int64_t c = m.num_classes();
  std::vector<int64_t> t(static_cast<size_t>(c * c));
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < c; ++j) t[j * c + i] = m.count(i, j);
  return ConfusionMatrix::from_counts(c, t);
}

ScoreOptions with(EmptyPolicy e, double beta = 1.0) {
  ScoreOptions o;
  o.empty = e;
  o.beta = beta;
  return o;
}

}  // namespace

TEST_CASE("scores: per-class definitions on a 3-class matrix") {
  // rows truth, columns prediction
  //        p0 p1 p2
  //   t0 [  5  1  0 ]
  //   t1 [  2  3  1 ]
  //   t2 [  0  0  4 ]
  const auto m = matrix(3, {5, 1, 0, 2, 3, 1, 0, 0, 4});
  // class 0: TP 5, FN 1, FP 2; class 1: TP 3, FN 3, FP 1; class 2: TP 4, FN 0, FP 1.
  const double tp[] = {5, 3, 4}, fn[] = {1, 3, 0}, fp[] = {2, 1, 1};
  const auto iou = class_scores(m, Score::iou), dice = class_scores(m, Score::dice),
             prec = class_scores(m, Score::precision), rec = class_scores(m, Score::recall),
             f2 = class_scores(m, Score::fbeta, with(EmptyPolicy::skip, 2.0));
  for (int c = 0; c < 3; ++c) {
    CAPTURE(c);
    CHECK(iou[c] == doctest::Approx(tp[c] / (tp[c] + fp[c] + fn[c])));
    CHECK(dice[c] == doctest::Approx(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c])));
    CHECK(prec[c] == doctest::Approx(tp[c] / (tp[c] + fp[c])));
    CHECK(rec[c] == doctest::Approx(tp[c] / (tp[c] + fn[c])));
    const double p = prec[c], r = rec[c];
    CHECK(f2[c] == doctest::Approx(5 * p * r / (4 * p + r)));  // F-beta from P and R
  }
  CHECK(pixel_accuracy(m) == doctest::Approx(12.0 / 16.0));
  // macro: the plain mean; weighted: by support (6, 6, 4).
  CHECK(average_score(m, Score::iou, Average::macro) ==
        doctest::Approx((iou[0] + iou[1] + iou[2]) / 3));
  CHECK(average_score(m, Score::recall, Average::weighted) ==
        doctest::Approx((6 * rec[0] + 6 * rec[1] + 4 * rec[2]) / 16));
  // micro: pooled counts; precision = recall = dice = accuracy, iou = TP / (2n - TP).
  for (Score s : {Score::dice, Score::precision, Score::recall, Score::fbeta})
    CHECK(average_score(m, s, Average::micro, with(EmptyPolicy::skip, 0.7)) ==
          doctest::Approx(pixel_accuracy(m)));
  CHECK(average_score(m, Score::iou, Average::micro) == doctest::Approx(12.0 / (32.0 - 12.0)));
  // weighted recall is the pixel accuracy (sum_c support_c TP_c / support_c / n).
  CHECK(average_score(m, Score::recall, Average::weighted) == doctest::Approx(pixel_accuracy(m)));
}

TEST_CASE("scores: F-beta at beta 1 is Dice, at beta 0 precision, large beta tends to recall") {
  const auto x = testing::randn<double>({2, 6, 9, 9}, 3);
  ConfusionMatrix m(6);
  auto y = Tensor<int64_t>::empty({2, 9, 9});
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = (i * 7 / 5) % 6;
  m.update_from_logits(x, y);
  const auto dice = class_scores(m, Score::dice), prec = class_scores(m, Score::precision),
             rec = class_scores(m, Score::recall);
  const auto f1 = class_scores(m, Score::fbeta, with(EmptyPolicy::skip, 1.0));
  const auto f0 = class_scores(m, Score::fbeta, with(EmptyPolicy::skip, 0.0));
  const auto fbig = class_scores(m, Score::fbeta, with(EmptyPolicy::skip, 1e4));
  for (int c = 0; c < 6; ++c) {
    CAPTURE(c);
    CHECK(f1[c] == doctest::Approx(dice[c]));
    if (!std::isnan(prec[c])) CHECK(f0[c] == doctest::Approx(prec[c]));
    CHECK(fbig[c] == doctest::Approx(rec[c]).epsilon(1e-6));
  }
}

TEST_CASE("scores: a class absent from truth and prediction under each empty policy") {
  // Class 1 absent from both; class 2 predicted only (IoU 0, precision 0, recall undefined).
  const auto m = matrix(3, {4, 0, 2, 0, 0, 0, 0, 0, 0});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  (void)nan;
  const auto skip = class_scores(m, Score::iou);
  CHECK(skip[0] == doctest::Approx(4.0 / 6.0));
  CHECK(std::isnan(skip[1]));
  CHECK(skip[2] == 0.0);
  // skip: left out of the mean (pytorch-fcn's nanmean).
  CHECK(average_score(m, Score::iou, Average::macro) == doctest::Approx((4.0 / 6.0) / 2));
  // formula: NaN propagates.
  CHECK(std::isnan(class_scores(m, Score::iou, with(EmptyPolicy::formula))[1]));
  CHECK(std::isnan(average_score(m, Score::iou, Average::macro, with(EmptyPolicy::formula))));
  // one / zero: the value, counted in the mean.
  CHECK(class_scores(m, Score::iou, with(EmptyPolicy::one))[1] == 1.0);
  CHECK(average_score(m, Score::iou, Average::macro, with(EmptyPolicy::one)) ==
        doctest::Approx((4.0 / 6.0 + 1.0) / 3));
  CHECK(average_score(m, Score::iou, Average::macro, with(EmptyPolicy::zero)) ==
        doctest::Approx((4.0 / 6.0) / 3));
  // recall of the predicted-only class is 0/0 too (as sklearn's zero_division).
  const auto rec = class_scores(m, Score::recall);
  CHECK(std::isnan(rec[2]));
  CHECK(class_scores(m, Score::recall, with(EmptyPolicy::zero))[2] == 0.0);
  // weighted: classes of support 0 weigh nothing, whatever the policy (except formula's NaN).
  CHECK(average_score(m, Score::iou, Average::weighted, with(EmptyPolicy::one)) ==
        doctest::Approx(4.0 / 6.0));
  CHECK(std::isnan(average_score(m, Score::iou, Average::weighted, with(EmptyPolicy::formula))));
}

TEST_CASE("scores: label_accuracy_score is pytorch-fcn's, including nothing counted") {
  const auto m = matrix(3, {5, 1, 0, 2, 3, 1, 0, 0, 0});
  const FcnScores s = label_accuracy_score(m);
  CHECK(s.pixel_accuracy == doctest::Approx(8.0 / 12.0));
  // acc_cls: nanmean of TP / support over classes with support (class 2 has none).
  CHECK(s.mean_class_accuracy == doctest::Approx((5.0 / 6.0 + 3.0 / 6.0) / 2));
  // iu of class 2: 0 / (0 + 1 - 0) = 0, counted in mean_iu.
  CHECK(s.iou[2] == 0.0);
  CHECK(s.mean_iou == doctest::Approx((5.0 / 8.0 + 3.0 / 7.0 + 0.0) / 3));
  CHECK(s.fw_iou == doctest::Approx(0.5 * 5.0 / 8.0 + 0.5 * 3.0 / 7.0));
  CHECK(s.fw_iou == doctest::Approx(average_score(m, Score::iou, Average::weighted)));
  ConfusionMatrix empty(4);
  const FcnScores e = label_accuracy_score(empty);
  CHECK(std::isnan(e.pixel_accuracy));
  CHECK(std::isnan(e.mean_class_accuracy));
  CHECK(std::isnan(e.mean_iou));
  CHECK(e.fw_iou == 0.0);  // numpy: a sum over no classes
  CHECK(std::isnan(average_score(empty, Score::iou, Average::weighted)));
  CHECK(std::isnan(average_score(empty, Score::iou, Average::micro)));
  CHECK(average_score(empty, Score::iou, Average::micro, with(EmptyPolicy::one)) == 1.0);
}

TEST_CASE("scores: kappa and MCC, binary MCC, symmetry, perfect and degenerate matrices") {
  // Binary: MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)), class 1 positive.
  const double tn = 50, fp = 7, fn = 11, tp = 32;
  const auto b = matrix(2, {50, 7, 11, 32});
  CHECK(matthews_corrcoef(b) ==
        doctest::Approx((tp * tn - fp * fn) /
                        std::sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))));
  const double n = 100, po = (tp + tn) / n,
               pe = ((tn + fp) * (tn + fn) + (tp + fn) * (tp + fp)) / (n * n);
  CHECK(cohen_kappa(b) == doctest::Approx((po - pe) / (1 - pe)));
  // Both are symmetric in truth and prediction.
  const auto m = matrix(3, {5, 1, 0, 2, 3, 1, 0, 4, 4});
  CHECK(matthews_corrcoef(transpose(m)) == doctest::Approx(matthews_corrcoef(m)));
  CHECK(cohen_kappa(transpose(m)) == doctest::Approx(cohen_kappa(m)));
  // Perfect: 1. Every pixel one class in truth and prediction: undefined.
  const auto perfect = matrix(3, {4, 0, 0, 0, 2, 0, 0, 0, 7});
  CHECK(matthews_corrcoef(perfect) == doctest::Approx(1.0));
  CHECK(cohen_kappa(perfect) == doctest::Approx(1.0));
  const auto one = matrix(3, {0, 0, 0, 0, 9, 0, 0, 0, 0});
  CHECK(std::isnan(matthews_corrcoef(one)));
  CHECK(std::isnan(cohen_kappa(one)));
  CHECK(matthews_corrcoef(one, with(EmptyPolicy::one)) == 1.0);
  CHECK(cohen_kappa(one, with(EmptyPolicy::zero)) == 0.0);
  // Everything predicted as one class, truth varied: MCC undefined, kappa 0.
  const auto flat = matrix(2, {0, 6, 0, 3});
  CHECK(std::isnan(matthews_corrcoef(flat)));
  CHECK(cohen_kappa(flat) == doctest::Approx(0.0));
  // Large counts: finite, in [-1, 1], and unchanged by scaling every count.
  std::vector<int64_t> big;
  for (int64_t v : m.counts()) big.push_back(v * 1000000000000LL + 3);
  std::vector<int64_t> small;
  for (int64_t v : m.counts()) small.push_back(v * 1000000 + 3);
  const double mb = matthews_corrcoef(ConfusionMatrix::from_counts(3, big));
  CHECK(mb == doctest::Approx(matthews_corrcoef(ConfusionMatrix::from_counts(3, small))));
  CHECK(std::abs(mb) <= 1.0);
}

TEST_CASE("scores: per-image averaging skips images with nothing counted") {
  const Shape s{3, 4, 4};
  auto y = Tensor<int64_t>::empty(s), p = Tensor<int64_t>::empty(s);
  for (int64_t i = 0; i < y.numel(); ++i) {
    y[i] = (i / 3) % 3;
    p[i] = (i / 2) % 3;
  }
  for (int64_t i = 16; i < 32; ++i) y[i] = -100;  // image 1: every pixel ignored
  const auto images = confusion_per_image(p, y, 3);
  const auto per = image_scores(images, Score::dice);
  REQUIRE(per.size() == 3);
  CHECK(std::isnan(per[1]));
  CHECK(per[0] == doctest::Approx(average_score(images[0], Score::dice, Average::macro)));
  CHECK(average_score(images, Score::dice, Average::per_image) ==
        doctest::Approx((per[0] + per[2]) / 2));
  // formula: the empty image's NaN propagates; zero: it counts as 0.
  CHECK(std::isnan(
      average_score(images, Score::dice, Average::per_image, with(EmptyPolicy::formula))));
  const auto zero = image_scores(images, Score::dice, with(EmptyPolicy::zero));
  CHECK(zero[1] == 0.0);
  // micro/macro/weighted over the list: on the summed matrix.
  ConfusionMatrix whole(3);
  whole.update(p, y);
  CHECK(average_score(images, Score::iou, Average::macro) ==
        doctest::Approx(average_score(whole, Score::iou, Average::macro)));
}

// An ignore_index inside [0, C) (0: the background left out) names a class whose truth pixels
// are never counted. It is not scored: NaN per class under every policy, and left out of every
// class mean; a prediction of it stays a miss of the pixel's true class. It used to score IoU 0
// wherever it was predicted, which lowered every mean.
TEST_CASE("scores: the ignored class is left out of the per-class scores and every class mean") {
  // truth (rows) never 0 (ignored); column 0 holds predictions of the ignored class.
  //        p0 p1 p2
  //   t0 [  0  0  0 ]
  //   t1 [  2  3  1 ]
  //   t2 [  1  0  4 ]
  ConfusionMatrixOptions o;
  o.ignore_index = 0;
  const std::vector<int64_t> counts = {0, 0, 0, 2, 3, 1, 1, 0, 4};
  const auto m = ConfusionMatrix::from_counts(3, counts, o);
  const auto plain = ConfusionMatrix::from_counts(3, counts);  // ignore_index -100
  // class 1: TP 3, FN 3, FP 0; class 2: TP 4, FN 1, FP 1.
  const double iou1 = 3.0 / 6.0, iou2 = 4.0 / 6.0, rec1 = 3.0 / 6.0, rec2 = 4.0 / 5.0;
  for (EmptyPolicy e :
       {EmptyPolicy::skip, EmptyPolicy::formula, EmptyPolicy::one, EmptyPolicy::zero}) {
    CAPTURE(static_cast<int>(e));
    const auto iou = class_scores(m, Score::iou, with(e));
    CHECK(std::isnan(iou[0]));
    CHECK(iou[1] == doctest::Approx(iou1));
    CHECK(iou[2] == doctest::Approx(iou2));
    CHECK(average_score(m, Score::iou, Average::macro, with(e)) ==
          doctest::Approx((iou1 + iou2) / 2));
    CHECK(average_score(m, Score::recall, Average::weighted, with(e)) ==
          doctest::Approx((6 * rec1 + 5 * rec2) / 11));
    CHECK(average_score(std::vector<ConfusionMatrix>{m}, Score::iou, Average::per_image, with(e)) ==
          doctest::Approx((iou1 + iou2) / 2));
    // Without the ignore_index class 0 is scored: IoU 0 (TP 0, FP 3) in the mean.
    CHECK(average_score(plain, Score::iou, Average::macro, with(e)) ==
          doctest::Approx((0.0 + iou1 + iou2) / 3));
  }
  // The column still counts: the 3 pixels predicted as class 0 are misses.
  CHECK(pixel_accuracy(m) == doctest::Approx(7.0 / 11.0));
  CHECK(average_score(m, Score::iou, Average::micro) ==
        average_score(plain, Score::iou, Average::micro));
  CHECK(cohen_kappa(m) == cohen_kappa(plain));
  const FcnScores f = label_accuracy_score(m);
  CHECK(std::isnan(f.iou[0]));
  CHECK(f.mean_iou == doctest::Approx((iou1 + iou2) / 2));
  CHECK(f.mean_class_accuracy == doctest::Approx((rec1 + rec2) / 2));
  CHECK(f.fw_iou == doctest::Approx(label_accuracy_score(plain).fw_iou));
  CHECK(label_accuracy_score(plain).mean_iou == doctest::Approx((0.0 + iou1 + iou2) / 3));
  // Labels through update: the same matrix.
  ConfusionMatrix streamed(3, o);
  streamed.update(Tensor<int64_t>::from({0, 1, 2, 0}, {4}),
                  Tensor<int64_t>::from({1, 1, 2, 0}, {4}));
  CHECK(streamed.count(0, 0) == 0);  // the ignored truth pixel is not counted
  CHECK(std::isnan(class_scores(streamed, Score::dice)[0]));
  CHECK(average_score(streamed, Score::dice, Average::macro) ==
        doctest::Approx((2.0 / 3.0 + 1.0) / 2));
}

TEST_CASE("scores: fw_iou leaves out an ignored class whose row was counted elsewhere") {
  // update never counts a truth pixel of the ignored class, but from_counts (a histogram made
  // elsewhere) may: row 0 holds 55 such pixels. fw_iou leaves them out with the class, as the
  // weighted mean does, instead of adding 55/117 times the ignored class's NaN IoU.
  ConfusionMatrixOptions o;
  o.ignore_index = 0;
  const auto m = ConfusionMatrix::from_counts(3, {50, 2, 3, 1, 20, 4, 2, 5, 30}, o);
  const double iou1 = 20.0 / (25 + 27 - 20), iou2 = 30.0 / (37 + 37 - 30);
  const FcnScores f = label_accuracy_score(m);
  CHECK(std::isnan(f.iou[0]));
  CHECK(f.mean_iou == doctest::Approx((iou1 + iou2) / 2));
  CHECK(f.fw_iou == doctest::Approx((25 * iou1 + 37 * iou2) / 62).epsilon(1e-14));
  CHECK(f.fw_iou ==
        doctest::Approx(average_score(m, Score::iou, Average::weighted)).epsilon(1e-14));
  // Only the ignored class has truth: a sum over no classes, as with nothing counted.
  const auto only_ignored = ConfusionMatrix::from_counts(2, {7, 3, 0, 0}, o);
  CHECK(label_accuracy_score(only_ignored).fw_iou == 0.0);
}

TEST_CASE("scores: bad arguments") {
  const auto m = matrix(2, {1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(class_scores(m, Score::fbeta, with(EmptyPolicy::skip, -1.0)),
                       "class_scores: options.beta is -1; it must be finite and >= 0", Error);
  CHECK_THROWS_WITH_AS(
      average_score(m, Score::fbeta, Average::macro,
                    with(EmptyPolicy::skip, std::numeric_limits<double>::quiet_NaN())),
      doctest::Contains("options.beta is nan"), Error);
  CHECK_THROWS_WITH_AS(average_score(m, Score::iou, Average::per_image),
                       doctest::Contains("average per_image needs one matrix per image"), Error);
  CHECK_THROWS_WITH_AS(average_score(std::vector<ConfusionMatrix>{}, Score::iou, Average::macro),
                       "average_score: images is empty; there is nothing to score", Error);
  CHECK_THROWS_WITH_AS(image_scores({ConfusionMatrix(2), ConfusionMatrix(3)}, Score::iou),
                       "image_scores: images[1] has 3 classes; images[0] has 2", Error);
  // per_image goes through image_scores' loop, but the errors name the function called.
  CHECK_THROWS_WITH_AS(
      average_score(std::vector<ConfusionMatrix>{}, Score::iou, Average::per_image),
      "average_score: images is empty; there is nothing to score", Error);
  CHECK_THROWS_WITH_AS(
      average_score({ConfusionMatrix(2), ConfusionMatrix(3)}, Score::iou, Average::per_image),
      "average_score: images[1] has 3 classes; images[0] has 2", Error);
  CHECK(std::string(score_name(Score::fbeta)) == "fbeta");
  CHECK(std::string(average_name(Average::per_image)) == "per_image");
}
