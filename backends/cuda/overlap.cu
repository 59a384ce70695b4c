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

}  // namespace cuda
}  // namespace segloss
