// Pairing, reading and counting for segloss-eval (contract in evaluate.hpp).
#include "evaluate.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#include <segloss/core/threads.hpp>
#include <segloss/metrics/surface_distance.hpp>

#include "png_io.hpp"

namespace segloss::tools {
namespace fs = std::filesystem;
namespace {

bool is_png_name(const std::string& name) {
  if (name.size() < 4) return false;
  std::string ext = name.substr(name.size() - 4);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

// The sorted names of the PNG files of `dir`; other entries are counted in `others`.
std::vector<std::string> list_pngs(const std::string& dir, int64_t& others) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot be listed: " + ec.message());
  for (const fs::directory_entry& e : it) {
    const std::string name = e.path().filename().string();
    // A broken link named *.png is listed, and then reported as unreadable.
    if (is_png_name(name) && !e.is_directory(ec))
      names.push_back(name);
    else
      ++others;
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string path_in(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// ConfusionMatrix::update refused the pair: find the first bad label of each file again, in
// the tool's words (the library's message speaks of its own arguments).
void label_problems(const EvalOptions& o, const std::string& name, const LabelImage& pred,
                    const LabelImage& truth, const std::string& library_message,
                    std::vector<Problem>& out) {
  const int64_t n = truth.height * truth.width, C = o.classes;
  int64_t bad_truth = 0, bad_pred = 0, first_truth = -1, first_pred = -1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = truth.labels[i], p = pred.labels[i];
    if (t == o.ignore) continue;
    if (t < 0 || t >= C) {
      if (bad_truth++ == 0) first_truth = i;
    } else if (p < 0 || p >= C) {
      if (bad_pred++ == 0) first_pred = i;
    }
  }
  const auto where = [&](int64_t i) {
    return "at row " + std::to_string(i / truth.width) + ", column " +
           std::to_string(i % truth.width);
  };
  const auto count = [](int64_t k) {
    return k == 1 ? std::string(" (1 such pixel)") : " (" + std::to_string(k) + " such pixels)";
  };
  const std::string range = "outside [0, " + std::to_string(C) + ")";
  if (first_truth >= 0)
    out.push_back({"labels", path_in(o.truth_dir, name),
                   "label " + std::to_string(truth.labels[first_truth]) + " " + where(first_truth) +
                       " is " + range +
                       (o.ignore >= 0 ? " and is not the ignore value " + std::to_string(o.ignore)
                                      : std::string(" (no value is ignored)")) +
                       count(bad_truth)});
  if (first_pred >= 0)
    out.push_back({"labels", path_in(o.pred_dir, name),
                   "label " + std::to_string(pred.labels[first_pred]) + " " + where(first_pred) +
                       " (truth " + std::to_string(truth.labels[first_pred]) + ") is " + range +
                       count(bad_pred)});
  if (first_truth < 0 && first_pred < 0)
    out.push_back({"labels", path_in(o.truth_dir, name), library_message});
}

// Per class of one pair, with options.surface: 0 skipped (the class in neither mask or the
// ignore value), 1 scored, 2 scored with one mask empty.
struct PairOutcome {
  std::vector<Problem> problems;
  int64_t pixels = 0;
  std::vector<double> hd95, assd;
  std::vector<uint8_t> surface_state;
};

// HD95 and ASSD of every class of one pair that passed the label checks.
void surface_pair(const EvalOptions& o, const LabelImage& pred, const LabelImage& truth,
                  PairOutcome& out) {
  const int64_t C = o.classes;
  std::vector<int64_t> classes;  // every class but the ignore value
  for (int64_t c = 0; c < C; ++c)
    if (c != o.ignore) classes.push_back(c);
  out.hd95.assign(static_cast<size_t>(C), std::nan(""));
  out.assd.assign(static_cast<size_t>(C), std::nan(""));
  out.surface_state.assign(static_cast<size_t>(C), 0);
  if (classes.empty()) return;
  SurfaceDistanceOptions so;
  so.empty = SurfaceEmpty::bounded;  // one empty mask: the diagonal; both: skipped below
  // PNG labels are >= 0, so -100 (the default) never matches under --ignore none.
  if (o.ignore >= 0) so.ignore_index = o.ignore;
  const Shape shape{1, truth.height, truth.width};
  const SurfaceDistanceResult r =
      surface_distance_labels(Tensor<int32_t>::view(pred.labels.data(), shape),
                              Tensor<int32_t>::view(truth.labels.data(), shape), classes, so);
  for (size_t k = 0; k < classes.size(); ++k) {
    const size_t c = static_cast<size_t>(classes[k]);
    const int64_t bp = r.pred_border[k], bt = r.true_border[k];
    if (bp == 0 && bt == 0) continue;  // the class is in neither mask
    out.surface_state[c] = (bp == 0 || bt == 0) ? 2 : 1;
    out.hd95[c] = r.hausdorff_percentile[k];
    out.assd[c] = r.average_surface_distance[k];
  }
}

// Reads one pair and counts it into cm, or records its problems (then cm is unchanged).
void score_pair(const EvalOptions& o, const std::string& name, ConfusionMatrix& cm,
                PairOutcome& out) {
  const std::string pred_path = path_in(o.pred_dir, name), truth_path = path_in(o.truth_dir, name);
  LabelImage pred, truth;
  bool readable = true;
  const auto read = [&](const std::string& path, LabelImage& img) {
    try {
      img = read_label_png(path);
    } catch (const PngError& e) {
      // The message starts with the path, which the problem carries already.
      std::string m = e.what();
      if (m.rfind(path + ": ", 0) == 0) m = m.substr(path.size() + 2);
      out.problems.push_back({"unreadable", path, m});
      readable = false;
    } catch (const std::exception& e) {  // e.g. std::bad_alloc for a huge image
      out.problems.push_back({"unreadable", path, e.what()});
      readable = false;
    }
  };
  read(pred_path, pred);
  read(truth_path, truth);
  if (!readable) return;
  if (pred.height != truth.height || pred.width != truth.width) {
    out.problems.push_back({"size", pred_path,
                            "prediction is " + std::to_string(pred.height) + "x" +
                                std::to_string(pred.width) + " (height x width) but " + truth_path +
                                " is " + std::to_string(truth.height) + "x" +
                                std::to_string(truth.width)});
    return;
  }
  // The distances first, so that an error there (an allocation) leaves cm unchanged. A label
  // that the count below refuses is in none of their class masks, and the pair is then a
  // problem whose distances are not used.
  if (o.surface) surface_pair(o, pred, truth, out);
  const Shape shape{truth.height, truth.width};
  try {
    cm.update(Tensor<int32_t>::view(pred.labels.data(), shape),
              Tensor<int32_t>::view(truth.labels.data(), shape));
  } catch (const Error& e) {
    label_problems(o, name, pred, truth, e.what(), out.problems);
    return;
  }
  out.pixels = truth.height * truth.width;
}

}  // namespace

EvalResult evaluate(const EvalOptions& o) {
  EvalResult r;
  ConfusionMatrixOptions cm_options;
  cm_options.ignore_index = o.ignore;  // out_of_range stays OutOfRange::error

  // The folders first: one that cannot be listed is a usage error before any C^2 allocation.
  const std::vector<std::string> truth = list_pngs(o.truth_dir, r.other_files);
  const std::vector<std::string> pred = list_pngs(o.pred_dir, r.other_files);

  // Merge the two sorted lists: names in both are pairs, the others missing or extra.
  std::vector<std::string> pairs;
  std::vector<std::pair<std::string, Problem>> listed;  // (name, problem) before reading
  size_t i = 0, j = 0;
  while (i < truth.size() || j < pred.size()) {
    if (j == pred.size() || (i < truth.size() && truth[i] < pred[j])) {
      listed.push_back({truth[i],
                        {"missing", path_in(o.pred_dir, truth[i]),
                         "no prediction for " + path_in(o.truth_dir, truth[i])}});
      ++i;
    } else if (i == truth.size() || pred[j] < truth[i]) {
      listed.push_back(
          {pred[j],
           {"extra", path_in(o.pred_dir, pred[j]),
            "no ground truth " + path_in(o.truth_dir, pred[j]) + " of the same name"}});
      ++j;
    } else {
      pairs.push_back(truth[i]);
      ++i;
      ++j;
    }
  }

  r.matrix = ConfusionMatrix(o.classes, cm_options);
  const int64_t n = static_cast<int64_t>(pairs.size());
  std::vector<PairOutcome> outcomes(pairs.size());
  const double bytes_per_worker = 16.0 * static_cast<double>(o.classes * o.classes);
  const int64_t memory_cap =
      std::max<int64_t>(1, static_cast<int64_t>(4294967296.0 / bytes_per_worker));
  // No worker (and no matrix) when there is no pair; each worker's matrix built in place.
  const int workers =
      n == 0
          ? 0
          : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({o.threads, n, memory_cap})));
  std::vector<ConfusionMatrix> matrices;
  matrices.reserve(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) matrices.emplace_back(o.classes, cm_options);
  std::atomic<int64_t> next{0}, done{0};
  std::mutex m;
  std::condition_variable finished;

  const auto work = [&](int w) {
    set_num_threads(1);  // the parallelism is over the files
    for (int64_t k; (k = next++) < n;) {
      // Nothing may escape a worker thread (std::terminate): an allocation that fails while
      // counting (a large --classes) becomes this pair's problem, and the run prints no scores.
      try {
        score_pair(o, pairs[k], matrices[w], outcomes[k]);
      } catch (const std::bad_alloc&) {
        outcomes[k].problems.push_back(
            {"error", path_in(o.truth_dir, pairs[k]),
             "out of memory while counting it (--classes " + std::to_string(o.classes) +
                 ": each worker holds two matrices of 8 C^2 bytes; try fewer --threads)"});
      } catch (const std::exception& e) {
        outcomes[k].problems.push_back({"error", path_in(o.truth_dir, pairs[k]),
                                        std::string("could not be scored: ") + e.what()});
      }
      if (++done == n) {
        std::lock_guard<std::mutex> lock(m);
        finished.notify_all();
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers));
  try {
    for (int w = 0; w < workers; ++w) threads.emplace_back(work, w);
  } catch (const std::exception&) {
    // A thread that cannot start (a limit on threads or on virtual memory) must not end the
    // run (a joinable std::thread destroyed while unwinding is std::terminate): the workers
    // that started take every pair from `next`; with none, the calling thread does the work.
    if (threads.empty()) work(0);
  }
  if (o.progress) {  // drawn by the calling thread while the workers run
    std::unique_lock<std::mutex> lock(m);
    while (done < n) {
      o.progress(done, n);
      finished.wait_for(lock, std::chrono::milliseconds(100));
    }
    lock.unlock();
    o.progress(n, n);
  }
  for (std::thread& t : threads) t.join();

  for (const ConfusionMatrix& cm : matrices) r.matrix.merge(cm);
  for (int64_t k = 0; k < n; ++k) {
    const PairOutcome& out = outcomes[static_cast<size_t>(k)];
    if (out.problems.empty()) {
      ++r.images;
      r.pixels += out.pixels;
    }
    for (const Problem& p : out.problems) listed.push_back({pairs[static_cast<size_t>(k)], p});
  }
  if (o.surface) {  // the means over images, summed in file-name order
    const size_t C = static_cast<size_t>(o.classes);
    std::vector<double> hd95(C, 0.0), assd(C, 0.0);
    r.surface_images.assign(C, 0);
    r.surface_one_empty.assign(C, 0);
    for (const PairOutcome& out : outcomes) {
      if (!out.problems.empty()) continue;
      for (size_t c = 0; c < C; ++c) {
        if (out.surface_state[c] == 0) continue;
        hd95[c] += out.hd95[c];
        assd[c] += out.assd[c];
        ++r.surface_images[c];
        if (out.surface_state[c] == 2) ++r.surface_one_empty[c];
      }
    }
    for (size_t c = 0; c < C; ++c) {
      const double n = static_cast<double>(r.surface_images[c]);
      r.hd95.push_back(n > 0 ? hd95[c] / n : std::nan(""));
      r.assd.push_back(n > 0 ? assd[c] / n : std::nan(""));
    }
  }
  std::stable_sort(listed.begin(), listed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, p] : listed) r.problems.push_back(std::move(p));
  r.counted = r.matrix.total();
  return r;
}

}  // namespace segloss::tools
