// Images smaller than a packet, for the kernels that walk the class axis a packet of pixels at a
// time (cross_entropy, softmax_focal). Logits (N, C, 1), one pixel per image (PyTorch's (N, C)
// with a spatial axis added), left the per-image walk nothing to vectorize: every pixel went the
// scalar way, with a chunk of its own (cross_entropy's value and gradient: 32 ms as (2^18, 21, 1)
// against 4 ms as (1, 21, 2^18) on one core of the project's machine; 7 ms folded).
//
// Folded, the pixels of all images are one run, j = n * S + s, whose labels, grad_out and
// per-pixel losses are already consecutive. A packet of kW such pixels has its C logits (and
// probabilities) copied into a C x kW buffer, the layout of one image of kW pixels; the kernel's
// pixel function runs on it unchanged, and its gradient is copied back. The buffers hold 2 to 4
// times C x kW values (L1-sized for C up to about 100 in float with AVX-512). The gradient is
// written with ordinary stores (the per-image walk streams large ones: simd.hpp store_stream).
// The grid is then one plane of N * S pixels, the grid of that one image: with S = 1 the result
// has the same bits as the same pixels laid out as (1, C, N).
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {

// Whether (N, C, S) is folded: S below the build's packet width (16 floats or 8 doubles with
// AVX-512, 4 and 2 with the SSE2 of a build without SEGLOSS_NATIVE).
template <class T>
constexpr bool fold_images(int64_t pixels) {
  return pixels < kLanes<T>;
}

// The chunk grid of a class-axis pass over (N, C, S): one row of chunks per image, or, folded,
// one plane of N * S pixels. Either way it depends only on the shape.
template <class T>
detail::ChunkGrid class_axis_grid(int64_t images, int64_t pixels, int64_t chunk) {
  return fold_images<T>(pixels) ? detail::ChunkGrid(1, images * pixels, chunk)
                                : detail::ChunkGrid(images, pixels, chunk);
}

template <class A, class = void>
struct HasProbs : std::false_type {};
template <class A>
struct HasProbs<A, std::void_t<decltype(std::declval<A>().probs)>> : std::true_type {};

// One chunk of the folded walk (a chunk of class_axis_grid's single plane). A: the kernel's
// arguments (x, images, classes, pixels, labels, grad, grad_out, loss, and probs if it has
// them). pixel(args, n, s, e, V()) is the kernel's pixel function for a packet (V = Packet<T>)
// or a single pixel (V = T) at spatial position s of image n. Returns the chunk's loss sum.
template <class T, class A, class F>
double folded_chunk(const A& a, const detail::Chunk& ch, F&& pixel) {
  using P = Packet<T>;
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  constexpr int kW = kLanes<T>;
  const int64_t C = a.classes, S = a.pixels;
  bool probs = false;
  if constexpr (HasProbs<A>::value) probs = a.probs != nullptr;
  // The pixel function's exponentials, the logits, then the gradient and the probabilities
  // where the call has them: C x kW values each.
  const size_t block = static_cast<size_t>(C * kW);
  T* const e = class_buffer<T>((2 + (a.grad ? 1 : 0) + (probs ? 1 : 0)) * block);
  T* const xb = e + block;
  T* const gb = a.grad ? xb + block : nullptr;
  T* const pb = probs ? (gb ? gb : xb) + block : nullptr;
  A b = a;  // one image of kW pixels, in the buffers
  b.x = xb;
  b.images = 1;
  b.pixels = kW;
  b.grad = gb;
  if constexpr (HasProbs<A>::value) b.probs = pb;
  int64_t offset[kW];  // where pixel l of the packet starts: class c is at offset[l] + c * S
  // With S = 1 the packet's kW x C block is contiguous: a transpose (measured 12% faster than
  // the element loop at C = 21).
  const auto gather = [&](const T* from, T* to) {
    if (S == 1) {
      Eigen::Map<Mat>(to, kW, C) = Eigen::Map<const Mat>(from + offset[0], C, kW).transpose();
      return;
    }
    for (int l = 0; l < kW; ++l)
      for (int64_t c = 0; c < C; ++c) to[c * kW + l] = from[offset[l] + c * S];
  };
  const auto body = [&](int64_t j0, P* acc) SEGLOSS_LAMBDA_INLINE {
    for (int l = 0; l < kW; ++l) {
      const int64_t n = (j0 + l) / S;
      offset[l] = n * C * S + (j0 + l - n * S);
    }
    gather(a.x, xb);
    if constexpr (HasProbs<A>::value)
      if (probs) gather(a.probs, pb);
    b.labels = a.labels ? a.labels + j0 : nullptr;
    b.grad_out = a.grad_out ? a.grad_out + j0 : nullptr;
    b.loss = a.loss ? a.loss + j0 : nullptr;
    acc[0] += pixel(b, 0, 0, e, P());
    if (!a.grad) return;
    if (S == 1) {
      Eigen::Map<Mat>(a.grad + offset[0], C, kW) = Eigen::Map<const Mat>(gb, kW, C).transpose();
      return;
    }
    for (int l = 0; l < kW; ++l)
      for (int64_t c = 0; c < C; ++c) a.grad[offset[l] + c * S] = gb[c * kW + l];
  };
  double sum = 0.0;
  int64_t j = ch.begin + (sum_packets<T, 1>(ch.begin, ch.end, body, &sum) - ch.begin);
  for (; j < ch.end; ++j) sum += static_cast<double>(pixel(a, j / S, j % S, e, T()));
  return sum;
}

}  // namespace cpu
}  // namespace segloss
