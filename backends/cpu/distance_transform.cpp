// CPU kernels of the exact Euclidean distance transform (EDT) and of the border voxels and
// distance lists of the surface metrics.
//
// The EDT is separable (Felzenszwalb & Huttenlocher, "Distance transforms of sampled
// functions", Theory of Computing 8, 2012): with f_0 = 0 on feature voxels and +inf elsewhere,
//   f_1(z, y, x) = min_z' f_0(z', y, x) + sz^2 (z - z')^2            along each pillar
//   f_2(z, y, x) = min_y' f_1(z, y', x) + sy^2 (y - y')^2            along each column
//   f_3(z, y, x) = min_x' f_2(z, y, x') + sx^2 (x - x')^2            along each row
// and f_3 is the squared distance to the nearest feature voxel (images start at the columns,
// single lines at the rows). The first step is the distance to the nearest feature on a line:
// two sweeps, each moving a whole slice (or row) at a time, so they read contiguous memory and
// vectorize. The others take the lower envelope of the parabolas q -> f(p) + w^2 (q - p)^2
// rooted at the line's finite samples p: a stack of the parabolas that are lowest somewhere,
// each with the left end z_k of its interval; a new parabola pops those it hides (their
// intersection s <= z_k), then the envelope is read at every q. Every sample enters and leaves
// the stack once: O(n) per line of n samples.
//
// Columns are processed in groups of kGroup neighbours: the group is copied into a line-major
// buffer (reading kGroup contiguous doubles per step), each line is transformed, and the result
// is copied back; rows are transformed in place from a copy. Tasks run in parallel; each line is
// computed by one thread in a fixed order, so the output does not depend on the thread count.
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

// Step 1 along an axis of n samples whose lines step by `inner` elements, for the `outer`
// blocks of n * inner elements: the squared distance to the nearest feature on the line. The
// two sweeps move a whole slice (or row) at a time, so each step reads contiguous memory and
// the loops vectorize across the lines.
void binary_pass(const uint8_t* flags, uint8_t bit, int64_t outer, int64_t n, int64_t inner,
                 double w2, double* out) {
  constexpr int64_t kSpan = 2048;  // lines per task
  const int64_t spans = (inner + kSpan - 1) / kSpan, tasks = outer * spans;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (tasks > 1 && outer * n * inner > 32768)
#endif
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / spans, i0 = (t % spans) * kSpan, i1 = std::min(inner, i0 + kSpan);
    const uint8_t* f = flags + o * n * inner;
    double* d = out + o * n * inner;
    // Forward: distance to the nearest feature at or before k (in samples).
    for (int64_t i = i0; i < i1; ++i) d[i] = (f[i] & bit) ? 0.0 : kInf;
    for (int64_t k = 1; k < n; ++k) {
      const uint8_t* fk = f + k * inner;
      const double* prev = d + (k - 1) * inner;
      double* dk = d + k * inner;
      for (int64_t i = i0; i < i1; ++i) dk[i] = (fk[i] & bit) ? 0.0 : prev[i] + 1.0;
    }
    // Backward: or after k (carry holds line k + 1 in samples); then square and scale (inf
    // stays inf).
    double carry[kSpan];
    double* last = d + (n - 1) * inner;
    for (int64_t i = i0; i < i1; ++i) {
      carry[i - i0] = last[i];
      last[i] = last[i] * last[i] * w2;
    }
    for (int64_t k = n - 2; k >= 0; --k) {
      double* dk = d + k * inner;
      for (int64_t i = i0; i < i1; ++i) {
        const double v = std::min(dk[i], carry[i - i0] + 1.0);
        carry[i - i0] = v;
        dk[i] = v * v * w2;
      }
    }
  }
}

// The lower envelope along contiguous rows of w samples.
void rows_pass(double* data, int64_t rows, int64_t w, double w2) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (rows * w > 32768)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    LineScratch& s = line_scratch();
    s.reserve(w);
    double* row = data + r * w;
    std::copy(row, row + w, s.in.data());
    lower_envelope(s.in.data(), w, w2, row, s.v.data(), s.z.data());
  }
}

// The lower envelope along strided lines: the lines (o, i) start at o * n * stride + i,
// o < outer, i < stride, and step by stride.
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
  const double wz = g.spacing[0] * g.spacing[0], wy = g.spacing[1] * g.spacing[1],
               wx = g.spacing[2] * g.spacing[2];
  // Step 1 along the first axis longer than one sample (the order of the axes does not change
  // the minimum); it reads whole slices or rows, so it is cheap whatever its stride. The
  // envelope then runs along the later axes, the last one over contiguous rows.
  if (d > 1) {
    binary_pass(flags, bit, 1, d, h * w, wz, out);
    if (h > 1) strided_pass(out, d, h, w, wy);
    if (w > 1) rows_pass(out, d * h, w, wx);
  } else if (h > 1) {
    binary_pass(flags, bit, 1, h, w, wy, out);
    if (w > 1) rows_pass(out, h, w, wx);
  } else {
    binary_pass(flags, bit, 1, w, 1, wx, out);  // one line: step 1 is the whole transform
  }
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
