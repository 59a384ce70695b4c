// Argument checks shared by the losses. Each names the calling function and the argument.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda.hpp"
#include "error.hpp"
#include "finite.hpp"
#include "tensor.hpp"

namespace segloss {
namespace detail {

// A tensor on the CPU. A CUDA tensor is rejected, naming why: the build has no CUDA backend,
// or the function has no CUDA path yet.
template <class T>
void check_on_cpu(const char* function, const char* argument, const Tensor<T>& t) {
  if (t.device() == Device::cpu) return;
  if (!cuda::built())
    fail(function, argument, " ", t.shape(), " is on device ", device_name(t.device()),
         ", but this build has no CUDA backend");
  fail(function, argument, " ", t.shape(), " is on device ", device_name(t.device()), ", but ",
       function, " has no CUDA path yet");
}

// The device of a call's input: the CPU, or CUDA for a function with a CUDA path
// (cuda_path) in a build with the backend.
template <class T>
void check_input_device(const char* function, const char* argument, const Tensor<T>& t,
                        bool cuda_path) {
  if (!(cuda_path && cuda::built())) check_on_cpu(function, argument, t);
}

// " are on " after a plural input's name (logits, probs, pred_labels), " is on " after another
// (mask, pred).
inline const char* is_on(const char* input) {
  const std::size_t n = std::strlen(input);
  return n > 0 && input[n - 1] == 's' ? " are on " : " is on ";
}

// Every other tensor of a call is on the input's device.
template <class T>
void check_same_device(const char* function, const char* argument, const Tensor<T>& t,
                       Device device, const char* input = "logits") {
  if (device == Device::cpu) {
    SEGLOSS_CHECK(t.device() == Device::cpu || !cuda::built(), function, argument, " ", t.shape(),
                  " is on device ", device_name(t.device()), ", but ", input, is_on(input),
                  "cpu: every tensor of a call must be on one device");
    check_on_cpu(function, argument, t);
    return;
  }
  SEGLOSS_CHECK(t.device() == device, function, argument, " ", t.shape(), " is on device ",
                device_name(t.device()), ", but ", input, is_on(input), device_name(device),
                ": every tensor of a call must be on one device");
}

// Image input: defined, rank 3..5 (N, C, 1 to 3 spatial axes), no zero extent, on the CPU (or
// on CUDA, for a function with a CUDA path).
template <class T>
void check_image(const char* function, const char* argument, const Tensor<T>& t,
                 bool cuda_path = false, const char* empty = "an empty batch has no loss") {
  SEGLOSS_CHECK(t.defined(), function, argument, " is undefined");
  SEGLOSS_CHECK(t.rank() >= 3 && t.rank() <= 5, function, argument, " ", t.shape(), " has rank ",
                t.rank(), "; expected (N, C, spatial...) with 1 to 3 spatial axes");
  SEGLOSS_CHECK(t.numel() > 0, function, argument, " ", t.shape(), " is empty (a zero extent); ",
                empty);
  check_input_device(function, argument, t, cuda_path);
  // opt-in (core/finite.hpp); host memory only
  if (check_finite_enabled() && t.device() == Device::cpu) check_finite(t, argument, function);
}

// An input (logits, or probabilities for the losses that take them, named `input`) and a
// target of the same shape, on the input's device.
template <class T, class U>
void check_same_shape_pair(const char* function, const Tensor<T>& logits, const Tensor<U>& target,
                           const char* input = "logits", bool cuda_path = false,
                           const char* empty = "an empty batch has no loss") {
  check_image(function, input, logits, cuda_path, empty);
  SEGLOSS_CHECK(target.defined(), function, "target is undefined");
  SEGLOSS_CHECK(target.shape() == logits.shape(), function, "target ", target.shape(),
                " does not match ", input, " ", logits.shape());
  check_same_device(function, "target", target, logits.device(), input);
  if (check_finite_enabled() && target.device() == Device::cpu)
    check_finite(target, "target", function);
}

// A tensor's elements as a byte range for overlaps().
template <class T>
std::size_t data_bytes(const Tensor<T>& t) {
  return static_cast<std::size_t>(t.numel()) * sizeof(T);
}

// A caller-given gradient buffer: allocated (on the input's device) when undefined, else shaped
// like the input and on its device, and either the input itself (in place) or apart from it. A
// buffer that overlaps the input at another offset would overwrite inputs other threads have
// still to read (a silently wrong, timing-dependent result), so it is refused.
template <class T>
void prepare_grad(const char* function, const Tensor<T>& logits, Tensor<T>& grad,
                  const char* input = "logits") {
  if (!grad.defined()) {
    grad = Tensor<T>::empty(logits.shape(), logits.device());
    return;
  }
  SEGLOSS_CHECK(grad.shape() == logits.shape(), function, "grad ", grad.shape(), " does not match ",
                input, " ", logits.shape());
  check_same_device(function, "grad", grad, logits.device(), input);
  const auto bytes = data_bytes(logits);
  SEGLOSS_CHECK(grad.data() == logits.data() || !overlaps(grad.data(), bytes, logits.data(), bytes),
                function, "grad overlaps ", input, " at an offset of ",
                (reinterpret_cast<std::intptr_t>(grad.data()) -
                 reinterpret_cast<std::intptr_t>(logits.data())) /
                    static_cast<long long>(sizeof(T)),
                " elements; pass ", input, " itself (in place) or a separate buffer");
}

// Another input of the call (target, weights) that a caller's grad must not share memory with:
// the kernels read an element of it after storing other elements' gradients, so a grad over it
// at an offset gives a silently wrong result (over int labels, a class index read out of
// bounds). `same_ok`: the grad may be this input exactly (same address and size: a tensor of the
// logits' shape whose element i is read only before the gradient of element i is stored).
struct OtherInput {
  const char* name = nullptr;
  const void* data = nullptr;
  std::size_t bytes = 0;
  bool same_ok = false;
};

template <class U>
OtherInput apart(const char* name, const Tensor<U>& t) {
  return {name, t.data(), t.defined() ? data_bytes(t) : 0, false};
}

template <class U>
OtherInput apart_or_same(const char* name, const Tensor<U>& t) {
  return {name, t.data(), t.defined() ? data_bytes(t) : 0, true};
}

// A target of the logits' element type (probabilities, masks) may be the grad exactly; labels
// may not overlap it at all.
template <class T, class U>
OtherInput target_input(const Tensor<U>& t) {
  return {"target", t.data(), t.defined() ? data_bytes(t) : 0, std::is_same_v<T, U>};
}

// A prepared grad refused when it overlaps `o` (except exactly, o.same_ok); `prefix` goes before
// o's name in the message ("options." for an option tensor).
template <class T>
void check_grad_apart(const char* function, const Tensor<T>& grad, const OtherInput& o,
                      const char* prefix = "") {
  const std::size_t bytes = data_bytes(grad);
  const bool same =
      o.same_ok && o.data == static_cast<const void*>(grad.data()) && o.bytes == bytes;
  SEGLOSS_CHECK(
      same || !overlaps(grad.data(), bytes, o.data, o.bytes), function, "grad overlaps ", prefix,
      o.name,
      o.same_ok ? "; pass it exactly or a buffer apart from it" : "; pass a buffer apart from it");
}

// prepare_grad, then each other input refused when grad overlaps it (except exactly, same_ok).
template <class T>
void prepare_grad(const char* function, const Tensor<T>& logits, Tensor<T>& grad,
                  std::initializer_list<OtherInput> others, const char* input = "logits") {
  prepare_grad(function, logits, grad, input);
  for (const OtherInput& o : others) check_grad_apart(function, grad, o);
}

// grad_out for backward: one element for a scalar reduction, else `expected`; on `device`.
template <class T>
void check_grad_out(const char* function, const Tensor<T>& grad_out, bool scalar,
                    const Shape& expected, Device device = Device::cpu) {
  SEGLOSS_CHECK(grad_out.defined(), function, "grad_out is undefined");
  check_same_device(function, "grad_out", grad_out, device);
  if (scalar) {
    SEGLOSS_CHECK(grad_out.numel() == 1, function, "grad_out ", grad_out.shape(),
                  " must hold one element for a mean or sum reduction");
  } else {
    SEGLOSS_CHECK(grad_out.shape() == expected, function, "grad_out ", grad_out.shape(),
                  " does not match the loss values ", expected, " of reduction none");
  }
}

// The one-element result tensor of a device-resident value: allocated (shape (), on the input's
// device) when undefined, else one element on that device.
template <class T>
void prepare_value(const char* function, const Tensor<T>& input, Tensor<T>& value) {
  if (!value.defined()) {
    value = Tensor<T>::empty(Shape{}, input.device());
    return;
  }
  SEGLOSS_CHECK(value.numel() == 1, function, "value ", value.shape(), " must hold one element");
  check_same_device(function, "value", value, input.device());
}

// The one-element value of a _value_and_grad form may not share memory with the call's inputs
// or its grad: it is written last, over a gradient element or an input (a reviewer's case: a
// value inside grad turned grad[5] into the loss, with no error).
template <class T, class U>
void check_value_apart(const char* function, const Tensor<T>& value, const Tensor<T>& logits,
                       const Tensor<U>& target, const Tensor<T>& grad,
                       const char* input = "logits") {
  const std::size_t bytes = data_bytes(value);
  for (const OtherInput& o : {apart(input, logits), apart("target", target), apart("grad", grad)})
    SEGLOSS_CHECK(!overlaps(value.data(), bytes, o.data, o.bytes), function, "value overlaps ",
                  o.name, "; pass a buffer apart from it");
}

// prepare_value for the device-value forms of the losses, after their host forms' first check:
// undefined logits are named as those name them.
template <class T>
void prepare_logits_value(const char* function, const Tensor<T>& logits, Tensor<T>& value) {
  SEGLOSS_CHECK(logits.defined(), function, "logits is undefined");
  prepare_value(function, logits, value);
}

inline void check_smooth(const char* function, const char* argument, double v) {
  SEGLOSS_CHECK(std::isfinite(v) && v >= 0.0, function, argument, " is ", v,
                "; it must be finite and >= 0");
}

// An enum option holds one of its enumerators, `names` in order: a value made by a cast or by
// copying other bytes (Reduction(7)) is an error listing what it may be, rather than whichever
// branch the code takes for it. `path` is how the caller reaches the option ("options.",
// "options.dice."), `field` its name.
template <class E, size_t N>
void check_enum(const char* function, const char* path, const char* field, E value,
                const char* const (&names)[N]) {
  const auto v = static_cast<long long>(static_cast<std::underlying_type_t<E>>(value));
  if (v >= 0 && v < static_cast<long long>(N)) return;
  std::string allowed;
  for (size_t i = 0; i < N; ++i)
    allowed += (i ? ", " : "") + std::string(names[i]) + " (" + std::to_string(i) + ")";
  fail(function, path, field, " is ", v, "; it must be one of ", allowed);
}

}  // namespace detail
}  // namespace segloss
