// The fused losses as tape nodes: one fused value_and_grad call in the forward, its gradient
// scaled by the incoming gradient in the backward (core/tape.hpp, fused_node).
#include "tape_losses.hpp"

#include <utility>

#include "../core/error.hpp"

namespace segloss::ad {
namespace {

// Records the node of a fused loss. fused(input, grad) returns the value and writes the
// gradient into grad (allocated by the loss).
template <class T, class Fused>
Var<T> loss_node(const char* op, Reduction reduction, const Var<T>& input, Fused&& fused) {
  tape_of(op, input);
  SEGLOSS_CHECK(reduction != Reduction::none, op,
                "reduction none is not a loss node (a node is one scalar); use mean or sum, or "
                "write the loss from primitives (losses/composed.hpp)");
  Tensor<T> grad;
  const double value = fused(input.value(), grad);
  return fused_node(op, input, value, std::move(grad));
}

}  // namespace

// The binary losses: loss_node around X_value_and_grad(input, target, grad, options).
#define SEGLOSS_BINARY_NODE(NAME, OPTIONS, REDUCTION)                                              \
  template <class T>                                                                               \
  Var<T> NAME(const Var<T>& input, const Tensor<T>& target, const OPTIONS<T>& options) {           \
    return loss_node<T>("ad::" #NAME, REDUCTION, input, [&](const Tensor<T>& x, Tensor<T>& grad) { \
      return segloss::NAME##_value_and_grad(x, target, grad, options);                             \
    });                                                                                            \
  }
SEGLOSS_BINARY_NODE(bce_with_logits, BceWithLogitsOptions, options.reduction)
SEGLOSS_BINARY_NODE(binary_cross_entropy, BinaryCrossEntropyOptions, options.reduction)
SEGLOSS_BINARY_NODE(sigmoid_focal, SigmoidFocalOptions, options.reduction)
SEGLOSS_BINARY_NODE(soft_dice, SoftDiceOptions, options.reduction)
SEGLOSS_BINARY_NODE(soft_jaccard, SoftJaccardOptions, options.reduction)
SEGLOSS_BINARY_NODE(tversky, TverskyOptions, options.reduction)
SEGLOSS_BINARY_NODE(lovasz_hinge, LovaszHingeOptions, options.reduction)
// bce_dice's terms carry their own reductions; the fused call rejects none.
SEGLOSS_BINARY_NODE(bce_dice, BceDiceOptions, Reduction::mean)
#undef SEGLOSS_BINARY_NODE

// The multi-class losses, templated on the target type.
#define SEGLOSS_CLASS_NODE(NAME, OPTIONS, REDUCTION)                                               \
  template <class T, class U, class>                                                               \
  Var<T> NAME(const Var<T>& input, const Tensor<U>& target, const OPTIONS<T>& options) {           \
    return loss_node<T>("ad::" #NAME, REDUCTION, input, [&](const Tensor<T>& x, Tensor<T>& grad) { \
      return segloss::NAME##_value_and_grad(x, target, grad, options);                             \
    });                                                                                            \
  }
SEGLOSS_CLASS_NODE(cross_entropy, CrossEntropyOptions, options.reduction)
SEGLOSS_CLASS_NODE(softmax_focal, SoftmaxFocalOptions, options.reduction)
SEGLOSS_CLASS_NODE(softmax_dice, SoftmaxOverlapOptions, options.reduction)
SEGLOSS_CLASS_NODE(softmax_jaccard, SoftmaxOverlapOptions, options.reduction)
SEGLOSS_CLASS_NODE(softmax_tversky, SoftmaxTverskyOptions, options.reduction)
SEGLOSS_CLASS_NODE(generalized_dice, GeneralizedDiceOptions, options.reduction)
SEGLOSS_CLASS_NODE(lovasz_softmax, LovaszSoftmaxOptions, options.reduction)
SEGLOSS_CLASS_NODE(ce_dice, CeDiceOptions, Reduction::mean)
SEGLOSS_CLASS_NODE(dice_focal, DiceFocalOptions, Reduction::mean)
#undef SEGLOSS_CLASS_NODE

#define SEGLOSS_INSTANTIATE_LABELS(T, L)                                      \
  template Var<T> softmax_focal<T, L, void>(const Var<T>&, const Tensor<L>&,  \
                                            const SoftmaxFocalOptions<T>&);   \
  template Var<T> dice_focal<T, L, void>(const Var<T>&, const Tensor<L>&,     \
                                         const DiceFocalOptions<T>&);         \
  template Var<T> lovasz_softmax<T, L, void>(const Var<T>&, const Tensor<L>&, \
                                             const LovaszSoftmaxOptions<T>&);
#define SEGLOSS_INSTANTIATE_TARGET(T, U)                                          \
  template Var<T> cross_entropy<T, U, void>(const Var<T>&, const Tensor<U>&,      \
                                            const CrossEntropyOptions<T>&);       \
  template Var<T> softmax_dice<T, U, void>(const Var<T>&, const Tensor<U>&,       \
                                           const SoftmaxOverlapOptions<T>&);      \
  template Var<T> softmax_jaccard<T, U, void>(const Var<T>&, const Tensor<U>&,    \
                                              const SoftmaxOverlapOptions<T>&);   \
  template Var<T> softmax_tversky<T, U, void>(const Var<T>&, const Tensor<U>&,    \
                                              const SoftmaxTverskyOptions<T>&);   \
  template Var<T> generalized_dice<T, U, void>(const Var<T>&, const Tensor<U>&,   \
                                               const GeneralizedDiceOptions<T>&); \
  template Var<T> ce_dice<T, U, void>(const Var<T>&, const Tensor<U>&, const CeDiceOptions<T>&);
#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template Var<T> bce_with_logits(const Var<T>&, const Tensor<T>&,                               \
                                  const BceWithLogitsOptions<T>&);                               \
  template Var<T> binary_cross_entropy(const Var<T>&, const Tensor<T>&,                          \
                                       const BinaryCrossEntropyOptions<T>&);                     \
  template Var<T> sigmoid_focal(const Var<T>&, const Tensor<T>&, const SigmoidFocalOptions<T>&); \
  template Var<T> soft_dice(const Var<T>&, const Tensor<T>&, const SoftDiceOptions<T>&);         \
  template Var<T> soft_jaccard(const Var<T>&, const Tensor<T>&, const SoftJaccardOptions<T>&);   \
  template Var<T> tversky(const Var<T>&, const Tensor<T>&, const TverskyOptions<T>&);            \
  template Var<T> bce_dice(const Var<T>&, const Tensor<T>&, const BceDiceOptions<T>&);           \
  template Var<T> lovasz_hinge(const Var<T>&, const Tensor<T>&, const LovaszHingeOptions<T>&);   \
  SEGLOSS_INSTANTIATE_LABELS(T, int32_t)                                                         \
  SEGLOSS_INSTANTIATE_LABELS(T, int64_t)                                                         \
  SEGLOSS_INSTANTIATE_TARGET(T, int32_t)                                                         \
  SEGLOSS_INSTANTIATE_TARGET(T, int64_t)                                                         \
  SEGLOSS_INSTANTIATE_TARGET(T, T)
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE
#undef SEGLOSS_INSTANTIATE_TARGET
#undef SEGLOSS_INSTANTIATE_LABELS

}  // namespace segloss::ad
