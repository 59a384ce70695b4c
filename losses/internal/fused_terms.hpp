// The first terms of ce_dice and dice_focal as the combined losses fuse them with their Dice
// statistics pass (not installed): each is its loss's value_and_grad on the CPU, with the same
// checks and reduction, but the kernel call is the caller's. kernel(args) receives the checked
// kernel arguments (args.grad the gradient buffer, args.grad_scale the reduction's factor)
// and returns the sum of the per-pixel losses, as the loss's own kernel would; the function
// returns the reduced value. Defined in cross_entropy.cpp and focal.cpp.
#pragma once

#include <functional>

#include "../../backends/cpu/cross_entropy.hpp"
#include "../../backends/cpu/focal.hpp"
#include "../cross_entropy.hpp"
#include "../focal.hpp"

namespace segloss {
namespace detail {

template <class T, class L>
double cross_entropy_value_and_grad_with(
    const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
    const CrossEntropyOptions<T>& options,
    const std::function<double(const cpu::CrossEntropyArgs<T, L>&)>& kernel);

template <class T, class L>
double softmax_focal_value_and_grad_with(
    const Tensor<T>& logits, const Tensor<L>& target, Tensor<T>& grad,
    const SoftmaxFocalOptions<T>& options,
    const std::function<double(const cpu::SoftmaxFocalArgs<T, L>&)>& kernel);

}  // namespace detail
}  // namespace segloss
