// Many classes on CUDA (session 10): the softmax overlap losses above
// cuda::kSoftmaxOverlapChunk (200) classes, where the statistics pass cuts the class axis into
// chunks (blockIdx.y) and, above 3072 classes in double (6144 in float), the gradient pass reads
// the coefficients from the workspace; and lovasz_softmax's class_list above 1024 classes, whose
// mask goes to the workspace. CUDA against the CPU for C = 201 (two chunks of 101 and 100), C =
// 300 (two of 150), C = 1100 (six: 184 x 5 and 180) and C = 3100 (double: 16 chunks and the
// coefficients in global memory): softmax_dice (labels and probabilities), softmax_tversky,
// generalized_dice, ce_dice and dice_focal, the statistics / finalize split, lovasz_softmax with a
// class_list; int32 and int64 labels; value and gradient; 10 runs bitwise; a bad label reported.
// Small spatial sizes (a few hundred pixels): the emulator runs them in seconds.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

template <class T>
double tol() {
  return parity_tol<T>();
}

// Image n of a batch, as a view (on the batch's device).
template <class T>
Tensor<T> slice(const Tensor<T>& v, int64_t n) {
  Shape s = v.shape();
  const int64_t per_image = s.numel_from(1);
  s.set(0, 1);
  return Tensor<T>::view(const_cast<T*>(v.data()) + n * per_image, s, v.device());
}

// Labels of C classes where every class of the last chunk and the classes at the chunk
// boundaries occur (so an off-by-one at a boundary changes a sum that matters), some ignored.
template <class U>
Tensor<U> many_labels(const Shape& s, int64_t C, uint64_t seed, double ignored = 0.1) {
  auto y = labels<U>(s, C, seed, ignored, -100);
  const int64_t n = s.numel();
  // A few fixed classes at fixed places: the first and last class, and the classes around
  // every multiple of 100 (the chunk sizes of the tests' C are 101, 100, 150, 184, 180, 194).
  int64_t at = 0;
  for (int64_t c : {int64_t{0}, C - 1, C - 2})
    if (at < n) y[at++] = static_cast<U>(c);
  for (int64_t b = 100; b < C; b += 50)
    for (int64_t d = -2; d <= 2; ++d)
      if (b + d < C && at < n) y[at++] = static_cast<U>(b + d);
  return y;
}

// value_and_grad (both forms), the forward of reduction none and the backward on both devices.
// vg(x, y, o), fw(x, y, o) and bw(x, y, grad_out, o) are the loss's; oc, od its options on the
// CPU and on the GPU (od's tensors on the GPU).
template <class T, class U, class O, class VG, class FW, class BW>
void check_forms(const Tensor<T>& x, const Tensor<U>& y, const O& oc, const O& od, const VG& vg,
                 const FW& fw, const BW& bw) {
  const double t = tol<T>();
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const ValueAndGrad<T> ref = vg(x, y, oc);
  const ValueAndGrad<T> got = vg(xd, yd, od);
  REQUIRE(got.grad.device() == Device::cuda);
  check_parity(ref.value, got.value, t, "value_and_grad value");
  check_parity(ref.grad, got.grad, t, "value_and_grad grad");
  O none_c = oc, none_d = od;
  none_c.reduction = Reduction::none;
  none_d.reduction = Reduction::none;
  const Tensor<T> f = fw(x, y, none_c);
  check_parity(f, fw(xd, yd, none_d), t, "forward, reduction none");
  const auto go = uniform<T>(f.shape(), 91, 0.5, 2.0);
  check_parity(bw(x, y, go, none_c), bw(xd, yd, gpu(go), none_d), t, "backward, reduction none");
}

// The defaults; with `more`, per_image off with squared sums and the finalize's options; with
// `tversky`, softmax_tversky too.
template <class T, class U>
void dice_and_tversky(const Tensor<T>& x, const Tensor<U>& y, bool more, bool tversky) {
  const auto vg = [](const auto& a, const auto& b, const SoftmaxOverlapOptions<T>& o) {
    return softmax_dice_value_and_grad(a, b, o);
  };
  const auto fw = [](const auto& a, const auto& b, const SoftmaxOverlapOptions<T>& o) {
    return softmax_dice(a, b, o);
  };
  const auto bw = [](const auto& a, const auto& b, const auto& g,
                     const SoftmaxOverlapOptions<T>& o) {
    return softmax_dice_backward(a, b, g, o);
  };
  SoftmaxOverlapOptions<T> o;
  check_forms(x, y, o, o, vg, fw, bw);
  if (more) {
    o.per_image = false;
    o.squared = true;
    check_forms(x, y, o, o, vg, fw, bw);
  }
  if (!more && !tversky) return;
  // the finalize's options: class weights (a CUDA tensor on the GPU), empty skip, log
  SoftmaxOverlapOptions<T> w;
  w.class_weight = uniform<T>(Shape{x.shape()[1]}, 5, 0.2, 2.0);
  w.empty = EmptyPolicy::skip;
  w.log = true;
  w.include_background = false;
  SoftmaxOverlapOptions<T> wd = w;
  wd.class_weight = gpu(w.class_weight);
  if (more) check_forms(x, y, w, wd, vg, fw, bw);
  if (!tversky) return;
  SoftmaxTverskyOptions<T> tv;
  tv.alpha = 0.3;
  tv.beta = 0.7;
  check_forms(
      x, y, tv, tv,
      [](const auto& a, const auto& b, const SoftmaxTverskyOptions<T>& q) {
        return softmax_tversky_value_and_grad(a, b, q);
      },
      [](const auto& a, const auto& b, const SoftmaxTverskyOptions<T>& q) {
        return softmax_tversky(a, b, q);
      },
      [](const auto& a, const auto& b, const auto& g, const SoftmaxTverskyOptions<T>& q) {
        return softmax_tversky_backward(a, b, g, q);
      });
}

template <class T, class U>
void gdl(const Tensor<T>& x, const Tensor<U>& y, bool batch) {
  const auto vg = [](const auto& a, const auto& b, const GeneralizedDiceOptions<T>& o) {
    return generalized_dice_value_and_grad(a, b, o);
  };
  const auto fw = [](const auto& a, const auto& b, const GeneralizedDiceOptions<T>& o) {
    return generalized_dice(a, b, o);
  };
  const auto bw = [](const auto& a, const auto& b, const auto& g,
                     const GeneralizedDiceOptions<T>& o) {
    return generalized_dice_backward(a, b, g, o);
  };
  GeneralizedDiceOptions<T> o;
  o.per_image = !batch;
  check_forms(x, y, o, o, vg, fw, bw);
}

// ce_dice (labels or probabilities) and, for labels, dice_focal: value_and_grad, the forward
// and the backward of the sum of both terms.
template <class T, class U>
void combined(const Tensor<T>& x, const Tensor<U>& y) {
  const double t = tol<T>();
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  CeDiceOptions<T> o;
  o.ce_weight = 0.6;
  o.dice_weight = 1.4;
  const auto ref = ce_dice_value_and_grad(x, y, o);
  const auto got = ce_dice_value_and_grad(xd, yd, o);
  check_parity(ref.value, got.value, t, "ce_dice value");
  check_parity(ref.grad, got.grad, t, "ce_dice grad");
  check_parity(ce_dice(x, y, o), ce_dice(xd, yd, o), t, "ce_dice forward");
  const auto go = Tensor<T>::full(Shape{}, T(0.75));
  check_parity(ce_dice_backward(x, y, go, o), ce_dice_backward(xd, yd, gpu(go), o), t,
               "ce_dice backward");
  if constexpr (!std::is_floating_point_v<U>) {
    DiceFocalOptions<T> f;
    f.dice.per_image = false;
    const auto rf = dice_focal_value_and_grad(x, y, f);
    const auto gf = dice_focal_value_and_grad(xd, yd, f);
    check_parity(rf.value, gf.value, t, "dice_focal value");
    check_parity(rf.grad, gf.grad, t, "dice_focal grad");
  }
}

// The split with one shard: the statistics on CUDA against the CPU's, and finalize against the
// CPU's value_and_grad; stat, fin and vg are the loss's.
template <class T, class U, class O, class ST, class FI, class VG>
void split_one(const Tensor<T>& x, const Tensor<U>& y, const O& o, const ST& stat, const FI& fin,
               const VG& vg) {
  const double t = tol<T>();
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const auto st_c = stat(x, y, o);
  const auto st_d = stat(xd, yd, o);
  check_vector(st_c.global, st_d.global, t, "global statistics");
  check_vector(st_c.local, st_d.local, t, "local statistics");
  const auto ref = vg(x, y, o);
  Tensor<T> grad;
  const double v = fin(xd, yd, st_d, grad, o);
  REQUIRE(grad.device() == Device::cuda);
  check_parity(ref.value, v, t, "finalize value");
  check_parity(ref.grad, grad, t, "finalize grad");
}

template <class T, class U>
void splits(const Tensor<T>& x, const Tensor<U>& y) {
  for (bool per_image : {true, false}) {
    CAPTURE(per_image);
    SoftmaxOverlapOptions<T> o;
    o.per_image = per_image;
    split_one(
        x, y, o,
        [](const auto& a, const auto& b, const auto& q) {
          return softmax_dice_statistics(a, b, q);
        },
        [](const auto& a, const auto& b, const auto& st, auto& g, const auto& q) {
          return softmax_dice_finalize(a, b, st, g, q);
        },
        [](const auto& a, const auto& b, const auto& q) {
          return softmax_dice_value_and_grad(a, b, q);
        });
    GeneralizedDiceOptions<T> g;
    g.per_image = per_image;
    split_one(
        x, y, g,
        [](const auto& a, const auto& b, const auto& q) {
          return generalized_dice_statistics(a, b, q);
        },
        [](const auto& a, const auto& b, const auto& st, auto& gr, const auto& q) {
          return generalized_dice_finalize(a, b, st, gr, q);
        },
        [](const auto& a, const auto& b, const auto& q) {
          return generalized_dice_value_and_grad(a, b, q);
        });
    CeDiceOptions<T> c;
    c.dice.per_image = per_image;
    split_one(
        x, y, c,
        [](const auto& a, const auto& b, const auto& q) { return ce_dice_statistics(a, b, q); },
        [](const auto& a, const auto& b, const auto& st, auto& gr, const auto& q) {
          return ce_dice_finalize(a, b, st, gr, q);
        },
        [](const auto& a, const auto& b, const auto& q) {
          return ce_dice_value_and_grad(a, b, q);
        });
  }
}

}  // namespace

TEST_CASE("cuda many classes: softmax_dice and softmax_tversky against the CPU (C = 201, 300)") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float C = 201, int64 labels, some ignored") {
    const Shape s{2, 201, 6, 9};
    dice_and_tversky(randn<float>(s, 1, 2.0), many_labels<int64_t>(s.without(1), 201, 2), true,
                     true);
  }
  SUBCASE("float C = 201, probabilities") {
    const Shape s{1, 201, 5, 9};
    dice_and_tversky(randn<float>(s, 3, 2.0), normalized_uniform<float>(s, 4), false, true);
  }
  SUBCASE("double C = 300, int32 labels") {
    const Shape s{1, 300, 4, 16};
    dice_and_tversky(randn<double>(s, 5, 2.0), many_labels<int32_t>(s.without(1), 300, 6), true,
                     false);
  }
}

TEST_CASE("cuda many classes: generalized_dice, ce_dice and dice_focal against the CPU") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float C = 201, int32 labels") {
    const Shape s{2, 201, 5, 7};
    const auto x = randn<float>(s, 7, 2.0);
    const auto y = many_labels<int32_t>(s.without(1), 201, 8);
    gdl(x, y, false);
    combined(x, y);
  }
  SUBCASE("double C = 300, int64 labels") {
    const Shape s{1, 300, 6, 9};
    const auto x = randn<double>(s, 9, 2.0);
    const auto y = many_labels<int64_t>(s.without(1), 300, 10);
    gdl(x, y, true);
    combined(x, y);
  }
  SUBCASE("float C = 300, probabilities") {
    const Shape s{1, 300, 5, 8};
    const auto x = randn<float>(s, 11, 2.0);
    const auto y = normalized_uniform<float>(s, 12);
    gdl(x, y, false);
    combined(x, y);
  }
}

TEST_CASE("cuda many classes: the statistics / finalize split against the CPU (C = 201)") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 201, 4, 9};
  const auto x = randn<double>(s, 13, 2.0);
  SUBCASE("int64 labels") {
    splits(x, many_labels<int64_t>(s.without(1), 201, 14));
  }
  SUBCASE("int32 labels") {
    splits(x, many_labels<int32_t>(s.without(1), 201, 15));
  }
}

TEST_CASE("cuda many classes: C = 1100 and 3100 against the CPU, and the workspace size") {
  SEGLOSS_REQUIRE_GPU();
  SUBCASE("float C = 1100, int64 labels") {
    const Shape s{1, 1100, 4, 24};
    const auto x = randn<float>(s, 16, 2.0);
    const auto y = many_labels<int64_t>(s.without(1), 1100, 17);
    const auto ref = softmax_dice_value_and_grad(x, y);
    const auto got = softmax_dice_value_and_grad(gpu(x), gpu(y));
    check_parity(ref.value, got.value, tol<float>(), "value");
    check_parity(ref.grad, got.grad, tol<float>(), "grad");
    GeneralizedDiceOptions<float> g;
    g.per_image = false;
    const auto gr = generalized_dice_value_and_grad(x, y, g);
    const auto gg = generalized_dice_value_and_grad(gpu(x), gpu(y), g);
    check_parity(gr.value, gg.value, tol<float>(), "generalized_dice value");
    check_parity(gr.grad, gg.grad, tol<float>(), "generalized_dice grad");
    // a caller's workspace of cuda::workspace_size bytes is enough, even where it starts 8 bytes
    // past an alignment boundary, and the pool is not used
    const size_t bytes = cuda::workspace_size(s);
    auto ws = Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)},
                                    Device::cuda);
    const auto xd = gpu(x);
    const auto yd = gpu(y);
    const size_t pool_before = cuda::pool_bytes();
    cuda::WorkspaceScope scope(ws.data() + 1, bytes);
    const auto in_ws = softmax_dice_value_and_grad(xd, yd);
    CHECK(in_ws.value == got.value);
    CHECK(same_bits(in_ws.grad, got.grad));
    CHECK(cuda::pool_bytes() == pool_before);
  }
  SUBCASE("double C = 3100, int32 labels: the gradient's coefficients in global memory") {
    const Shape s{1, 3100, 2, 20};
    const auto x = randn<double>(s, 18, 2.0);
    const auto y = many_labels<int32_t>(s.without(1), 3100, 19, 0.0);
    SoftmaxOverlapOptions<double> o;
    o.squared = true;
    const auto ref = softmax_dice_value_and_grad(x, y, o);
    const auto got = softmax_dice_value_and_grad(gpu(x), gpu(y), o);
    check_parity(ref.value, got.value, tol<double>(), "value");
    check_parity(ref.grad, got.grad, tol<double>(), "grad");
  }
}

TEST_CASE("cuda many classes: 10 runs bitwise, and a bad label reported (C = 201, 1100)") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 201, 5, 9};
  const auto xd = gpu(randn<float>(s, 20, 3.0));
  const auto yd = gpu(many_labels<int32_t>(s.without(1), 201, 21));
  const auto x1 = slice(xd, 1);
  const auto y1 = slice(yd, 1);
  SoftmaxTverskyOptions<float> o;
  o.alpha = 0.3;
  o.beta = 0.7;
  const auto first = softmax_tversky_value_and_grad(x1, y1, o);
  for (int run = 1; run < 10; ++run) {
    const auto r = softmax_tversky_value_and_grad(x1, y1, o);
    CHECK(std::memcmp(&r.value, &first.value, sizeof(double)) == 0);
    CHECK(same_bits(r.grad, first.grad));
  }
  // A bad label (201: one past the last class of the last chunk) in image 1 at (1, 1): the CPU's
  // message; the device forms give NaN for its image only.
  auto y = many_labels<int64_t>(s.without(1), 201, 22);
  y[45 + 10] = 201;
  y[45 + 20] = -3;
  const auto ybad = gpu(y);
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xd, ybad),
                       "softmax_dice_value_and_grad: target has label 201 at (1,1,1), outside "
                       "[0, 201) and not ignore_index -100",
                       Error);
  CHECK_THROWS_WITH_AS(generalized_dice_value_and_grad(xd, ybad),
                       doctest::Contains("target has label 201 at (1,1,1)"), Error);
  // the split's statistics (the statistics pass alone reports it)
  CHECK_THROWS_WITH_AS(softmax_dice_statistics(xd, ybad, SoftmaxOverlapOptions<float>{}),
                       doctest::Contains("target has label 201 at (1,1,1)"), Error);
  SoftmaxOverlapOptions<float> none;
  none.reduction = Reduction::none;
  const auto scores = softmax_dice(xd, ybad, none).to(Device::cpu);  // (N, C)
  int64_t finite0 = 0, nan1 = 0;
  for (int64_t c = 0; c < 201; ++c) {
    finite0 += std::isfinite(scores[c]) ? 1 : 0;
    nan1 += std::isnan(scores[201 + c]) ? 1 : 0;
  }
  CHECK(finite0 == 201);
  CHECK(nan1 == 201);
  // C = 1100: the bad label found by the first chunk's blocks only, once
  const Shape w{1, 1100, 2, 8};
  auto yw = many_labels<int32_t>(w.without(1), 1100, 23, 0.0);
  yw[13] = 1100;
  CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(gpu(randn<float>(w, 24)), gpu(yw)),
                       "softmax_dice_value_and_grad: target has label 1100 at (0,1,5), outside "
                       "[0, 1100) and not ignore_index -100",
                       Error);
}

TEST_CASE("cuda many classes: lovasz_softmax with a class_list over C = 1100") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 1100, 3, 5};
  const auto x = randn<float>(s, 30, 2.0);
  // listed: classes on both sides of 1024 and of every 32-class word boundary near it; the
  // labels hit most of them, some listed classes are absent
  const std::vector<int64_t> list = {0, 3, 31, 32, 500, 1023, 1024, 1025, 1055, 1056, 1099};
  const auto run = [&](const auto& y, bool per_image, bool repeat) {
    CAPTURE(per_image);
    LovaszSoftmaxOptions<float> o;
    o.class_list = list;
    o.per_image = per_image;
    const auto xd = gpu(x);
    const auto yd = gpu(y);
    const auto ref = lovasz_softmax_value_and_grad(x, y, o);
    const auto got = lovasz_softmax_value_and_grad(xd, yd, o);
    check_parity(ref.value, got.value, tol<float>(), "value");
    check_parity(ref.grad, got.grad, tol<float>(), "grad");
    o.reduction = Reduction::none;
    check_parity(lovasz_softmax(x, y, o), lovasz_softmax(xd, yd, o), tol<float>(), "forward");
    if (!repeat) return;
    o.reduction = Reduction::sum;
    const auto first = lovasz_softmax_value_and_grad(xd, yd, o);
    for (int r = 1; r < 10; ++r) {
      const auto again = lovasz_softmax_value_and_grad(xd, yd, o);
      CHECK(std::memcmp(&again.value, &first.value, sizeof(double)) == 0);
      CHECK(same_bits(again.grad, first.grad));
    }
  };
  auto y64 = labels<int64_t>(s.without(1), 1100, 31, 0.1, -100);
  const int64_t put[] = {0, 3, 31, 32, 1023, 1024, 1025, 1055, 1056, 1099, 1057, 1022, 33};
  for (int64_t i = 0; i < 13; ++i) y64[2 * i + 1] = put[i];
  SUBCASE("int64 labels") {
    run(y64, false, true);
  }
  SUBCASE("int32 labels, per image") {
    run(cast<int32_t>(y64), true, false);
  }
  SUBCASE("a caller's workspace of lovasz_workspace_size bytes, anywhere") {
    // double and per_image: the 8-byte keys and the N C segments lovasz_workspace_size counts,
    // so the query is exact
    LovaszSoftmaxOptions<double> o;
    o.class_list = list;
    o.per_image = true;
    const auto xd = gpu(cast<double>(x));
    const auto yd = gpu(y64);
    const double v = lovasz_softmax_value_and_grad(xd, yd, o).value;
    const size_t bytes = cuda::lovasz_workspace_size(s);
    auto ws = Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)},
                                    Device::cuda);
    const size_t pool_before = cuda::pool_bytes();
    cuda::WorkspaceScope scope(ws.data() + 1, bytes);  // 8 bytes past an alignment boundary
    CHECK(lovasz_softmax_value_and_grad(xd, yd, o).value == v);
    CHECK(cuda::pool_bytes() == pool_before);
  }
  SUBCASE("a bad label") {
    auto y = y64.clone();  // a copy of a Tensor shares its elements
    y[17] = 1100;
    LovaszSoftmaxOptions<float> o;
    o.class_list = list;
    CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(gpu(x), gpu(y), o),
                         "lovasz_softmax_value_and_grad: target has label 1100 at (1,0,2), "
                         "outside [0, 1100) and not ignore_index -100",
                         Error);
  }
}
