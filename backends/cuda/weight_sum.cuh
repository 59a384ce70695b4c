// bce_with_logits' mean_over = weight_sum on CUDA (losses/bce_with_logits.hpp), shared by
// bce_with_logits.cu and bce_dice's passes: the divisor W = (numel / weight.numel()) * the sum of
// the weight's own values (detail::bce_mean_divisor's definition, each value used that many
// times), reduced on the device in a fixed order (a plane_pass over the weight's values as one
// plane, summed in double, then combine), and the mean's factor 1/W (0 when W = 0) left in the
// call's header for the kernels that follow on the stream. The host never reads the weight.
#pragma once

#include <algorithm>

#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace weight_sum_detail {

// One value per element: the weight's own, added in double.
template <class T>
struct SumBody {
  using Part = double;
  const T* w;

  struct At {
    const T* w;
    struct In {
      T w;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {w[i]}; }
    template <int K>
    __device__ __forceinline__ void operator()(int64_t, int64_t, const In& in,
                                               double (&acc)[K]) const {
      acc[0] += static_cast<double>(in.w);
    }
  };
  __device__ At at(int64_t) const { return {w}; }
};

// One thread: W = sum * repeats and its factor, as detail::bce_mean_divisor and bce_scale_of.
// sum null: no element (an empty input), the sum is 0. (A template: defined in every .cu that
// includes this header, without a second definition at link time.)
template <int = 0>
__global__ void scale_kernel(const double* sum, double repeats, double* divisor, double* scale) {
  const double w = (sum ? *sum : 0.0) * repeats;
  *divisor = w;
  *scale = w == 0.0 ? 0.0 : 1.0 / w;
}

}  // namespace weight_sum_detail

// Enqueues the reduction of the weight (count values at `weight`, a device pointer) for an input
// of `numel` elements whose passes use grid g: header::kWeightSum receives W and
// header::kWeightScale 1/W (0 when W = 0); returns the scale's device address. Uses the call's
// partials region (g.blocks() doubles at least, as every layout has) before the passes do: the
// weight's grid has at most g.blocks() blocks, a function of the shapes only.
template <class T>
const double* weight_sum_scale(const Call& call, const PlaneGrid& g, size_t partials_offset,
                               const T* weight, int64_t count, int64_t numel) {
  double* divisor = call.at<double>(header::kWeightSum);
  double* scale = call.at<double>(header::kWeightScale);
  const double repeats = static_cast<double>(numel) / static_cast<double>(count);  // exact
  const double* sum = nullptr;
  if (g.blocks() > 0 && count > 0) {
    PlaneGrid wg;
    wg.planes = 1;
    wg.plane_size = count;
    wg.parts = std::max<int64_t>(
        1,
        std::min<int64_t>((count + detail::kMinPerBlock - 1) / detail::kMinPerBlock, g.blocks()));
    wg.part_size = (count + wg.parts - 1) / wg.parts;
    double* partials = call.at<double>(partials_offset);
    plane_pass<1>(call, wg, weight_sum_detail::SumBody<T>{weight}, partials);
    combine(call, partials, 1, wg.parts, 1, divisor);
    sum = divisor;
  }
  launch(weight_sum_detail::scale_kernel<>, 1, 1, 0, call.stream(), sum, repeats, divisor, scale);
  call.launched();
  return scale;
}

}  // namespace cuda
}  // namespace segloss
