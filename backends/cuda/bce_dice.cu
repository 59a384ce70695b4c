// CUDA kernels of bce_dice: the overlap passes of overlap_passes.cuh with the BCE term inside
// (pass 1 also sums the weighted BCE values; pass 2 also adds the BCE gradient), sharing
// exp(-|x|) between the two terms.
#include "overlap_passes.cuh"

namespace segloss {
namespace cuda {

template <class T>
void bce_dice_run(const char* function, const cpu::OverlapArgs<T>& a,
                  const cpu::BceWithLogitsArgs<T>& bce, const OverlapForm& f, Upstream<T> up,
                  T* grad, Result<T> r, const BceWeight<T>& w, double* host_parts) {
  overlap_detail::run<T, true>(function, a, bce, f, up, grad, nullptr, r, nullptr, w.weight,
                               w.count, host_parts);
}

template void bce_dice_run<float>(const char*, const cpu::OverlapArgs<float>&,
                                  const cpu::BceWithLogitsArgs<float>&, const OverlapForm&,
                                  Upstream<float>, float*, Result<float>, const BceWeight<float>&,
                                  double*);
template void bce_dice_run<double>(const char*, const cpu::OverlapArgs<double>&,
                                   const cpu::BceWithLogitsArgs<double>&, const OverlapForm&,
                                   Upstream<double>, double*, Result<double>,
                                   const BceWeight<double>&, double*);

template <class T>
void bce_dice_statistics_run(const char* function, const cpu::OverlapArgs<T>& a,
                             const cpu::BceWithLogitsArgs<T>& bce, double* host_sums) {
  overlap_detail::run_statistics<T, true>(function, a, bce, host_sums);
}

template <class T>
double bce_dice_finalize_run(const char* function, const cpu::OverlapArgs<T>& a,
                             const cpu::BceWithLogitsArgs<T>& bce, OverlapForm f, Upstream<T> up,
                             const OverlapSplit& s, T* grad) {
  return overlap_detail::run_finalize<T, true>(function, a, bce, f, up, s, grad);
}

#define SEGLOSS_INSTANTIATE(T)                                                            \
  template void bce_dice_statistics_run<T>(const char*, const cpu::OverlapArgs<T>&,       \
                                           const cpu::BceWithLogitsArgs<T>&, double*);    \
  template double bce_dice_finalize_run<T>(const char*, const cpu::OverlapArgs<T>&,       \
                                           const cpu::BceWithLogitsArgs<T>&, OverlapForm, \
                                           Upstream<T>, const OverlapSplit&, T*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss
