// boundary_weights: argument checks, the kernel size, the indicator pass and the levels pass
// (the math is in boundary_weights.hpp).
#include "boundary_weights.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "../backends/cpu/boundary_weights.hpp"
#include "../core/checks.hpp"

#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/boundary_weights.hpp"
#endif

namespace segloss {

int boundary_kernel_size(int64_t height) {
  SEGLOSS_CHECK(height >= 1, "boundary_kernel_size", "height is ", height, "; it must be >= 1");
  // The Carvana table; x = num / den is the piecewise-linear interpolation of k in H.
  constexpr int64_t kHeights[] = {128, 256, 512, 1024, 1280};
  constexpr int64_t kSizes[] = {11, 21, 21, 41, 51};
  constexpr int kLast = 4;
  const int64_t h = std::min<int64_t>(height, int64_t{1} << 40);  // keeps num below 2^47
  int64_t num = 0, den = 1;
  if (h <= kHeights[0]) {
    num = kSizes[0] * h;
    den = kHeights[0];
  } else if (h >= kHeights[kLast]) {
    num = kSizes[kLast] * h;
    den = kHeights[kLast];
  } else {
    int i = 0;
    while (h >= kHeights[i + 1]) ++i;
    den = kHeights[i + 1] - kHeights[i];
    num = kSizes[i] * den + (h - kHeights[i]) * (kSizes[i + 1] - kSizes[i]);
  }
  int64_t k = 2 * (num / (2 * den)) + 1;  // the nearest odd number to x, ties up
  k = std::max<int64_t>(k, 3);
  const int64_t largest_odd = height % 2 ? height : height - 1;
  k = std::min({k, largest_odd, int64_t{INT_MAX}});
  return static_cast<int>(k);
}

namespace {

template <class T>
void check_mask(const char* fn, const Tensor<T>& mask) {
  SEGLOSS_CHECK(mask.defined(), fn, "mask is undefined");
  SEGLOSS_CHECK(mask.rank() == 4 || mask.rank() == 5, fn, "mask ", mask.shape(), " has rank ",
                mask.rank(), "; expected (N, C, H, W) or (N, C, D, H, W)");
  detail::check_image(fn, "mask", mask, /*cuda_path=*/true);
}

void check_options(const char* fn, const BoundaryWeightOptions& o) {
  SEGLOSS_CHECK(!std::isnan(o.low) && !std::isnan(o.high), fn, "options.low is ", o.low,
                " and options.high is ", o.high, "; neither may be NaN");
  SEGLOSS_CHECK(o.low <= o.high, fn, "options.low ", o.low, " is greater than options.high ",
                o.high);
  SEGLOSS_CHECK(std::isfinite(o.boost) && o.boost > -1.0, fn, "options.boost is ", o.boost,
                "; it must be finite and > -1 (every weight 1 + boost positive)");
  SEGLOSS_CHECK(o.kernel_size >= 0, fn, "options.kernel_size is ", o.kernel_size,
                "; it must be 0 (from the height) or an odd number >= 1");
  SEGLOSS_CHECK(o.kernel_size == 0 || o.kernel_size % 2 == 1, fn, "options.kernel_size is ",
                o.kernel_size, "; it must be odd (the box is centred on each pixel)");
}

// The box size: the caller's, which must fit every spatial axis, or the rule's, fitted.
int resolve_kernel(const char* fn, const Shape& s, const BoundaryWeightOptions& o) {
  int64_t smallest = s[2];
  int smallest_axis = 2;
  for (int d = 3; d < s.rank(); ++d)
    if (s[d] < smallest) {
      smallest = s[d];
      smallest_axis = d;
    }
  if (o.kernel_size == 0) {
    const int64_t fit = smallest % 2 ? smallest : smallest - 1;
    return static_cast<int>(std::min<int64_t>(boundary_kernel_size(s[s.rank() - 2]), fit));
  }
  SEGLOSS_CHECK(o.kernel_size <= smallest, fn, "options.kernel_size ", o.kernel_size,
                " is larger than the mask's spatial extent ", smallest, " (axis ", smallest_axis,
                " of ", s, ")");
  return o.kernel_size;
}

}  // namespace

template <class T>
void boundary_weights(const Tensor<T>& mask, Tensor<T>& weights,
                      const BoundaryWeightOptions& options) {
  const char* fn = "boundary_weights";
  check_mask(fn, mask);
  check_options(fn, options);
  const Shape& s = mask.shape();
  const int k = resolve_kernel(fn, s, options);
  if (!weights.defined()) {
    weights = Tensor<T>::empty(s, mask.device());
  } else {
    SEGLOSS_CHECK(weights.shape() == s, fn, "weights ", weights.shape(), " does not match mask ",
                  s);
    detail::check_same_device(fn, "weights", weights, mask.device(), "mask");
    // Any shared byte, not only the same start: the bands and planes still read the mask while
    // others write their weights.
    const auto bytes = detail::data_bytes(mask);
    SEGLOSS_CHECK(!detail::overlaps(weights.data(), bytes, mask.data(), bytes), fn,
                  "weights shares its memory with the mask; the box sums need the mask intact");
  }

  const bool volume = s.rank() == 5;
  cpu::BoundaryWeightArgs<T> a;
  a.mask = mask.data();
  a.out = weights.data();
  a.planes = s[0] * s[1];
  a.depth = volume ? s[2] : 1;
  a.height = s[s.rank() - 2];
  a.width = s[s.rank() - 1];
  a.volume = volume;
  a.k = k;
  a.low = static_cast<T>(options.low);
  a.high = static_cast<T>(options.high);
#if defined(SEGLOSS_WITH_CUDA)
  if (mask.device() == Device::cuda) {  // everything on the device, no wait
    cuda::boundary_weights(fn, a, options.boost, 1.0 + options.boost, options.normalize);
    return;
  }
#endif
  std::vector<char> bad;
  const int64_t edges = cpu::boundary_indicator(a, bad);

  // Levels: the seed's w / sum(w) * numel, in double, then rounded to T.
  const double n = static_cast<double>(s.numel());
  const double on_raw = 1.0 + options.boost;
  double off = 1.0, on = on_raw;
  if (options.normalize) {
    const double total = n + options.boost * static_cast<double>(edges);
    off = 1.0 / total * n;
    on = on_raw / total * n;
  }
  const bool any_bad = std::find(bad.begin(), bad.end(), 1) != bad.end();
  if (any_bad && options.normalize) std::fill(bad.begin(), bad.end(), 1);  // S is NaN
  cpu::boundary_levels(a.out, a.planes, s.numel_from(2), static_cast<T>(off), static_cast<T>(on),
                       any_bad ? bad.data() : nullptr);
}

template <class T>
Tensor<T> boundary_weights(const Tensor<T>& mask, const BoundaryWeightOptions& options) {
  Tensor<T> w;
  boundary_weights(mask, w, options);
  return w;
}

#define SEGLOSS_INSTANTIATE(T)                                                         \
  template Tensor<T> boundary_weights(const Tensor<T>&, const BoundaryWeightOptions&); \
  template void boundary_weights(const Tensor<T>&, Tensor<T>&, const BoundaryWeightOptions&);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace segloss
