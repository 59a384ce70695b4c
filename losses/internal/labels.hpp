// Shared by the losses on label maps (cross_entropy, softmax_focal; not installed): the label
// pass over the target and the error that names a bad label's position and value.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "../../backends/cpu/cross_entropy.hpp"
#include "../../core/error.hpp"
#include "../../core/shape.hpp"

namespace segloss {
namespace detail {

// "(n, d, h, w)" of linear pixel index i in a (N, spatial...) shape.
inline std::string label_position(const Shape& s, int64_t i) {
  std::vector<int64_t> idx(static_cast<size_t>(s.rank()));
  for (int d = s.rank() - 1; d >= 0; --d) {
    idx[static_cast<size_t>(d)] = i % s[d];
    i /= s[d];
  }
  std::ostringstream os;
  os << '(';
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? "," : "") << idx[d];
  os << ')';
  return os.str();
}

// The label pass (cpu::cross_entropy_label_sums) over labels shaped `labels_shape`
// (N, spatial...): the counted pixels' weight sum and count. A label outside [0, classes) that
// the rule does not ignore is an error naming its position and value.
template <class T, class L>
cpu::LabelSums checked_label_sums(const char* function, const L* labels, const Shape& labels_shape,
                                  int64_t classes, const cpu::LabelRule& rule, const T* weight) {
  const cpu::LabelSums sums = cpu::cross_entropy_label_sums(
      labels, labels_shape[0], labels_shape.numel_from(1), classes, rule, weight);
  if (sums.first_bad >= 0) {
    const int64_t i = sums.first_bad;
    fail(function, "target has label ", static_cast<int64_t>(labels[i]), " at ",
         label_position(labels_shape, i), ", outside [0, ", classes, ") and not ignore_index ",
         rule.ignore_index, rule.ignore_negative ? " (negative labels are ignored)" : "");
  }
  return sums;
}

}  // namespace detail
}  // namespace segloss
