// CPU kernels of the overlap losses: the two passes of overlap_kernels.hpp with no added term.
#include "overlap.hpp"

#include "overlap_kernels.hpp"

namespace segloss {
namespace cpu {

template <class T>
void overlap_statistics(const OverlapArgs<T>& a, double* stats) {
  overlap_statistics_with(a, NoTerm{}, stats);
}

template <class T>
void overlap_gradient(const OverlapArgs<T>& a, const double* coef_a, const double* coef_b,
                      T* grad) {
  overlap_gradient_with(a, NoTerm{}, coef_a, coef_b, grad);
}

template void overlap_statistics<float>(const OverlapArgs<float>&, double*);
template void overlap_statistics<double>(const OverlapArgs<double>&, double*);
template void overlap_gradient<float>(const OverlapArgs<float>&, const double*, const double*,
                                      float*);
template void overlap_gradient<double>(const OverlapArgs<double>&, const double*, const double*,
                                       double*);

}  // namespace cpu
}  // namespace segloss
