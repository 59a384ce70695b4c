// The hand-written backward of examples/train_shapes' network (im2col convolutions with stride
// and dilation, ReLU, nearest upsampling, concatenation), checked with segloss::gradcheck in
// double, through a segloss loss on its logits: the gradient with respect to every parameter
// and to the input image.
#include <doctest/doctest.h>

#include <vector>

#include <segloss/segloss.hpp>

#include "../examples/train_shapes/net.hpp"
#include "../examples/train_shapes/shapes.hpp"

using segloss::Tensor;
using train_shapes::Cache;
using train_shapes::Mat;
using train_shapes::Net;

namespace {

constexpr int64_t kSize = 12;  // divisible by 4: 12 -> 6 -> 3

struct Fixture {
  Net<double> net;
  Tensor<double> image = Tensor<double>::empty({kSize * kSize});
  Tensor<int64_t> labels = Tensor<int64_t>::empty({1, kSize, kSize});
  Fixture() {
    net.init(7);
    // Non-zero biases, so that a bug in their gradient shows.
    train_shapes::Rng rng(11);
    for (auto& l : net.c)
      for (int64_t i = 0; i < l.b.size(); ++i) l.b[i] = 0.1 * rng.normal();
    const auto d = train_shapes::make_shapes(1, kSize, 3);
    for (int64_t i = 0; i < kSize * kSize; ++i) image[i] = d.images[i] - 0.3 * rng.uniform();
    for (int64_t i = 0; i < kSize * kSize; ++i) labels[i] = (i * 7 + i / 5) % 4;
  }
  // The cross-entropy of the logits; the gradient with respect to the logits in dz when given.
  double loss(const Net<double>& n, const double* x, Mat<double>* dz = nullptr) const {
    Cache<double> k;
    n.forward(x, kSize, kSize, k);
    const auto z = Tensor<double>::view(k.z.data(), {1, Net<double>::kClasses, kSize, kSize});
    if (dz == nullptr) return segloss::cross_entropy(z, labels)[0];
    const auto r = segloss::cross_entropy_value_and_grad(z, labels);
    *dz = Eigen::Map<const Mat<double>>(r.grad.data(), kSize * kSize, Net<double>::kClasses);
    return r.value;
  }
};

}  // namespace

TEST_CASE("train_shapes: the network's parameter gradient matches finite differences") {
  Fixture f;
  Mat<double> dz;
  f.loss(f.net, f.image.data(), &dz);
  Cache<double> k;
  f.net.forward(f.image.data(), kSize, kSize, k);
  auto analytic = Tensor<double>::zeros({f.net.num_params()});
  f.net.backward(k, dz, kSize, kSize, analytic.data());
  auto params = Tensor<double>::empty({f.net.num_params()});
  f.net.get(params.data());
  const auto loss_at = [&](const Tensor<double>& p) {
    Net<double> n = f.net;
    n.set(p.data());
    return f.loss(n, f.image.data());
  };
  segloss::GradcheckOptions gc;
  gc.samples = 1500;  // of 32,676 parameters, a seeded sample (few of the biases)
  const auto r = segloss::gradcheck(loss_at, params, analytic, gc);
  INFO(r.summary());
  CHECK(r.passed);
  CHECK(r.checked == 1500);
  // Every bias of every layer (the sample holds few of them): a bias's gradient is the sum of
  // its output channel's gradient, a path the weights' check does not cover. gradcheck runs on
  // the biases alone, the other parameters held.
  std::vector<int64_t> bias_at;  // each bias's index among the parameters (get: w, then b)
  int64_t offset = 0;
  for (const auto& layer : f.net.c) {
    offset += layer.w.size();
    for (int64_t j = 0; j < layer.b.size(); ++j) bias_at.push_back(offset + j);
    offset += layer.b.size();
  }
  REQUIRE(offset == f.net.num_params());
  const auto nb = static_cast<int64_t>(bias_at.size());
  auto biases = Tensor<double>::empty({nb}), bias_grad = Tensor<double>::empty({nb});
  for (int64_t j = 0; j < nb; ++j) {
    biases[j] = params[bias_at[j]];
    bias_grad[j] = analytic[bias_at[j]];
  }
  const auto rb = segloss::gradcheck(
      [&](const Tensor<double>& b) {
        auto p = params.clone();
        for (int64_t j = 0; j < nb; ++j) p[bias_at[j]] = b[j];
        return loss_at(p);
      },
      biases, bias_grad);
  INFO(rb.summary());
  CHECK(rb.passed);
  CHECK(rb.checked == 148);  // 16 + 16 + 32 + 32 + 32 + 16 + 4
}

TEST_CASE("train_shapes: the network's input gradient matches finite differences") {
  Fixture f;
  Mat<double> dz;
  f.loss(f.net, f.image.data(), &dz);
  Cache<double> k;
  f.net.forward(f.image.data(), kSize, kSize, k);
  auto ignored = Tensor<double>::zeros({f.net.num_params()});
  auto analytic = Tensor<double>::empty({kSize * kSize});
  f.net.backward(k, dz, kSize, kSize, ignored.data(), analytic.data());
  const auto r = segloss::gradcheck(
      [&](const Tensor<double>& x) { return f.loss(f.net, x.data()); }, f.image, analytic);
  INFO(r.summary());
  CHECK(r.passed);
  CHECK(r.checked == kSize * kSize);
}
