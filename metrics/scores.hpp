// @brief Segmentation scores from a ConfusionMatrix: pytorch-fcn's label_accuracy_score,
// and per-class IoU, Dice/F1, precision, recall and F-beta with micro, macro, weighted and
// per-image averaging; Cohen's kappa and the multi-class Matthews correlation.
//
// Notation: hist[t][p] (metrics/confusion_matrix.hpp), n = sum of all counts, and for class c
//   TP_c = hist[c][c],  FN_c = sum_p hist[c][p] - TP_c,  FP_c = sum_t hist[t][c] - TP_c,
//   support_c = TP_c + FN_c (pixels of class c in the truth; "freq" times n in pytorch-fcn).
//
// clang-format off
// Per-class scores (Score):
//   iou        TP / (TP + FP + FN)                       (Jaccard; pytorch-fcn's iu)
//   dice       2 TP / (2 TP + FP + FN)                   (= F1)
//   precision  TP / (TP + FP)
//   recall     TP / (TP + FN)                            (per-class accuracy; pytorch-fcn's acc_cls)
//   fbeta      (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)   (b = options.beta; b = 1 is dice,
//                                                        b = 0 is precision)
// clang-format on
//
// An undefined score (0/0) takes the value of options.empty (core/reduction.hpp's EmptyPolicy):
//   skip (default, pytorch-fcn): NaN, and left out of every mean (numpy's nanmean);
//   formula: NaN, and a mean that includes it is NaN;
//   one / zero: 1 / 0, and counted in the means.
// For iou, dice and fbeta (b > 0) a score is undefined exactly when the class is absent from both
// truth and prediction. precision is also undefined for a class in the truth that is never
// predicted, recall for a class predicted but absent from the truth (sklearn's zero_division
// covers the same cases).
//
// The ignored class: an ignore_index inside [0, C) (ConfusionMatrixOptions, e.g. 0 to leave the
// background out) names a class whose truth pixels are never counted. It is not scored: NaN in
// class_scores and label_accuracy_score's iou whatever the policy, and left out of every class
// mean (macro, weighted, per_image, acc_cls, mean_iu), as torchmetrics' macro average gives it
// weight 0. A prediction of it at a counted pixel stays an error of that pixel's true class (a
// false negative there, and a miss in pixel accuracy, micro, kappa and MCC). Before 2026-12-02
// it was scored: IoU 0 wherever it was predicted, which lowered every mean.
//
// Averages (Average), all over the classes' values after the policy:
//   micro     the score of the pooled counts TP = sum_c TP_c, FP = sum_c FP_c, FN = sum_c FN_c.
//             Every pixel has one true and one predicted label, so FP = FN = n - TP, and micro
//             precision = recall = dice = fbeta = pixel accuracy; micro iou = TP / (2n - TP).
//             0/0 (no pixel counted) follows the policy (NaN for skip and formula).
//   macro     the mean over the classes (kept classes for skip; NaN when none is kept).
//   weighted  sum_c support_c s_c / sum_c support_c over the kept classes (sklearn's
//             "weighted"); NaN when their support is 0. For iou with skip this is pytorch-fcn's
//             fwavacc, except that fwavacc is 0 when nothing is counted.
//   per_image each image's macro score from its own matrix, then the mean over the images
//             (MONAI's metric reduction "mean": classes first, then the batch); an image whose
//             score is NaN under skip (nothing counted in it) is left out; NaN when none is kept.
//             Needs the per-image matrices (confusion_per_image). The overload on one matrix
//             refuses it; the overload on a list computes micro, macro and weighted on the sum
//             of the list.
//
// Whole-matrix scores:
//   pixel_accuracy   trace / n (pytorch-fcn's acc); NaN when n = 0.
//   cohen_kappa      (p_o - p_e) / (1 - p_e), p_o = trace / n, p_e = sum_c support_c pred_c / n^2;
//                    computed as (n trace - sum_c support_c pred_c) / sum_c support_c (n - pred_c),
//                    whose denominator is a sum of non-negative terms (no cancellation).
//   matthews_corrcoef  Gorodkin's R_K (2004), the multi-class MCC:
//                    (n trace - sum_c pred_c support_c) /
//                    sqrt(sum_c pred_c (n - pred_c) * sum_c support_c (n - support_c)),
//                    each factor of the denominator written as a sum of non-negative terms
//                    (it equals n^2 - sum_c pred_c^2). For two classes it is the usual MCC.
//   Undefined (0/0): kappa when every counted pixel is one and the same class in truth and
//   prediction, MCC when every counted pixel is one class in the truth or one class in the
//   prediction; both when n = 0. Then NaN under skip and formula, 1 or 0 under one and zero
//   (sklearn gives NaN for kappa, 0 for MCC).
//   Everything is computed in double from the int64 counts.
//
// label_accuracy_score(cm) returns pytorch-fcn's label_accuracy_score on the same counts, to the
// last bits (numpy's nanmean and sum add in another order; the golden test allows 1e-12; a
// class ignored inside [0, C), which pytorch-fcn has no notion of, is left out as above):
// acc = trace / n; acc_cls = nanmean_c(TP_c / support_c); iu_c = TP_c / (support_c +
// pred_c - TP_c); mean_iu = nanmean(iu); fwavacc = sum over support_c > 0 of (support_c / n)
// iu_c, the ignored class and its support left out of the sum and of n. With nothing counted: acc,
// acc_cls and mean_iu are NaN, fwavacc is 0 (a sum over no classes), as numpy gives. Per-class NaN
// entries stay NaN whatever the options.
//
// Errors (segloss::Error): options.beta not finite or negative; Average::per_image on one matrix;
// an empty list of matrices; matrices with different class counts.
#pragma once

#include <vector>

#include "../core/reduction.hpp"
#include "confusion_matrix.hpp"

namespace segloss {

enum class Score { iou, dice, precision, recall, fbeta };
enum class Average { micro, macro, weighted, per_image };
namespace detail {
inline constexpr const char* kScoreNames[] = {"iou", "dice", "precision", "recall", "fbeta"};
inline constexpr const char* kAverageNames[] = {"micro", "macro", "weighted", "per_image"};
}  // namespace detail

const char* score_name(Score s);
const char* average_name(Average a);

struct ScoreOptions {
  EmptyPolicy empty = EmptyPolicy::skip;
  double beta = 1.0;  // fbeta only
};

// One value per class (C); undefined ones per options.empty (NaN for skip and formula); NaN for
// the ignored class.
std::vector<double> class_scores(const ConfusionMatrix& cm, Score score,
                                 const ScoreOptions& options = {});

// micro, macro or weighted over one matrix.
double average_score(const ConfusionMatrix& cm, Score score, Average average,
                     const ScoreOptions& options = {});
// per_image over the images' matrices; micro, macro or weighted over their sum.
double average_score(const std::vector<ConfusionMatrix>& images, Score score, Average average,
                     const ScoreOptions& options = {});
// Each image's macro score (N values), as per_image averages them.
std::vector<double> image_scores(const std::vector<ConfusionMatrix>& images, Score score,
                                 const ScoreOptions& options = {});

double pixel_accuracy(const ConfusionMatrix& cm);
double cohen_kappa(const ConfusionMatrix& cm, const ScoreOptions& options = {});
double matthews_corrcoef(const ConfusionMatrix& cm, const ScoreOptions& options = {});

// pytorch-fcn's four scores and its per-class IoU.
struct FcnScores {
  double pixel_accuracy = 0;       // acc
  double mean_class_accuracy = 0;  // acc_cls
  double mean_iou = 0;             // mean_iu
  double fw_iou = 0;               // fwavacc
  std::vector<double> iou;         // iu, NaN for a class absent from truth and prediction
                                   // and for the ignored class
};
FcnScores label_accuracy_score(const ConfusionMatrix& cm);

}  // namespace segloss
