// CPU kernels of boundary_weights: separable running box sums in double.
//
// Images: each plane is cut into bands of rows (the cut depends on the shape and k only). A
// band keeps col[x] = sum of the k rows centred on the current row, updated by one row in and
// one row out per step; a running sum along the row over col gives the k x k box sum. Volumes:
// bands of slices keep slab[y][x] = sum of the k slices centred on the current slice, updated
// the same way, and the image box runs over slab. Every input element is read a bounded number
// of times (k rows or slices to start each band), so the work is O(elements) for any k.
//
// For integer-valued masks every running sum is exact in double, so the result is the exact
// box sum whatever the order; for soft masks the order is fixed by the shape, so the result is
// deterministic.
#include "boundary_weights.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace segloss {
namespace cpu {
namespace {

// Scratch of the calling thread, reused across calls.
std::vector<double>& scratch() {
  thread_local std::vector<double> s;
  return s;
}

template <class S>
void add_line(double* acc, const S* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(in[i]);
}

// acc += in - out, one line entering the window and one leaving it.
template <class S>
void slide_line(double* acc, const S* in, const S* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    acc[i] += static_cast<double>(in[i]) - static_cast<double>(out[i]);
}
template <class S>
void leave_line(double* acc, const S* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] -= static_cast<double>(out[i]);
}

// The window of `steps` lines moves by one: line `in` enters (if inside), line `out` leaves (if
// inside). lines(j) is the address of line j.
template <class S, class Lines>
void slide(double* acc, int64_t in, int64_t out, int64_t count, int64_t n, const Lines& lines) {
  const bool has_in = in < count, has_out = out >= 0;
  if (has_in && has_out)
    slide_line<S>(acc, lines(in), lines(out), n);
  else if (has_in)
    add_line<S>(acc, lines(in), n);
  else if (has_out)
    leave_line<S>(acc, lines(out), n);
}

// row[x] = sum_{|d| <= r} col[x + d], zero outside [0, W).
void box_along_row(const double* col, int64_t w, int r, double* row) {
  double s = 0.0;
  for (int64_t x = 0; x <= std::min<int64_t>(r, w - 1); ++x) s += col[x];
  row[0] = s;
  for (int64_t x = 1; x < w; ++x) {
    const double in = x + r < w ? col[x + r] : 0.0;
    const double out = x - r - 1 >= 0 ? col[x - r - 1] : 0.0;
    s += in - out;
    row[x] = s;
  }
}

// out[x] = [low <= T(row[x]) / divisor <= high]; returns the count of ones. The quotient is
// rounded to T as PyTorch's avg_pool rounds it.
template <class T>
int64_t threshold_row(const double* row, int64_t w, T divisor, T low, T high, T* out) {
  int64_t count = 0;
  for (int64_t x = 0; x < w; ++x) {
    const T avg = static_cast<T>(row[x]) / divisor;
    const bool on = avg >= low && avg <= high;
    out[x] = on ? T(1) : T(0);
    count += on ? 1 : 0;
  }
  return count;
}

bool all_finite(const double* v, int64_t n) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok = ok && std::isfinite(v[i]);
  return ok;
}

// Rows [y0, y1) of the k x k box over an h x w image `src` (S = T or double), thresholded into
// `out` (the image's own layout). Sets bad when a non-finite value entered the sums: it stays
// in col until the end of the band (NaN - NaN and inf - inf are NaN), and every row of the
// band's halo enters col.
template <class S, class T>
int64_t box_image_rows(const S* src, int64_t h, int64_t w, int r, int64_t y0, int64_t y1, T divisor,
                       T low, T high, T* out, double* col, double* row, bool& bad) {
  const auto line = [&](int64_t y) { return src + y * w; };
  std::fill(col, col + w, 0.0);
  for (int64_t y = std::max<int64_t>(0, y0 - r); y <= std::min<int64_t>(h - 1, y0 + r); ++y)
    add_line(col, line(y), w);
  int64_t count = 0;
  for (int64_t y = y0; y < y1; ++y) {
    if (y > y0) slide<S>(col, y + r, y - r - 1, h, w, line);
    box_along_row(col, w, r, row);
    count += threshold_row(row, w, divisor, low, high, out + y * w);
  }
  if (!all_finite(col, w)) bad = true;
  return count;
}

}  // namespace

template <class T>
int64_t boundary_indicator(const BoundaryWeightArgs<T>& a, std::vector<char>& bad_planes) {
  const int r = a.k / 2;
  const int64_t h = a.height, w = a.width, d = a.depth;
  const int64_t plane_size = d * h * w;
  const T divisor = static_cast<T>(a.volume ? static_cast<double>(a.k) * a.k * a.k
                                            : static_cast<double>(a.k) * a.k);
  // A band is a range of rows (images) or of slices (volumes).
  const int64_t lines = a.volume ? d : h;
  const int64_t band = boundary_band_lines(a.k, a.volume);
  const int64_t bands = (lines + band - 1) / band;
  const int64_t tasks = a.planes * bands;
  std::vector<int64_t> counts(static_cast<size_t>(tasks), 0);
  std::vector<char> bad(static_cast<size_t>(tasks), 0);

#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (tasks > 1)
#endif
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t p = t / bands;
    const int64_t l0 = (t % bands) * band, l1 = std::min(lines, l0 + band);
    const T* src = a.mask + p * plane_size;
    T* out = a.out + p * plane_size;
    std::vector<double>& buf = scratch();
    const int64_t need = 2 * w + (a.volume ? h * w : 0);
    if (static_cast<int64_t>(buf.size()) < need) buf.resize(static_cast<size_t>(need));
    double *col = buf.data(), *row = col + w;
    bool flag = false;
    int64_t count = 0;
    if (!a.volume) {
      count =
          box_image_rows<T, T>(src, h, w, r, l0, l1, divisor, a.low, a.high, out, col, row, flag);
    } else {
      double* slab = row + w;
      const int64_t hw = h * w;
      const auto slice = [&](int64_t z) { return src + z * hw; };
      std::fill(slab, slab + hw, 0.0);
      for (int64_t z = std::max<int64_t>(0, l0 - r); z <= std::min<int64_t>(d - 1, l0 + r); ++z)
        add_line(slab, slice(z), hw);
      for (int64_t z = l0; z < l1; ++z) {
        if (z > l0) slide<T>(slab, z + r, z - r - 1, d, hw, slice);
        count += box_image_rows<double, T>(slab, h, w, r, 0, h, divisor, a.low, a.high,
                                           out + z * hw, col, row, flag);
      }
    }
    counts[static_cast<size_t>(t)] = count;
    bad[static_cast<size_t>(t)] = flag ? 1 : 0;
  }

  bad_planes.assign(static_cast<size_t>(a.planes), 0);
  int64_t total = 0;
  for (int64_t t = 0; t < tasks; ++t) {
    total += counts[static_cast<size_t>(t)];
    if (bad[static_cast<size_t>(t)]) bad_planes[static_cast<size_t>(t / bands)] = 1;
  }
  return total;
}

template <class T>
void boundary_levels(T* out, int64_t planes, int64_t plane_size, T off, T on,
                     const char* nan_planes) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (planes > 1)
#endif
  for (int64_t p = 0; p < planes; ++p) {
    T* o = out + p * plane_size;
    if (nan_planes && nan_planes[p]) {
      std::fill(o, o + plane_size, nan);
      continue;
    }
    for (int64_t i = 0; i < plane_size; ++i) o[i] = o[i] != T(0) ? on : off;
  }
}

#define SEGLOSS_INSTANTIATE(T)                                                              \
  template int64_t boundary_indicator<T>(const BoundaryWeightArgs<T>&, std::vector<char>&); \
  template void boundary_levels<T>(T*, int64_t, int64_t, T, T, const char*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
