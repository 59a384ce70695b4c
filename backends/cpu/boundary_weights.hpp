// CPU kernels of boundary_weights (losses/boundary_weights.hpp has the contract and the math).
#pragma once

#include <cstdint>
#include <vector>

namespace segloss {
namespace cpu {

template <class T>
struct BoundaryWeightArgs {
  const T* mask = nullptr;                   // planes * depth * height * width elements
  T* out = nullptr;                          // same layout
  int64_t planes = 0;                        // N * C
  int64_t depth = 1, height = 0, width = 0;  // depth = 1 for images
  bool volume = false;                       // box over depth too (k^3), else k^2
  int k = 1;                                 // odd box size, k <= every spatial extent
  T low = T(0), high = T(0);                 // the band, in T (as PyTorch compares)
};

// The lines (rows of an image, slices of a volume) of one band: each band restarts its running
// sums from zero, so the sums of a soft mask depend on this cut; the CUDA kernels
// (backends/cuda/boundary_weights.cu) use the same cut to add in the same order. Enough lines
// that starting one (k lines) costs at most a quarter of its work.
inline int64_t boundary_band_lines(int k, bool volume) {
  const int64_t minimum = volume ? 8 : 64;
  return minimum > 4 * static_cast<int64_t>(k) ? minimum : 4 * static_cast<int64_t>(k);
}

// Pass 1: out_i = 1 where low <= T(s_i) / T(k^d) <= high, else 0, with s_i the box sum of
// mask around i (zero padding). Returns how many ones. bad_planes (resized to planes) is set
// to 1 for each plane whose box sums met a NaN or infinity. O(elements) whatever k is, and
// the same at any thread count.
template <class T>
int64_t boundary_indicator(const BoundaryWeightArgs<T>& a, std::vector<char>& bad_planes);

// Pass 2: out_i = ind_i ? on : off, over planes of plane_size elements; NaN for planes whose
// flag in nan_planes is set (nan_planes may be null).
template <class T>
void boundary_levels(T* out, int64_t planes, int64_t plane_size, T off, T on,
                     const char* nan_planes);

}  // namespace cpu
}  // namespace segloss
