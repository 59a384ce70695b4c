// Numbers in error messages (core/error.hpp).
#include "error.hpp"

#include <charconv>
#include <cmath>
#include <locale>
#include <system_error>

namespace segloss {
namespace detail {

namespace {

// Written and read back in the classic locale, whatever the process's (std::locale::global or
// setlocale's LC_NUMERIC): from_chars and to_chars ignore both.
template <class T>
std::string shortest_if_needed(T v) {
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << v;
  std::string s = os.str();
  if (!std::isfinite(v)) return s;
  T back{};
  const auto read = std::from_chars(s.data(), s.data() + s.size(), back);
  if (read.ec == std::errc() && read.ptr == s.data() + s.size() && back == v) return s;
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : s;
}

}  // namespace

std::string message_number(double v) {
  // A float element widened to double for its check (most checks of float tensors do so) is
  // printed as the float it is: "0.3", not "0.30000001192092896".
  if (std::isfinite(v) && std::fabs(v) <= 3.4028234663852886e38 &&
      static_cast<double>(static_cast<float>(v)) == v)
    return shortest_if_needed<float>(static_cast<float>(v));
  return shortest_if_needed<double>(v);
}

std::string message_number(float v) {
  return shortest_if_needed<float>(v);
}

}  // namespace detail
}  // namespace segloss
