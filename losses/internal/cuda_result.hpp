// Where a loss's CUDA call puts its reduced value (not installed), shared by the dispatch blocks
// of the losses with a CUDA path: the value_and_grad forms (a host double, for which the call
// waits, or the caller's device scalar, written without a wait) and the forwards of mean and
// sum (a new device scalar). backends/cuda/result.hpp has cuda::Result.
#pragma once

#if defined(SEGLOSS_WITH_CUDA)
#include "../../backends/cuda/result.hpp"
#include "../../core/tensor.hpp"

namespace segloss {
namespace detail {

// Calls run(r), a cuda::Result<T> naming device_value (one element on the device; the call does
// not wait, and 0 is returned) or, when device_value is null, a host double, which is returned
// (the call waits for its stream).
template <class T, class Run>
double cuda_value(T* device_value, Run&& run) {
  double value = 0.0;
  cuda::Result<T> r;
  if (device_value)
    r.device = device_value;
  else
    r.host = &value;
  run(r);
  return value;
}

// A forward's reduced value: calls run(r) with r naming a new device scalar, and returns it
// (nothing waits).
template <class T, class Run>
Tensor<T> cuda_scalar(Run&& run) {
  Tensor<T> out = Tensor<T>::empty(Shape{}, Device::cuda);
  cuda::Result<T> r;
  r.device = out.data();
  run(r);
  return out;
}

}  // namespace detail
}  // namespace segloss
#endif
