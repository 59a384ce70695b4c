// CPU kernels of the exact Euclidean distance transform (EDT) and of the border voxels and
// distance lists of the surface metrics.
//
// The EDT is separable (Felzenszwalb & Huttenlocher, "Distance transforms of sampled
// functions", Theory of Computing 8, 2012): with f_0 = 0 on feature voxels and +inf elsewhere,
//   f_1(z, y, x) = min_x' f_0(z, y, x') + sx^2 (x - x')^2            along each row
//   f_2(z, y, x) = min_y' f_1(z, y', x) + sy^2 (y - y')^2            along each column
//   f_3(z, y, x) = min_z' f_2(z', y, x) + sz^2 (z - z')^2            along each pillar
// and f_3 is the squared distance to the nearest feature voxel. The first step is a distance
// to the nearest feature on a line (two sweeps). The others take the lower envelope of the
// parabolas q -> f(p) + w^2 (q - p)^2 rooted at the line's finite samples p: a stack of the
// parabolas that are lowest somewhere, each with the left end z_k of its interval; a new
// parabola pops those it hides (intersection s <= z_k), then the envelope is read at every q.
// Every sample enters and leaves the stack once: O(n) per line of n samples.
//
// Strided lines (columns, pillars) are processed in groups of kGroup neighbours: the group is
// copied into a line-major buffer (reading kGroup contiguous doubles per step), each line is
// transformed, and the result is copied back. Groups run in parallel; each line is computed
// by one thread in a fixed order, so the output does not depend on the thread count.
#include "distance_transform.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace segloss {
namespace cpu {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kGroup = 16;

struct LineScratch {
  std::vector<double> in, out, z;
  std::vector<int64_t> v;
  void reserve(int64_t n) {
    const auto lines = static_cast<size_t>(n * kGroup);
    if (in.size() < lines) {
      in.resize(lines);
      out.resize(lines);
    }
    if (v.size() < static_cast<size_t>(n)) {
      v.resize(static_cast<size_t>(n));
      z.resize(static_cast<size_t>(n + 1));
    }
  }
};

LineScratch& line_scratch() {
  thread_local LineScratch s;
  return s;
}

// d[q] = min_p f[p] + w2 (q - p)^2 over the finite f[p]; +inf everywhere when there is none.
// v and z hold n and n + 1 entries.
void lower_envelope(const double* f, int64_t n, double w2, double* d, int64_t* v, double* z) {
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    const double fq = f[q];
    if (fq == kInf) continue;
    const double yq = fq + w2 * static_cast<double>(q) * static_cast<double>(q);
    double s = -kInf;
    while (k >= 0) {
      const int64_t p = v[k];
      const double yp = f[p] + w2 * static_cast<double>(p) * static_cast<double>(p);
      s = (yq - yp) / (2.0 * w2 * static_cast<double>(q - p));
      if (s > z[k]) break;
      --k;  // the new parabola is lower than v[k] over all of v[k]'s interval
    }
    if (k < 0) s = -kInf;
    ++k;
    v[k] = q;
    z[k] = s;
  }
  if (k < 0) {
    std::fill(d, d + n, kInf);
    return;
  }
  z[k + 1] = kInf;
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (z[j + 1] < static_cast<double>(q)) ++j;
    const double dq = static_cast<double>(q - v[j]);
    d[q] = f[v[j]] + w2 * dq * dq;
  }
}

// Step 1: along each row of w voxels, the squared distance to the nearest feature on the row.
void rows_pass(const uint8_t* flags, uint8_t bit, int64_t rows, int64_t w, double w2, double* out) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (rows * w > 32768)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* f = flags + r * w;
    double* o = out + r * w;
    int64_t last = -1;  // the nearest feature at or before x
    for (int64_t x = 0; x < w; ++x) {
      if (f[x] & bit) last = x;
      o[x] = last < 0 ? kInf : static_cast<double>(x - last);
    }
    int64_t next = -1;  // the nearest feature at or after x
    for (int64_t x = w - 1; x >= 0; --x) {
      if (f[x] & bit) next = x;
      if (next >= 0) o[x] = std::min(o[x], static_cast<double>(next - x));
      o[x] = o[x] * o[x] * w2;  // inf stays inf
    }
  }
}

// Steps 2 and 3: the lines (o, i) start at o * n * stride + i, o < outer, i < stride, and step
// by stride; each gets the lower envelope of its values.
void strided_pass(double* data, int64_t outer, int64_t n, int64_t stride, double w2) {
  const int64_t groups = (stride + kGroup - 1) / kGroup;
  const int64_t tasks = outer * groups;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (tasks > 1 && outer * n * stride > 32768)
#endif
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / groups, i0 = (t % groups) * kGroup;
    const int64_t lines = std::min(kGroup, stride - i0);
    double* base = data + o * n * stride + i0;
    LineScratch& s = line_scratch();
    s.reserve(n);
    double *in = s.in.data(), *res = s.out.data();
    for (int64_t k = 0; k < n; ++k) {
      const double* row = base + k * stride;
      for (int64_t b = 0; b < lines; ++b) in[b * n + k] = row[b];
    }
    for (int64_t b = 0; b < lines; ++b)
      lower_envelope(in + b * n, n, w2, res + b * n, s.v.data(), s.z.data());
    for (int64_t k = 0; k < n; ++k) {
      double* row = base + k * stride;
      for (int64_t b = 0; b < lines; ++b) row[b] = res[b * n + k];
    }
  }
}

}  // namespace

void squared_distance_transform(const uint8_t* flags, uint8_t bit, const EdtGrid& g, double* out) {
  const int64_t d = g.extent[0], h = g.extent[1], w = g.extent[2];
  rows_pass(flags, bit, d * h, w, g.spacing[2] * g.spacing[2], out);
  if (h > 1) strided_pass(out, d, h, w, g.spacing[1] * g.spacing[1]);
  if (d > 1) strided_pass(out, 1, d, h * w, g.spacing[0] * g.spacing[0]);
}

void mark_borders(const uint8_t* masks, uint8_t* borders, const EdtGrid& g, int axes,
                  int64_t counts[2]) {
  const int64_t d = g.extent[0], h = g.extent[1], w = g.extent[2];
  const int64_t hw = h * w, rows = d * h;
  // A voxel is interior when its face neighbours along the real axes all lie in the box and
  // in the mask. An axis that is only padding (2D images have no z) has no neighbours.
  const bool use_z = axes >= 3, use_y = axes >= 2;
  std::vector<int64_t> row_counts(static_cast<size_t>(rows * 2), 0);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (rows * w > 32768)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t z = r / h, y = r % h;
    const uint8_t* row = masks + r * w;
    uint8_t* out = borders + r * w;
    // The rows above and below and the slices before and after (null: outside the box).
    const uint8_t* up = use_y && y > 0 ? row - w : nullptr;
    const uint8_t* down = use_y && y + 1 < h ? row + w : nullptr;
    const uint8_t* front = use_z && z > 0 ? row - hw : nullptr;
    const uint8_t* back = use_z && z + 1 < d ? row + hw : nullptr;
    int64_t np = 0, nt = 0;
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t c = row[x] & (kPredMask | kTrueMask);
      if (!c) {
        out[x] = 0;
        continue;
      }
      // The mask bits that every neighbour also has.
      uint8_t all = c;
      all &= x > 0 ? row[x - 1] : 0;
      all &= x + 1 < w ? row[x + 1] : 0;
      if (use_y) all &= (up ? up[x] : 0) & (down ? down[x] : 0);
      if (use_z) all &= (front ? front[x] : 0) & (back ? back[x] : 0);
      const uint8_t border = c & static_cast<uint8_t>(~all);  // mask bits with a missing neighbour
      out[x] =
          static_cast<uint8_t>(border << 2);  // kPredMask -> kPredBorder, kTrueMask -> kTrueBorder
      np += border & kPredMask ? 1 : 0;
      nt += border & kTrueMask ? 1 : 0;
    }
    row_counts[static_cast<size_t>(2 * r)] = np;
    row_counts[static_cast<size_t>(2 * r + 1)] = nt;
  }
  counts[0] = counts[1] = 0;
  for (int64_t r = 0; r < rows; ++r) {
    counts[0] += row_counts[static_cast<size_t>(2 * r)];
    counts[1] += row_counts[static_cast<size_t>(2 * r + 1)];
  }
}

void gather_distances(const uint8_t* flags, uint8_t bit, const double* squared, int64_t size,
                      std::vector<double>& out) {
  for (int64_t i = 0; i < size; ++i)
    if (flags[i] & bit) out.push_back(std::sqrt(squared[i]));
}

}  // namespace cpu
}  // namespace segloss
