// float16 and bfloat16 (core/half.hpp): every bit pattern against PyTorch, and float -> 16 bits on
// every rounding class.
//
// tests/golden/half.txt is written by tests/golden/generate_half.py from torch's own conversions
// (README.md in that folder). The exhaustive checks hash segloss's float results block by block
// (256 blocks of 256 patterns) exactly as the generator hashes torch's, so a mismatch names its
// block; the explicit tables then show the value. Independently of torch, float -> 16 bits is
// checked against a brute-force nearest-even search in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "golden_reader.hpp"

using namespace segloss;
using namespace segloss::golden;

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint32_t fnv1a_step(uint32_t h, uint32_t word) {
  return (h ^ word) * 16777619u;
}

template <class H>
float value_of(uint16_t b) {
  return static_cast<float>(H::from_bits(b));
}

const GoldenCase& find_case(const GoldenFile& f, const std::string& name) {
  for (const auto& c : f.cases)
    if (c.name == name) return c;
  FAIL("no case " << name << " in " << f.path);
  return f.cases.front();
}

template <class H>
void check_every_pattern(const GoldenCase& c) {
  const GoldenTensor& hashes = c.tensor("block_hash");
  REQUIRE(hashes.values.size() == 256);
  int bad_blocks = 0;
  for (uint32_t block = 0; block < 256; ++block) {
    uint32_t h = 2166136261u;
    for (uint32_t k = 0; k < 256; ++k)
      h = fnv1a_step(h, bits_of(value_of<H>(static_cast<uint16_t>(block * 256 + k))));
    if (h != static_cast<uint32_t>(hashes.values[block])) {
      ++bad_blocks;
      MESSAGE(c.name << ": block " << block << " (patterns 0x" << std::hex << block * 256
                     << "..) differs from torch");
    }
  }
  CHECK(bad_blocks == 0);
  const auto& in = c.tensor("edge_in").values;
  const auto& out = c.tensor("edge_out").values;
  REQUIRE(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto b = static_cast<uint16_t>(in[i]);
    INFO(c.name << " pattern 0x" << std::hex << b);
    CHECK(bits_of(value_of<H>(b)) == static_cast<uint32_t>(out[i]));
  }
}

template <class H>
void check_from_float(const GoldenCase& c, bool nan_bits_exact) {
  const auto& in = c.tensor("in").values;
  const auto& out = c.tensor("out").values;
  REQUIRE(in.size() == out.size());
  REQUIRE(in.size() > 1000);
  int nans = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const float f = float_of(static_cast<uint32_t>(in[i]));
    const H h(f);
    INFO(c.name << " input 0x" << std::hex << static_cast<uint32_t>(in[i]) << " torch 0x"
                << static_cast<uint32_t>(out[i]) << " segloss 0x" << h.bits);
    if (std::isnan(f) && !nan_bits_exact) {
      ++nans;
      CHECK(std::isnan(static_cast<float>(h)));
      CHECK(std::signbit(static_cast<float>(h)) == std::signbit(f));  // segloss keeps the sign
    } else {
      CHECK(h.bits == static_cast<uint16_t>(out[i]));
    }
  }
  if (!nan_bits_exact) CHECK(nans >= 7);
}

// The nearest 16-bit value to f by brute force over the finite patterns of one sign, ties to the
// even pattern; values beyond the largest finite by at least half its last step go to Inf.
template <class H>
uint16_t nearest(float f, const std::vector<double>& positive) {
  const double a = std::fabs(static_cast<double>(f));
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const auto it = std::lower_bound(positive.begin(), positive.end(), a);
  const size_t hi = static_cast<size_t>(it - positive.begin());
  if (hi == positive.size()) return static_cast<uint16_t>(sign | (positive.size()));  // Inf
  if (positive[hi] == a || hi == 0) return static_cast<uint16_t>(sign | hi);
  const double dlo = a - positive[hi - 1], dhi = positive[hi] - a;
  if (dlo < dhi) return static_cast<uint16_t>(sign | (hi - 1));
  if (dhi < dlo) return static_cast<uint16_t>(sign | hi);
  return static_cast<uint16_t>(sign | ((hi - 1) % 2 == 0 ? hi - 1 : hi));
}

template <class H>
void check_nearest_even(uint16_t inf_bits, uint64_t seed) {
  // The finite non-negative values in bit order, which is also value order; then the value one
  // step beyond the largest (as if the exponent went on), whose halfway point is the overflow
  // threshold.
  std::vector<double> positive;
  for (uint32_t b = 0; b < inf_bits; ++b) positive.push_back(value_of<H>(static_cast<uint16_t>(b)));
  const double top = positive.back(), step = top - positive[positive.size() - 2];
  std::vector<double> extended = positive;
  extended.push_back(top + step);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  int checked = 0;
  for (int k = 0; k < 200000; ++k) {
    uint32_t u = rng();
    // Half the draws in the type's own range, near its patterns (where ties live).
    if (k % 2)
      u = (bits_of(value_of<H>(static_cast<uint16_t>(rng() % inf_bits))) & 0xffffe000u) |
          (rng() & 0x1fffu);
    const float f = float_of(u);
    if (!std::isfinite(f)) continue;
    uint16_t want = nearest<H>(f, extended);
    if ((want & 0x7fffu) >= positive.size())
      want = static_cast<uint16_t>((want & 0x8000) | inf_bits);
    const H h(f);
    INFO("input 0x" << std::hex << u);
    REQUIRE(h.bits == want);
    ++checked;
  }
  CHECK(checked > 150000);
}

}  // namespace

TEST_CASE("half: every float16 and bfloat16 bit pattern converts to float as torch does") {
  const GoldenFile f = load_golden("half.txt", "generate_half.py");
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  REQUIRE(f.cases.size() == 4);
  check_every_pattern<float16>(find_case(f, "float16_to_float"));
  check_every_pattern<bfloat16>(find_case(f, "bfloat16_to_float"));
}

TEST_CASE("half: float rounds to float16 and bfloat16 as torch does, on every rounding class") {
  const GoldenFile f = load_golden("half.txt", "generate_half.py");
  REQUIRE_MESSAGE(f.error.empty(), f.error);
  check_from_float<float16>(find_case(f, "float_to_float16"), /*nan_bits_exact=*/true);
  check_from_float<bfloat16>(find_case(f, "float_to_bfloat16"), /*nan_bits_exact=*/false);
}

TEST_CASE("half: float -> 16 bits is the nearest value, ties to even, by brute force") {
  check_nearest_even<float16>(0x7c00, 11);
  check_nearest_even<bfloat16>(0x7f80, 12);
}

TEST_CASE("half: every non-NaN pattern survives 16 bits -> float -> 16 bits") {
  int nan16 = 0, nanb = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const auto p = static_cast<uint16_t>(b);
    const float h = value_of<float16>(p), g = value_of<bfloat16>(p);
    if (std::isnan(h))
      ++nan16;
    else
      REQUIRE(float16(h).bits == p);
    if (std::isnan(g))
      ++nanb;
    else
      REQUIRE(bfloat16(g).bits == p);
  }
  CHECK(nan16 == 2 * 1023);  // exponent 31 with a non-zero fraction, both signs
  CHECK(nanb == 2 * 127);
  // NaNs stay NaN with their sign, and become quiet.
  CHECK(float16(std::nanf("")).bits == 0x7e00);
  CHECK(float16(-std::nanf("")).bits == 0xfe00);
  CHECK(bfloat16(-std::nanf("")).bits == 0xffc0);
  CHECK(bits_of(value_of<float16>(0x7c01)) == 0x7fc02000u);
  CHECK(std::isinf(static_cast<float>(float16(65520.0f))));
  CHECK(float16(65519.996f).bits == 0x7bff);
  CHECK(bfloat16(float_of(0x7f7f8000u)).bits == 0x7f80);  // rounds past the largest: Inf
}

TEST_CASE("half: Tensor<float16> and Tensor<bfloat16> hold 16-bit elements") {
  auto t = Tensor<float16>::zeros(Shape{2, 3});
  CHECK(t.numel() == 6);
  CHECK(t[5].bits == 0);
  auto b = Tensor<bfloat16>::full(Shape{4}, bfloat16(1.5f));
  CHECK(static_cast<float>(b[3]) == 1.5f);
  CHECK(sizeof(*b.data()) == 2);
}
