// A lease on the current stream's cached scratch buffer (not installed; no CUDA header, so host
// code such as losses/half_logits.cpp can include it). The scratch holds a call's temporaries
// that are not the kernels' workspace: the 16-bit path's float copies. Like the workspace pool
// (runtime.cu), it is one growing buffer per (device, stream), reused by every later call on that
// stream, so nothing is allocated after the first call of the largest size, and nothing waits for
// a cudaFree. The lease holds the entry's mutex: a call on the same stream from another thread
// waits for the lease to end, and its kernels then follow on the stream, after every kernel that
// read the buffer. It is a separate buffer from the workspace: the call that runs inside the
// lease takes its own workspace. Growing the buffer waits for the stream (the kernels of earlier
// calls may still read it) before freeing it. cuda::pool_bytes() counts it and
// cuda::release_pool() frees it. A caller's WorkspaceScope does not cover it.
#pragma once

#include <cstddef>
#include <mutex>

namespace segloss {
namespace cuda {
namespace detail {

class ScratchLease {
 public:
  // At least `bytes` bytes (256-byte aligned), on the current stream's scratch buffer.
  ScratchLease(const char* function, size_t bytes);
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  char* data() const { return data_; }

 private:
  std::unique_lock<std::mutex> lock_;
  char* data_ = nullptr;
};

// Makes the current stream's workspace hold `bytes` (growing the pool now; with a caller's
// WorkspaceScope, checks its size) before a call made of several calls enqueues anything: the
// combined losses' device forms reserve cuda::workspace_size(shape) (which covers both terms),
// so that under graph capture a pool too small for the second term raises before the first
// term is recorded, not after (a half-recorded step).
void reserve_workspace(const char* function, size_t bytes);

// dst[0, bytes) = src[0, bytes), two device buffers, enqueued on the current stream (a
// device-to-device cudaMemcpyAsync: no wait, no allocation). ce_dice and dice_focal's
// device-value value_and_grad run exactly in place (grad the logits) through a scratch lease and
// copy the gradient out with it (losses/combined.cpp); the copy is enqueued before the lease
// ends, and the next user of the buffer follows it on the stream.
void copy_on_stream(const char* function, void* dst, const void* src, size_t bytes);

}  // namespace detail
}  // namespace cuda
}  // namespace segloss
