// Tensor<T>: a contiguous, row-major array of float, double, int32_t or int64_t with a shape
// of rank 0 to 5 and a device tag.
//
// A tensor either owns its storage (Tensor::zeros, Tensor::empty, Tensor::from, clone) or is a
// non-owning view over the caller's memory (Tensor::view). Views are how an engine hands its
// buffers over without a copy; the caller keeps the memory alive while the view is used.
// Copying a Tensor copies the handle, not the elements (like a shared_ptr); clone() copies
// the elements. segloss never writes into a tensor passed as an input.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "shape.hpp"

namespace segloss {

enum class Device { cpu, cuda };

inline const char* device_name(Device d) {
  return d == Device::cpu ? "cpu" : "cuda";
}

template <class T>
class Tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>,
                "segloss::Tensor holds float, double, int32_t or int64_t");

 public:
  using value_type = T;

  // An undefined tensor: no shape, no data. Options use it to mean "not given".
  Tensor() = default;

  // Owning tensors (CPU). Elements of empty() are uninitialized.
  static Tensor empty(const Shape& shape, Device device = Device::cpu) {
    check_device(device, "Tensor::empty");
    Tensor t;
    t.shape_ = shape;
    t.device_ = device;
    t.defined_ = true;
    const int64_t n = shape.numel();
    if (n > 0) {
      t.storage_ = std::shared_ptr<T[]>(new T[static_cast<size_t>(n)]);
      t.data_ = t.storage_.get();
    }
    return t;
  }
  static Tensor full(const Shape& shape, T value, Device device = Device::cpu) {
    Tensor t = empty(shape, device);
    std::fill(t.data_, t.data_ + shape.numel(), value);
    return t;
  }
  static Tensor zeros(const Shape& shape, Device device = Device::cpu) {
    return full(shape, T(0), device);
  }
  static Tensor from(const std::vector<T>& values, const Shape& shape) {
    SEGLOSS_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from",
                  "values has ", values.size(), " elements but shape ", shape, " needs ",
                  shape.numel());
    Tensor t = empty(shape);
    std::copy(values.begin(), values.end(), t.data_);
    return t;
  }

  // A non-owning view over `data`, which must hold shape.numel() elements and outlive the view.
  static Tensor view(T* data, const Shape& shape, Device device = Device::cpu) {
    SEGLOSS_CHECK(data != nullptr || shape.numel() == 0, "Tensor::view",
                  "data is a null pointer for shape ", shape);
    Tensor t;
    t.data_ = data;
    t.shape_ = shape;
    t.device_ = device;
    t.defined_ = true;
    return t;
  }
  // A view over read-only memory. segloss only reads its inputs, so a view of const data is
  // safe to pass as an input. The handle itself is writable (Tensor has no read-only flag):
  // passing it where segloss writes (a gradient buffer) or writing through it is the
  // caller's error.
  static Tensor view(const T* data, const Shape& shape, Device device = Device::cpu) {
    return view(const_cast<T*>(data), shape, device);
  }

  // A copy of the elements in new storage; an undefined tensor clones to an undefined one.
  Tensor clone() const {
    if (!defined_) return Tensor();
    check_device(device_, "Tensor::clone");
    Tensor t = empty(shape_, device_);
    std::copy(data_, data_ + numel(), t.data_);
    return t;
  }

  bool defined() const { return defined_; }
  bool owns_memory() const { return storage_ != nullptr; }
  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t size(int axis) const { return shape_[axis]; }
  int64_t numel() const { return defined_ ? shape_.numel() : 0; }
  Device device() const { return device_; }

  // Element access by linear index (CPU tensors only; no bounds check in release builds).
  T& operator[](int64_t i) const { return data_[i]; }
  T* begin() const { return data_; }
  T* end() const { return data_ + numel(); }

 private:
  static void check_device(Device device, const char* function) {
    SEGLOSS_CHECK(device == Device::cpu, function,
                  "device cuda is not available: this build has no CUDA backend");
  }

  std::shared_ptr<T[]> storage_;
  T* data_ = nullptr;
  Shape shape_;
  Device device_ = Device::cpu;
  bool defined_ = false;
};

}  // namespace segloss
