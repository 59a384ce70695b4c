// cross_entropy's option checks (not installed), shared by the fused loss (cross_entropy.cpp) and
// the tape's composed::cross_entropy (composed.cpp), so that both refuse the same options with the
// same message.
#pragma once

#include <cmath>

#include "../../core/checks.hpp"
#include "../../core/error.hpp"
#include "../cross_entropy.hpp"

namespace segloss {
namespace detail {

// The scalar options: label_smoothing in [0, 1], each enum one of its values.
template <class T>
void check_ce_scalars(const char* fn, const CrossEntropyOptions<T>& o) {
  check_enum(fn, "options.", "reduction", o.reduction, kReductionNames);
  check_enum(fn, "options.", "mean_over", o.mean_over, kMeanOverNames);
  check_enum(fn, "options.", "all_ignored", o.all_ignored, kAllIgnoredNames);
  SEGLOSS_CHECK(
      std::isfinite(o.label_smoothing) && o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, fn,
      "options.label_smoothing is ", o.label_smoothing, "; it must be in [0, 1]");
}

// With probabilities, as PyTorch: no label can equal a negative ignore_index, so any negative
// one is accepted and changes nothing (PyTorch refuses only ignore_index >= 0, "not supported for
// floating point target"); ignore_negative and mean_over valid_pixels, options of labels only,
// must keep their defaults.
template <class T>
void check_ce_probability_options(const char* fn, const CrossEntropyOptions<T>& o) {
  SEGLOSS_CHECK(o.ignore_index < 0, fn, "options.ignore_index is ", o.ignore_index,
                "; with probability targets it must be negative (it applies to label targets "
                "only; PyTorch refuses ignore_index >= 0 for a floating point target)");
  SEGLOSS_CHECK(!o.ignore_negative && o.mean_over == MeanOver::weights, fn,
                "ignore_negative and mean_over apply to label targets only; with probabilities "
                "they must keep their defaults (ignore_negative false, mean_over weights), not "
                "ignore_negative ",
                o.ignore_negative ? "true" : "false", ", mean_over ",
                o.mean_over == MeanOver::weights ? "weights" : "valid_pixels");
}

}  // namespace detail
}  // namespace segloss
