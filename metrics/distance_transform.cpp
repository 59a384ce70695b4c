// distance_transform: argument checks, then one plane at a time through the CPU kernel (or, for
// a CUDA mask, backends/cuda/distance_transform.cu).
#include "distance_transform.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "../backends/cpu/distance_transform.hpp"
#include "../core/checks.hpp"

#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/distance_transform.hpp"
#endif

namespace segloss {

namespace detail {

std::vector<double> checked_spacing(const char* function, const std::vector<double>& spacing,
                                    int spatial) {
  if (spacing.empty()) return std::vector<double>(static_cast<size_t>(spatial), 1.0);
  SEGLOSS_CHECK(static_cast<int>(spacing.size()) == spatial, function, "options.spacing has ",
                spacing.size(), " values; the input has ", spatial, " spatial axes");
  // The kernels work with squared spacings and squared distances in double: a spacing past about
  // 1e154 squares to inf, one below about 1e-154 to 0 (or a subnormal), and either gave NaN
  // distances. [1e-100, 1e100] leaves room for the squared extents too.
  for (size_t a = 0; a < spacing.size(); ++a)
    SEGLOSS_CHECK(spacing[a] >= kMinSpacing && spacing[a] <= kMaxSpacing, function,
                  "options.spacing[", a, "] is ", spacing[a], "; it must be in [", kMinSpacing,
                  ", ", kMaxSpacing, "] (distances are squared in double)");
  return spacing;
}

}  // namespace detail

template <class T>
Tensor<double> distance_transform(const Tensor<T>& mask, const DistanceTransformOptions& options) {
  const char* fn = "distance_transform";
  detail::check_image(fn, "mask", mask, /*cuda_path=*/true, "an empty batch has no distances");
  detail::check_enum(fn, "options.", "to", options.to, detail::kDistanceToNames);
  const Shape& s = mask.shape();
  const int spatial = s.rank() - 2;
  const std::vector<double> spacing = detail::checked_spacing(fn, options.spacing, spatial);
  cpu::EdtGrid grid;
  for (int a = 0; a < spatial; ++a) {
    grid.extent[3 - spatial + a] = s[2 + a];
    grid.spacing[3 - spatial + a] = spacing[static_cast<size_t>(a)];
  }
  const int64_t planes = s[0] * s[1], size = grid.size();
  const bool to_foreground = options.to == DistanceTo::foreground;
#if defined(SEGLOSS_WITH_CUDA)
  if (mask.device() == Device::cuda) {  // the CPU's passes on the device; no wait
    Tensor<double> out = Tensor<double>::empty(s, Device::cuda);
    cuda::distance_transform(fn, mask.data(), planes, grid, to_foreground, options.squared,
                             out.data());
    return out;
  }
#endif
  Tensor<double> out = Tensor<double>::empty(s);
  std::vector<uint8_t> target(static_cast<size_t>(size));
  for (int64_t p = 0; p < planes; ++p) {
    const T* m = mask.data() + p * size;
    uint8_t* f = target.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (size > 65536)
#endif
    for (int64_t i = 0; i < size; ++i) f[i] = (m[i] != T(0)) == to_foreground ? 1 : 0;
    double* o = out.data() + p * size;
    cpu::squared_distance_transform(f, 1, grid, o);
    if (options.squared) continue;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (size > 65536)
#endif
    for (int64_t i = 0; i < size; ++i) o[i] = std::sqrt(o[i]);
  }
  return out;
}

template Tensor<double> distance_transform(const Tensor<float>&, const DistanceTransformOptions&);
template Tensor<double> distance_transform(const Tensor<double>&, const DistanceTransformOptions&);
template Tensor<double> distance_transform(const Tensor<int32_t>&, const DistanceTransformOptions&);
template Tensor<double> distance_transform(const Tensor<int64_t>&, const DistanceTransformOptions&);

}  // namespace segloss
