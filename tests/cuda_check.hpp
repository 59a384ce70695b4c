// Shared by the CUDA tests: the skip when no GPU is present, and CPU-against-CUDA comparisons.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <segloss/core/cuda_internal.hpp>
#include <segloss/segloss.hpp>

#include "helpers.hpp"

#if defined(SEGLOSS_TEST_CUDA)
#include <cuda_runtime.h>
#endif

// Skips the rest of a test case that needs a GPU, with a message, when none is present.
#define SEGLOSS_REQUIRE_GPU()             \
  do {                                    \
    if (!segloss::cuda::available()) {    \
      MESSAGE("skipped: no CUDA device"); \
      return;                             \
    }                                     \
  } while (0)

// Skips the rest of a test case that needs a build with the CUDA backend, though not a GPU: the
// argument checks that raise before any CUDA call.
#define SEGLOSS_REQUIRE_CUDA_BUILD()                     \
  do {                                                   \
    if (!segloss::cuda::built()) {                       \
      MESSAGE("skipped: no CUDA backend in this build"); \
      return;                                            \
    }                                                    \
  } while (0)

namespace segloss::testing {

// A tensor labelled CUDA at a made-up address, for the argument checks that raise before any
// CUDA call (so they run without a GPU). Its elements are never read: nothing may dereference it.
template <class T>
Tensor<T> unread_cuda_view(const Shape& shape) {
  // Each view gets its own address range (never dereferenced), so that the overlap checks of a
  // call (grad, value) see tensors apart, as real buffers would be.
  static std::uintptr_t next = 0x100000000000;
  const std::uintptr_t at = next;
  next += static_cast<std::uintptr_t>(shape.numel()) * sizeof(T) + 256;
  return Tensor<T>::view(reinterpret_cast<T*>(at), shape, Device::cuda);
}

// A copy on the GPU (an undefined tensor stays undefined).
template <class T>
Tensor<T> gpu(const Tensor<T>& t) {
  return t.defined() ? t.to(Device::cuda) : t;
}

// The float32 and float64 tolerances of CPU-against-CUDA parity (relative to the largest
// magnitude of the reference: elementwise relative errors are meaningless where a gradient
// crosses zero).
template <class T>
constexpr double parity_tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-11;
}

// max |ref - got| <= tol * max |ref|, with NaN only where the reference has NaN.
template <class T>
void check_parity(const Tensor<T>& ref, const Tensor<T>& got_any_device, double tol,
                  const char* what) {
  const Tensor<T> got = got_any_device.to(Device::cpu);
  INFO(std::string(what));
  REQUIRE(got.shape() == ref.shape());
  double scale = 0.0, diff = 0.0;
  int64_t nan_mismatch = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = static_cast<double>(ref[i]), g = static_cast<double>(got[i]);
    if (std::isnan(r) != std::isnan(g)) ++nan_mismatch;
    if (std::isnan(r) || std::isnan(g)) continue;
    scale = std::max(scale, std::abs(r));
    diff = std::max(diff, std::abs(r - g));
  }
  CHECK(nan_mismatch == 0);
  CHECK(diff <= tol * std::max(scale, 1e-300));
}

// How many entries check_parity_except allows for a float Lovász-Softmax gradient of `classes`
// classes: 4 swaps of two pixels (2 C entries each) where near-ties are likely (4096 entries or
// more; the GPU runs of session 13 saw one or two swaps), at most 1% of the entries; none in
// smaller problems. A bug that spoils a few pixels of a large problem can hide in it: the
// double tests, the values and the palette ties test stay exact.
inline int64_t lovasz_swap_allowance(int64_t numel, int64_t classes) {
  return numel < 4096 ? 0 : std::min<int64_t>(numel / 100, 8 * classes);
}

// check_parity, except at no more than max_outliers entries, each still within 2 max |ref|. For
// float Lovasz-Softmax gradients: the device's exp is not the CPU's, so two errors that tie to
// within an ulp can sort the other way round on each device; both orders are right (the loss is
// not differentiable there), and each swap changes the gradient of the two pixels it moves.
template <class T>
void check_parity_except(const Tensor<T>& ref, const Tensor<T>& got_any_device, double tol,
                         int64_t max_outliers, const char* what) {
  const Tensor<T> got = got_any_device.to(Device::cpu);
  INFO(std::string(what));
  REQUIRE(got.shape() == ref.shape());
  double scale = 0.0;
  int64_t nan_mismatch = 0;
  for (int64_t i = 0; i < ref.numel(); ++i)
    if (!std::isnan(static_cast<double>(ref[i])))
      scale = std::max(scale, std::abs(static_cast<double>(ref[i])));
  int64_t outliers = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = static_cast<double>(ref[i]), g = static_cast<double>(got[i]);
    if (std::isnan(r) != std::isnan(g)) ++nan_mismatch;
    if (std::isnan(r) || std::isnan(g)) continue;
    const double d = std::abs(r - g);
    if (d > tol * std::max(scale, 1e-300)) ++outliers;
    worst = std::max(worst, d);
  }
  INFO("entries beyond the tolerance: ", outliers, " of ", ref.numel(), " (at most ", max_outliers,
       "); the largest difference ", worst, ", max |ref| ", scale);
  if (outliers > 0)
    MESSAGE(std::string(what), ": ", outliers, " of ", ref.numel(),
            " entries beyond the tolerance (at most ", max_outliers,
            " allowed: swapped near-ties)");
  CHECK(nan_mismatch == 0);
  CHECK(outliers <= max_outliers);
  CHECK(worst <= 2.0 * scale);
}

inline void check_parity(double ref, double got, double tol, const char* what) {
  INFO(what, ": cpu ", ref, " cuda ", got);
  CHECK(std::abs(ref - got) <= tol * std::max(std::abs(ref), 1e-300));
}

// max |ref - got| <= tol * max |ref| over two vectors of statistics (the split's global and
// local sums).
inline void check_vector(const std::vector<double>& ref, const std::vector<double>& got, double tol,
                         const char* what) {
  INFO(std::string(what));
  REQUIRE(ref.size() == got.size());
  double scale = 0.0, diff = 0.0;
  for (size_t k = 0; k < ref.size(); ++k) {
    scale = std::max(scale, std::abs(ref[k]));
    diff = std::max(diff, std::abs(ref[k] - got[k]));
  }
  CHECK(diff <= tol * std::max(scale, 1e-300));
}

// Case k < kFinalizeOptionCases of the overlap losses' finalize options (binary and softmax
// options alike): each of class_weight (cw), the empty policies, gamma, log and clamp alone
// (0-7), then several together (8-10), for a loss with `classes` channels.
constexpr int kFinalizeOptionCases = 11;
template <class O, class T>
O finalize_option_case(int k, int64_t classes, Reduction r, const Tensor<T>& cw) {
  O o;
  o.reduction = r;
  switch (k) {
    case 0:
      o.class_weight = cw;
      break;
    case 1:
      o.empty = EmptyPolicy::one;
      break;
    case 2:
      o.empty = EmptyPolicy::zero;
      break;
    case 3:
      o.empty = EmptyPolicy::skip;
      break;
    case 4:
      o.gamma = 2.0;
      break;
    case 5:
      o.gamma = 0.5;
      break;
    case 6:
      o.log = true;
      break;
    case 7:
      o.clamp = true;
      break;
    case 8:  // several together, batch scores
      o.log = true;
      o.class_weight = cw;
      o.empty = EmptyPolicy::skip;
      o.per_image = false;
      break;
    case 9:
      o.clamp = true;
      o.class_weight = cw;
      o.empty = EmptyPolicy::one;
      if (classes > 1) o.include_background = false;
      break;
    default:
      o.gamma = 1.5;
      o.class_weight = cw;
      o.empty = EmptyPolicy::zero;
      o.per_image = false;
      break;
  }
  return o;
}

// The bits of every element of t (copied to the host), and of a host double, for results that
// must be the same to the bit.
template <class T>
std::vector<uint64_t> bits_of(const Tensor<T>& t_any) {
  const Tensor<T> t = t_any.to(Device::cpu);
  std::vector<uint64_t> out;
  for (T v : t) {
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    out.push_back(b);
  }
  return out;
}
inline std::vector<uint64_t> bits_of(double v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(double));
  return {b};
}

// Runs run(error) (which returns a list of bits_of results and sets error to a raised message, if
// any) with the one-block steps as kernels of their own (cuda::detail::last_block_tails off),
// then in the last block of the pass before them (on, the default, which it leaves on), and
// checks that both give the same bits and the same error. Returns that error.
template <class F>
std::string check_tails_same_bits(const F& run) {
  struct Restore {
    ~Restore() { cuda::detail::set_last_block_tails(true); }
  } restore;
  std::vector<std::vector<uint64_t>> got[2];
  std::string error[2];
  for (int tails = 0; tails < 2; ++tails) {
    cuda::detail::set_last_block_tails(tails == 1);
    got[tails] = run(error[tails]);
  }
  REQUIRE(got[0].size() == got[1].size());
  for (size_t k = 0; k < got[0].size(); ++k) {
    CAPTURE(k);
    CHECK(got[0][k] == got[1][k]);
  }
  CHECK(error[0] == error[1]);
  return error[1];
}

#if defined(SEGLOSS_TEST_CUDA)
// The graph nodes (kernels, copies, memsets) that call() enqueues: captured on a stream of its
// own, after a first call on that stream (a capture cannot allocate the stream's workspace).
template <class F>
size_t captured_nodes(const F& call) {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  size_t nodes = 0;
  {
    cuda::StreamScope scope(s);
    call();
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    call();
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(s);
  return nodes;
}

// The launches that running the one-block steps in the last block of the pass before them saves
// in one call (the nodes with cuda::detail::last_block_tails off, less those with it on): shows
// that the tails are taken, which the same-bits checks alone cannot.
template <class F>
int64_t tail_launches_saved(const F& call) {
  struct Restore {
    ~Restore() { cuda::detail::set_last_block_tails(true); }
  } restore;
  cuda::detail::set_last_block_tails(false);
  const size_t apart = captured_nodes(call);
  cuda::detail::set_last_block_tails(true);
  return static_cast<int64_t>(apart) - static_cast<int64_t>(captured_nodes(call));
}
#endif

}  // namespace segloss::testing
