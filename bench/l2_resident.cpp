// segloss-l2: the CPU kernels on arrays that stay in the core's L2 cache, against a copy loop on
// the same arrays, single-threaded. It answers one question of issue 10: when a loss misses its
// floor, is it waiting on memory or on arithmetic? With every array in L2 there is no memory
// bandwidth to wait on; if value+gradient still takes >= 2x the copy loop's time per element,
// the kernel is compute-bound at that size (its exp/log and the flops around them), and a faster
// memory system would not bring it to the floor.
//
// For each case (float32, reduction mean, default options, value and gradient in one call) and
// each repetition it times, in the thread's CPU time, interleaved: the loss (K calls), the copy
// loop (K calls) and a chain of dependent integer adds (one cycle each, so their rate is the core's
// clock). K is chosen so that one sample lasts about a millisecond. Reported per case, as one JSON
// object per line:
//   ns_per_element       median over the repetitions of the loss's time / elements
//   ns_spread            [min, max] of the same
//   copy_ns_per_element  the copy loop's median
//   ratio_to_copy        median of the per-repetition ratios (each from adjacent samples), and
//   ratio_spread         their [min, max]
//   ns_per_byte          ns_per_element over the copy loop's bytes per element
//   ghz                  the median clock from the add chain; cycles_per_element = ns * ghz
//   exp_per_element, log_per_element   what the kernel evaluates per logit (from the code; the
//                        multi-class counts are per class element, i.e. per pixel / C)
//   bytes_per_element    the copy loop's traffic: inputs read once, the gradient written once
//   working_set_kib      the arrays one call touches (logits, target, gradient)
//   bound                "compute" where ratio_to_copy >= 2, else "memory?" (not settled here)
// The copy loop is segloss-bench's floor on the same arrays: for the binary cases it reads the
// logits (probabilities for binary_cross_entropy) and the target and writes the gradient buffer;
// for the multi-class cases it reads the logits and the int64 labels in blocks of 4096 pixels
// (the labels of a block stay in L1) and writes the gradient buffer.
//
// Shapes: binary (1,1,256,256): 3 x 256 KiB; multi-class (1,21,64,64) and (1,150,16,32): about
// 700 KiB and 600 KiB; each well under the 2 MiB L2 of this machine's cores. --shapes replaces
// the multi-class shapes (any size: the same measurement then runs from L3 or memory, which is
// how the C = 150 question of bench/L2_RESIDENT.md was measured), --binary-shape the binary one.
//
// Usage: segloss-l2 [--reps 21] [--case text] [--shapes 1x21x64x64,1x150x16x32]
//                   [--binary-shape 1x1x256x256] [--huge] [--list]
//   --case   runs the cases whose "name shape" starts with text ("cross_entropy",
//            "ce_dice (1,150"), or, for text that starts with "(", contains it ("(1,150")
//   --huge   madvise(MADV_HUGEPAGE) on every array (transparent huge pages in "madvise" mode);
//            the line's "huge_kib" is the process's AnonHugePages after allocation
// Run it pinned: taskset -c 1 ./build/bench/segloss-l2
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

struct Args {
  int reps = 21;
  std::string filter;
  std::vector<Shape> shapes{Shape{1, 21, 64, 64}, Shape{1, 150, 16, 32}};
  Shape binary{1, 1, 256, 256};
  bool huge = false;
  bool list = false;
};

Shape parse_shape(const char* s) {
  Shape shape{};
  std::vector<int64_t> e;
  for (const char* p = s; *p;) {
    e.push_back(std::atoll(p));
    while (*p && *p != 'x' && *p != ',') ++p;
    if (*p == 'x') ++p;
    if (*p == ',') break;
  }
  return Shape(e.begin(), e.end());
}

const char* kUsage =
    "usage: segloss-l2 [--reps 21] [--case text] [--shapes 1x21x64x64,1x150x16x32]\n"
    "                  [--binary-shape 1x1x256x256] [--huge] [--list]\n";

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (k == "--reps" && v) {
      a.reps = std::max(3, std::atoi(v));
      ++i;
    } else if (k == "--case" && v) {
      a.filter = v;
      ++i;
    } else if (k == "--shapes" && v) {
      a.shapes.clear();
      for (const char* p = v; *p;) {
        a.shapes.push_back(parse_shape(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
      ++i;
    } else if (k == "--binary-shape" && v) {
      a.binary = parse_shape(v);
      ++i;
    } else if (k == "--huge") {
      a.huge = true;
    } else if (k == "--list") {
      a.list = true;
    } else {
      std::fputs(kUsage, stderr);
      std::exit(k == "--help" ? 0 : 2);
    }
  }
  return a;
}

// An array of n values on its own 2 MiB-aligned pages (so --huge can back it with huge pages,
// and two runs place it alike), viewed as a Tensor. Freed with the Array.
template <class T>
class Array {
 public:
  Array(const Shape& shape, bool huge) {
    const size_t align = size_t{2} << 20;
    bytes_ = (static_cast<size_t>(shape.numel()) * sizeof(T) + align - 1) / align * align;
    data_ = static_cast<T*>(std::aligned_alloc(align, bytes_));
    if (!data_) {
      std::fprintf(stderr, "segloss-l2: cannot allocate %zu bytes\n", bytes_);
      std::exit(1);
    }
    madvise(data_, bytes_, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::memset(data_, 0, bytes_);  // touch every page now, not in the first timed call
    tensor_ = Tensor<T>::view(data_, shape);
  }
  ~Array() { std::free(data_); }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  Tensor<T>& operator*() { return tensor_; }
  T& operator[](int64_t i) { return data_[i]; }
  T* data() { return data_; }

 private:
  size_t bytes_ = 0;
  T* data_ = nullptr;
  Tensor<T> tensor_;
};

// The process's AnonHugePages in KiB (/proc/self/smaps_rollup), or -1.
long huge_kib() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string key;
  long value;
  while (f >> key) {
    if (key == "AnonHugePages:" && f >> value) return value;
    f.ignore(1 << 10, '\n');
  }
  return -1;
}

// The calling thread's CPU time in ns: the machine is shared, and a sample that the scheduler
// interrupted would count the other tenant's time with wall-clock time (the caches it disturbed
// still count).
double now_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return 1e9 * static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec);
}

// The core clock in GHz: a chain of dependent register-register adds retires one per cycle.
// (Not "add $1": this core folds immediate adds at rename, several per cycle.)
double clock_ghz() {
  constexpr int64_t kIters = 250'000;  // 8 adds each: 2 M cycles, about 0.5 ms
  uint64_t v = 0, one = 1;
  asm volatile("" : "+r"(one));
  const double t0 = now_ns();
  for (int64_t i = 0; i < kIters; ++i)
    asm volatile(
        "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
        "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
        : "+r"(v)
        : "r"(one));
  return static_cast<double>(kIters * 8) / (now_ns() - t0);
}

// Whether the case "name shape" passes --case: it starts with the text, or the text is a shape
// ("(1,150") that it contains.
bool matches(const Args& args, const std::string& key) {
  const std::string& f = args.filter;
  return f.empty() || key.rfind(f, 0) == 0 || (f[0] == '(' && key.find(f) != std::string::npos);
}

// Whether any of `names` on `shape` passes --case. With --list: prints those that do, and
// returns false (nothing is allocated).
bool wanted(const Args& args, const std::vector<const char*>& names, const Shape& shape) {
  bool any = false;
  for (const char* n : names) {
    const std::string key = n + (" " + shape.str());
    if (matches(args, key)) {
      if (args.list) std::printf("%s\n", key.c_str());
      any = true;
    }
  }
  return any && !args.list;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

struct Case {
  std::string name;
  std::function<void()> run;
  std::function<void()> copy;
  double exp_per_element, log_per_element;
};

// Times each wanted case interleaved with its copy loop and the clock, and prints its line.
// `elements`: logits per call; `bytes`: the copy loop's traffic per call; `set_kib`: what one
// call touches.
void run_cases(const Args& args, const std::vector<Case>& cases, const Shape& shape,
               int64_t elements, double bytes, double set_kib) {
  for (const Case& c : cases) {
    const std::string key = c.name + " " + shape.str();
    if (!matches(args, key)) continue;
    // Warm up (thread pool, workspaces, caches), then K calls per sample of about 1 ms.
    for (int i = 0; i < 3; ++i) c.run(), c.copy();
    const double t0 = now_ns();
    c.run();
    const int k = static_cast<int>(std::clamp(1e6 / std::max(1.0, now_ns() - t0), 1.0, 1e5));
    const auto sample = [k](const std::function<void()>& f) {
      const double s = now_ns();
      for (int i = 0; i < k; ++i) f();
      return (now_ns() - s) / k;
    };
    std::vector<double> loss_ns, copy_ns, ratio, ghz;
    for (int r = 0; r < args.reps; ++r) {
      const double l = sample(c.run), cp = sample(c.copy);
      loss_ns.push_back(l / static_cast<double>(elements));
      copy_ns.push_back(cp / static_cast<double>(elements));
      ratio.push_back(l / cp);
      ghz.push_back(clock_ghz());
    }
    const double ns = median(loss_ns), cns = median(copy_ns), rt = median(ratio), g = median(ghz);
    const auto [rmin, rmax] = std::minmax_element(ratio.begin(), ratio.end());
    const auto [lmin, lmax] = std::minmax_element(loss_ns.begin(), loss_ns.end());
    std::printf(
        "{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"cpu\", \"threads\": 1, "
        "\"ns_per_element\": %.4f, \"ns_spread\": [%.4f, %.4f], \"copy_ns_per_element\": %.4f, "
        "\"ratio_to_copy\": %.2f, \"ratio_spread\": [%.2f, %.2f], \"ghz\": %.2f, "
        "\"ns_per_byte\": %.4f, \"cycles_per_element\": %.2f, \"copy_cycles_per_element\": %.2f, "
        "\"exp_per_element\": %.3g, \"log_per_element\": %.3g, \"bytes_per_element\": %.2f, "
        "\"working_set_kib\": %.0f, \"calls_per_sample\": %d, \"huge_kib\": %ld, "
        "\"bound\": \"%s\"}\n",
        c.name.c_str(), shape.str().c_str(), ns, *lmin, *lmax, cns, rt, *rmin, *rmax, g,
        ns * static_cast<double>(elements) / bytes, ns * g, cns * g, c.exp_per_element,
        c.log_per_element, bytes / static_cast<double>(elements), set_kib, k, huge_kib(),
        rt >= 2.0 ? "compute" : "memory?");
    std::fflush(stdout);
  }
}

// The binary losses on logits x ~ normal(0, 3) (std::mt19937 seed 7) and segloss-bench's
// checkerboard target; binary_cross_entropy on p = sigmoid(x).
void binary(const Args& args) {
  const Shape& shape = args.binary;
  const int64_t n = shape.numel(), W = shape[shape.rank() - 1], b = std::max<int64_t>(1, W / 4);
  if (!wanted(args,
              {"bce_with_logits", "binary_cross_entropy", "sigmoid_focal", "soft_dice", "bce_dice"},
              shape))
    return;
  Array<float> x(shape, args.huge), t(shape, args.huge), p(shape, args.huge),
      grad(shape, args.huge);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = normal(rng);
    t[i] = (i / W / b + i % W / b) % 2 ? 1.f : 0.f;
    p[i] = 1.f / (1.f + std::exp(-x[i]));
  }
  volatile double sink = 0;
  // The copy loop of segloss-bench's binary floor, on one thread: out = a + b.
  const auto copy = [n, &grad](const float* a, const float* bb) {
    return [n, a, bb, out = grad.data()] {
      for (int64_t i = 0; i < n; ++i) out[i] = a[i] + bb[i];
      asm volatile("" : : "r"(out) : "memory");
    };
  };
  const auto xt = copy(x.data(), t.data()), pt = copy(p.data(), t.data());
  // exp/log per element, read from the kernels (core/pointwise.hpp, backends/cpu): logs done
  // by a polynomial (the atanh series of log1p_unit, for log1p(exp(-|x|)) and log(1 - a)) are
  // not counted. bce_with_logits: one exp, e = exp(-|x|), and a reciprocal; binary_cross_entropy:
  // one log (log_denormal of a = min(p, 1 - p)), no exp, two divisions; sigmoid_focal (gamma 2, an
  // exact square): one exp, two reciprocals; soft_dice: one exp in pass 1, stashed in the
  // gradient buffer as copysign(e, x) for pass 2; bce_dice: the same exp serves both terms.
  const std::vector<Case> cases = {
      {"bce_with_logits", [&] { sink = sink + bce_with_logits_value_and_grad(*x, *t, *grad); }, xt,
       1, 0},
      {"binary_cross_entropy",
       [&] { sink = sink + binary_cross_entropy_value_and_grad(*p, *t, *grad); }, pt, 0, 1},
      {"sigmoid_focal", [&] { sink = sink + sigmoid_focal_value_and_grad(*x, *t, *grad); }, xt, 1,
       0},
      {"soft_dice", [&] { sink = sink + soft_dice_value_and_grad(*x, *t, *grad); }, xt, 1, 0},
      {"bce_dice", [&] { sink = sink + bce_dice_value_and_grad(*x, *t, *grad); }, xt, 1, 0},
  };
  const double bytes = 3.0 * 4.0 * static_cast<double>(n);
  run_cases(args, cases, shape, n, bytes, 3.0 * 4.0 * static_cast<double>(n) / 1024.0);
}

// The class-axis losses on logits x ~ normal(0, 3) (seed 7) and segloss-bench's int64 labels
// y = (i / 64) % C over the flat (N, spatial) index.
void multiclass(const Args& args, const Shape& shape) {
  const int64_t N = shape[0], C = shape[1], S = shape.numel_from(2), total = N * S;
  if (!wanted(args, {"cross_entropy", "softmax_focal", "ce_dice", "dice_focal"}, shape)) return;
  const Shape label_shape = shape.without(1);
  Array<float> x(shape, args.huge), grad(shape, args.huge);
  Array<int64_t> y(label_shape, args.huge);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (int64_t i = 0; i < shape.numel(); ++i) x[i] = normal(rng);
  for (int64_t i = 0; i < total; ++i) y[i] = (i / 64) % C;
  volatile double sink = 0;
  // segloss-bench's multi-class floor on one thread: blocks of 4096 pixels, class by class.
  const auto copy = [&, N, C, S] {
    constexpr int64_t kBlock = 4096;
    const float* xs = x.data();
    const int64_t* lab = y.data();
    float* out = grad.data();
    for (int64_t img = 0; img < N; ++img)
      for (int64_t s0 = 0; s0 < S; s0 += kBlock) {
        const int64_t s1 = std::min(S, s0 + kBlock);
        for (int64_t k = 0; k < C; ++k) {
          const float* a = xs + (img * C + k) * S;
          float* o = out + (img * C + k) * S;
          const int64_t* l = lab + img * S;
          for (int64_t s = s0; s < s1; ++s) o[s] = a[s] + static_cast<float>(l[s]);
        }
      }
    asm volatile("" : : "r"(out) : "memory");
  };
  // exp/log per class element, read from the kernels (backends/cpu/cross_entropy.cpp, focal.cpp,
  // losses/combined.cpp): cross_entropy one exp per class, one log per pixel (of the sum of
  // exponentials); softmax_focal (gamma 2, an exact square) one exp per class, one log1p per
  // pixel (-log p_t = log1p(rest / e_t)); ce_dice one softmax in pass 1 (p is stored in the
  // gradient buffer, pass 2 reads it back: no exp) and cross_entropy's log per pixel; dice_focal
  // the focal softmax in pass 1 and a second softmax in pass 2 (the Dice gradient), one log1p
  // per pixel.
  const double c = static_cast<double>(C);
  const std::vector<Case> cases = {
      {"cross_entropy", [&] { sink = sink + cross_entropy_value_and_grad(*x, *y, *grad); }, copy, 1,
       1 / c},
      {"softmax_focal", [&] { sink = sink + softmax_focal_value_and_grad(*x, *y, *grad); }, copy, 1,
       1 / c},
      {"ce_dice", [&] { sink = sink + ce_dice_value_and_grad(*x, *y, *grad); }, copy, 1, 1 / c},
      {"dice_focal", [&] { sink = sink + dice_focal_value_and_grad(*x, *y, *grad); }, copy, 2,
       1 / c},
  };
  const double bytes = (4.0 + 4.0) * static_cast<double>(shape.numel()) + 8.0 * total;
  run_cases(args, cases, shape, shape.numel(), bytes, bytes / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  set_num_threads(1);
  binary(args);
  for (const Shape& s : args.shapes) multiclass(args, s);
  return 0;
}
