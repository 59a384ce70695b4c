// The CUDA backend's common machinery, for the .cu files of backends/cuda (not installed):
// error checks, the current stream, one call's workspace (Call), and the deterministic
// two-stage reduction. docs/cuda.md describes the design.
//
// A pass runs a Body over a PlaneGrid (core/cuda_internal.hpp): block b handles part
// b % parts of plane b / parts, each thread a fixed, strided set of its elements. A reducing
// pass sums K doubles per thread, then per block with a fixed tree in shared memory, and writes
// the block's K partials; combine() then adds the partials of each group (a plane, or the whole
// tensor) in a fixed tree again. No atomics on results: the same input gives the same bits on
// every run.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../../core/cuda.hpp"
#include "../../core/cuda_internal.hpp"
#include "../../core/error.hpp"
#include "../../core/half.hpp"
#include "../../core/tensor.hpp"

namespace segloss {
namespace cuda {

using detail::kThreads;
using detail::PlaneGrid;

// A product that nvcc may not fuse with a following addition into an FMA: the CPU (ISO C++,
// -ffp-contract=off) rounds the product, then the sum. Kernels that promise the CPU's bits use
// it for every product that feeds an addition.
__device__ __forceinline__ double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
__device__ __forceinline__ float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// An asynchronous 4- or 8-byte copy from global to shared memory (cp.async, sm_80 and later), and
// the wait for this thread's copies. Elsewhere (the compute_75 PTX, the emulator) a plain copy.
template <class T>
__device__ __forceinline__ void copy_async(T* to_shared, const T* from) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "copy_async copies 4 or 8 bytes");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(to_shared));
  if constexpr (sizeof(T) == 4)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(from) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(s), "l"(from) : "memory");
#else
  *to_shared = *from;
#endif
}
__device__ __forceinline__ void wait_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Blocks of kThreads for `items` independent threads' work, at most 2^20 (grid-stride loops
// cover the rest).
inline unsigned grid_blocks(int64_t items) {
  const int64_t b = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, int64_t{1} << 20)));
}

// Throws segloss::Error "function: what failed: <CUDA's message>" unless e is cudaSuccess.
void check(cudaError_t e, const char* function, const char* what);

// The calling thread's current stream (StreamScope's, else the legacy default stream). Not
// named stream(): inside Call, whose member stream() returns the call's stream, an unqualified
// stream() would find the member (that was the crash of the first GPU run: Call's constructor
// initialized stream_ from itself, an uninitialized value).
inline cudaStream_t thread_stream() {
  return static_cast<cudaStream_t>(current_stream());
}
// The same, for code outside Call's members (kept for the kernels written against it).
inline cudaStream_t stream() {
  return thread_stream();
}

// Launches kernel<<<grid, block, shared_bytes, stream>>>(args...). Every kernel of the backend is
// launched through it, so that the emulator build (SEGLOSS_CUDA=EMULATE: a host compiler, which
// cannot parse <<< >>>) runs the same code; there it runs the kernel on the CPU
// (backends/cuda/emulator). A launch error is left for cudaGetLastError, as with <<< >>>.
template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t s,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: as many arguments as the kernel takes");
#if defined(SEGLOSS_CUDA_EMULATION)
  // The arguments are converted to the parameter types once, as a launch copies them to the
  // device; each emulated thread gets its own copy, as each GPU thread sees the parameters.
  auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
  std::vector<const void*> pointers;  // checked against freed device memory when the launch runs
  std::apply([&pointers](const auto&... p) { (segloss_emu::add_pointer(pointers, p), ...); },
             *params);
  segloss_emu::launch(
      grid, block, shared_bytes, s, reinterpret_cast<const void*>(kernel), std::move(pointers),
      [kernel, params] { std::apply([kernel](const auto&... p) { kernel(p...); }, *params); });
#else
  kernel<<<grid, block, shared_bytes, s>>>(std::forward<A>(args)...);
#endif
}

// A kernel launched outside a Call (the tape's elementwise primitives, the 16-bit conversions,
// Tensor::full): segloss::detail::device_take_pending(function) (core/tensor.hpp), the launch,
// then check(cudaGetLastError(), function, what), `what` naming the launch ("an elementwise
// kernel's launch").
template <class... P, class... A>
void launch_checked(const char* function, const char* what, void (*kernel)(P...), dim3 grid,
                    dim3 block, size_t shared_bytes, cudaStream_t s, A&&... args) {
  segloss::detail::device_take_pending(function);
  launch(kernel, grid, block, shared_bytes, s, std::forward<A>(args)...);
  check(cudaGetLastError(), function, what);
}

// Declares a static shared array, `__shared__ type name dims` (dims: "[n]" or "[k][n]"). The
// emulator poisons it at the start of each block, as it does dynamic shared memory: a plain
// __shared__ there is a static thread_local that keeps the last block's values.
#if defined(SEGLOSS_CUDA_EMULATION)
#define SEGLOSS_STATIC_SHARED(type, name, dims) \
  static const char name##_tag = 0;             \
  auto& name =                                  \
      *static_cast<type(*) dims>(::segloss_emu::static_shared(&name##_tag, sizeof(type dims)))
#else
#define SEGLOSS_STATIC_SHARED(type, name, dims) __shared__ type name dims
#endif

// Declares the kernel's dynamic shared memory (the launch's shared_bytes) as `type name[]`.
#if defined(SEGLOSS_CUDA_EMULATION)
#define SEGLOSS_DYNAMIC_SHARED(type, name) \
  type* const name = static_cast<type*>(::segloss_emu::dynamic_shared())
#else
#define SEGLOSS_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// The bits a kernel may set in a call's error flag (an int; atomicOr on it is not a result).
// A loss that reads labels passes call.flag() to its kernels, which do
//   if (label out of range) atomicOr(flag, kBadLabel);   // and skip the element
// and reads its host value with call.host_value("target holds a label outside [0, C)");
// a device-resident value becomes NaN instead (device_value).
constexpr int kBadLabel = 1;
// A class weight that is negative or not finite, found by the overlap losses' finalize (the host
// cannot check device values without a wait): the value is NaN, and a host value raises.
constexpr int kBadClassWeight = 2;

// The call's header (detail::kHeaderBytes, zeroed on the stream by Call's constructor): the slots
// the kernels of the backend share, at fixed offsets. Only these: a new slot goes here.
namespace header {
constexpr size_t kValue = 0;       // double: the result (Call::value)
constexpr size_t kFlag = 8;        // int: the error flag's bits (Call::flag)
constexpr size_t kBceScale = 16;   // double: bce_dice's BCE gradient scale, finalize to pass 2
constexpr size_t kFirstBad = 24;   // unsigned long long: ~(the first bad label's index), atomicMax
constexpr size_t kCounts = 32;     // two doubles: the overlap finalize's scores kept and skipped
constexpr size_t kWeightSum = 48;  // double: bce mean_over weight_sum's divisor W (weight_sum.cuh)
constexpr size_t kWeightScale = 56;  // double: its factor 1/W, 0 when W = 0 (weight_sum.cuh)
constexpr size_t kParts = 64;        // two doubles: bce_dice's BCE and Dice terms (its parts)
constexpr size_t kTicket = 80;       // unsigned: the blocks of the running pass done (last_block)
constexpr size_t kEnd = 84;
static_assert(kFlag >= kValue + sizeof(double) && kBceScale >= kFlag + sizeof(int) &&
                  kFirstBad >= kBceScale + sizeof(double) &&
                  kCounts >= kFirstBad + sizeof(unsigned long long) &&
                  kWeightSum >= kCounts + 2 * sizeof(double) &&
                  kWeightScale >= kWeightSum + sizeof(double) &&
                  kParts >= kWeightScale + sizeof(double) &&
                  kTicket >= kParts + 2 * sizeof(double) && kEnd >= kTicket + sizeof(unsigned),
              "the header's slots overlap");
static_assert(kEnd <= detail::kHeaderBytes, "the header's slots exceed the header");
static_assert(kTicket % alignof(unsigned) == 0 && kFirstBad % alignof(unsigned long long) == 0 &&
                  kCounts % alignof(double) == 0 && kBceScale % alignof(double) == 0 &&
                  kWeightSum % alignof(double) == 0 && kWeightScale % alignof(double) == 0 &&
                  kParts % alignof(double) == 0,
              "a header slot is misaligned");
}  // namespace header

// Whether a call on the current stream can have a workspace of `bytes` without an error: the
// caller's WorkspaceScope holds them, or the pool holds them or may grow (not under graph
// capture). For a call that uses more workspace only to go faster (the overlap losses' target
// bits): it keeps to cuda::workspace_size() otherwise.
namespace detail {
bool workspace_holds(size_t bytes);
}  // namespace detail

// One library call on the current stream: its workspace (from the caller's WorkspaceScope, or
// the pool of this device and stream, locked for the call's lifetime so that calls from other
// threads on the same stream enqueue after it), with the header (result slot, error flag)
// zeroed on the stream.
class Call {
 public:
  Call(const char* function, size_t bytes);
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const char* function() const { return function_; }
  cudaStream_t stream() const { return stream_; }
  template <class U>
  U* at(size_t offset) const {
    return reinterpret_cast<U*>(base_ + offset);
  }
  double* value() const { return at<double>(header::kValue); }
  int* flag() const { return at<int>(header::kFlag); }

  // After a launch: throws if it failed.
  void launched() const;
  // Copies the result slot and the error flag to the host and waits for the stream. A set flag
  // throws segloss::Error("function: flag_message").
  double host_value(const char* flag_message = "a kernel reported an error");
  // out[0] = the result slot as T, or NaN when the error flag is set; enqueued, no wait.
  template <class T>
  void device_value(T* out) const;
  // out[0] = held_scale * out[0] + value_scale * the result slot, in double (no FMA), rounded to
  // T (NaN when the error flag is set): a combined loss's total from its first term's device
  // value, which out holds (already rounded to T), and this call's (losses/combined.cpp).
  // Enqueued, no wait.
  template <class T>
  void device_total(T* out, double held_scale, double value_scale) const;

 private:
  const char* function_;
  cudaStream_t stream_;
  char* base_ = nullptr;
  std::unique_lock<std::mutex> lock_;
};

// A grid of one block per plane, group or segment: refused past CUDA's 2^31 - 1 blocks (a launch
// fails there, and the cast to unsigned would cut the grid past 2^32) with an Error naming the
// call's function, instead of a launch error or a silently short grid.
inline unsigned grid_of(const Call& call, int64_t blocks, const char* what) {
  SEGLOSS_CHECK(blocks >= 0 && blocks <= 2147483647, call.function(), what, " needs ", blocks,
                " CUDA blocks; a grid holds at most 2^31 - 1");
  return static_cast<unsigned>(blocks);
}

// out[0] = the result slot as T, or NaN when the error flag is set: Call::device_value's kernel,
// and the last step of a call that writes the device value itself (one launch fewer).
template <class T>
__device__ __forceinline__ void store_value(const double* value, const int* flag, T* out) {
  out[0] = *flag ? static_cast<T>(NAN) : static_cast<T>(*value);
}

template <class T>
__global__ void store_value_kernel(const double* value, const int* flag, T* out) {
  store_value(value, flag, out);
}

template <class T>
void Call::device_value(T* out) const {
  launch(store_value_kernel<T>, 1, 1, 0, stream_, value(), flag(), out);
  launched();
}

template <class T>
__global__ void store_total_kernel(const double* value, const int* flag, T* out, double held_scale,
                                   double value_scale) {
  // Two rounded products and a rounded sum, as the host's w1 * a + w2 * b (nvcc would contract
  // them into an FMA).
  const double total =
      mul_rn(held_scale, static_cast<double>(out[0])) + mul_rn(value_scale, *value);
  out[0] = *flag ? static_cast<T>(NAN) : static_cast<T>(total);
}

template <class T>
void Call::device_total(T* out, double held_scale, double value_scale) const {
  launch(store_total_kernel<T>, 1, 1, 0, stream_, value(), flag(), out, held_scale, value_scale);
  launched();
}

// Sums acc[0..K) over the block's threads in a fixed tree; thread 0 writes them to out[0..K).
template <int K>
__device__ void block_sum(const double (&acc)[K], double* out) {
  SEGLOSS_STATIC_SHARED(double, buf, [K][kThreads]);
  for (int k = 0; k < K; ++k) buf[k][threadIdx.x] = acc[k];
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s)
      for (int k = 0; k < K; ++k) buf[k][threadIdx.x] += buf[k][threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < K; ++k) out[k] = buf[k][0];
}

// Whether this block is the last of its grid to get here, for a pass whose one-block follow-up
// step (a finalize, cross_entropy's prepare and finish) its last block runs instead of a kernel
// of its own: one launch, and its latency, less per step. Every thread of the block calls it,
// after the block's results are written; it returns the same answer to all of them. ticket
// (the header's kTicket) is 0 at the launch: the Call's header is zeroed, and the last block
// puts it back to 0 for the call's next such pass. Thread 0 draws a ticket with a release add
// (after the barrier: release is cumulative, so it covers every write of the block that the
// barrier ordered before it); the block that draws the last ticket fences (acquire), and so
// sees every block's results (the CUDA programming guide's sum whose last block adds the
// partials, "memory fence functions", with the fence of the writers as a release: on sm_90
// __threadfence is MEMBAR.SC and an invalidation of the whole L1 (CCTL.IVALL), which every block
// would pay, while the release add is MEMBAR.ALL without it). The follow-up step runs the same
// code on the same data as its own kernel did: the same bits.
__device__ __forceinline__ unsigned arrive_release(unsigned* ticket) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  unsigned done;
  asm volatile("atom.add.release.gpu.u32 %0, [%1], 1;" : "=r"(done) : "l"(ticket) : "memory");
  return done;
#else
  return atomicAdd(ticket, 1u);
#endif
}

__device__ __forceinline__ bool last_block(unsigned* ticket) {
  SEGLOSS_STATIC_SHARED(int, last, [1]);
  __syncthreads();  // the block's writes before thread 0's release
  if (threadIdx.x == 0) {
    const unsigned done = arrive_release(ticket);
    last[0] = done + 1 == gridDim.x;
#if defined(SEGLOSS_CUDA_EMULATION)
    // The blocks run one after another here, so the last ticket is the last block run: a choice
    // of another block, or of several, stops the program instead of racing on a GPU.
    if ((last[0] != 0) != segloss_emu::running_last_block())
      segloss_emu::fail_collective("last_block", "the last ticket is not the launch's last block");
#endif
    if (last[0]) {
      __threadfence();  // acquire: every other block's results before this block's reads
      *ticket = 0;      // no other block of this grid touches it any more
    }
  }
  __syncthreads();
  return last[0] != 0;
}

// The finalize kernels do their math in one thread, which reads the per-plane sums one
// dependent load at a time (some of them several times): each load a round trip to L2 while
// the rest of the GPU waits for the next pass. So the kernel runs a whole block first, which
// copies the n sums into shared memory; thread 0 then reads them there. The same values in the
// same order: the same bits. Every thread of the block calls it (it waits for the block); it
// returns where to read the sums: the shared copy when n <= kStagedDoubles, else `from` itself.
constexpr int64_t kStagedDoubles = 4096;  // 32 KiB of static shared memory

__device__ __forceinline__ const double* stage_sums(const double* from, int64_t n, double* shared) {
  const bool fits = n <= kStagedDoubles;
  if (fits)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) shared[i] = from[i];
  __syncthreads();
  return fits ? shared : from;
}

// Elements a thread handles per step: their loads are issued together, and their statistics
// are added in the element type (as the CPU adds 8 packets) before one addition in double.
constexpr int kUnroll = 8;

// One element of a pass: the body's operator() adds the element's statistics to part and, for a
// body that writes one value per element through the pass (GradBody: its operator() returns the
// value), the pass stores that value with at.store(i, value); a body whose operator() returns
// nothing writes what it writes itself.
template <class At, class In, class Part, int K>
__device__ __forceinline__ void pass_element(const At& at, int64_t s, int64_t i, const In& in,
                                             Part (&part)[K]) {
  if constexpr (std::is_void_v<decltype(at(s, i, in, part))>)
    at(s, i, in, part);
  else
    at.store(i, at(s, i, in, part));
}

// A pass over the grid. body.at(plane) gives the plane's view: its load(i) reads the inputs of
// element i (an At::In), and its operator()(s, i, in, part) handles element s of the plane
// (linear index i) from them and adds its K statistics to part (of type Body::Part, the element
// type). Thread t of a block handles the elements begin + t + j * 256
// of its range, Unroll (kUnroll by default) of them per step. With K > 0 the block writes its K
// sums to partials[block * K + k]; K = 0 is a pass that only writes (a gradient). The body is a
// __grid_constant__ parameter: a plane's view may point into it (a broadcast weight's reader)
// without a per-thread copy.
// MinBlocks and Unroll: the blocks a multiprocessor must fit (__launch_bounds__; 0: no minimum,
// as no second argument: 1 is not the same, it moved ptxas's choice for the BCE pass from 48
// registers to 56) and the elements per step; the library's passes use the defaults,
// bench/cuda_variants.cu tries others. A body with 16-byte loads (QuadBody) runs
// quad_pass_kernel instead where its accesses are aligned (runs_quads).
template <int K, class Body, int MinBlocks = 0, int Unroll = kUnroll>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    plane_pass_kernel(const PlaneGrid g, const __grid_constant__ Body body, double* partials) {
  using Part = typename Body::Part;
  constexpr int KK = K > 0 ? K : 1;
  const int64_t plane = blockIdx.x / g.parts, part_index = blockIdx.x % g.parts;
  const int64_t begin = part_index * g.part_size;
  const int64_t end = begin + g.part_size < g.plane_size ? begin + g.part_size : g.plane_size;
  using At = decltype(body.at(0));
  const At at = body.at(plane);
  double acc[KK] = {};
  const int64_t base = plane * g.plane_size;
  for (int64_t s0 = begin + threadIdx.x; s0 < end; s0 += kThreads * Unroll) {
    // Every load of the step before any store: a gradient pass's stores could alias the next
    // elements' inputs as far as the compiler knows, which would serialize load, math, store.
    typename At::In in[Unroll];
#pragma unroll
    for (int u = 0; u < Unroll; ++u) {
      const int64_t s = s0 + u * kThreads;
      if (s < end) in[u] = at.load(base + s);
    }
    Part part[KK] = {};
#pragma unroll
    for (int u = 0; u < Unroll; ++u) {
      const int64_t s = s0 + u * kThreads;
      if (s < end) pass_element(at, s, base + s, in[u], part);
    }
    for (int k = 0; k < KK; ++k) acc[k] += static_cast<double>(part[k]);
  }
  if constexpr (K > 0) block_sum<K>(acc, partials + static_cast<int64_t>(blockIdx.x) * K);
}

// ---- 16-byte loads and stores (session 16) ----
// Session 13's experiment (bench/RESULTS.md, "The experiment") ran the BCE pass with float4
// loads and stores at 0.957 of the copy against 0.909 with the library's scalar loop: a quarter
// of the load and store instructions for the same bytes. quad_pass_kernel gives that to the
// bodies that can take it (QuadBody): thread t handles the quads (4 consecutive elements)
// t + j * 256 of its block's range, two quads per step (kUnroll elements), in element order, each
// read (and its gradient written) with one float4 access per array.
// plane_pass runs it where every access is whole and aligned: the planes' size a multiple of 4
// (plane_grid's part_size is one too, so every range starts and ends on a quad) and every array
// the body reads or writes 16-byte aligned (cudaMalloc'd tensors are; a view may not be). Else,
// or with detail::set_quad_loads(false), plane_pass_kernel runs: another cut of the sums (a
// thread adds 8 elements 256 apart there), so the bits may differ in the last places between
// the two, each deterministic.

// Whether p is 16-byte aligned (host or device).
template <class T>
inline bool aligned16(const T* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// On the emulator, where the quad accesses are element-wise, a quad that is not 16-byte aligned
// stops the program, as a misaligned float4 access would fault on a GPU.
template <class T>
__device__ __forceinline__ void check_quad(const T* p) {
#if defined(SEGLOSS_CUDA_EMULATION)
  if (!aligned16(p))
    segloss_emu::fail_collective("load_quad / store_quad", "a quad that is not 16-byte aligned");
#else
  (void)p;
#endif
}

// The 4 floats at p (16-byte aligned): one float4 load; on the emulator one at a time. Float only:
// the quad passes run in float (overlap_passes.cuh kQuads).
__device__ __forceinline__ void load_quad(const float* p, float (&v)[4]) {
#if defined(__CUDA_ARCH__)
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x;
  v[1] = q.y;
  v[2] = q.z;
  v[3] = q.w;
#else
  check_quad(p);
#if defined(SEGLOSS_CUDA_EMULATION)
  detail::emulated_quad_loads().fetch_add(1, std::memory_order_relaxed);
#endif
  for (int k = 0; k < 4; ++k) v[k] = p[k];
#endif
}

// The store goes through __stcs (st.global.cs, evict-first: STG.E.EF.128, as the experiment's
// float4 variant stored; the call does not read the gradient again). Written as a plain float4
// assignment, nvcc 13.0 split the first quad's store of every step into four 32-bit stores (its
// SASS had one STG.E.128 and four STG.E per step; found in review).
__device__ __forceinline__ void store_quad(float* p, const float (&v)[4]) {
#if defined(__CUDA_ARCH__)
  __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
#else
  check_quad(p);
  for (int k = 0; k < 4; ++k) p[k] = v[k];
#endif
}

// The inputs {x, t} of elements i .. i + 3 of two arrays (i 16-byte aligned in both), one float4
// load each.
template <class In>
__device__ __forceinline__ void read_quad(const float* x, const float* t, int64_t i, In (&in)[4]) {
  float xv[4], tv[4];
  load_quad(x + i, xv);
  load_quad(t + i, tv);
  for (int k = 0; k < 4; ++k) in[k] = {xv[k], tv[k]};
}

// A quad body: its plane view (At) declares kQuads (and may declare kMinBlocks, quad_pass_kernel's
// blocks per multiprocessor) and gives, besides load and operator():
//   load_quad(i, in[4]): the inputs of elements i .. i + 3 (i a multiple of 4), with load_quad;
//   and, when its operator() returns the value to store, store(i, v) and store_quad(i, v[4]);
// and the body itself (on the host) aligned16(): whether every array it reads or writes is.
template <class At, class = void>
struct QuadView : std::false_type {};
template <class At>
struct QuadView<At, std::enable_if_t<At::kQuads>> : std::true_type {};
template <class Body>
constexpr bool QuadBody = QuadView<decltype(std::declval<const Body&>().at(0))>::value;

// The blocks per multiprocessor a quad body asks of ptxas (At::kMinBlocks, 0 for none).
template <class At, class = void>
struct QuadMinBlocks : std::integral_constant<int, 0> {};
template <class At>
struct QuadMinBlocks<At, std::void_t<decltype(At::kMinBlocks)>>
    : std::integral_constant<int, At::kMinBlocks> {};
template <class Body>
constexpr int quad_min_blocks = QuadMinBlocks<decltype(std::declval<const Body&>().at(0))>::value;

// ---- Binary targets as bits (session 17) ----
// A quad body's plane view may declare kTargetBits: 1 for a pass that writes, next to its work,
// one bit per target element (t == 1) and per thread whether all its targets were exactly +0.0
// or 1.0 (the statistics pass); 2 for a pass over the same grid that reads them instead of the
// targets where that thread's were (the gradient pass after it, in the same call). Its `bits`
// (a TargetBits) says where; a null `data` turns it off. The bits of a range (of its block) are
// kThreads flag bytes (thread t's at t), then kThreads bytes per step (thread t's at
// kThreads * (step + 1) + t: bit 4 u + k is element k of its quad u), so each access of a warp is
// 32 consecutive bytes, and the gradient pass (whose blocks may run the ranges from the end)
// reads what the same thread of the same range wrote. Only +0.0 and 1.0 count as binary, so
// the targets come back with their bits: the same gradient and values. The gradient pass then
// reads 1/32 of the targets' bytes; soft and other targets (a thread's at a time) read them.
struct TargetBits {
  uint8_t* data = nullptr;
  int64_t range_bytes = 0;  // kThreads * (steps + 1)
};

// The bytes of one range's bits on grid g (a step of quad_pass_kernel takes 4 * kThreads *
// kQuadsPerStep elements of the range).
constexpr int kQuadsPerStep = kUnroll / 4;
inline int64_t target_bits_range_bytes(const PlaneGrid& g) {
  const int64_t per_step = 4 * kThreads * kQuadsPerStep;
  return kThreads * ((g.part_size + per_step - 1) / per_step + 1);
}

template <class At, class = void>
struct TargetBitsMode : std::integral_constant<int, 0> {};
template <class At>
struct TargetBitsMode<At, std::void_t<decltype(At::kTargetBits)>>
    : std::integral_constant<int, At::kTargetBits> {};

constexpr uint32_t kOneBits = 0x3f800000u;  // 1.0f

// from_the_end: block b takes the range (and writes the partials) of block blocks - 1 - b. The
// GPU starts the blocks in about the order of their index, so a pass that follows one over the
// same inputs (the overlap losses' gradient pass after their statistics pass) starts on the
// ranges that pass read last, which may still be in L2 (50 MB on an H100/H200). Each range's
// partials are the same, in the same place: the same bits.
template <int K, class Body, int MinBlocks = quad_min_blocks<Body>>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    quad_pass_kernel(const PlaneGrid g, const __grid_constant__ Body body, double* partials,
                     bool from_the_end) {
  using Part = typename Body::Part;
  using At = decltype(body.at(0));
  using In = typename At::In;
  constexpr int KK = K > 0 ? K : 1;
  constexpr int Q = kQuadsPerStep;
  constexpr int kBits = TargetBitsMode<At>::value;  // 1: writes the target bits, 2: reads them
  constexpr int64_t kStride = 4 * kThreads;
  // A body whose operator() returns the element's value (GradBody), which the pass stores.
  constexpr bool kWrites = !std::is_void_v<decltype(body.at(0)(
      int64_t{0}, int64_t{0}, std::declval<const In&>(), std::declval<Part(&)[KK]>()))>;
  const int64_t block = from_the_end ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t plane = block / g.parts, part_index = block % g.parts;
  const int64_t begin = part_index * g.part_size;
  const int64_t end = begin + g.part_size < g.plane_size ? begin + g.part_size : g.plane_size;
  const At at = body.at(plane);
  const int64_t first = plane * g.plane_size + begin;  // the linear index of the range's start
  const int64_t n = end - begin;                       // a multiple of 4
  double acc[KK] = {};
  [[maybe_unused]] uint8_t* bits = nullptr;  // this range's target bits (TargetBits)
  [[maybe_unused]] bool packed = false;      // kBits == 2: read this thread's targets as bits
  [[maybe_unused]] bool binary = true;       // kBits == 1: every target so far +0.0 or 1.0
  if constexpr (kBits != 0) {
    if (at.bits.data) bits = at.bits.data + block * at.bits.range_bytes;
    if constexpr (kBits == 2) packed = bits && bits[threadIdx.x];
  }
  // This thread's byte of the step in bits.
  int64_t step_byte = kThreads + static_cast<int64_t>(threadIdx.x);
  for (int64_t q0 = 4 * static_cast<int64_t>(threadIdx.x); q0 < n;
       q0 += kStride * Q, step_byte += kThreads) {
    In in[Q][4];
    if (packed) {
      if constexpr (kBits == 2) {
        const uint32_t byte = bits[step_byte];
#pragma unroll
        for (int u = 0; u < Q; ++u) {
          const int64_t q = q0 + u * kStride;
          if (q < n) at.load_quad_x(first + q, in[u]);
#pragma unroll
          for (int k = 0; k < 4; ++k) in[u][k].t = (byte >> (4 * u + k)) & 1u ? Part(1) : Part(0);
        }
      }
    } else {
#pragma unroll
      for (int u = 0; u < Q; ++u) {
        const int64_t q = q0 + u * kStride;
        if (q < n) at.load_quad(first + q, in[u]);
      }
    }
    if constexpr (kBits == 1) {
      if (bits) {
        uint32_t byte = 0;
#pragma unroll
        for (int u = 0; u < Q; ++u) {
          if (q0 + u * kStride >= n) continue;
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const uint32_t b = segloss::detail::float_bits(in[u][k].t);
            binary = binary && (b == 0u || b == kOneBits);
            byte |= static_cast<uint32_t>(b == kOneBits) << (4 * u + k);
          }
        }
        bits[step_byte] = static_cast<uint8_t>(byte);
      }
    }
    Part part[KK] = {};
    [[maybe_unused]] Part out[Q][4];  // the values a writing body returns, stored per quad
#pragma unroll
    for (int u = 0; u < Q; ++u) {
      const int64_t q = q0 + u * kStride;
      if (q < n)
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if constexpr (kWrites)
            out[u][k] = at(begin + q + k, first + q + k, in[u][k], part);
          else
            at(begin + q + k, first + q + k, in[u][k], part);
        }
    }
    if constexpr (kWrites) {
#pragma unroll
      for (int u = 0; u < Q; ++u) {
        const int64_t q = q0 + u * kStride;
        if (q < n) at.store_quad(first + q, out[u]);
      }
    }
    for (int k = 0; k < KK; ++k) acc[k] += static_cast<double>(part[k]);
  }
  if constexpr (kBits == 1)
    if (bits) bits[threadIdx.x] = binary;
  if constexpr (K > 0) block_sum<K>(acc, partials + block * K);
}

// The order of a pass's blocks over the ranges (quad_pass_kernel's from_the_end; the scalar
// kernel runs forward).
enum class PassOrder { forward, from_the_end };

// Whether plane_pass runs `body` with quad_pass_kernel on grid g (see above).
template <class Body>
bool runs_quads(const PlaneGrid& g, const Body& body) {
  if constexpr (QuadBody<Body>)
    return detail::quad_loads() && g.plane_size % 4 == 0 && body.aligned16();
  else
    return false;
}

// quad_pass_kernel on grid g: for a caller that has checked runs_quads(g, body) itself (a body
// made only for the quad kernel); plane_pass chooses between the two kernels.
template <int K, class Body>
void quad_pass(const Call& call, const PlaneGrid& g, const Body& body, double* partials,
               PassOrder order = PassOrder::forward) {
  if (g.blocks() == 0) return;
  launch(quad_pass_kernel<K, Body>, grid_of(call, g.blocks(), "a pass over the planes"), kThreads,
         0, call.stream(), g, body, partials, order == PassOrder::from_the_end);
  call.launched();
}

template <int K, class Body>
void plane_pass(const Call& call, const PlaneGrid& g, const Body& body, double* partials,
                PassOrder order = PassOrder::forward) {
  if (g.blocks() == 0) return;
  if constexpr (QuadBody<Body>) {
    if (runs_quads(g, body)) return quad_pass<K>(call, g, body, partials, order);
  }
  launch(plane_pass_kernel<K, Body>, grid_of(call, g.blocks(), "a pass over the planes"), kThreads,
         0, call.stream(), g, body, partials);
  call.launched();
}

// The second stage: out[q * k + j] = sum over r < parts of partials[(q * parts + r) * k + j],
// for the groups q < groups, in a fixed order (one block per value, a strided sum per thread,
// then the block's tree).
void combine(const Call& call, const double* partials, int64_t groups, int64_t parts, int k,
             double* out);

// One block of combine: the value blockIdx.x (group blockIdx.x / k, entry blockIdx.x % k).
__device__ __forceinline__ void combine_block(const double* partials, int64_t parts, int k,
                                              double* out) {
  const int64_t q = blockIdx.x / k;
  const int j = static_cast<int>(blockIdx.x % k);
  double acc[1] = {0.0};
  for (int64_t r = threadIdx.x; r < parts; r += kThreads)
    acc[0] += partials[(q * parts + r) * k + j];
  block_sum<1>(acc, out + blockIdx.x);
}

// A one-block step (a finalize) as a functor: every thread of one block of kThreads calls
// step(); it may use static shared memory and __syncthreads.
template <class Step>
__global__ void step_kernel(const __grid_constant__ Step step) {
  step();
}

template <class Step>
void run_step(const Call& call, const Step& step) {
  launch(step_kernel<Step>, 1, kThreads, 0, call.stream(), step);
  call.launched();
}

template <class Step>
__global__ void combine_then_kernel(const double* partials, int64_t parts, int k, double* out,
                                    unsigned* ticket, const __grid_constant__ Step step) {
  combine_block(partials, parts, k, out);
  if (last_block(ticket)) step();
}

// combine, then `step` (run_step's functor) on its results: in combine's last block to finish
// (last_block), or, with detail::last_block_tails off, as combine and a kernel of its own. The
// same code on the same sums either way: the same bits.
template <class Step>
void combine_then(const Call& call, const double* partials, int64_t groups, int64_t parts, int k,
                  double* out, const Step& step) {
  if (groups * k == 0 || !detail::last_block_tails()) {
    combine(call, partials, groups, parts, k, out);
    run_step(call, step);
    return;
  }
  launch(combine_then_kernel<Step>, grid_of(call, groups * k, "the combine"), kThreads, 0,
         call.stream(), partials, parts, k, out, call.at<unsigned>(header::kTicket), step);
  call.launched();
}

}  // namespace cuda
}  // namespace segloss
