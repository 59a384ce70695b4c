// CPU kernels of bce_dice (losses/bce_dice.hpp): the overlap (soft Dice) passes with the BCE term
// added.
#pragma once

#include "bce_with_logits.hpp"
#include "overlap.hpp"

namespace segloss {
namespace cpu {

// Pass 1. stats[plane * 4 + k] = I, P, T (backends/cpu/overlap.hpp), sum of the weighted BCE
// losses.
// Of `bce` only weight, pos_weight, pos_weight_count and channels are read.
template <class T>
void bce_dice_statistics(const OverlapArgs<T>& a, const BceWithLogitsArgs<T>& bce, double* stats);

// Pass 2. grad_i = the overlap gradient (overlap.hpp) + bce_scale * w_i * dBCE_i/dx_i.
template <class T>
void bce_dice_gradient(const OverlapArgs<T>& a, const BceWithLogitsArgs<T>& bce, double bce_scale,
                       const double* coef_a, const double* coef_b, T* grad);

}  // namespace cpu
}  // namespace segloss
