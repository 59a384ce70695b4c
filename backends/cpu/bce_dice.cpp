// CPU kernels of bce_dice: the BCE term plugged into the two soft Dice passes, so BCE + Dice
// costs the same two passes over memory as Dice alone, and shares Dice's exp and division.
#include "bce_dice.hpp"

#include <type_traits>

#include "soft_dice_kernels.hpp"
#include "weight_lane.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T, Kind WK>
struct BceTerm {
  static constexpr bool kActive = true;
  const BceWithLogitsArgs<T>& bce;
  T scale;

  struct AtChunk {
    const detail::BroadcastReader<T>& weight;
    const T* wbase;
    T pos_weight, scale;

    template <class V>
    SEGLOSS_INLINE V w(int64_t s) const {
      if constexpr (std::is_same_v<V, T>)
        return WeightLane<T, WK>::scalar(weight, wbase, s);
      else
        return WeightLane<T, WK>::packet(weight, wbase, s);
    }
    template <class V>
    SEGLOSS_INLINE V value(const V& x, const V& z, const pw::Logit<V>& lg, int64_t s) const {
      return w<V>(s) * pw::bce_logits_value<V>(x, z, pos_weight, lg);
    }
    template <class V>
    SEGLOSS_INLINE V grad(const V& x, const V& z, const pw::Logit<V>& lg, int64_t s) const {
      return (scale * w<V>(s)) * pw::bce_logits_grad<V>(x, z, pos_weight, lg);
    }
  };

  AtChunk at(const detail::Chunk& ch) const {
    const T pw = bce.pos_weight
                     ? bce.pos_weight[bce.pos_weight_count == 1 ? 0 : ch.plane % bce.channels]
                     : T(1);
    const T* wbase =
        WK == Kind::absent ? nullptr : bce.weight.data + bce.weight.plane_offset(ch.plane);
    return {bce.weight, wbase, pw, scale};
  }
};

}  // namespace

template <class T>
void bce_dice_statistics(const SoftDiceArgs<T>& a, const BceWithLogitsArgs<T>& bce, double* stats) {
  with_weight_kind(bce.weight, [&](auto kind) {
    dice_statistics<T, true>(a, BceTerm<T, decltype(kind)::value>{bce, T(0)}, stats);
  });
}

template <class T>
void bce_dice_gradient(const SoftDiceArgs<T>& a, const BceWithLogitsArgs<T>& bce, double bce_scale,
                       const double* coef_a, const double* coef_b, T* grad) {
  with_weight_kind(bce.weight, [&](auto kind) {
    dice_gradient<T, true>(a, BceTerm<T, decltype(kind)::value>{bce, static_cast<T>(bce_scale)},
                           coef_a, coef_b, grad);
  });
}

#define SEGLOSS_INSTANTIATE(T)                                                                    \
  template void bce_dice_statistics<T>(const SoftDiceArgs<T>&, const BceWithLogitsArgs<T>&,       \
                                       double*);                                                  \
  template void bce_dice_gradient<T>(const SoftDiceArgs<T>&, const BceWithLogitsArgs<T>&, double, \
                                     const double*, const double*, T*);
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE

}  // namespace cpu
}  // namespace segloss
