// Scores from a ConfusionMatrix (metrics/scores.hpp has the definitions). O(C^2) work on the
// counts, in double.
#include "scores.hpp"

#include <cmath>
#include <limits>

#include "../core/checks.hpp"
#include "../core/error.hpp"

namespace segloss {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// num / den, or the policy's value where den = 0 (then num = 0 as well: every score here is a
// ratio of non-negative counts whose numerator is at most its denominator's multiple).
double ratio(double num, double den, EmptyPolicy e) {
  if (den != 0.0) return num / den;
  return e == EmptyPolicy::one ? 1.0 : e == EmptyPolicy::zero ? 0.0 : kNaN;
}

void check_options(const char* fn, Score score, const ScoreOptions& o) {
  detail::check_enum(fn, "", "score", score, detail::kScoreNames);
  detail::check_enum(fn, "options.", "empty", o.empty, detail::kEmptyPolicyNames);
  SEGLOSS_CHECK(std::isfinite(o.beta) && o.beta >= 0.0, fn, "options.beta is ", o.beta,
                "; it must be finite and >= 0");
}

// The score of counts tp, fp, fn.
double score_of(Score s, double tp, double fp, double fn, const ScoreOptions& o) {
  switch (s) {
    case Score::iou:
      return ratio(tp, tp + fp + fn, o.empty);
    case Score::dice:
      return ratio(2 * tp, 2 * tp + fp + fn, o.empty);
    case Score::precision:
      return ratio(tp, tp + fp, o.empty);
    case Score::recall:
      return ratio(tp, tp + fn, o.empty);
    case Score::fbeta: {
      const double b2 = o.beta * o.beta;
      return ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, o.empty);
    }
  }
  return kNaN;
}

// The class that an ignore_index inside [0, C) names, or -1. Its truth pixels are never counted,
// so it is not scored: NaN in the per-class scores, and left out of every class mean whatever the
// policy (a prediction of it at a counted pixel stays an error of that pixel's true class).
int64_t ignored_class(const ConfusionMatrix& cm) {
  const int64_t k = cm.options().ignore_index;
  return k >= 0 && k < cm.num_classes() ? k : -1;
}

// Mean of `v` weighted by `w` (null: 1), over the values the policy keeps, but entry `left_out`
// (ignored_class, or -1).
double mean_of(const std::vector<double>& v, const std::vector<double>* w, EmptyPolicy e,
               int64_t left_out = -1) {
  double num = 0, den = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (static_cast<int64_t>(i) == left_out) continue;
    if (e == EmptyPolicy::skip && std::isnan(v[i])) continue;
    const double wi = w ? (*w)[i] : 1.0;
    num += wi * v[i];
    den += wi;
  }
  return den > 0 ? num / den : kNaN;
}

std::vector<double> to_double(const std::vector<int64_t>& v) {
  return std::vector<double>(v.begin(), v.end());
}

double trace(const ConfusionMatrix& cm) {
  double t = 0;
  for (int64_t c = 0; c < cm.num_classes(); ++c) t += static_cast<double>(cm.count(c, c));
  return t;
}

// The list of per-image matrices: not empty, and one class count.
void check_images(const char* fn, const std::vector<ConfusionMatrix>& images) {
  SEGLOSS_CHECK(!images.empty(), fn, "images is empty; there is nothing to score");
  for (size_t i = 0; i < images.size(); ++i)
    SEGLOSS_CHECK(images[i].num_classes() == images[0].num_classes(), fn, "images[", i, "] has ",
                  images[i].num_classes(), " classes; images[0] has ", images[0].num_classes());
}

ConfusionMatrix sum_of(const char* fn, const std::vector<ConfusionMatrix>& images) {
  check_images(fn, images);
  ConfusionMatrix total(images[0].num_classes(), images[0].options());
  for (const ConfusionMatrix& m : images) total.merge(m);
  return total;
}

}  // namespace

const char* score_name(Score s) {
  switch (s) {
    case Score::iou:
      return "iou";
    case Score::dice:
      return "dice";
    case Score::precision:
      return "precision";
    case Score::recall:
      return "recall";
    case Score::fbeta:
      return "fbeta";
  }
  return "?";
}

const char* average_name(Average a) {
  switch (a) {
    case Average::micro:
      return "micro";
    case Average::macro:
      return "macro";
    case Average::weighted:
      return "weighted";
    case Average::per_image:
      return "per_image";
  }
  return "?";
}

namespace {

// class_scores from margins already formed (label_accuracy_score forms them once for several).
std::vector<double> class_scores_of(const ConfusionMatrix& cm, const ConfusionMatrix::Margins& m,
                                    Score score, const ScoreOptions& options) {
  const int64_t C = cm.num_classes(), ignored = ignored_class(cm);
  std::vector<double> r(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double tp = static_cast<double>(cm.count(c, c));
    r[c] = c == ignored ? kNaN
                        : score_of(score, tp, static_cast<double>(m.pred_counts[c]) - tp,
                                   static_cast<double>(m.true_counts[c]) - tp, options);
  }
  return r;
}

}  // namespace

std::vector<double> class_scores(const ConfusionMatrix& cm, Score score,
                                 const ScoreOptions& options) {
  check_options("class_scores", score, options);
  return class_scores_of(cm, cm.margins(), score, options);
}

double average_score(const ConfusionMatrix& cm, Score score, Average average,
                     const ScoreOptions& options) {
  const char* fn = "average_score";
  check_options(fn, score, options);
  detail::check_enum(fn, "", "average", average, detail::kAverageNames);
  switch (average) {
    case Average::micro: {
      const double tp = trace(cm), miss = static_cast<double>(cm.total()) - tp;
      return score_of(score, tp, miss, miss, options);
    }
    case Average::macro:
      return mean_of(class_scores(cm, score, options), nullptr, options.empty, ignored_class(cm));
    case Average::weighted: {
      const ConfusionMatrix::Margins m = cm.margins();
      const std::vector<double> w = to_double(m.true_counts);
      return mean_of(class_scores_of(cm, m, score, options), &w, options.empty, ignored_class(cm));
    }
    case Average::per_image:
      break;
  }
  detail::fail(fn, "average per_image needs one matrix per image (confusion_per_image); ",
               "this overload has one matrix");
}

namespace {

// image_scores for `fn` (image_scores, or average_score per_image), whose name errors carry.
std::vector<double> image_scores_of(const char* fn, const std::vector<ConfusionMatrix>& images,
                                    Score score, const ScoreOptions& options) {
  check_images(fn, images);  // (not sum_of: a C^2 merge per image, only to check the list)
  std::vector<double> r;
  r.reserve(images.size());
  for (const ConfusionMatrix& m : images)
    r.push_back(mean_of(class_scores_of(m, m.margins(), score, options), nullptr, options.empty,
                        ignored_class(m)));
  return r;
}

}  // namespace

std::vector<double> image_scores(const std::vector<ConfusionMatrix>& images, Score score,
                                 const ScoreOptions& options) {
  const char* fn = "image_scores";
  check_options(fn, score, options);
  return image_scores_of(fn, images, score, options);
}

double average_score(const std::vector<ConfusionMatrix>& images, Score score, Average average,
                     const ScoreOptions& options) {
  const char* fn = "average_score";
  check_options(fn, score, options);
  detail::check_enum(fn, "", "average", average, detail::kAverageNames);
  if (average != Average::per_image)
    return average_score(sum_of(fn, images), score, average, options);
  return mean_of(image_scores_of(fn, images, score, options), nullptr, options.empty);
}

double pixel_accuracy(const ConfusionMatrix& cm) {
  return ratio(trace(cm), static_cast<double>(cm.total()), EmptyPolicy::skip);
}

double cohen_kappa(const ConfusionMatrix& cm, const ScoreOptions& options) {
  detail::check_enum("cohen_kappa", "options.", "empty", options.empty, detail::kEmptyPolicyNames);
  const ConfusionMatrix::Margins m = cm.margins();
  const std::vector<int64_t>&rows = m.true_counts, &cols = m.pred_counts;
  const double n = static_cast<double>(m.total), tr = trace(cm);
  double expected = 0, den = 0;  // sum_c support_c pred_c;  sum_c support_c (n - pred_c)
  for (size_t c = 0; c < rows.size(); ++c) {
    const double r = static_cast<double>(rows[c]), k = static_cast<double>(cols[c]);
    expected += r * k;
    den += r * (n - k);
  }
  return ratio(n * tr - expected, den, options.empty);
}

double matthews_corrcoef(const ConfusionMatrix& cm, const ScoreOptions& options) {
  detail::check_enum("matthews_corrcoef", "options.", "empty", options.empty,
                     detail::kEmptyPolicyNames);
  const ConfusionMatrix::Margins m = cm.margins();
  const std::vector<int64_t>&rows = m.true_counts, &cols = m.pred_counts;
  const double n = static_cast<double>(m.total), tr = trace(cm);
  double cross = 0, var_pred = 0, var_true = 0;
  for (size_t c = 0; c < rows.size(); ++c) {
    const double t = static_cast<double>(rows[c]), p = static_cast<double>(cols[c]);
    cross += p * t;
    var_pred += p * (n - p);
    var_true += t * (n - t);
  }
  return ratio(n * tr - cross, std::sqrt(var_pred) * std::sqrt(var_true), options.empty);
}

FcnScores label_accuracy_score(const ConfusionMatrix& cm) {
  FcnScores s;
  const ConfusionMatrix::Margins m = cm.margins();  // one checked pass for every score below
  const double n = static_cast<double>(m.total);
  s.pixel_accuracy = ratio(trace(cm), n, EmptyPolicy::skip);
  s.mean_class_accuracy = mean_of(class_scores_of(cm, m, Score::recall, {}), nullptr,
                                  EmptyPolicy::skip, ignored_class(cm));
  s.iou = class_scores_of(cm, m, Score::iou, {});
  s.mean_iou = mean_of(s.iou, nullptr, EmptyPolicy::skip, ignored_class(cm));
  // pytorch-fcn's sum of freq_c * iu_c over the classes with truth, in its order and rounding.
  // The ignored class (NaN IoU) is left out and its truth pixels with it, as in Average::weighted:
  // update never counts them, but from_counts or data() may (a histogram made elsewhere).
  const int64_t left_out = ignored_class(cm);
  const double kept = left_out < 0 ? n : n - static_cast<double>(m.true_counts[left_out]);
  for (size_t c = 0; c < m.true_counts.size(); ++c)
    if (m.true_counts[c] > 0 && static_cast<int64_t>(c) != left_out)
      s.fw_iou += static_cast<double>(m.true_counts[c]) / kept * s.iou[c];
  return s;
}

}  // namespace segloss
