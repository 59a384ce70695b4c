// An experiment, not a benchmark of the library: passes of the losses issue 7 times, rebuilt in
// a few shapes, to learn on a GPU which change moves them towards the device-to-device copy's
// bandwidth before changing the library (bench/RESULTS.md, "CUDA on NVIDIA H200, session 13").
// Each variant computes the same value and gradient as the first of its group (the "sum" column:
// equal sums, except the "nomath" variants, which only move the bytes); the math is the
// library's (core/pointwise.hpp). Built and run by scripts/gpu-variants.sh (nvcc, sm_90).
//   bce_*:     bce_with_logits' value and gradient pass, float, (64, 1, 1024, 1024): scalar loads
//              as the library's plane pass, float4 loads, unrolls, blocks per SM, grid sizes
//   ce_*:      cross_entropy's fused pass with int64 labels, float, (16, 21, 448, 448): logits in
//              registers at 1 to 5 blocks per SM, or staged through shared memory (cp.async);
//              ce_quad_*: staged four pixels a thread with 16-byte copies (2026-12-04: 0.955 of
//              the copy against 0.805 for the library's one-pixel staging)
//   bcedice_*: bce_dice's statistics and gradient passes, the library's own bodies
//              (backends/cuda/overlap_passes.cuh) in plane_pass_kernel with other
//              blocks per SM and unrolls (written after the last GPU call of session 13: not
//              run yet)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "../backends/cuda/overlap_passes.cuh"
#include "../core/pointwise.hpp"

namespace {

using segloss::Math;
namespace pw = segloss::pw;

constexpr int kThreads = 256;

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda_variants: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// ---- BCE with logits (the library's plane pass: core/cuda_internal.hpp's grid) ----

struct Grid {
  int64_t planes, plane_size, parts, part_size;
};

Grid plane_grid(int64_t planes, int64_t plane_size, int64_t target_blocks, int64_t align) {
  Grid g{planes, plane_size, 1, plane_size};
  const int64_t want = (plane_size + 4095) / 4096;
  const int64_t cap = std::max<int64_t>(1, target_blocks / planes);
  g.parts = std::max<int64_t>(1, std::min(want, cap));
  g.part_size = ((plane_size + g.parts - 1) / g.parts + align - 1) / align * align;
  if (g.part_size > 0) g.parts = (plane_size + g.part_size - 1) / g.part_size;  // none empty
  return g;
}

__device__ __forceinline__ float bce_elem(float x, float z, float scale, float& g) {
  const pw::LogitWithLog<float> lg = pw::logit_with_log<float>(x);
  g = scale * pw::bce_logits_grad<float>(x, z, 1.0f, lg);
  return pw::bce_logits_value<float>(x, z, 1.0f, lg);
}

__device__ __forceinline__ float bce_elem_fast(float x, float z, float scale, float& g) {
  const float e = __expf(-fabsf(x));
  const float one = 1.0f + e, two = 2.0f + e;
  const float inv = __frcp_rn(one * two);
  pw::LogitWithLog<float> lg;
  lg.e = e;
  lg.r = two * inv;
  lg.q = one * inv;
  g = scale * pw::bce_logits_grad<float>(x, z, 1.0f, lg);
  return pw::bce_logits_value<float>(x, z, 1.0f, lg);
}

template <int K>
__device__ void block_sum(double v, double* out) {
  __shared__ double buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = buf[0];
}

// Mode 0: the library's math; 1: no math (g = x - z, the pattern's ceiling); 2: fast exp/rcp.
template <int Mode>
__device__ __forceinline__ float elem(float x, float z, float scale, float& g) {
  if constexpr (Mode == 0) return bce_elem(x, z, scale, g);
  if constexpr (Mode == 1) {
    g = x - z;
    return g;
  }
  return bce_elem_fast(x, z, scale, g);
}

// The library's plane pass: thread t handles begin + t + j * 256, 8 per step, int64 indices.
template <int Mode, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    bce_scalar(Grid g, const float* x, const float* z, float* grad, float scale, double* part) {
  const int64_t plane = blockIdx.x / g.parts, pi = blockIdx.x % g.parts;
  const int64_t begin = pi * g.part_size;
  const int64_t end = std::min(begin + g.part_size, g.plane_size);
  const int64_t base = plane * g.plane_size;
  double acc = 0.0;
  for (int64_t s0 = begin + threadIdx.x; s0 < end; s0 += kThreads * 8) {
    float xi[8], zi[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t s = s0 + u * kThreads;
      if (s < end) {
        xi[u] = x[base + s];
        zi[u] = z[base + s];
      }
    }
    float p = 0.0f;
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t s = s0 + u * kThreads;
      if (s < end) {
        float gg;
        p += elem<Mode>(xi[u], zi[u], scale, gg);
        grad[base + s] = gg;
      }
    }
    acc += p;
  }
  block_sum<1>(acc, part + blockIdx.x);
}

// float4 loads and stores: the block's range (a multiple of 4 elements, planes too) in float4
// units, thread t handles t + j * 256, U float4 per step; 32-bit offsets inside the block.
template <int Mode, int U, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    bce_vec4(Grid g, const float* x, const float* z, float* grad, float scale, double* part) {
  const int64_t plane = blockIdx.x / g.parts, pi = blockIdx.x % g.parts;
  const int64_t begin = pi * g.part_size;
  const int64_t end = std::min(begin + g.part_size, g.plane_size);
  const int64_t base = plane * g.plane_size + begin;
  const float4* x4 = reinterpret_cast<const float4*>(x + base);
  const float4* z4 = reinterpret_cast<const float4*>(z + base);
  float4* g4 = reinterpret_cast<float4*>(grad + base);
  const int n4 = static_cast<int>((end - begin) / 4);
  double acc = 0.0;
  for (int s0 = threadIdx.x; s0 < n4; s0 += kThreads * U) {
    float4 xi[U], zi[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + u * kThreads;
      if (s < n4) {
        xi[u] = __ldcs(x4 + s);
        zi[u] = __ldcs(z4 + s);
      }
    }
    float p = 0.0f;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + u * kThreads;
      if (s < n4) {
        float4 o;
        p += elem<Mode>(xi[u].x, zi[u].x, scale, o.x);
        p += elem<Mode>(xi[u].y, zi[u].y, scale, o.y);
        p += elem<Mode>(xi[u].z, zi[u].z, scale, o.z);
        p += elem<Mode>(xi[u].w, zi[u].w, scale, o.w);
        __stcs(g4 + s, o);
      }
    }
    acc += p;
  }
  block_sum<1>(acc, part + blockIdx.x);
}

// ---- cross-entropy with labels, C <= 24 in registers (the library's fused pass) ----

// Mode 0: the library's math; 1: no math (the pattern's ceiling).
template <int Mode, int K>
__device__ __forceinline__ float ce_pixel(const float* x, float* g, int64_t S, int C, int y,
                                          float up) {
  using M = Math<float>;
  float v[K];
#pragma unroll
  for (int c = 0; c < K; ++c)
    if (c < C) v[c] = __ldcs(x + c * S);
  if constexpr (Mode == 1) {
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < K; ++c)
      if (c < C) {
        s += v[c];
        __stcs(g + c * S, v[c] * up);
      }
    return s;
  }
  float m = v[0];
#pragma unroll
  for (int c = 1; c < K; ++c)
    if (c < C) m = M::max(m, v[c]);
  float se = 0.0f, rest = 0.0f, x_y = 0.0f, e_y = 1.0f;
#pragma unroll
  for (int c = 0; c < K; ++c)
    if (c < C) {
      const float xc = v[c] - m;
      x_y = c == y ? xc : x_y;
      v[c] = M::exp(xc);
      e_y = c == y ? v[c] : e_y;
      se += v[c];
      rest += c == y ? 0.0f : v[c];
    }
  const float nll = pw::softmax_nll<float>(rest, e_y, x_y);
  const float loss = pw::cross_entropy_loss<float>(nll, M::log(se), 1.0f, 0.0f, 0.0f, 0.0f, 1.0f);
  const float inv = M::recip(se), q = rest * inv;
#pragma unroll
  for (int c = 0; c < K; ++c)
    if (c < C)
      __stcs(g + c * S, up * pw::cross_entropy_grad<float>(v[c] * inv, q, c == y ? 1.0f : 0.0f,
                                                           1.0f, 1.0f, 0.0f, 0.0f, 1.0f));
  return loss;
}

// The library's shape: a pixel per thread, grid-stride over at most `max_blocks` blocks.
template <int Mode, int K, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    ce_fused(const float* x, const int64_t* y, float* grad, int64_t N, int64_t S, int C, float up,
             double* part) {
  const int64_t total = N * S;
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t pix = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; pix < total;
       pix += stride) {
    const int64_t n = pix / S, s = pix - n * S;
    const int64_t base = n * C * S + s;
    const int yi = static_cast<int>(y[pix]);
    acc += ce_pixel<Mode, K>(x + base, grad + base, S, C, yi, up);
  }
  block_sum<1>(acc, part + blockIdx.x);
}

// Blocks inside one image (S a multiple of 256 here): no division, 32-bit offsets in the image.
template <int Mode, int K, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    ce_image_blocks(const float* x, const int64_t* y, float* grad, int64_t S, int C, float up,
                    int64_t blocks_per_image, double* part) {
  const int64_t n = blockIdx.x / blocks_per_image, b = blockIdx.x % blocks_per_image;
  const int64_t s = b * kThreads + threadIdx.x;
  double acc = 0.0;
  if (s < S) {
    const int64_t base = n * C * S + s;
    acc = ce_pixel<Mode, K>(x + base, grad + base, S, C, static_cast<int>(y[n * S + s]), up);
  }
  block_sum<1>(acc, part + blockIdx.x);
}

// Staged through shared memory: each thread copies its pixel's C logits into its own column of
// the block's tile with cp.async (no registers held while the loads fly), waits for its own
// copies only (no other thread reads the column), then works from the tile with few registers,
// so more blocks fit on a multiprocessor (runtime.cuh's copy_async, as the library's pass).
template <int K, int MinBlocks, bool kAsync>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    ce_smem(const float* x, const int64_t* y, float* grad, int64_t N, int64_t S, int C, float up,
            double* part) {
  using M = Math<float>;
  __shared__ float tile[K][kThreads];
  const int64_t total = N * S;
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int t = threadIdx.x;
  for (int64_t pix = static_cast<int64_t>(blockIdx.x) * kThreads + t; pix < total; pix += stride) {
    const int64_t n = pix / S, s = pix - n * S;
    const int64_t base = n * C * S + s;
    const float* xp = x + base;
    if constexpr (kAsync) {
      for (int c = 0; c < C; ++c) segloss::cuda::copy_async(&tile[c][t], xp + c * S);
    } else {
#pragma unroll
      for (int c0 = 0; c0 < K; c0 += 8) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; ++j)
          if (c0 + j < C) v[j] = __ldcs(xp + (c0 + j) * S);
#pragma unroll
        for (int j = 0; j < 8; ++j)
          if (c0 + j < C) tile[c0 + j][t] = v[j];
      }
    }
    const int yi = static_cast<int>(y[pix]);
    if constexpr (kAsync) segloss::cuda::wait_copies();
    float m = tile[0][t];
    for (int c = 1; c < C; ++c) m = M::max(m, tile[c][t]);
    float se = 0.0f, rest = 0.0f, x_y = 0.0f, e_y = 1.0f;
    for (int c = 0; c < C; ++c) {
      const float xc = tile[c][t] - m;
      x_y = c == yi ? xc : x_y;
      const float e = M::exp(xc);
      tile[c][t] = e;
      e_y = c == yi ? e : e_y;
      se += e;
      rest += c == yi ? 0.0f : e;
    }
    const float nll = pw::softmax_nll<float>(rest, e_y, x_y);
    acc += pw::cross_entropy_loss<float>(nll, M::log(se), 1.0f, 0.0f, 0.0f, 0.0f, 1.0f);
    const float inv = M::recip(se), q = rest * inv;
    float* gp = grad + base;
    for (int c = 0; c < C; ++c)
      __stcs(gp + c * S,
             up * pw::cross_entropy_grad<float>(tile[c][t] * inv, q, c == yi ? 1.0f : 0.0f, 1.0f,
                                                1.0f, 0.0f, 0.0f, 1.0f));
  }
  block_sum<1>(acc, part + blockIdx.x);
}

// Staged with 16-byte copies (written 2026-12-04, after the H200 measured the library's staged
// pass at 0.68 of the copy for the whole call): each thread takes 4 consecutive pixels of one
// image (S % 4 == 0), copies their C float4 columns into the tile with 16-byte cp.async (.cg:
// not kept in L1), works on the 4 pixels side by side, and writes the gradient in float4 rows.
// A warp then reads 512 bytes of a class row at a time instead of 128. B threads a block; a tile
// of K = 24 rows (the library's bucket of C = 21) or of 21 (B = 128: 24 rows exceed 48 KB).
__device__ __forceinline__ void copy_async16(float4* to_shared, const float* from) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(to_shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(from) : "memory");
#else
  *to_shared = *reinterpret_cast<const float4*>(from);
#endif
}

template <int K, int B, int MinBlocks>
__global__ void __launch_bounds__(B, MinBlocks)
    ce_smem_quad(const float* x, const int64_t* y, float* grad, int64_t N, int64_t S, int C,
                 float up, double* part) {
  using M = Math<float>;
  __shared__ float4 tile[K][B];
  __shared__ double warp_sums[B / 32];
  const int64_t quads = N * S / 4;
  double acc = 0.0;
  const int t = threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * B;
  for (int64_t qd = static_cast<int64_t>(blockIdx.x) * B + t; qd < quads; qd += stride) {
    const int64_t pix = qd * 4;
    const int64_t n = pix / S, s = pix - n * S;
    const int64_t base = n * C * S + s;
    for (int c = 0; c < C; ++c) copy_async16(&tile[c][t], x + base + c * S);
    int yi[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) yi[j] = static_cast<int>(y[pix + j]);
    segloss::cuda::wait_copies();
    float m[4], se[4], rest[4], x_y[4], e_y[4];
    {
      const float4 v = tile[0][t];
      m[0] = v.x, m[1] = v.y, m[2] = v.z, m[3] = v.w;
    }
    for (int c = 1; c < C; ++c) {
      const float4 v = tile[c][t];
      const float* vp = reinterpret_cast<const float*>(&v);
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = M::max(m[j], vp[j]);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) se[j] = 0.0f, rest[j] = 0.0f, x_y[j] = 0.0f, e_y[j] = 1.0f;
    for (int c = 0; c < C; ++c) {
      float4 v = tile[c][t];
      float* vp = reinterpret_cast<float*>(&v);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float xc = vp[j] - m[j];
        x_y[j] = c == yi[j] ? xc : x_y[j];
        const float e = M::exp(xc);
        vp[j] = e;
        e_y[j] = c == yi[j] ? e : e_y[j];
        se[j] += e;
        rest[j] += c == yi[j] ? 0.0f : e;
      }
      tile[c][t] = v;
    }
    float inv[4], q[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float nll = pw::softmax_nll<float>(rest[j], e_y[j], x_y[j]);
      acc += pw::cross_entropy_loss<float>(nll, M::log(se[j]), 1.0f, 0.0f, 0.0f, 0.0f, 1.0f);
      inv[j] = M::recip(se[j]);
      q[j] = rest[j] * inv[j];
    }
    float* gp = grad + base;
    for (int c = 0; c < C; ++c) {
      float4 v = tile[c][t];
      float* vp = reinterpret_cast<float*>(&v);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        vp[j] = up * pw::cross_entropy_grad<float>(vp[j] * inv[j], q[j], c == yi[j] ? 1.0f : 0.0f,
                                                   1.0f, 1.0f, 0.0f, 0.0f, 1.0f);
      __stcs(reinterpret_cast<float4*>(gp + c * S), v);
    }
  }
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
  if ((t & 31) == 0) warp_sums[t / 32] = acc;
  __syncthreads();
  if (t == 0) {
    double total = 0.0;
    for (int w = 0; w < B / 32; ++w) total += warp_sums[w];
    part[blockIdx.x] = total;
  }
}

// ---- bce_dice's two passes: the library's bodies (backends/cuda/overlap_passes.cuh) ----

// ---- timing ----

struct Row {
  std::string name;
  double ms, gbs, frac;
  double sum;
};

double median_ms(cudaStream_t st, int reps, const std::function<void()>& f) {
  cudaEvent_t a, b;
  ck(cudaEventCreate(&a), "event");
  ck(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i) f();
  ck(cudaStreamSynchronize(st), "warm-up");
  ck(cudaGetLastError(), "warm-up launch");
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    ck(cudaEventRecord(a, st), "record");
    f();
    ck(cudaEventRecord(b, st), "record");
    ck(cudaEventSynchronize(b), "sync");
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, a, b), "elapsed");
    t.push_back(ms);
  }
  ck(cudaGetLastError(), "launch");
  std::sort(t.begin(), t.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t[t.size() / 2];
}

__global__ void fill(float* p, int64_t n, uint64_t seed, float lo, float hi, int quant) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t h = (static_cast<uint64_t>(i) + seed) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    const float u = static_cast<float>(h >> 40) / 16777216.0f;
    p[i] = quant ? (u < 0.5f ? 0.0f : 1.0f) : lo + (hi - lo) * u;
  }
}

__global__ void fill_labels(int64_t* p, int64_t n, int C) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<int64_t>((static_cast<uint64_t>(i) * 2654435761u >> 7) % C);
}

double host_sum(const double* d, int64_t n) {
  std::vector<double> h(n);
  ck(cudaMemcpy(h.data(), d, n * sizeof(double), cudaMemcpyDeviceToHost), "memcpy");
  double s = 0;
  for (double v : h) s += v;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  cudaDeviceProp prop;
  ck(cudaGetDeviceProperties(&prop, 0), "properties");
  cudaStream_t st;
  ck(cudaStreamCreate(&st), "stream");
  std::vector<Row> rows;
  const auto report = [&](const std::string& name, double ms, double bytes, double copy_gbs,
                          double sum) {
    const double gbs = bytes / ms / 1e6;
    rows.push_back({name, ms, gbs, copy_gbs > 0 ? gbs / copy_gbs : 1.0, sum});
    std::printf(
        "{\"name\": \"%s\", \"device\": \"%s\", \"median_ms\": %.6f, \"gb_per_s\": %.2f, "
        "\"fraction_of_copy\": %.5f, \"sum\": %.9g}\n",
        name.c_str(), prop.name, ms, gbs, copy_gbs > 0 ? gbs / copy_gbs : 1.0, sum);
    std::fflush(stdout);
  };

  // BCE: (64, 1, 1024, 1024).
  const int64_t planes = 64, P = 1 << 20, n = planes * P;
  float *x, *z, *g;
  double* part;
  ck(cudaMalloc(&x, n * 4), "malloc");
  ck(cudaMalloc(&z, n * 4), "malloc");
  ck(cudaMalloc(&g, n * 4), "malloc");
  ck(cudaMalloc(&part, 16384 * sizeof(double)), "malloc");
  fill<<<4096, 256, 0, st>>>(x, n, 1, -6.0f, 6.0f, 0);
  fill<<<4096, 256, 0, st>>>(z, n, 2, 0.0f, 1.0f, 1);
  const double copy_ms =
      median_ms(st, reps, [&] { cudaMemcpyAsync(g, x, n * 4, cudaMemcpyDeviceToDevice, st); });
  const double copy_gbs = 2.0 * n * 4 / copy_ms / 1e6;
  report("copy", copy_ms, 2.0 * n * 4, copy_gbs, 0);
  const double bce_bytes = 3.0 * n * 4;
  const float scale = 1.0f / n;
  const auto run_bce = [&](const char* name, auto kernel, int64_t target_blocks, int64_t align) {
    const Grid gr = plane_grid(planes, P, target_blocks, align);
    const unsigned blocks = static_cast<unsigned>(gr.planes * gr.parts);
    const double ms =
        median_ms(st, reps, [&] { kernel<<<blocks, kThreads, 0, st>>>(gr, x, z, g, scale, part); });
    report(std::string(name) + " blocks=" + std::to_string(blocks), ms, bce_bytes, copy_gbs,
           host_sum(part, blocks));
  };
  run_bce("bce_lib_scalar", bce_scalar<0, 1>, 3168, 1);
  run_bce("bce_lib_scalar_nomath", bce_scalar<1, 1>, 3168, 1);
  run_bce("bce_lib_scalar_fastmath", bce_scalar<2, 1>, 3168, 1);
  run_bce("bce_vec4_u2", bce_vec4<0, 2, 1>, 3168, 4);
  run_bce("bce_vec4_u2_nomath", bce_vec4<1, 2, 1>, 3168, 4);
  run_bce("bce_vec4_u2_fastmath", bce_vec4<2, 2, 1>, 3168, 4);
  run_bce("bce_vec4_u1", bce_vec4<0, 1, 1>, 3168, 4);
  run_bce("bce_vec4_u4", bce_vec4<0, 4, 1>, 3168, 4);
  run_bce("bce_vec4_u2_min6", bce_vec4<0, 2, 6>, 3168, 4);
  run_bce("bce_vec4_u2_min8", bce_vec4<0, 2, 8>, 3168, 4);
  run_bce("bce_vec4_u2_blocks2x", bce_vec4<0, 2, 1>, 6336, 4);
  run_bce("bce_vec4_u2_blocks4x", bce_vec4<0, 2, 1>, 12672, 4);
  run_bce("bce_vec4_u1_blocks4x", bce_vec4<0, 1, 1>, 12672, 4);
  // bce_dice's passes on the same (64, 1, 1024, 1024) inputs, the library's bodies.
  {
    namespace od = segloss::cuda::overlap_detail;
    segloss::cpu::OverlapArgs<float> oa;
    oa.x = x;
    oa.t = z;
    oa.planes = planes;
    oa.plane_size = P;
    segloss::cpu::BceWithLogitsArgs<float> ba;
    ba.x = x;
    ba.z = z;
    ba.planes = planes;
    ba.plane_size = P;
    const auto gr = segloss::cuda::detail::plane_grid(planes, P);
    const unsigned blocks = static_cast<unsigned>(gr.blocks());
    double* coef;
    ck(cudaMalloc(&coef, 2 * planes * sizeof(double) + 64), "malloc");
    ck(cudaMemset(coef, 0, 2 * planes * sizeof(double) + 64), "memset");
    double* bscale = coef + 2 * planes;
    const double stats_bytes = 2.0 * n * 4, grad_bytes = 3.0 * n * 4;
    const auto stats = [&](const char* name, auto kernel, auto body) {
      const double ms =
          median_ms(st, reps, [&] { kernel<<<blocks, kThreads, 0, st>>>(gr, body, part); });
      report(name, ms, stats_bytes, copy_gbs, host_sum(part, blocks * 4));
    };
    using SB = od::StatsBody<float, true, true, false>;
    using SD = od::StatsBody<float, true, false, false>;
    const SB sb{oa, ba};
    const SD sd{oa, ba};
    stats("bcedice_stats_lib", segloss::cuda::plane_pass_kernel<4, SB>, sb);
    stats("bcedice_stats_min5", segloss::cuda::plane_pass_kernel<4, SB, 5, 8>, sb);
    stats("bcedice_stats_min6", segloss::cuda::plane_pass_kernel<4, SB, 6, 8>, sb);
    stats("bcedice_stats_u4", segloss::cuda::plane_pass_kernel<4, SB, 1, 4>, sb);
    stats("bcedice_stats_u4_min6", segloss::cuda::plane_pass_kernel<4, SB, 6, 4>, sb);
    stats("softdice_stats_lib (no BCE value)", segloss::cuda::plane_pass_kernel<3, SD>, sd);
    // quad_pass_kernel takes a 4th argument (from_the_end): a default argument does not carry
    // through the kernel pointer these helpers take.
    const auto stats_quad = [&](const char* name, auto kernel, auto body) {
      const double ms =
          median_ms(st, reps, [&] { kernel<<<blocks, kThreads, 0, st>>>(gr, body, part, false); });
      report(name, ms, stats_bytes, copy_gbs, host_sum(part, blocks * 4));
    };
    stats_quad("bcedice_stats_quad (16-byte loads)", segloss::cuda::quad_pass_kernel<4, SB>, sb);
    stats_quad("softdice_stats_quad (16-byte loads)", segloss::cuda::quad_pass_kernel<3, SD>, sd);
    using GB = od::GradBody<float, true, true, false>;
    const GB gb{oa, ba, coef, bscale, g};
    const auto grad = [&](const char* name, auto kernel) {
      const double ms =
          median_ms(st, reps, [&] { kernel<<<blocks, kThreads, 0, st>>>(gr, gb, nullptr); });
      report(name, ms, grad_bytes, copy_gbs, 0);
    };
    grad("bcedice_grad_lib", segloss::cuda::plane_pass_kernel<0, GB>);
    grad("bcedice_grad_min6", segloss::cuda::plane_pass_kernel<0, GB, 6, 8>);
    grad("bcedice_grad_u4", segloss::cuda::plane_pass_kernel<0, GB, 1, 4>);
    {
      const double ms = median_ms(st, reps, [&] {
        segloss::cuda::quad_pass_kernel<0, GB><<<blocks, kThreads, 0, st>>>(gr, gb, nullptr, false);
      });
      report("bcedice_grad_quad (16-byte loads, stores)", ms, grad_bytes, copy_gbs, 0);
    }
    ck(cudaFree(coef), "free");
  }
  ck(cudaFree(x), "free");
  ck(cudaFree(z), "free");
  ck(cudaFree(g), "free");

  // Cross-entropy: (16, 21, 448, 448), int64 labels.
  const int64_t N = 16, C = 21, S = 448 * 448, total = N * S;
  float *cx, *cg;
  int64_t* cy;
  ck(cudaMalloc(&cx, N * C * S * 4), "malloc");
  ck(cudaMalloc(&cg, N * C * S * 4), "malloc");
  ck(cudaMalloc(&cy, total * 8), "malloc");
  fill<<<4096, 256, 0, st>>>(cx, N * C * S, 3, -3.0f, 3.0f, 0);
  fill_labels<<<4096, 256, 0, st>>>(cy, total, static_cast<int>(C));
  const double ce_bytes = 2.0 * N * C * S * 4 + total * 8.0;
  const float up = 1.0f / total;
  // A thread per `pixels` pixels (1, or 4 for the 16-byte staging: S % 4 == 0 here, 448 * 448),
  // `threads` a block, at most max_blocks blocks (the partials buffer holds 16,384).
  const auto run_ce = [&](const char* name, auto kernel, int max_blocks, int threads = kThreads,
                          int pixels = 1) {
    const int64_t b = (total / pixels + threads - 1) / threads;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(b, max_blocks));
    const double ms = median_ms(st, reps, [&] {
      kernel<<<blocks, threads, 0, st>>>(cx, cy, cg, N, S, static_cast<int>(C), up, part);
    });
    report(std::string(name) + " blocks=" + std::to_string(blocks), ms, ce_bytes, copy_gbs,
           host_sum(part, blocks));
  };
  run_ce("ce_lib_fused", ce_fused<0, 24, 1>, 4096);
  run_ce("ce_lib_fused_nomath", ce_fused<1, 24, 1>, 4096);
  run_ce("ce_fused_min4", ce_fused<0, 24, 4>, 4096);
  run_ce("ce_fused_blocks16k", ce_fused<0, 24, 1>, 16384);
  run_ce("ce_fused_k21", ce_fused<0, 21, 1>, 4096);
  run_ce("ce_fused_min5", ce_fused<0, 24, 5>, 4096);
  run_ce("ce_smem_async_min6", ce_smem<24, 6, true>, 4096);
  run_ce("ce_smem_async_min8", ce_smem<24, 8, true>, 4096);
  run_ce("ce_smem_async_min6_blocks12k", ce_smem<24, 6, true>, 12544);
  run_ce("ce_smem_regs8_min6", ce_smem<24, 6, false>, 4096);
  run_ce("ce_smem_regs8_min8", ce_smem<24, 8, false>, 4096);
  run_ce("ce_quad_t64", ce_smem_quad<24, 64, 1>, 16384, 64, 4);
  run_ce("ce_quad_t128_k21", ce_smem_quad<21, 128, 1>, 16384, 128, 4);
  run_ce("ce_quad_t64_grid1056", ce_smem_quad<24, 64, 1>, 1056, 64, 4);
  run_ce("ce_quad_t128_k21_grid528", ce_smem_quad<21, 128, 1>, 528, 128, 4);
  run_ce("ce_quad_t64_k21", ce_smem_quad<21, 64, 1>, 16384, 64, 4);
  run_ce("ce_quad_t32", ce_smem_quad<24, 32, 1>, 16384, 32, 4);
  const auto run_ce_img = [&](const char* name, auto kernel) {
    const int64_t bpi = (S + kThreads - 1) / kThreads;
    const unsigned blocks = static_cast<unsigned>(N * bpi);
    const double ms = median_ms(st, reps, [&] {
      kernel<<<blocks, kThreads, 0, st>>>(cx, cy, cg, S, static_cast<int>(C), up, bpi, part);
    });
    report(std::string(name) + " blocks=" + std::to_string(blocks), ms, ce_bytes, copy_gbs,
           host_sum(part, blocks));
  };
  run_ce_img("ce_image_blocks", ce_image_blocks<0, 24, 1>);
  run_ce_img("ce_image_blocks_nomath", ce_image_blocks<1, 24, 1>);
  run_ce_img("ce_image_blocks_min4", ce_image_blocks<0, 24, 4>);

  std::printf("\n%-44s %10s %9s %8s %16s\n", "variant", "ms", "GB/s", "of copy", "sum");
  for (const Row& r : rows)
    std::printf("%-44s %10.4f %9.0f %8.3f %16.9g\n", r.name.c_str(), r.ms, r.gbs, r.frac, r.sum);
  return 0;
}
