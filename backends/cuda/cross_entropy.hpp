// CUDA kernels of cross_entropy with label targets (L = int32_t, int64_t) or probability targets
// (L = T) (losses/cross_entropy.hpp has the contract and the math; docs/cuda.md the launch plan).
// Host-side declarations only: no CUDA header, so losses/cross_entropy.cpp can include them.
//
// Every pointer in the arguments is a device pointer. The work runs on the current stream
// (cuda::StreamScope) in the call's workspace (the pool, or cuda::WorkspaceScope; its size is
// cross_entropy_workspace_bytes()), as four kernels: the label pass (validation, the mean's
// divisor; not run for probabilities, whose divisor is N * S), a one-block prepare (the divisor's
// combine, W = sum_c w_c, the gradient's scale), the fused pass (value and gradient of every pixel,
// one partial sum per block) and a one-block finish (the partials combined in a fixed order). No
// float atomics: the result is bitwise the same from run to run. Nothing waits for the device
// unless the caller asks for a host value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../core/reduction.hpp"

namespace segloss {
namespace cuda {

// cross_entropy.cu's with_codes copies every field (a new field goes there too).
template <class T, class L>
struct CrossEntropyArgs {
  const char* function = "cross_entropy";       // names the call in error messages
  const T* x = nullptr;                         // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;  // N, C, S
  const L* labels = nullptr;                    // (N, S), with L an integer type
  const T* probs = nullptr;                     // (N, C, S), with L = T (no labels)
  int64_t ignore_index = -100;                  // labels only
  bool ignore_negative = false;                 // labels only
  const T* weight = nullptr;                    // C class weights, or null
  double eps = 0.0;                             // label smoothing
  Reduction reduction = Reduction::mean;
  bool mean_over_valid = false;  // MeanOver::valid_pixels (labels only)
  bool all_ignored_nan = false;  // AllIgnored::nan (labels only: every probability pixel counts)
  T* loss = nullptr;             // if set: the per-pixel loss (N, S) (reduction none)
  T* value = nullptr;            // if set: the reduced value, one element (mean or sum)
  T* grad = nullptr;             // if set: the gradient (N, C, S)
  const T* grad_out = nullptr;   // none: (N, S); mean/sum: one element; null: 1
  // The split's finalize (cross_entropy_finalize): the mean's divisor and the count of counted
  // pixels summed over every shard, which prepare takes in place of this call's own (a kernel
  // argument: nothing is copied or waited for): used when use_reduced, no pixel counted in the
  // batch when reduced_none_counted.
  bool use_reduced = false;
  double reduced_divisor = 0.0;
  bool reduced_none_counted = false;
  // A factor of the gradient's scale for mean and sum (ce_dice's cross-entropy weight on CUDA,
  // losses/combined.cpp): prepare multiplies the scale by it; 1 leaves the scale's bits as they
  // are.
  double grad_weight = 1.0;
};

// A pixel whose label is outside [0, C) and not ignored gets a NaN loss and a NaN gradient (so a
// reduced value is NaN), and sets the call's error flag: the smallest such linear index.
struct CrossEntropyStatus {
  double value = 0.0;       // the reduced value in double (mean or sum), when read back
  int64_t first_bad = -1;   // the first bad label's linear index, or -1
  double count = 0.0;       // the counted pixels (N * S for probabilities), when read back
  double weight_sum = 0.0;  // the sum of their class weights (N * S for probabilities), likewise
};

// The workspace bytes of one call over `pixels` pixels (N * S): detail::cross_entropy_bytes.
size_t cross_entropy_workspace_bytes(int64_t pixels);

// Enqueues the passes. With host_status, copies the value and the error flag back and waits
// for the stream; otherwise returns at once (status fields left at their defaults).
template <class T, class L>
CrossEntropyStatus cross_entropy(const CrossEntropyArgs<T, L>& a, bool host_status);

// One element of a device array, copied back (waits for the stream): the offending label of an
// error message.
template <class L>
int64_t read_element(const L* data, int64_t index);

}  // namespace cuda
}  // namespace segloss
