#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <locale>
#include <sstream>
#include <unordered_set>
#include <vector>

#include "error.hpp"

namespace segloss {

std::string GradcheckResult::summary() const {
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os.precision(3);
  os << (passed ? "passed" : "FAILED") << ": " << checked << " elements, " << failures
     << " outside tolerance; worst element " << worst_index << " (analytic " << analytic_at_worst
     << ", numeric " << numeric_at_worst << ", error " << worst_ratio
     << " times its tolerance); max abs error " << max_abs_error << " at " << worst_abs_index
     << ", max rel error " << max_rel_error << " at " << worst_rel_index;
  return os.str();
}

GradcheckResult gradcheck(const ScalarFunction& f, const Tensor<double>& x,
                          const Tensor<double>& analytic, const GradcheckOptions& o) {
  const char* fn = "gradcheck";
  SEGLOSS_CHECK(x.defined(), fn, "x is undefined");
  SEGLOSS_CHECK(x.numel() > 0, fn, "x ", x.shape(), " has no elements");
  SEGLOSS_CHECK(analytic.defined(), fn, "analytic is undefined");
  SEGLOSS_CHECK(analytic.shape() == x.shape(), fn, "analytic ", analytic.shape(),
                " does not match x ", x.shape());
  // Host code reads and perturbs both element by element (a CUDA x crashed it).
  SEGLOSS_CHECK(x.device() == Device::cpu, fn, "x ", x.shape(), " is on device ",
                device_name(x.device()),
                "; gradcheck takes CPU tensors (copy with to(Device::cpu))");
  SEGLOSS_CHECK(analytic.device() == Device::cpu, fn, "analytic ", analytic.shape(),
                " is on device ", device_name(analytic.device()),
                "; gradcheck takes CPU tensors (copy with to(Device::cpu))");
  SEGLOSS_CHECK(o.eps > 0.0 && std::isfinite(o.eps), fn, "options.eps is ", o.eps,
                "; it must be finite and > 0");
  SEGLOSS_CHECK(o.atol >= 0.0 && std::isfinite(o.atol), fn, "options.atol is ", o.atol,
                "; it must be finite and >= 0");
  SEGLOSS_CHECK(o.rtol >= 0.0 && std::isfinite(o.rtol), fn, "options.rtol is ", o.rtol,
                "; it must be finite and >= 0");
  SEGLOSS_CHECK(o.samples >= 0, fn, "options.samples is ", o.samples, "; it must be >= 0");

  const int64_t n = x.numel();
  std::vector<int64_t> indices;
  if (o.samples == 0 || o.samples >= n) {
    indices.resize(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), int64_t{0});
  } else {
    // Distinct indices (Floyd's algorithm: k draws, no O(n) table), then in index order.
    std::mt19937_64 rng(o.seed);
    std::unordered_set<int64_t> chosen;
    for (int64_t j = n - o.samples; j < n; ++j) {
      const int64_t r = std::uniform_int_distribution<int64_t>(0, j)(rng);
      if (!chosen.insert(r).second) chosen.insert(j);
    }
    indices.assign(chosen.begin(), chosen.end());
    std::sort(indices.begin(), indices.end());
  }

  Tensor<double> probe = x.clone();
  GradcheckResult r;
  for (int64_t i : indices) {
    const double saved = probe[i];
    probe[i] = saved + o.eps;
    const double up = f(probe);
    probe[i] = saved - o.eps;
    const double down = f(probe);
    probe[i] = saved;
    const double num = (up - down) / (2.0 * o.eps);
    const double ana = analytic[i];
    const double abs_err = std::fabs(ana - num);
    const double scale = std::max(std::fabs(ana), std::fabs(num));
    const double rel_err = std::isnan(abs_err) ? abs_err : scale > o.atol ? abs_err / scale : 0.0;
    const double tolerance = o.atol + o.rtol * std::fabs(num);
    // A NaN or infinite g_i or n_i fails (an infinite n_i made the tolerance infinite, and any
    // finite g_i passed), with the ratio NaN. Otherwise the error in tolerances: 0 / 0 (atol = 0,
    // both 0) is 0, e / 0 is inf.
    const bool finite = std::isfinite(ana) && std::isfinite(num);
    const double ratio = !finite          ? std::numeric_limits<double>::quiet_NaN()
                         : abs_err == 0.0 ? 0.0
                                          : abs_err / tolerance;
    ++r.checked;
    // A NaN ratio is the worst error: the first stays named (a later finite error compared
    // with it would otherwise replace it).
    if (!(ratio <= 1.0)) ++r.failures;
    const auto worse = [](double e, double worst) { return !std::isnan(worst) && !(e <= worst); };
    if (r.worst_index < 0 || worse(ratio, r.worst_ratio)) {
      r.worst_ratio = ratio;
      r.worst_index = i;
      r.analytic_at_worst = ana;
      r.numeric_at_worst = num;
    }
    if (worse(abs_err, r.max_abs_error)) {
      r.max_abs_error = abs_err;
      r.worst_abs_index = i;
    }
    if (worse(rel_err, r.max_rel_error)) {
      r.max_rel_error = rel_err;
      r.worst_rel_index = i;
    }
  }
  r.passed = r.failures == 0;
  return r;
}

}  // namespace segloss
