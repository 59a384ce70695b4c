// Built against an installed segloss: BCE of logit 0 against target 1 is log 2.
#include <cmath>
#include <cstdio>

#include <segloss/segloss.hpp>

int main() {
  const auto x = segloss::Tensor<double>::zeros({1, 1, 4});
  const auto z = segloss::Tensor<double>::full({1, 1, 4}, 1.0);
  const double v = segloss::bce_with_logits(x, z)[0];
  std::printf("consumer: bce_with_logits = %.12f (log 2 = %.12f)\n", v, std::log(2.0));
  return std::fabs(v - std::log(2.0)) < 1e-12 ? 0 : 1;
}
