// CUDA kernel of bce_with_logits: one pass, one thread per element of a strided range, the math
// of core/pointwise.hpp, the sum in the element type per step of 8 and in double beyond, through
// the two-stage reduction of runtime.cuh.
#include "bce_with_logits.hpp"

#include <type_traits>

#include "../../core/pointwise.hpp"
#include "../cpu/flat_planes.hpp"
#include "runtime.cuh"
#include "weight.cuh"
#include "weight_sum.cuh"

namespace segloss {
namespace cuda {
namespace {

// kWeighted: the pixel weight is present (any broadcast pattern). Without it the pass has no
// weight code at all: the unweighted pass is the common one, and its loop is then small enough
// for more blocks per multiprocessor (bench/RESULTS.md, "CUDA on NVIDIA H200").
// kPlain: the float, weight-free pass of a call that writes a gradient and nothing else per
// element (no loss array, no upstream gradient per element): operator() returns the gradient
// and quad_pass_kernel stores it, with 16-byte loads and stores (runtime.cuh, as the overlap
// passes; session 13's experiment ran this pass so at 0.957 of the copy against 0.909 with the
// scalar loop). The call launches it (quad_pass) only where runs_quads holds: x, z and the
// gradient 16-byte aligned, planes of a multiple of 4. Elsewhere the general body runs on
// plane_pass_kernel, as before: there it takes 48 registers with the value, the plain body 53.
template <class T, bool kWeighted, bool kPlain = false>
struct BceBody {
  static_assert(!kPlain || (!kWeighted && std::is_same_v<T, float>),
                "the plain BCE body is the float, weight-free quad pass's");
  using Part = T;
  cpu::BceWithLogitsArgs<T> a;
  const T* grad_scale_by;
  const double* mean_scale;  // the weight sum's 1/W on the device, or null
  bool zero;                 // the host's scale is 0: zeros, as mean_scale = 0

  struct At {
    const T *x, *z, *grad_out, *wrow;
    T *loss, *grad;
    const segloss::detail::BroadcastReader<T>* weight;  // in the kernel's parameters
    segloss::detail::BroadcastKind wkind;               // weight->kind, in a register (weight.cuh)
    T pos_weight, scale, zs, zb;
    bool want_value;
    bool zero;  // a mean over a weight sum of 0: the value is 0, the gradient exact zeros

    struct In {
      T x, z;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], z[i]}; }
    static constexpr bool kQuads = kPlain;
    // 47 registers with the value (57 unbounded: 4 blocks per multiprocessor), no spills.
    static constexpr int kMinBlocks = kPlain ? 5 : 0;
    __device__ __forceinline__ void load_quad(int64_t i, In (&in)[4]) const {
      read_quad(x, z, i, in);
    }
    __device__ __forceinline__ void store_quad(int64_t i, const T (&g)[4]) const {
      cuda::store_quad(grad + i, g);
    }

    // The plain body returns the element's gradient for quad_pass_kernel to store; the other
    // writes what the call asks itself. Zeros where `zero` (stored, not scaled: 0 times a NaN
    // gradient would be NaN).
    template <int K>
    __device__ __forceinline__ auto operator()(int64_t s, int64_t i, const In& in,
                                               T (&acc)[K]) const {
      if constexpr (kPlain) {
        if (zero) return T(0);
      } else if (zero) {
        if (grad) grad[i] = T(0);
        return;
      }
      const T xi = in.x;
      const T zi = in.z * zs + zb;  // the label-smoothed target (z itself when zs = 1, zb = 0)
      const pw::LogitWithLog<T> lg = pw::logit_with_log<T>(xi);
      T w = T(1);
      if constexpr (kWeighted) w = weight_at(wkind, *weight, wrow, s);
      if (want_value) {
        const T l = w * pw::bce_logits_value<T>(xi, zi, pos_weight, lg);
        if constexpr (!kPlain)
          if (loss) loss[i] = l;
        acc[0] += l;
      }
      if constexpr (kPlain) {
        return scale * pw::bce_logits_grad<T>(xi, zi, pos_weight, lg);
      } else if (grad) {
        const T g = (scale * w) * pw::bce_logits_grad<T>(xi, zi, pos_weight, lg);
        grad[i] = grad_out ? g * grad_out[i] : g;
      }
    }
  };

  // Whether the arrays quad_pass_kernel reads and writes are 16-byte aligned (runs_quads).
  bool aligned16() const {
    return cuda::aligned16(a.x) && cuda::aligned16(a.z) && cuda::aligned16(a.grad);
  }

  __device__ At at(int64_t plane) const {
    At t;
    t.x = a.x;
    t.z = a.z;
    t.grad_out = a.grad_out;
    t.loss = a.loss;
    t.grad = a.grad;
    t.weight = &a.weight;
    t.wkind = a.weight.kind;
    t.wrow = weight_row(a.weight, plane);
    t.pos_weight =
        a.pos_weight ? a.pos_weight[a.pos_weight_count == 1 ? 0 : plane % a.channels] : T(1);
    double by = grad_scale_by ? static_cast<double>(grad_scale_by[0]) : 1.0;
    if (mean_scale) by *= *mean_scale;  // grad_out[0] * (1/W), as the CPU's grad_scale
    t.scale = static_cast<T>(a.grad_scale * by);
    t.zero = zero || (mean_scale && *mean_scale == 0.0);
    t.zs = a.target_scale;
    t.zb = a.target_shift;
    t.want_value = a.want_sum || a.loss;
    return t;
  }
};

// value = sum * scale, times the weight sum's factor when given (0 exactly when that is 0), and
// the caller's device value when asked (device_out): a one-block step (runtime.cuh
// combine_then), thread 0's.
template <class T>
struct ScaleValue {
  const double* sum;
  double scale;
  const double* mean_scale;
  double* value;
  const int* flag;
  T* device_out;
  __device__ void operator()() const {
    if (threadIdx.x != 0) return;
    if (!mean_scale)
      *value = *sum * scale;
    else
      *value = *mean_scale == 0.0 ? 0.0 : *sum * (scale * *mean_scale);
    if (device_out) store_value(value, flag, device_out);
  }
};

}  // namespace

template <class T>
void bce_with_logits(const char* function, const cpu::BceWithLogitsArgs<T>& args,
                     const T* grad_scale_by, double value_scale, Result<T> r,
                     const WeightMean<T>& m) {
  // Small planes as one, as on the CPU (backends/cpu/flat_planes.hpp): the grid gives every
  // plane a block of its own, so (N, 1, 1) was N blocks of one element each.
  const cpu::BceWithLogitsArgs<T> a = cpu::flat_planes(
      args, args.pos_weight == nullptr || args.pos_weight_count == 1 || args.channels == 1);
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, 1);
  Call call(function, l.total);
  const double* mean_scale =
      m.weight ? weight_sum_scale(call, g, l.partials, m.weight, m.count, a.planes * a.plane_size)
               : nullptr;
  double* partials = a.want_sum ? call.at<double>(l.partials) : nullptr;
  const auto pass = [&](const auto& body) {
    if (partials)
      plane_pass<1>(call, g, body, partials);
    else
      plane_pass<0>(call, g, body, nullptr);
  };
  if (a.weight.kind != segloss::detail::BroadcastKind::absent) {
    pass(BceBody<T, true>{a, grad_scale_by, mean_scale, m.zero});
  } else {
    // The plain body where quad_pass_kernel runs (value_and_grad, backward after a mean or sum,
    // the split's finalize; in float, aligned; see BceBody).
    bool quads = false;
    if constexpr (std::is_same_v<T, float>) {
      const BceBody<T, false, true> plain{a, grad_scale_by, mean_scale, m.zero};
      quads = a.grad && !a.loss && !a.grad_out && runs_quads(g, plain);
      if (quads && partials) quad_pass<1>(call, g, plain, partials);
      if (quads && !partials) quad_pass<0>(call, g, plain, nullptr);
    }
    if (!quads) pass(BceBody<T, false>{a, grad_scale_by, mean_scale, m.zero});
  }
  if (!a.want_sum) return;
  double* total = call.at<double>(l.sums);
  combine_then(call, partials, 1, g.blocks(), 1, total,
               ScaleValue<T>{total, value_scale, mean_scale, call.value(), call.flag(), r.device});
  if (r.host) *r.host = call.host_value();
}

template <class T>
double bce_weight_divisor(const char* function, const T* weight, int64_t count, int64_t planes,
                          int64_t plane_size) {
  const PlaneGrid g = detail::plane_grid(planes, plane_size);
  const detail::Layout l = detail::layout(g, 1);
  Call call(function, l.total);
  weight_sum_scale(call, g, l.partials, weight, count, planes * plane_size);
  double w = 0.0;
  check(cudaMemcpyAsync(&w, call.at<double>(header::kWeightSum), sizeof(double),
                        cudaMemcpyDeviceToHost, call.stream()),
        function, "cudaMemcpyAsync of the weight sum");
  check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
  return w;
}

template void bce_with_logits<float>(const char*, const cpu::BceWithLogitsArgs<float>&,
                                     const float*, double, Result<float>, const WeightMean<float>&);
template void bce_with_logits<double>(const char*, const cpu::BceWithLogitsArgs<double>&,
                                      const double*, double, Result<double>,
                                      const WeightMean<double>&);
template double bce_weight_divisor<float>(const char*, const float*, int64_t, int64_t, int64_t);
template double bce_weight_divisor<double>(const char*, const double*, int64_t, int64_t, int64_t);

}  // namespace cuda
}  // namespace segloss
