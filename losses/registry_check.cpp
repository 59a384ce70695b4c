// registry::check (losses/registry.hpp): one entry's gradcheck, fused-versus-composed and
// float32-versus-double comparisons, as segloss-gradcheck prints them and the tests assert them.
#include <algorithm>
#include <cmath>
#include <exception>

#include "registry.hpp"

namespace segloss::registry {

namespace {

template <class A, class B>
double max_abs_difference(const Tensor<A>& a, const Tensor<B>& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m)) m = d;  // NaN wins
  }
  return m;
}

template <class T>
double max_abs(const Tensor<T>& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(double(a[i])));
  return m;
}

}  // namespace

CheckResult check(const Entry& entry, const CheckOptions& options) {
  CheckResult r;
  try {
    // Double: the value, the fused gradient, the forward's agreement with the fused value.
    const Problem<double> pd = entry.make_double(options.shape, options.seed);
    const Tensor<double>& x = pd.input;
    Tensor<double> grad;
    r.value = pd.value_and_grad(x, grad);
    const double forward = pd.value(x);
    const double scale = std::max(pd.magnitude, 1e-3);
    r.forward_mismatch = std::fabs(r.value - forward) / scale;

    // Finite differences of the forward value. Their own error is the value's rounding (about
    // 1e-16 of its magnitude, summed over its terms) divided by eps: the absolute tolerance
    // allows a hundred times 1e-16 magnitude / eps.
    Tensor<double> analytic = grad.clone();
    if (options.perturb_gradient != 0.0 && analytic.numel() > 0)
      analytic[0] = analytic[0] == 0.0 ? options.perturb_gradient
                                       : analytic[0] * (1.0 + options.perturb_gradient);
    GradcheckOptions go;
    go.eps = entry.eps;
    go.rtol = entry.rtol;
    go.atol = 1e-12 + 1e-14 * scale / entry.eps;
    go.samples = options.samples;
    go.seed = options.seed;
    r.gradcheck = gradcheck(pd.value, x, analytic, go);
    r.gradcheck_passed = r.gradcheck.passed && r.forward_mismatch <= 1e-12;

    // The composed form, to kComposedTolerance absolutely on the value and every gradient entry.
    if (pd.composed) {
      r.has_composed = true;
      Tensor<double> cgrad;
      const double cvalue = pd.composed(x, cgrad);
      r.composed_error = std::max(std::fabs(cvalue - r.value), max_abs_difference(cgrad, grad));
      r.composed_passed = r.composed_error <= kComposedTolerance;
    }

    // float32 against double on the same (float-representable) inputs.
    const Problem<float> pf = entry.make_float(options.shape, options.seed);
    Tensor<float> fgrad;
    const double fvalue = pf.value_and_grad(pf.input, fgrad);
    const double gscale = std::max(max_abs(grad), 1e-30);
    r.float_error =
        std::max(std::fabs(fvalue - r.value) / scale, max_abs_difference(fgrad, grad) / gscale);
    r.float_passed = r.float_error <= entry.float_tolerance;
  } catch (const std::exception& e) {
    r.error = e.what();
    r.gradcheck_passed = r.composed_passed = r.float_passed = false;
  }
  r.passed = r.error.empty() && r.gradcheck_passed && r.composed_passed && r.float_passed;
  return r;
}

}  // namespace segloss::registry
