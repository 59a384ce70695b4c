// CUDA kernel of binary_cross_entropy: one pass, one thread per element of a strided range, the
// math of core/pointwise.hpp (bce_probs_value / bce_probs_grad, PyTorch's clamp and epsilon), the
// sum in the element type per step of 8 and in double beyond (runtime.cuh's two-stage sum), the
// range check of both inputs in the same pass.
#include "binary_cross_entropy.hpp"

#include "../../core/pointwise.hpp"
#include "../cpu/flat_planes.hpp"
#include "runtime.cuh"
#include "weight.cuh"

namespace segloss {
namespace cuda {
namespace {

template <class T>
__device__ __forceinline__ bool in_unit_interval(T v) {
  return v >= T(0) && v <= T(1);  // false for NaN, as PyTorch's check
}

template <class T>
struct BceProbsBody {
  using Part = T;
  cpu::BinaryCrossEntropyArgs<T> a;
  const T* grad_scale_by;
  unsigned long long* first_bad;  // i for a probability, numel + i for a target
  int64_t numel;

  struct At {
    const T *p, *z, *grad_out, *wrow;
    T *loss, *grad;
    const segloss::detail::BroadcastReader<T>* weight;  // in the kernel's parameters
    segloss::detail::BroadcastKind wkind;               // weight->kind, in a register (weight.cuh)
    unsigned long long* first_bad;
    int64_t numel;
    T scale;
    bool want_value;

    struct In {
      T p, z;
    };
    __device__ __forceinline__ In load(int64_t i) const { return {p[i], z[i]}; }

    template <int K>
    __device__ __forceinline__ void operator()(int64_t s, int64_t i, const In& in,
                                               T (&acc)[K]) const {
      const bool p_ok = in_unit_interval(in.p), z_ok = in_unit_interval(in.z);
      if (!(p_ok && z_ok))
        atomicMin(first_bad, static_cast<unsigned long long>(p_ok ? numel + i : i));
      const T nan = static_cast<T>(NAN);
      const T w = weight_at(wkind, *weight, wrow, s);
      if (want_value) {
        const T l = p_ok && z_ok ? w * pw::bce_probs_value<T>(in.p, in.z) : nan;
        if (loss) loss[i] = l;
        acc[0] += l;
      }
      if (grad) {
        const T g = p_ok && z_ok ? (scale * w) * pw::bce_probs_grad<T>(in.p, in.z) : nan;
        grad[i] = grad_out ? g * grad_out[i] : g;
      }
    }
  };

  __device__ At at(int64_t plane) const {
    At t;
    t.p = a.p;
    t.z = a.z;
    t.grad_out = a.grad_out;
    t.loss = a.loss;
    t.grad = a.grad;
    t.weight = &a.weight;
    t.wkind = a.weight.kind;
    t.wrow = weight_row(a.weight, plane);
    t.first_bad = first_bad;
    t.numel = numel;
    const double by = grad_scale_by ? static_cast<double>(grad_scale_by[0]) : 1.0;
    t.scale = static_cast<T>(a.grad_scale * by);
    t.want_value = a.want_sum || a.loss;
    return t;
  }
};

__global__ void scale_value_kernel(const double* sum, double scale, double* value) {
  *value = *sum * scale;
}

}  // namespace

template <class T>
void binary_cross_entropy(const char* function, const cpu::BinaryCrossEntropyArgs<T>& args,
                          const T* grad_scale_by, double value_scale, Result<T> r,
                          UnitIntervalError* bad) {
  // Small planes as one, as on the CPU (backends/cpu/flat_planes.hpp); the bad value's index
  // is the element's either way.
  const cpu::BinaryCrossEntropyArgs<T> a = cpu::flat_planes(args);
  const PlaneGrid g = detail::plane_grid(a.planes, a.plane_size);
  const detail::Layout l = detail::layout(g, 1);
  Call call(function, l.total);
  const cudaStream_t s = call.stream();
  auto* first_bad = call.at<unsigned long long>(l.coef);  // 2 * planes doubles: room for the key
  check(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), s), function,
        "cudaMemsetAsync");
  const int64_t numel = a.planes * a.plane_size;
  unsigned long long key = ~0ull;
  // The bad value as it was read: copied back from its input after the pass, so when the
  // gradient is stored over an input (in place) and a host value is wanted, a pass that only
  // checks runs first, and a bad value is reported before anything is stored.
  const auto report = [&] {
    if (!bad || key == ~0ull) return false;
    bad->in_target = key >= static_cast<unsigned long long>(numel);
    bad->index = static_cast<int64_t>(bad->in_target ? key - numel : key);
    T v{};
    check(cudaMemcpyAsync(&v, (bad->in_target ? a.z : a.p) + bad->index, sizeof(T),
                          cudaMemcpyDeviceToHost, s),
          function, "cudaMemcpyAsync of the bad value");
    check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
    bad->value = static_cast<double>(v);
    return true;
  };
  if (bad && a.grad && (a.grad == a.p || a.grad == a.z)) {
    cpu::BinaryCrossEntropyArgs<T> only_check = a;
    only_check.grad = nullptr;
    only_check.loss = nullptr;
    only_check.want_sum = false;
    plane_pass<0>(call, g, BceProbsBody<T>{only_check, nullptr, first_bad, numel}, nullptr);
    check(cudaMemcpyAsync(&key, first_bad, sizeof(key), cudaMemcpyDeviceToHost, s), function,
          "cudaMemcpyAsync of the error flag");
    check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
    if (report()) return;
  }
  const BceProbsBody<T> body{a, grad_scale_by, first_bad, numel};
  if (!a.want_sum) {
    plane_pass<0>(call, g, body, nullptr);
  } else {
    double* partials = call.at<double>(l.partials);
    double* total = call.at<double>(l.sums);
    plane_pass<1>(call, g, body, partials);
    combine(call, partials, 1, g.blocks(), 1, total);
    cuda::launch(scale_value_kernel, 1, 1, 0, s, total, value_scale, call.value());
    call.launched();
    if (r.device) call.device_value(r.device);
  }
  if (!r.host && !bad) return;  // nothing waits
  check(cudaMemcpyAsync(&key, first_bad, sizeof(key), cudaMemcpyDeviceToHost, s), function,
        "cudaMemcpyAsync of the error flag");
  if (r.host && a.want_sum)
    *r.host = call.host_value();  // waits for the stream, the key's copy included
  else
    check(cudaStreamSynchronize(s), function, "cudaStreamSynchronize");
  report();
}

template void binary_cross_entropy<float>(const char*, const cpu::BinaryCrossEntropyArgs<float>&,
                                          const float*, double, Result<float>, UnitIntervalError*);
template void binary_cross_entropy<double>(const char*, const cpu::BinaryCrossEntropyArgs<double>&,
                                           const double*, double, Result<double>,
                                           UnitIntervalError*);

}  // namespace cuda
}  // namespace segloss
