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
  // c_j of a mean or sum reduction.
  double uniform_weight(Reduction r) const {
    return r == Reduction::mean ? 1.0 / static_cast<double>(score.size()) : 1.0;
  }
  // The reduced loss: mean or sum over j of 1 - S_j.
  double reduce(Reduction r) const {
    double sum = 0.0;
    for (double v : score) sum += 1.0 - v;
    return sum * (r == Reduction::mean ? 1.0 / static_cast<double>(score.size()) : 1.0);
  }
};

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

// Scores from per-plane statistics laid out as stats[plane * stride + {0: I, 1: sum p, 2: sum t}].
inline DiceScores dice_scores(const std::vector<double>& stats, int stride, const Shape& shape,
                              const SoftDiceOptions& o) {
  DiceScores s;
  s.channels = shape[1];
  s.per_image = o.per_image;
  s.shape = o.per_image ? Shape{shape[0], shape[1]} : Shape{shape[1]};
  const int64_t count = s.shape.numel(), planes = shape[0] * shape[1];
  std::vector<double> inter(count, 0.0), uni(count, 0.0);
  for (int64_t p = 0; p < planes; ++p) {  // in plane order: batch sums are deterministic
    const int64_t j = s.of_plane(p);
    inter[j] += stats[p * stride + 0];
    uni[j] += stats[p * stride + 1] + stats[p * stride + 2];
  }
  s.score.resize(count);
  s.denom.resize(count);
  for (int64_t j = 0; j < count; ++j) {
    s.denom[j] = uni[j] + o.smooth_dr;
    s.score[j] = (2.0 * inter[j] + o.smooth_nr) / s.denom[j];
  }
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
    const double c = weights ? static_cast<double>(weights[j]) : uniform;
    ca[p] = c * s.score[j] / s.denom[j];
    cb[p] = 2.0 * c / s.denom[j];
  }
}

}  // namespace detail
}  // namespace segloss
