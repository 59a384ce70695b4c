// Small planes of the elementwise losses (bce_with_logits, binary_cross_entropy, sigmoid_focal)
// taken as one plane. Their kernels walk plane by plane because a broadcast weight or a
// per-channel pos_weight is looked up once per plane; but logits (N, 1, 1) or (N, C, 1), one
// element per plane (PyTorch's (N, 1) and (N, C) of a binary or multi-label classifier with a
// spatial axis added), then gave every element a chunk of its own and the scalar path:
// bce_with_logits took 24.6 ms as (2^20, 1, 1) against 0.90 ms as (1, 1, 2^20) on one core of
// the project's machine (0.90 ms joined).
//
// When nothing depends on the plane, that is, no weight or a weight of the input's full shape
// (element i's weight is weight[i]), and a pos_weight shared by every channel, the loss is the
// same function of each element wherever its plane ends, so planes smaller than a chunk are
// walked as one plane of N * C * S elements: vectorized, and in the chunks (and so the sums) of
// that one plane. A weight broadcast over some axis, or a per-channel pos_weight with C > 1,
// keeps the plane-by-plane walk.
#pragma once

#include <cstdint>

#include "../../core/broadcast.hpp"
#include "../../core/parallel.hpp"

namespace segloss {
namespace cpu {

// Whether the weight is absent or has the input's full shape: then its element i is weight[i].
template <class T>
bool elementwise_weight(const detail::BroadcastReader<T>& w) {
  if (w.kind == detail::BroadcastKind::absent) return true;
  for (int d = 0; d < 2 + w.spatial_rank; ++d)
    if (w.extent[d] != 1 && w.stride[d] == 0) return false;
  return true;
}

// `a` with its planes joined into one when they are smaller than a chunk and nothing depends on
// the plane (`shared_pos_weight`: the call has no per-channel pos_weight, or one channel).
template <class Args>
Args flat_planes(const Args& a, bool shared_pos_weight = true) {
  if (a.planes <= 1 || a.plane_size >= detail::kChunk || !shared_pos_weight ||
      !elementwise_weight(a.weight))
    return a;
  Args f = a;
  f.plane_size = a.planes * a.plane_size;
  f.planes = 1;
  // A full-shape weight read at element j of the one plane: weight[j], the contiguous pattern
  // (plane_offset(0) is 0).
  if (f.weight.kind != detail::BroadcastKind::absent)
    f.weight.kind = detail::BroadcastKind::contiguous;
  return f;
}

}  // namespace cpu
}  // namespace segloss
