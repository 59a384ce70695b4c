// CUDA kernels of the Lovász losses (losses/lovasz.hpp has the contract and the math), on the
// arguments of the CPU kernels (backends/cpu/lovasz.hpp) with device pointers. Not installed;
// no CUDA header. docs/cuda.md ("lovasz_hinge and lovasz_softmax on CUDA") has the design.
#pragma once

#include <cstdint>

#include "../cpu/lovasz.hpp"
#include "result.hpp"

namespace segloss {
namespace cuda {

// The upstream gradient of problem j, as losses/lovasz.cpp's upstream() computes it on the
// host, but read on the device: grad_out null: factor; per_problem: grad_out[j]; else
// grad_out[0] * factor. factor is 1 / problems for the mean, else 1.
template <class T>
struct LovaszUpstream {
  const T* grad_out = nullptr;
  bool per_problem = false;
  double factor = 1.0;
};

// The first bad label a call found (index -1: none), with its value: known only to the forms
// that wait for the stream (a host value).
struct LovaszBadLabel {
  int64_t index = -1;
  double value = 0.0;
};

// lovasz_hinge on the current stream. a: device pointers (a.scale is not read: the upstream
// comes from `up`; a.grad, when set, receives dL/dx). losses (device, may be null): the problems'
// losses L_j as T (reduction none). r: the reduced value (sum of L_j, times 1 / problems when
// `mean`). A label other than 0, 1 or the ignore value makes its problem's loss and gradient NaN
// and sets the call's flag; only a host value waits, and then `bad` receives the first one.
template <class T>
void lovasz_hinge(const char* function, const cpu::LovaszHingeArgs<T>& a, bool mean,
                  const LovaszUpstream<T>& up, T* losses, Result<T> r, LovaszBadLabel* bad);

// Which classes lovasz_softmax counts: listed (class_list), every class, or the classes present
// in the problem. listed with C <= kLovaszMaxListed: the bits of class_list travel in the kernel
// arguments. listed with more classes (session 10): `wide` points to the host's class_list
// (wide_count entries, bits left empty), and lovasz_softmax writes the C-bit mask into the
// call's workspace by kernel launches that take kLovaszMaxListed bits each by value (no host
// memory is read after the call returns, and a graph capture records no host pointer).
constexpr int64_t kLovaszMaxListed = 1024;
struct LovaszClassRule {
  enum Mode { present, all, listed } mode = present;
  unsigned int bits[kLovaszMaxListed / 32] = {};
  const int64_t* wide = nullptr;  // host memory, read by lovasz_softmax's host code only
  int64_t wide_count = 0;
};

// lovasz_softmax on the current stream: as lovasz_hinge above, with a.counts, a.counted and
// a.scale not read (the counts, the classes counted and the scales are computed on the device).
// A label outside [0, C) that is not ignore_index makes its problem's loss and gradient NaN.
template <class T, class L>
void lovasz_softmax(const char* function, const cpu::LovaszSoftmaxArgs<T, L>& a,
                    const LovaszClassRule& rule, bool mean, const LovaszUpstream<T>& up, T* losses,
                    Result<T> r, LovaszBadLabel* bad);

}  // namespace cuda
}  // namespace segloss
