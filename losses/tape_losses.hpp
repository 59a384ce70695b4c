// @brief The fused losses as nodes of the autodiff tape (core/tape.hpp), namespace segloss::ad.
//
// Each function takes the logits (or probabilities) as a Var and the target and options of the
// fused loss of the same name, and records one node:
//   forward:  the fused X_value_and_grad: the value and dX/d(logits) in the loss's own passes;
//   backward: dL/d(logits) += g * (that gradient), g the incoming scalar gradient.
// So a loss on a tape costs what the fused call costs (the gradient is computed once, in the
// forward, and handed to the logits' gradient without a copy when nothing else flows there),
// and loss values combine with the tape's scalar algebra:
//   auto l = 0.5 * ad::bce_with_logits(x, z) + ad::soft_dice(x, z);   tape.backward(l);
//
// Options, edge cases and errors are those of each loss's header (losses/*.hpp). The node is a
// scalar: reduction mean or sum (reduction none is an error naming the node; write such a loss
// from primitives, losses/composed.hpp). Labels are int32 or int64 where the loss takes them.
// The gradient is computed even when the logits do not require one.
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

namespace segloss::ad {

// Binary and multilabel losses: target shaped like the input, of its type.
template <class T>
Var<T> bce_with_logits(const Var<T>& logits, const Tensor<T>& target,
                       const BceWithLogitsOptions<T>& options = {});
template <class T>
Var<T> binary_cross_entropy(const Var<T>& probs, const Tensor<T>& target,
                            const BinaryCrossEntropyOptions<T>& options = {});
template <class T>
Var<T> sigmoid_focal(const Var<T>& logits, const Tensor<T>& target,
                     const SigmoidFocalOptions<T>& options = {});
template <class T>
Var<T> soft_dice(const Var<T>& logits, const Tensor<T>& target,
                 const SoftDiceOptions<T>& options = {});
template <class T>
Var<T> soft_jaccard(const Var<T>& logits, const Tensor<T>& target,
                    const SoftJaccardOptions<T>& options = {});
template <class T>
Var<T> tversky(const Var<T>& logits, const Tensor<T>& target,
               const TverskyOptions<T>& options = {});
template <class T>
Var<T> bce_dice(const Var<T>& logits, const Tensor<T>& target,
                const BceDiceOptions<T>& options = {});
template <class T>
Var<T> lovasz_hinge(const Var<T>& logits, const Tensor<T>& labels,
                    const LovaszHingeOptions<T>& options = {});

// Multi-class losses: U = int32_t or int64_t labels (N, spatial...), or T probabilities shaped
// like the logits, where the fused loss accepts them (L: labels only).
template <class T, class U, class = std::enable_if_t<kCrossEntropyTarget<T, U>>>
Var<T> cross_entropy(const Var<T>& logits, const Tensor<U>& target,
                     const CrossEntropyOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<kFocalLabel<L>>>
Var<T> softmax_focal(const Var<T>& logits, const Tensor<L>& target,
                     const SoftmaxFocalOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Var<T> softmax_dice(const Var<T>& logits, const Tensor<U>& target,
                    const SoftmaxOverlapOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Var<T> softmax_jaccard(const Var<T>& logits, const Tensor<U>& target,
                       const SoftmaxOverlapOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Var<T> softmax_tversky(const Var<T>& logits, const Tensor<U>& target,
                       const SoftmaxTverskyOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Var<T> generalized_dice(const Var<T>& logits, const Tensor<U>& target,
                        const GeneralizedDiceOptions<T>& options = {});
template <class T, class U, class = std::enable_if_t<detail::kClassTarget<T, U>>>
Var<T> ce_dice(const Var<T>& logits, const Tensor<U>& target, const CeDiceOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLabelMap<L>>>
Var<T> dice_focal(const Var<T>& logits, const Tensor<L>& target,
                  const DiceFocalOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
Var<T> lovasz_softmax(const Var<T>& logits, const Tensor<L>& labels,
                      const LovaszSoftmaxOptions<T>& options = {});

}  // namespace segloss::ad
