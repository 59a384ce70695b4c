// CPU kernels of cross_entropy (losses/cross_entropy.hpp has the contract and the math).
#pragma once

#include <cstdint>

#include "softmax_overlap.hpp"

namespace segloss {
namespace cpu {

// Which labels count: not ignore_index, and not negative when ignore_negative.
struct LabelRule {
  int64_t ignore_index = -100;
  bool ignore_negative = false;
  bool ignored(int64_t label) const {
    return label == ignore_index || (ignore_negative && label < 0);
  }
};

// The label pass: over the counted pixels, the sum of their class weights and their count;
// and the first pixel (linear index) whose label is outside [0, C) and not ignored, or -1.
struct LabelSums {
  double weight_sum = 0.0;
  int64_t count = 0;
  int64_t first_bad = -1;
};

template <class T, class L>
LabelSums cross_entropy_label_sums(const L* labels, int64_t images, int64_t pixels, int64_t classes,
                                   const LabelRule& rule, const T* weight);

// The fused pass. Per pixel i: loss l_i (and its gradient over the C logits of the pixel,
// scaled by grad_out[i] or grad_scale). Hard labels (labels) or probabilities (probs).
template <class T, class L>
struct CrossEntropyArgs {
  const T* x = nullptr;                         // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;  // N, C, S
  const L* labels = nullptr;                    // (N, S), or null with probs
  const T* probs = nullptr;                     // (N, C, S), or null with labels
  LabelRule rule;
  const T* weight = nullptr;    // C class weights, or null
  double weight_total = 0.0;    // W = sum_c w_c
  double eps = 0.0;             // label smoothing
  T* loss = nullptr;            // if set: per-pixel loss (N, S)
  bool want_sum = false;        // if set: return sum_i l_i
  T* grad = nullptr;            // if set: the gradient (N, C, S)
  const T* grad_out = nullptr;  // per-pixel upstream gradient, or null
  double grad_scale = 1.0;
};

template <class T, class L>
double cross_entropy(const CrossEntropyArgs<T, L>& a);

// ce_dice's fused first pass (labels, or L = T probabilities): the softmax once per pixel for
// both terms. Returns the
// cross-entropy sum as cross_entropy does (a.grad must be null: the gradient comes in pass 2,
// softmax_overlap_gradient_ce); fills `stats` as softmax_overlap_statistics(dice, stats) does
// and stores p in dice.probs_out when set.
template <class T, class L>
double cross_entropy_dice_statistics(const CrossEntropyArgs<T, L>& a,
                                     const SoftmaxOverlapArgs<T, L>& dice, double* stats);

}  // namespace cpu
}  // namespace segloss
