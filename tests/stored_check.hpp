// Checks shared by the tests of the losses that store an intermediate in the gradient buffer
// during their statistics pass and read it back in the gradient pass
// (tests/test_stored_sigmoid.cpp: exp(-|x|) of the binary overlap losses;
// tests/test_stored_softmax.cpp: p of the softmax overlap losses). A loss is given as its buffer
// form f(x, target, grad) -> value.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

#include <segloss/segloss.hpp>

#include "helpers.hpp"

namespace segloss::testing {

template <class T>
Tensor<T> copy_of(const Tensor<T>& t) {
  auto r = Tensor<T>::empty(t.shape());
  std::memcpy(r.data(), t.data(), sizeof(T) * static_cast<size_t>(t.numel()));
  return r;
}

// f with a buffer of its own (the stored path) and with a copy of the target as the buffer (the
// statistics pass must not store there, as the gradient pass reads the target again: the
// recomputing path). Checks that the two values are equal; returns the value and the two
// gradients for the caller to compare (bit for bit, or to the rounding of an FMA).
template <class T>
struct StoredAndRecomputed {
  double value;
  Tensor<T> stored, recomputed;
};
template <class T, class F>
StoredAndRecomputed<T> stored_and_recomputed(const F& f, const Tensor<T>& x, const Tensor<T>& t) {
  StoredAndRecomputed<T> r;
  r.value = f(x, t, r.stored);
  r.recomputed = copy_of(t);
  CHECK(f(x, r.recomputed, r.recomputed) == r.value);
  return r;
}

// f at 1 thread, then at 2 and 3 threads and in place on a copy of the logits (each pixel's
// stored value overwrites its logits): the same value and the same gradient bits each time.
// Restores the thread count.
template <class T, class U, class F>
void check_threads_and_in_place(const F& f, const Tensor<T>& x, const Tensor<U>& t) {
  const int before = num_threads();
  set_num_threads(1);
  Tensor<T> ref;
  const double v = f(x, t, ref);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    Tensor<T> g;
    CHECK(f(x, t, g) == v);
    CHECK(same_bits(g, ref));
  }
  set_num_threads(before);
  Tensor<T> in_place = copy_of(x);
  CHECK(f(in_place, t, in_place) == v);
  CHECK(same_bits(in_place, ref));
}

// Probabilities over the class axis of (N, C, S...) (a soft target).
template <class T>
Tensor<T> soft_target(const Shape& s, uint64_t seed) {
  auto t = testing::uniform<T>(s, seed, 0.0, 1.0);
  const int64_t N = s[0], C = s[1], S = s.numel_from(2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      T sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += t[(n * C + c) * S + i];
      for (int64_t c = 0; c < C; ++c) t[(n * C + c) * S + i] /= sum;
    }
  return t;
}

}  // namespace segloss::testing
