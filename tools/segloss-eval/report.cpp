// Text and JSON output of segloss-eval (contract in report.hpp).
#include "report.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>

#include <segloss/metrics/scores.hpp>

namespace segloss::tools {
namespace {

struct Scores {
  std::vector<double> iou, dice, precision, recall;
  std::vector<int64_t> support, predicted;
  FcnScores fcn;
  double mean_dice = 0;
};

Scores compute(const ConfusionMatrix& cm) {
  Scores s;
  s.iou = class_scores(cm, Score::iou);
  s.dice = class_scores(cm, Score::dice);
  s.precision = class_scores(cm, Score::precision);
  s.recall = class_scores(cm, Score::recall);
  s.support = cm.true_counts();
  s.predicted = cm.pred_counts();
  s.fcn = label_accuracy_score(cm);
  s.mean_dice = average_score(cm, Score::dice, Average::macro);
  return s;
}

// PNG pixels hold 0 .. 65535: any other ignore value ignores nothing.
bool ignore_possible(int64_t ignore) {
  return ignore >= 0 && ignore <= 65535;
}

std::string fixed(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

void json_string(std::FILE* out, const std::string& s) {
  std::fputc('"', out);
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\')
      std::fprintf(out, "\\%c", c);
    else if (c < 0x20)
      std::fprintf(out, "\\u%04x", c);
    else
      std::fputc(c, out);
  }
  std::fputc('"', out);
}

void json_number(std::FILE* out, double v) {
  if (std::isfinite(v))
    std::fprintf(out, "%.17g", v);
  else
    std::fputs("null", out);  // NaN (undefined); the scores are never infinite
}

}  // namespace

void print_table(std::FILE* out, const ReportInfo& info) {
  const EvalResult& r = *info.result;
  const Scores s = compute(r.matrix);
  const int64_t C = r.matrix.num_classes();
  std::fprintf(out, "%" PRId64 " image pairs, %" PRId64 " pixels: %" PRId64 " scored, %" PRId64,
               r.images, r.pixels, r.counted, r.pixels - r.counted);
  if (ignore_possible(info.ignore))
    std::fprintf(out, " ignored (truth %" PRId64 ")\n\n", info.ignore);
  else
    std::fprintf(out, " ignored\n\n");

  std::vector<std::string> label(static_cast<size_t>(C));
  size_t width = 5;  // "class"
  for (int64_t c = 0; c < C; ++c) {
    label[c] = std::to_string(c);
    if (info.names[c] != label[c]) label[c] += " " + info.names[c];
    width = std::max(width, label[c].size());
  }
  const int w = static_cast<int>(width);
  std::fprintf(out, "%-*s %9s %9s %10s %9s %12s\n", w, "class", "IoU", "Dice", "Precision",
               "Recall", "Support");
  for (int64_t c = 0; c < C; ++c)
    std::fprintf(out, "%-*s %9s %9s %10s %9s %12" PRId64 "\n", w, label[c].c_str(),
                 fixed(s.iou[c]).c_str(), fixed(s.dice[c]).c_str(), fixed(s.precision[c]).c_str(),
                 fixed(s.recall[c]).c_str(), s.support[c]);
  std::fprintf(out, "('-': undefined, 0/0; left out of the means)\n\n");
  std::fprintf(out, "Pixel accuracy          %s\n", fixed(s.fcn.pixel_accuracy).c_str());
  std::fprintf(out, "Mean class accuracy     %s\n", fixed(s.fcn.mean_class_accuracy).c_str());
  std::fprintf(out, "Mean IoU                %s\n", fixed(s.fcn.mean_iou).c_str());
  std::fprintf(out, "Frequency-weighted IoU  %s\n", fixed(s.fcn.fw_iou).c_str());
  std::fprintf(out, "Mean Dice               %s\n", fixed(s.mean_dice).c_str());
}

void print_json(std::FILE* out, const ReportInfo& info) {
  const EvalResult& r = *info.result;
  const Scores s = compute(r.matrix);
  const int64_t C = r.matrix.num_classes();
  std::fprintf(out,
               "{\n  \"ok\": true,\n  \"images\": %" PRId64 ",\n  \"classes\": %" PRId64
               ",\n  \"ignore\": ",
               r.images, C);
  if (ignore_possible(info.ignore))
    std::fprintf(out, "%" PRId64, info.ignore);
  else
    std::fputs("null", out);
  std::fprintf(out,
               ",\n  \"pixels\": %" PRId64 ",\n  \"scored\": %" PRId64 ",\n  \"ignored\": %" PRId64
               ",\n",
               r.pixels, r.counted, r.pixels - r.counted);
  const std::pair<const char*, double> summary[] = {
      {"pixel_accuracy", s.fcn.pixel_accuracy},
      {"mean_class_accuracy", s.fcn.mean_class_accuracy},
      {"mean_iou", s.fcn.mean_iou},
      {"fw_iou", s.fcn.fw_iou},
      {"mean_dice", s.mean_dice}};
  for (const auto& [key, v] : summary) {
    std::fprintf(out, "  \"%s\": ", key);
    json_number(out, v);
    std::fputs(",\n", out);
  }
  std::fputs("  \"per_class\": [\n", out);
  for (int64_t c = 0; c < C; ++c) {
    std::fprintf(out, "    {\"class\": %" PRId64 ", \"name\": ", c);
    json_string(out, info.names[c]);
    const std::pair<const char*, double> per[] = {{"iou", s.iou[c]},
                                                  {"dice", s.dice[c]},
                                                  {"precision", s.precision[c]},
                                                  {"recall", s.recall[c]}};
    for (const auto& [key, v] : per) {
      std::fprintf(out, ", \"%s\": ", key);
      json_number(out, v);
    }
    std::fprintf(out, ", \"support\": %" PRId64 ", \"predicted\": %" PRId64 "}%s\n", s.support[c],
                 s.predicted[c], c + 1 < C ? "," : "");
  }
  std::fputs("  ]\n}\n", out);
}

void print_problems(std::FILE* out, const std::vector<Problem>& problems) {
  std::fprintf(out, "segloss-eval: %zu problem%s; no scores were computed:\n", problems.size(),
               problems.size() == 1 ? "" : "s");
  for (const Problem& p : problems)
    std::fprintf(out, "  %-10s %s: %s\n", p.kind.c_str(), p.file.c_str(), p.message.c_str());
}

void print_problems_json(std::FILE* out, const std::vector<Problem>& problems) {
  std::fputs("{\n  \"ok\": false,\n  \"problems\": [\n", out);
  for (size_t i = 0; i < problems.size(); ++i) {
    std::fputs("    {\"kind\": ", out);
    json_string(out, problems[i].kind);
    std::fputs(", \"file\": ", out);
    json_string(out, problems[i].file);
    std::fputs(", \"message\": ", out);
    json_string(out, problems[i].message);
    std::fprintf(out, "}%s\n", i + 1 < problems.size() ? "," : "");
  }
  std::fputs("  ]\n}\n", out);
}

}  // namespace segloss::tools
