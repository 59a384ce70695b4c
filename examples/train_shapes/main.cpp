// train_shapes: trains a small fully-convolutional network to segment synthetic shapes, in pure
// C++. The network, its backward and Adam are written here with Eigen (net.hpp); segloss gives
// the loss, its gradient with respect to the logits, and the validation metrics.
//
//   train_shapes [--loss ce|dice|ce+dice|focal|lovasz|tversky] [--boundary-weights]
//                [--epochs N] [--seed S] [--threads T] [--out DIR] [--quick] [--device cuda]
//
// Writes to DIR (default out/train_shapes): strip_*.png (input | truth | prediction) for a few
// validation images, curve.svg (training loss and validation mIoU per epoch) and metrics.json.
// A run is deterministic for a seed: the per-image gradients are added in image order whatever
// the thread count, and segloss's reductions do not depend on it either.
#ifdef _OPENMP
#include <omp.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

#include "net.hpp"
#include "output.hpp"
#include "shapes.hpp"

using segloss::Tensor;
using namespace train_shapes;

namespace {

#ifdef _OPENMP
int thread_id() {
  return omp_get_thread_num();
}
#else
int thread_id() {
  return 0;
}
#endif

struct Config {
  std::string loss = "ce+dice";
  bool boundary_weights = false;
  int epochs = 16;
  bool epochs_given = false;
  uint64_t seed = 1;
  int threads = 0;  // 0: OpenMP's default
  std::string out = "out/train_shapes";
  bool quick = false;
  std::string device = "cpu";
  int64_t train_n = 1024, val_n = 128, size = 64, batch = 4;
  double lr = 3e-3;
};

const char* const kUsage =
    "usage: train_shapes [options]\n"
    "  --loss L            ce | dice | ce+dice (default) | focal | lovasz | tversky\n"
    "  --boundary-weights  weight the cross-entropy term (ce, ce+dice) by "
    "segloss::boundary_weights\n"
    "                      of the one-hot target (edge pixels count more)\n"
    "  --epochs N          training epochs (default 16)\n"
    "  --seed S            seed of the data, the initial weights and the order (default 1)\n"
    "  --threads T         threads (segloss::set_num_threads; default: OpenMP's)\n"
    "  --out DIR           output folder (default out/train_shapes)\n"
    "  --batch B           images per step (default 4)\n"
    "  --lr X              Adam's learning rate, decayed along a cosine to X / 20 (default 3e-3)\n"
    "  --train-images N    new training images per epoch (default 1024; validation: 128)\n"
    "  --quick             a short run that checks the loss falls and the mIoU rises (the test)\n"
    "  --device D          cpu (default) | cuda: the loss and its gradient on the GPU (the\n"
    "                      network stays on the CPU; each step copies the logits there and the\n"
    "                      gradient back). Exits 77 when no GPU is present\n";

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--loss") {
      c.loss = value();
    } else if (a == "--boundary-weights") {
      c.boundary_weights = true;
    } else if (a == "--epochs") {
      c.epochs = std::stoi(value());
      c.epochs_given = true;
    } else if (a == "--seed") {
      c.seed = std::stoull(value());
    } else if (a == "--threads") {
      c.threads = std::stoi(value());
    } else if (a == "--out") {
      c.out = value();
    } else if (a == "--batch") {
      c.batch = std::stoll(value());
    } else if (a == "--lr") {
      c.lr = std::stod(value());
    } else if (a == "--train-images") {
      c.train_n = std::stoll(value());
    } else if (a == "--quick") {
      c.quick = true;
    } else if (a == "--device") {
      c.device = value();
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      throw std::runtime_error("unknown option " + a);
    }
  }
  const std::vector<std::string> losses = {"ce", "dice", "ce+dice", "focal", "lovasz", "tversky"};
  if (std::find(losses.begin(), losses.end(), c.loss) == losses.end())
    throw std::runtime_error("unknown --loss " + c.loss);
  if (c.boundary_weights && c.loss != "ce" && c.loss != "ce+dice")
    throw std::runtime_error(
        "--boundary-weights weights the cross-entropy term: use it with "
        "--loss ce or ce+dice");
  if (c.device != "cpu" && c.device != "cuda")
    throw std::runtime_error("unknown --device " + c.device + " (cpu or cuda)");
  if (c.device == "cuda" && c.boundary_weights)
    throw std::runtime_error(
        "--boundary-weights weighs the per-pixel losses on the CPU: use it with --device cpu");
  if (c.epochs < 1) throw std::runtime_error("--epochs must be >= 1");
  if (c.threads < 0) throw std::runtime_error("--threads must be >= 1");
  if (c.batch < 1 || c.lr <= 0 || c.train_n < c.batch)
    throw std::runtime_error("--batch, --lr, --train-images: positive, and at least one batch");
  if (c.quick) {
    c.train_n = 192, c.val_n = 32, c.size = 32;
    if (!c.epochs_given) c.epochs = 3;
  }
  return c;
}

// The loss of a batch: writes dL/dlogits into grad and returns L. pixel_weight (N, H, W) is
// used by the boundary-weighted cross-entropy only.
struct Loss {
  const Config& config;
  segloss::CrossEntropyOptions<float> ce_none;  // reduction none, for the weighted form
  // Dice and Tversky over the whole batch (per_image = false): one score per class. Per image,
  // a class absent from an image scores about 0 whatever the prediction (smooth terms 1e-5),
  // a loss of about 1 per absent class that only teaches to push its probability to 0.
  segloss::SoftmaxOverlapOptions<float> dice;
  segloss::CeDiceOptions<float> ce_dice;
  segloss::SoftmaxTverskyOptions<float> tversky;

  explicit Loss(const Config& c) : config(c) {
    ce_none.reduction = segloss::Reduction::none;
    dice.per_image = false;
    ce_dice.dice = dice;
    tversky.per_image = false;
    tversky.alpha = 0.3, tversky.beta = 0.7;  // false negatives weigh more than false positives
  }

  double operator()(const Tensor<float>& logits, const Tensor<int64_t>& labels,
                    const Tensor<float>& pixel_weight, Tensor<float>& grad) const {
    if (config.device == "cuda") return on_cuda(logits, labels, grad);
    const std::string& l = config.loss;
    if (config.boundary_weights) {
      // Weighted cross-entropy: L = sum_i w_i l_i / P (P pixels, mean of w is 1), its gradient
      // the backward of the per-pixel losses with grad_out = w / P.
      const Tensor<float> per_pixel = segloss::cross_entropy(logits, labels, ce_none);
      auto grad_out = Tensor<float>::empty(per_pixel.shape());
      const double p = double(per_pixel.numel());
      double value = 0;
      for (int64_t i = 0; i < per_pixel.numel(); ++i) {
        value += double(pixel_weight[i]) * per_pixel[i];
        grad_out[i] = float(pixel_weight[i] / p);
      }
      grad = segloss::cross_entropy_backward(logits, labels, grad_out, ce_none);
      value /= p;
      if (l == "ce+dice") {
        auto d = segloss::softmax_dice_value_and_grad(logits, labels, dice);
        for (int64_t i = 0; i < grad.numel(); ++i) grad[i] += d.grad[i];
        value += d.value;
      }
      return value;
    }
    if (l == "ce") return segloss::cross_entropy_value_and_grad(logits, labels, grad);
    if (l == "dice") return segloss::softmax_dice_value_and_grad(logits, labels, grad, dice);
    if (l == "ce+dice") return segloss::ce_dice_value_and_grad(logits, labels, grad, ce_dice);
    if (l == "focal") return segloss::softmax_focal_value_and_grad(logits, labels, grad);
    if (l == "lovasz") return segloss::lovasz_softmax_value_and_grad(logits, labels, grad);
    return segloss::softmax_tversky_value_and_grad(logits, labels, grad, tversky);
  }

  // --device cuda: the same losses on copies of the logits and labels on the GPU (the
  // library picks the CUDA path from the tensors' device; a loss without one raises an error
  // naming it). ce+dice runs as its two terms, each with a CUDA path, and their gradients are
  // added on the host.
  double on_cuda(const Tensor<float>& logits, const Tensor<int64_t>& labels,
                 Tensor<float>& grad) const {
    using segloss::Device;
    const Tensor<float> x = logits.to(Device::cuda);
    const Tensor<int64_t> y = labels.to(Device::cuda);
    Tensor<float> g;  // allocated on the GPU by the loss
    const std::string& l = config.loss;
    double value = 0;
    if (l == "ce+dice") {
      Tensor<float> g_dice;
      value = segloss::cross_entropy_value_and_grad(x, y, g, ce_dice.ce) +
              segloss::softmax_dice_value_and_grad(x, y, g_dice, ce_dice.dice);
      grad.copy_from(g);
      const Tensor<float> d = g_dice.to(Device::cpu);
      for (int64_t i = 0; i < grad.numel(); ++i) grad[i] += d[i];
      return value;
    }
    if (l == "ce") value = segloss::cross_entropy_value_and_grad(x, y, g);
    if (l == "dice") value = segloss::softmax_dice_value_and_grad(x, y, g, dice);
    if (l == "focal") value = segloss::softmax_focal_value_and_grad(x, y, g);
    if (l == "lovasz") value = segloss::lovasz_softmax_value_and_grad(x, y, g);
    if (l == "tversky") value = segloss::softmax_tversky_value_and_grad(x, y, g, tversky);
    grad.copy_from(g);
    return value;
  }
};

// The mean over the classes of boundary_weights of the one-hot target: one weight per pixel,
// mean 1 over the set. An edge between classes a and b marks both planes.
std::vector<float> boundary_pixel_weights(const Dataset& d) {
  const int64_t hw = d.size * d.size, classes = Net<float>::kClasses;
  auto onehot = Tensor<float>::zeros({d.n, classes, d.size, d.size});
  for (int64_t i = 0; i < d.n; ++i)
    for (int64_t p = 0; p < hw; ++p) onehot[(i * classes + d.labels[i * hw + p]) * hw + p] = 1;
  const Tensor<float> w = segloss::boundary_weights(onehot);  // kernel 5 for 64 rows
  std::vector<float> pw(d.n * hw);
  for (int64_t i = 0; i < d.n; ++i)
    for (int64_t p = 0; p < hw; ++p) {
      double s = 0;
      for (int64_t c = 0; c < classes; ++c) s += w[(i * classes + c) * hw + p];
      pw[i * hw + p] = float(s / classes);
    }
  return pw;
}

// The logits (N, C, H, W) of the images index[0..N) of d, one image per thread at a time.
void predict(const Net<float>& net, const Dataset& d, const std::vector<int64_t>& index,
             std::vector<Cache<float>>& caches, std::vector<float>& logits) {
  const int64_t n = int64_t(index.size()), hw = d.size * d.size, c = Net<float>::kClasses;
  logits.resize(n * c * hw);
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < n; ++b) {
    Cache<float>& k = caches[thread_id()];
    net.forward(&d.inputs[index[b] * hw], d.size, d.size, k);
    std::copy(k.z.data(), k.z.data() + c * hw, &logits[b * c * hw]);
  }
}

void bar(int epoch, int epochs, double frac, double loss, const std::string& tail) {
  const int width = 24, done = int(frac * width + 0.5);
  std::fprintf(stderr, "\repoch %2d/%d [%s%s] loss %.4f%s", epoch, epochs,
               std::string(done, '#').c_str(), std::string(width - done, '.').c_str(), loss,
               tail.c_str());
  std::fflush(stderr);
}

std::vector<uint8_t> color(int64_t label) {
  static const uint8_t palette[4][3] = {{25, 25, 25}, {230, 85, 60}, {70, 180, 90}, {70, 125, 235}};
  return {palette[label][0], palette[label][1], palette[label][2]};
}

// input | truth | prediction, each scaled by 3, 4 white pixels apart.
bool write_strip(const std::string& path, const Dataset& d, int64_t i, const float* logits) {
  const int64_t s = d.size, k = 3, gap = 4, hw = s * s, pw = s * k;
  const int width = int(3 * pw + 2 * gap), height = int(pw);
  std::vector<uint8_t> rgb(size_t(width) * height * 3, 255);
  for (int64_t y = 0; y < pw; ++y)
    for (int64_t x = 0; x < pw; ++x) {
      const int64_t p = (y / k) * s + x / k;
      int64_t pred = 0;
      for (int64_t c = 1; c < Net<float>::kClasses; ++c)
        if (logits[c * hw + p] > logits[pred * hw + p]) pred = c;
      const uint8_t g = uint8_t(std::lround(255 * d.images[i * hw + p]));
      const std::vector<uint8_t> px[3] = {{g, g, g}, color(d.labels[i * hw + p]), color(pred)};
      for (int panel = 0; panel < 3; ++panel) {
        uint8_t* o = &rgb[(size_t(y) * width + panel * (pw + gap) + x) * 3];
        o[0] = px[panel][0], o[1] = px[panel][1], o[2] = px[panel][2];
      }
    }
  return write_png(path, width, height, rgb);
}

void make_dirs(const std::string& path) {
  for (size_t pos = 0; pos != std::string::npos;) {
    pos = path.find('/', pos + 1);
    const std::string part = path.substr(0, pos);
    if (!part.empty()) mkdir(part.c_str(), 0755);
  }
}

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i]))
      std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", v[i]);
    else
      std::snprintf(buf, sizeof buf, "%snull", i ? ", " : "");
    s += buf;
  }
  return s + "]";
}

int run(const Config& config) {
  if (config.threads > 0) segloss::set_num_threads(config.threads);  // omp_set_num_threads
  Eigen::setNbThreads(1);  // one image per thread; Eigen's GEMMs stay single-threaded
  const int threads = segloss::num_threads();
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // Validation: stream seed * 1000; training: fresh images every epoch (stream seed * 1000 +
  // epoch), so the network never sees an image twice and cannot overfit the set.
  const Dataset val = make_shapes(config.val_n, config.size, config.seed * 1000);
  Dataset train;
  std::vector<float> pixel_weight;
  const int64_t s = config.size, hw = s * s, classes = Net<float>::kClasses, bs = config.batch;
  std::fprintf(
      stderr,
      "train_shapes: %lld new training images per epoch, %lld validation images, %lldx%lld, "
      "loss %s%s, "
      "%d threads\n",
      (long long)config.train_n, (long long)val.n, (long long)s, (long long)s, config.loss.c_str(),
      config.boundary_weights   ? " (boundary-weighted CE)"
      : config.device == "cuda" ? " on the GPU"
                                : "",
      threads);

  Net<float> net;
  net.init(config.seed);
  std::vector<float> params(net.num_params());
  net.get(params.data());
  Adam adam;
  const Loss loss_fn(config);

  std::vector<int64_t> val_index(val.n);
  std::iota(val_index.begin(), val_index.end(), 0);
  std::vector<Cache<float>> caches(std::max<int64_t>(bs, threads));
  std::vector<float> val_logits;
  const auto evaluate = [&](segloss::ConfusionMatrix& cm) {
    predict(net, val, val_index, caches, val_logits);
    cm.reset();
    cm.update_from_logits(Tensor<float>::view(val_logits.data(), {val.n, classes, s, s}),
                          Tensor<int64_t>::view(val.labels.data(), {val.n, s, s}));
  };
  segloss::ConfusionMatrix cm(classes);
  evaluate(cm);
  std::vector<double> epoch_loss,
      val_miou = {segloss::label_accuracy_score(cm).mean_iou},
      val_dice = {segloss::average_score(cm, segloss::Score::dice, segloss::Average::macro)},
      epoch_seconds;
  std::fprintf(stderr, "before training: val mIoU %.3f  Dice %.3f\n", val_miou[0], val_dice[0]);

  const bool tty = isatty(2);
  const int64_t steps_per_epoch = config.train_n / bs,
                total_steps = steps_per_epoch * config.epochs;
  std::vector<int64_t> order(config.train_n);
  std::vector<float> xb(bs * hw), logits(bs * classes * hw), wb(bs * hw);
  std::vector<int64_t> yb(bs * hw);
  std::vector<std::vector<float>> image_grads(bs, std::vector<float>(params.size()));
  std::vector<double> g(params.size());
  auto grad = Tensor<float>::empty({bs, classes, s, s});
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    train = make_shapes(config.train_n, config.size, config.seed * 1000 + uint64_t(epoch));
    if (config.boundary_weights) pixel_weight = boundary_pixel_weights(train);
    std::iota(order.begin(), order.end(), 0);
    Rng shuffle(config.seed * 7919 + uint64_t(epoch));
    for (int64_t i = config.train_n - 1; i > 0; --i)
      std::swap(order[i], order[shuffle.below(int(i + 1))]);
    double sum = 0;
    for (int64_t step = 0; step < steps_per_epoch; ++step) {
      // Cosine decay of the learning rate, from lr to lr / 20.
      const double t = double((epoch - 1) * steps_per_epoch + step) / double(total_steps);
      adam.lr = config.lr * (0.05 + 0.95 * 0.5 * (1 + std::cos(3.141592653589793 * t)));
      for (int64_t b = 0; b < bs; ++b) {
        const int64_t i = order[step * bs + b];
        std::copy(&train.inputs[i * hw], &train.inputs[(i + 1) * hw], &xb[b * hw]);
        std::copy(&train.labels[i * hw], &train.labels[(i + 1) * hw], &yb[b * hw]);
        if (config.boundary_weights)
          std::copy(&pixel_weight[i * hw], &pixel_weight[(i + 1) * hw], &wb[b * hw]);
      }
#pragma omp parallel for schedule(dynamic)
      for (int64_t b = 0; b < bs; ++b) {
        net.forward(&xb[b * hw], s, s, caches[b]);
        std::copy(caches[b].z.data(), caches[b].z.data() + classes * hw, &logits[b * classes * hw]);
      }
      const double value = loss_fn(Tensor<float>::view(logits.data(), {bs, classes, s, s}),
                                   Tensor<int64_t>::view(yb.data(), {bs, s, s}),
                                   Tensor<float>::view(wb.data(), {bs, s, s}), grad);
#pragma omp parallel for schedule(dynamic)
      for (int64_t b = 0; b < bs; ++b) {
        std::fill(image_grads[b].begin(), image_grads[b].end(), 0.f);
        const Mat<float> dz = Eigen::Map<const Mat<float>>(&grad[b * classes * hw], hw, classes);
        net.backward(caches[b], dz, s, s, image_grads[b].data());
      }
      // The images' gradients added in image order: the same sum at any thread count.
      std::fill(g.begin(), g.end(), 0.0);
      for (int64_t b = 0; b < bs; ++b)
        for (size_t j = 0; j < g.size(); ++j) g[j] += image_grads[b][j];
      adam.step(params, g);
      net.set(params.data());
      sum += value;
      if (tty) bar(epoch, config.epochs, double(step + 1) / steps_per_epoch, sum / (step + 1), "");
    }
    epoch_loss.push_back(sum / steps_per_epoch);
    evaluate(cm);
    val_miou.push_back(segloss::label_accuracy_score(cm).mean_iou);
    val_dice.push_back(segloss::average_score(cm, segloss::Score::dice, segloss::Average::macro));
    epoch_seconds.push_back(seconds());
    char tail[128];
    std::snprintf(tail, sizeof tail, "  val mIoU %.3f  Dice %.3f  (%.1f s)\n", val_miou.back(),
                  val_dice.back(), epoch_seconds.back());
    bar(epoch, config.epochs, 1.0, epoch_loss.back(), tail);
  }
  const double total_seconds = seconds();

  // The per-class table.
  const auto fcn = segloss::label_accuracy_score(cm);
  const auto iou = segloss::class_scores(cm, segloss::Score::iou);
  const auto dice = segloss::class_scores(cm, segloss::Score::dice);
  const auto precision = segloss::class_scores(cm, segloss::Score::precision);
  const auto recall = segloss::class_scores(cm, segloss::Score::recall);
  const auto support = cm.true_counts();
  std::printf("\nvalidation, %lld images (%lld pixels), after %d epochs in %.1f s:\n",
              (long long)val.n, (long long)cm.total(), config.epochs, total_seconds);
  std::printf("  %-11s %7s %7s %9s %7s %9s\n", "class", "IoU", "Dice", "precision", "recall",
              "pixels");
  for (int64_t c = 0; c < classes; ++c)
    std::printf("  %-11s %7.4f %7.4f %9.4f %7.4f %9lld\n", kClassNames[c], iou[c], dice[c],
                precision[c], recall[c], (long long)support[c]);
  std::printf("  %-11s %7.4f %7.4f   pixel accuracy %.4f\n", "mean", fcn.mean_iou, val_dice.back(),
              fcn.pixel_accuracy);

  // The output folder.
  make_dirs(config.out);
  bool ok = true;
  for (int64_t i = 0; i < std::min<int64_t>(6, val.n); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/strip_%02lld.png", (long long)i);
    ok &= write_strip(config.out + name, val, i, &val_logits[i * classes * hw]);
  }
  ok &= write_curve_svg(config.out + "/curve.svg", epoch_loss, val_miou);
  if (FILE* f = std::fopen((config.out + "/metrics.json").c_str(), "w")) {
    std::fprintf(f,
                 "{\n  \"loss\": \"%s\",\n  \"boundary_weights\": %s,\n  \"seed\": %llu,\n"
                 "  \"threads\": %d,\n  \"epochs\": %d,\n  \"image_size\": %lld,\n"
                 "  \"train_images\": %lld,\n  \"val_images\": %lld,\n  \"seconds\": %.2f,\n"
                 "  \"train_loss\": %s,\n  \"val_miou\": %s,\n  \"val_dice\": %s,\n"
                 "  \"epoch_seconds\": %s,\n  \"pixel_accuracy\": %.6g,\n"
                 "  \"mean_class_accuracy\": %.6g,\n  \"fw_iou\": %.6g,\n"
                 "  \"classes\": [\"background\", \"ellipse\", \"rectangle\", \"triangle\"],\n"
                 "  \"iou\": %s,\n  \"dice\": %s,\n  \"precision\": %s,\n  \"recall\": %s\n}\n",
                 config.loss.c_str(), config.boundary_weights ? "true" : "false",
                 (unsigned long long)config.seed, threads, config.epochs, (long long)s,
                 (long long)config.train_n, (long long)val.n, total_seconds,
                 json_array(epoch_loss).c_str(), json_array(val_miou).c_str(),
                 json_array(val_dice).c_str(), json_array(epoch_seconds).c_str(),
                 fcn.pixel_accuracy, fcn.mean_class_accuracy, fcn.fw_iou, json_array(iou).c_str(),
                 json_array(dice).c_str(), json_array(precision).c_str(),
                 json_array(recall).c_str());
    ok &= std::fclose(f) == 0;
  } else {
    ok = false;
  }
  std::printf("wrote %s/{strip_*.png, curve.svg, metrics.json}%s\n", config.out.c_str(),
              ok ? "" : " (some writes FAILED)");
  if (!ok) return 1;

  if (config.quick) {  // the test: the loss falls and the mIoU rises
    const bool falls = epoch_loss.back() < epoch_loss.front();
    const bool rises = val_miou.back() > val_miou.front() + 0.05;
    std::printf("check: loss %.4f -> %.4f %s, val mIoU %.4f -> %.4f %s\n", epoch_loss.front(),
                epoch_loss.back(), falls ? "falls" : "DOES NOT FALL", val_miou.front(),
                val_miou.back(), rises ? "rises" : "DOES NOT RISE");
    if (!falls || !rises) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Config config = parse(argc, argv);
    if (config.device == "cuda" && !segloss::cuda::available()) {
      std::fprintf(stderr, "train_shapes: --device cuda: %s; skipped\n",
                   segloss::cuda::built() ? "no CUDA device is available"
                                          : "this build of segloss has no CUDA backend");
      return 77;  // ctest's SKIP_RETURN_CODE
    }
    return run(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_shapes: %s\n%s", e.what(), kUsage);
    return 2;
  }
}
