// Label-map targets (not installed): the shape check against the logits, and the validation of
// every label, shared by the losses that take a class index per pixel.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../../backends/cpu/cross_entropy.hpp"
#include "../../core/checks.hpp"

namespace segloss {
namespace detail {

// The most classes a class-axis loss (cross_entropy, the softmax overlap losses, softmax_focal,
// lovasz_softmax and their combinations) takes: 2^24.
inline constexpr int64_t kMaxLossClasses = int64_t{1} << 24;

// The logits are an image (N, C, spatial...); a label target is (N, spatial...), a probability
// target (L floating) has the logits' shape. With cuda_path the logits may be on CUDA (in a build
// with the backend), and the target must then be there too.
template <class T, class L>
void check_class_target(const char* fn, const Tensor<T>& logits, const Tensor<L>& target,
                        bool cuda_path = false) {
  check_image(fn, "logits", logits, cuda_path);
  const Shape& s = logits.shape();
  // The CPU's class-axis kernels carry a label as a float lane (exact up to 2^24), and the CUDA
  // kernels count classes (3 C partial sums, say) in int: both stay exact below this bound.
  SEGLOSS_CHECK(s[1] <= kMaxLossClasses, fn, "logits ", s, " have ", s[1],
                " classes; the class-axis losses take at most ", kMaxLossClasses,
                " (2^24, the integers a float holds exactly)");
  SEGLOSS_CHECK(target.defined(), fn, "target is undefined");
  check_same_device(fn, "target", target, logits.device());
  if constexpr (std::is_floating_point_v<L>) {
    SEGLOSS_CHECK(target.shape() == s, fn, "target ", target.shape(),
                  " (probabilities) does not match logits ", s);
    // opt-in (core/finite.hpp); host memory only
    if (check_finite_enabled() && target.device() == Device::cpu)
      check_finite(target, "target", fn);
  } else {
    SEGLOSS_CHECK(target.shape() == s.without(1), fn, "target ", target.shape(),
                  " does not match logits ", s, " without the class axis");
  }
}

// The error of a label outside [0, C) that is not ignored, at linear index i of target shape s.
[[noreturn]] inline void fail_bad_label(const char* fn, const Shape& s, int64_t i, int64_t label,
                                        int64_t classes, const cpu::LabelRule& rule) {
  fail(fn, "target has label ", label, " at ", s.position(i), ", outside [0, ", classes,
       ") and not ignore_index ", rule.ignore_index,
       rule.ignore_negative ? " (negative labels are ignored)" : "");
}

// Validates every label (in [0, C) or ignored by the rule) and returns the label pass's sums.
template <class T, class L>
cpu::LabelSums check_labels(const char* fn, const Tensor<L>& target, int64_t classes,
                            const cpu::LabelRule& rule, const T* class_weight = nullptr) {
  const Shape& s = target.shape();
  const auto sums = cpu::cross_entropy_label_sums(target.data(), s[0], s.numel_from(1), classes,
                                                  rule, class_weight);
  if (sums.first_bad >= 0)
    fail_bad_label(fn, s, sums.first_bad, static_cast<int64_t>(target.data()[sums.first_bad]),
                   classes, rule);
  return sums;
}

}  // namespace detail
}  // namespace segloss
