// Shared by the cross_entropy tests on the CPU and on CUDA: pixels whose label logit leads the
// others by a given amount, and a check of a per-pixel loss and its gradient against the exact
// values in long double. At a lead of L the pixel's loss is about (C - 1) e^-L: log(1 + R) with
// R below float's rounding unit from L ~ 16 on, where log(sum_c e_c) would round to 0
// (docs/gradients.md §3b).
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <segloss/segloss.hpp>

namespace segloss::testing {

struct LeadPixels {
  Tensor<double> x;          // (1, C, P)
  Tensor<int64_t> y;         // (1, P); every 7th pixel ignored (-100), the others label i % C
  std::vector<double> lead;  // per pixel
};

// P pixels, the leads cycling through `leads`, the other classes' logits spread over [-0.5, 0.5]
// (all exact in float).
inline LeadPixels lead_pixels(int64_t C, int64_t P, const std::vector<double>& leads) {
  LeadPixels r{Tensor<double>::empty({1, C, P}), Tensor<int64_t>::empty({1, P}), {}};
  for (int64_t i = 0; i < P; ++i) {
    const int64_t y = i % C;
    const double lead = leads[static_cast<size_t>(i) % leads.size()];
    r.y[i] = i % 7 == 6 ? -100 : y;
    r.lead.push_back(lead);
    for (int64_t c = 0; c < C; ++c)
      r.x[c * P + i] = c == y ? lead + 0.25 : -0.5 + static_cast<double>((c * 5 + i) % 9) / 8.0;
  }
  return r;
}

// The leads both tests walk: confident pixels up to 300 (float is checked to 80), and labels
// below the max class down to -100 (where e_y underflows in float and softmax_nll's floor acts).
inline std::vector<double> lead_values() {
  return {5, 16, 20, 30, 60, 80, 100, 300, -3, -50, -100};
}

// Class weights 0.5 to 1.5 when weighted, else none (all 1).
inline std::vector<double> lead_weights(int64_t C, bool weighted) {
  std::vector<double> w;
  if (weighted)
    for (int64_t c = 0; c < C; ++c) w.push_back(0.5 + 0.25 * static_cast<double>(c % 5));
  return w;
}

// |got - want| <= tol |want|.
inline bool close_to(double got, long double want, double tol) {
  return std::fabs(static_cast<long double>(got) - want) <= tol * std::fabs(want);
}

// Checks loss (reduction none, shape (1, P)) and grad (upstream 1, shape (1, C, P)) against
// w_y log1p(R) and w_y (p_c - [c = y]), with the label's entry -w_y R / S, for pixels whose lead
// is at most max_lead (beyond about 87 float's subnormal e^-lead loses precision by design);
// ignored pixels must be exactly 0. weight: per class, or empty for 1.
template <class T>
void check_lead_pixels(const LeadPixels& in, const Tensor<T>& loss, const Tensor<T>& grad,
                       const std::vector<double>& weight, double tol, double max_lead) {
  const int64_t C = in.x.size(1), P = in.x.size(2);
  REQUIRE(loss.numel() == P);
  REQUIRE(grad.numel() == C * P);
  int checked = 0;
  for (int64_t i = 0; i < P; ++i) {
    CAPTURE(i);
    CAPTURE(in.lead[static_cast<size_t>(i)]);
    if (in.y[i] < 0) {
      CHECK(loss[i] == T(0));
      for (int64_t c = 0; c < C; ++c) CHECK(grad[c * P + i] == T(0));
      continue;
    }
    if (in.lead[static_cast<size_t>(i)] > max_lead) continue;
    const int64_t y = in.y[i];
    const long double w = weight.empty() ? 1.0L : weight[static_cast<size_t>(y)];
    std::vector<long double> e(static_cast<size_t>(C));
    long double rest = 0;
    for (int64_t c = 0; c < C; ++c) {
      e[static_cast<size_t>(c)] = std::exp(static_cast<long double>(in.x[c * P + i]) -
                                           static_cast<long double>(in.x[y * P + i]));
      if (c != y) rest += e[static_cast<size_t>(c)];
    }
    const long double sum = 1 + rest;
    CHECK(close_to(static_cast<double>(loss[i]), w * std::log1p(rest), tol));
    for (int64_t c = 0; c < C; ++c) {
      CAPTURE(c);
      const long double want = w * (c == y ? -rest / sum : e[static_cast<size_t>(c)] / sum);
      CHECK(close_to(static_cast<double>(grad[c * P + i]), want, tol));
    }
    ++checked;
  }
  CHECK(checked > P / 2);
}

}  // namespace segloss::testing
