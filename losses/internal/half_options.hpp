// The options structs of every loss converted between element types, field by field: one list
// of the fields, used both ways. The 16-bit path (losses/half_logits.cpp) widens the options of
// a 16-bit call to float with it; the loss registry (losses/registry.cpp) rounds a float
// problem's options into 16 bits with it; check_value_apart_all (at the end) walks the option
// tensors with it. Every option tensor goes through `tensor` (a callable
// taking a Tensor<From> and the field's name, returning a Tensor<To>); every other field is copied.
// Adding a field to an options struct: add it here too (tests/test_half_all.cpp fails for a
// registry preset that sets a field this file forgets). Not installed.
#pragma once

#include <string>

#include "../../core/checks.hpp"

#include "../bce_dice.hpp"
#include "../bce_with_logits.hpp"
#include "../binary_cross_entropy.hpp"
#include "../combined.hpp"
#include "../cross_entropy.hpp"
#include "../focal.hpp"
#include "../generalized_dice.hpp"
#include "../lovasz.hpp"
#include "../soft_dice.hpp"
#include "../soft_jaccard.hpp"
#include "../softmax_overlap.hpp"
#include "../tversky.hpp"

namespace segloss {
namespace detail {

// The callable `tensor` of a nested options struct: its fields are named with the struct's
// name before them ("bce.weight"), as the float losses' messages name them.
template <class F>
auto nested(const char* prefix, F& tensor) {
  return [prefix, &tensor](const auto& t, const char* name) {
    return tensor(t, (std::string(prefix) + name).c_str());
  };
}

template <class To, class From, class F>
BceWithLogitsOptions<To> convert_options(const BceWithLogitsOptions<From>& o, F&& tensor) {
  BceWithLogitsOptions<To> r;
  r.reduction = o.reduction;
  r.weight = tensor(o.weight, "weight");
  r.pos_weight = tensor(o.pos_weight, "pos_weight");
  r.mean_over = o.mean_over;
  r.label_smoothing = o.label_smoothing;
  return r;
}

template <class To, class From, class F>
BinaryCrossEntropyOptions<To> convert_options(const BinaryCrossEntropyOptions<From>& o,
                                              F&& tensor) {
  BinaryCrossEntropyOptions<To> r;
  r.reduction = o.reduction;
  r.weight = tensor(o.weight, "weight");
  return r;
}

// soft_dice and soft_jaccard (SoftDiceOptions and SoftJaccardOptions are OverlapOptions).
template <class To, class From, class F>
OverlapOptions<To> convert_options(const OverlapOptions<From>& o, F&& tensor) {
  OverlapOptions<To> r;
  r.reduction = o.reduction;
  r.smooth_nr = o.smooth_nr;
  r.smooth_dr = o.smooth_dr;
  r.per_image = o.per_image;
  r.activation = o.activation;
  r.squared = o.squared;
  r.weight = tensor(o.weight, "weight");
  r.weighting = o.weighting;
  r.class_weight = tensor(o.class_weight, "class_weight");
  r.include_background = o.include_background;
  r.empty = o.empty;
  r.gamma = o.gamma;
  r.log = o.log;
  r.clamp = o.clamp;
  return r;
}

template <class To, class From, class F>
TverskyOptions<To> convert_options(const TverskyOptions<From>& o, F&& tensor) {
  TverskyOptions<To> r;
  static_cast<OverlapOptions<To>&>(r) =
      convert_options<To>(static_cast<const OverlapOptions<From>&>(o), tensor);
  r.alpha = o.alpha;
  r.beta = o.beta;
  return r;
}

template <class To, class From, class F>
BceDiceOptions<To> convert_options(const BceDiceOptions<From>& o, F&& tensor) {
  BceDiceOptions<To> r;
  r.bce_weight = o.bce_weight;
  r.dice_weight = o.dice_weight;
  r.bce = convert_options<To>(o.bce, nested("bce.", tensor));
  r.dice = convert_options<To>(o.dice, nested("dice.", tensor));
  return r;
}

template <class To, class From, class F>
CrossEntropyOptions<To> convert_options(const CrossEntropyOptions<From>& o, F&& tensor) {
  CrossEntropyOptions<To> r;
  r.reduction = o.reduction;
  r.weight = tensor(o.weight, "weight");
  r.ignore_index = o.ignore_index;
  r.label_smoothing = o.label_smoothing;
  r.ignore_negative = o.ignore_negative;
  r.mean_over = o.mean_over;
  r.all_ignored = o.all_ignored;
  return r;
}

template <class To, class From, class F>
SoftmaxOverlapOptions<To> convert_options(const SoftmaxOverlapOptions<From>& o, F&& tensor) {
  SoftmaxOverlapOptions<To> r;
  r.reduction = o.reduction;
  r.smooth_nr = o.smooth_nr;
  r.smooth_dr = o.smooth_dr;
  r.per_image = o.per_image;
  r.squared = o.squared;
  r.class_weight = tensor(o.class_weight, "class_weight");
  r.include_background = o.include_background;
  r.empty = o.empty;
  r.gamma = o.gamma;
  r.log = o.log;
  r.clamp = o.clamp;
  r.ignore_index = o.ignore_index;
  return r;
}

template <class To, class From, class F>
SoftmaxTverskyOptions<To> convert_options(const SoftmaxTverskyOptions<From>& o, F&& tensor) {
  SoftmaxTverskyOptions<To> r;
  static_cast<SoftmaxOverlapOptions<To>&>(r) =
      convert_options<To>(static_cast<const SoftmaxOverlapOptions<From>&>(o), tensor);
  r.alpha = o.alpha;
  r.beta = o.beta;
  return r;
}

template <class To, class From, class F>
GeneralizedDiceOptions<To> convert_options(const GeneralizedDiceOptions<From>& o, F&&) {
  GeneralizedDiceOptions<To> r;
  r.reduction = o.reduction;
  r.smooth_nr = o.smooth_nr;
  r.smooth_dr = o.smooth_dr;
  r.per_image = o.per_image;
  r.w_type = o.w_type;
  r.include_background = o.include_background;
  r.ignore_index = o.ignore_index;
  return r;
}

template <class To, class From, class F>
SigmoidFocalOptions<To> convert_options(const SigmoidFocalOptions<From>& o, F&& tensor) {
  SigmoidFocalOptions<To> r;
  r.reduction = o.reduction;
  r.alpha = o.alpha;
  r.gamma = o.gamma;
  r.weight = tensor(o.weight, "weight");
  return r;
}

template <class To, class From, class F>
SoftmaxFocalOptions<To> convert_options(const SoftmaxFocalOptions<From>& o, F&& tensor) {
  SoftmaxFocalOptions<To> r;
  r.reduction = o.reduction;
  r.alpha = tensor(o.alpha, "alpha");
  r.gamma = o.gamma;
  r.ignore_index = o.ignore_index;
  return r;
}

template <class To, class From, class F>
LovaszSoftmaxOptions<To> convert_options(const LovaszSoftmaxOptions<From>& o, F&&) {
  LovaszSoftmaxOptions<To> r;
  r.reduction = o.reduction;
  r.per_image = o.per_image;
  r.classes = o.classes;
  r.class_list = o.class_list;
  r.ignore_index = o.ignore_index;
  return r;
}

template <class To, class From, class F>
LovaszHingeOptions<To> convert_options(const LovaszHingeOptions<From>& o, F&&) {
  LovaszHingeOptions<To> r;
  r.reduction = o.reduction;
  r.per_image = o.per_image;
  // Rounded to the 16-bit label type first (through float, as c10::Half and BFloat16 convert a
  // double): the widened call compares float labels with it, so 16-bit labels of 0.1 are ignored
  // by 0.1 as in PyTorch's labels != ignore, which converts the number to the labels' dtype.
  r.ignore = o.ignore;
  if constexpr (kHalf<From>)
    if (o.ignore.has_value())
      r.ignore = static_cast<double>(static_cast<float>(From(static_cast<float>(*o.ignore))));
  return r;
}

template <class To, class From, class F>
CeDiceOptions<To> convert_options(const CeDiceOptions<From>& o, F&& tensor) {
  CeDiceOptions<To> r;
  r.ce_weight = o.ce_weight;
  r.dice_weight = o.dice_weight;
  r.ce = convert_options<To>(o.ce, nested("ce.", tensor));
  r.dice = convert_options<To>(o.dice, nested("dice.", tensor));
  return r;
}

template <class To, class From, class F>
DiceFocalOptions<To> convert_options(const DiceFocalOptions<From>& o, F&& tensor) {
  DiceFocalOptions<To> r;
  r.dice_weight = o.dice_weight;
  r.focal_weight = o.focal_weight;
  r.dice = convert_options<To>(o.dice, nested("dice.", tensor));
  r.focal = convert_options<To>(o.focal, nested("focal.", tensor));
  return r;
}

// check_value_apart (core/checks.hpp), and the one-element value apart from every option tensor
// of `options` too: on CUDA the overlap and combined losses write the value before a later pass
// reads the class weights, and on the CPU the value would overwrite the caller's option (a
// reviewer's case: a value over options.dice.class_weight changed the loss, with no error).
template <class T, class U, class O>
void check_value_apart_all(const char* function, const Tensor<T>& value, const Tensor<T>& logits,
                           const Tensor<U>& target, const Tensor<T>& grad, const O& options,
                           const char* input = "logits") {
  check_value_apart(function, value, logits, target, grad, input);
  const std::size_t bytes = data_bytes(value);
  convert_options<T>(options, [&](const auto& t, const char* name) {
    SEGLOSS_CHECK(!overlaps(value.data(), bytes, t.data(), data_bytes(t)), function,
                  "value overlaps options.", name, "; pass a buffer apart from it");
    return Tensor<T>();
  });
}

}  // namespace detail
}  // namespace segloss
