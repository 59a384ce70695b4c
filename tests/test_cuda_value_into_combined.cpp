// The device-value form of value_and_grad (`Tensor<T>& value`, session 11) of sigmoid_focal,
// softmax_focal, ce_dice and dice_focal on CUDA: against the CPU (1e-5 relative in float, 1e-11
// in double) with the terms' main options, against the CUDA host form (the gradient's bits; the
// value's bits for the focal losses and for the combined losses in double); captured into a
// CUDA graph after warm-up (so nothing waits, allocates or leaves the stream), the replay giving
// the eager bits, in place too; a bad label gives NaN without raising; 10 runs bitwise; the
// argument errors (the host form's messages).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double host_of(const Tensor<T>& v) {
  return static_cast<double>(v.to(Device::cpu)[0]);
}

// One loss with one set of options: cpu(g) is the CPU host form (returns the value), host(g) the
// CUDA host form, into(g, v) the CUDA device-value form. exact_value: the device value has the
// bits of the CUDA host form's value rounded to T (else within 1e-6 relative of it: ce_dice and
// dice_focal in float round the first term's value to float before the total).
template <class T, class Cpu, class Host, class Into>
void check_form(const Shape& shape, bool exact_value, Cpu&& cpu, Host&& host, Into&& into) {
  Tensor<T> g_cpu, g_host, g_into, value;
  const double v_cpu = cpu(g_cpu);
  const double v_host = host(g_host);
  into(g_into, value);  // undefined value and grad: allocated on the device
  REQUIRE(value.defined());
  CHECK(value.device() == Device::cuda);
  CHECK(value.shape() == Shape{});
  CHECK(g_into.device() == Device::cuda);
  const double v = host_of(value);
  check_parity(v_cpu, v, parity_tol<T>(), "device value against the CPU");
  check_parity(g_cpu, g_into, parity_tol<T>(), "gradient against the CPU");
  CHECK(same_bits(g_host, g_into));
  INFO("CUDA host form ", v_host, ", device value ", v);
  if (exact_value)
    CHECK(static_cast<T>(v_host) == static_cast<T>(v));
  else
    CHECK(std::abs(v - v_host) <= 1e-6 * std::abs(v_host));
  // A caller's value and grad holding garbage are overwritten.
  auto given = gpu(Tensor<T>::full(Shape{1, 1}, T(-7)));
  auto g_given = gpu(Tensor<T>::full(shape, T(1e6)));
  into(g_given, given);
  CHECK(host_of(given) == v);
  CHECK(same_bits(g_given, g_into));
}

template <class T>
void focal_parity() {
  const Shape shape{2, 3, 9, 7};
  const auto x = randn<T>(shape, 11, 2.5), z = mask<T>(shape, 12);
  const auto xd = gpu(x), zd = gpu(z);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    SigmoidFocalOptions<T> o;
    o.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.alpha = k < 2 ? 0.3 : -1.0;
    o.gamma = k < 2 ? 2.0 : 0.7;
    if (k == 1) o.weight = uniform<T>(Shape{1, 3, 1, 1}, 13, 0.5, 2.0);
    SigmoidFocalOptions<T> od = o;
    od.weight = gpu(o.weight);
    check_form<T>(
        shape, true, [&](Tensor<T>& g) { return sigmoid_focal_value_and_grad(x, z, g, o); },
        [&](Tensor<T>& g) { return sigmoid_focal_value_and_grad(xd, zd, g, od); },
        [&](Tensor<T>& g, Tensor<T>& v) { sigmoid_focal_value_and_grad(xd, zd, g, v, od); });
  }
  const Shape s2{2, 5, 6, 7};
  const auto x2 = randn<T>(s2, 14, 2.5);
  const auto y32 = labels<int32_t>(s2.without(1), 5, 15, 0.2, 4);
  const auto y64 = labels<int64_t>(s2.without(1), 5, 16, 0.2);
  const auto x2d = gpu(x2);
  const auto y32d = gpu(y32);
  const auto y64d = gpu(y64);
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    SoftmaxFocalOptions<T> o;
    o.reduction = k % 2 ? Reduction::sum : Reduction::mean;
    o.gamma = k < 2 ? 2.0 : 1.5;
    if (k >= 2) o.alpha = uniform<T>(Shape{5}, 17, 0.2, 1.0);
    if (k % 2 == 0) o.ignore_index = 4;
    SoftmaxFocalOptions<T> od = o;
    od.alpha = gpu(o.alpha);
    if (k % 2 == 0)
      check_form<T>(
          s2, true, [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x2, y32, g, o); },
          [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x2d, y32d, g, od); },
          [&](Tensor<T>& g, Tensor<T>& v) { softmax_focal_value_and_grad(x2d, y32d, g, v, od); });
    else
      check_form<T>(
          s2, true, [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x2, y64, g, o); },
          [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x2d, y64d, g, od); },
          [&](Tensor<T>& g, Tensor<T>& v) { softmax_focal_value_and_grad(x2d, y64d, g, v, od); });
  }
}

template <class T>
CeDiceOptions<T> ce_dice_options(int k, int64_t C) {
  CeDiceOptions<T> o;
  o.ce_weight = 0.7;
  o.dice_weight = 1.3;
  o.ce.reduction = o.dice.reduction = k % 2 ? Reduction::sum : Reduction::mean;
  if (k >= 1) o.ce.label_smoothing = 0.1;
  if (k >= 2) o.ce.weight = uniform<T>(Shape{C}, 31, 0.3, 2.0);
  if (k >= 2) o.dice.class_weight = uniform<T>(Shape{C}, 32, 0.3, 2.0);
  if (k == 3) o.dice.include_background = false;
  return o;
}

template <class T>
CeDiceOptions<T> on_device(CeDiceOptions<T> o) {
  o.ce.weight = gpu(o.ce.weight);
  o.dice.class_weight = gpu(o.dice.class_weight);
  return o;
}

template <class T>
DiceFocalOptions<T> on_device(DiceFocalOptions<T> o) {
  o.focal.alpha = gpu(o.focal.alpha);
  o.dice.class_weight = gpu(o.dice.class_weight);
  return o;
}

template <class T, class U>
void ce_dice_parity_with(const Shape& shape, const Tensor<U>& y, const CeDiceOptions<T>& o) {
  const auto x = randn<T>(shape, 33, 2.0);
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const auto od = on_device(o);
  check_form<T>(
      shape, sizeof(T) == 8, [&](Tensor<T>& g) { return ce_dice_value_and_grad(x, y, g, o); },
      [&](Tensor<T>& g) { return ce_dice_value_and_grad(xd, yd, g, od); },
      [&](Tensor<T>& g, Tensor<T>& v) { ce_dice_value_and_grad(xd, yd, g, v, od); });
}

template <class T>
void ce_dice_parity() {
  const Shape shape{2, 4, 7, 6};
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    auto o = ce_dice_options<T>(k, 4);
    o.ce.ignore_index = o.dice.ignore_index = 2;
    ce_dice_parity_with<T>(shape, labels<int32_t>(shape.without(1), 4, 34 + k, 0.0), o);
    o.ce.ignore_index = o.dice.ignore_index = -100;
    ce_dice_parity_with<T>(shape, labels<int64_t>(shape.without(1), 4, 38 + k, 0.15), o);
    ce_dice_parity_with<T>(shape, normalized_uniform<T>(shape, 42 + k), o);
  }
}

template <class T, class L>
void dice_focal_parity_with(const Shape& shape, int k, uint64_t seed) {
  DiceFocalOptions<T> o;
  o.dice_weight = 0.6;
  o.focal_weight = 1.7;
  o.focal.reduction = o.dice.reduction = k % 2 ? Reduction::sum : Reduction::mean;
  o.focal.gamma = k >= 2 ? 0.5 : 2.0;
  if (k >= 1) o.focal.alpha = uniform<T>(Shape{shape[1]}, seed, 0.2, 1.0);
  if (k >= 2) o.dice.class_weight = uniform<T>(Shape{shape[1]}, seed + 1, 0.3, 2.0);
  if (k == 3) o.focal.ignore_index = o.dice.ignore_index = 1;
  const auto x = randn<T>(shape, seed + 2, 2.0);
  const auto y = labels<L>(shape.without(1), shape[1], seed + 3, 0.15, k == 3 ? 1 : -100);
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const auto od = on_device(o);
  check_form<T>(
      shape, sizeof(T) == 8, [&](Tensor<T>& g) { return dice_focal_value_and_grad(x, y, g, o); },
      [&](Tensor<T>& g) { return dice_focal_value_and_grad(xd, yd, g, od); },
      [&](Tensor<T>& g, Tensor<T>& v) { dice_focal_value_and_grad(xd, yd, g, v, od); });
}

template <class T>
void dice_focal_parity() {
  const Shape shape{2, 4, 7, 6};
  for (int k = 0; k < 4; ++k) {
    CAPTURE(k);
    dice_focal_parity_with<T, int32_t>(shape, k, 50 + 10 * k);
    dice_focal_parity_with<T, int64_t>(shape, k, 90 + 10 * k);
  }
}

}  // namespace

TEST_CASE("cuda value into: sigmoid_focal and softmax_focal, CPU parity and the host form") {
  SEGLOSS_REQUIRE_GPU();
  focal_parity<float>();
  focal_parity<double>();
}

TEST_CASE("cuda value into: ce_dice, CPU parity and the host form, labels and probabilities") {
  SEGLOSS_REQUIRE_GPU();
  ce_dice_parity<float>();
  ce_dice_parity<double>();
}

TEST_CASE("cuda value into: dice_focal, CPU parity and the host form, int32 and int64 labels") {
  SEGLOSS_REQUIRE_GPU();
  dice_focal_parity<float>();
  dice_focal_parity<double>();
}

TEST_CASE("cuda value into: several blocks per image, 10 runs bitwise") {
  SEGLOSS_REQUIRE_GPU();
  // 3 x 3,000 pixels per image: 3 parts of the Dice statistics per image, 24 blocks of
  // cross_entropy and softmax_focal; sigmoid_focal's planes of 3,000 elements.
  const Shape shape{2, 3, 60, 50};
  const auto x = randn<float>(shape, 61, 2.0);
  const auto y = labels<int64_t>(shape.without(1), 3, 62, 0.1);
  const auto z = mask<float>(shape, 63);
  const auto xd = gpu(x), zd = gpu(z);
  const auto yd = gpu(y);
  CeDiceOptions<float> co = ce_dice_options<float>(2, 3);
  DiceFocalOptions<float> fo;
  fo.focal.alpha = uniform<float>(Shape{3}, 64, 0.2, 1.0);
  fo.focal.gamma = 1.5;
  fo.dice_weight = 0.8;
  SoftmaxFocalOptions<float> so;
  so.gamma = 0.5;
  SigmoidFocalOptions<float> go;
  go.gamma = 1.5;
  const auto cod = on_device(co);
  const auto fod = on_device(fo);
  check_form<float>(
      shape, false, [&](Tensor<float>& g) { return ce_dice_value_and_grad(x, y, g, co); },
      [&](Tensor<float>& g) { return ce_dice_value_and_grad(xd, yd, g, cod); },
      [&](Tensor<float>& g, Tensor<float>& v) { ce_dice_value_and_grad(xd, yd, g, v, cod); });
  check_form<float>(
      shape, false, [&](Tensor<float>& g) { return dice_focal_value_and_grad(x, y, g, fo); },
      [&](Tensor<float>& g) { return dice_focal_value_and_grad(xd, yd, g, fod); },
      [&](Tensor<float>& g, Tensor<float>& v) { dice_focal_value_and_grad(xd, yd, g, v, fod); });
  Tensor<float> v_ce, v_df, v_sf, v_gf, g_ce, g_df, g_sf, g_gf;
  ce_dice_value_and_grad(xd, yd, g_ce, v_ce, cod);
  dice_focal_value_and_grad(xd, yd, g_df, v_df, fod);
  softmax_focal_value_and_grad(xd, yd, g_sf, v_sf, so);
  sigmoid_focal_value_and_grad(xd, zd, g_gf, v_gf, go);
  const Tensor<float> r_ce = v_ce.to(Device::cpu), r_df = v_df.to(Device::cpu);
  const Tensor<float> r_sf = v_sf.to(Device::cpu), r_gf = v_gf.to(Device::cpu);
  const Tensor<float> rg_ce = g_ce.to(Device::cpu), rg_df = g_df.to(Device::cpu);
  const Tensor<float> rg_sf = g_sf.to(Device::cpu), rg_gf = g_gf.to(Device::cpu);
  for (int k = 0; k < 10; ++k) {
    CAPTURE(k);
    ce_dice_value_and_grad(xd, yd, g_ce, v_ce, cod);
    dice_focal_value_and_grad(xd, yd, g_df, v_df, fod);
    softmax_focal_value_and_grad(xd, yd, g_sf, v_sf, so);
    sigmoid_focal_value_and_grad(xd, zd, g_gf, v_gf, go);
    CHECK(same_bits(v_ce, r_ce));
    CHECK(same_bits(v_df, r_df));
    CHECK(same_bits(v_sf, r_sf));
    CHECK(same_bits(v_gf, r_gf));
    CHECK(same_bits(g_ce, rg_ce));
    CHECK(same_bits(g_df, rg_df));
    CHECK(same_bits(g_sf, rg_sf));
    CHECK(same_bits(g_gf, rg_gf));
  }
}

#if defined(SEGLOSS_TEST_CUDA)  // the CUDA runtime's graph API: a build with the backend
#include <cuda_runtime.h>

TEST_CASE("cuda value into: captured into a CUDA graph after warm-up, in place too") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 4, 9, 8};
  const auto x = gpu(randn<float>(shape, 71, 2.0));
  const auto z = gpu(mask<float>(shape, 72));
  const auto y = gpu(labels<int32_t>(shape.without(1), 4, 73, 0.1));
  const auto q = gpu(normalized_uniform<float>(shape, 74));
  const CeDiceOptions<float> co = on_device(ce_dice_options<float>(2, 4));
  DiceFocalOptions<float> fo;
  fo.focal.alpha = gpu(uniform<float>(Shape{4}, 75, 0.2, 1.0));
  fo.focal_weight = 0.9;
  SoftmaxFocalOptions<float> so;
  so.alpha = fo.focal.alpha;
  SigmoidFocalOptions<float> go;
  go.weight = gpu(uniform<float>(Shape{4, 1, 1}, 76, 0.5, 2.0));
  constexpr int kCalls = 7;
  Tensor<float> grads[kCalls], values[kCalls];
  for (int c = 0; c < kCalls; ++c) {
    grads[c] = Tensor<float>::empty(shape, Device::cuda);
    values[c] = Tensor<float>::empty(Shape{}, Device::cuda);
  }
  auto in_place_ce = Tensor<float>::empty(shape, Device::cuda);
  auto in_place_df = Tensor<float>::empty(shape, Device::cuda);
  const auto calls = [&] {
    ce_dice_value_and_grad(x, y, grads[0], values[0], co);
    ce_dice_value_and_grad(x, q, grads[1], values[1], co);
    dice_focal_value_and_grad(x, y, grads[2], values[2], fo);
    softmax_focal_value_and_grad(x, y, grads[3], values[3], so);
    sigmoid_focal_value_and_grad(x, z, grads[4], values[4], go);
    ce_dice_value_and_grad(in_place_ce, y, in_place_ce, values[5], co);  // grad the logits
    dice_focal_value_and_grad(in_place_df, y, in_place_df, values[6], fo);
  };
  {
    cuda::StreamScope scope(s);
    // Warm-up (the pool and the scratch of stream s), then the eager results.
    in_place_ce.copy_from(x);
    in_place_df.copy_from(x);
    calls();
    in_place_ce.copy_from(x);
    in_place_df.copy_from(x);
    calls();
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    Tensor<float> eager_v[kCalls], eager_g[kCalls];
    for (int c = 0; c < kCalls; ++c) {
      eager_v[c] = values[c].to(Device::cpu);
      eager_g[c] = grads[c].to(Device::cpu);
    }
    const Tensor<float> eager_ce = in_place_ce.to(Device::cpu);
    const Tensor<float> eager_df = in_place_df.to(Device::cpu);
    // The in-place results equal those of a separate grad.
    CHECK(same_bits(eager_ce, eager_g[0]));
    CHECK(same_bits(eager_df, eager_g[2]));
    // A capture fails if a call syncs, allocates or uses another stream.
    in_place_ce.copy_from(x);
    in_place_df.copy_from(x);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    std::string failed;
    try {
      calls();
    } catch (const Error& e) {
      failed = e.what();
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);  // ends the capture in any case
    if (!failed.empty()) {  // leave no capture error behind for the later cases
      if (graph) cudaGraphDestroy(graph);
      (void)cudaGetLastError();
    }
    INFO("a captured call failed: ", failed);
    REQUIRE(failed.empty());
    REQUIRE(ended == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes >= 30);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    const auto poison = Tensor<float>::full(shape, -3.f);
    const auto poison1 = Tensor<float>::full(Shape{}, -1.f);
    for (int c = 0; c < kCalls; ++c) {
      values[c].copy_from(poison1);
      grads[c].copy_from(poison);
    }
    in_place_ce.copy_from(x);
    in_place_df.copy_from(x);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    for (int c = 0; c < kCalls; ++c) {
      CAPTURE(c);
      CHECK(same_bits(values[c], eager_v[c]));
      if (c < 5) CHECK(same_bits(grads[c], eager_g[c]));
    }
    CHECK(same_bits(in_place_ce, eager_ce));
    CHECK(same_bits(in_place_df, eager_df));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(s);
}
#endif

TEST_CASE("cuda value into: a bad label gives a NaN value without raising") {
  SEGLOSS_REQUIRE_GPU();
  const Shape shape{2, 4, 5, 4};
  const auto x = gpu(randn<double>(shape, 81));
  auto y = labels<int64_t>(shape.without(1), 4, 82);
  y[27] = 4;  // image 1
  const auto yd = gpu(y);
  Tensor<double> g, v;
  CHECK_NOTHROW(ce_dice_value_and_grad(x, yd, g, v));
  CHECK(std::isnan(host_of(v)));
  const auto gh = g.to(Device::cpu);
  CHECK(std::isnan(gh[(1 * 4 + 0) * 20 + 7]));
  CHECK(std::isfinite(gh[0]));  // image 0: ce_dice's gradient stays finite
  v = Tensor<double>();
  CHECK_NOTHROW(dice_focal_value_and_grad(x, yd, g, v));
  CHECK(std::isnan(host_of(v)));
  v = Tensor<double>();
  CHECK_NOTHROW(softmax_focal_value_and_grad(x, yd, g, v));
  CHECK(std::isnan(host_of(v)));
  CHECK(std::isnan(g.to(Device::cpu)[(1 * 4 + 2) * 20 + 7]));
  // The same calls' host forms raise the CPU's message.
  const std::string want = error_of([&] { ce_dice_value_and_grad(x.to(Device::cpu), y); });
  CHECK(want.find("label 4 at (1,1,3)") != std::string::npos);
  CHECK(error_of([&] { ce_dice_value_and_grad(x, yd); }) == want);
  // A good call after the bad one gives a finite value (the flag is the call's own).
  const auto y_ok = gpu(labels<int64_t>(shape.without(1), 4, 83));
  ce_dice_value_and_grad(x, y_ok, g, v);
  CHECK(std::isfinite(host_of(v)));
}

TEST_CASE("cuda value into: the host forms' argument errors") {
  SEGLOSS_REQUIRE_GPU();
  const Shape shape{2, 3, 4, 5};
  const auto x = gpu(randn<float>(shape, 91));
  const auto y = gpu(labels<int32_t>(shape.without(1), 3, 92));
  const auto z = gpu(mask<float>(shape, 93));
  Tensor<float> g;
  auto two = Tensor<float>::empty(Shape{2}, Device::cuda);
  auto on_cpu = Tensor<float>::empty(Shape{});
  CHECK_THROWS_WITH_AS(ce_dice_value_and_grad(x, y, g, two),
                       doctest::Contains("ce_dice_value_and_grad: value (2) must hold one element"),
                       Error);
  CHECK_THROWS_WITH_AS(dice_focal_value_and_grad(x, y, g, two),
                       doctest::Contains("dice_focal_value_and_grad: value"), Error);
  CHECK_THROWS_WITH_AS(softmax_focal_value_and_grad(x, y, g, two),
                       doctest::Contains("must hold one element"), Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal_value_and_grad(x, z, g, two),
                       doctest::Contains("must hold one element"), Error);
  for (const std::string& m : {error_of([&] { ce_dice_value_and_grad(x, y, g, on_cpu); }),
                               error_of([&] { dice_focal_value_and_grad(x, y, g, on_cpu); }),
                               error_of([&] { softmax_focal_value_and_grad(x, y, g, on_cpu); }),
                               error_of([&] { sigmoid_focal_value_and_grad(x, z, g, on_cpu); })}) {
    CHECK(m.find("value") != std::string::npos);
    CHECK(m.find("cpu") != std::string::npos);
  }
  // Reduction none: the host form's message.
  Tensor<float> v, g2;
  CeDiceOptions<float> co;
  co.dice.reduction = Reduction::none;
  CHECK(error_of([&] { ce_dice_value_and_grad(x, y, g, v, co); }) ==
        error_of([&] { ce_dice_value_and_grad(x, y, g2, co); }));
  co.dice.reduction = Reduction::mean;
  co.ce.reduction = Reduction::none;
  CHECK(error_of([&] { ce_dice_value_and_grad(x, y, g, v, co); }) ==
        error_of([&] { ce_dice_value_and_grad(x, y, g2, co); }));
  DiceFocalOptions<float> fo;
  fo.focal.reduction = Reduction::none;
  const std::string df = error_of([&] { dice_focal_value_and_grad(x, y, g2, fo); });
  CHECK(df.find("options.focal.reduction is none") != std::string::npos);
  CHECK(error_of([&] { dice_focal_value_and_grad(x, y, g, v, fo); }) == df);
  SoftmaxFocalOptions<float> so;
  so.reduction = Reduction::none;
  const std::string sf = error_of([&] { softmax_focal_value_and_grad(x, y, g2, so); });
  CHECK(sf.find("reduction none") != std::string::npos);
  CHECK(error_of([&] { softmax_focal_value_and_grad(x, y, g, v, so); }) == sf);
  SigmoidFocalOptions<float> go;
  go.reduction = Reduction::none;
  const std::string gf = error_of([&] { sigmoid_focal_value_and_grad(x, z, g2, go); });
  CHECK(gf.find("reduction none") != std::string::npos);
  CHECK(error_of([&] { sigmoid_focal_value_and_grad(x, z, g, v, go); }) == gf);
  // A term's own error names the combined function and the term, as in the host form.
  CeDiceOptions<float> w;
  w.ce.weight = gpu(Tensor<float>::full(Shape{2}, 1.0f));
  const std::string we = error_of([&] { ce_dice_value_and_grad(x, y, g2, w); });
  CHECK(we.find("in the cross-entropy term") != std::string::npos);
  CHECK(error_of([&] { ce_dice_value_and_grad(x, y, g, v, w); }) == we);
}
