// @brief segloss-eval's work: pair the PNGs of two folders by file name, read each pair, count
// it into a ConfusionMatrix, and collect every problem met on the way.
//
// Pairing: the entries whose name ends in ".png" (any case) in each folder, but folders; a
// truth file is paired with the prediction of exactly the same name. Other entries (files with
// another extension, sub-folders) are not read and are counted in other_files.
//
// Problems, each naming a file (the path at fault; for a missing prediction, the path where
// it was expected):
//   missing     a truth PNG with no prediction of the same name
//   extra       a prediction PNG with no truth of the same name
//   unreadable  a file that cannot be opened or decoded, or is not grayscale/palette
//   size        a pair whose images differ in height or width
//   labels      a truth label outside [0, C) that is not the ignore value, or a predicted label
//               outside [0, C) at a scored pixel: the first such pixel in row-major order
//               (row, column), its value, and how many pixels of the file are bad.
//               ConfusionMatrix's default policy (OutOfRange::error) finds them.
// A pair with a problem adds nothing to the matrix. Every pair is read even after a problem,
// so that one run lists them all.
//
// Threads: the pairs are shared among `threads` workers (each reads and counts its pairs into
// its own matrix; the matrices are added at the end: integer counts, so the result does not
// depend on the thread count). Each worker needs about 16 C^2 bytes; fewer workers run when
// that would pass 4 GiB in all.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <segloss/metrics/confusion_matrix.hpp>

namespace segloss::tools {

struct Problem {
  std::string kind;     // missing, extra, unreadable, size, labels
  std::string file;     // the path at fault
  std::string message;  // one line, without the file name
};

struct EvalOptions {
  std::string pred_dir;
  std::string truth_dir;
  int64_t classes = 0;
  int64_t ignore = 255;  // a value no PNG holds (e.g. -1) scores every pixel
  int threads = 1;
  // Called from the calling thread with (pairs done, pairs in all), at most about every 0.1 s
  // and once at the end; may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct EvalResult {
  ConfusionMatrix matrix{1};
  int64_t images = 0;       // pairs scored
  int64_t pixels = 0;       // their pixels
  int64_t counted = 0;      // pixels in the matrix (the others have the ignore value in truth)
  int64_t other_files = 0;  // entries of the two folders that are not PNG files
  std::vector<Problem> problems;  // in file-name order; empty when all went well
};

// Throws std::runtime_error when a folder cannot be listed.
EvalResult evaluate(const EvalOptions& options);

}  // namespace segloss::tools
