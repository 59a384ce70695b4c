// custom_loss: a loss segloss does not have, written from tape primitives (core/tape.hpp) in a
// dozen lines, its gradient from the tape, checked against finite differences, then mixed with
// a fused loss (cross_entropy) by the tape's scalar algebra.
//
// The loss: a boundary-aware focal Tversky loss with per-class weights, on softmax
// probabilities p and one-hot labels t, with a boundary weight map b (pixels near an edge of
// the labels weigh more; losses/boundary_weights.hpp), per image n and class c, with s the
// smooth term and w_c the class weights:
// clang-format off
//   I_nc  = sum_i b_i p_ic t_ic
//   FP_nc = sum_i b_i p_ic (1 - t_ic)
//   FN_nc = sum_i b_i (1 - p_ic) t_ic
//   TI_nc = (I_nc + s) / (I_nc + alpha FP_nc + beta FN_nc + s)
//   L     = sum_nc w_c (1 - TI_nc)^gamma / (N sum_c w_c)
// clang-format on
// (Salehi et al. 2017 for Tversky, Abraham and Khan 2019 for its focal form.) Nobody derived
// its gradient: the tape does.
#include <cstdio>
#include <random>

#include <segloss/segloss.hpp>

using segloss::Shape;
using segloss::Tensor;
namespace ad = segloss::ad;

struct FocalTverskyOptions {
  double alpha = 0.7, beta = 0.3, gamma = 0.75, smooth = 1e-5;
};

template <class T>
ad::Var<T> boundary_focal_tversky(ad::Tape<T>& tape, const ad::Var<T>& logits,
                                  const Tensor<int64_t>& labels, const Tensor<T>& boundary,
                                  const Tensor<T>& class_weight, const FocalTverskyOptions& o) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  const ad::Var<T> t = ad::one_hot(tape, labels, C), b = tape.constant(boundary);
  const ad::Var<T> p = ad::softmax(logits);
  const ad::Var<T> I = ad::sum_per_image_class(b * p * t);
  const ad::Var<T> fp = ad::sum_per_image_class(b * p * (1.0 - t));
  const ad::Var<T> fn = ad::sum_per_image_class(b * (1.0 - p) * t);
  const ad::Var<T> ti = (I + o.smooth) / (I + o.alpha * fp + o.beta * fn + o.smooth);
  const ad::Var<T> w = tape.constant(class_weight);  // (C): read along the class axis
  return ad::sum(w * ad::pow(1.0 - ti, o.gamma)) / (static_cast<double>(N) * ad::sum(w).item());
}

int main() {
  // Two 24x24 images, three classes: two discs on a background; the logits a noisy guess.
  const int64_t n = 2, c = 3, h = 24, w = 24;
  Tensor<int64_t> labels = Tensor<int64_t>::empty({n, h, w});
  Tensor<double> logits = Tensor<double>::empty({n, c, h, w});
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const bool a = (x - 8) * (x - 8) + (y - 9) * (y - 9) < 25 + 10 * i;
        const bool d = (x - 16) * (x - 16) + (y - 15) * (y - 15) < 16;
        const int64_t k = a ? 1 : d ? 2 : 0;
        labels[(i * h + y) * w + x] = k;
        for (int64_t q = 0; q < c; ++q)
          logits[((i * c + q) * h + y) * w + x] = (q == k ? 1.5 : 0.0) + noise(rng);
      }
  // The boundary weights of the foreground mask (a constant: no gradient flows into it).
  Tensor<double> foreground = Tensor<double>::empty({n, 1, h, w});
  for (int64_t i = 0; i < labels.numel(); ++i) foreground[i] = labels[i] != 0 ? 1.0 : 0.0;
  const Tensor<double> boundary = segloss::boundary_weights(foreground);
  const Tensor<double> class_weight = Tensor<double>::from({0.2, 1.0, 2.0}, {c});
  const FocalTverskyOptions options;

  // Value and gradient from the tape.
  ad::Tape<double> tape;
  const ad::Var<double> x = tape.leaf(logits);
  const ad::Var<double> loss =
      boundary_focal_tversky(tape, x, labels, boundary, class_weight, options);
  tape.backward(loss);
  const Tensor<double> grad = tape.grad(x).clone();

  // The gradient against central finite differences (core/gradcheck.hpp).
  const auto f = [&](const Tensor<double>& v) {
    ad::Tape<double> t;
    return boundary_focal_tversky(t, t.leaf(v), labels, boundary, class_weight, options).item();
  };
  segloss::GradcheckOptions check;
  check.samples = 400;
  const segloss::GradcheckResult r = segloss::gradcheck(f, logits, grad, check);
  std::printf("boundary-aware focal Tversky: %.6f\n", loss.item());
  std::printf("gradcheck: %s\n", r.summary().c_str());

  // Mixed with a fused loss: L = cross_entropy + 0.5 * focal Tversky, one backward.
  const ad::Var<double> total = ad::cross_entropy(x, labels) + 0.5 * loss;
  tape.backward(total);
  std::printf("cross_entropy + 0.5 * focal Tversky: %.6f (gradient norm^2 %.6g)\n", total.item(),
              [&] {
                double s = 0;
                for (double g : tape.grad(x)) s += g * g;
                return s;
              }());
  return r.passed ? 0 : 1;
}
