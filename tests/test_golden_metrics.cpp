// Golden tests for ConfusionMatrix and the scores: segloss against numpy references.
//
// tests/golden/metrics.txt is written by tests/golden/generate_metrics.py (see
// tests/golden/README.md, section "metrics"): pytorch-fcn's _fast_hist and label_accuracy_score
// run verbatim, and textbook per-class, averaged, per-image, kappa and MCC scores computed from the
// raw labels in numpy. For every case this checks
//   the counts (exactly) from update(pred, target) with int32 and int64 labels, from per-image
//   updates, and, for logits cases, from update_from_logits in double and float;
//   label_accuracy_score against pytorch-fcn's four numbers; pixel accuracy; the per-class
//   scores; micro/macro/weighted averages under the four empty policies; kappa and MCC under
//   the four policies; each image's macro score and the per-image average, from
//   confusion_per_image (or its logits form),
// with NaN where numpy has NaN and otherwise |segloss - numpy| <= 1e-12 |numpy| + 1e-15.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

constexpr EmptyPolicy kPolicies[] = {EmptyPolicy::skip, EmptyPolicy::formula, EmptyPolicy::one,
                                     EmptyPolicy::zero};
constexpr Average kAverages[] = {Average::micro, Average::macro, Average::weighted};
constexpr Score kScores[] = {Score::iou, Score::dice, Score::precision, Score::recall,
                             Score::fbeta};

// Scores come from integer counts through a few divisions: numpy and segloss agree to a few ulp.
void check_number(const std::string& what, double actual, double golden) {
  std::ostringstream msg;
  msg.precision(17);
  msg << what << ": segloss " << actual << ", numpy " << golden;
  if (std::isnan(golden)) {
    CHECK_MESSAGE(std::isnan(actual), msg.str());
    return;
  }
  CHECK_MESSAGE(std::abs(actual - golden) <= 1e-12 * std::abs(golden) + 1e-15, msg.str());
}

void check_numbers(const std::string& what, const std::vector<double>& actual,
                   const std::vector<double>& golden) {
  REQUIRE_MESSAGE(actual.size() == golden.size(), what, ": ", actual.size(), " values, numpy has ",
                  golden.size());
  for (size_t i = 0; i < actual.size(); ++i)
    check_number(what + "[" + std::to_string(i) + "]", actual[i], golden[i]);
}

std::vector<int64_t> golden_counts(const GoldenCase& c) {
  std::vector<int64_t> h;
  for (double v : c.tensor("hist").values) h.push_back(static_cast<int64_t>(v));
  return h;
}

ConfusionMatrixOptions make_options(const GoldenCase& c) {
  ConfusionMatrixOptions o;
  o.ignore_index = parse_signed(c.option("ignore_index"));
  const std::string r = c.option("out_of_range");
  REQUIRE_MESSAGE((r == "error" || r == "drop"), "bad out_of_range '", r, "'");
  o.out_of_range = r == "drop" ? OutOfRange::drop : OutOfRange::error;
  return o;
}

// Counts from labels of types P and L: one batch update, and one update per image.
template <class P, class L>
void check_counts(const GoldenCase& c, int64_t classes, const ConfusionMatrixOptions& o) {
  const auto pred = to_labels<P>(c.tensor("pred"));
  const auto target = to_labels<L>(c.tensor("target"));
  ConfusionMatrix m(classes, o);
  m.update(pred, target);
  CHECK(m.counts() == golden_counts(c));
  ConfusionMatrix streamed(classes, o);
  const int64_t n = target.size(0), px = target.shape().numel_from(1);
  const Shape image = target.shape().without(0);
  for (int64_t i = 0; i < n; ++i)
    streamed.update(Tensor<P>::view(pred.data() + i * px, image),
                    Tensor<L>::view(target.data() + i * px, image));
  CHECK(streamed.counts() == golden_counts(c));
}

template <class T, class L>
void check_logit_counts(const GoldenCase& c, int64_t classes, const ConfusionMatrixOptions& o) {
  ConfusionMatrix m(classes, o);
  m.update_from_logits(to_tensor<T>(c.tensor("logits")), to_labels<L>(c.tensor("target")));
  CHECK(m.counts() == golden_counts(c));
}

void check_scores(const GoldenCase& c, const ConfusionMatrix& m,
                  const std::vector<ConfusionMatrix>& images) {
  const double beta = parse_double(c.option("beta"));
  const FcnScores fcn = label_accuracy_score(m);
  const auto& g = c.tensor("fcn").values;
  check_number("fcn acc", fcn.pixel_accuracy, g.at(0));
  check_number("fcn acc_cls", fcn.mean_class_accuracy, g.at(1));
  check_number("fcn mean_iu", fcn.mean_iou, g.at(2));
  check_number("fcn fwavacc", fcn.fw_iou, g.at(3));
  check_numbers("fcn iu", fcn.iou, c.tensor("class.iou").values);
  check_number("pixel_accuracy", pixel_accuracy(m), c.tensor("pixel_accuracy").values.at(0));

  for (Score s : kScores) {
    const std::string name = score_name(s);
    ScoreOptions o;
    o.beta = beta;
    check_numbers("class." + name, class_scores(m, s, o), c.tensor("class." + name).values);
    const auto& avg = c.tensor("avg." + name).values;        // (policy, average)
    const auto& per_img = c.tensor("image." + name).values;  // (policy, image)
    const auto& per_image = c.tensor("per_image." + name).values;
    for (int pi = 0; pi < 4; ++pi) {
      o.empty = kPolicies[pi];
      const std::string tag = name + " " + empty_policy_name(o.empty);
      for (int ai = 0; ai < 3; ++ai) {
        check_number("avg " + tag + " " + average_name(kAverages[ai]),
                     average_score(m, s, kAverages[ai], o), avg.at(pi * 3 + ai));
        // The list overload sums the images first: the same numbers.
        check_number("avg (list) " + tag + " " + average_name(kAverages[ai]),
                     average_score(images, s, kAverages[ai], o), avg.at(pi * 3 + ai));
      }
      const std::vector<double> mine = image_scores(images, s, o);
      const std::vector<double> want(per_img.begin() + pi * static_cast<long>(images.size()),
                                     per_img.begin() + (pi + 1) * static_cast<long>(images.size()));
      check_numbers("image " + tag, mine, want);
      check_number("per_image " + tag, average_score(images, s, Average::per_image, o),
                   per_image.at(pi));
    }
  }
  for (int pi = 0; pi < 4; ++pi) {
    ScoreOptions o;
    o.empty = kPolicies[pi];
    check_number(std::string("kappa ") + empty_policy_name(o.empty), cohen_kappa(m, o),
                 c.tensor("kappa").values.at(pi));
    check_number(std::string("mcc ") + empty_policy_name(o.empty), matthews_corrcoef(m, o),
                 c.tensor("mcc").values.at(pi));
  }
}

void run_case(const GoldenCase& c) {
  const int64_t classes = parse_count(c.option("num_classes"));
  const ConfusionMatrixOptions o = make_options(c);
  const bool logits = c.option("source") == "logits";
  {
    INFO("pred int32, target int64");
    check_counts<int32_t, int64_t>(c, classes, o);
  }
  {
    INFO("pred int64, target int32");
    check_counts<int64_t, int32_t>(c, classes, o);
  }
  check_counts<int64_t, int64_t>(c, classes, o);
  check_counts<int32_t, int32_t>(c, classes, o);
  if (logits) {
    check_logit_counts<double, int64_t>(c, classes, o);
    check_logit_counts<float, int32_t>(c, classes, o);
  }
  ConfusionMatrix m(classes, o);
  m.update(to_labels<int64_t>(c.tensor("pred")), to_labels<int64_t>(c.tensor("target")));
  const auto images =
      logits ? confusion_per_image_from_logits(to_tensor<double>(c.tensor("logits")),
                                               to_labels<int64_t>(c.tensor("target")), o)
             : confusion_per_image(to_labels<int64_t>(c.tensor("pred")),
                                   to_labels<int64_t>(c.tensor("target")), classes, o);
  check_scores(c, m, images);
}

// The generator writes 27 cases (20 from labels, 7 from logits); fewer means a broken file.
constexpr size_t kMinCases = 27;
constexpr size_t kMinLogitCases = 7;

GoldenFile require_golden() {
  GoldenFile f = load_golden("metrics.txt", "generate_metrics.py");
  INFO("golden file ", f.path);
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  REQUIRE_MESSAGE(!f.numpy_version.empty(), "metrics.txt has no numpy version line");
  REQUIRE_MESSAGE(f.cases.size() >= kMinCases, "only ", f.cases.size(),
                  " cases, expected >= ", kMinCases);
  size_t logit_cases = 0;
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name);
    REQUIRE(c.loss == "confusion_matrix");
    for (const char* key : {"pred", "target", "hist", "fcn", "kappa", "mcc", "pixel_accuracy"})
      REQUIRE_MESSAGE(c.has(key), "missing tensor ", key);
    if (c.option("source") == "logits") {
      REQUIRE(c.has("logits"));
      ++logit_cases;
    }
  }
  REQUIRE_MESSAGE(logit_cases >= kMinLogitCases, logit_cases,
                  " logits cases, expected >= ", kMinLogitCases);
  return f;
}

}  // namespace

TEST_CASE("golden: confusion_matrix and scores match numpy and pytorch-fcn") {
  const GoldenFile f = require_golden();
  MESSAGE("metrics.txt: ", f.cases.size(), " cases from numpy ", f.numpy_version);
  for (const GoldenCase& c : f.cases) {
    INFO("case ", c.name, " (", f.path, ")");
    run_case(c);
  }
}

TEST_CASE("golden: confusion_matrix cases cover the edge cases") {
  // C = 1, 2, 21 and 150; every pixel ignored; an image with no counted pixel; a class absent
  // from truth and prediction; ignore_index inside [0, C); the drop policy with labels -1 and 255;
  // ties and NaN among logits; 1-D and 3-D label maps; a 1x1 image.
  const GoldenFile f = require_golden();
  int c1 = 0, c2 = 0, c21 = 0, c150 = 0, all_ignored = 0, empty_class = 0, ignore_in_range = 0,
      drop = 0, nan_logits = 0, ties = 0, rank2 = 0, rank4 = 0, one_pixel = 0, empty_image = 0;
  for (const GoldenCase& c : f.cases) {
    const int64_t classes = parse_count(c.option("num_classes"));
    const int64_t ignore = parse_signed(c.option("ignore_index"));
    c1 += classes == 1;
    c2 += classes == 2;
    c21 += classes == 21;
    c150 += classes == 150;
    const auto& hist = c.tensor("hist").values;
    double total = 0;
    for (double v : hist) total += v;
    all_ignored += total == 0;
    for (double v : c.tensor("class.iou").values) empty_class += std::isnan(v) ? 1 : 0;
    ignore_in_range += ignore >= 0 && ignore < classes;
    drop += c.option("out_of_range") == "drop";
    rank2 += c.shape.size() == 2;
    rank4 += c.shape.size() == 4;
    const auto& t = c.tensor("target");
    one_pixel += t.values.size() == 1;
    for (double v : c.tensor("image.iou").values) empty_image += std::isnan(v) ? 1 : 0;
    if (c.has("logits")) {
      const auto& x = c.tensor("logits").values;
      for (double v : x) nan_logits += std::isnan(v) ? 1 : 0;
      ties += c.name.find("ties") != std::string::npos;
    }
  }
  CHECK(c1 >= 2);
  CHECK(c2 >= 1);
  CHECK(c21 >= 2);
  CHECK(c150 >= 1);
  CHECK(all_ignored >= 1);
  CHECK(empty_class >= 3);
  CHECK(ignore_in_range >= 2);
  CHECK(drop >= 3);
  CHECK(nan_logits >= 4);
  CHECK(ties >= 1);
  CHECK(rank2 >= 2);
  CHECK(rank4 >= 1);
  CHECK(one_pixel >= 1);
  CHECK(empty_image >= 2);
}
