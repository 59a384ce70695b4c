// segloss-accuracy: on large inputs (10^8 elements by default), the float32 loss values stay
// within 1e-5 relative of the float64 values computed on the same data (the float inputs cast
// to double). Checks bce_with_logits, soft_dice (one score over the whole tensor: the longest
// sum) and cross_entropy (2 classes). Prints one JSON line per loss and exits 1 when any
// relative difference exceeds the bound.
//
// Usage: segloss-accuracy [--elements 100000000] [--bound 1e-5]
//
// Why it holds: every kernel sums a chunk of at most 16384 elements (core/parallel.hpp), in
// float SIMD lanes at most that long, into a double slot; the slots add up in double. The float
// rounding error of a chunk is then bounded by its own length, not by 10^8.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

template <class To, class From>
Tensor<To> cast(const Tensor<From>& t) {
  auto r = Tensor<To>::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) r[i] = static_cast<To>(t[i]);
  return r;
}

bool report(const char* name, int64_t n, double f32, double f64, double bound, double ms) {
  const double rel = std::fabs(f32 - f64) / std::fabs(f64);
  std::printf(
      "{\"name\": \"%s\", \"elements\": %lld, \"float32\": %.10g, \"float64\": %.17g, "
      "\"rel_diff\": %.3e, \"bound\": %.0e, \"ok\": %s, \"ms\": %.0f}\n",
      name, static_cast<long long>(n), f32, f64, rel, bound, rel <= bound ? "true" : "false", ms);
  std::fflush(stdout);
  return rel <= bound;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 100000000;
  double bound = 1e-5;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--elements" && i + 1 < argc) {
      n = std::atoll(argv[++i]);
    } else if (k == "--bound" && i + 1 < argc) {
      bound = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: segloss-accuracy [--elements 100000000] [--bound 1e-5]\n");
      return k == "--help" ? 0 : 2;
    }
  }
  n -= n % 2;
  bool ok = true;
  using clock = std::chrono::steady_clock;
  auto ms_since = [](clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  };
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::bernoulli_distribution coin(0.3);
  {
    // (1, 1, n): one plane, one Dice score over every element.
    auto x = Tensor<float>::empty({1, 1, n});
    auto t = Tensor<float>::empty({1, 1, n});
    for (int64_t i = 0; i < n; ++i) {
      x[i] = normal(rng);
      t[i] = coin(rng) ? 1.f : 0.f;
    }
    const auto xd = cast<double>(x), td = cast<double>(t);
    auto t0 = clock::now();
    const double bf = bce_with_logits(x, t)[0];
    const double bd = bce_with_logits(xd, td)[0];
    ok &= report("bce_with_logits", n, bf, bd, bound, ms_since(t0));
    BceWithLogitsOptions<float> sf;
    sf.reduction = Reduction::sum;
    BceWithLogitsOptions<double> sd;
    sd.reduction = Reduction::sum;
    t0 = clock::now();
    const double sum32 = bce_with_logits(x, t, sf)[0];
    const double sum64 = bce_with_logits(xd, td, sd)[0];
    ok &= report("bce_with_logits_sum", n, sum32, sum64, bound, ms_since(t0));
    t0 = clock::now();
    const double df = soft_dice(x, t)[0];
    const double dd = soft_dice(xd, td)[0];
    ok &= report("soft_dice", n, df, dd, bound, ms_since(t0));
    t0 = clock::now();
    const double gf = bce_with_logits_value_and_grad(x, t).value;
    ok &= report("bce_with_logits_value_and_grad", n, gf, bd, bound, ms_since(t0));
  }
  {
    // (1, 2, n / 2): n logits, n / 2 pixels.
    const int64_t px = n / 2;
    auto x = Tensor<float>::empty({1, 2, px});
    auto lab = Tensor<int64_t>::empty({1, px});
    for (int64_t i = 0; i < n; ++i) x[i] = normal(rng);
    for (int64_t i = 0; i < px; ++i) lab[i] = coin(rng) ? 1 : 0;
    const auto xd = cast<double>(x);
    auto t0 = clock::now();
    const double cf = cross_entropy(x, lab)[0];
    const double cd = cross_entropy(xd, lab)[0];
    ok &= report("cross_entropy", n, cf, cd, bound, ms_since(t0));
  }
  return ok ? 0 : 1;
}
