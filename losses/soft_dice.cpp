// soft_dice: argument checks, the statistics pass, the scores, and the gradient pass
// (the math is in internal/dice_scores.hpp and soft_dice.hpp).
#include "soft_dice.hpp"

#include <vector>

#include "internal/dice_scores.hpp"

namespace segloss {
namespace {

template <class T>
detail::DiceScores scores(const cpu::SoftDiceArgs<T>& a, const Shape& shape,
                          const SoftDiceOptions& o) {
  std::vector<double> stats(static_cast<size_t>(a.planes * 3));
  cpu::soft_dice_statistics(a, stats.data());
  return detail::dice_scores(stats, 3, shape, o);
}

// Both passes: the sums, then the gradient of sum_j c_j (1 - S_j) with c_j = weights[j] (or
// `uniform` for every j when weights is null). Returns the scores.
template <class T>
detail::DiceScores scores_and_gradient(const cpu::SoftDiceArgs<T>& a, const Shape& shape,
                                       const SoftDiceOptions& o, const T* weights, double uniform,
                                       T* grad) {
  auto s = scores(a, shape, o);
  std::vector<double> ca, cb;
  detail::dice_coefficients(s, a.planes, weights, uniform, ca, cb);
  cpu::soft_dice_gradient(a, ca.data(), cb.data(), grad);
  return s;
}

}  // namespace

template <class T>
Tensor<T> soft_dice(const Tensor<T>& logits, const Tensor<T>& target,
                    const SoftDiceOptions& options) {
  const auto a = detail::soft_dice_args("soft_dice", logits, target, options);
  const auto s = scores(a, logits.shape(), options);
  if (options.reduction != Reduction::none)
    return Tensor<T>::full(Shape{}, static_cast<T>(s.reduce(options.reduction)));
  Tensor<T> out = Tensor<T>::empty(s.shape);
  for (int64_t j = 0; j < out.numel(); ++j) out[j] = static_cast<T>(1.0 - s.score[j]);
  return out;
}

template <class T>
Tensor<T> soft_dice_backward(const Tensor<T>& logits, const Tensor<T>& target,
                             const Tensor<T>& grad_out, const SoftDiceOptions& options) {
  const char* fn = "soft_dice_backward";
  const auto a = detail::soft_dice_args(fn, logits, target, options);
  const bool scalar = options.reduction != Reduction::none;
  detail::check_grad_out(fn, grad_out, scalar, detail::dice_scores_shape(logits.shape(), options));
  Tensor<T> grad = Tensor<T>::empty(logits.shape());
  if (scalar)
    scores_and_gradient(a, logits.shape(), options, static_cast<const T*>(nullptr),
                        static_cast<double>(grad_out[0]) *
                            detail::dice_uniform_weight(logits.shape(), options, options.reduction),
                        grad.data());
  else
    scores_and_gradient(a, logits.shape(), options, grad_out.data(), 0.0, grad.data());
  return grad;
}

template <class T>
double soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target, Tensor<T>& grad,
                                const SoftDiceOptions& options) {
  const char* fn = "soft_dice_value_and_grad";
  SEGLOSS_CHECK(options.reduction != Reduction::none, fn,
                "reduction none has no single value; use soft_dice and soft_dice_backward");
  const auto a = detail::soft_dice_args(fn, logits, target, options);
  detail::prepare_grad(fn, logits, grad);
  const auto s = scores_and_gradient(
      a, logits.shape(), options, static_cast<const T*>(nullptr),
      detail::dice_uniform_weight(logits.shape(), options, options.reduction), grad.data());
  return s.reduce(options.reduction);
}

template <class T>
ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>& logits, const Tensor<T>& target,
                                         const SoftDiceOptions& options) {
  ValueAndGrad<T> r;
  r.value = soft_dice_value_and_grad(logits, target, r.grad, options);
  return r;
}

#define SEGLOSS_INSTANTIATE(T)                                                                \
  template Tensor<T> soft_dice(const Tensor<T>&, const Tensor<T>&, const SoftDiceOptions&);   \
  template Tensor<T> soft_dice_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                        const SoftDiceOptions&);                              \
  template double soft_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&, Tensor<T>&,    \
                                           const SoftDiceOptions&);                           \
  template ValueAndGrad<T> soft_dice_value_and_grad(const Tensor<T>&, const Tensor<T>&,       \
                                                    const SoftDiceOptions&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
