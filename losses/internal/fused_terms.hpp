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
#include "../softmax_overlap.hpp"

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

// The CUDA path of the combined losses (losses/combined.cpp): each term's CUDA passes, the
// gradient written into grad (the Dice term: added to it with accumulate) and scaled by
// grad_weight, and by grad_out[0] (a device scalar) when grad_out is set. Without grad_out the
// call waits and returns the term's reduced value; with grad_out nothing waits (backward) and 0
// is returned. A bad label makes the first term's value and gradient NaN without raising: the
// Dice term, which runs next on the same labels (both terms ignore the same pixels), raises the
// CPU's message (under the combined function's name, as the CPU's fused pass does). Defined in
// cross_entropy.cpp, focal.cpp and softmax_overlap.cpp when the CUDA backend is built.
// device_value (value_and_grad's device-value form, grad_out null): the term's value is written
// into that device element on the stream instead (NaN for a bad label); nothing waits and 0 is
// returned.
template <class T, class L>
double cross_entropy_cuda_term(const Tensor<T>& logits, const Tensor<L>& target, T* grad,
                               const CrossEntropyOptions<T>& options, double grad_weight,
                               const T* grad_out, T* device_value = nullptr);
template <class T, class L>
double softmax_focal_cuda_term(const Tensor<T>& logits, const Tensor<L>& target, T* grad,
                               const SoftmaxFocalOptions<T>& options, double grad_weight,
                               const T* grad_out, T* device_value = nullptr);
// The split's finalize of the first term on CUDA (the public cross_entropy_finalize and
// softmax_focal_finalize, with their checks, waits and messages), its gradient stored into grad
// times grad_weight; returns the term's unweighted value.
template <class T, class L>
double cross_entropy_cuda_finalize_term(const Tensor<T>& logits, const Tensor<L>& target,
                                        const ShardStatistics& reduced, Tensor<T>& grad,
                                        const CrossEntropyOptions<T>& options, double grad_weight);
template <class T, class L>
double softmax_focal_cuda_finalize_term(const Tensor<T>& logits, const Tensor<L>& target,
                                        const ShardStatistics& reduced, Tensor<T>& grad,
                                        const SoftmaxFocalOptions<T>& options, double grad_weight);
// fn names the Dice term's errors (the combined function, as on the CPU). grad null: the value
// only. first, if given, runs after the Dice term's argument checks and before its passes (a
// combined loss's first term: so both devices check the Dice term's arguments first).
template <class T, class U>
double softmax_dice_cuda_term(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                              T* grad, const SoftmaxOverlapOptions<T>& options, double grad_weight,
                              const T* grad_out, bool accumulate,
                              const std::function<void()>& first = {});
// The Dice term of a combined loss's split on CUDA: its statistics (the sums copied back; waits)
// and its finalize from the reduced statistics, whose Dice part starts at `offset`: the gradient
// times grad_weight added to grad (accumulate) or stored; returns the term's value. As
// softmax_dice_statistics / softmax_dice_finalize on CUDA, with fn naming the errors.
// A combined forward whose value stays on the device (no wait): the Dice term's checks, then
// first() (which writes the first term's device value into *out: the two functions below), then
// the Dice term's passes, whose device value makes *out first_weight * *out + dice_weight * Dice
// (Call::device_total). A bad label in either term makes *out NaN.
// grad set (value_and_grad's device-value form): first() has stored the first term's gradient
// times first_weight into grad, and the Dice term's gradient pass adds dice_weight times its own
// (accumulate); still no wait.
template <class T, class U>
void softmax_dice_cuda_total(const char* fn, const Tensor<T>& logits, const Tensor<U>& target,
                             const SoftmaxOverlapOptions<T>& options, T* out, double first_weight,
                             double dice_weight, const std::function<void()>& first,
                             T* grad = nullptr);
// The first terms' forwards (mean or sum) into one device element, with the public forwards'
// checks and names (cross_entropy, softmax_focal); no wait.
template <class T, class L>
void cross_entropy_cuda_forward_into(const Tensor<T>& logits, const Tensor<L>& target,
                                     const CrossEntropyOptions<T>& options, T* out);
template <class T, class L>
void softmax_focal_cuda_forward_into(const Tensor<T>& logits, const Tensor<L>& target,
                                     const SoftmaxFocalOptions<T>& options, T* out);
template <class T, class U>
OverlapStatistics softmax_dice_cuda_split_statistics(const char* fn, const Tensor<T>& logits,
                                                     const Tensor<U>& target,
                                                     const SoftmaxOverlapOptions<T>& options);
template <class T, class U>
double softmax_dice_cuda_split_finalize(const char* fn, const Tensor<T>& logits,
                                        const Tensor<U>& target, const OverlapStatistics& reduced,
                                        size_t offset, T* grad,
                                        const SoftmaxOverlapOptions<T>& options, double grad_weight,
                                        bool accumulate);

}  // namespace detail
}  // namespace segloss
