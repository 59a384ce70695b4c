// ConfusionMatrix: argument checks and error messages; the counting is in
// backends/cpu/confusion_matrix.cpp.
#include "confusion_matrix.hpp"

#include <numeric>
#include <utility>

#include "../backends/cpu/confusion_matrix.hpp"
#include "../core/checks.hpp"
#if defined(SEGLOSS_WITH_CUDA)
#include "../backends/cuda/confusion_matrix.hpp"
#include "../backends/cuda/cross_entropy.hpp"  // read_element
#endif

namespace segloss {
namespace {

void check_classes(const char* fn, int64_t c) {
  SEGLOSS_CHECK(c >= 1 && c <= ConfusionMatrix::kMaxClasses, fn, "num_classes is ", c,
                "; it must be in [1, ", ConfusionMatrix::kMaxClasses, "]");
}

// The classes and the options a matrix is made with.
void check_setup(const char* fn, int64_t c, const ConfusionMatrixOptions& o) {
  check_classes(fn, c);
  detail::check_enum(fn, "options.", "out_of_range", o.out_of_range, detail::kOutOfRangeNames);
}

cpu::HistRule rule_of(int64_t classes, const ConfusionMatrixOptions& o) {
  cpu::HistRule r;
  r.classes = classes;
  r.ignore_index = o.ignore_index;
  r.drop_out_of_range = o.out_of_range == OutOfRange::drop;
  return r;
}

template <class L>
void check_labels_defined(const char* fn, const char* arg, const Tensor<L>& t) {
  SEGLOSS_CHECK(t.defined(), fn, arg, " is undefined");
  SEGLOSS_CHECK(t.rank() >= 1, fn, arg, " has rank 0; a label map has rank >= 1");
}

// pred_labels on the CPU or (in a build with the backend) on CUDA; true_labels on its device.
template <class P, class L>
void check_label_pair(const char* fn, const Tensor<P>& pred, const Tensor<L>& truth) {
  check_labels_defined(fn, "pred_labels", pred);
  detail::check_input_device(fn, "pred_labels", pred, true);
  check_labels_defined(fn, "true_labels", truth);
  detail::check_same_device(fn, "true_labels", truth, pred.device(), "pred_labels");
  SEGLOSS_CHECK(pred.shape() == truth.shape(), fn, "pred_labels ", pred.shape(),
                " does not match true_labels ", truth.shape());
}

template <class T, class L>
void check_logits_pair(const char* fn, const Tensor<T>& logits, const Tensor<L>& truth,
                       int64_t classes) {
  SEGLOSS_CHECK(logits.defined(), fn, "logits is undefined");
  SEGLOSS_CHECK(logits.rank() >= 3 && logits.rank() <= 5, fn, "logits ", logits.shape(),
                " has rank ", logits.rank(),
                "; expected (N, C, spatial...) with 1 to 3 spatial axes");
  detail::check_input_device(fn, "logits", logits, true);
  SEGLOSS_CHECK(logits.size(1) == classes, fn, "logits ", logits.shape(), " has ", logits.size(1),
                " classes on axis 1; the matrix has ", classes);
  check_labels_defined(fn, "true_labels", truth);
  detail::check_same_device(fn, "true_labels", truth, logits.device());
  SEGLOSS_CHECK(truth.shape() == logits.shape().without(1), fn, "true_labels ", truth.shape(),
                " does not match logits ", logits.shape(), " without the class axis");
}

// Element i of a label map on the CPU or (copied back) on CUDA.
template <class L>
int64_t label_at(const L* data, int64_t i, Device device) {
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda) return cuda::read_element(data, i);
#endif
  (void)device;
  return static_cast<int64_t>(data[i]);
}

// Turns a kernel's first bad pixel into the error message. `offset` is the linear index of the
// kernel's first pixel in the tensors (per-image updates); pred is null for the logits path.
template <class P, class L>
void report(const char* fn, const cpu::HistResult& r, int64_t offset, const P* pred,
            const Tensor<L>& truth, int64_t classes, const ConfusionMatrixOptions& o) {
  if (r.first_bad < 0) return;
  const int64_t i = offset + r.first_bad;
  const Shape& s = truth.shape();
  const Device d = truth.device();
  if (r.bad_is_pred)
    detail::fail(fn, "pred_labels has label ", label_at(pred, i, d), " at ", s.position(i),
                 " (true label ", label_at(truth.data(), i, d), "), outside [0, ", classes,
                 "); a predicted label must be a class");
  detail::fail(fn, "true_labels has label ", label_at(truth.data(), i, d), " at ", s.position(i),
               ", outside [0, ", classes, ") and not ignore_index ", o.ignore_index,
               " (options.out_of_range = drop skips such pixels silently, as pytorch-fcn)");
}

// The counting kernels of the labels' device.
template <class P, class L>
cpu::HistResult count_labels(const char* fn, const P* pred, const L* truth, int64_t count,
                             const cpu::HistRule& rule, int64_t* hist, Device device) {
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda)
    return cuda::confusion_from_labels(fn, pred, truth, count, rule, hist);
#endif
  (void)fn, (void)device;
  return cpu::confusion_from_labels(pred, truth, count, rule, hist);
}

template <class T, class L>
cpu::HistResult count_logits(const char* fn, const T* logits, const L* truth, int64_t images,
                             int64_t pixels, const cpu::HistRule& rule, int64_t* hist,
                             Device device) {
#if defined(SEGLOSS_WITH_CUDA)
  if (device == Device::cuda)
    return cuda::confusion_from_logits(fn, logits, truth, images, pixels, rule, hist);
#endif
  (void)fn, (void)device;
  return cpu::confusion_from_logits(logits, truth, images, pixels, rule, hist);
}

// The sum of the counts, which must be >= 0 each and fit in int64 together (a matrix from
// from_counts or written through data() can hold anything): every row, column and score sum is
// then exact. (A negative count written through data() gave a pixel accuracy of 1.29.)
// Count i, v, checked and added to `sum`.
inline void add_count(const char* fn, size_t i, int64_t v, int64_t& sum) {
  SEGLOSS_CHECK(v >= 0, fn, "count ", i, " of the matrix is ", v,
                "; counts are >= 0 (were they written through data()?)");
  SEGLOSS_CHECK(!__builtin_add_overflow(sum, v, &sum), fn,
                "the counts sum past 2^63 - 1; a matrix holds at most that many pixels");
}

int64_t checked_total(const char* fn, const std::vector<int64_t>& hist) {
  int64_t sum = 0;
  for (size_t i = 0; i < hist.size(); ++i) add_count(fn, i, hist[i], sum);
  return sum;
}

// The row and column sums and the total, each count checked as checked_total does, in one pass.
// The total bounds every row and column sum, so these cannot overflow once it is checked.
ConfusionMatrix::Margins margins_of(const char* fn, int64_t classes,
                                    const std::vector<int64_t>& hist) {
  ConfusionMatrix::Margins m;
  m.true_counts.assign(static_cast<size_t>(classes), 0);
  m.pred_counts.assign(static_cast<size_t>(classes), 0);
  size_t i = 0;
  for (int64_t t = 0; t < classes; ++t) {
    int64_t row = 0;
    for (int64_t p = 0; p < classes; ++p, ++i) {
      const int64_t v = hist[i];
      add_count(fn, i, v, m.total);
      row += v;
      m.pred_counts[static_cast<size_t>(p)] += v;
    }
    m.true_counts[static_cast<size_t>(t)] = row;
  }
  return m;
}

// Room for `pixels` more counts (an update adds at most one per pixel).
void check_room(const char* fn, const std::vector<int64_t>& hist, int64_t pixels) {
  const int64_t total = checked_total(fn, hist);
  SEGLOSS_CHECK(total <= std::numeric_limits<int64_t>::max() - pixels, fn, "the matrix holds ",
                total, " pixels; ", pixels, " more could pass 2^63 - 1");
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int64_t num_classes, const ConfusionMatrixOptions& options)
    : classes_(num_classes), options_(options) {
  check_setup("ConfusionMatrix", num_classes, options);
  hist_.assign(static_cast<size_t>(num_classes * num_classes), 0);
}

ConfusionMatrix ConfusionMatrix::from_counts(int64_t num_classes, std::vector<int64_t> counts,
                                             const ConfusionMatrixOptions& options) {
  const char* fn = "ConfusionMatrix::from_counts";
  check_setup(fn, num_classes, options);
  SEGLOSS_CHECK(static_cast<int64_t>(counts.size()) == num_classes * num_classes, fn, "counts has ",
                counts.size(), " values; ", num_classes, " classes need ",
                num_classes * num_classes);
  for (size_t i = 0; i < counts.size(); ++i)
    SEGLOSS_CHECK(counts[i] >= 0, fn, "counts[", i, "] is ", counts[i], "; counts are >= 0");
  checked_total(fn, counts);
  ConfusionMatrix m(num_classes, options);
  m.hist_ = std::move(counts);
  return m;
}

template <class P, class L, class>
void ConfusionMatrix::update(const Tensor<P>& pred_labels, const Tensor<L>& true_labels) {
  const char* fn = "ConfusionMatrix::update";
  check_label_pair(fn, pred_labels, true_labels);
  check_room(fn, hist_, true_labels.numel());
  const auto r = count_labels(fn, pred_labels.data(), true_labels.data(), true_labels.numel(),
                              rule_of(classes_, options_), hist_.data(), true_labels.device());
  report(fn, r, 0, pred_labels.data(), true_labels, classes_, options_);
}

template <class T, class L, class>
void ConfusionMatrix::update_from_logits(const Tensor<T>& logits, const Tensor<L>& true_labels) {
  const char* fn = "ConfusionMatrix::update_from_logits";
  check_logits_pair(fn, logits, true_labels, classes_);
  // opt-in (core/finite.hpp); host memory only
  if (check_finite_enabled() && logits.device() == Device::cpu) check_finite(logits, "logits", fn);
  check_room(fn, hist_, true_labels.numel());
  const Shape& s = logits.shape();
  const auto r = count_logits(fn, logits.data(), true_labels.data(), s[0], s.numel_from(2),
                              rule_of(classes_, options_), hist_.data(), logits.device());
  report(fn, r, 0, static_cast<const int32_t*>(nullptr), true_labels, classes_, options_);
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  SEGLOSS_CHECK(other.classes_ == classes_, "ConfusionMatrix::merge", "other has ", other.classes_,
                " classes; this matrix has ", classes_);
  check_room("ConfusionMatrix::merge", hist_,
             checked_total("ConfusionMatrix::merge (other)", other.hist_));
  for (size_t i = 0; i < hist_.size(); ++i) hist_[i] += other.hist_[i];
}

void ConfusionMatrix::reset() {
  std::fill(hist_.begin(), hist_.end(), 0);
}

int64_t ConfusionMatrix::count(int64_t true_class, int64_t pred_class) const {
  SEGLOSS_CHECK(
      true_class >= 0 && true_class < classes_ && pred_class >= 0 && pred_class < classes_,
      "ConfusionMatrix::count", "class pair (", true_class, ", ", pred_class, ") is outside [0, ",
      classes_, ")");
  return hist_[static_cast<size_t>(true_class * classes_ + pred_class)];
}

Tensor<int64_t> ConfusionMatrix::matrix() const {
  return Tensor<int64_t>::from(hist_, Shape{classes_, classes_});
}

int64_t ConfusionMatrix::total() const {
  return checked_total("ConfusionMatrix::total", hist_);
}

ConfusionMatrix::Margins ConfusionMatrix::margins() const {
  return margins_of("ConfusionMatrix::margins", classes_, hist_);
}

std::vector<int64_t> ConfusionMatrix::true_counts() const {
  return margins_of("ConfusionMatrix::true_counts", classes_, hist_).true_counts;
}

std::vector<int64_t> ConfusionMatrix::pred_counts() const {
  return margins_of("ConfusionMatrix::pred_counts", classes_, hist_).pred_counts;
}

template <class P, class L, class>
std::vector<ConfusionMatrix> confusion_per_image(const Tensor<P>& pred_labels,
                                                 const Tensor<L>& true_labels, int64_t num_classes,
                                                 const ConfusionMatrixOptions& options) {
  const char* fn = "confusion_per_image";
  check_setup(fn, num_classes, options);
  check_label_pair(fn, pred_labels, true_labels);
  SEGLOSS_CHECK(true_labels.rank() >= 2, fn, "true_labels ", true_labels.shape(),
                " has rank 1; per-image matrices need (N, spatial...)");
  const int64_t n = true_labels.size(0), px = true_labels.shape().numel_from(1);
  std::vector<ConfusionMatrix> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> hist(static_cast<size_t>(num_classes * num_classes), 0);
    const auto r = count_labels(fn, pred_labels.data() + i * px, true_labels.data() + i * px, px,
                                rule_of(num_classes, options), hist.data(), true_labels.device());
    report(fn, r, i * px, pred_labels.data(), true_labels, num_classes, options);
    out.push_back(ConfusionMatrix::from_counts(num_classes, std::move(hist), options));
  }
  return out;
}

template <class T, class L, class>
std::vector<ConfusionMatrix> confusion_per_image_from_logits(
    const Tensor<T>& logits, const Tensor<L>& true_labels, const ConfusionMatrixOptions& options) {
  const char* fn = "confusion_per_image_from_logits";
  SEGLOSS_CHECK(logits.defined() && logits.rank() >= 2, fn, "logits ",
                logits.defined() ? logits.shape().str() : std::string("(undefined)"),
                " has no class axis; expected (N, C, spatial...)");
  const int64_t c = logits.size(1);
  check_setup(fn, c, options);
  check_logits_pair(fn, logits, true_labels, c);
  const int64_t n = logits.size(0), px = logits.shape().numel_from(2);
  std::vector<ConfusionMatrix> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> hist(static_cast<size_t>(c * c), 0);
    const auto r = count_logits(fn, logits.data() + i * c * px, true_labels.data() + i * px, 1, px,
                                rule_of(c, options), hist.data(), logits.device());
    report(fn, r, i * px, static_cast<const int32_t*>(nullptr), true_labels, c, options);
    out.push_back(ConfusionMatrix::from_counts(c, std::move(hist), options));
  }
  return out;
}

#define SEGLOSS_INSTANTIATE_LABELS(P, L)                                     \
  template void ConfusionMatrix::update(const Tensor<P>&, const Tensor<L>&); \
  template std::vector<ConfusionMatrix> confusion_per_image(                 \
      const Tensor<P>&, const Tensor<L>&, int64_t, const ConfusionMatrixOptions&);
SEGLOSS_INSTANTIATE_LABELS(int32_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int32_t, int64_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int32_t)
SEGLOSS_INSTANTIATE_LABELS(int64_t, int64_t)
#undef SEGLOSS_INSTANTIATE_LABELS

#define SEGLOSS_INSTANTIATE_LOGITS(T, L)                                                 \
  template void ConfusionMatrix::update_from_logits(const Tensor<T>&, const Tensor<L>&); \
  template std::vector<ConfusionMatrix> confusion_per_image_from_logits(                 \
      const Tensor<T>&, const Tensor<L>&, const ConfusionMatrixOptions&);
SEGLOSS_INSTANTIATE_LOGITS(float, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(float, int64_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int32_t)
SEGLOSS_INSTANTIATE_LOGITS(double, int64_t)
#undef SEGLOSS_INSTANTIATE_LOGITS

}  // namespace segloss
