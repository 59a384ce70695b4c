// bce_with_logits' mean_over = weight_sum on CUDA (session 9): W, the sum of the weight
// broadcast to the input, reduced on the device (backends/cuda/weight_sum.cuh), for every form
// of bce_with_logits and for bce_dice's BCE term (the Carvana recipe: boundary weights and the
// weight-sum mean entirely on CUDA), against the CPU; W = 0 with NaN logits; 10 runs bitwise; the
// split's statistics / finalize; the device-value form under graph capture.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

using namespace segloss;
using namespace segloss::testing;

namespace {

const Shape kShape{2, 3, 16, 12};

template <class T>
BceWithLogitsOptions<T> on_device(BceWithLogitsOptions<T> o) {
  o.weight = gpu(o.weight);
  o.pos_weight = gpu(o.pos_weight);
  return o;
}

// Every form of bce_with_logits with o (CPU tensors) on CUDA against the CPU.
template <class T>
void check_forms(const Tensor<T>& x, const Tensor<T>& z, const BceWithLogitsOptions<T>& o) {
  const double tol = parity_tol<T>();
  const auto od = on_device(o);
  const auto xd = gpu(x), zd = gpu(z);
  // forward (mean): a device scalar
  const auto f = bce_with_logits(xd, zd, od);
  CHECK(f.device() == Device::cuda);
  check_parity(bce_with_logits(x, z, o), f, tol, "forward");
  // backward with a device grad_out
  const auto go = Tensor<T>::full(Shape{}, T(0.75));
  check_parity(bce_with_logits_backward(x, z, go, o), bce_with_logits_backward(xd, zd, gpu(go), od),
               tol, "backward");
  // value_and_grad: returned, host value into a grad, device value (no wait)
  const auto ref = bce_with_logits_value_and_grad(x, z, o);
  const auto got = bce_with_logits_value_and_grad(xd, zd, od);
  check_parity(ref.value, got.value, tol, "value_and_grad value");
  check_parity(ref.grad, got.grad, tol, "value_and_grad grad");
  Tensor<T> g = Tensor<T>::empty(x.shape(), Device::cuda);
  check_parity(ref.value, bce_with_logits_value_and_grad(xd, zd, g, od), tol, "host value form");
  check_parity(ref.grad, g, tol, "host value form's grad");
  Tensor<T> g2 = Tensor<T>::empty(x.shape(), Device::cuda);
  Tensor<T> v = Tensor<T>::empty(Shape{}, Device::cuda);
  bce_with_logits_value_and_grad(xd, zd, g2, v, od);
  check_parity(Tensor<T>::full(Shape{}, static_cast<T>(ref.value)), v, tol, "device value form");
  check_parity(ref.grad, g2, tol, "device value form's grad");
  // The weight-sum mean differs from the element mean here: the option reached the kernels.
  BceWithLogitsOptions<T> elements = od;
  elements.mean_over = BceMeanOver::elements;
  CHECK(std::abs(bce_with_logits_value_and_grad(xd, zd, elements).value - got.value) >
        1e-3 * std::abs(got.value));
}

template <class T>
void all_weight_shapes() {
  const auto x = randn<T>(kShape, 901, 2.0);
  const auto z = mask<T>(kShape, 902, 0.4);
  const std::vector<Shape> shapes = {
      {2, 1, 16, 12}, {1, 1, 16, 12}, {3, 1, 1}, {1, 3, 1, 1}, kShape};
  for (size_t k = 0; k < shapes.size(); ++k) {
    CAPTURE(k);
    BceWithLogitsOptions<T> o;
    o.mean_over = BceMeanOver::weight_sum;
    o.weight = uniform<T>(shapes[k], 903 + k, 0.0, 3.0);
    if (k == 1) o.pos_weight = Tensor<T>::from({2.0, 0.5, 1.5}, {3});
    if (k == 2) o.label_smoothing = 0.1;
    if (k == 4) o.pos_weight = Tensor<T>::full(Shape{1}, T(3)), o.label_smoothing = 0.2;
    check_forms(x, z, o);
  }
}

}  // namespace

TEST_CASE("cuda weight_sum: bce_with_logits, every form and weight shape, float") {
  SEGLOSS_REQUIRE_GPU();
  all_weight_shapes<float>();
}

TEST_CASE("cuda weight_sum: bce_with_logits, every form and weight shape, double") {
  SEGLOSS_REQUIRE_GPU();
  all_weight_shapes<double>();
}

TEST_CASE("cuda weight_sum: several blocks per plane and for the weight's sum") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 96, 80};  // 7,680 elements a plane: 2 blocks each, 4 for a full weight
  const auto x = randn<float>(s, 911, 2.0);
  const auto z = mask<float>(s, 912, 0.3);
  BceWithLogitsOptions<float> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = uniform<float>(s, 913, 0.0, 2.0);
  check_forms(x, z, o);
  BceWithLogitsOptions<double> od;
  od.mean_over = BceMeanOver::weight_sum;
  od.weight = uniform<double>(Shape{1, 1, 96, 80}, 914, 0.0, 2.0);
  check_forms(randn<double>(s, 915, 2.0), mask<double>(s, 916, 0.3), od);
}

TEST_CASE("cuda weight_sum: W = 0 gives value 0 and exact zero gradients, NaN logits too") {
  SEGLOSS_REQUIRE_GPU();
  auto x = randn<float>(kShape, 921, 2.0);
  x[5] = NAN;
  x[700] = NAN;
  const auto z = mask<float>(kShape, 922);
  BceWithLogitsOptions<float> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = Tensor<float>::zeros({2, 1, 16, 12});
  const auto od = on_device(o);
  const auto xd = gpu(x), zd = gpu(z);
  const auto zeros = Tensor<float>::zeros(kShape);
  CHECK(bce_with_logits(xd, zd, od).to(Device::cpu)[0] == 0.f);
  // grad_out NaN too: the CPU's zeros do not read it
  const auto go = Tensor<float>::full(Shape{}, NAN);
  CHECK(same_bits(bce_with_logits_backward(x, z, go, o), zeros));
  CHECK(same_bits(bce_with_logits_backward(xd, zd, gpu(go), od), zeros));
  const auto r = bce_with_logits_value_and_grad(xd, zd, od);
  CHECK(r.value == 0.0);
  CHECK(same_bits(r.grad, zeros));
  Tensor<float> g = Tensor<float>::full(kShape, NAN).to(Device::cuda);
  Tensor<float> v = Tensor<float>::full(Shape{}, NAN).to(Device::cuda);
  bce_with_logits_value_and_grad(xd, zd, g, v, od);
  CHECK(v.to(Device::cpu)[0] == 0.f);
  CHECK(same_bits(g, zeros));
  // the split: W = 0 reduced on the device, the finalize's zeros
  const auto st = bce_with_logits_statistics(xd, zd, od);
  CHECK(st.global[1] == 0.0);
  Tensor<float> gf = Tensor<float>::full(kShape, NAN).to(Device::cuda);
  CHECK(bce_with_logits_finalize(xd, zd, st, gf, od) == 0.0);
  CHECK(same_bits(gf, zeros));
  // bce_dice: the BCE term is 0 (its gradient 0 * NaN, as on the CPU: NaN where the logit is)
  BceDiceOptions<float> b;
  b.bce = o;
  BceDiceOptions<float> bd = b;
  bd.bce = od;
  const auto x2 = randn<float>(kShape, 923, 2.0);
  const auto want = bce_dice_value_and_grad(x2, z, b);
  const auto got = bce_dice_value_and_grad(gpu(x2), zd, bd);
  check_parity(want.value, got.value, 1e-5, "bce_dice value, W = 0");
  check_parity(want.grad, got.grad, 1e-5, "bce_dice grad, W = 0");
}

TEST_CASE("cuda weight_sum: the split's statistics / finalize against the CPU") {
  SEGLOSS_REQUIRE_GPU();
  const auto x = randn<double>(kShape, 931, 2.0);
  const auto z = mask<double>(kShape, 932);
  BceWithLogitsOptions<double> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = uniform<double>(Shape{1, 3, 1, 1}, 933, 0.5, 2.0);
  o.pos_weight = Tensor<double>::from({2.0, 0.5, 1.5}, {3});
  const auto od = on_device(o);
  const auto xd = gpu(x), zd = gpu(z);
  const auto st_cpu = bce_with_logits_statistics(x, z, o);
  const auto st = bce_with_logits_statistics(xd, zd, od);
  REQUIRE(st.global.size() == st_cpu.global.size());
  check_parity(st_cpu.global[1], st.global[1], 1e-12, "divisor W");
  check_parity(st_cpu.global[0], st.global[0], 1e-12, "loss sum");
  Tensor<double> g = Tensor<double>::empty(kShape, Device::cuda);
  Tensor<double> gc;
  const double v_cpu = bce_with_logits_finalize(x, z, st_cpu, gc, o);
  check_parity(v_cpu, bce_with_logits_finalize(xd, zd, st, g, od), 1e-12, "finalize value");
  check_parity(gc, g, 1e-12, "finalize grad");
  // bce_dice's statistics carry the device's W too
  BceDiceOptions<double> b;
  b.bce = o;
  BceDiceOptions<double> bd = b;
  bd.bce = od;
  const auto bs_cpu = bce_dice_statistics(x, z, b);
  const auto bs = bce_dice_statistics(xd, zd, bd);
  REQUIRE(bs.global.size() == bs_cpu.global.size());
  check_parity(bs_cpu.global[1], bs.global[1], 1e-12, "bce_dice divisor W");
  Tensor<double> bg = Tensor<double>::empty(kShape, Device::cuda);
  Tensor<double> bgc;
  check_parity(bce_dice_finalize(x, z, bs_cpu, bgc, b), bce_dice_finalize(xd, zd, bs, bg, bd),
               1e-12, "bce_dice finalize value");
  check_parity(bgc, bg, 1e-12, "bce_dice finalize grad");
}

namespace {

// The README's Carvana recipe: BCE weighted by boundary_weights(mask), its mean over the weight
// sum, plus Dice; CPU against CUDA with the weights computed on each device. normalize false:
// the raw weights, whose W is not numel (normalized weights sum to numel: W = numel to rounding).
template <class T>
void carvana(const Shape& s, uint64_t seed, bool normalize = true) {
  const auto x = randn<T>(s, seed, 2.0);
  const auto t = mask<T>(s, seed + 1, 0.5);
  BoundaryWeightOptions bo;
  bo.normalize = normalize;
  BceDiceOptions<T> o;
  o.bce.weight = boundary_weights(t, bo);
  o.bce.mean_over = BceMeanOver::weight_sum;
  o.bce_weight = 1.0;
  o.dice_weight = 1.0;
  const auto td = gpu(t), xd = gpu(x);
  BceDiceOptions<T> od = o;
  od.bce.weight = boundary_weights(td, bo);
  CHECK(od.bce.weight.device() == Device::cuda);
  const double tol = parity_tol<T>();
  const auto want = bce_dice_value_and_grad(x, t, o);
  const auto got = bce_dice_value_and_grad(xd, td, od);
  check_parity(want.value, got.value, tol, "bce_dice value");
  check_parity(want.grad, got.grad, tol, "bce_dice grad");
  check_parity(bce_dice(x, t, o), bce_dice(xd, td, od), tol, "bce_dice forward");
  const auto go = Tensor<T>::full(Shape{}, T(1.5));
  check_parity(bce_dice_backward(x, t, go, o), bce_dice_backward(xd, td, gpu(go), od), tol,
               "bce_dice backward");
  Tensor<T> g = Tensor<T>::empty(s, Device::cuda);
  Tensor<T> v = Tensor<T>::empty(Shape{}, Device::cuda);
  bce_dice_value_and_grad(xd, td, g, v, od);
  check_parity(Tensor<T>::full(Shape{}, static_cast<T>(want.value)), v, tol, "device value");
  check_parity(want.grad, g, tol, "device value form's grad");
  // The weight-sum mean reached the fused kernels: the element mean gives another value.
  if (!normalize) {
    BceDiceOptions<T> elements = od;
    elements.bce.mean_over = BceMeanOver::elements;
    CHECK(std::abs(bce_dice_value_and_grad(xd, td, elements).value - got.value) >
          1e-3 * std::abs(got.value));
  }
}

}  // namespace

TEST_CASE("cuda weight_sum: the Carvana recipe (boundary weights, bce_dice) wholly on CUDA") {
  SEGLOSS_REQUIRE_GPU();
  carvana<float>({2, 1, 24, 20}, 941);
  carvana<double>({2, 1, 24, 20}, 943);
  carvana<float>({1, 1, 80, 72}, 945);  // 5,760 elements: two blocks, two for the weight sum
  carvana<float>({2, 1, 24, 20}, 947, /*normalize=*/false);
  carvana<double>({1, 1, 80, 72}, 949, /*normalize=*/false);
}

TEST_CASE("cuda weight_sum: the same bits over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1, 80, 64};
  const auto xd = gpu(randn<float>(s, 951, 2.0)), zd = gpu(mask<float>(s, 952));
  BceWithLogitsOptions<float> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = gpu(uniform<float>(s, 953, 0.0, 2.0));
  BceDiceOptions<float> b;
  b.bce = o;
  const auto r0 = bce_with_logits_value_and_grad(xd, zd, o);
  const auto d0 = bce_dice_value_and_grad(xd, zd, b);
  const auto st0 = bce_with_logits_statistics(xd, zd, o);
  for (int run = 0; run < 10; ++run) {
    const auto r = bce_with_logits_value_and_grad(xd, zd, o);
    CHECK(r.value == r0.value);
    CHECK(same_bits(r.grad, r0.grad));
    const auto d = bce_dice_value_and_grad(xd, zd, b);
    CHECK(d.value == d0.value);
    CHECK(same_bits(d.grad, d0.grad));
    CHECK(bce_with_logits_statistics(xd, zd, o).global == st0.global);
  }
}

#if defined(SEGLOSS_TEST_CUDA)

TEST_CASE("cuda weight_sum: the device-value forms run under graph capture (no wait, no alloc)") {
  SEGLOSS_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  const Shape shape{2, 1, 24, 20};
  const auto x = randn<float>(shape, 961, 2.0), z = mask<float>(shape, 962);
  const auto xd = gpu(x), zd = gpu(z);
  BceWithLogitsOptions<float> o;
  o.mean_over = BceMeanOver::weight_sum;
  o.weight = uniform<float>(Shape{2, 1, 24, 20}, 963, 0.0, 2.0);
  const auto od = on_device(o);
  BceDiceOptions<float> b;
  b.bce = o;
  BceDiceOptions<float> bd = b;
  bd.bce = od;
  const double want_bce = bce_with_logits_value_and_grad(x, z, o).value;
  const double want_dice = bce_dice_value_and_grad(x, z, b).value;
  Tensor<float> grad = Tensor<float>::empty(shape, Device::cuda);
  Tensor<float> grad2 = Tensor<float>::empty(shape, Device::cuda);
  Tensor<float> value = Tensor<float>::empty(Shape{}, Device::cuda);
  Tensor<float> value2 = Tensor<float>::empty(Shape{}, Device::cuda);
  {
    cuda::StreamScope scope(s);
    bce_with_logits_value_and_grad(xd, zd, grad, od);  // warms the pool of stream s
    bce_dice_value_and_grad(xd, zd, grad2, bd);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    bce_with_logits_value_and_grad(xd, zd, grad, value, od);
    bce_dice_value_and_grad(xd, zd, grad2, value2, bd);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes >= 12);  // each: memset, weight pass, combine, scale, its passes, device value
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    value.copy_from(Tensor<float>::full(Shape{}, -1.f));
    value2.copy_from(Tensor<float>::full(Shape{}, -1.f));
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    check_parity(want_bce, static_cast<double>(value.to(Device::cpu)[0]), 1e-5, "bce value");
    check_parity(want_dice, static_cast<double>(value2.to(Device::cpu)[0]), 1e-5, "dice value");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(s);
}

#endif
