// CUDA kernels of the focal losses. sigmoid_focal is the loop of bce_with_logits.cu with the
// focal term; softmax_focal walks a pixel's class axis per thread (the threads of a warp, on
// consecutive pixels, read each class row coalesced) as cross_entropy.cu does, after a label
// pass that counts the pixels of the mean, so the mean's factor is known on the device before
// the gradient is written (nothing waits for the host between the passes). gamma's evaluation
// (0, 1, 2 as products, else exp(gamma log q); pw::focal_power) is chosen per launch by a
// uniform switch. Every sum runs through the fixed-order two-stage reduction of runtime.cuh:
// the same bits on every run.
#include "focal.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../../core/pointwise.hpp"
#include "../cpu/flat_planes.hpp"
#include "runtime.cuh"
#include "weight.cuh"

namespace segloss {
namespace cuda {
namespace {

// Where the smallest bad label index goes in the call's header (value at 0, flag at 8): stored
// as its complement by atomicMax, so the zeroed header means none.
constexpr size_t kFirstBadOffset = header::kFirstBad;

// pw::sigmoid_focal with gamma's kind (cpu::focal_gamma_kind) chosen at run time.
template <class T>
__device__ __forceinline__ pw::FocalTerm<T> sigmoid_focal_term(int kind, T x, T z, T gamma,
                                                               const pw::LogitWithLog<T>& l) {
  switch (kind) {
    case 0:
      return pw::sigmoid_focal<0, T>(x, z, gamma, l);
    case 1:
      return pw::sigmoid_focal<1, T>(x, z, gamma, l);
    case 2:
      return pw::sigmoid_focal<2, T>(x, z, gamma, l);
    default:
      return pw::sigmoid_focal<-1, T>(x, z, gamma, l);
  }
}

template <class T>
__device__ __forceinline__ pw::SoftmaxFocalPixel<T> softmax_focal_term(int kind, T rest, T inv_se,
                                                                       T e_t, T d, T a, T gamma) {
  switch (kind) {
    case 0:
      return pw::softmax_focal_pixel<0, T>(rest, inv_se, e_t, d, a, gamma);
    case 1:
      return pw::softmax_focal_pixel<1, T>(rest, inv_se, e_t, d, a, gamma);
    case 2:
      return pw::softmax_focal_pixel<2, T>(rest, inv_se, e_t, d, a, gamma);
    default:
      return pw::softmax_focal_pixel<-1, T>(rest, inv_se, e_t, d, a, gamma);
  }
}

// ---- sigmoid_focal ----

template <class T>
struct SigmoidBody {
  using Part = T;
  cpu::SigmoidFocalArgs<T> a;
  const T* grad_scale_by;
  int kind;

  struct At {
    const T *x, *z, *grad_out, *wrow;
    T *loss, *grad;
    const segloss::detail::BroadcastReader<T>* weight;  // in the kernel's parameters
    segloss::detail::BroadcastKind wkind;               // weight->kind, in a register (weight.cuh)
    T alpha_base, alpha_slope, gamma, scale;
    int kind;
    bool want_value;

    struct In {
      T x, z;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {x[i], z[i]}; }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t s, int64_t i, const In& in,
                                               T (&acc)[K]) const {
      const T xi = in.x, zi = in.z;
      const auto f = sigmoid_focal_term<T>(kind, xi, zi, gamma, pw::logit_with_log<T>(xi));
      const T c = weight_at(wkind, *weight, wrow, s) * (alpha_base + alpha_slope * zi);  // w a_t
      if (want_value) {
        const T l = c * f.value;
        if (loss) loss[i] = l;
        acc[0] += l;
      }
      if (grad) {
        const T g = (scale * c) * f.grad;
        grad[i] = grad_out ? g * grad_out[i] : g;
      }
    }
  };

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
    t.alpha_base = a.alpha_base;
    t.alpha_slope = a.alpha_slope;
    t.gamma = a.gamma;
    const double by = grad_scale_by ? static_cast<double>(grad_scale_by[0]) : 1.0;
    t.scale = static_cast<T>(a.grad_scale * by);
    t.kind = kind;
    t.want_value = a.want_sum || a.loss;
    return t;
  }
};

__global__ void scale_value_kernel(const double* sum, double scale, double* value) {
  *value = *sum * scale;
}

// ---- softmax_focal ----

// The label pass: per pixel (plane = image), 1 for a pixel counted in the mean; a bad label
// sets the flag and the smallest bad index.
template <class L>
struct LabelBody {
  using Part = double;
  const L* labels;
  int64_t classes, ignore_index;
  int* flag;
  unsigned long long* first_bad;

  struct At {
    const L* labels;
    int64_t classes, ignore_index;
    int* flag;
    unsigned long long* first_bad;

    struct In {
      int64_t y;
    };
    __device__ __forceinline__ In load(int64_t i) const {
      return {static_cast<int64_t>(labels[i])};
    }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t, int64_t i, const In& in,
                                               double (&acc)[K]) const {
      if (in.y == ignore_index) return;
      if (in.y < 0 || in.y >= classes) {
        atomicOr(flag, kBadLabel);
        atomicMax(first_bad, ~static_cast<unsigned long long>(i));
        return;
      }
      acc[0] += 1.0;
    }
  };

  __device__ At at(int64_t) const { return {labels, classes, ignore_index, flag, first_bad}; }
};

// The mean's factor and the gradient's scale from the count of counted pixels (the split's
// finalize: the whole batch's count, reduced_count >= 0, instead).
template <class T>
__global__ void prepare_kernel(const double* count, bool mean, const T* grad_scale_by,
                               double* factor, double* scale, double reduced_count,
                               double grad_weight) {
  const double n = reduced_count >= 0.0 ? reduced_count : *count;
  const double f = mean ? (n > 0.0 ? 1.0 / n : 0.0) : 1.0;
  *factor = f;
  *scale = f * (grad_scale_by ? static_cast<double>(grad_scale_by[0]) : 1.0) * grad_weight;
}

// The value: the sum of the per-pixel losses times the mean's factor.
__global__ void finish_kernel(const double* total, const double* factor, double* value) {
  *value = *total * *factor;
}

// The fused pass: per pixel (plane = image n, position s, i = n S + s) its loss, and its
// gradient over the C classes, as backends/cpu/focal.cpp's focal_pixels. `joined`: the grid is
// one plane of the N S pixels (softmax_focal below), s = i, and each pixel finds its image.
template <class T, class L>
struct SoftmaxBody {
  using Part = T;
  cpu::SoftmaxFocalArgs<T, L> a;
  const double* scale;  // the gradient's scale (prepare_kernel wrote it)
  int kind;
  bool joined;

  struct At {
    const T* x;  // the image's logits (joined: the first image's)
    const L* labels;
    const T *alpha, *grad_out;
    T *loss, *grad;  // grad: the image's gradient (joined: the first image's)
    int64_t classes, pixels, ignore_index;
    T gamma, scale;
    int kind;
    bool joined;

    struct In {
      int64_t y;
    };
    __device__ __forceinline__ In load(int64_t i) const {
      return {static_cast<int64_t>(labels[i])};
    }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t s, int64_t i, const In& in,
                                               T (&acc)[K]) const {
      using M = segloss::Math<T>;
      const int64_t C = classes, S = pixels, y = in.y;
      const T* x = this->x;
      T* grad = this->grad;
      if (joined) {  // pixel i = n S + s of the joined plane: its image's logits and gradient
        const int64_t n = s / S;
        s -= n * S;
        x += n * C * S;
        if (grad) grad += n * C * S;
      }
      if (y == ignore_index || y < 0 || y >= C) {  // ignored: 0; a bad label: NaN
        const T v = y == ignore_index ? T(0) : static_cast<T>(NAN);
        if (loss) loss[i] = v;
        if (grad)
          for (int64_t c = 0; c < C; ++c) grad[c * S + s] = v;
        acc[0] += v;
        return;
      }
      // The max m, e_c = exp(x_c - m), their sum and the sum over c != y.
      T m = x[s];
      for (int64_t c = 1; c < C; ++c) m = M::max(m, x[c * S + s]);
      T se = T(0), rest = T(0);
      for (int64_t c = 0; c < C; ++c) {
        const T e = M::exp(x[c * S + s] - m);
        se += e;
        if (c != y) rest += e;
      }
      const T d = x[y * S + s] - m;
      const T e_t = M::exp(d);
      const T inv_se = M::recip(se);
      const T a_t = alpha ? alpha[y] : T(1);
      const auto f = softmax_focal_term<T>(kind, rest, inv_se, e_t, d, a_t, gamma);
      if (loss) loss[i] = f.value;
      acc[0] += f.value;
      if (grad) {
        const T factor = (grad_out ? grad_out[i] : scale) * f.factor;
        for (int64_t c = 0; c < C; ++c) {
          const T p = M::exp(x[c * S + s] - m) * inv_se;
          grad[c * S + s] = pw::softmax_focal_grad<T>(factor, p, f.q, c == y ? T(1) : T(0));
        }
      }
    }
  };

  __device__ At at(int64_t n) const {
    At t;
    const int64_t CS = a.classes * a.pixels;
    t.x = a.x + n * CS;
    t.labels = a.labels;
    t.alpha = a.alpha;
    t.grad_out = a.grad_out;
    t.loss = a.loss;
    t.grad = a.grad ? a.grad + n * CS : nullptr;
    t.classes = a.classes;
    t.pixels = a.pixels;
    t.ignore_index = a.rule.ignore_index;
    t.gamma = a.gamma;
    t.scale = static_cast<T>(*scale);
    t.kind = kind;
    t.joined = joined;
    return t;
  }
};

}  // namespace

template <class T>
void sigmoid_focal(const char* function, const cpu::SigmoidFocalArgs<T>& args,
                   const T* grad_scale_by, double value_scale, Result<T> r) {
  const cpu::SigmoidFocalArgs<T> a = cpu::flat_planes(args);  // small planes as one, as the CPU
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, 1);
  Call call(function, l.total);
  const SigmoidBody<T> body{a, grad_scale_by, cpu::focal_gamma_kind(static_cast<double>(a.gamma))};
  if (!a.want_sum) {
    plane_pass<0>(call, g, body, nullptr);
    return;
  }
  double* partials = call.at<double>(l.partials);
  double* total = call.at<double>(l.sums);
  plane_pass<1>(call, g, body, partials);
  combine(call, partials, 1, g.blocks(), 1, total);
  cuda::launch(scale_value_kernel, 1, 1, 0, call.stream(), total, value_scale, call.value());
  call.launched();
  if (r.device) call.device_value(r.device);
  if (r.host) *r.host = call.host_value();
}

template <class T, class L>
FocalStatus softmax_focal(const char* function, const cpu::SoftmaxFocalArgs<T, L>& a, bool mean,
                          const T* grad_scale_by, T* device_value, bool host_status,
                          double reduced_count, double grad_weight) {
  // Images of fewer pixels than a block's share as one plane of N S pixels (each pixel finds its
  // image, SoftmaxBody): the grid gives each plane a block at least, so (N, C, 1), PyTorch's
  // (N, C), was N blocks of one pixel each, and N partial sums.
  const bool joined = detail::softmax_focal_joined(a.images, a.pixels);
  const PlaneGrid g = detail::softmax_focal_grid(a.images, a.pixels);
  // The workspace (detail::softmax_focal_bytes): [header | partials: one per block | count,
  // factor, scale, total].
  const size_t partials_at = detail::kHeaderBytes;
  const size_t misc_at =
      partials_at + detail::align_up(static_cast<size_t>(g.blocks()) * sizeof(double));
  Call call(function, detail::softmax_focal_bytes(g));
  double* partials = call.at<double>(partials_at);
  double* count = call.at<double>(misc_at);
  double* factor = count + 1;
  double* scale = count + 2;
  double* total = count + 3;
  plane_pass<1>(call, g,
                LabelBody<L>{a.labels, a.classes, a.rule.ignore_index, call.flag(),
                             call.at<unsigned long long>(kFirstBadOffset)},
                partials);
  combine(call, partials, 1, g.blocks(), 1, count);
  cuda::launch(prepare_kernel<T>, 1, 1, 0, call.stream(), count, mean, grad_scale_by, factor, scale,
               reduced_count, grad_weight);
  call.launched();
  const SoftmaxBody<T, L> body{a, scale, cpu::focal_gamma_kind(static_cast<double>(a.gamma)),
                               joined};
  FocalStatus st;
  if (!a.want_sum) {
    plane_pass<0>(call, g, body, nullptr);
    return st;
  }
  plane_pass<1>(call, g, body, partials);
  combine(call, partials, 1, g.blocks(), 1, total);
  cuda::launch(finish_kernel, 1, 1, 0, call.stream(), total, factor, call.value());
  call.launched();
  if (device_value) call.device_value(device_value);
  if (host_status) {
    struct {
      double value;
      int flag;
      int pad;
      double unused;
      unsigned long long first_bad;
    } header;
    static_assert(sizeof(header) == kFirstBadOffset + sizeof(unsigned long long), "header layout");
    check(cudaMemcpyAsync(&header, call.value(), sizeof(header), cudaMemcpyDeviceToHost,
                          call.stream()),
          function, "cudaMemcpyAsync of the result");
    check(
        cudaMemcpyAsync(&st.counted, count, sizeof(double), cudaMemcpyDeviceToHost, call.stream()),
        function, "cudaMemcpyAsync of the count");
    check(cudaStreamSynchronize(call.stream()), function, "cudaStreamSynchronize");
    st.value = header.value;
    if (header.flag) st.first_bad = static_cast<int64_t>(~header.first_bad);
  }
  return st;
}

template void sigmoid_focal<float>(const char*, const cpu::SigmoidFocalArgs<float>&, const float*,
                                   double, Result<float>);
template void sigmoid_focal<double>(const char*, const cpu::SigmoidFocalArgs<double>&,
                                    const double*, double, Result<double>);

#define SEGLOSS_INSTANTIATE(T, L)                                                                 \
  template FocalStatus softmax_focal<T, L>(const char*, const cpu::SoftmaxFocalArgs<T, L>&, bool, \
                                           const T*, T*, bool, double, double);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss
