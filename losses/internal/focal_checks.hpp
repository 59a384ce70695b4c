// The focal losses' option checks (not installed), shared by the fused losses (focal.cpp), the
// tape's composed:: forms (composed.cpp) and dice_focal's finalize (combined.cpp), so that each
// refuses the same options with the same message.
#pragma once

#include <cmath>
#include <limits>

#include "../../core/checks.hpp"
#include "../../core/error.hpp"

namespace segloss {
namespace detail {

// Both focal losses' reduction, one of its values, and gamma, finite and >= 0, and finite in the
// logits' type T too, in which the kernels raise to it (float logits with gamma 1e39 gave NaN).
template <template <class> class Options, class T>
void check_reduction_gamma(const char* fn, const Options<T>& o) {
  check_enum(fn, "options.", "reduction", o.reduction, kReductionNames);
  SEGLOSS_CHECK(std::isfinite(o.gamma) && o.gamma >= 0.0, fn, "options.gamma is ", o.gamma,
                "; it must be finite and >= 0");
  SEGLOSS_CHECK(std::isfinite(static_cast<T>(o.gamma)), fn, "options.gamma is ", o.gamma,
                ", more than ", sizeof(T) == 4 ? "float" : "double", " logits hold (",
                std::numeric_limits<T>::max(), ")");
}

}  // namespace detail
}  // namespace segloss
