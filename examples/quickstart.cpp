// quickstart: a loss, its gradient (checked against finite differences) and a metric, on
// 2 images of 4 classes whose logits are our own buffer. What a user of segloss writes.
#include <cmath>
#include <cstdio>
#include <vector>

#include <segloss/segloss.hpp>

int main() {
  const int64_t n = 2, classes = 4, h = 16, w = 16, hw = h * w;
  std::vector<double> scores(n * classes * hw);  // the network's logits, (N, C, H, W)
  std::vector<int64_t> truth(n * hw);            // the labels, (N, H, W)
  for (int64_t i = 0; i < n * hw; ++i) truth[i] = (i % w) / 4;  // vertical bands of 4 classes
  for (int64_t i = 0; i < n * classes * hw; ++i) {
    const int64_t b = i / (classes * hw), c = (i / hw) % classes, p = i % hw;
    scores[i] = (truth[b * hw + p] == c ? 1.5 : 0.0) + std::sin(0.7 * double(i));  // noisy
  }
  const auto logits = segloss::Tensor<double>::view(scores.data(), {n, classes, h, w});  // no copy
  const auto labels = segloss::Tensor<int64_t>::view(truth.data(), {n, h, w});

  // Cross-entropy + softmax Dice: the value and dL/dlogits in one fused call.
  const segloss::CeDiceOptions<double> options;  // CE mean + Dice per image, weights 1 and 1
  const auto r = segloss::ce_dice_value_and_grad(logits, labels, options);
  std::printf("ce_dice %.6f   dL/dlogits[0] %+.3e\n", r.value, r.grad[0]);

  // The gradient against central finite differences, on 200 logits drawn at random.
  segloss::GradcheckOptions gc;
  gc.samples = 200;
  const auto check = segloss::gradcheck(
      [&](const segloss::Tensor<double>& z) { return segloss::ce_dice(z, labels, options)[0]; },
      logits, r.grad, gc);
  std::printf("gradcheck: %s\n", check.summary().c_str());

  // A metric: the confusion matrix of the argmax (fused: no label map is made) and mean IoU.
  segloss::ConfusionMatrix cm(classes);
  cm.update_from_logits(logits, labels);
  std::printf("mean IoU %.4f   pixel accuracy %.4f\n", segloss::label_accuracy_score(cm).mean_iou,
              segloss::label_accuracy_score(cm).pixel_accuracy);
  return check.passed ? 0 : 1;
}
