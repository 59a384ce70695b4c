// CUDA kernels of soft Dice, soft Jaccard and Tversky: the passes of overlap_passes.cuh
// without a pointwise term.
#include "overlap_passes.cuh"

namespace segloss {
namespace cuda {

template <class T>
void overlap_run(const char* function, const cpu::OverlapArgs<T>& a, const OverlapForm& f,
                 Upstream<T> up, T* grad, T* scores, Result<T> r, OverlapCounts* counts) {
  overlap_detail::run<T, false>(function, a, cpu::BceWithLogitsArgs<T>{}, f, up, grad, scores, r,
                                counts);
}

template void overlap_run<float>(const char*, const cpu::OverlapArgs<float>&, const OverlapForm&,
                                 Upstream<float>, float*, float*, Result<float>, OverlapCounts*);
template void overlap_run<double>(const char*, const cpu::OverlapArgs<double>&, const OverlapForm&,
                                  Upstream<double>, double*, double*, Result<double>,
                                  OverlapCounts*);

template <class T>
void overlap_statistics_run(const char* function, const cpu::OverlapArgs<T>& a, double* host_sums) {
  overlap_detail::run_statistics<T, false>(function, a, cpu::BceWithLogitsArgs<T>{}, host_sums);
}

template <class T>
double overlap_finalize_run(const char* function, const cpu::OverlapArgs<T>& a, OverlapForm f,
                            Upstream<T> up, const OverlapSplit& s, T* grad) {
  return overlap_detail::run_finalize<T, false>(function, a, cpu::BceWithLogitsArgs<T>{}, f, up, s,
                                                grad);
}

template void overlap_statistics_run<float>(const char*, const cpu::OverlapArgs<float>&, double*);
template void overlap_statistics_run<double>(const char*, const cpu::OverlapArgs<double>&, double*);
template double overlap_finalize_run<float>(const char*, const cpu::OverlapArgs<float>&,
                                            OverlapForm, Upstream<float>, const OverlapSplit&,
                                            float*);
template double overlap_finalize_run<double>(const char*, const cpu::OverlapArgs<double>&,
                                             OverlapForm, Upstream<double>, const OverlapSplit&,
                                             double*);

}  // namespace cuda
}  // namespace segloss
