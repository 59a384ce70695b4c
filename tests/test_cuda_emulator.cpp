// The CUDA emulator itself (backends/cuda/emulator; built with -DSEGLOSS_CUDA=EMULATE): the
// semantics the backend's kernels rely on (barriers, warp collectives, dynamic shared memory),
// that a missing barrier shows, and that stream capture fails where a GPU's does. Kernels here
// are lambdas launched through segloss_emu::launch, the function cuda::launch calls.
#include <doctest/doctest.h>

#if defined(SEGLOSS_CUDA_EMULATION)

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

namespace {

constexpr unsigned kBlock = 256;

// Runs kernel on one block of kBlock threads on the default stream.
template <class F>
void run_block(F kernel, size_t shared_bytes = 0) {
  REQUIRE(segloss_emu::launch(dim3(1), dim3(kBlock), shared_bytes, nullptr, kernel) == cudaSuccess);
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
  for (int launch = 0; launch < 2; ++launch) {  // even launches run threads forward, odd backward
    static thread_local int buf[kBlock];
    run_block([&] {
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
    run_block([&] {
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
  run_block([&] {
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

TEST_CASE("cuda emulator: dynamic shared memory is the launch's size, poisoned per block") {
  std::vector<uint32_t> seen(2 * kBlock);
  REQUIRE(segloss_emu::launch(dim3(2), dim3(kBlock), kBlock * sizeof(uint32_t), nullptr, [&] {
            auto* sh = static_cast<uint32_t*>(segloss_emu::dynamic_shared());
            seen[blockIdx.x * kBlock + threadIdx.x] = sh[threadIdx.x];  // before anyone writes
            __syncthreads();
            sh[threadIdx.x] = 7;
          }) == cudaSuccess);
  for (uint32_t v : seen) CHECK(v == 0xffffffffu);  // block 1 does not see block 0's 7s
  CHECK(segloss_emu::launch(dim3(1), dim3(2048), 0, nullptr, [] {}) ==
        cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);
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
    CHECK(d[0] == 0);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 1);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(d[0] == 0x01010101);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  SUBCASE("a synchronize, an allocation or the legacy stream breaks it") {
    for (int what = 0; what < 3; ++what) {
      CAPTURE(what);
      REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
      void* p = nullptr;
      const cudaError_t e = what == 0   ? cudaStreamSynchronize(s)
                            : what == 1 ? cudaMalloc(&p, 16)
                                        : cudaMemsetAsync(d, 2, sizeof(int), nullptr);
      CHECK(e != cudaSuccess);
      CHECK(p == nullptr);
      cudaGraph_t graph = nullptr;
      CHECK(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated);
      CHECK(graph == nullptr);
      cudaGetLastError();
    }
    CHECK(d[0] == 0);  // the legacy stream's memset did not run
  }
  cudaFree(d);
  cudaStreamDestroy(s);
}

#endif  // SEGLOSS_CUDA_EMULATION
