// CUDA kernels of cross_entropy with label targets (losses/cross_entropy.hpp has the contract and
// the math; docs/cuda.md the launch plan). Host-side declarations only: no CUDA header, so the
// host compiler can include it from losses/cross_entropy.cpp.
//
// Every pointer below is a device pointer. The call only enqueues work on `stream` (a
// cudaStream_t, null for the default stream): nothing is synchronized and nothing is allocated.
// The work is four kernels: the label pass (validation, the mean's divisor), a one-block prepare
// (the divisor's combine, W = sum_c w_c, the gradient's scale), the fused pass (value and
// gradient of every pixel, one partial sum per block) and a one-block finish (the partials
// combined in a fixed order). The reductions never use float atomics: the result is bitwise the
// same from run to run.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../core/reduction.hpp"

namespace segloss {
namespace cuda {

template <class T, class L>
struct CrossEntropyArgs {
  const T* x = nullptr;                         // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;  // N, C, S
  const L* labels = nullptr;                    // (N, S)
  int64_t ignore_index = -100;
  bool ignore_negative = false;
  const T* weight = nullptr;  // C class weights, or null
  double eps = 0.0;           // label smoothing
  Reduction reduction = Reduction::mean;
  bool mean_over_valid = false;  // MeanOver::valid_pixels
  bool all_ignored_nan = false;  // AllIgnored::nan
  T* loss = nullptr;             // if set: the per-pixel loss (N, S) (reduction none)
  T* value = nullptr;            // if set: the reduced value, one element (mean or sum)
  T* grad = nullptr;             // if set: the gradient (N, C, S)
  const T* grad_out = nullptr;   // none: (N, S); mean/sum: one element; null: 1
};

// The workspace the call needs, in bytes (a few tens of KB, fixed by nothing but a constant
// bound on the grid; 256-byte aligned pointer expected).
size_t cross_entropy_workspace_bytes();

// Enqueues the passes. `workspace` holds cross_entropy_workspace_bytes() bytes and must not be
// used by another call until this one's status has been read (or the stream has moved on).
template <class T, class L>
void cross_entropy(const CrossEntropyArgs<T, L>& a, void* workspace, void* stream);

// What the host reads back after the call: the reduced value (mean or sum, in double, before the
// cast to T) and the first pixel (linear index into the labels) whose label is outside [0, C)
// and not ignored, or -1. Synchronizes the stream.
struct CrossEntropyStatus {
  double value = 0.0;
  int64_t first_bad = -1;
};
CrossEntropyStatus cross_entropy_status(const void* workspace, void* stream);

// The device pointer to the status's first_bad (an unsigned 64-bit integer, all ones when every
// label is good): for callers that keep the result on the device and check later.
const void* cross_entropy_error_flag(const void* workspace);

}  // namespace cuda
}  // namespace segloss
