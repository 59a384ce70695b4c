// An enum option outside its enumerators (Reduction(7), made by a cast or by copying other
// bytes) is an error naming the function, the option and the values it may take, in every loss
// and metric, fused and composed. Before, each took whichever branch its code had for an unknown
// value: Reduction(7) acted as sum in some losses and as mean in others.
#include <doctest/doctest.h>

#include <string>

#include "helpers.hpp"

using namespace segloss;
using segloss::ad::Tape;
using segloss::ad::Var;
using testing::error_of;

namespace {

template <class E>
E bad(int v) {
  return static_cast<E>(v);
}

const std::string kReductions = "none (0), mean (1), sum (2)";
const std::string kEmpty = "formula (0), one (1), zero (2), skip (3)";

const Shape kShape{2, 3, 4, 5};
const Shape kLabelShape{2, 4, 5};

}  // namespace

TEST_CASE("enum options: the class-axis losses refuse values outside their enums") {
  const auto x = testing::randn<double>(kShape, 11);
  const auto y = testing::labels<int64_t>(kLabelShape, 3, 12);

  CrossEntropyOptions<double> ce;
  ce.reduction = bad<Reduction>(7);
  CHECK(error_of([&] { cross_entropy(x, y, ce); }) ==
        "cross_entropy: options.reduction is 7; it must be one of " + kReductions);
  CHECK(error_of([&] { cross_entropy_statistics(x, y, ce); }) ==
        "cross_entropy_statistics: options.reduction is 7; it must be one of " + kReductions);
  ce = {};
  ce.mean_over = bad<MeanOver>(2);
  CHECK(error_of([&] { cross_entropy_value_and_grad(x, y, ce); }) ==
        "cross_entropy_value_and_grad: options.mean_over is 2; it must be one of weights (0), "
        "valid_pixels (1)");
  ce = {};
  ce.all_ignored = bad<AllIgnored>(-1);
  CHECK(error_of([&] { cross_entropy(x, y, ce); }) ==
        "cross_entropy: options.all_ignored is -1; it must be one of zero (0), nan (1)");

  SoftmaxFocalOptions<double> sf;
  sf.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { softmax_focal(x, y, sf); }) ==
        "softmax_focal: options.reduction is 3; it must be one of " + kReductions);

  SoftmaxOverlapOptions<double> sd;
  sd.empty = bad<EmptyPolicy>(4);
  CHECK(error_of([&] { softmax_dice(x, y, sd); }) ==
        "softmax_dice: options.empty is 4; it must be one of " + kEmpty);
  sd = {};
  sd.reduction = bad<Reduction>(-1);
  CHECK(error_of([&] { softmax_jaccard(x, y, sd); }) ==
        "softmax_jaccard: options.reduction is -1; it must be one of " + kReductions);

  GeneralizedDiceOptions<double> gd;
  gd.w_type = bad<GeneralizedDiceWeight>(3);
  CHECK(error_of([&] { generalized_dice(x, y, gd); }) ==
        "generalized_dice: options.w_type is 3; it must be one of square (0), simple (1), "
        "uniform (2)");

  LovaszSoftmaxOptions<double> ls;
  ls.classes = bad<LovaszClasses>(2);
  CHECK(error_of([&] { lovasz_softmax(x, y, ls); }) ==
        "lovasz_softmax: options.classes is 2; it must be one of present (0), all (1)");

  // The combined losses name the term the option belongs to.
  CeDiceOptions<double> cd;
  cd.ce.mean_over = bad<MeanOver>(2);
  CHECK(error_of([&] { ce_dice(x, y, cd); }) ==
        "ce_dice: options.ce.mean_over is 2; it must be one of weights (0), valid_pixels (1)");
  DiceFocalOptions<double> df;
  df.focal.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { dice_focal(x, y, df); }) ==
        "dice_focal: options.focal.reduction is 3; it must be one of " + kReductions);
  df = {};
  df.dice.empty = bad<EmptyPolicy>(9);
  CHECK(error_of([&] { dice_focal(x, y, df); }) ==
        "dice_focal: options.dice.empty is 9; it must be one of " + kEmpty);
}

TEST_CASE("enum options: the binary losses refuse values outside their enums") {
  const auto x = testing::randn<double>(kShape, 13);
  const auto z = testing::mask<double>(kShape, 14);
  const auto p = testing::uniform<double>(kShape, 15, 0.05, 0.95);

  BceWithLogitsOptions<double> b;
  b.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { bce_with_logits(x, z, b); }) ==
        "bce_with_logits: options.reduction is 3; it must be one of " + kReductions);
  b = {};
  b.mean_over = bad<BceMeanOver>(5);
  CHECK(error_of([&] { bce_with_logits_value_and_grad(x, z, b); }) ==
        "bce_with_logits_value_and_grad: options.mean_over is 5; it must be one of elements (0), "
        "weight_sum (1)");

  BinaryCrossEntropyOptions<double> bce;
  bce.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { binary_cross_entropy(p, z, bce); }) ==
        "binary_cross_entropy: options.reduction is 3; it must be one of " + kReductions);

  SigmoidFocalOptions<double> f;
  f.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { sigmoid_focal(x, z, f); }) ==
        "sigmoid_focal: options.reduction is 3; it must be one of " + kReductions);

  OverlapOptions<double> o;
  o.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { soft_dice(x, z, o); }) ==
        "soft_dice: options.reduction is 3; it must be one of " + kReductions);
  o = {};
  o.activation = bad<Activation>(2);
  CHECK(error_of([&] { soft_jaccard(x, z, o); }) ==
        "soft_jaccard: options.activation is 2; it must be one of sigmoid (0), none (1)");
  o = {};
  o.weighting = bad<OverlapWeighting>(2);
  CHECK(error_of([&] { soft_dice(x, z, o); }) ==
        "soft_dice: options.weighting is 2; it must be one of squared (0), on_inputs (1)");
  TverskyOptions<double> t;
  t.empty = bad<EmptyPolicy>(4);
  CHECK(error_of([&] { tversky(x, z, t); }) ==
        "tversky: options.empty is 4; it must be one of " + kEmpty);

  LovaszHingeOptions<double> lh;
  lh.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { lovasz_hinge(x, z, lh); }) ==
        "lovasz_hinge: options.reduction is 3; it must be one of " + kReductions);

  BceDiceOptions<double> bd;
  bd.bce.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { bce_dice(x, z, bd); }) ==
        "bce_dice: options.bce.reduction is 3; it must be one of " + kReductions);
  bd = {};
  bd.dice.empty = bad<EmptyPolicy>(4);
  CHECK(error_of([&] { bce_dice(x, z, bd); }) ==
        "bce_dice: options.dice.empty is 4; it must be one of " + kEmpty);
}

TEST_CASE("enum options: the composed (tape) losses refuse them too") {
  const auto x = testing::randn<double>(kShape, 16);
  const auto z = testing::mask<double>(kShape, 17);
  const auto y = testing::labels<int64_t>(kLabelShape, 3, 18);
  Tape<double> tape;
  const Var<double> v = tape.leaf(x);

  CrossEntropyOptions<double> ce;
  ce.reduction = bad<Reduction>(7);
  CHECK(error_of([&] { composed::cross_entropy(tape, v, y, ce); }) ==
        "composed::cross_entropy: options.reduction is 7; it must be one of " + kReductions);
  SigmoidFocalOptions<double> f;
  f.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { composed::sigmoid_focal(tape, v, z, f); }) ==
        "composed::sigmoid_focal: options.reduction is 3; it must be one of " + kReductions);
  SoftmaxFocalOptions<double> sf;
  sf.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { composed::softmax_focal(tape, v, y, sf); }) ==
        "composed::softmax_focal: options.reduction is 3; it must be one of " + kReductions);
  GeneralizedDiceOptions<double> gd;
  gd.w_type = bad<GeneralizedDiceWeight>(3);
  CHECK(error_of([&] { composed::generalized_dice(tape, v, y, gd); }) ==
        "composed::generalized_dice: options.w_type is 3; it must be one of square (0), "
        "simple (1), uniform (2)");
  OverlapOptions<double> o;
  o.empty = bad<EmptyPolicy>(4);
  CHECK(error_of([&] { composed::soft_dice(tape, v, z, o); }) ==
        "composed::soft_dice: options.empty is 4; it must be one of " + kEmpty);
  LovaszHingeOptions<double> lh;
  lh.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { composed::lovasz_hinge(tape, v, z, lh); }) ==
        "composed::lovasz_hinge: options.reduction is 3; it must be one of " + kReductions);
  const auto p = testing::uniform<double>(kShape, 19, 0.05, 0.95);
  const Var<double> vp = tape.leaf(p);
  BinaryCrossEntropyOptions<double> bce;
  bce.reduction = bad<Reduction>(3);
  CHECK(error_of([&] { composed::binary_cross_entropy(tape, vp, z, bce); }) ==
        "composed::binary_cross_entropy: options.reduction is 3; it must be one of " + kReductions);

  // The combined losses name the term the option belongs to, before their none check.
  CeDiceOptions<double> cd;
  cd.ce.reduction = bad<Reduction>(7);
  CHECK(error_of([&] { composed::ce_dice(tape, v, y, cd); }) ==
        "composed::ce_dice: options.ce.reduction is 7; it must be one of " + kReductions);
  DiceFocalOptions<double> df;
  df.focal.reduction = bad<Reduction>(4);
  CHECK(error_of([&] { composed::dice_focal(tape, v, y, df); }) ==
        "composed::dice_focal: options.focal.reduction is 4; it must be one of " + kReductions);
  BceDiceOptions<double> bd;
  bd.dice.reduction = bad<Reduction>(5);
  CHECK(error_of([&] { composed::bce_dice(tape, v, z, bd); }) ==
        "composed::bce_dice: options.dice.reduction is 5; it must be one of " + kReductions);
}

TEST_CASE("enum options: the metrics refuse values outside their enums") {
  const auto y = testing::labels<int64_t>(kLabelShape, 3, 20);
  ConfusionMatrixOptions co;
  co.out_of_range = bad<OutOfRange>(2);
  CHECK(error_of([&] { ConfusionMatrix cm(3, co); }) ==
        "ConfusionMatrix: options.out_of_range is 2; it must be one of error (0), drop (1)");
  CHECK(error_of([&] { confusion_per_image(y, y, 3, co); }) ==
        "confusion_per_image: options.out_of_range is 2; it must be one of error (0), drop (1)");

  ConfusionMatrix cm(3);
  cm.update(y, y);
  CHECK(error_of([&] { class_scores(cm, bad<Score>(5)); }) ==
        "class_scores: score is 5; it must be one of iou (0), dice (1), precision (2), recall "
        "(3), fbeta (4)");
  CHECK(error_of([&] { average_score(cm, Score::iou, bad<Average>(4)); }) ==
        "average_score: average is 4; it must be one of micro (0), macro (1), weighted (2), "
        "per_image (3)");
  ScoreOptions so;
  so.empty = bad<EmptyPolicy>(4);
  CHECK(error_of([&] { cohen_kappa(cm, so); }) ==
        "cohen_kappa: options.empty is 4; it must be one of " + kEmpty);
  CHECK(error_of([&] { class_scores(cm, Score::dice, so); }) ==
        "class_scores: options.empty is 4; it must be one of " + kEmpty);
  // In range, the same matrix scores (the checks refuse only what is outside).
  CHECK(average_score(cm, Score::iou, Average::macro) == 1.0);

  const auto m = testing::mask<double>({1, 1, 6, 7}, 21);
  DiceScoreOptions dso;
  dso.activation = bad<Activation>(2);
  CHECK(error_of([&] { dice_score(m, m, dso); }) ==
        "dice_score: options.activation is 2; it must be one of sigmoid (0), none (1)");
  DistanceTransformOptions dto;
  dto.to = bad<DistanceTo>(2);
  CHECK(error_of([&] { distance_transform(m, dto); }) ==
        "distance_transform: options.to is 2; it must be one of background (0), foreground (1)");
  SurfaceDistanceOptions sdo;
  sdo.empty = bad<SurfaceEmpty>(2);
  CHECK(error_of([&] { surface_distance(m, m, sdo); }) ==
        "surface_distance: options.empty is 2; it must be one of monai (0), bounded (1)");
}
