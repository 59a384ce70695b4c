// @brief Surface-distance metrics of a segmentation against its truth: Hausdorff distance
// (maximum and percentile, HD95 by default), average symmetric surface distance (ASSD) and
// normalized surface Dice (NSD) at a tolerance, with MONAI's definitions; 2D and 3D,
// anisotropic spacing. No gradient.
//
// Inputs, two forms:
//   surface_distance(pred, target)   binary masks (N, C, spatial...) with 1 to 3 spatial axes,
//       float or double, every value 0 or 1 (others are an error: threshold probabilities
//       first). Every (image, channel) pair is scored; results are (N, C). MONAI's
//       include_background = false is the same call on channels 1.. (or the labels form
//       without class 0).
//   surface_distance_labels(pred_labels, true_labels, classes)   label maps (N, spatial...),
//       int32 or int64 each; class classes[k] is the mask (label == classes[k]); results are
//       (N, K) with K = classes.size(). A pixel whose TRUE label is options.ignore_index is
//       background in both masks of every class (its prediction is not read), so a void band
//       around an object neither adds nor removes surface. Other labels need no range: a label
//       that is not in `classes` is background.
//
// Definitions (MONAI's compute_hausdorff_distance, compute_average_surface_distance with
// symmetric = True and compute_surface_dice with use_subvoxels = False; their get_mask_edges
// and get_surface_distance):
//   Border (surface) voxels of a mask M: the voxels of M with a face neighbour (2 per spatial
//       axis) that is not in M or lies outside the image, i.e. M minus its binary erosion by
//       the cross structuring element with the outside counted as background
//       (scipy.ndimage.binary_erosion(M) ^ M, as MONAI's get_mask_edges).
//   Distances: with B_p, B_t the border voxels of pred and truth and spacing s_a per axis,
//       d(i, B) = min_{j in B} sqrt(sum_a (s_a (i_a - j_a))^2), computed with the exact EDT of
//       metrics/distance_transform.hpp over the bounding box of the union of the masks;
//       D_pt = { d(i, B_t) : i in B_p } and D_tp = { d(j, B_p) : j in B_t }, as multisets.
//   hausdorff             max(max D_pt, max D_tp)
//   hausdorff_percentile  max(P(D_pt), P(D_tp)), P the options.percentile-th percentile with
//                         linear interpolation (numpy.percentile / torch.quantile default):
//                         sorted x, h = q (n - 1), x_floor(h) + (h - floor(h)) (x_ceil - x_floor)
//                         (MONAI takes the percentile of each direction, then the larger one)
//   average_surface_distance  (sum D_pt + sum D_tp) / (|D_pt| + |D_tp|): the mean of the two
//                         lists joined (torch.cat), not the mean of the two means
//   surface_dice          (#{d in D_pt : d <= tau} + #{d in D_tp : d <= tau}) / (|B_p| + |B_t|)
//                         with tau the class's tolerance (MONAI's boundary_correct /
//                         boundary_complete); compared in double (MONAI compares float32
//                         distances, which can differ only for a distance within float
//                         rounding of tau)
//   With directed = true, hausdorff, hausdorff_percentile and average_surface_distance use D_pt
//   alone (MONAI's directed = True and symmetric = False); surface_dice stays symmetric.
//   Everything is in double; MONAI returns float32.
//
// Empty masks (options.empty, SurfaceEmpty):
//   monai (default), exactly MONAI's values (it also warns):
//     both masks empty:  NaN for every metric.
//     one mask empty:    hausdorff = average_surface_distance = +inf, surface_dice = 0, and
//                        hausdorff_percentile = NaN: MONAI's distance lists are then all +inf
//                        and torch.quantile (like numpy.percentile) interpolates inf - inf.
//                        A total miss thus drops out of MONAI's mean HD95; use bounded (or
//                        count one_empty) where that matters.
//   bounded, finite values for dataset means (the convention of challenge scoring scripts):
//     both masks empty:  0 for the distances, 1 for surface_dice (a perfect match).
//     one mask empty:    the three distances are the image diagonal sqrt(sum_a (extent_a s_a)^2)
//                        (e.g. 373.13 for a 240 x 240 x 155 volume at 1 mm, BraTS's value);
//                        surface_dice = 0.
//   A non-empty mask always has border voxels, so "empty" is the same for masks and borders.
//   The means skip each metric's NaN values on their own (MONAI's reduction "mean"); an inf
//   makes its mean inf.
//
// Options and defaults:
//   spacing          {} (1 per axis); else one value per spatial axis, (D, H, W) order, each
//                    in [1e-100, 1e100] (MONAI's spacing; the bounds keep the squared
//                    distances in double finite and normal)
//   percentile       95; finite, in [0, 100] (0 is the minimum, 100 the maximum; MONAI reads 0
//                    as no percentile and returns the maximum: docs/surface-distance.md)
//   tolerance        1; the NSD tolerance tau in the units of spacing, finite and >= 0, used
//                    for every class unless class_tolerance is given
//   class_tolerance  {}; else one tau per scored column (C, or K for labels), each finite and
//                    >= 0 (MONAI's class_thresholds)
//   directed         false
//   empty            SurfaceEmpty::monai
//   ignore_index     -100; labels form only; must not be one of `classes`
//
// Cost: per (image, class), a pass over the plane for the masks and their bounding box, then
// over the box: the borders, two EDTs (to B_t and to B_p), and the percentiles by selection
// (O(|B|)). Each EDT pass is parallel over lines; the result is the same at any thread count
// (distances are gathered in index order and summed in that order).
//
// CUDA: surface_distance takes CUDA masks (both on the device); the masks, bounding boxes,
// borders and both EDTs run on the device with the CPU's arithmetic, the border flags and
// squared distances come back and the CPU's code scores them, so the result is the CPU's
// exactly (backends/cuda/distance_transform.cu, docs/cuda.md). The call waits for its stream
// (the result is on the host). surface_distance_labels takes CUDA label maps (both on the
// device) the same way: the masks of each (image, class) are built on the device with the CPU's
// rule, the rest is the masks form's; the CPU's result exactly, the call waits. Their device
// workspace grows with the input: a caller's WorkspaceScope must hold
// cuda::surface_distance_workspace_size(masks shape) or
// cuda::surface_distance_labels_workspace_size(labels shape, classes.size()) (core/cuda.hpp).
//
// Errors (segloss::Error): undefined inputs, shapes that differ, ranks outside 3..5 (masks) or
// 2..4 (labels), a zero extent, masks (or label maps) on different devices,
// a mask value that is not 0 or 1 (named with its
// index), bad spacing, percentile, tolerance or class_tolerance as above; for labels, an empty
// `classes`, a negative or repeated class, or ignore_index among the classes.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "../core/tensor.hpp"
#include "confusion_matrix.hpp"  // kLabelType

namespace segloss {

// What a pair with an empty mask scores (see above).
enum class SurfaceEmpty { monai, bounded };
namespace detail {
inline constexpr const char* kSurfaceEmptyNames[] = {"monai", "bounded"};
}  // namespace detail

struct SurfaceDistanceOptions {
  std::vector<double> spacing;          // per spatial axis; empty: 1
  double percentile = 95.0;             // hausdorff_percentile: HD95
  double tolerance = 1.0;               // NSD tau for every class
  std::vector<double> class_tolerance;  // NSD tau per scored column, overrides tolerance
  bool directed = false;                // distances from pred to truth only
  SurfaceEmpty empty = SurfaceEmpty::monai;
  int64_t ignore_index = -100;  // labels form: true label whose pixels are background
};

struct SurfaceDistanceResult {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  Tensor<double> hausdorff;                 // (N, K)
  Tensor<double> hausdorff_percentile;      // (N, K)
  Tensor<double> average_surface_distance;  // (N, K)
  Tensor<double> surface_dice;              // (N, K)
  Tensor<int64_t> pred_border;              // (N, K): |B_p|
  Tensor<int64_t> true_border;              // (N, K): |B_t|
  // Each metric's mean over its values that are not NaN, summed in index order; NaN when
  // every value is NaN.
  double mean_hausdorff = kNaN;
  double mean_hausdorff_percentile = kNaN;
  double mean_average_surface_distance = kNaN;
  double mean_surface_dice = kNaN;
  int64_t empty = 0;      // pairs whose masks are both empty (whatever the policy)
  int64_t one_empty = 0;  // pairs with exactly one empty mask
};

template <class T>
SurfaceDistanceResult surface_distance(const Tensor<T>& pred, const Tensor<T>& target,
                                       const SurfaceDistanceOptions& options = {});

template <class P, class L, class = std::enable_if_t<kLabelType<P> && kLabelType<L>>>
SurfaceDistanceResult surface_distance_labels(const Tensor<P>& pred_labels,
                                              const Tensor<L>& true_labels,
                                              const std::vector<int64_t>& classes,
                                              const SurfaceDistanceOptions& options = {});

}  // namespace segloss
