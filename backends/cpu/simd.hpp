// SIMD packets for the CPU loops: fixed-size Eigen arrays, which Eigen evaluates with its
// vectorized exp and log1p (SSE2 by default, AVX2/AVX-512 with SEGLOSS_NATIVE).
//
// Math<Packet<T>> gives the pointwise templates in core/pointwise.hpp the same primitives as
// the scalar Math<T>, so a loop runs the one formula on 64 bytes at a time and finishes
// the last few elements with the scalar instantiation.
#pragma once

#include <Eigen/Core>

#include "../../core/pointwise.hpp"

namespace segloss {
namespace cpu {

template <class T>
constexpr int kLanes = 64 / sizeof(T);  // 16 floats or 8 doubles

template <class T>
using Packet = Eigen::Array<T, kLanes<T>, 1>;

template <class T>
SEGLOSS_INLINE Packet<T> load(const T* p) {
  return Eigen::Map<const Packet<T>>(p);
}
template <class T>
SEGLOSS_INLINE void store(T* p, const Packet<T>& v) {
  Eigen::Map<Packet<T>> out(p);
  out = v;
}

// A sum of packets that is exact enough for a chunk: lanes add in T for up to kBlock packets
// (float rounding over 8 terms), then move into double lanes; total() adds the lanes in
// order. Every step depends only on the position in the chunk, so sums stay deterministic.
// (Converting every packet to double instead makes GCC fall back to scalar code.)
template <class T>
class LaneSum {
 public:
  SEGLOSS_INLINE void add(const Packet<T>& v) {
    part_ += v;
    if (++count_ == kBlock) flush();
  }
  double total() {
    flush();
    double s = 0.0;
    for (int l = 0; l < kLanes<T>; ++l) s += wide_[l];
    return s;
  }

 private:
  static constexpr int kBlock = 8;
  void flush() {
    for (int l = 0; l < kLanes<T>; ++l) wide_[l] += static_cast<double>(part_[l]);
    part_.setZero();
    count_ = 0;
  }
  Packet<T> part_ = Packet<T>::Zero();
  double wide_[kLanes<T>] = {};
  int count_ = 0;
};

}  // namespace cpu

template <class T>
struct Math<cpu::Packet<T>> {
  using Scalar = T;
  using V = cpu::Packet<T>;
  static SEGLOSS_INLINE V splat(T c) { return V::Constant(c); }
  static SEGLOSS_INLINE V exp(const V& x) { return x.exp(); }
  static SEGLOSS_INLINE V log1p(const V& x) { return x.log1p(); }
  static SEGLOSS_INLINE V abs(const V& x) { return x.abs(); }
  static SEGLOSS_INLINE V max(const V& a, const V& b) { return a.max(b); }
  // Eigen 3.4 evaluates Select one lane at a time, so blend arithmetically: h is 1 for
  // x >= 2^-100, 0 for x <= 0, and in between only where |x| < 2^-100, where the caller's two
  // forms agree to the last bit (they are one function continuous at 0, and exp(-|x|) == 1).
  static SEGLOSS_INLINE V select_nonneg(const V& x, const V& a, const V& b) {
    const V h = (x * T(0x1p100)).max(T(0)).min(T(1));
    return b + (a - b) * h;
  }
};

}  // namespace segloss
