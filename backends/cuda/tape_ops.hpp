// The autodiff tape's primitives on CUDA (core/tape.cpp calls them for a CUDA value; the kernels
// are in backends/cuda/tape.cu). Not installed; no CUDA header. Every function enqueues on the
// current stream and returns at once; pointers are device pointers.
//
// One device function per op, selected by a code: the forward value and the backward's local
// derivative of each op are written once (tape.cu), mirroring the CPU lambdas of core/tape.cpp
// (same formulas, same rounding steps), so CPU and CUDA agree to the math library's rounding.
// Sums (the reductions, and the gradient of a broadcast operand) run one block per output
// element: its threads add their strided elements in double, then the block's fixed tree
// (runtime.cuh's block_sum); no atomics, the same bits on every run.
#pragma once

#include <cstdint>

#include "../../core/shape.hpp"

namespace segloss {
namespace detail {

// Elementwise ops of one input; k and k2 are the op's constants (c, lo and hi, p).
enum class TapeUnary : int {
  add,          // x + k
  mul,          // x * k
  rsub,         // k - x
  rdiv,         // k / x
  neg,          // -x
  exp,          //
  log,          //
  log1p,        //
  sigmoid,      // stable, from exp(-|x|)
  log_sigmoid,  // min(x, 0) - log1p(exp(-|x|))
  softplus,     // -log_sigmoid(-x)
  clamp,        // to [k, k2]; derivative 1 on [k, k2]
  square,       // pow(x, 2) = x * x
  pow,          // x^k
  relu,         // max(x, 0), NaN passes
};
// Elementwise ops of two inputs (with broadcasting).
enum class TapeBinary : int { add, sub, mul, div };

// A row-major shape (extent) and, for two tensors read against it, their stride on each axis
// (0 where the tensor is broadcast, or where a reduction sums).
struct TapeLayout {
  int rank = 0;
  int64_t extent[Shape::kMaxRank] = {};
  int64_t stride[2][Shape::kMaxRank] = {};
};

// y = f(x) over n elements.
template <class T>
void tape_unary(TapeUnary op, const T* x, T* y, int64_t n, T k, T k2);
// gx += g * f'(x) (y = f(x)).
template <class T>
void tape_unary_grad(TapeUnary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T k, T k2);
// out[i] = f(a[ia], b[ib]) over the n elements of l (ia, ib: offsets by l.stride[0], [1]).
template <class T>
void tape_binary(TapeBinary op, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n);
// gv += dL/d(operand which) of the n outputs. full: operand `which` has the output's shape
// (elementwise); else each of its m elements sums its outputs in double (one block each).
template <class T>
void tape_binary_grad(TapeBinary op, int which, const T* a, const T* b, const T* out, const T* g,
                      T* gv, const TapeLayout& l, int64_t n, int64_t m, bool full);
// out[j] = scale * the sum (in double) of x[i] over the elements i of l with offset j by
// l.stride[0] (a row-major tensor of m elements over the axes with a nonzero stride).
template <class T>
void tape_reduce(const T* x, T* out, const TapeLayout& l, int64_t m, double scale);
// class_sum: y[n, s] = the sum (in double, in class order) of x[n, c, s] over c; one thread per
// pixel, as the CPU adds them.
template <class T>
void tape_class_sum(const T* x, T* y, int64_t n, int64_t c, int64_t s);
// gx[i] += g[offset of i by l.stride[0]] * scale over the n elements of l.
template <class T>
void tape_broadcast_grad(const T* g, T* gx, const TapeLayout& l, int64_t n, double scale);
// out[i] = mask[im] != 0 ? a[i] : b[i] (im: the offset by l.stride[0]).
template <class T>
void tape_where(const T* mask, const T* a, const T* b, T* out, const TapeLayout& l, int64_t n);
// gv[i] += g[i] where (mask[im] != 0) == taken.
template <class T>
void tape_where_grad(const T* mask, const T* g, T* gv, bool taken, const TapeLayout& l, int64_t n);
// softmax (or log_softmax) over the class axis of (n, c, s): one thread per pixel.
template <class T>
void tape_softmax(bool log, const T* x, T* y, int64_t n, int64_t c, int64_t s);
template <class T>
void tape_softmax_grad(bool log, const T* y, const T* g, T* gx, int64_t n, int64_t c, int64_t s);

}  // namespace detail
}  // namespace segloss
