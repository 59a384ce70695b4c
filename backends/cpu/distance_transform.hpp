// CPU kernels of the exact Euclidean distance transform and of the surface-distance metrics
// built on it (metrics/distance_transform.hpp and metrics/surface_distance.hpp have the
// contracts).
#pragma once

#include <cstdint>
#include <vector>

namespace segloss {
namespace cpu {

// A box of voxels (D, H, W), row-major, padded in front with extent 1 to three axes, and the
// physical size of a step along each axis.
struct EdtGrid {
  int64_t extent[3] = {1, 1, 1};
  double spacing[3] = {1.0, 1.0, 1.0};
  int64_t size() const { return extent[0] * extent[1] * extent[2]; }
};

// out[i] = the squared Euclidean distance, in the grid's physical units, from voxel i to the
// nearest feature voxel j, a voxel with (flags[j] & bit) != 0; +infinity when the box has no
// feature voxel. Exact: Felzenszwalb & Huttenlocher's lower envelope of parabolas, one axis
// after the other. O(size) work, parallel over the lines of each axis; each line is computed
// by one thread in a fixed order, so the result is the same at any thread count.
void squared_distance_transform(const uint8_t* flags, uint8_t bit, const EdtGrid& grid,
                                double* out);

// Bits of the per-voxel flags that the surface metrics keep over their box: the two masks in
// one array, their borders in another.
constexpr uint8_t kPredMask = 1, kTrueMask = 2, kPredBorder = 4, kTrueBorder = 8;

// borders[i] gets kPredBorder when voxel i is in kPredMask and has a face neighbour (along the
// last `axes` axes of the box) outside kPredMask or outside the box, and likewise kTrueBorder
// from kTrueMask: the voxels that scipy.ndimage.binary_erosion (cross structuring element,
// border_value 0) removes from the mask. counts[0], counts[1] receive the pred and true border
// sizes.
void mark_borders(const uint8_t* masks, uint8_t* borders, const EdtGrid& grid, int axes,
                  int64_t counts[2]);

// Appends sqrt(squared[i]) for every voxel with (flags[i] & bit) != 0, in index order.
void gather_distances(const uint8_t* flags, uint8_t bit, const double* squared, int64_t size,
                      std::vector<double>& out);

}  // namespace cpu
}  // namespace segloss
