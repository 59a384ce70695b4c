#include <doctest/doctest.h>

#include <cstring>

#include <segloss/segloss.hpp>

using namespace segloss;

TEST_CASE("shape: extents, numel, str, without") {
  const Shape s{2, 3, 4, 5};
  CHECK(s.rank() == 4);
  CHECK(s.numel() == 120);
  CHECK(s.numel_from(2) == 20);
  CHECK(s.str() == "(2,3,4,5)");
  CHECK(s.without(1) == Shape{2, 4, 5});
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{}.str() == "()");
  CHECK_THROWS_WITH_AS(Shape({2, -1}), "Shape: extent -1 at axis 1 is negative", Error);
  CHECK_THROWS_AS(Shape({1, 1, 1, 1, 1, 1}), Error);
}

TEST_CASE("shape: 64-bit extents, and a product past 2^63 is an error") {
  const Shape s{3, 1, 65536, 65536};
  CHECK(s.numel() == int64_t{3} * 65536 * 65536);
  CHECK_THROWS_WITH_AS(Shape({int64_t{1} << 31, int64_t{1} << 31, 4}),
                       "Shape: extents (2147483648,2147483648) and 4 multiply past 2^63 - 1 "
                       "(zero extents left out)",
                       Error);
  // A zero extent makes the shape empty, but the other extents' products (numel_from) must
  // still be countable: reviewer's case, numel_from(1) of (0, 2^40, 2^40) was 2^80.
  CHECK_THROWS_WITH_AS(Shape({0, int64_t{1} << 40, int64_t{1} << 40}),
                       "Shape: extents (0,1099511627776) and 1099511627776 multiply past "
                       "2^63 - 1 (zero extents left out)",
                       Error);
  const Shape empty{0, int64_t{1} << 31, int64_t{1} << 31};
  CHECK(empty.numel() == 0);
  CHECK(empty.numel_from(1) == int64_t{1} << 62);
}

// Shape has no writable operator[] (a review, 2026-12-02: s[0] = -2; s[2] = -3 made a shape of
// numel() 6 that every later check took, and a CUDA kernel read outside its buffer); set()
// runs push_back's checks.
TEST_CASE("shape: set() checks the extent and the product") {
  Shape s{2, 1, 3};
  s.set(1, 4);
  CHECK(s == Shape{2, 4, 3});
  CHECK_THROWS_WITH_AS(s.set(0, -2), "Shape: extent -2 at axis 0 is negative", Error);
  CHECK(s == Shape{2, 4, 3});  // unchanged by the refused set
  CHECK_THROWS_WITH_AS(s.set(3, 1), "Shape::set: axis 3 is outside [0, 3) of (2,4,3)", Error);
  CHECK_THROWS_WITH_AS(s.set(-1, 1), doctest::Contains("axis -1 is outside"), Error);
  Shape big{1, 4, 1};
  CHECK_THROWS_WITH_AS(big.set(0, INT64_MAX), doctest::Contains("multiply past 2^63 - 1"), Error);
  s.set(2, 0);
  CHECK(s.numel() == 0);
}

TEST_CASE("tensor: integer label tensors") {
  auto labels = Tensor<int64_t>::from({0, 2, 1, -100}, {1, 2, 2});
  CHECK(labels.rank() == 3);
  CHECK(labels[3] == -100);
  std::vector<int32_t> buf = {3, 1, 4, 1, 5, 9};
  const auto v = Tensor<int32_t>::view(buf.data(), {1, 6});
  CHECK(v[5] == 9);
  const auto c = v.clone();
  buf[5] = 0;
  CHECK(c[5] == 9);
}

TEST_CASE("tensor: owning, copies share, clone copies") {
  auto t = Tensor<float>::zeros({2, 1, 3});
  CHECK(t.owns_memory());
  CHECK(t.numel() == 6);
  auto u = t;  // handle copy
  u[0] = 5.f;
  CHECK(t[0] == 5.f);
  auto c = t.clone();
  c[0] = 1.f;
  CHECK(t[0] == 5.f);
  CHECK(Tensor<int64_t>::full({4}, 7)[3] == 7);
  CHECK(Tensor<int32_t>::from({1, 2, 3}, {3})[2] == 3);
  CHECK_THROWS_WITH_AS(Tensor<double>::from({1, 2}, {3}),
                       "Tensor::from: values has 2 elements but shape (3) needs 3", Error);
}

TEST_CASE("tensor: views over caller memory") {
  std::vector<double> buf(8, 1.0);
  auto v = Tensor<double>::view(buf.data(), {2, 1, 4});
  CHECK_FALSE(v.owns_memory());
  CHECK(v.data() == buf.data());
  v[3] = 2.0;
  CHECK(buf[3] == 2.0);
  const std::vector<double>& cbuf = buf;
  auto cv = Tensor<double>::view(cbuf.data(), {8, 1, 1});
  CHECK(cv[3] == 2.0);
  CHECK_THROWS_WITH_AS(Tensor<float>::view(static_cast<float*>(nullptr), {2, 1, 4, 4}),
                       "Tensor::view: data is a null pointer for shape (2,1,4,4)", Error);
  CHECK_NOTHROW(Tensor<float>::view(static_cast<float*>(nullptr), {0, 1, 4}));
  // copy_from between views of one buffer: the same range is a no-op, ranges that only touch
  // are copied, an overlap at an offset is refused (undefined for std::copy and cudaMemcpy).
  std::vector<double> b(12);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<double>(i);
  const auto lo = Tensor<double>::view(b.data(), {6}), hi = Tensor<double>::view(b.data() + 6, {6});
  lo.copy_from(lo);
  hi.copy_from(lo);
  CHECK(b[11] == 5.0);
  const auto mid = Tensor<double>::view(b.data() + 3, {6});
  CHECK_THROWS_WITH_AS(mid.copy_from(lo),
                       "Tensor::copy_from: source and destination overlap at an offset (views of "
                       "one buffer); copy through a separate tensor",
                       Error);
  CHECK_THROWS_AS(lo.copy_from(mid), Error);
  CHECK(b[3] == 3.0);  // nothing copied
}

TEST_CASE("tensor: undefined and cuda") {
  Tensor<float> t;
  CHECK_FALSE(t.defined());
  CHECK(t.numel() == 0);
  CHECK_FALSE(t.clone().defined());
  if (!cuda::built()) {
    CHECK_THROWS_WITH_AS(
        Tensor<float>::zeros({1}, Device::cuda),
        "Tensor::empty: device cuda is not available: this build has no CUDA backend", Error);
  } else if (!cuda::available()) {
    CHECK_THROWS_WITH_AS(Tensor<float>::zeros({1}, Device::cuda),
                         doctest::Contains("Tensor::empty: cudaMalloc failed: "), Error);
  } else {
    const auto t = Tensor<float>::full({3}, 2.5f, Device::cuda);
    CHECK(t.device() == Device::cuda);
    const auto h = t.to(Device::cpu);
    CHECK(h[0] == 2.5f);
    CHECK(h[2] == 2.5f);
    // Filled on the device (2026-12-02; before, through a host tensor of the same size): every
    // element type, a memset for zeros (and -0.0 keeps its sign bit), an empty tensor.
    const auto every = [](const auto& d, auto v) {
      const auto c = d.to(Device::cpu);
      bool same = c.numel() > 0;
      for (int64_t i = 0; i < c.numel(); ++i) same = same && std::memcmp(&c[i], &v, sizeof(v)) == 0;
      return same;
    };
    CHECK(every(Tensor<double>::full({1000}, -3.25, Device::cuda), -3.25));
    CHECK(every(Tensor<double>::full({7}, -0.0, Device::cuda), -0.0));
    CHECK(every(Tensor<double>::zeros({7}, Device::cuda), 0.0));
    CHECK(every(Tensor<int64_t>::full({1001}, -100, Device::cuda), int64_t{-100}));
    CHECK(every(Tensor<int32_t>::full({5}, 255, Device::cuda), int32_t{255}));
    CHECK(every(Tensor<float16>::full({9}, float16(1.5f), Device::cuda), float16(1.5f)));
    CHECK(every(Tensor<bfloat16>::full({9}, bfloat16(-2.0f), Device::cuda), bfloat16(-2.0f)));
    CHECK(Tensor<float>::full({0, 3}, 1.0f, Device::cuda).numel() == 0);
  }
}
