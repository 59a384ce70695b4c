// CUDA kernels of the overlap losses (soft Dice, soft Jaccard, Tversky; losses/overlap.hpp has
// the contract and the math) and of bce_dice, which adds a BCE term to the same passes. Not
// installed; no CUDA header.
//
// Three stages on the current stream, no wait between them: the statistics pass (per-plane
// I, P, T, and the BCE sum), a finalize kernel (one thread: the scores, the loss value, and the
// gradient's per-plane coefficients, all in double), and the gradient pass. The subset of
// OverlapOptions on CUDA: reduction, smooth_nr, smooth_dr, per_image, activation, squared,
// include_background, weight (on the device, any broadcast, both weightings), and the
// finalize's options class_weight (on the device), empty, gamma, log, clamp (bce_dice's Dice
// term too, since session 8).
#pragma once

#include <cstdint>

#include "../cpu/bce_with_logits.hpp"
#include "../cpu/overlap.hpp"
#include "../../core/reduction.hpp"
#include "result.hpp"

namespace segloss {
namespace cuda {

// What the finalize kernel needs to know of the loss.
struct OverlapForm {
  double a_n = 2.0, a_i = 0.0, a_p = 1.0, a_t = 1.0;  // the score form (ScoreForm)
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  int64_t images = 1, channels = 1;
  bool per_image = true, include_background = true;
  bool mean = true;  // reduction mean (else sum, or none)
  // The finalize's options (losses/overlap.hpp): the empty policy of a score whose T is 0, the
  // focal exponent of the linear form, the log and clamp forms.
  EmptyPolicy empty = EmptyPolicy::formula;
  double gamma = 1.0;
  bool log = false, clamp = false;
  // The BCE term of bce_dice (bce_dice_run only): value = bce_weight * bce_scale * sum(BCE)
  // + dice_weight * Dice; dice_weight also scales the Dice part of the gradient.
  double bce_weight = 0.0, bce_scale = 0.0, dice_weight = 1.0;
  // bce_dice with mean_over weight_sum: a device double (1/W, 0 when W = 0, weight_sum.cuh)
  // that multiplies bce_scale in the finalize kernel; set by bce_dice_run, null otherwise.
  const double* bce_scale_by = nullptr;
  // bce_dice: where the finalize kernel writes the two terms' values (BCE, then Dice; two device
  // doubles, the call header's kParts slot); set by bce_dice_run, null otherwise.
  double* parts = nullptr;
  // bce_dice whose gradient pass sums the BCE term (overlap_passes.cuh run_value_in_gradient):
  // the finalize kernel, which sees Dice sums only (K = 3), leaves the Dice value and the BCE
  // gradient scale, and bce_value_kernel makes the value and the parts after the gradient pass.
  bool bce_in_gradient = false;
  // The split's finalize (overlap_finalize_run) with per_image false: the sums are one image of
  // the batch's reduced channel sums (images = 1), and the coefficients go to every plane of the
  // shard's coef_images images. 0: images.
  int64_t coef_images = 0;
};

// What the finalize reads on the device besides the sums: the gradient scale, grad_out (one
// element, or one per score with per_score), or null for 1; and the class weights (C values),
// or null for 1.
template <class T>
struct Upstream {
  const T* grad_out = nullptr;
  bool per_score = false;
  const T* class_weight = nullptr;
  // The split's finalize with per_image: the reduced totals of the batch (scores kept,
  // sum c_j l_j, sum c_j S_j; generalized Dice: scores, sum (1 - S_j)) on the device, for the
  // mean and the value in place of the shard's own; null otherwise.
  const double* totals = nullptr;
};

// The number of scores kept (fixed ones included) and skipped: with an empty policy other than
// formula they depend on the data, so a call asked for them copies them back and waits.
struct OverlapCounts {
  int64_t kept = 0, skipped = 0;
};

// The overlap loss alone. grad: the gradient (null: no gradient pass); scores: c_j l_j per
// score for reduction none (null: not wanted); r: the reduced value.
// counts: where to copy the counts of scores kept and skipped (null: not wanted; else the call
// waits for the stream).
template <class T>
void overlap_run(const char* function, const cpu::OverlapArgs<T>& a, const OverlapForm& f,
                 Upstream<T> up, T* grad, T* scores, Result<T> r, OverlapCounts* counts = nullptr);

// bce_dice's BCE term with mean_over weight_sum: the weight's device values (count of them),
// whose W = (numel / count) * sum the call reduces on the device before its passes; the BCE
// term's factor is then f.bce_scale / W (0 when W = 0). weight null: f.bce_scale alone.
template <class T>
struct BceWeight {
  const T* weight = nullptr;
  int64_t count = 0;
};

// bce_dice: the same passes with the BCE term of `bce` (its weight, pos_weight and label
// smoothing).
template <class T>
void bce_dice_run(const char* function, const cpu::OverlapArgs<T>& a,
                  const cpu::BceWithLogitsArgs<T>& bce, const OverlapForm& f, Upstream<T> up,
                  T* grad, Result<T> r, const BceWeight<T>& w = {}, double* host_parts = nullptr);

// ---- the statistics / finalize split (losses/overlap.cpp, losses/bce_dice.cpp) ----

// statistics: the statistics pass alone; its per-plane sums (stride 3: I, P, T; bce_dice 4: and
// the sum of the weighted BCE values), a.planes of them, are copied to host_sums (the caller's
// a.planes * stride doubles). Waits for the stream: the caller asked for host values.
template <class T>
void overlap_statistics_run(const char* function, const cpu::OverlapArgs<T>& a, double* host_sums);
template <class T>
void bce_dice_statistics_run(const char* function, const cpu::OverlapArgs<T>& a,
                             const cpu::BceWithLogitsArgs<T>& bce, double* host_sums);

// finalize's host inputs, uploaded into the call's workspace (no statistics pass runs): with
// per_image, the shard's own sums (local, stride 3, a.planes of them) and the reduced totals
// (global, 3 values); without, the reduced channel sums (global, 3 C values; local unused).
// bce_grad_scale: bce_dice's BCE gradient factor (bce_weight over the reduced divisor).
struct OverlapSplit {
  const double* local = nullptr;
  const double* global = nullptr;
  size_t global_size = 0;
  double bce_grad_scale = 0.0;
};

// finalize: the finalize kernel from the uploaded sums (f as for the fused call; its images and
// coef_images are set here), then the gradient pass into grad. Returns the value (the Dice term
// alone for bce_dice) and waits; a bad class weight raises.
template <class T>
double overlap_finalize_run(const char* function, const cpu::OverlapArgs<T>& a, OverlapForm f,
                            Upstream<T> up, const OverlapSplit& s, T* grad);
template <class T>
double bce_dice_finalize_run(const char* function, const cpu::OverlapArgs<T>& a,
                             const cpu::BceWithLogitsArgs<T>& bce, OverlapForm f, Upstream<T> up,
                             const OverlapSplit& s, T* grad);

}  // namespace cuda
}  // namespace segloss
