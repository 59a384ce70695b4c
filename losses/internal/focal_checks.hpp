// The focal losses' option checks (not installed), shared by the fused losses (focal.cpp), the
// tape's composed:: forms (composed.cpp) and dice_focal's finalize (combined.cpp), so that each
// refuses the same options with the same message.
#pragma once

#include <cmath>

#include "../../core/checks.hpp"
#include "../../core/error.hpp"

namespace segloss {
namespace detail {

// Both focal losses' reduction, one of its values, and gamma, finite and >= 0.
template <class O>
void check_reduction_gamma(const char* fn, const O& o) {
  check_enum(fn, "options.", "reduction", o.reduction, kReductionNames);
  SEGLOSS_CHECK(std::isfinite(o.gamma) && o.gamma >= 0.0, fn, "options.gamma is ", o.gamma,
                "; it must be finite and >= 0");
}

}  // namespace detail
}  // namespace segloss
