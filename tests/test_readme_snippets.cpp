// The README's C++ snippets, verbatim, compiled and run on small data: a new user's report found
// the multi-class one throwing (its labels hold 255, which the losses ignored and the confusion
// matrix, left at its default -100, refused). The last test fails when a README block is not in
// this file word for word, so the two stay together.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

#include "doc_blocks.hpp"

// ---- the quickstart block ----
TEST_CASE("readme: the quickstart block runs and its gradient passes gradcheck") {
  const int64_t n = 2, classes = 3, h = 4, w = 5;
  std::vector<double> scores(static_cast<size_t>(n * classes * h * w));
  std::vector<int64_t> truth(static_cast<size_t>(n * h * w));
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = std::sin(0.37 * static_cast<double>(i));
  for (size_t i = 0; i < truth.size(); ++i) truth[i] = static_cast<int64_t>(i % 3);
  // clang-format off
auto logits = segloss::Tensor<double>::view(scores.data(), {n, classes, h, w});  // no copy
auto labels = segloss::Tensor<int64_t>::view(truth.data(), {n, h, w});
segloss::CeDiceOptions<double> options;  // CE (mean) + softmax Dice (per image), weights 1, 1
auto r = segloss::ce_dice_value_and_grad(logits, labels, options);
// r.value: the loss; r.grad: dL/dlogits, shaped like the logits: hand it to your backward
auto check = segloss::gradcheck(
    [&](const segloss::Tensor<double>& z) { return segloss::ce_dice(z, labels, options)[0]; },
    logits, r.grad);                      // check.passed, check.summary()
segloss::ConfusionMatrix cm(classes);    // metrics: the argmax of the logits, fused
cm.update_from_logits(logits, labels);
double miou = segloss::label_accuracy_score(cm).mean_iou;
  // clang-format on
  CHECK(std::isfinite(r.value));
  CHECK(check.passed);
  CHECK(miou >= 0.0);
  CHECK(miou <= 1.0);
  CHECK(cm.total() == n * h * w);
}

// ---- the "More examples" blocks: binary, the Carvana recipe, multi-class ----
TEST_CASE("readme: the binary, Carvana and multi-class blocks run") {
  const int64_t n = 2, h = 24, w = 20, classes = 4;
  std::vector<float> logits_buf(static_cast<size_t>(n * h * w)), mask_buf(logits_buf.size());
  for (size_t i = 0; i < logits_buf.size(); ++i) {
    logits_buf[i] = static_cast<float>(std::sin(0.11 * static_cast<double>(i)));
    mask_buf[i] = (i / 7) % 3 == 0 ? 1.0f : 0.0f;
  }
  float* logits_ptr = logits_buf.data();
  float* mask_ptr = mask_buf.data();
  // clang-format off
auto x = segloss::Tensor<float>::view(logits_ptr, {n, 1, h, w});  // no copy
auto t = segloss::Tensor<float>::view(mask_ptr, {n, 1, h, w});
segloss::BceDiceOptions<float> options;          // BCE (mean) + soft Dice (per image, mean)
auto r = segloss::bce_dice_value_and_grad(x, t, options);
// r.value: the loss; r.grad: dL/dlogits, shaped like the logits
  // clang-format on
  CHECK(std::isfinite(r.value));
  CHECK(r.grad.shape() == x.shape());
  {
    // clang-format off
auto w = segloss::boundary_weights(t);  // kernel from the height (512 -> 21)
segloss::BceDiceOptions<float> carvana;
carvana.bce.weight = w;
carvana.bce.mean_over = segloss::BceMeanOver::weight_sum;
carvana.dice.weight = w;  // w^2 in every Dice sum
carvana.dice.smooth_nr = 2;
carvana.dice.smooth_dr = 1;
segloss::BceDiceParts parts;  // the two terms, before their weights
auto c = segloss::bce_dice_value_and_grad(x, t, carvana, &parts);
    // clang-format on
    CHECK(std::isfinite(c.value));
    CHECK(std::isfinite(parts.bce));
    CHECK(std::isfinite(parts.dice));
  }
  std::vector<float> scores(static_cast<size_t>(n * classes * h * w));
  std::vector<int64_t> label_buf(static_cast<size_t>(n * h * w));
  for (size_t i = 0; i < scores.size(); ++i)
    scores[i] = static_cast<float>(std::cos(0.23 * static_cast<double>(i)));
  for (size_t i = 0; i < label_buf.size(); ++i)
    label_buf[i] = i % 11 == 0 ? 255 : static_cast<int64_t>(i % 4);  // 255: ignored pixels
  float* scores_ptr = scores.data();
  int64_t* labels_ptr = label_buf.data();
  segloss::Tensor<float> grad;
  // clang-format off
auto logits = segloss::Tensor<float>::view(scores_ptr, {n, classes, h, w});
auto labels = segloss::Tensor<int64_t>::view(labels_ptr, {n, h, w});
segloss::CrossEntropyOptions<float> ce;  // or CrossEntropyOptions<float>::pytorch_fcn()
ce.ignore_index = 255;
ce.label_smoothing = 0.1;
double loss = segloss::cross_entropy_value_and_grad(logits, labels, grad, ce);  // grad reused

segloss::CeDiceOptions<float> cd;  // cross-entropy + softmax Dice, returning both parts
cd.ce = ce;
cd.dice.ignore_index = 255;
segloss::CeDiceParts p;
loss = segloss::ce_dice_value_and_grad(logits, labels, grad, cd, &p);

segloss::ConfusionMatrixOptions co;  // metrics: fused argmax of the logits
co.ignore_index = 255;                // the matrix's default is -100, as the losses'
segloss::ConfusionMatrix cm(classes, co);
cm.update_from_logits(logits, labels);
auto fcn = segloss::label_accuracy_score(cm);  // pixel acc., mean class acc., mIoU, fwIoU
  // clang-format on
  CHECK(std::isfinite(loss));
  int64_t kept = 0;
  for (const int64_t y : label_buf) kept += y != 255;
  CHECK(cm.total() == kept);
  CHECK(fcn.pixel_accuracy >= 0.0);
}

TEST_CASE("readme: every C++ block of the README is in this file") {
  const std::string readme = std::string(SEGLOSS_GOLDEN_DIR) + "/../../README.md";
  std::ifstream doc(readme), self(__FILE__);
  REQUIRE_MESSAGE(doc.good(), "cannot open ", readme);
  REQUIRE_MESSAGE(self.good(), "cannot open ", __FILE__);
  const std::vector<std::string> source = segloss::testing::normalized_lines(self);
  bool unterminated = false;
  auto blocks = segloss::testing::cpp_blocks(doc, unterminated);
  REQUIRE_FALSE(unterminated);
  CHECK(blocks.size() == 4);
  for (auto& b : blocks) {
    // The quickstart block's #include line is at the top of this file.
    while (!b.empty() && b.front().rfind("#include", 0) == 0) b.erase(b.begin());
    REQUIRE(!b.empty());
    INFO("README block starting '", b.front(), "'");
    const bool found = segloss::testing::contains_block(source, b);
    CHECK_MESSAGE(found, "the README's block is not in tests/test_readme_snippets.cpp verbatim");
  }
}
