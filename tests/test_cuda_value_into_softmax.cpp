// The device-value form of value_and_grad (`Tensor<T>& value`, session 11) of softmax_dice,
// softmax_jaccard, softmax_tversky, generalized_dice, lovasz_softmax and lovasz_hinge on CUDA:
// the value against the CPU (1e-5 relative in float, 1e-12 in double) and, bit for bit, the CUDA
// host-value form's value rounded to T (the same kernels write the same result slot), the
// gradient with the host-value form's bits; one shape with several blocks per plane; the call
// captured into a CUDA graph after warm-up (a capture fails on a wait or an allocation: the
// call does neither) whose replay gives the eager bits, the pool not grown; a bad label gives a
// NaN value without raising, and the NaN gradient of the device backward; 10 runs bitwise; the
// value's argument errors with CUDA logits. tests/test_value_into_softmax.cpp has the CPU side.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

template <class T>
bool bits_equal(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
T read_value(const Tensor<T>& v) {
  return v.to(Device::cpu)[0];
}

// One call of one loss, in both value_and_grad forms with a caller's grad.
template <class T>
struct Named {
  std::string name;
  std::function<double(Tensor<T>&)> host;
  std::function<void(Tensor<T>&, Tensor<T>&)> into;
  std::function<Tensor<T>(const Tensor<T>&)> backward;  // grad_out (one element) -> gradient
};

// The inputs of the calls, all on one device.
template <class T>
struct Inputs {
  Tensor<T> x, q, t, cw;
  Tensor<int32_t> y32;
  Tensor<int64_t> y64;
};

template <class T>
Inputs<T> make_inputs(const Shape& s, uint64_t seed) {
  Inputs<T> in;
  in.x = randn<T>(s, seed, 2.0);
  in.q = normalized_uniform<T>(s, seed + 1);
  in.t = mask<T>(s, seed + 2);
  in.t[3] = T(255);  // lovasz_hinge's ignore
  in.cw = uniform<T>(Shape{s[1]}, seed + 3, 0.5, 2.0);
  in.y32 = labels<int32_t>(s.without(1), s[1], seed + 4, 0.1);
  in.y64 = labels<int64_t>(s.without(1), s[1], seed + 5, 0.1);
  return in;
}

template <class T>
Inputs<T> on_gpu(const Inputs<T>& in) {
  return {gpu(in.x), gpu(in.q), gpu(in.t), gpu(in.cw), gpu(in.y32), gpu(in.y64)};
}

#define SEGLOSS_NAMED(LABEL, FN, X, Y, O)                                                   \
  v.push_back(                                                                              \
      Named<T>{LABEL, [=](Tensor<T>& g) { return FN##_value_and_grad(X, Y, g, O); },        \
               [=](Tensor<T>& g, Tensor<T>& val) { FN##_value_and_grad(X, Y, g, val, O); }, \
               [=](const Tensor<T>& go) { return FN##_backward(X, Y, go, O); }})

// The calls of the six functions (and a few options) on `in`'s device.
template <class T>
std::vector<Named<T>> calls(const Inputs<T>& in, Reduction r, bool per_image) {
  std::vector<Named<T>> v;
  SoftmaxOverlapOptions<T> d;
  d.reduction = r;
  d.per_image = per_image;
  SEGLOSS_NAMED("softmax_dice int32", softmax_dice, in.x, in.y32, d);
  SoftmaxOverlapOptions<T> dw = d;
  dw.class_weight = in.cw;
  dw.empty = EmptyPolicy::skip;
  dw.gamma = 2.0;
  SEGLOSS_NAMED("softmax_dice class_weight skip gamma int64", softmax_dice, in.x, in.y64, dw);
  SoftmaxOverlapOptions<T> j = d;
  j.squared = true;
  SEGLOSS_NAMED("softmax_jaccard probabilities squared", softmax_jaccard, in.x, in.q, j);
  SoftmaxTverskyOptions<T> tv;
  tv.reduction = r;
  tv.per_image = per_image;
  tv.alpha = 0.3;
  tv.beta = 0.7;
  tv.log = true;
  SEGLOSS_NAMED("softmax_tversky int64 log", softmax_tversky, in.x, in.y64, tv);
  GeneralizedDiceOptions<T> gd;
  gd.reduction = r;
  gd.per_image = per_image;
  SEGLOSS_NAMED("generalized_dice int32", generalized_dice, in.x, in.y32, gd);
  GeneralizedDiceOptions<T> gs = gd;
  gs.w_type = GeneralizedDiceWeight::simple;
  gs.include_background = false;
  SEGLOSS_NAMED("generalized_dice probabilities simple", generalized_dice, in.x, in.q, gs);
  LovaszSoftmaxOptions<T> ls;
  ls.reduction = r;
  ls.per_image = per_image;
  SEGLOSS_NAMED("lovasz_softmax int32", lovasz_softmax, in.x, in.y32, ls);
  LovaszSoftmaxOptions<T> la = ls;
  la.classes = LovaszClasses::all;
  SEGLOSS_NAMED("lovasz_softmax int64 all", lovasz_softmax, in.x, in.y64, la);
  LovaszHingeOptions<T> h;
  h.reduction = r;
  h.per_image = per_image;
  h.ignore = 255.0;
  SEGLOSS_NAMED("lovasz_hinge", lovasz_hinge, in.x, in.t, h);
  return v;
}

// Every call: the CUDA device-value form against the CPU, and against the CUDA host form.
// all_forms: both reductions with per_image both ways; else mean per image and sum per batch.
template <class T>
void check_parity_all(const Shape& s, uint64_t seed, bool all_forms) {
  const Inputs<T> in = make_inputs<T>(s, seed);
  const Inputs<T> ind = on_gpu(in);
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (bool per_image : {true, false}) {
      if (!all_forms && per_image != (r == Reduction::mean)) continue;
      const auto cpu_calls = calls(in, r, per_image);
      const auto gpu_calls = calls(ind, r, per_image);
      for (size_t k = 0; k < cpu_calls.size(); ++k) {
        CAPTURE(gpu_calls[k].name);
        CAPTURE(static_cast<int>(r));
        CAPTURE(per_image);
        Tensor<T> g_cpu, g_host, g_into, value;
        const double want = cpu_calls[k].host(g_cpu);
        const double host = gpu_calls[k].host(g_host);
        gpu_calls[k].into(g_into, value);
        REQUIRE(value.defined());
        CHECK(value.device() == Device::cuda);
        CHECK(value.shape() == Shape{});
        CHECK(g_into.device() == Device::cuda);
        const T got = read_value(value);
        check_parity(want, static_cast<double>(got), tol<T>(), "value against the CPU");
        INFO("host form ", host, " device value ", static_cast<double>(got));
        CHECK(bits_equal(got, static_cast<T>(host)));
        CHECK(same_bits(g_into, g_host));
        if (sizeof(T) == 4 && gpu_calls[k].name.rfind("lovasz_softmax", 0) == 0)
          // float errors that tie to an ulp can sort the other way round on the device
          check_parity_except(g_cpu, g_into, tol<T>(), lovasz_swap_allowance(g_cpu.numel(), s[1]),
                              "gradient against the CPU");
        else
          check_parity(g_cpu, g_into, tol<T>(), "gradient against the CPU");
      }
    }
}

}  // namespace

TEST_CASE_TEMPLATE("cuda value into softmax: against the CPU and the host-value form", T, float,
                   double) {
  SEGLOSS_REQUIRE_GPU();
  check_parity_all<T>(Shape{2, 5, 9, 11}, 31, true);
}

TEST_CASE("cuda value into softmax: several blocks per plane") {
  SEGLOSS_REQUIRE_GPU();
  // 72 * 64 = 4608 pixels per image: two blocks per plane in the statistics pass (4096 each at
  // most, core/cuda_internal.hpp), sorts of thousands of records in the Lovász losses.
  check_parity_all<float>(Shape{2, 3, 72, 64}, 41, false);
}

TEST_CASE_TEMPLATE("cuda value into softmax: a bad label gives NaN without raising", T, float,
                   double) {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 4, 6, 7};
  Inputs<T> in = make_inputs<T>(s, 51);
  in.y32[42 + 5] = 9;          // image 1: a label outside [0, C)
  in.y64[42 + 8] = -3;         // image 1
  in.t[4 * 42 + 11] = T(0.5);  // image 1: neither 0, 1 nor the ignore value
  const Inputs<T> ind = on_gpu(in);
  // per_image: only image 1's score is NaN (its gradient too); the value is NaN.
  const auto v = calls(ind, Reduction::mean, true);
  const auto one = gpu(Tensor<T>::full(Shape{}, T(1)));
  for (const auto& c : v) {
    if (c.name.find("probabilities") != std::string::npos) continue;  // no labels to spoil
    CAPTURE(c.name);
    Tensor<T> g, value;
    CHECK_NOTHROW(c.into(g, value));
    CHECK(std::isnan(static_cast<double>(read_value(value))));
    // The gradient is the device backward's (NaN for the bad image only).
    const Tensor<T> gh = g.to(Device::cpu), want = c.backward(one).to(Device::cpu);
    int64_t nan_g = 0, nan_mismatch = 0;
    for (int64_t i = 0; i < gh.numel(); ++i) {
      nan_g += std::isnan(static_cast<double>(gh[i])) ? 1 : 0;
      nan_mismatch +=
          std::isnan(static_cast<double>(gh[i])) != std::isnan(static_cast<double>(want[i]));
    }
    CHECK(nan_mismatch == 0);
    CHECK(nan_g > 0);
    CHECK(nan_g < gh.numel());  // image 0 keeps a finite gradient
    // The host-value form raises the CPU's message.
    Tensor<T> g2;
    CHECK_THROWS_AS(c.host(g2), Error);
  }
}

TEST_CASE("cuda value into softmax: bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Inputs<float> ind = on_gpu(make_inputs<float>(Shape{2, 5, 13, 17}, 61));
  for (const auto& c : calls(ind, Reduction::mean, true)) {
    CAPTURE(c.name);
    Tensor<float> g0, v0;
    c.into(g0, v0);
    const float first = read_value(v0);
    const Tensor<float> g_first = g0.to(Device::cpu);
    for (int run = 1; run < 10; ++run) {
      Tensor<float> g, v;
      c.into(g, v);
      CHECK(bits_equal(read_value(v), first));
      CHECK(same_bits(g, g_first));
    }
  }
}

#if defined(SEGLOSS_TEST_CUDA)
TEST_CASE_TEMPLATE("cuda value into softmax: graph capture after warm-up, no wait, no allocation",
                   T, float, double) {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 4, 10, 12};
  const Inputs<T> ind = on_gpu(make_inputs<T>(shape, 71));
  {
    cuda::StreamScope scope(s);
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
      for (const auto& c : calls(ind, r, r == Reduction::mean)) {
        CAPTURE(c.name);
        CAPTURE(static_cast<int>(r));
        Tensor<T> g = Tensor<T>::empty(shape, Device::cuda);
        Tensor<T> value = Tensor<T>::empty(Shape{}, Device::cuda);
        c.into(g, value);  // warms the pool of stream s; the eager result
        const T eager = read_value(value);
        const Tensor<T> g_eager = g.to(Device::cpu);
        const size_t warm = cuda::pool_bytes();
        // A capture fails if the call syncs, allocates, or uses another stream.
        REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
        c.into(g, value);
        cudaGraph_t graph = nullptr;
        REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
        size_t nodes = 0;
        REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
        CHECK(nodes >= 4);  // the header's memset, the passes, the finalize, the device value
        cudaGraphExec_t exec = nullptr;
        REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
        value.copy_from(Tensor<T>::full(Shape{}, T(-1)));
        g.copy_from(Tensor<T>::full(shape, T(-1)));
        REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
        REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
        CHECK(bits_equal(read_value(value), eager));
        CHECK(same_bits(g, g_eager));
        CHECK(cuda::pool_bytes() == warm);
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
      }
    }
  }
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  cudaStreamDestroy(s);
}
#endif

TEST_CASE("cuda value into softmax: the value's argument errors with CUDA logits") {
  // Checked before any CUDA call: runs without a GPU (the pointers are never dereferenced).
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const Shape s{1, 3, 2, 2};
  const auto x = unread_cuda_view<float>(s);
  const auto y = unread_cuda_view<int64_t>(s.without(1));
  const auto t = unread_cuda_view<float>(s);
  Tensor<float> g;
  auto host_value = Tensor<float>::zeros(Shape{});
  auto two = unread_cuda_view<float>(Shape{2});
  auto one = unread_cuda_view<float>(Shape{1});
#define SEGLOSS_VALUE_ERRORS(FN, Y, OPTIONS)                                                    \
  do {                                                                                          \
    OPTIONS<float> o;                                                                           \
    CHECK_THROWS_WITH_AS(FN##_value_and_grad(x, Y, g, host_value, o),                           \
                         #FN                                                                    \
                         "_value_and_grad: value () is on device cpu, but logits are on cuda: " \
                         "every tensor of a call must be on one device",                        \
                         Error);                                                                \
    CHECK_THROWS_WITH_AS(FN##_value_and_grad(x, Y, g, two, o),                                  \
                         #FN "_value_and_grad: value (2) must hold one element", Error);        \
    o.reduction = Reduction::none;                                                              \
    CHECK_THROWS_WITH_AS(FN##_value_and_grad(x, Y, g, one, o),                                  \
                         doctest::Contains(#FN "_value_and_grad: reduction none has no single " \
                                               "value; use " #FN " and " #FN "_backward"),      \
                         Error);                                                                \
  } while (0)
  SEGLOSS_VALUE_ERRORS(softmax_dice, y, SoftmaxOverlapOptions);
  SEGLOSS_VALUE_ERRORS(softmax_jaccard, y, SoftmaxOverlapOptions);
  SEGLOSS_VALUE_ERRORS(softmax_tversky, y, SoftmaxTverskyOptions);
  SEGLOSS_VALUE_ERRORS(generalized_dice, y, GeneralizedDiceOptions);
  SEGLOSS_VALUE_ERRORS(lovasz_softmax, y, LovaszSoftmaxOptions);
  SEGLOSS_VALUE_ERRORS(lovasz_hinge, t, LovaszHingeOptions);
#undef SEGLOSS_VALUE_ERRORS
}
