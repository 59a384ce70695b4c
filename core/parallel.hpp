// Chunked parallel loops and deterministic reductions.
//
// Work over a tensor is seen as `planes` contiguous rows of `plane_size` elements (for logits
// (N, C, spatial...) a plane is one image and channel). Each plane is cut into chunks of
// kChunk elements; the cut depends only on the shape, never on the thread count. Chunks run
// in parallel under OpenMP. A reduction sums each chunk in double into its own slot, then
// adds the slots of a plane in chunk order on one thread. So a sum is bit-identical whether
// it runs on 1, 2, 3 or 16 threads, and from run to run.
//
// The slots are the only workspace: K doubles per chunk, i.e. K/kChunk of the input (about
// 0.02% for K = 3; a kernel with per-class sums keeps its chunks large enough that they stay
// under 1%), held in a buffer that is reused by later calls on the same thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace segloss {

namespace detail {

constexpr int64_t kChunk = 16384;

struct Chunk {
  int64_t index;  // which chunk, in the grid's order
  int64_t plane;  // which plane
  int64_t begin;  // first element, as a linear index into the whole tensor
  int64_t end;    // one past the last element
};

class ChunkGrid {
 public:
  // `chunk` elements per chunk (kChunk by default; a loss whose element carries more work,
  // e.g. C classes per pixel, uses fewer). It must depend only on the shape.
  ChunkGrid(int64_t planes, int64_t plane_size, int64_t chunk = kChunk)
      : planes_(planes),
        plane_size_(plane_size),
        chunk_(chunk),
        per_plane_(plane_size > 0 ? (plane_size + chunk - 1) / chunk : 0) {}

  int64_t planes() const { return planes_; }
  int64_t chunks() const { return planes_ * per_plane_; }
  int64_t chunks_per_plane() const { return per_plane_; }

  Chunk operator[](int64_t c) const {
    const int64_t plane = c / per_plane_;
    const int64_t first = plane * plane_size_ + (c % per_plane_) * chunk_;
    return {c, plane, first, std::min(first + chunk_, (plane + 1) * plane_size_)};
  }

 private:
  int64_t planes_, plane_size_, chunk_, per_plane_;
};

inline std::vector<double>& reduction_slots() {
  thread_local std::vector<double> slots;
  return slots;
}

// Calls body(chunk) for every chunk, in parallel.
template <class Body>
void for_each_chunk(const ChunkGrid& grid, Body&& body) {
  const int64_t n = grid.chunks();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1)
#endif
  for (int64_t c = 0; c < n; ++c) body(grid[c]);
}

// Fills the reduction slots: k sums per chunk, in chunk order. Returns them. body(chunk, acc)
// adds into acc[0..k), zeroed for each chunk.
template <class Body>
const double* fill_slots_n(const ChunkGrid& grid, int k, Body&& body) {
  const int64_t n = grid.chunks();
  std::vector<double>& slots = reduction_slots();
  if (static_cast<int64_t>(slots.size()) < n * k) slots.resize(static_cast<size_t>(n * k));
  double* s = slots.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1)
#endif
  for (int64_t c = 0; c < n; ++c) {
    // The chunk accumulates in its thread's own buffer (no cache line shared with a
    // neighbouring chunk's slots), then stores once.
    thread_local std::vector<double> acc;
    acc.assign(static_cast<size_t>(k), 0.0);
    body(grid[c], acc.data());
    std::copy(acc.begin(), acc.end(), s + c * k);
  }
  return s;
}

template <int K, class Body>
const double* fill_slots(const ChunkGrid& grid, Body&& body) {
  return fill_slots_n(grid, K, body);
}

// Per-plane sums of k statistics. body(chunk, acc) adds the chunk's contribution to acc[0..k),
// which starts at zero. out[plane * k + j] receives the plane's sums, combined in chunk order.
template <class Body>
void reduce_planes_n(const ChunkGrid& grid, int k, Body&& body, double* out) {
  if (grid.chunks_per_plane() == 1) {
    // One chunk per plane (small planes, e.g. many small images): each plane's sums are its
    // chunk's, so the chunk adds straight into them, with no slots (which would double the
    // output's memory, N k doubles) and no copy. The same bits as through the slots (a sum
    // starting from 0.0 either way).
    const int64_t n = grid.planes();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1)
#endif
    for (int64_t p = 0; p < n; ++p) {
      double* acc = out + p * k;
      std::fill(acc, acc + k, 0.0);
      body(grid[p], acc);
    }
    return;
  }
  const double* s = fill_slots_n(grid, k, body);
  const int64_t per_plane = grid.chunks_per_plane();
  for (int64_t p = 0; p < grid.planes(); ++p) {
    for (int j = 0; j < k; ++j) out[p * k + j] = 0.0;
    for (int64_t c = 0; c < per_plane; ++c)
      for (int j = 0; j < k; ++j) out[p * k + j] += s[(p * per_plane + c) * k + j];
  }
}

template <int K, class Body>
void reduce_planes(const ChunkGrid& grid, Body&& body, double* out) {
  reduce_planes_n(grid, K, body, out);
}

// Sums of K statistics over the whole grid: out[k], combined in chunk order.
template <int K, class Body>
void reduce_all(const ChunkGrid& grid, Body&& body, double* out) {
  const double* s = fill_slots<K>(grid, body);
  for (int k = 0; k < K; ++k) out[k] = 0.0;
  for (int64_t c = 0; c < grid.chunks(); ++c)
    for (int k = 0; k < K; ++k) out[k] += s[c * K + k];
}

// Runs chunk(ch), which returns the chunk's sum, over every chunk. With want_sum, returns the
// deterministic total (reduce_all); without, the chunks only run (for_each_chunk) and 0 is
// returned. The one-pass pointwise losses (bce_with_logits, binary_cross_entropy) use it.
template <class ChunkSum>
double run_chunks(const ChunkGrid& grid, bool want_sum, ChunkSum&& chunk) {
  if (!want_sum) {
    for_each_chunk(grid, [&](const Chunk& ch) { chunk(ch); });
    return 0.0;
  }
  double total = 0.0;
  reduce_all<1>(
      grid, [&](const Chunk& ch, double* acc) { acc[0] += chunk(ch); }, &total);
  return total;
}

}  // namespace detail
}  // namespace segloss
