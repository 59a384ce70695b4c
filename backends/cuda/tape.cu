// The autodiff tape on the device (core/tape.cpp): a fused loss node's gradient, scaled by the
// incoming gradient of its scalar value, written or added into the gradient of a CUDA leaf
// (Tape::accumulate); and the primitives' forward and backward for CUDA values
// (backends/cuda/tape_ops.hpp). Elementwise kernels are grid-stride loops; the reductions run
// one block per output in a fixed order (strided double sums per thread, then block_sum's tree),
// and the group ops' sums (cumsum, segment_sum, the gather backward) one thread per group or
// element, in the CPU's order: the result is the same bits on every run.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../core/pointwise.hpp"
#include "radix_sort.cuh"
#include "runtime.cuh"
#include "tape_ops.hpp"

namespace segloss {
namespace detail {
namespace {

// Threads per block of the grid-stride loops, whose grids are cuda::grid_blocks(n).
constexpr int kBlock = cuda::kThreads;

template <class T>
__global__ void scale_add_kernel(T* dst, const T* src, T scale, int64_t n, bool assign) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = assign ? scale * src[i] : dst[i] + cuda::mul_rn(scale, src[i]);  // no FMA: the CPU's
}

// ---- the math of each op, mirroring core/tape.cpp's lambdas ----

template <class T>
__device__ inline bool is_nan(T x) {
  return x != x;
}
template <class T>
__device__ inline T tape_abs(T x) {
  return x < T(0) ? -x : (x == T(0) ? T(0) : x);  // fabs: -0 -> +0, NaN stays
}
template <class T>
__device__ inline T tape_pow(T x, T p) {
  if constexpr (std::is_same_v<T, float>)
    return ::powf(x, p);
  else
    return ::pow(x, p);
}
template <class T>
__device__ inline T stable_sigmoid(T x) {
  const T e = Math<T>::exp(-tape_abs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
template <class T>
__device__ inline T stable_log_sigmoid(T x) {
  const T m = T(0) < x ? T(0) : x;  // std::min(x, 0)
  return m - Math<T>::log1p(Math<T>::exp(-tape_abs(x)));
}

template <class T>
__device__ inline T unary_value(TapeUnary op, T x, T k, T k2) {
  switch (op) {
    case TapeUnary::add:
      return x + k;
    case TapeUnary::mul:
      return x * k;
    case TapeUnary::rsub:
      return k - x;
    case TapeUnary::rdiv:
      return k / x;
    case TapeUnary::neg:
      return -x;
    case TapeUnary::exp:
      return Math<T>::exp(x);
    case TapeUnary::log:
      return Math<T>::log(x);
    case TapeUnary::log1p:
      return Math<T>::log1p(x);
    case TapeUnary::sigmoid:
      return stable_sigmoid(x);
    case TapeUnary::log_sigmoid:
      return stable_log_sigmoid(x);
    case TapeUnary::softplus:
      return -stable_log_sigmoid(-x);
    case TapeUnary::clamp:
      return x < k ? k : x > k2 ? k2 : x;
    case TapeUnary::square:
      return x * x;
    case TapeUnary::pow:
      return tape_pow(x, k);
    case TapeUnary::relu:
      return is_nan(x) || x > T(0) ? x : T(0);
  }
  return x;
}

// The derivative at x, given y = f(x).
template <class T>
__device__ inline T unary_derivative(TapeUnary op, T x, T y, T k, T k2) {
  switch (op) {
    case TapeUnary::add:
      return T(1);
    case TapeUnary::mul:
      return k;
    case TapeUnary::rsub:
      return T(-1);
    case TapeUnary::rdiv:
      return -y / x;
    case TapeUnary::neg:
      return T(-1);
    case TapeUnary::exp:
      return y;
    case TapeUnary::log:
      return T(1) / x;
    case TapeUnary::log1p:
      return T(1) / (T(1) + x);
    case TapeUnary::sigmoid:
      return y * (T(1) - y);
    case TapeUnary::log_sigmoid:
      return stable_sigmoid(-x);
    case TapeUnary::softplus:
      return stable_sigmoid(x);
    case TapeUnary::clamp:
      return x >= k && x <= k2 ? T(1) : T(0);
    case TapeUnary::square:
      return T(2) * x;
    case TapeUnary::pow:
      return k == T(0) ? T(0) : k * tape_pow(x, k - T(1));  // not 0 inf at 0
    case TapeUnary::relu:
      return is_nan(x) || x > T(0) ? T(1) : T(0);
  }
  return T(0);
}

template <class T>
__device__ inline T binary_value(TapeBinary op, T x, T y) {
  switch (op) {
    case TapeBinary::add:
      return x + y;
    case TapeBinary::sub:
      return x - y;
    case TapeBinary::mul:
      return x * y;
    case TapeBinary::div:
      return x / y;
  }
  return x;
}

// The partial derivative with respect to operand `which` (0: x, 1: y), given o = f(x, y).
template <class T>
__device__ inline T binary_partial(TapeBinary op, int which, T x, T y, T o) {
  switch (op) {
    case TapeBinary::add:
      return T(1);
    case TapeBinary::sub:
      return which == 0 ? T(1) : T(-1);
    case TapeBinary::mul:
      return which == 0 ? y : x;
    case TapeBinary::div:
      return which == 0 ? T(1) / y : -o / y;
  }
  return T(0);
}

// The offsets of element i of l's shape in its two tensors.
__device__ inline void offsets(const TapeLayout& l, int64_t i, int64_t& o0, int64_t& o1) {
  o0 = 0;
  o1 = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    const int64_t id = i % l.extent[d];
    i /= l.extent[d];
    o0 += id * l.stride[0][d];
    o1 += id * l.stride[1][d];
  }
}

// ---- elementwise kernels ----

template <class T>
__global__ void unary_kernel(TapeUnary op, const T* x, T* y, int64_t n, T k, T k2) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = unary_value(op, x[i], k, k2);
}

template <class T>
__global__ void unary_grad_kernel(TapeUnary op, const T* x, const T* y, const T* g, T* gx,
                                  int64_t n, T k, T k2) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const T d = unary_derivative(op, x[i], y[i], k, k2);
    if (!(tape_unary_masks(op, static_cast<double>(k)) && d == T(0)))
      gx[i] += cuda::mul_rn(g[i], d);  // no FMA
  }
}

template <class T>
__global__ void binary_kernel(TapeBinary op, const T* a, const T* b, T* out, const TapeLayout l,
                              int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t ia, ib;
    offsets(l, i, ia, ib);
    out[i] = binary_value(op, a[ia], b[ib]);
  }
}

// The gradient of an operand of the output's shape: gv[i] += g[i] * partial, as the CPU rounds
// it (the product in double, then to T).
template <class T>
__global__ void binary_grad_full_kernel(TapeBinary op, int which, const T* a, const T* b,
                                        const T* out, const T* g, T* gv, const TapeLayout l,
                                        int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t ia, ib;
    offsets(l, i, ia, ib);
    const double p = static_cast<double>(binary_partial(op, which, a[ia], b[ib], out[i]));
    gv[i] += static_cast<T>(cuda::mul_rn(static_cast<double>(g[i]), p));  // no FMA
  }
}

template <class T>
__global__ void where_kernel(const T* mask, const T* a, const T* b, T* out, const TapeLayout l,
                             int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t im, unused;
    offsets(l, i, im, unused);
    out[i] = mask[im] != T(0) ? a[i] : b[i];
  }
}

template <class T>
__global__ void where_grad_kernel(const T* mask, const T* g, T* gv, bool taken, const TapeLayout l,
                                  int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t im, unused;
    offsets(l, i, im, unused);
    if ((mask[im] != T(0)) == taken) gv[i] += g[i];
  }
}

template <class T>
__global__ void broadcast_grad_kernel(const T* g, T* gx, const TapeLayout l, int64_t n,
                                      double scale) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t j, unused;
    offsets(l, i, j, unused);
    gx[i] += static_cast<T>(cuda::mul_rn(static_cast<double>(g[j]), scale));  // no FMA
  }
}

// ---- sums: one block per output element ----

// The terms of a sum, for element i of the layout's shape with offsets o0, o1.
template <class T>
struct SumTerm {
  const T* x;
  __device__ double operator()(int64_t i, int64_t, int64_t) const {
    return static_cast<double>(x[i]);
  }
};
template <class T>
struct BinaryGradTerm {
  TapeBinary op;
  int which;
  const T *a, *b, *out, *g;
  __device__ double operator()(int64_t i, int64_t ia, int64_t ib) const {
    return static_cast<double>(g[i]) *
           static_cast<double>(binary_partial(op, which, a[ia], b[ib], out[i]));
  }
};

// Block j: out[j] (+)= T(scale * sum of term(i) over the elements i whose offset by
// l.stride[which] is j). The axes with a nonzero stride fix j's indices; thread t adds the
// elements t, t + 256, ... of the other axes (row-major), in double; then block_sum's tree.
template <class T, class Term>
__global__ void __launch_bounds__(cuda::kThreads)
    sum_kernel(const TapeLayout l, int which, Term term, T* out, double scale, bool add) {
  const int64_t j = blockIdx.x;
  int64_t idx[Shape::kMaxRank] = {};
  int64_t free_count = 1;
  for (int d = 0; d < l.rank; ++d) {
    const int64_t st = l.stride[which][d];
    if (st != 0)
      idx[d] = (j / st) % l.extent[d];
    else
      free_count *= l.extent[d];
  }
  double acc[1] = {0.0};
  for (int64_t k = threadIdx.x; k < free_count; k += cuda::kThreads) {
    int64_t r = k, i = 0, step = 1, o0 = 0, o1 = 0;
    for (int d = l.rank - 1; d >= 0; --d) {
      int64_t id = idx[d];
      if (l.stride[which][d] == 0) {
        id = r % l.extent[d];
        r /= l.extent[d];
      }
      i += id * step;
      step *= l.extent[d];
      o0 += id * l.stride[0][d];
      o1 += id * l.stride[1][d];
    }
    acc[0] += term(i, o0, o1);
  }
  double total = 0.0;
  cuda::block_sum<1>(acc, &total);
  if (threadIdx.x == 0) {
    const T v = static_cast<T>(total * scale);
    out[j] = add ? out[j] + v : v;
  }
}

template <class T, class Term>
void launch_sum(const char* what, const TapeLayout& l, int which, const Term& term, T* out,
                int64_t m, double scale, bool add) {
  if (m <= 0) return;
  // One block per output: a grid's x extent is at most 2^31 - 1 blocks.
  SEGLOSS_CHECK(m <= 2147483647, what, "a sum with ", m,
                " outputs (one block each) exceeds the CUDA grid's 2^31 - 1 blocks");
  cuda::launch_checked(what, "the sum kernel's launch", sum_kernel<T, Term>,
                       static_cast<unsigned>(m), cuda::kThreads, 0, cuda::thread_stream(), l, which,
                       term, out, scale, add);
}

// ---- softmax over the class axis: one thread per pixel ----

template <class T>
__global__ void softmax_kernel(bool log, const T* x, T* y, int64_t n, int64_t c, int64_t s) {
  const int64_t pixels = n * s;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += step) {
    const int64_t base = (p / s) * c * s + p % s;
    T m = -static_cast<T>(INFINITY);
    for (int64_t k = 0; k < c; ++k) {
      const T v = x[base + k * s];
      m = m < v ? v : m;  // std::max(m, v)
    }
    double total = 0.0;
    if (log) {
      for (int64_t k = 0; k < c; ++k) total += ::exp(static_cast<double>(x[base + k * s] - m));
      const double lse = ::log(total);
      for (int64_t k = 0; k < c; ++k) {
        const int64_t i = base + k * s;
        y[i] = static_cast<T>(static_cast<double>(x[i] - m) - lse);
      }
    } else {
      for (int64_t k = 0; k < c; ++k) {
        const T e = Math<T>::exp(x[base + k * s] - m);
        y[base + k * s] = e;
        total += e;
      }
      const double inv = 1.0 / total;
      for (int64_t k = 0; k < c; ++k)
        y[base + k * s] = static_cast<T>(static_cast<double>(y[base + k * s]) * inv);
    }
  }
}

template <class T>
__global__ void class_sum_kernel(const T* x, T* y, int64_t n, int64_t c, int64_t s) {
  const int64_t pixels = n * s;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += step) {
    const int64_t base = (p / s) * c * s + p % s;
    double total = 0.0;
    for (int64_t k = 0; k < c; ++k) total += x[base + k * s];
    y[p] = static_cast<T>(total);
  }
}

// softmax: gx_c += y_c (g_c - sum_k y_k g_k); log_softmax: gx_c += g_c - exp(y_c) sum_k g_k.
template <class T>
__global__ void softmax_grad_kernel(bool log, const T* y, const T* g, T* gx, int64_t n, int64_t c,
                                    int64_t s) {
  const int64_t pixels = n * s;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
       p += step) {
    const int64_t base = (p / s) * c * s + p % s;
    double total = 0.0;
    for (int64_t k = 0; k < c; ++k) {
      const int64_t i = base + k * s;
      total += log ? static_cast<double>(g[i])
                   : cuda::mul_rn(static_cast<double>(y[i]), static_cast<double>(g[i]));
    }
    for (int64_t k = 0; k < c; ++k) {
      const int64_t i = base + k * s;
      if (log)
        gx[i] += static_cast<T>(g[i] - cuda::mul_rn(::exp(static_cast<double>(y[i])), total));
      else
        gx[i] += static_cast<T>(cuda::mul_rn(static_cast<double>(y[i]), g[i] - total));
    }
  }
}

// ---- the group primitives (sort_desc, cumsum, adjacent_diff, segment_sum, gather) ----

// The group j of element i: the largest j < groups with off[j] <= i (then off[j + 1] > i, since
// off[groups] is the element count; empty groups are skipped).
__device__ inline long long group_of(const long long* off, long long groups, long long i) {
  long long lo = 0, hi = groups;
  while (hi - lo > 1) {
    const long long mid = lo + (hi - lo) / 2;
    if (off[mid] <= i)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// The key of sort_desc's order (core/tape.cpp's sorts_before) for an ascending radix sort: every
// NaN gets key 0 (first, in index order: the sort is stable), -0 and +0 one key, and larger
// values smaller keys: the IEEE bits made monotone (sign set: all bits flipped; else the sign
// bit set), then complemented. A NaN's bits never give key 0 this way, so only NaNs have it.
template <class T>
__device__ inline cuda::KeyOf<T> sort_key(T x) {
  using K = cuda::KeyOf<T>;
  if (x != x) return K(0);
  if (x == T(0)) x = T(0);  // -0 -> +0
  K b;
  memcpy(&b, &x, sizeof b);
  constexpr K sign = K(1) << (8 * sizeof(K) - 1);
  const K ascending = (b & sign) ? static_cast<K>(~b) : static_cast<K>(b | sign);
  return static_cast<K>(~ascending);
}

// One block per group: the keys of the group's elements in index order, the block's stable
// radix sort (radix_sort.cuh) with the indices as records (perm is the records' A buffer), then
// y[k] = x[perm[k]] (the CPU's y[i] = x[pm[i]]: the value itself, -0 kept).
template <class T>
__global__ void __launch_bounds__(cuda::kThreads)
    sort_kernel(const T* x, T* y, int64_t* perm, const long long* off, cuda::KeyOf<T>* ka,
                cuda::KeyOf<T>* kb, unsigned long long* ib) {
  SEGLOSS_STATIC_SHARED(cuda::Shared, sh, [1]);
  const long long j = blockIdx.x, b = off[j], n = off[j + 1] - b;
  unsigned long long* ia = reinterpret_cast<unsigned long long*>(perm) + b;
  for (long long i = threadIdx.x; i < n; i += cuda::kThreads) {
    ka[b + i] = sort_key(x[b + i]);
    ia[i] = static_cast<unsigned long long>(b + i);
  }
  __syncthreads();
  cuda::block_radix_sort<cuda::KeyOf<T>>(sh[0], ka + b, ia, kb + b, ib + b, n);
  for (long long i = threadIdx.x; i < n; i += cuda::kThreads)
    y[b + i] = x[static_cast<long long>(ia[i])];
}

// gx[perm[k]] += g[k]: perm is a permutation, so no two threads write one element.
template <class T>
__global__ void permute_grad_kernel(const int64_t* perm, const T* g, T* gx, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += step)
    gx[perm[k]] += g[k];
}

// One thread per group, in the CPU's order and type: forward y[i] = T(s += x[i]) from the
// group's first element; backward y[i] += T(s += x[i]) from its last (s in double).
template <class T>
__global__ void cumsum_kernel(const T* x, T* y, const long long* off, long long groups,
                              bool backward) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long j = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; j < groups;
       j += step) {
    const long long b = off[j], e = off[j + 1];
    double s = 0.0;
    if (!backward)
      for (long long i = b; i < e; ++i) y[i] = static_cast<T>(s += x[i]);
    else
      for (long long i = e - 1; i >= b; --i) y[i] += static_cast<T>(s += x[i]);
  }
}

// forward y[i] = x[i] - x[i-1] (x[i] at a group's first element); backward
// y[i] += x[i] - x[i+1] (x[i] at a group's last element).
template <class T>
__global__ void adjacent_diff_kernel(const T* x, T* y, const long long* off, long long groups,
                                     long long n, bool backward) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += step) {
    const long long j = group_of(off, groups, i);
    if (!backward)
      y[i] = i == off[j] ? x[i] : x[i] - x[i - 1];
    else
      y[i] += i + 1 < off[j + 1] ? x[i] - x[i + 1] : x[i];
  }
}

// One thread per group: y[j] = T(the sum in double, in index order); an empty group gives 0.
template <class T>
__global__ void segment_sum_kernel(const T* x, T* y, const long long* off, long long groups) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long j = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; j < groups;
       j += step) {
    double s = 0.0;
    for (long long i = off[j]; i < off[j + 1]; ++i) s += x[i];
    y[j] = static_cast<T>(s);
  }
}

// gx[i] += g[group of i].
template <class T>
__global__ void segment_sum_grad_kernel(const T* g, T* gx, const long long* off, long long groups,
                                        long long n) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += step)
    gx[i] += g[group_of(off, groups, i)];
}

template <class T>
__global__ void gather_kernel(const T* x, const int64_t* index, T* y, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = x[index[i]];
}

// The scatter-add of gather's backward without atomics: element a of the input sums, in double,
// g[order[k]] for k in [start[a], start[a + 1]) (the positions that gathered a, in increasing
// order), then gx[a] += T(sum): the CPU's acc[a] += g[i] in index order, the same bits.
template <class T>
__global__ void gather_grad_kernel(const T* g, T* gx, const long long* start,
                                   const long long* order, long long m) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long a = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; a < m;
       a += step) {
    double s = 0.0;
    for (long long k = start[a]; k < start[a + 1]; ++k) s += g[order[k]];
    gx[a] += static_cast<T>(s);
  }
}

// ---- one_hot and valid_mask of a label map on the device ----

// out (n, c, s): 1 at the label's class, 0 elsewhere and on ignored pixels. The thread of class
// 0 of a pixel reports a label outside [0, c) that is not `ignore` (first_bad: ~index, max).
template <class T, class L>
__global__ void one_hot_kernel(const L* labels, T* out, long long n, long long c, long long s,
                               long long ignore, unsigned long long* first_bad) {
  const long long total = n * c * s;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += step) {
    const long long k = (i / s) % c, p = (i / (c * s)) * s + i % s;
    const long long y = static_cast<long long>(labels[p]);
    const bool ignored = y == ignore;
    if (k == 0 && !ignored && (y < 0 || y >= c))
      atomicMax(first_bad, ~static_cast<unsigned long long>(p));
    out[i] = !ignored && y == k ? T(1) : T(0);
  }
}

template <class T, class L>
__global__ void valid_mask_kernel(const L* labels, T* out, long long count, long long ignore) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step)
    out[i] = static_cast<long long>(labels[i]) == ignore ? T(0) : T(1);
}

// The workspace of a group op: the header, then regions of int64 values (aligned).
size_t region_bytes(int64_t count, size_t size = sizeof(int64_t)) {
  return cuda::detail::align_up(static_cast<size_t>(count) * size);
}

// Copies host values into the call's workspace at byte offset `at`, on the call's stream, and
// waits for the stream. The source is pageable memory that the caller may free as soon as the op
// returns (a temporary offsets vector, a backward's local scatter plan), and CUDA does not
// promise that cudaMemcpyAsync from pageable memory has read its source when it returns ("API
// synchronization behavior": such a copy "might be synchronous with respect to host"; the
// driver "may" stage it). The group ops are the tape's reference forms; this wait is their cost.
long long* upload(const cuda::Call& call, size_t at, const int64_t* host, int64_t count) {
  long long* dst = call.at<long long>(at);
  if (count > 0) {
    cuda::check(cudaMemcpyAsync(dst, host, static_cast<size_t>(count) * sizeof(int64_t),
                                cudaMemcpyHostToDevice, call.stream()),
                call.function(), "cudaMemcpyAsync of the offsets");
    cuda::check(cudaStreamSynchronize(call.stream()), call.function(), "cudaStreamSynchronize");
  }
  return dst;
}

}  // namespace

template <class T>
void tape_scale_add(T* dst, const T* src, double scale, int64_t n, bool assign) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "the gradient kernel's launch", scale_add_kernel<T>,
                       cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), dst, src,
                       static_cast<T>(scale), n, assign);
}

template <class T>
void tape_unary(TapeUnary op, const T* x, T* y, int64_t n, T k, T k2) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape", "an elementwise kernel's launch", unary_kernel<T>,
                       cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), op, x, y, n, k, k2);
}

template <class T>
void tape_unary_grad(TapeUnary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T k,
                     T k2) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "an elementwise kernel's launch", unary_grad_kernel<T>,
                       cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), op, x, y, g, gx, n,
                       k, k2);
}

template <class T>
void tape_binary(TapeBinary op, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape", "an elementwise kernel's launch", binary_kernel<T>,
                       cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), op, a, b, out, l, n);
}

template <class T>
void tape_binary_grad(TapeBinary op, int which, const T* a, const T* b, const T* out, const T* g,
                      T* gv, const TapeLayout& l, int64_t n, int64_t m, bool full) {
  if (full) {
    if (n <= 0) return;
    cuda::launch_checked("ad::Tape::backward", "an elementwise kernel's launch",
                         binary_grad_full_kernel<T>, cuda::grid_blocks(n), kBlock, 0,
                         cuda::thread_stream(), op, which, a, b, out, g, gv, l, n);
    return;
  }
  launch_sum("ad::Tape::backward", l, which, BinaryGradTerm<T>{op, which, a, b, out, g}, gv, m, 1.0,
             true);
}

template <class T>
void tape_reduce(const T* x, T* out, const TapeLayout& l, int64_t m, double scale) {
  launch_sum("ad::Tape", l, 0, SumTerm<T>{x}, out, m, scale, false);
}

template <class T>
void tape_class_sum(const T* x, T* y, int64_t n, int64_t c, int64_t s) {
  if (n * s <= 0) return;
  cuda::launch_checked("ad::class_sum", "the kernel's launch", class_sum_kernel<T>,
                       cuda::grid_blocks(n * s), kBlock, 0, cuda::thread_stream(), x, y, n, c, s);
}

template <class T>
void tape_broadcast_grad(const T* g, T* gx, const TapeLayout& l, int64_t n, double scale) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "an elementwise kernel's launch",
                       broadcast_grad_kernel<T>, cuda::grid_blocks(n), kBlock, 0,
                       cuda::thread_stream(), g, gx, l, n, scale);
}

template <class T>
void tape_where(const T* mask, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch_checked("ad::where", "the kernel's launch", where_kernel<T>, cuda::grid_blocks(n),
                       kBlock, 0, cuda::thread_stream(), mask, a, b, out, l, n);
}

template <class T>
void tape_where_grad(const T* mask, const T* g, T* gv, bool taken, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "the where kernel's launch", where_grad_kernel<T>,
                       cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), mask, g, gv, taken,
                       l, n);
}

template <class T>
void tape_softmax(bool log, const T* x, T* y, int64_t n, int64_t c, int64_t s) {
  if (n * s <= 0) return;
  cuda::launch_checked("ad::softmax", "the kernel's launch", softmax_kernel<T>,
                       cuda::grid_blocks(n * s), kBlock, 0, cuda::thread_stream(), log, x, y, n, c,
                       s);
}

template <class T>
void tape_softmax_grad(bool log, const T* y, const T* g, T* gx, int64_t n, int64_t c, int64_t s) {
  if (n * s <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "the softmax kernel's launch", softmax_grad_kernel<T>,
                       cuda::grid_blocks(n * s), kBlock, 0, cuda::thread_stream(), log, y, g, gx, n,
                       c, s);
}

// ---- the group primitives ----

template <class T>
void tape_sort_desc(const T* x, T* y, int64_t* perm, const std::vector<int64_t>& offsets) {
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1, n = offsets.back();
  if (groups <= 0 || n <= 0) return;
  SEGLOSS_CHECK(groups <= 2147483647, "ad::sort_desc", groups,
                " groups (one block each) exceed the CUDA grid's 2^31 - 1 blocks");
  using K = cuda::KeyOf<T>;
  const size_t off_at = cuda::detail::kHeaderBytes, ka_at = off_at + region_bytes(groups + 1),
               kb_at = ka_at + region_bytes(n, sizeof(K)),
               ib_at = kb_at + region_bytes(n, sizeof(K));
  cuda::Call call("ad::sort_desc", ib_at + region_bytes(n));
  const long long* off = upload(call, off_at, offsets.data(), groups + 1);
  cuda::launch(sort_kernel<T>, static_cast<unsigned>(groups), cuda::kThreads, 0, call.stream(), x,
               y, perm, off, call.at<K>(ka_at), call.at<K>(kb_at),
               call.at<unsigned long long>(ib_at));
  call.launched();
}

template <class T>
void tape_permute_grad(const int64_t* perm, const T* g, T* gx, int64_t n) {
  if (n <= 0) return;
  cuda::launch_checked("ad::Tape::backward", "the sort's gradient kernel's launch",
                       permute_grad_kernel<T>, cuda::grid_blocks(n), kBlock, 0,
                       cuda::thread_stream(), perm, g, gx, n);
}

// The group ops without a sort: the offsets in the workspace, one kernel.
template <class T>
void tape_group_op(TapeGroup op, const T* x, T* y, const std::vector<int64_t>& offsets,
                   bool backward) {
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1, n = offsets.back();
  if (groups <= 0) return;
  const char* what = backward                         ? "ad::Tape::backward"
                     : op == TapeGroup::cumsum        ? "ad::cumsum"
                     : op == TapeGroup::adjacent_diff ? "ad::adjacent_diff"
                                                      : "ad::segment_sum";
  cuda::Call call(what, cuda::detail::kHeaderBytes + region_bytes(groups + 1));
  const long long* off = upload(call, cuda::detail::kHeaderBytes, offsets.data(), groups + 1);
  const cudaStream_t st = call.stream();
  switch (op) {
    case TapeGroup::cumsum:
      cuda::launch(cumsum_kernel<T>, cuda::grid_blocks(groups), kBlock, 0, st, x, y, off,
                   static_cast<long long>(groups), backward);
      break;
    case TapeGroup::adjacent_diff:
      if (n <= 0) return;
      cuda::launch(adjacent_diff_kernel<T>, cuda::grid_blocks(n), kBlock, 0, st, x, y, off,
                   static_cast<long long>(groups), static_cast<long long>(n), backward);
      break;
    case TapeGroup::segment_sum:
      if (!backward) {
        cuda::launch(segment_sum_kernel<T>, cuda::grid_blocks(groups), kBlock, 0, st, x, y, off,
                     static_cast<long long>(groups));
      } else {
        if (n <= 0) return;
        cuda::launch(segment_sum_grad_kernel<T>, cuda::grid_blocks(n), kBlock, 0, st, x, y, off,
                     static_cast<long long>(groups), static_cast<long long>(n));
      }
      break;
  }
  call.launched();
}

template <class T>
void tape_gather(const T* x, const int64_t* index, bool index_on_device, T* y, int64_t n) {
  if (n <= 0) return;
  if (index_on_device) {
    cuda::launch_checked("ad::gather", "the kernel's launch", gather_kernel<T>,
                         cuda::grid_blocks(n), kBlock, 0, cuda::thread_stream(), x, index, y, n);
    return;
  }
  cuda::Call call("ad::gather", cuda::detail::kHeaderBytes + region_bytes(n));
  const long long* ix = upload(call, cuda::detail::kHeaderBytes, index, n);
  cuda::launch(gather_kernel<T>, cuda::grid_blocks(n), kBlock, 0, call.stream(), x,
               reinterpret_cast<const int64_t*>(ix), y, n);
  call.launched();
}

template <class T>
void tape_gather_grad(const T* g, T* gx, const std::vector<int64_t>& start,
                      const std::vector<int64_t>& order) {
  const int64_t m = static_cast<int64_t>(start.size()) - 1, n = static_cast<int64_t>(order.size());
  if (m <= 0) return;
  const size_t order_at = cuda::detail::kHeaderBytes + region_bytes(m + 1);
  cuda::Call call("ad::Tape::backward", order_at + region_bytes(n));
  const long long* st = upload(call, cuda::detail::kHeaderBytes, start.data(), m + 1);
  const long long* od = upload(call, order_at, order.data(), n);
  cuda::launch(gather_grad_kernel<T>, cuda::grid_blocks(m), kBlock, 0, call.stream(), g, gx, st, od,
               static_cast<long long>(m));
  call.launched();
}

template <class T, class L>
int64_t tape_one_hot(const L* labels, T* out, int64_t n, int64_t c, int64_t s, int64_t ignore,
                     int64_t* bad_value) {
  const int64_t total = n * c * s;
  if (total <= 0) return -1;
  cuda::Call call("ad::one_hot", cuda::detail::kHeaderBytes);
  unsigned long long* first_bad = call.at<unsigned long long>(cuda::header::kFirstBad);
  cuda::launch(one_hot_kernel<T, L>, cuda::grid_blocks(total), kBlock, 0, call.stream(), labels,
               out, static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(s),
               static_cast<long long>(ignore), first_bad);
  call.launched();
  // The one wait: the CPU raises on the first bad label, which only the host can do.
  unsigned long long key = 0;
  cuda::check(cudaMemcpyAsync(&key, first_bad, sizeof key, cudaMemcpyDeviceToHost, call.stream()),
              "ad::one_hot", "cudaMemcpyAsync of the first bad label");
  cuda::check(cudaStreamSynchronize(call.stream()), "ad::one_hot", "cudaStreamSynchronize");
  if (key == 0) return -1;
  const int64_t bad = static_cast<int64_t>(~key);
  L v{};
  cuda::check(cudaMemcpyAsync(&v, labels + bad, sizeof v, cudaMemcpyDeviceToHost, call.stream()),
              "ad::one_hot", "cudaMemcpyAsync of the bad label");
  cuda::check(cudaStreamSynchronize(call.stream()), "ad::one_hot", "cudaStreamSynchronize");
  *bad_value = static_cast<int64_t>(v);
  return bad;
}

template <class T, class L>
void tape_valid_mask(const L* labels, T* out, int64_t count, int64_t ignore) {
  if (count <= 0) return;
  cuda::launch_checked("ad::valid_mask", "the kernel's launch", valid_mask_kernel<T, L>,
                       cuda::grid_blocks(count), kBlock, 0, cuda::thread_stream(), labels, out,
                       static_cast<long long>(count), static_cast<long long>(ignore));
}

#define SEGLOSS_INSTANTIATE_LABEL(T, L)                                                            \
  template int64_t tape_one_hot<T, L>(const L*, T*, int64_t, int64_t, int64_t, int64_t, int64_t*); \
  template void tape_valid_mask<T, L>(const L*, T*, int64_t, int64_t);
#define SEGLOSS_INSTANTIATE_GROUP(T)                                                          \
  template void tape_sort_desc<T>(const T*, T*, int64_t*, const std::vector<int64_t>&);       \
  template void tape_permute_grad<T>(const int64_t*, const T*, T*, int64_t);                  \
  template void tape_group_op<T>(TapeGroup, const T*, T*, const std::vector<int64_t>&, bool); \
  template void tape_gather<T>(const T*, const int64_t*, bool, T*, int64_t);                  \
  template void tape_gather_grad<T>(const T*, T*, const std::vector<int64_t>&,                \
                                    const std::vector<int64_t>&);                             \
  SEGLOSS_INSTANTIATE_LABEL(T, int32_t)                                                       \
  SEGLOSS_INSTANTIATE_LABEL(T, int64_t)
SEGLOSS_INSTANTIATE_GROUP(float)
SEGLOSS_INSTANTIATE_GROUP(double)
#undef SEGLOSS_INSTANTIATE_GROUP
#undef SEGLOSS_INSTANTIATE_LABEL

#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template void tape_scale_add<T>(T*, const T*, double, int64_t, bool);                          \
  template void tape_unary<T>(TapeUnary, const T*, T*, int64_t, T, T);                           \
  template void tape_unary_grad<T>(TapeUnary, const T*, const T*, const T*, T*, int64_t, T, T);  \
  template void tape_binary<T>(TapeBinary, const T*, const T*, T*, const TapeLayout&, int64_t);  \
  template void tape_binary_grad<T>(TapeBinary, int, const T*, const T*, const T*, const T*, T*, \
                                    const TapeLayout&, int64_t, int64_t, bool);                  \
  template void tape_reduce<T>(const T*, T*, const TapeLayout&, int64_t, double);                \
  template void tape_class_sum<T>(const T*, T*, int64_t, int64_t, int64_t);                      \
  template void tape_broadcast_grad<T>(const T*, T*, const TapeLayout&, int64_t, double);        \
  template void tape_where<T>(const T*, const T*, const T*, T*, const TapeLayout&, int64_t);     \
  template void tape_where_grad<T>(const T*, const T*, T*, bool, const TapeLayout&, int64_t);    \
  template void tape_softmax<T>(bool, const T*, T*, int64_t, int64_t, int64_t);                  \
  template void tape_softmax_grad<T>(bool, const T*, const T*, T*, int64_t, int64_t, int64_t);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace detail
}  // namespace segloss
