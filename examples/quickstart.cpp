// quickstart: the losses' values and gradients on a synthetic mask, each checked against
// finite differences, and a metric. What a user of segloss writes, in about fifty lines.
#include <cmath>
#include <cstdio>
#include <vector>

#include <segloss/segloss.hpp>

using segloss::Tensor;

int main() {
  // A batch of 2 images, 1 channel, 32x32: the target is a disc, the logits a blurry guess.
  const int64_t n = 2, h = 32, w = 32;
  std::vector<float> logits(n * h * w), mask(n * h * w);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double r = std::hypot(x - 14.0 - 3 * b, y - 16.0);
        mask[(b * h + y) * w + x] = r < 9 ? 1.f : 0.f;
        logits[(b * h + y) * w + x] = static_cast<float>(0.6 * (10 - r) + std::sin(x * y));
      }
  // Views over our own buffers: no copy.
  const auto x = Tensor<float>::view(logits.data(), {n, 1, h, w});
  const auto t = Tensor<float>::view(mask.data(), {n, 1, h, w});

  const auto bce = segloss::bce_with_logits_value_and_grad(x, t);
  segloss::SoftDiceOptions<float> dice_options;  // per image, smooth 1e-5, mean
  const auto dice = segloss::soft_dice_value_and_grad(x, t, dice_options);
  segloss::BceDiceOptions<float> both;
  const auto sum = segloss::bce_dice_value_and_grad(x, t, both);
  std::printf("bce_with_logits  %.6f   grad[500] %+.3e\n", bce.value, bce.grad[500]);
  std::printf("soft_dice        %.6f   grad[500] %+.3e\n", dice.value, dice.grad[500]);
  std::printf("bce_dice         %.6f   (= %.6f + %.6f)\n", sum.value, bce.value, dice.value);
  // A metric: the thresholded Dice score (sigmoid > 0.5) of each image, and their mean.
  const auto score = segloss::dice_score(x, t);
  std::printf("dice_score       %.4f   (%lld images scored)\n", score.mean,
              static_cast<long long>(score.counted));

  // The same losses in double, against central finite differences on 200 sampled pixels.
  auto xd = Tensor<double>::empty(x.shape()), td = Tensor<double>::empty(t.shape());
  for (int64_t i = 0; i < x.numel(); ++i) xd[i] = x[i], td[i] = t[i];
  segloss::GradcheckOptions gc;
  gc.samples = 200;
  gc.eps = 1e-4;  // the loss is a mean over 2048 pixels: a larger step beats its rounding
  const auto check_bce = segloss::gradcheck(
      [&](const Tensor<double>& v) { return segloss::bce_with_logits(v, td)[0]; }, xd,
      segloss::bce_with_logits_value_and_grad(xd, td).grad, gc);
  const auto check_dice =
      segloss::gradcheck([&](const Tensor<double>& v) { return segloss::soft_dice(v, td)[0]; }, xd,
                         segloss::soft_dice_value_and_grad(xd, td).grad, gc);
  std::printf("gradcheck bce_with_logits: %s\n", check_bce.summary().c_str());
  std::printf("gradcheck soft_dice:       %s\n", check_dice.summary().c_str());
  return check_bce.passed && check_dice.passed ? 0 : 1;
}
