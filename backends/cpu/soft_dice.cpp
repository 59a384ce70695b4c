// CPU kernels of soft_dice: the two passes of soft_dice_kernels.hpp with no added term.
#include "soft_dice.hpp"

#include "soft_dice_kernels.hpp"

namespace segloss {
namespace cpu {

template <class T>
void soft_dice_statistics(const SoftDiceArgs<T>& a, double* stats) {
  a.sigmoid ? dice_statistics<T, true>(a, NoTerm{}, stats)
            : dice_statistics<T, false>(a, NoTerm{}, stats);
}

template <class T>
void soft_dice_gradient(const SoftDiceArgs<T>& a, const double* coef_a, const double* coef_b,
                        T* grad) {
  a.sigmoid ? dice_gradient<T, true>(a, NoTerm{}, coef_a, coef_b, grad)
            : dice_gradient<T, false>(a, NoTerm{}, coef_a, coef_b, grad);
}

template void soft_dice_statistics<float>(const SoftDiceArgs<float>&, double*);
template void soft_dice_statistics<double>(const SoftDiceArgs<double>&, double*);
template void soft_dice_gradient<float>(const SoftDiceArgs<float>&, const double*, const double*,
                                        float*);
template void soft_dice_gradient<double>(const SoftDiceArgs<double>&, const double*, const double*,
                                         double*);

}  // namespace cpu
}  // namespace segloss
