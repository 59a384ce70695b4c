// The CUDA emulator (cuda_runtime.h in this directory says what it is and what it cannot show):
// the fiber scheduler that runs a launch's blocks, and the runtime API on host memory.
#include "cuda_runtime.h"

#include <sys/mman.h>
#include <ucontext.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <unordered_map>
#include <thread>
#include <vector>

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim{1, 1, 1};
thread_local dim3 gridDim{1, 1, 1};

namespace segloss_emu {
namespace {

[[noreturn]] void die(const char* what, const char* detail) {
  std::fprintf(stderr, "segloss CUDA emulator: %s%s%s\n", what, detail[0] ? ": " : "", detail);
  std::fflush(stderr);
  std::abort();
}

// ---- device memory: the live blocks, and the freed ones held back ----
// cudaFree poisons a block (0xfd bytes) and keeps it instead of releasing it, up to
// kQuarantineBytes (the oldest are released first), so that its addresses are not reused while
// held: a memset, a copy or a kernel's pointer argument that touches one (check_not_freed) is a
// use after free, which stops the program with a message instead of silently working on memory
// that a GPU would have unmapped or handed to another allocation.
constexpr size_t kQuarantineBytes = size_t{64} << 20;
struct Memory {
  std::mutex mutex;
  std::map<uintptr_t, size_t> live;   // start -> bytes (at least 1)
  std::map<uintptr_t, size_t> freed;  // held back: start -> bytes
  std::deque<uintptr_t> order;        // the held blocks, oldest first
  size_t freed_bytes = 0;
};
// Under AddressSanitizer a held block is also poisoned, so that a kernel reading it through a
// pointer that check_not_freed does not see (one inside an argument struct) is reported as a
// use after poison, as a freed block was before the blocks were held back.
#if defined(__SANITIZE_ADDRESS__)
#define SEGLOSS_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEGLOSS_EMU_ASAN 1
#endif
#endif
void poison(void* p, size_t bytes) {
#if defined(SEGLOSS_EMU_ASAN)
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}
void unpoison(void* p, size_t bytes) {
#if defined(SEGLOSS_EMU_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

Memory& memory() {
  static auto* m = new Memory;  // never destroyed: buffers may be freed during static destruction
  return *m;
}

// ---- fibers ----
// A fiber's context. On x86-64 a switch saves the callee-saved registers and the floating-point
// control words on the old stack and pops them from the new one (segloss_emu_switch, below):
// swapcontext also saves the signal mask, two system calls per switch, which made the emulated
// tests 5x slower. Elsewhere it is ucontext. Under AddressSanitizer every switch is announced
// (__sanitizer_start/finish_switch_fiber), so that kernels' out-of-bounds accesses to device
// memory (host memory here) are found without false reports about the fibers' stacks.
// ThreadSanitizer is not supported (it would need its fiber API).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEGLOSS_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SEGLOSS_EMU_ASAN)
#define SEGLOSS_EMU_ASAN 1
#endif
#if !defined(SEGLOSS_EMU_ASAN)
#define SEGLOSS_EMU_ASAN 0
#endif
// With shadow stacks (CET) enforced, the `ret` into a fresh fiber would fault: ucontext there.
#if defined(__x86_64__) && !(defined(__CET__) && (__CET__ & 2))
#define SEGLOSS_EMU_ASM_SWITCH 1
#else
#define SEGLOSS_EMU_ASM_SWITCH 0
#endif

#if SEGLOSS_EMU_ASM_SWITCH
}  // namespace
}  // namespace segloss_emu
// segloss_emu_switch(void** save, void* next): saves this context on its stack, stores the stack
// pointer in *save, and resumes the context whose stack pointer is `next`.
extern "C" void segloss_emu_switch(void** save, void* next);
asm(R"(
  .pushsection .text
  .globl segloss_emu_switch
  .hidden segloss_emu_switch
  .type segloss_emu_switch, @function
segloss_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size segloss_emu_switch, .-segloss_emu_switch
  .popsection
)");
namespace segloss_emu {
namespace {

struct Context {
  void* sp = nullptr;
  const void* bottom = nullptr;  // the context's stack, for AddressSanitizer
  size_t size = 0;
  void* fake_stack = nullptr;
};

// A context that starts `entry` (which must never return) on the given stack: the frame that
// segloss_emu_switch pops, from the lowest address: the control words, r15..r12, rbx, rbp, the
// "return" address (entry, 16-byte aligned as after a call), and a null return address for
// entry's own frame.
void start(Context& c, char* stack, size_t bytes, void (*entry)()) {
#if SEGLOSS_EMU_ASAN
  // The previous block's fiber on this stack never returned: its frames' redzones are poisoned.
  __asan_unpoison_memory_region(stack, bytes);
#endif
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;
  *--slot = reinterpret_cast<uint64_t>(entry);
  for (int r = 0; r < 6; ++r) *--slot = 0;
  uint32_t csr[2];
  asm volatile("stmxcsr %0" : "=m"(csr[0]));
  asm volatile("fnstcw %0" : "=m"(csr[1]));
  *--slot = uint64_t{csr[0]} | uint64_t{csr[1] & 0xffffu} << 32;
  c.sp = slot;
  c.bottom = stack;
  c.size = bytes;
  c.fake_stack = nullptr;
}
void raw_switch(Context& from, Context& to) {
  segloss_emu_switch(&from.sp, to.sp);
}
#else
struct Context {
  ucontext_t uc;
  const void* bottom = nullptr;
  size_t size = 0;
  void* fake_stack = nullptr;
};
void start(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
  c.bottom = stack;
  c.size = bytes;
  c.fake_stack = nullptr;
}
void raw_switch(Context& from, Context& to) {
  swapcontext(&from.uc, &to.uc);
}
#endif

// Switches from the running context to `to`; `from_ends` when the running fiber will never be
// resumed. A fiber's first entry learns the scheduler's stack (fiber_main).
void switch_to(Context& from, Context& to, bool from_ends = false) {
#if SEGLOSS_EMU_ASAN
  __sanitizer_start_switch_fiber(from_ends ? nullptr : &from.fake_stack, to.bottom, to.size);
#else
  (void)from_ends;
#endif
  raw_switch(from, to);
#if SEGLOSS_EMU_ASAN
  __sanitizer_finish_switch_fiber(from.fake_stack, nullptr, nullptr);
#endif
}

enum class State { ready, block_wait, warp_wait, done };

constexpr size_t kStackBytes = 256 * 1024;  // a kernel's frame is small; sanitizers need more
constexpr unsigned kMaxThreads = 1024;

struct Warp {
  uint64_t slot[32];
  unsigned mask[32];     // each waiting lane's mask
  unsigned present = 0;  // lanes that deposited a value in the current exchange
};

// A static __shared__ variable (SEGLOSS_STATIC_SHARED) of the running OS thread: its bytes, and
// the block that last poisoned them.
struct SharedVariable {
  std::vector<unsigned char> bytes;
  uint64_t block = ~uint64_t{0};
};

// One per OS thread: a launch runs on the thread that enqueues it.
struct Worker {
  Context scheduler;
  Context fiber[kMaxThreads];
  State state[kMaxThreads];
  Warp warp[kMaxThreads / 32];
  char* stacks = nullptr;  // kMaxThreads stacks, mapped on the first launch
  unsigned threads = 0, current = 0;
  const std::function<void()>* kernel = nullptr;
  std::vector<unsigned char> shared;                   // dynamic shared memory of the running block
  std::unordered_map<const void*, uint64_t> launches;  // per kernel: its thread order alternates
  std::unordered_map<const void*, SharedVariable> static_shared;
  uint64_t block_serial = 0;
  bool in_kernel = false;

  ~Worker() {
    if (stacks) munmap(stacks, kStackBytes * kMaxThreads);
  }
};

thread_local Worker* worker_ptr = nullptr;

// On the heap: a large thread_local would be allocated in every thread that touches the
// library's thread-local state (OpenMP's workers too).
Worker& worker() {
  thread_local std::unique_ptr<Worker> w;
  if (!w) w = std::make_unique<Worker>();
  return *w;
}

// A fiber's body: the kernel, then back to the scheduler for good.
[[noreturn]] void fiber_main() {
  Worker& w = *worker_ptr;
#if SEGLOSS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w.scheduler.bottom, &w.scheduler.size);
#endif
  (*w.kernel)();
  w.state[w.current] = State::done;
  switch_to(w.fiber[w.current], w.scheduler, /*from_ends=*/true);
  die("a finished fiber was resumed", "");
}

void wait(State s) {
  Worker& w = *worker_ptr;
  if (!w.in_kernel) die("__syncthreads or a warp collective outside a kernel", "");
  w.state[w.current] = s;
  switch_to(w.fiber[w.current], w.scheduler);
}

void set_thread_index(unsigned t) {
  threadIdx.x = t % blockDim.x;
  threadIdx.y = t / blockDim.x % blockDim.y;
  threadIdx.z = t / (blockDim.x * blockDim.y);
}

// Runs one block to its end: every fiber until it waits or ends, then releases the barriers
// whose every live thread waits, until all have ended.
void run_block(Worker& w, bool reverse) {
  const unsigned n = w.threads;
  for (unsigned t = 0; t < n; ++t) {
    start(w.fiber[t], w.stacks + static_cast<size_t>(t) * kStackBytes, kStackBytes, fiber_main);
    w.state[t] = State::ready;
  }
  for (auto& wp : w.warp) wp.present = 0;
  for (;;) {
    for (unsigned k = 0; k < n; ++k) {
      const unsigned t = reverse ? n - 1 - k : k;
      if (w.state[t] != State::ready) continue;
      w.current = t;
      set_thread_index(t);
      switch_to(w.scheduler, w.fiber[t]);
    }
    unsigned live = 0, at_block = 0;
    for (unsigned t = 0; t < n; ++t) {
      if (w.state[t] != State::done) ++live;
      if (w.state[t] == State::block_wait) ++at_block;
    }
    if (live == 0) return;
    // A warp's waiting lanes go on when every lane their masks name waits too, or has exited
    // (warp_exchange then reports the exited ones).
    bool released = false;
    for (unsigned first = 0; first < n; first += 32) {
      const unsigned last = std::min(n, first + 32);
      unsigned waiting = 0, gone = 0, wanted = 0;
      for (unsigned t = first; t < last; ++t) {
        const unsigned bit = 1u << (t - first);
        if (w.state[t] == State::done) gone |= bit;
        if (w.state[t] == State::warp_wait) {
          waiting |= bit;
          wanted |= w.warp[first / 32].mask[t - first];
        }
      }
      if (waiting == 0 || (wanted & ~(waiting | gone)) != 0) continue;
      for (unsigned t = first; t < last; ++t)
        if (w.state[t] == State::warp_wait) w.state[t] = State::ready;
      released = true;
    }
    if (released) continue;
    if (at_block == live) {
      for (unsigned t = 0; t < n; ++t)
        if (w.state[t] == State::block_wait) w.state[t] = State::ready;
      continue;
    }
    char detail[160];
    std::snprintf(detail, sizeof detail,
                  "block (%u,%u,%u): %u threads live, %u at __syncthreads, the rest at a warp "
                  "collective whose mask names lanes that wait at __syncthreads",
                  blockIdx.x, blockIdx.y, blockIdx.z, live, at_block);
    die("deadlock (threads of a block wait at __syncthreads and at a warp collective)", detail);
  }
}

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const void* key,
              const std::function<void()>& kernel) {
  Worker& w = worker();
  if (w.in_kernel) die("a launch from inside a kernel (dynamic parallelism is not emulated)", "");
  if (!w.stacks) {
    void* p = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("mmap of the fiber stacks failed", "");
    w.stacks = static_cast<char*>(p);
    // A guard page below each stack: an overflow faults instead of writing the next fiber's.
    for (unsigned t = 0; t < kMaxThreads; ++t)
      if (mprotect(w.stacks + static_cast<size_t>(t) * kStackBytes, 4096, PROT_NONE) != 0)
        die("mprotect of a fiber stack's guard page failed", "");
  }
  worker_ptr = &w;
  w.kernel = &kernel;
  w.threads = block.x * block.y * block.z;
  w.shared.assign(shared_bytes, 0);
  const uint3 saved_thread = threadIdx, saved_block = blockIdx;
  const dim3 saved_block_dim = blockDim, saved_grid_dim = gridDim;
  gridDim = grid;
  blockDim = block;
  w.in_kernel = true;
  // Each kernel's launches alternate their thread order (a call of several kernels repeats,
  // so a per-thread count would give each kernel the same order every time).
  const bool reverse = (w.launches[key]++ & 1u) != 0;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        ++w.block_serial;  // static shared variables are poisoned again on first use
        std::fill(w.shared.begin(), w.shared.end(), static_cast<unsigned char>(0xff));
        run_block(w, reverse);
      }
  w.in_kernel = false;
  threadIdx = saved_thread;
  blockIdx = saved_block;
  blockDim = saved_block_dim;
  gridDim = saved_grid_dim;
}

// ---- streams, capture and graphs ----
struct Graph {
  std::vector<std::function<void()>> nodes;
};

struct Stream {
  bool blocking =
      true;  // created without cudaStreamNonBlocking: synchronizes with the legacy stream
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id capture_thread;
  Graph* graph = nullptr;
};

// Guards the stream registry and every stream's capture state (recursive: the capture checks
// run inside calls that hold it).
std::recursive_mutex registry_mutex;
std::set<Stream*>& streams() {
  static auto* s = new std::set<Stream*>;
  return *s;
}
Stream legacy_stream;  // the default stream (handle 0 or cudaStreamLegacy)
thread_local Stream per_thread_stream;

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

Stream* resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return &legacy_stream;
  std::lock_guard<std::recursive_mutex> lock(registry_mutex);
  if (s == cudaStreamPerThread) return &per_thread_stream;
  auto* st = reinterpret_cast<Stream*>(s);
  return streams().count(st) ? st : nullptr;
}

// A capture on this thread that a synchronizing call, an allocation or the legacy stream breaks
// (the global and thread-local modes; relaxed allows them).
Stream* strict_capture_of_this_thread() {
  std::lock_guard<std::recursive_mutex> lock(registry_mutex);
  for (Stream* s : streams())
    if (s->capturing && s->mode != cudaStreamCaptureModeRelaxed &&
        (s->mode == cudaStreamCaptureModeGlobal || s->capture_thread == std::this_thread::get_id()))
      return s;
  return nullptr;
}

// A call that a strict capture forbids: it invalidates the capture and fails.
cudaError_t forbidden_during_capture() {
  if (Stream* s = strict_capture_of_this_thread()) {
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

// Runs `op` now, or records it when the stream is capturing. Work on the legacy stream waits
// for every blocking stream, so it breaks the capture of any blocking stream (any thread, any
// mode), as on a GPU.
cudaError_t enqueue(cudaStream_t handle, std::function<void()> op) {
  {
    std::lock_guard<std::recursive_mutex> lock(registry_mutex);
    Stream* s = resolve(handle);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) {
      if (s->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
      s->graph->nodes.push_back(std::move(op));
      return cudaSuccess;
    }
    if (s == &legacy_stream) {
      for (Stream* c : streams())
        if (c->capturing && c->blocking) {
          c->invalidated = true;
          return fail(cudaErrorStreamCaptureImplicit);
        }
    }
  }
  op();
  return cudaSuccess;
}

struct Event {
  std::chrono::steady_clock::time_point at;
};

}  // namespace

void* dynamic_shared() {
  return worker_ptr->shared.data();
}

void* static_shared(const void* tag, size_t bytes) {
  Worker& w = *worker_ptr;
  if (!w.in_kernel) die("a __shared__ variable used outside a kernel", "");
  SharedVariable& v = w.static_shared[tag];
  if (v.bytes.size() < bytes) v.bytes.resize(bytes);
  if (v.block != w.block_serial) {  // first use in this block: poisoned, as a GPU leaves it
    std::fill(v.bytes.begin(), v.bytes.end(), static_cast<unsigned char>(0xff));
    v.block = w.block_serial;
  }
  return v.bytes.data();
}

unsigned lane() {
  return worker_ptr->current & 31u;
}

void fail_collective(const char* what, const char* detail) {
  char text[200];
  std::snprintf(text, sizeof text, "block (%u,%u,%u), thread %u: %s", blockIdx.x, blockIdx.y,
                blockIdx.z, worker_ptr->current, detail);
  die(what, text);
}

void sync_block() {
  wait(State::block_wait);
}

unsigned warp_exchange(unsigned mask, uint64_t mine, uint64_t (&all)[32], const char* what) {
  Worker& w = *worker_ptr;
  const unsigned lane = w.current & 31u;
  Warp& wp = w.warp[w.current / 32];
  wp.slot[lane] = mine;
  wp.mask[lane] = mask;
  wp.present |= 1u << lane;
  wait(State::warp_wait);  // every lane of the mask has deposited (or exited)
  std::copy(std::begin(wp.slot), std::end(wp.slot), all);
  const unsigned present = wp.present;
  if ((mask & ~present) != 0u) {
    char detail[160];
    std::snprintf(detail, sizeof detail, "mask 0x%08x names lanes 0x%08x that have exited", mask,
                  mask & ~present);
    fail_collective(what, detail);
  }
  wait(State::warp_wait);  // every lane has read: the slots can be reused
  wp.present &= ~(1u << lane);
  return present;
}

size_t live_device_bytes() {
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  size_t total = 0;
  for (const auto& [start, bytes] : m.live) total += bytes;
  return total;
}

void check_not_freed(const void* p, size_t bytes, const char* what) {
  if (!p) return;
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t last = start + (bytes > 0 ? bytes : 1) - 1;
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.freed.upper_bound(last);  // the first held block that starts after the range
  if (it == m.freed.begin()) return;
  --it;  // the last held block that starts at or before the range's last byte
  if (it->first + it->second <= start) return;
  char detail[256];
  std::snprintf(detail, sizeof detail,
                "%s at %p (%zu bytes) touches the block [%p, +%zu bytes) that cudaFree released",
                what, p, bytes, reinterpret_cast<void*>(it->first), it->second);
  die("device memory used after cudaFree", detail);
}

cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const void* key,
                   std::vector<const void*> pointers, std::function<void()> kernel) {
  // A GPU's limits: 1024 threads per block, y and z of the grid below 65536, and 48 KiB of
  // dynamic shared memory unless the kernel opts in to more (the backend does not).
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535 || shared_bytes > 48 * 1024)
    return fail(cudaErrorInvalidConfiguration);
  return enqueue(stream, [grid, block, shared_bytes, key, pointers = std::move(pointers),
                          kernel = std::move(kernel)] {
    for (const void* p : pointers) check_not_freed(p, 1, "a kernel's pointer argument");
    run_grid(grid, block, shared_bytes, key, kernel);
  });
}

}  // namespace segloss_emu

using segloss_emu::fail;

// ---- runtime API ----
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "segloss CUDA emulator (CPU)");
  prop->totalGlobalMem = size_t{1} << 32;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  return segloss_emu::forbidden_during_capture();
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = segloss_emu::last_error;
  segloss_emu::last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  return segloss_emu::last_error;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState:
      return "cudaErrorIllegalState";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched:
      return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit:
      return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread:
      return "cudaErrorStreamCaptureWrongThread";
    default:
      return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    default:
      return "an error reported by the segloss CUDA emulator";
  }
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  if (bytes > (size_t{1} << 40)) return fail(cudaErrorMemoryAllocation);
  // 256-byte aligned, as cudaMalloc's memory is; filled with 0xff, as a GPU does not zero it.
  void* p = ::operator new (bytes > 0 ? bytes : 1, std::align_val_t{256}, std::nothrow);
  if (!p) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xff, bytes);
  {
    segloss_emu::Memory& m = segloss_emu::memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    m.live[reinterpret_cast<uintptr_t>(p)] = bytes > 0 ? bytes : 1;
  }
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  if (!ptr) return cudaSuccess;
  segloss_emu::Memory& m = segloss_emu::memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto start = reinterpret_cast<uintptr_t>(ptr);
  const auto it = m.live.find(start);
  if (it == m.live.end()) return fail(cudaErrorInvalidValue);  // not from cudaMalloc, or freed
  const size_t bytes = it->second;
  m.live.erase(it);
  std::memset(ptr, 0xfd, bytes);
  segloss_emu::poison(ptr,
                      bytes);  // under AddressSanitizer a read through any pointer is reported too
  m.freed[start] = bytes;
  m.order.push_back(start);
  m.freed_bytes += bytes;
  while (m.freed_bytes > segloss_emu::kQuarantineBytes) {
    const uintptr_t oldest = m.order.front();
    m.order.pop_front();
    const auto f = m.freed.find(oldest);
    m.freed_bytes -= f->second;
    segloss_emu::unpoison(reinterpret_cast<void*>(oldest), f->second);
    m.freed.erase(f);
    ::operator delete (reinterpret_cast<void*>(oldest), std::align_val_t{256});
  }
  return cudaSuccess;
}
namespace segloss_emu {
namespace {
void copy_bytes(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  check_not_freed(src, bytes, "a copy's source");
  check_not_freed(dst, bytes, "a copy's destination");
  std::memmove(dst, src, bytes);
}
void set_bytes(void* dst, int value, size_t bytes) {
  if (!bytes) return;
  check_not_freed(dst, bytes, "a memset");
  std::memset(dst, value, bytes);
}
}  // namespace
}  // namespace segloss_emu

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  segloss_emu::copy_bytes(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  return segloss_emu::enqueue(stream,
                              [dst, src, bytes] { segloss_emu::copy_bytes(dst, src, bytes); });
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  segloss_emu::set_bytes(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  return segloss_emu::enqueue(stream,
                              [dst, value, bytes] { segloss_emu::set_bytes(dst, value, bytes); });
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  auto* s = new segloss_emu::Stream;
  s->blocking = (flags & cudaStreamNonBlocking) == 0;
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  segloss_emu::streams().insert(s);
  *stream = reinterpret_cast<cudaStream_t>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto* s = reinterpret_cast<segloss_emu::Stream*>(stream);
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  if (!segloss_emu::streams().erase(s)) return fail(cudaErrorInvalidResourceHandle);
  delete s->graph;
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (s->capturing) {
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (s == &segloss_emu::legacy_stream) return segloss_emu::forbidden_during_capture();
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s || s == &segloss_emu::legacy_stream || s == &segloss_emu::per_thread_stream)
    return fail(cudaErrorNotSupported);  // the emulator captures created streams only
  if (s->capturing) return fail(cudaErrorIllegalState);
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->capture_thread = std::this_thread::get_id();
  s->graph = new segloss_emu::Graph;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  *graph = nullptr;
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (!s->capturing) return fail(cudaErrorIllegalState);
  if (s->capture_thread != std::this_thread::get_id() && s->mode != cudaStreamCaptureModeRelaxed)
    return fail(cudaErrorStreamCaptureWrongThread);
  s->capturing = false;
  segloss_emu::Graph* g = s->graph;
  s->graph = nullptr;
  if (s->invalidated) {
    delete g;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = reinterpret_cast<cudaGraph_t>(g);
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex);
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  *status = !s->capturing    ? cudaStreamCaptureStatusNone
            : s->invalidated ? cudaStreamCaptureStatusInvalidated
                             : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (!graph || !count) return fail(cudaErrorInvalidValue);
  const auto* g = reinterpret_cast<segloss_emu::Graph*>(graph);
  if (nodes) return fail(cudaErrorNotSupported);  // the emulator gives the count only
  *count = g->nodes.size();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = reinterpret_cast<cudaGraphExec_t>(
      new segloss_emu::Graph(*reinterpret_cast<segloss_emu::Graph*>(graph)));
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue);
  const auto* g = reinterpret_cast<segloss_emu::Graph*>(exec);
  return segloss_emu::enqueue(stream, [g] {
    for (const auto& node : g->nodes) node();
  });
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<segloss_emu::Graph*>(exec);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<segloss_emu::Graph*>(graph);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = reinterpret_cast<cudaEvent_t>(new segloss_emu::Event{std::chrono::steady_clock::now()});
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<segloss_emu::Event*>(event);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  auto* e = reinterpret_cast<segloss_emu::Event*>(event);
  return segloss_emu::enqueue(stream, [e] { e->at = std::chrono::steady_clock::now(); });
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  return segloss_emu::forbidden_during_capture();
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  const auto* a = reinterpret_cast<segloss_emu::Event*>(start);
  const auto* b = reinterpret_cast<segloss_emu::Event*>(end);
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}
