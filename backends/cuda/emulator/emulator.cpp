// The CUDA emulator (cuda_runtime.h in this directory says what it is and what it cannot show):
// the fiber scheduler that runs a launch's blocks, and the runtime API on host memory.
#include "cuda_runtime.h"

#include <execinfo.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

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
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// ---- device memory: an arena of its own, the live blocks, and the freed ones held back ----
// Device memory is not host memory on a GPU: host code that dereferences a device pointer
// faults there, and a kernel given a host pointer reads garbage or faults. Here both are the
// same address space, so the emulator keeps device memory apart: cudaMalloc's blocks come from
// one reserved arena (16 GiB of address space, page-granular blocks), which is inaccessible
// (PROT_NONE) except while the emulator itself runs device work (a kernel, a memset, a copy;
// DeviceAccess below). Host code touching device memory then faults, and the SIGSEGV handler
// names it ("host code touched device memory at 0x... (the cudaMalloc block [...])"). Launch
// arguments and copies are checked against the blocks (check_kernel_pointer, check_device_range):
// a host pointer given to a kernel, a copy whose kind names the wrong side, a range running past
// its block, all stop the program with a message.
//
// cudaFree holds a block's addresses back instead of reusing them, up to kQuarantineBytes (the
// oldest are released first; its pages go back to the system at once): a memset, a copy or a
// kernel's pointer argument that touches a held block is a use after free, which stops the
// program with a message instead of silently working on memory that a GPU would have unmapped
// or handed to another allocation.
//
// One state per process: libsegloss_c embeds its own copy of the library and so of the emulator,
// and the program hands it device pointers and streams. The first copy to need the state maps the
// arena at a fixed address and puts a pointer to the state in the arena's first page; a later
// copy finds the mapping there and uses the same state (the layout is checked: both copies are
// built from this file).
constexpr size_t kQuarantineBytes = size_t{64} << 20;  // address space held back (spans)
constexpr size_t kPage = 4096;
constexpr uintptr_t kArenaAddress = kArenaBegin;  // cuda_runtime.h
// The arena's address space (MAP_NORESERVE, PROT_NONE: no memory, but it counts against
// `ulimit -v`): the first size that maps. The emulator reports 4 GiB of device memory.
constexpr size_t kArenaSizes[] = {size_t{16} << 30, size_t{4} << 30, size_t{1} << 30};
constexpr uint64_t kMagic = 0x73656c6f73734555ull;  // "UEssoles"
constexpr uint64_t kLayoutVersion = 3;

// Under AddressSanitizer the bytes of the arena that no live block holds are poisoned (the
// freed blocks held back, a block's page tail and the gap page after it, released ranges), so
// that a kernel reading past its buffer, or through a stale pointer that the launch check does
// not see, is reported.
#if defined(__SANITIZE_ADDRESS__)
#define SEGLOSS_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEGLOSS_EMU_ASAN 1
#endif
#endif
#if defined(SEGLOSS_EMU_ASAN)
constexpr uint64_t kAsan = 1;
#else
constexpr uint64_t kAsan = 0;
#endif

struct Graph;
struct Stream {
  bool blocking =
      true;  // created without cudaStreamNonBlocking: synchronizes with the legacy stream
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id capture_thread;
  Graph* graph = nullptr;
};

struct Shared {
  // Device memory. A block of b bytes occupies rounded(b) pages and a gap page after them
  // (span(b)), so that a read past its end never lands in the next block.
  std::mutex mutex;
  char* base = nullptr;  // the arena; [base, base + kPage) holds the Header, always readable
  size_t bytes = 0;      // the arena's size
  size_t top = kPage;    // arena bytes handed out so far (blocks start at or above kPage)
  std::map<uintptr_t, size_t> live;   // start -> bytes (at least 1)
  std::map<uintptr_t, size_t> freed;  // held back: start -> bytes
  std::deque<uintptr_t> order;        // the held blocks, oldest first
  std::map<uintptr_t, size_t> holes;  // released page ranges: start -> bytes, coalesced
  size_t freed_span = 0;              // the held blocks' spans
  int open = 0;  // DeviceAccess scopes open in any thread: device memory is readable while > 0
  uintptr_t open_lo = 0, open_hi = 0;  // the range made readable (while open > 0)
  // Streams: the registry (created streams) and the legacy default stream; guarded by
  // registry_mutex (recursive: the capture checks run inside calls that hold it).
  std::recursive_mutex registry_mutex;
  std::set<Stream*> streams;
  Stream legacy_stream;
};

// The arena's first page. Every copy of the emulator in the process must agree on all of it (a
// copy built with AddressSanitizer and one without would poison differently).
struct Header {
  uint64_t magic;
  uint64_t layout;  // kLayoutVersion
  uint64_t size;    // sizeof(Shared)
  uint64_t asan;    // kAsan
  uint64_t page, quarantine;
  uint64_t arena_bytes;
  Shared* state;
};

uintptr_t arena_begin_ = 0, arena_end_ = 0;

size_t rounded(size_t bytes) {
  return (std::max<size_t>(bytes, 1) + kPage - 1) / kPage * kPage;
}
size_t span(size_t bytes) {
  return rounded(bytes) + kPage;
}

void on_segv(int sig, siginfo_t* info, void* context);
struct sigaction previous_segv {};
bool in_kernel_now();  // the running thread is inside a launch (defined with the fibers)

void install_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  sigaction(SIGSEGV, &sa, &old);
  if (old.sa_sigaction != on_segv) previous_segv = old;
}
// doctest restores the handler it found at the end of each test case: put ours back (called
// when device work starts, so before any fault it could name).
void reinstall_handler() {
  struct sigaction current {};
  if (sigaction(SIGSEGV, nullptr, &current) == 0 && current.sa_sigaction != on_segv)
    install_handler();
}

// Whether [p, p + bytes) is readable, without touching it (a write from it to a pipe fails with
// EFAULT when it is not).
bool readable(const void* p, size_t bytes) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  const bool ok = write(fds[1], p, bytes) == static_cast<ssize_t>(bytes);
  close(fds[0]);
  close(fds[1]);
  return ok;
}

Shared* make_shared_state() {
  for (size_t bytes : kArenaSizes) {
    void* p = mmap(reinterpret_cast<void*>(kArenaAddress), bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED && errno == EEXIST) {
      // Another copy of the emulator in this process made the arena: use its state.
      const auto* h = reinterpret_cast<const Header*>(kArenaAddress);
      if (!readable(h, sizeof(Header)) || h->magic != kMagic)
        die("the device arena's address is taken by another mapping", "");
      if (h->layout != kLayoutVersion || h->size != sizeof(Shared) || h->asan != kAsan ||
          h->page != kPage || h->quarantine != kQuarantineBytes)
        die("two copies of the emulator in this process disagree (another version, or one built "
            "with AddressSanitizer and one without)",
            "");
      arena_begin_ = kArenaAddress;
      arena_end_ = kArenaAddress + h->arena_bytes;
      return h->state;
    }
    if (p == MAP_FAILED) continue;  // too large for the address-space limit: a smaller one
    if (reinterpret_cast<uintptr_t>(p) != kArenaAddress)
      die("mmap of the device arena gave another address", "");
    if (mprotect(p, kPage, PROT_READ | PROT_WRITE) != 0) die("mprotect of the arena header", "");
    auto* state = new Shared;  // never destroyed: buffers may be freed during static destruction
    state->base = static_cast<char*>(p);
    state->bytes = bytes;
    auto* h = static_cast<Header*>(p);
    *h = Header{kMagic, kLayoutVersion,   sizeof(Shared), kAsan,
                kPage,  kQuarantineBytes, bytes,          state};
    arena_begin_ = kArenaAddress;
    arena_end_ = kArenaAddress + bytes;
    install_handler();  // host code touching device memory faults: say what it was
    return state;
  }
  die("mmap of the device arena failed (1 GiB of address space at least)", std::strerror(errno));
}

Shared& shared() {
  static Shared* s = make_shared_state();
  return *s;
}

bool in_arena(uintptr_t p) {
  return p >= arena_begin_ && p < arena_end_;
}

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

// Makes device memory readable and writable while the emulator runs device work (any thread),
// and inaccessible again when the last such scope closes: one mprotect over the range from the
// lowest live block to the end of the highest (mprotect's cost grows with the calls and with the
// resident pages it covers, so neither one call per block nor the whole arena: freed blocks are
// given back to the system at cudaFree, so the range's resident pages are the live blocks').
// Inside that range a freed block is accessible during device work (its pages read as zeros;
// under AddressSanitizer it is poisoned, so a kernel reading it is reported); outside it, and
// always for the host, it faults.
void protect_range(uintptr_t lo, uintptr_t hi, int prot) {
  if (hi > lo && mprotect(reinterpret_cast<void*>(lo), hi - lo, prot) != 0)
    die("mprotect of the device blocks failed", std::strerror(errno));
}
void live_range(const Shared& m, uintptr_t& lo, uintptr_t& hi) {
  lo = hi = 0;
  if (m.live.empty()) return;
  const auto last = std::prev(m.live.end());
  lo = m.live.begin()->first;
  hi = last->first + rounded(last->second);
}
struct DeviceAccess {
  DeviceAccess() {
    Shared& m = shared();
    std::lock_guard<std::mutex> lock(m.mutex);
    if (m.open++ == 0) {
      reinstall_handler();
      live_range(m, m.open_lo, m.open_hi);
      protect_range(m.open_lo, m.open_hi, PROT_READ | PROT_WRITE);
    }
  }
  ~DeviceAccess() {
    Shared& m = shared();
    std::lock_guard<std::mutex> lock(m.mutex);
    if (--m.open == 0) {
      // What was opened (blocks freed since included) and what is live now (blocks allocated
      // since, which cudaMalloc opened).
      uintptr_t lo = 0, hi = 0;
      live_range(m, lo, hi);
      if (m.open_hi > m.open_lo) {
        lo = hi > lo ? std::min(lo, m.open_lo) : m.open_lo;
        hi = std::max(hi, m.open_hi);
      }
      protect_range(lo, hi, PROT_NONE);
    }
  }
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;
};

// The SIGSEGV handler: a fault inside the arena is host code touching device memory (the
// emulator's own accesses run inside a DeviceAccess). It says so, then lets the previous handler
// (AddressSanitizer's report, or the default: the program stops) handle the fault.
void on_segv(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (in_arena(addr)) {
    char text[400];
    int n = in_kernel_now()
                ? std::snprintf(text, sizeof text,
                                "segloss CUDA emulator: a kernel touched device memory at %p that "
                                "no live cudaMalloc block holds (freed, or past the end of a block "
                                "into the next page); the stack:\n",
                                info->si_addr)
                : std::snprintf(text, sizeof text,
                                "segloss CUDA emulator: host code touched device memory at %p: on "
                                "a GPU device memory cannot be read or written by the host (copy "
                                "it with cudaMemcpy); or a kernel of another copy of the emulator "
                                "read memory no live block holds: the stack says which:\n",
                                info->si_addr);
    if (n > 0) {
      ssize_t ignored = write(2, text, static_cast<size_t>(n));
      (void)ignored;
    }
    void* frames[48];
    backtrace_symbols_fd(frames, backtrace(frames, 48), 2);
  }
  sigaction(SIGSEGV, &previous_segv, nullptr);
  if (previous_segv.sa_flags & SA_SIGINFO) {
    if (previous_segv.sa_sigaction) previous_segv.sa_sigaction(sig, info, context);
  } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
    previous_segv.sa_handler(sig);
  }
  // Returning re-runs the faulting access under the previous handler (the default: stop).
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
  bool last_run_block = false;                 // the running block is the launch's last
  size_t dynamic_bytes = 0, static_bytes = 0;  // the running block's shared memory
  bool in_kernel = false;

  ~Worker() {
    if (stacks) munmap(stacks, kStackBytes * kMaxThreads);
  }
};

thread_local Worker* worker_ptr = nullptr;

bool in_kernel_now() {
  return worker_ptr != nullptr && worker_ptr->in_kernel;
}

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

// The first order of a kernel's pair of launches `pair`: a bit of splitmix64 (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) of the pair's index and
// the seed.
bool order_bit(uint64_t pair) {
  static const uint64_t seed = [] {
    const char* s = std::getenv("SEGLOSS_EMU_ORDER_SEED");
    return s ? std::strtoull(s, nullptr, 0) : uint64_t{0};
  }();
  uint64_t z = pair * 0x9e3779b97f4a7c15ull + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return ((z ^ (z >> 31)) >> 17 & 1u) != 0;
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
  // The order of a launch's threads and blocks, forward or backward: a read of shared memory
  // without its barrier, or a block reading what another block of the same launch writes (no
  // order between blocks on a GPU), gives a different result in one order. Each kernel's
  // launches come in pairs of opposite orders (so two launches of a kernel differ: a test can
  // rely on it), and each pair's first order is a pseudo-random bit: so a kernel launched an
  // even number of times per call still runs in other orders from call to call, which the
  // 10-run determinism tests then see. A per-kernel count, not one per thread: a call of several
  // kernels repeats. SEGLOSS_EMU_ORDER_SEED changes the bits.
  const uint64_t n = w.launches[key]++;
  const bool reverse = ((n & 1u) != 0) != order_bit(n / 2);
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  w.dynamic_bytes = shared_bytes;
  for (uint64_t k = 0; k < blocks; ++k) {
    const uint64_t b = reverse ? blocks - 1 - k : k;
    blockIdx = uint3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                     static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
    ++w.block_serial;  // static shared variables are poisoned again on first use
    w.last_run_block = k + 1 == blocks;
    w.static_bytes = 0;
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

// The stream registry and the legacy stream are in the process's shared state (above), so a
// stream the program created is known to libsegloss_c's copy of the emulator too.
std::recursive_mutex& registry_mutex() {
  return shared().registry_mutex;
}
std::set<Stream*>& streams() {
  return shared().streams;
}
Stream& legacy_stream() {
  return shared().legacy_stream;
}
thread_local Stream per_thread_stream;

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

Stream* resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return &legacy_stream();
  std::lock_guard<std::recursive_mutex> lock(registry_mutex());
  if (s == cudaStreamPerThread) return &per_thread_stream;
  auto* st = reinterpret_cast<Stream*>(s);
  return streams().count(st) ? st : nullptr;
}

// A capture on this thread that a synchronizing call, an allocation or the legacy stream breaks
// (the global and thread-local modes; relaxed allows them).
Stream* strict_capture_of_this_thread() {
  std::lock_guard<std::recursive_mutex> lock(registry_mutex());
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
    std::lock_guard<std::recursive_mutex> lock(registry_mutex());
    Stream* s = resolve(handle);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) {
      if (s->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
      s->graph->nodes.push_back(std::move(op));
      return cudaSuccess;
    }
    if (s == &legacy_stream()) {
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
    // A GPU's limit: static and dynamic shared memory together at most 48 KiB per block
    // (without the opt-in the backend does not use). The launch checked the dynamic part alone.
    w.static_bytes += bytes;
    if (w.static_bytes + w.dynamic_bytes > 48 * 1024) {
      char detail[160];
      std::snprintf(detail, sizeof detail,
                    "%zu bytes of static and %zu of dynamic shared memory in one block (a GPU "
                    "allows 48 KiB)",
                    w.static_bytes, w.dynamic_bytes);
      die("too much shared memory", detail);
    }
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

bool running_last_block() {
  return worker_ptr->last_run_block;
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
  Shared& m = shared();
  std::lock_guard<std::mutex> lock(m.mutex);
  size_t total = 0;
  for (const auto& [start, bytes] : m.live) total += bytes;
  return total;
}

namespace {

using Blocks = std::map<uintptr_t, size_t>;

// The live block that holds address a, one past its end included (a pointer to a buffer's end
// is common), or live.end(). Called with the state's mutex held.
Blocks::const_iterator live_block_of(const Shared& m, uintptr_t a) {
  auto it = m.live.upper_bound(a);
  if (it == m.live.begin()) return m.live.end();
  --it;
  return a <= it->first + it->second ? it : m.live.end();
}

// The held (freed) block that [start, last] touches, or freed.end().
Blocks::const_iterator freed_block_touching(const Shared& m, uintptr_t start, uintptr_t last) {
  auto it = m.freed.upper_bound(last);  // the first held block that starts after the range
  if (it == m.freed.begin()) return m.freed.end();
  --it;  // the last held block that starts at or before the range's last byte
  return it->first + it->second > start ? it : m.freed.end();
}

[[noreturn]] void die_freed(Blocks::const_iterator it, const void* p, size_t bytes,
                            const char* what) {
  char detail[256];
  std::snprintf(detail, sizeof detail,
                "%s at %p (%zu bytes) touches the block [%p, +%zu bytes) that cudaFree released",
                what, p, bytes, reinterpret_cast<void*>(it->first), it->second);
  die("device memory used after cudaFree", detail);
}

// [p, p + bytes) must lie in one live block: the device side of a copy, a memset.
void check_device_range(const void* p, size_t bytes, const char* what) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  Shared& m = shared();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto it = live_block_of(m, a);
  if (it != m.live.end() && a + bytes <= it->first + it->second) return;
  char detail[300];
  if (it != m.live.end()) {
    std::snprintf(detail, sizeof detail,
                  "%s [%p, +%zu bytes) runs past the end of its cudaMalloc block [%p, +%zu bytes)",
                  what, p, bytes, reinterpret_cast<void*>(it->first), it->second);
    die("device memory accessed out of bounds", detail);
  }
  const auto f = freed_block_touching(m, a, a + bytes - 1);
  if (f != m.freed.end()) die_freed(f, p, bytes, what);
  if (in_arena(a)) {
    std::snprintf(detail, sizeof detail,
                  "%s at %p (%zu bytes): no cudaMalloc block holds it (freed long ago?)", what, p,
                  bytes);
    die("not device memory", detail);
  }
  std::snprintf(detail, sizeof detail,
                "%s at %p (%zu bytes) is host memory, where the call needs device memory (a "
                "memset, or the device side of the copy's kind)",
                what, p, bytes);
  die("host memory used as device memory", detail);
}

// [p, p + bytes) must be host memory: the host side of a copy.
void check_host_range(const void* p, size_t bytes, const char* what) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (!in_arena(a) && !in_arena(a + bytes - 1)) return;
  char detail[300];
  std::snprintf(detail, sizeof detail,
                "%s at %p (%zu bytes) is device memory, but the copy's kind says host memory", what,
                p, bytes);
  die("device memory used as host memory", detail);
}

// A kernel's pointer argument (or a device address found in an argument struct): null, or in a
// live block.
void check_kernel_pointer(const void* p) {
  if (!p) return;
  const auto a = reinterpret_cast<uintptr_t>(p);
  Shared& m = shared();
  std::lock_guard<std::mutex> lock(m.mutex);
  if (live_block_of(m, a) != m.live.end()) return;
  const auto f = freed_block_touching(m, a, a);
  if (f != m.freed.end()) die_freed(f, p, 1, "a kernel's pointer argument");
  char detail[300];
  if (in_arena(a)) {
    std::snprintf(detail, sizeof detail,
                  "a kernel's pointer argument %p points into device memory that no cudaMalloc "
                  "block holds (freed long ago?)",
                  p);
    die("a kernel given a stale device pointer", detail);
  }
  std::snprintf(detail, sizeof detail,
                "a kernel's pointer argument %p is host memory: a kernel on a GPU cannot read it "
                "(copy the data to the device)",
                p);
  die("a kernel given a host pointer", detail);
}

}  // namespace

void peek(void* host, const void* device, size_t bytes) {
  if (!bytes) return;
  check_device_range(device, bytes, "peek's source");
  check_host_range(host, bytes, "peek's destination");
  DeviceAccess access;
  std::memcpy(host, device, bytes);
}

void check_not_freed(const void* p, size_t bytes, const char* what) {
  if (!p) return;
  const auto start = reinterpret_cast<uintptr_t>(p);
  Shared& m = shared();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto f = freed_block_touching(m, start, start + (bytes > 0 ? bytes : 1) - 1);
  if (f != m.freed.end()) die_freed(f, p, bytes, what);
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
    for (const void* p : pointers) check_kernel_pointer(p);
    DeviceAccess access;
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
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
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
  // Page-aligned blocks of the device arena (so 256-byte aligned, as cudaMalloc's are), each
  // followed by a gap page: a released range that fits, else fresh arena pages.
  const size_t size = segloss_emu::rounded(bytes), span = segloss_emu::span(bytes);
  segloss_emu::Shared& m = segloss_emu::shared();
  uintptr_t start = 0;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    for (auto it = m.holes.begin(); it != m.holes.end(); ++it) {
      if (it->second < span) continue;
      start = it->first;
      if (it->second > span) m.holes[start + span] = it->second - span;
      m.holes.erase(it);
      break;
    }
    if (!start) {
      if (m.top + span > m.bytes) return fail(cudaErrorMemoryAllocation);
      start = reinterpret_cast<uintptr_t>(m.base) + m.top;
      m.top += span;
    }
    // While device work runs (another thread's kernel) the live blocks are open: so is this one.
    if (m.open > 0) {
      if (mprotect(reinterpret_cast<void*>(start), size, PROT_READ | PROT_WRITE) != 0)
        segloss_emu::die("mprotect of a device block failed", std::strerror(errno));
      m.open_lo = m.open_hi > m.open_lo ? std::min(m.open_lo, start) : start;
      m.open_hi = std::max(m.open_hi, start + size);
    }
    m.live[start] = bytes > 0 ? bytes : 1;
  }
  void* p = reinterpret_cast<void*>(start);
  segloss_emu::unpoison(p, bytes);
  segloss_emu::poison(static_cast<char*>(p) + bytes, span - bytes);  // the tail and the gap
  {
    segloss_emu::DeviceAccess access;
    std::memset(p, 0xff, bytes);  // a GPU does not zero it either
  }
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  if (!ptr) return cudaSuccess;
  segloss_emu::Shared& m = segloss_emu::shared();
  const auto start = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto it = m.live.find(start);
  if (it == m.live.end()) return fail(cudaErrorInvalidValue);  // not from cudaMalloc, or freed
  const size_t bytes = it->second;
  m.live.erase(it);
  segloss_emu::poison(ptr, bytes);  // under AddressSanitizer a read through any pointer is reported
  // Its pages go back to the system (so the toggles above stay cheap) and it is inaccessible
  // (unless inside the range of live blocks while device work runs: then it reads as zeros).
  // Unlike a GPU's, this cudaFree does not wait for other threads' kernels: one still using the
  // block faults.
  const size_t size = segloss_emu::rounded(bytes);
  madvise(ptr, size, MADV_DONTNEED);
  if (mprotect(ptr, size, PROT_NONE) != 0)
    segloss_emu::die("mprotect of a device block failed", std::strerror(errno));
  m.freed[start] = bytes;
  m.order.push_back(start);
  m.freed_span += segloss_emu::span(bytes);
  while (m.freed_span > segloss_emu::kQuarantineBytes) {
    const uintptr_t oldest = m.order.front();
    m.order.pop_front();
    const auto f = m.freed.find(oldest);
    const size_t released = segloss_emu::span(f->second);
    m.freed_span -= released;
    m.freed.erase(f);
    // Released: the range goes to the holes (still poisoned under AddressSanitizer).
    auto next = m.holes.lower_bound(oldest);
    uintptr_t hole = oldest;
    size_t hole_size = released;
    if (next != m.holes.end() && next->first == oldest + released) {
      hole_size += next->second;
      next = m.holes.erase(next);
    }
    if (next != m.holes.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == oldest) {
        hole = prev->first;
        hole_size += prev->second;
        m.holes.erase(prev);
      }
    }
    m.holes[hole] = hole_size;
  }
  return cudaSuccess;
}
namespace segloss_emu {
namespace {
// A copy checks each side against its kind (cudaMemcpyDefault: only that neither touches freed
// device memory), then runs with the arena open.
void copy_bytes(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (!bytes) return;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault) {
    check_not_freed(src, bytes, "a copy's source");
    check_not_freed(dst, bytes, "a copy's destination");
  } else {
    if (src_device)
      check_device_range(src, bytes, "a copy's source");
    else
      check_host_range(src, bytes, "a copy's source");
    if (dst_device)
      check_device_range(dst, bytes, "a copy's destination");
    else
      check_host_range(dst, bytes, "a copy's destination");
  }
  DeviceAccess access;
  std::memmove(dst, src, bytes);
}
void set_bytes(void* dst, int value, size_t bytes) {
  if (!bytes) return;
  check_device_range(dst, bytes, "a memset");
  DeviceAccess access;
  std::memset(dst, value, bytes);
}
}  // namespace
}  // namespace segloss_emu

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (cudaError_t e = segloss_emu::forbidden_during_capture()) return e;
  segloss_emu::copy_bytes(dst, src, bytes, kind);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return segloss_emu::enqueue(
      stream, [dst, src, bytes, kind] { segloss_emu::copy_bytes(dst, src, bytes, kind); });
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
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
  segloss_emu::streams().insert(s);
  *stream = reinterpret_cast<cudaStream_t>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto* s = reinterpret_cast<segloss_emu::Stream*>(stream);
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
  if (!segloss_emu::streams().erase(s)) return fail(cudaErrorInvalidResourceHandle);
  delete s->graph;
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (s->capturing) {
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (s == &segloss_emu::legacy_stream()) return segloss_emu::forbidden_during_capture();
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
  segloss_emu::Stream* s = segloss_emu::resolve(stream);
  if (!s || s == &segloss_emu::legacy_stream() || s == &segloss_emu::per_thread_stream)
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
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
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
  std::lock_guard<std::recursive_mutex> lock(segloss_emu::registry_mutex());
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
