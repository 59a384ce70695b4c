// CPU kernels of soft_dice (losses/soft_dice.hpp has the contract and the math).
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

template <class T>
struct SoftDiceArgs {
  const T* x = nullptr;  // logits or probabilities, planes * plane_size elements
  const T* t = nullptr;  // target
  int64_t planes = 0, plane_size = 0;
  bool sigmoid = true;  // p = sigmoid(x), else p = x
};

// Pass 1. stats[plane * 3 + k] = sum p t, sum p, sum t over the plane (deterministic).
template <class T>
void soft_dice_statistics(const SoftDiceArgs<T>& a, double* stats);

// Pass 2. grad_i = (a_j - b_j t_i) * dp_i/dx_i for element i of plane j, where the caller
// derives a_j and b_j from the statistics (soft_dice.cpp: a = c S / (U + s), b = 2 c / (U + s)).
template <class T>
void soft_dice_gradient(const SoftDiceArgs<T>& a, const double* coef_a, const double* coef_b,
                        T* grad);

}  // namespace cpu
}  // namespace segloss
