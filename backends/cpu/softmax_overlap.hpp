// CPU kernels of the softmax overlap losses (losses/softmax_overlap.hpp and
// generalized_dice.hpp have the contract and the math): p = softmax over the class axis, and
// per image and class the sums I, P, T of losses/overlap.hpp; then the gradient through the
// softmax from per-(image, class) coefficients.
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

// U is the target's type: int32_t or int64_t for a label map (N, S), or T for probabilities
// (N, C, S).
template <class T, class U>
struct SoftmaxOverlapArgs {
  const T* x = nullptr;  // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;
  const U* target = nullptr;
  int64_t ignore_index = -100;  // labels only: a pixel with this label counts nowhere
  bool squared = false;         // P = sum p^2, T = sum t^2
  // Pass 2 only: add to the gradient already in the buffer, scaled, instead of overwriting it
  // (grad = prior_scale * grad + this loss's gradient): how a combined loss adds its second
  // term without a temporary. Ignored pixels get 0 either way.
  bool accumulate = false;
  double prior_scale = 1.0;
  // Pass 1 only: when set, p (the softmax, laid out like the logits) is also written here, so
  // that pass 2 reads it instead of recomputing the softmax (C exps per pixel saved). The
  // callers pass their gradient buffer, which may be the logits themselves: each pixel's logits
  // and target are read before its p is written. It must not overlap the target otherwise.
  // (An ignored pixel's p is stored as 0.)
  T* probs_out = nullptr;
  // Pass 2 only: when set, p is read from here instead of recomputed from x. It may be grad
  // itself (each pixel's p is read before its gradient is written); not with accumulate, which
  // reads the prior gradient from grad.
  const T* probs = nullptr;
};

// Pass 1. stats[(n * C + c) * 3 + k] = I, P, T of image n and class c (deterministic), over
// the pixels not ignored: I = sum p_c t_c, P = sum p_c^k, T = sum t_c^k, with t_c = [y = c]
// for labels. Labels must be in [0, C) or ignore_index (the caller checks).
template <class T, class U>
void softmax_overlap_statistics(const SoftmaxOverlapArgs<T, U>& a, double* stats);

// Pass 2. With g_c = ca[n C + c] t_c + cb[n C + c] k p_c^(k-1) (dL/dp_c of pixel i),
//   grad_c = p_c (g_c - sum_k p_k g_k)        (the softmax's Jacobian),
// and 0 for an ignored pixel.
template <class T, class U>
void softmax_overlap_gradient(const SoftmaxOverlapArgs<T, U>& a, const double* ca, const double* cb,
                              T* grad);

template <class T, class L>
struct CrossEntropyArgs;
template <class T, class L>
struct SoftmaxFocalArgs;

// Pass 2 of ce_dice: reads p from a.probs (where the fused first pass,
// cross_entropy_dice_statistics, stored it) and writes, per pixel and class,
//   grad_c = p_c (g_c - sum_k p_k g_k) + ce_scale * (cross_entropy's gradient of ce),
// the latter from p as cross_entropy's kernel computes it, for labels or (L = T) probability
// targets (ce.grad_scale as its upstream factor; no per-pixel grad_out), and 0 for an ignored
// pixel. a.accumulate must be false.
template <class T, class L>
void softmax_overlap_gradient_ce(const SoftmaxOverlapArgs<T, L>& a, const double* ca,
                                 const double* cb, const CrossEntropyArgs<T, L>& ce,
                                 double ce_scale, T* grad);

// Pass 2 of dice_focal (labels), as softmax_overlap_gradient_ce with softmax_focal's gradient
// F (p_c - [c = t]) in place of cross_entropy's: F from p alone (softmax_overlap.cpp),
// focal.grad_scale its upstream factor.
template <class T, class L>
void softmax_overlap_gradient_focal(const SoftmaxOverlapArgs<T, L>& a, const double* ca,
                                    const double* cb, const SoftmaxFocalArgs<T, L>& focal,
                                    double focal_scale, T* grad);

}  // namespace cpu
}  // namespace segloss
