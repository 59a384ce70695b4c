// The class-axis kernels (cross_entropy, softmax_focal) write gradients of at least
// cpu::stream_gradient_bytes with non-temporal stores where a packet is aligned
// (backends/cpu/simd.hpp store_stream). That changes where the bytes go, never their values:
// these tests lower the threshold to 0 and check bit for bit against ordinary stores, on
// aligned storage (every packet streamed), on rows whose alignment varies (S not a multiple of
// the lane count), on a misaligned view (nothing streamed), with ignored pixels (their packets
// stored the ordinary way), probability targets, backward and 1-3 threads.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

#include <segloss/segloss.hpp>

#include "../backends/cpu/stream_threshold.hpp"
#include "helpers.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

// A gradient buffer the caller owns, whose data starts `offset` elements past an aligned
// address (offset 0: aligned, as Tensor::empty is).
template <class T>
struct GradBuffer {
  Tensor<T> storage;
  Tensor<T> view;
  GradBuffer(const Shape& s, int64_t offset) : storage(Tensor<T>::empty({s.numel() + offset})) {
    view = Tensor<T>::view(storage.data() + offset, s);
  }
};

template <class T, class Run>
void check_streamed_equals_plain(const Shape& s, int64_t offset, const Run& run) {
  GradBuffer<T> plain(s, offset), streamed(s, offset);
  double v_plain = 0, v_streamed = 0;
  {
    const testing::ScopedValue<int64_t> off(cpu::stream_gradient_bytes, INT64_MAX);
    v_plain = run(plain.view);
  }
  {
    const testing::ScopedValue<int64_t> on(cpu::stream_gradient_bytes, 0);
    v_streamed = run(streamed.view);
  }
  CHECK(v_streamed == v_plain);
  CHECK(testing::same_bits(streamed.view, plain.view));
}

template <class T, class L>
void check_losses(const Shape& s, int64_t offset, double ignore_fraction) {
  CAPTURE(s);
  CAPTURE(offset);
  const int64_t C = s[1];
  const auto x = testing::randn<T>(s, 71, 3.0);
  const auto y = testing::labels<L>(s.without(1), C, 72, ignore_fraction);
  CrossEntropyOptions<T> ce;
  ce.label_smoothing = 0.1;
  check_streamed_equals_plain<T>(
      s, offset, [&](Tensor<T>& g) { return cross_entropy_value_and_grad(x, y, g, ce); });
  SoftmaxFocalOptions<T> fo;
  fo.gamma = 1.5;
  check_streamed_equals_plain<T>(
      s, offset, [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x, y, g, fo); });
}

}  // namespace

TEST_CASE("stream stores: CPU tensors own 64-byte aligned storage") {
  for (int64_t n : {1, 3, 17, 1000, 1 << 20}) {
    CAPTURE(n);
    const auto f = Tensor<float>::empty({n});
    const auto d = Tensor<double>::empty({n, 2});
    const auto i = Tensor<int32_t>::zeros({n});
    CHECK(reinterpret_cast<std::uintptr_t>(f.data()) % Tensor<float>::kStorageAlignment == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(d.data()) % 64 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(i.data()) % 64 == 0);
    CHECK(i[n - 1] == 0);
  }
}

TEST_CASE_TEMPLATE("stream stores: cross_entropy and softmax_focal gradients are the same bits", T,
                   float, double) {
  // S a multiple of every lane count (all rows aligned), S = 37 and 250 (row alignment varies,
  // tails), a volume, C = 150; offsets 0 (aligned) and 1 (no packet aligned).
  for (const Shape& s : {Shape{2, 5, 16, 16}, Shape{2, 7, 37}, Shape{1, 3, 250},
                         Shape{1, 4, 3, 8, 8}, Shape{1, 150, 4, 16}})
    for (int64_t offset : {0, 1}) {
      check_losses<T, int64_t>(s, offset, 0.0);
      check_losses<T, int32_t>(s, offset, 0.2);  // ignored pixels in some packets
    }
}

TEST_CASE_TEMPLATE("stream stores: probability targets, class weights, backward, thread counts", T,
                   float, double) {
  const Shape s{2, 21, 24, 32};
  const auto x = testing::randn<T>(s, 81, 2.0);
  const auto q = testing::soft_target<T>(s, 82);
  const int64_t C = s[1];
  const auto y = testing::labels<int64_t>(s.without(1), C, 83, 0.05);
  CrossEntropyOptions<T> ce;
  ce.weight = testing::uniform<T>({C}, 84, 0.5, 2.0);
  check_streamed_equals_plain<T>(
      s, 0, [&](Tensor<T>& g) { return cross_entropy_value_and_grad(x, q, g, ce); });

  const auto grad_out = testing::randn<T>(s.without(1), 85, 1.0);
  ce.reduction = Reduction::none;
  Tensor<T> plain, streamed;
  {
    const testing::ScopedValue<int64_t> off(cpu::stream_gradient_bytes, INT64_MAX);
    plain = cross_entropy_backward(x, y, grad_out, ce);
  }
  {
    const testing::ScopedValue<int64_t> on(cpu::stream_gradient_bytes, 0);
    streamed = cross_entropy_backward(x, y, grad_out, ce);
  }
  CHECK(testing::same_bits(streamed, plain));

  const int before = num_threads();
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    SoftmaxFocalOptions<T> fo;
    fo.alpha = testing::uniform<T>({C}, 86, 0.1, 1.0);
    check_streamed_equals_plain<T>(
        s, 0, [&](Tensor<T>& g) { return softmax_focal_value_and_grad(x, y, g, fo); });
  }
  set_num_threads(before);
}
