// CUDA kernel of dice_score (backends/cuda/dice_score.hpp describes the pass).
#include "dice_score.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "../../core/pointwise.hpp"
#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace {

// torch.round on the device, as the CPU's round_half_even (backends/cpu/dice_score.cpp): the
// nearest integer, halves to the even one; NaN stays NaN.
__device__ __forceinline__ float floor_of(float v) {
  return floorf(v);
}
__device__ __forceinline__ double floor_of(double v) {
  return floor(v);
}
__device__ __forceinline__ float fmod_of(float a, float b) {
  return fmodf(a, b);
}
__device__ __forceinline__ double fmod_of(double a, double b) {
  return fmod(a, b);
}

template <class T>
__device__ __forceinline__ T round_half_even(T p) {
  const T f = floor_of(p);
  const T frac = p - f;
  if (frac < T(0.5)) return f;
  if (frac > T(0.5)) return f + T(1);
  return fmod_of(f, T(2)) == T(0) ? f : f + T(1);
}

__device__ __forceinline__ bool is_binary(double v) {
  return v == 0.0 || v == 1.0;
}

// Element s of a plane's scored box (rows of len elements, rows_h rows per slice) at
// begin + (d, h, w) of the plane's extents.
struct Box {
  int64_t begin[3], extent[3];
  int64_t len, rows_h, size;
  __device__ __forceinline__ int64_t offset(int64_t s) const {
    const int64_t w = s % len, r = s / len;
    const int64_t h = r % rows_h, d = r / rows_h;
    return ((d + begin[0]) * extent[1] + (h + begin[1])) * extent[2] + (w + begin[2]);
  }
};

template <class T>
struct DiceBody {
  using Part = double;
  const T* pred;
  const T* target;
  Box box;
  int64_t plane_size;  // elements of a whole plane
  T threshold;
  bool sigmoid, round, check_target, check_pred;
  unsigned long long* first_bad;

  struct At {
    struct In {
      T x, t;
    };
    const DiceBody* b;
    int64_t plane;
    __device__ __forceinline__ int64_t index(int64_t i) const {  // i = plane * box + s
      return plane * b->plane_size + b->box.offset(i - plane * b->box.size);
    }
    __device__ __forceinline__ In load(int64_t i) const {
      const int64_t k = index(i);
      return {b->pred[k], b->target[k]};
    }
    __device__ __forceinline__ void operator()(int64_t, int64_t i, const In& in,
                                               double* part) const {
      T p = in.x;
      if (b->sigmoid) p = pw::sigmoid<T>(in.x, pw::logit<T>(in.x));
      const T q = b->round ? round_half_even(p) : (p > b->threshold ? T(1) : T(0));
      const double qd = static_cast<double>(q), t = static_cast<double>(in.t);
      part[0] += qd * t;
      part[1] += qd;
      part[2] += t;
      if (b->check_target && !is_binary(t))
        atomicMin(b->first_bad, 2ull * static_cast<unsigned long long>(index(i)));
      if (b->check_pred && !is_binary(static_cast<double>(in.x)))
        atomicMin(b->first_bad, 2ull * static_cast<unsigned long long>(index(i)) + 1ull);
    }
  };
  __device__ __forceinline__ At at(int64_t plane) const { return {this, plane}; }
};

template <class T>
T read_one(const char* function, const T* data, int64_t index, cudaStream_t s) {
  T v{};
  check(cudaMemcpyAsync(&v, data + index, sizeof(T), cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the bad value");
  check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  return v;
}

}  // namespace

template <class T>
cpu::DiceBadValue dice_score_statistics(const char* function, const cpu::DiceScoreArgs<T>& a,
                                        double* stats) {
  DiceBody<T> body;
  body.pred = a.pred;
  body.target = a.target;
  for (int k = 0; k < 3; ++k) {
    body.box.begin[k] = a.begin[k];
    body.box.extent[k] = a.extent[k];
  }
  body.box.len = a.end[2] - a.begin[2];
  body.box.rows_h = a.end[1] - a.begin[1];
  body.box.size = (a.end[0] - a.begin[0]) * body.box.rows_h * body.box.len;
  body.plane_size = a.extent[0] * a.extent[1] * a.extent[2];
  body.threshold = a.threshold;
  body.sigmoid = a.sigmoid;
  body.round = a.round;
  body.check_target = a.check_target;
  body.check_pred = a.check_pred;

  const PlaneGrid g = detail::plane_grid(a.planes, body.box.size);
  const detail::Layout l = detail::layout(g, 3);
  Call call(function, l.total);
  const cudaStream_t s = call.stream();
  body.first_bad = call.at<unsigned long long>(l.coef);  // 2 * planes doubles: room for the key
  check(cudaMemsetAsync(body.first_bad, 0xff, sizeof(unsigned long long), s), function,
        "cudaMemsetAsync");
  double* partials = call.at<double>(l.partials);
  double* sums = call.at<double>(l.sums);
  plane_pass<3>(call, g, body, partials);
  combine(call, partials, g.planes, g.parts, 3, sums);
  unsigned long long key = 0;
  check(cudaMemcpyAsync(stats, sums, static_cast<size_t>(a.planes) * 3 * sizeof(double),
                        cudaMemcpyDeviceToHost, s),
        function, "cudaMemcpyAsync of the sums");
  check(cudaMemcpyAsync(&key, body.first_bad, sizeof(key), cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the error flag");
  check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  cpu::DiceBadValue bad;
  if (key != ~0ull) {
    bad.index = static_cast<int64_t>(key >> 1);
    bad.in_pred = (key & 1ull) != 0;
    bad.value =
        static_cast<double>(read_one(function, bad.in_pred ? a.pred : a.target, bad.index, s));
  }
  return bad;
}

template cpu::DiceBadValue dice_score_statistics(const char*, const cpu::DiceScoreArgs<float>&,
                                                 double*);
template cpu::DiceBadValue dice_score_statistics(const char*, const cpu::DiceScoreArgs<double>&,
                                                 double*);

}  // namespace cuda
}  // namespace segloss
