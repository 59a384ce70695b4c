// @brief segloss-eval's output: the per-class table and summary scores as text, the same as
// JSON, and the list of problems.
//
// Scores (metrics/scores.hpp, default ScoreOptions: an undefined 0/0 score is NaN and left out
// of the means, as pytorch-fcn's nanmean):
//   per class: IoU, Dice, precision, recall (class_scores), support (pixels of the class in
//     the truth) and, in JSON, predicted (pixels predicted as the class);
//   pixel accuracy, mean class accuracy, mean IoU, frequency-weighted IoU: pytorch-fcn's
//     label_accuracy_score; mean Dice: the macro average of the per-class Dice.
//   with --surface (EvalResult::hd95 not empty): per class HD95 and ASSD (evaluate.hpp) and, in
//     JSON, surface_images and surface_one_empty; mean HD95 and mean ASSD: the means over the
//     classes that have a value.
// Text: 4 decimals, "-" for NaN. JSON: doubles with 17 significant digits (they read back
// exactly), null for NaN; "ignore" is null when no pixel value can equal it.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "evaluate.hpp"

namespace segloss::tools {

struct ReportInfo {
  const EvalResult* result = nullptr;
  std::vector<std::string> names;  // one per class
  int64_t ignore = 255;
};

void print_table(std::FILE* out, const ReportInfo& info);
void print_json(std::FILE* out, const ReportInfo& info);

// Text on `out` (one problem a line), or JSON {"ok": false, "problems": [...]}.
void print_problems(std::FILE* out, const std::vector<Problem>& problems);
void print_problems_json(std::FILE* out, const std::vector<Problem>& problems);

}  // namespace segloss::tools
