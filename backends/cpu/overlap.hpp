// CPU kernels of the overlap losses (soft Dice, soft Jaccard, Tversky; losses/overlap.hpp has
// the contract and the math). Two passes: the per-plane sums, then the gradient from per-plane
// coefficients that the caller derives from the sums.
#pragma once

#include <cstdint>

#include "../../core/broadcast.hpp"

namespace segloss {
namespace cpu {

template <class T>
struct OverlapArgs {
  const T* x = nullptr;  // logits or probabilities, planes * plane_size elements
  const T* t = nullptr;  // target
  int64_t planes = 0, plane_size = 0;
  bool sigmoid = true;   // p = sigmoid(x), else p = x
  bool squared = false;  // P = sum wP p^2 and T = sum wP t^2, else sum wP p and sum wP t
  // The per-pixel weight w (Kind::absent: none). The sums weight the intersection by w^2, and
  // the prediction and target sums by w^2 (w_squared_pt) or by w (the weight applied to p and t
  // before the sums without squaring: albu's form).
  detail::BroadcastReader<T> weight;
  bool w_squared_pt = true;
  // With the sigmoid: where pass 1 stores s = copysign(exp(-|x|), x) (the caller's gradient
  // buffer) for pass 2, which then reads s instead of x and rebuilds e = |s|, the sign of x,
  // 1 / (1 + e), p and dp/dx from it without a second exp. These are the bits pass 2 would
  // compute from x, so the gradient is the same either way. Null: pass 2 reads x. It must not
  // overlap t or the weight, which pass 2 reads again (stash_disjoint).
  T* stash = nullptr;
};

// Whether [a, a + na) and [b, b + nb) are disjoint: a gradient buffer may serve as the stash only
// if it shares no memory with an input that pass 2 reads after pass 1 wrote it.
template <class T>
bool stash_disjoint(const T* a, int64_t na, const T* b, int64_t nb) {
  return b == nullptr || nb == 0 || a + na <= b || b + nb <= a;
}

// Pass 1. stats[plane * 3 + k] = I, P, T over the plane (deterministic):
//   I = sum wI p t,  P = sum wP p^k,  T = sum wP t^k   (k = 2 when squared, else 1).
template <class T>
void overlap_statistics(const OverlapArgs<T>& a, double* stats);

// Pass 2. grad_i = (a_j wI_i t_i + b_j wP_i dP_i) dp_i/dx_i for element i of plane j, with
// dP_i = 2 p_i when squared, else 1; the caller derives a_j = g_j dS/dI, b_j = g_j dS/dP.
template <class T>
void overlap_gradient(const OverlapArgs<T>& a, const double* coef_a, const double* coef_b, T* grad);

}  // namespace cpu
}  // namespace segloss
