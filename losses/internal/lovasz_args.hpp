// lovasz_softmax's argument checks and lovasz_hinge's ignore value (not installed), shared by the
// fused losses (losses/lovasz.cpp) and the composed ones (losses/composed.cpp) so that both raise
// the same errors and ignore the same pixels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lovasz.hpp"
#include "labels.hpp"

namespace segloss {
namespace detail {

// The logits (N, C, spatial...) against a label target, options.class_list (each class in
// [0, C), none repeated) and every label (in [0, C) or options.ignore_index). Errors name `fn`.
// cuda_path: the caller has a CUDA path (the labels of CUDA logits are checked by its kernels,
// not here).
template <class T, class L>
void check_lovasz_softmax_args(const char* fn, const Tensor<T>& logits, const Tensor<L>& labels,
                               const LovaszSoftmaxOptions<T>& o, bool cuda_path = false) {
  check_class_target(fn, logits, labels, cuda_path);
  check_enum(fn, "options.", "reduction", o.reduction, kReductionNames);
  check_enum(fn, "options.", "classes", o.classes, kLovaszClassesNames);
  const Shape& s = logits.shape();
  const int64_t C = s[1];
  for (size_t k = 0; k < o.class_list.size(); ++k) {
    const int64_t c = o.class_list[k];
    SEGLOSS_CHECK(c >= 0 && c < C, fn, "options.class_list[", k, "] is ", c, ", outside [0, ", C,
                  ") of logits ", s);
    const auto first = o.class_list.begin();
    const auto here = first + static_cast<std::ptrdiff_t>(k);
    SEGLOSS_CHECK(std::find(first, here, c) == here, fn, "options.class_list repeats class ", c);
  }
  if (logits.device() == Device::cuda) return;
  cpu::LabelRule rule;
  rule.ignore_index = o.ignore_index;
  check_labels<T>(fn, labels, C, rule);
}

// lovasz_hinge's ignore value as the labels are compared with it (in double): rounded to the
// labels' type T first, as PyTorch's `labels != ignore` converts the number to the tensor's
// dtype, so float labels 0.1f are ignored by options.ignore 0.1 (no float equals 0.1 in double).
// 0 when unset.
template <class T>
double hinge_ignore(const LovaszHingeOptions<T>& o) {
  return o.ignore.has_value() ? static_cast<double>(static_cast<T>(*o.ignore)) : 0.0;
}

}  // namespace detail
}  // namespace segloss
