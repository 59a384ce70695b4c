// CPU kernels of bce_dice: the BCE term plugged into the two overlap passes, so BCE + Dice
// costs the same two passes over memory as Dice alone, and shares Dice's exp and division.
#include "bce_dice.hpp"

#include "bce_term.hpp"
#include "overlap_kernels.hpp"

namespace segloss {
namespace cpu {

template <class T>
void bce_dice_statistics(const OverlapArgs<T>& a, const BceWithLogitsArgs<T>& bce, double* stats) {
  with_weight_kind(bce.weight, [&](auto kind) {
    overlap_statistics_with(a, BceTerm<T, decltype(kind)::value>{bce, T(0)}, stats);
  });
}

template <class T>
void bce_dice_gradient(const OverlapArgs<T>& a, const BceWithLogitsArgs<T>& bce, double bce_scale,
                       const double* coef_a, const double* coef_b, T* grad) {
  with_weight_kind(bce.weight, [&](auto kind) {
    overlap_gradient_with(a, BceTerm<T, decltype(kind)::value>{bce, static_cast<T>(bce_scale)},
                          coef_a, coef_b, grad);
  });
}

#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template void bce_dice_statistics<T>(const OverlapArgs<T>&, const BceWithLogitsArgs<T>&,       \
                                       double*);                                                 \
  template void bce_dice_gradient<T>(const OverlapArgs<T>&, const BceWithLogitsArgs<T>&, double, \
                                     const double*, const double*, T*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
