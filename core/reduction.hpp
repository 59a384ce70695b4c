// Options shared by the losses.
#pragma once

#include <cstdint>

namespace segloss {

// How a loss reduces its per-element (or per-score) values, as in PyTorch:
//   none: the values themselves; mean: their mean; sum: their sum.
enum class Reduction { none, mean, sum };

inline const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

// What a loss's input holds: raw logits (sigmoid applied inside) or probabilities.
enum class Activation { sigmoid, none };

// What an overlap score (Dice, Jaccard, Tversky) is when its plane is empty, shared by the
// soft losses and the thresholded Dice score (metrics/dice_score.hpp).
//   formula: no special case; the score is whatever the formula gives with its smooth terms
//            (for a metric without smoothing, an empty truth and prediction give 0/0 = NaN).
//   one:     the score is 1 (a perfect match; a loss gets 0 and no gradient from it).
//   zero:    the score is 0 (a loss gets 1 and no gradient from it).
//   skip:    the score is left out of the mean and counted (the result reports how many).
// Which planes count as empty is the user's choice of function: the soft losses test the
// target (its weighted sum is 0), the thresholded score tests target and prediction both.
enum class EmptyPolicy { formula, one, zero, skip };

// The enumerators' names in order, for detail::check_enum (core/checks.hpp).
namespace detail {
inline constexpr const char* kReductionNames[] = {"none", "mean", "sum"};
inline constexpr const char* kActivationNames[] = {"sigmoid", "none"};
inline constexpr const char* kEmptyPolicyNames[] = {"formula", "one", "zero", "skip"};
}  // namespace detail

inline const char* empty_policy_name(EmptyPolicy e) {
  return e == EmptyPolicy::formula ? "formula"
         : e == EmptyPolicy::one   ? "one"
         : e == EmptyPolicy::zero  ? "zero"
                                   : "skip";
}

}  // namespace segloss
