// What a fused value_and_grad returns.
#pragma once

#include "tensor.hpp"

namespace segloss {

// The loss (accumulated in double whatever T is) and its gradient with respect to the input,
// shaped like the input.
template <class T>
struct ValueAndGrad {
  double value = 0.0;
  Tensor<T> grad;
};

}  // namespace segloss
