// Reading the golden files of tests/golden (written by the generators there; the format is in
// tests/golden/README.md) and comparing segloss's results with them. Shared by the golden
// tests of every loss.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

namespace segloss::golden {

// ---------------------------------------------------------------------------------------------
// The golden file format (as in tests/test_golden.cpp)
// ---------------------------------------------------------------------------------------------

struct GoldenTensor {
  std::vector<int64_t> dims;
  std::vector<double> values;
};

struct GoldenCase {
  std::string name;
  std::string loss;
  std::vector<int64_t> shape;
  std::map<std::string, std::string> options;
  std::map<std::string, GoldenTensor> tensors;
  bool has_value = false;
  double value = 0.0;

  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  const GoldenTensor& tensor(const std::string& key) const { return tensors.at(key); }
  std::string option(const std::string& key) const {
    const auto it = options.find(key);
    return it == options.end() ? std::string() : it->second;
  }
};

struct GoldenFile {
  std::string path;
  std::string error;  // empty when the file parsed completely
  std::string torch_version;
  std::string numpy_version;  // files whose reference is numpy (metrics.txt) say so instead
  std::vector<GoldenCase> cases;
};

// strtod accepts "nan", which the file uses for PyTorch's mean over no pixels.
inline double parse_double(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    throw std::runtime_error("bad number '" + s + "'");
  return v;
}

// Extents and counts: non-negative.
inline int64_t parse_count(const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0) throw std::runtime_error("bad count '" + s + "'");
  return static_cast<int64_t>(v);
}

// Options such as ignore_index: any sign.
inline int64_t parse_signed(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    throw std::runtime_error("bad integer '" + s + "'");
  return static_cast<int64_t>(v);
}

// "tensor <name> <rank> <dims...> <values...>"
inline void parse_tensor(std::istringstream& in, GoldenCase& c) {
  std::string name, tok;
  if (!(in >> name >> tok)) throw std::runtime_error("tensor line without name and rank");
  GoldenTensor t;
  const int64_t rank = parse_count(tok);
  int64_t count = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (!(in >> tok)) throw std::runtime_error("tensor " + name + ": missing extent");
    t.dims.push_back(parse_count(tok));
    count *= t.dims.back();
  }
  t.values.reserve(static_cast<size_t>(count));
  while (in >> tok) t.values.push_back(parse_double(tok));
  if (static_cast<int64_t>(t.values.size()) != count)
    throw std::runtime_error("tensor " + name + ": " + std::to_string(t.values.size()) +
                             " values, shape needs " + std::to_string(count));
  if (!c.tensors.emplace(name, std::move(t)).second)
    throw std::runtime_error("tensor " + name + " given twice");
}

inline GoldenFile load_golden(const std::string& filename, const std::string& generator) {
  GoldenFile f;
  f.path = std::string(SEGLOSS_GOLDEN_DIR) + "/" + filename;
  std::ifstream in(f.path);
  if (!in) {
    f.error = "cannot open " + f.path + " (run tests/golden/" + generator + ")";
    return f;
  }
  int64_t line_no = 0;
  int64_t declared_count = -1;
  bool in_case = false;
  GoldenCase current;
  std::string line;
  try {
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ls(line);
      std::string key;
      ls >> key;
      if (declared_count >= 0) throw std::runtime_error("text after the count line");
      if (!in_case) {
        if (key == "torch") {
          ls >> f.torch_version;
        } else if (key == "numpy") {
          ls >> f.numpy_version;
        } else if (key == "case") {
          current = GoldenCase();
          if (!(ls >> current.name)) throw std::runtime_error("case without a name");
          in_case = true;
        } else if (key == "count") {
          std::string tok;
          ls >> tok;
          declared_count = parse_count(tok);
        } else {
          throw std::runtime_error("unexpected '" + key + "' outside a case");
        }
        continue;
      }
      if (key == "loss") {
        ls >> current.loss;
      } else if (key == "shape") {
        std::string tok;
        while (ls >> tok) current.shape.push_back(parse_count(tok));
      } else if (key == "option") {
        std::string k, v;
        if (!(ls >> k >> v)) throw std::runtime_error("option without key and value");
        current.options[k] = v;
      } else if (key == "tensor") {
        parse_tensor(ls, current);
      } else if (key == "value") {
        std::string tok;
        ls >> tok;
        current.value = parse_double(tok);
        current.has_value = true;
      } else if (key == "end") {
        f.cases.push_back(std::move(current));
        in_case = false;
      } else {
        throw std::runtime_error("unknown key '" + key + "' in case " + current.name);
      }
    }
    if (in_case) throw std::runtime_error("file ends inside case " + current.name);
    if (declared_count < 0) throw std::runtime_error("no final count line (truncated file?)");
    if (declared_count != static_cast<int64_t>(f.cases.size()))
      throw std::runtime_error("count line says " + std::to_string(declared_count) + ", read " +
                               std::to_string(f.cases.size()) + " cases");
    if (f.torch_version.empty() && f.numpy_version.empty())
      throw std::runtime_error("no torch (or numpy) version line");
  } catch (const std::exception& e) {
    f.error = f.path + ":" + std::to_string(line_no) + ": " + e.what();
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

// Tensor elements: |a - g| <= rtol * max(|g|, floor * max_k |g_k|); scalars: rtol * |g|.
// In double the floor makes the absolute bound 1e-14 of the tensor's largest magnitude: it admits
// last-bit differences in elements computed by cancellation (p_ic - 1 for a confident pixel,
// lse_i - x_ic near 0). In float the floor is 1: the bound is relative to the largest magnitude.
// A golden tensor or value that is exactly 0 (C = 1, every pixel ignored) must be matched exactly.
struct Tolerance {
  double rtol;
  double floor;
};

inline constexpr Tolerance kDouble{1e-10, 1e-4};
inline constexpr Tolerance kFloat{1e-4, 1.0};

inline std::string shape_str(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims[i];
  os << ')';
  return os.str();
}

// Compares `actual` (times `scale`) with the golden tensor; one CHECK per tensor, with the worst
// element in the message.
template <class T>
void check_tensor(const char* what, const Tensor<T>& actual, const GoldenTensor& golden,
                  const Tolerance& tol, double scale = 1.0) {
  const Shape want(golden.dims.begin(), golden.dims.end());
  REQUIRE_MESSAGE(actual.defined(), what, " is undefined");
  REQUIRE_MESSAGE(actual.shape() == want, what, " has shape ", actual.shape().str(), ", golden ",
                  shape_str(golden.dims));
  double max_mag = 0.0;
  for (double g : golden.values) max_mag = std::max(max_mag, std::abs(g));
  const double floor = tol.floor * max_mag;
  int64_t failures = 0, worst = -1;
  double worst_ratio = -1.0;  // |a - g| / bound of the worst element (inf for NaN)
  for (int64_t i = 0; i < actual.numel(); ++i) {
    const double a = static_cast<double>(actual[i]) * scale;
    const double g = golden.values[static_cast<size_t>(i)];
    const double bound = tol.rtol * std::max(std::abs(g), floor);
    const double err = std::abs(a - g);
    // NaN never passes; an exact match (0 == 0) always does.
    const bool ok = err == 0.0 || err <= bound;
    const double ratio = err == 0.0 ? 0.0
                         : (std::isnan(err) || bound == 0.0)
                             ? std::numeric_limits<double>::infinity()
                             : err / bound;
    if (!ok) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  std::ostringstream msg;
  msg.precision(17);
  if (worst >= 0) {
    const double a = static_cast<double>(actual[worst]) * scale;
    const double g = golden.values[static_cast<size_t>(worst)];
    msg << what << ": " << failures << " of " << actual.numel()
        << " elements outside tolerance; worst element " << worst << ": segloss " << a << ", torch "
        << g << ", |diff| " << std::abs(a - g) << " (" << worst_ratio << " x the bound; rtol "
        << tol.rtol << ", max |golden| " << max_mag << ")";
  }
  CHECK_MESSAGE(failures == 0, msg.str());
}

// A NaN golden value (PyTorch's mean when every pixel is ignored) needs a NaN.
inline void check_value(const char* what, double actual, double golden, const Tolerance& tol) {
  std::ostringstream msg;
  msg.precision(17);
  if (std::isnan(golden)) {
    msg << what << ": segloss " << actual << ", torch NaN";
    CHECK_MESSAGE(std::isnan(actual), msg.str());
    return;
  }
  const double err = std::abs(actual - golden);
  msg << what << ": segloss " << actual << ", torch " << golden << ", |diff| " << err << ", rtol "
      << tol.rtol;
  CHECK_MESSAGE((err == 0.0 || err <= tol.rtol * std::abs(golden)), msg.str());
}

template <class T>
void check_all_zero(const char* what, const Tensor<T>& t) {
  REQUIRE_MESSAGE(t.defined(), what, " is undefined");
  int64_t nonzero = 0;
  for (int64_t i = 0; i < t.numel(); ++i) nonzero += t[i] != T(0) ? 1 : 0;
  CHECK_MESSAGE(nonzero == 0, what, ": ", nonzero, " of ", t.numel(), " elements are not 0");
}

template <class T>
Tensor<T> to_tensor(const GoldenTensor& g) {
  std::vector<T> v(g.values.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(g.values[i]);
  return Tensor<T>::from(v, Shape(g.dims.begin(), g.dims.end()));
}

// Labels: every stored value must be an integer that L holds exactly.
template <class L>
Tensor<L> to_labels(const GoldenTensor& g) {
  std::vector<L> v(g.values.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double d = g.values[i];
    REQUIRE_MESSAGE(
        (std::floor(d) == d && d >= static_cast<double>(std::numeric_limits<L>::min()) &&
         d <= static_cast<double>(std::numeric_limits<L>::max())),
        "label ", d, " at ", i, " is not an integer of the label type");
    v[i] = static_cast<L>(d);
  }
  return Tensor<L>::from(v, Shape(g.dims.begin(), g.dims.end()));
}

inline Reduction parse_reduction(const std::string& s) {
  if (s == "mean") return Reduction::mean;
  if (s == "sum") return Reduction::sum;
  if (s == "none") return Reduction::none;
  FAIL("unknown reduction '", s, "'");
  return Reduction::mean;
}

}  // namespace segloss::golden
