// Shared by the statistics / finalize splits of the losses (not installed): the checks, and the
// layout of a mean loss's statistics. docs/distributed.md has the protocol.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

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

// The loss a statistics or finalize function belongs to: its name without the suffix
// ("cross_entropy_statistics" and "cross_entropy_finalize" are both "cross_entropy").
inline std::string_view split_loss(const char* fn) {
  std::string_view name(fn);
  for (std::string_view suffix : {std::string_view("_statistics"), std::string_view("_finalize")})
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix)
      return name.substr(0, name.size() - suffix.size());
  return name;
}

// Statistics made by the statistics call `fn` with options of digest `options`
// (options_digest.hpp): st with its source and options set (ShardStatistics).
template <class S>
S tagged(const char* fn, S st, uint64_t options) {
  st.source = std::string(split_loss(fn));
  st.options = options;
  return st;
}

// Statistics made by another loss's statistics call are an error; those built by hand (no
// source) are taken as they are.
inline void check_source(const char* fn, const ShardStatistics& st) {
  const std::string_view loss = split_loss(fn);
  SEGLOSS_CHECK(st.source.empty() || st.source == loss, fn, "the statistics come from ", st.source,
                "_statistics, not ", loss,
                "_statistics; a loss's finalize takes only its own loss's statistics");
}

// Statistics made with other options than finalize's (digest `options`, options_digest.hpp) are
// an error. Each finalize checks it after the statistics' source and layout and its own
// options' values (whose messages say more; ce_dice's and dice_focal's first-term values too,
// which they check before their Dice term's), before it writes anything. Statistics without a
// digest (built by hand, or the first term's part of a combined loss's) are taken.
inline void check_split_options(const char* fn, const ShardStatistics& st, uint64_t options) {
  const std::string_view loss = split_loss(fn);
  SEGLOSS_CHECK(st.options == 0 || st.options == options, fn,
                "the statistics were made with other options than these (their digests differ); "
                "pass the same options to ",
                loss, "_statistics and ", loss, "_finalize");
}

inline ShardStatistics mean_statistics(const char* fn, double loss_sum, double divisor,
                                       double counted, uint64_t options) {
  ShardStatistics st;
  st.global = {loss_sum, divisor, counted};
  return tagged(fn, std::move(st), options);
}

// A count in a mean loss's statistics (the counted elements or pixels; a focal loss's divisor)
// summed across shards: statistics built by hand or corrupted in transit can hold a NaN or a
// negative count, which would otherwise scale the gradient by NaN or by 0 without a word.
inline void check_split_count(const char* fn, const ShardStatistics& st, MeanSplit at,
                              const char* what) {
  const double v = st.global[at];
  SEGLOSS_CHECK(std::isfinite(v) && v >= 0.0, fn, "the statistics' ", what, " (global[",
                static_cast<size_t>(at), "]) is ", v,
                "; a count of elements or pixels summed across shards is finite and >= 0");
}

// A count of scores summed across shards (the overlap losses' kept scores with per_image, and
// generalized_dice's per-image scores): a whole number, at least this shard's own part. A NaN,
// negative, fractional or too small one (statistics built by hand, or corrupted on the way)
// gave a silently wrong loss.
// `least`: the scores this shard alone has (generalized_dice: one per image; the per-image
// overlap losses: the scores its local sums keep), which the sum includes; `what` names them.
inline void check_split_score_count(const char* fn, const ShardStatistics& st, size_t at,
                                    int64_t least, const char* what) {
  const double v = st.global[at];
  SEGLOSS_CHECK(std::isfinite(v) && v >= static_cast<double>(least) && v == std::floor(v), fn,
                "the statistics' count of scores (global[", at, "]) is ", v,
                "; a count of scores summed across shards is a whole number >= ", least,
                " (this shard's own ", what, ")");
}

// Statistics of another loss, whose global part is not `size` values long, or whose count is
// not finite and >= 0, are an error.
inline void check_mean_split(const char* fn, const ShardStatistics& st, size_t size) {
  check_source(fn, st);
  SEGLOSS_CHECK(st.global.size() == size, fn, "the statistics have ", st.global.size(),
                " global values; this loss's statistics have ", size,
                " (were they made by another loss's statistics?)");
  check_split_count(fn, st, kCounted, "count");
}

}  // namespace detail
}  // namespace segloss
