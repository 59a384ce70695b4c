// Compile-only check, built whenever nvcc is found: every pointwise function of
// core/pointwise.hpp instantiates in device code, for float and double. The CUDA kernels of
// the losses (a later issue) call these same functions; this keeps them device-clean now.
#include "../../core/pointwise.hpp"

namespace segloss_cuda_check {

template <class T>
__global__ void pointwise_compile_check(const T* x, const T* z, T* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  using namespace segloss::pw;
  const Logit<T> a = logit<T>(x[i]);
  const LogitWithLog<T> b = logit_with_log<T>(x[i]);
  out[i] = sigmoid<T>(x[i], a) + sigmoid_complement<T>(x[i], a) + sigmoid_grad<T>(a) +
           log1p_unit<T>(b) + bce_logits_value<T>(x[i], z[i], T(2), b) +
           bce_logits_grad<T>(x[i], z[i], T(2), b);
  const FocalTerm<T> f0 = sigmoid_focal<0, T>(x[i], z[i], T(0), b);
  const FocalTerm<T> f2 = sigmoid_focal<2, T>(x[i], z[i], T(2), b);
  const FocalTerm<T> fg = sigmoid_focal<-1, T>(x[i], z[i], T(0.5), b);
  const SoftmaxFocalPixel<T> m =
      softmax_focal_pixel<-1, T>(z[i], T(0.5), T(1), -x[i], T(1), T(0.5));
  const SoftmaxFocalPixel<T> m1 = softmax_focal_pixel<1, T>(z[i], T(0.5), T(1), -x[i], T(1), T(1));
  out[i] += f0.value + f2.grad + fg.grad + m.value + m1.factor +
            softmax_focal_grad<T>(m.factor, T(0.25), m.q, T(1));
}

}  // namespace segloss_cuda_check

template __global__ void segloss_cuda_check::pointwise_compile_check<float>(const float*,
                                                                            const float*, float*,
                                                                            int);
template __global__ void segloss_cuda_check::pointwise_compile_check<double>(const double*,
                                                                             const double*, double*,
                                                                             int);
