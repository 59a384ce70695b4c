// CUDA kernels of ConfusionMatrix. One kernel serves both updates: a pixel's true label t is read
// first; ignored and dropped pixels stop there (the logits path then reads none of their
// logits); a counted pixel's prediction p is the predicted label map's value or the argmax of its
// C logits (S apart: the threads of a warp, on consecutive pixels, read each class row
// coalesced). The cell t * C + p is counted in the block's shared histogram when C * C fits
// (C <= 110), else straight into the device histogram.
#include "confusion_matrix.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "launch.cuh"

namespace segloss {
namespace cuda {
namespace {

constexpr int kMaxBlocks = 1024;
constexpr int64_t kSharedBins = 12288;  // 48 KB of 32-bit counters: C <= 110

struct Rule {
  int64_t classes;
  int64_t ignore_index;
  bool drop;
};

// The prediction of pixel i from a label map.
template <class P>
struct LabelPrediction {
  const P* pred;
  __device__ __forceinline__ int64_t operator()(int64_t i) const {
    return static_cast<int64_t>(pred[i]);
  }
};

// The prediction of pixel i = n * S + s from logits (N, C, S): the first maximum, a NaN above
// every number (torch.argmax, numpy.argmax), as cpu::confusion_from_logits.
template <class T>
struct ArgmaxPrediction {
  const T* x;
  int64_t classes, pixels;
  __device__ __forceinline__ int64_t operator()(int64_t i) const {
    const int64_t n = i / pixels, s = i - n * pixels;
    const T* p = x + n * classes * pixels + s;
    T m = p[0];
    int idx = 0;
#pragma unroll 8
    for (int c = 1; c < static_cast<int>(classes); ++c) {
      const T v = p[c * pixels];
      const bool gt = v > m || (v != v && m == m);
      m = gt ? v : m;
      idx = gt ? c : idx;
    }
    return idx;
  }
};

// first_bad holds 2 i + (1 if the predicted label was the bad one): its minimum is the first bad
// pixel, as the CPU's in-order scan finds it (the true label is checked first).
template <class Pred, class L>
__global__ void __launch_bounds__(kThreads)
    count_cells(Pred pred, const L* __restrict__ truth, int64_t total, Rule r, bool shared_hist,
                unsigned long long* hist, unsigned long long* first_bad) {
  SEGLOSS_DYNAMIC_SHARED(unsigned int, sh_hist);
  const int64_t C = r.classes, bins = C * C;
  if (shared_hist) {
    for (int64_t b = threadIdx.x; b < bins; b += kThreads) sh_hist[b] = 0;
    __syncthreads();
  }
  unsigned long long bad = ~0ull;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  // The loop runs on the block's first index, so every thread of a warp takes every round (the
  // match below needs the whole warp).
  for (int64_t start = static_cast<int64_t>(blockIdx.x) * kThreads; start < total;
       start += stride) {
    const int64_t i = start + threadIdx.x;
    int64_t cell = -1;
    if (i < total) {
      const int64_t t = static_cast<int64_t>(truth[i]);
      if (t != r.ignore_index) {
        if (t < 0 || t >= C) {
          if (!r.drop && bad == ~0ull) bad = 2ull * static_cast<unsigned long long>(i);
        } else {
          const int64_t p = pred(i);
          if (p < 0 || p >= C) {
            if (bad == ~0ull) bad = 2ull * static_cast<unsigned long long>(i) + 1ull;
          } else {
            cell = t * C + p;
          }
        }
      }
    }
    // Neighbouring pixels mostly share a cell: one atomic per group of equal cells in the warp.
    const unsigned group = __match_any_sync(0xffffffffu, static_cast<unsigned long long>(cell));
    const int leader = __ffs(group) - 1;
    if (cell >= 0 && static_cast<int>(threadIdx.x & 31) == leader) {
      const unsigned k = static_cast<unsigned>(__popc(group));
      if (shared_hist)
        atomicAdd(&sh_hist[cell], k);
      else
        atomicAdd(&hist[cell], static_cast<unsigned long long>(k));
    }
  }
  if (bad != ~0ull) atomicMin(first_bad, bad);
  if (shared_hist) {
    __syncthreads();
    for (int64_t b = threadIdx.x; b < bins; b += kThreads)
      if (sh_hist[b]) atomicAdd(&hist[b], static_cast<unsigned long long>(sh_hist[b]));
  }
}

template <class Pred, class L>
cpu::HistResult run(const char* function, Pred pred, const L* truth, int64_t total,
                    const cpu::HistRule& rule, int64_t* hist) {
  const int64_t C = rule.classes, bins = C * C;
  if (total == 0) return {};
  Call call(function, confusion_workspace_bytes(C));
  const cudaStream_t s = call.stream();
  auto* flag = call.at<unsigned long long>(detail::kHeaderBytes);
  auto* counts = call.at<unsigned long long>(2 * detail::kHeaderBytes);
  check(cudaMemsetAsync(flag, 0xff, sizeof(unsigned long long), s), function, "cudaMemsetAsync");
  check(cudaMemsetAsync(counts, 0, static_cast<size_t>(bins) * sizeof(unsigned long long), s),
        function, "cudaMemsetAsync");
  const bool shared_hist = bins <= kSharedBins;
  const size_t smem = shared_hist ? static_cast<size_t>(bins) * sizeof(unsigned int) : 0;
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const Rule r{C, rule.ignore_index, rule.drop_out_of_range};
  cuda::launch(count_cells<Pred, L>, static_cast<int>(blocks), kThreads, smem, s, pred, truth,
               total, r, shared_hist, counts, flag);
  call.launched();
  unsigned long long key = 0;
  std::vector<int64_t> host(static_cast<size_t>(bins));
  check(cudaMemcpyAsync(&key, flag, sizeof(key), cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the error flag");
  check(cudaMemcpyAsync(host.data(), counts, host.size() * sizeof(int64_t), cudaMemcpyDeviceToHost,
                        s),
        function, "cudaMemcpyAsync of the counts");
  check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  cpu::HistResult result;
  if (key != ~0ull) {
    result.first_bad = static_cast<int64_t>(key >> 1);
    result.bad_is_pred = (key & 1ull) != 0;
    return result;
  }
  for (int64_t b = 0; b < bins; ++b) hist[b] += host[static_cast<size_t>(b)];
  return result;
}

}  // namespace

size_t confusion_workspace_bytes(int64_t classes) {
  return detail::confusion_bytes(classes);  // two headers and C * C 64-bit counts
}

template <class P, class L>
cpu::HistResult confusion_from_labels(const char* function, const P* pred, const L* truth,
                                      int64_t count, const cpu::HistRule& rule, int64_t* hist) {
  return run(function, LabelPrediction<P>{pred}, truth, count, rule, hist);
}

template <class T, class L>
cpu::HistResult confusion_from_logits(const char* function, const T* logits, const L* truth,
                                      int64_t images, int64_t pixels, const cpu::HistRule& rule,
                                      int64_t* hist) {
  return run(function, ArgmaxPrediction<T>{logits, rule.classes, pixels}, truth, images * pixels,
             rule, hist);
}

#define SEGLOSS_INSTANTIATE_LABELS(P, L)                                                         \
  template cpu::HistResult confusion_from_labels<P, L>(const char*, const P*, const L*, int64_t, \
                                                       const cpu::HistRule&, int64_t*);
SEGLOSS_INSTANTIATE_LABELS(int32_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int32_t, int64_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int64_t)
#undef SEGLOSS_INSTANTIATE_LABELS

#define SEGLOSS_INSTANTIATE_LOGITS(T, L)                                                         \
  template cpu::HistResult confusion_from_logits<T, L>(const char*, const T*, const L*, int64_t, \
                                                       int64_t, const cpu::HistRule&, int64_t*);
SEGLOSS_INSTANTIATE_LOGITS(float, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(float, int64_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int64_t)
#undef SEGLOSS_INSTANTIATE_LOGITS

}  // namespace cuda
}  // namespace segloss
