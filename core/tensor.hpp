// Tensor<T>: a contiguous, row-major array of float, double, int32_t, int64_t, or the 16-bit
// storage types float16 and bfloat16 (core/half.hpp), with a shape of rank 0 to 5 and a device
// tag.
//
// A tensor either owns its storage (Tensor::zeros, Tensor::empty, Tensor::from, clone, to) or is
// a non-owning view over the caller's memory (Tensor::view). Views are how an engine hands its
// buffers over without a copy; the caller keeps the memory alive while the view is used.
// Copying a Tensor copies the handle, not the elements (like a shared_ptr); clone() copies
// the elements. segloss never writes into a tensor passed as an input.
//
// Device cuda (a build with the CUDA backend, see core/cuda.hpp): empty, zeros and full allocate
// with cudaMalloc on the current device, freed with cudaFree when the last handle goes; view wraps
// a device pointer of the caller's. The elements are not reachable from the host (operator[],
// begin and end are for CPU tensors): move them with to(Device) or copy_from, which run on the
// current stream (cuda::StreamScope) and return once the copy is done. In a build without the
// backend, allocating or copying a CUDA tensor throws segloss::Error.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "half.hpp"
#include "shape.hpp"

namespace segloss {

enum class Device { cpu, cuda };

inline const char* device_name(Device d) {
  return d == Device::cpu ? "cpu" : "cuda";
}

namespace detail {
// Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte. The addresses are
// compared as std::uintptr_t: <, <= on pointers into different objects are unspecified. An empty
// range overlaps nothing; ranges that only touch (one ends where the other starts) do not overlap.
inline bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a);
  const auto b0 = reinterpret_cast<std::uintptr_t>(b);
  return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// Device memory, defined by the CUDA backend (backends/cuda/runtime.cu), or throwing in a build
// without it (core/cuda.cpp). Errors name `function`.
void* device_alloc(size_t bytes, const char* function);
void device_free(void* data) noexcept;
// Copies `bytes` bytes between any two devices on the current stream and waits for the copy.
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                 const char* function);
// Sets `count` elements of `element_bytes` bytes (2, 4 or 8) at device memory `dst` to the
// element at host address `value`, on the current stream, and waits for the fill.
void device_fill(void* dst, const void* value, size_t element_bytes, size_t count,
                 const char* function);
// An error that earlier work on this thread left unchecked (a failed cudaSetDevice, an ignored
// cudaMemcpy) would surface at the next launch check as that launch's failure. Every CUDA entry
// calls this before it enqueues anything (a loss's or metric's cuda::Call, the tape's primitives
// and backward, the 16-bit conversions, device_copy and device_fill): it throws "function: a
// CUDA error was pending on this thread before the call (from earlier work, left unchecked):
// <name>: <message>" and takes the error, so that the next call runs (a sticky error, a kernel's
// fault, stays with the context). Nothing in a build without CUDA.
void device_take_pending(const char* function);
}  // namespace detail

template <class T>
class Tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> || kHalf<T>,
                "segloss::Tensor holds float, double, int32_t, int64_t, float16 or bfloat16");

 public:
  using value_type = T;

  // The alignment in bytes of a CPU tensor's own storage (a cache line).
  static constexpr size_t kStorageAlignment = 64;

  // An undefined tensor: no shape, no data. Options use it to mean "not given".
  Tensor() = default;

  // Owning tensors, on the CPU or (cudaMalloc) on the current CUDA device. Elements of empty()
  // are uninitialized.
  static Tensor empty(const Shape& shape, Device device = Device::cpu) {
    Tensor t;
    t.shape_ = shape;
    t.device_ = device;
    t.defined_ = true;
    const size_t n = static_cast<size_t>(shape.numel());
    if (device == Device::cuda) {
      // A byte count past size_t would wrap to a small allocation (2^62 floats to 0 bytes).
      if (n > SIZE_MAX / sizeof(T))
        throw OutOfMemory(detail::message("Tensor::empty", "a CUDA tensor ", shape, " of ",
                                          sizeof(T),
                                          "-byte elements has more bytes than size_t "
                                          "can count"));
      // Allocated even for zero elements, so that a CUDA build without a GPU fails here too.
      T* p = static_cast<T*>(detail::device_alloc(n * sizeof(T), "Tensor::empty"));
      t.storage_ = std::shared_ptr<T[]>(p, [](T* q) { detail::device_free(q); });
      t.data_ = n > 0 ? p : nullptr;
    } else if (n > 0) {
      // Aligned to kStorageAlignment: the class-axis kernels write large gradients with
      // non-temporal stores, which need whole aligned lines (backends/cpu/simd.hpp). new T[n]
      // gave glibc's 16 bytes past a page for large arrays.
      static_assert(std::is_trivially_destructible_v<T>, "the deleter runs no destructor");
      if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
      T* p = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kStorageAlignment)));
      std::uninitialized_default_construct_n(p, n);  // no writes for the element types
      t.storage_ = std::shared_ptr<T[]>(
          p, [](T* q) { ::operator delete(q, std::align_val_t(kStorageAlignment)); });
      t.data_ = p;
    }
    return t;
  }
  // Every element `value`. On CUDA the fill runs on the device (no host copy of the tensor) on
  // the current stream, and returns once it is done, as to() does.
  static Tensor full(const Shape& shape, T value, Device device = Device::cpu) {
    Tensor t = empty(shape, device);
    if (device == Device::cuda)
      detail::device_fill(t.data_, &value, sizeof(T), static_cast<size_t>(shape.numel()),
                          "Tensor::full");
    else
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

  // A copy of the elements in new storage on the same device; an undefined tensor clones to an
  // undefined one.
  Tensor clone() const { return to(device_); }

  // A copy of the elements in new storage on `device` (always a copy, also when the tensor is
  // already there). Returns once the copy is done, so a CPU result can be read at once.
  Tensor to(Device device) const {
    if (!defined_) return Tensor();
    Tensor t = empty(shape_, device);
    t.copy_from(*this);
    return t;
  }

  // Copies the elements of `src`, of the same shape, on any device, into this tensor's memory
  // (which may be a view). Returns once the copy is done.
  void copy_from(const Tensor& src) const {
    SEGLOSS_CHECK(defined_ && src.defined_ && src.shape_ == shape_, "Tensor::copy_from", "source ",
                  src.shape_, " does not match destination ", shape_, " (or one is undefined)");
    if (numel() == 0 || src.data_ == data_) return;
    // Overlapping ranges at an offset: std::copy and cudaMemcpyAsync leave the result undefined
    // (the CUDA emulator's memmove hid it), so refuse them.
    const std::size_t bytes = static_cast<std::size_t>(numel()) * sizeof(T);
    SEGLOSS_CHECK(device_ != src.device_ || !detail::overlaps(data_, bytes, src.data_, bytes),
                  "Tensor::copy_from", "source and destination overlap at an offset (views of one",
                  " buffer); copy through a separate tensor");
    if (device_ == Device::cpu && src.device_ == Device::cpu) {
      std::copy(src.data_, src.data_ + numel(), data_);
      return;
    }
    detail::device_copy(data_, device_, src.data_, src.device_,
                        static_cast<size_t>(numel()) * sizeof(T), "Tensor::copy_from");
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
  std::shared_ptr<T[]> storage_;
  T* data_ = nullptr;
  Shape shape_;
  Device device_ = Device::cpu;
  bool defined_ = false;
};

}  // namespace segloss
