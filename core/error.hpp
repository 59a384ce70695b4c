// The exception type of segloss, and the checks that throw it.
//
// Every message starts with the public function that rejected its input, then names the
// argument and the values or shapes involved, e.g.
//   "bce_with_logits: target (2,1,64,64) does not match logits (2,1,64,63)".
#pragma once

#include <locale>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace segloss {

class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A device allocation that failed (cudaMalloc: cudaErrorMemoryAllocation), for a tensor or the
// workspace pool: an Error like every other, which a caller may also catch on its own (to retry
// with a smaller batch, say). The C API returns SEGLOSS_ERROR_OUT_OF_MEMORY for it, as for a
// failed host allocation (std::bad_alloc).
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

namespace detail {
// A floating-point number in a message: as `ostream <<` writes it (6 significant digits) when
// that reads back as the same value, else the shortest form that does, so that a value just
// outside a range is not printed as its bound ("percentile is 100.0000001", not "is 100"). A
// double that is exactly a float (a float element widened for its check) is printed as that
// float: "0.3", not "0.30000001192092896". core/error.cpp.
std::string message_number(double v);
std::string message_number(float v);

template <class T>
decltype(auto) message_part(T&& part) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, double> || std::is_same_v<D, float>)
    return message_number(part);
  else
    return std::forward<T>(part);
}

// "function: parts...", the format of every segloss message.
template <class... Args>
std::string message(const char* function, Args&&... parts) {
  std::ostringstream os;
  os.imbue(std::locale::classic());  // whatever std::locale::global says: "0.5", "1048576"
  os << function << ": ";
  (os << ... << message_part(std::forward<Args>(parts)));
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const char* function, Args&&... parts) {
  throw Error(message(function, std::forward<Args>(parts)...));
}
}  // namespace detail

}  // namespace segloss

// SEGLOSS_CHECK(condition, "function", parts...) throws segloss::Error("function: parts...")
// when the condition is false. The parts are streamed, so shapes and numbers can be mixed in.
#define SEGLOSS_CHECK(cond, function, ...)                       \
  do {                                                           \
    if (!(cond)) ::segloss::detail::fail(function, __VA_ARGS__); \
  } while (0)
