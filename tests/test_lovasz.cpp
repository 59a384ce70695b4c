// The Lovász losses (losses/lovasz.hpp): values against the Lovász extension written from its
// set-function definition (brute force, no running sums); gradients against finite differences
// for every option and reduction (inputs whose sorted errors are well apart, so a step of 1e-6
// does not reorder them); determinism across thread counts; edge cases; bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "loss_check.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace segloss;

namespace {

// ---- An independent reference: the Lovász extension from the set function ----

// The Jaccard loss of the mispredicted set M (paper, eq. 4 with M the mispredictions):
// |M| / |gt u M|, counted from scratch.
double jaccard_loss_of_set(const std::vector<int>& gt, const std::vector<bool>& in_m) {
  double m = 0, uni = 0;
  for (size_t i = 0; i < gt.size(); ++i) {
    m += in_m[i] ? 1 : 0;
    uni += (gt[i] == 1 || in_m[i]) ? 1 : 0;
  }
  return uni > 0 ? m / uni : 0.0;
}

// Lovász extension at errors e >= 0: sum_k (e_(k) - e_(k+1)) f({1..k}), e_(P+1) = 0, with f
// evaluated as a set function for every prefix (O(P^2)).
double lovasz_extension(const std::vector<double>& e, const std::vector<int>& gt) {
  std::vector<size_t> order(e.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return e[a] > e[b]; });
  std::vector<bool> in_m(e.size(), false);
  double total = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    in_m[order[k]] = true;
    const double next = k + 1 < order.size() ? e[order[k + 1]] : 0.0;
    total += (e[order[k]] - next) * jaccard_loss_of_set(gt, in_m);
  }
  return total;
}

std::vector<double> softmax_at(const Tensor<double>& x, int64_t n, int64_t s) {
  const int64_t C = x.size(1), S = x.shape().numel_from(2);
  std::vector<double> p(static_cast<size_t>(C));
  double m = -INFINITY, z = 0;
  for (int64_t c = 0; c < C; ++c) m = std::max(m, x[(n * C + c) * S + s]);
  for (int64_t c = 0; c < C; ++c) z += std::exp(x[(n * C + c) * S + s] - m);
  for (int64_t c = 0; c < C; ++c) p[c] = std::exp(x[(n * C + c) * S + s] - m) / z;
  return p;
}

// The per-problem losses of lovasz_softmax, from the definition.
std::vector<double> softmax_reference(const Tensor<double>& x, const Tensor<int64_t>& y,
                                      const LovaszSoftmaxOptions<double>& o) {
  const int64_t N = x.size(0), C = x.size(1), S = x.shape().numel_from(2);
  const int64_t problems = o.per_image ? N : 1, per = o.per_image ? 1 : N;
  std::vector<double> out;
  for (int64_t j = 0; j < problems; ++j) {
    std::vector<std::vector<double>> p;
    std::vector<int64_t> lab;
    for (int64_t n = j * per; n < (j + 1) * per; ++n)
      for (int64_t s = 0; s < S; ++s) {
        if (y[n * S + s] == o.ignore_index) continue;
        p.push_back(softmax_at(x, n, s));
        lab.push_back(y[n * S + s]);
      }
    double sum = 0;
    int kept = 0;
    for (int64_t c = 0; c < C && !lab.empty(); ++c) {
      std::vector<int> gt;
      std::vector<double> e;
      for (size_t i = 0; i < lab.size(); ++i) {
        gt.push_back(lab[i] == c ? 1 : 0);
        e.push_back(std::fabs(gt.back() - p[i][c]));
      }
      const bool present = std::count(gt.begin(), gt.end(), 1) > 0;
      bool in = o.classes == LovaszClasses::all || present;
      if (!o.class_list.empty())
        in = std::find(o.class_list.begin(), o.class_list.end(), c) != o.class_list.end();
      if (!in) continue;
      sum += lovasz_extension(e, gt);
      ++kept;
    }
    out.push_back(kept ? sum / kept : 0.0);
  }
  return out;
}

std::vector<double> hinge_reference(const Tensor<double>& x, const Tensor<double>& t,
                                    const LovaszHingeOptions<double>& o) {
  const int64_t problems = o.per_image ? x.size(0) : 1, size = x.numel() / problems;
  std::vector<double> out;
  for (int64_t j = 0; j < problems; ++j) {
    std::vector<int> gt;
    std::vector<double> e;
    for (int64_t i = j * size; i < (j + 1) * size; ++i) {
      if (o.ignore && t[i] == *o.ignore) continue;
      gt.push_back(t[i] == 1.0 ? 1 : 0);
      e.push_back(std::max(0.0, 1.0 - x[i] * (2.0 * t[i] - 1.0)));  // relu(e): same sort
    }
    out.push_back(lovasz_extension(e, gt));
  }
  return out;
}

double reduced(const std::vector<double>& v, Reduction r) {
  const double s = std::accumulate(v.begin(), v.end(), 0.0);
  return r == Reduction::mean ? s / static_cast<double>(v.size()) : s;
}

// ---- Inputs ----

const Shape kShape{2, 4, 3, 4};

template <class L>
Tensor<L> labels_of(const Shape& s, uint64_t seed, int ignore_every = 0, L ignore = -100,
                    int64_t classes = -1) {
  std::mt19937_64 rng(seed);
  const uint64_t C = static_cast<uint64_t>(classes > 0 ? classes : s[1]);
  auto y = Tensor<L>::empty(s.without(1));
  for (int64_t i = 0; i < y.numel(); ++i) {
    y[i] = static_cast<L>(rng() % C);
    if (ignore_every > 0 && i % ignore_every == 2) y[i] = ignore;
  }
  return y;
}

LovaszSoftmaxOptions<double> softmax_opts(bool per_image, LovaszClasses classes,
                                          std::vector<int64_t> list = {}, int64_t ignore = -100) {
  LovaszSoftmaxOptions<double> o;
  o.per_image = per_image;
  o.classes = classes;
  o.class_list = std::move(list);
  o.ignore_index = ignore;
  return o;
}

// The four calls of each loss as generic callables for check_all_reductions.
const auto ls_forward = [](const Tensor<double>& x, const Tensor<int64_t>& y,
                           const LovaszSoftmaxOptions<double>& o) {
  return lovasz_softmax(x, y, o);
};
const auto ls_backward = [](const Tensor<double>& x, const Tensor<int64_t>& y,
                            const Tensor<double>& go, const LovaszSoftmaxOptions<double>& o) {
  return lovasz_softmax_backward(x, y, go, o);
};
const auto ls_fused = [](const Tensor<double>& x, const Tensor<int64_t>& y,
                         const LovaszSoftmaxOptions<double>& o) {
  return lovasz_softmax_value_and_grad(x, y, o);
};
const auto lh_forward = [](const Tensor<double>& x, const Tensor<double>& t,
                           const LovaszHingeOptions<double>& o) { return lovasz_hinge(x, t, o); };
const auto lh_backward = [](const Tensor<double>& x, const Tensor<double>& t,
                            const Tensor<double>& go, const LovaszHingeOptions<double>& o) {
  return lovasz_hinge_backward(x, t, go, o);
};
const auto lh_fused = [](const Tensor<double>& x, const Tensor<double>& t,
                         const LovaszHingeOptions<double>& o) {
  return lovasz_hinge_value_and_grad(x, t, o);
};

}  // namespace

TEST_CASE("lovasz_softmax: values equal the Lovász extension of the Jaccard set function") {
  const auto x = testing::randn<double>(kShape, 11, 1.5);
  // Image 0 has no label 3: present and all differ there.
  auto y = labels_of<int64_t>(kShape, 12, 5, 255);
  for (int64_t i = 0; i < 12; ++i)
    if (y[i] == 3) y[i] = 1;
  for (bool per_image : {false, true})
    for (LovaszClasses classes : {LovaszClasses::present, LovaszClasses::all})
      for (std::vector<int64_t> list : {std::vector<int64_t>{}, std::vector<int64_t>{3, 0}})
        for (int64_t ignore : {int64_t(-100), int64_t(255)}) {
          auto o = softmax_opts(per_image, classes, list, ignore);
          CAPTURE(per_image);
          CAPTURE(static_cast<int>(classes));
          CAPTURE(list.size());
          CAPTURE(ignore);
          if (ignore == -100) {  // 255 is then a label outside [0, C): use it as a class-free map
            auto y2 = y.clone();
            for (int64_t i = 0; i < y2.numel(); ++i)
              if (y2[i] == 255) y2[i] = 2;
            const auto ref = softmax_reference(x, y2, o);
            o.reduction = Reduction::none;
            const auto v = lovasz_softmax(x, y2, o);
            REQUIRE(v.numel() == static_cast<int64_t>(ref.size()));
            for (size_t j = 0; j < ref.size(); ++j)
              CHECK(v[static_cast<int64_t>(j)] == doctest::Approx(ref[j]).epsilon(1e-12));
            continue;
          }
          const auto ref = softmax_reference(x, y, o);
          for (Reduction r : {Reduction::mean, Reduction::sum}) {
            o.reduction = r;
            CHECK(lovasz_softmax(x, y, o)[0] == doctest::Approx(reduced(ref, r)).epsilon(1e-12));
          }
        }
}

TEST_CASE("lovasz_hinge: values equal the Lovász extension of the Jaccard set function") {
  const Shape s{3, 2, 4, 3};
  const auto x = testing::randn<double>(s, 13, 1.5);
  auto t = testing::mask<double>(s, 14);
  for (int64_t i = 5; i < t.numel(); i += 7) t[i] = 255.0;
  for (bool per_image : {false, true}) {
    LovaszHingeOptions<double> o;
    o.per_image = per_image;
    o.ignore = 255.0;
    const auto ref = hinge_reference(x, t, o);
    o.reduction = Reduction::none;
    const auto v = lovasz_hinge(x, t, o);
    REQUIRE(v.numel() == static_cast<int64_t>(ref.size()));
    for (size_t j = 0; j < ref.size(); ++j)
      CHECK(v[static_cast<int64_t>(j)] == doctest::Approx(ref[j]).epsilon(1e-12));
    o.reduction = Reduction::mean;
    CHECK(lovasz_hinge(x, t, o)[0] == doctest::Approx(reduced(ref, Reduction::mean)));
  }
}

TEST_CASE("lovasz_softmax: gradients against finite differences for every option") {
  const auto x = testing::randn<double>(kShape, 21, 1.5);
  const auto y = labels_of<int64_t>(kShape, 22, 0, int64_t(-100), 3);  // class 3 absent
  const auto yi = labels_of<int64_t>(kShape, 23, 4, int64_t(255));
  for (bool per_image : {false, true}) {
    CAPTURE(per_image);
    for (LovaszClasses classes : {LovaszClasses::present, LovaszClasses::all}) {
      CAPTURE(static_cast<int>(classes));
      testing::check_all_reductions(x, y, softmax_opts(per_image, classes), ls_forward, ls_backward,
                                    ls_fused);
      testing::check_all_reductions(x, yi, softmax_opts(per_image, classes, {}, 255), ls_forward,
                                    ls_backward, ls_fused);
    }
    testing::check_all_reductions(x, y, softmax_opts(per_image, LovaszClasses::present, {3, 1}),
                                  ls_forward, ls_backward, ls_fused);
    testing::check_all_reductions(x, yi, softmax_opts(per_image, LovaszClasses::all, {2}, 255),
                                  ls_forward, ls_backward, ls_fused);
  }
}

TEST_CASE("lovasz_softmax: gradients in 1-D and 3-D, C = 2 and C = 21") {
  for (const Shape& s :
       {Shape{2, 3, 11}, Shape{2, 3, 2, 3, 2}, Shape{3, 2, 3, 3}, Shape{1, 21, 2, 3}}) {
    CAPTURE(s.str());
    const auto x = testing::randn<double>(s, 31, 2.0);
    const auto y = labels_of<int64_t>(s, 32, 5, int64_t(7));
    for (bool per_image : {false, true})
      testing::check_all_reductions(x, y, softmax_opts(per_image, LovaszClasses::present, {}, 7),
                                    ls_forward, ls_backward, ls_fused);
  }
}

TEST_CASE("lovasz_hinge: gradients against finite differences for every option") {
  for (const Shape& s : {Shape{3, 1, 4, 5}, Shape{2, 3, 7}, Shape{2, 2, 2, 3, 2}}) {
    CAPTURE(s.str());
    const auto x = testing::randn<double>(s, 41, 2.0);
    auto t = testing::mask<double>(s, 42);
    auto ti = t.clone();
    for (int64_t i = 3; i < ti.numel(); i += 5) ti[i] = -1.0;
    for (bool per_image : {true, false}) {
      CAPTURE(per_image);
      LovaszHingeOptions<double> o;
      o.per_image = per_image;
      testing::check_all_reductions(x, t, o, lh_forward, lh_backward, lh_fused);
      o.ignore = -1.0;
      testing::check_all_reductions(x, ti, o, lh_forward, lh_backward, lh_fused);
    }
  }
}

TEST_CASE("lovasz: bit-identical across thread counts, float and double") {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
#endif
  const Shape s{2, 5, 40, 50};
  const auto xf = testing::randn<float>(s, 51, 3.0);
  const auto xd = testing::cast<double>(xf);
  auto y = labels_of<int32_t>(s, 52, 9, 255);
  const auto t = testing::mask<float>(s, 53);
  LovaszSoftmaxOptions<float> of;
  of.ignore_index = 255;
  LovaszSoftmaxOptions<double> od;
  od.ignore_index = 255;
  od.per_image = true;
  LovaszHingeOptions<float> hb;
  hb.per_image = false;
  const auto run_all = [&] {
    std::vector<ValueAndGrad<float>> f;
    std::vector<ValueAndGrad<double>> d;
    f.push_back(lovasz_softmax_value_and_grad(xf, y, of));
    d.push_back(lovasz_softmax_value_and_grad(xd, y, od));
    f.push_back(lovasz_hinge_value_and_grad(xf, t));
    f.push_back(lovasz_hinge_value_and_grad(xf, t, hb));
    return std::make_pair(f, d);
  };
#if defined(_OPENMP)
  omp_set_num_threads(1);
#endif
  const auto ref = run_all();
  for (int threads : testing::thread_counts({2, 3, 8})) {
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
    CAPTURE(threads);
    const auto r = run_all();
    for (size_t k = 0; k < r.first.size(); ++k) {
      CHECK(std::memcmp(&r.first[k].value, &ref.first[k].value, sizeof(double)) == 0);
      CHECK(std::memcmp(r.first[k].grad.data(), ref.first[k].grad.data(),
                        sizeof(float) * static_cast<size_t>(xf.numel())) == 0);
    }
    CHECK(std::memcmp(&r.second[0].value, &ref.second[0].value, sizeof(double)) == 0);
    CHECK(std::memcmp(r.second[0].grad.data(), ref.second[0].grad.data(),
                      sizeof(double) * static_cast<size_t>(xd.numel())) == 0);
  }
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
}

TEST_CASE("lovasz: float agrees with double") {
  const Shape s{2, 6, 17, 19};
  const auto xf = testing::randn<float>(s, 61, 2.0);
  const auto xd = testing::cast<double>(xf);
  const auto y = labels_of<int64_t>(s, 62);
  const auto vf = lovasz_softmax_value_and_grad(xf, y);
  const auto vd = lovasz_softmax_value_and_grad(xd, y);
  CHECK(vf.value == doctest::Approx(vd.value).epsilon(1e-5));
  double worst = 0, big = 0;
  for (int64_t i = 0; i < xf.numel(); ++i) {
    worst = std::max(worst, std::fabs(vf.grad[i] - vd.grad[i]));
    big = std::max(big, std::fabs(vd.grad[i]));
  }
  CHECK(worst <= 1e-3 * big);  // a few near-ties may sort apart in float; the rest agree
}

// Saturated pixels (docs/gradients.md §11.3): each pixel's top logit leads the others (0) by
// L = lead + (2 i + n / 2) / 1024 (exact in float), so the errors are about e^-L, or 1 - e^-L,
// and well apart: no two sort differently in float and double. (Equal logits in both images
// would tie, and a tie broken the other way by an ulp moves some gradient entries by 1e-3.) The
// top logit is the label's, or with `wrong` another class's at every fifth pixel (a confident
// mistake). S = 1021: a SIMD tail; every seventh pixel is ignored. In float 1 - p of a right
// pixel's label rounded to 0 or to a multiple of 2^-24, the Jacobian's G_r - sum_k p_k G_k
// cancelled, and a wrong pixel's errors (p_max of the top class, 1 - p of the label) had float's
// spacing near 1 and tied; step A's q = 1 - p_max, the shift by G_r and softmax_key's keys from
// 1 - e keep float's relative precision: float agrees with double to about 5e-7 (measured) at
// every lead. Before the fixes of 2026-12-04 the value was 58 % off at a lead of 20 and gradient
// entries off by up to the largest entry; with only the first two, wrong pixels left entries off
// by 42 % of the largest.
TEST_CASE("lovasz_softmax: saturated pixels, float agrees with double") {
  const int64_t N = 2, S = 1021;
  for (int64_t C : {3, 21})
    for (bool wrong : {false, true})
      for (double lead : {5.0, 15.0, 20.0, 25.0, 30.0})
        for (bool per_image : {false, true}) {
          if (C == 21 && (lead == 15.0 || lead == 25.0)) continue;
          CAPTURE(C);
          CAPTURE(wrong);
          CAPTURE(lead);
          CAPTURE(per_image);
          const Shape s{N, C, 1, S};
          const auto y = labels_of<int64_t>(s, 71, 7);  // every 7th pixel ignored (-100)
          auto xd = Tensor<double>::zeros(s);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < S; ++i) {
              const int64_t label = y[n * S + i] < 0 ? 0 : y[n * S + i];
              const int64_t top = wrong && i % 5 == 3 ? (label + 1) % C : label;
              xd[(n * C + top) * S + i] =
                  lead + (2.0 * static_cast<double>(i) + 0.5 * static_cast<double>(n)) / 1024;
            }
          const auto xf = testing::cast<float>(xd);
          LovaszSoftmaxOptions<float> of;
          of.per_image = per_image;
          LovaszSoftmaxOptions<double> od;
          od.per_image = per_image;
          const auto vf = lovasz_softmax_value_and_grad(xf, y, of);
          const auto vd = lovasz_softmax_value_and_grad(xd, y, od);
          REQUIRE(vd.value > 0.0);
          CHECK(std::fabs(vf.value - vd.value) <= 1e-5 * vd.value);
          double worst = 0;
          int64_t zeros = 0, ignored_nonzero = 0;
          for (int64_t k = 0; k < xd.numel(); ++k) {
            const int64_t n = k / (C * S), i = k % S;
            if (y[n * S + i] < 0) {  // an ignored pixel: exactly 0 in both
              ignored_nonzero += vf.grad[k] != 0.0f || vd.grad[k] != 0.0 ? 1 : 0;
              continue;
            }
            zeros += vd.grad[k] == 0.0 ? 1 : 0;
            if (vd.grad[k] != 0.0)
              worst = std::max(worst, std::fabs(vf.grad[k] - vd.grad[k]) / std::fabs(vd.grad[k]));
          }
          CHECK(ignored_nonzero == 0);
          CHECK(zeros == 0);  // every other entry is checked relatively
          CHECK(worst <= 1e-4);
        }
}

// Equal errors keep pixel order (losses/lovasz.hpp), also at a plane's tail (its last S mod
// kLanes pixels): every pixel has the same logits, pixel 0 is labelled 0 and the rest 1, so in
// class 0's problem the background pixels 1..S-1 tie, and in pixel order each takes a smaller
// g_k than the one before (I / (U (U + 1)), U growing), i.e. a smaller gradient. Before
// 2026-12-04 the tail's probabilities came from std::exp and the packets' from the SIMD exp, an
// ulp apart for some rows: a tail pixel sorted ahead of the pixels before it (a differential
// fuzz: 1 row in 200 at S = 3 in double).
template <class T>
void check_ties_in_pixel_order() {
  std::mt19937_64 rng(81);
  std::uniform_real_distribution<double> u(-4.0, 4.0);
  LovaszSoftmaxOptions<T> o;
  o.class_list = {0};
  o.reduction = Reduction::sum;
  int64_t rows = 0, unordered = 0;
  for (int64_t S : {3, 5, 6, 7, 9, 17, 19})
    for (int k = 0; k < 150; ++k) {
      const T a = static_cast<T>(u(rng)), b = static_cast<T>(u(rng));
      if (!(a > b + T(0.25))) continue;  // p_0 > 1/2: the background errors come first
      auto x = Tensor<T>::empty(Shape{1, 2, S});
      auto y = Tensor<int64_t>::full(Shape{1, S}, 1);
      y[0] = 0;
      for (int64_t i = 0; i < S; ++i) {
        x[i] = a;
        x[S + i] = b;
      }
      const auto r = lovasz_softmax_value_and_grad(x, y, o);
      bool ordered = true;
      for (int64_t i = 2; i < S; ++i) ordered = ordered && r.grad[i] < r.grad[i - 1];
      if (!ordered && unordered++ == 0)
        MESSAGE("first unordered: S = ", S, ", logits (", a, ", ", b, ")");
      ++rows;
    }
  CHECK(rows > 300);
  CHECK(unordered == 0);
}

TEST_CASE("lovasz_softmax: equal errors keep pixel order, also at a plane's tail") {
  check_ties_in_pixel_order<float>();
  check_ties_in_pixel_order<double>();
}

TEST_CASE("lovasz: edge cases") {
  SUBCASE("every pixel ignored: loss 0, zero gradient") {
    const auto x = testing::randn<double>(kShape, 71);
    const auto y = Tensor<int64_t>::full(kShape.without(1), -100);
    for (bool per_image : {false, true}) {
      auto o = softmax_opts(per_image, LovaszClasses::all);
      const auto vg = lovasz_softmax_value_and_grad(x, y, o);
      CHECK(vg.value == 0.0);
      for (int64_t i = 0; i < vg.grad.numel(); ++i) CHECK(vg.grad[i] == 0.0);
      LovaszHingeOptions<double> h;
      h.per_image = per_image;
      h.ignore = 255.0;
      const auto hv = lovasz_hinge_value_and_grad(x, Tensor<double>::full(kShape, 255.0), h);
      CHECK(hv.value == 0.0);
      for (int64_t i = 0; i < hv.grad.numel(); ++i) CHECK(hv.grad[i] == 0.0);
    }
  }
  SUBCASE("per_image: an image without pixels counts as 0 in the mean") {
    const auto x = testing::randn<double>(kShape, 72);
    auto y = labels_of<int64_t>(kShape, 73);
    for (int64_t i = 12; i < 24; ++i) y[i] = -100;  // image 1
    auto o = softmax_opts(true, LovaszClasses::present);
    o.reduction = Reduction::none;
    const auto v = lovasz_softmax(x, y, o);
    CHECK(v[1] == 0.0);
    o.reduction = Reduction::mean;
    CHECK(lovasz_softmax(x, y, o)[0] == doctest::Approx(v[0] / 2));
    const auto g = lovasz_softmax_value_and_grad(x, y, o).grad;
    for (int64_t i = 48; i < 96; ++i) CHECK(g[i] == 0.0);
  }
  SUBCASE("an absent class: present leaves it out, all counts max p, a list counts it") {
    const Shape s{1, 3, 2, 2};
    const auto x = testing::randn<double>(s, 74);
    const auto y = Tensor<int64_t>::from({0, 1, 1, 0}, {1, 2, 2});
    std::vector<double> p2;
    for (int64_t i = 0; i < 4; ++i) p2.push_back(softmax_at(x, 0, i)[2]);
    const double l2 = *std::max_element(p2.begin(), p2.end());  // G = 0: g = (1, 0, 0, 0)
    const double present = lovasz_softmax(x, y)[0];
    const double all = lovasz_softmax(x, y, softmax_opts(false, LovaszClasses::all))[0];
    CHECK(all == doctest::Approx((2 * present + l2) / 3));
    const double only2 = lovasz_softmax(x, y, softmax_opts(false, LovaszClasses::present, {2}))[0];
    CHECK(only2 == doctest::Approx(l2));
  }
  SUBCASE("C = 1: p = 1, loss 0 and zero gradient") {
    const Shape s{2, 1, 3, 3};
    const auto vg = lovasz_softmax_value_and_grad(testing::randn<double>(s, 75),
                                                  Tensor<int64_t>::zeros(s.without(1)));
    CHECK(vg.value == 0.0);
    for (int64_t i = 0; i < vg.grad.numel(); ++i) CHECK(vg.grad[i] == 0.0);
  }
  SUBCASE("N = 1 and a 1x1 image") {
    const Shape s{1, 3, 1, 1};
    const auto x = testing::randn<double>(s, 76);
    const auto y = Tensor<int64_t>::from({2}, {1, 1, 1});
    // One pixel: only class 2 is present; e = 1 - p_2, g = (1): the loss is 1 - p_2.
    CHECK(lovasz_softmax(x, y)[0] == doctest::Approx(1.0 - softmax_at(x, 0, 0)[2]));
    testing::check_all_reductions(x, y, softmax_opts(true, LovaszClasses::all), ls_forward,
                                  ls_backward, ls_fused);
    const auto t = Tensor<double>::from({1.0, 0.0, 1.0}, s);
    // Hinge over the three elements of the image.
    LovaszHingeOptions<double> h;
    CHECK(lovasz_hinge(x, t, h)[0] == doctest::Approx(hinge_reference(x, t, h)[0]));
    testing::check_all_reductions(x, t, h, lh_forward, lh_backward, lh_fused);
  }
  SUBCASE("hinge: every margin met gives 0 and no gradient") {
    const Shape s{2, 1, 3, 3};
    const auto t = testing::mask<double>(s, 77);
    auto x = Tensor<double>::empty(s);
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = t[i] == 1.0 ? 1.5 : -1.0;
    const auto vg = lovasz_hinge_value_and_grad(x, t);
    CHECK(vg.value == 0.0);
    for (int64_t i = 0; i < vg.grad.numel(); ++i) CHECK(vg.grad[i] == 0.0);
  }
  SUBCASE("|x| = 1e4 is finite, in float and double") {
    const Shape s{2, 3, 4, 4};
    auto xf = testing::randn<float>(s, 78);
    for (int64_t i = 0; i < xf.numel(); i += 2) xf[i] = (i % 4 == 0) ? 1e4f : -1e4f;
    const auto y = labels_of<int64_t>(s, 79);
    const auto tf = testing::mask<float>(s, 80);
    const auto a = lovasz_softmax_value_and_grad(xf, y);
    const auto b = lovasz_softmax_value_and_grad(testing::cast<double>(xf), y);
    const auto h = lovasz_hinge_value_and_grad(xf, tf);
    CHECK(std::isfinite(a.value));
    CHECK(a.value == doctest::Approx(b.value).epsilon(1e-5));
    CHECK(std::isfinite(h.value));
    for (int64_t i = 0; i < xf.numel(); ++i) {
      CHECK(std::isfinite(a.grad[i]));
      CHECK(std::isfinite(h.grad[i]));
    }
  }
  SUBCASE("NaN logits: the loss is NaN") {
    auto x = testing::randn<double>(kShape, 81);
    x[5] = NAN;
    const auto y = labels_of<int64_t>(kShape, 82);
    CHECK(std::isnan(lovasz_softmax(x, y)[0]));
    const auto g = lovasz_softmax_value_and_grad(x, y).grad;  // x[5]: image 0, pixel 5
    for (int64_t c = 0; c < 4; ++c) CHECK(std::isnan(g[c * 12 + 5]));
    CHECK(std::isfinite(g[6]));
    CHECK(std::isnan(lovasz_hinge(x, testing::mask<double>(kShape, 83))[0]));
  }
  SUBCASE("float labels: options.ignore is compared in the labels' type") {
    // As PyTorch's labels != ignore, which converts ignore to the labels' dtype: 0.1 ignores the
    // float labels 0.1f (no float equals 0.1 in double; the labels were refused as bad).
    const auto x = testing::randn<float>(kShape, 86);
    auto t = testing::mask<float>(kShape, 87);
    auto t255 = t.clone();
    for (int64_t i = 0; i < t.numel(); i += 5) t[i] = 0.1f, t255[i] = 255.0f;
    LovaszHingeOptions<float> o, o255;
    o.ignore = 0.1;
    o255.ignore = 255.0;
    for (bool per_image : {false, true}) {
      o.per_image = o255.per_image = per_image;
      const auto a = lovasz_hinge_value_and_grad(x, t, o);
      const auto b = lovasz_hinge_value_and_grad(x, t255, o255);
      CHECK(a.value == b.value);
      CHECK(testing::same_bits(a.grad, b.grad));
      ad::Tape<float> tape;
      const auto l = composed::lovasz_hinge(tape, tape.leaf(x), t, o);
      const auto l255 = composed::lovasz_hinge(tape, tape.leaf(x), t255, o255);
      CHECK(l.value()[0] == l255.value()[0]);
    }
  }
  SUBCASE("a (N, C, S) multi-label problem per channel is a view (N*C, 1, S)") {
    const Shape s{2, 3, 5}, v{6, 1, 5};
    const auto x = testing::randn<double>(s, 84);
    const auto t = testing::mask<double>(s, 85);
    LovaszHingeOptions<double> o;
    o.reduction = Reduction::none;
    const auto per_plane =
        lovasz_hinge(Tensor<double>::view(x.data(), v), Tensor<double>::view(t.data(), v), o);
    REQUIRE(per_plane.numel() == 6);
    for (int64_t k = 0; k < 6; ++k) {
      const auto xk = Tensor<double>::view(x.data() + 5 * k, Shape{1, 1, 5});
      const auto tk = Tensor<double>::view(t.data() + 5 * k, Shape{1, 1, 5});
      CHECK(per_plane[k] == lovasz_hinge(xk, tk)[0]);
    }
  }
}

TEST_CASE("lovasz_softmax: grad being the logits is refused, lovasz_hinge in place is exact") {
  // lovasz_softmax's Jacobian step reads the logits after dL/dp was written into grad: before
  // session 9 the CPU accepted grad = logits and gave a gradient off by up to 0.02.
  const auto x = testing::randn<double>(kShape, 93);
  const auto y = labels_of<int64_t>(kShape, 94);
  Tensor<double> in_place = x.clone();
  CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(in_place, y, in_place),
                       "lovasz_softmax_value_and_grad: grad is the logits; lovasz_softmax needs a "
                       "separate grad buffer (its softmax Jacobian step reads the logits after "
                       "dL/dp was written into grad)",
                       Error);
  // lovasz_hinge reads each logit before its gradient is stored: in place gives the same bits.
  const auto t = testing::mask<double>(kShape, 95);
  const auto apart = lovasz_hinge_value_and_grad(x, t);
  Tensor<double> xh = x.clone();
  CHECK(lovasz_hinge_value_and_grad(xh, t, xh) == apart.value);
  bool same = true;
  for (int64_t i = 0; i < x.numel(); ++i) same = same && xh[i] == apart.grad[i];
  CHECK(same);
}

TEST_CASE("lovasz: bad input names the function, the argument and the values") {
  const auto x = testing::randn<double>(kShape, 91);
  auto y = labels_of<int64_t>(kShape, 92);
  y[17] = 4;
  CHECK_THROWS_WITH_AS(lovasz_softmax(x, y),
                       "lovasz_softmax: target has label 4 at (1,1,1), outside [0, 4) and not "
                       "ignore_index -100",
                       Error);
  y[17] = 0;
  CHECK_THROWS_WITH_AS(lovasz_softmax(x, Tensor<int32_t>::zeros({2, 3, 3})),
                       "lovasz_softmax: target (2,3,3) does not match logits (2,4,3,4) without "
                       "the class axis",
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_softmax(x, y, softmax_opts(false, LovaszClasses::all, {1, 4})),
                       "lovasz_softmax: options.class_list[1] is 4, outside [0, 4) of logits "
                       "(2,4,3,4)",
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_softmax(x, y, softmax_opts(false, LovaszClasses::all, {1, 2, 1})),
                       "lovasz_softmax: options.class_list repeats class 1", Error);
  LovaszSoftmaxOptions<double> none;
  none.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(lovasz_softmax_value_and_grad(x, y, none),
                       "lovasz_softmax_value_and_grad: reduction none has no single value; use "
                       "lovasz_softmax and lovasz_softmax_backward",
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_softmax_backward(x, y, Tensor<double>::zeros({2}), none),
                       "lovasz_softmax_backward: grad_out (2) does not match the loss values (1) "
                       "of reduction none",
                       Error);
  auto t = testing::mask<double>(kShape, 93);
  t[30] = 0.5;
  CHECK_THROWS_WITH_AS(lovasz_hinge(x, t),
                       "lovasz_hinge: target has label 0.5 at (0,2,1,2); expected 0 or 1 "
                       "(options.ignore is not set)",
                       Error);
  LovaszHingeOptions<double> h;
  h.ignore = 255.0;
  t[30] = 2.0;
  CHECK_THROWS_WITH_AS(lovasz_hinge_backward(x, t, Tensor<double>::full(Shape{}, 1.0), h),
                       "lovasz_hinge_backward: target has label 2 at (0,2,1,2); expected 0, 1 or "
                       "options.ignore 255",
                       Error);
  CHECK_THROWS_WITH_AS(lovasz_hinge(x, Tensor<double>::zeros({2, 4, 3})),
                       "lovasz_hinge: target (2,4,3) does not match logits (2,4,3,4)", Error);
}

// ---- The radix sort against std::stable_sort, bit for bit ----
//
// The kernels sort the errors by an LSD radix sort on their bits (sequentially per problem, or
// by all threads for lovasz_hinge's one batch problem). A stable sort has one result, so the
// loss and gradient must equal those of Alg. 1 walked in the order of std::stable_sort (errors
// descending, NaN first, ties in pixel order), in the same arithmetic (double, J_k = 1 - I_k /
// U_k): the gradient bit for bit (each g_k depends on the ground truth before it in the order,
// so this checks the permutation), the loss to 1e-14 (1e-6 as float; its sum may be contracted to
// fused multiply-adds in the kernel and not here). The inputs are adversarial for a radix sort:
// long runs of equal keys, -0.0 next to 0.0, errors that differ only in the low, middle or high
// bits of the key (so that one pass moves records and the others are skipped), huge values, NaN; at
// sizes around one bucket table (2048) and around the size from which the batch sort is split
// across threads (65536), at 1, 2 and 3 threads.

namespace {

// Per problem: the loss L_j and, with scale 1, the gradient dL/dx (0 where not sorted).
template <class T>
std::pair<std::vector<double>, std::vector<T>> hinge_stable_sort_reference(const Tensor<T>& x,
                                                                           const Tensor<T>& t,
                                                                           bool per_image) {
  const int64_t problems = per_image ? x.size(0) : 1, size = x.numel() / problems;
  std::vector<double> loss;
  std::vector<T> grad(static_cast<size_t>(x.numel()), T(0));
  struct Item {
    T e;
    int64_t pos;
    bool fg;
  };
  for (int64_t j = 0; j < problems; ++j) {
    std::vector<Item> items;
    int64_t gts = 0;
    for (int64_t i = j * size; i < (j + 1) * size; ++i) {
      const bool fg = t[i] == T(1);
      gts += fg ? 1 : 0;
      const T e = fg ? T(1) - x[i] : T(1) + x[i];
      if (!(e <= T(0))) items.push_back({e, i, fg});  // relu: e <= 0 adds nothing; NaN stays
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (std::isnan(a.e) || std::isnan(b.e)) return std::isnan(a.e) && !std::isnan(b.e);
      return a.e > b.e;
    });
    double inter = static_cast<double>(gts), uni = inter, j_prev = 0.0, l = 0.0;
    for (const Item& it : items) {
      if (it.fg)
        inter -= 1.0;
      else
        uni += 1.0;
      const double jk = 1.0 - inter / uni;
      const double g = jk - j_prev;
      j_prev = jk;
      l += static_cast<double>(it.e) * g;
      grad[static_cast<size_t>(it.pos)] = static_cast<T>(1.0 * (it.fg ? -g : g));
    }
    loss.push_back(l);
  }
  return {loss, grad};
}

// Logits of n pixels whose errors 1 +- x are adversarial for the sort, by kind.
template <class T>
Tensor<T> adversarial_logits(int kind, int64_t n, uint64_t seed) {
  using K = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;
  constexpr int kMantissa = std::numeric_limits<T>::digits - 1;
  std::mt19937_64 rng(seed);
  auto x = Tensor<T>::empty(Shape{n});
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng();
    T e = T(1);  // the error 1 + x for a background pixel; x = e - 1
    switch (kind) {
      case 0:  // every logit equal
        e = T(0.75);
        break;
      case 1:  // few distinct values: long runs of ties
        e = T(0.25) * static_cast<T>(r % 5 + 1);
        break;
      case 2: {  // only the lowest digit of the key differs (last 8 mantissa bits)
        K b;
        T one = T(1.5);
        std::memcpy(&b, &one, sizeof b);
        b += static_cast<K>(r % 256);
        std::memcpy(&e, &b, sizeof e);
        break;
      }
      case 3: {  // only bits 11..21 of the key differ
        K b;
        T one = T(1.5);
        std::memcpy(&b, &one, sizeof b);
        b += static_cast<K>((r % 2048) << 11);
        std::memcpy(&e, &b, sizeof e);
        break;
      }
      case 4:  // only the exponent differs: powers of two, from tiny to huge
        e = std::ldexp(T(1), static_cast<int>(r % 120) - 60);
        break;
      case 5:  // random, with every kind of tie: -0.0 and 0.0 logits (error 1), huge, one NaN
        switch (r % 6) {
          case 0:
            e = T(1) + T(-0.0);
            break;
          case 1:
            e = T(1) + T(0.0);
            break;
          case 2:
            e = static_cast<T>(std::is_same_v<T, float> ? 1e30 : 1e300);
            break;
          default:
            e = static_cast<T>(static_cast<double>(r >> 11) * 0x1p-53 * 4.0);
        }
        break;
    }
    (void)kMantissa;
    x[i] = e - T(1);
    if (kind == 5 && i == n / 2 && n > 4) x[i] = std::numeric_limits<T>::quiet_NaN();
    if (kind == 5 && r % 7 == 0) x[i] = T(-0.0);
  }
  return x;
}

template <class T>
void check_hinge_against_stable_sort() {
  const int64_t sizes[] = {1, 2, 3, 2047, 2048, 2049, 65535, 65536, 65537, 70001};
  for (int kind = 0; kind < 6; ++kind)
    for (int64_t n : sizes) {
      if (n > 4096 && kind != 1 && kind != 5) continue;  // the large sizes on two kinds
      CAPTURE(kind);
      CAPTURE(n);
      // Two images of n/2 (at least 1) pixels each, labels half 0, half 1 in stripes.
      const int64_t half = std::max<int64_t>(1, n / 2);
      const Shape s{2, 1, 1, half};
      const Tensor<T> flat = adversarial_logits<T>(kind, 2 * half, 100 + kind);
      auto x = Tensor<T>::empty(s), t = Tensor<T>::empty(s);
      for (int64_t i = 0; i < 2 * half; ++i) {
        const bool fg = (i / 3) % 2 == 1;
        t[i] = fg ? T(1) : T(0);
        // The same error for a foreground pixel: e = 1 - x.
        x[i] = fg ? -flat[i] : flat[i];
      }
      for (bool per_image : {true, false}) {
        CAPTURE(per_image);
        const auto ref = hinge_stable_sort_reference(x, t, per_image);
        LovaszHingeOptions<T> o;
        o.per_image = per_image;
        o.reduction = Reduction::none;
        const auto ones = Tensor<T>::full(Shape{per_image ? 2 : 1}, T(1));
        for (int threads : {1, 2, 3}) {
          CAPTURE(threads);
#if defined(_OPENMP)
          omp_set_num_threads(threads);
#endif
          const Tensor<T> values = lovasz_hinge(x, t, o);
          const Tensor<T> grad = lovasz_hinge_backward(x, t, ones, o);
          for (size_t j = 0; j < ref.first.size(); ++j) {
            const double want = ref.first[j], got = values[static_cast<int64_t>(j)];
            if (std::isnan(want)) {
              CHECK(std::isnan(got));
            } else {
              CHECK(got == doctest::Approx(want).epsilon(std::is_same_v<T, float> ? 1e-6 : 1e-14));
            }
          }
          CHECK(std::memcmp(grad.data(), ref.second.data(),
                            sizeof(T) * static_cast<size_t>(x.numel())) == 0);
        }
      }
    }
}

}  // namespace

TEST_CASE("lovasz_hinge: bit-identical to Alg. 1 after std::stable_sort, adversarial keys") {
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
#endif
  check_hinge_against_stable_sort<float>();
  check_hinge_against_stable_sort<double>();
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
}
