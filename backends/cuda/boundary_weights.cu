// CUDA kernels of boundary_weights (backends/cuda/boundary_weights.hpp; the math is in
// losses/boundary_weights.hpp, the CPU kernel in backends/cpu/boundary_weights.cpp).
//
// The CPU computes the k x k (x k) box sums separably with running sums in double: for images,
// per band of rows, col[x] = the sum of the k rows around the current row, slid one row at a
// time, then a running sum along each row over col; for volumes, per band of slices, the same
// over slices into slab[y][x], then the image's box over slab with one band of all rows. These
// kernels add the same numbers in the same order, one thread per line:
//
//   images   axis pass along H (one thread per (plane, band of rows, x)) -> scratch,
//            row pass along W (one thread per (plane, y)) -> indicator in `out`, count
//   volumes  axis pass along D (one thread per (plane, band of slices, y, x)) -> scratch,
//            axis pass along H (one thread per (plane, z, x), one band) -> scratch2,
//            row pass along W (one thread per (plane, z, y)) -> indicator, count
//   then     levels pass: ind ? on : off, from the device count (normalize), NaN planes
//
// so every sum is the CPU's bit for bit, for soft masks too, and so are the averages and the
// comparisons (in T) and the levels (the same double formula). A plane is "bad" exactly where
// the CPU says so: a running sum of the H pass that is not finite at the end of its band (a
// NaN or infinity stays in a running sum once it has entered it). The edge count is an integer
// (atomicAdd of 64-bit counts: exact in any order). Nothing waits for the host: the levels pass
// reads the count where the row pass left it.
#include "boundary_weights.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace {

// Running sums along one axis. The data are `groups` blocks of length x inner elements; the axis
// has `length` positions `inner` elements apart. Thread t handles position x < inner of band b
// (lines [b band, (b + 1) band)) of group g, as the CPU's add_line / slide / leave_line handle
// element x of col (or slab) for that band: the window's start summed from zero in order, then
// one line in and one out per step. dst[line y] = the sum of the window centred on y. With
// `bad`, a sum not finite at the band's end flags plane g / groups_per_plane (and any_bad), as
// the CPU's all_finite(col) at the end of box_image_rows.
template <class S>
__global__ void __launch_bounds__(kThreads)
    axis_sums_kernel(const S* src, double* dst, int64_t groups, int64_t length, int64_t inner,
                     int64_t band, int r, int* bad, int64_t groups_per_plane, int* any_bad) {
  const int64_t bands = (length + band - 1) / band;
  const int64_t items = groups * bands * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < items;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t x = t % inner, rest = t / inner;
    const int64_t b = rest % bands, g = rest / bands;
    const S* in_line = src + g * length * inner + x;
    double* out_line = dst + g * length * inner + x;
    const int64_t y0 = b * band, y1 = y0 + band < length ? y0 + band : length;
    double acc = 0.0;
    const int64_t first = y0 - r > 0 ? y0 - r : 0, last = y0 + r < length ? y0 + r : length - 1;
    for (int64_t j = first; j <= last; ++j) acc += static_cast<double>(in_line[j * inner]);
    out_line[y0 * inner] = acc;
    for (int64_t y = y0 + 1; y < y1; ++y) {
      const int64_t in = y + r, out = y - r - 1;
      const bool has_in = in < length, has_out = out >= 0;
      if (has_in && has_out)
        acc += static_cast<double>(in_line[in * inner]) - static_cast<double>(in_line[out * inner]);
      else if (has_in)
        acc += static_cast<double>(in_line[in * inner]);
      else if (has_out)
        acc -= static_cast<double>(in_line[out * inner]);
      out_line[y * inner] = acc;
    }
    if (bad && !isfinite(acc)) {
      atomicOr(bad + g / groups_per_plane, 1);
      atomicOr(any_bad, 1);
    }
  }
}

// The box along each row over the axis pass's sums (the CPU's box_along_row), then the
// indicator [low <= T(sum) / divisor <= high] (threshold_row) into out; the count of ones is
// added to *count.
template <class T>
__global__ void __launch_bounds__(kThreads)
    row_kernel(const double* col, T* out, int64_t rows, int64_t w, int r, T divisor, T low, T high,
               unsigned long long* count) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < rows;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double* c = col + t * w;
    T* o = out + t * w;
    unsigned long long ones = 0;
    const auto mark = [&](int64_t x, double sum) {
      const T avg = static_cast<T>(sum) / divisor;
      const bool on = avg >= low && avg <= high;
      o[x] = on ? T(1) : T(0);
      ones += on ? 1 : 0;
    };
    double s = 0.0;
    const int64_t last = r < w - 1 ? r : w - 1;
    for (int64_t x = 0; x <= last; ++x) s += c[x];
    mark(0, s);
    for (int64_t x = 1; x < w; ++x) {
      const double in = x + r < w ? c[x + r] : 0.0;
      const double out_v = x - r - 1 >= 0 ? c[x - r - 1] : 0.0;
      s += in - out_v;
      mark(x, s);
    }
    if (ones) atomicAdd(count, ones);
  }
}

// out_i = ind_i ? on : off (boundary_levels), the levels from the device count with the CPU's
// double formula; NaN in a bad plane, everywhere when normalizing and any plane is bad (S is
// NaN then).
template <class T>
__global__ void __launch_bounds__(kThreads)
    levels_kernel(T* out, int64_t numel, int64_t plane_size, const unsigned long long* count,
                  const int* bad, const int* any_bad, double boost, double on_raw, bool normalize) {
  const double n = static_cast<double>(numel);
  double off = 1.0, on = on_raw;
  if (normalize) {
    const double total = n + mul_rn(boost, static_cast<double>(*count));
    off = 1.0 / total * n;
    on = on_raw / total * n;
  }
  const T t_off = static_cast<T>(off), t_on = static_cast<T>(on);
  const bool all_nan = normalize && *any_bad != 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (all_nan || bad[i / plane_size] != 0)
      out[i] = static_cast<T>(NAN);
    else
      out[i] = out[i] != T(0) ? t_on : t_off;
  }
}

}  // namespace

template <class T>
void boundary_weights(const char* function, const cpu::BoundaryWeightArgs<T>& a, double boost,
                      double on_raw, bool normalize) {
  const int64_t h = a.height, w = a.width, d = a.depth;
  const int64_t plane_size = d * h * w, numel = a.planes * plane_size;
  const int r = a.k / 2;
  const T divisor = static_cast<T>(a.volume ? static_cast<double>(a.k) * a.k * a.k
                                            : static_cast<double>(a.k) * a.k);
  const detail::BoundaryLayout l = detail::boundary_layout(a.planes, numel, a.volume);
  Call call(function, l.total);
  const cudaStream_t s = call.stream();
  auto* count = call.at<unsigned long long>(l.meta);
  int* any_bad = call.at<int>(l.meta + sizeof(unsigned long long));
  int* bad = call.at<int>(l.flags);
  double* scratch = call.at<double>(l.scratch);
  check(cudaMemsetAsync(call.at<char>(l.meta), 0, l.scratch - l.meta, s), function,
        "cudaMemsetAsync");
  const int64_t band = cpu::boundary_band_lines(a.k, a.volume);
  if (!a.volume) {
    launch(axis_sums_kernel<T>, grid_blocks(a.planes * ((h + band - 1) / band) * w), kThreads, 0, s,
           a.mask, scratch, a.planes, h, w, band, r, bad, int64_t{1}, any_bad);
    call.launched();
  } else {
    double* scratch2 = call.at<double>(l.scratch2);
    launch(axis_sums_kernel<T>, grid_blocks(a.planes * ((d + band - 1) / band) * h * w), kThreads,
           0, s, a.mask, scratch2, a.planes, d, h * w, band, r, static_cast<int*>(nullptr),
           int64_t{1}, static_cast<int*>(nullptr));
    call.launched();
    launch(axis_sums_kernel<double>, grid_blocks(a.planes * d * w), kThreads, 0, s,
           static_cast<const double*>(scratch2), scratch, a.planes * d, h, w, h, r, bad, d,
           any_bad);
    call.launched();
  }
  const int64_t rows = a.planes * d * h;
  launch(row_kernel<T>, grid_blocks(rows), kThreads, 0, s, static_cast<const double*>(scratch),
         a.out, rows, w, r, divisor, a.low, a.high, count);
  call.launched();
  launch(levels_kernel<T>, grid_blocks(numel), kThreads, 0, s, a.out, numel, plane_size,
         static_cast<const unsigned long long*>(count), static_cast<const int*>(bad),
         static_cast<const int*>(any_bad), boost, on_raw, normalize);
  call.launched();
}

template void boundary_weights(const char*, const cpu::BoundaryWeightArgs<float>&, double, double,
                               bool);
template void boundary_weights(const char*, const cpu::BoundaryWeightArgs<double>&, double, double,
                               bool);

}  // namespace cuda
}  // namespace segloss
