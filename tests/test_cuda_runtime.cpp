// The CUDA backend's runtime: device tensors, streams, the workspace (pool and caller-given),
// the device-resident result, and the argument errors. The tests that need a GPU skip with a
// message where none is present; the others run in every build.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;
using namespace segloss::testing;

TEST_CASE("cuda runtime: available implies built") {
  CHECK((!cuda::available() || cuda::built()));
#if defined(SEGLOSS_TEST_CUDA)
  CHECK(cuda::built());
#endif
}

TEST_CASE("cuda runtime: StreamScope sets the thread's stream, nests and restores") {
  CHECK(cuda::current_stream() == nullptr);
  int a = 0, b = 0;  // stand-ins: the scope only records the handle
  {
    cuda::StreamScope outer(&a);
    CHECK(cuda::current_stream() == &a);
    {
      cuda::StreamScope inner(&b);
      CHECK(cuda::current_stream() == &b);
    }
    CHECK(cuda::current_stream() == &a);
  }
  CHECK(cuda::current_stream() == nullptr);
}

TEST_CASE("cuda runtime: workspace_size depends on the shape and the statistics") {
  const size_t small = cuda::workspace_size({2, 1, 64, 64}, 1);
  CHECK(small > 0);
  CHECK(cuda::workspace_size({2, 1, 64, 64}, 4) >= small);
  CHECK(cuda::workspace_size({64, 3, 512, 512}, 4) > cuda::workspace_size({2, 1, 64, 64}, 4));
  // A few kilobytes even for large inputs: block partials and per-plane sums only.
  CHECK(cuda::workspace_size({64, 1, 1024, 1024}, 4) < (size_t{1} << 20));
}

TEST_CASE("cuda runtime: tensors of one call on different devices are an error") {
  if (!cuda::built()) {
    MESSAGE("skipped: this build has no CUDA backend (other tests cover its message)");
    return;
  }
  // Host memory labelled cuda: every check below fails before a kernel could touch it.
  std::vector<float> buf(2 * 64, 0.f);
  const auto xd = Tensor<float>::view(buf.data(), {2, 1, 8, 8}, Device::cuda);
  const auto zh = Tensor<float>::view(buf.data(), {2, 1, 8, 8});
  CHECK_THROWS_WITH_AS(soft_dice(xd, zh),
                       "soft_dice: target (2,1,8,8) is on device cpu, but logits are on cuda: "
                       "every tensor of a call must be on one device",
                       Error);
  BceWithLogitsOptions<float> o;
  o.weight = Tensor<float>::view(buf.data(), {1, 1, 8, 8});
  CHECK_THROWS_WITH_AS(
      bce_with_logits(xd, xd, o),
      "bce_with_logits: options.weight (1,1,8,8) is on device cpu, but logits are on "
      "cuda: every tensor of a call must be on one device",
      Error);
  Tensor<float> grad = Tensor<float>::zeros({2, 1, 8, 8});
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xd, xd, grad),
                       "bce_dice_value_and_grad: grad (2,1,8,8) is on device cpu, but logits are "
                       "on cuda: every tensor of a call must be on one device",
                       Error);
  CHECK_THROWS_WITH_AS(soft_dice_backward(xd, xd, Tensor<float>::full(Shape{}, 1.f)),
                       "soft_dice_backward: grad_out () is on device cpu, but logits are on "
                       "cuda: every tensor of a call must be on one device",
                       Error);
  // CPU logits with a CUDA class weight (or alpha), and a CPU tape value with a CUDA mask or
  // index: device mismatches, named as such (until session 10: "... has no CUDA path yet").
  const auto xh = Tensor<float>::view(buf.data(), {2, 2, 4, 8});
  const auto yh = Tensor<int64_t>::zeros({2, 4, 8});
  CrossEntropyOptions<float> ce;
  ce.weight = Tensor<float>::view(buf.data(), {2}, Device::cuda);
  CHECK_THROWS_WITH_AS(
      cross_entropy(xh, yh, ce),
      "cross_entropy: options.weight (2) is on device cuda, but logits are on cpu: every "
      "tensor of a call must be on one device",
      Error);
  SoftmaxFocalOptions<float> fo;
  fo.alpha = Tensor<float>::view(buf.data(), {2}, Device::cuda);
  CHECK_THROWS_WITH_AS(
      softmax_focal(xh, yh, fo),
      "softmax_focal: options.alpha (2) is on device cuda, but logits are on cpu: every "
      "tensor of a call must be on one device",
      Error);
  {
    ad::Tape<float> host_tape;
    const ad::Var<float> hv = host_tape.leaf(Tensor<float>::zeros({2, 3}));
    CHECK_THROWS_WITH_AS(ad::where(Tensor<float>::view(buf.data(), {2, 3}, Device::cuda), hv, hv),
                         doctest::Contains("ad::where: mask (2,3) is on device cuda, but the "
                                           "values are on cpu"),
                         Error);
    std::vector<int64_t> ix(2, 0);
    CHECK_THROWS_WITH_AS(ad::gather(hv, Tensor<int64_t>::view(ix.data(), {2}, Device::cuda)),
                         doctest::Contains("ad::gather: index (2) is on device cuda, but the "
                                           "values are on cpu"),
                         Error);
  }
  // An op without a CUDA path: a caller's own tape op that checks for a CPU value (every
  // primitive of the tape has a CUDA path since session 10).
  ad::Tape<float> tape;
  const ad::Var<float> v = tape.leaf(xd);
  CHECK_THROWS_WITH_AS(tape.check_cpu_var("my_op", v),
                       doctest::Contains("my_op: Var #0 (2,1,8,8) is on device cuda, but "
                                         "my_op computes on the CPU only"),
                       Error);
}

TEST_CASE("cuda runtime: device tensors copy to and from the host") {
  SEGLOSS_REQUIRE_GPU();
  const auto h = randn<double>({3, 2, 5}, 1);
  const auto d = h.to(Device::cuda);
  CHECK(d.device() == Device::cuda);
  CHECK(d.owns_memory());
  const auto d2 = d.clone();
  CHECK(d2.device() == Device::cuda);
  CHECK(d2.data() != d.data());
  const auto back = d2.to(Device::cpu);
  for (int64_t i = 0; i < h.numel(); ++i) CHECK(back[i] == h[i]);
  // copy_from into a view of device memory, and zeros on the device.
  auto z = Tensor<double>::zeros({3, 2, 5}, Device::cuda);
  const auto v = Tensor<double>::view(z.data(), z.shape(), Device::cuda);
  CHECK_FALSE(v.owns_memory());
  v.copy_from(h);
  CHECK(same_bits(z, h));
  CHECK_THROWS_WITH_AS(v.copy_from(Tensor<double>::zeros({2})),
                       doctest::Contains("Tensor::copy_from: source (2) does not match"), Error);
}

#if defined(SEGLOSS_TEST_CUDA)

TEST_CASE("cuda runtime: calls run on the scope's stream without a wait (graph capture)") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 1, 96, 80};
  const auto x = gpu(randn<float>(shape, 3, 3.0)), z = gpu(mask<float>(shape, 4));
  Tensor<float> grad = Tensor<float>::empty(shape, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  double expected = 0.0;
  {
    cuda::StreamScope scope(s);
    expected = bce_dice_value_and_grad(x, z, grad);  // warms the pool of stream s
    // A capture fails if the call syncs, allocates, or uses another stream: so the call is
    // recorded only if it enqueues on s alone.
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    bce_dice_value_and_grad(x, z, grad, value);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    // The call's memset and kernels were recorded (an empty graph: they went to another stream,
    // as when Call's constructor read an uninitialized stream handle).
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes >= 5);  // memset, statistics, combine, finalize, gradient, device value
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    auto poison = Tensor<float>::full(Shape{}, -1.f);
    value.copy_from(poison);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(value.to(Device::cpu)[0] == doctest::Approx(expected).epsilon(1e-6));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(s);
}

TEST_CASE("cuda runtime: the workspace pool does not grow after warm-up") {
  SEGLOSS_REQUIRE_GPU();
  const Shape big{4, 3, 128, 128}, small{2, 1, 31, 17};
  const auto x = gpu(randn<float>(big, 5)), z = gpu(mask<float>(big, 6));
  const auto xs = gpu(randn<float>(small, 7)), zs = gpu(mask<float>(small, 8));
  Tensor<float> g = Tensor<float>::empty(big, Device::cuda);
  Tensor<float> gs = Tensor<float>::empty(small, Device::cuda);
  auto step = [&] {
    bce_dice_value_and_grad(x, z, g);
    bce_with_logits_value_and_grad(x, z, g);
    soft_dice_value_and_grad(xs, zs, gs);
    bce_with_logits(x, z);
  };
  step();
  const size_t warm = cuda::pool_bytes();
  CHECK(warm > 0);
  for (int i = 0; i < 5; ++i) step();
  CHECK(cuda::pool_bytes() == warm);
}

// A graph keeps the address of the pool buffer its calls used. A larger call on the same stream
// grows the pool afterwards: the old buffer is retired, not freed, so the graph's replay still
// works on live memory (the emulator stops the program on a memset or kernel argument in memory
// that cudaFree released, so freeing it fails this case). A call under capture that would grow
// the pool raises, naming the warm-up.
TEST_CASE("cuda runtime: a captured graph stays valid when a larger call grows the pool") {
  SEGLOSS_REQUIRE_GPU();
  cuda::release_pool();  // this stream's entry starts empty whatever ran before in the process
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape small{1, 1, 24, 20}, big{2, 2, 96, 96};
  const auto xs = gpu(randn<float>(small, 13, 2.0)), zs = gpu(mask<float>(small, 14));
  const auto xb = gpu(randn<float>(big, 15, 2.0)), zb = gpu(mask<float>(big, 16));
  Tensor<float> gs = Tensor<float>::empty(small, Device::cuda);
  Tensor<float> gb = Tensor<float>::empty(big, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  size_t warm = 0, grown = 0;
  {
    cuda::StreamScope scope(s);
    const double expected = bce_dice_value_and_grad(xs, zs, gs);  // warm-up at the small shape
    const auto eager_grad = gs.to(Device::cpu);
    warm = cuda::pool_bytes();
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    bce_dice_value_and_grad(xs, zs, gs, value);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);

    const double big_value = bce_dice_value_and_grad(xb, zb, gb);  // grows the pool of s
    CHECK(std::isfinite(big_value));
    grown = cuda::pool_bytes();  // the new buffer, and the retired one still held
    CHECK(grown > warm);

    gs.copy_from(Tensor<float>::full(small, -7.f));
    value.copy_from(Tensor<float>::full(Shape{}, -1.f));
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(value.to(Device::cpu)[0] == static_cast<float>(expected));
    CHECK(same_bits(gs, eager_grad));

    // Under capture the pool cannot grow: a larger call raises before it enqueues anything.
    // Larger than the big call with its target bits (12 blocks: 9 KiB of bits, backends/cuda/
    // runtime.cuh TargetBits), which under capture the call would do without: 512 blocks'
    // partials alone (16 KiB).
    const Shape huge{8, 16, 128, 128};
    const auto xh = gpu(randn<float>(huge, 17)), zh = gpu(mask<float>(huge, 18));
    Tensor<float> gh = Tensor<float>::empty(huge, Device::cuda);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xh, zh, gh, value),
                         doctest::Contains("bce_dice_value_and_grad: the stream is being captured "
                                           "into a CUDA graph and the workspace cached for it "
                                           "holds"),
                         Error);
    cudaGraph_t empty_graph = nullptr;
    CHECK(cudaStreamEndCapture(s, &empty_graph) == cudaSuccess);
    size_t nodes = 1;
    if (empty_graph) {
      CHECK(cudaGraphGetNodes(empty_graph, nullptr, &nodes) == cudaSuccess);
      cudaGraphDestroy(empty_graph);
    }
    CHECK(nodes == 0);

    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
#if defined(SEGLOSS_CUDA_EMULATION)
  const size_t live_before = segloss_emu::live_device_bytes();
#endif
  cuda::release_pool();  // frees the retired buffer with the others
  CHECK(cuda::pool_bytes() == 0);
#if defined(SEGLOSS_CUDA_EMULATION)
  CHECK(live_before - segloss_emu::live_device_bytes() == grown);  // really freed, both buffers
#endif
  {
    // What the big call needs alone: the pool held exactly the small buffer besides it.
    cuda::StreamScope scope(s);
    bce_dice_value_and_grad(xb, zb, gb);
    CHECK(grown == warm + cuda::pool_bytes());
  }
  cuda::release_pool();
  cudaStreamDestroy(s);
}

// ce_dice's device form runs two terms, each with its own call: it reserves both terms'
// workspace first, so a capture of a call too large for the pool raises before the first term
// is recorded (the first version recorded the cross-entropy term, then raised in the Dice term:
// a caller ending the capture got half a step).
TEST_CASE("cuda runtime: a combined loss too large for the pool under capture records nothing") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape small{1, 3, 4, 4}, large{1024, 8, 4, 4};  // large: a Dice layout above the warm pool
  const auto xs = gpu(randn<float>(small, 19)), xl = gpu(randn<float>(large, 20));
  const auto ys = gpu(labels<int64_t>(small.without(1), 3, 21));
  const auto yl = gpu(labels<int64_t>(large.without(1), 8, 22));
  Tensor<float> gs = Tensor<float>::empty(small, Device::cuda);
  Tensor<float> gl = Tensor<float>::empty(large, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  {
    cuda::StreamScope scope(s);
    ce_dice_value_and_grad(xs, ys, gs, value);  // warm-up at the small shape only
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    bool raised = false;
    try {
      ce_dice_value_and_grad(xl, yl, gl, value);
    } catch (const Error& e) {
      raised = std::string(e.what()).find("the stream is being captured into a CUDA graph") !=
               std::string::npos;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    cudaGetLastError();
    CHECK(raised);
    REQUIRE(ended == cudaSuccess);
    size_t nodes = 1;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 0);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(s);
}

#if defined(SEGLOSS_TEST_CUDA)
// cudaStreamPerThread names a different stream on every thread, so its pool entries are the
// thread's own; they are freed when the thread exits (after synchronizing its stream), since
// Linux gives a later thread the dead one's std::thread::id and the entry with it.
TEST_CASE("cuda runtime: a thread's per-thread-stream buffers are freed when it exits") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 64, 64};
  const auto x = gpu(randn<float>(s, 9)), z = gpu(mask<float>(s, 10));
  const Shape s16{2, 1, 16, 16};
  const auto x16 = gpu(to_half<float16>(randn<float>(s16, 11))),
             z16 = gpu(to_half<float16>(mask<float>(s16, 12)));
  const size_t before = cuda::pool_bytes();
  size_t during = 0;
  double v = 0.0;
  std::thread worker([&] {
    cuda::StreamScope scope(cudaStreamPerThread);
    Tensor<float> g;
    v = bce_dice_value_and_grad(x, z, g);
    bce_with_logits(x16, z16);  // the 16-bit path's scratch entry too
    during = cuda::pool_bytes();
  });
  worker.join();
  CHECK(during > before);
  CHECK(cuda::pool_bytes() == before);
  Tensor<float> g;
  CHECK(bce_dice_value_and_grad(x, z, g) == v);
}
#endif

TEST_CASE("cuda runtime: a caller-given workspace is used instead of the pool") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{3, 2, 70, 70};
  const auto x = gpu(randn<double>(shape, 9, 2.0)), z = gpu(mask<double>(shape, 10));
  const double expected = bce_dice_value_and_grad(x, z).value;
  const size_t bytes = cuda::workspace_size(shape);
  auto ws =
      Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda);
  const size_t pool_before = cuda::pool_bytes();
  {
    cuda::StreamScope stream(s);  // a new stream: the pool would grow if it were used
    cuda::WorkspaceScope scope(ws.data(), bytes);
    CHECK(bce_dice_value_and_grad(x, z).value == expected);
    CHECK(cuda::pool_bytes() == pool_before);
    cuda::WorkspaceScope tiny(ws.data(), 64);
    CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(x, z),
                         doctest::Contains("bce_dice_value_and_grad: the caller's workspace holds "
                                           "64 bytes but this call needs"),
                         Error);
  }
  cudaStreamDestroy(s);
}

// A CUDA error that the caller's own code left unchecked on the thread was reported by the next
// segloss call's launch check as "a kernel launch failed". The call names it as an earlier
// error, before it enqueues anything, and takes it: the next call runs.
TEST_CASE("cuda runtime: an error the caller left pending is named as earlier, then cleared") {
  SEGLOSS_REQUIRE_GPU();
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  const auto x = gpu(randn<double>(Shape{2, 3, 4, 5}, 11));
  const auto y = gpu(labels<int64_t>(Shape{2, 4, 5}, 3, 12));
  const double expected = cross_entropy_value_and_grad(x, y).value;
  REQUIRE(cudaSetDevice(count + 3) == cudaErrorInvalidDevice);  // left pending, unchecked
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(x, y),
                       "cross_entropy_value_and_grad: a CUDA error was pending on this thread "
                       "before the call (from earlier work, left unchecked): "
                       "cudaErrorInvalidDevice: invalid device ordinal",
                       Error);
  CHECK(cudaPeekAtLastError() == cudaSuccess);
  CHECK(cross_entropy_value_and_grad(x, y).value == expected);
}

// The entries that launch outside a Call: each names the pending error in its own words, takes
// it (the next entry runs), and enqueues nothing before.
TEST_CASE(
    "cuda runtime: the tape, the 16-bit conversions and Tensor's fill and copy name a "
    "pending error too") {
  SEGLOSS_REQUIRE_GPU();
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  const std::string pending =
      ": a CUDA error was pending on this thread before the call (from earlier work, left "
      "unchecked): cudaErrorInvalidDevice: invalid device ordinal";
  const auto leave_pending = [count] {
    REQUIRE(cudaSetDevice(count + 3) == cudaErrorInvalidDevice);
  };
  const auto host = randn<float>(Shape{2, 3, 4}, 13);
  const auto x = gpu(host);

  leave_pending();  // Tensor::full with a nonzero value (the fill kernel) and with zero (a memset)
  CHECK_THROWS_WITH_AS(Tensor<float>::full(Shape{5}, 2.0f, Device::cuda),
                       ("Tensor::full" + pending).c_str(), Error);
  leave_pending();
  CHECK_THROWS_WITH_AS(Tensor<float>::full(Shape{5}, 0.0f, Device::cuda),
                       ("Tensor::full" + pending).c_str(), Error);
  CHECK(Tensor<float>::full(Shape{5}, 2.0f, Device::cuda).to(Device::cpu).data()[4] == 2.0f);

  leave_pending();  // a copy to the device
  Tensor<float> y = Tensor<float>::empty(host.shape(), Device::cuda);
  CHECK_THROWS_WITH_AS(y.copy_from(host), ("Tensor::copy_from" + pending).c_str(), Error);
  y.copy_from(host);
  CHECK(y.to(Device::cpu).data()[23] == host.data()[23]);

  leave_pending();  // a 16-bit conversion
  CHECK_THROWS_WITH_AS(to_half<float16>(x), ("to_half" + pending).c_str(), Error);
  const Tensor<float16> h = to_half<float16>(x);
  CHECK(to_float(h).to(Device::cpu).data()[0] == float(float16(host.data()[0])));
  // A 16-bit loss widens its logits first, under its own name.
  const auto labels = gpu(Tensor<int64_t>::full(Shape{2, 4}, 1));
  const double expected = cross_entropy_value_and_grad(h, labels).value;
  leave_pending();
  CHECK_THROWS_WITH_AS(cross_entropy_value_and_grad(h, labels),
                       ("cross_entropy_value_and_grad" + pending).c_str(), Error);
  CHECK(cross_entropy_value_and_grad(h, labels).value == expected);

  {
    ad::Tape<float> tape;  // a tape's elementwise primitive, then its backward
    const ad::Var<float> v = tape.leaf(x);
    leave_pending();
    CHECK_THROWS_WITH_AS(ad::exp(v), ("ad::Tape" + pending).c_str(), Error);
    const ad::Var<float> loss = ad::sum(ad::exp(v));
    leave_pending();
    CHECK_THROWS_WITH_AS(tape.backward(loss), ("ad::Tape::backward" + pending).c_str(), Error);
    tape.backward(loss);
    CHECK(tape.grad(v).to(Device::cpu).data()[7] == doctest::Approx(std::exp(host.data()[7])));
  }
  CHECK(cudaPeekAtLastError() == cudaSuccess);
}

#endif
