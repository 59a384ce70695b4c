// The sigmoid overlap losses' passes with 16-byte loads and stores (backends/cuda/runtime.cuh
// quad_pass_kernel): a thread's elements depend on the shape alone, so inputs and gradients at
// any offset from a 16-byte boundary (the element-wise fallback) give the bits of aligned ones
// (float4 / double2 on a GPU), planes that start unaligned (an odd plane size) included; and the
// passes agree with the CPU, and with the scalar kernel they replace (quad_loads off: another cut
// of the sums), within the parity tolerance; the gradient pass from the end (after the statistics
// pass) gives the bits of the forward order. Each test skips with a message where no GPU is.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#include <segloss/core/cuda_internal.hpp>

using namespace segloss;
using namespace segloss::testing;

namespace {

struct RestoreQuads {
  ~RestoreQuads() {
    cuda::detail::set_quad_loads(true);
    cuda::detail::set_gradient_from_the_end(true);
    cuda::detail::set_bce_value_in_gradient(true);
    cuda::detail::set_bce_value_in_gradient_weighted(false);
  }
};

// A device copy of t that starts `offset` elements past a 16-byte boundary (the storage is a
// cudaMalloc'd buffer, 256-byte aligned).
template <class T>
struct Shifted {
  Tensor<T> storage, view;
  Shifted(const Tensor<T>& t, int64_t offset) {
    storage = Tensor<T>::zeros(Shape{t.numel() + 8}, Device::cuda);
    view = Tensor<T>::view(storage.data() + offset, t.shape(), Device::cuda);
    view.copy_from(gpu(t));
  }
};

// Every sigmoid overlap entry point the passes serve, on x and z (device tensors), into a grad at
// a given offset: the values' and gradients' bits, in a fixed order.
template <class T>
std::vector<std::vector<uint64_t>> overlap_bits(const Tensor<T>& x, const Tensor<T>& z,
                                                int64_t grad_offset, const Tensor<T>& w) {
  std::vector<std::vector<uint64_t>> got;
  const Tensor<T> host_x = x.to(Device::cpu);
  Shifted<T> g(Tensor<T>::zeros(x.shape()), grad_offset);
  Tensor<T> value = Tensor<T>::empty(Shape{}, Device::cuda);
  for (int variant = 0; variant < 3; ++variant) {
    SoftDiceOptions<T> o;
    o.squared = variant == 1;
    o.per_image = variant != 2;
    if (variant == 2 && w.defined()) o.weight = w;
    got.push_back(bits_of(soft_dice_value_and_grad(x, z, g.view, o)));
    got.push_back(bits_of(g.view));
    soft_dice_value_and_grad(x, z, g.view, value, o);
    got.push_back(bits_of(value));
    got.push_back(bits_of(soft_dice(x, z, o)));
    TverskyOptions<T> to;
    to.alpha = T(0.3);
    to.beta = T(0.7);
    got.push_back(bits_of(tversky_value_and_grad(x, z, g.view, to)));
    got.push_back(bits_of(g.view));
  }
  for (int schedule = 0; schedule < 2; ++schedule) {
    cuda::detail::set_bce_value_in_gradient(schedule == 1);
    cuda::detail::set_bce_value_in_gradient_weighted(schedule == 1);
    for (int weighted = 0; weighted < (w.defined() ? 2 : 1); ++weighted) {
      BceDiceOptions<T> o;
      if (weighted) o.bce.weight = w;
      BceDiceParts p;
      got.push_back(bits_of(bce_dice_value_and_grad(x, z, g.view, o, &p)));
      got.push_back(bits_of(g.view));
      got.push_back(bits_of(p.bce));
      got.push_back(bits_of(p.dice));
      bce_dice_value_and_grad(x, z, g.view, value, o);
      got.push_back(bits_of(value));
      got.push_back(bits_of(bce_dice(x, z, o)));
      const Tensor<T> up = Tensor<T>::full(Shape{}, T(0.75), Device::cuda);
      got.push_back(bits_of(bce_dice_backward(x, z, up, o)));
    }
  }
  cuda::detail::set_bce_value_in_gradient(true);
  cuda::detail::set_bce_value_in_gradient_weighted(false);
  return got;
}

template <class T>
void offsets_give_the_same_bits(const Shape& s) {
  CAPTURE(s);
  const Tensor<T> x = randn<T>(s, 71, 3.0), z = mask<T>(s, 72);
  const Tensor<T> w = gpu(uniform<T>(s, 73, 0.5, 2.0));
  const Shifted<T> x0(x, 0), z0(z, 0);
  const auto want = overlap_bits<T>(x0.view, z0.view, 0, w);
  for (int64_t ox = 0; ox < 4; ++ox)
    for (int64_t oz : {int64_t{0}, int64_t{3}}) {
      if (ox == 0 && oz == 0) continue;
      CAPTURE(ox);
      CAPTURE(oz);
      const Shifted<T> xs(x, ox), zs(z, oz);
      const auto got = overlap_bits<T>(xs.view, zs.view, (ox + 1) % 4, w);
      REQUIRE(got.size() == want.size());
      for (size_t k = 0; k < got.size(); ++k) {
        CAPTURE(k);
        CHECK(got[k] == want[k]);
      }
    }
}

}  // namespace

TEST_CASE("cuda overlap passes: 16-byte loads and the element-wise fallback give the same bits") {
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  // One part per plane with a tail (17 x 19), several parts per plane with planes at every
  // alignment (an odd plane size: 301 x 301), a 3D volume, fewer elements than a quad.
  for (const Shape& s :
       {Shape{2, 3, 17, 19}, Shape{2, 2, 301, 301}, Shape{1, 2, 5, 6, 7}, Shape{1, 1, 1, 3}}) {
    offsets_give_the_same_bits<float>(s);
    offsets_give_the_same_bits<double>(s);
  }
}

TEST_CASE("cuda overlap passes: the gradient pass from the end gives the forward order's bits") {
  // The gradient pass after the statistics pass runs its blocks from the last range
  // (gradient_from_the_end): each range's partials (bce_dice's BCE value) in the same place.
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s : {Shape{2, 3, 17, 19}, Shape{2, 2, 301, 301}}) {
    CAPTURE(s);
    const Tensor<float> x = gpu(randn<float>(s, 75, 3.0)), z = gpu(mask<float>(s, 76));
    const Tensor<float> w = gpu(uniform<float>(s, 77, 0.5, 2.0));
    cuda::detail::set_gradient_from_the_end(false);
    const auto want = overlap_bits<float>(x, z, 0, w);
    cuda::detail::set_gradient_from_the_end(true);
    const auto got = overlap_bits<float>(x, z, 0, w);
    REQUIRE(got.size() == want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      CAPTURE(k);
      CHECK(got[k] == want[k]);
    }
  }
  // Each range's BCE partial in its own place: three planes whose BCE sums S0 > 2^60 and S1, S2
  // ~ 100 add to other bits in plane order than in the reverse order (checked below on the CPU's
  // per-plane sums), so a pass from the end that wrote its partials where its block index points
  // (plane 2's sum in plane 0's place) gives another value.
  std::vector<double> hx(75, -4.0);
  for (int i = 0; i < 25; ++i) hx[static_cast<size_t>(i)] = -5e16;
  const Tensor<double> x = Tensor<double>::from(hx, Shape{3, 1, 5, 5});
  const Tensor<double> z = Tensor<double>::full(Shape{3, 1, 5, 5}, 1.0);
  double plane_sum[3];
  for (int64_t q = 0; q < 3; ++q) {
    const Tensor<double> xq = Tensor<double>::view(x.data() + 25 * q, Shape{1, 1, 5, 5});
    const Tensor<double> zq = Tensor<double>::view(z.data() + 25 * q, Shape{1, 1, 5, 5});
    BceWithLogitsOptions<double> sum;
    sum.reduction = Reduction::sum;
    plane_sum[q] = bce_with_logits(xq, zq, sum)[0];
  }
  REQUIRE((plane_sum[0] + plane_sum[1]) + plane_sum[2] !=
          (plane_sum[2] + plane_sum[1]) + plane_sum[0]);
  const Tensor<double> xd = gpu(x), zd = gpu(z);
  double value[2];
  std::vector<uint64_t> grad[2];
  for (int from_the_end = 0; from_the_end < 2; ++from_the_end) {
    cuda::detail::set_gradient_from_the_end(from_the_end == 1);
    Tensor<double> g;
    value[from_the_end] = bce_dice_value_and_grad(xd, zd, g);
    grad[from_the_end] = bits_of(g);
  }
  CHECK(bits_of(value[0]) == bits_of(value[1]));
  CHECK(grad[0] == grad[1]);
}

TEST_CASE(
    "cuda overlap passes: the quad pass runs by default, and both passes agree with the CPU") {
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s : {Shape{2, 3, 17, 19}, Shape{2, 1, 300, 301}, Shape{1, 1, 1, 1}}) {
    CAPTURE(s);
    const Tensor<float> x = randn<float>(s, 81, 3.0), z = mask<float>(s, 82);
    const Tensor<float> xd = gpu(x), zd = gpu(z);
    SoftDiceOptions<float> per_plane;
    per_plane.per_image = true;
    per_plane.reduction = Reduction::none;
    const Tensor<float> cpu_scores = soft_dice(x, z, per_plane);
    Tensor<float> g_cpu;
    const double cpu_bd = bce_dice_value_and_grad(x, z, g_cpu);
    std::vector<std::vector<uint64_t>> bits[2];
    for (int quads = 0; quads < 2; ++quads) {
      CAPTURE(quads);
      cuda::detail::set_quad_loads(quads == 1);
      const Tensor<float> scores = soft_dice(xd, zd, per_plane);
      check_parity(cpu_scores, scores, parity_tol<float>(), "soft_dice scores");
      Tensor<float> g;
      const double bd = bce_dice_value_and_grad(xd, zd, g);
      CHECK(bd == doctest::Approx(cpu_bd).epsilon(parity_tol<float>()));
      check_parity(g_cpu, g, parity_tol<float>(), "bce_dice grad");
      bits[quads] = {bits_of(scores), bits_of(bd)};
    }
    // Which pass ran: the two cut each plane's sums differently (a thread adds 4 consecutive
    // elements and the 4 at +1024 in one kernel, elements 256 apart in the other, in float before
    // double), so on 90,300 elements per plane the sums differ in their last bits. Were the switch
    // ignored, or the quad pass never chosen, every bit would be the same.
    if (s[2] == 300) CHECK(bits[0] != bits[1]);
  }
}
