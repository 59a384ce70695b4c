// segloss-cuda-bench: the CUDA losses against the device's copy bandwidth, measured in the
// same run.
//
// Cases (one JSON line each on stdout):
//   copy              cudaMemcpyAsync device to device of the logits' bytes (--n floats);
//                     bytes = read + written.
//   bce_dice_vg       bce_dice_value_and_grad, value kept on the device (no wait per call):
//                     pass 1 reads logits and targets, pass 2 reads them again and writes the
//                     gradient: 5 floats per element.
//   bce_vg            bce_with_logits_value_and_grad (one pass): 3 floats per element.
//   soft_dice_vg      soft_dice_value_and_grad: 5 floats per element.
//   cross_entropy_vg  cross_entropy_value_and_grad on --ce-shape logits (default 16,21,448,448:
//                     67.4M >= 2^26 logits, C = 21) with int64 labels (i / 64) % C, value kept on
//                     the device: logits read once, labels read once, gradient written once,
//                     (8 C + 8) bytes per pixel (the kernels also read the labels in the label
//                     pass, 8 more bytes per pixel, not counted).
//   bce_dice_vg_stats_bce  bce_dice_vg with the BCE term summed in pass 1 instead of the
//                     gradient pass (the schedule before session 14; core/cuda_internal.hpp
//                     set_bce_value_in_gradient), for the comparison in the same process: the
//                     same bytes and value bits.
//   bce_dice_vg_tail_kernels  bce_dice_vg with its finalize and BCE value steps as kernels of
//                     their own after each combine instead of run by the combine's last block
//                     (set_last_block_tails; before session 15): the same bytes and bits.
//   bce_dice_weighted_vg  bce_dice_vg with a BCE weight per element (the boundary-weighted
//                     recipe's shape of work): each pass also reads the weight, 7 floats per
//                     element; the BCE term summed in the gradient pass (the default since
//                     2026-12-04).
//   bce_dice_weighted_vg_stats_bce  the same with the BCE term summed in pass 1
//                     (set_bce_value_in_gradient_weighted(false); the default before
//                     2026-12-04), for the comparison.
//   bce_dice_vg_scalar_loads, soft_dice_vg_scalar_loads, bce_vg_scalar_loads  the same calls
//                     with the passes' scalar loads and stores (plane_pass_kernel) instead of
//                     16-byte ones (quad_pass_kernel; set_quad_loads; before session 16, session
//                     17 for bce_vg): the same bytes, another cut of the sums. (The weighted
//                     passes keep the scalar ones.)
//   bce_dice_vg_target_floats, soft_dice_vg_target_floats  the same calls with the gradient
//                     pass reading the targets instead of the bits the statistics pass wrote of
//                     them (set_target_bits; before session 17). min_bytes stays issue 7's (the
//                     targets read in both passes): with the bits the calls move 4 floats and
//                     2/32 of one per element (the bench's targets are binary), so their
//                     fraction_of_copy is not a bandwidth fraction of the bytes they move.
//   bce_dice_vg_forward_order, soft_dice_vg_forward_order  the same calls with the gradient
//                     pass's blocks in index order instead of from the last range, where the
//                     statistics pass ended (set_gradient_from_the_end; before session 16):
//                     the same bytes and bits.
//   cross_entropy_vg_registers  cross_entropy_vg with the logits held in registers instead of
//                     staged through shared memory (set_cross_entropy_staging; the pass before
//                     session 13's last change): the same bytes and bits.
//   cross_entropy_vg_tail_kernels  cross_entropy_vg with prepare and finish as kernels of their
//                     own instead of run by the last block of the pass before them
//                     (set_last_block_tails; before session 15): the same bytes and bits.
//   cross_entropy_vg_label_reads  cross_entropy_vg with the fused pass reading the caller's int64
//                     labels instead of the byte per pixel the label pass wrote of them
//                     (set_label_codes; before session 18): 184 bytes per pixel at C = 21
//                     against 178 with the codes (min_bytes counts 176 for both), the same bits.
//   cross_entropy_vg_label_grid  cross_entropy_vg with the label pass on the fused pass's grid, a
//                     label per thread, instead of its own smaller grid of several labels a thread
//                     (set_label_pass_own_grid; before 2026-12-04): the same bytes and bits.
//   cross_entropy_vg_quads  cross_entropy_vg with the staged pass taking four pixels a thread with
//                     16-byte copies and stores (set_cross_entropy_quads(true); off by default
//                     until a GPU has measured it, 2026-12-04): the same bytes, results within
//                     rounding.
//   softmax_dice_vg_walk  softmax_dice_vg with the passes that walk the class axis in memory
//                     instead of the staged ones (set_softmax_overlap_staging; the passes before
//                     session 14), for the comparison in the same process.
//   softmax_dice_vg_tail_kernels  softmax_dice_vg with the finalize as a kernel of its own (as
//                     bce_dice_vg_tail_kernels).
//   softmax_dice_vg   softmax_dice_value_and_grad on the cross_entropy inputs (session 11: the
//                     device-value form): the statistics pass reads logits and labels, the
//                     gradient pass reads them again and writes the gradient: (12 C + 16) bytes
//                     per pixel.
//   ce_dice_vg        ce_dice_value_and_grad on the same inputs (device value): the math needs
//                     the same two passes as softmax_dice (the Dice sums before any gradient),
//                     so the same (12 C + 16) bytes; the CUDA path runs the two terms apart (a
//                     cross-entropy pass, then the Dice passes adding to its gradient), so this
//                     case shows what a fused one-softmax kernel would gain.
//   softmax_focal_vg  softmax_focal_value_and_grad (gamma 2) on the cross_entropy inputs: the
//                     same minimum bytes as cross_entropy; it moves the labels twice (a label
//                     pass counts the pixels the mean divides by, then the fused pass).
//   cross_entropy_vg_c4  cross_entropy_value_and_grad at C = 4 on the same logits' memory viewed
//                     as (N, 4, H C / 4, W, ...), with labels (i / 64) % 4: the register bucket
//                     C <= 8, whose float kernel grew from 32 to 40 registers in session 32
//                     (bench/RESULTS.md); the same minimum bytes per logit and per pixel as
//                     cross_entropy_vg.
//   cross_entropy_vg_one_pixel, softmax_focal_vg_one_pixel, bce_vg_one_pixel
//                     the same calls on the same memory viewed as one pixel per image:
//                     (pixels, C, 1) and (elements, 1, 1), PyTorch's (N, C) of a classifier. The
//                     CPU walks these layouts by joined images (backends/cpu/fold_images.hpp,
//                     flat_planes.hpp); these lines show whether the GPU's grids need the same.
// Keys: {"name", "shape", "device", "median_ms", "min_bytes", "gb_per_s", "copy_gb_per_s",
// "fraction_of_copy", "back_to_back_ms", "back_to_back_fraction_of_copy", "bytes_moved",
// "moved_fraction_of_copy"}: median of --reps timed calls (cudaEvents on one stream, after the
// warm-up: at least 3 calls and at least --warmup-ms of wall time, 200 by default, so that the
// timed calls do not depend on how fast the GPU's clocks leave idle: an H200 idles at 345 MHz,
// 3 calls are about 1.5 ms of work, and these passes are bound by instructions and warps more
// than by bytes); the forwards are left out: they return a new tensor, whose cudaMalloc and
// cudaFree would be timed with them; gb_per_s = min_bytes / median (the minimum bytes the math must
// move, not what the kernels move); fraction_of_copy = gb_per_s / the copy case's.
// back_to_back_ms: the time per call of --reps calls enqueued back to back between two events
// (the host running ahead of the GPU, as in a training loop); back_to_back_fraction_of_copy
// compares it with the copy measured the same way. Issue 7's targets are on median_ms; the
// difference between the two is the host's work and launch overhead that an idle GPU waits for.
// bytes_moved: what the call's kernels read and write by their design, on the bench's inputs
// (binary targets, int64 labels, C = 21, the switches as the case sets them): a count from the
// code's passes, not a profiler's; the partials, the headers and the target bits' flag bytes
// (a byte per thread and range) are left out. It differs from min_bytes where the kernels move
// more than the math needs (cross_entropy: the label pass reads the labels, then writes a code
// per pixel that the fused pass reads: (8 C + 10) bytes per pixel; ce_dice: its two terms run
// apart, (24 C + 26)) or fewer (bce_dice, soft_dice: a bit per binary target instead of the
// float in the gradient pass, 16.25 bytes per element against 20); moved_fraction_of_copy =
// (bytes_moved / median) / the copy's GB/s: how close the kernels come to the copy on the bytes
// they move. Issue 7's targets stay on min_bytes (fraction_of_copy).
//
// Usage: segloss-cuda-bench [--n 64,1,1024,1024] [--ce-shape 16,21,448,448] [--reps 20]
//                           [--warmup-ms 200] [--filter name] [--list]
// --filter runs the copy case and the case of exactly that name; --list prints the case names
// (without touching the GPU's memory). After each warm-up and each timed call the bench checks
// cudaGetLastError and synchronizes, and aborts naming the case on an error.
// A new case is one entry of `cases` in main: its name, its minimum bytes, the bytes it moves,
// and a callable that enqueues one call on the current stream (cross_entropy: logits and
// labels, C = 21).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <segloss/core/cuda_internal.hpp>
#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "segloss-cuda-bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Args {
  Shape shape{64, 1, 1024, 1024};    // 2^26 logits
  Shape ce_shape{16, 21, 448, 448};  // cross_entropy: C = 21, 67.4M logits
  int reps = 20;
  double warmup_ms = 200.0;
  std::string filter;
  bool list = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--reps" && i + 1 < argc) {
      a.reps = std::max(1, std::atoi(argv[++i]));
    } else if (k == "--warmup-ms" && i + 1 < argc) {
      a.warmup_ms = std::max(0.0, std::atof(argv[++i]));
    } else if (k == "--list") {
      a.list = true;
    } else if (k == "--filter" && i + 1 < argc) {
      a.filter = argv[++i];
    } else if ((k == "--n" || k == "--ce-shape") && i + 1 < argc) {
      Shape s;
      std::string v = argv[++i];
      for (size_t p = 0; p <= v.size();) {
        const size_t q = std::min(v.find(',', p), v.size());
        s.push_back(std::atoll(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
      (k == "--n" ? a.shape : a.ce_shape) = s;
    } else {
      std::fprintf(stderr,
                   "usage: segloss-cuda-bench [--n 64,1,1024,1024] [--ce-shape 16,21,448,448] "
                   "[--reps 20] [--warmup-ms 200] [--filter name] [--list]\n");
      std::exit(k == "--help" ? 0 : 2);
    }
  }
  return a;
}

// Aborts naming the case when a launch failed or the stream holds an error: a call that enqueued
// nothing (a failed launch, a wrong stream) would otherwise be timed as impossibly fast.
void check_case(cudaStream_t s, const std::string& name, const char* when) {
  const std::string what = name + ": " + when;
  check(cudaGetLastError(), (what + " (cudaGetLastError)").c_str());
  check(cudaStreamSynchronize(s), (what + " (cudaStreamSynchronize)").c_str());
  check(cudaDeviceSynchronize(), (what + " (cudaDeviceSynchronize)").c_str());
}

// Runs f, turning a segloss::Error into an abort that names the case.
void run_case(const std::string& name, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "segloss-cuda-bench: %s: %s\n", name.c_str(), e.what());
    std::exit(1);
  }
}

// Median time (ms) of `reps` calls of f on stream s, each between two events, after the warm-up:
// at least 3 calls and at least warmup_ms of wall time (at most 10,000 calls), each checked for
// errors, as are the timed calls.
double median_ms(cudaStream_t s, int reps, double warmup_ms, const std::string& name,
                 const std::function<void()>& f) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) {
    run_case(name, f);
    check_case(s, name, "warm-up");
    const std::chrono::duration<double, std::milli> spent =
        std::chrono::steady_clock::now() - start;
    if (i >= 2 && spent.count() >= warmup_ms) break;
  }
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a, s), "cudaEventRecord");
    run_case(name, f);
    check(cudaEventRecord(b, s), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    check_case(s, name, "timed call");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Time (ms) per call of `reps` calls of f enqueued back to back between two events, after one
// more call: the GPU works through the queue while the host enqueues the next calls, so the
// host's work per call and the launch overhead are hidden as long as the host is ahead (a
// training loop's situation); the drain and fill at each boundary between dependent kernels
// remain. median_ms starts each call on an idle GPU instead, which counts the host's work before
// the first kernel too.
double back_to_back_ms(cudaStream_t s, int reps, const std::string& name,
                       const std::function<void()>& f) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  run_case(name, f);
  check(cudaEventRecord(a, s), "cudaEventRecord");
  for (int i = 0; i < reps; ++i) run_case(name, f);
  check(cudaEventRecord(b, s), "cudaEventRecord");
  check(cudaEventSynchronize(b), "cudaEventSynchronize");
  check_case(s, name, "back-to-back calls");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return static_cast<double>(ms) / std::max(reps, 1);
}

struct Case {
  std::string name;
  Shape shape;  // the logits' shape the case runs on, printed
  double min_bytes;
  double bytes_moved;  // what the call's kernels read and write by their design (see the top)
  std::function<void()> run;
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (!cuda::available()) {
    std::printf("{\"name\": \"none\", \"skipped\": \"no CUDA device\"}\n");
    return 0;
  }
  // --list builds the cases on a tiny shape: only their names are printed.
  const Shape shape = args.list ? Shape{1, 1, 1, 1} : args.shape;
  const int64_t n = shape.numel();
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda::StreamScope scope(s);

  // Logits ~ normal(0, 3) and a binary target with large blobs, from a fixed seed.
  std::vector<float> hx(static_cast<size_t>(n)), hz(static_cast<size_t>(n));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  const int64_t w = shape[shape.rank() - 1];
  for (int64_t i = 0; i < n; ++i) {
    hx[static_cast<size_t>(i)] = normal(rng);
    hz[static_cast<size_t>(i)] = static_cast<float>(((i / w / 128) + (i % w / 128)) % 2);
  }
  const auto x = Tensor<float>::view(hx.data(), shape).to(Device::cuda);
  const auto z = Tensor<float>::view(hz.data(), shape).to(Device::cuda);
  auto grad = Tensor<float>::empty(shape, Device::cuda);
  auto copy = Tensor<float>::empty(shape, Device::cuda);
  auto value = Tensor<float>::empty(Shape{}, Device::cuda);
  const double f4 = 4.0 * static_cast<double>(n);  // bytes of one float tensor
  // The weighted bce_dice cases' BCE weight, one per element (1, 1.5 or 2 in blocks of 64).
  Tensor<float> bce_w;
  if (args.filter.empty() || args.filter.rfind("bce_dice_weighted", 0) == 0) {
    std::vector<float> hw(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      hw[static_cast<size_t>(i)] =
          1.0f + 0.5f * static_cast<float>(((i / w / 64) + (i % w / 64)) % 3);
    bce_w = Tensor<float>::view(hw.data(), shape).to(Device::cuda);
  }

  // cross_entropy: logits ~ normal(0, 3), labels (i / 64) % C over the flattened label index
  // (the pattern of compare_cuda_pytorch.py).
  const Shape cs = args.list ? Shape{1, 21, 1, 1} : args.ce_shape;
  const int64_t cn = cs.numel(), classes = cs[1], cpix = cn / classes;
  Tensor<float> ce_x, ce_grad;
  Tensor<int64_t> ce_y;
  // The cases on the cross_entropy inputs (--ce-shape; their Case::shape is cs or ce_one_pixel):
  // a --filter on another case skips making them.
  const auto on_ce_inputs = [](const std::string& name) {
    return name == "cross_entropy_vg" || name == "cross_entropy_vg_registers" ||
           name == "cross_entropy_vg_tail_kernels" || name == "cross_entropy_vg_label_reads" ||
           name == "cross_entropy_vg_label_grid" || name == "cross_entropy_vg_quads" ||
           name == "softmax_dice_vg_tail_kernels" || name == "softmax_dice_vg" ||
           name == "softmax_dice_vg_walk" || name == "ce_dice_vg" ||
           name == "cross_entropy_vg_one_pixel" || name == "softmax_focal_vg" ||
           name == "softmax_focal_vg_one_pixel" || name == "cross_entropy_vg_c4";
  };
  const bool multiclass = args.filter.empty() || on_ce_inputs(args.filter);
  if (multiclass) {
    std::vector<float> hcx(static_cast<size_t>(cn));
    std::vector<int64_t> hcy(static_cast<size_t>(cpix));
    for (auto& v : hcx) v = normal(rng);
    for (int64_t i = 0; i < cpix; ++i) hcy[static_cast<size_t>(i)] = (i / 64) % classes;
    ce_x = Tensor<float>::view(hcx.data(), cs).to(Device::cuda);
    ce_y = Tensor<int64_t>::view(hcy.data(), cs.without(1)).to(Device::cuda);
    ce_grad = Tensor<float>::empty(cs, Device::cuda);
  }
  const double ce_bytes = 8.0 * static_cast<double>(cn) + 8.0 * static_cast<double>(cpix);
  // cross_entropy_vg_c4: the first logits of ce_x viewed with 4 classes (H C / 4 rows: no more
  // logits than ce_x holds), and labels of its own.
  Shape c4 = cs;
  c4.set(1, 4);
  if (c4.rank() >= 3) c4.set(2, std::max<int64_t>(1, cs[2] * classes / 4));
  const int64_t c4n = c4.numel(), c4pix = c4n / 4;
  Tensor<float> c4_x, c4_grad;
  Tensor<int64_t> c4_y;
  const bool make_c4 = multiclass && c4n <= cn;
  if (make_c4) {
    std::vector<int64_t> hy(static_cast<size_t>(c4pix));
    for (int64_t i = 0; i < c4pix; ++i) hy[static_cast<size_t>(i)] = (i / 64) % 4;
    c4_x = Tensor<float>::view(ce_x.data(), c4, Device::cuda);
    c4_y = Tensor<int64_t>::view(hy.data(), c4.without(1)).to(Device::cuda);
    c4_grad = Tensor<float>::view(ce_grad.data(), c4, Device::cuda);
  }
  const double c4_bytes = 8.0 * static_cast<double>(c4n) + 8.0 * static_cast<double>(c4pix);
  const double dice_bytes = 12.0 * static_cast<double>(cn) + 16.0 * static_cast<double>(cpix);
  const SoftmaxOverlapOptions<float> sd;
  const CeDiceOptions<float> cd;
  // The one-pixel-per-image views of the same memory (see the top).
  const Shape one_pixel{n, 1, 1}, ce_one_pixel{cpix, classes, 1};
  const auto x1 = Tensor<float>::view(x.data(), one_pixel, Device::cuda);
  const auto z1 = Tensor<float>::view(z.data(), one_pixel, Device::cuda);
  auto grad1 = Tensor<float>::view(grad.data(), one_pixel, Device::cuda);
  Tensor<float> ce_x1, ce_grad1;
  Tensor<int64_t> ce_y1;
  if (multiclass) {
    ce_x1 = Tensor<float>::view(ce_x.data(), ce_one_pixel, Device::cuda);
    ce_y1 = Tensor<int64_t>::view(ce_y.data(), Shape{cpix, 1}, Device::cuda);
    ce_grad1 = Tensor<float>::view(ce_grad.data(), ce_one_pixel, Device::cuda);
  }

  const BceDiceOptions<float> bd;
  BceDiceOptions<float> bdw;
  bdw.bce.weight = bce_w;
  // The calls, and a case that runs one with a switch of core/cuda_internal.hpp set to `value`
  // (the code a change replaced), then back to its default: both in the same process.
  const auto bce_dice_run = [&] { bce_dice_value_and_grad(x, z, grad, value, bd); };
  const auto bce_dice_w_run = [&] { bce_dice_value_and_grad(x, z, grad, value, bdw); };
  const auto soft_dice_run = [&] { soft_dice_value_and_grad(x, z, grad, value); };
  const auto bce_run = [&] { bce_with_logits_value_and_grad(x, z, grad, value); };
  const auto ce_run = [&] { cross_entropy_value_and_grad(ce_x, ce_y, ce_grad, value); };
  const auto sd_run = [&] { softmax_dice_value_and_grad(ce_x, ce_y, ce_grad, value, sd); };
  const auto switched = [](void (*set)(bool), bool value, std::function<void()> run) {
    return [set, value, run] {
      set(value);
      run();
      set(!value);
    };
  };
  namespace sw = cuda::detail;  // the switches
  // bytes_moved (see the top). The target bits, a bit per element written by the statistics pass
  // and read by the gradient pass, are taken by the 16-byte passes (an image and channel's
  // elements a multiple of 4) on binary targets (the bench's) where the workspace has room (the
  // pool grows for them). The label codes, a byte per pixel written by the label pass and read
  // by the fused pass instead of the labels, are counted rather than assumed:
  // sw::label_code_launches counts cross_entropy's fused launches on them.
  const bool quads = shape.rank() >= 3 && (n / (shape[0] * shape[1])) % 4 == 0;
  const double bits_moved = quads ? 4 * f4 + 2 * (static_cast<double>(n) / 8.0) : 5 * f4;
  bool ce_codes = false;
  if (multiclass && !args.list) {
    const int64_t before = sw::label_code_launches().load();
    ce_run();
    check(cudaStreamSynchronize(s), "the cross_entropy call before the cases");
    ce_codes = sw::label_code_launches().load() > before;
  }
  bool c4_codes = false;
  if (make_c4 && !args.list) {
    const int64_t before = sw::label_code_launches().load();
    cross_entropy_value_and_grad(c4_x, c4_y, c4_grad, value);
    check(cudaStreamSynchronize(s), "the 4-class cross_entropy call before the cases");
    c4_codes = sw::label_code_launches().load() > before;
  }
  const double c4_moved = c4_bytes + (c4_codes ? 2.0 : 8.0) * static_cast<double>(c4pix);
  const double ce_label_reads_moved = ce_bytes + 8.0 * static_cast<double>(cpix);
  const double ce_moved =
      ce_codes ? ce_bytes + 2.0 * static_cast<double>(cpix) : ce_label_reads_moved;
  const double ce_dice_moved = ce_moved + dice_bytes + 4.0 * static_cast<double>(cn);
  // The order of --list, in which gpu-check runs the cases (a process each) until its budget
  // ends: issue 7's two cases first, then the other losses, then the A/B lines (a case run with
  // a switch set to the code a change replaced), so that a short budget drops the A/B lines.
  std::vector<Case> cases = {
      {"copy", shape, 2 * f4, 2 * f4,
       [&] {
         check(cudaMemcpyAsync(copy.data(), x.data(), static_cast<size_t>(f4),
                               cudaMemcpyDeviceToDevice, s),
               "cudaMemcpyAsync");
       }},
      {"bce_dice_vg", shape, 5 * f4, bits_moved, bce_dice_run},
      {"cross_entropy_vg", cs, ce_bytes, ce_moved, ce_run},
      {"bce_vg", shape, 3 * f4, 3 * f4, bce_run},
      {"soft_dice_vg", shape, 5 * f4, bits_moved, soft_dice_run},
      {"softmax_dice_vg", cs, dice_bytes, dice_bytes, sd_run},
      {"ce_dice_vg", cs, dice_bytes, ce_dice_moved,
       [&] { ce_dice_value_and_grad(ce_x, ce_y, ce_grad, value, cd); }},
      {"bce_dice_weighted_vg", shape, 7 * f4, 7 * f4, bce_dice_w_run},
      {"cross_entropy_vg_c4", c4, c4_bytes, c4_moved,
       [&] {
         if (!make_c4) {
           std::fprintf(stderr,
                        "segloss-cuda-bench: cross_entropy_vg_c4: --ce-shape %s has no "
                        "4-class view\n",
                        cs.str().c_str());
           std::exit(2);
         }
         cross_entropy_value_and_grad(c4_x, c4_y, c4_grad, value);
       }},
      {"cross_entropy_vg_one_pixel", ce_one_pixel, ce_bytes, ce_moved,
       [&] { cross_entropy_value_and_grad(ce_x1, ce_y1, ce_grad1, value); }},
      {"softmax_focal_vg", cs, ce_bytes, ce_label_reads_moved,
       [&] { softmax_focal_value_and_grad(ce_x, ce_y, ce_grad, value); }},
      {"softmax_focal_vg_one_pixel", ce_one_pixel, ce_bytes, ce_label_reads_moved,
       [&] { softmax_focal_value_and_grad(ce_x1, ce_y1, ce_grad1, value); }},
      {"bce_vg_one_pixel", one_pixel, 3 * f4, 3 * f4,
       [&] { bce_with_logits_value_and_grad(x1, z1, grad1, value); }},
      // A/B lines. The scalar loads' passes take no target bits (only the 16-byte ones do).
      {"bce_dice_vg_scalar_loads", shape, 5 * f4, 5 * f4,
       switched(sw::set_quad_loads, false, bce_dice_run)},
      {"bce_dice_vg_forward_order", shape, 5 * f4, bits_moved,
       switched(sw::set_gradient_from_the_end, false, bce_dice_run)},
      {"bce_dice_vg_stats_bce", shape, 5 * f4, bits_moved,
       switched(sw::set_bce_value_in_gradient, false, bce_dice_run)},
      {"bce_dice_vg_tail_kernels", shape, 5 * f4, bits_moved,
       switched(sw::set_last_block_tails, false, bce_dice_run)},
      {"cross_entropy_vg_registers", cs, ce_bytes, ce_moved,
       switched(sw::set_cross_entropy_staging, false, ce_run)},
      {"cross_entropy_vg_tail_kernels", cs, ce_bytes, ce_moved,
       switched(sw::set_last_block_tails, false, ce_run)},
      {"cross_entropy_vg_label_reads", cs, ce_bytes, ce_label_reads_moved,
       switched(sw::set_label_codes, false, ce_run)},
      {"cross_entropy_vg_label_grid", cs, ce_bytes, ce_moved,
       switched(sw::set_label_pass_own_grid, false, ce_run)},
      {"cross_entropy_vg_quads", cs, ce_bytes, ce_moved,
       switched(sw::set_cross_entropy_quads, true, ce_run)},
      {"soft_dice_vg_scalar_loads", shape, 5 * f4, 5 * f4,
       switched(sw::set_quad_loads, false, soft_dice_run)},
      {"soft_dice_vg_forward_order", shape, 5 * f4, bits_moved,
       switched(sw::set_gradient_from_the_end, false, soft_dice_run)},
      {"bce_vg_scalar_loads", shape, 3 * f4, 3 * f4, switched(sw::set_quad_loads, false, bce_run)},
      {"bce_dice_vg_target_floats", shape, 5 * f4, 5 * f4,
       switched(sw::set_target_bits, false, bce_dice_run)},
      {"soft_dice_vg_target_floats", shape, 5 * f4, 5 * f4,
       switched(sw::set_target_bits, false, soft_dice_run)},
      {"softmax_dice_vg_walk", cs, dice_bytes, dice_bytes,
       switched(sw::set_softmax_overlap_staging, false, sd_run)},
      {"softmax_dice_vg_tail_kernels", cs, dice_bytes, dice_bytes,
       switched(sw::set_last_block_tails, false, sd_run)},
      {"bce_dice_weighted_vg_stats_bce", shape, 7 * f4, 7 * f4,
       switched(sw::set_bce_value_in_gradient_weighted, false, bce_dice_w_run)},
  };

  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  double copy_gbs = 0.0, copy_b2b_gbs = 0.0;
  if (args.list) {
    for (const Case& c : cases) std::printf("%s\n", c.name.c_str());
    return 0;
  }
  for (const Case& c : cases) {
    if (c.name != "copy" && !args.filter.empty() && c.name != args.filter) continue;
    const double ms = median_ms(s, args.reps, args.warmup_ms, c.name, c.run);
    const double b2b = back_to_back_ms(s, args.reps, c.name, c.run);
    const double gbs = c.min_bytes / (ms * 1e6), b2b_gbs = c.min_bytes / (b2b * 1e6);
    const double moved_gbs = c.bytes_moved / (ms * 1e6);
    if (c.name == "copy") {
      copy_gbs = gbs;
      copy_b2b_gbs = b2b_gbs;
    }
    std::printf(
        "{\"name\": \"%s\", \"shape\": \"%s\", \"device\": \"%s\", \"median_ms\": %.6f, "
        "\"min_bytes\": %.0f, \"gb_per_s\": %.2f, \"copy_gb_per_s\": %.2f, "
        "\"fraction_of_copy\": %.5f, \"back_to_back_ms\": %.6f, "
        "\"back_to_back_fraction_of_copy\": %.5f, \"bytes_moved\": %.0f, "
        "\"moved_fraction_of_copy\": %.5f}\n",
        c.name.c_str(), c.shape.str().c_str(), prop.name, ms, c.min_bytes, gbs, copy_gbs,
        copy_gbs > 0 ? gbs / copy_gbs : 0.0, b2b, copy_b2b_gbs > 0 ? b2b_gbs / copy_b2b_gbs : 0.0,
        c.bytes_moved, copy_gbs > 0 ? moved_gbs / copy_gbs : 0.0);
    std::fflush(stdout);
  }
  check(cudaStreamSynchronize(s), "final synchronize");
  return 0;
}
