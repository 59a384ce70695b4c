// What a fused value_and_grad returns, and what a statistics call of the shard split returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace segloss {

// The loss (accumulated in double whatever T is) and its gradient with respect to the input,
// shaped like the input.
template <class T>
struct ValueAndGrad {
  double value = 0.0;
  Tensor<T> grad;
};

// The statistics of one shard of a batch, for the statistics / finalize split of a loss that
// needs sums over the whole batch (docs/distributed.md). `global` is what the caller sums
// element-wise across the shards before finalize, in place: data() and size() are its buffer,
// e.g. MPI_Allreduce(MPI_IN_PLACE, st.data(), int(st.size()), MPI_DOUBLE, MPI_SUM, comm).
// `local` stays on the shard (sums the shard's own gradient needs; empty for most losses).
// A shard with no pixels contributes zeros: a vector of zeros of the same size is the identity
// of the sum. Each loss documents its layout of `global`.
// `source` names the loss whose statistics call made them ("cross_entropy", "soft_dice", ...);
// that loss's finalize refuses statistics with another name, since several losses share a
// layout and a mix-up would otherwise give a silently wrong loss. Statistics built by hand (an
// empty source) are taken as they are. `options` is a digest of the options the statistics
// call was given (their scalar fields, and their tensors' shapes, not values); finalize refuses
// statistics whose digest is not that of its own options, and does not check a digest of 0.
struct ShardStatistics {
  std::vector<double> global;  // all-reduce (sum) across the shards before finalize
  std::vector<double> local;   // stays on the shard
  std::string source;          // the loss that made them; empty: not checked
  uint64_t options = 0;        // a digest of the options that made them; 0: not checked
  double* data() { return global.data(); }
  const double* data() const { return global.data(); }
  size_t size() const { return global.size(); }
};

}  // namespace segloss
