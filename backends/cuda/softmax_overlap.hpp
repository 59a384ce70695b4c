// CUDA kernels of softmax_dice, softmax_jaccard and softmax_tversky (losses/softmax_overlap.hpp
// has the contract and the math; backends/cpu/softmax_overlap.hpp the CPU kernels they mirror).
// Not installed; no CUDA header.
//
// Three stages on the current stream, no wait between them, as for the sigmoid overlap losses
// (overlap.hpp): the statistics pass (per image and class I, P, T of p = softmax(x)), the
// finalize kernel of overlap_passes.cuh (one thread: the scores, the value, the per-(image,
// class) gradient coefficients, in double), and the gradient pass through the softmax. The
// subset of SoftmaxOverlapOptions on CUDA: reduction, smooth_nr, smooth_dr, per_image, squared,
// include_background, ignore_index (label targets int32/int64, or probabilities), class_weight
// (on the device), empty, gamma, log, clamp; the caller
// (losses/softmax_overlap.cpp) rejects the others. Any number of classes (above
// kSoftmaxOverlapChunk the statistics pass cuts the class axis into chunks, session 10).
#pragma once

#include <cstdint>

#include "../cpu/softmax_overlap.hpp"
#include "overlap.hpp"

namespace segloss {
namespace cuda {

// The statistics pass keeps 3 double sums per class per warp in shared memory (8 warps: 192
// bytes a class, 38,400 for 200 classes: well inside the 48 KiB a kernel gets without opting
// in). Up to kSoftmaxOverlapChunk classes a block sums all of them (200 covers ADE20K (150) and
// COCO-Stuff (182)); above, the grid's y axis cuts the class axis into chunks of at most
// kSoftmaxOverlapChunk classes: each block computes the softmax over all C classes and sums
// its chunk's (docs/cuda.md, "Many classes on CUDA").
constexpr int64_t kSoftmaxOverlapChunk = 200;

// What a call reports when asked for a host value.
struct SoftmaxOverlapStatus {
  double value = 0.0;             // the reduced value (mean or sum)
  int64_t first_bad = -1;         // the linear index in the target of the first bad label, or -1
  bool bad_class_weight = false;  // a class weight negative or not finite (kBadClassWeight)
  int64_t kept = 0, skipped = 0;  // the scores kept and skipped (softmax_overlap_run only)
};

// The loss of a.x (N, C, S) against a.target (labels (N, S), or probabilities (N, C, S)).
// grad: the gradient (null: no gradient pass), scaled by up; scores: c_j l_j per score for
// reduction none (null: not wanted); device_value: the reduced value, one device element
// (NaN when a label is bad; null: not wanted). With host_status the call copies the value and
// the bad-label index back and waits for the stream; otherwise it returns at once.
//
// A label outside [0, C) that is not ignore_index sets the call's error flag and the smallest
// such index (an integer atomic: the same whatever the scheduling); it makes the sums of its
// image NaN, so its scores, value and gradient are NaN: nothing reads out of bounds.
// accumulate: the gradient pass adds its gradient to what grad holds (the Dice term of ce_dice
// and dice_focal on CUDA, losses/combined.cpp, after the first term wrote grad; an ignored
// pixel adds 0, a bad label makes its elements NaN); off, it stores it (the same bits as before
// the flag existed).
// total: device_value already holds a combined loss's first term's value, and receives
// total->held_scale times it plus total->value_scale times this loss's (Call::device_total).
struct DeviceTotal {
  double held_scale = 1.0, value_scale = 1.0;
};
template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_run(const char* function,
                                         const cpu::SoftmaxOverlapArgs<T, U>& a,
                                         const OverlapForm& f, Upstream<T> up, T* grad, T* scores,
                                         T* device_value, bool host_status, bool accumulate = false,
                                         const DeviceTotal* total = nullptr);

// What the generalized Dice finalize needs of the options (losses/generalized_dice.hpp).
struct GdlForm {
  int64_t images = 1, classes = 1;
  int w_type = 2;  // 0: uniform, 1: simple (1 / T), 2: square (1 / T^2)
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  bool per_image = true, include_background = true;
  bool mean = true;  // reduction mean (else sum, or none)
  // The split's finalize without per_image (as OverlapForm::coef_images): the sums are one image
  // of the batch's class sums, the coefficients go to the shard's coef_images images. 0: images.
  int64_t coef_images = 0;
};

// generalized_dice: the passes above (with a.squared false) and the generalized Dice finalize;
// arguments and results as in softmax_overlap_run (scores: 1 - S_j per score for reduction
// none).
template <class T, class U>
SoftmaxOverlapStatus generalized_dice_run(const char* function,
                                          const cpu::SoftmaxOverlapArgs<T, U>& a, const GdlForm& f,
                                          Upstream<T> up, T* grad, T* scores, T* device_value,
                                          bool host_status);

// ---- the statistics / finalize split (losses/softmax_overlap.cpp) ----

// statistics: the statistics pass alone; the per-(image, class) sums I, P, T (3 N C doubles)
// copied to host_sums. Waits; the status reports the first bad label.
template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_statistics_run(const char* function,
                                                    const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                    double* host_sums);

// finalize (overlap.hpp's OverlapSplit: local and global uploaded, no statistics pass): the
// finalize kernel, then the gradient pass into grad (a bad label sets the flag there; accumulate
// as in softmax_overlap_run: a combined loss's Dice term adds onto its first term's gradient).
// Waits; the status has the value, the first bad label and a bad class weight.
template <class T, class U>
SoftmaxOverlapStatus softmax_overlap_finalize_run(const char* function,
                                                  const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                  OverlapForm f, Upstream<T> up,
                                                  const OverlapSplit& s, T* grad,
                                                  bool accumulate = false);
// generalized Dice: global holds (scores, sum (1 - S_j)) with per_image, else 3 C class sums.
template <class T, class U>
SoftmaxOverlapStatus generalized_dice_finalize_run(const char* function,
                                                   const cpu::SoftmaxOverlapArgs<T, U>& a,
                                                   GdlForm f, const OverlapSplit& s, T* grad);

}  // namespace cuda
}  // namespace segloss
