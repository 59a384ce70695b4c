// @brief The Lovász losses (Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: a tractable
// surrogate for the optimization of the intersection-over-union measure in neural networks",
// CVPR 2018): lovasz_softmax for multi-class label maps, lovasz_hinge for binary masks.
//
// Both minimize the Lovász extension of the Jaccard loss of one set of pixels (a "problem": one
// image with per_image, else the whole batch). For a problem of P pixels with errors e_i >= 0
// and ground truth gt_i in {0, 1}, sort the errors in decreasing order, e_(1) >= ... >= e_(P)
// (a fixed permutation; ties broken by pixel index, first index first), and let G = sum_i gt_i:
// (Ties are errors with the same bits: pixels with the same logits have them, wherever they sit
// in the batch. Errors equal in exact arithmetic but computed from different logits, such as a
// row's values in another class order, can differ in the last bit and sort by value.)
//
// clang-format off
//   I_k = G - sum_{j<=k} gt_(j),   U_k = G + sum_{j<=k} (1 - gt_(j)),   J_k = 1 - I_k / U_k
//   g_k = J_k - J_{k-1}  (J_0 = 0)                                     (Alg. 1 of the paper)
//   loss = sum_k f(e_(k)) g_k
// clang-format on
//
// U_k >= 1 always (G >= 1, or the first pixel is background), so nothing divides by zero. The
// loss is piecewise linear in the errors; its gradient keeps the permutation fixed (a
// subgradient where errors tie): d loss / d e_(k) = f'(e_(k)) g_k.
//
// lovasz_softmax. Input: logits x (N, C, spatial...) with 1 to 3 spatial axes, float or double;
// p = softmax of x over the class axis (relative to the max logit). Labels (N, spatial...) as
// int32 or int64. Per class c of a problem, over its pixels not ignored: gt_i = [y_i = c],
// e_i = |gt_i - p_ic| (f = identity), loss_c as above. The problem's loss is the mean of loss_c
// over the classes counted (options.classes). Gradient: d e_i / d p_ic = -1 for gt_i = 1 and +1
// otherwise, so with s_i = 1 - 2 gt_i and r(i) the rank of pixel i in the class's order,
//   dL/dp_ic = s_i g_r(i) / K           (K the number of classes counted; 0 for the others)
//   dL/dx_ic = p_ic (dL/dp_ic - sum_k p_ik dL/dp_ik)           (the softmax's Jacobian).
// (PyTorch's autograd takes d|u|/du = 0 at u = 0, i.e. where p_ic is exactly 0 or 1; here the
// derivative of e_i is the one of the smooth function p or 1 - p there too. The difference is
// scaled by a probability that rounds to 0 or 1, so it is below the precision of the result.)
//
// lovasz_hinge. Input: logits x (N, C, spatial...), float or double; labels t of the same shape
// and type, 0 or 1 (or options.ignore). Every element of an image is one pixel of the binary
// problem, whatever C: the reference (pytorch/lovasz_losses.py, lovasz_hinge) flattens each image;
// for one problem per image and channel (multi-label), pass a view shaped (N*C, 1, spatial...).
// gt_i = t_i, signs s_i = 2 t_i - 1, e_i = 1 - x_i s_i, f = relu:
//   loss = sum_k relu(e_(k)) g_k,    dL/dx_i = -s_i [e_i > 0] g_r(i)
// (relu'(0) = 0 as in PyTorch). Pixels with e_i <= 0 add nothing and are not sorted.
//
// Reductions (both losses). The loss of a problem is L_j as above. per_image: mean is
// (1/N) sum_n L_n (every image counts, also one whose pixels are all ignored or whose classes
// are all left out: its L_n is 0, as the reference lovasz_hinge's; the reference
// lovasz_softmax returns an empty tensor for such an image, which makes its per-image mean
// meaningless, so 0 is our choice there), sum is sum_n L_n, none gives the N values (shape
// (N)). Without per_image there is one problem: mean and sum give L, none gives
// shape (1).
//
// Options of lovasz_softmax (defaults as the reference lovasz_softmax, except ignore_index):
//   reduction     mean (default), sum, none; see above.
//   per_image     false (default): one problem over the batch; true: one per image.
//   classes       present (default): the classes with at least one pixel (not ignored) in the
//                 problem; all: every class, also one absent from the problem (its G = 0, so
//                 loss_c = max_i p_ic).
//   class_list    when non-empty, these classes are counted (present or not; the reference's
//                 list of classes) and `classes` is not used. Entries in [0, C), no repeats.
//   ignore_index  a label whose pixels belong to no problem: no error, no gradient (0). Default
//                 -100 (the reference's ignore = None, since -100 is no class).
//   A problem with no class counted (every pixel ignored, or no listed class) has loss 0 and
//   gives no gradient. C = 1 is allowed: p = 1, every error is 0, loss 0 and a zero gradient
//   (use lovasz_hinge, or two classes, for a binary problem).
// Options of lovasz_hinge (defaults as the reference lovasz_hinge):
//   reduction     mean (default), sum, none; see above.
//   per_image     true (default): one problem per image; false: one over the batch.
//   ignore        optional label value whose pixels belong to no problem (gradient 0), compared
//                 in the labels' type T, as PyTorch's labels != ignore (0.1 ignores float labels
//                 0.1f, and float16 / bfloat16 labels of 0.1 rounded to their type). Default
//                 none (every pixel counts), as the reference's ignore = None.
//   A problem without pixels (all ignored) has loss 0 and no gradient.
//
// Cost and memory. Per (problem, class) one sort of P errors: an LSD radix sort on their bits
// (11-bit digits: 3 passes in float, 6 in double; O(P) each), stable, so that equal errors keep
// pixel order and the result does not depend on the thread count. Problems and classes run in
// parallel (OpenMP), each sort on one thread, so a batch problem with few classes uses as many
// threads as it has classes; lovasz_hinge with per_image = false (one problem) splits its sort
// across the threads (the walk stays on one). Memory:
// two arrays of P (key, position) records per sort in flight (16 bytes per pixel in float, 32
// in double, and 32 in both from 2^31 pixels on, whose positions are 64-bit), i.e. O(P) per
// thread, which a sort needs; lovasz_softmax also keeps the max logit, the inverse sum of
// exponentials and 1 - p of the most probable class of every pixel (3 values of T per pixel,
// 3/C of the logits' size; the last keeps float's precision for a pixel whose top logit leads by
// 15 or more, docs/gradients.md §11.3). The gradient
// is written into the output (the per-pixel dL/dp first, then the softmax's Jacobian in place);
// nothing else the size of the logits is allocated. The loss is not a sum over pixels, so there
// is no statistics/finalize split: a sharded batch must gather its problems.
//
// NaN: a NaN logit sorts as the largest error of its problem, and the problem's loss is NaN. In
// lovasz_softmax the gradient of its pixel is NaN (its softmax is); in lovasz_hinge the pixel's
// gradient entry is -s_i g_1, finite (the other pixels' entries are as if it were the largest
// error). |x| = 1e4 is finite: probabilities round to 0 or 1 (nearly: the CPU's SIMD exp gives
// about 1e-311 for exp(-2e4) where the exact value underflows to 0, so a gradient entry may be
// of that size where the CUDA path has 0), errors tie at 0 and keep pixel order.
//
// CUDA (docs/cuda.md, "lovasz_hinge and lovasz_softmax on CUDA"): CUDA tensors run every form and
// option above on the current stream, one block per problem (and class) with a stable radix sort of
// the same keys, so the permutation is the CPU's; values agree with the CPU to rounding. Labels are
// checked on the device: a bad label makes its problem's loss and gradient NaN, and the forms that
// return a host value raise the CPU's message. The device-value form of value_and_grad does not
// wait: its value is NaN for a bad label. The workspace grows with the input
// (cuda::lovasz_workspace_size). class_list with any C (above 1024 classes its mask goes
// to the workspace).
//
// Errors (segloss::Error): rank outside 3..5, a zero extent, labels of the wrong shape, a label
// outside [0, C) that is not ignore_index (softmax) or a label other than 0 and 1 that is not
// options.ignore (hinge), each naming its position and value; a class_list entry outside [0, C)
// or repeated; grad_out of the wrong shape; value_and_grad with reduction none; a grad that is
// the logits in lovasz_softmax (its Jacobian step reads them after writing dL/dp into grad).
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "../core/reduction.hpp"
#include "../core/result.hpp"
#include "../core/tensor.hpp"

namespace segloss {

// Which classes lovasz_softmax averages over, when no explicit class_list is given.
enum class LovaszClasses { present, all };
namespace detail {
inline constexpr const char* kLovaszClassesNames[] = {"present", "all"};
}  // namespace detail

template <class T>
struct LovaszSoftmaxOptions {
  Reduction reduction = Reduction::mean;
  bool per_image = false;
  LovaszClasses classes = LovaszClasses::present;
  std::vector<int64_t> class_list;  // non-empty: exactly these classes
  int64_t ignore_index = -100;
};

template <class T>
struct LovaszHingeOptions {
  Reduction reduction = Reduction::mean;
  bool per_image = true;
  std::optional<double> ignore;  // a label value that marks pixels to ignore
};

namespace detail {
template <class L>
constexpr bool kLovaszLabel = std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>;
}  // namespace detail

// Forward: shape () for mean and sum; (N) per image or (1) for the batch for none.
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
Tensor<T> lovasz_softmax(const Tensor<T>& logits, const Tensor<L>& labels,
                         const LovaszSoftmaxOptions<T>& options = {});
// Backward: grad_out has one element for mean and sum, the forward's shape for none.
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
Tensor<T> lovasz_softmax_backward(const Tensor<T>& logits, const Tensor<L>& labels,
                                  const Tensor<T>& grad_out,
                                  const LovaszSoftmaxOptions<T>& options = {});
// Fused value and gradient (mean or sum); the second form writes into `grad`.
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
ValueAndGrad<T> lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                              const LovaszSoftmaxOptions<T>& options = {});
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
double lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                     Tensor<T>& grad, const LovaszSoftmaxOptions<T>& options = {});
// The value into `value` instead: one element on the logits' device (allocated, shape (), when
// undefined). On CUDA nothing waits: the value is written on the stream, as the gradient is; a
// bad label makes it NaN (and its problem's gradient) instead of raising. On the CPU it is the
// host form's value rounded to T.
template <class T, class L, class = std::enable_if_t<detail::kLovaszLabel<L>>>
void lovasz_softmax_value_and_grad(const Tensor<T>& logits, const Tensor<L>& labels,
                                   Tensor<T>& grad, Tensor<T>& value,
                                   const LovaszSoftmaxOptions<T>& options = {});

// The same five for the binary hinge; labels have the logits' shape and type.
template <class T>
Tensor<T> lovasz_hinge(const Tensor<T>& logits, const Tensor<T>& labels,
                       const LovaszHingeOptions<T>& options = {});
template <class T>
Tensor<T> lovasz_hinge_backward(const Tensor<T>& logits, const Tensor<T>& labels,
                                const Tensor<T>& grad_out,
                                const LovaszHingeOptions<T>& options = {});
template <class T>
ValueAndGrad<T> lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels,
                                            const LovaszHingeOptions<T>& options = {});
template <class T>
double lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels,
                                   Tensor<T>& grad, const LovaszHingeOptions<T>& options = {});
// The value into `value` instead, as for lovasz_softmax above.
template <class T>
void lovasz_hinge_value_and_grad(const Tensor<T>& logits, const Tensor<T>& labels, Tensor<T>& grad,
                                 Tensor<T>& value, const LovaszHingeOptions<T>& options = {});

}  // namespace segloss
