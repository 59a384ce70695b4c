// segloss::cuda: what a caller controls of the CUDA backend (docs/cuda.md has the whole story).
//
// This header does not include cuda_runtime.h: a stream is passed as void* (a cudaStream_t is a
// pointer type), so programs built without the CUDA toolkit include it too. In a build without
// the CUDA backend built() and available() are false, the scopes are accepted and do nothing,
// and a CUDA tensor is rejected by every function that receives one.
//
// Streams. Every CUDA call of segloss enqueues its kernels on the calling thread's current
// stream: the one of the innermost StreamScope alive on the thread, else the legacy default
// stream (nullptr). Nothing synchronizes, except a call that returns a host value (a double,
// or a host tensor), which waits for its own stream only, and a call that grows the pool below
// (the first of its size on a stream), which waits for that stream before it frees the smaller
// buffer. Tensor::to, copy_from and full on CUDA return once their copy or fill is done.
//
// Workspace. A call needs a small device workspace (block partials of its reductions, its
// per-plane sums, the result slot and the error flag). By default it comes from a pool cached
// per device and per stream: it grows when a call needs more and is reused by every later call
// on that stream, so no cudaMalloc happens per call after the first (pool_bytes() shows the
// pool's size). Calls on one stream from several threads are serialized while they enqueue.
// A caller who manages memory itself gives a buffer with WorkspaceScope instead; then segloss
// takes no workspace from the pool, and a buffer smaller than the call needs is an error that
// names the size (workspace_size() computes it beforehand). The scope does not cover the scratch
// buffer (docs/cuda.md "Data types"): the 16-bit losses' float copies and the
// in-place ce_dice / dice_focal copy still come from the pool's scratch entry, which grows once.
// Two uses of the workspace are optional: the sigmoid overlap losses (soft_dice, Jaccard, Tversky,
// bce_dice) on float inputs keep their targets as bits between their two passes (about 1/8 byte per
// element, docs/cuda.md "Binary targets as bits"), and cross_entropy with labels and C <= 254 keeps
// a byte per pixel of its labels between its two passes (docs/cuda.md "Label codes"), where the
// workspace holds them: the pool grows for them outside graph capture, and a caller's buffer of
// workspace_size() bytes, which does not count them, runs without them where they do not fit, with
// the same results.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shape.hpp"

namespace segloss {
namespace cuda {

// Whether this build has the CUDA backend (nvcc was found at configure time, or the build is
// the emulator's).
bool built();

// Whether the CUDA backend of this build is the CPU emulator (SEGLOSS_CUDA=EMULATE, a test
// build: the kernels run on the CPU, one fiber per CUDA thread; docs/cuda.md "The emulator").
// Then available() is true without a GPU, and nothing is fast.
bool emulated();

// Whether a CUDA device can be used: the backend is built and the runtime sees at least one
// GPU. The answer is computed once and cached.
bool available();

// The current stream of the calling thread (nullptr: the default stream).
void* current_stream();

// Makes `stream` (a cudaStream_t) the calling thread's current stream for the scope's lifetime.
// Scopes nest; the destructor restores the previous stream.
class StreamScope {
 public:
  explicit StreamScope(void* stream);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  void* previous_;
};

// Gives segloss a caller-owned device buffer of `bytes` bytes as the workspace of every CUDA
// call made on this thread during the scope (instead of the cached pool). The buffer must be on
// the current device, stay alive, and not be used by anything else while the calls' kernels
// run; calls on different streams must not share one buffer at the same time. Any alignment
// is accepted (segloss aligns inside it). Scopes nest.
class WorkspaceScope {
 public:
  WorkspaceScope(void* data, size_t bytes);
  ~WorkspaceScope();
  WorkspaceScope(const WorkspaceScope&) = delete;
  WorkspaceScope& operator=(const WorkspaceScope&) = delete;

 private:
  void* previous_data_;
  size_t previous_bytes_;
};

// The workspace (bytes) that one call needs for an input of shape (N, C, spatial...) whose
// reductions sum `stats` values per plane (image and channel): bce_with_logits 1, soft_dice 3,
// bce_dice 4. The default, 4, is enough for every loss of the backend so far.
size_t workspace_size(const Shape& input, int stats = 4);

// The workspace (bytes) of boundary_weights on a mask of this shape ((N, C, H, W) or
// (N, C, D, H, W)). Not covered by workspace_size(): the box sums keep a double per element
// (two per element for volumes), far more than any loss needs. A caller's WorkspaceScope for a
// boundary_weights call must hold this much; the pool grows to it on the first call.
size_t boundary_weights_workspace_size(const Shape& mask);

// The workspace (bytes) of lovasz_hinge and lovasz_softmax on CUDA for logits of shape
// (N, C, spatial...), float or double: they sort every problem's errors at once in the
// workspace, 24 (float) or 32 (double) bytes per element of the logits, plus 16 per pixel (N times
// the spatial size) and a little per (image, class). workspace_size() does not include it (it
// stays a few kilobytes for the other losses): a WorkspaceScope for the Lovász losses must hold
// this much.
size_t lovasz_workspace_size(const Shape& input);

// The workspace (bytes) of distance_transform on a CUDA mask of shape (N, C, spatial...): a
// byte per element (the flags) and 32 bytes per element of one plane (the EDT's scratch, reused
// plane after plane), plus the header. workspace_size() does not include it: a WorkspaceScope
// for a distance_transform call must hold this much.
size_t distance_transform_workspace_size(const Shape& mask);

// The workspace (bytes) of surface_distance on CUDA masks of shape (N, C, spatial...), and of
// surface_distance_labels on CUDA label maps of shape (N, spatial...) scoring `classes` classes:
// a byte per element of every (image, class) pair and about 41 bytes per element of one pair
// (its borders, squared distances and the envelope's scratch, reused pair after pair), plus the
// header. workspace_size() does not include them: a WorkspaceScope for these metrics must hold
// this much.
size_t surface_distance_workspace_size(const Shape& masks);
size_t surface_distance_labels_workspace_size(const Shape& labels, int64_t classes);

// Bytes held by the cached workspace pool on every device and stream (0 before the first
// call), with the 16-bit path's scratch buffers (one per device and stream, for the float copies
// of losses/half_logits.hpp). It stays constant once the calls of a training step have all run
// once. It includes the buffers retired for CUDA graphs (below).
//
// CUDA graphs: a call captured into a graph (cudaStreamBeginCapture ... EndCapture) uses the
// pool's buffer of its stream, and the graph keeps that address. Run each captured call once at
// its largest shape before the capture (warm-up): a call under capture that would grow the pool
// raises (a capture cannot allocate) with a message saying so. A buffer leased under capture is
// retired, not freed, when a later, larger call on that stream grows the pool, so the graph
// stays valid; release_pool() frees everything, after which graphs captured before it must not
// be launched again.
size_t pool_bytes();

// Frees the pool's buffers (after synchronizing their devices), the retired ones too. Later
// calls allocate again; graphs captured before the release hold freed addresses.
void release_pool();

}  // namespace cuda
}  // namespace segloss
