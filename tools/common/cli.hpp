// The command-line plumbing shared by the segloss tools (segloss-eval, segloss-gradcheck):
// one argument reader with the same rules everywhere, and the number parsers with their
// messages. Header-only; not installed.
//
// Rules: "--opt VALUE" and "--opt=VALUE" are the same; a flag given "=VALUE" is an error; an
// argument that does not start with '-' (or "-" alone, or anything after "--") is positional.
#pragma once

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace segloss::tools {

// A usage error: the tool prints "<tool>: <message>" and "Try '<tool> --help'." and exits 2.
struct UsageError {
  std::string message;
};

class ArgReader {
 public:
  ArgReader(int argc, char** argv) : argc_(argc), argv_(argv) {}

  // Moves to the next argument; false once they are all read.
  bool next() {
    if (++i_ >= argc_) return false;
    arg_ = argv_[i_];
    value_.clear();
    has_value_ = false;
    positional_ = options_done_ || arg_.size() < 2 || arg_[0] != '-';
    if (!positional_ && arg_ == "--") {
      options_done_ = true;
      return next();
    }
    const size_t eq = arg_.find('=');
    if (!positional_ && arg_.rfind("--", 0) == 0 && eq != std::string::npos) {
      value_ = arg_.substr(eq + 1);
      arg_ = arg_.substr(0, eq);
      has_value_ = true;
    }
    return true;
  }

  bool positional() const { return positional_; }
  // The argument, or the option's name without its "=VALUE".
  const std::string& arg() const { return arg_; }

  // The current option's value: its "=VALUE", or else the next argument.
  std::string value() {
    if (has_value_) return value_;
    if (i_ + 1 >= argc_) throw UsageError{arg_ + " needs a value"};
    return std::string(argv_[++i_]);
  }

  // For a flag: an error if it was given "=VALUE".
  void no_value() const {
    if (has_value_) throw UsageError{arg_ + " takes no value"};
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string arg_, value_;
  bool has_value_ = false, positional_ = false, options_done_ = false;
};

// A whole-string finite number.
inline double parse_number(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw UsageError{option + " expects a number, got '" + text + "'"};
}

// A whole-string integer in [lo, hi].
inline int64_t parse_int(const std::string& option, const std::string& text, int64_t lo,
                         int64_t hi) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, v);
  if (parsed.ec != std::errc() || parsed.ptr != end || text.empty())
    throw UsageError{option + " expects an integer, got '" + text + "'"};
  if (v < lo || v > hi)
    throw UsageError{option + " is " + text + "; it must be in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "]"};
  return v;
}

// The exit status once the output is printed: `code`, or kOutputFailed when stdout could not
// be written (a full disk, a closed descriptor), so that a truncated report is never a success.
constexpr int kOutputFailed = 4;
inline int finish_output(const char* tool, int code) {
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return code;
  const int e = errno;
  std::fprintf(stderr, "%s: the output could not be written to stdout%s%s\n", tool, e ? ": " : "",
               e ? std::strerror(e) : "");
  return kOutputFailed;
}

}  // namespace segloss::tools
