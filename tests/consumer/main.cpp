// Built against an installed segloss: BCE of logit 0 against target 1 is log 2. It also prints
// a soft Dice value on fixed data ("soft_dice=..."), which the C consumers (main.c) must match.
#include <cmath>
#include <cstdio>
#include <vector>

#include <segloss/segloss.hpp>

int main() {
  const auto x = segloss::Tensor<double>::zeros({1, 1, 4});
  const auto z = segloss::Tensor<double>::full({1, 1, 4}, 1.0);
  const double v = segloss::bce_with_logits(x, z)[0];
  std::printf("consumer: bce_with_logits = %.12f (log 2 = %.12f)\n", v, std::log(2.0));

  // The data of main.c: x_i = sin(i), t_i = [i % 3 == 0], shape (2, 3, 8).
  std::vector<double> logits(48), target(48);
  for (int i = 0; i < 48; ++i) {
    logits[i] = std::sin(static_cast<double>(i));
    target[i] = i % 3 == 0 ? 1.0 : 0.0;
  }
  const auto dice =
      segloss::soft_dice_value_and_grad(segloss::Tensor<double>::view(logits.data(), {2, 3, 8}),
                                        segloss::Tensor<double>::view(target.data(), {2, 3, 8}));
  std::printf("soft_dice=%.17g\n", dice.value);
  return std::fabs(v - std::log(2.0)) < 1e-12 ? 0 : 1;
}
