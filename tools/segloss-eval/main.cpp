// segloss-eval: scores a folder of predicted label PNGs against a folder of ground-truth PNGs
// (docs/segloss-eval.md). This file holds the command line: options, help, progress, exit codes.
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <segloss/metrics/confusion_matrix.hpp>

#include "../common/cli.hpp"
#include "evaluate.hpp"
#include "report.hpp"

namespace {

using segloss::tools::EvalOptions;
using segloss::tools::EvalResult;

constexpr int kOk = 0, kFileProblems = 1, kUsage = 2, kOutOfMemory = 3;

const char* const kHelp = R"(Usage: segloss-eval PRED_DIR TRUTH_DIR --classes C [options]

Scores the predicted label maps in PRED_DIR against the ground truth in TRUTH_DIR. The *.png
files are paired by name: every one in TRUTH_DIR needs one of the same name in PRED_DIR, and
the other way round. Each pixel value is a label: 8- or 16-bit grayscale (also 1, 2, 4-bit),
or palette indices (the palette's colours are not used). RGB and gray+alpha PNGs are refused.

Options:
  --classes C    the number of classes; labels are 0 .. C-1 (required, 1 to 32768)
  --ignore V     the truth label whose pixels are not scored (default 255); 'none' scores
                 every pixel. Any other truth label >= C, or a predicted label >= C at a
                 scored pixel, is an error naming the file, the pixel and the value.
  --names FILE   class names, one per line (exactly C lines)
  --json         print the results as JSON on stdout instead of the table
  --surface      add HD95 and ASSD per class, in pixels: the mean over the images that
                 hold the class in the truth or the prediction; an image holding it in
                 only one of them scores its diagonal sqrt(H^2 + W^2)
  --threads N    files read in parallel (default: the number of CPUs)
  -h, --help     print this help and exit

Output: a per-class table (IoU, Dice, precision, recall, support), then pytorch-fcn's four
scores (pixel accuracy, mean class accuracy, mean IoU, frequency-weighted IoU) and the mean
Dice. '-' (null in JSON) marks an undefined score (0/0), left out of the means. A progress
bar is drawn on stderr when stderr is a terminal.

Exit status:
  0  the scores were printed
  1  a file problem: a missing or extra file, an unreadable one, a pair of different sizes,
     a label outside [0, C), or a pair that could not be counted (out of memory with a
     large C). Every problem is listed (on stderr; with --json, on stdout as JSON) and no
     score is printed.
  2  a usage error (bad option, folder that cannot be listed, bad --names file)
  3  out of memory for the confusion matrices (8 C^2 bytes each; try fewer --threads)
  4  stdout could not be written (a full disk, a closed descriptor)
)";

using segloss::tools::parse_int;
using segloss::tools::UsageError;

struct Options {
  EvalOptions eval;
  std::string names_file;
  bool json = false;
  bool help = false;
};

Options parse_args(int argc, char** argv) {
  Options o;
  unsigned cpus = std::thread::hardware_concurrency();
  o.eval.threads = cpus > 0 ? static_cast<int>(cpus) : 1;
  std::vector<std::string> positional;
  bool have_classes = false;
  segloss::tools::ArgReader args(argc, argv);
  while (args.next()) {
    const std::string& arg = args.arg();
    if (args.positional()) {
      positional.push_back(arg);
    } else if (arg == "-h" || arg == "--help") {
      args.no_value();
      o.help = true;
    } else if (arg == "--classes") {
      o.eval.classes = parse_int(arg, args.value(), 1, segloss::ConfusionMatrix::kMaxClasses);
      have_classes = true;
    } else if (arg == "--ignore") {
      const std::string v = args.value();
      o.eval.ignore = v == "none" ? -1 : parse_int(arg, v, -1, 65535);
    } else if (arg == "--names") {
      o.names_file = args.value();
      if (o.names_file.empty()) throw UsageError{"--names needs a file name; the value is empty"};
    } else if (arg == "--json") {
      args.no_value();
      o.json = true;
    } else if (arg == "--surface") {
      args.no_value();
      o.eval.surface = true;
    } else if (arg == "--threads") {
      o.eval.threads = static_cast<int>(parse_int(arg, args.value(), 1, 1024));
    } else {
      throw UsageError{"unknown option " + arg};
    }
  }
  if (o.help) return o;
  if (positional.size() != 2)
    throw UsageError{"expected PRED_DIR and TRUTH_DIR, got " + std::to_string(positional.size()) +
                     " argument" + (positional.size() == 1 ? "" : "s")};
  if (!have_classes) throw UsageError{"--classes C is required"};
  o.eval.pred_dir = positional[0];
  o.eval.truth_dir = positional[1];
  return o;
}

// One name a line; trailing spaces and a final empty line are dropped.
std::vector<std::string> read_names(const std::string& path, int64_t classes) {
  std::ifstream in(path);
  if (!in) throw UsageError{"--names " + path + " cannot be opened: " + std::strerror(errno)};
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i].empty())
      throw UsageError{"--names " + path + ": line " + std::to_string(i + 1) + " is empty"};
  if (static_cast<int64_t>(names.size()) != classes)
    throw UsageError{"--names " + path + " has " + std::to_string(names.size()) +
                     " names; --classes is " + std::to_string(classes)};
  return names;
}

// "\r 37/100 [###########-----------------] 2.1 s", redrawn in place.
class ProgressBar {
 public:
  void operator()(int64_t done, int64_t total) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    constexpr int kWidth = 30;
    const int filled = total > 0 ? static_cast<int>(kWidth * done / total) : kWidth;
    std::fprintf(stderr, "\r%lld/%lld [%s%s] %.1f s", static_cast<long long>(done),
                 static_cast<long long>(total), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '-').c_str(), s);
    if (done == total) std::fputs("\r\x1b[K", stderr);  // cleared once done
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int run(int argc, char** argv) {
  Options o;
  std::vector<std::string> names;
  try {
    o = parse_args(argc, argv);
    if (o.help) {
      std::fputs(kHelp, stdout);
      return segloss::tools::finish_output("segloss-eval", kOk);
    }
    if (!o.names_file.empty()) {
      names = read_names(o.names_file, o.eval.classes);
    } else {
      for (int64_t c = 0; c < o.eval.classes; ++c) names.push_back(std::to_string(c));
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "segloss-eval: %s\nTry 'segloss-eval --help'.\n", e.message.c_str());
    return kUsage;
  }

  ProgressBar bar;
  if (isatty(STDERR_FILENO)) o.eval.progress = std::ref(bar);
  EvalResult r;
  try {
    r = segloss::tools::evaluate(o.eval);
  } catch (const std::bad_alloc&) {  // the matrices themselves (a large --classes)
    const double gib = 8.0 * static_cast<double>(o.eval.classes) *
                       static_cast<double>(o.eval.classes) / 1073741824.0;
    std::fprintf(stderr,
                 "segloss-eval: out of memory: --classes %lld needs %.3g GiB per confusion "
                 "matrix, and a run holds one per worker plus the total; try fewer --threads\n",
                 static_cast<long long>(o.eval.classes), gib);
    return kOutOfMemory;
  } catch (const std::exception& e) {  // a folder that cannot be listed
    std::fprintf(stderr, "segloss-eval: %s\n", e.what());
    return kUsage;
  }
  if (r.other_files > 0)
    std::fprintf(stderr, "segloss-eval: note: %lld %s not .png files were not read\n",
                 static_cast<long long>(r.other_files),
                 r.other_files == 1 ? "entry that is" : "entries that are");
  if (r.images == 0 && r.problems.empty())
    r.problems.push_back({"missing", o.eval.truth_dir, "no PNG file in the truth folder"});
  if (!r.problems.empty()) {
    segloss::tools::print_problems(stderr, r.problems);
    if (o.json) segloss::tools::print_problems_json(stdout, r.problems);
    return segloss::tools::finish_output("segloss-eval", kFileProblems);
  }
  const segloss::tools::ReportInfo info{&r, names, o.eval.ignore};
  if (o.json)
    segloss::tools::print_json(stdout, info);
  else
    segloss::tools::print_table(stdout, info);
  return segloss::tools::finish_output("segloss-eval", kOk);
}

}  // namespace

int main(int argc, char** argv) {
  return run(argc, argv);
}
