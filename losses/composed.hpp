// @brief The losses written from tape primitives only (namespace segloss::composed): the
// reference that each fused loss is checked against (value and gradient to 1e-10 in double),
// and examples of how to write a loss on the tape (core/tape.hpp) without deriving it.
//
// One exception to that agreement: with gamma < 1, composed::softmax_focal and
// composed::sigmoid_focal give a NaN gradient at a pixel whose 1 - p_t rounds to exactly 0
// (saturated logits: the label's logit about 17 + ln(C - 1) above all others in float,
// 37 + ln(C - 1) in double; for the sigmoid, |x| above about 104 in float, 745 in double).
// There pow(q, gamma) has the slope gamma 0^(gamma - 1) = inf, which the chain rule meets with
// a factor 0 (inf times 0 = NaN), as PyTorch's autograd of the same formula does. The fused
// losses give the finite limit. The overlap losses' focal form with gamma < 1 and a score of 1
// or above does agree with the fused one: it is pow(relu(1 - S), gamma), relu's slope is 0 from
// 0 on (S = 1 included; a clamp at 0 would pass slope 1 there), and relu and pow pass no
// gradient where their slope is 0 (as PyTorch's do), so pow's inf does not reach the logits.
// Ignored pixels agree too, whatever their logits (NaN or infinite): the softmax reads 0 in
// their place (a `where` on the input, as core/tape.hpp's `where` advises).
//
// Convention (every function here follows it):
//   template <class T>
//   ad::Var<T> NAME(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
//                   const OPTIONS<T>& options = {});
// with NAME, U and OPTIONS those of the fused loss of the same name (losses/NAME.hpp):
// the target type U is T (binary and multilabel losses, or probability targets) or int32_t /
// int64_t (label maps), and OPTIONS is the fused loss's own options struct. `logits` (or the
// probabilities, for binary_cross_entropy) must be a Var of `tape`. The result is a Var of the
// same tape: a scalar for reduction mean or sum, and for none the fused forward's shape (per
// element, per pixel or per score). Call tape.backward(result) (after sum() for none), then
// tape.grad(logits).
//
// Each function is a few lines of primitives, in the fused loss's notation; the gradient comes
// from the tape. What a composed form does not cover raises segloss::Error naming the function
// and the option ("composed::bce_dice: reduction none is not supported: the two terms' shapes
// differ").
// The argument checks are the fused loss's own (same messages, with the composed name).
// They are slower than the fused losses (one tensor per op); bench/segloss_bench.cpp reports
// the ratio.
//
// Covered options (everything else of each struct is covered unless listed):
//   bce_with_logits      all (weight, pos_weight, mean_over, label_smoothing, reductions).
//   binary_cross_entropy all.
//   sigmoid_focal        all.
//   soft_dice, soft_jaccard, tversky: all (weight and weighting, squared, class_weight,
//                        include_background, empty policies, gamma, log, clamp, activation).
//   cross_entropy        all (weight, ignore_index, label_smoothing, ignore_negative, mean_over,
//                        all_ignored), for labels and probabilities.
//   softmax_focal        all.
//   softmax_dice, softmax_jaccard, softmax_tversky: all, for labels and probabilities.
//   generalized_dice     all, for labels and probabilities.
//   bce_dice, ce_dice, dice_focal: all (their terms' options; reduction none is an error).
//   lovasz_softmax       all (per_image, classes present/all, class_list, ignore_index,
//                        reductions), for int32 and int64 labels.
//   lovasz_hinge         all (per_image, ignore, reductions).
// The Lovász losses are written with the group primitives of core/tape.hpp: the errors of each
// group (a problem's class) gathered, sort_desc (the fused kernels' tie rule, so both pick the
// same permutation), the Jaccard gradient vector g from cumsums of the sorted ground truth and
// adjacent_diff, and segment_sum(f(e_sorted) * g). An all-ignored input gives the constant 0.
#pragma once

#include <cstdint>

#include "../core/tape.hpp"
#include "bce_dice.hpp"
#include "bce_with_logits.hpp"
#include "binary_cross_entropy.hpp"
#include "combined.hpp"
#include "cross_entropy.hpp"
#include "focal.hpp"
#include "generalized_dice.hpp"
#include "lovasz.hpp"
#include "soft_dice.hpp"
#include "soft_jaccard.hpp"
#include "softmax_overlap.hpp"
#include "tversky.hpp"

namespace segloss::composed {

template <class T>
ad::Var<T> bce_with_logits(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                           const BceWithLogitsOptions<T>& options = {});
template <class T>
ad::Var<T> binary_cross_entropy(ad::Tape<T>& tape, const ad::Var<T>& probs, const Tensor<T>& target,
                                const BinaryCrossEntropyOptions<T>& options = {});
template <class T>
ad::Var<T> sigmoid_focal(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                         const SigmoidFocalOptions<T>& options = {});
template <class T>
ad::Var<T> soft_dice(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                     const SoftDiceOptions<T>& options = {});
template <class T>
ad::Var<T> soft_jaccard(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                        const SoftJaccardOptions<T>& options = {});
template <class T>
ad::Var<T> tversky(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                   const TverskyOptions<T>& options = {});
template <class T>
ad::Var<T> bce_dice(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                    const BceDiceOptions<T>& options = {});

template <class T, class U, class = std::enable_if_t<kCrossEntropyTarget<T, U>>>
ad::Var<T> cross_entropy(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                         const CrossEntropyOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
ad::Var<T> softmax_focal(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<L>& target,
                         const SoftmaxFocalOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ad::Var<T> softmax_dice(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                        const SoftmaxOverlapOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ad::Var<T> softmax_jaccard(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                           const SoftmaxOverlapOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ad::Var<T> softmax_tversky(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                           const SoftmaxTverskyOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ad::Var<T> generalized_dice(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                            const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
ad::Var<T> ce_dice(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<U>& target,
                   const CeDiceOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
ad::Var<T> dice_focal(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<L>& target,
                      const DiceFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
ad::Var<T> lovasz_softmax(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<L>& target,
                          const LovaszSoftmaxOptions<T>& options = {});
template <class T>
ad::Var<T> lovasz_hinge(ad::Tape<T>& tape, const ad::Var<T>& logits, const Tensor<T>& target,
                        const LovaszHingeOptions<T>& options = {});

}  // namespace segloss::composed
