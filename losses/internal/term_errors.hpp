// A combined loss's terms (not installed): the errors a term raises are re-raised under the
// combined function's name, with the term named, so that the caller sees which loss they called
// and which of its terms refused: "ce_dice: in the cross-entropy term: cross_entropy: ...". The
// error keeps its type (a device allocation's OutOfMemory stays one). Used by the fused combined
// losses (combined.cpp) and the tape's (composed.cpp).
#pragma once

#include <string>

#include "../../core/error.hpp"

namespace segloss {
namespace detail {

template <class F>
auto in_term(const char* fn, const char* which, F&& f) {
  try {
    return f();
  } catch (const OutOfMemory& e) {
    throw OutOfMemory(std::string(fn) + ": in the " + which + " term: " + e.what());
  } catch (const Error& e) {
    throw Error(std::string(fn) + ": in the " + which + " term: " + e.what());
  }
}

}  // namespace detail
}  // namespace segloss
