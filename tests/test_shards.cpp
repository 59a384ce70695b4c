// The statistics / finalize split across data-parallel shards: for every loss that has it, a
// batch cut into 2 and 3 uneven shards (views of the same memory) gives, after the shards'
// statistics are summed, the single-process loss on every shard and, concatenated, the
// single-process gradient, within 1e-12 relative in double. An empty rank (statistics of zeros)
// and shards whose pixels are all ignored are covered.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "stored_check.hpp"

using namespace segloss;

namespace {

// Images [first, first + count) of a tensor whose first axis is the batch.
template <class T>
Tensor<T> slice(const Tensor<T>& v, int64_t first, int64_t count) {
  Shape s = v.shape();
  const int64_t per_image = v.numel() / s[0];
  s.set(0, count);
  return Tensor<T>::view(const_cast<T*>(v.data()) + first * per_image, s);
}

// The shard layouts of a batch of 5: two and three uneven shards.
const std::vector<std::vector<int64_t>> kLayouts = {{2, 3}, {1, 3, 1}, {4, 1}};

// stat(first, count) -> S; fin(first, count, reduced S, grad view) -> value. For each layout:
// every shard's statistics, summed in shard order with an empty rank's zeros, then every
// shard's finalize into its slice of one gradient buffer.
template <class S, class Stat, class Fin>
void check_split(const ValueAndGrad<double>& ref, Stat stat, Fin fin) {
  const Shape& shape = ref.grad.shape();
  double gmax = 0.0;
  for (int64_t i = 0; i < ref.grad.numel(); ++i) gmax = std::max(gmax, std::fabs(ref.grad[i]));
  for (const auto& layout : kLayouts) {
    CAPTURE(layout.size());
    CAPTURE(layout[0]);
    std::vector<S> st;
    int64_t first = 0;
    for (int64_t count : layout) {
      st.push_back(stat(first, count));
      first += count;
    }
    REQUIRE(first == shape[0]);
    std::vector<double> reduced(st[0].size(), 0.0);  // the caller's all-reduce (sum)
    for (const auto& s : st) {
      REQUIRE(s.size() == reduced.size());
      for (size_t k = 0; k < reduced.size(); ++k) reduced[k] += s.data()[k];
    }
    const std::vector<double> empty_rank(reduced.size(), 0.0);  // a rank without images
    for (size_t k = 0; k < reduced.size(); ++k) reduced[k] += empty_rank[k];
    auto grad = Tensor<double>::full(shape, NAN);
    first = 0;
    for (size_t r = 0; r < layout.size(); ++r) {
      S mine = st[r];
      mine.global = reduced;
      auto g = slice(grad, first, layout[r]);
      const double v = fin(first, layout[r], mine, g);
      CHECK(v == doctest::Approx(ref.value).epsilon(1e-12));
      first += layout[r];
    }
    int bad = 0;
    for (int64_t i = 0; i < grad.numel(); ++i) {
      const double tol = 1e-12 * (std::fabs(ref.grad[i]) + 1e-3 * gmax);
      if (!(std::fabs(grad[i] - ref.grad[i]) <= tol) && bad++ < 5)
        CHECK_MESSAGE(false, "gradient ", i, ": ", grad[i], " vs ", ref.grad[i]);
    }
    CHECK(bad == 0);
  }
}

const Shape kShape{5, 3, 6, 5};
const Shape kLabelShape{5, 6, 5};
constexpr int64_t kImagePixels = 30;

// Labels with some ignored pixels, and image 0 entirely ignored (a shard of one image whose
// pixels are all ignored: layout {1, 3, 1}).
Tensor<int64_t> labels_with_ignored(int64_t ignore = -100) {
  auto y = testing::labels<int64_t>(kLabelShape, 3, 301, 0.2, ignore);
  for (int64_t i = 0; i < kImagePixels; ++i) y[i] = ignore;
  return y;
}

Tensor<double> probabilities(uint64_t seed) {
  auto q = testing::uniform<double>(kShape, seed, 0.05, 1.0);
  for (int64_t n = 0; n < kShape[0]; ++n)
    for (int64_t i = 0; i < kImagePixels; ++i) {
      double z = 0.0;
      for (int64_t c = 0; c < 3; ++c) z += q[(n * 3 + c) * kImagePixels + i];
      for (int64_t c = 0; c < 3; ++c) q[(n * 3 + c) * kImagePixels + i] /= z;
    }
  return q;
}

}  // namespace

TEST_CASE("shards: cross_entropy statistics / finalize equal one process") {
  const auto x = testing::randn<double>(kShape, 300, 2.0);
  const auto y = labels_with_ignored();
  for (int variant = 0; variant < 5; ++variant) {
    CAPTURE(variant);
    CrossEntropyOptions<double> o;
    if (variant == 1) o.weight = Tensor<double>::from({0.5, 2.0, 1.25}, {3});
    if (variant == 2) o.label_smoothing = 0.1, o.weight = Tensor<double>::from({1, 3, 0.5}, {3});
    if (variant == 3)
      o.mean_over = MeanOver::valid_pixels, o.weight = Tensor<double>::from({1, 3, 2}, {3});
    if (variant == 4) o.reduction = Reduction::sum, o.label_smoothing = 0.2;
    check_split<ShardStatistics>(
        cross_entropy_value_and_grad(x, y, o),
        [&](int64_t f, int64_t c) {
          return cross_entropy_statistics(slice(x, f, c), slice(y, f, c), o);
        },
        [&](int64_t f, int64_t c, const ShardStatistics& r, Tensor<double>& g) {
          return cross_entropy_finalize(slice(x, f, c), slice(y, f, c), r, g, o);
        });
  }
  // Probability targets: the mean divides by N * spatial of the whole batch.
  const auto q = probabilities(302);
  CrossEntropyOptions<double> o;
  o.label_smoothing = 0.05;
  check_split<ShardStatistics>(
      cross_entropy_value_and_grad(x, q, o),
      [&](int64_t f, int64_t c) {
        return cross_entropy_statistics(slice(x, f, c), slice(q, f, c), o);
      },
      [&](int64_t f, int64_t c, const ShardStatistics& r, Tensor<double>& g) {
        return cross_entropy_finalize(slice(x, f, c), slice(q, f, c), r, g, o);
      });
}

TEST_CASE("shards: cross_entropy with every pixel of the batch ignored follows all_ignored") {
  const auto x = testing::randn<double>(kShape, 310);
  auto y = Tensor<int64_t>::full(kLabelShape, -100);
  for (AllIgnored policy : {AllIgnored::zero, AllIgnored::nan}) {
    CrossEntropyOptions<double> o;
    o.all_ignored = policy;
    const auto ref = cross_entropy_value_and_grad(x, y, o);
    auto s0 = cross_entropy_statistics(slice(x, 0, 2), slice(y, 0, 2), o);
    const auto s1 = cross_entropy_statistics(slice(x, 2, 3), slice(y, 2, 3), o);
    for (size_t k = 0; k < s0.size(); ++k) s0.data()[k] += s1.data()[k];
    Tensor<double> g;
    const double v = cross_entropy_finalize(slice(x, 0, 2), slice(y, 0, 2), s0, g, o);
    if (policy == AllIgnored::nan)
      CHECK((std::isnan(v) && std::isnan(ref.value)));
    else
      CHECK((v == 0.0 && ref.value == 0.0));
    for (int64_t i = 0; i < g.numel(); ++i) CHECK(g[i] == 0.0);
  }
}

TEST_CASE("shards: bce_with_logits statistics / finalize equal one process") {
  const auto x = testing::randn<double>(kShape, 320, 2.0);
  const auto z = testing::mask<double>(kShape, 321, 0.4);
  const auto w_pixel = testing::uniform<double>(Shape{5, 1, 6, 5}, 322, 0.0, 2.0);
  const auto w_class = Tensor<double>::from({0.5, 1.0, 3.0}, {3, 1, 1});
  for (int variant = 0; variant < 6; ++variant) {
    CAPTURE(variant);
    BceWithLogitsOptions<double> o;
    bool sliced_weight = false;
    if (variant == 1)
      o.weight = w_pixel, o.mean_over = BceMeanOver::weight_sum, sliced_weight = true;
    if (variant == 2) o.weight = w_class, o.mean_over = BceMeanOver::weight_sum;
    if (variant == 3)
      o.pos_weight = Tensor<double>::from({2.0, 0.5, 1.0}, {3}), o.label_smoothing = 0.1;
    if (variant == 4) o.reduction = Reduction::sum, o.weight = w_pixel, sliced_weight = true;
    if (variant == 5) o.weight = w_class;  // mean over elements with a weight
    auto shard_options = [&](int64_t f, int64_t c) {
      auto so = o;
      if (sliced_weight) so.weight = slice(o.weight, f, c);
      return so;
    };
    check_split<ShardStatistics>(
        bce_with_logits_value_and_grad(x, z, o),
        [&](int64_t f, int64_t c) {
          return bce_with_logits_statistics(slice(x, f, c), slice(z, f, c), shard_options(f, c));
        },
        [&](int64_t f, int64_t c, const ShardStatistics& r, Tensor<double>& g) {
          return bce_with_logits_finalize(slice(x, f, c), slice(z, f, c), r, g,
                                          shard_options(f, c));
        });
  }
}

TEST_CASE("shards: bce_with_logits with a weight summing to 0 over the batch gives 0") {
  const auto x = testing::randn<double>(kShape, 330);
  const auto z = testing::mask<double>(kShape, 331);
  BceWithLogitsOptions<double> o;
  o.weight = Tensor<double>::zeros(Shape{3, 1, 1});
  o.mean_over = BceMeanOver::weight_sum;
  auto st = bce_with_logits_statistics(slice(x, 0, 1), slice(z, 0, 1), o);
  const auto other = bce_with_logits_statistics(slice(x, 1, 4), slice(z, 1, 4), o);
  for (size_t k = 0; k < st.size(); ++k) st.data()[k] += other.data()[k];
  auto g = Tensor<double>::full(Shape{1, 3, 6, 5}, NAN);
  CHECK(bce_with_logits_finalize(slice(x, 0, 1), slice(z, 0, 1), st, g, o) == 0.0);
  for (int64_t i = 0; i < g.numel(); ++i) CHECK(g[i] == 0.0);
}

TEST_CASE("shards: focal statistics / finalize equal one process") {
  const auto x = testing::randn<double>(kShape, 340, 2.0);
  const auto z = testing::mask<double>(kShape, 341, 0.3);
  const auto y = labels_with_ignored();
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    SigmoidFocalOptions<double> so;
    so.reduction = r;
    so.gamma = 1.5;
    check_split<ShardStatistics>(
        sigmoid_focal_value_and_grad(x, z, so),
        [&](int64_t f, int64_t c) {
          return sigmoid_focal_statistics(slice(x, f, c), slice(z, f, c), so);
        },
        [&](int64_t f, int64_t c, const ShardStatistics& st, Tensor<double>& g) {
          return sigmoid_focal_finalize(slice(x, f, c), slice(z, f, c), st, g, so);
        });
    SoftmaxFocalOptions<double> mo;
    mo.reduction = r;
    mo.alpha = Tensor<double>::from({0.25, 1.0, 0.5}, {3});
    check_split<ShardStatistics>(
        softmax_focal_value_and_grad(x, y, mo),
        [&](int64_t f, int64_t c) {
          return softmax_focal_statistics(slice(x, f, c), slice(y, f, c), mo);
        },
        [&](int64_t f, int64_t c, const ShardStatistics& st, Tensor<double>& g) {
          return softmax_focal_finalize(slice(x, f, c), slice(y, f, c), st, g, mo);
        });
  }
}

TEST_CASE("shards: softmax_dice, softmax_jaccard, softmax_tversky equal one process") {
  const auto x = testing::randn<double>(kShape, 350, 1.5);
  const auto y = labels_with_ignored();
  const auto q = probabilities(351);
  for (bool per_image : {true, false}) {
    for (int variant = 0; variant < 5; ++variant) {
      CAPTURE(per_image);
      CAPTURE(variant);
      SoftmaxTverskyOptions<double> o;
      o.per_image = per_image;
      if (variant == 1) o.log = true;
      if (variant == 2) o.clamp = true, o.reduction = Reduction::sum;
      if (variant == 3) o.gamma = 2.0, o.empty = EmptyPolicy::skip;
      if (variant == 4) {
        o.class_weight = Tensor<double>::from({0.5, 1.0, 2.0}, {3});
        o.include_background = false;
        o.alpha = 0.7, o.beta = 0.3;
      }
      const SoftmaxOverlapOptions<double>& b = o;
      // Labels (with an all-ignored image) and probabilities.
      for (int target = 0; target < 2; ++target) {
        CAPTURE(target);
        auto run = [&](const auto& t) {
          check_split<OverlapStatistics>(
              softmax_dice_value_and_grad(x, t, b),
              [&](int64_t f, int64_t c) {
                return softmax_dice_statistics(slice(x, f, c), slice(t, f, c), b);
              },
              [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
                return softmax_dice_finalize(slice(x, f, c), slice(t, f, c), r, g, b);
              });
          check_split<OverlapStatistics>(
              softmax_jaccard_value_and_grad(x, t, b),
              [&](int64_t f, int64_t c) {
                return softmax_jaccard_statistics(slice(x, f, c), slice(t, f, c), b);
              },
              [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
                return softmax_jaccard_finalize(slice(x, f, c), slice(t, f, c), r, g, b);
              });
          check_split<OverlapStatistics>(
              softmax_tversky_value_and_grad(x, t, o),
              [&](int64_t f, int64_t c) {
                return softmax_tversky_statistics(slice(x, f, c), slice(t, f, c), o);
              },
              [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
                return softmax_tversky_finalize(slice(x, f, c), slice(t, f, c), r, g, o);
              });
        };
        if (target == 0)
          run(y);
        else
          run(q);
      }
    }
  }
}

TEST_CASE("shards: generalized_dice equals one process") {
  const auto x = testing::randn<double>(kShape, 360, 1.5);
  auto y = labels_with_ignored();
  for (int64_t i = kImagePixels; i < 2 * kImagePixels; ++i)  // image 1 without class 2
    if (y[i] == 2) y[i] = 1;
  for (bool per_image : {true, false}) {
    for (auto w : {GeneralizedDiceWeight::square, GeneralizedDiceWeight::simple,
                   GeneralizedDiceWeight::uniform}) {
      for (Reduction r : {Reduction::mean, Reduction::sum}) {
        CAPTURE(per_image);
        CAPTURE(static_cast<int>(w));
        GeneralizedDiceOptions<double> o;
        o.per_image = per_image;
        o.w_type = w;
        o.reduction = r;
        o.include_background = w != GeneralizedDiceWeight::simple;
        check_split<OverlapStatistics>(
            generalized_dice_value_and_grad(x, y, o),
            [&](int64_t f, int64_t c) {
              return generalized_dice_statistics(slice(x, f, c), slice(y, f, c), o);
            },
            [&](int64_t f, int64_t c, const OverlapStatistics& st, Tensor<double>& g) {
              return generalized_dice_finalize(slice(x, f, c), slice(y, f, c), st, g, o);
            });
      }
    }
  }
}

TEST_CASE("shards: ce_dice, dice_focal and bce_dice equal one process, with their parts") {
  const auto x = testing::randn<double>(kShape, 370, 1.5);
  const auto y = labels_with_ignored();
  for (bool per_image : {true, false}) {
    CAPTURE(per_image);
    CeDiceOptions<double> co;
    co.ce_weight = 0.7, co.dice_weight = 1.3;
    co.ce.weight = Tensor<double>::from({1.0, 2.0, 0.5}, {3});
    co.ce.label_smoothing = 0.1;
    co.dice.per_image = per_image;
    CeDiceParts ref_parts;
    const auto ref = ce_dice_value_and_grad(x, y, co, &ref_parts);
    check_split<OverlapStatistics>(
        ref,
        [&](int64_t f, int64_t c) {
          return ce_dice_statistics(slice(x, f, c), slice(y, f, c), co);
        },
        [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
          CeDiceParts parts;
          const double v = ce_dice_finalize(slice(x, f, c), slice(y, f, c), r, g, co, &parts);
          CHECK(parts.ce == doctest::Approx(ref_parts.ce).epsilon(1e-12));
          CHECK(parts.dice == doctest::Approx(ref_parts.dice).epsilon(1e-12));
          return v;
        });

    DiceFocalOptions<double> fo;
    fo.focal_weight = 2.0;
    fo.dice.per_image = per_image;
    fo.dice.reduction = Reduction::sum;
    check_split<OverlapStatistics>(
        dice_focal_value_and_grad(x, y, fo),
        [&](int64_t f, int64_t c) {
          return dice_focal_statistics(slice(x, f, c), slice(y, f, c), fo);
        },
        [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
          return dice_focal_finalize(slice(x, f, c), slice(y, f, c), r, g, fo);
        });

    const auto z = testing::mask<double>(kShape, 371, 0.4);
    const auto w = testing::uniform<double>(Shape{5, 1, 6, 5}, 372, 0.5, 1.5);
    BceDiceOptions<double> bo;
    bo.bce_weight = 0.5;
    bo.bce.weight = w;
    bo.bce.mean_over = BceMeanOver::weight_sum;
    bo.dice.per_image = per_image;
    bo.dice.log = true;
    BceDiceParts bref_parts;
    const auto bref = bce_dice_value_and_grad(x, z, bo, &bref_parts);
    auto shard_options = [&](int64_t f, int64_t c) {
      auto so = bo;
      so.bce.weight = slice(w, f, c);
      return so;
    };
    check_split<OverlapStatistics>(
        bref,
        [&](int64_t f, int64_t c) {
          return bce_dice_statistics(slice(x, f, c), slice(z, f, c), shard_options(f, c));
        },
        [&](int64_t f, int64_t c, const OverlapStatistics& r, Tensor<double>& g) {
          BceDiceParts parts;
          const double v =
              bce_dice_finalize(slice(x, f, c), slice(z, f, c), r, g, shard_options(f, c), &parts);
          CHECK(parts.bce == doctest::Approx(bref_parts.bce).epsilon(1e-12));
          CHECK(parts.dice == doctest::Approx(bref_parts.dice).epsilon(1e-12));
          return v;
        });
  }
}

TEST_CASE("shards: the split in float agrees with the fused float path") {
  const auto x = testing::cast<float>(testing::randn<double>(kShape, 380, 1.5));
  const auto y = testing::cast<int32_t>(labels_with_ignored());
  auto a = cross_entropy_statistics(slice(x, 0, 2), slice(y, 0, 2));
  const auto b = cross_entropy_statistics(slice(x, 2, 3), slice(y, 2, 3));
  auto d = softmax_dice_statistics(slice(x, 0, 2), slice(y, 0, 2));
  const auto e = softmax_dice_statistics(slice(x, 2, 3), slice(y, 2, 3));
  for (size_t k = 0; k < a.size(); ++k) a.data()[k] += b.data()[k];
  for (size_t k = 0; k < d.size(); ++k) d.data()[k] += e.data()[k];
  Tensor<float> g;
  CHECK(cross_entropy_finalize(slice(x, 2, 3), slice(y, 2, 3), a, g) ==
        doctest::Approx(cross_entropy_value_and_grad(x, y).value).epsilon(1e-6));
  Tensor<float> g0;
  CHECK(softmax_dice_finalize(slice(x, 0, 2), slice(y, 0, 2), d, g0) ==
        doctest::Approx(softmax_dice_value_and_grad(x, y).value).epsilon(1e-6));
}

TEST_CASE("shards: the confusion matrix all-reduces through data() and size()") {
  const auto x = testing::randn<double>(kShape, 390);
  const auto y = labels_with_ignored();
  ConfusionMatrix whole(3), a(3), b(3);
  whole.update_from_logits(x, y);
  a.update_from_logits(slice(x, 0, 2), slice(y, 0, 2));
  b.update_from_logits(slice(x, 2, 3), slice(y, 2, 3));
  REQUIRE(a.size() == 9);
  for (size_t k = 0; k < a.size(); ++k) a.data()[k] += b.data()[k];  // the all-reduce
  CHECK(a.counts() == whole.counts());
}

TEST_CASE("shards: bad statistics and reduction none are errors") {
  const auto x = testing::randn<double>(kShape, 395);
  const auto y = labels_with_ignored();
  CrossEntropyOptions<double> none;
  none.reduction = Reduction::none;
  CHECK_THROWS_WITH_AS(cross_entropy_statistics(x, y, none),
                       "cross_entropy_statistics: reduction none has no single value to split "
                       "across shards; use mean or sum",
                       Error);
  Tensor<double> g;
  SoftmaxOverlapOptions<double> batch;
  batch.per_image = false;
  const auto dice = softmax_dice_statistics(x, y, batch);
  ShardStatistics wrong;
  wrong.global = dice.global;
  CHECK_THROWS_WITH_AS(cross_entropy_finalize(x, y, wrong, g),
                       "cross_entropy_finalize: the statistics have 9 global values; this loss's "
                       "statistics have 3 (were they made by another loss's statistics?)",
                       Error);
  CHECK_THROWS_WITH_AS(softmax_dice_finalize(x, y, dice, g),
                       "softmax_dice_finalize: the statistics (per_image false, 3 channels, 15 "
                       "local planes, 9 global values) do not come from this shard's (5,3,6,5) "
                       "with these options (per_image true, 3 global values)",
                       Error);
  // A combined loss's statistics hold the first term's 3 values before the Dice term's. The
  // layout checks below see statistics without a source (built by hand), which skip the test
  // of the next case.
  const auto untagged = [](OverlapStatistics st) {
    st.source.clear();
    return st;
  };
  CHECK_THROWS_WITH_AS(ce_dice_finalize(x, y, untagged(softmax_dice_statistics(x, y)), g),
                       "ce_dice_finalize: the statistics (per_image true, 3 channels, 15 local "
                       "planes, 3 global values) do not come from this shard's (5,3,6,5) with "
                       "these options (per_image true, 6 global values)",
                       Error);
  CHECK_THROWS_WITH_AS(generalized_dice_finalize(x, y, untagged(dice), g),
                       "generalized_dice_finalize: the statistics (per_image false, 3 classes, 15 "
                       "local planes, 9 global values) do not come from this shard's (5,3,6,5) "
                       "with these options (per_image true, 2 global values)",
                       Error);
}

// The counts in a mean loss's statistics (the counted elements or pixels, and a focal loss's
// divisor, itself a count) come from a sum of counts: a NaN or a negative one (statistics built
// by hand, or corrupted on the way) is refused. Before, softmax_focal_finalize turned a NaN or
// negative divisor into a loss of 0 and a zero gradient without a word. A divisor of 0 (every
// pixel ignored) still gives 0.
TEST_CASE(
    "shards: a NaN or negative count in a mean loss's statistics is refused, and a bad count of "
    "scores") {
  const auto x = testing::randn<double>(kShape, 398);
  const auto z = testing::mask<double>(kShape, 399, 0.3);
  const auto y = labels_with_ignored();
  Tensor<double> g;
  const auto with = [](const ShardStatistics& st, size_t at, double v) {
    ShardStatistics out = st;
    out.global[at] = v;
    return out;
  };
  const double nan = std::nan("");
  const auto mf = softmax_focal_statistics(x, y);
  CHECK(testing::error_of([&] { softmax_focal_finalize(x, y, with(mf, 1, nan), g); }) ==
        "softmax_focal_finalize: the statistics' divisor (global[1]) is nan; a count of "
        "elements or pixels summed across shards is finite and >= 0");
  CHECK(testing::error_of([&] { softmax_focal_finalize(x, y, with(mf, 1, -3.0), g); }) ==
        "softmax_focal_finalize: the statistics' divisor (global[1]) is -3; a count of "
        "elements or pixels summed across shards is finite and >= 0");
  CHECK(testing::error_of([&] { softmax_focal_finalize(x, y, with(mf, 2, -1.0), g); }) ==
        "softmax_focal_finalize: the statistics' count (global[2]) is -1; a count of "
        "elements or pixels summed across shards is finite and >= 0");
  const auto sf = sigmoid_focal_statistics(x, z);
  CHECK(testing::error_of([&] {
          sigmoid_focal_finalize(x, z, with(sf, 1, HUGE_VAL), g);
        }).find("sigmoid_focal_finalize: the statistics' divisor (global[1]) is inf") == 0);
  const auto ce = cross_entropy_statistics(x, y);
  CHECK(testing::error_of([&] {
          cross_entropy_finalize(x, y, with(ce, 2, nan), g);
        }).find("cross_entropy_finalize: the statistics' count (global[2]) is nan") == 0);
  const auto bce = bce_with_logits_statistics(x, z);
  CHECK(testing::error_of([&] {
          bce_with_logits_finalize(x, z, with(bce, 2, -2.0), g);
        }).find("bce_with_logits_finalize: the statistics' count (global[2]) is -2") == 0);
  // A combined loss names its term.
  const auto df = dice_focal_statistics(x, y);
  OverlapStatistics bad_df = df;
  bad_df.global[1] = nan;
  const std::string df_msg = testing::error_of([&] { dice_focal_finalize(x, y, bad_df, g); });
  CHECK(df_msg.find("dice_focal_finalize") == 0);
  CHECK(df_msg.find("divisor (global[1]) is nan") != std::string::npos);
  // The count of kept scores of the per-image overlap losses (global[0], or the Dice term's
  // after the mean part in a combined loss) and generalized_dice's count of scores: a whole
  // number >= 0 (a reviewer's cases: -1 gave softmax_dice -8.58, 0 gave generalized_dice inf).
  const auto over = [&](const OverlapStatistics& st, size_t at, double v) {
    OverlapStatistics out = st;
    out.global[at] = v;
    return out;
  };
  // The overlap losses' count is at least this shard's own kept scores (a score per plane here:
  // empty policy formula, background included): 5 images x 3 channels.
  const std::string tail =
      "; a count of scores summed across shards is a whole number >= 15 (this shard's own kept "
      "scores)";
  const auto sd = soft_dice_statistics(x, z);
  CHECK(sd.global[0] == 15.0);
  CHECK(testing::error_of([&] { soft_dice_finalize(x, z, over(sd, 0, -1.0), g); }) ==
        "soft_dice_finalize: the statistics' count of scores (global[0]) is -1" + tail);
  const auto smd = softmax_dice_statistics(x, y);
  CHECK(testing::error_of([&] { softmax_dice_finalize(x, y, over(smd, 0, 2.5), g); }) ==
        "softmax_dice_finalize: the statistics' count of scores (global[0]) is 2.5" + tail);
  const auto gd = generalized_dice_statistics(x, y);
  const std::string gd_tail =
      "; a count of scores summed across shards is a whole number >= " + std::to_string(kShape[0]) +
      " (this shard's own images)";
  CHECK(gd.global[0] == static_cast<double>(kShape[0]));  // one score per image
  CHECK(testing::error_of([&] { generalized_dice_finalize(x, y, over(gd, 0, nan), g); }) ==
        "generalized_dice_finalize: the statistics' count of scores (global[0]) is nan" + gd_tail);
  CHECK(testing::error_of([&] { generalized_dice_finalize(x, y, over(gd, 0, 0.0), g); }) ==
        "generalized_dice_finalize: the statistics' count of scores (global[0]) is 0" + gd_tail);
  const auto cd = ce_dice_statistics(x, y);
  CHECK(testing::error_of([&] {
          ce_dice_finalize(x, y, over(cd, 3, -2.0), g);
        }).find("the statistics' count of scores (global[3]) is -2") != std::string::npos);
  // The counts as made still pass, and so does a larger count (other shards' scores).
  CHECK(std::isfinite(soft_dice_finalize(x, z, sd, g)));
  CHECK(std::isfinite(soft_dice_finalize(x, z, over(sd, 0, 40.0), g)));
  CHECK(std::isfinite(generalized_dice_finalize(x, y, gd, g)));
  // Every pixel ignored: divisor and count 0, loss 0 and a zero gradient.
  const ShardStatistics empty = with(with(with(mf, 0, 0.0), 1, 0.0), 2, 0.0);
  CHECK(softmax_focal_finalize(x, y, empty, g) == 0.0);
  for (int64_t i = 0; i < g.numel(); ++i) REQUIRE(g[i] == 0.0);
}

// A whole count below the shard's own kept scores cannot be a sum that includes them: before
// this check (2026-12-04) it passed, and gave a loss too large by the ratio, or at 0 a loss of
// 0 and a zero gradient, without a word. The shard's kept scores follow the options: the
// background excluded, and with EmptyPolicy::skip the planes whose target sum is 0.
TEST_CASE("shards: an overlap count below the shard's own kept scores is an error") {
  const auto x = testing::randn<double>(kShape, 330);
  auto z = testing::mask<double>(kShape, 332, 0.4);
  for (int64_t i = 0; i < 6 * 5; ++i) z.data()[i] = 0.0;           // image 0, channel 0: empty
  for (int64_t i = 0; i < 6 * 5; ++i) z.data()[2 * 30 + i] = 0.0;  // image 0, channel 2: empty
  Tensor<double> g;
  const auto over = [](const OverlapStatistics& st, size_t at, double v) {
    OverlapStatistics out = st;
    out.global[at] = v;
    return out;
  };
  const auto message = [](const char* fn, size_t at, double v, int64_t least) {
    std::ostringstream m;
    m << fn << ": the statistics' count of scores (global[" << at << "]) is " << v
      << "; a count of scores summed across shards is a whole number >= " << least
      << " (this shard's own kept scores)";
    return m.str();
  };
  struct Case {
    bool include_background;
    EmptyPolicy empty;
    int64_t kept;  // of 15 planes
  };
  for (const Case& c : {Case{true, EmptyPolicy::formula, 15}, Case{false, EmptyPolicy::formula, 10},
                        Case{true, EmptyPolicy::skip, 13}, Case{false, EmptyPolicy::skip, 9},
                        Case{true, EmptyPolicy::one, 15}, Case{false, EmptyPolicy::zero, 10}}) {
    CAPTURE(c.include_background);
    CAPTURE(static_cast<int>(c.empty));
    SoftDiceOptions<double> o;
    o.include_background = c.include_background;
    o.empty = c.empty;
    const auto st = soft_dice_statistics(x, z, o);
    CHECK(st.global[0] == static_cast<double>(c.kept));
    for (double v : {0.0, static_cast<double>(c.kept - 1)})
      CHECK(testing::error_of([&] { soft_dice_finalize(x, z, over(st, 0, v), g, o); }) ==
            message("soft_dice_finalize", 0, v, c.kept));
    CHECK(std::isfinite(soft_dice_finalize(x, z, over(st, 0, c.kept + 7.0), g, o)));
    // bce_dice's Dice term: its count after the BCE term's values.
    BceDiceOptions<double> b;
    b.dice.include_background = c.include_background;
    b.dice.empty = c.empty;
    const auto bst = bce_dice_statistics(x, z, b);
    const size_t at = bst.global.size() - 3;
    CHECK(bst.global[at] == static_cast<double>(c.kept));
    CHECK(testing::error_of([&] { bce_dice_finalize(x, z, over(bst, at, 1.0), g, b); })
              .find("count of scores (global[" + std::to_string(at) +
                    "]) is 1; a count of "
                    "scores summed across shards is a whole number >= " +
                    std::to_string(c.kept)) != std::string::npos);
  }
  // The softmax losses, empty policy formula (the default): every plane's score is kept.
  const auto y = labels_with_ignored();
  SoftmaxOverlapOptions<double> so;
  so.include_background = false;
  const auto smd = softmax_dice_statistics(x, y, so);
  CHECK(smd.global[0] == 10.0);
  CHECK(testing::error_of([&] { softmax_dice_finalize(x, y, over(smd, 0, 9.0), g, so); }) ==
        message("softmax_dice_finalize", 0, 9.0, 10));
  // ce_dice's and dice_focal's Dice term: its count after the first term's values.
  const auto cd = ce_dice_statistics(x, y);
  const auto df = dice_focal_statistics(x, y);
  const size_t cat = cd.global.size() - 3, dat = df.global.size() - 3;
  CHECK(testing::error_of([&] { ce_dice_finalize(x, y, over(cd, cat, 14.0), g); }) ==
        message("ce_dice_finalize", cat, 14.0, 15));
  CHECK(testing::error_of([&] { dice_focal_finalize(x, y, over(df, dat, 0.0), g); }) ==
        message("dice_focal_finalize", dat, 0.0, 15));
  // The options are checked before the count, which they define: statistics made without the
  // background (10 kept) and finalized with it (15 would be the least) report the options.
  SoftmaxOverlapOptions<double> with_bg;
  CHECK(testing::error_of([&] { softmax_dice_finalize(x, y, smd, g, with_bg); }) ==
        "softmax_dice_finalize: the statistics were made with other options than these (their "
        "digests differ); pass the same options to softmax_dice_statistics and "
        "softmax_dice_finalize");
}

// Several losses share a layout (the four mean losses' 3 values; soft_dice's and soft_jaccard's
// per-image totals), so only the source tells their statistics apart: without it, these calls
// returned another loss's value and a wrongly scaled gradient.
TEST_CASE("shards: a finalize refuses another loss's statistics, and takes untagged ones") {
  const auto x = testing::randn<double>(kShape, 396);
  const auto z = testing::uniform<double>(kShape, 397, 0.0, 1.0);
  const auto y = labels_with_ignored();
  Tensor<double> g;

  // finalize's message when it is given statistics of loss `from`.
  const auto refused = [](const std::string& loss, const std::string& from) {
    return loss + "_finalize: the statistics come from " + from + "_statistics, not " + loss +
           "_statistics; a loss's finalize takes only its own loss's statistics";
  };
  const auto bce = bce_with_logits_statistics(x, z);
  CHECK(bce.source == "bce_with_logits");
  CHECK(testing::error_of([&] { sigmoid_focal_finalize(x, z, bce, g); }) ==
        refused("sigmoid_focal", "bce_with_logits"));
  const auto ce = cross_entropy_statistics(x, y);
  CHECK(ce.source == "cross_entropy");
  CHECK(testing::error_of([&] { softmax_focal_finalize(x, y, ce, g); }) ==
        refused("softmax_focal", "cross_entropy"));
  const auto dice = soft_dice_statistics(x, z);
  CHECK(dice.source == "soft_dice");
  CHECK(testing::error_of([&] { soft_jaccard_finalize(x, z, dice, g); }) ==
        refused("soft_jaccard", "soft_dice"));
  // Each of the other losses names itself; a combined loss's term does not leak its name.
  CHECK(sigmoid_focal_statistics(x, z).source == "sigmoid_focal");
  CHECK(softmax_focal_statistics(x, y).source == "softmax_focal");
  CHECK(soft_jaccard_statistics(x, z).source == "soft_jaccard");
  CHECK(tversky_statistics(x, z).source == "tversky");
  CHECK(bce_dice_statistics(x, z).source == "bce_dice");
  CHECK(softmax_dice_statistics(x, y).source == "softmax_dice");
  CHECK(softmax_jaccard_statistics(x, y).source == "softmax_jaccard");
  CHECK(softmax_tversky_statistics(x, y).source == "softmax_tversky");
  CHECK(generalized_dice_statistics(x, y).source == "generalized_dice");
  CHECK(ce_dice_statistics(x, y).source == "ce_dice");
  CHECK(dice_focal_statistics(x, y).source == "dice_focal");
  CHECK(testing::error_of([&] { ce_dice_finalize(x, y, dice_focal_statistics(x, y), g); }) ==
        refused("ce_dice", "dice_focal"));

  // Statistics built by hand (no source) are taken as they are, with the same result.
  const double tagged_value = soft_dice_finalize(x, z, dice, g);
  const Tensor<double> tagged_grad = testing::copy_of(g);
  OverlapStatistics by_hand;
  by_hand.global = dice.global;
  by_hand.local = dice.local;
  by_hand.per_image = dice.per_image;
  by_hand.channels = dice.channels;
  CHECK(soft_dice_finalize(x, z, by_hand, g) == tagged_value);
  CHECK(testing::same_bits(g, tagged_grad));
  ShardStatistics ce_by_hand;
  ce_by_hand.global = ce.global;
  CHECK(cross_entropy_finalize(x, y, ce_by_hand, g) == cross_entropy_finalize(x, y, ce, g));
}

// Statistics of the same loss made with other options gave, before the digest, a loss that no
// single process computes (e.g. a BCE mean over the weight sum of one set of weights scaled by
// another) and raised nothing. Every finalize now compares the digest of its options with the
// statistics' (tensor options by shape, not values), after the source, the layout and its own
// options' values, and before it writes the gradient; statistics without a digest are taken.
TEST_CASE("shards: a finalize refuses statistics made with other options") {
  const auto x = testing::randn<double>(kShape, 398);
  const auto z = testing::uniform<double>(kShape, 399, 0.0, 1.0);
  const auto y = labels_with_ignored();
  const auto refused = [](const std::string& loss) {
    return loss + "_finalize: the statistics were made with other options than these (their " +
           "digests differ); pass the same options to " + loss + "_statistics and " + loss +
           "_finalize";
  };
  // Runs finalize on statistics made with `made` and expects the refusal, with grad untouched;
  // then on statistics made with `used` itself, which it takes.
  const auto check = [&](const std::string& loss, auto statistics, auto finalize, const auto& made,
                         const auto& used) {
    CAPTURE(loss);
    const auto other = statistics(made);
    CHECK(other.options != 0);
    auto g = Tensor<double>::full(kShape, 7.0);
    CHECK(testing::error_of([&] { finalize(other, g, used); }) == refused(loss));
    CHECK(g[0] == 7.0);
    CHECK(g[g.numel() - 1] == 7.0);
    const auto same = statistics(used);
    CHECK(same.options != other.options);
    CHECK(testing::error_of([&] { finalize(same, g, used); }).empty());
  };

  // NAME's statistics made with DEFAULTS, finalize with USED (on target TARGET).
#define CHECK_REFUSED(NAME, TARGET, DEFAULTS, USED)                          \
  check(                                                                     \
      #NAME, [&](const auto& o) { return NAME##_statistics(x, TARGET, o); }, \
      [&](const auto& st, auto& g, const auto& o) {                          \
        return NAME##_finalize(x, TARGET, st, g, o);                         \
      },                                                                     \
      DEFAULTS, USED)
  CrossEntropyOptions<double> ce;
  ce.label_smoothing = 0.1;
  CHECK_REFUSED(cross_entropy, y, CrossEntropyOptions<double>{}, ce);
  BceWithLogitsOptions<double> bce;
  bce.pos_weight = Tensor<double>::full({3}, 2.0);  // the digest sees a tensor by its shape
  CHECK_REFUSED(bce_with_logits, z, BceWithLogitsOptions<double>{}, bce);
  SigmoidFocalOptions<double> sf;
  sf.gamma = 1.0;
  CHECK_REFUSED(sigmoid_focal, z, SigmoidFocalOptions<double>{}, sf);
  SoftmaxFocalOptions<double> mf;
  mf.gamma = 0.5;
  CHECK_REFUSED(softmax_focal, y, SoftmaxFocalOptions<double>{}, mf);
  SoftDiceOptions<double> sd;
  sd.smooth_nr = 1.0;  // per image: the shard's scores use it
  CHECK_REFUSED(soft_dice, z, SoftDiceOptions<double>{}, sd);
  TverskyOptions<double> tv;
  tv.alpha = 0.7;  // a field of the derived struct
  CHECK_REFUSED(tversky, z, TverskyOptions<double>{}, tv);
  SoftmaxOverlapOptions<double> md;
  md.include_background = false;
  CHECK_REFUSED(softmax_dice, y, SoftmaxOverlapOptions<double>{}, md);
  SoftmaxTverskyOptions<double> mt;
  mt.beta = 0.8;
  CHECK_REFUSED(softmax_tversky, y, SoftmaxTverskyOptions<double>{}, mt);
  GeneralizedDiceOptions<double> gd;
  gd.w_type = GeneralizedDiceWeight::simple;
  CHECK_REFUSED(generalized_dice, y, GeneralizedDiceOptions<double>{}, gd);
  BceDiceOptions<double> bd;
  bd.bce_weight = 0.5;
  CHECK_REFUSED(bce_dice, z, BceDiceOptions<double>{}, bd);
  CeDiceOptions<double> cd;
  cd.ce.label_smoothing = 0.1;  // a term's option
  CHECK_REFUSED(ce_dice, y, CeDiceOptions<double>{}, cd);
  DiceFocalOptions<double> df;
  df.focal.gamma = 1.0;
  CHECK_REFUSED(dice_focal, y, DiceFocalOptions<double>{}, df);

#undef CHECK_REFUSED

  // finalize's own bad option values are named before the digest is compared.
  Tensor<double> g0;
  SoftmaxOverlapOptions<double> both;
  both.log = true;
  both.clamp = true;
  CHECK(testing::error_of([&] {
          softmax_dice_finalize(x, y, softmax_dice_statistics(x, y), g0, both);
        }) == "softmax_dice_finalize: options.log and options.clamp are both set; choose one");
  SoftDiceOptions<double> negative;
  negative.smooth_dr = -1.0;
  CHECK(testing::error_of([&] {
          soft_dice_finalize(x, z, soft_dice_statistics(x, z), g0, negative);
        }) == "soft_dice_finalize: options.smooth_dr is -1; it must be finite and >= 0");
  CrossEntropyOptions<double> smoothing;
  smoothing.label_smoothing = 2.0;
  CHECK(testing::error_of([&] {
          cross_entropy_finalize(x, y, cross_entropy_statistics(x, y), g0, smoothing);
        }) == "cross_entropy_finalize: options.label_smoothing is 2; it must be in [0, 1]");
  // So are a combined loss's first-term values (statistics made with valid options).
  CeDiceOptions<double> ce_smoothing;
  ce_smoothing.ce.label_smoothing = 2.0;
  CHECK(testing::error_of(
            [&] { ce_dice_finalize(x, y, ce_dice_statistics(x, y), g0, ce_smoothing); }) ==
        "ce_dice_finalize: in the cross-entropy term: cross_entropy_finalize: "
        "options.label_smoothing is 2; it must be in [0, 1]");
  const auto p =
      testing::uniform<double>(kShape, 402, 0.0, 1.0);  // probabilities need not sum to 1
  CeDiceOptions<double> ce_ignore;
  ce_ignore.ce.ignore_index = 1;
  ce_ignore.dice.ignore_index = 1;
  CHECK(testing::error_of([&] { ce_dice_finalize(x, p, ce_dice_statistics(x, p), g0, ce_ignore); })
            .rfind("ce_dice_finalize: in the cross-entropy term: cross_entropy_finalize: "
                   "options.ignore_index is 1; with probability targets it must be negative",
                   0) == 0);
  DiceFocalOptions<double> focal_gamma;
  focal_gamma.focal.gamma = -1.0;
  CHECK(testing::error_of(
            [&] { dice_focal_finalize(x, y, dice_focal_statistics(x, y), g0, focal_gamma); }) ==
        "dice_focal_finalize: in the focal term: softmax_focal_finalize: options.gamma is -1; "
        "it must be finite and >= 0");

  // The digest sees a tensor's shape, not its values: other values of the same shape are taken.
  BceWithLogitsOptions<double> other_values;
  other_values.pos_weight = Tensor<double>::full({3}, 5.0);
  CHECK(bce_with_logits_statistics(x, z, bce).options ==
        bce_with_logits_statistics(x, z, other_values).options);
  // Statistics without a digest (0: built by hand) are taken whatever the options.
  ShardStatistics by_hand;
  by_hand.global = cross_entropy_statistics(x, y).global;
  Tensor<double> g;
  CHECK(testing::error_of([&] { cross_entropy_finalize(x, y, by_hand, g, ce); }).empty());
  // A combined loss's statistics carry its own options' digest, not a term's.
  CHECK(ce_dice_statistics(x, y).options != cross_entropy_statistics(x, y).options);
}
