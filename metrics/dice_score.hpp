// @brief Thresholded Dice score: the metric that judges a binary or multilabel segmentation
// (no gradient).
//
// Input: pred (N, C, spatial...) with 1 to 3 spatial axes, float or double, holding logits
// (activation = sigmoid, default) or probabilities / masks (activation = none); target t of the
// same shape and type, normally 0/1.
//
// Each element gets a hard prediction
//   q_i = [p_i > threshold]          strictly greater, as the seeds' (probs > threshold)
//   q_i = round(p_i)                 with round = true: torch.round, half to even
// where p_i = sigmoid(x_i) computed in T (or x_i). On probabilities in [0, 1] round(p) is
// [p > 0.5] (0.5 rounds to 0); on other values it is the nearest integer (2.5 -> 2).
// Each score j (one per image and channel, or per image with per_channel = false) sums over
// its pixels, after cropping `border` pixels from every side of every spatial axis:
//   I = sum q t,   P = sum q,   G = sum t,   S = (2 I + smooth_nr) / (P + G + smooth_dr)
// in double (exact counts for binary inputs). The result's mean is the mean of S over the
// scores (images and channels) that count, in index order.
//
// Empty scores. A score is empty when its target and its prediction are both empty
// (P = G = 0); `empty` (core/reduction.hpp) decides what it scores:
//   skip (default): left out of the mean, counted in `skipped`, NaN in `scores`; if every
//                   score is skipped the mean is NaN;
//   formula:        the formula: 0/0 = NaN without smoothing (the seeds' DiceScore), which
//                   makes the mean NaN; smooth_nr / smooth_dr with smoothing (+inf, and a
//                   mean of +inf, with smooth_nr > 0 and smooth_dr = 0);
//   one:            1 (a perfect match);   zero: 0.
// A target that is empty while the prediction is not scores 2*0/(P + smooth_dr) = 0 (or
// smooth_nr / (P + smooth_dr)) by the formula under every policy.
//
// Options and defaults:
//   activation    sigmoid (pred holds logits) | none (probabilities or masks)
//   threshold     0.5; finite, in [0, 1]; unused with round = true (but still checked)
//   round         false; true: torch.round(p) instead of the threshold (albu's dice_clamp)
//   smooth_nr     0; added to 2 I              smooth_dr  0; added to P + G
//   per_channel   true: one score per (image, channel), scores shaped (N, C);
//                 false: one per image over all its channels, scores shaped (N), as the
//                 seeds' view(num, -1)
//   border        0; pixels cropped from each end of every spatial axis (albu's [6:-6])
//   empty         EmptyPolicy::skip
//   clamp         false; true: the mean is clamped to [0, 1] (albu's dice_clamp, whose
//                 smooth terms let an empty image score 2)
//   check_binary  false; true: every scored target value must be 0 or 1, and with
//                 activation = none every scored pred value too (dice_score_np's asserts);
//                 otherwise an error names the first bad value and its index. Logits are
//                 not checked (any value is a valid logit).
//
// Presets that reproduce the seeds (/work/shared/seeds/segmentation-losses-note.md; tested
// against the seeds' own code in tests/test_golden_dice_score.cpp):
//   carvana(threshold)   Carvana DiceScore(threshold)(logits, labels): sigmoid, > threshold,
//                        per image, no smoothing, empty = formula (NaN for an empty image)
//   carvana_np()         dice_score_np(predicted_masks, labels): masks in, per image, no
//                        smoothing, check_binary; empty = formula (the seed asserts instead)
//   pytorch_unet()       Pytorch-UNet eval_net: sigmoid > 0.6, then dice_coeff, whose
//                        DiceCoeff is 2 (I + 1e-4) / (P + G + 1e-4): smooth_nr 2e-4,
//                        smooth_dr 1e-4, per image (an empty image scores 2), mean over images
//   albu_dice_clamp()    albu's dice_clamp(sigmoid(logits)[:, :, 6:-6, 6:-6], ...): sigmoid,
//                        round, smooth_nr 2, smooth_dr 1, per image, border 6, clamp
//
// NaN: a NaN logit or probability is not > threshold (q = 0), as in PyTorch; with round it
// propagates (round(NaN) = NaN). A NaN target propagates into its score. check_binary rejects
// both.
//
// Errors (segloss::Error): rank outside 3..5, a zero extent, pred and target shapes that
// differ, a threshold that is NaN or outside [0, 1], negative or non-finite smooth terms, a
// negative border or one that leaves no pixel on some axis, a non-binary value under
// check_binary, pred and target on different devices.
//
// CUDA: pred and target on the GPU run one pass over the scored boxes on the current stream
// (backends/cuda/dice_score.cu: the same hard prediction, the sums in double in a fixed order,
// the first bad value found by an integer atomicMin), then the scores on the host as above: the
// call waits for the stream. The counts are exact for binary targets; a logit within a few ulps
// of logit(threshold) may decide differently on a GPU, whose exp is not the host's.
#pragma once

#include <cstdint>
#include <limits>

#include "../core/reduction.hpp"
#include "../core/tensor.hpp"

namespace segloss {

struct DiceScoreOptions {
  Activation activation = Activation::sigmoid;
  double threshold = 0.5;   // q = [p > threshold]
  bool round = false;       // q = torch.round(p) instead
  double smooth_nr = 0.0;   // added to 2 I
  double smooth_dr = 0.0;   // added to P + G
  bool per_channel = true;  // false: one score per image over its channels
  int border = 0;           // pixels cropped from each end of every spatial axis
  EmptyPolicy empty = EmptyPolicy::skip;
  bool clamp = false;         // clamp the mean to [0, 1]
  bool check_binary = false;  // target (and pred with activation none) must be 0/1

  static DiceScoreOptions carvana(double threshold = 0.5);
  static DiceScoreOptions carvana_np();
  static DiceScoreOptions pytorch_unet();
  static DiceScoreOptions albu_dice_clamp();
};

struct DiceScoreResult {
  double mean = std::numeric_limits<double>::quiet_NaN();  // over the counted scores
  Tensor<double> scores;                                   // (N, C) or (N); NaN for a skipped score
  Tensor<double> intersection;                             // I per score, same shape
  Tensor<double> prediction;                               // P per score
  Tensor<double> target;                                   // G per score
  int64_t counted = 0;                                     // scores in the mean
  int64_t skipped = 0;  // empty scores left out (EmptyPolicy::skip)
  int64_t empty = 0;    // scores with P = G = 0, whatever the policy
};

template <class T>
DiceScoreResult dice_score(const Tensor<T>& pred, const Tensor<T>& target,
                           const DiceScoreOptions& options = {});

}  // namespace segloss
