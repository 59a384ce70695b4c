// The statistics / finalize split of the mean losses on CUDA (bce_with_logits, sigmoid_focal,
// cross_entropy, softmax_focal; docs/distributed.md): on one shard the CUDA statistics equal the
// CPU's and the CUDA finalize with them equals the CUDA value_and_grad; on two and three uneven
// shards of a batch (views of image slices on the device), the statistics summed on the host and
// each shard's finalize give the single-process CPU value on every shard and, concatenated, the
// single-process CPU gradient; float (1e-5 relative) and double (1e-11), for every option that
// changes the statistics or the finalize's math. Also the split's error paths on CUDA and
// bitwise determinism of finalize over 10 runs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

// Images [first, first + count) of a tensor whose first axis is the batch, on its device (an
// undefined tensor stays undefined).
template <class T>
Tensor<T> slice(const Tensor<T>& v, int64_t first, int64_t count) {
  if (!v.defined()) return v;
  Shape s = v.shape();
  const int64_t per_image = v.numel() / s[0];
  s.set(0, count);
  return Tensor<T>::view(const_cast<T*>(v.data()) + first * per_image, s, v.device());
}

// The shard layouts of a batch of 5: one shard, then two and three uneven ones.
const std::vector<std::vector<int64_t>> kLayouts = {{5}, {2, 3}, {1, 3, 1}, {4, 1}};

// The four losses behind one interface: stat, fin and vag call the loss's statistics, finalize
// and value_and_grad; dev(o) moves the options' tensors to the device.
struct Bce {
  template <class T>
  static ShardStatistics stat(const Tensor<T>& x, const Tensor<T>& t,
                              const BceWithLogitsOptions<T>& o) {
    return bce_with_logits_statistics(x, t, o);
  }
  template <class T>
  static double fin(const Tensor<T>& x, const Tensor<T>& t, const ShardStatistics& r, Tensor<T>& g,
                    const BceWithLogitsOptions<T>& o) {
    return bce_with_logits_finalize(x, t, r, g, o);
  }
  template <class T>
  static ValueAndGrad<T> vag(const Tensor<T>& x, const Tensor<T>& t,
                             const BceWithLogitsOptions<T>& o) {
    return bce_with_logits_value_and_grad(x, t, o);
  }
  template <class T>
  static BceWithLogitsOptions<T> dev(BceWithLogitsOptions<T> o) {
    o.weight = gpu(o.weight);
    o.pos_weight = gpu(o.pos_weight);
    return o;
  }
};

struct SigmoidFocal {
  template <class T>
  static ShardStatistics stat(const Tensor<T>& x, const Tensor<T>& t,
                              const SigmoidFocalOptions<T>& o) {
    return sigmoid_focal_statistics(x, t, o);
  }
  template <class T>
  static double fin(const Tensor<T>& x, const Tensor<T>& t, const ShardStatistics& r, Tensor<T>& g,
                    const SigmoidFocalOptions<T>& o) {
    return sigmoid_focal_finalize(x, t, r, g, o);
  }
  template <class T>
  static ValueAndGrad<T> vag(const Tensor<T>& x, const Tensor<T>& t,
                             const SigmoidFocalOptions<T>& o) {
    return sigmoid_focal_value_and_grad(x, t, o);
  }
  template <class T>
  static SigmoidFocalOptions<T> dev(SigmoidFocalOptions<T> o) {
    o.weight = gpu(o.weight);
    return o;
  }
};

struct CrossEntropy {
  template <class T, class U>
  static ShardStatistics stat(const Tensor<T>& x, const Tensor<U>& t,
                              const CrossEntropyOptions<T>& o) {
    return cross_entropy_statistics(x, t, o);
  }
  template <class T, class U>
  static double fin(const Tensor<T>& x, const Tensor<U>& t, const ShardStatistics& r, Tensor<T>& g,
                    const CrossEntropyOptions<T>& o) {
    return cross_entropy_finalize(x, t, r, g, o);
  }
  template <class T, class U>
  static ValueAndGrad<T> vag(const Tensor<T>& x, const Tensor<U>& t,
                             const CrossEntropyOptions<T>& o) {
    return cross_entropy_value_and_grad(x, t, o);
  }
  template <class T>
  static CrossEntropyOptions<T> dev(CrossEntropyOptions<T> o) {
    o.weight = gpu(o.weight);
    return o;
  }
};

struct SoftmaxFocal {
  template <class T, class L>
  static ShardStatistics stat(const Tensor<T>& x, const Tensor<L>& t,
                              const SoftmaxFocalOptions<T>& o) {
    return softmax_focal_statistics(x, t, o);
  }
  template <class T, class L>
  static double fin(const Tensor<T>& x, const Tensor<L>& t, const ShardStatistics& r, Tensor<T>& g,
                    const SoftmaxFocalOptions<T>& o) {
    return softmax_focal_finalize(x, t, r, g, o);
  }
  template <class T, class L>
  static ValueAndGrad<T> vag(const Tensor<T>& x, const Tensor<L>& t,
                             const SoftmaxFocalOptions<T>& o) {
    return softmax_focal_value_and_grad(x, t, o);
  }
  template <class T>
  static SoftmaxFocalOptions<T> dev(SoftmaxFocalOptions<T> o) {
    o.alpha = gpu(o.alpha);
    return o;
  }
};

// The options of shard [first, first + count): the per-image weight sliced when `sliced`.
template <class O>
O shard_options(const O& o, bool sliced, int64_t first, int64_t count) {
  O s = o;
  if constexpr (!std::is_same_v<O, SoftmaxFocalOptions<float>> &&
                !std::is_same_v<O, SoftmaxFocalOptions<double>>) {
    if (sliced) s.weight = slice(o.weight, first, count);
  }
  return s;
}

// One loss, one input and one option set (CPU tensors; o's tensors on the CPU): for every layout,
// the CUDA statistics of each shard (on one shard: against the CPU's), summed on the host, then
// each shard's CUDA finalize into its slice of one device gradient; the values and the gradient
// against the CPU's value_and_grad of the whole batch (and on one shard, against CUDA's).
template <class Loss, class T, class U, class O>
void check_split(const Tensor<T>& x, const Tensor<U>& t, const O& o, bool sliced = false) {
  const double tol = parity_tol<T>();
  const auto ref = Loss::vag(x, t, o);
  const O od = Loss::dev(o);
  const Tensor<T> xd = gpu(x);
  const Tensor<U> td = gpu(t);
  for (const auto& layout : kLayouts) {
    CAPTURE(layout.size());
    CAPTURE(layout[0]);
    std::vector<ShardStatistics> st;
    int64_t first = 0;
    for (int64_t count : layout) {
      st.push_back(Loss::stat(slice(xd, first, count), slice(td, first, count),
                              shard_options(od, sliced, first, count)));
      REQUIRE(st.back().size() == 3);
      CHECK(st.back().local.empty());
      first += count;
    }
    REQUIRE(first == x.shape()[0]);
    if (layout.size() == 1) {  // CUDA statistics == CPU statistics
      const auto cpu_st = Loss::stat(x, t, o);
      REQUIRE(cpu_st.size() == 3);
      check_parity(cpu_st.global[0], st[0].global[0], tol, "statistics: loss sum");
      // the divisor: exact for numel; a float weight sum (mean_over weight_sum) is added in
      // float packets on the CPU, in double on the device: they agree to float rounding
      check_parity(cpu_st.global[1], st[0].global[1], sizeof(T) == 4 ? tol : 1e-12,
                   "statistics: divisor");
      CHECK(cpu_st.global[2] == st[0].global[2]);
    }
    std::vector<double> reduced(3, 0.0);  // the caller's all-reduce (sum)
    for (const auto& s : st)
      for (size_t k = 0; k < 3; ++k) reduced[k] += s.global[k];
    auto grad = Tensor<T>::full(x.shape(), T(NAN)).to(Device::cuda);
    first = 0;
    for (size_t r = 0; r < layout.size(); ++r) {
      ShardStatistics mine = st[r];
      mine.global = reduced;
      auto g = slice(grad, first, layout[r]);
      const double v = Loss::fin(slice(xd, first, layout[r]), slice(td, first, layout[r]), mine, g,
                                 shard_options(od, sliced, first, layout[r]));
      CHECK(g.device() == Device::cuda);
      CHECK(g.data() == grad.data() + first * (x.numel() / x.shape()[0]));
      if (std::isnan(ref.value))
        CHECK(std::isnan(v));
      else
        check_parity(ref.value, v, tol, "finalize value against the CPU");
      first += layout[r];
    }
    check_parity(ref.grad, grad, tol, "finalize gradient against the CPU");
    if (layout.size() == 1) {  // against CUDA's own value_and_grad
      const auto vd = Loss::vag(xd, td, od);
      if (!std::isnan(vd.value)) check_parity(vd.value, ref.value, tol, "CUDA value_and_grad");
      check_parity(vd.grad.to(Device::cpu), grad, tol, "finalize gradient against CUDA");
    }
  }
}

// Finalize 10 times on the device: the same bits each time (value and gradient).
template <class Loss, class T, class U, class O>
void check_bitwise(const Tensor<T>& x, const Tensor<U>& t, const O& o) {
  const O od = Loss::dev(o);
  const Tensor<T> xd = gpu(x), xs = xd;
  const Tensor<U> td = gpu(t), ts = td;
  const ShardStatistics st = Loss::stat(xd, td, od);
  const ShardStatistics st2 = Loss::stat(xd, td, od);
  CHECK(st.global == st2.global);
  Tensor<T> g0;
  const double v0 = Loss::fin(xs, ts, st, g0, od);
  for (int run = 0; run < 10; ++run) {
    Tensor<T> g;
    CHECK(Loss::fin(xs, ts, st, g, od) == v0);
    CHECK(same_bits(g0, g));
  }
}

// The split's checks on CUDA give the CPU's messages: statistics of another loss (an overlap
// loss's length), a NaN count, reduction none; and a grad on the CPU is refused.
template <class Loss, class T, class U, class O>
void check_errors(const Tensor<T>& x, const Tensor<U>& t, const O& o) {
  const O od = Loss::dev(o);
  const Tensor<T> xd = gpu(x);
  const Tensor<U> td = gpu(t);
  ShardStatistics other;
  other.global.assign(12, 1.0);  // not a mean loss's three values
  Tensor<T> g, gd;
  const std::string cpu_msg = error_of([&] { Loss::fin(x, t, other, g, o); });
  CHECK(cpu_msg.find("were they made by another loss's statistics?") != std::string::npos);
  CHECK(error_of([&] { Loss::fin(xd, td, other, gd, od); }) == cpu_msg);
  ShardStatistics nan_count;
  nan_count.global = {1.0, 4.0, std::nan("")};  // a count is finite and >= 0
  const std::string count_msg = error_of([&] { Loss::fin(x, t, nan_count, g, o); });
  CHECK(count_msg.find("the statistics' count (global[2]) is nan") != std::string::npos);
  CHECK(error_of([&] { Loss::fin(xd, td, nan_count, gd, od); }) == count_msg);
  O none = o, none_d = od;
  none.reduction = none_d.reduction = Reduction::none;
  const std::string none_msg = error_of([&] { Loss::stat(x, t, none); });
  CHECK(none_msg.find("reduction none") != std::string::npos);
  CHECK(error_of([&] { Loss::stat(xd, td, none_d); }) == none_msg);
  const ShardStatistics st = Loss::stat(x, t, o);
  Tensor<T> cpu_grad = Tensor<T>::empty(x.shape());
  const std::string dev_msg = error_of([&] { Loss::fin(xd, td, st, cpu_grad, od); });
  CHECK(dev_msg.find("grad") != std::string::npos);
  CHECK(dev_msg.find("cuda") != std::string::npos);
}

const Shape kShape{5, 3, 6, 5};
const Shape kLabelShape{5, 6, 5};

template <class T>
void bce_all() {
  const auto x = randn<T>(kShape, 320, 2.0);
  const auto z = mask<T>(kShape, 321, 0.4);
  const auto w_pixel = uniform<T>(Shape{5, 1, 6, 5}, 322, 0.0, 2.0);
  const auto w_class = Tensor<T>::from({0.5, 1.0, 3.0}, {3, 1, 1});
  for (int variant = 0; variant < 9; ++variant) {
    CAPTURE(variant);
    BceWithLogitsOptions<T> o;
    bool sliced = false;
    // mean_over weight_sum (session 9): each shard's W reduced on the device, summed by the caller
    if (variant == 7) o.mean_over = BceMeanOver::weight_sum, o.weight = w_pixel, sliced = true;
    if (variant == 8) o.mean_over = BceMeanOver::weight_sum, o.weight = w_class;
    if (variant == 1) o.reduction = Reduction::sum;
    if (variant == 2) o.weight = w_pixel, sliced = true;
    if (variant == 3) o.reduction = Reduction::sum, o.weight = w_pixel, sliced = true;
    if (variant == 4) o.weight = w_class;
    if (variant == 5) o.pos_weight = Tensor<T>::from({2.0, 0.5, 1.0}, {3}), o.label_smoothing = 0.1;
    if (variant == 6) o.pos_weight = Tensor<T>::full(Shape{1}, T(3)), o.weight = w_class;
    check_split<Bce>(x, z, o, sliced);
  }
}

template <class T>
void sigmoid_focal_all() {
  const auto x = randn<T>(kShape, 340, 2.0);
  const auto z = mask<T>(kShape, 341, 0.3);
  const auto w_pixel = uniform<T>(Shape{5, 1, 6, 5}, 342, 0.0, 2.0);
  for (int variant = 0; variant < 6; ++variant) {
    CAPTURE(variant);
    SigmoidFocalOptions<T> o;
    bool sliced = false;
    if (variant == 1) o.reduction = Reduction::sum;
    if (variant == 2) o.gamma = 1.5, o.alpha = 0.75;
    if (variant == 3) o.gamma = 0.0, o.alpha = -1.0, o.reduction = Reduction::sum;
    if (variant == 4) o.weight = w_pixel, sliced = true, o.gamma = 1.0;
    if (variant == 5) o.weight = Tensor<T>::from({0.5, 1.0, 3.0}, {3, 1, 1});
    check_split<SigmoidFocal>(x, z, o, sliced);
  }
}

// Labels of kLabelShape in [0, 3) with about a fifth set to `ignore`, and image 0 entirely
// `ignore` (a shard whose pixels are all ignored: layout {1, 3, 1}).
template <class L>
Tensor<L> labels_with_ignored(uint64_t seed, int64_t ignore = -100) {
  auto y = labels<L>(kLabelShape, 3, seed, 0.2, ignore);
  for (int64_t i = 0; i < kLabelShape.numel_from(1); ++i) y[i] = static_cast<L>(ignore);
  return y;
}

// Probabilities of kShape: each pixel's 3 values sum to 1.
template <class T>
Tensor<T> probabilities(uint64_t seed) {
  auto q = uniform<T>(kShape, seed, 0.05, 1.0);
  const int64_t C = kShape[1], S = kShape.numel_from(2);
  for (int64_t n = 0; n < kShape[0]; ++n)
    for (int64_t i = 0; i < S; ++i) {
      T z = 0;
      for (int64_t c = 0; c < C; ++c) z += q[(n * C + c) * S + i];
      for (int64_t c = 0; c < C; ++c) q[(n * C + c) * S + i] /= z;
    }
  return q;
}

template <class T, class L>
void cross_entropy_labels_all(uint64_t seed) {
  const auto x = randn<T>(kShape, seed, 2.0);
  const auto y = labels_with_ignored<L>(seed + 1);
  const auto w = Tensor<T>::from({0.5, 2.0, 1.25}, {3});
  for (int variant = 0; variant < 9; ++variant) {
    CAPTURE(variant);
    CrossEntropyOptions<T> o;
    Tensor<L> t = y;
    if (variant == 1) o.weight = w;
    if (variant == 2) o.label_smoothing = 0.1, o.weight = Tensor<T>::from({1, 3, 0.5}, {3});
    if (variant == 3) o.mean_over = MeanOver::valid_pixels, o.weight = w;
    if (variant == 4) o.reduction = Reduction::sum, o.label_smoothing = 0.2, o.weight = w;
    if (variant == 5) o.ignore_index = 1, t = labels_with_ignored<L>(seed + 2, 1);
    if (variant == 6) o.ignore_negative = true, t = labels_with_ignored<L>(seed + 3, -1);
    if (variant == 7) o.all_ignored = AllIgnored::nan, o.weight = w;
    if (variant == 8) o.mean_over = MeanOver::valid_pixels, o.label_smoothing = 0.05;
    check_split<CrossEntropy>(x, t, o);
  }
  // Every pixel of the batch ignored: all_ignored's value (0 or NaN) and a zero gradient.
  const auto none = Tensor<L>::full(kLabelShape, L(-100));
  for (AllIgnored policy : {AllIgnored::zero, AllIgnored::nan}) {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
      CAPTURE(static_cast<int>(policy));
      CAPTURE(static_cast<int>(r));
      CrossEntropyOptions<T> o;
      o.all_ignored = policy;
      o.reduction = r;
      check_split<CrossEntropy>(x, none, o);
    }
  }
}

template <class T>
void cross_entropy_probabilities_all(uint64_t seed) {
  const auto x = randn<T>(kShape, seed, 2.0);
  const auto q = probabilities<T>(seed + 1);
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    CrossEntropyOptions<T> o;
    if (variant == 1) o.weight = Tensor<T>::from({0.5, 2.0, 1.25}, {3});
    if (variant == 2) o.label_smoothing = 0.05, o.weight = Tensor<T>::from({1, 3, 0.5}, {3});
    if (variant == 3) o.reduction = Reduction::sum, o.label_smoothing = 0.1;
    check_split<CrossEntropy>(x, q, o);
  }
}

template <class T, class L>
void softmax_focal_all(uint64_t seed) {
  const auto x = randn<T>(kShape, seed, 2.0);
  const auto y = labels_with_ignored<L>(seed + 1);
  for (int variant = 0; variant < 6; ++variant) {
    CAPTURE(variant);
    SoftmaxFocalOptions<T> o;
    Tensor<L> t = y;
    if (variant == 1) o.reduction = Reduction::sum;
    if (variant == 2) o.alpha = Tensor<T>::from({0.25, 1.0, 0.5}, {3}), o.gamma = 1.5;
    if (variant == 3) o.gamma = 0.0, o.reduction = Reduction::sum;
    if (variant == 4) o.gamma = 1.0, o.ignore_index = 2, t = labels_with_ignored<L>(seed + 2, 2);
    if (variant == 5) o.gamma = 0.5, o.alpha = Tensor<T>::from({1.0, 0.5, 2.0}, {3});
    check_split<SoftmaxFocal>(x, t, o);
  }
  // Every pixel of the batch ignored: 0 and a zero gradient.
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    SoftmaxFocalOptions<T> o;
    o.reduction = r;
    check_split<SoftmaxFocal>(x, Tensor<L>::full(kLabelShape, L(-100)), o);
  }
}

// A bad label raises in statistics and in finalize with the CPU's message.
template <class Loss, class T, class L, class O>
void check_bad_label(const O& o) {
  const auto x = randn<T>(kShape, 470);
  auto y = labels<L>(kLabelShape, 3, 471);
  y[37] = L(7);
  const O od = Loss::dev(o);
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const std::string cpu_stat = error_of([&] { Loss::stat(x, y, o); });
  CHECK(cpu_stat.find("label 7") != std::string::npos);
  CHECK(error_of([&] { Loss::stat(xd, yd, od); }) == cpu_stat);
  ShardStatistics st;
  st.global = {10.0, 150.0, 150.0};
  Tensor<T> g, gd;
  const std::string cpu_fin = error_of([&] { Loss::fin(x, y, st, g, o); });
  CHECK(cpu_fin.find("label 7") != std::string::npos);
  CHECK(error_of([&] { Loss::fin(xd, yd, st, gd, od); }) == cpu_fin);
}

}  // namespace

TEST_CASE("cuda split: bce_with_logits statistics / finalize equal one process") {
  SEGLOSS_REQUIRE_GPU();
  bce_all<float>();
  bce_all<double>();
}

TEST_CASE("cuda split: bce_with_logits errors, 10 runs bitwise (mean_over weight_sum too)") {
  SEGLOSS_REQUIRE_GPU();
  const auto x = randn<float>(kShape, 330);
  const auto z = mask<float>(kShape, 331);
  BceWithLogitsOptions<float> o;
  o.weight = uniform<float>(Shape{5, 1, 6, 5}, 332, 0.0, 2.0);
  check_errors<Bce>(x, z, o);
  check_bitwise<Bce>(x, z, o);
  check_bitwise<Bce>(randn<double>(kShape, 333), mask<double>(kShape, 334),
                     BceWithLogitsOptions<double>{});
  // mean_over weight_sum (refused on CUDA until session 9): W reduced on the device.
  o.mean_over = BceMeanOver::weight_sum;
  check_errors<Bce>(x, z, o);
  check_bitwise<Bce>(x, z, o);
}

TEST_CASE("cuda split: sigmoid_focal statistics / finalize equal one process") {
  SEGLOSS_REQUIRE_GPU();
  sigmoid_focal_all<float>();
  sigmoid_focal_all<double>();
}

TEST_CASE("cuda split: sigmoid_focal errors and 10 runs bitwise") {
  SEGLOSS_REQUIRE_GPU();
  SigmoidFocalOptions<float> o;
  o.gamma = 2.0;
  check_errors<SigmoidFocal>(randn<float>(kShape, 350), mask<float>(kShape, 351), o);
  check_bitwise<SigmoidFocal>(randn<float>(kShape, 352), mask<float>(kShape, 353), o);
  SigmoidFocalOptions<double> od;
  od.gamma = 0.5;
  od.weight = uniform<double>(Shape{5, 3, 1, 1}, 354, 0.0, 2.0);
  check_bitwise<SigmoidFocal>(randn<double>(kShape, 355), mask<double>(kShape, 356), od);
}

TEST_CASE("cuda split: cross_entropy with labels equals one process (int32, int64)") {
  SEGLOSS_REQUIRE_GPU();
  cross_entropy_labels_all<float, int64_t>(500);
  cross_entropy_labels_all<float, int32_t>(510);
  cross_entropy_labels_all<double, int64_t>(520);
  cross_entropy_labels_all<double, int32_t>(530);
}

TEST_CASE("cuda split: cross_entropy with probabilities equals one process") {
  SEGLOSS_REQUIRE_GPU();
  cross_entropy_probabilities_all<float>(540);
  cross_entropy_probabilities_all<double>(550);
}

TEST_CASE("cuda split: cross_entropy errors, bad labels and 10 runs bitwise") {
  SEGLOSS_REQUIRE_GPU();
  CrossEntropyOptions<float> o;
  o.weight = Tensor<float>::from({0.5, 2.0, 1.25}, {3});
  o.label_smoothing = 0.1;
  check_errors<CrossEntropy>(randn<float>(kShape, 560), labels_with_ignored<int64_t>(561), o);
  check_errors<CrossEntropy>(randn<float>(kShape, 562), probabilities<float>(563), o);
  check_bad_label<CrossEntropy, float, int64_t>(o);
  check_bad_label<CrossEntropy, double, int32_t>(CrossEntropyOptions<double>{});
  check_bitwise<CrossEntropy>(randn<float>(kShape, 564), labels_with_ignored<int32_t>(565), o);
  CrossEntropyOptions<double> od;
  od.mean_over = MeanOver::valid_pixels;
  check_bitwise<CrossEntropy>(randn<double>(kShape, 566), labels_with_ignored<int64_t>(567), od);
  check_bitwise<CrossEntropy>(randn<double>(kShape, 568), probabilities<double>(569),
                              CrossEntropyOptions<double>{});
}

TEST_CASE("cuda split: softmax_focal equals one process (int32, int64)") {
  SEGLOSS_REQUIRE_GPU();
  softmax_focal_all<float, int64_t>(600);
  softmax_focal_all<float, int32_t>(610);
  softmax_focal_all<double, int64_t>(620);
  softmax_focal_all<double, int32_t>(630);
}

TEST_CASE("cuda split: softmax_focal errors, bad labels and 10 runs bitwise") {
  SEGLOSS_REQUIRE_GPU();
  SoftmaxFocalOptions<float> o;
  o.alpha = Tensor<float>::from({0.25, 1.0, 0.5}, {3});
  o.gamma = 1.5;
  check_errors<SoftmaxFocal>(randn<float>(kShape, 640), labels_with_ignored<int64_t>(641), o);
  check_bad_label<SoftmaxFocal, float, int64_t>(o);
  check_bad_label<SoftmaxFocal, double, int32_t>(SoftmaxFocalOptions<double>{});
  check_bitwise<SoftmaxFocal>(randn<float>(kShape, 642), labels_with_ignored<int32_t>(643), o);
  SoftmaxFocalOptions<double> od;
  od.gamma = 0.5;
  od.reduction = Reduction::sum;
  check_bitwise<SoftmaxFocal>(randn<double>(kShape, 644), labels_with_ignored<int64_t>(645), od);
}
