// @brief A streaming multi-class confusion matrix: int64 counts hist[true][pred] over C classes,
// updated from label maps or fused from logits, mergeable across shards.
//
// hist[t][p] counts the pixels whose true label is t and whose predicted label is p, as
// pytorch-fcn's _fast_hist(label_true, label_pred, n_class) (rows: truth, columns: prediction).
// The scores built on it (pixel accuracy, IoU, Dice, ...) are in metrics/scores.hpp.
//
// Updates:
//   update(pred_labels, true_labels)  two label maps of the same shape, any rank >= 1 (e.g.
//       (N, H, W) or one image (H, W)), int32 or int64 each.
//   update_from_logits(logits, true_labels)  logits (N, C, spatial...) with 1 to 3 spatial axes,
//       float or double, C = num_classes; true labels (N, spatial...). The predicted label is
//       argmax_c logits[n, c, ...], fused: the class axis is read once per pixel and no argmax
//       tensor is made. Ties go to the lowest class index, and a NaN logit counts as the largest
//       (its first occurrence wins), as torch.argmax and numpy.argmax.
//   An empty map (a zero extent) adds nothing.
//
// Options (ConfusionMatrixOptions):
//   ignore_index  a true label whose pixels are not counted (their prediction is not read).
//                 Default -100, PyTorch's ignore_index and segloss's cross_entropy default; VOC
//                 and ADE20K label maps mark void pixels 255, pytorch-fcn's loader -1: set it
//                 to match. It may be a class in [0, C) (e.g. 0 to leave out the background):
//                 the scores then leave that class out (metrics/scores.hpp, "The ignored
//                 class").
//   out_of_range  a true label outside [0, C) that is not ignore_index:
//                 error (default): segloss::Error naming its position and value; nothing is
//                   counted from that update.
//                 drop: the pixel is silently not counted, as pytorch-fcn's _fast_hist does
//                   (mask = (t >= 0) & (t < n_class)). pytorch_fcn() is this preset.
//   A predicted label outside [0, C) at a counted pixel is always an error: the prediction is a
//   class the model chose, so anything else is a bug upstream. pytorch-fcn does not check it and
//   miscounts: bincount(C t + p) files p = C under (t + 1, 0), a negative p under row t - 1,
//   and p = C at t = C - 1 makes the reshape fail.
//
// Counting: the pixels are split into chunks fixed by the shape; each thread counts into its
// own histograms, which are then added in thread order. Integer counts make the result exact and
// the same at any thread count. On an error the matrix is unchanged (the counts of a failed
// update are discarded), so a caller may catch it and carry on.
//
// merge(other) adds another matrix's counts (shards, ranks, or per-image matrices into a
// total); the class counts must agree, the options are not compared (they govern updates only).
// counts() is the row-major C x C array; from_counts() rebuilds a matrix from such an array
// (e.g. after an MPI all-reduce of counts()).
//
// CUDA (docs/cuda.md): label maps or logits on a CUDA device are counted there
// (backends/cuda/confusion_matrix.cu; both tensors of an update on the device, an error
// otherwise), with the same options, tie and NaN rules, and error messages. The counts are
// integers added by integer atomics, so they are exact and equal to the CPU's; the C x C counts
// are copied back into this host object, so an update waits for the current stream.
//
// Errors (segloss::Error): num_classes outside [1, 32768]; shapes that differ; a label map of
// rank 0; logits of rank outside 3..5 or with a class axis other than num_classes; true labels
// not shaped like the logits without the class axis; tensors on another device; bad labels as
// above; merge with another num_classes; from_counts with a wrong size or a negative count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/tensor.hpp"

namespace segloss {

// What a true label outside [0, C) that is not ignore_index does.
enum class OutOfRange { error, drop };
namespace detail {
inline constexpr const char* kOutOfRangeNames[] = {"error", "drop"};
}  // namespace detail

struct ConfusionMatrixOptions {
  int64_t ignore_index = -100;
  OutOfRange out_of_range = OutOfRange::error;

  // pytorch-fcn's _fast_hist: every true label outside [0, C) is dropped silently.
  static ConfusionMatrixOptions pytorch_fcn() {
    ConfusionMatrixOptions o;
    o.out_of_range = OutOfRange::drop;
    return o;
  }
};

template <class L>
inline constexpr bool kLabelType = std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>;

class ConfusionMatrix {
 public:
  // The largest num_classes (any int16 label map fits). The matrix holds C * C int64 counts:
  // 8 * C^2 bytes, 1.3 MB at C = 150 but 8 GiB at kMaxClasses, allocated by the constructor
  // (std::bad_alloc where the memory is not there; the C API returns
  // SEGLOSS_ERROR_OUT_OF_MEMORY). Each update allocates one more matrix of that size per thread
  // for its private histograms (four for small C; backends/cpu/confusion_matrix.cpp).
  static constexpr int64_t kMaxClasses = 32768;

  explicit ConfusionMatrix(int64_t num_classes, const ConfusionMatrixOptions& options = {});

  // A matrix holding `counts` (row-major C x C, hist[t * C + p]).
  static ConfusionMatrix from_counts(int64_t num_classes, std::vector<int64_t> counts,
                                     const ConfusionMatrixOptions& options = {});

  template <class P, class L, class = std::enable_if_t<kLabelType<P> && kLabelType<L>>>
  void update(const Tensor<P>& pred_labels, const Tensor<L>& true_labels);

  template <class T, class L,
            class = std::enable_if_t<std::is_floating_point_v<T> && kLabelType<L>>>
  void update_from_logits(const Tensor<T>& logits, const Tensor<L>& true_labels);

  void merge(const ConfusionMatrix& other);
  void reset();  // every count to 0

  int64_t num_classes() const { return classes_; }
  const ConfusionMatrixOptions& options() const { return options_; }
  // hist[true_class][pred_class]; both in [0, C) (checked).
  int64_t count(int64_t true_class, int64_t pred_class) const;
  const std::vector<int64_t>& counts() const { return hist_; }
  // The counts as one buffer (C * C int64, row-major as counts()) for an all-reduce in place
  // across shards: MPI_Allreduce(MPI_IN_PLACE, cm.data(), int(cm.size()), MPI_INT64_T, MPI_SUM,
  // comm) leaves every rank with the batch's matrix (integer sums: exact in any order). Counts
  // written here are checked where they are summed (total, true_counts, pred_counts, margins,
  // every score): a negative count, or counts summing past 2^63 - 1, raise there.
  int64_t* data() { return hist_.data(); }
  const int64_t* data() const { return hist_.data(); }
  size_t size() const { return hist_.size(); }
  Tensor<int64_t> matrix() const;            // a (C, C) copy
  int64_t total() const;                     // every counted pixel
  std::vector<int64_t> true_counts() const;  // row sums: the support of each class
  std::vector<int64_t> pred_counts() const;  // column sums
  // The row sums, the column sums and the total together, checked and formed in one pass over
  // the C * C counts (true_counts and pred_counts make one pass each).
  struct Margins {
    std::vector<int64_t> true_counts, pred_counts;
    int64_t total = 0;
  };
  Margins margins() const;

 private:
  int64_t classes_;
  ConfusionMatrixOptions options_;
  std::vector<int64_t> hist_;
};

// One matrix per image (axis 0) of a batch: what per-image scores (metrics/scores.hpp,
// Average::per_image) need. pred/true (N, ...) label maps of rank >= 2, or logits (N, C, ...)
// and true labels (N, ...). Errors name positions in the whole batch.
template <class P, class L, class = std::enable_if_t<kLabelType<P> && kLabelType<L>>>
std::vector<ConfusionMatrix> confusion_per_image(const Tensor<P>& pred_labels,
                                                 const Tensor<L>& true_labels, int64_t num_classes,
                                                 const ConfusionMatrixOptions& options = {});
template <class T, class L, class = std::enable_if_t<std::is_floating_point_v<T> && kLabelType<L>>>
std::vector<ConfusionMatrix> confusion_per_image_from_logits(
    const Tensor<T>& logits, const Tensor<L>& true_labels,
    const ConfusionMatrixOptions& options = {});

}  // namespace segloss
