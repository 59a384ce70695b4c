// Shared by the statistics / finalize splits of the losses (not installed): the checks, and the
// layout of a mean loss's statistics. docs/distributed.md has the protocol.
#pragma once

#include <cstddef>

#include "../../core/error.hpp"
#include "../../core/reduction.hpp"
#include "../../core/result.hpp"

namespace segloss {
namespace detail {

inline void check_split_reduction(const char* fn, Reduction r) {
  SEGLOSS_CHECK(r != Reduction::none, fn,
                "reduction none has no single value to split across shards; use mean or sum");
}

// A loss that is a sum over elements, reduced by a mean (cross_entropy, bce_with_logits, the
// focal losses): global = {sum of the losses, the mean's divisor, the count of elements or
// pixels that count}. Each adds across shards; finalize divides the summed loss by the summed
// divisor and scales the shard's gradient by 1 / (summed divisor).
constexpr size_t kMeanSplitSize = 3;
enum MeanSplit : size_t { kLossSum = 0, kDivisor = 1, kCounted = 2 };

inline ShardStatistics mean_statistics(double loss_sum, double divisor, double counted) {
  ShardStatistics st;
  st.global = {loss_sum, divisor, counted};
  return st;
}

// Statistics whose global part is not `size` values long are an error.
inline void check_mean_split(const char* fn, const ShardStatistics& st, size_t size) {
  SEGLOSS_CHECK(st.global.size() == size, fn, "the statistics have ", st.global.size(),
                " global values; this loss's statistics have ", size,
                " (were they made by another loss's statistics?)");
}

}  // namespace detail
}  // namespace segloss
