#include "finite.hpp"

#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "parallel.hpp"

namespace segloss {
namespace {

std::atomic<bool> g_check_finite{false};

// Each chunk records its own first bad element; the first chunk with one holds the answer.
template <class T>
int64_t first_bad(const T* x, int64_t n) {
  const detail::ChunkGrid grid(1, n);
  std::vector<int64_t> first(static_cast<size_t>(grid.chunks()), -1);
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    // A branch-free scan of the chunk first (it vectorizes); the position only when it failed.
    T acc = T(0);
    for (int64_t i = ch.begin; i < ch.end; ++i) acc += x[i] * T(0);  // NaN iff some x is NaN/Inf
    if (acc == T(0)) return;
    for (int64_t i = ch.begin; i < ch.end; ++i)
      if (!std::isfinite(x[i])) {
        first[static_cast<size_t>(ch.index)] = i;
        return;
      }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

template <class T>
const char* kind(T v) {
  return std::isnan(v) ? "nan" : (v > T(0) ? "inf" : "-inf");
}

}  // namespace

template <class T>
int64_t first_non_finite(const Tensor<T>& t) {
  if constexpr (!std::is_floating_point_v<T>) {
    return -1;
  } else {
    if (!t.defined() || t.numel() == 0) return -1;
    SEGLOSS_CHECK(t.device() == Device::cpu, "first_non_finite", "tensor ", t.shape(),
                  " is on device ", device_name(t.device()), "; only CPU tensors are scanned");
    return first_bad(t.data(), t.numel());
  }
}

template <class T>
void check_finite(const Tensor<T>& t, const char* name, const char* function) {
  if constexpr (std::is_floating_point_v<T>) {
    const int64_t i = first_non_finite(t);
    SEGLOSS_CHECK(i < 0, function, name, " ", t.shape(), " has ", kind(t[i < 0 ? 0 : i]), " at ",
                  t.shape().position(i < 0 ? 0 : i), " (element ", i, ")");
  } else {
    (void)t;
    (void)name;
    (void)function;
  }
}

void set_check_finite(bool on) {
  g_check_finite.store(on, std::memory_order_relaxed);
}

bool check_finite_enabled() {
  return g_check_finite.load(std::memory_order_relaxed);
}

template int64_t first_non_finite(const Tensor<float>&);
template int64_t first_non_finite(const Tensor<double>&);
template int64_t first_non_finite(const Tensor<int32_t>&);
template int64_t first_non_finite(const Tensor<int64_t>&);
template void check_finite(const Tensor<float>&, const char*, const char*);
template void check_finite(const Tensor<double>&, const char*, const char*);
template void check_finite(const Tensor<int32_t>&, const char*, const char*);
template void check_finite(const Tensor<int64_t>&, const char*, const char*);

}  // namespace segloss
