// Golden tests: segloss against reference values computed by PyTorch in float64.
//
// tests/golden/*.txt are written by tests/golden/generate.py (see tests/golden/README.md for
// the format and how to regenerate). For every case this runs segloss in double and checks
//   forward (value for mean/sum, values for none), backward with the stored grad_out, and for
//   mean/sum both forms of value_and_grad
// against PyTorch at a relative tolerance of 1e-10, then repeats everything in float with the
// inputs rounded to float, at 1e-4 relative to the largest magnitude of the golden tensor.
// A missing, truncated or empty golden file fails the test.
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
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

// ---------------------------------------------------------------------------------------------
// The golden file format
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
  std::vector<GoldenCase> cases;
};

double parse_double(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    throw std::runtime_error("bad number '" + s + "'");
  return v;
}

int64_t parse_int(const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0) throw std::runtime_error("bad count '" + s + "'");
  return static_cast<int64_t>(v);
}

// "tensor <name> <rank> <dims...> <values...>"
void parse_tensor(std::istringstream& in, GoldenCase& c) {
  std::string name, tok;
  if (!(in >> name >> tok)) throw std::runtime_error("tensor line without name and rank");
  GoldenTensor t;
  const int64_t rank = parse_int(tok);
  int64_t count = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (!(in >> tok)) throw std::runtime_error("tensor " + name + ": missing extent");
    t.dims.push_back(parse_int(tok));
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

GoldenFile load_golden(const std::string& filename) {
  GoldenFile f;
  f.path = std::string(SEGLOSS_GOLDEN_DIR) + "/" + filename;
  std::ifstream in(f.path);
  if (!in) {
    f.error = "cannot open " + f.path + " (run tests/golden/generate.py)";
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
        } else if (key == "case") {
          current = GoldenCase();
          if (!(ls >> current.name)) throw std::runtime_error("case without a name");
          in_case = true;
        } else if (key == "count") {
          std::string tok;
          ls >> tok;
          declared_count = parse_int(tok);
        } else {
          throw std::runtime_error("unexpected '" + key + "' outside a case");
        }
        continue;
      }
      if (key == "loss") {
        ls >> current.loss;
      } else if (key == "shape") {
        std::string tok;
        while (ls >> tok) current.shape.push_back(parse_int(tok));
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
    if (f.torch_version.empty()) throw std::runtime_error("no torch version line");
  } catch (const std::exception& e) {
    f.error = f.path + ":" + std::to_string(line_no) + ": " + e.what();
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

// How close segloss must be to PyTorch.
struct Tolerance {
  // Tensor elements: |a - g| <= rtol * max(|g|, floor * max_k |g_k|); scalars: rtol * |g|.
  // In double the floor makes the absolute bound 1e-14 of the tensor's largest magnitude. It
  // admits the rounding of a near-zero element computed by cancellation against an O(1)
  // intermediate, which both sides have in different places (measured: at most 4.4e-16 of the
  // largest magnitude, so the margin is >= 20x):
  //   torch:   (1 - z) x + lw softplus(-x) for the bce value, sigmoid's backward (1 - y) y
  //            for y near 1;
  //   segloss: the bce gradient (1 - z) p - pw z (1 - p) for soft targets near its zero.
  // Every element not within 1e-4 of zero (relative to the largest) is held to 1e-10 relative.
  // In float the floor is 1: the bound is relative to the largest magnitude.
  double rtol;
  double floor;
};

constexpr Tolerance kDouble{1e-10, 1e-4};
constexpr Tolerance kFloat{1e-4, 1.0};

std::string shape_str(const std::vector<int64_t>& dims) {
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

void check_value(const char* what, double actual, double golden, const Tolerance& tol) {
  const double err = std::abs(actual - golden);
  std::ostringstream msg;
  msg.precision(17);
  msg << what << ": segloss " << actual << ", torch " << golden << ", |diff| " << err << ", rtol "
      << tol.rtol;
  CHECK_MESSAGE((err == 0.0 || err <= tol.rtol * std::abs(golden)), msg.str());
}

template <class T>
Tensor<T> to_tensor(const GoldenTensor& g) {
  std::vector<T> v(g.values.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(g.values[i]);
  return Tensor<T>::from(v, Shape(g.dims.begin(), g.dims.end()));
}

Reduction parse_reduction(const std::string& s) {
  if (s == "mean") return Reduction::mean;
  if (s == "sum") return Reduction::sum;
  if (s == "none") return Reduction::none;
  FAIL("unknown reduction '", s, "'");
  return Reduction::mean;
}

// ---------------------------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------------------------

// The calls of one loss, bound to its options: forward, backward, and both value_and_grad forms.
template <class T, class Forward, class Backward, class Fused, class FusedInto>
void check_case(const GoldenCase& c, Reduction reduction, const Tolerance& tol,
                const Forward& forward, const Backward& backward, const Fused& fused,
                const FusedInto& fused_into) {
  const Tensor<T> x = to_tensor<T>(c.tensor("logits"));
  const Tensor<T> z = to_tensor<T>(c.tensor("target"));
  const Tensor<T> grad_out = to_tensor<T>(c.tensor("grad_out"));
  REQUIRE_MESSAGE(x.shape() == Shape(c.shape.begin(), c.shape.end()),
                  "logits shape differs from the case's shape line");

  // Forward.
  const Tensor<T> out = forward(x, z);
  if (reduction == Reduction::none) {
    REQUIRE_MESSAGE(c.has("values"), "a reduction none case needs tensor values");
    check_tensor("forward values", out, c.tensor("values"), tol);
  } else {
    REQUIRE_MESSAGE(c.has_value, "a mean/sum case needs a value");
    REQUIRE(out.rank() == 0);
    check_value("forward value", static_cast<double>(out[0]), c.value, tol);
  }

  // Backward with the stored grad_out: golden grad = autograd with that grad_out.
  check_tensor("backward grad", backward(x, z, grad_out), c.tensor("grad"), tol);

  if (reduction == Reduction::none) return;
  // value_and_grad computes d(loss)/dx, i.e. grad_out = 1: scale by the stored grad_out.
  const double g = c.tensor("grad_out").values.at(0);
  const ValueAndGrad<T> vg = fused(x, z);
  check_value("value_and_grad value", vg.value, c.value, tol);
  check_tensor("value_and_grad grad", vg.grad, c.tensor("grad"), tol, g);

  // The second form writes into a caller's buffer (filled with NaN first).
  Tensor<T> buf = Tensor<T>::full(x.shape(), std::numeric_limits<T>::quiet_NaN());
  const double v = fused_into(x, z, buf);
  check_value("value_and_grad(into) value", v, c.value, tol);
  check_tensor("value_and_grad(into) grad", buf, c.tensor("grad"), tol, g);
}

template <class T>
void run_bce_case(const GoldenCase& c, const Tolerance& tol) {
  BceWithLogitsOptions<T> o;
  o.reduction = parse_reduction(c.option("reduction"));
  if (c.has("weight")) o.weight = to_tensor<T>(c.tensor("weight"));
  if (c.has("pos_weight")) {
    // PyTorch got pos_weight as (C, 1, ..., 1) or (1); segloss takes the C (or 1) values.
    const GoldenTensor& pw = c.tensor("pos_weight");
    GoldenTensor flat{{static_cast<int64_t>(pw.values.size())}, pw.values};
    o.pos_weight = to_tensor<T>(flat);
  }
  check_case<T>(
      c, o.reduction, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z) { return bce_with_logits(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return bce_with_logits_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z) {
        return bce_with_logits_value_and_grad(x, z, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad) {
        return bce_with_logits_value_and_grad(x, z, grad, o);
      });
}

template <class T>
void run_dice_case(const GoldenCase& c, const Tolerance& tol) {
  SoftDiceOptions o;
  o.reduction = parse_reduction(c.option("reduction"));
  o.smooth_nr = parse_double(c.option("smooth_nr"));
  o.smooth_dr = parse_double(c.option("smooth_dr"));
  const std::string per_image = c.option("per_image"), activation = c.option("activation");
  REQUIRE_MESSAGE((per_image == "1" || per_image == "0"), "bad per_image '", per_image, "'");
  REQUIRE_MESSAGE((activation == "sigmoid" || activation == "none"), "bad activation '", activation,
                  "'");
  o.per_image = per_image == "1";
  o.activation = activation == "sigmoid" ? Activation::sigmoid : Activation::none;
  check_case<T>(
      c, o.reduction, tol,
      [&](const Tensor<T>& x, const Tensor<T>& z) { return soft_dice(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, const Tensor<T>& go) {
        return soft_dice_backward(x, z, go, o);
      },
      [&](const Tensor<T>& x, const Tensor<T>& z) { return soft_dice_value_and_grad(x, z, o); },
      [&](const Tensor<T>& x, const Tensor<T>& z, Tensor<T>& grad) {
        return soft_dice_value_and_grad(x, z, grad, o);
      });
}

// Loads a golden file and checks that it holds at least `min_cases` cases of `loss`, all with
// the tensors every case needs.
GoldenFile require_golden(const std::string& filename, const std::string& loss, size_t min_cases) {
  GoldenFile f = load_golden(filename);
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  MESSAGE(filename, ": ", f.cases.size(), " cases from torch ", f.torch_version);
  REQUIRE_MESSAGE(f.cases.size() >= min_cases, "only ", f.cases.size(),
                  " cases, expected >= ", min_cases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.loss == loss);
    REQUIRE(c.has("logits"));
    REQUIRE(c.has("target"));
    REQUIRE(c.has("grad_out"));
    REQUIRE(c.has("grad"));
  }
  return f;
}

// The generator writes 53 bce_with_logits and 48 soft_dice cases; fewer means a broken file.
constexpr size_t kMinBceCases = 53;
constexpr size_t kMinDiceCases = 48;

}  // namespace

TEST_CASE("golden: bce_with_logits matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: bce_with_logits matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_bce_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: soft_dice matches PyTorch in double (rtol 1e-10)") {
  const GoldenFile f = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_dice_case<double>(c, kDouble);
  }
}

TEST_CASE("golden: soft_dice matches PyTorch in float (1e-4 of max magnitude)") {
  const GoldenFile f = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_dice_case<float>(c, kFloat);
  }
}

TEST_CASE("golden: the Carvana seed cases are present") {
  // The equivalences the seeds note claims are proved by these cases, computed with the seed
  // code itself: BCELoss2d == bce_with_logits(mean); SoftDiceLoss == soft_dice(smooth_nr 2,
  // smooth_dr 1, per_image, mean) for one channel.
  const GoldenFile bce = require_golden("bce_with_logits.txt", "bce_with_logits", kMinBceCases);
  const GoldenFile dice = require_golden("soft_dice.txt", "soft_dice", kMinDiceCases);
  int bce_seed = 0, dice_seed = 0;
  for (const GoldenCase& c : bce.cases)
    if (c.option("reference") == "carvana_BCELoss2d") {
      ++bce_seed;
      CHECK(c.option("reduction") == "mean");
    }
  for (const GoldenCase& c : dice.cases)
    if (c.option("reference") == "carvana_SoftDiceLoss") {
      ++dice_seed;
      INFO("case ", c.name);
      CHECK(c.option("smooth_nr") == "2");
      CHECK(c.option("smooth_dr") == "1");
      CHECK(c.option("per_image") == "1");
      CHECK(c.option("reduction") == "mean");
      CHECK(c.shape.at(1) == 1);
    }
  CHECK(bce_seed >= 1);
  CHECK(dice_seed >= 1);
}
