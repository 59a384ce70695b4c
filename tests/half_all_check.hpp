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
#include <vector>

#include <segloss/segloss.hpp>

#include "helpers.hpp"

namespace segloss::testing::half_all {

template <class H>
const char* type_name() {
  return std::is_same_v<H, float16> ? "float16" : "bfloat16";
}

inline bool same_double(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
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
  CHECK(same_bits(vg.grad, r.grad));
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

// The statistics / finalize split with 16-bit logits (docs/distributed.md), default options: the
// statistics are the float split's on the widened inputs (the doubles bit for bit); finalize of
// two such shards (global doubled): the value the float finalize's, the gradient that float
// gradient rounded once.
template <class U>
auto widened(const Tensor<U>& t) {
  if constexpr (kHalf<U>)
    return to_float(t);
  else
    return t;
}

inline bool same_doubles(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

template <class H>
struct SplitResults {
  std::vector<double> global, local;
  double value = 0;
  Tensor<H> grad;  // on the CPU
};

template <class H, class Tgt, class S, class F>
SplitResults<H> check_split(const char* name, S statistics, F finalize, const Tensor<H>& x,
                            const Tgt& t) {
  INFO(name, " split (", type_name<H>(), ")");
  const auto st = statistics(x, t);
  const auto stf = statistics(to_float(x), widened(t));
  CHECK(!st.global.empty());
  CHECK(same_doubles(st.global, stf.global));
  CHECK(same_doubles(st.local, stf.local));
  SplitResults<H> r;
  r.global = st.global;
  r.local = st.local;
  // Two shards of these statistics: global doubled (every loss's global is a sum over shards).
  auto reduced = st;
  auto reduced_f = stf;
  for (auto& v : reduced.global) v *= 2;
  for (auto& v : reduced_f.global) v *= 2;
  Tensor<H> g;
  r.value = finalize(x, t, reduced, g);
  Tensor<float> gf;
  const double vf = finalize(to_float(x), widened(t), reduced_f, gf);
  CHECK(same_double(r.value, vf));
  r.grad = g.to(Device::cpu);
  CHECK(not_rounded(r.grad, gf.to(Device::cpu)) == 0);
  CHECK(nonzero(r.grad) > 0);
  return r;
}

#define SEGLOSS_HALF_SPLIT_CALLS(NAME)                                                             \
#NAME,                                                                                           \
      [](const auto& x,                                                                            \
         const auto&                                                                               \
             t) { return NAME##_statistics(x, t); },                                               \
                                                  [](const auto& x, const auto& t, const auto& st, \
                                                     auto&                                         \
                                                         g) { return NAME##_finalize(x, t, st, g); }

// Calls check(name, statistics, finalize, x, target) for every loss with a split, its inputs
// on device d: a 16-bit target like the logits, int64 / int32 labels, 16-bit probabilities.
template <class H, class C>
void for_each_split(Device d, C&& check) {
  const Shape s{2, 3, 5, 6};
  const auto x = to_half<H>(testing::randn<float>(s, 21, 2.0)).to(d);
  const auto z = to_half<H>(testing::mask<float>(s, 22)).to(d);
  const auto q = to_half<H>(testing::normalized_uniform<float>(s, 23)).to(d);
  const auto y = testing::labels<int64_t>(s.without(1), 3, 24, 0.1, -100).to(d);
  const auto y32 = testing::labels<int32_t>(s.without(1), 3, 25).to(d);
  check(SEGLOSS_HALF_SPLIT_CALLS(bce_with_logits), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(sigmoid_focal), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(soft_dice), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(soft_jaccard), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(tversky), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(bce_dice), x, z);
  check(SEGLOSS_HALF_SPLIT_CALLS(cross_entropy), x, y);
  check(SEGLOSS_HALF_SPLIT_CALLS(cross_entropy), x, q);
  check(SEGLOSS_HALF_SPLIT_CALLS(softmax_dice), x, y32);
  check(SEGLOSS_HALF_SPLIT_CALLS(softmax_dice), x, q);
  check(SEGLOSS_HALF_SPLIT_CALLS(softmax_jaccard), x, y);
  check(SEGLOSS_HALF_SPLIT_CALLS(softmax_tversky), x, q);
  check(SEGLOSS_HALF_SPLIT_CALLS(generalized_dice), x, y);
  check(SEGLOSS_HALF_SPLIT_CALLS(generalized_dice), x, q);
  check(SEGLOSS_HALF_SPLIT_CALLS(ce_dice), x, y32);
  check(SEGLOSS_HALF_SPLIT_CALLS(ce_dice), x, q);
  check(SEGLOSS_HALF_SPLIT_CALLS(softmax_focal), x, y);
  check(SEGLOSS_HALF_SPLIT_CALLS(dice_focal), x, y);
}
constexpr int kSplitCalls = 18;

}  // namespace segloss::testing::half_all
