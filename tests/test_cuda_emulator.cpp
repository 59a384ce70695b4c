// The CUDA emulator itself (backends/cuda/emulator; built with -DSEGLOSS_CUDA=EMULATE): the
// semantics the backend's kernels rely on (barriers, warp collectives, dynamic shared memory),
// that a missing barrier shows, and that stream capture fails where a GPU's does. Kernels here
// are lambdas launched through segloss_emu::launch, the function cuda::launch calls.
#include <doctest/doctest.h>

#if defined(SEGLOSS_CUDA_EMULATION)

#include <cuda_runtime.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

namespace {

constexpr unsigned kBlock = 256;

// Runs kernel on one block of kBlock threads on the default stream.
// Each kernel's launches alternate their thread order: `key` names the kernel.
template <class F>
void run_block(const void* key, F kernel, size_t shared_bytes = 0) {
  REQUIRE(segloss_emu::launch(dim3(1), dim3(kBlock), shared_bytes, nullptr, key, kernel) ==
          cudaSuccess);
}

}  // namespace

TEST_CASE("cuda emulator: the build says it is the emulator") {
  CHECK(segloss::cuda::built());
  CHECK(segloss::cuda::emulated());
  CHECK(segloss::cuda::available());
  cudaDeviceProp prop{};
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(std::string(prop.name).find("emulator") != std::string::npos);
}

TEST_CASE("cuda emulator: threads meet at __syncthreads, whichever order they run in") {
  std::vector<int> out(kBlock, -1);
  for (int launch = 0; launch < 2; ++launch) {  // the two launches run in opposite orders
    static thread_local int buf[kBlock];
    run_block(&buf, [&] {
      const unsigned t = threadIdx.x;
      buf[t] = static_cast<int>(t) + 1000 * launch;
      __syncthreads();
      out[t] = buf[kBlock - 1 - t];
    });
    for (unsigned t = 0; t < kBlock; ++t)
      CHECK(out[t] == static_cast<int>(kBlock - 1 - t) + 1000 * launch);
  }
}

TEST_CASE("cuda emulator: a missing __syncthreads shows in one of two launches") {
  // Thread t reads what thread t + 1 writes, with no barrier between: run forward, t reads
  // before t + 1 has written (the previous launch's value); run backward, after.
  static thread_local int buf[kBlock];
  for (unsigned t = 0; t < kBlock; ++t) buf[t] = -1;
  int stale_launches = 0;
  for (int launch = 0; launch < 2; ++launch) {
    std::vector<int> out(kBlock, 0);
    run_block(&buf, [&] {
      const unsigned t = threadIdx.x;
      buf[t] = launch;
      out[t] = buf[(t + 1) % kBlock];
    });
    int stale = 0;
    for (unsigned t = 0; t + 1 < kBlock; ++t) stale += out[t] != launch;
    stale_launches += stale > 0;
  }
  CHECK(stale_launches == 1);
}

TEST_CASE("cuda emulator: warp shuffles, ballots and matches") {
  std::vector<int> sums(kBlock), ballots(kBlock), matches(kBlock);
  run_block(&sums, [&] {
    const unsigned t = threadIdx.x, lane = t & 31u;
    int v = static_cast<int>(t);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    sums[t] = v;
    ballots[t] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
    matches[t] = static_cast<int>(__match_any_sync(0xffffffffu, lane / 4));
  });
  unsigned every_third = 0;
  for (unsigned l = 0; l < 32; l += 3) every_third |= 1u << l;
  for (unsigned t = 0; t < kBlock; ++t) {
    const unsigned lane = t & 31u, warp = t / 32;
    if (lane == 0) CHECK(sums[t] == static_cast<int>(32 * 32 * warp + 31 * 32 / 2));
    CHECK(static_cast<unsigned>(ballots[t]) == every_third);
    CHECK(static_cast<unsigned>(matches[t]) == 0xfu << (lane / 4 * 4));
  }
}

TEST_CASE("cuda emulator: partial-mask collectives, and lanes of a 2-D block") {
  // Lanes 0-15 shuffle among themselves (width 16) while lanes 16-31 go to the barrier: legal.
  std::vector<int> got(kBlock, -1);
  run_block(&got, [&] {
    const unsigned t = threadIdx.x, lane = t & 31u;
    int v = static_cast<int>(t);
    if (lane < 16) v = __shfl_down_sync(0x0000ffffu, v, 1, 16);
    __syncthreads();
    got[t] = v;
  });
  for (unsigned t = 0; t < kBlock; ++t) {
    const unsigned lane = t & 31u;
    CHECK(got[t] == static_cast<int>(lane < 15 ? t + 1 : t));
  }
  // In a (16, 4) block a warp is two rows: linear thread 16 is lane 16 of warp 0.
  std::vector<int> next(64, -1);
  REQUIRE(segloss_emu::launch(dim3(1), dim3(16, 4), 0, nullptr, &next, [&] {
            const int linear = static_cast<int>(threadIdx.y * 16 + threadIdx.x);
            next[linear] = __shfl_down_sync(0xffffffffu, linear, 1);
          }) == cudaSuccess);
  for (int i = 0; i < 64; ++i) CHECK(next[i] == ((i & 31) == 31 ? i : i + 1));
}

TEST_CASE("cuda emulator: static shared variables are poisoned at each block's start") {
  static const char tag = 0;
  std::vector<uint32_t> seen(2 * kBlock);
  REQUIRE(segloss_emu::launch(dim3(2), dim3(kBlock), 0, nullptr, &tag, [&] {
            auto* sh = static_cast<uint32_t*>(segloss_emu::static_shared(&tag, kBlock * 4));
            seen[blockIdx.x * kBlock + threadIdx.x] = sh[threadIdx.x];
            __syncthreads();
            sh[threadIdx.x] = 7;
          }) == cudaSuccess);
  for (uint32_t v : seen) CHECK(v == 0xffffffffu);
}

TEST_CASE("cuda emulator: dynamic shared memory is the launch's size, poisoned per block") {
  std::vector<uint32_t> seen(2 * kBlock);
  REQUIRE(
      segloss_emu::launch(dim3(2), dim3(kBlock), kBlock * sizeof(uint32_t), nullptr, &seen, [&] {
        auto* sh = static_cast<uint32_t*>(segloss_emu::dynamic_shared());
        seen[blockIdx.x * kBlock + threadIdx.x] = sh[threadIdx.x];  // before anyone writes
        __syncthreads();
        sh[threadIdx.x] = 7;
      }) == cudaSuccess);
  for (uint32_t v : seen) CHECK(v == 0xffffffffu);  // block 1 does not see block 0's 7s
  CHECK(segloss_emu::launch(dim3(1), dim3(2048), 0, nullptr, nullptr, [] {}) ==
        cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);
}

// The int at device address d (host code cannot read device memory: the emulator stops it; and
// a capture forbids cudaMemcpy).
int device_int(const int* d) {
  int v = 0;
  segloss_emu::peek(&v, d, sizeof v);
  return v;
}

TEST_CASE("cuda emulator: a capture records work, and fails where a GPU's capture fails") {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  int* d = nullptr;
  REQUIRE(cudaMalloc(&d, 4 * sizeof(int)) == cudaSuccess);
  CHECK(reinterpret_cast<uintptr_t>(d) % 256 == 0);
  REQUIRE(cudaMemset(d, 0, 4 * sizeof(int)) == cudaSuccess);

  SUBCASE("recorded, not run, until the graph is launched") {
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    REQUIRE(cudaMemsetAsync(d, 1, sizeof(int), s) == cudaSuccess);
    CHECK(device_int(d) == 0);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 1);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(device_int(d) == 0x01010101);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  SUBCASE("a synchronize, an allocation, or the legacy stream beside a blocking stream breaks it") {
    cudaStream_t blocking = nullptr;
    REQUIRE(cudaStreamCreate(&blocking) == cudaSuccess);
    for (int what = 0; what < 3; ++what) {
      CAPTURE(what);
      cudaStream_t c = what == 2 ? blocking : s;
      REQUIRE(cudaStreamBeginCapture(c, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
      void* p = nullptr;
      const cudaError_t e = what == 0   ? cudaStreamSynchronize(c)
                            : what == 1 ? cudaMalloc(&p, 16)
                                        : cudaMemsetAsync(d, 2, sizeof(int), nullptr);
      CHECK(e != cudaSuccess);
      CHECK(p == nullptr);
      cudaGraph_t graph = nullptr;
      CHECK(cudaStreamEndCapture(c, &graph) == cudaErrorStreamCaptureInvalidated);
      CHECK(graph == nullptr);
      cudaGetLastError();
    }
    CHECK(device_int(d) == 0);  // the legacy stream's memset did not run
    // A non-blocking stream's capture does not wait for the legacy stream: that work runs.
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    CHECK(cudaMemsetAsync(d, 2, sizeof(int), nullptr) == cudaSuccess);
    cudaGraph_t graph = nullptr;
    CHECK(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    cudaGraphDestroy(graph);
    CHECK(device_int(d) == 0x02020202);
    cudaStreamDestroy(blocking);
  }
  cudaFree(d);
  cudaStreamDestroy(s);
}

// Runs f in a child process (its stderr silenced, SIGABRT's default action) and returns how it
// ended: the signal that stopped it, or 0 when it exited normally.
template <class F>
int signal_of_child(F f) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);  // not doctest's handler, which reports a crash on stdout
    if (!std::freopen("/dev/null", "w", stderr)) _exit(2);
    f();
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST_CASE("cuda emulator: device memory used after cudaFree stops the program") {
  void* live = nullptr;
  void* freed = nullptr;
  REQUIRE(cudaMalloc(&live, 1024) == cudaSuccess);
  REQUIRE(cudaMalloc(&freed, 1024) == cudaSuccess);
  REQUIRE(cudaFree(freed) == cudaSuccess);
  CHECK(cudaFree(freed) == cudaErrorInvalidValue);  // a second free: not a live allocation
  cudaGetLastError();
  int host = 0;
  CHECK(cudaFree(&host) == cudaErrorInvalidValue);  // not from cudaMalloc
  cudaGetLastError();

  auto* bytes = static_cast<unsigned char*>(freed);
  const int key = 0;
  // The controls: the same operations on live memory end normally.
  CHECK(signal_of_child([&] { cudaMemset(live, 0, 1024); }) == 0);
  CHECK(signal_of_child(
            [&] { segloss_emu::launch(dim3(1), dim3(32), 0, nullptr, &key, {live}, [] {}); }) == 0);
  // A memset, a copy (either end) and a kernel's pointer argument anywhere in the freed block.
  CHECK(signal_of_child([&] { cudaMemset(freed, 0, 16); }) == SIGABRT);
  CHECK(signal_of_child([&] { cudaMemsetAsync(bytes + 1000, 0, 100, nullptr); }) == SIGABRT);
  CHECK(signal_of_child([&] { cudaMemcpy(live, bytes + 512, 8, cudaMemcpyDeviceToDevice); }) ==
        SIGABRT);
  CHECK(signal_of_child([&] { cudaMemcpy(bytes, live, 8, cudaMemcpyDeviceToDevice); }) == SIGABRT);
  CHECK(signal_of_child([&] {
          segloss_emu::launch(dim3(1), dim3(32), 0, nullptr, &key, {bytes + 7}, [] {});
        }) == SIGABRT);
  // A range that starts before the freed block and runs into it.
  CHECK(signal_of_child([&] {
          unsigned char* before = bytes - 8;
          cudaMemset(before, 0, 16);
        }) == SIGABRT);
  REQUIRE(cudaFree(live) == cudaSuccess);
}

// How a child process running f ended (the signal, 0 for a normal exit) and what it wrote to
// stderr. SIGABRT and SIGSEGV get their default actions (not doctest's handler, which reports a
// crash on stdout); the emulator's SIGSEGV handler goes back in front at the next device work.
struct Outcome {
  int signal = -1;
  std::string err;
};
template <class F>
Outcome outcome_of_child(F f) {
  char path[] = "/tmp/segloss-emu-child-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);
    std::signal(SIGSEGV, SIG_DFL);  // as doctest leaves it after a case: device work puts the
    if (dup2(fd, 2) < 0) _exit(2);  // emulator's handler back
    f();
    _exit(0);
  }
  Outcome o;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid)
    o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  if (FILE* in = std::fopen(path, "r")) {
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) o.err.append(buf, n);
    std::fclose(in);
  }
  close(fd);
  std::remove(path);
  return o;
}
bool says(const Outcome& o, const char* text) {
  return o.err.find(text) != std::string::npos;
}

TEST_CASE("cuda emulator: device memory is not host memory") {
  constexpr size_t kBytes = 1000;
  unsigned char* dev = nullptr;
  unsigned char* other = nullptr;
  REQUIRE(cudaMalloc(&dev, kBytes) == cudaSuccess);
  REQUIRE(cudaMalloc(&other, kBytes) == cudaSuccess);
  std::vector<unsigned char> host(kBytes, 1);
  const int key = 0;

  SUBCASE("the controls: each use the right way ends normally") {
    const Outcome o = outcome_of_child([&] {
      cudaMemcpy(dev, host.data(), kBytes, cudaMemcpyHostToDevice);
      cudaMemcpy(other, dev, kBytes, cudaMemcpyDeviceToDevice);
      cudaMemcpy(host.data(), other, kBytes, cudaMemcpyDeviceToHost);
      cudaMemcpy(host.data(), host.data() + 1, 10, cudaMemcpyHostToHost);
      cudaMemset(dev + kBytes - 10, 0, 10);  // up to the block's last byte
      // A kernel given a block's start, a pointer inside it and one past its end.
      unsigned char* args[] = {dev, dev + 10, dev + kBytes};
      segloss_emu::launch(dim3(1), dim3(32), 0, nullptr, &key, {args[0], args[1], args[2]}, [args] {
        if (threadIdx.x == 0) args[0][0] = args[1][0];
      });
    });
    CHECK(o.signal == 0);
    CHECK(o.err.empty());
  }
  SUBCASE("host code reading or writing device memory stops the program, naming it") {
    // Device work first (a memset): it puts the emulator's SIGSEGV handler back in front, after a
    // test harness replaced it (doctest does at each case's end; the child starts with SIG_DFL).
    const Outcome read = outcome_of_child([&] {
      cudaMemset(dev, 0, 8);
      volatile unsigned char v = dev[3];
      (void)v;
    });
    CHECK(read.signal == SIGSEGV);
    CHECK(says(read, "host code touched device memory"));
    const Outcome write = outcome_of_child([&] {
      cudaMemset(dev, 0, 8);
      dev[kBytes - 1] = 0;
    });
    CHECK(write.signal == SIGSEGV);
    CHECK(says(write, "host code touched device memory"));
  }
  SUBCASE("a kernel given a host pointer stops the program") {
    const Outcome o = outcome_of_child(
        [&] { segloss_emu::launch(dim3(1), dim3(32), 0, nullptr, &key, {host.data()}, [] {}); });
    CHECK(o.signal == SIGABRT);
    CHECK(says(o, "a kernel given a host pointer"));
  }
  SUBCASE("a copy whose kind names the wrong side, or a memset of host memory") {
    const Outcome h2d_from_device =
        outcome_of_child([&] { cudaMemcpy(other, dev, 8, cudaMemcpyHostToDevice); });
    CHECK(h2d_from_device.signal == SIGABRT);
    CHECK(says(h2d_from_device, "device memory used as host memory"));
    const Outcome h2d_to_host = outcome_of_child(
        [&] { cudaMemcpy(host.data(), host.data() + 8, 8, cudaMemcpyHostToDevice); });
    CHECK(h2d_to_host.signal == SIGABRT);
    CHECK(says(h2d_to_host, "host memory used as device memory"));
    const Outcome d2h_from_host = outcome_of_child(
        [&] { cudaMemcpyAsync(host.data(), host.data() + 8, 8, cudaMemcpyDeviceToHost, nullptr); });
    CHECK(d2h_from_host.signal == SIGABRT);
    CHECK(says(d2h_from_host, "host memory used as device memory"));
    const Outcome memset_host = outcome_of_child([&] { cudaMemset(host.data(), 0, 8); });
    CHECK(memset_host.signal == SIGABRT);
    CHECK(says(memset_host, "host memory used as device memory"));
  }
  SUBCASE("a copy or memset running past the end of its block") {
    const Outcome copy = outcome_of_child(
        [&] { cudaMemcpy(host.data(), dev + 8, kBytes - 7, cudaMemcpyDeviceToHost); });
    CHECK(copy.signal == SIGABRT);
    CHECK(says(copy, "runs past the end of its cudaMalloc block"));
    const Outcome set = outcome_of_child([&] { cudaMemset(dev + 1, 0, kBytes); });
    CHECK(set.signal == SIGABRT);
    CHECK(says(set, "runs past the end of its cudaMalloc block"));
  }
  REQUIRE(cudaFree(dev) == cudaSuccess);
  REQUIRE(cudaFree(other) == cudaSuccess);
}

TEST_CASE("cuda emulator: a launch's blocks run in one order, the next launch's in the other") {
  // Each block appends its index: launches alternate forward and backward, so a block reading
  // what another block of the same launch wrote (no order on a GPU) differs between two runs.
  constexpr unsigned kBlocks = 6;
  static const char tag = 0;
  std::vector<unsigned> order[2];
  for (int launch = 0; launch < 2; ++launch) {
    std::vector<unsigned>* out = &order[launch];
    REQUIRE(segloss_emu::launch(dim3(3, 2), dim3(32), 0, nullptr, &tag, [out] {
              if (threadIdx.x == 0) out->push_back(blockIdx.y * 3 + blockIdx.x);
            }) == cudaSuccess);
  }
  REQUIRE(order[0].size() == kBlocks);
  REQUIRE(order[1].size() == kBlocks);
  std::vector<unsigned> reversed(order[0].rbegin(), order[0].rend());
  CHECK(order[1] == reversed);
  std::vector<unsigned> sorted = order[0];
  std::sort(sorted.begin(), sorted.end());
  for (unsigned b = 0; b < kBlocks; ++b) CHECK(sorted[b] == b);  // every block once
}

TEST_CASE("cuda emulator: a kernel launched twice per call still changes order between calls") {
  // Launches come in pairs of opposite orders whose first order is pseudo-random: a per-kernel
  // alternation alone would give a kernel launched twice per call (10 calls of a determinism
  // test) the same pair of orders every call.
  static const char tag = 0;
  int first_forward = 0;
  for (int call = 0; call < 10; ++call) {
    std::vector<unsigned> order[2];
    for (int launch = 0; launch < 2; ++launch) {
      std::vector<unsigned>* out = &order[launch];
      REQUIRE(segloss_emu::launch(dim3(4), dim3(32), 0, nullptr, &tag, [out] {
                if (threadIdx.x == 0) out->push_back(blockIdx.x);
              }) == cudaSuccess);
    }
    REQUIRE(order[0].size() == 4);
    CHECK(order[1] == std::vector<unsigned>(order[0].rbegin(), order[0].rend()));
    first_forward += order[0].front() == 0;
  }
  CHECK(first_forward > 0);   // some call's first launch ran forward,
  CHECK(first_forward < 10);  // and some call's backward
}

TEST_CASE("cuda emulator: a gap page after each device block") {
  // A read past a block's end never lands in the next block (under AddressSanitizer the gap is
  // poisoned: reported; otherwise it faults unless it lies between live blocks during device
  // work). Blocks of a whole number of pages are the case that needs it.
  void* a = nullptr;
  void* b = nullptr;
  REQUIRE(cudaMalloc(&a, 4096) == cudaSuccess);
  REQUIRE(cudaMalloc(&b, 4096) == cudaSuccess);
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  CHECK((pa > pb ? pa - pb : pb - pa) >= 8192);
  REQUIRE(cudaFree(a) == cudaSuccess);
  REQUIRE(cudaFree(b) == cudaSuccess);
}

TEST_CASE("cuda emulator: static and dynamic shared memory together at most 48 KiB") {
  static const char tag = 0;
  const auto use = [](size_t static_bytes, size_t dynamic_bytes) {
    return outcome_of_child([=] {
      segloss_emu::launch(dim3(1), dim3(32), dynamic_bytes, nullptr, &tag, [static_bytes] {
        auto* sh = static_cast<unsigned char*>(segloss_emu::static_shared(&tag, static_bytes));
        sh[threadIdx.x] = 1;
      });
    });
  };
  const Outcome fits = use(40 * 1024, 8 * 1024);
  CHECK(fits.signal == 0);
  const Outcome over = use(40 * 1024, 8 * 1024 + 16);
  CHECK(over.signal == SIGABRT);
  CHECK(says(over, "too much shared memory"));
}

#endif  // SEGLOSS_CUDA_EMULATION
