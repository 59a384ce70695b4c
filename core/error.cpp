// Numbers in error messages (core/error.hpp).
#include "error.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <system_error>

namespace segloss {
namespace detail {

namespace {

template <class T>
std::string shortest_if_needed(T v, T (*parse)(const char*, char**)) {
  std::ostringstream os;
  os << v;
  std::string s = os.str();
  if (!std::isfinite(v) || parse(s.c_str(), nullptr) == v) return s;
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
    return shortest_if_needed<float>(static_cast<float>(v), std::strtof);
  return shortest_if_needed<double>(v, std::strtod);
}

std::string message_number(float v) {
  return shortest_if_needed<float>(v, std::strtof);
}

}  // namespace detail
}  // namespace segloss
