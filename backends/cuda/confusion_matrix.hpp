// CUDA kernels of ConfusionMatrix (metrics/confusion_matrix.hpp has the contract). Host-side
// declarations only: no CUDA header, so metrics/confusion_matrix.cpp can include it.
//
// The label maps and logits are device pointers; `hist` is the host's int64 C x C matrix. A call
// runs on the current stream (cuda::StreamScope) and counts into a device histogram in the call's
// workspace (the pool, or cuda::WorkspaceScope), copies the C * C counts back, synchronizes
// the stream and, when no label was bad, adds them into `hist` (on an error `hist` is left
// unchanged, as on the CPU). Each block counts into its own histogram in shared memory (32-bit
// integer atomics, one per group of equal cells in a warp) and adds it to the device histogram
// with 64-bit integer atomics: integer sums, so the counts are exact and the same in any order.
// A bad label is reported through a flag in the workspace (the smallest offending index, by an
// integer atomicMin), never a device assert.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../cpu/confusion_matrix.hpp"

namespace segloss {
namespace cuda {

// The workspace a call needs for C classes, in bytes: the C * C device counts and the flag.
size_t confusion_workspace_bytes(int64_t classes);

// As cpu::confusion_from_labels, over `count` pixels of two device label maps. `function` names
// the call in the messages of CUDA errors.
template <class P, class L>
cpu::HistResult confusion_from_labels(const char* function, const P* pred, const L* truth,
                                      int64_t count, const cpu::HistRule& rule, int64_t* hist);

// As cpu::confusion_from_logits: the prediction is the argmax over the class axis of the device
// logits (images, C, pixels), read in the same pass (no argmax map is made).
template <class T, class L>
cpu::HistResult confusion_from_logits(const char* function, const T* logits, const L* truth,
                                      int64_t images, int64_t pixels, const cpu::HistRule& rule,
                                      int64_t* hist);

}  // namespace cuda
}  // namespace segloss
