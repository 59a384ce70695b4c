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
  double mean_hd95 = std::nan(""), mean_assd = std::nan("");  // with --surface
};

// The mean of the values that are not NaN, in class order; NaN when there is none.
double nanmean(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (const double x : v)
    if (!std::isnan(x)) sum += x, ++n;
  return n > 0 ? sum / static_cast<double>(n) : std::nan("");
}

Scores compute(const EvalResult& r) {
  const ConfusionMatrix& cm = r.matrix;
  Scores s;
  s.iou = class_scores(cm, Score::iou);
  s.dice = class_scores(cm, Score::dice);
  s.precision = class_scores(cm, Score::precision);
  s.recall = class_scores(cm, Score::recall);
  s.support = cm.true_counts();
  s.predicted = cm.pred_counts();
  s.fcn = label_accuracy_score(cm);
  s.mean_dice = average_score(cm, Score::dice, Average::macro);
  s.mean_hd95 = nanmean(r.hd95);
  s.mean_assd = nanmean(r.assd);
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

// The length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no overlong form, no
// surrogate, nothing above U+10FFFF), or 0 when it is not one.
size_t utf8_length(const std::string& s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  size_t n = 0;
  unsigned lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return n;
}

// A JSON string. File names and --names lines are bytes: a byte that is not part of well-formed
// UTF-8 (a Latin-1 file name, say) is written as U+FFFD, so the output stays valid JSON.
void json_string(std::FILE* out, const std::string& s) {
  std::fputc('"', out);
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      std::fprintf(out, "\\%c", c);
      ++i;
    } else if (c < 0x20) {
      std::fprintf(out, "\\u%04x", c);
      ++i;
    } else if (c < 0x80) {
      std::fputc(c, out);
      ++i;
    } else if (const size_t n = utf8_length(s, i)) {
      std::fwrite(s.data() + i, 1, n, out);
      i += n;
    } else {
      std::fputs("\\ufffd", out);
      ++i;
    }
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
  const Scores s = compute(r);
  const int64_t C = r.matrix.num_classes();
  std::fprintf(out, "%" PRId64 " image pair%s, %" PRId64 " pixels: %" PRId64 " scored, %" PRId64,
               r.images, r.images == 1 ? "" : "s", r.pixels, r.counted, r.pixels - r.counted);
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
  const bool surface = !r.hd95.empty();
  std::fprintf(out, "%-*s %9s %9s %10s %9s %12s", w, "class", "IoU", "Dice", "Precision", "Recall",
               "Support");
  if (surface) std::fprintf(out, " %9s %9s", "HD95", "ASSD");
  std::fputc('\n', out);
  for (int64_t c = 0; c < C; ++c) {
    std::fprintf(out, "%-*s %9s %9s %10s %9s %12" PRId64, w, label[c].c_str(),
                 fixed(s.iou[c]).c_str(), fixed(s.dice[c]).c_str(), fixed(s.precision[c]).c_str(),
                 fixed(s.recall[c]).c_str(), s.support[c]);
    if (surface) std::fprintf(out, " %9s %9s", fixed(r.hd95[c]).c_str(), fixed(r.assd[c]).c_str());
    std::fputc('\n', out);
  }
  std::fprintf(out, "('-': undefined, 0/0, or the ignored class; left out of the means)\n");
  if (surface)
    std::fprintf(out,
                 "(HD95, ASSD: pixels, mean over the images holding the class in truth or "
                 "prediction;\n a class in only one of them scores the image diagonal)\n");
  std::fputc('\n', out);
  std::fprintf(out, "Pixel accuracy          %s\n", fixed(s.fcn.pixel_accuracy).c_str());
  std::fprintf(out, "Mean class accuracy     %s\n", fixed(s.fcn.mean_class_accuracy).c_str());
  std::fprintf(out, "Mean IoU                %s\n", fixed(s.fcn.mean_iou).c_str());
  std::fprintf(out, "Frequency-weighted IoU  %s\n", fixed(s.fcn.fw_iou).c_str());
  std::fprintf(out, "Mean Dice               %s\n", fixed(s.mean_dice).c_str());
  if (surface) {
    std::fprintf(out, "Mean HD95               %s\n", fixed(s.mean_hd95).c_str());
    std::fprintf(out, "Mean ASSD               %s\n", fixed(s.mean_assd).c_str());
  }
}

void print_json(std::FILE* out, const ReportInfo& info) {
  const EvalResult& r = *info.result;
  const Scores s = compute(r);
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
  const bool surface = !r.hd95.empty();
  const std::pair<const char*, double> summary[] = {
      {"pixel_accuracy", s.fcn.pixel_accuracy},
      {"mean_class_accuracy", s.fcn.mean_class_accuracy},
      {"mean_iou", s.fcn.mean_iou},
      {"fw_iou", s.fcn.fw_iou},
      {"mean_dice", s.mean_dice},
      {"mean_hd95", s.mean_hd95},
      {"mean_assd", s.mean_assd}};
  for (const auto& [key, v] : summary) {
    const std::string k = key;
    if (!surface && (k == "mean_hd95" || k == "mean_assd")) continue;
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
    std::fprintf(out, ", \"support\": %" PRId64 ", \"predicted\": %" PRId64, s.support[c],
                 s.predicted[c]);
    if (surface) {
      std::fputs(", \"hd95\": ", out);
      json_number(out, r.hd95[c]);
      std::fputs(", \"assd\": ", out);
      json_number(out, r.assd[c]);
      std::fprintf(out, ", \"surface_images\": %" PRId64 ", \"surface_one_empty\": %" PRId64,
                   r.surface_images[c], r.surface_one_empty[c]);
    }
    std::fprintf(out, "}%s\n", c + 1 < C ? "," : "");
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
