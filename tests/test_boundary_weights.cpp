// boundary_weights: the kernel-size rule, the running box sums against a direct O(k^d) box sum
// (many bands, large k, volumes), the structure of known masks, normalization, NaN, thread-count
// independence, and bad input. Golden values from PyTorch are in test_golden_boundary_weights.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace segloss;

namespace {

// The indicator by the definition: the window sum in double over the in-range pixels (zero
// padding), a = T(s) / T(k^d), compared in T.
template <class T>
std::vector<int> direct_indicator(const Tensor<T>& m, int k, double low, double high) {
  const Shape& s = m.shape();
  const bool vol = s.rank() == 5;
  const int64_t planes = s[0] * s[1], d = vol ? s[2] : 1, h = s[s.rank() - 2], w = s[s.rank() - 1];
  const int r = k / 2;
  const T div = static_cast<T>(vol ? double(k) * k * k : double(k) * k);
  std::vector<int> ind(static_cast<size_t>(m.numel()));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t z = 0; z < d; ++z)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          double sum = 0.0;
          const int rz = vol ? r : 0;
          for (int64_t zz = z - rz; zz <= z + rz; ++zz)
            for (int64_t yy = y - r; yy <= y + r; ++yy)
              for (int64_t xx = x - r; xx <= x + r; ++xx)
                if (zz >= 0 && zz < d && yy >= 0 && yy < h && xx >= 0 && xx < w)
                  sum += static_cast<double>(m[((p * d + zz) * h + yy) * w + xx]);
          const T a = static_cast<T>(sum) / div;
          ind[static_cast<size_t>(((p * d + z) * h + y) * w + x)] =
              a >= static_cast<T>(low) && a <= static_cast<T>(high);
        }
  return ind;
}

// Checks w = levels[ind] with the normalization of the header, and returns the edge count.
template <class T>
int64_t check_against_direct(const Tensor<T>& m, const BoundaryWeightOptions& o, int k) {
  const auto w = boundary_weights(m, o);
  const auto ind = direct_indicator(m, k, o.low, o.high);
  int64_t edges = 0;
  for (int v : ind) edges += v;
  const double n = static_cast<double>(m.numel());
  const double total = o.normalize ? n + o.boost * static_cast<double>(edges) : n;
  const double off = o.normalize ? 1.0 / total * n : 1.0;
  const double on = o.normalize ? (1.0 + o.boost) / total * n : 1.0 + o.boost;
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < m.numel(); ++i) {
    const T want = static_cast<T>(ind[static_cast<size_t>(i)] ? on : off);
    if (w[i] != want) {
      if (first < 0) first = i;
      ++bad;
    }
  }
  CHECK_MESSAGE(bad == 0, bad, " of ", m.numel(), " weights differ from the direct box sum; first ",
                first);
  return edges;
}

}  // namespace

TEST_CASE("boundary_weights: kernel size from the height, the Carvana table exactly") {
  CHECK(boundary_kernel_size(128) == 11);
  CHECK(boundary_kernel_size(256) == 21);
  CHECK(boundary_kernel_size(512) == 21);
  CHECK(boundary_kernel_size(1024) == 41);
  CHECK(boundary_kernel_size(1280) == 51);
  // Documented examples of the interpolation rule.
  CHECK(boundary_kernel_size(64) == 5);
  CHECK(boundary_kernel_size(100) == 9);
  CHECK(boundary_kernel_size(384) == 21);
  CHECK(boundary_kernel_size(768) == 31);
  CHECK(boundary_kernel_size(2048) == 81);
  CHECK(boundary_kernel_size(1) == 1);
  CHECK(boundary_kernel_size(2) == 1);
  CHECK(boundary_kernel_size(3) == 3);
  CHECK(boundary_kernel_size(20) == 3);
  // Odd, within [min(3, H), H], and never decreasing with the height.
  int previous = 1;
  for (int64_t h = 1; h <= 4000; ++h) {
    const int k = boundary_kernel_size(h);
    REQUIRE(k % 2 == 1);
    REQUIRE(k <= h);
    REQUIRE(k >= std::min<int64_t>(3, h % 2 ? h : h - 1));
    REQUIRE(k >= previous);
    previous = k;
  }
  CHECK_THROWS_WITH_AS(boundary_kernel_size(0),
                       "boundary_kernel_size: height is 0; it must be >= 1", Error);
}

TEST_CASE("boundary_weights: running box sums equal the direct box sum (2D, bands, large k)") {
  for (int k : {1, 3, 5, 11, 21, 51}) {
    CAPTURE(k);
    BoundaryWeightOptions o;
    o.kernel_size = k;
    // 300 rows: several bands of rows per plane for every k; non-square; 2 channels.
    const Shape s{1, 2, 300, 77};
    const auto m = testing::mask<double>(s, 100 + k, 0.02);
    check_against_direct(m, o, k);
    check_against_direct(testing::cast<float>(m), o, k);
  }
}

TEST_CASE("boundary_weights: running box sums equal the direct box sum (3D, bands of slices)") {
  for (int k : {1, 3, 5, 9}) {
    CAPTURE(k);
    BoundaryWeightOptions o;
    o.kernel_size = k;
    const Shape s{2, 1, 45, 11, 13};  // 45 slices: several bands for k <= 9
    const auto m = testing::mask<double>(s, 200 + k, 0.05);
    check_against_direct(m, o, k);
    check_against_direct(testing::cast<float>(m), o, k);
  }
}

TEST_CASE("boundary_weights: soft masks, other bands, boost and no normalization") {
  const Shape s{2, 1, 70, 33};
  const auto m = testing::uniform<double>(s, 7, 0.0, 0.05);
  BoundaryWeightOptions o;
  o.kernel_size = 7;
  o.low = 0.02;
  o.high = 0.03;
  o.boost = 4.0;
  const int64_t edges = check_against_direct(m, o, 7);
  CHECK(edges > 0);
  CHECK(edges < s.numel());
  o.normalize = false;
  o.boost = -0.5;
  check_against_direct(m, o, 7);
  o.kernel_size = 1;  // a = m itself
  check_against_direct(m, o, 1);
}

TEST_CASE("boundary_weights: an all-zero mask weighs 1 everywhere") {
  for (const Shape& s : {Shape{2, 1, 16, 16}, Shape{1, 2, 5, 6, 7}}) {
    const auto w = boundary_weights(Tensor<float>::zeros(s));
    for (float v : w) REQUIRE(v == 1.0f);
  }
}

TEST_CASE("boundary_weights: an all-one mask marks the k/2 pixels along the image border") {
  // With zero padding a pixel at distance j < r from the border averages (r + 1 + j) / k < 0.99
  // along that axis; everything deeper averages 1 > 0.99.
  const int k = 5, r = 2;
  BoundaryWeightOptions o;
  o.kernel_size = k;
  o.normalize = false;
  const Shape s{1, 1, 11, 9};
  const auto w = boundary_weights(Tensor<double>::full(s, 1.0), o);
  for (int64_t y = 0; y < 11; ++y)
    for (int64_t x = 0; x < 9; ++x) {
      const bool border = y < r || x < r || y >= 11 - r || x >= 9 - r;
      CAPTURE(y);
      CAPTURE(x);
      CHECK(w[y * 9 + x] == (border ? 3.0 : 1.0));
    }
  // Normalized: the weights sum to the number of elements.
  o.normalize = true;
  const auto wn = boundary_weights(Tensor<double>::full(s, 1.0), o);
  double sum = 0;
  for (double v : wn) sum += v;
  CHECK(sum == doctest::Approx(static_cast<double>(s.numel())).epsilon(1e-14));
}

TEST_CASE("boundary_weights: normalized weights sum to numel over the whole batch") {
  const Shape s{3, 2, 40, 24};
  auto m = testing::mask<float>(s, 5, 0.3);
  for (int64_t i = 0; i < s.numel_from(2); ++i) m[i] = 0.f;  // plane 0 has no edge
  BoundaryWeightOptions o;
  o.kernel_size = 5;
  const auto w = boundary_weights(m, o);
  double sum = 0;
  for (float v : w) sum += v;
  CHECK(sum == doctest::Approx(static_cast<double>(s.numel())).epsilon(1e-6));
  // Over the batch, not per plane: plane 0 (no edge) sums to less than its size.
  double first = 0;
  for (int64_t i = 0; i < s.numel_from(2); ++i) first += w[i];
  CHECK(first < 0.9 * static_cast<double>(s.numel_from(2)));
}

TEST_CASE("boundary_weights: 1-pixel-wide and 1x1 images with k = 1") {
  BoundaryWeightOptions o;
  o.kernel_size = 1;
  for (const Shape& s :
       {Shape{2, 1, 15, 1}, Shape{2, 1, 1, 15}, Shape{1, 1, 1, 1}, Shape{1, 1, 1, 1, 1}}) {
    CAPTURE(s);
    const auto w = boundary_weights(testing::mask<double>(s, 9), o);
    for (double v : w) CHECK(v == 1.0);  // a binary mask has no value in [0.01, 0.99]
  }
  // The default kernel fits itself into a narrow image (15 x 1: k = 1).
  const auto w = boundary_weights(testing::mask<double>({1, 1, 128, 1}, 10));
  for (double v : w) CHECK(v == 1.0);
  // A soft value in the band is an edge even with k = 1.
  const auto soft = Tensor<double>::from({0.0, 0.5, 1.0}, {1, 1, 3, 1});
  o.normalize = false;
  const auto ws = boundary_weights(soft, o);
  CHECK(ws[0] == 1.0);
  CHECK(ws[1] == 3.0);
  CHECK(ws[2] == 1.0);
}

TEST_CASE("boundary_weights: a NaN makes its plane NaN, or every weight when normalizing") {
  const Shape s{2, 1, 12, 10};
  auto m = testing::mask<double>(s, 11);
  m[5 * 10 + 4] = std::numeric_limits<double>::quiet_NaN();  // plane 0
  BoundaryWeightOptions o;
  o.kernel_size = 3;
  o.normalize = false;
  auto w = boundary_weights(m, o);
  for (int64_t i = 0; i < 120; ++i) REQUIRE(std::isnan(w[i]));
  for (int64_t i = 120; i < 240; ++i) REQUIRE(std::isfinite(w[i]));
  o.normalize = true;
  w = boundary_weights(m, o);
  for (double v : w) REQUIRE(std::isnan(v));
  // An infinity too, in a volume.
  auto v = testing::mask<float>({1, 2, 4, 5, 6}, 12);
  v[130] = std::numeric_limits<float>::infinity();
  o.normalize = false;
  const auto wv = boundary_weights(v, o);
  for (int64_t i = 0; i < 120; ++i) REQUIRE(std::isfinite(wv[i]));
  for (int64_t i = 120; i < 240; ++i) REQUIRE(std::isnan(wv[i]));
}

TEST_CASE("boundary_weights: bit-identical at any thread count (soft mask, many bands)") {
  const Shape s{3, 2, 200, 50};
  const auto m = testing::uniform<double>(s, 13, 0.0, 0.03);
  BoundaryWeightOptions o;
  o.kernel_size = 5;
  o.low = 0.014;
  o.high = 0.016;
  const int before = num_threads();
  set_num_threads(1);
  const auto ref = boundary_weights(m, o);
  for (int t : {2, 3, 8}) {
    set_num_threads(t);
    const auto w = boundary_weights(m, o);
    for (int64_t i = 0; i < s.numel(); ++i) REQUIRE(w[i] == ref[i]);
  }
  set_num_threads(before);
}

TEST_CASE("boundary_weights: the caller's buffer is filled and reused") {
  const Shape s{2, 1, 20, 20};
  const auto m = testing::mask<float>(s, 14);
  Tensor<float> buf;
  boundary_weights(m, buf);
  REQUIRE(buf.shape() == s);
  const auto ref = boundary_weights(m);
  Tensor<float> again = Tensor<float>::full(s, -7.f);
  boundary_weights(m, again);
  for (int64_t i = 0; i < s.numel(); ++i) {
    CHECK(buf[i] == ref[i]);
    CHECK(again[i] == ref[i]);
  }
}

TEST_CASE("boundary_weights: bad input") {
  const auto m = testing::mask<float>({2, 1, 16, 8}, 15);
  BoundaryWeightOptions o;
  o.kernel_size = 4;
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.kernel_size is 4; it must be odd (the box is "
                       "centred on each pixel)",
                       Error);
  o.kernel_size = 9;
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.kernel_size 9 is larger than the mask's spatial "
                       "extent 8 (axis 3 of (2,1,16,8))",
                       Error);
  o.kernel_size = -3;
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.kernel_size is -3; it must be 0 (from the "
                       "height) or an odd number >= 1",
                       Error);
  o = {};
  o.low = 0.6;
  o.high = 0.4;
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.low 0.6 is greater than options.high 0.4", Error);
  o = {};
  o.high = std::nan("");
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.low is 0.01 and options.high is nan; neither "
                       "may be NaN",
                       Error);
  o = {};
  o.boost = -1.0;
  CHECK_THROWS_WITH_AS(boundary_weights(m, o),
                       "boundary_weights: options.boost is -1; it must be finite and > -1 (every "
                       "weight 1 + boost positive)",
                       Error);
  o.boost = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(boundary_weights(m, o), Error);
  CHECK_THROWS_WITH_AS(boundary_weights(testing::mask<float>({2, 1, 16}, 1)),
                       "boundary_weights: mask (2,1,16) has rank 3; expected (N, C, H, W) or (N, "
                       "C, D, H, W)",
                       Error);
  CHECK_THROWS_WITH_AS(boundary_weights(Tensor<float>()), "boundary_weights: mask is undefined",
                       Error);
  CHECK_THROWS_AS(boundary_weights(Tensor<float>::zeros({2, 1, 0, 4})), Error);
  // Volumes: the kernel must fit the depth too.
  o = {};
  o.kernel_size = 5;
  CHECK_THROWS_WITH_AS(boundary_weights(testing::mask<double>({1, 1, 3, 9, 9}, 2), o),
                       "boundary_weights: options.kernel_size 5 is larger than the mask's spatial "
                       "extent 3 (axis 2 of (1,1,3,9,9))",
                       Error);
  // The output buffer.
  Tensor<float> wrong = Tensor<float>::zeros({2, 1, 16, 9});
  CHECK_THROWS_WITH_AS(boundary_weights(m, wrong),
                       "boundary_weights: weights (2,1,16,9) does not match mask (2,1,16,8)",
                       Error);
  Tensor<float> same = m;
  CHECK_THROWS_WITH_AS(boundary_weights(m, same),
                       "boundary_weights: weights shares its memory with the mask; the box sums "
                       "need the mask intact",
                       Error);
  // A buffer that overlaps the mask at an offset (a row on, a row before) is refused too: it was
  // taken, and every weight came out wrong. One that only touches it is taken.
  Tensor<float> buffer = Tensor<float>::zeros({3 * m.numel()});
  auto mask_in_buffer = Tensor<float>::view(buffer.data() + m.numel(), m.shape());
  mask_in_buffer.copy_from(m);
  const auto apart = boundary_weights(m);
  for (const int64_t offset : {int64_t{8}, int64_t{-8}, int64_t{1}}) {
    CAPTURE(offset);
    Tensor<float> shifted = Tensor<float>::view(mask_in_buffer.data() + offset, m.shape());
    CHECK_THROWS_WITH_AS(boundary_weights(mask_in_buffer, shifted),
                         "boundary_weights: weights shares its memory with the mask; the box sums "
                         "need the mask intact",
                         Error);
  }
  for (const int64_t offset : {m.numel(), -m.numel()}) {
    CAPTURE(offset);
    Tensor<float> touching = Tensor<float>::view(mask_in_buffer.data() + offset, m.shape());
    boundary_weights(mask_in_buffer, touching);
    CHECK(testing::same_bits(touching, apart));
  }
}
