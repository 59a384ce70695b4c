// The CUDA emulator's stand-in for <cuda_runtime.h> (a build with -DSEGLOSS_CUDA=EMULATE puts
// this directory first on the include path; docs/cuda.md, "The emulator").
//
// It runs the CUDA backend's kernels on the CPU, so that every CUDA test (parity with the CPU,
// determinism, error flags, graph capture) runs on a machine without a GPU. It is a test tool,
// not a backend: one OS thread runs one launch, block after block, and inside a block every CUDA
// thread is a fiber that runs until it waits at __syncthreads or at a warp collective
// (__shfl_down_sync, __ballot_sync, __match_any_sync). __syncthreads is released when every live
// thread of the block waits at one; a collective when every lane its mask names has arrived.
// Each kernel's launches run its threads (and its blocks) in increasing and decreasing order in
// turn, so a read of shared memory that lacks its barrier sees the other order's result on one of
// two runs (the determinism tests run each call 10 times). Undefined uses of the collectives (a
// mask naming an exited lane, a shuffle from a lane that does not take part) and a block stuck
// between
// __syncthreads and a collective stop the program with a message.
//
// Device memory is kept apart from host memory (an arena the host cannot touch outside device
// work; kernel pointer arguments and copy kinds checked), and every copy of the emulator in a
// process (libsegloss_c embeds one) shares one state: device blocks and streams.
//
// What it cannot show: speed, the memory model between blocks or between a kernel and the host
// (everything here runs in program order), and nvcc's own compilation (CI compiles the real
// backend with nvcc separately). Streams run their work
// when it is enqueued; a stream under capture records it instead (cudaStreamBeginCapture ...
// cudaGraphLaunch replays it), and a capture fails, as on a GPU, when the captured code
// synchronizes, allocates or frees, or enqueues on the legacy stream beside a blocking stream
// under capture.
//
// Device code: __global__, __device__, __host__ and __launch_bounds__ vanish; a plain static
// __shared__ array becomes a `static thread_local` (one OS thread runs a whole block at a time, so
// its fibers share it) that keeps the last block's values, so the backend declares its shared
// arrays with SEGLOSS_STATIC_SHARED and SEGLOSS_DYNAMIC_SHARED (backends/cuda/runtime.cuh), which
// start each block as 0xff bytes. Kernels are launched with cuda::launch (runtime.cuh), not with
// <<< >>>, which only nvcc parses. docs/cuda.md, "The emulator", has the rest.
#pragma once

#if !defined(SEGLOSS_CUDA_EMULATION)
#error "backends/cuda/emulator/cuda_runtime.h is for the CUDA emulator build (SEGLOSS_CUDA=EMULATE)"
#endif

#include <cmath>  // NAN, expf, ...: the real header brings the math functions too
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- device-code keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static thread_local
#define __launch_bounds__(...)
#define __grid_constant__

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};

// The running fiber's indices (set by the scheduler before it switches to a fiber).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- runtime types ----
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUgraphNode_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
typedef CUgraph_st* cudaGraph_t;
typedef CUgraphExec_st* cudaGraphExec_t;
typedef CUgraphNode_st* cudaGraphNode_t;

#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))
#define cudaStreamPerThread (reinterpret_cast<cudaStream_t>(0x2))
constexpr unsigned cudaStreamDefault = 0x0;
constexpr unsigned cudaStreamNonBlocking = 0x1;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
  int warpSize;
  int maxThreadsPerBlock;
};

// ---- runtime API (backends/cuda/emulator/emulator.cpp) ----
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// ---- the emulator's machinery ----
namespace segloss_emu {

// Runs `kernel` for every thread of the grid now, or records it when `stream` is capturing.
// Returns the launch's error (a bad configuration, or a capture broken by the stream).
// `key` names the kernel (its address): each kernel's launches alternate their thread and block
// order. `pointers`: the launch's pointer arguments, checked when the launch runs (a graph's
// replay included): each must be null or in a live cudaMalloc block (one past its end
// included); a freed block, a host address, or a device address no block holds stops the
// program with a message.
cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const void* key,
                   std::vector<const void*> pointers, std::function<void()> kernel);
inline cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                          const void* key, std::function<void()> kernel) {
  return launch(grid, block, shared_bytes, stream, key, {}, std::move(kernel));
}

// Stops the program when [p, p + bytes) touches device memory that cudaFree released and the
// emulator still holds back (the addresses of its last 64 MiB of freed blocks): a
// memset, a copy or a kernel argument on a freed buffer, e.g. a CUDA graph replaying a workspace
// that was freed after the capture. `what` names the use. A GPU may unmap such memory (an
// illegal-address error that poisons the context) or give it to another allocation.
void check_not_freed(const void* p, size_t bytes, const char* what);

// Copies device memory to the host outside any stream (for the emulator's own tests: a capture
// forbids cudaMemcpy, and the host cannot read device memory directly).
void peek(void* host, const void* device, size_t bytes);

// The bytes of device memory that cudaMalloc gave and cudaFree has not taken back (for tests:
// a buffer the library should have freed shows here).
size_t live_device_bytes();

// Device memory: cudaMalloc's blocks come from a range of addresses starting here (emulator.cpp,
// "device memory"), reserved at the first use and inaccessible to the host outside device work.
constexpr uintptr_t kArenaBegin = uintptr_t{0x5e100} << 28;  // 0x5e1000000000

// Appends a launch argument to `pointers` when it is a pointer. Pointers inside argument
// structs are not looked for (a struct's padding can hold any bytes): a kernel that dereferences
// one into a freed block or an unused page of the arena faults instead (those pages are
// inaccessible), and the emulator's SIGSEGV handler says so.
template <class P>
void add_pointer(std::vector<const void*>& pointers, const P& p) {
  if constexpr (std::is_pointer_v<P>) pointers.push_back(static_cast<const void*>(p));
}

// The running block's dynamic shared memory (SEGLOSS_DYNAMIC_SHARED).
void* dynamic_shared();
// The running block's copy of the static __shared__ variable `tag` (SEGLOSS_STATIC_SHARED):
// filled with 0xff bytes at its first use in each block.
void* static_shared(const void* tag, size_t bytes);
// The running thread's lane (its linear index in the block, modulo 32).
unsigned lane();
// Stops the program: a warp collective used in a way that is undefined on a GPU.
[[noreturn]] void fail_collective(const char* what, const char* detail);
// Whether the running block is the last that the launch runs (the blocks run one after another):
// runtime.cuh's last_block checks its ticket against it.
bool running_last_block();

// Barriers and warp collectives of the running fiber.
void sync_block();
// Every live lane of the warp deposits `mine`; returns after all have, with the 32 lanes' values
// in `all` and the lanes that took part in the return value. Fails (stops the program) when a lane
// named in `mask` does not take part.
unsigned warp_exchange(unsigned mask, uint64_t mine, uint64_t (&all)[32], const char* what);

template <class T>
uint64_t bits_of(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "a warp value of <= 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace segloss_emu

// CUDA's math header declares these in the global namespace, for host and device code.
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

// ---- device functions ----
inline void __syncthreads() {
  segloss_emu::sync_block();
}

template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
    segloss_emu::fail_collective("__shfl_down_sync", "width is not a power of 2 up to 32");
  uint64_t all[32];
  const unsigned present =
      segloss_emu::warp_exchange(mask, segloss_emu::bits_of(var), all, "__shfl_down_sync");
  const unsigned lane = segloss_emu::lane(), w = static_cast<unsigned>(width);
  const unsigned base = lane / w * w, src = lane + delta;
  if (src >= base + w) return var;
  if ((present >> src & 1u) == 0)
    segloss_emu::fail_collective("__shfl_down_sync", "reads a lane that does not take part");
  return segloss_emu::from_bits<T>(all[src]);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  uint64_t all[32];
  const unsigned present =
      segloss_emu::warp_exchange(mask, predicate != 0 ? 1u : 0u, all, "__ballot_sync");
  unsigned out = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask & present) >> l & 1u && all[l] != 0) out |= 1u << l;
  return out;
}

template <class T>
unsigned __match_any_sync(unsigned mask, T value) {
  uint64_t all[32];
  const uint64_t mine = segloss_emu::bits_of(value);
  const unsigned present = segloss_emu::warp_exchange(mask, mine, all, "__match_any_sync");
  unsigned out = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask & present) >> l & 1u && all[l] == mine) out |= 1u << l;
  return out;
}

inline int __popc(unsigned v) {
  return __builtin_popcount(v);
}
inline int __ffs(int v) {
  return __builtin_ffs(v);
}

// Fibers never run at the same time on one OS thread, so a read-modify-write is atomic with
// respect to the other threads of the launch.
namespace segloss_emu {
template <class T, class F>
T read_modify_write(T* p, F f) {
  const T old = *p;
  *p = f(old);
  return old;
}
}  // namespace segloss_emu
template <class T>
T atomicAdd(T* p, T v) {
  return segloss_emu::read_modify_write(p, [v](T old) { return old + v; });
}
template <class T>
T atomicOr(T* p, T v) {
  return segloss_emu::read_modify_write(p, [v](T old) { return old | v; });
}
template <class T>
T atomicMin(T* p, T v) {
  return segloss_emu::read_modify_write(p, [v](T old) { return v < old ? v : old; });
}
template <class T>
T atomicMax(T* p, T v) {
  return segloss_emu::read_modify_write(p, [v](T old) { return old < v ? v : old; });
}

// Everything here runs in program order, one block after another: a fence has nothing to order.
inline void __threadfence() {}

template <class T>
T __ldcs(const T* p) {
  return *p;
}
template <class T>
void __stcs(T* p, T v) {
  *p = v;
}
