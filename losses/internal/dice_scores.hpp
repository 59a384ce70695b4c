// Shared by soft_dice and bce_dice (not installed): the Dice argument checks, the scores from
// the per-plane statistics, and the per-plane gradient coefficients.
//
// Scores j are planes (per image) or channels (batch). From the sums of score j,
//   S_j = (2 I_j + smooth_nr) / (U_j + smooth_dr)
// and with c_j the weight of score j in the loss (1/#scores for mean, 1 for sum, grad_out_j
// for none), the gradient of pixel i in score j is
//   dL/dx_i = (a_j - b_j t_i) dp_i/dx_i,  a_j = c_j S_j / (U_j + smooth_dr),
//                                           b_j = 2 c_j / (U_j + smooth_dr).
#pragma once

#include <vector>

#include "../../backends/cpu/soft_dice.hpp"
#include "../../core/checks.hpp"
#include "../soft_dice.hpp"

namespace segloss {
namespace detail {

struct DiceScores {
  std::vector<double> score;  // S_j
  std::vector<double> denom;  // U_j + smooth_dr
  Shape shape;                // (N, C) per image, (C) for the batch
  int64_t channels = 1;
  bool per_image = true;
  // The score that plane p (= n * C + c) belongs to.
  int64_t of_plane(int64_t p) const { return per_image ? p : p % channels; }
  // The reduced loss: mean or sum over j of 1 - S_j.
  double reduce(Reduction r) const {
    double sum = 0.0;
    for (double v : score) sum += 1.0 - v;
    return sum * (r == Reduction::mean ? 1.0 / static_cast<double>(score.size()) : 1.0);
  }
};

// S and U + smooth_dr of one score from its sums I and U = sum p + sum t.
inline void dice_score(double inter, double uni, const SoftDiceOptions& o, double& score,
                       double& denom) {
  denom = uni + o.smooth_dr;
  score = (2.0 * inter + o.smooth_nr) / denom;
}

// The gradient coefficients a = c S / (U + smooth_dr), b = 2 c / (U + smooth_dr).
inline void dice_coefficient(double c, double score, double denom, double& ca, double& cb) {
  ca = c * score / denom;
  cb = 2.0 * c / denom;
}

template <class T>
cpu::SoftDiceArgs<T> soft_dice_args(const char* function, const Tensor<T>& logits,
                                    const Tensor<T>& target, const SoftDiceOptions& o) {
  check_same_shape_pair(function, logits, target);
  check_smooth(function, "options.smooth_nr", o.smooth_nr);
  check_smooth(function, "options.smooth_dr", o.smooth_dr);
  const Shape& s = logits.shape();
  cpu::SoftDiceArgs<T> a;
  a.x = logits.data();
  a.t = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  a.sigmoid = o.activation == Activation::sigmoid;
  return a;
}

// The shape of the scores: (N, C) per image, (C) for the batch.
inline Shape dice_scores_shape(const Shape& input, const SoftDiceOptions& o) {
  return o.per_image ? Shape{input[0], input[1]} : Shape{input[1]};
}

// c_j of a mean or sum reduction, before any upstream gradient.
inline double dice_uniform_weight(const Shape& input, const SoftDiceOptions& o, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(dice_scores_shape(input, o).numel())
                              : 1.0;
}

// Scores from per-plane statistics laid out as stats[plane * stride + {0: I, 1: sum p, 2: sum t}].
inline DiceScores dice_scores(const std::vector<double>& stats, int stride, const Shape& shape,
                              const SoftDiceOptions& o) {
  DiceScores s;
  s.channels = shape[1];
  s.per_image = o.per_image;
  s.shape = dice_scores_shape(shape, o);
  const int64_t count = s.shape.numel(), planes = shape[0] * shape[1];
  std::vector<double> inter(count, 0.0), uni(count, 0.0);
  for (int64_t p = 0; p < planes; ++p) {  // in plane order: batch sums are deterministic
    const int64_t j = s.of_plane(p);
    inter[j] += stats[p * stride + 0];
    uni[j] += stats[p * stride + 1] + stats[p * stride + 2];
  }
  s.score.resize(count);
  s.denom.resize(count);
  for (int64_t j = 0; j < count; ++j) dice_score(inter[j], uni[j], o, s.score[j], s.denom[j]);
  return s;
}

// Per-plane a_j and b_j, with c_j = weights[j] (or `uniform` for every j when weights is null).
template <class T>
void dice_coefficients(const DiceScores& s, int64_t planes, const T* weights, double uniform,
                       std::vector<double>& ca, std::vector<double>& cb) {
  ca.resize(static_cast<size_t>(planes));
  cb.resize(static_cast<size_t>(planes));
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t j = s.of_plane(p);
    dice_coefficient(weights ? static_cast<double>(weights[j]) : uniform, s.score[j], s.denom[j],
                     ca[p], cb[p]);
  }
}

}  // namespace detail
}  // namespace segloss
