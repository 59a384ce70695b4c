// dice_score: argument checks, the statistics pass, then the scores and their mean under the
// empty policy (the math is in dice_score.hpp).
#include "dice_score.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../backends/cpu/dice_score.hpp"
#include "../core/checks.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/dice_score.hpp"
#endif

namespace segloss {

DiceScoreOptions DiceScoreOptions::carvana(double threshold) {
  DiceScoreOptions o;
  o.threshold = threshold;
  o.per_channel = false;
  o.empty = EmptyPolicy::formula;
  return o;
}

DiceScoreOptions DiceScoreOptions::carvana_np() {
  DiceScoreOptions o;
  o.activation = Activation::none;
  o.per_channel = false;
  o.empty = EmptyPolicy::formula;
  o.check_binary = true;
  return o;
}

DiceScoreOptions DiceScoreOptions::pytorch_unet() {
  DiceScoreOptions o;
  o.threshold = 0.6;
  o.smooth_nr = 2e-4;
  o.smooth_dr = 1e-4;
  o.per_channel = false;
  o.empty = EmptyPolicy::formula;
  return o;
}

DiceScoreOptions DiceScoreOptions::albu_dice_clamp() {
  DiceScoreOptions o;
  o.round = true;
  o.smooth_nr = 2.0;
  o.smooth_dr = 1.0;
  o.per_channel = false;
  o.border = 6;
  o.empty = EmptyPolicy::formula;
  o.clamp = true;
  return o;
}

namespace {

template <class T>
cpu::DiceScoreArgs<T> dice_score_args(const char* fn, const Tensor<T>& pred,
                                      const Tensor<T>& target, const DiceScoreOptions& o) {
  detail::check_image(fn, "pred", pred, /*cuda_path=*/true, "an empty batch has no score");
  SEGLOSS_CHECK(target.defined(), fn, "target is undefined");
  SEGLOSS_CHECK(target.shape() == pred.shape(), fn, "target ", target.shape(),
                " does not match pred ", pred.shape());
  detail::check_same_device(fn, "target", target, pred.device(), "pred");
  SEGLOSS_CHECK(std::isfinite(o.threshold) && o.threshold >= 0.0 && o.threshold <= 1.0, fn,
                "options.threshold is ", o.threshold,
                "; it must be a probability in [0, 1] (for logits too: it applies to sigmoid(x))");
  detail::check_smooth(fn, "options.smooth_nr", o.smooth_nr);
  detail::check_smooth(fn, "options.smooth_dr", o.smooth_dr);
  SEGLOSS_CHECK(o.border >= 0, fn, "options.border is ", o.border, "; it must be >= 0");
  detail::check_enum(fn, "options.", "activation", o.activation, detail::kActivationNames);
  detail::check_enum(fn, "options.", "empty", o.empty, detail::kEmptyPolicyNames);

  const Shape& s = pred.shape();
  const int spatial = s.rank() - 2;
  cpu::DiceScoreArgs<T> a;
  for (int d = 0; d < spatial; ++d) {
    const int axis = 2 + d, slot = 3 - spatial + d;
    SEGLOSS_CHECK(2 * static_cast<int64_t>(o.border) < s[axis], fn, "options.border ", o.border,
                  " leaves no pixel of spatial axis ", axis, " (extent ", s[axis], ") of pred ", s);
    a.extent[slot] = s[axis];
    a.begin[slot] = o.border;
    a.end[slot] = s[axis] - o.border;
  }
  a.pred = pred.data();
  a.target = target.data();
  a.planes = s[0] * s[1];
  a.sigmoid = o.activation == Activation::sigmoid;
  a.round = o.round;
  a.threshold = static_cast<T>(o.threshold);
  a.check_target = o.check_binary;
  a.check_pred = o.check_binary && o.activation == Activation::none;
  return a;
}

}  // namespace

template <class T>
DiceScoreResult dice_score(const Tensor<T>& pred, const Tensor<T>& target,
                           const DiceScoreOptions& options) {
  const char* fn = "dice_score";
  const auto a = dice_score_args(fn, pred, target, options);
  const Shape& s = pred.shape();
  std::vector<double> stats(static_cast<size_t>(a.planes * 3));
#if defined(SEGLOSS_WITH_CUDA)
  const cpu::DiceBadValue bad = pred.device() == Device::cuda
                                    ? cuda::dice_score_statistics(fn, a, stats.data())
                                    : cpu::dice_score_statistics(a, stats.data());
#else
  const cpu::DiceBadValue bad = cpu::dice_score_statistics(a, stats.data());
#endif
  SEGLOSS_CHECK(bad.index < 0, fn, bad.in_pred ? "pred" : "target", " holds ", bad.value,
                " at index ", bad.index, " ", s.position(bad.index),
                "; with check_binary every scored value must be 0 or 1");

  DiceScoreResult r;
  const Shape shape = options.per_channel ? Shape{s[0], s[1]} : Shape{s[0]};
  r.scores = Tensor<double>::zeros(shape);
  r.intersection = Tensor<double>::zeros(shape);
  r.prediction = Tensor<double>::zeros(shape);
  r.target = Tensor<double>::zeros(shape);
  for (int64_t p = 0; p < a.planes; ++p) {  // channels of an image combine in channel order
    const int64_t j = options.per_channel ? p : p / s[1];
    r.intersection[j] += stats[static_cast<size_t>(p * 3 + 0)];
    r.prediction[j] += stats[static_cast<size_t>(p * 3 + 1)];
    r.target[j] += stats[static_cast<size_t>(p * 3 + 2)];
  }

  double sum = 0.0;
  for (int64_t j = 0; j < shape.numel(); ++j) {
    const double inter = r.intersection[j], psum = r.prediction[j], tsum = r.target[j];
    double score = (2.0 * inter + options.smooth_nr) / (psum + tsum + options.smooth_dr);
    if (psum == 0.0 && tsum == 0.0) {
      ++r.empty;
      switch (options.empty) {
        case EmptyPolicy::formula:
          break;
        case EmptyPolicy::one:
          score = 1.0;
          break;
        case EmptyPolicy::zero:
          score = 0.0;
          break;
        case EmptyPolicy::skip:
          r.scores[j] = std::numeric_limits<double>::quiet_NaN();
          ++r.skipped;
          continue;
      }
    }
    r.scores[j] = score;
    sum += score;
    ++r.counted;
  }
  r.mean = r.counted > 0 ? sum / static_cast<double>(r.counted)
                         : std::numeric_limits<double>::quiet_NaN();
  if (options.clamp && !std::isnan(r.mean)) r.mean = std::clamp(r.mean, 0.0, 1.0);
  return r;
}

template DiceScoreResult dice_score(const Tensor<float>&, const Tensor<float>&,
                                    const DiceScoreOptions&);
template DiceScoreResult dice_score(const Tensor<double>&, const Tensor<double>&,
                                    const DiceScoreOptions&);

}  // namespace segloss
