#include <doctest/doctest.h>

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
  }
}
