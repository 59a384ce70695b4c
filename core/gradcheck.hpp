// @brief gradcheck: an analytic gradient against central finite differences, in double.
//
// For a scalar function f of a double tensor x and its claimed gradient g = df/dx, computes
//   n_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
// for every element i, or for a seeded random sample of them, and compares g_i with n_i.
// An element passes when |g_i - n_i| <= atol + rtol * |n_i| (numpy's allclose), and fails when
// g_i or n_i is NaN or infinite. The result names the element farthest outside (or, when all
// pass, nearest to) its tolerance, and the worst elements by absolute and by relative error.
//
// Choose inputs where f is smooth: finite differences cannot test a kink (a max, a clamp, a
// threshold), and a step of eps must not cross one. Central differences in double with
// eps = 1e-6 are accurate to about 1e-9 relative for smooth losses of size about 1.
//
// Choose atol for the size of the gradient. The finite differences carry f's rounding divided
// by eps: about 1e-16 |f| / eps, more when f sums many terms. The default atol = 1e-8 suits
// gradients of about 1e-3 and more; a mean over a million elements has gradients of about 1e-6,
// where atol = 1e-8 lets a 1% error pass. There, check the sum reduction (gradients n times
// larger), a smaller input, or set atol near the noise: segloss's loss registry uses
// atol = 1e-12 + 1e-14 max(|f|, 1e-3) / eps.
//
// Users can check their own losses with it:
//   auto r = segloss::gradcheck([&](const Tensor<double>& x) { return my_loss(x); }, x, my_grad);
//   if (!r.passed) std::cerr << r.summary() << "\n";
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tensor.hpp"

namespace segloss {

struct GradcheckOptions {
  double eps = 1e-6;     // finite-difference step
  double atol = 1e-8;    // absolute tolerance, finite and >= 0
  double rtol = 1e-5;    // relative tolerance, finite and >= 0
  int64_t samples = 0;   // elements to check: 0 = all, else this many distinct ones at random
  uint64_t seed = 1234;  // seed of the sample
};

struct GradcheckResult {
  bool passed = true;
  int64_t checked = 0;         // elements compared
  int64_t failures = 0;        // elements outside the tolerance
  double max_abs_error = 0.0;  // max |g_i - n_i|
  int64_t worst_abs_index = -1;
  double max_rel_error = 0.0;  // max |g_i - n_i| / max(|g_i|, |n_i|), over elements where that
                               // is above atol
  int64_t worst_rel_index = -1;
  // The element farthest outside its tolerance: the largest |g_i - n_i| / (atol + rtol |n_i|),
  // above 1 exactly when that element fails (NaN, the worst, when g_i or n_i is not finite).
  int64_t worst_index = -1;
  double worst_ratio = 0.0;
  double analytic_at_worst = 0.0;  // g and n at worst_index
  double numeric_at_worst = 0.0;
  std::string summary() const;  // one line: checked, failures, the worst element, the maxima
};

using ScalarFunction = std::function<double(const Tensor<double>&)>;

// x is not modified (f sees a perturbed copy). analytic must be shaped like x.
GradcheckResult gradcheck(const ScalarFunction& f, const Tensor<double>& x,
                          const Tensor<double>& analytic, const GradcheckOptions& options = {});

}  // namespace segloss
