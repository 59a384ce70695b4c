// segloss-bench: times every loss's fused value_and_grad and every metric (for the boundary weight
// map and the metrics, which have no gradient, the call itself) against the memory-bandwidth
// floor, at the sizes:
//   binary       (8,1,512,512) and the volume (2,4,96,96,96) (four binary channels); one
//                element per plane (1048576,1,1) against one plane (1,1,1048576) (there the
//                elementwise losses and the batch soft Dice only);
//   multi-class  (8,21,512,512), (4,150,256,256), the volume (2,4,96,96,96), and one pixel per
//                image (262144,21,1) against the same pixels as one image (1,21,262144) (there
//                cross_entropy, softmax_focal and softmax_dice only); int64 labels;
//   Lovasz-Softmax also on (2,21,256,256), surface metrics on one 256^3 volume.
//
// For every case and thread count it prints one JSON object per line:
//   {"name", "shape", "device", "threads", "median_ms", "floor_ms", "ratio_to_floor",
//    "mpix_per_s", "peak_extra_bytes"} (and "output_bytes" for a call that returns a new
//    tensor: the backward forms; those bytes are not in peak_extra_bytes)
// floor_ms is the median time, in the same run and at the same thread count, of a plain
// streaming loop that reads the case's input arrays once and writes one array the size of the
// logits: what any implementation must at least spend moving memory. peak_extra_bytes is the
// peak heap memory one call allocates beyond what was live before it (bench/alloc_count.hpp:
// every operator new counted, on all threads), measured on a call after the timed ones, so
// thread-local workspaces already grown by earlier calls are not counted again. The target for
// a loss is O(N*C) (per-image and per-class sums), never O(pixels); inputs and the gradient are
// the caller's and not counted. Lines of the tape cases add "baseline": "fused" (their floor is
// the fused call).
//
// Usage: segloss-bench [--threads 1,2] [--reps 25] [--filter text] [--quick] [--list]
//                      [--no-stream]
//   --filter  runs the cases whose "name shape" contains text (e.g. "cross_entropy",
//             "(4,150", "softmax_dice (2,4,96")
//   --quick   the binary (8,1,512,512) cases and the volumes only, 5 repetitions
//   --list    prints the "name shape" of every case that would run, and runs none
//   --no-stream  ordinary stores for every gradient (cpu::stream_gradient_bytes at its maximum:
//             the class-axis kernels otherwise stream gradients of 32 MiB or more), for A/B runs
// The large multi-class shapes run a fifth of --reps (at least 5) after one warm-up call (three
// elsewhere), the volumes a third; the sorting losses (Lovasz) a fifth, or 3 on the large and
// multi-class shapes, the 256^3 surface metrics 3.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <segloss/capi/segloss.h>
#include <segloss/segloss.hpp>

#include "../backends/cpu/stream_threshold.hpp"
#include "alloc_count.hpp"

using namespace segloss;

namespace {

struct Args {
  std::vector<int> threads{1, 2};
  int reps = 25;
  std::string filter;
  bool quick = false;
  bool list = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (k == "--threads" && v) {
      a.threads.clear();
      for (const char* p = v; *p;) {
        a.threads.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
      ++i;
    } else if (k == "--reps" && v) {
      a.reps = std::max(3, std::atoi(v));
      ++i;
    } else if (k == "--filter" && v) {
      a.filter = v;
      ++i;
    } else if (k == "--quick") {
      a.quick = true;
      a.reps = 5;
    } else if (k == "--list") {
      a.list = true;
    } else if (k == "--no-stream") {
      cpu::stream_gradient_bytes = INT64_MAX;
    } else {
      std::fprintf(stderr,
                   "usage: segloss-bench [--threads 1,2] [--reps 25] [--filter text] [--quick] "
                   "[--list] [--no-stream]\n");
      std::exit(k == "--help" ? 0 : 2);
    }
  }
  return a;
}

// `warmup` calls first (page faults, caches, thread pool), then the median of `reps` timed ones.
double median_ms(int reps, const std::function<void()>& work, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) work();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    work();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[reps / 2];
}

// One timed case: what it runs, and the streaming loop that is its floor (or, for the tape
// lines, the fused call that is their baseline).
struct Case {
  std::string name;
  std::function<void()> run;
  std::function<void()> floor;
  int reps = 0;  // 0: the suite's
  // Bytes of the tensor the call allocates and returns (the backward forms' gradient): the
  // caller's output, so not counted in peak_extra_bytes (they are printed as output_bytes).
  int64_t output_bytes = 0;
};

// The multi-class shapes (8,21,512,512), (4,150,256,256) and the 256^3 volume are "large".
constexpr int64_t kLarge = 16'000'000;

class Bench {
 public:
  explicit Bench(const Args& args) : args_(args) {}
  const Args& args() const { return args_; }

  bool wanted(const std::string& name, const Shape& shape) const {
    const std::string key = name + " " + shape.str();
    return args_.filter.empty() || key.find(args_.filter) != std::string::npos;
  }
  // Whether any of `cases` runs on `shape` (with --list: prints them, and returns false, so that
  // a suite allocates nothing).
  bool any(const std::vector<std::string>& names, const Shape& shape) const {
    bool found = false;
    for (const auto& n : names)
      if (wanted(n, shape)) {
        if (args_.list) std::printf("%s %s\n", n.c_str(), shape.str().c_str());
        found = true;
      }
    return found && !args_.list;
  }

  // Times each wanted case at every thread count: the case's median, then its floor's, then
  // the peak extra bytes of one more call. `pixels` is the pixel count for mpix_per_s.
  void run(const std::vector<Case>& cases, const Shape& shape, int64_t pixels, int reps,
           const char* baseline = nullptr) const {
    for (const Case& c : cases) {
      if (!wanted(c.name, shape)) continue;
      const int r = c.reps > 0 ? c.reps : reps;
      // One warm-up call on the large shapes (each call there moves hundreds of MB).
      const int warmup = shape.numel() > kLarge ? 1 : 3;
      for (int threads : args_.threads) {
        set_num_threads(threads);
        const double ms = median_ms(r, c.run, warmup);
        const double floor = median_ms(r, c.floor, warmup);
        const int64_t extra = alloc_count::peak_extra_bytes(c.run) - c.output_bytes;
        std::printf(
            "{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"cpu\", \"threads\": %d, "
            "\"median_ms\": %.3f, \"floor_ms\": %.3f, \"ratio_to_floor\": %.3f, "
            "\"mpix_per_s\": %.1f, \"peak_extra_bytes\": %lld%s%s%s",
            c.name.c_str(), shape.str().c_str(), threads, ms, floor, ms / floor,
            static_cast<double>(pixels) / (ms * 1e3), static_cast<long long>(extra),
            baseline ? ", \"baseline\": \"" : "", baseline ? baseline : "", baseline ? "\"" : "");
        if (c.output_bytes > 0)
          std::printf(", \"output_bytes\": %lld", static_cast<long long>(c.output_bytes));
        std::printf("}\n");
        std::fflush(stdout);
      }
    }
  }

 private:
  Args args_;
};

std::vector<std::string> names_of(const std::vector<Case>& cases) {
  std::vector<std::string> n;
  for (const auto& c : cases) n.push_back(c.name);
  return n;
}

// The floor of the binary cases: read each input once, write one array the size of the logits.
void stream(const std::vector<const float*>& inputs, float* out, int64_t n) {
  if (inputs.size() == 1) {
    const float* a = inputs[0];
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + 1.f;
  } else if (inputs.size() == 2) {
    const float *a = inputs[0], *b = inputs[1];
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  } else {
    const float *a = inputs[0], *b = inputs[1], *c = inputs[2];
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i] + c[i];
  }
}

// The binary losses and metrics on float32 logits x ~ normal(0, 3) (std::mt19937 seed 7) of
// `shape` (N, C, spatial...), each channel a binary problem, with the target a checkerboard of
// squares of a quarter of the last extent, b = W / 4: t = ((i / W / b + i % W / b) % 2) over
// the flat index (for (8,1,512,512), b = 128), and pixel weights w = 1 + 2 t. `planar`: the 2D
// cases that exist only for images (the boundary weight map and the Carvana loss built on it,
// the C API, the tape).
// Keeps the cases named in `names` (the one-element-per-plane shapes run only the cases that
// docs/conventions.md's "Layout and speed" names).
void keep_only(std::vector<Case>& cases, const std::vector<std::string>& names) {
  cases.erase(std::remove_if(cases.begin(), cases.end(),
                             [&](const Case& k) {
                               return std::find(names.begin(), names.end(), k.name) == names.end();
                             }),
              cases.end());
}

// `layout`: only bce_with_logits, its weighted form, binary_cross_entropy, sigmoid_focal and the
// batch soft Dice, for the one-element-per-plane shapes.
void bench_binary(const Bench& bench, const Shape& shape, bool planar, bool layout = false) {
  const int64_t n = shape.numel(), W = shape[shape.rank() - 1], b = std::max<int64_t>(1, W / 4);
  const std::vector<std::string> layout_names = {"bce_with_logits", "bce_with_logits_weighted",
                                                 "binary_cross_entropy", "sigmoid_focal",
                                                 "soft_dice_batch"};
  const std::vector<std::string> planar_names = {"bce_with_logits_weighted_mean_over_weight_sum",
                                                 "carvana_combined_loss",
                                                 "boundary_weights_k11",
                                                 "boundary_weights_k51",
                                                 "capi_bce_with_logits",
                                                 "tape_node:bce_dice",
                                                 "composed:soft_dice",
                                                 "composed:lovasz_hinge"};
  std::vector<std::string> names = {"bce_with_logits",
                                    "bce_with_logits_weighted",
                                    "bce_with_logits_pos_weight",
                                    "bce_with_logits_smoothing",
                                    "binary_cross_entropy",
                                    "binary_cross_entropy_weighted",
                                    "soft_dice",
                                    "soft_dice_weighted",
                                    "soft_dice_squared",
                                    "soft_dice_batch",
                                    "soft_jaccard",
                                    "soft_jaccard_squared",
                                    "tversky",
                                    "focal_tversky",
                                    "bce_with_logits+soft_dice",
                                    "bce_with_logits+soft_dice_weighted_log",
                                    "sigmoid_focal",
                                    "sigmoid_focal_weighted",
                                    "lovasz_hinge",
                                    "lovasz_hinge_batch",
                                    "dice_score",
                                    "soft_dice_split",
                                    "bce_with_logits+soft_dice_split",
                                    "bce_with_logits_split"};
  if (planar) names.insert(names.end(), planar_names.begin(), planar_names.end());
  if (layout) names = layout_names;
  if (!bench.any(names, shape)) return;

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), t = Tensor<float>::empty(shape),
       w = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       out = Tensor<float>::empty(shape), p = Tensor<float>::empty(shape);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = normal(rng);
    t[i] = (i / W / b + i % W / b) % 2 ? 1.f : 0.f;
    w[i] = 1.f + (t[i] > 0.5f ? 2.f : 0.f);
    p[i] = 1.f / (1.f + std::exp(-x[i]));  // probabilities for binary_cross_entropy
  }

  volatile double sink = 0;
  BceWithLogitsOptions<float> weighted;
  weighted.weight = w;
  BceWithLogitsOptions<float> pos_weight;  // 3 for every channel
  pos_weight.pos_weight = Tensor<float>::full(Shape{shape[1]}, 3.f);
  BceWithLogitsOptions<float> smoothing;
  smoothing.label_smoothing = 0.1;
  BinaryCrossEntropyOptions<float> bce_weighted;
  bce_weighted.weight = w;
  SoftDiceOptions<float> dice_weighted;  // Carvana WeightedSoftDiceLoss: w^2 in every sum
  dice_weighted.weight = w;
  SoftDiceOptions<float> dice_squared;  // V-Net: p^2 and t^2 in the denominator
  dice_squared.squared = true;
  SoftDiceOptions<float> dice_batch;  // one score per channel over the batch
  dice_batch.per_image = false;
  SoftJaccardOptions<float> jaccard_squared;
  jaccard_squared.squared = true;
  TverskyOptions<float> tversky;
  tversky.alpha = 0.3;
  tversky.beta = 0.7;
  TverskyOptions<float> focal_tversky = tversky;
  focal_tversky.gamma = 4.0 / 3.0;
  SigmoidFocalOptions<float> focal_weighted;
  focal_weighted.weight = w;
  LovaszHingeOptions<float> hinge_batch;
  hinge_batch.per_image = false;
  BceDiceOptions<float> bce_dice_weighted;  // weights in both terms, log Dice
  bce_dice_weighted.bce.weight = w;
  bce_dice_weighted.dice.weight = w;
  bce_dice_weighted.dice.log = true;
  BceWithLogitsOptions<float> weight_sum = weighted;  // Carvana's WeightedBCELoss2d
  weight_sum.mean_over = BceMeanOver::weight_sum;
  // float16 logits and targets (losses/half_logits.hpp: widen, the float loss, round): the floor
  // is the float one, so the ratio shows the conversion path's cost over the float call.
  const Tensor<float16> x16 = to_half<float16>(x), t16 = to_half<float16>(t);
  Tensor<float16> grad16 = Tensor<float16>::empty(x.shape());

  // The volume (7 M elements) runs a third of the repetitions.
  const int reps = planar ? bench.args().reps : std::max(5, bench.args().reps / 3);
  const int sort_reps = std::max(3, bench.args().reps / 5);
  const auto floor = [&](std::vector<const float*> inputs) {
    return [&out, n, inputs] { stream(inputs, out.data(), n); };
  };
  const auto xt = floor({x.data(), t.data()}), xtw = floor({x.data(), t.data(), w.data()}),
             pt = floor({p.data(), t.data()}), ptw = floor({p.data(), t.data(), w.data()});
  std::vector<Case> cases = {
      {"bce_with_logits", [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad); }, xt},
      {"bce_with_logits_weighted",
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, weighted); }, xtw},
      {"bce_with_logits_pos_weight",
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, pos_weight); }, xt},
      {"bce_with_logits_smoothing",
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, smoothing); }, xt},
      {"binary_cross_entropy",
       [&] { sink = sink + binary_cross_entropy_value_and_grad(p, t, grad); }, pt},
      {"binary_cross_entropy_weighted",
       [&] { sink = sink + binary_cross_entropy_value_and_grad(p, t, grad, bce_weighted); }, ptw},
      {"soft_dice", [&] { sink = sink + soft_dice_value_and_grad(x, t, grad); }, xt},
      {"soft_dice_weighted",
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad, dice_weighted); }, xtw},
      {"soft_dice_squared",
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad, dice_squared); }, xt},
      {"soft_dice_batch", [&] { sink = sink + soft_dice_value_and_grad(x, t, grad, dice_batch); },
       xt},
      {"soft_jaccard", [&] { sink = sink + soft_jaccard_value_and_grad(x, t, grad); }, xt},
      {"soft_jaccard_squared",
       [&] { sink = sink + soft_jaccard_value_and_grad(x, t, grad, jaccard_squared); }, xt},
      {"tversky", [&] { sink = sink + tversky_value_and_grad(x, t, grad, tversky); }, xt},
      {"focal_tversky", [&] { sink = sink + tversky_value_and_grad(x, t, grad, focal_tversky); },
       xt},
      {"bce_with_logits+soft_dice", [&] { sink = sink + bce_dice_value_and_grad(x, t, grad); }, xt},
      {"bce_with_logits+soft_dice_float16",
       [&] { sink = sink + bce_dice_value_and_grad(x16, t16, grad16); }, xt},
      {"bce_with_logits+soft_dice_weighted_log",
       [&] { sink = sink + bce_dice_value_and_grad(x, t, grad, bce_dice_weighted); }, xtw},
      {"sigmoid_focal", [&] { sink = sink + sigmoid_focal_value_and_grad(x, t, grad); }, xt},
      {"sigmoid_focal_weighted",
       [&] { sink = sink + sigmoid_focal_value_and_grad(x, t, grad, focal_weighted); }, xtw},
      // Bound by the sorts, far above the floor: fewer repetitions.
      {"lovasz_hinge", [&] { sink = sink + lovasz_hinge_value_and_grad(x, t, grad); }, xt,
       sort_reps},
      {"lovasz_hinge_batch",
       [&] { sink = sink + lovasz_hinge_value_and_grad(x, t, grad, hinge_batch); }, xt, sort_reps},
      // The thresholded Dice metric (no gradient; writes only its per-image scores).
      {"dice_score", [&] { sink = sink + dice_score(x, t).mean; }, xt},
      // The shard split on one shard (statistics, then finalize; no all-reduce): the overhead
      // of the split against the fused path (docs/distributed.md).
      {"soft_dice_split",
       [&] { sink = sink + soft_dice_finalize(x, t, soft_dice_statistics(x, t), grad); }, xt},
      {"bce_with_logits+soft_dice_split",
       [&] { sink = sink + bce_dice_finalize(x, t, bce_dice_statistics(x, t), grad); }, xt},
      {"bce_with_logits_split",
       [&] {
         sink = sink + bce_with_logits_finalize(x, t, bce_with_logits_statistics(x, t), grad);
       },
       xt},
  };

  // The 2D-only cases.
  BoundaryWeightOptions k11, k51;
  k11.kernel_size = 11;
  k51.kernel_size = 51;
  // The Carvana combined_loss(is_weight=True): the boundary weight map of the labels (k = 21 for
  // H = 512), then BCE normalized by the weight sum + Dice with w^2 in every sum, smooth 2 and 1.
  Tensor<float> boundary;
  BceDiceOptions<float> carvana;
  std::vector<int64_t> dims(static_cast<size_t>(shape.rank()));
  for (int i = 0; i < shape.rank(); ++i) dims[static_cast<size_t>(i)] = shape[i];
  const segloss_tensor cx = segloss_tensor_make(x.data(), SEGLOSS_F32, shape.rank(), dims.data());
  const segloss_tensor ct = segloss_tensor_make(t.data(), SEGLOSS_F32, shape.rank(), dims.data());
  const segloss_tensor cgrad =
      segloss_tensor_make(grad.data(), SEGLOSS_F32, shape.rank(), dims.data());
  if (planar) {
    boundary = Tensor<float>::empty(shape);
    carvana.bce.weight = boundary;
    carvana.bce.mean_over = BceMeanOver::weight_sum;
    carvana.dice.weight = boundary;
    carvana.dice.smooth_nr = 2;
    carvana.dice.smooth_dr = 1;
    const std::vector<Case> planar_cases = {
        {"bce_with_logits_weighted_mean_over_weight_sum",
         [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, weight_sum); }, xtw},
        {"carvana_combined_loss",
         [&] {
           boundary_weights(t, boundary);
           sink = sink + bce_dice_value_and_grad(x, t, grad, carvana);
         },
         xt},
        // The weight map of the mask t (no gradient): k = 11 and k = 51 should cost the same.
        {"boundary_weights_k11", [&] { boundary_weights(t, grad, k11); }, floor({t.data()})},
        {"boundary_weights_k51", [&] { boundary_weights(t, grad, k51); }, floor({t.data()})},
        // The same call through the C API (libsegloss_c): the boundary should cost nothing.
        {"capi_bce_with_logits",
         [&] {
           double v = 0;
           if (segloss_bce_with_logits_value_and_grad(&cx, &ct, nullptr, &v, &cgrad, nullptr) !=
               SEGLOSS_OK)
             std::fprintf(stderr, "%s\n", segloss_last_error());
           sink = sink + v;
         },
         xt},
    };
    cases.insert(cases.end(), planar_cases.begin(), planar_cases.end());
  }
  if (layout) keep_only(cases, layout_names);
  bench.run(cases, shape, n, reps);
  if (!planar || layout) return;

  // The tape (core/tape.hpp) against the fused calls. In these lines floor_ms is the direct
  // fused value_and_grad call (into a reused gradient buffer) measured in the same run, so
  // ratio_to_floor is the ratio to the fused call, and "baseline" says so:
  //   tape_node:bce_dice   Tape, leaf, ad::bce_dice, backward, grad: the tape's overhead when a
  //                        loss is used alone (issue 5's target: <= 1.05);
  //   composed:soft_dice   soft_dice written from primitives (losses/composed.hpp), forward and
  //                        backward on a tape, against the fused soft_dice.
  //   composed:lovasz_hinge
  //                        lovasz_hinge (per image) from primitives (sort_desc, cumsum, ...),
  //                        against the fused lovasz_hinge.
  const std::vector<Case> tape_cases = {
      {"tape_node:bce_dice",
       [&] {
         ad::Tape<float> tape;
         const ad::Var<float> v = tape.leaf(x);
         const ad::Var<float> l = ad::bce_dice(v, t);
         tape.backward(l);
         sink = sink + l.item() + tape.grad(v)[0];
       },
       [&] { sink = sink + bce_dice_value_and_grad(x, t, grad); }},
      {"composed:soft_dice",
       [&] {
         ad::Tape<float> tape;
         const ad::Var<float> v = tape.leaf(x);
         const ad::Var<float> l = composed::soft_dice(tape, v, t);
         tape.backward(l);
         sink = sink + l.item() + tape.grad(v)[0];
       },
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad); }},
  };
  bench.run(tape_cases, shape, n, bench.args().reps, "fused");
  // About a second a call: fewer repetitions.
  const std::vector<Case> slow_tape_cases = {
      {"composed:lovasz_hinge",
       [&] {
         ad::Tape<float> tape;
         const ad::Var<float> v = tape.leaf(x);
         const ad::Var<float> l = composed::lovasz_hinge(tape, v, t);
         tape.backward(l);
         sink = sink + l.item() + tape.grad(v)[0];
       },
       [&] { sink = sink + lovasz_hinge_value_and_grad(x, t, grad); }},
  };
  bench.run(slow_tape_cases, shape, n, std::max(3, bench.args().reps / 5), "fused");
}

// The multi-class losses and metrics on float32 logits x ~ normal(0, 3) (std::mt19937 seed 7)
// of `shape` (N, C, spatial...) and int64 labels y = (i / 64) % C over the flat (N, spatial)
// index. Variants: class weights 1 + (c % 3); ignore_index 255 on the pixels with
// (i / 64) % 10 == 0 (a tenth); label smoothing 0.1. Their floor reads the logits and the
// labels once and writes one array the size of the logits, in blocks of pixels as the kernels
// do (the labels of a block stay in L1). The confusion-matrix lines read the same logits and
// labels, and the labels with a prediction (i / 48) % C; their floors read what they read and
// sum it. `full`: also the split and score cases (on the first shape only, to keep the run
// short).
// `layout`: only the cases that docs/conventions.md's "Layout and speed" names (cross_entropy,
// softmax_focal, softmax_dice), for the one-pixel-per-image shapes.
void bench_multiclass(const Bench& bench, const Shape& shape, bool full, bool layout = false) {
  const int64_t n = shape[0], c = shape[1], px = shape.numel_from(2), total = n * px;
  const std::vector<std::string> layout_names = {"cross_entropy", "softmax_focal", "softmax_dice"};
  std::vector<std::string> names = {"cross_entropy",
                                    "cross_entropy_weight",
                                    "cross_entropy_ignore_index",
                                    "cross_entropy_smoothing",
                                    "softmax_focal",
                                    "softmax_dice",
                                    "softmax_jaccard",
                                    "softmax_tversky",
                                    "generalized_dice",
                                    "ce_dice",
                                    "dice_focal",
                                    "lovasz_softmax",
                                    "confusion_matrix_logits"};
  // The cases on the label maps alone print the labels' shape (N, spatial...).
  std::vector<std::string> label_names = {"confusion_matrix_labels"};
  if (layout) {
    names = layout_names;
    label_names.clear();
  }
  if (full) {
    for (const char* s : {"cross_entropy_split", "ce_dice_split", "ce_dice_probs",
                          "ce_dice_backward", "dice_focal_backward"})
      names.push_back(s);
    for (const char* s : {"mean_iou", "per_image_scores"}) label_names.push_back(s);
  }
  const Shape label_shape = shape.without(1);
  const bool on_logits = bench.any(names, shape), on_labels = bench.any(label_names, label_shape);
  if (!on_logits && !on_labels) return;

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       out = Tensor<float>::empty(shape);
  auto y = Tensor<int64_t>::empty(label_shape), yi = Tensor<int64_t>::empty(label_shape),
       pred = Tensor<int64_t>::empty(label_shape);
  for (auto& v : x) v = normal(rng);
  for (int64_t i = 0; i < total; ++i) {
    y[i] = (i / 64) % c;
    yi[i] = (i / 64) % 10 == 0 ? 255 : y[i];
    pred[i] = (i / 48) % c;
  }
  volatile double sink = 0;
  volatile int64_t isink = 0;
  const bool big = shape.numel() > kLarge;
  const int reps = std::max(5, bench.args().reps / (big ? 5 : 3));
  const int sort_reps = 3;  // lovasz_softmax: one sort per class, far above the floor
  constexpr int64_t kBlock = 4096;
  const int64_t per = (px + kBlock - 1) / kBlock;
  const auto floor_loop = [&] {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t blk = 0; blk < n * per; ++blk) {
      const int64_t img = blk / per, s0 = (blk % per) * kBlock, s1 = std::min(px, s0 + kBlock);
      const int64_t* lab = y.data() + img * px;
      for (int64_t k = 0; k < c; ++k) {
        const float* xs = x.data() + (img * c + k) * px;
        float* os = out.data() + (img * c + k) * px;
        for (int64_t s = s0; s < s1; ++s) os[s] = xs[s] + static_cast<float>(lab[s]);
      }
    }
  };
  const auto label_floor = [&] {
    int64_t s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t i = 0; i < total; ++i) s += y[i] + pred[i];
    isink = isink + s;
  };
  const auto logit_floor = [&] {
    double s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t blk = 0; blk < n * per; ++blk) {
      const int64_t img = blk / per, s0 = (blk % per) * kBlock, s1 = std::min(px, s0 + kBlock);
      float acc = 0.f;
      for (int64_t k = 0; k < c; ++k) {
        const float* xs = x.data() + (img * c + k) * px;
#if defined(_OPENMP)
#pragma omp simd reduction(+ : acc)
#endif
        for (int64_t j = s0; j < s1; ++j) acc += xs[j];
      }
      const int64_t* lab = y.data() + img * px;
      int64_t l = 0;
#if defined(_OPENMP)
#pragma omp simd reduction(+ : l)
#endif
      for (int64_t j = s0; j < s1; ++j) l += lab[j];
      s += static_cast<double>(acc) + static_cast<double>(l);
    }
    sink = sink + s;
  };

  auto class_weight = Tensor<float>::empty(Shape{c});
  for (int64_t k = 0; k < c; ++k) class_weight[k] = 1.f + static_cast<float>(k % 3);
  CrossEntropyOptions<float> ce_weight, ce_ignore, ce_smoothing;
  ce_weight.weight = class_weight;
  ce_ignore.ignore_index = 255;
  ce_smoothing.label_smoothing = 0.1;
  SoftmaxTverskyOptions<float> tversky;
  tversky.alpha = 0.3;
  tversky.beta = 0.7;
  ConfusionMatrix cm(c);

  std::vector<Case> cases = {
      {"cross_entropy", [&] { sink = sink + cross_entropy_value_and_grad(x, y, grad); },
       floor_loop},
      {"cross_entropy_weight",
       [&] { sink = sink + cross_entropy_value_and_grad(x, y, grad, ce_weight); }, floor_loop},
      {"cross_entropy_ignore_index",
       [&] { sink = sink + cross_entropy_value_and_grad(x, yi, grad, ce_ignore); }, floor_loop},
      {"cross_entropy_smoothing",
       [&] { sink = sink + cross_entropy_value_and_grad(x, y, grad, ce_smoothing); }, floor_loop},
      {"softmax_focal", [&] { sink = sink + softmax_focal_value_and_grad(x, y, grad); },
       floor_loop},
      {"softmax_dice", [&] { sink = sink + softmax_dice_value_and_grad(x, y, grad); }, floor_loop},
      {"softmax_jaccard", [&] { sink = sink + softmax_jaccard_value_and_grad(x, y, grad); },
       floor_loop},
      {"softmax_tversky",
       [&] { sink = sink + softmax_tversky_value_and_grad(x, y, grad, tversky); }, floor_loop},
      {"generalized_dice", [&] { sink = sink + generalized_dice_value_and_grad(x, y, grad); },
       floor_loop},
      {"ce_dice", [&] { sink = sink + ce_dice_value_and_grad(x, y, grad); }, floor_loop},
      {"dice_focal", [&] { sink = sink + dice_focal_value_and_grad(x, y, grad); }, floor_loop},
      // Defaults: one batch problem, classes present.
      {"lovasz_softmax", [&] { sink = sink + lovasz_softmax_value_and_grad(x, y, grad); },
       floor_loop, sort_reps},
      {"confusion_matrix_logits",
       [&] {
         cm.reset();
         cm.update_from_logits(x, y);
       },
       logit_floor},
  };
  // ce_dice on probability targets q (N, C, spatial...): the one-hot of y smoothed, 0.9 on
  // the label and 0.1 / (C - 1) elsewhere (allocated only when a case needs it). Its floor
  // reads the logits and q and writes one array, as floor_loop does with the labels.
  Tensor<float> q;
  const auto probs_floor = [&] {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t blk = 0; blk < n * per; ++blk) {
      const int64_t img = blk / per, s0 = (blk % per) * kBlock, s1 = std::min(px, s0 + kBlock);
      for (int64_t k = 0; k < c; ++k) {
        const float* xs = x.data() + (img * c + k) * px;
        const float* qs = q.data() + (img * c + k) * px;
        float* os = out.data() + (img * c + k) * px;
        for (int64_t s = s0; s < s1; ++s) os[s] = xs[s] + qs[s];
      }
    }
  };
  if (full && bench.any({"ce_dice_probs"}, shape)) {
    q = Tensor<float>::empty(shape);
    const float off = 0.1f / static_cast<float>(std::max<int64_t>(1, c - 1));
    for (int64_t img = 0; img < n; ++img)
      for (int64_t k = 0; k < c; ++k)
        for (int64_t s = 0; s < px; ++s)
          q[(img * c + k) * px + s] = y[img * px + s] == k ? 0.9f : off;
  }
  const auto one = Tensor<float>::full(Shape{}, 1.0f);
  const int64_t grad_bytes = shape.numel() * static_cast<int64_t>(sizeof(float));
  if (full) {
    const std::vector<Case> more = {
        // The shard split on one shard (statistics, then finalize; no all-reduce).
        {"cross_entropy_split",
         [&] { sink = sink + cross_entropy_finalize(x, y, cross_entropy_statistics(x, y), grad); },
         floor_loop},
        {"ce_dice_split",
         [&] { sink = sink + ce_dice_finalize(x, y, ce_dice_statistics(x, y), grad); }, floor_loop},
        {"ce_dice_probs", [&] { sink = sink + ce_dice_value_and_grad(x, q, grad); }, probs_floor},
        // The backward forms (grad_out 1): they allocate the gradient they return (timed: the
        // caller pays it; not counted as extra memory: it is the output).
        {"ce_dice_backward", [&] { sink = sink + ce_dice_backward(x, y, one)[0]; }, floor_loop, 0,
         grad_bytes},
        {"dice_focal_backward", [&] { sink = sink + dice_focal_backward(x, y, one)[0]; },
         floor_loop, 0, grad_bytes},
    };
    cases.insert(cases.end(), more.begin(), more.end());
  }
  if (layout) keep_only(cases, layout_names);
  bench.run(cases, shape, total, reps);
  if (layout) return;

  std::vector<Case> label_cases = {
      {"confusion_matrix_labels",
       [&] {
         cm.reset();
         cm.update(pred, y);
       },
       label_floor},
  };
  if (full) {
    const std::vector<Case> more = {
        // The scores of metrics/scores.hpp from label maps: the matrix, then mean IoU, Dice,
        // pixel accuracy, kappa, MCC and pytorch-fcn's four (the scores cost O(C^2)).
        {"mean_iou",
         [&] {
           cm.reset();
           cm.update(pred, y);
           sink = sink + average_score(cm, Score::iou, Average::macro) +
                  average_score(cm, Score::dice, Average::macro) + pixel_accuracy(cm) +
                  cohen_kappa(cm) + matthews_corrcoef(cm) + label_accuracy_score(cm).fw_iou;
         },
         label_floor},
        // One matrix per image, then the per-image mean IoU (Average::per_image).
        {"per_image_scores",
         [&] {
           const auto images = confusion_per_image(pred, y, c);
           sink = sink + average_score(images, Score::iou, Average::per_image);
         },
         label_floor},
    };
    label_cases.insert(label_cases.end(), more.begin(), more.end());
  }
  bench.run(label_cases, label_shape, total, bench.args().reps);
}

// Lovasz-Softmax on (2,21,256,256) (the shape of issue 9's target), as in bench_multiclass.
void bench_lovasz_small(const Bench& bench) {
  const Shape shape{2, 21, 256, 256};
  if (!bench.any({"lovasz_softmax"}, shape)) return;
  const int64_t n = shape[0], c = shape[1], px = shape.numel_from(2);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       out = Tensor<float>::empty(shape);
  auto y = Tensor<int64_t>::empty(shape.without(1));
  for (auto& v : x) v = normal(rng);
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = (i / 64) % c;
  volatile double sink = 0;
  const auto floor_loop = [&] {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t k = 0; k < n * c; ++k) {
      const int64_t* lab = y.data() + (k / c) * px;
      const float* xs = x.data() + k * px;
      float* os = out.data() + k * px;
      for (int64_t s = 0; s < px; ++s) os[s] = xs[s] + static_cast<float>(lab[s]);
    }
  };
  bench.run({{"lovasz_softmax", [&] { sink = sink + lovasz_softmax_value_and_grad(x, y, grad); },
              floor_loop}},
            shape, n * px, std::max(5, bench.args().reps / 3));
}

// Surface metrics on one 256^3 volume (1,1,256,256,256) float32 masks: the truth an ellipsoid
// with radii (90, 70, 60) about the centre, the prediction an ellipsoid with radii (86, 74, 58)
// about a centre moved by (3, -2, 1), with every third voxel flipped in a band of one slice about
// its surface (holes and spikes): every distance between the two surfaces is a few voxels, as for a
// good model. hd95_256cubed times surface_distance (HD, HD95, ASSD and NSD come out of one call);
// distance_transform_256cubed times the EDT of the truth alone. The floor reads the two masks once
// (the EDT's: one mask, writing one array of doubles would be more, so it shares the two-mask
// floor).
void bench_surface(const Bench& bench) {
  const Shape shape{1, 1, 256, 256, 256};
  if (!bench.any({"hd95_256cubed", "distance_transform_256cubed"}, shape)) return;
  const int64_t e = 256, total = shape.numel();
  auto truth = Tensor<float>::empty(shape), pred = Tensor<float>::empty(shape);
  const auto inside = [](double z, double y, double x, double rz, double ry, double rx) {
    return (z * z) / (rz * rz) + (y * y) / (ry * ry) + (x * x) / (rx * rx) <= 1.0;
  };
  for (int64_t z = 0; z < e; ++z)
    for (int64_t y = 0; y < e; ++y)
      for (int64_t x = 0; x < e; ++x) {
        const int64_t i = (z * e + y) * e + x;
        const double cz = static_cast<double>(z) - 128, cy = static_cast<double>(y) - 128,
                     cx = static_cast<double>(x) - 128;
        truth[i] = inside(cz, cy, cx, 90, 70, 60) ? 1.f : 0.f;
        bool p = inside(cz - 3, cy + 2, cx - 1, 86, 74, 58);
        if (z == 100 && (x + y) % 3 == 0 && inside(cz - 3, cy + 2, cx - 1, 92, 80, 64) &&
            !inside(cz - 3, cy + 2, cx - 1, 80, 68, 52))
          p = !p;
        pred[i] = p ? 1.f : 0.f;
      }
  volatile double sink = 0;
  const auto floor_loop = [&] {
    double s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t i = 0; i < total; ++i) s += static_cast<double>(truth[i] + pred[i]);
    sink = sink + s;
  };
  bench.run(
      {{"hd95_256cubed",
        [&] { sink = sink + surface_distance(pred, truth).hausdorff_percentile[0]; }, floor_loop},
       {"distance_transform_256cubed", [&] { sink = sink + distance_transform(truth)[0]; },
        floor_loop}},
      shape, total, 3);
}

// The multi-class surface metrics on label volumes (2,96,96,96) with 4 classes: the truth
// concentric shells about the centre (class min(3, r / 12) at distance r), the prediction the
// same about a centre moved by (2, -1, 1). surface_distance_labels scores classes 1 to 3 of
// both images in one call. The floor reads the two label volumes once.
void bench_surface_labels(const Bench& bench) {
  const Shape shape{2, 96, 96, 96};
  if (!bench.any({"surface_distance_labels"}, shape)) return;
  const int64_t e = 96, total = shape.numel();
  auto truth = Tensor<int64_t>::empty(shape), pred = Tensor<int64_t>::empty(shape);
  const auto shell = [](double z, double y, double x) {
    return std::min<int64_t>(3, static_cast<int64_t>(std::sqrt(z * z + y * y + x * x) / 12));
  };
  for (int64_t i = 0; i < total; ++i) {
    const double z = static_cast<double>(i / (e * e) % e) - 48,
                 y = static_cast<double>(i / e % e) - 48, x = static_cast<double>(i % e) - 48;
    truth[i] = shell(z, y, x);
    pred[i] = shell(z - 2, y + 1, x - 1);
  }
  volatile double sink = 0;
  volatile int64_t isink = 0;
  const auto floor_loop = [&] {
    int64_t s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t i = 0; i < total; ++i) s += truth[i] + pred[i];
    isink = isink + s;
  };
  bench.run(
      {{"surface_distance_labels",
        [&] {
          sink = sink + surface_distance_labels(pred, truth, {1, 2, 3}).mean_hausdorff_percentile;
        },
        floor_loop}},
      shape, total, std::max(3, bench.args().reps / 5));
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const Bench bench(args);
  const Shape volume{2, 4, 96, 96, 96};
  bench_binary(bench, Shape{8, 1, 512, 512}, true);
  bench_binary(bench, volume, false);
  bench_multiclass(bench, volume, false);
  bench_surface_labels(bench);
  if (!args.quick) {
    bench_multiclass(bench, Shape{8, 21, 512, 512}, true);
    bench_multiclass(bench, Shape{4, 150, 256, 256}, false);
    // One pixel per image (classification-like), and the same pixels as one image: the layout
    // cost of docs/conventions.md's "Layout and speed", measured in the same run.
    bench_multiclass(bench, Shape{1 << 18, 21, 1}, false, true);
    bench_multiclass(bench, Shape{1, 21, 1 << 18}, false, true);
    bench_binary(bench, Shape{1 << 20, 1, 1}, false, true);
    bench_binary(bench, Shape{1, 1, 1 << 20}, false, true);
    bench_lovasz_small(bench);
    bench_surface(bench);
  }
  return 0;
}
