// @brief Boundary weight map of a mask (the Carvana CombinedLoss weights): pixels near an edge
// of the mask weigh more. A constant for the losses; it has no gradient.
//
// Input: a mask m of shape (N, C, H, W) or (N, C, D, H, W), float or double, usually binary
// (soft values are allowed). Every (n, c) plane or volume is filtered on its own; the
// normalization is over the whole batch.
//
//   a_i   = (1 / k^d) sum_{j in box(i)} m_j          the box average, k odd, d = 2 or 3 axes
//   ind_i = [low <= a_i <= high]                     1 near an edge, 0 inside and outside
//   w_i   = 1 + boost ind_i
//   w_i  <- w_i / sum_j w_j * numel                  (normalize = true): sum w = numel
//
// box(i) is the k x k (x k) window centred on i, stride 1, padding k / 2 with zeros that count
// in the average: the divisor is always k^d. This is PyTorch's
//   a = F.avg_pool2d(m, k, stride=1, padding=k // 2)     (avg_pool3d for volumes)
// with its defaults (count_include_pad = True), and the seed's
//   ind = a.ge(low) * a.le(high); w = 1 + boost * ind; w = w / w.sum() * numel.
// A mask's edge pixels get ind = 1 on both sides of the edge; an all-ones mask also gets
// ind = 1 along the image border (the zero padding pulls the average below `high`); an
// all-zero mask gets w = 1 everywhere.
//
// Options (defaults are the seed's):
//   kernel_size  0 (default): chosen from the height H (the second-to-last axis) by
//                boundary_kernel_size(H), then lowered to the largest odd number that fits
//                every spatial extent. Otherwise an odd k >= 1 used for every spatial axis.
//   low, high    0.01, 0.99; the bounds of the band of averages that counts as an edge.
//   boost        2; the extra weight of an edge pixel. Must be > -1 (every weight positive).
//   normalize    true: rescale so the weights sum to numel (N C H W or N C D H W), as the
//                seed does; false: the raw 1 + boost ind.
//
// Numerics. The box sums are running sums in double along each axis, so the cost per element
// does not depend on k (O(elements) work; one row or plane of doubles per thread as scratch).
// For a binary mask (or any values whose sums are exact in double, e.g. multiples of 2^-20)
// the sum s_i is exact, and a_i = T(s_i) / T(k^d) and the comparisons with T(low), T(high) are
// done in T, exactly as PyTorch evaluates avg_pool and a.ge(0.01) for a tensor of type T
// (it sums the window in T, which is exact for such masks, divides by k^d, and converts the
// Python float threshold to T). So ind is bit-for-bit PyTorch's for binary masks. A binary
// mask never averages to exactly 0.01 or 0.99 (k^d is odd), and it is at least 1 / (100 k^d)
// away from them, so in float the roundings decide no pixel differently from exact arithmetic
// while k^d < 1.6e5 (k <= 407 in 2D, k <= 53 in 3D); beyond that a pixel within float's ulp of
// 0.99 follows float arithmetic, as PyTorch does. For soft masks whose sums are not exact, the
// running sums' rounding (about 1e-16 of the window sum) differs from PyTorch's in-order float
// sum, and a pixel whose average lies within that rounding of `low` or `high` may be decided
// differently.
//   The normalized weights are (1 + boost ind_i) / S * numel with S = numel + boost * count(ind)
// evaluated in double (the seed's order of operations), then rounded to T.
//
// Edge cases: kernel_size = 1 gives a_i = m_i (an edge is where 0.01 <= m_i <= 0.99: for a
// binary mask nothing). A NaN or infinity in a plane makes that plane's weights NaN, and with
// normalize = true every weight NaN (PyTorch would silently give the windows around it
// ind = 0). Deterministic: results do not depend on the thread count.
//
// CUDA: a CUDA mask gives CUDA weights (both forms; a caller's buffer must be on the mask's
// device), bit-identical to the CPU's for binary and soft masks (the same running sums in the
// same order, one thread per line: backends/cuda/boundary_weights.cu, docs/cuda.md). Enqueued
// on the current stream with no wait and no allocation after warm-up; its workspace holds a
// double per element (two for volumes): cuda::boundary_weights_workspace_size(shape).
//
// Errors (segloss::Error): rank other than 4 or 5, a zero extent, an even or negative
// kernel_size, a kernel_size larger than a spatial extent, NaN low or high, low > high, a
// boost that is not finite or is <= -1, an output buffer of another shape, on another device
// than the mask, or over the mask's memory.
#pragma once

#include <cstdint>

#include "../core/tensor.hpp"

namespace segloss {

struct BoundaryWeightOptions {
  int kernel_size = 0;  // 0: boundary_kernel_size(H), fitted into the image; else odd >= 1
  double low = 0.01;    // an average in [low, high] marks an edge pixel
  double high = 0.99;
  double boost = 2.0;     // an edge pixel's weight is 1 + boost before normalizing
  bool normalize = true;  // weights sum to the number of elements
};

// The kernel size for a height H, from the Carvana table
//   H = 128 -> 11, 256 -> 21, 512 -> 21, 1024 -> 41, 1280 -> 51   (exact)
// and between the table's heights the nearest odd number to the piecewise-linear
// interpolation of the table (below 128 the line k = 11 H / 128, above 1280 k = 51 H / 1280),
// with ties going up: k = 2 floor(x / 2) + 1. The result is at least 3 and at most the
// largest odd number <= H (1 for H = 1 or 2). E.g. 64 -> 5, 100 -> 9, 384 -> 21, 768 -> 31,
// 2048 -> 81. H must be >= 1.
int boundary_kernel_size(int64_t height);

// The weight map, shaped like the mask.
template <class T>
Tensor<T> boundary_weights(const Tensor<T>& mask, const BoundaryWeightOptions& options = {});

// The same, written into `weights` (allocated when undefined; otherwise it must be shaped like
// the mask, and not the mask's own memory), so a training loop can reuse one buffer.
template <class T>
void boundary_weights(const Tensor<T>& mask, Tensor<T>& weights,
                      const BoundaryWeightOptions& options = {});

}  // namespace segloss
