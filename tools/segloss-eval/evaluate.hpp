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
// Surface distances (options.surface): per pair and per class c, HD95 and ASSD of the masks
// (pred == c) and (truth == c) (metrics/surface_distance.hpp: MONAI's border voxels, symmetric
// 95th percentile and mean of the joined distance lists, in pixels), with the truth's ignored
// pixels background in both masks. Per class, the mean over the images in which the class is
// in the truth or the prediction, in file-name order:
//   class in neither mask of an image: that image is skipped for the class (as IoU's 0/0);
//     a class skipped in every image has no value (NaN);
//   class in exactly one mask (missed, or predicted where absent): the image's diagonal
//     sqrt(H^2 + W^2) for both scores (SurfaceEmpty::bounded, the challenge convention; MONAI
//     gives +inf and a NaN HD95 there, which would drop a total miss from the mean), counted
//     in surface_one_empty;
//   a class equal to the ignore value has no value.
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
  std::string kind;     // missing, extra, unreadable, size, labels, error
  std::string file;     // the path at fault
  std::string message;  // one line, without the file name
};

struct EvalOptions {
  std::string pred_dir;
  std::string truth_dir;
  int64_t classes = 0;
  int64_t ignore = 255;  // a value no PNG holds (e.g. -1) scores every pixel
  int threads = 1;
  bool surface = false;  // also HD95 and ASSD per class (see above)
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
  // With options.surface, one entry per class (empty otherwise): the means over images
  // described above (NaN when no image scores the class), the images that score the class,
  // and those of them in which one mask is empty.
  std::vector<double> hd95, assd;
  std::vector<int64_t> surface_images, surface_one_empty;
};

// Throws std::runtime_error when a folder cannot be listed.
EvalResult evaluate(const EvalOptions& options);

}  // namespace segloss::tools
