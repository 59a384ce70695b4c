// The opt-in large-tensor test (ctest label "large"): index arithmetic beyond 2^31 elements.
// Runs bce_with_logits (forward, sum and mean) and the confusion matrix on one plane of
// 2^31 + 1 elements. Needs about 9 GB of memory (one 4-byte buffer of 2^31 + 1 elements at a
// time: float logits that are also the target, then int32 labels that are also the prediction), so
// it runs only with SEGLOSS_LARGE_TESTS=1:
//   SEGLOSS_LARGE_TESTS=1 ctest -L large --output-on-failure
// Without it the test reports itself skipped (exit code 77).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  const char* on = std::getenv("SEGLOSS_LARGE_TESTS");
  if (!on || std::string(on) != "1") {
    std::printf("skipped: set SEGLOSS_LARGE_TESTS=1 to run (needs about 9 GB)\n");
    return 77;
  }
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t n = (int64_t(1) << 31) + 1;
  try {
    // bce_with_logits with the target a view of the same memory as the logits: z = x. Every
    // element is 0 (loss log 2), except markers on both sides of 2^31 that a wrapped or
    // truncated index would miss:
    //   x = z = +1e4 at 2^31 - 1: max(x, 0) - x z + log1p(e^-|x|) = 1e4 - 1e8
    //   x = z = -1e4 at 2^31:     0 - 1e8 + 0                       = -1e8
    {
      std::unique_ptr<float[]> buffer(new float[static_cast<size_t>(n)]);
      float* x = buffer.get();
      for (int64_t i = 0; i < n; ++i) x[i] = 0.f;
      x[n - 2] = 1e4f;
      x[n - 1] = -1e4f;
      const auto logits = Tensor<float>::view(x, {1, 1, n});
      BceWithLogitsOptions<float> sum;
      sum.reduction = Reduction::sum;
      auto t0 = std::chrono::steady_clock::now();
      const double v = bce_with_logits(logits, logits, sum)[0];
      const double expected = static_cast<double>(n - 2) * std::log(2.0) + (1e4 - 1e8) - 1e8;
      std::printf("bce_with_logits sum over %lld elements: %.10g (expected %.10g), %.2f s\n",
                  static_cast<long long>(n), v, expected, seconds_since(t0));
      expect(std::fabs(v - expected) <= 1e-6 * std::fabs(expected), "bce_with_logits sum");
      const double m = bce_with_logits(logits, logits)[0];
      expect(std::fabs(m - expected / static_cast<double>(n)) <= 1e-6 * std::fabs(m),
             "bce_with_logits mean divides by 2^31 + 1");
    }
    // Confusion matrix, 3 classes: label i % 3, then class 2 at the last element; prediction
    // and truth are the same view, so every count is on the diagonal.
    {
      std::unique_ptr<int32_t[]> buffer(new int32_t[static_cast<size_t>(n)]);
      int32_t* l = buffer.get();
      for (int64_t i = 0; i < n; ++i) l[i] = static_cast<int32_t>(i % 3);
      l[n - 1] = 2;
      const auto labels = Tensor<int32_t>::view(l, {1, n});
      ConfusionMatrix cm(3);
      auto t0 = std::chrono::steady_clock::now();
      cm.update(labels, labels);
      std::printf("confusion matrix over %lld pixels: %.2f s\n", static_cast<long long>(n),
                  seconds_since(t0));
      // n - 1 = 2^31 elements labelled i % 3, then one more of class 2.
      const int64_t m = n - 1, c0 = (m + 2) / 3, c1 = (m + 1) / 3, c2 = m / 3 + 1;
      expect(cm.total() == n, "confusion matrix total is 2^31 + 1");
      expect(cm.count(0, 0) == c0 && cm.count(1, 1) == c1 && cm.count(2, 2) == c2,
             "confusion matrix diagonal counts");
      expect(cm.count(0, 1) + cm.count(1, 2) + cm.count(2, 0) == 0, "nothing off the diagonal");
      // An out-of-range label past 2^31 is reported at its own index.
      l[n - 1] = 7;
      std::string message;
      try {
        cm.update(labels, labels);
      } catch (const Error& e) {
        message = e.what();
      }
      std::printf("error: %s\n", message.c_str());
      expect(message.find("2147483648") != std::string::npos, "the bad label's position is 2^31");
    }
  } catch (const std::exception& e) {
    std::printf("FAIL: exception %s\n", e.what());
    return 1;
  }
  std::printf("large: %d failure(s), %.1f s in all\n", failures, seconds_since(t_start));
  return failures == 0 ? 0 : 1;
}
