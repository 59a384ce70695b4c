// soft_dice: argument checks, the statistics pass, the scores, and the gradient pass.
//
// Scores j are planes (per image) or channels (batch). From the sums of score j,
//   S_j = (2 I_j + smooth_nr) / (U_j + smooth_dr)
// and with c_j the weight of score j in the loss (1/#scores for mean, 1 for sum, grad_out_j
// for none), the gradient of pixel i in score j is
//   dL/dx_i = (a_j - b_j t_i) dp_i/dx_i,  a_j = c_j S_j / (U_j + smooth_dr),
//                                           b_j = 2 c_j / (U_j + smooth_dr).
#include "soft_dice.hpp"

#include <vector>

#include "../backends/cpu/soft_dice.hpp"
#include "../core/checks.hpp"

namespace segloss {
namespace {

struct Scores {
  std::vector<double> score;  // S_j
  std::vector<double> denom;  // U_j + smooth_dr
  Shape shape;                // (N, C) per image, (C) for the batch
  int64_t channels = 1;
  bool per_image = true;
  // The score that plane p (= n * C + c) belongs to.
  int64_t of_plane(int64_t p) const { return per_image ? p : p % channels; }
};

template <class T>
cpu::SoftDiceArgs<T> prepare(const char* function, const Tensor<T>& logits,
                             const Tensor<T>& target, const SoftDiceOptions& o) {
  detail::check_same_shape_pair(function, logits, target);
  detail::check_smooth(function, "options.smooth_nr", o.smooth_nr);
  detail::check_smooth(function, "options.smooth_dr", o.smooth_dr);
  const Shape& s = logits.shape();
  cpu::SoftDiceArgs<T> a;
  a.x = logits.data();
  a.t = target.data();
  a.planes = s[0] * s[1];
  a.plane_size = s.numel_from(2);
  a.sigmoid = o.activation == Activation::sigmoid;
  return a;
}

// Pass 1 and the scores computed from its sums.
template <class T>
Scores scores(const cpu::SoftDiceArgs<T>& a, const Shape& shape, const SoftDiceOptions& o) {
  std::vector<double> stats(static_cast<size_t>(a.planes * 3));
  cpu::soft_dice_statistics(a, stats.data());
  Scores s;
  s.channels = shape[1];
  s.per_image = o.per_image;
  s.shape = o.per_image ? Shape{shape[0], shape[1]} : Shape{shape[1]};
  const int64_t count = s.shape.numel();
  std::vector<double> inter(count, 0.0), uni(count, 0.0);
  for (int64_t p = 0; p < a.planes; ++p) {  // in plane order: batch sums are deterministic
    const int64_t j = s.of_plane(p);
    inter[j] += stats[p * 3 + 0];
    uni[j] += stats[p * 3 + 1] + stats[p * 3 + 2];
  }
  s.score.resize(count);
  s.denom.resize(count);
  for (int64_t j = 0; j < count; ++j) {
    s.denom[j] = uni[j] + o.smooth_dr;
    s.score[j] = (2.0 * inter[j] + o.smooth_nr) / s.denom[j];
  }
  return s;
}

double reduce(const Scores& s, Reduction r) {
  double sum = 0.0;
  for (double v : s.score) sum += 1.0 - v;
  return r == Reduction::mean ? sum / static_cast<double>(s.score.size()) : sum;
}

// Pass 2, with weight c_j = weights[j] (or `uniform` for every j when weights is null).
template <class T>
void gradient(const cpu::SoftDiceArgs<T>& a, const Scores& s, const T* weights, double uniform,
              T* grad) {
  std::vector<double> ca(static_cast<size_t>(a.planes)), cb(static_cast<size_t>(a.planes));
  for (int64_t p = 0; p < a.planes; ++p) {
    const int64_t j = s.of_plane(p);
    const double c = weights ? static_cast<double>(weights[j]) : uniform;
    ca[p] = c * s.score[j] / s.denom[j];
    cb[p] = 2.0 * c / s.denom[j];
  }
  cpu::soft_dice_gradient(a, ca.data(), cb.data(), grad);
}

double uniform_weight(const Scores& s, Reduction r) {
  return r == Reduction::mean ? 1.0 / static_cast<double>(s.score.size()) : 1.0;
}

}  // namespace

template <class T>
Tensor<T> soft_dice(const Tensor<T>& logits, const Tensor<T>& target,
                    const SoftDiceOptions& options) {
  const auto a = prepare("soft_dice", logits, target, options);
  const Scores s = scores(a, logits.shape(), options);
  if (options.reduction != Reduction::none)
    return Tensor<T>::full(Shape{}, static_cast<T>(reduce(s, options.reduction)));
  Tensor<T> out = Tensor<T>::empty(s.shape);
  for (int64_t j = 0; j < out.numel(); ++j) out[j] = static_cast<T>(1.0 - s.score[j]);
  return out;
}

template <class T>
Tensor<T> soft_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                             const Tensor<T>& grad_out, const SoftDiceOptions& options) {
  const char* fn = "soft_dice_backward";
  const auto a = prepare(fn, logits, target, options);
  const Scores s = scores(a, logits.shape(), options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, s.shape);
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  if (scalar)
    gradient(a, s, static_cast<const T*>(nullptr),
             static_cast<double>(grad_out[0]) * uniform_weight(s, options.reduction), grad.data());
  else
    gradient(a, s, grad_out.data(), 0.0, grad.data());
  return grad;
}

template <class T>
double soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                Tensor<T>& grad, const SoftDiceOptions& options) {
  const char* fn = "soft_dice_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use soft_dice and soft_dice_backward");
  const auto a = prepare(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  const Scores s = scores(a, logits.shape(), options);
  gradient(a, s, static_cast<const T*>(nullptr), uniform_weight(s, options.reduction),
           grad.data());
  return reduce(s, options.reduction);
}

template <class T>
ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SoftDiceOptions& options) {
  ValueAndGrad<T> r;
  r.value = soft_dice_value_and_grad(logits, target, r.grad, options);
  return r;
}

#define SEGLOSS_INSTANTIATE(T)                                                                   \
  template Tensor<T> soft_dice(const Tensor<T>&, const Tensor<T>&, const SoftDiceOptions&);      \
  template Tensor<T> soft_dice_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,    \
                                        const SoftDiceOptions&);                                 \
  template double soft_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,       \
                                           const SoftDiceOptions&);                              \
  template ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&,          \
                                                    const SoftDiceOptions&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
