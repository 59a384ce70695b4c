// Helpers of the C API tests (tests/test_capi.cpp, tests/test_capi_half.cpp): a segloss_tensor
// descriptor over a Tensor's memory, and the last error message as a std::string.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <segloss/capi/segloss.h>
#include <segloss/segloss.hpp>

namespace segloss::testing {

// The C API dtype of a Tensor<T>.
template <class T>
constexpr segloss_dtype dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, float16> || std::is_same_v<T, bfloat16> ||
                    std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>,
                "a Tensor element type that the C API has a dtype for");
  if constexpr (std::is_same_v<T, float>) return SEGLOSS_F32;
  if constexpr (std::is_same_v<T, double>) return SEGLOSS_F64;
  if constexpr (std::is_same_v<T, float16>) return SEGLOSS_F16;
  if constexpr (std::is_same_v<T, bfloat16>) return SEGLOSS_BF16;
  if constexpr (std::is_same_v<T, int32_t>) return SEGLOSS_I32;
  if constexpr (std::is_same_v<T, int64_t>) return SEGLOSS_I64;
}

// A descriptor over a tensor's memory.
template <class T>
segloss_tensor desc(const Tensor<T>& t) {
  int64_t shape[SEGLOSS_MAX_NDIM] = {};
  for (int i = 0; i < t.rank(); ++i) shape[i] = t.size(i);
  return segloss_tensor_make(t.data(), dtype_of<T>(), t.rank(), shape);
}

inline std::string last_error() {
  return segloss_last_error();
}

}  // namespace segloss::testing
