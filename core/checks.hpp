// Argument checks shared by the losses. Each names the calling function and the argument.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "finite.hpp"
#include "tensor.hpp"

namespace segloss {
namespace detail {

template <class T>
void check_on_cpu(const char* function, const char* argument, const Tensor<T>& t) {
  SEGLOSS_CHECK(t.device() == Device::cpu, function, argument, " ", t.shape(), " is on device ",
                device_name(t.device()), ", but this build has no CUDA backend");
}

// Image input: defined, rank 3..5 (N, C, 1 to 3 spatial axes), no zero extent, on the CPU.
template <class T>
void check_image(const char* function, const char* argument, const Tensor<T>& t) {
  SEGLOSS_CHECK(t.defined(), function, argument, " is undefined");
  SEGLOSS_CHECK(t.rank() >= 3 && t.rank() <= 5, function, argument, " ", t.shape(), " has rank ",
                t.rank(), "; expected (N, C, spatial...) with 1 to 3 spatial axes");
  SEGLOSS_CHECK(t.numel() > 0, function, argument, " ", t.shape(),
                " is empty (a zero extent); an empty batch has no loss");
  check_on_cpu(function, argument, t);
  if (check_finite_enabled()) check_finite(t, argument, function);  // opt-in (core/finite.hpp)
}

// An input (logits, or probabilities for the losses that take them, named `input`) and a
// target of the same shape.
template <class T, class U>
void check_same_shape_pair(const char* function, const Tensor<T>& logits, const Tensor<U>& target,
                           const char* input = "logits") {
  check_image(function, input, logits);
  SEGLOSS_CHECK(target.defined(), function, "target is undefined");
  SEGLOSS_CHECK(target.shape() == logits.shape(), function, "target ", target.shape(),
                " does not match ", input, " ", logits.shape());
  check_on_cpu(function, "target", target);
  if (check_finite_enabled()) check_finite(target, "target", function);
}

// A caller-given gradient buffer: allocated when undefined, else shaped like the input.
template <class T>
void prepare_grad(const char* function, const Tensor<T>& logits, Tensor<T>& grad,
                  const char* input = "logits") {
  if (!grad.defined()) {
    grad = Tensor<T>::empty(logits.shape(), logits.device());
    return;
  }
  SEGLOSS_CHECK(grad.shape() == logits.shape(), function, "grad ", grad.shape(), " does not match ",
                input, " ", logits.shape());
  check_on_cpu(function, "grad", grad);
}

// grad_out for backward: one element for a scalar reduction, else `expected`.
template <class T>
void check_grad_out(const char* function, const Tensor<T>& grad_out, bool scalar,
                    const Shape& expected) {
  SEGLOSS_CHECK(grad_out.defined(), function, "grad_out is undefined");
  check_on_cpu(function, "grad_out", grad_out);
  if (scalar) {
    SEGLOSS_CHECK(grad_out.numel() == 1, function, "grad_out ", grad_out.shape(),
                  " must hold one element for a mean or sum reduction");
  } else {
    SEGLOSS_CHECK(grad_out.shape() == expected, function, "grad_out ", grad_out.shape(),
                  " does not match the loss values ", expected, " of reduction none");
  }
}

inline void check_smooth(const char* function, const char* argument, double v) {
  SEGLOSS_CHECK(std::isfinite(v) && v >= 0.0, function, argument, " is ", v,
                "; it must be finite and >= 0");
}

}  // namespace detail
}  // namespace segloss
