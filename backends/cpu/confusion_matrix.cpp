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

// A block of pixels is counted in two loops. The first turns each pixel into its cell index
// t * C + p, or into a spare cell C * C past the matrix when it does not count (ignored, or
// dropped), and flags bad labels; it has no branch and vectorizes. The second increments the
// cells, pixel l into copy l % 4, with no test at all. int32 cell indices: C <= 32768.
constexpr int64_t kBlock = 512;

// Returns the offset in the block of the first bad pixel, or -1 (then bad_is_pred says which
// label was wrong). Only a block free of bad pixels is counted.
template <class P, class L>
SEGLOSS_INLINE int64_t count_block(const P* pred, const L* truth, int64_t w, const HistRule& r,
                                   int64_t* const h[4], bool& bad_is_pred) {
  alignas(64) int32_t cell[kBlock];
  const int64_t C = r.classes;
  const uint64_t uc = static_cast<uint64_t>(C);
  const int32_t spare = static_cast<int32_t>(C * C);
  const bool drop = r.drop_out_of_range;
  int32_t any_bad = 0;
  for (int64_t l = 0; l < w; ++l) {
    const int64_t t = static_cast<int64_t>(truth[l]), p = static_cast<int64_t>(pred[l]);
    const bool ignored = t == r.ignore_index;
    const bool in_range = static_cast<uint64_t>(t) < uc;
    const bool counted = in_range && !ignored;
    const bool p_ok = static_cast<uint64_t>(p) < uc;
    any_bad |= static_cast<int32_t>((!in_range && !ignored && !drop) || (counted && !p_ok));
    cell[l] = counted && p_ok ? static_cast<int32_t>(t * C + p) : spare;
  }
  if (any_bad) {
    for (int64_t l = 0; l < w; ++l) {
      const int64_t t = static_cast<int64_t>(truth[l]), p = static_cast<int64_t>(pred[l]);
      if (t == r.ignore_index) continue;
      if (static_cast<uint64_t>(t) >= uc) {
        if (drop) continue;
        bad_is_pred = false;
        return l;
      }
      if (static_cast<uint64_t>(p) >= uc) {
        bad_is_pred = true;
        return l;
      }
    }
  }
  int64_t l = 0;
  for (; l + 4 <= w; l += 4) {
    ++h[0][cell[l]];
    ++h[1][cell[l + 1]];
    ++h[2][cell[l + 2]];
    ++h[3][cell[l + 3]];
  }
  for (; l < w; ++l) ++h[0][cell[l]];
  return -1;
}

// Runs chunk(ch, h) over the grid, where h holds the thread's four histogram copies (of bins + 1
// cells, the last the spare; with one copy, four times the same); chunk returns its first bad
// pixel. A thread
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
  const int64_t cells = bins + 1;
  std::vector<int64_t> local(static_cast<size_t>(threads * k * cells), 0);
  std::vector<HistResult> bad(static_cast<size_t>(threads));
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    int t = 0;
#if defined(_OPENMP)
    t = omp_get_thread_num();
#endif
    int64_t* const base = local.data() + t * k * cells;
    int64_t* const h[4] = {base, base + (k - 1) / 3 * cells, base + 2 * (k - 1) / 3 * cells,
                           base + (k - 1) * cells};
    HistResult& b = bad[static_cast<size_t>(t)];
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int64_t c = 0; c < n; ++c) {
      if (b.first_bad >= 0) continue;
      b = chunk(grid[c], h);
    }
  }
  HistResult first;
  for (const HistResult& b : bad)
    if (b.first_bad >= 0 && (first.first_bad < 0 || b.first_bad < first.first_bad)) first = b;
  if (first.first_bad >= 0) return first;
  for (int64_t copy = 0; copy < threads * k; ++copy) {
    const int64_t* h = local.data() + copy * cells;
    for (int64_t j = 0; j < bins; ++j) hist[j] += h[j];
  }
  return first;
}

// The logits path finds the argmax of kArgBlock pixels (tile by tile, argmax_tile), then
// counts them in blocks of kBlock. A chunk is a fixed number of such blocks.
constexpr int64_t kArgBlock = 2048;
constexpr int64_t kLogitChunk = 2 * kArgBlock;

// The argmax over C rows S apart of W pixels (w when W = 0): m and idx of a tile of kTile
// pixels fit in registers while the class rows go by. v wins when it is larger, or NaN over a
// number: the first maximum, NaN above all (torch.argmax, numpy.argmax); written
// !(v <= cur) && cur == cur (true for v > cur and for a NaN v, never over a NaN cur), two
// compares instead of three.
//
// A tile reads C runs of 256 bytes (float), S values apart: too many streams, in too
// short runs, for the hardware prefetcher, so the kernel waited on memory (1.6-1.7x the floor
// of one plain pass). Each class row of a full tile asks for its line kPrefetch values ahead
// (4 KB: 16 tiles later). segloss-bench confusion_matrix_logits went from 1.6-2.0x its floor
// to 1.0-1.1x at 1 and 2 threads (docs/confusion-matrix.md). A prefetch never faults, so the
// ones past the end of a plane are harmless.
constexpr int64_t kTile = 64;
constexpr int64_t kPrefetch = 1024;

template <class T>
SEGLOSS_INLINE void prefetch_line(const T* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

template <class T, class I, int64_t W>
SEGLOSS_INLINE void argmax_tile(const T* x, int64_t S, int64_t C, T* m_out, I* idx_out,
                                int64_t w = W) {
  constexpr int64_t kN = W > 0 ? W : kTile;
  const int64_t n = W > 0 ? W : w;
  T m[kN];
  I idx[kN];
  for (int64_t l = 0; l < n; ++l) {
    m[l] = x[l];
    idx[l] = 0;
  }
  if (W > 0)
    for (int64_t l = 0; l < kN; l += 64 / sizeof(T)) prefetch_line(x + kPrefetch + l);
  for (int64_t c = 1; c < C; ++c) {
    const T* xc = x + c * S;
    const I ci = static_cast<I>(c);
    if (W > 0)
      for (int64_t l = 0; l < kN; l += 64 / sizeof(T)) prefetch_line(xc + kPrefetch + l);
    for (int64_t l = 0; l < n; ++l) {
      const T v = xc[l], cur = m[l];
      const bool gt = !(v <= cur) && cur == cur;
      m[l] = gt ? v : cur;
      idx[l] = gt ? ci : idx[l];
    }
  }
  for (int64_t l = 0; l < n; ++l) {
    m_out[l] = m[l];
    idx_out[l] = idx[l];
  }
}

}  // namespace

template <class P, class L>
HistResult confusion_from_labels(const P* pred, const L* truth, int64_t count, const HistRule& rule,
                                 int64_t* hist) {
  const detail::ChunkGrid grid(1, count, 4 * detail::kChunk);
  const auto chunk = [&](const detail::Chunk& ch, int64_t* const h[4]) -> HistResult {
    for (int64_t b = ch.begin; b < ch.end; b += kBlock) {
      bool is_pred = false;
      const int64_t l =
          count_block(pred + b, truth + b, std::min(kBlock, ch.end - b), rule, h, is_pred);
      if (l >= 0) return {b + l, is_pred};
    }
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
  const auto chunk = [&](const detail::Chunk& ch, int64_t* const h[4]) -> HistResult {
    alignas(64) T m[kArgBlock];
    alignas(64) I idx[kArgBlock];
    const int64_t n = ch.plane;
    for (int64_t b = ch.begin - n * S; b < ch.end - n * S; b += kArgBlock) {
      const int64_t w = std::min(kArgBlock, ch.end - n * S - b);
      const T* x = logits + n * C * S + b;
      int64_t l0 = 0;
      for (; l0 + kTile <= w; l0 += kTile) argmax_tile<T, I, kTile>(x + l0, S, C, m + l0, idx + l0);
      if (l0 < w) argmax_tile<T, I, 0>(x + l0, S, C, m + l0, idx + l0, w - l0);
      for (int64_t k = 0; k < w; k += kBlock) {
        bool is_pred = false;
        const int64_t l =
            count_block(idx + k, truth + n * S + b + k, std::min(kBlock, w - k), rule, h, is_pred);
        if (l >= 0) return {n * S + b + k + l, false};
      }
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
