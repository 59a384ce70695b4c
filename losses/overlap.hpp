// @brief The overlap losses for binary and multilabel segmentation: soft Dice, soft Jaccard
// (IoU) and Tversky (with its focal form), on logits with a sigmoid per channel or on
// probabilities. The options and the math they share are here; soft_dice.hpp, soft_jaccard.hpp
// and tversky.hpp declare the three losses.
//
// Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double (also float16
// and bfloat16: losses/half_logits.hpp), and target t of the same shape and type with
// values in [0, 1]. p = sigmoid(x), or p = x when activation = none.
//
// Statistics. One score j per image and channel (per_image, the default) or per channel over
// the whole batch. Over the pixels i of score j, with k = 2 when `squared`, else 1:
//   I = sum wI_i p_i t_i,   P = sum wP_i p_i^k,   T = sum wP_i t_i^k
// where the pixel weight w (option `weight`, else 1) enters as
//   weighting = squared (Carvana WeightedSoftDiceLoss): wI = w^2, wP = w^2;
//   weighting = on_inputs (albu dice_loss: p and t multiplied by w before the sums):
//               wI = w^2, wP = w^k. It is albu's Dice form; with Jaccard and Tversky, whose
//               FP = P - I = sum w p (w^(k-1) - w t), a weight above 1 can make FP negative
//               (a perfect prediction then scores above 1): keep such weights <= 1 there.
//
// Score. S = (a_n I + smooth_nr) / D with D = a_I I + a_P P + a_T T + smooth_dr:
//   soft Dice:    a_n = 2, a_I = 0,           a_P = 1,     a_T = 1     (2I / (P + T))
//   soft Jaccard: a_n = 1, a_I = -1,          a_P = 1,     a_T = 1     (I / (P + T - I))
//   Tversky:      a_n = 1, a_I = 1 - al - be, a_P = alpha, a_T = beta  (I / (I + al FP + be FN))
// (with FP = P - I and FN = T - I; alpha = beta = 1/2 is Dice, 1 and 1 is Jaccard).
//
// Loss. Scores of channel 0 are left out when include_background = false. A score whose
// target sum T is 0 follows `empty` (core/reduction.hpp): formula (default) keeps S as
// computed; one and zero fix S to 1 or 0 (no gradient flows from it); skip drops it. With
// n the number of scores kept, c_j the class weight of score j's channel (1 by default):
//   linear form (default):  l_j = 1 - S_j, or max(1 - S_j, 0)^gamma when gamma != 1 (focal);
//       mean: (1/n) sum_j c_j l_j;   sum: sum_j c_j l_j;   none: c_j l_j per score.
//   log form (log = true, Carvana is_log_dice):
//       mean: -log M with M = (1/n) sum_j c_j S_j (the log of the mean score, as the seed);
//       sum: sum_j -c_j log S_j;   none: -c_j log S_j.
//   clamp form (clamp = true, albu dice_loss): as the log form with 1 - clamp(., 0, 1) in
//       place of -log: mean: 1 - clamp(M, 0, 1).
// Reduction none returns shape (N, C) per image or (C) for the batch, with 0 for the scores
// left out. When no score is kept (all skipped), the loss is 0 with a zero gradient.
//
// Gradient (docs/gradients.md derives it). With G_j = dL/dS_j from the form above,
//   dS/dI = (a_n D - a_I N) / D^2,   dS/dP = -a_P N / D^2        (N = a_n I + smooth_nr)
//   dL/dx_i = [G_j dS/dI wI_i t_i + G_j dS/dP wP_i k p_i^(k-1)] dp_i/dx_i
// The fused path makes one pass for the sums and one for the gradient, with no per-pixel
// temporary; bce_dice runs a BCE term inside the same two passes.
//
// Edge cases: the log form of a score fixed at 0 (empty = zero) is -log 0 = inf with reduction
// sum or none; so is, with smooth_nr = 0, that of a score whose target is empty (S = 0 under
// empty = formula, the default), and its pixels' gradient is NaN (G = -inf times t = 0): with
// the log form and smooth_nr = 0, use empty = skip or one, or reduction mean (whose log goes
// through the mean score). With smooth_dr = 0, a score whose D is 0 is smooth_nr / 0 = +inf when
// smooth_nr > 0 (the default): its loss is -inf in the linear and log forms (0 in the focal
// and clamp forms), and the gradient of its pixels is NaN (dS/dI and dS/dP are 0/0 or
// infinite, times p and t that are 0); with smooth_nr = 0 too, the score is 0/0 = NaN. Either
// propagates (keep smooth_dr > 0, or choose an `empty` policy other than formula). The focal
// form's derivative for gamma < 1 grows without bound as S -> 1 and is 0 once S >= 1. NaN
// inputs propagate.
// Errors (segloss::Error) for: rank outside 3..5, a zero extent, shape mismatch, negative or
// non-finite smooth terms, a weight that does not broadcast, a class_weight not of shape (C)
// or with negative or non-finite values, include_background = false with C = 1, gamma <= 0 or
// non-finite, log or clamp with gamma != 1, log with clamp, grad_out of the wrong shape.
//
// CUDA (docs/cuda.md). Logits on a CUDA device run soft_dice, soft_jaccard and tversky (forward,
// backward, value_and_grad) on it, with target and grad_out there too. Supported there:
// reduction (mean, sum, none), smooth_nr, smooth_dr, per_image, activation, squared,
// include_background, and class_weight (a CUDA tensor; its values are checked on the device:
// a bad one makes the value NaN, and a host value raises), every empty policy, gamma, log and
// clamp (OverlapInfo under an empty policy other than formula waits for the stream), weight (a
// CUDA tensor), and the statistics / finalize split (statistics waits and returns host sums;
// finalize uploads the reduced ones: docs/distributed.md).
// The sums are deterministic, in another order than the CPU's: the two agree to rounding. The
// forward's value and the value_and_grad form with `value` stay on the device (no wait).
#pragma once

#include <cstdint>
#include <vector>

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

// How a per-pixel weight w enters the overlap sums (see the header comment).
enum class OverlapWeighting {
  squared,    // w^2 in every sum (Carvana WeightedSoftDiceLoss)
  on_inputs,  // p and t multiplied by w before the sums (albu dice_loss)
};
namespace detail {
inline constexpr const char* kOverlapWeightingNames[] = {"squared", "on_inputs"};
}  // namespace detail

template <class T>
struct OverlapOptions {
  Reduction reduction = Reduction::mean;
  double smooth_nr = 1e-5;  // added to the numerator
  double smooth_dr = 1e-5;  // added to the denominator
  bool per_image = true;    // false: one score per channel, sums over the whole batch
  Activation activation = Activation::sigmoid;
  bool squared = false;  // sums of p^2 and t^2 in the denominator (V-Net; MONAI squared_pred)
  Tensor<T> weight;      // per pixel; broadcasts to the input by PyTorch's rule; undefined: 1
  OverlapWeighting weighting = OverlapWeighting::squared;
  Tensor<T> class_weight;          // shape (C) even without the background (MONAI: C - 1); >= 0
  bool include_background = true;  // false: channel 0 is left out
  EmptyPolicy empty = EmptyPolicy::formula;  // for a score whose target sum is 0
  double gamma = 1.0;  // focal form: l = max(1 - S, 0)^gamma per score, before the mean
  bool log = false;    // log form: -log of the (mean) score
  bool clamp = false;  // clamp form: 1 - clamp((mean) score, 0, 1)
};

// What a forward or value_and_grad call kept: the scores in the loss, and those skipped.
struct OverlapInfo {
  int64_t kept = 0;
  int64_t skipped = 0;
};

// Exact losses across data-parallel shards: the statistics / finalize split. When a batch is
// split across processes (each holding some of its images), each loss X of the family has
//   1. OverlapStatistics st = X_statistics(logits, target, options);       on every shard
//   2. the caller sums st.global element-wise across the shards (e.g. MPI_Allreduce with
//      MPI_SUM of st.size() doubles at st.data(), in place);
//   3. double loss = X_finalize(logits, target, st, grad, options);        on every shard
// and every shard gets the loss of the whole batch and the gradient of its own logits: the
// single-process values up to the order of the additions. Reduction mean or sum.
//   per_image = false: global = the sums I, P, T of each channel (3 C values); every score
//     needs every shard's pixels.
//   per_image = true: the scores are the shard's own; global = the totals the mean needs:
//     the number of scores kept, sum_j c_j l_j and sum_j c_j S_j (3 values). local keeps the
//     shard's per-plane sums for its gradient.
// The softmax overlap losses and generalized_dice (softmax_overlap.hpp, generalized_dice.hpp)
// and the combined losses bce_dice and ce_dice use the same type (their headers give the
// layout). docs/distributed.md has the protocol. finalize checks the source (another loss's
// statistics, such as soft_jaccard's in soft_dice_finalize, are an error), the sizes, per_image
// and channels, and the options' digest (ShardStatistics::options; an option tensor's values
// are not in it): pass the same options to both calls.
struct OverlapStatistics : ShardStatistics {
  bool per_image = true;
  int64_t channels = 0;
};

}  // namespace segloss
