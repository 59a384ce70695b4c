// The autodiff tape on CUDA (core/tape.hpp, "CUDA"): fused loss nodes on CUDA leaves, their
// gradients scaled and added on the device, scalar algebra on their host values; primitives
// refuse CUDA values. The first case runs everywhere; the others skip without a GPU.
#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;
using segloss::ad::Tape;
using segloss::ad::Var;

TEST_CASE("cuda tape: a CUDA leaf is refused by primitives, or by a build without CUDA") {
  // A view of a device pointer that is never read: every check runs before any element is.
  std::vector<float> host(24);
  const auto fake = Tensor<float>::view(host.data(), Shape{1, 2, 3, 4}, Device::cuda);
  Tape<float> tape;
  if (!cuda::built()) {
    CHECK_THROWS_WITH_AS(tape.leaf(fake),
                         doctest::Contains("ad::Tape::leaf: the tensor (1,2,3,4) is on device "
                                           "cuda, but this build has no CUDA backend"),
                         Error);
    return;
  }
  const Var<float> x = tape.leaf(fake);
  CHECK(x.value().device() == Device::cuda);
  CHECK_THROWS_WITH_AS(ad::exp(x),
                       "ad::exp: Var #0 (1,2,3,4) is on device cuda, but ad::exp has no CUDA path "
                       "yet: on CUDA the tape records the fused loss nodes "
                       "(losses/tape_losses.hpp) and scalar algebra on their values",
                       Error);
  CHECK_THROWS_WITH_AS(ad::sum(x), doctest::Contains("ad::sum: Var #0 (1,2,3,4) is on device cuda"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::softmax(x), doctest::Contains("ad::softmax has no CUDA path yet"),
                       Error);
  CHECK_THROWS_WITH_AS(ad::sort_desc(x, {0, 24}),
                       doctest::Contains("ad::sort_desc has no CUDA path yet"), Error);
  CHECK_THROWS_WITH_AS(ad::relu(x), doctest::Contains("ad::relu has no CUDA path yet"), Error);
  const Var<float> y = tape.leaf(randn<float>({1, 2, 3, 4}, 3));
  CHECK_THROWS_WITH_AS(x + y, doctest::Contains("ad::add has no CUDA path yet"), Error);
}

namespace {

// loss = bce + 0.5 * dice (+ 0.25 * dice again, so that the leaf's gradient is written, then
// added twice) on one tape, on the device given; returns the value and the leaf's gradient
// on the CPU.
template <class T>
std::pair<double, Tensor<T>> two_losses(const Tensor<T>& x, const Tensor<T>& z, Device device) {
  Tape<T> tape;
  const Var<T> v = tape.leaf(x.to(device));
  const Tensor<T> zd = z.to(device);
  SoftDiceOptions<T> dice;
  dice.per_image = true;
  const Var<T> l =
      ad::bce_with_logits(v, zd) + 0.5 * ad::soft_dice(v, zd, dice) + 0.25 * ad::soft_dice(v, zd);
  tape.backward(l);
  CHECK(tape.grad(v).device() == device);
  return {l.item(), tape.grad(v).to(Device::cpu)};
}

template <class T>
void check_tape_parity() {
  const Tensor<T> x = randn<T>({2, 1, 37, 41}, 11), z = mask<T>({2, 1, 37, 41}, 12);
  const auto cpu = two_losses(x, z, Device::cpu);
  const auto dev = two_losses(x, z, Device::cuda);
  check_parity(cpu.first, dev.first, parity_tol<T>(), "value");
  check_parity(cpu.second, dev.second, parity_tol<T>(), "grad");
  for (int run = 0; run < 10; ++run) {
    const auto again = two_losses(x, z, Device::cuda);
    CHECK(again.first == dev.first);
    CHECK(same_bits(again.second, dev.second));
  }
}

}  // namespace

TEST_CASE("cuda tape: two fused losses on CUDA logits equal the CPU tape, bitwise on repeat") {
  SEGLOSS_REQUIRE_GPU();
  check_tape_parity<float>();
  check_tape_parity<double>();
}

TEST_CASE("cuda tape: a loss used alone adopts its fused CUDA gradient") {
  SEGLOSS_REQUIRE_GPU();
  const Tensor<float> x = randn<float>({2, 4, 9, 10}, 21);
  const auto y = labels<int64_t>({2, 9, 10}, 4, 22, 0.1);
  Tape<float> tape;
  const Var<float> v = tape.leaf(x.to(Device::cuda));
  const Var<float> l = ad::cross_entropy(v, y.to(Device::cuda));
  tape.backward(l);
  Tensor<float> g;
  const double value = cross_entropy_value_and_grad(x, y, g);
  check_parity(value, l.item(), parity_tol<float>(), "value");
  check_parity(g, tape.grad(v), parity_tol<float>(), "grad");
}
