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
#include <vector>

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
// The ops whose gradient is masked, as PyTorch's: clamp and relu pass nothing back where their
// derivative is 0 (not 0 times what came from above, which may be inf), and pow(., 0) nothing
// at all. pow(., k) for other k multiplies, as PyTorch's does (0 inf = NaN at x = 0, k > 1).
constexpr bool tape_unary_masks(TapeUnary op, double k) {
  return op == TapeUnary::clamp || op == TapeUnary::relu || (op == TapeUnary::pow && k == 0.0);
}

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

// ---- The group primitives (core/tape.hpp, "Groups"). `offsets` are the host's G + 1 group
// boundaries: each call copies them into its Call workspace (runtime.cuh) on the stream. Sums
// run in double in the CPU's order (one thread per group), so CPU and CUDA give the same bits.

// sort_desc: per group (one block each) the stable radix sort of radix_sort.cuh on a key of
// sort_desc's order; perm the flat indices, y[k] = x[perm[k]].
template <class T>
void tape_sort_desc(const T* x, T* y, int64_t* perm, const std::vector<int64_t>& offsets);
// gx[perm[k]] += g[k] over the n elements (a permutation: no two threads write one element).
template <class T>
void tape_permute_grad(const int64_t* perm, const T* g, T* gx, int64_t n);

enum class TapeGroup : int { cumsum, adjacent_diff, segment_sum };
// Forward (y is the output) or backward (x is the incoming gradient g, y the input's gradient,
// added into): cumsum: y = the running sum per group / y += the reverse running sum;
// adjacent_diff: y = x[i] - x[i-1] / y += g[i] - g[i+1]; segment_sum: y[j] = the group's sum /
// y[i] += g[group of i].
template <class T>
void tape_group_op(TapeGroup op, const T* x, T* y, const std::vector<int64_t>& offsets,
                   bool backward);

// gather: y[i] = x[index[i]] over n indices (checked by the caller). A host index is copied
// into the call's workspace; a device index is read in place.
template <class T>
void tape_gather(const T* x, const int64_t* index, bool index_on_device, T* y, int64_t n);
// gather's backward without atomics: gx[a] += T(sum in double of g[order[k]] for k in
// [start[a], start[a+1])), the positions that gathered element a in increasing order (built on
// the host from the index, copied into the call's workspace).
template <class T>
void tape_gather_grad(const T* g, T* gx, const std::vector<int64_t>& start,
                      const std::vector<int64_t>& order);

// one_hot of a device label map (n, s) into out (n, c, s); returns the flat index of the first
// label outside [0, c) that is not `ignore` (and its value in *bad_value), or -1: this reads
// the error key back, so the call waits for the stream.
template <class T, class L>
int64_t tape_one_hot(const L* labels, T* out, int64_t n, int64_t c, int64_t s, int64_t ignore,
                     int64_t* bad_value);
// valid_mask: out[i] = labels[i] == ignore ? 0 : 1 over count labels; no wait.
template <class T, class L>
void tape_valid_mask(const L* labels, T* out, int64_t count, int64_t ignore);

}  // namespace detail
}  // namespace segloss
