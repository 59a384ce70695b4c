// CUDA kernels of the softmax overlap losses. The logits are (N, C, S): a pixel's C logits are S
// elements apart, so each thread takes a pixel and walks the class axis (the threads of a warp,
// on consecutive pixels, read each class row coalesced), as cross_entropy.cu and the CPU kernel
// (backends/cpu/softmax_overlap.cpp) do.
//
// Statistics pass: block b handles part b % parts of image b / parts (the PlaneGrid of the
// image's S pixels); each warp takes 32 consecutive pixels per step. Per pixel: the max, the sum
// of exp(x_c - max), then per class p_c, t_c and the three terms p t, p^k, t^k, each added over
// the warp by a fixed shuffle tree (in the element type) and by lane 0 to the warp's double sums
// in shared memory. The block adds its 8 warps in order and writes 3 C partials; combine()
// adds the parts of each image in a fixed order. Above kSoftmaxOverlapChunk classes the grid's
// y axis cuts the class axis into chunks (class_chunks): each block computes the softmax over
// all C classes and sums only its chunk's, into its chunk's place of the 3 C partials, so each
// class's sum is added in the same order whatever the chunking. No atomics touch a sum: the same
// bits on every run. Then the finalize kernel of the sigmoid overlap losses (overlap_passes.cuh)
// turns the per-(image, class) sums into the scores, the value and the coefficients a, b, and the
// gradient pass writes, per pixel, with g_c = a_c t_c + b_c dP_c (dP = 2 p for squared sums,
// else 1) and r a class of the largest logit,
//   grad_c = p_c ((g_c - g_r) - sum_k p_k (g_k - g_r))
// (the shifted form of the CPU kernel, which keeps the precision of a saturated pixel).
#include "softmax_overlap.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../../core/pointwise.hpp"
#include "overlap_passes.cuh"

namespace segloss {
namespace cuda {
namespace {

constexpr int kWarps = kThreads / 32;
// Where the smallest bad label index goes in the call's header (value at 0, flag at 8, the BCE
// scale of bce_dice at 16): stored as its complement by atomicMax, so the zeroed header means
// none.
constexpr size_t kFirstBadOffset = header::kFirstBad;

template <class T, class U>
constexpr bool kLabels = !std::is_same_v<T, U>;

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // the warp's sum, in lane 0
}

// The softmax of the pixel at x (classes S apart): m = the largest logit (r its first class)
// and inv = 1 / sum_c exp(x_c - m); p_c = exp(x_c - m) inv.
// m = the largest of the C values `stride` apart from x, r its first index (a NaN is skipped
// unless it comes first, as the comparisons do).
template <class T, class I>
__device__ __forceinline__ void first_max(const T* x, I C, int64_t stride, T& m, I& r) {
  m = x[0];
  r = 0;
  for (I c = 1; c < C; ++c) {
    const T v = x[c * stride];
    if (v > m) {
      m = v;
      r = c;
    }
  }
}

template <class T>
__device__ __forceinline__ void softmax_of(const T* x, int64_t C, int64_t S, T& m, T& inv,
                                           int64_t& r) {
  using M = segloss::Math<T>;
  first_max(x, C, S, m, r);
  T se = T(0);
  for (int64_t c = 0; c < C; ++c) se += M::exp(x[c * S] - m);
  inv = T(1) / se;
}

template <class T, class U>
__global__ void __launch_bounds__(kThreads)
    stats_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, int64_t chunk,
                 int64_t chunk0, double* partials, int* flag, unsigned long long* first_bad) {
  using M = segloss::Math<T>;
  SEGLOSS_DYNAMIC_SHARED(double, sums);  // [kWarps][3 chunk]
  const int64_t C = a.classes, S = a.pixels;
  // The classes [c_lo, c_hi) of this block's chunk (chunk0 + blockIdx.y; one chunk of C classes
  // when C <= kSoftmaxOverlapChunk). Every chunk computes the softmax over all C classes.
  const int64_t c_lo = (chunk0 + blockIdx.y) * chunk;
  const int64_t c_hi = c_lo + chunk < C ? c_lo + chunk : C;
  const int64_t K = 3 * (c_hi - c_lo);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t k = threadIdx.x; k < kWarps * K; k += kThreads) sums[k] = 0.0;
  __syncthreads();
  double* mine = sums + warp * K;
  const int64_t n = blockIdx.x / g.parts, part = blockIdx.x % g.parts;
  const int64_t begin = part * g.part_size;
  const int64_t end = begin + g.part_size < S ? begin + g.part_size : S;
  const T* x = a.x + n * C * S;
  // s0 is the same for the 32 lanes of a warp: every lane runs every step (the shuffles need
  // the whole warp); a lane past the end adds zeros.
  for (int64_t s0 = begin + warp * 32; s0 < end; s0 += kThreads) {
    const int64_t s = s0 + lane;
    bool counted = s < end, bad = false;
    int64_t y = -1;
    if constexpr (kLabels<T, U>) {
      if (counted) {
        y = static_cast<int64_t>(a.target[n * S + s]);
        if (y == a.ignore_index) {
          counted = false;  // an ignored pixel counts nowhere
        } else if (y < 0 || y >= C) {
          bad = true;
        }
      }
      // One lane per warp reports: the lowest bad lane holds the warp's smallest index (lanes
      // are consecutive pixels). Every lane of the warp gets here (s0 is the same for all). The
      // blocks of the first chunk report (the other chunks see the same labels).
      const unsigned bad_lanes = __ballot_sync(0xffffffffu, bad);
      if (bad_lanes != 0u && c_lo == 0 && lane == __ffs(static_cast<int>(bad_lanes)) - 1) {
        atomicOr(flag, kBadLabel);
        atomicMax(first_bad, ~static_cast<unsigned long long>(n * S + s));
      }
    }
    T m = T(0), inv = T(0);
    int64_t r = 0;
    if (counted) softmax_of(x + s, C, S, m, inv, r);
    for (int64_t c = c_lo; c < c_hi; ++c) {
      const T p = counted ? M::exp(x[c * S + s] - m) * inv : T(0);
      T t;
      if constexpr (kLabels<T, U>)
        t = bad ? static_cast<T>(NAN) : (counted && y == c ? T(1) : T(0));
      else
        t = counted ? a.target[(n * C + c) * S + s] : T(0);
      const T vi = warp_sum<T>(p * t);
      const T vp = warp_sum<T>(a.squared ? p * p : p);
      const T vt = warp_sum<T>(a.squared ? t * t : t);
      if (lane == 0) {
        double* at = mine + 3 * (c - c_lo);
        at[0] += static_cast<double>(vi);
        at[1] += static_cast<double>(vp);
        at[2] += static_cast<double>(vt);
      }
    }
  }
  __syncthreads();
  // The block's partials of its chunk: 3 values per class at 3 c of the block's 3 C.
  double* out = partials + static_cast<int64_t>(blockIdx.x) * (3 * C) + 3 * c_lo;
  for (int64_t k = threadIdx.x; k < K; k += kThreads) {
    double v = 0.0;
    for (int w = 0; w < kWarps; ++w) v += sums[w * K + k];
    out[k] = v;
  }
}

template <class T, class U>
__global__ void __launch_bounds__(kThreads)
    grad_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, const double* coef,
                T* grad, int* flag, unsigned long long* first_bad, bool accumulate,
                bool coef_shared) {
  using M = segloss::Math<T>;
  SEGLOSS_DYNAMIC_SHARED(double, shared);
  const int64_t C = a.classes, S = a.pixels, planes = a.images * C;
  const int64_t n = blockIdx.x / g.parts, part = blockIdx.x % g.parts;
  // The image's coefficients a_c, b_c in T: copied to shared memory when 2 C of them fit
  // (coef_shared, grad_coef_shared below), else read from the workspace at each use (the same
  // conversion of the same double: the same value either way).
  T* ca = reinterpret_cast<T*>(shared);
  T* cb = ca + C;
  const double* ga = coef + n * C;
  const double* gb = coef + planes + n * C;
  if (coef_shared) {
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      ca[c] = static_cast<T>(ga[c]);
      cb[c] = static_cast<T>(gb[c]);
    }
  }
  __syncthreads();
  const auto coef_a = [&](int64_t c) { return coef_shared ? ca[c] : static_cast<T>(ga[c]); };
  const auto coef_b = [&](int64_t c) { return coef_shared ? cb[c] : static_cast<T>(gb[c]); };
  const int64_t begin = part * g.part_size;
  const int64_t end = begin + g.part_size < S ? begin + g.part_size : S;
  const T* x = a.x + n * C * S;
  T* out = grad + n * C * S;
  for (int64_t s = begin + threadIdx.x; s < end; s += kThreads) {
    int64_t y = -1;
    if constexpr (kLabels<T, U>) {
      y = static_cast<int64_t>(a.target[n * S + s]);
      const bool ignored = y == a.ignore_index;
      if (ignored || y < 0 || y >= C) {  // 0 for an ignored pixel, NaN for a bad label
        const T v = ignored ? T(0) : static_cast<T>(NAN);
        if (!ignored) {  // reported here too: the split's finalize runs no statistics pass
          atomicOr(flag, kBadLabel);
          atomicMax(first_bad, ~static_cast<unsigned long long>(n * S + s));
        }
        if (!(accumulate && ignored))  // accumulate: an ignored pixel adds 0
          for (int64_t c = 0; c < C; ++c) out[c * S + s] = v;
        continue;
      }
    }
    T m, inv;
    int64_t r;
    softmax_of(x + s, C, S, m, inv, r);
    // g_c = dL/dp_c of the pixel.
    auto g_of = [&](int64_t c, T p) {
      T t;
      if constexpr (kLabels<T, U>)
        t = y == c ? T(1) : T(0);
      else
        t = a.target[(n * C + c) * S + s];
      T gc = t * coef_a(c);
      if (a.squared) {
        const T b = coef_b(c);
        gc += p * (b + b);
      } else {
        gc += coef_b(c);
      }
      return gc;
    };
    const T g_ref = g_of(r, M::exp(x[r * S + s] - m) * inv);
    T dot = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const T p = M::exp(x[c * S + s] - m) * inv;
      dot += p * (g_of(c, p) - g_ref);
    }
    for (int64_t c = 0; c < C; ++c) {
      const T p = M::exp(x[c * S + s] - m) * inv;
      const T v = p * ((g_of(c, p) - g_ref) - dot);
      out[c * S + s] = accumulate ? out[c * S + s] + v : v;
    }
  }
}

// ---- the staged passes (session 14): labels, C <= 32 in float (16 in double) ----
//
// Each thread copies its pixel's C logits into its own column of the block's tile in shared
// memory (cp.async on sm_80 and later, as cross_entropy.cu's pixel_in_shared) and works there:
// one read of the logits from memory and one exp per class, where the passes above walk the
// class axis in memory three or four times and take 2 C (statistics) or 3 C + 1 (gradient)
// exps per pixel.
//
// Statistics: thread t takes pixel s0 + t of each tile of 256 pixels; its column becomes p_c
// (zeros for an ignored pixel or one past the end) and its label a code (the class, kIgnored, or
// kBad: t_c NaN, as stats_kernel). After a barrier, warp w sums class c = w + 8 j of the tile:
// lane l adds the pixels l + 32 k (k < 8) in T, then adds that to its double sums, which it keeps
// over the block's range; at the end each warp adds its lanes (warp_sum in double) and writes its
// classes' 3 partials. One warp per class: no combine of warps, and no shuffle per tile (three
// shuffle trees per class per block, for I, P and T; the pass above adds three per class per 32
// pixels). The sums are the same numbers added in another order than stats_kernel's: the value
// may differ in the last bits.
//
// Gradient: grad_kernel's operations in the same order on the column (m and r as softmax_of,
// e_c = exp(x_c - m) kept in the column, p_c = e_c inv): the same bits. Only this thread reads
// its column, so no barrier.
//
// Not measured on a GPU yet (written without one); segloss-cuda-bench's softmax_dice_vg_walk runs
// the passes above in the same process (cuda::detail::set_softmax_overlap_staging).
constexpr int kIgnoredCode = -1, kBadCode = -2;

// The most rows of a tile: 32 of float, 16 of double (32 KiB of shared memory).
template <class T>
constexpr int kMaxRows = static_cast<int>(32 * 1024 / (kThreads * sizeof(T)));

// The tile's rows for C classes (a multiple of kWarps), 0 where the staged passes do not apply:
// labels only, C <= kMaxRows<T>.
template <class T, class U>
int staged_rows(int64_t C) {
  if (!kLabels<T, U> || C < 1 || C > kMaxRows<T> || !detail::softmax_overlap_staging()) return 0;
  return static_cast<int>((C + kWarps - 1) / kWarps * kWarps);
}

// The label code of pixel s (see above), and the bad-label report of stats_kernel: the lowest
// bad lane of the warp (consecutive pixels: the smallest index) sets the flag and the index.
template <class T, class U>
__device__ __forceinline__ int label_code(const cpu::SoftmaxOverlapArgs<T, U>& a, int64_t n,
                                          int64_t s, bool inside, int* flag,
                                          unsigned long long* first_bad) {
  int code = kIgnoredCode;
  if (inside) {
    const int64_t y = static_cast<int64_t>(a.target[n * a.pixels + s]);
    code = y == a.ignore_index       ? kIgnoredCode
           : y < 0 || y >= a.classes ? kBadCode
                                     : static_cast<int>(y);
  }
  const unsigned bad_lanes = __ballot_sync(0xffffffffu, code == kBadCode);
  if (bad_lanes != 0u &&
      static_cast<int>(threadIdx.x & 31) == __ffs(static_cast<int>(bad_lanes)) - 1) {
    atomicOr(flag, kBadLabel);
    atomicMax(first_bad, ~static_cast<unsigned long long>(n * a.pixels + s));
  }
  return code;
}

// Copies the pixel's C logits (S apart) into its column (rows kThreads apart), then makes them
// e_c = exp(x_c - m) with m and r as softmax_of; returns inv = 1 / sum_c e_c.
template <class T>
__device__ __forceinline__ T stage_exp(const T* x, int C, int64_t S, T* col, int& r) {
  using M = segloss::Math<T>;
  for (int c = 0; c < C; ++c) copy_async(col + c * kThreads, x + c * S);
  wait_copies();
  T m;
  first_max(static_cast<const T*>(col), C, kThreads, m, r);
  T se = T(0);
  for (int c = 0; c < C; ++c) {
    const T e = M::exp(col[c * kThreads] - m);
    col[c * kThreads] = e;
    se += e;
  }
  return T(1) / se;
}

template <class T, class U, int K>
__global__ void __launch_bounds__(kThreads)
    staged_stats_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, double* partials,
                        int* flag, unsigned long long* first_bad) {
  static_assert(K % kWarps == 0, "a whole number of classes per warp");
  constexpr int kSlots = K / kWarps;
  SEGLOSS_STATIC_SHARED(T, tile, [K][kThreads]);
  SEGLOSS_STATIC_SHARED(int, codes, [kThreads]);
  const int C = static_cast<int>(a.classes);
  const int64_t S = a.pixels;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n = blockIdx.x / g.parts, part = blockIdx.x % g.parts;
  const int64_t begin = part * g.part_size;
  const int64_t end = begin + g.part_size < S ? begin + g.part_size : S;
  const T* x = a.x + n * a.classes * S;
  T* col = &tile[0][threadIdx.x];
  double acc[kSlots][3] = {};
  for (int64_t s0 = begin; s0 < end; s0 += kThreads) {  // the same steps for the whole block
    const int64_t s = s0 + threadIdx.x;
    const int code = label_code(a, n, s, s < end, flag, first_bad);
    if (code == kIgnoredCode) {
      for (int c = 0; c < C; ++c) col[c * kThreads] = T(0);
    } else {
      int r;
      const T inv = stage_exp(x + s, C, S, col, r);
      for (int c = 0; c < C; ++c) col[c * kThreads] *= inv;  // p_c = e_c inv
    }
    codes[threadIdx.x] = code;
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kSlots; ++j) {
      const int c = warp + kWarps * j;
      if (c >= C) continue;
      T vi = T(0), vp = T(0), vt = T(0);
#pragma unroll
      for (int k = 0; k < kThreads / 32; ++k) {
        const int q = lane + 32 * k;
        const T p = tile[c][q];
        const int y = codes[q];
        const T t = y == kBadCode ? static_cast<T>(NAN) : (y == c ? T(1) : T(0));
        vi += p * t;
        vp += a.squared ? p * p : p;
        vt += a.squared ? t * t : t;
      }
      acc[j][0] += static_cast<double>(vi);
      acc[j][1] += static_cast<double>(vp);
      acc[j][2] += static_cast<double>(vt);
    }
    __syncthreads();  // the next tile overwrites the columns and the codes
  }
  double* out = partials + blockIdx.x * (3 * a.classes);
#pragma unroll
  for (int j = 0; j < kSlots; ++j) {
    const int c = warp + kWarps * j;
    if (c >= C) continue;  // the same for the whole warp: the shuffles see every lane
    for (int k = 0; k < 3; ++k) {
      const double v = warp_sum<double>(acc[j][k]);
      if (lane == 0) out[3 * c + k] = v;
    }
  }
}

template <class T, class U, int K>
__global__ void __launch_bounds__(kThreads)
    staged_grad_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, const double* coef,
                       T* grad, int* flag, unsigned long long* first_bad, bool accumulate) {
  SEGLOSS_STATIC_SHARED(T, tile, [K][kThreads]);
  SEGLOSS_STATIC_SHARED(T, ab, [2][K]);  // the image's a_c, b_c in T, as grad_kernel's
  const int C = static_cast<int>(a.classes);
  const int64_t S = a.pixels, planes = a.images * a.classes;
  const int64_t n = blockIdx.x / g.parts, part = blockIdx.x % g.parts;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    ab[0][c] = pw::narrow_coefficient<T>(coef[n * C + c]);
    ab[1][c] = pw::narrow_coefficient<T>(coef[planes + n * C + c]);
  }
  __syncthreads();
  const int64_t begin = part * g.part_size;
  const int64_t end = begin + g.part_size < S ? begin + g.part_size : S;
  const T* x = a.x + n * a.classes * S;
  T* out = grad + n * a.classes * S;
  T* col = &tile[0][threadIdx.x];
  for (int64_t s = begin + threadIdx.x; s < end; s += kThreads) {
    const int64_t y = static_cast<int64_t>(a.target[n * S + s]);
    const bool ignored = y == a.ignore_index;
    if (ignored || y < 0 || y >= C) {  // as grad_kernel (a shared helper cost 8 to 24 registers)
      const T v = ignored ? T(0) : static_cast<T>(NAN);
      if (!ignored) {
        atomicOr(flag, kBadLabel);
        atomicMax(first_bad, ~static_cast<unsigned long long>(n * S + s));
      }
      if (!(accumulate && ignored))
        for (int c = 0; c < C; ++c) out[c * S + s] = v;
      continue;
    }
    int r;
    const T inv = stage_exp(x + s, C, S, col, r);
    auto g_of = [&](int c, T p) {
      T gc = (y == c ? T(1) : T(0)) * ab[0][c];
      if (a.squared) {
        const T b = ab[1][c];
        gc += p * (b + b);
      } else {
        gc += ab[1][c];
      }
      return gc;
    };
    const T g_ref = g_of(r, col[r * kThreads] * inv);
    T dot = T(0);
    for (int c = 0; c < C; ++c) {
      const T p = col[c * kThreads] * inv;
      dot += p * (g_of(c, p) - g_ref);
    }
    for (int c = 0; c < C; ++c) {
      const T p = col[c * kThreads] * inv;
      const T v = p * ((g_of(c, p) - g_ref) - dot);
      out[c * S + s] = accumulate ? out[c * S + s] + v : v;
    }
  }
}

// Calls launch_rows(std::integral_constant<int, rows>) for rows = staged_rows (8, 16, and for
// float 24 or 32), so that only the tiles that fit are compiled.
template <class T, class Launch>
void with_rows(int rows, const Launch& launch_rows) {
  if (rows <= 8) {
    launch_rows(std::integral_constant<int, 8>{});
  } else if (rows <= 16) {
    launch_rows(std::integral_constant<int, 16>{});
  } else if constexpr (kMaxRows<T> >= 32) {
    if (rows <= 24)
      launch_rows(std::integral_constant<int, 24>{});
    else
      launch_rows(std::integral_constant<int, 32>{});
  }
}

// ---- generalized Dice: the finalize of losses/softmax_overlap.cpp's gdl_scores ----

// A class's weight from its target sum t, before the rule for absent classes (w_type: 0
// uniform, 1 simple, 2 square).
__device__ __forceinline__ double gdl_raw_weight(int w_type, double t) {
  return w_type == 2 ? 1.0 / (t * t) : w_type == 1 ? 1.0 / t : 1.0;
}

// One block: it stages the sums (runtime.cuh stage_sums), then one thread computes, per score
// j (an image, or the batch), the class weights (an infinite one, of a
// class absent from the target, replaced by the largest finite one: MONAI's rule), the score
// S_j = (2 sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + T_c) + smooth_dr), the value, the
// per-score losses 1 - S_j when asked, and the coefficients of the gradient pass
// a = G_j 2 w_c / D_j, b = -G_j w_c N_j / D_j^2 of every plane of the score, in the CPU's order.
// A one-block step (runtime.cuh run_step, combine_then), as overlap_passes.cuh's Finalize; no
// __launch_bounds__ on its kernels, as there: with it ptxas spilled (64 registers).
template <class T>
struct GdlFinalize {
  const double* all_sums;
  GdlForm f;
  Upstream<T> up;
  T* scores;
  double *coef, *value;
  __device__ void operator()() const;
};

template <class T>
__device__ void GdlFinalize<T>::operator()() const {
  SEGLOSS_STATIC_SHARED(double, staged, [kStagedDoubles]);  // runtime.cuh stage_sums
  const int64_t N = f.images, C = f.classes;
  const double* sums = stage_sums(all_sums, N * C * 3, staged);
  if (threadIdx.x != 0) return;
  const int64_t count = f.per_image ? N : 1, c0 = f.include_background ? 0 : 1;
  const int64_t images_per_score = f.per_image ? 1 : N;
  // The images whose planes get coefficients: the sums', or in the split without per_image the
  // shard's (the sums are then one image of the batch's class sums).
  const int64_t coef_images = f.coef_images > 0 ? f.coef_images : N;
  const int64_t coef_per_score = f.per_image ? 1 : coef_images;
  const double g0 = up.grad_out && !up.per_score ? static_cast<double>(up.grad_out[0]) : 1.0;
  // The mean over the scores: the shard's own, or (the split with per_image) the batch's count.
  const double scores_counted = up.totals ? up.totals[0] : static_cast<double>(count);
  const double uniform = f.mean ? 1.0 / scores_counted : 1.0;
  double* ca = coef;
  double* cb = coef + coef_images * C;
  double loss_sum = 0.0;
  for (int64_t j = 0; j < count; ++j) {
    // Sum k (0: I, 1: P, 2: T) of class c over the score's images, in image order.
    const auto sum_of = [&](int64_t c, int k) {
      double v = 0.0;
      for (int64_t n = 0; n < images_per_score; ++n)
        v += sums[((f.per_image ? j : n) * C + c) * 3 + k];
      return v;
    };
    double w_max = 0.0;
    for (int64_t c = c0; c < C; ++c) {
      const double v = gdl_raw_weight(f.w_type, sum_of(c, 2));
      if (isfinite(v)) w_max = v > w_max ? v : w_max;
    }
    const auto weight = [&](int64_t c) {
      const double v = gdl_raw_weight(f.w_type, sum_of(c, 2));
      return isfinite(v) ? v : w_max;
    };
    double num = 0.0, den = 0.0;
    for (int64_t c = c0; c < C; ++c) {
      const double w = weight(c);
      num += w * sum_of(c, 0);
      den += w * (sum_of(c, 1) + sum_of(c, 2));
    }
    const double nj = 2.0 * num + f.smooth_nr, dj = den + f.smooth_dr;
    const double s = nj / dj;
    loss_sum += 1.0 - s;
    if (scores) scores[j] = static_cast<T>(1.0 - s);
    const double G = -(up.per_score ? static_cast<double>(up.grad_out[j]) : g0 * uniform);
    // Class outer: each weight once (O(N C) loads for a batch score, not O(N^2 C)).
    for (int64_t c = 0; c < C; ++c) {
      const double w = c >= c0 ? weight(c) : 0.0;
      const double a_c = G * 2.0 * w / dj, b_c = -G * w * nj / (dj * dj);
      for (int64_t n = 0; n < coef_per_score; ++n) {
        const int64_t q = (f.per_image ? j : n) * C + c;
        ca[q] = a_c;
        cb[q] = b_c;
      }
    }
  }
  if (up.totals) loss_sum = up.totals[1];  // the batch's sum of 1 - S_j
  *value = f.mean ? loss_sum / scores_counted : loss_sum;
}

// How the statistics pass cuts the class axis: `count` chunks of at most `size` classes (the
// last one may be shorter, none is empty), chunk i the classes [i size, (i + 1) size). Up to
// kSoftmaxOverlapChunk classes: one chunk of C classes (the kernel and bits of sessions 4-9).
// Above: as few chunks as kSoftmaxOverlapChunk allows, of equal size but the last.
struct ClassChunks {
  int64_t count = 1, size = 1;
};
inline ClassChunks class_chunks(int64_t C) {
  ClassChunks k;
  if (C <= kSoftmaxOverlapChunk) {
    k.size = C > 0 ? C : 1;
    return k;
  }
  const int64_t want = (C + kSoftmaxOverlapChunk - 1) / kSoftmaxOverlapChunk;
  k.size = (C + want - 1) / want;
  k.count = (C + k.size - 1) / k.size;
  return k;
}

// The most dynamic shared memory a kernel gets without opting in (cudaFuncSetAttribute).
constexpr size_t kSharedLimit = 48 * 1024;
// The statistics pass's shared memory: 3 double sums per class of a chunk per warp.
static_assert(kWarps * 3 * kSoftmaxOverlapChunk * sizeof(double) <= kSharedLimit,
              "the statistics pass's chunk of classes does not fit in shared memory");
// The most blocks a grid has along y.
constexpr int64_t kMaxGridY = 65535;

// Whether the gradient pass copies the image's 2 C coefficients (as T) to shared memory: when
// they fit (up to 3072 classes in double, 6144 in float); else it reads them from the workspace.
template <class T>
bool grad_coef_shared(int64_t C) {
  return static_cast<size_t>(2 * C) * sizeof(T) <= kSharedLimit;
}

// The statistics pass and its combine: the per-(image, class) sums I, P, T. The grid is (the
// PlaneGrid's blocks) x (the class chunks); every block writes the 3 values of each class of its
// chunk into its block's 3 C partials, so the combine sees the same layout whatever the chunks.
// The partials only: combine (statistics) or combine_then (run) adds them per image.
template <class T, class U>
void statistics_pass(const Call& call, const PlaneGrid& g, const detail::Layout& l,
                     const cpu::SoftmaxOverlapArgs<T, U>& a) {
  const unsigned blocks = grid_of(call, g.blocks(), "a pass over the pixels");
  const ClassChunks ch = class_chunks(a.classes);
  const size_t shared = static_cast<size_t>(kWarps * 3 * ch.size) * sizeof(double);
  // No image or no pixel: nothing to launch (a grid of 0 blocks is a launch error).
  const int rows = staged_rows<T, U>(a.classes);  // 0 without labels
  if (blocks > 0 && rows > 0) {
    if constexpr (kLabels<T, U>)
      with_rows<T>(rows, [&](auto k) {
        cuda::launch(staged_stats_kernel<T, U, decltype(k)::value>, blocks, kThreads, 0,
                     call.stream(), g, a, call.at<double>(l.partials), call.flag(),
                     call.at<unsigned long long>(kFirstBadOffset));
      });
    call.launched();
  } else if (blocks > 0) {
    for (int64_t y0 = 0; y0 < ch.count; y0 += kMaxGridY) {
      const int64_t ys = ch.count - y0 < kMaxGridY ? ch.count - y0 : kMaxGridY;
      cuda::launch(stats_kernel<T, U>, dim3(blocks, static_cast<unsigned>(ys)), kThreads, shared,
                   call.stream(), g, a, ch.size, y0, call.at<double>(l.partials), call.flag(),
                   call.at<unsigned long long>(kFirstBadOffset));
      call.launched();
    }
  }
}

// The statistics pass and its combine: the per-image class sums in the sums region.
template <class T, class U>
void statistics(const Call& call, const PlaneGrid& g, const detail::Layout& l,
                const cpu::SoftmaxOverlapArgs<T, U>& a) {
  statistics_pass(call, g, l, a);
  combine(call, call.at<double>(l.partials), a.images, g.parts, static_cast<int>(3 * a.classes),
          call.at<double>(l.sums));
}

// The gradient pass from the coefficients (a bad label sets the flag here too).
template <class T, class U>
void gradient(const Call& call, const PlaneGrid& g, const detail::Layout& l,
              const cpu::SoftmaxOverlapArgs<T, U>& a, T* grad, bool accumulate = false) {
  const unsigned blocks = grid_of(call, g.blocks(), "a pass over the pixels");
  if (!grad || blocks == 0) return;
  const int rows = staged_rows<T, U>(a.classes);  // 0 without labels
  if (rows > 0) {
    if constexpr (kLabels<T, U>)
      with_rows<T>(rows, [&](auto k) {
        cuda::launch(staged_grad_kernel<T, U, decltype(k)::value>, blocks, kThreads, 0,
                     call.stream(), g, a, static_cast<const double*>(call.at<double>(l.coef)), grad,
                     call.flag(), call.at<unsigned long long>(kFirstBadOffset), accumulate);
      });
    call.launched();
    return;
  }
  const bool coef_shared = grad_coef_shared<T>(a.classes);
  cuda::launch(grad_kernel<T, U>, blocks, kThreads,
               coef_shared ? static_cast<size_t>(2 * a.classes) * sizeof(T) : size_t{0},
               call.stream(), g, a, call.at<double>(l.coef), grad, call.flag(),
               call.at<unsigned long long>(kFirstBadOffset), accumulate, coef_shared);
  call.launched();
}

// Copies the call's header back (the value, the flag, the first bad label, the counts) and
// waits for the stream; host_sums (when given) gets the n sums.
inline SoftmaxOverlapStatus read_status(const char* function, const Call& call,
                                        const double* sums = nullptr, double* host_sums = nullptr,
                                        size_t n = 0) {
  struct {
    double value;
    int flag;
    int pad;
    double bce_scale;
    unsigned long long first_bad;
    double kept, skipped;  // overlap_passes.cuh's finalize (generalized Dice: not written)
  } header;
  static_assert(sizeof(header) == overlap_detail::kCountsOffset + 2 * sizeof(double),
                "header layout");
  if (host_sums)
    check(
        cudaMemcpyAsync(host_sums, sums, n * sizeof(double), cudaMemcpyDeviceToHost, call.stream()),
        function, "cudaMemcpyAsync of the statistics");
  check(
      cudaMemcpyAsync(&header, call.value(), sizeof(header), cudaMemcpyDeviceToHost, call.stream()),
      function, "cudaMemcpyAsync of the result");
  check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
  SoftmaxOverlapStatus st;
  st.value = header.value;
  if (header.flag & kBadLabel) st.first_bad = static_cast<int64_t>(~header.first_bad);
  st.bad_class_weight = (header.flag & kBadClassWeight) != 0;
  st.kept = static_cast<int64_t>(header.kept);
  st.skipped = static_cast<int64_t>(header.skipped);
  return st;
}

// The whole call: the statistics pass, its combine and the loss's finalize step (the functor
// `finalize(call, sums, coef)` returns; in the combine's last block: combine_then), the gradient
// pass when grad is set, then the value.
template <class T, class U, class Finalize>
SoftmaxOverlapStatus run(const char* function, const cpu::SoftmaxOverlapArgs<T, U>& a,
                         const Finalize& finalize, T* grad, T* device_value, bool host_status,
                         bool accumulate = false, const DeviceTotal* total = nullptr) {
  const PlaneGrid g = detail::plane_grid(a.images, a.pixels);
  const detail::Layout l = detail::softmax_layout(g, a.classes);  // core/cuda_internal.hpp
  Call call(function, l.total);
  statistics_pass(call, g, l, a);
  double* sums = call.at<double>(l.sums);
  combine_then(call, call.at<double>(l.partials), a.images, g.parts,
               static_cast<int>(3 * a.classes), sums,
               finalize(call, sums, call.at<double>(l.coef)));
  gradient(call, g, l, a, grad, accumulate);
  if (device_value && total)
    call.device_total(device_value, total->held_scale, total->value_scale);
  else if (device_value)
    call.device_value(device_value);
  return host_status ? read_status(function, call) : SoftmaxOverlapStatus{};
}

// The split's finalize: the fused call's workspace, whose partials region (no statistics pass
// runs) receives the reduced global sums and whose sums region the shard's local sums (with
// per_image); then the step `finalize(call, from, totals, coef)` returns, and the gradient pass;
// waits.
template <class T, class U, class Finalize>
SoftmaxOverlapStatus run_split(const char* function, const cpu::SoftmaxOverlapArgs<T, U>& a,
                               bool per_image, const OverlapSplit& s, const Finalize& finalize,
                               T* grad, bool accumulate = false) {
  const PlaneGrid g = detail::plane_grid(a.images, a.pixels);
  const detail::Layout l = detail::softmax_layout(g, a.classes);
  Call call(function, l.total);
  double* global = call.at<double>(l.partials);  // blocks * 3 C >= 3 C doubles
  double* sums = call.at<double>(l.sums);
  overlap_detail::upload(call, global, s.global, s.global_size);
  if (per_image)
    overlap_detail::upload(call, sums, s.local, static_cast<size_t>(a.images * a.classes) * 3);
  run_step(call, finalize(call, per_image ? sums : global, per_image ? global : nullptr,
                          call.at<double>(l.coef)));
  gradient(call, g, l, a, grad, accumulate);
  return read_status(function, call);
}

}  // namespace

template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_run(const char* function,
                                         const cpu::SoftmaxOverlapArgs<T, U>& a,
                                         const OverlapForm& f, Upstream<T> up, T* grad, T* scores,
                                         T* device_value, bool host_status, bool accumulate,
                                         const DeviceTotal* total) {
  const auto finalize = [&](const Call& call, const double* sums, double* coef) {
    return overlap_detail::Finalize<T>{
        sums,         3,       f,
        up,           scores,  coef,
        call.value(), nullptr, call.at<double>(overlap_detail::kCountsOffset),
        call.flag()};
  };
  return run<T, U>(function, a, finalize, grad, device_value, host_status, accumulate, total);
}

template <class T, class U>
SoftmaxOverlapStatus generalized_dice_run(const char* function,
                                          const cpu::SoftmaxOverlapArgs<T, U>& a, const GdlForm& f,
                                          Upstream<T> up, T* grad, T* scores, T* device_value,
                                          bool host_status) {
  const auto finalize = [&](const Call& call, const double* sums, double* coef) {
    return GdlFinalize<T>{sums, f, up, scores, coef, call.value()};
  };
  return run<T, U>(function, a, finalize, grad, device_value, host_status);
}

template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_statistics_run(const char* function,
                                                    const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                    double* host_sums) {
  const PlaneGrid g = detail::plane_grid(a.images, a.pixels);
  const detail::Layout l = detail::softmax_layout(g, a.classes);
  Call call(function, l.total);
  statistics(call, g, l, a);
  return read_status(function, call, call.at<double>(l.sums), host_sums,
                     static_cast<size_t>(a.images * a.classes) * 3);
}

template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_finalize_run(const char* function,
                                                  const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                  OverlapForm f, Upstream<T> up,
                                                  const OverlapSplit& s, T* grad, bool accumulate) {
  if (!f.per_image) {  // the batch's scores: one image of reduced class sums
    f.coef_images = f.images;
    f.images = 1;
  }
  const auto finalize = [&](const Call& call, const double* sums, const double* totals,
                            double* coef) {
    Upstream<T> u = up;
    u.totals = totals;
    return overlap_detail::Finalize<T>{sums,
                                       3,
                                       f,
                                       u,
                                       nullptr,
                                       coef,
                                       call.value(),
                                       nullptr,
                                       call.at<double>(overlap_detail::kCountsOffset),
                                       call.flag()};
  };
  return run_split<T, U>(function, a, f.per_image, s, finalize, grad, accumulate);
}

template <class T, class U>
SoftmaxOverlapStatus generalized_dice_finalize_run(const char* function,
                                                   const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                   GdlForm f, const OverlapSplit& s, T* grad) {
  if (!f.per_image) {
    f.coef_images = f.images;
    f.images = 1;
  }
  const auto finalize = [&](const Call& call, const double* sums, const double* totals,
                            double* coef) {
    Upstream<T> u;
    u.totals = totals;
    return GdlFinalize<T>{sums, f, u, nullptr, coef, call.value()};
  };
  return run_split<T, U>(function, a, f.per_image, s, finalize, grad);
}

#define SEGLOSS_INSTANTIATE(T, U)                                                                 \
  template SoftmaxOverlapStatus softmax_overlap_statistics_run<T, U>(                             \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, double*);                                \
  template SoftmaxOverlapStatus softmax_overlap_finalize_run<T, U>(                               \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, OverlapForm, Upstream<T>,                \
      const OverlapSplit&, T*, bool);                                                             \
  template SoftmaxOverlapStatus generalized_dice_finalize_run<T, U>(                              \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, GdlForm, const OverlapSplit&, T*);       \
  template SoftmaxOverlapStatus softmax_overlap_run<T, U>(                                        \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, const OverlapForm&, Upstream<T>, T*, T*, \
      T*, bool, bool, const DeviceTotal*);                                                        \
  template SoftmaxOverlapStatus generalized_dice_run<T, U>(                                       \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, const GdlForm&, Upstream<T>, T*, T*, T*, \
      bool);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss
