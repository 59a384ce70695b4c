// Shared by the losses' argument checks (not installed): an option's name for its error
// messages, joined from a path and a field ("options.bce." + "pos_weight") into a buffer on the
// stack. The checks run on every call, and an error message is their rare outcome, so the name
// costs no heap allocation ("options.bce.pos_weight" is longer than std::string's inline buffer).
#pragma once

#include <cstdio>

namespace segloss {
namespace detail {

class OptionName {
 public:
  OptionName(const char* path, const char* field) {
    std::snprintf(text_, sizeof text_, "%s%s", path, field);  // truncates, never overflows
  }
  const char* c_str() const { return text_; }

 private:
  char text_[64];
};

}  // namespace detail
}  // namespace segloss
