// CUDA kernels of cross_entropy with label or probability targets. The logits are (N, C, S): the C
// logits of a pixel are S elements apart, so each thread takes a pixel and walks the class axis,
// and the threads of a warp, on consecutive pixels, read each class row coalesced. For C <= 32 the
// pixel's logits are loaded into registers at once (C independent loads in flight per thread)
// and the exponentials kept there, so the logits are read from memory once and the gradient
// written once, in the same pass that computes the loss. Larger C walks the row three times
// (max, sums, gradient), which mostly hits the caches. Probability targets q (N, C, S) are read
// the same way as the logits, row by row, alongside them.
//
// Four steps on the caller's stream (cross_entropy.hpp), after the Call's header is zeroed:
//   1. label_pass: every label checked (the first bad linear index by an integer atomicMax of its
//      complement in the header, so the same index whatever the scheduling), and per block the
//      count of counted pixels and the sum of their class weights (double); where C <= 254 and
//      the workspace holds them, a byte per pixel, its label's code (the class, ignored or bad),
//      which the fused pass reads instead of the label; not run for probability targets, where
//      every pixel counts and the mean divides by N * S, as PyTorch;
//   2. prepare (one block): the block partials added in a fixed order; the mean's divisor,
//      W = sum_c w_c, the value's mean factor and the gradient's scale, kept on the device so
//      nothing waits for the host;
//   3. fused: loss and gradient per pixel; one double partial of the loss per block;
//   4. finish (one block): the partials added in a fixed order, the reduction applied.
// Steps 2 and 4 run in the last block of steps 1 and 3 to finish (runtime.cuh last_block): two
// launches instead of four (detail::last_block_tails; off, each is a kernel of its own, with the
// same code and bits). Probability targets launch prepare on its own.
// The label pass runs on a grid of its own, 1024 blocks or a block per 4096 labels where that is
// more, never more than the fused pass's (cuda_internal.hpp cross_entropy_label_blocks; with a
// label per thread on the fused pass's grid, the blocks' fixed work cost more than their loads:
// 40 us of a 232 us call on an H200, 15 us on its own grid). The grids are fixed functions of
// the shape (at most kMaxBlocks blocks, grid-stride loops),
// and every sum runs in a fixed order: the value is bitwise the same from run to run.
#include "cross_entropy.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../core/pointwise.hpp"
#include "launch.cuh"

namespace segloss {
namespace cuda {
namespace {

constexpr int kMaxBlocks = 16384;     // a pixel per thread up to 4.2M pixels
constexpr int kRegisterClasses = 32;  // C up to this keeps a pixel's logits in registers

// Label codes: where C <= kMaxCodedClasses and the workspace holds them, the label pass writes a
// byte per pixel, the class of a counted pixel or one of these two, and the fused pass reads it
// instead of the caller's label (4 or 8 bytes): at C = 21 with int64 labels a call moves 178
// bytes per pixel instead of 184 (logits and gradient 168, labels 8, codes 1 + 1).
constexpr int kCodeIgnored = 254;
constexpr int kCodeBad = 255;
constexpr int64_t kMaxCodedClasses = kCodeIgnored;  // classes 0 to 253: below both codes

// The device-side status after the Call's header (whose kFirstBad slot holds the complement of
// the first bad label's index, 0 for none).
struct Status {
  double value;        // the reduced value (double)
  long long count;     // counted pixels
  double weight_sum;   // sum of their class weights
  double w_total;      // W = sum_c w_c
  double mean_factor;  // the value's factor for mean (NaN: all ignored, nan policy)
  double grad_scale;   // the gradient's factor for mean and sum (grad_out included)
};

struct Layout {
  Status* status;
  double* label_weight;  // a partial per block
  long long* label_count;
  double* loss_partial;
};

constexpr size_t kStatusBytes = 256;

// The regions for `blocks` blocks (core/cuda_internal.hpp's cross_entropy_bytes).
Layout layout(void* workspace, int blocks) {
  const size_t partial_bytes = detail::align_up(static_cast<size_t>(blocks) * sizeof(double));
  char* p = static_cast<char*>(workspace);
  Layout l;
  l.status = reinterpret_cast<Status*>(p);
  l.label_weight = reinterpret_cast<double*>(p + kStatusBytes);
  l.label_count = reinterpret_cast<long long*>(p + kStatusBytes + partial_bytes);
  l.loss_partial = reinterpret_cast<double*>(p + kStatusBytes + 2 * partial_bytes);
  return l;
}

__device__ __forceinline__ bool ignored(int64_t y, int64_t ignore_index, bool ignore_negative) {
  return y == ignore_index || (ignore_negative && y < 0);
}

int blocks_for(int64_t items) {
  return static_cast<int>(detail::cross_entropy_blocks(items));
}

// prepare's inputs: one block's work after the label pass (or without one, for probabilities);
// a one-block step (runtime.cuh run_step) when it is not run by the label pass's last block.
template <class T>
struct PrepareArgs;
template <class T>
__device__ void prepare_block(const PrepareArgs<T>& p);

template <class T>
struct PrepareArgs {
  int blocks;             // the label pass's partials (0: none)
  long long fixed_count;  // >= 0: probabilities, every pixel counts
  int64_t classes;
  const T* weight;  // the class weights, or null
  bool mean, mean_valid, all_ignored_nan;
  const T* grad_out_scalar;
  const double* weight_partial;
  const long long* count_partial;
  Status* st;
  bool use_reduced;  // the split's finalize: the whole batch's divisor and count
  double reduced_divisor;
  bool reduced_none_counted;
  double grad_weight;
  __device__ void operator()() const { prepare_block(*this); }
};

// Every thread of a block calls it; thread 0 writes the status.
template <class T>
__device__ void prepare_block(const PrepareArgs<T>& p) {
  double ws = 0.0;
  long long count = 0;
  for (int b = threadIdx.x; b < p.blocks; b += kThreads) {
    ws += p.weight_partial[b];
    count += p.count_partial[b];
  }
  SEGLOSS_STATIC_SHARED(double, sh_w, [kThreads / 32]);
  SEGLOSS_STATIC_SHARED(long long, sh_c, [kThreads / 32]);
  ws = block_total(ws, sh_w);
  count = block_total(count, sh_c);
  if (threadIdx.x != 0) return;
  if (p.fixed_count >= 0) {  // probabilities: no label pass; the mean divides by N * S
    count = p.fixed_count;
    ws = static_cast<double>(p.fixed_count);
  }
  double w_total = static_cast<double>(p.classes);
  if (p.weight) {
    w_total = 0.0;
    for (int64_t c = 0; c < p.classes; ++c) w_total += static_cast<double>(p.weight[c]);
  }
  // As the CPU path (losses/cross_entropy.cpp): 1/divisor, and when no pixel counts, 0 for the
  // gradient and 0 or NaN for the value. Weights summing to 0 divide by 0 as PyTorch does.
  // The split's finalize: the whole batch's divisor and count (the CPU's finalize, too).
  const bool none_counted = p.use_reduced ? p.reduced_none_counted : count == 0;
  const double divisor = p.use_reduced  ? p.reduced_divisor
                         : p.mean_valid ? static_cast<double>(count)
                                        : ws;
  const double factor = none_counted ? 0.0 : 1.0 / divisor;
  Status* st = p.st;
  st->count = count;
  st->weight_sum = ws;
  st->w_total = w_total;
  st->mean_factor = none_counted && p.all_ignored_nan ? nan("") : factor;
  const double g0 = p.grad_out_scalar ? static_cast<double>(p.grad_out_scalar[0]) : 1.0;
  st->grad_scale = g0 * (p.mean ? factor : 1.0) * p.grad_weight;
}

// ticket: the header's kTicket, when the last block runs prepare (p); null when prepare is a
// kernel of its own.
// codes: if not null, each pixel's label code (kCodeIgnored, kCodeBad, or its class).
template <class L, class T>
__global__ void __launch_bounds__(kThreads)
    label_pass(const L* __restrict__ labels, int64_t total, int64_t classes, int64_t ignore_index,
               bool ignore_negative, const T* __restrict__ weight, double* weight_partial,
               long long* count_partial, unsigned long long* first_bad_mark,
               uint8_t* __restrict__ codes, unsigned* ticket, const PrepareArgs<T> p) {
  double ws = 0.0;
  long long count = 0;
  unsigned long long bad = ~0ull;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  // kLoads labels a stride apart are loaded before any is looked at (independent loads in flight:
  // on its own grid a thread takes up to 16 labels, more beyond 67M pixels), then taken in the
  // order of their index.
  constexpr int kLoads = 4;
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i0 < total;
       i0 += kLoads * stride) {
    int64_t y[kLoads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int64_t i = i0 + k * stride;
      y[k] = i < total ? static_cast<int64_t>(labels[i]) : 0;
    }
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int64_t i = i0 + k * stride;
      if (i >= total) break;
      int code;
      if (ignored(y[k], ignore_index, ignore_negative)) {
        code = kCodeIgnored;
      } else if (y[k] < 0 || y[k] >= classes) {
        if (bad == ~0ull) bad = static_cast<unsigned long long>(i);  // i grows: the thread's first
        code = kCodeBad;
      } else {
        ws += weight ? static_cast<double>(weight[y[k]]) : 1.0;
        ++count;
        code = static_cast<int>(y[k]);
      }
      if (codes) codes[i] = static_cast<uint8_t>(code);
    }
  }
  // Integers: the largest complement is the smallest index, in any order.
  if (bad != ~0ull) atomicMax(first_bad_mark, ~bad);
  SEGLOSS_STATIC_SHARED(double, sh_w, [kThreads / 32]);
  SEGLOSS_STATIC_SHARED(long long, sh_c, [kThreads / 32]);
  ws = block_total(ws, sh_w);
  count = block_total(count, sh_c);
  if (threadIdx.x == 0) {
    weight_partial[blockIdx.x] = ws;
    count_partial[blockIdx.x] = count;
  }
  if (ticket && last_block(ticket)) prepare_block(p);
}

// What a pixel's label makes of it: counted, ignored (loss and gradient 0 whatever its logits),
// or bad (outside [0, C), flagged by the label pass: loss and gradient NaN, so that a result kept
// on the device shows it; nothing is read out of bounds, the label taken as 0).
enum PixelState { kCounted = 0, kIgnored = 1, kBad = 2 };

template <class T>
__device__ __forceinline__ T by_state(int state, T v) {
  return state == kCounted ? v : state == kIgnored ? T(0) : static_cast<T>(NAN);
}

// One pixel's loss, and its gradient written to g (class c at g[c * S]) unless g is null. g may
// be x itself (value_and_grad in place), so neither is __restrict__: each element is read before
// the store to it, and no later read of the pixel needs an element already stored.
//
// C <= K: the C logits are loaded into registers at once, before anything waits on the label,
// so C independent loads are in flight per thread; the loops unroll, so the array is indexed by
// constants only and stays in registers. Ignored and bad pixels go through the same code (no
// branch that would hold the loads back) and are overridden at the end.
template <class T, int K>
__device__ __forceinline__ T pixel_in_registers(const T* x, T* g, int64_t S, int C, int y,
                                                int state, const T* w, T up, T eps, T eps_over_c,
                                                T w_total) {
  using M = Math<T>;
  T v[K];
  {
    const T* xc = x;
#pragma unroll
    for (int c = 0; c < K; ++c) {
      if (c < C) v[c] = __ldcs(xc);  // read once: stream past the caches
      xc += S;
    }
  }
  T m = v[0];
#pragma unroll
  for (int c = 1; c < K; ++c)
    if (c < C) m = M::max(m, v[c]);
  // Relative to the max m: lse - x_c = log(se) - (x_c - m), no cancellation of large values;
  // the label's -log p_y from rest = sum_{c != y} e_c (pw::softmax_nll, as the CPU kernel).
  T se = T(0), rest = T(0), wx = T(0), x_y = T(0), e_y = T(1);
#pragma unroll
  for (int c = 0; c < K; ++c) {
    if (c < C) {
      const T xc = v[c] - m;
      x_y = c == y ? xc : x_y;
      v[c] = M::exp(xc);
      e_y = c == y ? v[c] : e_y;
      se += v[c];
      rest += c == y ? T(0) : v[c];
      if (eps > T(0)) wx += w[c] * xc;
    }
  }
  const T w_y = w[y];
  const T lse = eps > T(0) ? M::log(se) : T(0);  // read by the smoothing term only
  const T nll = pw::softmax_nll<T>(rest, e_y, x_y);
  const T loss = pw::cross_entropy_loss<T>(nll, lse, w_y, wx, eps, eps_over_c, w_total);
  if (g) {
    const T inv_se = M::recip(se);
    const T q = rest * inv_se;
#pragma unroll
    for (int c = 0; c < K; ++c) {
      if (c < C) {
        const T p = v[c] * inv_se;
        const T d = up * pw::cross_entropy_grad<T>(p, q, c == y ? T(1) : T(0), w_y, w[c], eps,
                                                   eps_over_c, w_total);
        __stcs(g, by_state(state, d));
      }
      g += S;
    }
  }
  return by_state(state, loss);
}

// pixel_in_registers' math, the logits staged in this thread's column of the block's tile
// (col[c * kThreads] is class c) instead of registers: copied in asynchronously, so no register
// holds a load in flight, and the pass needs about 40 registers instead of 64 to 76; 6 blocks
// fit on a multiprocessor instead of 3 or 4. Only this thread touches its column: it waits for
// its own copies, no barrier. The same operations in the same order as pixel_in_registers: the
// same bits. (float labels, 8 < C <= 32; a copy of the pass ran at 0.88 of the copy's bandwidth
// on an H200 this way, against 0.61 at 4 blocks of registers; bench/RESULTS.md.)
template <class T>
__device__ __forceinline__ T pixel_in_shared(const T* x, T* g, int64_t S, int C, int y, int state,
                                             const T* w, T up, T eps, T eps_over_c, T w_total,
                                             T* col) {
  using M = Math<T>;
  {
    const T* xc = x;
    for (int c = 0; c < C; ++c) {
      copy_async(col + c * kThreads, xc);
      xc += S;
    }
  }
  wait_copies();
  T m = col[0];
  for (int c = 1; c < C; ++c) m = M::max(m, col[c * kThreads]);
  T se = T(0), rest = T(0), wx = T(0), x_y = T(0), e_y = T(1);
  for (int c = 0; c < C; ++c) {
    const T xc = col[c * kThreads] - m;
    x_y = c == y ? xc : x_y;
    const T e = M::exp(xc);
    col[c * kThreads] = e;
    e_y = c == y ? e : e_y;
    se += e;
    rest += c == y ? T(0) : e;
    if (eps > T(0)) wx += w[c] * xc;
  }
  const T w_y = w[y];
  const T lse = eps > T(0) ? M::log(se) : T(0);  // read by the smoothing term only
  const T nll = pw::softmax_nll<T>(rest, e_y, x_y);
  const T loss = pw::cross_entropy_loss<T>(nll, lse, w_y, wx, eps, eps_over_c, w_total);
  if (g) {
    const T inv_se = M::recip(se);
    const T q = rest * inv_se;
    for (int c = 0; c < C; ++c) {
      const T p = col[c * kThreads] * inv_se;
      const T d = up * pw::cross_entropy_grad<T>(p, q, c == y ? T(1) : T(0), w_y, w[c], eps,
                                                 eps_over_c, w_total);
      __stcs(g, by_state(state, d));
      g += S;
    }
  }
  return by_state(state, loss);
}

// Any C: three walks over the row (max; exponentials and sums; gradient), which mostly hit the
// caches after the first.
template <class T>
__device__ __forceinline__ T pixel_walk(const T* x, T* g, int64_t S, int C, int y, int state,
                                        const T* w, T up, T eps, T eps_over_c, T w_total) {
  using M = Math<T>;
  if (state != kCounted) {
    if (g)
      for (int c = 0; c < C; ++c) g[c * S] = by_state(state, T(0));
    return by_state(state, T(0));
  }
  const auto wc = [&](int c) { return w ? w[c] : T(1); };
  T m = x[0];
  for (int c = 1; c < C; ++c) m = M::max(m, x[c * S]);
  T se = T(0), rest = T(0), wx = T(0), e_y = T(1);
  for (int c = 0; c < C; ++c) {
    const T xc = x[c * S] - m;
    const T e = M::exp(xc);
    e_y = c == y ? e : e_y;
    se += e;
    rest += c == y ? T(0) : e;
    if (eps > T(0)) wx += wc(c) * xc;
  }
  const T x_y = x[static_cast<int64_t>(y) * S] - m;
  const T w_y = wc(y);
  const T lse = eps > T(0) ? M::log(se) : T(0);  // read by the smoothing term only
  const T nll = pw::softmax_nll<T>(rest, e_y, x_y);
  const T loss = pw::cross_entropy_loss<T>(nll, lse, w_y, wx, eps, eps_over_c, w_total);
  if (g) {
    const T inv_se = M::recip(se);
    const T q = rest * inv_se;
    for (int c = 0; c < C; ++c) {
      const T p = M::exp(x[c * S] - m) * inv_se;
      g[c * S] = up * pw::cross_entropy_grad<T>(p, q, c == y ? T(1) : T(0), w_y, wc(c), eps,
                                                eps_over_c, w_total);
    }
  }
  return loss;
}

// Probability targets q (class c of the pixel at q[c * S]), with q'_c = (1 - eps) q_c + eps / C
// and u_c = w_c q'_c, by the CPU kernel's functions (core/pointwise.hpp):
//   l = sum_c u_c (lse - x_c) = (sum_c u_c) log(se) - sum_c u_c (x_c - m)
//   dl/dx_c = p_c sum_k u_k - u_c
// (lse and x_c relative to the max m, as for labels). No state: every pixel counts, and a NaN
// logit or target stays in its pixel's loss and gradient.

// C <= K: the C logits and the C targets are loaded into registers at once (2 C independent
// loads in flight), read from memory once; u_c is kept in place of q_c for the gradient.
template <class T, int K>
__device__ __forceinline__ T soft_pixel_in_registers(const T* x, const T* q, T* g, int64_t S, int C,
                                                     const T* w, T up, T eps, T eps_over_c) {
  using M = Math<T>;
  T v[K], u[K];
#pragma unroll
  for (int c = 0; c < K; ++c) {
    if (c < C) {
      v[c] = __ldcs(x + c * S);  // read once: stream past the caches
      u[c] = __ldcs(q + c * S);
    }
  }
  T m = v[0];
#pragma unroll
  for (int c = 1; c < K; ++c)
    if (c < C) m = M::max(m, v[c]);
  T se = T(0), wq = T(0), wx = T(0);
#pragma unroll
  for (int c = 0; c < K; ++c) {
    if (c < C) {
      const T xc = v[c] - m;
      v[c] = M::exp(xc);
      se += v[c];
      u[c] = pw::cross_entropy_soft_target<T>(u[c], w[c], eps, eps_over_c);
      wq += u[c];
      wx += u[c] * xc;
    }
  }
  const T loss = pw::cross_entropy_soft_loss<T>(M::log(se), wq, wx);
  if (g) {
    const T inv_se = M::recip(se);
#pragma unroll
    for (int c = 0; c < K; ++c) {
      if (c < C) {
        const T p = v[c] * inv_se;
        __stcs(g, up * pw::cross_entropy_soft_grad<T>(p, wq, u[c]));
      }
      g += S;
    }
  }
  return loss;
}

// Any C: three walks over the two rows (max; exponentials and sums; gradient). g may be x or q
// itself (in place): each element is read before this thread writes it, and no other thread
// touches the pixel.
template <class T>
__device__ __forceinline__ T soft_pixel_walk(const T* x, const T* q, T* g, int64_t S, int C,
                                             const T* w, T up, T eps, T eps_over_c) {
  using M = Math<T>;
  const auto wc = [&](int c) { return w ? w[c] : T(1); };
  T m = x[0];
  for (int c = 1; c < C; ++c) m = M::max(m, x[c * S]);
  T se = T(0), wq = T(0), wx = T(0);
  for (int c = 0; c < C; ++c) {
    const T xc = x[c * S] - m;
    se += M::exp(xc);
    const T uc = pw::cross_entropy_soft_target<T>(q[c * S], wc(c), eps, eps_over_c);
    wq += uc;
    wx += uc * xc;
  }
  const T loss = pw::cross_entropy_soft_loss<T>(M::log(se), wq, wx);
  if (g) {
    const T inv_se = M::recip(se);
    for (int c = 0; c < C; ++c) {
      const T p = M::exp(x[c * S] - m) * inv_se;
      const T uc = pw::cross_entropy_soft_target<T>(q[c * S], wc(c), eps, eps_over_c);
      g[c * S] = up * pw::cross_entropy_soft_grad<T>(p, wq, uc);
    }
  }
  return loss;
}

// Blocks of 256 a multiprocessor must fit (registers at most 65536 / (256 * that)): the staged
// pass (kShared, pixel_in_shared) 6 (on an H100/H200: its 16.5 to 33 KB tile lets fewer fit
// where a multiprocessor has less shared memory); the register buckets no minimum (0: ptxas's
// own choice; 1 would not be the same, it gave them 5 to 85 more registers; float with labels,
// C <= 8: 40 registers, 6 blocks, since the label's term sums R on its own (pw::softmax_nll):
// 32 and 8 before; forced to 8 blocks, ptxas spilled 20 to 112 bytes. Not measured on a GPU).
template <bool kShared>
constexpr int fused_min_blocks() {
  return kShared ? 6 : 0;
}

// finish's inputs: one block's work after the fused pass; a one-block step (run_step) when the
// fused pass's last block does not run it.
template <class T>
struct FinishArgs;
template <class T, int kBlock = kThreads>
__device__ __forceinline__ void finish_block(const FinishArgs<T>& f);

template <class T>
struct FinishArgs {
  int blocks;
  bool mean;
  const double* loss_partial;
  Status* st;
  const unsigned long long* first_bad_mark;  // the header's kFirstBad
  T* value;                                  // the caller's value, or null
  double* value_slot;                        // the Call's result slot and flag
  int* flag_slot;
  __device__ void operator()() const { finish_block(*this); }
};

// Every thread of a block of kBlock threads calls it; thread 0 writes the value. The partials are
// added in the order a block of kThreads threads adds them (block_total's), whatever kBlock: a
// thread of a smaller block plays kThreads / kBlock threads of it, so the four-pixel pass's last
// block (64 threads) and finish as a kernel of its own (256) give the same bits.
template <class T, int kBlock>
__device__ __forceinline__ void finish_block(const FinishArgs<T>& f) {
  static_assert(kThreads % kBlock == 0 && kBlock % 32 == 0, "a block of whole warps");
  constexpr int kPlays = kThreads / kBlock;
  SEGLOSS_STATIC_SHARED(double, sh, [kThreads / 32]);
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < kPlays; ++r) {
    const int u = r * kBlock + static_cast<int>(threadIdx.x);  // the thread it plays
    double v = 0.0;
    for (int b = u; b < f.blocks; b += kThreads) v += f.loss_partial[b];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) sh[u >> 5] = v;
  }
  __syncthreads();
  double sum = 0.0;
  if (threadIdx.x < 32) {
    sum = lane < kThreads / 32 ? sh[lane] : 0.0;  // the 8 warps' sums, then zeros, as block_total
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, o);
  }
  if (threadIdx.x != 0) return;
  const double m = f.st->mean_factor;
  const double v = !f.mean ? sum : isnan(m) ? m : sum * m;
  f.st->value = v;
  *f.value_slot = v;  // Call::host_value and device_value read the result slot and flag
  if (*f.first_bad_mark != 0) *f.flag_slot = kBadLabel;
  if (f.value) *f.value = static_cast<T>(v);
}

// The fused pass's last block calls finish_block through a call for the register buckets: inlined
// there, ptxas gave float C <= 8 37 or 38 registers instead of 32 (fewer blocks per
// multiprocessor) and double C <= 8 with int32 labels an 8-byte spill; called, the buckets keep
// their registers (by value: a reference to the kernel's parameter made every thread copy it to a
// 56-byte local frame at the kernel's start). Inlined for the walk (K = 0), where the call cost
// float probabilities 8 registers (sm_90, nvcc 13.0).
template <class T, int kBlock = kThreads>
__device__ __noinline__ void finish_block_call(const FinishArgs<T> f) {
  finish_block<T, kBlock>(f);
}

// Pixel pix's state and class (0 unless counted), from the label pass's code or the label.
template <class T, class L>
__device__ __forceinline__ void label_state(const CrossEntropyArgs<T, L>& a, int64_t pix,
                                            int& state, int& yi) {
  if constexpr (std::is_same_v<L, uint8_t>) {  // the label pass's codes
    const int code = a.labels[pix];
    state = code == kCodeIgnored ? kIgnored : code == kCodeBad ? kBad : kCounted;
    yi = state == kCounted ? code : 0;
  } else {
    const int64_t y = static_cast<int64_t>(a.labels[pix]);
    state = ignored(y, a.ignore_index, a.ignore_negative) ? kIgnored
            : y < 0 || y >= a.classes                     ? kBad
                                                          : kCounted;
    yi = state == kCounted ? static_cast<int>(y) : 0;
  }
}

// ticket: the header's kTicket, when the last block runs finish (f; only with loss_partial);
// null when finish is a kernel of its own. st is __restrict__ for the fields this pass reads
// (prepare wrote them before the launch); finish writes st->value through f.st, a field this
// pass never reads through st.
template <class T, class L, int K, bool kShared = false>
__global__ void __launch_bounds__(kThreads, (fused_min_blocks<kShared>()))
    fused(const CrossEntropyArgs<T, L> a, const Status* __restrict__ st, double* loss_partial,
          unsigned* ticket, const FinishArgs<T> f) {
  const int C = static_cast<int>(a.classes);
  const int64_t S = a.pixels, total = a.images * S;
  const T eps = static_cast<T>(a.eps), eps_over_c = static_cast<T>(a.eps / a.classes);
  const T w_total = static_cast<T>(st->w_total);
  const bool per_pixel_up = a.reduction == Reduction::none;
  const T scale = static_cast<T>(st->grad_scale);
  // With C <= K the class weights (or ones) sit in shared memory; otherwise read from a.weight.
  SEGLOSS_STATIC_SHARED(T, sh_weight, [(K > 0 ? K : 1)]);
  const T* w = a.weight;
  if constexpr (K > 0) {
    for (int c = threadIdx.x; c < K; c += kThreads)
      sh_weight[c] = c < C ? (a.weight ? a.weight[c] : T(1)) : T(0);
    __syncthreads();
    w = sh_weight;
  }
  // The staged pass's tile: a column of K logits per thread (kShared only; one element otherwise).
  SEGLOSS_STATIC_SHARED(T, tile, [(kShared ? K : 1)][(kShared ? kThreads : 1)]);
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t pix = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; pix < total;
       pix += stride) {
    const int64_t n = pix / S, s = pix - n * S;
    const int64_t base = n * a.classes * S + s;
    T* g = a.grad ? a.grad + base : nullptr;
    T up = T(0);
    if (g) up = per_pixel_up ? (a.grad_out ? a.grad_out[pix] : T(1)) : scale;
    T loss;
    if constexpr (std::is_floating_point_v<L>) {  // probabilities
      const T* q = a.probs + base;
      if constexpr (K > 0)
        loss = soft_pixel_in_registers<T, K>(a.x + base, q, g, S, C, w, up, eps, eps_over_c);
      else
        loss = soft_pixel_walk<T>(a.x + base, q, g, S, C, w, up, eps, eps_over_c);
    } else {
      int state, yi;
      label_state(a, pix, state, yi);
      if constexpr (kShared)
        loss = pixel_in_shared<T>(a.x + base, g, S, C, yi, state, w, up, eps, eps_over_c, w_total,
                                  &tile[0][threadIdx.x]);
      else if constexpr (K > 0)
        loss = pixel_in_registers<T, K>(a.x + base, g, S, C, yi, state, w, up, eps, eps_over_c,
                                        w_total);
      else
        loss = pixel_walk<T>(a.x + base, g, S, C, yi, state, w, up, eps, eps_over_c, w_total);
    }
    if (a.loss) a.loss[pix] = loss;
    acc += static_cast<double>(loss);
  }
  if (!loss_partial) return;
  SEGLOSS_STATIC_SHARED(double, sh, [kThreads / 32]);
  acc = block_total(acc, sh);
  if (threadIdx.x == 0) loss_partial[blockIdx.x] = acc;
  if (ticket && last_block(ticket)) {
    if constexpr (K == 0)
      finish_block(f);
    else
      finish_block_call(f);
  }
}

// Four pixels a thread (fused_quads; off by default, detail::cross_entropy_quads, until a GPU has
// measured it): float logits with labels, 8 < C <= 32, S a multiple of 4, the logits and the
// gradient 16-byte aligned. Each thread copies the C float4 columns of 4 consecutive pixels of one
// image into its column of the tile with 16-byte cp.async, then works on the 4 pixels side by
// side, a float4 of the tile per class and step (4 independent chains; the tile read 16 bytes a
// thread, without bank conflicts), and writes the gradient a float4 row at a time: a warp reads
// and writes 512 bytes of a class row at a time instead of 128. Each pixel gets
// pixel_in_shared's operations in the same order (the compiler may contract them into FMAs
// otherwise: results within rounding of that pass, not its bits). Blocks of 64 threads (a tile
// of K float4 rows, 16 to 32 KB), as many as pixel_in_shared's (a block per 256 pixels), so the
// same number of partials; its last block's finish adds them in finish's 256-thread order. On an
// H200 a copy of this pass without the weights and smoothing (bench/cuda_variants.cu ce_quad_t64, C
// = 21) ran at 0.955 of the copy's bandwidth against 0.805 for the one-pixel staging; a first
// library version that took the 4 pixels one after another, reading the tile 4 bytes at a time, was
// slower than the one-pixel pass (bench/RESULTS.md, 2026-12-04).
constexpr int kQuadThreads = 64;

// A tile entry: a thread's 4 pixels of one class (16-byte aligned, as cp.async of 16 bytes needs).
struct alignas(16) Quad {
  float v[4];
};

// 16 bytes (4 floats, 16-byte aligned at both ends) into shared memory, asynchronously, not kept
// in L1 (.cg); wait_copies waits for them. The emulator copies at once, checking the alignment.
__device__ __forceinline__ void copy_async16(Quad* to_shared, const float* from) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(to_shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(from) : "memory");
#elif defined(__CUDA_ARCH__)
  *reinterpret_cast<float4*>(to_shared) = *reinterpret_cast<const float4*>(from);
#else
  check_quad(from);
  for (int k = 0; k < 4; ++k) to_shared->v[k] = from[k];
#endif
}

template <class L, int K>
__global__ void __launch_bounds__(kQuadThreads)
    fused_quads(const CrossEntropyArgs<float, L> a, const Status* __restrict__ st,
                double* loss_partial, unsigned* ticket, const FinishArgs<float> f) {
  using T = float;
  using M = Math<T>;
  const int C = static_cast<int>(a.classes);
  const int64_t S = a.pixels, quads = a.images * S / 4;
  const T eps = static_cast<T>(a.eps), eps_over_c = static_cast<T>(a.eps / a.classes);
  const T w_total = static_cast<T>(st->w_total);
  const bool per_pixel_up = a.reduction == Reduction::none;
  const T scale = static_cast<T>(st->grad_scale);
  SEGLOSS_STATIC_SHARED(T, sh_weight, [K]);
  for (int c = threadIdx.x; c < K; c += kQuadThreads)
    sh_weight[c] = c < C ? (a.weight ? a.weight[c] : T(1)) : T(0);
  __syncthreads();
  const T* w = sh_weight;
  SEGLOSS_STATIC_SHARED(Quad, tile, [K][kQuadThreads]);
  const int t = threadIdx.x;
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kQuadThreads;
  for (int64_t quad = static_cast<int64_t>(blockIdx.x) * kQuadThreads + t; quad < quads;
       quad += stride) {
    const int64_t pix = 4 * quad;
    const int64_t n = pix / S, s = pix - n * S;
    const int64_t base = n * a.classes * S + s;
    for (int c = 0; c < C; ++c) copy_async16(&tile[c][t], a.x + base + c * S);
    int state[4], y[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) label_state(a, pix + j, state[j], y[j]);
    wait_copies();
    // pixel_in_shared's steps, for the 4 pixels at once.
    T m[4];
    {
      const Quad v = tile[0][t];
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = v.v[j];
    }
    for (int c = 1; c < C; ++c) {
      const Quad v = tile[c][t];
#pragma unroll
      for (int j = 0; j < 4; ++j) m[j] = M::max(m[j], v.v[j]);
    }
    T se[4], rest[4], wx[4], x_y[4], e_y[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) se[j] = rest[j] = wx[j] = x_y[j] = T(0), e_y[j] = T(1);
    for (int c = 0; c < C; ++c) {
      Quad v = tile[c][t];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const T xc = v.v[j] - m[j];
        x_y[j] = c == y[j] ? xc : x_y[j];
        const T e = M::exp(xc);
        v.v[j] = e;
        e_y[j] = c == y[j] ? e : e_y[j];
        se[j] += e;
        rest[j] += c == y[j] ? T(0) : e;
        if (eps > T(0)) wx[j] += w[c] * xc;
      }
      tile[c][t] = v;
    }
    T w_y[4], loss[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      w_y[j] = w[y[j]];
      const T lse = eps > T(0) ? M::log(se[j]) : T(0);  // read by the smoothing term only
      const T nll = pw::softmax_nll<T>(rest[j], e_y[j], x_y[j]);
      loss[j] = pw::cross_entropy_loss<T>(nll, lse, w_y[j], wx[j], eps, eps_over_c, w_total);
    }
    if (a.grad) {
      T inv_se[4], q[4], up[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        inv_se[j] = M::recip(se[j]);
        q[j] = rest[j] * inv_se[j];
        up[j] = per_pixel_up ? (a.grad_out ? a.grad_out[pix + j] : T(1)) : scale;
      }
      T* g = a.grad + base;
      for (int c = 0; c < C; ++c) {
        const Quad v = tile[c][t];
        float d[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const T p = v.v[j] * inv_se[j];
          d[j] = by_state(
              state[j], up[j] * pw::cross_entropy_grad<T>(p, q[j], c == y[j] ? T(1) : T(0), w_y[j],
                                                          w[c], eps, eps_over_c, w_total));
        }
        store_quad(g, d);  // st.global.cs of a float4
        g += S;
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const T l = by_state(state[j], loss[j]);
      if (a.loss) a.loss[pix + j] = l;
      acc += static_cast<double>(l);
    }
  }
  if (!loss_partial) return;
  SEGLOSS_STATIC_SHARED(double, sh, [kThreads / 32]);
  acc = block_total<double, kQuadThreads>(acc, sh);
  if (t == 0) loss_partial[blockIdx.x] = acc;
  if (ticket && last_block(ticket)) finish_block_call<T, kQuadThreads>(f);
}

// The fused pass on the bucket of C. The register array is sized for the next bucket of C:
// registers per thread decide how many blocks fit on a multiprocessor (float probabilities,
// C = 21: 95 registers, 2 blocks of 256). float with labels (or their codes) and 8 < C <= 32 is
// staged through shared memory instead (pixel_in_shared), in a tile of the bucket's rows (16, 24
// or 32 KB), unless a test turned the staging off (detail::cross_entropy_staging: the two paths
// must give the same bits).
template <class T, class L>
void launch_fused(const CrossEntropyArgs<T, L>& a, int blocks, cudaStream_t s, const Status* st,
                  double* partial, unsigned* ticket, const FinishArgs<T>& fin) {
  constexpr bool kCanStage = std::is_same_v<T, float> && !std::is_floating_point_v<L>;
  const bool staged = kCanStage && detail::cross_entropy_staging();
  if constexpr (kCanStage) {
    // Four pixels a thread where asked for and every float4 access is whole and aligned.
    if (staged && detail::cross_entropy_quads() && a.classes > 8 && a.classes <= kRegisterClasses &&
        a.pixels % 4 == 0 && aligned16(a.x) && (!a.grad || aligned16(a.grad))) {
      const auto kernel = a.classes <= 16   ? fused_quads<L, 16>
                          : a.classes <= 24 ? fused_quads<L, 24>
                                            : fused_quads<L, kRegisterClasses>;
      cuda::launch(kernel, blocks, kQuadThreads, 0, s, a, st, partial, ticket, fin);
      detail::cross_entropy_quad_launches().fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  if (a.classes <= 8)
    cuda::launch(fused<T, L, 8>, blocks, kThreads, 0, s, a, st, partial, ticket, fin);
  else if (a.classes <= 16)
    cuda::launch(staged ? fused<T, L, 16, kCanStage> : fused<T, L, 16>, blocks, kThreads, 0, s, a,
                 st, partial, ticket, fin);
  else if (a.classes <= 24)
    cuda::launch(staged ? fused<T, L, 24, kCanStage> : fused<T, L, 24>, blocks, kThreads, 0, s, a,
                 st, partial, ticket, fin);
  else if (a.classes <= kRegisterClasses)
    cuda::launch(staged ? fused<T, L, kRegisterClasses, kCanStage> : fused<T, L, kRegisterClasses>,
                 blocks, kThreads, 0, s, a, st, partial, ticket, fin);
  else
    cuda::launch(fused<T, L, 0>, blocks, kThreads, 0, s, a, st, partial, ticket, fin);
}

// a with the label pass's codes in place of its labels, every other field as it is (the fused
// pass then cannot read the caller's labels). Every field of CrossEntropyArgs is copied here.
template <class T, class L>
CrossEntropyArgs<T, uint8_t> with_codes(const CrossEntropyArgs<T, L>& a, const uint8_t* codes) {
  CrossEntropyArgs<T, uint8_t> c;
  c.function = a.function;
  c.x = a.x;
  c.images = a.images;
  c.classes = a.classes;
  c.pixels = a.pixels;
  c.labels = codes;
  c.probs = a.probs;
  c.ignore_index = a.ignore_index;
  c.ignore_negative = a.ignore_negative;
  c.weight = a.weight;
  c.eps = a.eps;
  c.reduction = a.reduction;
  c.mean_over_valid = a.mean_over_valid;
  c.all_ignored_nan = a.all_ignored_nan;
  c.loss = a.loss;
  c.value = a.value;
  c.grad = a.grad;
  c.grad_out = a.grad_out;
  c.use_reduced = a.use_reduced;
  c.reduced_divisor = a.reduced_divisor;
  c.reduced_none_counted = a.reduced_none_counted;
  c.grad_weight = a.grad_weight;
  return c;
}

}  // namespace

// cuda::workspace_size (core/cuda.cpp) knows this size as detail::cross_entropy_bytes.
static_assert(kMaxBlocks == detail::kCrossEntropyMaxBlocks && kStatusBytes == 256 &&
                  sizeof(Status) <= kStatusBytes,
              "core/cuda_internal.hpp's cross_entropy_bytes must describe this layout");

size_t cross_entropy_workspace_bytes(int64_t pixels) {
  return detail::cross_entropy_bytes(pixels);
}

template <class T, class L>
CrossEntropyStatus cross_entropy(const CrossEntropyArgs<T, L>& a, bool host_status) {
  const int64_t total = a.images * a.pixels;
  // Probabilities have no label pass: prepare takes N * S as the count and the divisor.
  constexpr bool kProbs = std::is_floating_point_v<L>;
  // The label codes after the layout, where the workspace holds them: the pool grows for them
  // except under capture, and a caller's workspace of workspace_size() bytes (which does not
  // count them) runs without them, with the same bits.
  const size_t codes_at = detail::align_up(cross_entropy_workspace_bytes(total));
  const size_t codes_bytes = detail::align_up(static_cast<size_t>(total));
  const bool coded = !kProbs && detail::label_codes() && a.classes <= kMaxCodedClasses &&
                     detail::workspace_holds(codes_at + codes_bytes);
  Call call(a.function, coded ? codes_at + codes_bytes : cross_entropy_workspace_bytes(total));
  uint8_t* codes = coded ? call.at<uint8_t>(codes_at) : nullptr;
  const cudaStream_t s = call.stream();
  const int blocks = blocks_for(total);  // the fused pass's grid
  // The label pass's: its own, smaller (cuda_internal.hpp cross_entropy_label_blocks), unless the
  // bench's A/B line asked for the fused pass's (a label per thread, as before 2026-12-04).
  const int label_blocks = detail::label_pass_own_grid()
                               ? static_cast<int>(detail::cross_entropy_label_blocks(total))
                               : blocks;
  const Layout w = layout(call.at<char>(detail::kHeaderBytes), blocks);
  const bool scalar = a.reduction != Reduction::none;
  const bool mean = a.reduction == Reduction::mean;
  auto* first_bad_mark = call.at<unsigned long long>(header::kFirstBad);
  // prepare and finish run in the last block of the pass before them, unless a test or the bench
  // turned that off (detail::last_block_tails: the same bits either way).
  unsigned* ticket = detail::last_block_tails() ? call.at<unsigned>(header::kTicket) : nullptr;
  const PrepareArgs<T> prep{kProbs ? 0 : label_blocks,
                            kProbs ? static_cast<long long>(total) : -1,
                            a.classes,
                            a.weight,
                            mean,
                            a.mean_over_valid,
                            a.all_ignored_nan,
                            scalar ? a.grad_out : nullptr,
                            w.label_weight,
                            w.label_count,
                            w.status,
                            a.use_reduced,
                            a.reduced_divisor,
                            a.reduced_none_counted,
                            a.grad_weight};
  if constexpr (!kProbs) {
    cuda::launch(label_pass<L, T>, label_blocks, kThreads, 0, s, a.labels, total, a.classes,
                 a.ignore_index, a.ignore_negative, a.weight, w.label_weight, w.label_count,
                 first_bad_mark, codes, ticket, prep);
    call.launched();
  }
  if (kProbs || !ticket) run_step(call, prep);
  double* partial = scalar ? w.loss_partial : nullptr;  // none: the per-pixel loss only
  const FinishArgs<T> fin{blocks,         mean,    partial,      w.status,
                          first_bad_mark, a.value, call.value(), call.flag()};
  unsigned* fused_ticket = scalar ? ticket : nullptr;
  // codes is null for probabilities: `if constexpr` only keeps their launch from compiling.
  if constexpr (!kProbs) {
    if (codes) {
      launch_fused(with_codes(a, codes), blocks, s, w.status, partial, fused_ticket, fin);
      detail::label_code_launches().fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!codes) launch_fused(a, blocks, s, w.status, partial, fused_ticket, fin);
  call.launched();
  if (scalar && !fused_ticket) run_step(call, fin);
  CrossEntropyStatus r;
  if (!host_status) return r;
  // The header (the first bad label's mark) and the status after it, in one copy.
  struct {
    unsigned char header[detail::kHeaderBytes];
    Status st;
  } host;
  static_assert(offsetof(decltype(host), st) == detail::kHeaderBytes,
                "the status follows the header");
  check(cudaMemcpyAsync(&host, call.at<char>(0), sizeof(host), cudaMemcpyDeviceToHost, s),
        a.function, "cudaMemcpyAsync of the status");
  check(cudaStreamSynchronize(s), a.function, "cudaStreamSynchronize");
  unsigned long long mark = 0;
  std::memcpy(&mark, host.header + header::kFirstBad, sizeof(mark));
  r.value = host.st.value;
  r.first_bad = mark == 0 ? -1 : static_cast<int64_t>(~mark);
  r.count = static_cast<double>(host.st.count);
  r.weight_sum = host.st.weight_sum;
  return r;
}

template <class L>
int64_t read_element(const L* data, int64_t index) {
  const cudaStream_t s = stream();
  L v{};
  check(cudaMemcpyAsync(&v, data + index, sizeof(L), cudaMemcpyDeviceToHost, s), "read_element",
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), "read_element", "cudaStreamSynchronize");
  return static_cast<int64_t>(v);
}

#define SEGLOSS_INSTANTIATE(T, L) \
  template CrossEntropyStatus cross_entropy<T, L>(const CrossEntropyArgs<T, L>&, bool);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
SEGLOSS_INSTANTIATE(float, float)
SEGLOSS_INSTANTIATE(double, double)
#undef SEGLOSS_INSTANTIATE
template int64_t read_element<int32_t>(const int32_t*, int64_t);
template int64_t read_element<int64_t>(const int64_t*, int64_t);

}  // namespace cuda
}  // namespace segloss
