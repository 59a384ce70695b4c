// Gradient checks of a loss through its public API, in double:
//  - value_and_grad's gradient against finite differences of the forward value (mean, sum);
//  - backward(grad_out) against finite differences of sum(grad_out * forward) (any reduction);
//  - value_and_grad's value equal to the forward value.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>

#include "helpers.hpp"

namespace segloss::testing {

using Forward = std::function<Tensor<double>(const Tensor<double>&)>;
using Backward = std::function<Tensor<double>(const Tensor<double>&, const Tensor<double>&)>;
using Fused = std::function<ValueAndGrad<double>(const Tensor<double>&)>;

inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a[i] * b[i];
  return s;
}

// Whether this test binary is built with AddressSanitizer or ThreadSanitizer (CI's stages 2 and
// 3; GCC defines __SANITIZE_*__, clang answers __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// A sampled check costs two evaluations of the whole loss per sample. Under a sanitizer one
// evaluation is 20-100x slower (clang's ASan build also carries the fuzzer's coverage hooks),
// and the four sampled chunk-boundary checks took 24 minutes of CI's ASan stage at 300 samples.
// What the sanitizer stages look for (out-of-bounds access, races, UB) every evaluation
// exercises whichever element is perturbed, so there the sample is cut to kSanitizedSamples
// elements; the release stage (scripts/test.sh) checks the full sample. samples = 0 (every
// element) is left alone: those inputs are small.
inline constexpr int64_t kSanitizedSamples = 24;
inline int64_t fd_samples(int64_t samples) {
  return kSanitized && samples > kSanitizedSamples ? kSanitizedSamples : samples;
}

// The finite difference's own error is the rounding of f, about 1e-16 |f| summed over its
// terms, divided by eps: the absolute tolerance allows ten times that (1e-15 scale / eps),
// where scale is the sum of the magnitudes of the terms of f.
inline GradcheckOptions fd_options(int64_t samples, double eps, double scale) {
  GradcheckOptions o;
  o.samples = fd_samples(samples);
  o.eps = eps;
  o.atol = 1e-8 + 1e-15 * scale / eps;
  return o;
}

// `fused` may be empty (reduction none). `samples` = 0 checks every element. Inputs of many
// elements need a larger eps: the rounding error of the summed loss, divided by eps, must stay
// well below the gradient's entries (about 1/numel for a mean).
inline void check_loss_gradients(const Tensor<double>& x, const Forward& forward,
                                 const Backward& backward, const Fused& fused, int64_t samples = 0,
                                 double eps = 1e-6) {
  const Tensor<double> y = forward(x);
  const auto grad_out = randn<double>(y.shape(), 99);
  const auto g = backward(x, grad_out);
  REQUIRE(g.shape() == x.shape());
  double scale = 0;
  for (int64_t i = 0; i < y.numel(); ++i) scale += std::fabs(y[i] * grad_out[i]);
  const auto rb = gradcheck([&](const Tensor<double>& v) { return dot(forward(v), grad_out); }, x,
                            g, fd_options(samples, eps, scale));
  INFO("backward: ", rb.summary());
  CHECK(rb.passed);
  if (fused) {
    REQUIRE(y.numel() == 1);
    const auto vg = fused(x);
    CHECK(vg.value == doctest::Approx(y[0]).epsilon(1e-14));
    const auto rf = gradcheck([&](const Tensor<double>& v) { return forward(v)[0]; }, x, vg.grad,
                              fd_options(samples, eps, std::fabs(y[0])));
    INFO("value_and_grad: ", rf.summary());
    CHECK(rf.passed);
  }
}

// check_loss_gradients for reductions mean, sum and none of one loss, given its three calls as
// generic callables: forward(x, target, options), backward(x, target, grad_out, options) and
// value_and_grad(x, target, options). options.reduction is set for each.
template <class Target, class Options, class Forward3, class Backward4, class Fused3>
void check_all_reductions(const Tensor<double>& x, const Target& target, Options o,
                          Forward3 forward, Backward4 backward, Fused3 fused, int64_t samples = 0,
                          double eps = 1e-6) {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    INFO("reduction ", std::string(reduction_name(r)));
    o.reduction = r;
    check_loss_gradients(
        x, [&](const Tensor<double>& v) { return forward(v, target, o); },
        [&](const Tensor<double>& v, const Tensor<double>& go) {
          return backward(v, target, go, o);
        },
        r == Reduction::none ? Fused{}
                             : Fused([&](const Tensor<double>& v) { return fused(v, target, o); }),
        samples, eps);
  }
}

}  // namespace segloss::testing
