// CUDA kernels of the surface-distance metrics (metrics/surface_distance.hpp has the contract
// and the math; backends/cpu/distance_transform.hpp the CPU kernels). Host-side declarations
// only: no CUDA header, so metrics/surface_distance.cpp can include it.
//
// On the device: the masks' bits (from the masks, or from the label maps for the labels form)
// and the first non-binary value, each pair's bounding box
// (integer atomics), its border voxels and the two exact EDTs over the box, with the CPU's
// arithmetic in the CPU's order per line (bit-identical squared distances). The border flags
// and the squared distances come back to the host, which gathers the border voxels' distances
// with the CPU's own code (index order, the CPU's sqrt), so the scores are the CPU's exactly.
// A metric returns host values: the call waits for its stream (once per pair, and per EDT).
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu/distance_transform.hpp"

namespace segloss {
namespace cuda {

// The border data of one (image, channel) pair.
struct SurfacePair {
  int empty_masks = 0;  // 2: both masks empty; 1: one of them; 0: neither (the lists are set)
  int64_t pred_border = 0, true_border = 0;
  std::vector<double> d_pt, d_tp;  // distances of pred's border to the truth's, and back
};

// The first value (lowest index) of pred or target that is not 0 or 1; index -1 when none.
struct SurfaceBadValue {
  int64_t index = -1;
  double pred = 0.0, target = 0.0;
};

// For the `planes` planes of grid.size() elements of device masks pred and target (the grid
// holds the image's extents and spacing, padded to three axes; `axes` real spatial axes):
// pairs[p] for every plane, unless a value is not binary (then pairs is left empty).
template <class T>
SurfaceBadValue surface_pairs(const char* function, const T* pred, const T* target, int64_t planes,
                              const cpu::EdtGrid& grid, int axes, std::vector<SurfacePair>& pairs);

// The labels form: for the `images` planes of grid.size() elements of device label maps pred and
// truth, pairs[n K + k] for image n and class k of the K `classes` (the masks label ==
// classes[k], both background where the true label is ignore_index). No value is bad.
template <class P, class L>
void surface_label_pairs(const char* function, const P* pred, const L* truth, int64_t images,
                         const std::vector<int64_t>& classes, int64_t ignore_index,
                         const cpu::EdtGrid& grid, int axes, std::vector<SurfacePair>& pairs);

// The public distance_transform (metrics/distance_transform.hpp) of the `planes` planes of the
// device mask: out (device, planes * grid.size() doubles) = the CPU's values bit for bit.
// Enqueued on the current stream, no wait. Workspace: detail::distance_layout (core/
// cuda_internal.hpp; cuda::distance_transform_workspace_size).
template <class T>
void distance_transform(const char* function, const T* mask, int64_t planes,
                        const cpu::EdtGrid& grid, bool to_foreground, bool squared, double* out);

}  // namespace cuda
}  // namespace segloss
