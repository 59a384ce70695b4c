// Small helpers shared by the tests: seeded random tensors, and a guard for the library's test
// seams.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <segloss/segloss.hpp>

namespace segloss::testing {

template <class T>
Tensor<T> randn(const Shape& s, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  auto t = Tensor<T>::empty(s);
  for (auto& v : t) v = static_cast<T>(d(rng));
  return t;
}

template <class T>
Tensor<T> uniform(const Shape& s, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  auto t = Tensor<T>::empty(s);
  for (auto& v : t) v = static_cast<T>(d(rng));
  return t;
}

// A binary mask with roughly `fraction` ones.
template <class T>
Tensor<T> mask(const Shape& s, uint64_t seed, double fraction = 0.4) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution d(fraction);
  auto t = Tensor<T>::empty(s);
  for (auto& v : t) v = d(rng) ? T(1) : T(0);
  return t;
}

// Labels in [0, classes), with about `ignored` of them set to `ignore` (a value outside [0, C),
// or a class that is then ignored).
template <class L>
Tensor<L> labels(const Shape& s, int64_t classes, uint64_t seed, double ignored = 0.0,
                 int64_t ignore = -100) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, classes - 1);
  std::bernoulli_distribution skip(ignored);
  auto t = Tensor<L>::empty(s);
  for (auto& v : t) v = static_cast<L>(skip(rng) ? ignore : pick(rng));
  return t;
}

// Class probabilities (N, C, spatial...): uniform values in [0, 1), each pixel's C values
// divided by their sum.
template <class T>
Tensor<T> normalized_uniform(const Shape& s, uint64_t seed) {
  auto q = uniform<T>(s, seed, 0.0, 1.0);
  const int64_t C = s[1], px = s.numel_from(2);
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < px; ++j) {
      double sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += static_cast<double>(q[(i * C + c) * px + j]);
      for (int64_t c = 0; c < C; ++c) q[(i * C + c) * px + j] /= static_cast<T>(sum);
    }
  return q;
}

template <class To, class From>
Tensor<To> cast(const Tensor<From>& t) {
  auto r = Tensor<To>::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) r[i] = static_cast<To>(t[i]);
  return r;
}

// Sets a variable (a library test seam such as cpu::stream_gradient_bytes or
// cpu::gather_offset_limit) for the guard's lifetime and restores the value it had, also when a
// check throws out of the scope.
template <class T>
class ScopedValue {
 public:
  ScopedValue(T& variable, T value) : variable_(variable), saved_(variable) {
    variable_ = std::move(value);
  }
  ~ScopedValue() { variable_ = std::move(saved_); }
  ScopedValue(const ScopedValue&) = delete;
  ScopedValue& operator=(const ScopedValue&) = delete;

 private:
  T& variable_;
  T saved_;
};

// Bitwise equality of two numbers, or of two defined tensors of one shape on any device (copied
// to the host). The only definition in the tests: two templates of one name in segloss::testing
// with different bodies break the one-definition rule, and at -O0 (SEGLOSS_TEST_COMPILE_OPTIONS)
// the linker kept a host-only copy that read the CUDA emulator's device memory and crashed.
template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}
template <class T>
bool same_bits(const Tensor<T>& a_any, const Tensor<T>& b_any) {
  if (!a_any.defined() || !b_any.defined()) return false;
  const Tensor<T> a = a_any.to(Device::cpu), b = b_any.to(Device::cpu);
  if (a.shape() != b.shape()) return false;
  return std::equal(a.begin(), a.end(), b.begin(),
                    [](T x, T y) { return std::memcmp(&x, &y, sizeof(T)) == 0; });
}

// The message of the segloss::Error that f raises, or "" when it raises none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The thread counts a thread-invariance test runs at: `counts` where the library runs OpenMP
// threads; {1} where it is serial (SEGLOSS_OPENMP=OFF, as in CI's sanitizer stages), since
// set_num_threads changes nothing there and every count would repeat the same serial run.
inline std::vector<int> thread_counts(std::initializer_list<int> counts) {
  const int saved = num_threads();
  set_num_threads(2);
  const bool serial = num_threads() == 1;
  set_num_threads(saved);
  if (serial) return {1};
  return std::vector<int>(counts);
}

}  // namespace segloss::testing
