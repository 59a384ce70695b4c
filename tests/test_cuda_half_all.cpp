// float16 and bfloat16 logits for every loss on CUDA (losses/half_logits.hpp), driven by the loss
// registry: for every entry, the 16-bit problem (registry::HalfProblem) built on CUDA from the
// same numbers as on the CPU; on the device, every public form of the 16-bit call against the
// CUDA float loss on the widened inputs (the contract, bit for bit: tests/half_all_check.hpp);
// and the CUDA 16-bit results against the CPU 16-bit results: both devices round the float loss's
// result with the same code, so they differ only where the float losses do (the CUDA sums'
// rounding, 1e-5 relative): within one unit in the last place of the 16-bit type relative to the
// tensor's largest magnitude, the double values within 1e-5 relative. Plus 10 runs bit for bit,
// and a graph capture of 16-bit into-buffer calls after warm-up (nothing allocated, nothing
// waited for). The GPU tests skip with a message when no GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "half_all_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;
namespace half_all = segloss::testing::half_all;
using segloss::testing::same_bits;

namespace {

template <class H>
double ulp() {
  return std::is_same_v<H, float16> ? 1.0 / 1024 : 1.0 / 128;
}

// max |cpu - gpu| <= (ulp(H) + 1e-5) * max |cpu|, NaN where NaN.
template <class H>
void close16(const Tensor<H>& cpu, const Tensor<H>& gpu, const char* what) {
  if (!cpu.defined()) {
    CHECK(!gpu.defined());
    return;
  }
  testing::check_parity(to_float(cpu), to_float(gpu), ulp<H>() + 1e-5, what);
}

void close_value(double cpu, double gpu, const char* what) {
  INFO(what, ": cpu ", cpu, ", cuda ", gpu);
  CHECK(std::fabs(cpu - gpu) <= 1e-5 * std::max(std::fabs(cpu), 1e-3));
}

// Every entry: the contract on the CPU and on CUDA, and the CUDA results against the CPU's.
template <class H>
void check_all_entries() {
  size_t entries = 0;
  std::set<std::string> losses;
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    const auto host = half_all::make<H>(e, registry::default_shape(), 7, Device::cpu);
    const auto dev = half_all::make<H>(e, registry::default_shape(), 7, Device::cuda);
    REQUIRE(same_bits(host.input, dev.input));
    REQUIRE(same_bits(host.grad_out, dev.grad_out));
    const auto c = half_all::check_contract(host);
    const auto d = half_all::check_contract(dev);
    close16(c.forward, d.forward, "forward");
    close16(c.backward, d.backward, "backward");
    if (host.reduced) {
      close_value(c.value, d.value, "value");
      close16(c.grad, d.grad, "value_and_grad's gradient");
      close16(c.value_tensor, d.value_tensor, "value tensor");
      close16(c.value_grad, d.value_grad, "value form's gradient");
    }
    ++entries;
    losses.insert(e.loss);
  }
  CHECK(entries == registry::entries().size());
  CHECK(losses.size() == registry::losses().size());
  MESSAGE(entries, " registry entries (", losses.size(), " losses) on CUDA with ",
          std::string(half_all::type_name<H>()), " logits");
}

}  // namespace

TEST_CASE_TEMPLATE("cuda half all: every registered loss and preset, contract and CPU parity", H,
                   float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  check_all_entries<H>();
}

// The statistics / finalize split of every loss that has one: the contract on CUDA, and the
// CUDA results against the CPU's (statistics 1e-5 relative to their largest magnitude).
TEST_CASE_TEMPLATE("cuda half all: the statistics / finalize split, contract and CPU parity", H,
                   float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  std::vector<half_all::SplitResults<H>> cpu, gpu;
  half_all::for_each_split<H>(Device::cpu,
                              [&](auto&&... a) { cpu.push_back(half_all::check_split(a...)); });
  half_all::for_each_split<H>(Device::cuda,
                              [&](auto&&... a) { gpu.push_back(half_all::check_split(a...)); });
  REQUIRE(cpu.size() == size_t(half_all::kSplitCalls));
  REQUIRE(gpu.size() == cpu.size());
  for (size_t k = 0; k < cpu.size(); ++k) {
    CAPTURE(k);
    testing::check_vector(cpu[k].global, gpu[k].global, 1e-5, "global");
    close_value(cpu[k].value, gpu[k].value, "finalize's value");
    close16(cpu[k].grad, gpu[k].grad, "finalize's gradient");
  }
}

// The first entry of every loss (its default preset), on a shape that crosses several blocks,
// 10 runs of its device-value form: the value tensor and the gradient bit for bit.
TEST_CASE_TEMPLATE("cuda half all: bitwise identical results over 10 runs", H, float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  const Shape shape{2, 3, 24, 37};
  for (const std::string& loss : registry::losses()) {
    const registry::Entry& e = *registry::find(loss).front();
    CAPTURE(e.name());
    const auto p = half_all::make<H>(e, shape, 3, Device::cuda);
    Tensor<H> g0, v0;
    p.value_and_grad_value(p.input, g0, v0);
    for (int run = 1; run < 10; ++run) {
      Tensor<H> g, v;
      p.value_and_grad_value(p.input, g, v);
      CHECK(same_bits(g, g0));
      CHECK(same_bits(v, v0));
    }
  }
}

#if defined(SEGLOSS_TEST_CUDA)
// After a warm-up call, the 16-bit into-buffer forms of losses of every shape of call (binary
// target with a pixel weight, labels with a class option, probability targets, the combined
// losses, Lovász) allocate nothing and wait for nothing: captured into one CUDA graph (a capture
// fails on a cudaMalloc, a cudaFree or a wait), whose replay gives the eager bits, and the pool
// (with the scratch) did not grow.
TEST_CASE_TEMPLATE("cuda half all: after warm-up the into-buffer forms allocate nothing (graph)", H,
                   float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 4, 12, 11};
  auto dev = [](const Tensor<float>& t) { return to_half<H>(t).to(Device::cuda); };
  const auto xd = dev(testing::randn<float>(shape, 51, 2.0));
  const auto td = dev(testing::mask<float>(shape, 52));
  const auto pd = dev(testing::normalized_uniform<float>(shape, 53));
  const auto yd = testing::labels<int64_t>(shape.without(1), 4, 54, 0.1, -100).to(Device::cuda);
  const auto y32 = testing::labels<int32_t>(shape.without(1), 4, 55).to(Device::cuda);
  SigmoidFocalOptions<H> fo;
  fo.weight = dev(testing::uniform<float>(Shape{2, 1, 12, 11}, 56, 0.5, 1.5));
  TverskyOptions<H> to;
  to.alpha = 0.3;
  to.beta = 0.7;
  to.class_weight = dev(testing::uniform<float>(Shape{4}, 57, 0.5, 1.5));
  SoftmaxFocalOptions<H> so;
  so.alpha = dev(testing::uniform<float>(Shape{4}, 58, 0.25, 1.0));
  DiceFocalOptions<H> dfo;
  dfo.focal.alpha = so.alpha;
  CeDiceOptions<H> cdo;
  cdo.ce.weight = dev(testing::uniform<float>(Shape{4}, 59, 0.5, 2.0));
  constexpr int kCalls = 7;
  Tensor<H> g[kCalls], v[kCalls];
  for (int k = 0; k < kCalls; ++k) {
    g[k] = Tensor<H>::empty(shape, Device::cuda);
    v[k] = Tensor<H>::empty({}, Device::cuda);
  }
  auto run = [&] {
    sigmoid_focal_value_and_grad(xd, td, g[0], v[0], fo);
    tversky_value_and_grad(xd, td, g[1], v[1], to);
    softmax_focal_value_and_grad(xd, yd, g[2], v[2], so);
    softmax_dice_value_and_grad(xd, pd, g[3], v[3]);
    dice_focal_value_and_grad(xd, y32, g[4], v[4], dfo);
    ce_dice_value_and_grad(xd, pd, g[5], v[5], cdo);
    lovasz_softmax_value_and_grad(xd, yd, g[6], v[6]);
  };
  {
    cuda::StreamScope scope(s);
    run();  // warms the workspace pool and the scratch of s
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    Tensor<H> want_g[kCalls], want_v[kCalls];
    for (int k = 0; k < kCalls; ++k) {
      want_g[k] = g[k].to(Device::cpu);
      want_v[k] = v[k].to(Device::cpu);
    }
    const size_t warm = cuda::pool_bytes();
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    run();
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    for (int k = 0; k < kCalls; ++k) {
      g[k].copy_from(Tensor<H>::zeros(shape));
      v[k].copy_from(Tensor<H>::zeros({}));
    }
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    for (int k = 0; k < kCalls; ++k) {
      CAPTURE(k);
      CHECK(half_all::nonzero(want_g[k]) > 0);
      CHECK(testing::same_bits(want_g[k], g[k]));
      CHECK(testing::same_bits(want_v[k], v[k]));
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    CHECK(cuda::pool_bytes() == warm);
  }
  cudaStreamDestroy(s);
}
#endif
