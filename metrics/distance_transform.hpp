// @brief The exact Euclidean distance transform of binary masks, 1 to 3 spatial axes, with
// anisotropic spacing, in linear time (Felzenszwalb & Huttenlocher 2012).
//
// Input: mask (N, C, spatial...) with 1 to 3 spatial axes, float, double, int32 or int64. A
// voxel is foreground when its value is not 0 (as numpy's astype(bool): NaN is foreground).
// Each plane (n, c) is transformed on its own.
//
// Output: Tensor<double> of the mask's shape. With spacing s_a per spatial axis a,
//   to = background (default): out_i = min over background voxels j of
//                                sqrt(sum_a (s_a (i_a - j_a))^2), 0 on the background itself:
//                                scipy.ndimage.distance_transform_edt(mask, sampling=spacing)
//   to = foreground:           the same to the nearest foreground voxel, 0 on the foreground
//                                (distance_transform_edt(mask == 0, sampling=spacing))
// or its square with squared = true (no square root; exact integers for unit spacing).
//
// Edge cases: a plane with no voxel to measure to (no background for to = background, an
// all-zero plane for to = foreground) is +infinity everywhere. scipy has no defined answer
// there. 1x1 images, single rows and one-voxel planes are ordinary inputs.
//
// Algorithm: separable, one axis after the other; the first axis is a two-sweep distance to
// the nearest target voxel of each row, the others the lower envelope of parabolas of
// Felzenszwalb & Huttenlocher ("Distance transforms of sampled functions", Theory of Computing
// 8, 2012). O(elements) work and 8 bytes of scratch per element of one plane (plus the
// output); parallel over the lines of each pass (OpenMP). Exact up to the rounding of the sums
// in double, and the same at any thread count.
//
// Options and defaults:
//   spacing   {} (1 per axis); else one value per spatial axis, in axis order (D, H, W), each
//             in [1e-100, 1e100] (distances are squared in double; outside, they overflowed or
//             underflowed to NaN)
//   to        DistanceTo::background
//   squared   false
//
// CUDA: a CUDA mask gives a CUDA output with the CPU's values bit for bit (the CPU's passes in
// the CPU's order on the device, backends/cuda/distance_transform.cu, docs/cuda.md), enqueued
// on the current stream with no wait; its workspace is cuda::distance_transform_workspace_size
// (core/cuda.hpp).
//
// Errors (segloss::Error): an undefined mask, rank outside 3..5, a zero extent, a CUDA tensor
// in a build without the CUDA backend, a spacing of the wrong length or with a value that is
// outside [1e-100, 1e100].
#pragma once

#include <vector>

#include "../core/tensor.hpp"

namespace segloss {

// What the distance is measured to.
enum class DistanceTo { background, foreground };
namespace detail {
inline constexpr const char* kDistanceToNames[] = {"background", "foreground"};
}  // namespace detail

struct DistanceTransformOptions {
  std::vector<double> spacing;             // per spatial axis; empty: 1
  DistanceTo to = DistanceTo::background;  // scipy's distance_transform_edt(mask)
  bool squared = false;                    // return squared distances
};

template <class T>
Tensor<double> distance_transform(const Tensor<T>& mask,
                                  const DistanceTransformOptions& options = {});

namespace detail {
// The accepted spacing values (options.spacing above).
constexpr double kMinSpacing = 1e-100, kMaxSpacing = 1e100;
// The spacing of `spatial` axes from options (1 when empty), checked: one value per axis, each
// in [kMinSpacing, kMaxSpacing]. Shared with the surface metrics.
std::vector<double> checked_spacing(const char* function, const std::vector<double>& spacing,
                                    int spatial);
}  // namespace detail

}  // namespace segloss
