// The CUDA backend's runtime: device memory for Tensor, availability, the workspace pool, the
// Call and the combine stage of the reductions (runtime.cuh).
#include "runtime.cuh"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../../core/tensor.hpp"
#include "scratch.hpp"

namespace segloss {
namespace cuda {

void check(cudaError_t e, const char* function, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear it, so that a later launch check does not report it again
  const std::string m = segloss::detail::message(function, what, " failed: ", cudaGetErrorName(e),
                                                 ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) throw OutOfMemory(m);  // core/error.hpp
  throw Error(m);
}

bool available() {
  static const bool present = [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      return false;
    }
    return count > 0;
  }();
  return present;
}

namespace {

// The pool: one growing buffer per (device, stream) and kind (the calls' workspace, or the
// scratch of scratch.hpp), each with the mutex that serializes the calls enqueueing on it.
enum PoolKind : int { kWorkspace = 0, kScratch = 1 };
// A buffer that a stream under capture used may be baked into a CUDA graph: when a larger call
// outgrows it, it is retired (kept, not freed) so that the graph stays valid; release_pool()
// frees the retired buffers with the others.
struct PoolEntry {
  std::mutex mutex;
  void* data = nullptr;
  size_t bytes = 0;
  bool captured = false;  // `data` was leased by a call under graph capture
  std::vector<std::pair<void*, size_t>> retired;

  size_t held() const {
    size_t total = bytes;
    for (const auto& r : retired) total += r.second;
    return total;
  }
  // Frees every buffer; the caller synchronized the streams that may still use them.
  // A failed cudaFree is not reported, nor left pending for the next call to find.
  void free_all() {
    if (data && cudaFree(data) != cudaSuccess) cudaGetLastError();
    for (const auto& r : retired)
      if (cudaFree(r.first) != cudaSuccess) cudaGetLastError();
    data = nullptr;
    bytes = 0;
    captured = false;
    retired.clear();
  }
};

// An entry's key: the device and the stream handle, and for cudaStreamPerThread the thread too
// (that one handle names a different stream on every thread: sharing its buffer would let one
// thread's call overwrite the workspace another thread's kernels still read).
struct PoolKey {
  int device;
  cudaStream_t stream;
  std::thread::id thread;
  int kind;
  bool operator<(const PoolKey& o) const {
    return std::tie(device, stream, thread, kind) < std::tie(o.device, o.stream, o.thread, o.kind);
  }
};

struct Pool {
  std::mutex mutex;  // guards `entries` (not the buffers)
  std::map<PoolKey, std::unique_ptr<PoolEntry>> entries;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: calls may run during static destruction
  return *p;
}

// A thread's entries for its per-thread stream are freed when the thread exits (its
// thread_local PerThreadGuard is destroyed while the thread, and so its per-thread stream,
// still exists): the thread's stream is synchronized first, then the buffers are freed. Linux
// reuses a dead thread's std::thread::id, so without this a new thread would share the buffer
// that the old thread's stream might still be reading; with it the new thread finds the entry
// empty and allocates its own.
struct PerThreadEntries {
  std::vector<std::pair<int, PoolEntry*>> entries;  // (device, entry)
};

// The thread's list lives on the heap behind trivially destructible thread_locals: a call made
// from a thread_local or static destructor after the guard below has run (a loss in a user's
// destructor, on the per-thread stream) must not touch a destroyed list; it finds `gone` set and
// leaves its entry to the process's exit.
thread_local PerThreadEntries* t_entries = nullptr;
thread_local bool t_gone = false;

struct PerThreadGuard {
  ~PerThreadGuard() {
    PerThreadEntries* mine = t_entries;
    t_entries = nullptr;
    t_gone = true;
    if (!mine) return;
    int current = 0;
    if (cudaGetDevice(&current) == cudaSuccess) {
      for (auto& [device, e] : mine->entries) {
        std::lock_guard<std::mutex> ge(e->mutex);
        if (!e->data && e->retired.empty()) continue;
        cudaSetDevice(device);
        cudaStreamSynchronize(cudaStreamPerThread);
        e->free_all();
      }
      cudaSetDevice(current);
    }
    cudaGetLastError();  // errors here (a runtime shutting down) are not reported
    delete mine;
  }
};

PoolEntry& pool_entry(int device, cudaStream_t s, int kind) {
  Pool& p = pool();
  std::unique_lock<std::mutex> g(p.mutex);
  const bool per_thread = s == cudaStreamPerThread;
  const PoolKey key{device, s, per_thread ? std::this_thread::get_id() : std::thread::id(), kind};
  auto& e = p.entries[key];
  if (!e) e = std::make_unique<PoolEntry>();
  PoolEntry* entry = e.get();
  g.unlock();
  if (per_thread && !t_gone) {  // once per entry and thread (a reused id's entry registers again)
    if (!t_entries) {
      thread_local PerThreadGuard guard;  // constructed once, before the list: destroyed after
      t_entries = new PerThreadEntries;
    }
    bool known = false;
    for (auto& [d, k] : t_entries->entries) known = known || k == entry;
    if (!known) t_entries->entries.emplace_back(device, entry);
  }
  return *entry;
}

// Whether s is being captured into a CUDA graph (an invalidated capture counts: it is still
// open). A query that fails (the legacy stream beside a capture) says no: the call's own
// operations then fail with the capture's error.
bool capturing(cudaStream_t s) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &st) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return st != cudaStreamCaptureStatusNone;
}

// The buffer of this device's entry of `kind` for stream s, grown to `bytes` at least, with its
// mutex held by `lock` when this returns. Under graph capture the buffer cannot grow (a capture
// may not allocate or wait): that is an error naming the warm-up; a buffer leased under capture
// is marked, and retired instead of freed when it later grows (the graph holds its address).
void* lease(const char* function, cudaStream_t s, int kind, size_t bytes,
            std::unique_lock<std::mutex>& lock) {
  int device = 0;
  check(cudaGetDevice(&device), function, "cudaGetDevice");
  PoolEntry& e = pool_entry(device, s, kind);
  lock = std::unique_lock<std::mutex>(e.mutex);
  const bool in_capture = capturing(s);
  if (e.bytes < bytes) {
    SEGLOSS_CHECK(!in_capture, function, "the stream is being captured into a CUDA graph and the ",
                  kind == kWorkspace ? "workspace" : "scratch buffer", " cached for it holds ",
                  e.bytes, " bytes but this call needs ", bytes,
                  " (a capture cannot allocate): run the call once at this size before the "
                  "capture (warm-up)",
                  kind == kWorkspace ? ", or give a workspace (cuda::WorkspaceScope)" : "");
    if (e.data && e.captured) {  // a graph may still use it: kept until release_pool()
      e.retired.emplace_back(e.data, e.bytes);
    } else if (e.data) {  // kernels queued earlier on this stream may still read the old buffer
      check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
      check(cudaFree(e.data), function,
            kind == kWorkspace ? "cudaFree of the workspace" : "cudaFree of the scratch buffer");
    }
    e.data = nullptr;
    e.bytes = 0;
    e.captured = false;
    check(cudaMalloc(&e.data, bytes), function,
          kind == kWorkspace ? "cudaMalloc of the workspace" : "cudaMalloc of the scratch buffer");
    e.bytes = bytes;
  }
  if (in_capture) e.captured = true;
  return e.data;
}

__global__ void combine_kernel(const double* partials, int64_t parts, int k, double* out) {
  combine_block(partials, parts, k, out);
}

}  // namespace

// The entries and their devices, copied under the pool's mutex, which is released before any
// entry's mutex is taken: a 16-bit call holds its scratch entry's mutex while its inner call
// takes the pool's mutex (pool_entry), so holding the pool's mutex while waiting for an entry's
// would deadlock with it. Entries are never erased: the pointers stay valid.
std::vector<std::pair<int, PoolEntry*>> pool_entries() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mutex);
  std::vector<std::pair<int, PoolEntry*>> out;
  out.reserve(p.entries.size());
  for (auto& [key, e] : p.entries) out.emplace_back(key.device, e.get());
  return out;
}

size_t pool_bytes() {
  size_t total = 0;
  for (auto& [device, e] : pool_entries()) {
    std::lock_guard<std::mutex> ge(e->mutex);
    total += e->held();
  }
  return total;
}

void release_pool() {
  int current = 0;
  cudaGetDevice(&current);
  for (auto& [device, e] : pool_entries()) {
    std::lock_guard<std::mutex> ge(e->mutex);
    if (!e->data && e->retired.empty()) continue;
    cudaSetDevice(device);
    // The whole device, not the entry's stream: that stream may have been destroyed since (a
    // stale handle is undefined behaviour), or be another thread's per-thread stream.
    cudaDeviceSynchronize();
    e->free_all();
  }
  cudaSetDevice(current);
  cudaGetLastError();  // errors here are not reported, nor left for the next call to find
}

namespace {

// The caller's workspace (ts.workspace, not null): its first kAlign-aligned byte, and the bytes
// from there.
std::pair<char*, size_t> usable_workspace(const detail::ThreadState& ts) {
  const auto start = reinterpret_cast<uintptr_t>(ts.workspace);
  const uintptr_t aligned = (start + detail::kAlign - 1) / detail::kAlign * detail::kAlign;
  const size_t usable =
      ts.workspace_bytes > aligned - start ? ts.workspace_bytes - (aligned - start) : 0;
  return {reinterpret_cast<char*>(aligned), usable};
}

}  // namespace

Call::Call(const char* function, size_t bytes) : function_(function), stream_(thread_stream()) {
  segloss::detail::device_take_pending(function);  // before anything is enqueued
  const detail::ThreadState& ts = detail::thread_state();
  if (ts.workspace) {
    const auto [aligned, usable] = usable_workspace(ts);
    SEGLOSS_CHECK(usable >= bytes, function, "the caller's workspace holds ", ts.workspace_bytes,
                  " bytes but this call needs ", bytes + detail::kAlign,
                  " (core/cuda.hpp: cuda::workspace_size, or the size query of this "
                  "function's own workspace where it has one)");
    base_ = aligned;
  } else {
    base_ = static_cast<char*>(lease(function, stream_, kWorkspace, bytes, lock_));
  }
  check(cudaMemsetAsync(base_, 0, detail::kHeaderBytes, stream_), function, "cudaMemsetAsync");
}

void Call::launched() const {
  check(cudaGetLastError(), function_, "a kernel launch");
}

double Call::host_value(const char* flag_message) {
  struct {
    double value;
    int flag;
  } header;
  check(cudaMemcpyAsync(&header, base_, sizeof(header), cudaMemcpyDeviceToHost, stream_), function_,
        "cudaMemcpyAsync of the result");
  check(cudaStreamSynchronize(stream_), function_, "cudaStreamSynchronize");
  SEGLOSS_CHECK(header.flag == 0, function_, flag_message);
  return header.value;
}

namespace detail {

ScratchLease::ScratchLease(const char* function, size_t bytes) {
  data_ = static_cast<char*>(lease(function, thread_stream(), kScratch, bytes, lock_));
}

void reserve_workspace(const char* function, size_t bytes) {
  const ThreadState& ts = thread_state();
  if (ts.workspace) {  // a caller's buffer: Call's check, before any term enqueues
    const size_t usable = usable_workspace(ts).second;
    SEGLOSS_CHECK(usable + kAlign >= bytes, function, "the caller's workspace holds ",
                  ts.workspace_bytes, " bytes but this call needs ", bytes,
                  " (core/cuda.hpp: cuda::workspace_size)");
    return;
  }
  std::unique_lock<std::mutex> lock;
  lease(function, thread_stream(), kWorkspace, bytes, lock);
}

bool workspace_holds(size_t bytes) {
  const ThreadState& ts = thread_state();
  if (ts.workspace) return usable_workspace(ts).second >= bytes;
  const cudaStream_t s = thread_stream();
  if (!capturing(s)) return true;  // the pool may grow
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  PoolEntry& e = pool_entry(device, s, kWorkspace);
  std::lock_guard<std::mutex> g(e.mutex);
  return e.bytes >= bytes;
}

void copy_on_stream(const char* function, void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, thread_stream()), function,
        "cudaMemcpyAsync of the gradient");
}

}  // namespace detail

void combine(const Call& call, const double* partials, int64_t groups, int64_t parts, int k,
             double* out) {
  if (groups * k == 0) return;
  cuda::launch(combine_kernel, grid_of(call, groups * k, "the combine"), kThreads, 0, call.stream(),
               partials, parts, k, out);
  call.launched();
}

}  // namespace cuda

namespace detail {

void device_take_pending(const char* function) {
  const cudaError_t pending = cudaGetLastError();
  if (pending != cudaSuccess)
    fail(function,
         "a CUDA error was pending on this thread before the call (from earlier work, left "
         "unchecked): ",
         cudaGetErrorName(pending), ": ", cudaGetErrorString(pending));
}

void* device_alloc(size_t bytes, const char* function) {
  void* p = nullptr;
  cuda::check(cudaMalloc(&p, bytes > 0 ? bytes : 1), function, "cudaMalloc");
  return p;
}

void device_free(void* data) noexcept {
  // A failed cudaFree (during a stream capture, or after a kernel fault) cannot be reported from
  // a destructor; clear its error, so that the next segloss call's launch check does not raise
  // it as that call's own failure. (A sticky error stays, and the next call reports it.)
  if (data && cudaFree(data) != cudaSuccess) cudaGetLastError();
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                 const char* function) {
  const cudaMemcpyKind kind =
      dst_device == Device::cuda
          ? (src_device == Device::cuda ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
          : (src_device == Device::cuda ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  device_take_pending(function);
  const cudaStream_t s = cuda::thread_stream();
  cuda::check(cudaMemcpyAsync(dst, src, bytes, kind, s), function, "cudaMemcpyAsync");
  cuda::check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
}

namespace {
template <class W>
__global__ void fill_kernel(W* dst, W value, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dst[i] = value;
}
template <class W>
void fill_words(void* dst, const void* value, size_t count, cudaStream_t s) {
  W w;
  std::memcpy(&w, value, sizeof(W));
  cuda::launch(fill_kernel<W>, cuda::grid_blocks(static_cast<int64_t>(count)), cuda::kThreads, 0, s,
               static_cast<W*>(dst), w, static_cast<int64_t>(count));
}
}  // namespace

void device_fill(void* dst, const void* value, size_t element_bytes, size_t count,
                 const char* function) {
  if (count == 0) return;
  device_take_pending(function);
  const cudaStream_t s = cuda::thread_stream();
  const auto* bytes = static_cast<const unsigned char*>(value);
  bool zero = true;
  for (size_t i = 0; i < element_bytes; ++i) zero = zero && bytes[i] == 0;
  if (zero) {  // zeros (+0.0 too): a memset
    cuda::check(cudaMemsetAsync(dst, 0, count * element_bytes, s), function, "cudaMemsetAsync");
  } else {
    switch (element_bytes) {
      case 2:
        fill_words<uint16_t>(dst, value, count, s);
        break;
      case 4:
        fill_words<uint32_t>(dst, value, count, s);
        break;
      case 8:
        fill_words<uint64_t>(dst, value, count, s);
        break;
      default:
        fail(function, "internal: an element of ", element_bytes, " bytes");
    }
    cuda::check(cudaGetLastError(), function, "the fill kernel's launch");
  }
  cuda::check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
}

}  // namespace detail
}  // namespace segloss
