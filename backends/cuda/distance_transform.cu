// CUDA kernels of the surface-distance metrics (backends/cuda/distance_transform.hpp).
//
// Per call: one pass over every plane writes the masks' bits (kPredMask, kTrueMask), the first
// non-binary value (integer atomicMin of its index) and each plane's bounding box of the union
// (integer atomicMin / atomicMax). Per pair with a non-empty box: one thread per box voxel marks
// the border voxels (the CPU's mark_borders on the cropped box) and counts them; then each EDT
// runs the CPU's passes (Felzenszwalb & Huttenlocher, Theory of Computing 8, 2012), one thread
// per line: the two-sweep distance along the first axis longer than one voxel, then the lower
// envelope of parabolas along the later axes, with the CPU's operations in the CPU's order (the
// products by __dmul_rn, so that nvcc cannot fuse them into FMAs the CPU does not do), so the
// squared distances are the CPU's bits. Those and the border flags are copied back; the host
// gathers and scores them with the CPU's code. The labels form differs only in the first pass
// (label_masks_kernel: one plane per (image, class)). The public distance_transform runs the
// same EDT passes (edt_passes) per plane straight into its CUDA output, with no wait.
#include "distance_transform.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace {

#define SEGLOSS_GRID_LOOP(i, n)                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// Grows plane p's box (lows[3 p ..] and highs[3 p ..], as below) by its voxel r (extents h, w).
__device__ __forceinline__ void grow_box(int64_t p, int64_t r, int64_t h, int64_t w,
                                         unsigned long long* lows, unsigned long long* highs) {
  const auto x = static_cast<unsigned long long>(r % w),
             y = static_cast<unsigned long long>((r / w) % h),
             z = static_cast<unsigned long long>(r / (w * h));
  atomicMin(lows + 3 * p + 0, z);
  atomicMin(lows + 3 * p + 1, y);
  atomicMin(lows + 3 * p + 2, x);
  atomicMax(highs + 3 * p + 0, z + 1);
  atomicMax(highs + 3 * p + 1, y + 1);
  atomicMax(highs + 3 * p + 2, x + 1);
}

// masks[i] = the bits of pred and target at i (0 where a value is not binary, whose index goes
// to *first_bad by atomicMin); lows[3 p ..] and highs[3 p ..] = the lowest (z, y, x) and the
// highest plus one of the voxels of plane p in either mask (lows start at ~0, highs at 0).
template <class T>
__global__ void __launch_bounds__(kThreads)
    masks_kernel(const T* pred, const T* target, uint8_t* masks, int64_t numel, int64_t plane_size,
                 int64_t h, int64_t w, unsigned long long* first_bad, unsigned long long* lows,
                 unsigned long long* highs) {
  SEGLOSS_GRID_LOOP(i, numel) {
    const T pv = pred[i], tv = target[i];
    int bits = 0;
    if (!((pv == T(0) || pv == T(1)) && (tv == T(0) || tv == T(1)))) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
    } else {
      bits = (pv == T(1) ? cpu::kPredMask : 0) | (tv == T(1) ? cpu::kTrueMask : 0);
    }
    masks[i] = static_cast<uint8_t>(bits);
    if (bits) grow_box(i / plane_size, i % plane_size, h, w, lows, highs);
  }
}

// The labels form's first pass: plane p = n K + k (image n, class k of the K in classes) holds
// the masks pred == classes[k] and truth == classes[k] of image n, both background where the
// true label is ignore (the CPU's rule in metrics/surface_distance.cpp, compared in int64); its
// box as masks_kernel's. No value is bad: a label matching no class is background.
template <class P, class L>
__global__ void __launch_bounds__(kThreads)
    label_masks_kernel(const P* pred, const L* truth, const int64_t* classes, int64_t k_count,
                       int64_t ignore, uint8_t* masks, int64_t numel, int64_t plane_size, int64_t h,
                       int64_t w, unsigned long long* lows, unsigned long long* highs) {
  SEGLOSS_GRID_LOOP(i, numel) {
    const int64_t p = i / plane_size, r = i % plane_size;
    const int64_t j = (p / k_count) * plane_size + r;  // the voxel in image n = p / K
    const int64_t cls = classes[p % k_count];
    const int64_t tv = static_cast<int64_t>(truth[j]);
    int bits = 0;
    if (tv != ignore)
      bits = (static_cast<int64_t>(pred[j]) == cls ? cpu::kPredMask : 0) |
             (tv == cls ? cpu::kTrueMask : 0);
    masks[i] = static_cast<uint8_t>(bits);
    if (bits) grow_box(p, r, h, w, lows, highs);
  }
}

// The border voxels of the box [lo, lo + ext) of one plane's masks (extents d, h, w), as the
// CPU's mark_borders on the cropped box: a mask voxel with a face neighbour (along the real
// axes) outside the mask or the box. counts[0], counts[1] += the pred and true borders.
__global__ void __launch_bounds__(kThreads)
    borders_kernel(const uint8_t* masks, int64_t h, int64_t w, int64_t lz, int64_t ly, int64_t lx,
                   int64_t bd, int64_t bh, int64_t bw, bool use_y, bool use_z, uint8_t* borders,
                   unsigned long long* counts) {
  SEGLOSS_GRID_LOOP(i, bd * bh * bw) {
    const int64_t x = i % bw, y = (i / bw) % bh, z = i / (bw * bh);
    const auto at = [&](int64_t zz, int64_t yy, int64_t xx) {
      return masks[((lz + zz) * h + ly + yy) * w + lx + xx];
    };
    const uint8_t c = at(z, y, x) & (cpu::kPredMask | cpu::kTrueMask);
    if (!c) {
      borders[i] = 0;
      continue;
    }
    uint8_t all = c;
    all &= x > 0 ? at(z, y, x - 1) : 0;
    all &= x + 1 < bw ? at(z, y, x + 1) : 0;
    if (use_y) all &= (y > 0 ? at(z, y - 1, x) : 0) & (y + 1 < bh ? at(z, y + 1, x) : 0);
    if (use_z) all &= (z > 0 ? at(z - 1, y, x) : 0) & (z + 1 < bd ? at(z + 1, y, x) : 0);
    const uint8_t border = c & static_cast<uint8_t>(~all);
    borders[i] = static_cast<uint8_t>(border << 2);
    if (border & cpu::kPredMask) atomicAdd(counts + 0, 1ull);
    if (border & cpu::kTrueMask) atomicAdd(counts + 1, 1ull);
  }
}

// The CPU's binary_pass for one block (outer = 1): line i < inner of n samples, stepping by
// inner: the distance in samples to the nearest flagged voxel before, then after, squared and
// scaled by w2.
__global__ void __launch_bounds__(kThreads)
    binary_pass_kernel(const uint8_t* f, uint8_t bit, int64_t n, int64_t inner, double w2,
                       double* d) {
  const double inf = INFINITY;
  SEGLOSS_GRID_LOOP(i, inner) {
    d[i] = (f[i] & bit) ? 0.0 : inf;
    for (int64_t k = 1; k < n; ++k)
      d[k * inner + i] = (f[k * inner + i] & bit) ? 0.0 : d[(k - 1) * inner + i] + 1.0;
    double* last = d + (n - 1) * inner + i;
    double carry = *last;
    *last = *last * *last * w2;
    for (int64_t k = n - 2; k >= 0; --k) {
      double* dk = d + k * inner + i;
      const double c1 = carry + 1.0;
      const double v = c1 < *dk ? c1 : *dk;  // std::min(*dk, c1)
      carry = v;
      *dk = v * v * w2;
    }
  }
}

// A line's scratch array, element k of line t at k * lines + t: adjacent threads (lines) touch
// adjacent addresses.
template <class U>
struct Strided {
  U* base;
  int64_t lines;
  __device__ __forceinline__ U& operator[](int64_t k) const { return base[k * lines]; }
};

// The CPU's lower_envelope over the lines (o, i), o < outer, i < stride, of n samples starting
// at o n stride + i and stepping by stride, in place: each line is copied to f (n doubles),
// with v (n) and z (n + 1) as the CPU's stack, all three interleaved across the lines.
__global__ void __launch_bounds__(kThreads)
    envelope_kernel(double* data, int64_t outer, int64_t n, int64_t stride, double w2,
                    double* in_all, int64_t* v_all, double* z_all) {
  const double inf = INFINITY;
  const int64_t lines = outer * stride;
  SEGLOSS_GRID_LOOP(t, lines) {
    const int64_t o = t / stride, i = t % stride;
    double* line = data + o * n * stride + i;
    const Strided<double> f{in_all + t, lines}, z{z_all + t, lines};
    const Strided<int64_t> v{v_all + t, lines};
    for (int64_t q = 0; q < n; ++q) f[q] = line[q * stride];
    int64_t k = -1;
    for (int64_t q = 0; q < n; ++q) {
      const double fq = f[q];
      if (fq == inf) continue;
      const double qd = static_cast<double>(q);
      const double yq = fq + mul_rn(mul_rn(w2, qd), qd);
      double s = -inf;
      while (k >= 0) {
        const int64_t p = v[k];
        const double pd = static_cast<double>(p);
        const double yp = f[p] + mul_rn(mul_rn(w2, pd), pd);
        s = (yq - yp) / (2.0 * w2 * static_cast<double>(q - p));
        if (s > z[k]) break;
        --k;
      }
      if (k < 0) s = -inf;
      ++k;
      v[k] = q;
      z[k] = s;
    }
    if (k < 0) {
      for (int64_t q = 0; q < n; ++q) line[q * stride] = inf;
      continue;
    }
    z[k + 1] = inf;
    int64_t j = 0;
    for (int64_t q = 0; q < n; ++q) {
      while (z[j + 1] < static_cast<double>(q)) ++j;
      const double dq = static_cast<double>(q - v[j]);
      line[q * stride] = f[v[j]] + mul_rn(mul_rn(w2, dq), dq);
    }
  }
}

// The CPU's squared_distance_transform(flags, bit, g, out) on the device, enqueued on the call's
// stream (no wait): the two-sweep pass along the first axis longer than one voxel, then the
// envelopes along the later ones, as the CPU orders them. in, v, z: the envelope's scratch,
// g.size() doubles, int64s and 2 g.size() doubles.
void edt_passes(const Call& call, const uint8_t* flags, uint8_t bit, const cpu::EdtGrid& g,
                double* out, double* in, int64_t* v, double* z) {
  const cudaStream_t s = call.stream();
  const int64_t bd = g.extent[0], bh = g.extent[1], bw = g.extent[2];
  const double wz = g.spacing[0] * g.spacing[0], wy = g.spacing[1] * g.spacing[1],
               wx = g.spacing[2] * g.spacing[2];
  const auto binary = [&](int64_t n, int64_t inner, double w2) {
    launch(binary_pass_kernel, grid_blocks(inner), kThreads, 0, s, flags, bit, n, inner, w2, out);
    call.launched();
  };
  const auto envelope = [&](int64_t outer, int64_t n, int64_t stride, double w2) {
    launch(envelope_kernel, grid_blocks(outer * stride), kThreads, 0, s, out, outer, n, stride, w2,
           in, v, z);
    call.launched();
  };
  if (bd > 1) {
    binary(bd, bh * bw, wz);
    if (bh > 1) envelope(bd, bh, bw, wy);
    if (bw > 1) envelope(bd * bh, bw, 1, wx);
  } else if (bh > 1) {
    binary(bh, bw, wy);
    if (bw > 1) envelope(bh, bw, 1, wx);
  } else {
    binary(bw, 1, wx);
  }
}

// distance_transform's flags: 1 where the voxel is one to measure to (value != 0, NaN
// included, for to_foreground; value == 0 otherwise), as the CPU's loop.
template <class T>
__global__ void __launch_bounds__(kThreads)
    target_flags_kernel(const T* mask, uint8_t* flags, int64_t numel, bool to_foreground) {
  SEGLOSS_GRID_LOOP(i, numel) flags[i] = (mask[i] != T(0)) == to_foreground ? 1 : 0;
}

// d[i] = sqrt(d[i]) (correctly rounded on the device, as std::sqrt on the CPU).
__global__ void __launch_bounds__(kThreads) sqrt_kernel(double* d, int64_t numel) {
  SEGLOSS_GRID_LOOP(i, numel) d[i] = sqrt(d[i]);
}

// The box region of l: planes * 3 lows set to ~0, then planes * 3 highs set to 0.
void clear_boxes(const Call& call, const detail::SurfaceLayout& l, int64_t planes) {
  const size_t box_bytes = static_cast<size_t>(planes) * 6 * 8;
  auto* box = call.at<unsigned long long>(l.box);
  check(cudaMemsetAsync(box, 0xff, box_bytes / 2, call.stream()), call.function(),
        "cudaMemsetAsync");
  check(cudaMemsetAsync(box + 3 * planes, 0, box_bytes / 2, call.stream()), call.function(),
        "cudaMemsetAsync");
}

// After the first pass (the masks and the boxes of every plane in the workspace, the boxes also
// in `boxes` on the host): pairs[p] for every plane p, in plane order (the borders and both
// EDTs on the device, the gather on the host).
void pairs_from_masks(const Call& call, const detail::SurfaceLayout& l, int64_t planes,
                      const cpu::EdtGrid& grid, int axes,
                      const std::vector<unsigned long long>& boxes,
                      std::vector<SurfacePair>& pairs) {
  const char* function = call.function();
  const cudaStream_t s = call.stream();
  const int64_t h = grid.extent[1], w = grid.extent[2];
  const int64_t size = grid.size();
  auto* counts = call.at<unsigned long long>(l.meta + 8);
  uint8_t* masks = call.at<uint8_t>(l.masks);
  uint8_t* borders = call.at<uint8_t>(l.borders);
  double* squared = call.at<double>(l.squared);
  double* in = call.at<double>(l.in);
  int64_t* v = call.at<int64_t>(l.v);
  double* z = call.at<double>(l.z);
  std::vector<uint8_t> host_borders;
  std::vector<double> host_squared;
  pairs.assign(static_cast<size_t>(planes), SurfacePair{});
  for (int64_t p = 0; p < planes; ++p) {
    SurfacePair& pair = pairs[static_cast<size_t>(p)];
    const unsigned long long* b = boxes.data() + 3 * p;
    const unsigned long long* e = boxes.data() + 3 * planes + 3 * p;
    if (e[0] == 0) {  // no voxel in either mask
      pair.empty_masks = 2;
      continue;
    }
    cpu::EdtGrid bx = grid;
    int64_t lo[3];
    for (int a = 0; a < 3; ++a) {
      lo[a] = static_cast<int64_t>(b[a]);
      bx.extent[a] = static_cast<int64_t>(e[a]) - lo[a];
    }
    const int64_t bsize = bx.size();
    check(cudaMemsetAsync(counts, 0, 16, s), function, "cudaMemsetAsync");
    launch(borders_kernel, grid_blocks(bsize), kThreads, 0, s,
           static_cast<const uint8_t*>(masks + p * size), h, w, lo[0], lo[1], lo[2], bx.extent[0],
           bx.extent[1], bx.extent[2], axes >= 2, axes >= 3, borders, counts);
    call.launched();
    unsigned long long c[2] = {0, 0};
    host_borders.resize(static_cast<size_t>(bsize));
    check(cudaMemcpyAsync(c, counts, 16, cudaMemcpyDeviceToHost, s), function,
          "cudaMemcpyAsync of the border counts");
    check(cudaMemcpyAsync(host_borders.data(), borders, static_cast<size_t>(bsize),
                          cudaMemcpyDeviceToHost, s),
          function, "cudaMemcpyAsync of the borders");
    check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
    pair.pred_border = static_cast<int64_t>(c[0]);
    pair.true_border = static_cast<int64_t>(c[1]);
    if (c[0] == 0 || c[1] == 0) {
      pair.empty_masks = 1;
      continue;
    }
    // The CPU's squared_distance_transform over the box, then its gather_distances.
    const auto edt = [&](uint8_t bit) {
      edt_passes(call, borders, bit, bx, squared, in, v, z);
      host_squared.resize(static_cast<size_t>(bsize));
      check(cudaMemcpyAsync(host_squared.data(), squared, static_cast<size_t>(bsize) * 8,
                            cudaMemcpyDeviceToHost, s),
            function, "cudaMemcpyAsync of the distances");
      check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
    };
    edt(cpu::kTrueBorder);
    cpu::gather_distances(host_borders.data(), cpu::kPredBorder, host_squared.data(), bsize,
                          pair.d_pt);
    edt(cpu::kPredBorder);
    cpu::gather_distances(host_borders.data(), cpu::kTrueBorder, host_squared.data(), bsize,
                          pair.d_tp);
  }
}

}  // namespace

template <class T>
SurfaceBadValue surface_pairs(const char* function, const T* pred, const T* target, int64_t planes,
                              const cpu::EdtGrid& grid, int axes, std::vector<SurfacePair>& pairs) {
  const int64_t h = grid.extent[1], w = grid.extent[2];
  const int64_t size = grid.size(), numel = planes * size;
  const detail::SurfaceLayout l = detail::surface_layout(planes, size);
  Call call(function, l.total);
  const cudaStream_t s = call.stream();
  auto* first_bad = call.at<unsigned long long>(l.meta);
  auto* box = call.at<unsigned long long>(l.box);
  uint8_t* masks = call.at<uint8_t>(l.masks);
  const size_t box_bytes = static_cast<size_t>(planes) * 6 * 8;
  check(cudaMemsetAsync(first_bad, 0xff, 8, s), function, "cudaMemsetAsync");
  clear_boxes(call, l, planes);
  launch(masks_kernel<T>, grid_blocks(numel), kThreads, 0, s, pred, target, masks, numel, size, h,
         w, first_bad, box, box + 3 * planes);
  call.launched();
  unsigned long long bad = 0;
  std::vector<unsigned long long> boxes(static_cast<size_t>(planes) * 6);
  check(cudaMemcpyAsync(&bad, first_bad, 8, cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the error flag");
  check(cudaMemcpyAsync(boxes.data(), box, box_bytes, cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the boxes");
  check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  SurfaceBadValue result;
  if (bad != ~0ull) {
    result.index = static_cast<int64_t>(bad);
    T pv{}, tv{};
    check(cudaMemcpyAsync(&pv, pred + result.index, sizeof(T), cudaMemcpyDeviceToHost, s), function,
          "cudaMemcpyAsync of the bad value");
    check(cudaMemcpyAsync(&tv, target + result.index, sizeof(T), cudaMemcpyDeviceToHost, s),
          function, "cudaMemcpyAsync of the bad value");
    check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
    result.pred = static_cast<double>(pv);
    result.target = static_cast<double>(tv);
    pairs.clear();
    return result;
  }
  pairs_from_masks(call, l, planes, grid, axes, boxes, pairs);
  return result;
}

template <class P, class L>
void surface_label_pairs(const char* function, const P* pred, const L* truth, int64_t images,
                         const std::vector<int64_t>& classes, int64_t ignore_index,
                         const cpu::EdtGrid& grid, int axes, std::vector<SurfacePair>& pairs) {
  const int64_t h = grid.extent[1], w = grid.extent[2];
  const auto k_count = static_cast<int64_t>(classes.size());
  const int64_t planes = images * k_count;
  const int64_t size = grid.size(), numel = planes * size;
  const detail::SurfaceLayout l = detail::surface_layout(planes, size, k_count);
  Call call(function, l.total);
  const cudaStream_t s = call.stream();
  auto* box = call.at<unsigned long long>(l.box);
  auto* dclasses = call.at<int64_t>(l.classes);
  uint8_t* masks = call.at<uint8_t>(l.masks);
  const size_t box_bytes = static_cast<size_t>(planes) * 6 * 8;
  // From pageable memory: the copy has read `classes` when it returns (and the call waits below).
  check(cudaMemcpyAsync(dclasses, classes.data(), classes.size() * 8, cudaMemcpyHostToDevice, s),
        function, "cudaMemcpyAsync of the classes");
  clear_boxes(call, l, planes);
  launch(label_masks_kernel<P, L>, grid_blocks(numel), kThreads, 0, s, pred, truth,
         static_cast<const int64_t*>(dclasses), k_count, ignore_index, masks, numel, size, h, w,
         box, box + 3 * planes);
  call.launched();
  std::vector<unsigned long long> boxes(static_cast<size_t>(planes) * 6);
  check(cudaMemcpyAsync(boxes.data(), box, box_bytes, cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the boxes");
  check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  pairs_from_masks(call, l, planes, grid, axes, boxes, pairs);
}

template <class T>
void distance_transform(const char* function, const T* mask, int64_t planes,
                        const cpu::EdtGrid& grid, bool to_foreground, bool squared, double* out) {
  const int64_t size = grid.size(), numel = planes * size;
  const detail::DistanceLayout l = detail::distance_layout(planes, size);
  Call call(function, l.total);
  const cudaStream_t st = call.stream();
  uint8_t* flags = call.at<uint8_t>(l.flags);
  launch(target_flags_kernel<T>, grid_blocks(numel), kThreads, 0, st, mask, flags, numel,
         to_foreground);
  call.launched();
  // Plane after plane (the envelope's scratch is one plane's), each pass writing its output.
  for (int64_t p = 0; p < planes; ++p)
    edt_passes(call, flags + p * size, 1, grid, out + p * size, call.at<double>(l.in),
               call.at<int64_t>(l.v), call.at<double>(l.z));
  if (!squared) {
    launch(sqrt_kernel, grid_blocks(numel), kThreads, 0, st, out, numel);
    call.launched();
  }
}

#define SEGLOSS_INSTANTIATE(T)                                                                \
  template void distance_transform(const char*, const T*, int64_t, const cpu::EdtGrid&, bool, \
                                   bool, double*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
SEGLOSS_INSTANTIATE(int32_t)
SEGLOSS_INSTANTIATE(int64_t)
#undef SEGLOSS_INSTANTIATE

template SurfaceBadValue surface_pairs(const char*, const float*, const float*, int64_t,
                                       const cpu::EdtGrid&, int, std::vector<SurfacePair>&);
template SurfaceBadValue surface_pairs(const char*, const double*, const double*, int64_t,
                                       const cpu::EdtGrid&, int, std::vector<SurfacePair>&);
#define SEGLOSS_INSTANTIATE(P, L)                                                              \
  template void surface_label_pairs(const char*, const P*, const L*, int64_t,                  \
                                    const std::vector<int64_t>&, int64_t, const cpu::EdtGrid&, \
                                    int, std::vector<SurfacePair>&);
SEGLOSS_INSTANTIATE(int32_t, int32_t)
SEGLOSS_INSTANTIATE(int32_t, int64_t)
SEGLOSS_INSTANTIATE(int64_t, int32_t)
SEGLOSS_INSTANTIATE(int64_t, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss
