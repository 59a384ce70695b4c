// CPU kernels of soft_dice: a statistics pass and a gradient pass, SIMD packets with a
// scalar tail, sums in double per chunk.
#include "soft_dice.hpp"

#include "../../core/parallel.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {
namespace {

// p and dp/dx for one value (scalar or packet).
template <class V, bool kSigmoid>
void probability(const V& x, V& p, V& dp) {
  using M = Math<V>;
  if constexpr (kSigmoid) {
    const V e = M::exp(-M::abs(x));
    p = pw::sigmoid_from_e<V>(x, e);
    dp = pw::sigmoid_grad_from_e<V>(e);
  } else {
    p = x;
    dp = M::splat(typename M::Scalar(1));
  }
}

template <class T, bool kSigmoid>
void statistics(const SoftDiceArgs<T>& a, double* stats) {
  using P = Packet<T>;
  using D = Eigen::Array<double, kLanes<T>, 1>;
  constexpr int L = kLanes<T>;
  detail::reduce_planes<3>(
      detail::ChunkGrid(a.planes, a.plane_size),
      [&](const detail::Chunk& ch, double* acc) {
        D spt = D::Zero(), sp = D::Zero(), st = D::Zero();
        int64_t i = ch.begin;
        for (; i + L <= ch.end; i += L) {
          P p, dp;
          probability<P, kSigmoid>(load(a.x + i), p, dp);
          const P t = load(a.t + i);
          spt += (p * t).template cast<double>();
          sp += p.template cast<double>();
          st += t.template cast<double>();
        }
        acc[0] = spt.sum();
        acc[1] = sp.sum();
        acc[2] = st.sum();
        for (; i < ch.end; ++i) {
          T p, dp;
          probability<T, kSigmoid>(a.x[i], p, dp);
          acc[0] += static_cast<double>(p * a.t[i]);
          acc[1] += static_cast<double>(p);
          acc[2] += static_cast<double>(a.t[i]);
        }
      },
      stats);
}

template <class T, bool kSigmoid>
void gradient(const SoftDiceArgs<T>& a, const double* coef_a, const double* coef_b, T* grad) {
  using P = Packet<T>;
  constexpr int L = kLanes<T>;
  detail::for_each_chunk(detail::ChunkGrid(a.planes, a.plane_size), [&](const detail::Chunk& ch) {
    const T ca = static_cast<T>(coef_a[ch.plane]), cb = static_cast<T>(coef_b[ch.plane]);
    int64_t i = ch.begin;
    for (; i + L <= ch.end; i += L) {
      P p, dp;
      probability<P, kSigmoid>(load(a.x + i), p, dp);
      store(grad + i, P((ca - cb * load(a.t + i)) * dp));
    }
    for (; i < ch.end; ++i) {
      T p, dp;
      probability<T, kSigmoid>(a.x[i], p, dp);
      grad[i] = (ca - cb * a.t[i]) * dp;
    }
  });
}

}  // namespace

template <class T>
void soft_dice_statistics(const SoftDiceArgs<T>& a, double* stats) {
  a.sigmoid ? statistics<T, true>(a, stats) : statistics<T, false>(a, stats);
}

template <class T>
void soft_dice_gradient(const SoftDiceArgs<T>& a, const double* coef_a, const double* coef_b,
                        T* grad) {
  a.sigmoid ? gradient<T, true>(a, coef_a, coef_b, grad)
            : gradient<T, false>(a, coef_a, coef_b, grad);
}

template void soft_dice_statistics<float>(const SoftDiceArgs<float>&, double*);
template void soft_dice_statistics<double>(const SoftDiceArgs<double>&, double*);
template void soft_dice_gradient<float>(const SoftDiceArgs<float>&, const double*, const double*,
                                        float*);
template void soft_dice_gradient<double>(const SoftDiceArgs<double>&, const double*,
                                         const double*, double*);

}  // namespace cpu
}  // namespace segloss
