// CPU kernels of bce_dice (losses/bce_dice.hpp): the soft Dice passes with the BCE term added.
#pragma once

#include "bce_with_logits.hpp"
#include "soft_dice.hpp"

namespace segloss {
namespace cpu {

// Pass 1. stats[plane * 4 + k] = sum p t, sum p, sum t, sum of the weighted BCE losses.
// Of `bce` only weight, pos_weight, pos_weight_count and channels are read.
template <class T>
void bce_dice_statistics(const SoftDiceArgs<T>& a, const BceWithLogitsArgs<T>& bce, double* stats);

// Pass 2. grad_i = (a_j - b_j t_i) p_i (1 - p_i) + bce_scale * w_i * dBCE_i/dx_i.
template <class T>
void bce_dice_gradient(const SoftDiceArgs<T>& a, const BceWithLogitsArgs<T>& bce, double bce_scale,
                       const double* coef_a, const double* coef_b, T* grad);

}  // namespace cpu
}  // namespace segloss
