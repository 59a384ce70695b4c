// The autodiff tape on the device (core/tape.cpp): a fused loss node's gradient, scaled by the
// incoming gradient of its scalar value, written or added into the gradient of a CUDA leaf
// (Tape::accumulate); and the primitives' forward and backward for CUDA values
// (backends/cuda/tape_ops.hpp). Elementwise kernels are grid-stride loops; every sum runs one
// block per output in a fixed order (strided double sums per thread, then block_sum's tree):
// the result is the same bits on every run.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../../core/pointwise.hpp"
#include "runtime.cuh"
#include "tape_ops.hpp"

namespace segloss {
namespace detail {
namespace {

constexpr int kBlock = 256;

// Blocks of a grid-stride loop over n elements.
unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

template <class T>
__global__ void scale_add_kernel(T* dst, const T* src, T scale, int64_t n, bool assign) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = assign ? scale * src[i] : dst[i] + scale * src[i];
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
      return k * tape_pow(x, k - T(1));
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
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    gx[i] += g[i] * unary_derivative(op, x[i], y[i], k, k2);
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
    gv[i] += static_cast<T>(static_cast<double>(g[i]) * p);
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
    gx[i] += static_cast<T>(static_cast<double>(g[j]) * scale);
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
  cuda::launch(sum_kernel<T, Term>, static_cast<unsigned>(m), cuda::kThreads, 0,
               cuda::thread_stream(), l, which, term, out, scale, add);
  cuda::check(cudaGetLastError(), what, "the sum kernel's launch");
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
      total += log ? static_cast<double>(g[i]) : static_cast<double>(y[i]) * g[i];
    }
    for (int64_t k = 0; k < c; ++k) {
      const int64_t i = base + k * s;
      if (log)
        gx[i] += static_cast<T>(g[i] - ::exp(static_cast<double>(y[i])) * total);
      else
        gx[i] += static_cast<T>(y[i] * (g[i] - total));
    }
  }
}

}  // namespace

template <class T>
void tape_scale_add(T* dst, const T* src, double scale, int64_t n, bool assign) {
  if (n <= 0) return;
  cuda::launch(scale_add_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), dst, src,
               static_cast<T>(scale), n, assign);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "the gradient kernel's launch");
}

template <class T>
void tape_unary(TapeUnary op, const T* x, T* y, int64_t n, T k, T k2) {
  if (n <= 0) return;
  cuda::launch(unary_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), op, x, y, n, k, k2);
  cuda::check(cudaGetLastError(), "ad::Tape", "an elementwise kernel's launch");
}

template <class T>
void tape_unary_grad(TapeUnary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T k,
                     T k2) {
  if (n <= 0) return;
  cuda::launch(unary_grad_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), op, x, y, g, gx,
               n, k, k2);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "an elementwise kernel's launch");
}

template <class T>
void tape_binary(TapeBinary op, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch(binary_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), op, a, b, out, l,
               n);
  cuda::check(cudaGetLastError(), "ad::Tape", "an elementwise kernel's launch");
}

template <class T>
void tape_binary_grad(TapeBinary op, int which, const T* a, const T* b, const T* out, const T* g,
                      T* gv, const TapeLayout& l, int64_t n, int64_t m, bool full) {
  if (full) {
    if (n <= 0) return;
    cuda::launch(binary_grad_full_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), op,
                 which, a, b, out, g, gv, l, n);
    cuda::check(cudaGetLastError(), "ad::Tape::backward", "an elementwise kernel's launch");
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
  cuda::launch(class_sum_kernel<T>, grid_for(n * s), kBlock, 0, cuda::thread_stream(), x, y, n, c,
               s);
  cuda::check(cudaGetLastError(), "ad::class_sum", "the kernel's launch");
}

template <class T>
void tape_broadcast_grad(const T* g, T* gx, const TapeLayout& l, int64_t n, double scale) {
  if (n <= 0) return;
  cuda::launch(broadcast_grad_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), g, gx, l, n,
               scale);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "an elementwise kernel's launch");
}

template <class T>
void tape_where(const T* mask, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch(where_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), mask, a, b, out, l,
               n);
  cuda::check(cudaGetLastError(), "ad::where", "the kernel's launch");
}

template <class T>
void tape_where_grad(const T* mask, const T* g, T* gv, bool taken, const TapeLayout& l, int64_t n) {
  if (n <= 0) return;
  cuda::launch(where_grad_kernel<T>, grid_for(n), kBlock, 0, cuda::thread_stream(), mask, g, gv,
               taken, l, n);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "the where kernel's launch");
}

template <class T>
void tape_softmax(bool log, const T* x, T* y, int64_t n, int64_t c, int64_t s) {
  if (n * s <= 0) return;
  cuda::launch(softmax_kernel<T>, grid_for(n * s), kBlock, 0, cuda::thread_stream(), log, x, y, n,
               c, s);
  cuda::check(cudaGetLastError(), "ad::softmax", "the kernel's launch");
}

template <class T>
void tape_softmax_grad(bool log, const T* y, const T* g, T* gx, int64_t n, int64_t c, int64_t s) {
  if (n * s <= 0) return;
  cuda::launch(softmax_grad_kernel<T>, grid_for(n * s), kBlock, 0, cuda::thread_stream(), log, y, g,
               gx, n, c, s);
  cuda::check(cudaGetLastError(), "ad::Tape::backward", "the softmax kernel's launch");
}

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
