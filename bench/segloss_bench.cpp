// segloss-bench: times each loss's fused value_and_grad (for the boundary weight map and the
// Dice metric, which have no gradient, the call itself) against the memory-bandwidth floor.
//
// For every case and thread count it prints one JSON object per line:
//   {"name", "shape", "device", "threads", "median_ms", "floor_ms", "ratio_to_floor", "mpix_per_s"}
// floor_ms is the median time, in the same run and at the same thread count, of a plain
// streaming loop that reads the case's input arrays once and writes one array the size of the
// logits: what any implementation must at least spend moving memory.
//
// Usage: segloss-bench [--threads 1,2] [--reps 25] [--filter substring]
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

using namespace segloss;

namespace {

struct Args {
  std::vector<int> threads{1, 2};
  int reps = 25;
  std::string filter;
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
    } else {
      std::fprintf(stderr, "usage: segloss-bench [--threads 1,2] [--reps 25] [--filter name]\n");
      std::exit(k == "--help" ? 0 : 2);
    }
  }
  return a;
}

double median_ms(int reps, const std::function<void()>& work) {
  for (int i = 0; i < 3; ++i) work();  // warm-up: page faults, caches, thread pool
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

// The floor: read each input once, write one array the size of the logits.
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

void print_line(const std::string& name, const Shape& shape, int threads, double ms, double floor,
                int64_t pixels) {
  std::printf(
      "{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"cpu\", \"threads\": %d, "
      "\"median_ms\": %.3f, \"floor_ms\": %.3f, \"ratio_to_floor\": %.2f, \"mpix_per_s\": %.1f}\n",
      name.c_str(), shape.str().c_str(), threads, ms, floor, ms / floor,
      static_cast<double>(pixels) / (ms * 1e3));
  std::fflush(stdout);
}

// The multi-class losses (cross_entropy, softmax_focal) on (8,21,512,512) float32 logits and
// int64 labels (i / 64) % 21. Their floor reads the logits and the labels once and writes one
// array the size of the logits, in blocks of pixels as the kernels do (the labels of a block
// stay in L1).
void bench_multiclass(const Args& args) {
  const Shape shape{8, 21, 512, 512};
  const int64_t n = shape[0], c = shape[1], px = shape.numel_from(2);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       out = Tensor<float>::empty(shape);
  auto y = Tensor<int64_t>::empty(shape.without(1));
  for (auto& v : x) v = normal(rng);
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = (i / 64) % c;
  volatile double sink = 0;
  const int reps = std::max(5, args.reps / 3);
  constexpr int64_t kBlock = 4096;
  const auto floor_loop = [&] {
    const int64_t blocks = n * ((px + kBlock - 1) / kBlock);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t img = b / ((px + kBlock - 1) / kBlock);
      const int64_t s0 = (b % ((px + kBlock - 1) / kBlock)) * kBlock,
                    s1 = std::min(px, s0 + kBlock);
      const int64_t* lab = y.data() + img * px;
      for (int64_t k = 0; k < c; ++k) {
        const float* xs = x.data() + (img * c + k) * px;
        float* os = out.data() + (img * c + k) * px;
        for (int64_t s = s0; s < s1; ++s) os[s] = xs[s] + static_cast<float>(lab[s]);
      }
    }
  };
  const std::vector<std::pair<std::string, std::function<void()>>> losses = {
      {"cross_entropy", [&] { sink = sink + cross_entropy_value_and_grad(x, y, grad); }},
      {"softmax_focal", [&] { sink = sink + softmax_focal_value_and_grad(x, y, grad); }},
      {"softmax_dice", [&] { sink = sink + softmax_dice_value_and_grad(x, y, grad); }},
      {"generalized_dice", [&] { sink = sink + generalized_dice_value_and_grad(x, y, grad); }},
      {"ce_dice", [&] { sink = sink + ce_dice_value_and_grad(x, y, grad); }},
      {"dice_focal", [&] { sink = sink + dice_focal_value_and_grad(x, y, grad); }},
      // The shard split on one shard (statistics, then finalize; no all-reduce).
      {"cross_entropy_split",
       [&] { sink = sink + cross_entropy_finalize(x, y, cross_entropy_statistics(x, y), grad); }},
      {"ce_dice_split",
       [&] { sink = sink + ce_dice_finalize(x, y, ce_dice_statistics(x, y), grad); }},
  };
  for (const auto& [name, run] : losses) {
    if (!args.filter.empty() && name.find(args.filter) == std::string::npos) continue;
    for (int threads : args.threads) {
      set_num_threads(threads);
      const double ms = median_ms(reps, run);
      const double floor = median_ms(reps, floor_loop);
      print_line(name, shape, threads, ms, floor, n * px);
    }
  }
}

// lovasz_softmax on (2,21,256,256) float32 logits and int64 labels (i / 64) % 21 (the issue's
// shape), defaults: one batch problem, classes present. Its floor is cross_entropy's: read the
// logits and the labels once, write one array the size of the logits. (The loss sorts 21 arrays
// of 131072 errors: it is bound by the sorts, far above this floor.)
void bench_lovasz_softmax(const Args& args) {
  const Shape shape{2, 21, 256, 256};
  const int64_t n = shape[0], c = shape[1], px = shape.numel_from(2);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       out = Tensor<float>::empty(shape);
  auto y = Tensor<int64_t>::empty(shape.without(1));
  for (auto& v : x) v = normal(rng);
  for (int64_t i = 0; i < y.numel(); ++i) y[i] = (i / 64) % c;
  volatile double sink = 0;
  const int reps = std::max(5, args.reps / 3);
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
  for (int threads : args.threads) {
    set_num_threads(threads);
    const double ms =
        median_ms(reps, [&] { sink = sink + lovasz_softmax_value_and_grad(x, y, grad); });
    const double floor = median_ms(reps, floor_loop);
    print_line("lovasz_softmax", shape, threads, ms, floor, n * px);
  }
}

// The confusion matrix with 21 classes: from int64 label maps (8,512,512), truth (i / 64) % 21
// and prediction (i / 48) % 21 over the flat index; and fused from (8,21,512,512) float32 logits
// (normal(0, 3)) with the same truth. Floors: a plain loop that reads the two label maps once,
// and one that reads the logits and the labels once (in blocks of pixels as the fused kernel),
// each summing what it reads.
void bench_confusion_matrix(const Args& args) {
  const Shape shape{8, 21, 512, 512};
  const int64_t n = shape[0], c = shape[1], px = shape.numel_from(2), total = n * px;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape);
  auto y = Tensor<int64_t>::empty(shape.without(1)), p = Tensor<int64_t>::empty(shape.without(1));
  for (auto& v : x) v = normal(rng);
  for (int64_t i = 0; i < total; ++i) {
    y[i] = (i / 64) % c;
    p[i] = (i / 48) % c;
  }
  volatile int64_t isink = 0;
  volatile double sink = 0;
  const int reps = std::max(5, args.reps / 3);
  ConfusionMatrix cm(c);
  const auto label_floor = [&] {
    int64_t s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t i = 0; i < total; ++i) s += y[i] + p[i];
    isink = isink + s;
  };
  constexpr int64_t kBlock = 4096;
  const int64_t per = (px + kBlock - 1) / kBlock;
  const auto logit_floor = [&] {
    double s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t b = 0; b < n * per; ++b) {
      const int64_t img = b / per, s0 = (b % per) * kBlock, s1 = std::min(px, s0 + kBlock);
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
  const bool labels = args.filter.empty() ||
                      std::string("confusion_matrix_labels").find(args.filter) != std::string::npos;
  const bool logits = args.filter.empty() ||
                      std::string("confusion_matrix_logits").find(args.filter) != std::string::npos;
  for (int threads : args.threads) {
    set_num_threads(threads);
    if (labels) {
      const double ms = median_ms(args.reps, [&] {
        cm.reset();
        cm.update(p, y);
      });
      print_line("confusion_matrix_labels", shape.without(1), threads, ms,
                 median_ms(args.reps, label_floor), total);
    }
    if (logits) {
      const double ms = median_ms(reps, [&] {
        cm.reset();
        cm.update_from_logits(x, y);
      });
      print_line("confusion_matrix_logits", shape, threads, ms, median_ms(reps, logit_floor),
                 total);
    }
  }
}

// Surface metrics on one 256^3 volume (1,1,256,256,256) float32 masks: the truth an ellipsoid
// with radii (90, 70, 60) about the centre, the prediction an ellipsoid with radii (86, 74, 58)
// about a centre moved by (3, -2, 1), with every third voxel flipped in a band of one slice about
// its surface (holes and spikes): every distance between the two surfaces is a few voxels, as for a
// good model. hd95_256cubed times surface_distance (HD, HD95, ASSD and NSD come out of one call);
// distance_transform_256cubed times the EDT of the truth alone. The floor reads the two masks once
// (the EDT's: one mask, writing one array of doubles would be more, so it shares the two-mask
// floor).
void bench_surface(const Args& args) {
  const bool hd =
      args.filter.empty() || std::string("hd95_256cubed").find(args.filter) != std::string::npos;
  const bool edt =
      args.filter.empty() ||
      std::string("distance_transform_256cubed").find(args.filter) != std::string::npos;
  if (!hd && !edt) return;
  const Shape shape{1, 1, 256, 256, 256};
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
  const int reps = std::max(3, args.reps / 5);
  const auto floor_loop = [&] {
    double s = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : s)
#endif
    for (int64_t i = 0; i < total; ++i) s += static_cast<double>(truth[i] + pred[i]);
    sink = sink + s;
  };
  for (int threads : args.threads) {
    set_num_threads(threads);
    if (hd) {
      const double ms = median_ms(
          reps, [&] { sink = sink + surface_distance(pred, truth).hausdorff_percentile[0]; });
      print_line("hd95_256cubed", shape, threads, ms, median_ms(reps, floor_loop), total);
    }
    if (edt) {
      const double ms = median_ms(reps, [&] { sink = sink + distance_transform(truth)[0]; });
      print_line("distance_transform_256cubed", shape, threads, ms, median_ms(reps, floor_loop),
                 total);
    }
  }
}

// The tape (core/tape.hpp) against the fused calls, on the binary case's inputs. In these lines
// floor_ms is the direct fused value_and_grad call (into a reused gradient buffer) measured in
// the same run, so ratio_to_floor is the ratio to the fused call, and "baseline" says so:
//   tape_node:bce_dice   Tape, leaf, ad::bce_dice, backward, grad: the tape's overhead when a
//                        loss is used alone (issue 5's target: <= 1.05);
//   composed:soft_dice   soft_dice written from primitives (losses/composed.hpp), forward and
//                        backward on a tape, against the fused soft_dice.
//   composed:lovasz_hinge
//                        lovasz_hinge (per image) from primitives (sort_desc, cumsum, ...),
//                        against the fused lovasz_hinge.
void print_tape_line(const std::string& name, const Shape& shape, int threads, double ms,
                     double fused_ms, int64_t pixels) {
  std::printf(
      "{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"cpu\", \"threads\": %d, "
      "\"median_ms\": %.3f, \"floor_ms\": %.3f, \"ratio_to_floor\": %.3f, \"mpix_per_s\": %.1f, "
      "\"baseline\": \"fused\"}\n",
      name.c_str(), shape.str().c_str(), threads, ms, fused_ms, ms / fused_ms,
      static_cast<double>(pixels) / (ms * 1e3));
  std::fflush(stdout);
}

void bench_tape(const Args& args, const Tensor<float>& x, const Tensor<float>& t,
                Tensor<float>& grad) {
  volatile double sink = 0;
  const auto tape_bce_dice = [&] {
    ad::Tape<float> tape;
    const ad::Var<float> v = tape.leaf(x);
    const ad::Var<float> l = ad::bce_dice(v, t);
    tape.backward(l);
    sink = sink + l.item() + tape.grad(v)[0];
  };
  const auto composed_soft_dice = [&] {
    ad::Tape<float> tape;
    const ad::Var<float> v = tape.leaf(x);
    const ad::Var<float> l = composed::soft_dice(tape, v, t);
    tape.backward(l);
    sink = sink + l.item() + tape.grad(v)[0];
  };
  const auto composed_lovasz_hinge = [&] {
    ad::Tape<float> tape;
    const ad::Var<float> v = tape.leaf(x);
    const ad::Var<float> l = composed::lovasz_hinge(tape, v, t);
    tape.backward(l);
    sink = sink + l.item() + tape.grad(v)[0];
  };
  const struct {
    const char* name;
    std::function<void()> tape, fused;
  } cases[] = {
      {"tape_node:bce_dice", tape_bce_dice,
       [&] { sink = sink + bce_dice_value_and_grad(x, t, grad); }},
      {"composed:soft_dice", composed_soft_dice,
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad); }},
      {"composed:lovasz_hinge", composed_lovasz_hinge,
       [&] { sink = sink + lovasz_hinge_value_and_grad(x, t, grad); }},
  };
  for (const auto& c : cases) {
    if (!args.filter.empty() && std::string(c.name).find(args.filter) == std::string::npos)
      continue;
    for (int threads : args.threads) {
      set_num_threads(threads);
      const double fused = median_ms(args.reps, c.fused);
      const double ms = median_ms(args.reps, c.tape);
      print_tape_line(c.name, x.shape(), threads, ms, fused, x.numel());
    }
  }
}

struct Case {
  std::string name;
  std::vector<const float*> inputs;  // what the loss reads, for the floor
  std::function<void()> run;
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const Shape shape{8, 1, 512, 512};
  const int64_t n = shape.numel();

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  auto x = Tensor<float>::empty(shape), t = Tensor<float>::empty(shape),
       w = Tensor<float>::empty(shape), grad = Tensor<float>::empty(shape),
       grad2 = Tensor<float>::empty(shape), out = Tensor<float>::empty(shape),
       p = Tensor<float>::empty(shape);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = normal(rng);
    t[i] = (i / 512 / 128 + i % 512 / 128) % 2 ? 1.f : 0.f;
    w[i] = 1.f + (t[i] > 0.5f ? 2.f : 0.f);
    p[i] = 1.f / (1.f + std::exp(-x[i]));  // probabilities for binary_cross_entropy
  }

  volatile double sink = 0;
  BceWithLogitsOptions<float> weighted;
  weighted.weight = w;
  SoftDiceOptions<float> dice_weighted;  // Carvana WeightedSoftDiceLoss: w^2 in every sum
  dice_weighted.weight = w;
  TverskyOptions<float> focal_tversky;
  focal_tversky.alpha = 0.3;
  focal_tversky.beta = 0.7;
  focal_tversky.gamma = 4.0 / 3.0;
  BceDiceOptions<float> bce_dice_weighted;  // weights in both terms, log Dice
  bce_dice_weighted.bce.weight = w;
  bce_dice_weighted.dice.weight = w;
  bce_dice_weighted.dice.log = true;
  BceWithLogitsOptions<float> weight_sum = weighted;  // Carvana's WeightedBCELoss2d
  weight_sum.mean_over = BceMeanOver::weight_sum;
  BoundaryWeightOptions k11, k51;
  k11.kernel_size = 11;
  k51.kernel_size = 51;
  // The Carvana combined_loss(is_weight=True): the boundary weight map of the labels (k = 21 for
  // H = 512), then BCE normalized by the weight sum + Dice with w^2 in every sum, smooth 2 and 1.
  auto boundary = Tensor<float>::empty(shape);
  BceDiceOptions<float> carvana;
  carvana.bce.weight = boundary;
  carvana.bce.mean_over = BceMeanOver::weight_sum;
  carvana.dice.weight = boundary;
  carvana.dice.smooth_nr = 2;
  carvana.dice.smooth_dr = 1;
  const int64_t dims[4] = {shape[0], shape[1], shape[2], shape[3]};
  const segloss_tensor cx = segloss_tensor_make(x.data(), SEGLOSS_F32, 4, dims);
  const segloss_tensor ct = segloss_tensor_make(t.data(), SEGLOSS_F32, 4, dims);
  const segloss_tensor cgrad = segloss_tensor_make(grad.data(), SEGLOSS_F32, 4, dims);
  std::vector<Case> cases = {
      {"bce_with_logits",
       {x.data(), t.data()},
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad); }},
      {"bce_with_logits_weighted",
       {x.data(), t.data(), w.data()},
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, weighted); }},
      {"bce_with_logits_weighted_mean_over_weight_sum",
       {x.data(), t.data(), w.data()},
       [&] { sink = sink + bce_with_logits_value_and_grad(x, t, grad, weight_sum); }},
      {"binary_cross_entropy",
       {p.data(), t.data()},
       [&] { sink = sink + binary_cross_entropy_value_and_grad(p, t, grad); }},
      {"soft_dice",
       {x.data(), t.data()},
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad); }},
      {"soft_dice_weighted",
       {x.data(), t.data(), w.data()},
       [&] { sink = sink + soft_dice_value_and_grad(x, t, grad, dice_weighted); }},
      {"soft_jaccard",
       {x.data(), t.data()},
       [&] { sink = sink + soft_jaccard_value_and_grad(x, t, grad); }},
      {"focal_tversky",
       {x.data(), t.data()},
       [&] { sink = sink + tversky_value_and_grad(x, t, grad, focal_tversky); }},
      {"bce_with_logits+soft_dice",
       {x.data(), t.data()},
       [&] { sink = sink + bce_dice_value_and_grad(x, t, grad); }},
      {"lovasz_hinge",
       {x.data(), t.data()},
       [&] { sink = sink + lovasz_hinge_value_and_grad(x, t, grad); }},
      {"carvana_combined_loss",
       {x.data(), t.data()},
       [&] {
         boundary_weights(t, boundary);
         sink = sink + bce_dice_value_and_grad(x, t, grad, carvana);
       }},
      {"bce_with_logits+soft_dice_weighted_log",
       {x.data(), t.data(), w.data()},
       [&] { sink = sink + bce_dice_value_and_grad(x, t, grad, bce_dice_weighted); }},
      // The weight map of the mask t (no gradient): k = 11 and k = 51 should cost the same.
      {"boundary_weights_k11", {t.data()}, [&] { boundary_weights(t, grad, k11); }},
      {"boundary_weights_k51", {t.data()}, [&] { boundary_weights(t, grad, k51); }},
      // The thresholded Dice metric (no gradient; writes only its per-image scores).
      {"dice_score", {x.data(), t.data()}, [&] { sink = sink + dice_score(x, t).mean; }},
      {"sigmoid_focal",
       {x.data(), t.data()},
       [&] { sink = sink + sigmoid_focal_value_and_grad(x, t, grad); }},
      // The shard split on one shard (statistics, then finalize; no all-reduce): the overhead
      // of the split against the fused path (docs/distributed.md).
      {"soft_dice_split",
       {x.data(), t.data()},
       [&] { sink = sink + soft_dice_finalize(x, t, soft_dice_statistics(x, t), grad); }},
      {"bce_with_logits+soft_dice_split",
       {x.data(), t.data()},
       [&] { sink = sink + bce_dice_finalize(x, t, bce_dice_statistics(x, t), grad); }},
      {"bce_with_logits_split",
       {x.data(), t.data()},
       [&] {
         sink = sink + bce_with_logits_finalize(x, t, bce_with_logits_statistics(x, t), grad);
       }},
      // The same call through the C API (libsegloss_c): the boundary should cost nothing.
      {"capi_bce_with_logits",
       {x.data(), t.data()},
       [&] {
         double v = 0;
         if (segloss_bce_with_logits_value_and_grad(&cx, &ct, nullptr, &v, &cgrad, nullptr) !=
             SEGLOSS_OK)
           std::fprintf(stderr, "%s\n", segloss_last_error());
         sink = sink + v;
       }},
  };

  for (const Case& c : cases) {
    if (!args.filter.empty() && c.name.find(args.filter) == std::string::npos) continue;
    for (int threads : args.threads) {
      set_num_threads(threads);
      const double ms = median_ms(args.reps, c.run);
      const double floor = median_ms(args.reps, [&] { stream(c.inputs, out.data(), n); });
      print_line(c.name, shape, threads, ms, floor, n);
    }
  }
  bench_tape(args, x, t, grad);
  bench_multiclass(args);
  if (args.filter.empty() || std::string("lovasz_softmax").find(args.filter) != std::string::npos)
    bench_lovasz_softmax(args);
  bench_confusion_matrix(args);
  bench_surface(args);
  return 0;
}
