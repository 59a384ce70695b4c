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
// adds the parts of each image in a fixed order. No atomics touch a sum: the same bits on every
// run. Then the finalize kernel of the sigmoid overlap losses (overlap_passes.cuh) turns the
// per-(image, class) sums into the scores, the value and the coefficients a, b, and the
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
constexpr size_t kFirstBadOffset = 24;

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
template <class T>
__device__ __forceinline__ void softmax_of(const T* x, int64_t C, int64_t S, T& m, T& inv,
                                           int64_t& r) {
  using M = segloss::Math<T>;
  m = x[0];
  r = 0;
  for (int64_t c = 1; c < C; ++c) {
    const T v = x[c * S];
    if (v > m) {
      m = v;
      r = c;
    }
  }
  T se = T(0);
  for (int64_t c = 0; c < C; ++c) se += M::exp(x[c * S] - m);
  inv = T(1) / se;
}

template <class T, class U>
__global__ void __launch_bounds__(kThreads)
    stats_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, double* partials,
                 int* flag, unsigned long long* first_bad) {
  using M = segloss::Math<T>;
  extern __shared__ double sums[];  // [kWarps][3 C]
  const int64_t C = a.classes, S = a.pixels, K = 3 * C;
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
          atomicOr(flag, kBadLabel);
          atomicMax(first_bad, ~static_cast<unsigned long long>(n * S + s));
        }
      }
    }
    T m = T(0), inv = T(0);
    int64_t r = 0;
    if (counted) softmax_of(x + s, C, S, m, inv, r);
    for (int64_t c = 0; c < C; ++c) {
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
        mine[3 * c + 0] += static_cast<double>(vi);
        mine[3 * c + 1] += static_cast<double>(vp);
        mine[3 * c + 2] += static_cast<double>(vt);
      }
    }
  }
  __syncthreads();
  for (int64_t k = threadIdx.x; k < K; k += kThreads) {
    double v = 0.0;
    for (int w = 0; w < kWarps; ++w) v += sums[w * K + k];
    partials[blockIdx.x * K + k] = v;
  }
}

template <class T, class U>
__global__ void __launch_bounds__(kThreads)
    grad_kernel(const PlaneGrid g, const cpu::SoftmaxOverlapArgs<T, U> a, const double* coef,
                T* grad) {
  using M = segloss::Math<T>;
  extern __shared__ double shared[];
  const int64_t C = a.classes, S = a.pixels, planes = a.images * C;
  const int64_t n = blockIdx.x / g.parts, part = blockIdx.x % g.parts;
  T* ca = reinterpret_cast<T*>(shared);  // the image's coefficients a_c, b_c in T
  T* cb = ca + C;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    ca[c] = static_cast<T>(coef[n * C + c]);
    cb[c] = static_cast<T>(coef[planes + n * C + c]);
  }
  __syncthreads();
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
      T gc = t * ca[c];
      if (a.squared)
        gc += p * (cb[c] + cb[c]);
      else
        gc += cb[c];
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
      out[c * S + s] = p * ((g_of(c, p) - g_ref) - dot);
    }
  }
}

}  // namespace

template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_run(const char* function,
                                         const cpu::SoftmaxOverlapArgs<T, U>& a,
                                         const OverlapForm& f, Upstream<T> up, T* grad, T* scores,
                                         T* device_value, bool host_status) {
  const PlaneGrid g = detail::plane_grid(a.images, a.pixels);
  const int64_t C = a.classes, K = 3 * C, planes = a.images * C;
  // The workspace: [header | partials: blocks * 3C | sums: N * 3C | coefficients: 2 N C].
  const size_t partials_at = detail::kHeaderBytes;
  const size_t sums_at =
      partials_at + detail::align_up(static_cast<size_t>(g.blocks() * K) * sizeof(double));
  const size_t coef_at =
      sums_at + detail::align_up(static_cast<size_t>(planes * 3) * sizeof(double));
  const size_t total = coef_at + detail::align_up(static_cast<size_t>(planes * 2) * sizeof(double));
  Call call(function, total);
  double* partials = call.at<double>(partials_at);
  double* sums = call.at<double>(sums_at);
  double* coef = call.at<double>(coef_at);
  const unsigned blocks = static_cast<unsigned>(g.blocks());
  stats_kernel<T, U><<<blocks, kThreads, kWarps * K * sizeof(double), call.stream()>>>(
      g, a, partials, call.flag(), call.at<unsigned long long>(kFirstBadOffset));
  call.launched();
  combine(call, partials, a.images, g.parts, static_cast<int>(K), sums);
  overlap_detail::finalize_kernel<T>
      <<<1, 1, 0, call.stream()>>>(sums, 3, f, up, scores, coef, call.value(), nullptr);
  call.launched();
  if (grad) {
    grad_kernel<T, U><<<blocks, kThreads, 2 * C * sizeof(T), call.stream()>>>(g, a, coef, grad);
    call.launched();
  }
  if (device_value) call.device_value(device_value);
  SoftmaxOverlapStatus st;
  if (host_status) {
    struct {
      double value;
      int flag;
      int pad;
      double bce_scale;
      unsigned long long first_bad;
    } header;
    static_assert(sizeof(header) == kFirstBadOffset + sizeof(unsigned long long), "header layout");
    check(cudaMemcpyAsync(&header, call.value(), sizeof(header), cudaMemcpyDeviceToHost,
                          call.stream()),
          function, "cudaMemcpyAsync of the result");
    check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
    st.value = header.value;
    if (header.flag) st.first_bad = static_cast<int64_t>(~header.first_bad);
  }
  return st;
}

#define SEGLOSS_INSTANTIATE(T, U)                                                                 \
  template SoftmaxOverlapStatus softmax_overlap_run<T, U>(                                        \
      const char*, const cpu::SoftmaxOverlapArgs<T, U>&, const OverlapForm&, Upstream<T>, T*, T*, \
      T*, bool);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss
