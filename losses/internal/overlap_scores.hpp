// Shared by the overlap losses and bce_dice (not installed): the argument checks, the scores
// from the per-plane statistics, the loss and dL/dS of each form and reduction, and the
// per-plane gradient coefficients. losses/overlap.hpp has the math.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../backends/cpu/overlap.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../../backends/cuda/overlap.hpp"
#endif
#include "../../core/broadcast.hpp"
#include "../../core/checks.hpp"
#include "../../core/pointwise.hpp"
#include "../overlap.hpp"
#include "option_name.hpp"
#include "shards.hpp"

namespace segloss {
namespace detail {

// S = (a_n I + smooth_nr) / (a_I I + a_P P + a_T T + smooth_dr).
struct ScoreForm {
  double a_n = 2.0, a_i = 0.0, a_p = 1.0, a_t = 1.0;
};

inline ScoreForm dice_form() {
  return {2.0, 0.0, 1.0, 1.0};
}
inline ScoreForm jaccard_form() {
  return {1.0, -1.0, 1.0, 1.0};
}
inline ScoreForm tversky_form(double alpha, double beta) {
  return {1.0, 1.0 - alpha - beta, alpha, beta};
}

enum class ScoreState : uint8_t { kept, fixed, skipped, excluded };

struct OverlapScores {
  std::vector<double> score;  // S_j (the fixed value for a fixed score)
  std::vector<double> ds_di;  // dS/dI
  std::vector<double> ds_dp;  // dS/dP
  std::vector<double> cw;     // c_j, the class weight of score j
  std::vector<ScoreState> state;
  Shape shape;  // (N, C) per image, (C) for the batch
  int64_t channels = 1;
  bool per_image = true;
  int64_t kept = 0, skipped = 0;  // kept counts the fixed scores too: both are in the mean
  int64_t of_plane(int64_t p) const { return per_image ? p : p % channels; }
  bool counted(int64_t j) const {
    return state[j] == ScoreState::kept || state[j] == ScoreState::fixed;
  }
  void fill(OverlapInfo* info) const {
    if (info) *info = OverlapInfo{kept, skipped};
  }
};

// Whether overlap options O have the binary losses' activation and weighting.
template <class O, class = void>
struct has_activation : std::false_type {};
template <class O>
struct has_activation<O, std::void_t<decltype(std::declval<const O&>().activation)>>
    : std::true_type {};

// The options every overlap loss shares (OverlapOptions<T>, SoftmaxOverlapOptions<T>, ...).
// `path` is how the caller reaches the options in error messages: "options." for a loss's own
// options, "options.dice." for those of bce_dice's Dice term.
// `device`: the logits' device; on CUDA the class weights are a CUDA tensor too (every tensor of
// a call on one device), whose values the finalize kernel checks (kBadClassWeight).
template <class O>
void check_overlap_options(const char* fn, const Shape& input, const O& o,
                           const char* path = "options.", Device device = Device::cpu) {
  // (the argument's name is put together on the error path only: no allocation per call)
  check_enum(fn, path, "reduction", o.reduction, kReductionNames);
  check_enum(fn, path, "empty", o.empty, kEmptyPolicyNames);
  if constexpr (has_activation<O>::value) {  // the binary losses' options (OverlapOptions)
    check_enum(fn, path, "activation", o.activation, kActivationNames);
    check_enum(fn, path, "weighting", o.weighting, kOverlapWeightingNames);
  }
  SEGLOSS_CHECK(std::isfinite(o.smooth_nr) && o.smooth_nr >= 0.0, fn, path, "smooth_nr is ",
                o.smooth_nr, "; it must be finite and >= 0");
  SEGLOSS_CHECK(std::isfinite(o.smooth_dr) && o.smooth_dr >= 0.0, fn, path, "smooth_dr is ",
                o.smooth_dr, "; it must be finite and >= 0");
  SEGLOSS_CHECK(std::isfinite(o.gamma) && o.gamma > 0.0, fn, path, "gamma is ", o.gamma,
                "; it must be finite and > 0");
  SEGLOSS_CHECK(!(o.log && o.clamp), fn, path, "log and ", path, "clamp are both set; choose one");
  SEGLOSS_CHECK(o.gamma == 1.0 || !(o.log || o.clamp), fn, path, "gamma is ", o.gamma, " with ",
                path, o.log ? "log" : "clamp",
                "; the focal form (gamma != 1) is a linear-form option");
  SEGLOSS_CHECK(o.include_background || input[1] > 1, fn, path,
                "include_background is false but the input ", input,
                " has a single channel (C = 1): no score would remain");
  if (o.class_weight.defined()) {
    SEGLOSS_CHECK(o.class_weight.shape() == Shape{input[1]}, fn, path, "class_weight ",
                  o.class_weight.shape(), " must have shape (", input[1],
                  "), one weight per channel of the input ", input);
    if (o.class_weight.device() != device)
      check_same_device(fn, OptionName(path, "class_weight").c_str(), o.class_weight, device);
    if (device != Device::cpu) return;
    for (int64_t c = 0; c < input[1]; ++c) {
      const double v = static_cast<double>(o.class_weight[c]);
      SEGLOSS_CHECK(std::isfinite(v) && v >= 0.0, fn, path, "class_weight[", c, "] is ", v,
                    "; class weights must be finite and >= 0");
    }
  }
}

// The options the CUDA path does not support yet (backends/cuda/overlap.hpp); path as in
// check_overlap_options. all: the caller runs every option on CUDA (soft_dice, soft_jaccard,
// tversky, bce_dice since session 8); a caller without all refuses weight, class_weight,
// empty, gamma, log, clamp there.
template <class T>
void check_overlap_cuda_options(const char* fn, const OverlapOptions<T>& o,
                                const char* path = "options.", bool all = false) {
  if (all) return;
  const char* unsupported = o.weight.defined()                ? "weight"
                            : o.class_weight.defined()        ? "class_weight"
                            : o.empty != EmptyPolicy::formula ? "empty other than formula"
                            : o.gamma != 1.0                  ? "gamma other than 1"
                            : o.log                           ? "log"
                            : o.clamp                         ? "clamp"
                                                              : nullptr;
  SEGLOSS_CHECK(!unsupported, fn, path, unsupported, " is not supported on cuda yet");
}

// The arguments of the kernels; cuda_path: the caller has a CUDA path for a CUDA input; path
// as in check_overlap_options; cuda_all as check_overlap_cuda_options' all (then the weight and
// the class weights of a CUDA call are CUDA tensors).
template <class T>
cpu::OverlapArgs<T> overlap_args(const char* fn, const Tensor<T>& logits, const Tensor<T>& target,
                                 const OverlapOptions<T>& o, bool cuda_path = false,
                                 const char* path = "options.", bool cuda_all = false) {
  check_same_shape_pair(fn, logits, target, "logits", cuda_path);
  const bool on_cuda = cuda_path && logits.device() == Device::cuda;
  if (logits.device() == Device::cuda) check_overlap_cuda_options(fn, o, path, cuda_all);
  check_overlap_options(fn, logits.shape(), o, path,
                        on_cuda && cuda_all ? Device::cuda : Device::cpu);
  const Shape& s = logits.shape();
  cpu::OverlapArgs<T> a;
  a.x = logits.data();
  a.t = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  a.sigmoid = o.activation == Activation::sigmoid;
  a.squared = o.squared;
  const OptionName weight(path, "weight");  // for the weight's errors
  if (o.weight.defined())
    check_same_device(fn, weight.c_str(), o.weight,
                      on_cuda && cuda_all ? Device::cuda : Device::cpu);
  a.weight = make_broadcast_reader(fn, weight.c_str(), s, o.weight.shape(), o.weight.data(),
                                   o.weight.defined());
  a.w_squared_pt = o.weighting == OverlapWeighting::squared || o.squared;
  return a;
}

// The shape of the scores: (N, C) per image, (C) for the batch.
template <class O>
Shape overlap_scores_shape(const Shape& input, const O& o) {
  return o.per_image ? Shape{input[0], input[1]} : Shape{input[1]};
}

// Scores from per-plane statistics stats[plane * stride + {0: I, 1: P, 2: T}].
// `input` is the logits' shape (N, C, ...).
template <class O>
OverlapScores overlap_scores(const std::vector<double>& stats, int stride, const Shape& input,
                             const O& o, const ScoreForm& f) {
  OverlapScores s;
  s.channels = input[1];
  s.per_image = o.per_image;
  s.shape = overlap_scores_shape(input, o);
  const int64_t count = s.shape.numel(), planes = input[0] * input[1];
  std::vector<double> inter(count, 0.0), pred(count, 0.0), targ(count, 0.0);
  for (int64_t p = 0; p < planes; ++p) {  // in plane order: batch sums are deterministic
    const int64_t j = s.of_plane(p);
    inter[j] += stats[p * stride + 0];
    pred[j] += stats[p * stride + 1];
    targ[j] += stats[p * stride + 2];
  }
  s.score.assign(count, 0.0);
  s.ds_di.assign(count, 0.0);
  s.ds_dp.assign(count, 0.0);
  s.cw.assign(count, 1.0);
  s.state.assign(count, ScoreState::kept);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t c = j % s.channels;
    if (o.class_weight.defined()) s.cw[j] = static_cast<double>(o.class_weight[c]);
    if (c == 0 && !o.include_background) {
      s.state[j] = ScoreState::excluded;
      continue;
    }
    if (targ[j] == 0.0 && o.empty != EmptyPolicy::formula) {
      if (o.empty == EmptyPolicy::skip) {
        s.state[j] = ScoreState::skipped;
        ++s.skipped;
        continue;
      }
      s.state[j] = ScoreState::fixed;
      s.score[j] = o.empty == EmptyPolicy::one ? 1.0 : 0.0;
      ++s.kept;
      continue;
    }
    const double num = f.a_n * inter[j] + o.smooth_nr;
    const double den = f.a_i * inter[j] + f.a_p * pred[j] + f.a_t * targ[j] + o.smooth_dr;
    s.score[j] = num / den;
    s.ds_di[j] = (f.a_n * den - f.a_i * num) / (den * den);
    s.ds_dp[j] = -f.a_p * num / (den * den);
    ++s.kept;
  }
  return s;
}

// The linear form's l(S) and dl/dS.
inline double linear_loss(double score, double gamma) {
  return pw::overlap_score_loss(score, gamma, false, false);
}
inline double linear_slope(double score, double gamma) {
  return pw::overlap_score_slope(score, gamma, false, false);
}

// Per-score loss of the sum and none reductions, and its dl/dS (without c_j): core/pointwise.hpp,
// shared with the CUDA finalize.
template <class O>
double score_loss(double s, const O& o) {
  return pw::overlap_score_loss(s, o.gamma, o.log, o.clamp);
}
template <class O>
double score_slope(double s, const O& o) {
  return pw::overlap_score_slope(s, o.gamma, o.log, o.clamp);
}

// What the reduced loss needs of the scores, as sums over the scores kept (n of them):
// n, sum_j c_j l_j (l_j the per-score loss of score_loss) and sum_j c_j S_j (n M, the mean score
// of the log and clamp forms). Sums add across shards of a batch (the statistics / finalize
// split of overlap.hpp).
struct OverlapTotals {
  double kept = 0.0, loss_sum = 0.0, score_sum = 0.0;
};

template <class O>
OverlapTotals overlap_totals(const OverlapScores& s, const O& o) {
  OverlapTotals t;
  for (size_t j = 0; j < s.score.size(); ++j) {
    if (!s.counted(static_cast<int64_t>(j))) continue;
    t.kept += 1.0;
    t.loss_sum += s.cw[j] * score_loss(s.score[j], o);
    t.score_sum += s.cw[j] * s.score[j];
  }
  return t;
}

// The reduced loss (mean or sum) from the totals.
template <class O>
double overlap_value(const OverlapTotals& t, const O& o) {
  if (t.kept == 0.0) return 0.0;
  const bool mean = o.reduction == Reduction::mean;
  if (mean && (o.log || o.clamp))  // the form of the mean score
    return pw::overlap_score_loss(t.score_sum / t.kept, 1.0, o.log, o.clamp);
  return mean ? t.loss_sum / t.kept : t.loss_sum;
}
template <class O>
double overlap_value(const OverlapScores& s, const O& o) {
  return overlap_value(overlap_totals(s, o), o);
}

// The per-score values of reduction none: c_j l_j, 0 for the scores left out.
template <class T, class O>
Tensor<T> overlap_values(const OverlapScores& s, const O& o) {
  Tensor<T> out = Tensor<T>::zeros(s.shape);
  for (int64_t j = 0; j < out.numel(); ++j)
    if (s.counted(j)) out[j] = static_cast<T>(s.cw[j] * score_loss(s.score[j], o));
  return out;
}

// G_j = dL/dS_j of a mean or sum reduction times g, or of none with grad_out (g_j per score),
// for the scores s and the totals t of the whole loss (t = overlap_totals(s) in one process;
// the totals summed over the shards in the split). Fixed and left-out scores get 0.
template <class T, class O>
std::vector<double> overlap_slopes(const OverlapScores& s, const OverlapTotals& t, const O& o,
                                   double g, const T* grad_out) {
  const size_t count = s.score.size();
  std::vector<double> G(count, 0.0);
  if (t.kept == 0.0) return G;
  const bool mean = !grad_out && o.reduction == Reduction::mean;
  const double inv_n = 1.0 / t.kept;
  double form_slope = 0.0;  // dL/dM of the mean log or clamp forms
  if (mean && (o.log || o.clamp)) {
    const double m = t.score_sum / t.kept;
    form_slope = pw::overlap_score_slope(m, 1.0, o.log, o.clamp);
  }
  for (size_t j = 0; j < count; ++j) {
    if (s.state[j] != ScoreState::kept) continue;
    const double gj = grad_out ? static_cast<double>(grad_out[j]) : g;
    if (mean && (o.log || o.clamp))
      G[j] = gj * form_slope * s.cw[j] * inv_n;
    else
      G[j] = gj * s.cw[j] * score_slope(s.score[j], o) * (mean ? inv_n : 1.0);
  }
  return G;
}
template <class T, class O>
std::vector<double> overlap_slopes(const OverlapScores& s, const O& o, double g,
                                   const T* grad_out) {
  return overlap_slopes<T>(s, overlap_totals(s, o), o, g, grad_out);
}

// Per-plane coefficients of the gradient pass: a_p = G_j dS/dI, b_p = G_j dS/dP.
inline void overlap_coefficients(const OverlapScores& s, const std::vector<double>& G,
                                 int64_t planes, std::vector<double>& ca, std::vector<double>& cb) {
  ca.resize(static_cast<size_t>(planes));
  cb.resize(static_cast<size_t>(planes));
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t j = s.of_plane(p);
    ca[p] = G[j] * s.ds_di[j];
    cb[p] = G[j] * s.ds_dp[j];
  }
}

// ---- the statistics / finalize split (overlap.hpp, OverlapStatistics) ----

// A shard's statistics from its per-plane sums sums[plane * stride + {0: I, 1: P, 2: T}] over
// the N C planes of `input` (the shard's logits' shape). local keeps I, P, T (stride 3).
template <class O>
OverlapStatistics overlap_split_statistics(const std::vector<double>& sums, int stride,
                                           const Shape& input, const O& o, const ScoreForm& f) {
  const int64_t channels = input[1], planes = input[0] * channels;
  OverlapStatistics st;
  st.per_image = o.per_image;
  st.channels = channels;
  st.local.resize(static_cast<size_t>(planes * 3));
  for (int64_t q = 0; q < planes; ++q)
    for (int k = 0; k < 3; ++k) st.local[q * 3 + k] = sums[q * stride + k];
  if (o.per_image) {  // the shard's own scores: their totals are what the mean needs
    const auto t = overlap_totals(overlap_scores(st.local, 3, input, o, f), o);
    st.global = {t.kept, t.loss_sum, t.score_sum};
  } else {  // every channel's sums, over the shard's images in order
    st.global.assign(static_cast<size_t>(3 * channels), 0.0);
    for (int64_t q = 0; q < planes; ++q)
      for (int k = 0; k < 3; ++k) st.global[(q % channels) * 3 + k] += st.local[q * 3 + k];
  }
  return st;
}

// The number of global values of an overlap term: 3 per image (the totals), else 3 per channel.
template <class O>
size_t overlap_split_size(const Shape& input, const O& o) {
  return o.per_image ? 3 : static_cast<size_t>(3 * input[1]);
}

// The per-image scores that a shard's local sums (I, P, T per plane) keep, as overlap_scores
// counts them: every plane but the excluded background and, with EmptyPolicy::skip, those whose
// target sum is 0. The shard's part of the count summed across shards (global[0]). (Not through
// overlap_scores itself: it reads options.class_weight, which a CUDA call keeps on the device.)
template <class O>
int64_t own_kept_scores(const std::vector<double>& local, const Shape& input, const O& o) {
  int64_t kept = 0;
  const int64_t planes = input[0] * input[1];
  for (int64_t q = 0; q < planes; ++q) {
    if (q % input[1] == 0 && !o.include_background) continue;
    if (local[q * 3 + 2] == 0.0 && o.empty == EmptyPolicy::skip) continue;
    ++kept;
  }
  return kept;
}

// Statistics that do not come from this shard's input with these options (their source and
// layout) are an error; the overlap part of st.global starts after `offset` values of another
// term (a combined loss).
template <class O>
void check_overlap_layout(const char* fn, const OverlapStatistics& st, size_t offset,
                          const Shape& s, const O& o) {
  check_source(fn, st);
  const size_t want_global = offset + overlap_split_size(s, o);
  SEGLOSS_CHECK(st.per_image == o.per_image && st.channels == s[1] &&
                    st.local.size() == static_cast<size_t>(3 * s[0] * s[1]) &&
                    st.global.size() == want_global,
                fn, "the statistics (per_image ", st.per_image ? "true" : "false", ", ",
                st.channels, " channels, ", st.local.size() / 3, " local planes, ",
                st.global.size(), " global values) do not come from this shard's ", s,
                " with these options (per_image ", o.per_image ? "true" : "false", ", ",
                want_global, " global values)");
}

// check_overlap_layout, then the options and the count of kept scores.
// `digest`: that of the caller's options (check_split_options), or 0 where the caller checked
// it already. It is checked before the count of kept scores, which these options define: a
// count made with other options (include_background, empty) is reported as that.
template <class O>
void check_overlap_split(const char* fn, const OverlapStatistics& st, size_t offset, const Shape& s,
                         const O& o, uint64_t digest) {
  check_overlap_layout(fn, st, offset, s, o);
  if (digest != 0) check_split_options(fn, st, digest);
  if (o.per_image)  // OverlapTotals::kept: at least the scores this shard's own sums keep
    check_split_score_count(fn, st, offset, own_kept_scores(st.local, s, o), "kept scores");
}

// Finalize: from the reduced statistics (checked first; `digest` as check_overlap_split's), the
// per-plane coefficients ca, cb of the gradient of g times the loss, for the shard's N C planes;
// returns the loss. With per_image the shard's scores come from local and the mean's totals from
// global; without, the batch scores come from the reduced per-channel sums.
template <class T, class O>
double overlap_split_coefficients(const char* fn, const OverlapStatistics& st, size_t offset,
                                  const Shape& s, const O& o, const ScoreForm& f, double g,
                                  std::vector<double>& ca, std::vector<double>& cb,
                                  uint64_t digest) {
  check_overlap_split(fn, st, offset, s, o, digest);
  const int64_t planes = s[0] * s[1];
  const double* global = st.global.data() + offset;
  if (o.per_image) {
    const auto scores = overlap_scores(st.local, 3, s, o, f);
    const OverlapTotals t{global[0], global[1], global[2]};
    overlap_coefficients(scores, overlap_slopes<T>(scores, t, o, g, nullptr), planes, ca, cb);
    return overlap_value(t, o);
  }
  // One "image" holding every channel's reduced sums: the batch scores.
  const std::vector<double> sums(global, global + 3 * s[1]);
  const auto scores = overlap_scores(sums, 3, Shape{1, s[1]}, o, f);
  overlap_coefficients(scores, overlap_slopes<T>(scores, o, g, nullptr), planes, ca, cb);
  return overlap_value(scores, o);
}

#if defined(SEGLOSS_WITH_CUDA)
// What the CUDA finalize needs of the options (the subset check_overlap_cuda_options allows).
// O: OverlapOptions<T>, or the softmax losses' SoftmaxOverlapOptions<T>.
template <class O>
cuda::OverlapForm cuda_overlap_form(const Shape& s, const O& o, const ScoreForm& f) {
  cuda::OverlapForm c;
  c.a_n = f.a_n;
  c.a_i = f.a_i;
  c.a_p = f.a_p;
  c.a_t = f.a_t;
  c.smooth_nr = o.smooth_nr;
  c.smooth_dr = o.smooth_dr;
  c.images = s[0];
  c.channels = s[1];
  c.per_image = o.per_image;
  c.include_background = o.include_background;
  c.mean = o.reduction == Reduction::mean;
  c.empty = o.empty;
  c.gamma = o.gamma;
  c.log = o.log;
  c.clamp = o.clamp;
  return c;
}
#endif

#if defined(SEGLOSS_WITH_CUDA)
// The statistics of a CUDA shard from its per-plane sums (copied back from the device): the CPU's
// overlap_split_statistics, with the class weights (a CUDA tensor) copied to the host, where the
// CPU's check of their values runs (the call waits anyway). O: any overlap loss's options; path
// as in check_overlap_options.
template <class O>
OverlapStatistics cuda_split_statistics(const char* fn, const std::vector<double>& sums, int stride,
                                        const Shape& input, const O& o, const ScoreForm& f,
                                        const char* path = "options.") {
  if (!o.class_weight.defined()) return overlap_split_statistics(sums, stride, input, o, f);
  O host = o;
  host.class_weight = o.class_weight.to(Device::cpu);
  check_overlap_options(fn, input, host, path);
  return overlap_split_statistics(sums, stride, input, host, f);
}

// What finalize uploads of the reduced statistics, whose overlap part starts at `offset`.
inline cuda::OverlapSplit cuda_overlap_split(const OverlapStatistics& st, size_t offset) {
  cuda::OverlapSplit s;
  s.local = st.local.data();
  s.global = st.global.data() + offset;
  s.global_size = st.global.size() - offset;
  return s;
}
#endif

// OverlapInfo of a CUDA call whose empty policy is formula: every score is kept except the
// excluded background. (With another policy the counts depend on the data: the call copies
// them back, cuda::OverlapCounts.)
template <class O>
void cuda_overlap_info(const Shape& s, const O& o, OverlapInfo* info) {
  if (!info) return;
  const int64_t count = o.per_image ? s[0] * s[1] : s[1];
  *info = OverlapInfo{count - (o.include_background ? 0 : count / s[1]), 0};
}

}  // namespace detail
}  // namespace segloss
