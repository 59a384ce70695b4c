// CPU kernels of ConfusionMatrix. Each thread counts into its own histogram; after the loop the
// histograms are added to the caller's in thread order (integer counts: the result is exact and
// the same at any thread count). The chunks are those of core/parallel.hpp, fixed by the shape.
#include "confusion_matrix.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../../core/config.hpp"
#include "../../core/parallel.hpp"

namespace segloss {
namespace cpu {
namespace {

// Copies of the histogram per thread. Neighbouring pixels of a segmentation mostly fall into the
// same cell, and incrementing one counter for back-to-back pixels waits on the previous store
// every time; four copies (pixel i into copy i % 4) break that chain. Above 4096 cells (C > 64)
// four copies no longer fit in L1 and one is used.
int64_t copies(int64_t bins) {
  return bins <= 4096 ? 4 : 1;
}

// 0: counted or ignored; 1: a bad true label; 2: a bad predicted label at a counted pixel. The
// common case (t in range and not ignored, p in range) takes two predictable branches.
SEGLOSS_INLINE int add_pixel(int64_t t, int64_t p, const HistRule& r, int64_t* h) {
  const uint64_t c = static_cast<uint64_t>(r.classes);
  if (static_cast<uint64_t>(t) < c && t != r.ignore_index) {
    if (static_cast<uint64_t>(p) >= c) return 2;
    ++h[t * r.classes + p];
    return 0;
  }
  return (t == r.ignore_index || r.drop_out_of_range) ? 0 : 1;
}

// Runs chunk(ch, h, stride) over the grid, where h is the thread's first histogram copy and
// stride the distance to the next (0 with one copy); chunk returns its first bad pixel. A thread
// stops at its first bad pixel: its static range is scanned in order, so the smallest bad index
// over the threads is the first bad pixel of the whole input.
template <class ChunkFn>
HistResult run(const detail::ChunkGrid& grid, int64_t bins, ChunkFn&& chunk, int64_t* hist) {
  const int64_t n = grid.chunks();
  const int64_t k = copies(bins);
  int threads = 1;
#if defined(_OPENMP)
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), n)));
#endif
  std::vector<int64_t> local(static_cast<size_t>(threads * k * bins), 0);
  std::vector<HistResult> bad(static_cast<size_t>(threads));
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    int t = 0;
#if defined(_OPENMP)
    t = omp_get_thread_num();
#endif
    int64_t* h = local.data() + t * k * bins;
    HistResult& b = bad[static_cast<size_t>(t)];
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int64_t c = 0; c < n; ++c) {
      if (b.first_bad >= 0) continue;
      b = chunk(grid[c], h, k > 1 ? bins : 0);
    }
  }
  HistResult first;
  for (const HistResult& b : bad)
    if (b.first_bad >= 0 && (first.first_bad < 0 || b.first_bad < first.first_bad)) first = b;
  if (first.first_bad >= 0) return first;
  for (int64_t copy = 0; copy < threads * k; ++copy) {
    const int64_t* h = local.data() + copy * bins;
    for (int64_t j = 0; j < bins; ++j) hist[j] += h[j];
  }
  return first;
}

HistResult bad_at(int64_t i, int status) {
  return {i, status == 2};
}

// Pixels of one block of the logits path: the running max and argmax of kBlock pixels stay in
// L1 (2 KB for float) while the C class rows of the block stream by.
constexpr int64_t kBlock = 256;
// Pixels per chunk of the logits path: whole blocks, fixed.
constexpr int64_t kLogitChunk = 16 * kBlock;

}  // namespace

template <class P, class L>
HistResult confusion_from_labels(const P* pred, const L* truth, int64_t count, const HistRule& rule,
                                 int64_t* hist) {
  const detail::ChunkGrid grid(1, count, 4 * detail::kChunk);
  const auto chunk = [&](const detail::Chunk& ch, int64_t* h, int64_t stride) -> HistResult {
    int64_t* h1 = h + stride;
    int64_t* h2 = h1 + stride;
    int64_t* h3 = h2 + stride;
    int64_t i = ch.begin;
    for (; i + 4 <= ch.end; i += 4) {
      const int s0 = add_pixel(truth[i], pred[i], rule, h);
      const int s1 = add_pixel(truth[i + 1], pred[i + 1], rule, h1);
      const int s2 = add_pixel(truth[i + 2], pred[i + 2], rule, h2);
      const int s3 = add_pixel(truth[i + 3], pred[i + 3], rule, h3);
      if (s0 | s1 | s2 | s3) {
        const int s[4] = {s0, s1, s2, s3};
        for (int j = 0; j < 4; ++j)
          if (s[j]) return bad_at(i + j, s[j]);
      }
    }
    for (; i < ch.end; ++i)
      if (const int s = add_pixel(truth[i], pred[i], rule, h)) return bad_at(i, s);
    return {};
  };
  return run(grid, rule.classes * rule.classes, chunk, hist);
}

template <class T, class L>
HistResult confusion_from_logits(const T* logits, const L* truth, int64_t images, int64_t pixels,
                                 const HistRule& rule, int64_t* hist) {
  // The argmax index has the logits' width, so the compare-and-blend loop vectorizes in one
  // register shape.
  using I = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  const int64_t C = rule.classes, S = pixels;
  const detail::ChunkGrid grid(images, pixels, kLogitChunk);
  const auto chunk = [&](const detail::Chunk& ch, int64_t* h, int64_t stride) -> HistResult {
    alignas(64) T m[kBlock];
    alignas(64) I idx[kBlock];
    int64_t* hs[4] = {h, h + stride, h + 2 * stride, h + 3 * stride};
    const int64_t n = ch.plane;
    for (int64_t b = ch.begin - n * S; b < ch.end - n * S; b += kBlock) {
      const int64_t w = std::min(kBlock, ch.end - n * S - b);
      const T* x = logits + n * C * S + b;
      for (int64_t l = 0; l < w; ++l) {
        m[l] = x[l];
        idx[l] = 0;
      }
      for (int64_t c = 1; c < C; ++c) {
        const T* xc = x + c * S;
        const I ci = static_cast<I>(c);
        // v wins when it is larger, or NaN over a number: the first maximum, NaN above all.
        for (int64_t l = 0; l < w; ++l) {
          const T v = xc[l], cur = m[l];
          const bool gt = v > cur || (v != v && cur == cur);
          m[l] = gt ? v : cur;
          idx[l] = gt ? ci : idx[l];
        }
      }
      const L* t = truth + n * S + b;
      for (int64_t l = 0; l < w; ++l)
        if (add_pixel(static_cast<int64_t>(t[l]), static_cast<int64_t>(idx[l]), rule, hs[l & 3]))
          return bad_at(n * S + b + l, 1);
    }
    return {};
  };
  return run(grid, C * C, chunk, hist);
}

#define SEGLOSS_INSTANTIATE_LABELS(P, L)                                                        \
  template HistResult confusion_from_labels<P, L>(const P*, const L*, int64_t, const HistRule&, \
                                                  int64_t*);
SEGLOSS_INSTANTIATE_LABELS(int32_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int32_t, int64_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int64_t)
#undef SEGLOSS_INSTANTIATE_LABELS

#define SEGLOSS_INSTANTIATE_LOGITS(T, L)                                                \
  template HistResult confusion_from_logits<T, L>(const T*, const L*, int64_t, int64_t, \
                                                  const HistRule&, int64_t*);
SEGLOSS_INSTANTIATE_LOGITS(float, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(float, int64_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int64_t)
#undef SEGLOSS_INSTANTIATE_LOGITS

}  // namespace cpu
}  // namespace segloss
