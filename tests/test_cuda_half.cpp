// float16 / bfloat16 logits on CUDA (losses/half_logits.hpp): parity with the CPU 16-bit path for
// bce_with_logits, soft_dice, bce_dice and cross_entropy (every entry point), bitwise determinism
// over 10 runs, and the error flag of bad labels. The GPU tests skip with a message when no GPU
// is present.
//
// Both devices round the same float result with the same code (core/half.hpp), so the 16-bit
// outputs differ only where the float losses differ (rounding of the CUDA sums, 1e-5 relative):
// the 16-bit results are compared within one unit in the last place of the 16-bit type (relative
// to the tensor's largest magnitude), the double values within 1e-5 relative.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <thread>

#include "cuda_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;

namespace {

template <class H>
double ulp() {
  return std::is_same_v<H, float16> ? 1.0 / 1024 : 1.0 / 128;
}

// max |cpu - gpu| <= ulp(H) * max |cpu| (+ the float tolerance), NaN where NaN.
template <class H>
void check_half(const Tensor<H>& cpu, const Tensor<H>& gpu_any, const char* what) {
  REQUIRE(gpu_any.device() == Device::cuda);
  testing::check_parity(to_float(cpu), to_float(gpu_any.to(Device::cpu)), ulp<H>() + 1e-5, what);
}

template <class H>
Tensor<H> half_randn(const Shape& s, uint64_t seed, double scale) {
  return to_half<H>(testing::randn<float>(s, seed, scale));
}

template <class H>
Tensor<H> dev(const Tensor<H>& t) {
  return testing::gpu(t);
}

template <class H>
void binary_parity() {
  const Shape s{2, 3, 17, 19};
  const auto x = half_randn<H>(s, 1, 3.0);
  const auto t = to_half<H>(testing::mask<float>(s, 2));
  const auto xd = dev(x), td = dev(t);
  BceWithLogitsOptions<H> bo;
  bo.pos_weight = to_half<H>(testing::uniform<float>(Shape{3}, 3, 0.5, 2.0));
  BceWithLogitsOptions<H> bod = bo;
  bod.pos_weight = dev(bo.pos_weight);
  SoftDiceOptions<H> dopt;
  dopt.squared = true;
  BceDiceOptions<H> bd;
  bd.bce = bo;
  BceDiceOptions<H> bdd = bd;
  bdd.bce = bod;
  const auto go = Tensor<H>::full(Shape{}, H(0.75f));
  const auto god = dev(go);

  check_half(bce_with_logits(x, t, bo), bce_with_logits(xd, td, bod), "bce forward");
  check_half(bce_with_logits_backward(x, t, go, bo), bce_with_logits_backward(xd, td, god, bod),
             "bce backward");
  auto a = bce_with_logits_value_and_grad(x, t, bo);
  auto b = bce_with_logits_value_and_grad(xd, td, bod);
  testing::check_parity(a.value, b.value, 1e-5, "bce value");
  check_half(a.grad, b.grad, "bce value_and_grad");
  Tensor<H> g, v;
  bce_with_logits_value_and_grad(xd, td, g, v, bod);
  check_half(Tensor<H>::full(Shape{}, H(static_cast<float>(a.value))), v, "bce device value");

  check_half(soft_dice(x, t, dopt), soft_dice(xd, td, dopt), "dice forward");
  check_half(soft_dice_backward(x, t, go, dopt), soft_dice_backward(xd, td, god, dopt),
             "dice backward");
  a = soft_dice_value_and_grad(x, t, dopt);
  b = soft_dice_value_and_grad(xd, td, dopt);
  testing::check_parity(a.value, b.value, 1e-5, "dice value");
  check_half(a.grad, b.grad, "dice value_and_grad");

  check_half(bce_dice(x, t, bd), bce_dice(xd, td, bdd), "bce_dice forward");
  check_half(bce_dice_backward(x, t, go, bd), bce_dice_backward(xd, td, god, bdd),
             "bce_dice backward");
  BceDiceParts pa, pb;
  a = bce_dice_value_and_grad(x, t, bd, &pa);
  b = bce_dice_value_and_grad(xd, td, bdd, &pb);  // parts on CUDA since session 10
  testing::check_parity(a.value, b.value, 1e-5, "bce_dice value");
  testing::check_parity(pa.bce, pb.bce, 1e-5, "bce_dice parts.bce");
  testing::check_parity(pa.dice, pb.dice, 1e-5, "bce_dice parts.dice");
  check_half(a.grad, b.grad, "bce_dice value_and_grad");
}

template <class H, class L>
void cross_entropy_parity() {
  const Shape s{2, 21, 9, 11};
  const auto x = half_randn<H>(s, 4, 3.0);
  const auto y = testing::labels<L>(s.without(1), 21, 5, 0.1, -100);
  const auto xd = dev(x);
  const auto yd = testing::gpu(y);
  CrossEntropyOptions<H> o;
  o.weight = to_half<H>(testing::uniform<float>(Shape{21}, 6, 0.2, 3.0));
  o.label_smoothing = 0.1;
  CrossEntropyOptions<H> od = o;
  od.weight = dev(o.weight);
  const auto go = Tensor<H>::full(Shape{}, H(0.75f));
  check_half(cross_entropy(x, y, o), cross_entropy(xd, yd, od), "ce forward");
  check_half(cross_entropy_backward(x, y, go, o), cross_entropy_backward(xd, yd, dev(go), od),
             "ce backward");
  const auto a = cross_entropy_value_and_grad(x, y, o);
  const auto b = cross_entropy_value_and_grad(xd, yd, od);
  testing::check_parity(a.value, b.value, 1e-5, "ce value");
  check_half(a.grad, b.grad, "ce value_and_grad");
  o.reduction = od.reduction = Reduction::none;
  check_half(cross_entropy(x, y, o), cross_entropy(xd, yd, od), "ce forward none");
}

}  // namespace

TEST_CASE_TEMPLATE("cuda half: bce_with_logits, soft_dice, bce_dice match the CPU 16-bit path", H,
                   float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  binary_parity<H>();
}

TEST_CASE_TEMPLATE("cuda half: cross_entropy (C = 21) matches the CPU 16-bit path", H, float16,
                   bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  cross_entropy_parity<H, int64_t>();
  cross_entropy_parity<H, int32_t>();
}

TEST_CASE_TEMPLATE("cuda half: bitwise identical value and gradient over 10 runs", H, float16,
                   bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{4, 5, 64, 65};
  const auto xd = dev(half_randn<H>(s, 7, 2.0));
  const auto td = dev(to_half<H>(testing::mask<float>(s, 8)));
  const auto yd = testing::gpu(testing::labels<int32_t>(s.without(1), 5, 9));
  const auto bd0 = bce_dice_value_and_grad(xd, td);
  const auto ce0 = cross_entropy_value_and_grad(xd, yd);
  for (int run = 0; run < 10; ++run) {
    const auto bd = bce_dice_value_and_grad(xd, td);
    const auto ce = cross_entropy_value_and_grad(xd, yd);
    CHECK(std::memcmp(&bd.value, &bd0.value, sizeof(double)) == 0);
    CHECK(std::memcmp(&ce.value, &ce0.value, sizeof(double)) == 0);
    CHECK(testing::same_bits(bd.grad, bd0.grad));
    CHECK(testing::same_bits(ce.grad, ce0.grad));
  }
}

TEST_CASE_TEMPLATE("cuda half: a bad label raises, or makes the device value NaN", H, float16,
                   bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 8, 8};
  const auto xd = dev(half_randn<H>(s, 10, 1.0));
  auto y = testing::labels<int64_t>(s.without(1), 4, 11);
  y[17] = 9;
  const auto yd = testing::gpu(y);
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(xd, yd), doctest::Contains("cross_entropy"),
                       Error);
  Tensor<H> g, v;
  cross_entropy_value_and_grad(xd, yd, g, v);
  CHECK(std::isnan(static_cast<float>(v.to(Device::cpu)[0])));
}

// options.ignore is rounded to the 16-bit label type on CUDA too (the widened call runs the
// float CUDA loss): labels of 0.1 ignored by 0.1 give the CPU 16-bit result of the same call.
TEST_CASE_TEMPLATE("cuda half: lovasz_hinge ignores 16-bit labels of options.ignore", H, float16,
                   bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 6, 7};
  const auto x = half_randn<H>(s, 12, 2.0);
  auto t = to_half<H>(testing::mask<float>(s, 13));
  for (int64_t i = 0; i < t.numel(); i += 3) t[i] = H(0.1f);
  LovaszHingeOptions<H> o;
  o.ignore = 0.1;
  for (bool per_image : {false, true}) {
    CAPTURE(per_image);
    o.per_image = per_image;
    const auto cpu = lovasz_hinge_value_and_grad(x, t, o);
    const auto gpu = lovasz_hinge_value_and_grad(dev(x), dev(t), o);
    CHECK(gpu.value == doctest::Approx(cpu.value).epsilon(1e-5));
    check_half(cpu.grad, gpu.grad, "lovasz_hinge grad");
  }
}

// A tensor on the other device is the float loss's device error, as before the scratch (the
// scratch holds only the copies of tensors on the logits' device).
TEST_CASE_TEMPLATE("cuda half: inputs on mixed devices are the float loss's device errors", H,
                   float16, bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 8, 8};
  const auto x = half_randn<H>(s, 31, 1.0);
  const auto t = to_half<H>(testing::mask<float>(s, 32));
  const auto xd = dev(x), td = dev(t);
  const auto mixed = doctest::Contains("is on device cpu, but logits are on cuda");
  CHECK_THROWS_WITH_AS(bce_with_logits_value_and_grad(xd, t), mixed, Error);
  CHECK_THROWS_WITH_AS(soft_dice(xd, t), mixed, Error);
  CHECK_THROWS_WITH_AS(bce_with_logits_backward(xd, td, Tensor<H>::full({}, H(1.0f))), mixed,
                       Error);
  BceWithLogitsOptions<H> o;
  o.weight = to_half<H>(testing::uniform<float>(s, 33, 0.5, 1.5));
  CHECK_THROWS_WITH_AS(bce_with_logits(xd, td, o), mixed, Error);
  BceDiceOptions<H> bo;
  bo.dice.class_weight = Tensor<H>::full({1}, H(1.0f));
  Tensor<H> g, v;
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xd, td, g, v, bo), mixed, Error);
  CHECK_THROWS_WITH_AS(bce_with_logits(x, td),
                       doctest::Contains("is on device cuda, but logits are on cpu"), Error);
}

// A 16-bit call holds its scratch entry's mutex while its inner call takes the pool's mutex;
// pool_bytes() and release_pool() must not hold the pool's mutex while they wait for an entry's
// (session 10's first version did, and this deadlocked within the first calls). Only one thread
// runs kernels. A deadlock would hang: a watchdog fails the test after 120 s instead.
TEST_CASE("cuda half: pool_bytes on another thread during 16-bit calls does not deadlock") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 16, 16};
  const auto xd = dev(half_randn<float16>(s, 41, 1.0));
  const auto td = dev(to_half<float16>(testing::mask<float>(s, 42)));
  std::atomic<bool> done{false};
  std::atomic<int> calls{0}, polls{0};
  auto finished = std::make_shared<std::promise<void>>();
  std::future<void> all_done = finished->get_future();
  std::thread worker([&, finished] {
    while (polls.load() == 0) std::this_thread::yield();  // the two overlap from the first call
    for (int i = 0; i < 60; ++i) {
      bce_with_logits(xd, td);
      calls.fetch_add(1);
    }
    done = true;
  });
  std::thread poller([&, finished] {
    while (!done) {
      cuda::pool_bytes();
      polls.fetch_add(1);
    }
    worker.join();
    finished->set_value();
  });
  if (all_done.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
    std::fprintf(stderr,
                 "cuda half: deadlock between 16-bit calls and pool_bytes (%d calls, %d polls)\n",
                 calls.load(), polls.load());
    std::_Exit(1);  // the threads are stuck: nothing else can end the test
  }
  poller.join();
  CHECK(calls.load() == 60);
}

#if defined(SEGLOSS_TEST_CUDA)
// The float copies come from the stream's cached scratch buffer (backends/cuda/scratch.hpp):
// after a warm-up call, the into-buffer forms allocate nothing and wait for nothing, so they can
// be captured in a CUDA graph (a capture fails on a cudaMalloc, a cudaFree or a wait); the
// graph's replay gives the eager call's bits.
TEST_CASE_TEMPLATE(
    "cuda half: after warm-up the into-buffer forms allocate nothing (graph capture)", H, float16,
    bfloat16) {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 3, 12, 11};
  const auto xd = dev(half_randn<H>(shape, 21, 2.0));
  const auto td = dev(to_half<H>(testing::mask<float>(shape, 22)));
  const auto yd = testing::gpu(testing::labels<int64_t>(shape.without(1), 3, 23));
  BceDiceOptions<H> bo;  // a per-pixel BCE weight and a Dice class weight: more copies
  bo.bce.weight = dev(to_half<H>(testing::uniform<float>(Shape{2, 1, 12, 11}, 24, 0.5, 1.5)));
  bo.dice.class_weight = dev(to_half<H>(testing::uniform<float>(Shape{3}, 25, 0.5, 1.5)));
  Tensor<H> g = Tensor<H>::empty(shape, Device::cuda), v = Tensor<H>::empty({}, Device::cuda);
  Tensor<H> cg = Tensor<H>::empty(shape, Device::cuda), cv = Tensor<H>::empty({}, Device::cuda);
  {
    cuda::StreamScope scope(s);
    bce_dice_value_and_grad(xd, td, g, v, bo);  // warms the workspace and the scratch of s
    cross_entropy_value_and_grad(xd, yd, cg, cv);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    const auto want_g = g.to(Device::cpu), want_v = v.to(Device::cpu);
    const auto want_cg = cg.to(Device::cpu), want_cv = cv.to(Device::cpu);
    const size_t warm = cuda::pool_bytes();
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    bce_dice_value_and_grad(xd, td, g, v, bo);
    cross_entropy_value_and_grad(xd, yd, cg, cv);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    g.copy_from(Tensor<H>::zeros(shape));
    cg.copy_from(Tensor<H>::zeros(shape));
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(testing::same_bits(want_g, g.to(Device::cpu)));
    CHECK(testing::same_bits(want_v, v.to(Device::cpu)));
    CHECK(testing::same_bits(want_cg, cg.to(Device::cpu)));
    CHECK(testing::same_bits(want_cv, cv.to(Device::cpu)));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    CHECK(cuda::pool_bytes() == warm);
  }
  cudaStreamDestroy(s);
}
#endif
