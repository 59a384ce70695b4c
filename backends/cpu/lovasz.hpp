// CPU kernels of the Lovász losses (losses/lovasz.hpp has the contract and the math): per
// problem and class, the errors are sorted by a stable radix sort, the Lovász gradient g_k of
// the Jaccard loss is walked in that order, and the loss (and dL/dp or dL/dx) comes out.
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

// Per image n and class c, the pixels labelled c (not ignored): counts[n * C + c]. Labels must be
// in [0, C) or ignore_index (the caller checks).
template <class L>
void lovasz_label_counts(const L* labels, int64_t images, int64_t pixels, int64_t classes,
                         int64_t ignore_index, int64_t* counts);

template <class T, class L>
struct LovaszSoftmaxArgs {
  const T* x = nullptr;  // logits (N, C, S)
  int64_t images = 0, classes = 0, pixels = 0;
  const L* labels = nullptr;  // (N, S)
  int64_t ignore_index = -100;
  int64_t problem_images = 0;              // images per problem: 1 (per_image) or N
  const int64_t* counts = nullptr;         // per problem and class: the pixels labelled c
  const unsigned char* counted = nullptr;  // per problem and class: whether loss_c counts
  const double* scale = nullptr;           // per problem: dL/dloss_c (gradient only)
  T* grad = nullptr;                       // if set: the gradient (N, C, S)
};

// out[j] = sum over the counted classes c of problem j of loss_c. With grad: writes
// dL/dx = p (G - sum_k p_k G_k), G_c = scale_j s_i g_r(i) for counted classes, 0 otherwise, and 0
// for ignored pixels.
template <class T, class L>
void lovasz_softmax(const LovaszSoftmaxArgs<T, L>& a, double* out);

// The first element (linear index) of t that is neither 0, 1 nor the ignore value, or -1.
template <class T>
int64_t lovasz_hinge_first_bad(const T* t, int64_t n, bool has_ignore, double ignore);

template <class T>
struct LovaszHingeArgs {
  const T* x = nullptr;  // logits, `problems` consecutive blocks of `size` elements
  const T* t = nullptr;  // labels, 0 or 1 or the ignore value
  int64_t problems = 0, size = 0;
  bool has_ignore = false;
  double ignore = 0.0;
  const double* scale = nullptr;  // per problem: dL/dL_j (gradient only)
  T* grad = nullptr;              // if set: dL/dx, same layout
};

// out[j] = L_j, the hinge loss of problem j (0 without pixels).
template <class T>
void lovasz_hinge(const LovaszHingeArgs<T>& a, double* out);

}  // namespace cpu
}  // namespace segloss
