// The BCE-with-logits term of one element or packet, as the CPU kernels use it: the weight and
// pos_weight looked up once per chunk, the math from core/pointwise.hpp. bce_with_logits runs
// it on its own; bce_dice plugs it into the soft Dice passes (soft_dice_kernels.hpp).
#pragma once

#include <type_traits>

#include "../../core/parallel.hpp"
#include "bce_with_logits.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {

template <class T, Kind WK>
struct BceTerm {
  static constexpr bool kActive = true;
  const BceWithLogitsArgs<T>& bce;
  T scale;  // the gradient's factor: 1/numel for a mean, times the upstream gradient

  // One chunk's view: its plane's weight row and pos_weight.
  struct AtChunk {
    const detail::BroadcastReader<T>& weight;
    const T* wbase;
    T pos_weight, scale;
    T zs, zb;  // label smoothing: the target is z * zs + zb (exactly z when zs = 1, zb = 0)

    // The weights of the element or packet at position s of the plane.
    template <class V>
    SEGLOSS_INLINE V w(int64_t s) const {
      if constexpr (std::is_same_v<V, T>)
        return WeightLane<T, WK>::scalar(weight, wbase, s);
      else
        return WeightLane<T, WK>::packet(weight, wbase, s);
    }
    // w * l: the weighted loss.
    template <class V>
    SEGLOSS_INLINE V value(const V& x, const V& z, const pw::LogitWithLog<V>& lg, int64_t s) const {
      const V zz = z * zs + zb;
      return w<V>(s) * pw::bce_logits_value<V>(x, zz, pos_weight, lg);
    }
    // scale * w * dl/dx.
    template <class V>
    SEGLOSS_INLINE V grad(const V& x, const V& z, const pw::Logit<V>& lg, int64_t s) const {
      const V zz = z * zs + zb;
      return (scale * w<V>(s)) * pw::bce_logits_grad<V>(x, zz, pos_weight, lg);
    }
  };

  AtChunk at(const detail::Chunk& ch) const {
    const T pw = bce.pos_weight
                     ? bce.pos_weight[bce.pos_weight_count == 1 ? 0 : ch.plane % bce.channels]
                     : T(1);
    const T* wbase =
        WK == Kind::absent ? nullptr : bce.weight.data + bce.weight.plane_offset(ch.plane);
    return {bce.weight, wbase, pw, scale, bce.target_scale, bce.target_shift};
  }
};

}  // namespace cpu
}  // namespace segloss
