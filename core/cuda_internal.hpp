// The CUDA backend's host-side arithmetic, shared by core/cuda.cpp and backends/cuda (not
// installed; no CUDA header): how a pass over (planes x plane_size) elements is cut into blocks,
// and how one call's workspace is laid out. Both depend on the shape only, never on the device,
// so a reduction adds the same numbers in the same order on every run and every GPU.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace segloss {
namespace cuda {
namespace detail {

constexpr int kThreads = 256;           // threads per block of every kernel
constexpr int64_t kMinPerBlock = 4096;  // elements a block gets at least (16 per thread)
// Blocks a pass aims at: many short blocks, so that the last wave is a small part of the pass
// (the passes run 3 or 4 blocks of 256 threads per multiprocessor: 64-80 registers); 24 per
// multiprocessor of an H100/H200 (132). The cut depends on the shape only, never on the device.
constexpr int64_t kTargetBlocks = 3168;
constexpr size_t kAlign = 256;           // alignment of every region of the workspace
constexpr size_t kHeaderBytes = kAlign;  // the result slot (double) and the error flag (int)

inline size_t align_up(size_t b) {
  return (b + kAlign - 1) / kAlign * kAlign;
}

// A pass over `planes` planes of `plane_size` contiguous elements (an image and channel each):
// every plane is cut into `parts` ranges of `part_size` elements (the last one shorter, none
// empty), one block each, block b = plane * parts + part. The cut depends on the shape only.
// part_size is a multiple of 4, so that a range starts where its plane's alignment allows 16-byte
// loads (runtime.cuh quad_pass_kernel).
struct PlaneGrid {
  int64_t planes = 0, plane_size = 0, parts = 1, part_size = 0;
  int64_t blocks() const { return planes * parts; }
};

inline PlaneGrid plane_grid(int64_t planes, int64_t plane_size) {
  PlaneGrid g;
  g.planes = planes;
  g.plane_size = plane_size;
  const int64_t want = (plane_size + kMinPerBlock - 1) / kMinPerBlock;
  const int64_t cap = std::max<int64_t>(1, kTargetBlocks / std::max<int64_t>(planes, 1));
  g.parts = std::max<int64_t>(1, std::min(want, cap));
  g.part_size = ((plane_size + g.parts - 1) / g.parts + 3) / 4 * 4;
  // Rounding part_size up can leave the last parts empty (3 planes of 4,443,657: 1,056 parts of
  // 4,212): drop them, so that every block has elements.
  if (g.part_size > 0) g.parts = (plane_size + g.part_size - 1) / g.part_size;
  return g;
}

// One call's workspace: [header | partials: blocks * stats | sums: planes * stats |
// coefficients: 2 * planes] doubles, each region aligned.
struct Layout {
  size_t partials = 0, sums = 0, coef = 0, total = 0;
};

inline Layout layout(const PlaneGrid& g, int stats) {
  Layout l;
  const size_t k = static_cast<size_t>(std::max(stats, 1));
  l.partials = kHeaderBytes;
  l.sums = l.partials + align_up(static_cast<size_t>(g.blocks()) * k * sizeof(double));
  l.coef = l.sums + align_up(static_cast<size_t>(g.planes) * k * sizeof(double));
  l.total = l.coef + align_up(static_cast<size_t>(g.planes) * 2 * sizeof(double));
  return l;
}

// The softmax overlap losses and generalized Dice (backends/cuda/softmax_overlap.cu): a pass over
// the pixels of each image (g = plane_grid(N, S)) that sums 3 values per class, so the workspace
// is [header | partials: blocks * 3C | sums: N * 3C | coefficients: 2 N C] doubles.
inline Layout softmax_layout(const PlaneGrid& g, int64_t classes) {
  Layout l;
  const size_t k = static_cast<size_t>(3 * classes);
  l.partials = kHeaderBytes;
  l.sums = l.partials + align_up(static_cast<size_t>(g.blocks()) * k * sizeof(double));
  l.coef = l.sums + align_up(static_cast<size_t>(g.planes) * k * sizeof(double));
  l.total = l.coef + align_up(static_cast<size_t>(g.planes * classes) * 2 * sizeof(double));
  return l;
}

// softmax_focal (backends/cuda/focal.cu) joins images of fewer than kMinPerBlock pixels into one
// plane of N S pixels; its grid, with no more blocks than plane_grid(N, S) then (each image had
// one at least).
inline bool softmax_focal_joined(int64_t images, int64_t pixels) {
  return images > 1 && pixels < kMinPerBlock;
}
inline PlaneGrid softmax_focal_grid(int64_t images, int64_t pixels) {
  return softmax_focal_joined(images, pixels) ? plane_grid(1, images * pixels)
                                              : plane_grid(images, pixels);
}

// softmax_focal's workspace over its grid g: [header | partials: one double per block | the
// count, the mean's factor, the gradient's scale, the total].
inline size_t softmax_focal_bytes(const PlaneGrid& g) {
  return kHeaderBytes + align_up(static_cast<size_t>(g.blocks()) * sizeof(double)) +
         align_up(4 * sizeof(double));
}

// cross_entropy (backends/cuda/cross_entropy.cu) over `pixels` pixels (N * S): a thread per
// pixel, at most kCrossEntropyMaxBlocks blocks (a grid-stride loop beyond 4.2M pixels). Its
// workspace: the header, a 256-byte status, and three arrays of one 8-byte partial per block.
constexpr int kCrossEntropyMaxBlocks = 16384;

inline int64_t cross_entropy_blocks(int64_t pixels) {
  const int64_t b = (pixels + kThreads - 1) / kThreads;
  return b < 1 ? 1 : b > kCrossEntropyMaxBlocks ? kCrossEntropyMaxBlocks : b;
}

// The label pass's grid (backends/cuda/cross_entropy.cu label_pass): kCrossEntropyLabelBlocks
// blocks (about one wave on an H200: 132 multiprocessors of 8 such blocks), or a block per 4096
// labels (16 a thread) where that is more, so that each block's fixed work (its two block
// sums, its partials, its arrival at the ticket) is spread over many labels; never more blocks
// than the fused pass's grid (cross_entropy_blocks), whose partial arrays it writes into.
// On an H200 the label pass on the fused pass's grid (a label per thread, 12,544 blocks at
// (16,21,448,448)) ran at 0.65 TB/s, 40 us of the call's 232 (ncu; bench/RESULTS.md, 2026-12-04).
constexpr int kCrossEntropyLabelBlocks = 1024;
constexpr int64_t kCrossEntropyLabelsPerThread = 16;

inline int64_t cross_entropy_label_blocks(int64_t pixels) {
  const int64_t grid = cross_entropy_blocks(pixels);
  const int64_t per_block = kThreads * kCrossEntropyLabelsPerThread;
  int64_t b = (pixels + per_block - 1) / per_block;
  if (b < kCrossEntropyLabelBlocks) b = kCrossEntropyLabelBlocks;
  return b < grid ? b : grid;
}

// Whether cross_entropy's label pass runs on its own grid (cross_entropy_label_blocks; on by
// default) rather than on the fused pass's, a label per thread, as before 2026-12-04. The count
// and the bad-label index are the same either way; the class weights' sum is added in another
// order (in double). For the tests and the bench (cross_entropy_vg_label_grid) only.
// Process-wide.
bool label_pass_own_grid();
void set_label_pass_own_grid(bool on);

// Whether cross_entropy stages float logits with labels and 8 < C <= 32 through shared memory
// (backends/cuda/cross_entropy.cu pixel_in_shared; on by default). For the tests only: with it
// off, the register path runs, and the two must give the same bits. Process-wide.
bool cross_entropy_staging();
void set_cross_entropy_staging(bool on);

// Whether cross_entropy's staged pass takes four pixels a thread with 16-byte copies and stores
// (backends/cuda/cross_entropy.cu fused_quads) where it can: float logits with labels,
// 8 < C <= 32, the pixels per image a multiple of 4, the logits and the gradient 16-byte aligned.
// Off by default: no GPU has run it yet (its pattern ran at 0.955 of the copy's bandwidth in
// bench/cuda_variants.cu, against 0.805 for the one-pixel pass); the bench's
// cross_entropy_vg_quads line runs it beside cross_entropy_vg. Results within rounding of the
// one-pixel pass (not its bits). For the tests and the bench only. Process-wide.
bool cross_entropy_quads();
void set_cross_entropy_quads(bool on);

// Whether bce_dice's fused value and gradient sums the BCE term in its gradient pass (on by
// default) rather than in its statistics pass (backends/cuda/overlap_passes.cuh
// run_value_in_gradient). The value's bits are the same either way. For the tests and the bench
// (segloss-cuda-bench's bce_dice_vg_stats_bce line) only. Process-wide.
bool bce_value_in_gradient();
void set_bce_value_in_gradient(bool on);
// The same with a pixel weight or a BCE weight: on by default since 2026-12-04, when the H200
// measured the weighted bce_dice at 0.794 ms with it against 0.986 without (0.785 / 0.986 in a
// second run); for the tests and the bench (bce_dice_weighted_vg_stats_bce) only. Process-wide.
bool bce_value_in_gradient_weighted();
void set_bce_value_in_gradient_weighted(bool on);

// Whether the softmax overlap losses' passes stage each pixel's logits through shared memory
// (backends/cuda/softmax_overlap.cu staged_stats_kernel, staged_grad_kernel; on by default) when
// the targets are labels and C <= 32 (float) or 16 (double). For the tests and the bench
// (softmax_dice_vg_walk) only: with it off, the passes that walk the class axis in memory run;
// the gradient from given sums has the same bits either way. Process-wide.
bool softmax_overlap_staging();
void set_softmax_overlap_staging(bool on);

// Whether a pass's last block to finish runs the one-block step that follows it (on by default):
// cross_entropy's prepare after the label pass and finish after the fused pass, the overlap
// losses' finalize after the combine of their sums (backends/cuda/runtime.cuh last_block). Off,
// each of those steps is a kernel of its own, as before session 15. The same code on the same
// data: the same bits either way. For the tests and the bench (the *_tail_kernels lines) only.
// Process-wide.
bool last_block_tails();
void set_last_block_tails(bool on);

// Whether the sigmoid overlap losses' weight-free statistics and gradient passes (soft_dice,
// Jaccard, Tversky, bce_dice) run backends/cuda/runtime.cuh's quad_pass_kernel where every access
// is aligned (on by default; runs_quads): each thread takes 4 consecutive elements at a time with
// 16-byte loads and stores. Off, they run plane_pass_kernel with its scalar loads, as before
// session 16: another cut of the sums, so bits that may differ in the last places. For the bench
// (the *_scalar_loads lines) and the tests only. Process-wide.
bool quad_loads();
void set_quad_loads(bool on);

// Whether the sigmoid overlap losses' gradient pass, when it follows their statistics pass in
// the same call, runs its blocks from the last range to the first (on by default; with
// quad_loads only): it then starts on the inputs the statistics pass read last, which may still
// be in L2. Each range's partials are the same, in the same place: the same bits either way. For
// the bench (the *_forward_order lines) and the tests only. Process-wide.
bool gradient_from_the_end();
void set_gradient_from_the_end(bool on);

// Whether the sigmoid overlap losses' statistics pass, when a quad gradient pass follows it in
// the same call, also writes the targets as bits where they are exactly +0.0 or 1.0, for the
// gradient pass to read instead of the targets (on by default; backends/cuda/runtime.cuh
// TargetBits): the same bits of every result either way. For the bench (the *_target_floats
// lines) and the tests only. Process-wide.
bool target_bits();
void set_target_bits(bool on);

// Whether cross_entropy's label pass, where C <= 254 and the workspace holds a byte per pixel,
// also writes each pixel's label as a byte (the class, or 254 ignored, 255 bad), for the fused
// pass to read instead of the caller's 4- or 8-byte labels (on by default; backends/cuda/
// cross_entropy.cu label codes): the same bits of every result either way. For the bench
// (cross_entropy_vg_label_reads) and the tests only. Process-wide.
bool label_codes();
void set_label_codes(bool on);

// The 16-byte loads (runtime.cuh load_quad) the CPU emulator has run in this process: a count
// for the tests of which arrays a quad pass reads (the gradient pass that reads the target bits
// loads x alone). A GPU does not count them (0).
std::atomic<int64_t>& emulated_quad_loads();

// The cross_entropy launches in this process of the four-pixel pass (cross_entropy_quads above):
// a count for the tests (the host counts its launches).
std::atomic<int64_t>& cross_entropy_quad_launches();

// The cross_entropy calls in this process whose fused pass was launched on the label codes
// (label_codes above): a count for the tests (on a GPU too; the host counts its launches).
std::atomic<int64_t>& label_code_launches();

inline size_t cross_entropy_bytes(int64_t pixels) {
  return kHeaderBytes + 256 +
         3 * align_up(static_cast<size_t>(cross_entropy_blocks(pixels)) * sizeof(double));
}

// The confusion matrix of C classes (backends/cuda/confusion_matrix.cu): two headers and C * C
// 64-bit counts.
inline size_t confusion_bytes(int64_t classes) {
  return 2 * kHeaderBytes + static_cast<size_t>(classes * classes) * 8;
}

// boundary_weights (backends/cuda/boundary_weights.cu) on a mask of `planes` planes and `numel`
// elements: [header | the edge count (unsigned long long) and the any-bad flag (int) | one int
// flag per plane | double scratch: the box sums of one axis pass per element (images), two
// (volumes: the depth pass and the height pass)]. Unlike the losses' workspaces this one grows
// with the mask: 8 bytes per element for images, 16 for volumes.
struct BoundaryLayout {
  size_t meta = 0, flags = 0, scratch = 0, scratch2 = 0, total = 0;
};

inline BoundaryLayout boundary_layout(int64_t planes, int64_t numel, bool volume) {
  BoundaryLayout l;
  const size_t bytes = static_cast<size_t>(numel) * sizeof(double);
  l.meta = kHeaderBytes;
  l.flags = l.meta + kAlign;
  l.scratch = l.flags + align_up(static_cast<size_t>(planes) * sizeof(int));
  l.scratch2 = l.scratch + align_up(bytes);
  l.total = volume ? l.scratch2 + align_up(bytes) : l.scratch2;
  return l;
}

// The public distance_transform (backends/cuda/distance_transform.cu): [header | flags: a byte
// per element of the call | the envelope's scratch of one plane (reused plane after plane): the
// line copies (a double per element), v (an int64 per element), z (two doubles per element)].
struct DistanceLayout {
  size_t flags = 0, in = 0, v = 0, z = 0, total = 0;
};

inline DistanceLayout distance_layout(int64_t planes, int64_t plane_size) {
  DistanceLayout l;
  const auto s = static_cast<size_t>(plane_size);
  l.flags = kHeaderBytes;
  l.in = l.flags + align_up(static_cast<size_t>(planes) * s);
  l.v = l.in + align_up(8 * s);
  l.z = l.v + align_up(8 * s);
  l.total = l.z + align_up(16 * s);
  return l;
}

// surface_distance and surface_distance_labels (backends/cuda/distance_transform.cu): [header |
// meta: the first bad value, the two border counts | boxes: 6 int64 per pair | masks: a byte per
// element of every pair (two bits: pred, truth) | one pair's scratch, reused pair after pair:
// border flags (a byte per element), squared distances, the envelope's line copies (a double
// each), v (an int64 each), z (two doubles each) | the labels form's classes (an int64 each)].
// class_count: the labels form's classes, 0 for the masks form.
struct SurfaceLayout {
  size_t meta = 0, box = 0, masks = 0, borders = 0, squared = 0, in = 0, v = 0, z = 0, classes = 0,
         total = 0;
};

inline SurfaceLayout surface_layout(int64_t planes, int64_t plane_size, int64_t class_count = 0) {
  SurfaceLayout l;
  const auto s = static_cast<size_t>(plane_size);
  l.meta = kHeaderBytes;
  l.box = l.meta + kAlign;
  l.masks = l.box + align_up(static_cast<size_t>(planes) * 6 * 8);
  l.borders = l.masks + align_up(static_cast<size_t>(planes) * s);
  l.squared = l.borders + align_up(s);
  l.in = l.squared + align_up(8 * s);
  l.v = l.in + align_up(8 * s);
  l.z = l.v + align_up(8 * s);
  l.classes = l.z + align_up(8 * 2 * s);  // z: n + 1 per line of n, at most 2 per sample
  l.total = l.classes + align_up(8 * static_cast<size_t>(class_count));
  return l;
}

// The Lovász losses (backends/cuda/lovasz.cu): one sort per segment (a problem, or a problem and
// class), all segments in flight at once, so the workspace grows with the input: [header |
// losses: two doubles per segment (the segments' losses, then lovasz_softmax's problems') | counts:
// four int64 per segment (lovasz_softmax: ground truths and whether the class counts per segment,
// whether the problem has a bad label per problem) | scales: two doubles per segment
// (lovasz_softmax: the gradient's scale and the classes counted, per problem) | pixel values:
// `pixel_values` doubles (lovasz_softmax's max logit, inverse sum of exponentials and 1 - p_max per
// pixel) | the records twice (A and B of the radix sort): a key of key_bytes (4 for float, 8 for
// double) and an int64 index (the ground truth in its top bit) per record | mask: `mask_words`
// 32-bit words (lovasz_softmax's class_list over more than 1024 classes, one bit per class; else
// none)].
struct LovaszLayout {
  size_t losses = 0, counts = 0, scales = 0, pixels = 0, keys_a = 0, idx_a = 0, keys_b = 0,
         idx_b = 0, mask = 0, total = 0;
};

inline LovaszLayout lovasz_layout(int64_t segments, int64_t records, int64_t pixel_values,
                                  size_t key_bytes, int64_t mask_words = 0) {
  LovaszLayout l;
  const size_t seg = static_cast<size_t>(segments), rec = static_cast<size_t>(records);
  l.losses = kHeaderBytes;
  l.counts = l.losses + align_up(seg * 2 * sizeof(double));
  l.scales = l.counts + align_up(seg * 4 * sizeof(int64_t));
  l.pixels = l.scales + align_up(seg * 2 * sizeof(double));
  l.keys_a = l.pixels + align_up(static_cast<size_t>(pixel_values) * sizeof(double));
  l.idx_a = l.keys_a + align_up(rec * key_bytes);
  l.keys_b = l.idx_a + align_up(rec * sizeof(int64_t));
  l.idx_b = l.keys_b + align_up(rec * key_bytes);
  l.mask = l.idx_b + align_up(rec * sizeof(int64_t));
  l.total = l.mask + align_up(static_cast<size_t>(mask_words) * sizeof(uint32_t));
  return l;
}

// The calling thread's current stream and caller-given workspace (core/cuda.cpp).
struct ThreadState {
  void* stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
ThreadState& thread_state();

}  // namespace detail
}  // namespace cuda
}  // namespace segloss
