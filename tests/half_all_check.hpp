// Shared by tests/test_half_all.cpp (CPU) and tests/test_cuda_half_all.cpp (CUDA): the contract
// of the 16-bit path (losses/half_logits.hpp) checked on a registry entry's 16-bit problem
// (registry::HalfProblem): every public form of the 16-bit call against the float loss on the
// widened inputs, on the problem's device: the double value equal bit for bit, every 16-bit
// tensor (forward, backward, gradient, value tensor) that float result rounded to nearest even
// once, bit for bit and independently the nearest representable value.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include <segloss/segloss.hpp>

namespace segloss::testing::half_all {

template <class H>
const char* type_name() {
  return std::is_same_v<H, float16> ? "float16" : "bfloat16";
}

inline bool same_double(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

template <class H>
bool same_bits16(const Tensor<H>& a, const Tensor<H>& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape()) return false;
  return std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(H)) == 0;
}

// The elements of got that are not want rounded to nearest even into H: neither the bits of
// H(want) (core/half.hpp's rounding) nor, checked independently, the representable value
// nearest to want (no neighbouring 16-bit value closer; Inf only beyond the largest finite
// value; NaN for NaN). -1 when the shapes differ.
template <class H>
int64_t not_rounded(const Tensor<H>& got, const Tensor<float>& want) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return -1;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float w = want[i];
    const H g = got[i];
    const float gf = static_cast<float>(g);
    if (std::isnan(w)) {
      bad += !std::isnan(gf);
      continue;
    }
    if (g.bits != H(w).bits) {
      ++bad;
      continue;
    }
    if (std::isinf(gf)) continue;  // H(w)'s own: the nearest check below needs finite neighbours
    const uint16_t mag = g.bits & 0x7fff, sign = g.bits & 0x8000;
    const float away = static_cast<float>(H::from_bits(static_cast<uint16_t>(sign | (mag + 1))));
    const float toward =
        mag == 0 ? static_cast<float>(H::from_bits(static_cast<uint16_t>((sign ^ 0x8000) | 1)))
                 : static_cast<float>(H::from_bits(static_cast<uint16_t>(sign | (mag - 1))));
    const double d = std::fabs(static_cast<double>(gf) - w);
    if (d > std::fabs(static_cast<double>(toward) - w) ||
        (std::isfinite(away) && d > std::fabs(static_cast<double>(away) - w)))
      ++bad;
  }
  return bad;
}

template <class H>
int64_t nonzero(const Tensor<H>& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += (t[i].bits & 0x7fff) != 0;
  return n;
}

// The 16-bit results of a problem's calls (on the CPU).
template <class H>
struct Results {
  Tensor<H> forward, backward;
  double value = 0;                    // value_and_grad's double (mean and sum)
  Tensor<H> grad;                      // its gradient
  Tensor<H> value_tensor, value_grad;  // the form writing the value into a tensor
};

// Checks the contract on p (every form; for reduction none, the value_and_grad forms raise the
// float loss's error) and returns the 16-bit results.
template <class H>
Results<H> check_contract(const registry::HalfProblem<H>& p) {
  INFO(type_name<H>());
  const Tensor<H>& x = p.input;
  const Tensor<float> xf = to_float(x);
  Results<H> r;
  r.forward = p.forward(x);
  CHECK(not_rounded(r.forward, p.forward_float(xf)) == 0);
  r.backward = p.backward(x, p.grad_out);
  CHECK(not_rounded(r.backward, p.backward_float(xf, to_float(p.grad_out))) == 0);
  CHECK(nonzero(r.backward) > 0);  // a gradient that can show a rounding error
  if (!p.reduced) {
    std::string want, got;
    try {
      Tensor<float> g;
      p.value_and_grad_float(xf, g);
    } catch (const Error& e) {
      want = e.what();
    }
    try {
      Tensor<H> g;
      p.value_and_grad(x, g);
    } catch (const Error& e) {
      got = e.what();
    }
    CHECK(!want.empty());
    CHECK(got == want);
    return r;
  }
  Tensor<float> gf;
  const double vf = p.value_and_grad_float(xf, gf);
  r.value = p.value_and_grad(x, r.grad);
  INFO("value: 16-bit ", r.value, ", float ", vf);
  CHECK(same_double(r.value, vf));
  CHECK(not_rounded(r.grad, gf) == 0);
  const ValueAndGrad<H> vg = p.value_and_grad_returned(x);
  CHECK(same_double(vg.value, vf));
  CHECK(same_bits16(vg.grad, r.grad));
  Tensor<float> gv, vv;
  p.value_and_grad_value_float(xf, gv, vv);
  p.value_and_grad_value(x, r.value_grad, r.value_tensor);
  CHECK(not_rounded(r.value_tensor, vv) == 0);
  CHECK(not_rounded(r.value_grad, gv) == 0);
  return r;
}

template <class H>
registry::HalfProblem<H> make(const registry::Entry& e, const Shape& shape, uint64_t seed,
                              Device d) {
  if constexpr (std::is_same_v<H, float16>)
    return e.make_float16_on(shape, seed, d);
  else
    return e.make_bfloat16_on(shape, seed, d);
}

}  // namespace segloss::testing::half_all
