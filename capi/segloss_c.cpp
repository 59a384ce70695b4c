// The C ABI (capi/segloss.h) over the C++ library: descriptors become Tensor views, C options
// become the C++ options, and every entry point runs inside guard(), which turns any exception
// into a status and this thread's last-error message. Nothing here computes a loss: it checks
// what C cannot (null pointers, dtypes, enum values) and forwards.
#define SEGLOSS_C_BUILDING
#include "segloss.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <locale>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/checks.hpp"
#include "../segloss.hpp"

using namespace segloss;

// The C enums are the C++ enums' values in order; the conversions below rely on it.
static_assert(SEGLOSS_REDUCTION_NONE == int(Reduction::none) &&
              SEGLOSS_REDUCTION_MEAN == int(Reduction::mean) &&
              SEGLOSS_REDUCTION_SUM == int(Reduction::sum));
static_assert(SEGLOSS_ACTIVATION_SIGMOID == int(Activation::sigmoid) &&
              SEGLOSS_ACTIVATION_NONE == int(Activation::none));
static_assert(SEGLOSS_EMPTY_FORMULA == int(EmptyPolicy::formula) &&
              SEGLOSS_EMPTY_ONE == int(EmptyPolicy::one) &&
              SEGLOSS_EMPTY_ZERO == int(EmptyPolicy::zero) &&
              SEGLOSS_EMPTY_SKIP == int(EmptyPolicy::skip));
static_assert(SEGLOSS_BCE_MEAN_OVER_WEIGHT_SUM == int(BceMeanOver::weight_sum));
static_assert(SEGLOSS_OVERLAP_WEIGHTING_ON_INPUTS == int(OverlapWeighting::on_inputs));
static_assert(SEGLOSS_MEAN_OVER_VALID_PIXELS == int(MeanOver::valid_pixels));
static_assert(SEGLOSS_ALL_IGNORED_NAN == int(AllIgnored::nan));
static_assert(SEGLOSS_GDICE_WEIGHT_SIMPLE == int(GeneralizedDiceWeight::simple) &&
              SEGLOSS_GDICE_WEIGHT_UNIFORM == int(GeneralizedDiceWeight::uniform));
static_assert(SEGLOSS_LOVASZ_CLASSES_ALL == int(LovaszClasses::all));
static_assert(SEGLOSS_OUT_OF_RANGE_DROP == int(OutOfRange::drop));
static_assert(SEGLOSS_SCORE_FBETA == int(Score::fbeta) &&
              SEGLOSS_SCORE_RECALL == int(Score::recall));
static_assert(SEGLOSS_AVERAGE_PER_IMAGE == int(Average::per_image));
static_assert(SEGLOSS_SURFACE_EMPTY_BOUNDED == int(SurfaceEmpty::bounded));
static_assert(SEGLOSS_MAX_NDIM == Shape::kMaxRank);

struct segloss_statistics {
  OverlapStatistics overlap;
};

struct segloss_confusion_matrix {
  ConfusionMatrix cm;
};

namespace {

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

// A failure found by the C layer itself, with its status.
struct CError {
  segloss_status status;
  std::string message;
};

// A fixed buffer: recording an error must not allocate (it may report an allocation failure).
thread_local char last_error[2048] = "";

segloss_status record(segloss_status status, const char* function, const char* message) noexcept {
  std::snprintf(last_error, sizeof last_error, "%s: %s", function, message);
  return status;
}

template <class... Args>
[[noreturn]] void fail(segloss_status status, const char* function, Args&&... parts) {
  (void)function;  // guard() prefixes the entry point's name
  std::ostringstream os;
  os.imbue(std::locale::classic());  // as detail::message
  (os << ... << detail::message_part(std::forward<Args>(parts)));
  throw CError{status, os.str()};
}

// Runs f and maps whatever it throws to a status; nothing escapes.
template <class F>
segloss_status guard(const char* function, F&& f) noexcept {
  try {
    f();
    return SEGLOSS_OK;
  } catch (const CError& e) {
    return record(e.status, function, e.message.c_str());
  } catch (const segloss::OutOfMemory& e) {  // a device allocation
    return record(SEGLOSS_ERROR_OUT_OF_MEMORY, function, e.what());
  } catch (const segloss::Error& e) {
    return record(SEGLOSS_ERROR_INVALID_ARGUMENT, function, e.what());
  } catch (const std::bad_alloc&) {
    return record(SEGLOSS_ERROR_OUT_OF_MEMORY, function, "out of memory");
  } catch (const std::length_error& e) {
    return record(SEGLOSS_ERROR_OUT_OF_MEMORY, function, e.what());
  } catch (const std::exception& e) {
    return record(SEGLOSS_ERROR_INTERNAL, function, e.what());
  } catch (...) {
    return record(SEGLOSS_ERROR_INTERNAL, function, "unknown exception");
  }
}

// A pointer the call reads or writes must be aligned to its type (the outputs `double* value`,
// `int64_t* count`, `int64_t** data`, the caller's arrays, its options and result structs), as
// a tensor's data: reading or writing a double at an odd address is undefined behaviour in C++,
// and an FFI caller can pass one.
template <class P>
void check_aligned(const P* p, const char* function, const char* argument) {
  if constexpr (!std::is_void_v<P>) {
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(P) != 0)
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " ", static_cast<const void*>(p),
           " is not aligned to ", alignof(P), " bytes");
  }
}

// Such a pointer that may not be null.
template <class P>
P* require(P* p, const char* function, const char* argument) {
  if (p == nullptr) fail(SEGLOSS_ERROR_NULL_POINTER, function, argument, " is a null pointer");
  check_aligned(p, function, argument);
  return p;
}

// The length a caller gives for one of its arrays (a class list, the spacing): in [0, 2^31 - 1].
// A wrong count (an uninitialised field, say) beyond that is refused before the array's end is
// formed: 2^61 doubles past the start wrapped the pointer, and the list was read as empty.
constexpr int64_t kMaxListSize = (int64_t{1} << 31) - 1;
void check_list_size(const char* function, const char* argument, int64_t n) {
  if (n < 0 || n > kMaxListSize)
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " is ", n, "; it must be in [0, ",
         kMaxListSize, "]");
}

// The integer stored in a C enum object (a field or an argument). A C caller may store any int
// there; in C++, loading an enum lvalue whose value is outside the enum's range is undefined
// (clang's -fsanitize=enum reports it), so every enum the caller passes is read through its
// bytes, validated as an int, and only then converted.
template <class E>
int int_of(const E& e) noexcept {
  static_assert(std::is_enum_v<E> && sizeof(E) == sizeof(int), "a C enum is an int");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// ------------------------------------------------------------------------------------------
// Tensors
// ------------------------------------------------------------------------------------------

const char* dtype_name(int d) {
  switch (d) {
    case SEGLOSS_F32:
      return "f32";
    case SEGLOSS_F64:
      return "f64";
    case SEGLOSS_I32:
      return "i32";
    case SEGLOSS_I64:
      return "i64";
    case SEGLOSS_U8:
      return "u8";
    case SEGLOSS_F16:
      return "f16";
    case SEGLOSS_BF16:
      return "bf16";
    default:
      return "unknown";
  }
}

template <class T>
constexpr segloss_dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return SEGLOSS_F32;
  if constexpr (std::is_same_v<T, double>) return SEGLOSS_F64;
  if constexpr (std::is_same_v<T, int32_t>) return SEGLOSS_I32;
  if constexpr (std::is_same_v<T, int64_t>) return SEGLOSS_I64;
  if constexpr (std::is_same_v<T, float16>) return SEGLOSS_F16;
  if constexpr (std::is_same_v<T, bfloat16>) return SEGLOSS_BF16;
}

std::string dtype_str(int d) {
  std::string s = dtype_name(d);
  if (s == "unknown") s = "unknown (" + std::to_string(d) + ")";
  return s;
}

Shape shape_of(const segloss_tensor& t, const char* function, const char* argument) {
  if (t.ndim < 0 || t.ndim > SEGLOSS_MAX_NDIM)
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " has ndim ", t.ndim,
         "; expected 0 to ", SEGLOSS_MAX_NDIM);
  Shape s;
  int64_t product = 1;  // of the nonzero extents, which Shape requires to fit in int64
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0)
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " has extent ", t.shape[i],
           " at axis ", i);
    if (t.shape[i] != 0 && __builtin_mul_overflow(product, t.shape[i], &product))
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " has extent ", t.shape[i],
           " at axis ", i, ", and its extents multiply past 2^63 - 1");
    s.push_back(t.shape[i]);
  }
  return s;
}

Device device_of(const segloss_tensor& t, const char* function, const char* argument) {
  const int device = int_of(t.device);
  if (device == SEGLOSS_CPU) return Device::cpu;
  if (device == SEGLOSS_CUDA) {
    if (!cuda::built())
      fail(SEGLOSS_ERROR_DEVICE, function, argument,
           " is on cuda; this build has no CUDA backend (segloss_has_cuda() is 0)");
    if (!cuda::available())
      fail(SEGLOSS_ERROR_DEVICE, function, argument,
           " is on cuda; no CUDA device is available (segloss_has_cuda() is 0)");
    return Device::cuda;
  }
  fail(SEGLOSS_ERROR_DEVICE, function, argument, " has device ", device,
       "; expected SEGLOSS_CPU or SEGLOSS_CUDA");
}

// A view of T over a descriptor that must have dtype T.
template <class T>
Tensor<T> view(const segloss_tensor* t, const char* function, const char* argument) {
  require(t, function, argument);
  if (int_of(t->dtype) != dtype_of<T>())
    fail(SEGLOSS_ERROR_DTYPE, function, argument, " has dtype ", dtype_str(int_of(t->dtype)),
         "; expected ", dtype_name(dtype_of<T>()));
  const Shape s = shape_of(*t, function, argument);
  const Device d = device_of(*t, function, argument);
  if (t->data == nullptr && s.numel() > 0)
    fail(SEGLOSS_ERROR_NULL_POINTER, function, argument, ".data is a null pointer for shape ", s);
  // A misaligned element pointer is undefined behaviour in C++ (the vector loads and stores of
  // the kernels assume it), and an FFI caller can pass one (a buffer at an odd byte offset).
  if (reinterpret_cast<std::uintptr_t>(t->data) % alignof(T) != 0)
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, ".data ", t->data,
         " is not aligned to ", alignof(T), " bytes, as ", dtype_name(dtype_of<T>()),
         " elements must be");
  return Tensor<T>::view(static_cast<T*>(t->data), s, d);
}

// An optional tensor of options: undefined when NULL.
template <class T>
Tensor<T> optional_view(const segloss_tensor* t, const char* function, const char* argument) {
  return t == nullptr ? Tensor<T>() : view<T>(t, function, argument);
}

// Calls f(T{}) for the logits' floating dtype.
template <class F>
void with_float(const segloss_tensor* t, const char* function, const char* argument, F&& f) {
  require(t, function, argument);
  switch (int_of(t->dtype)) {
    case SEGLOSS_F32:
      f(float{});
      return;
    case SEGLOSS_F64:
      f(double{});
      return;
    case SEGLOSS_F16:
    case SEGLOSS_BF16:
      fail(SEGLOSS_ERROR_DTYPE, function, argument, " has dtype ", dtype_str(int_of(t->dtype)),
           "; this function takes f32 or f64 (16-bit logits: the losses' entry points)");
    default:
      fail(SEGLOSS_ERROR_DTYPE, function, argument, " has dtype ", dtype_str(int_of(t->dtype)),
           "; expected f32 or f64");
  }
}

// Calls f(T{}) for the logits' floating dtype: f32, f64, f16 and bf16 (every loss's entry
// points: losses/half_logits.hpp).
template <class F>
void with_logits(const segloss_tensor* t, const char* function, const char* argument, F&& f) {
  require(t, function, argument);
  if (int_of(t->dtype) == SEGLOSS_F16) return f(float16{});
  if (int_of(t->dtype) == SEGLOSS_BF16) return f(bfloat16{});
  with_float(t, function, argument, f);
}

// Calls f(labels) with a view of int32 or int64 labels; u8 labels are copied to int32 (CPU).
template <class F>
void with_labels(const segloss_tensor* t, const char* function, const char* argument, F&& f) {
  require(t, function, argument);
  switch (int_of(t->dtype)) {
    case SEGLOSS_I32:
      f(view<int32_t>(t, function, argument));
      return;
    case SEGLOSS_I64:
      f(view<int64_t>(t, function, argument));
      return;
    case SEGLOSS_U8: {
      const Shape s = shape_of(*t, function, argument);
      if (device_of(*t, function, argument) != Device::cpu)
        fail(SEGLOSS_ERROR_DEVICE, function, argument,
             " is a u8 tensor on cuda; u8 labels are "
             "taken on the CPU only (pass i32 or i64)");
      if (t->data == nullptr && s.numel() > 0)
        fail(SEGLOSS_ERROR_NULL_POINTER, function, argument, ".data is a null pointer for shape ",
             s);
      auto labels = Tensor<int32_t>::empty(s);
      const auto* src = static_cast<const uint8_t*>(t->data);
      std::copy(src, src + s.numel(), labels.data());
      f(labels);
      return;
    }
    default:
      fail(SEGLOSS_ERROR_DTYPE, function, argument, " has dtype ", dtype_str(int_of(t->dtype)),
           "; expected i32, i64 or u8 labels");
  }
}

// What a loss takes as its target.
enum class Target {
  same,     // the logits' shape and dtype
  labels,   // a label map (i32, i64, u8)
  classes,  // a label map, or probabilities of the logits' dtype
};

// u8 labels reach the C++ losses as an int32 copy, so the C++ checks that a caller's grad or
// value is apart from the target see the copy, not the caller's buffer: compare the byte ranges
// here (an overlap would write into the caller's labels). A NULL or malformed target is left to
// with_target's errors.
template <Target K, class T>
void check_apart_from_u8(const char* function, const segloss_tensor* target, const Tensor<T>& out,
                         const char* argument) {
  if constexpr (K == Target::same) return;  // a u8 target is a dtype error there (with_target)
  if (target == nullptr || int_of(target->dtype) != SEGLOSS_U8 || target->ndim < 0 ||
      target->ndim > SEGLOSS_MAX_NDIM)
    return;
  const auto labels = static_cast<std::size_t>(shape_of(*target, function, "target").numel());
  if (detail::overlaps(out.data(), detail::data_bytes(out), target->data, labels))
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument,
         " overlaps target (u8 labels); pass a buffer apart from it");
}

template <Target K, class T, class F>
void with_target(const segloss_tensor* t, const char* function, F&& f) {
  require(t, function, "target");
  if constexpr (K == Target::same) {
    f(view<T>(t, function, "target"));
  } else if constexpr (K == Target::labels) {
    with_labels(t, function, "target", f);
  } else {
    const int dtype = int_of(t->dtype);
    if (dtype == dtype_of<T>())
      f(view<T>(t, function, "target"));
    else if (dtype == SEGLOSS_I32 || dtype == SEGLOSS_I64 || dtype == SEGLOSS_U8)
      with_labels(t, function, "target", f);
    else
      fail(SEGLOSS_ERROR_DTYPE, function, "target has dtype ", dtype_str(int_of(t->dtype)),
           "; expected i32, i64 or u8 labels, or ", dtype_name(dtype_of<T>()),
           " probabilities like the logits");
  }
}

// Copies a result computed by the library into the caller's buffer `out`: same dtype, and the
// result's shape (a scalar result fits any one-element buffer). Either may be on the GPU; the
// copy runs on the call's stream and waits for it.
template <class T>
void copy_out(const Tensor<T>& result, const segloss_tensor* out, const char* function,
              const char* argument) {
  const Tensor<T> o = view<T>(out, function, argument);
  const bool fits = result.rank() == 0 ? o.numel() == 1 : o.shape() == result.shape();
  if (!fits)
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " has shape ", o.shape(),
         "; the result has shape ", result.shape());
  Tensor<T>::view(o.data(), result.shape(), o.device()).copy_from(result);
}

// ------------------------------------------------------------------------------------------
// Options: C structs to C++ structs (NULL: the C++ defaults)
// ------------------------------------------------------------------------------------------

template <class E>
E enum_of(int value, int count, const char* function, const char* field, const char* type) {
  if (value < 0 || value >= count)
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "options.", field, " is ", value,
         ", not a value of ", type);
  return static_cast<E>(value);
}

#define SEGLOSS_ENUM(VALUE, COUNT, FIELD, CPP, CTYPE) \
  enum_of<CPP>(int_of(VALUE), COUNT, function, FIELD, CTYPE)

Reduction reduction_of(const segloss_reduction& r, const char* function, const char* field) {
  return SEGLOSS_ENUM(r, 3, field, Reduction, "segloss_reduction");
}
EmptyPolicy empty_of(const segloss_empty_policy& e, const char* function, const char* field) {
  return SEGLOSS_ENUM(e, 4, field, EmptyPolicy, "segloss_empty_policy");
}

// p: the fields' prefix in messages ("bce." inside bce_dice's options).
template <class T>
void bce_with_logits_to_cpp(const segloss_bce_with_logits_options& c, BceWithLogitsOptions<T>& o,
                            const char* function, const std::string& p) {
  o.reduction = reduction_of(c.reduction, function, (p + "reduction").c_str());
  o.weight = optional_view<T>(c.weight, function, ("options." + p + "weight").c_str());
  o.pos_weight = optional_view<T>(c.pos_weight, function, ("options." + p + "pos_weight").c_str());
  o.mean_over =
      SEGLOSS_ENUM(c.mean_over, 2, (p + "mean_over").c_str(), BceMeanOver, "segloss_bce_mean_over");
  o.label_smoothing = c.label_smoothing;
}

template <class T>
BceWithLogitsOptions<T> to_cpp(const segloss_bce_with_logits_options* c, const char* function) {
  BceWithLogitsOptions<T> o;
  if (c) {
    check_aligned(c, function, "options");
    bce_with_logits_to_cpp(*c, o, function, "");
  }
  return o;
}

template <class T>
BinaryCrossEntropyOptions<T> to_cpp(const segloss_binary_cross_entropy_options* c,
                                    const char* function) {
  BinaryCrossEntropyOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.reduction = reduction_of(c->reduction, function, "reduction");
  o.weight = optional_view<T>(c->weight, function, "options.weight");
  return o;
}

template <class T>
SigmoidFocalOptions<T> to_cpp(const segloss_sigmoid_focal_options* c, const char* function) {
  SigmoidFocalOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.reduction = reduction_of(c->reduction, function, "reduction");
  o.alpha = c->alpha;
  o.gamma = c->gamma;
  o.weight = optional_view<T>(c->weight, function, "options.weight");
  return o;
}

template <class T>
void overlap_to_cpp(const segloss_overlap_options& c, OverlapOptions<T>& o, const char* function,
                    const char* prefix) {
  const std::string p = prefix;
  o.reduction = reduction_of(c.reduction, function, (p + "reduction").c_str());
  o.smooth_nr = c.smooth_nr;
  o.smooth_dr = c.smooth_dr;
  o.per_image = c.per_image != 0;
  o.activation =
      SEGLOSS_ENUM(c.activation, 2, (p + "activation").c_str(), Activation, "segloss_activation");
  o.squared = c.squared != 0;
  o.weight = optional_view<T>(c.weight, function, ("options." + p + "weight").c_str());
  o.weighting = SEGLOSS_ENUM(c.weighting, 2, (p + "weighting").c_str(), OverlapWeighting,
                             "segloss_overlap_weighting");
  o.class_weight =
      optional_view<T>(c.class_weight, function, ("options." + p + "class_weight").c_str());
  o.include_background = c.include_background != 0;
  o.empty = empty_of(c.empty, function, (p + "empty").c_str());
  o.gamma = c.gamma;
  o.log = c.log != 0;
  o.clamp = c.clamp != 0;
}

template <class T>
OverlapOptions<T> to_cpp(const segloss_overlap_options* c, const char* function) {
  OverlapOptions<T> o;
  if (c) {
    check_aligned(c, function, "options");
    overlap_to_cpp(*c, o, function, "");
  }
  return o;
}

template <class T>
TverskyOptions<T> to_cpp(const segloss_tversky_options* c, const char* function) {
  TverskyOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  overlap_to_cpp<T>(c->overlap, o, function, "overlap.");
  o.alpha = c->alpha;
  o.beta = c->beta;
  return o;
}

template <class T>
BceDiceOptions<T> to_cpp(const segloss_bce_dice_options* c, const char* function) {
  BceDiceOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.bce_weight = c->bce_weight;
  o.dice_weight = c->dice_weight;
  bce_with_logits_to_cpp<T>(c->bce, o.bce, function, "bce.");
  overlap_to_cpp<T>(c->dice, o.dice, function, "dice.");
  return o;
}

template <class T>
void cross_entropy_to_cpp(const segloss_cross_entropy_options& c, CrossEntropyOptions<T>& o,
                          const char* function, const std::string& p) {
  o.reduction = reduction_of(c.reduction, function, (p + "reduction").c_str());
  o.weight = optional_view<T>(c.weight, function, ("options." + p + "weight").c_str());
  o.ignore_index = c.ignore_index;
  o.label_smoothing = c.label_smoothing;
  o.ignore_negative = c.ignore_negative != 0;
  o.mean_over =
      SEGLOSS_ENUM(c.mean_over, 2, (p + "mean_over").c_str(), MeanOver, "segloss_mean_over");
  o.all_ignored = SEGLOSS_ENUM(c.all_ignored, 2, (p + "all_ignored").c_str(), AllIgnored,
                               "segloss_all_ignored");
}

template <class T>
CrossEntropyOptions<T> to_cpp(const segloss_cross_entropy_options* c, const char* function) {
  CrossEntropyOptions<T> o;
  if (c) {
    check_aligned(c, function, "options");
    cross_entropy_to_cpp(*c, o, function, "");
  }
  return o;
}

template <class T>
void softmax_focal_to_cpp(const segloss_softmax_focal_options& c, SoftmaxFocalOptions<T>& o,
                          const char* function, const std::string& p) {
  o.reduction = reduction_of(c.reduction, function, (p + "reduction").c_str());
  o.alpha = optional_view<T>(c.alpha, function, ("options." + p + "alpha").c_str());
  o.gamma = c.gamma;
  o.ignore_index = c.ignore_index;
}

template <class T>
SoftmaxFocalOptions<T> to_cpp(const segloss_softmax_focal_options* c, const char* function) {
  SoftmaxFocalOptions<T> o;
  if (c) {
    check_aligned(c, function, "options");
    softmax_focal_to_cpp(*c, o, function, "");
  }
  return o;
}

template <class T>
void softmax_overlap_to_cpp(const segloss_softmax_overlap_options& c, SoftmaxOverlapOptions<T>& o,
                            const char* function, const std::string& p) {
  o.reduction = reduction_of(c.reduction, function, (p + "reduction").c_str());
  o.smooth_nr = c.smooth_nr;
  o.smooth_dr = c.smooth_dr;
  o.per_image = c.per_image != 0;
  o.squared = c.squared != 0;
  o.class_weight =
      optional_view<T>(c.class_weight, function, ("options." + p + "class_weight").c_str());
  o.include_background = c.include_background != 0;
  o.empty = empty_of(c.empty, function, (p + "empty").c_str());
  o.gamma = c.gamma;
  o.log = c.log != 0;
  o.clamp = c.clamp != 0;
  o.ignore_index = c.ignore_index;
}

template <class T>
SoftmaxOverlapOptions<T> to_cpp(const segloss_softmax_overlap_options* c, const char* function) {
  SoftmaxOverlapOptions<T> o;
  if (c) {
    check_aligned(c, function, "options");
    softmax_overlap_to_cpp(*c, o, function, "");
  }
  return o;
}

template <class T>
SoftmaxTverskyOptions<T> to_cpp(const segloss_softmax_tversky_options* c, const char* function) {
  SoftmaxTverskyOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  softmax_overlap_to_cpp<T>(c->overlap, o, function, "overlap.");
  o.alpha = c->alpha;
  o.beta = c->beta;
  return o;
}

template <class T>
GeneralizedDiceOptions<T> to_cpp(const segloss_generalized_dice_options* c, const char* function) {
  GeneralizedDiceOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.reduction = reduction_of(c->reduction, function, "reduction");
  o.smooth_nr = c->smooth_nr;
  o.smooth_dr = c->smooth_dr;
  o.per_image = c->per_image != 0;
  o.w_type = SEGLOSS_ENUM(c->w_type, 3, "w_type", GeneralizedDiceWeight,
                          "segloss_generalized_dice_weight");
  o.include_background = c->include_background != 0;
  o.ignore_index = c->ignore_index;
  return o;
}

template <class T>
CeDiceOptions<T> to_cpp(const segloss_ce_dice_options* c, const char* function) {
  CeDiceOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.ce_weight = c->ce_weight;
  o.dice_weight = c->dice_weight;
  cross_entropy_to_cpp<T>(c->ce, o.ce, function, "ce.");
  softmax_overlap_to_cpp<T>(c->dice, o.dice, function, "dice.");
  return o;
}

template <class T>
DiceFocalOptions<T> to_cpp(const segloss_dice_focal_options* c, const char* function) {
  DiceFocalOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.dice_weight = c->dice_weight;
  o.focal_weight = c->focal_weight;
  softmax_overlap_to_cpp<T>(c->dice, o.dice, function, "dice.");
  softmax_focal_to_cpp<T>(c->focal, o.focal, function, "focal.");
  return o;
}

template <class T>
LovaszSoftmaxOptions<T> to_cpp(const segloss_lovasz_softmax_options* c, const char* function) {
  LovaszSoftmaxOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.reduction = reduction_of(c->reduction, function, "reduction");
  o.per_image = c->per_image != 0;
  o.classes = SEGLOSS_ENUM(c->classes, 2, "classes", LovaszClasses, "segloss_lovasz_classes");
  check_list_size(function, "options.class_list_size", c->class_list_size);
  if (c->class_list_size > 0) {
    require(c->class_list, function, "options.class_list");
    o.class_list.assign(c->class_list, c->class_list + c->class_list_size);
  }
  o.ignore_index = c->ignore_index;
  return o;
}

template <class T>
LovaszHingeOptions<T> to_cpp(const segloss_lovasz_hinge_options* c, const char* function) {
  LovaszHingeOptions<T> o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.reduction = reduction_of(c->reduction, function, "reduction");
  o.per_image = c->per_image != 0;
  if (c->has_ignore) o.ignore = c->ignore;
  return o;
}

#undef SEGLOSS_ENUM

// ------------------------------------------------------------------------------------------
// The three loss entry points, and the statistics / finalize pair
// ------------------------------------------------------------------------------------------

template <Target K, class COptions, class F>
segloss_status loss_value_and_grad(const char* function, const segloss_tensor* logits,
                                   const segloss_tensor* target, const COptions* options,
                                   double* value, const segloss_tensor* grad, void* stream, F&& f) {
  return guard(function, [&] {
    require(value, function, "value");
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      auto g = view<T>(grad, function, "grad");
      check_apart_from_u8<K>(function, target, g, "grad");
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function, [&](const auto& t) { *value = f(x, t, g, o); });
    });
  });
}

// value_and_grad with the value into a one-element tensor of the logits' dtype and device
// (segloss_X_value_and_grad_into): f(x, t, g, v, o) is the C++ form whose value stays there.
template <Target K, class COptions, class F>
segloss_status loss_value_and_grad_into(const char* function, const segloss_tensor* logits,
                                        const segloss_tensor* target, const COptions* options,
                                        const segloss_tensor* value, const segloss_tensor* grad,
                                        void* stream, F&& f) {
  return guard(function, [&] {
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      auto g = view<T>(grad, function, "grad");
      auto v = view<T>(value, function, "value");
      if (v.numel() != 1)
        fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "value has shape ", v.shape(),
             "; expected one element");
      check_apart_from_u8<K>(function, target, g, "grad");
      check_apart_from_u8<K>(function, target, v, "value");
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function, [&](const auto& t) { f(x, t, g, v, o); });
    });
  });
}

template <Target K, class COptions, class F>
segloss_status loss_forward(const char* function, const segloss_tensor* logits,
                            const segloss_tensor* target, const COptions* options,
                            const segloss_tensor* out, void* stream, F&& f) {
  return guard(function, [&] {
    require(out, function, "out");
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      view<T>(out, function, "out");  // dtype and shape checks before the work
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function,
                        [&](const auto& t) { copy_out<T>(f(x, t, o), out, function, "out"); });
    });
  });
}

template <Target K, class COptions, class F>
segloss_status loss_backward(const char* function, const segloss_tensor* logits,
                             const segloss_tensor* target, const segloss_tensor* grad_out,
                             const COptions* options, const segloss_tensor* grad, void* stream,
                             F&& f) {
  return guard(function, [&] {
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      const auto go = view<T>(grad_out, function, "grad_out");
      const auto g = view<T>(grad, function, "grad");
      if (g.shape() != x.shape())
        fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "grad has shape ", g.shape(),
             "; expected the logits' shape ", x.shape());
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function, [&](const auto& t) {
        copy_out<T>(f(x, t, go, o), grad, function, "grad");
      });
    });
  });
}

// A statistics object holds the OverlapStatistics of the overlap family and of the combined
// losses, or (in its ShardStatistics base) the statistics of the others.
void keep(OverlapStatistics& kept, OverlapStatistics&& st) {
  kept = std::move(st);
}
void keep(OverlapStatistics& kept, ShardStatistics&& st) {
  static_cast<ShardStatistics&>(kept) = std::move(st);
}

template <Target K, class COptions, class F>
segloss_status loss_statistics(const char* function, const segloss_tensor* logits,
                               const segloss_tensor* target, const COptions* options,
                               segloss_statistics** statistics, void* stream, F&& f) {
  return guard(function, [&] {
    require(statistics, function, "statistics");
    *statistics = nullptr;
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function, [&](const auto& t) {
        auto st = std::make_unique<segloss_statistics>();
        keep(st->overlap, f(x, t, o));
        *statistics = st.release();
      });
    });
  });
}

template <Target K, class COptions, class F>
segloss_status loss_finalize(const char* function, const segloss_tensor* logits,
                             const segloss_tensor* target, const segloss_statistics* reduced,
                             const COptions* options, double* value, const segloss_tensor* grad,
                             void* stream, F&& f) {
  return guard(function, [&] {
    require(reduced, function, "reduced");
    require(value, function, "value");
    const cuda::StreamScope stream_scope(stream);
    with_logits(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      auto g = view<T>(grad, function, "grad");
      check_apart_from_u8<K>(function, target, g, "grad");
      const auto o = to_cpp<T>(options, function);
      with_target<K, T>(target, function,
                        [&](const auto& t) { *value = f(x, t, reduced->overlap, g, o); });
    });
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Version, errors, tensors
// ------------------------------------------------------------------------------------------

extern "C" {

const char* segloss_version(void) {
#define SEGLOSS_STR2(x) #x
#define SEGLOSS_STR(x) SEGLOSS_STR2(x)
  return SEGLOSS_STR(SEGLOSS_VERSION_MAJOR) "." SEGLOSS_STR(SEGLOSS_VERSION_MINOR) "." SEGLOSS_STR(
      SEGLOSS_VERSION_PATCH);
#undef SEGLOSS_STR
#undef SEGLOSS_STR2
}

void segloss_version_numbers(int* major, int* minor, int* patch) {
  if (major) *major = SEGLOSS_VERSION_MAJOR;
  if (minor) *minor = SEGLOSS_VERSION_MINOR;
  if (patch) *patch = SEGLOSS_VERSION_PATCH;
}

int segloss_abi_version(void) {
  return SEGLOSS_C_ABI_VERSION;
}

int segloss_has_cuda(void) {
  try {
    return cuda::available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

const char* segloss_last_error(void) {
  return last_error;
}

const char* segloss_status_name(segloss_status status) {
  switch (int_of(status)) {
    case SEGLOSS_OK:
      return "SEGLOSS_OK";
    case SEGLOSS_ERROR_INVALID_ARGUMENT:
      return "SEGLOSS_ERROR_INVALID_ARGUMENT";
    case SEGLOSS_ERROR_NULL_POINTER:
      return "SEGLOSS_ERROR_NULL_POINTER";
    case SEGLOSS_ERROR_DTYPE:
      return "SEGLOSS_ERROR_DTYPE";
    case SEGLOSS_ERROR_DEVICE:
      return "SEGLOSS_ERROR_DEVICE";
    case SEGLOSS_ERROR_OUT_OF_MEMORY:
      return "SEGLOSS_ERROR_OUT_OF_MEMORY";
    case SEGLOSS_ERROR_INTERNAL:
      return "SEGLOSS_ERROR_INTERNAL";
  }
  return "unknown status";
}

segloss_tensor segloss_tensor_make(void* data, segloss_dtype dtype, int32_t ndim,
                                   const int64_t* shape) {
  segloss_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  std::memcpy(&t.dtype, &dtype, sizeof t.dtype);  // any int: the calls check it
  t.device = SEGLOSS_CPU;
  if (ndim < 0 || ndim > SEGLOSS_MAX_NDIM || (ndim > 0 && shape == nullptr)) {
    t.ndim = -1;
    return t;
  }
  t.ndim = ndim;
  for (int i = 0; i < ndim; ++i) t.shape[i] = shape[i];
  return t;
}

// ------------------------------------------------------------------------------------------
// Options: the C++ defaults
// ------------------------------------------------------------------------------------------

void segloss_bce_with_logits_options_init(segloss_bce_with_logits_options* o) {
  if (!o) return;
  const BceWithLogitsOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->weight = nullptr;
  o->pos_weight = nullptr;
  o->mean_over = segloss_bce_mean_over(d.mean_over);
  o->label_smoothing = d.label_smoothing;
}

void segloss_binary_cross_entropy_options_init(segloss_binary_cross_entropy_options* o) {
  if (!o) return;
  const BinaryCrossEntropyOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->weight = nullptr;
}

void segloss_sigmoid_focal_options_init(segloss_sigmoid_focal_options* o) {
  if (!o) return;
  const SigmoidFocalOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->alpha = d.alpha;
  o->gamma = d.gamma;
  o->weight = nullptr;
}

void segloss_overlap_options_init(segloss_overlap_options* o) {
  if (!o) return;
  const OverlapOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->smooth_nr = d.smooth_nr;
  o->smooth_dr = d.smooth_dr;
  o->per_image = d.per_image;
  o->activation = segloss_activation(d.activation);
  o->squared = d.squared;
  o->weight = nullptr;
  o->weighting = segloss_overlap_weighting(d.weighting);
  o->class_weight = nullptr;
  o->include_background = d.include_background;
  o->empty = segloss_empty_policy(d.empty);
  o->gamma = d.gamma;
  o->log = d.log;
  o->clamp = d.clamp;
}

void segloss_tversky_options_init(segloss_tversky_options* o) {
  if (!o) return;
  const TverskyOptions<float> d;
  segloss_overlap_options_init(&o->overlap);
  o->alpha = d.alpha;
  o->beta = d.beta;
}

void segloss_bce_dice_options_init(segloss_bce_dice_options* o) {
  if (!o) return;
  const BceDiceOptions<float> d;
  o->bce_weight = d.bce_weight;
  o->dice_weight = d.dice_weight;
  segloss_bce_with_logits_options_init(&o->bce);
  segloss_overlap_options_init(&o->dice);
}

void segloss_cross_entropy_options_init(segloss_cross_entropy_options* o) {
  if (!o) return;
  const CrossEntropyOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->weight = nullptr;
  o->ignore_index = d.ignore_index;
  o->label_smoothing = d.label_smoothing;
  o->ignore_negative = d.ignore_negative;
  o->mean_over = segloss_mean_over(d.mean_over);
  o->all_ignored = segloss_all_ignored(d.all_ignored);
}

void segloss_softmax_focal_options_init(segloss_softmax_focal_options* o) {
  if (!o) return;
  const SoftmaxFocalOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->alpha = nullptr;
  o->gamma = d.gamma;
  o->ignore_index = d.ignore_index;
}

void segloss_softmax_overlap_options_init(segloss_softmax_overlap_options* o) {
  if (!o) return;
  const SoftmaxOverlapOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->smooth_nr = d.smooth_nr;
  o->smooth_dr = d.smooth_dr;
  o->per_image = d.per_image;
  o->squared = d.squared;
  o->class_weight = nullptr;
  o->include_background = d.include_background;
  o->empty = segloss_empty_policy(d.empty);
  o->gamma = d.gamma;
  o->log = d.log;
  o->clamp = d.clamp;
  o->ignore_index = d.ignore_index;
}

void segloss_softmax_tversky_options_init(segloss_softmax_tversky_options* o) {
  if (!o) return;
  const SoftmaxTverskyOptions<float> d;
  segloss_softmax_overlap_options_init(&o->overlap);
  o->alpha = d.alpha;
  o->beta = d.beta;
}

void segloss_generalized_dice_options_init(segloss_generalized_dice_options* o) {
  if (!o) return;
  const GeneralizedDiceOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->smooth_nr = d.smooth_nr;
  o->smooth_dr = d.smooth_dr;
  o->per_image = d.per_image;
  o->w_type = segloss_generalized_dice_weight(d.w_type);
  o->include_background = d.include_background;
  o->ignore_index = d.ignore_index;
}

void segloss_ce_dice_options_init(segloss_ce_dice_options* o) {
  if (!o) return;
  const CeDiceOptions<float> d;
  o->ce_weight = d.ce_weight;
  o->dice_weight = d.dice_weight;
  segloss_cross_entropy_options_init(&o->ce);
  segloss_softmax_overlap_options_init(&o->dice);
}

void segloss_dice_focal_options_init(segloss_dice_focal_options* o) {
  if (!o) return;
  const DiceFocalOptions<float> d;
  o->dice_weight = d.dice_weight;
  o->focal_weight = d.focal_weight;
  segloss_softmax_overlap_options_init(&o->dice);
  segloss_softmax_focal_options_init(&o->focal);
}

void segloss_lovasz_softmax_options_init(segloss_lovasz_softmax_options* o) {
  if (!o) return;
  const LovaszSoftmaxOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->per_image = d.per_image;
  o->classes = segloss_lovasz_classes(d.classes);
  o->class_list = nullptr;
  o->class_list_size = 0;
  o->ignore_index = d.ignore_index;
}

void segloss_lovasz_hinge_options_init(segloss_lovasz_hinge_options* o) {
  if (!o) return;
  const LovaszHingeOptions<float> d;
  o->reduction = segloss_reduction(d.reduction);
  o->per_image = d.per_image;
  o->has_ignore = d.ignore.has_value();
  o->ignore = d.ignore.value_or(0.0);
}

void segloss_boundary_weights_options_init(segloss_boundary_weights_options* o) {
  if (!o) return;
  const BoundaryWeightOptions d;
  o->kernel_size = d.kernel_size;
  o->low = d.low;
  o->high = d.high;
  o->boost = d.boost;
  o->normalize = d.normalize;
}

void segloss_confusion_matrix_options_init(segloss_confusion_matrix_options* o) {
  if (!o) return;
  const ConfusionMatrixOptions d;
  o->ignore_index = d.ignore_index;
  o->out_of_range = segloss_out_of_range(d.out_of_range);
}

void segloss_score_options_init(segloss_score_options* o) {
  if (!o) return;
  const ScoreOptions d;
  o->empty = segloss_empty_policy(d.empty);
  o->beta = d.beta;
}

void segloss_dice_score_options_init(segloss_dice_score_options* o) {
  if (!o) return;
  const DiceScoreOptions d;
  o->activation = segloss_activation(d.activation);
  o->threshold = d.threshold;
  o->round = d.round;
  o->smooth_nr = d.smooth_nr;
  o->smooth_dr = d.smooth_dr;
  o->per_channel = d.per_channel;
  o->border = d.border;
  o->empty = segloss_empty_policy(d.empty);
  o->clamp = d.clamp;
  o->check_binary = d.check_binary;
}

void segloss_surface_distance_options_init(segloss_surface_distance_options* o) {
  if (!o) return;
  const SurfaceDistanceOptions d;
  o->spacing = nullptr;
  o->spacing_size = 0;
  o->percentile = d.percentile;
  o->tolerance = d.tolerance;
  o->class_tolerance = nullptr;
  o->class_tolerance_size = 0;
  o->directed = d.directed;
  o->empty = segloss_surface_empty(d.empty);
  o->ignore_index = d.ignore_index;
}

// ------------------------------------------------------------------------------------------
// Losses
// ------------------------------------------------------------------------------------------

// The four entry points of loss NAME (segloss::NAME, NAME_backward, NAME_value_and_grad, and
// its form with a value tensor) with C options OPTIONS and target kind KIND. The generic lambdas
// pick the C++ overload.
#define SEGLOSS_C_LOSS(NAME, OPTIONS, KIND)                                                       \
  segloss_status segloss_##NAME##_value_and_grad(                                                 \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options,         \
      double* value, const segloss_tensor* grad, void* cuda_stream) {                             \
    return loss_value_and_grad<KIND>("segloss_" #NAME "_value_and_grad", logits, target, options, \
                                     value, grad, cuda_stream,                                    \
                                     [](const auto& x, const auto& t, auto& g, const auto& o) {   \
                                       return segloss::NAME##_value_and_grad(x, t, g, o);         \
                                     });                                                          \
  }                                                                                               \
  segloss_status segloss_##NAME##_forward(const segloss_tensor* logits,                           \
                                          const segloss_tensor* target, const OPTIONS* options,   \
                                          const segloss_tensor* out, void* cuda_stream) {         \
    return loss_forward<KIND>(                                                                    \
        "segloss_" #NAME "_forward", logits, target, options, out, cuda_stream,                   \
        [](const auto& x, const auto& t, const auto& o) { return segloss::NAME(x, t, o); });      \
  }                                                                                               \
  segloss_status segloss_##NAME##_backward(                                                       \
      const segloss_tensor* logits, const segloss_tensor* target, const segloss_tensor* grad_out, \
      const OPTIONS* options, const segloss_tensor* grad, void* cuda_stream) {                    \
    return loss_backward<KIND>("segloss_" #NAME "_backward", logits, target, grad_out, options,   \
                               grad, cuda_stream,                                                 \
                               [](const auto& x, const auto& t, const auto& go, const auto& o) {  \
                                 return segloss::NAME##_backward(x, t, go, o);                    \
                               });                                                                \
  }                                                                                               \
  segloss_status segloss_##NAME##_value_and_grad_into(                                            \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options,         \
      const segloss_tensor* value, const segloss_tensor* grad, void* cuda_stream) {               \
    return loss_value_and_grad_into<KIND>(                                                        \
        "segloss_" #NAME "_value_and_grad_into", logits, target, options, value, grad,            \
        cuda_stream, [](const auto& x, const auto& t, auto& g, auto& v, const auto& o) {          \
          segloss::NAME##_value_and_grad(x, t, g, v, o);                                          \
        });                                                                                       \
  }

SEGLOSS_C_LOSS(bce_with_logits, segloss_bce_with_logits_options, Target::same)
SEGLOSS_C_LOSS(binary_cross_entropy, segloss_binary_cross_entropy_options, Target::same)
SEGLOSS_C_LOSS(sigmoid_focal, segloss_sigmoid_focal_options, Target::same)
SEGLOSS_C_LOSS(soft_dice, segloss_overlap_options, Target::same)
SEGLOSS_C_LOSS(soft_jaccard, segloss_overlap_options, Target::same)
SEGLOSS_C_LOSS(tversky, segloss_tversky_options, Target::same)
SEGLOSS_C_LOSS(bce_dice, segloss_bce_dice_options, Target::same)
SEGLOSS_C_LOSS(lovasz_hinge, segloss_lovasz_hinge_options, Target::same)
SEGLOSS_C_LOSS(cross_entropy, segloss_cross_entropy_options, Target::classes)
SEGLOSS_C_LOSS(softmax_dice, segloss_softmax_overlap_options, Target::classes)
SEGLOSS_C_LOSS(softmax_jaccard, segloss_softmax_overlap_options, Target::classes)
SEGLOSS_C_LOSS(softmax_tversky, segloss_softmax_tversky_options, Target::classes)
SEGLOSS_C_LOSS(generalized_dice, segloss_generalized_dice_options, Target::classes)
SEGLOSS_C_LOSS(ce_dice, segloss_ce_dice_options, Target::classes)
SEGLOSS_C_LOSS(softmax_focal, segloss_softmax_focal_options, Target::labels)
SEGLOSS_C_LOSS(dice_focal, segloss_dice_focal_options, Target::labels)
SEGLOSS_C_LOSS(lovasz_softmax, segloss_lovasz_softmax_options, Target::labels)
#undef SEGLOSS_C_LOSS

// The statistics / finalize pair of loss NAME.
#define SEGLOSS_C_SPLIT(NAME, OPTIONS, KIND)                                                       \
  segloss_status segloss_##NAME##_statistics(const segloss_tensor* logits,                         \
                                             const segloss_tensor* target, const OPTIONS* options, \
                                             segloss_statistics** statistics, void* cuda_stream) { \
    return loss_statistics<KIND>("segloss_" #NAME "_statistics", logits, target, options,          \
                                 statistics, cuda_stream,                                          \
                                 [](const auto& x, const auto& t, const auto& o) {                 \
                                   return segloss::NAME##_statistics(x, t, o);                     \
                                 });                                                               \
  }                                                                                                \
  segloss_status segloss_##NAME##_finalize(                                                        \
      const segloss_tensor* logits, const segloss_tensor* target,                                  \
      const segloss_statistics* reduced, const OPTIONS* options, double* value,                    \
      const segloss_tensor* grad, void* cuda_stream) {                                             \
    return loss_finalize<KIND>(                                                                    \
        "segloss_" #NAME "_finalize", logits, target, reduced, options, value, grad, cuda_stream,  \
        [](const auto& x, const auto& t, const auto& st, auto& g, const auto& o) {                 \
          return segloss::NAME##_finalize(x, t, st, g, o);                                         \
        });                                                                                        \
  }

SEGLOSS_C_SPLIT(bce_with_logits, segloss_bce_with_logits_options, Target::same)
SEGLOSS_C_SPLIT(sigmoid_focal, segloss_sigmoid_focal_options, Target::same)
SEGLOSS_C_SPLIT(soft_dice, segloss_overlap_options, Target::same)
SEGLOSS_C_SPLIT(soft_jaccard, segloss_overlap_options, Target::same)
SEGLOSS_C_SPLIT(tversky, segloss_tversky_options, Target::same)
SEGLOSS_C_SPLIT(bce_dice, segloss_bce_dice_options, Target::same)
SEGLOSS_C_SPLIT(cross_entropy, segloss_cross_entropy_options, Target::classes)
SEGLOSS_C_SPLIT(softmax_dice, segloss_softmax_overlap_options, Target::classes)
SEGLOSS_C_SPLIT(softmax_jaccard, segloss_softmax_overlap_options, Target::classes)
SEGLOSS_C_SPLIT(softmax_tversky, segloss_softmax_tversky_options, Target::classes)
SEGLOSS_C_SPLIT(generalized_dice, segloss_generalized_dice_options, Target::classes)
SEGLOSS_C_SPLIT(ce_dice, segloss_ce_dice_options, Target::classes)
SEGLOSS_C_SPLIT(softmax_focal, segloss_softmax_focal_options, Target::labels)
SEGLOSS_C_SPLIT(dice_focal, segloss_dice_focal_options, Target::labels)
#undef SEGLOSS_C_SPLIT

segloss_status segloss_statistics_global(segloss_statistics* st, double** data, int64_t* count) {
  const char* function = "segloss_statistics_global";
  return guard(function, [&] {
    require(st, function, "statistics");
    require(data, function, "data");
    require(count, function, "count");
    *data = st->overlap.global.data();
    *count = static_cast<int64_t>(st->overlap.global.size());
  });
}

void segloss_statistics_destroy(segloss_statistics* st) {
  delete st;
}

// ------------------------------------------------------------------------------------------
// Boundary weights
// ------------------------------------------------------------------------------------------

segloss_status segloss_boundary_weights(const segloss_tensor* mask,
                                        const segloss_boundary_weights_options* options,
                                        const segloss_tensor* weights, void* cuda_stream) {
  const char* function = "segloss_boundary_weights";
  return guard(function, [&] {
    const cuda::StreamScope stream_scope(cuda_stream);
    BoundaryWeightOptions o;
    if (options) {
      o.kernel_size = options->kernel_size;
      o.low = options->low;
      o.high = options->high;
      o.boost = options->boost;
      o.normalize = options->normalize != 0;
    }
    with_float(mask, function, "mask", [&](auto tag) {
      using T = decltype(tag);
      const auto m = view<T>(mask, function, "mask");
      auto w = view<T>(weights, function, "weights");
      segloss::boundary_weights(m, w, o);
    });
  });
}

// ------------------------------------------------------------------------------------------
// Confusion matrix and scores
// ------------------------------------------------------------------------------------------

}  // extern "C"

namespace {

ConfusionMatrixOptions confusion_options(const segloss_confusion_matrix_options* c,
                                         const char* function) {
  ConfusionMatrixOptions o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.ignore_index = c->ignore_index;
  o.out_of_range = enum_of<OutOfRange>(int_of(c->out_of_range), 2, function, "out_of_range",
                                       "segloss_out_of_range");
  return o;
}

ScoreOptions score_options(const segloss_score_options* c, const char* function) {
  ScoreOptions o;
  if (!c) return o;
  check_aligned(c, function, "options");
  o.empty = enum_of<EmptyPolicy>(int_of(c->empty), 4, function, "empty", "segloss_empty_policy");
  o.beta = c->beta;
  return o;
}

Score score_of(const segloss_score& s, const char* function) {
  const int v = int_of(s);
  if (v < 0 || v > int(Score::fbeta))
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "score is ", v,
         ", not a value of segloss_score");
  return Score(v);
}

Average average_of(const segloss_average& a, const char* function) {
  const int v = int_of(a);
  if (v < 0 || v > int(Average::per_image))
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "average is ", v,
         ", not a value of segloss_average");
  return Average(v);
}

void copy_values(const std::vector<double>& v, double* out, int64_t capacity, const char* function,
                 const char* argument) {
  require(out, function, argument);
  if (capacity < static_cast<int64_t>(v.size()))
    fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, argument, " holds ", capacity,
         " values; it needs ", v.size());
  std::copy(v.begin(), v.end(), out);
}

}  // namespace

extern "C" {

segloss_status segloss_confusion_matrix_create(int64_t num_classes,
                                               const segloss_confusion_matrix_options* options,
                                               segloss_confusion_matrix** out) {
  const char* function = "segloss_confusion_matrix_create";
  return guard(function, [&] {
    require(out, function, "out");
    *out = nullptr;
    *out = new segloss_confusion_matrix{
        ConfusionMatrix(num_classes, confusion_options(options, function))};
  });
}

segloss_status segloss_confusion_matrix_from_counts(int64_t num_classes, const int64_t* counts,
                                                    const segloss_confusion_matrix_options* options,
                                                    segloss_confusion_matrix** out) {
  const char* function = "segloss_confusion_matrix_from_counts";
  return guard(function, [&] {
    require(out, function, "out");
    *out = nullptr;
    require(counts, function, "counts");
    if (num_classes < 1 || num_classes > ConfusionMatrix::kMaxClasses)
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "num_classes is ", num_classes,
           "; expected 1 to ", ConfusionMatrix::kMaxClasses);
    std::vector<int64_t> c(counts, counts + num_classes * num_classes);
    *out = new segloss_confusion_matrix{ConfusionMatrix::from_counts(
        num_classes, std::move(c), confusion_options(options, function))};
  });
}

void segloss_confusion_matrix_destroy(segloss_confusion_matrix* cm) {
  delete cm;
}

segloss_status segloss_confusion_matrix_reset(segloss_confusion_matrix* cm) {
  const char* function = "segloss_confusion_matrix_reset";
  return guard(function, [&] { require(cm, function, "cm")->cm.reset(); });
}

segloss_status segloss_confusion_matrix_update(segloss_confusion_matrix* cm,
                                               const segloss_tensor* pred_labels,
                                               const segloss_tensor* true_labels,
                                               void* cuda_stream) {
  const char* function = "segloss_confusion_matrix_update";
  return guard(function, [&] {
    require(cm, function, "cm");
    const cuda::StreamScope stream_scope(cuda_stream);
    with_labels(pred_labels, function, "pred_labels", [&](const auto& p) {
      with_labels(true_labels, function, "true_labels",
                  [&](const auto& t) { cm->cm.update(p, t); });
    });
  });
}

segloss_status segloss_confusion_matrix_update_from_logits(segloss_confusion_matrix* cm,
                                                           const segloss_tensor* logits,
                                                           const segloss_tensor* true_labels,
                                                           void* cuda_stream) {
  const char* function = "segloss_confusion_matrix_update_from_logits";
  return guard(function, [&] {
    require(cm, function, "cm");
    const cuda::StreamScope stream_scope(cuda_stream);
    with_float(logits, function, "logits", [&](auto tag) {
      using T = decltype(tag);
      const auto x = view<T>(logits, function, "logits");
      with_labels(true_labels, function, "true_labels",
                  [&](const auto& t) { cm->cm.update_from_logits(x, t); });
    });
  });
}

segloss_status segloss_confusion_matrix_merge(segloss_confusion_matrix* cm,
                                              const segloss_confusion_matrix* other) {
  const char* function = "segloss_confusion_matrix_merge";
  return guard(function, [&] {
    require(cm, function, "cm")->cm.merge(require(other, function, "other")->cm);
  });
}

segloss_status segloss_confusion_matrix_num_classes(const segloss_confusion_matrix* cm,
                                                    int64_t* num_classes) {
  const char* function = "segloss_confusion_matrix_num_classes";
  return guard(function, [&] {
    *require(num_classes, function, "num_classes") = require(cm, function, "cm")->cm.num_classes();
  });
}

segloss_status segloss_confusion_matrix_counts(const segloss_confusion_matrix* cm, int64_t* counts,
                                               int64_t capacity) {
  const char* function = "segloss_confusion_matrix_counts";
  return guard(function, [&] {
    const auto& h = require(cm, function, "cm")->cm.counts();
    require(counts, function, "counts");
    if (capacity < static_cast<int64_t>(h.size()))
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "counts holds ", capacity,
           " values; it needs ", h.size());
    std::copy(h.begin(), h.end(), counts);
  });
}

segloss_status segloss_confusion_matrix_data(segloss_confusion_matrix* cm, int64_t** data,
                                             int64_t* count) {
  const char* function = "segloss_confusion_matrix_data";
  return guard(function, [&] {
    require(cm, function, "cm");
    require(data, function, "data");
    require(count, function, "count");  // both checked before either is written
    *data = cm->cm.data();
    *count = static_cast<int64_t>(cm->cm.size());
  });
}

segloss_status segloss_confusion_matrix_fcn_scores(const segloss_confusion_matrix* cm,
                                                   segloss_fcn_scores* scores, double* iou,
                                                   int64_t iou_capacity) {
  const char* function = "segloss_confusion_matrix_fcn_scores";
  return guard(function, [&] {
    require(cm, function, "cm");
    require(scores, function, "scores");
    const FcnScores s = label_accuracy_score(cm->cm);
    if (iou) copy_values(s.iou, iou, iou_capacity, function, "iou");
    scores->pixel_accuracy = s.pixel_accuracy;
    scores->mean_class_accuracy = s.mean_class_accuracy;
    scores->mean_iou = s.mean_iou;
    scores->fw_iou = s.fw_iou;
  });
}

segloss_status segloss_confusion_matrix_class_scores(const segloss_confusion_matrix* cm,
                                                     segloss_score score,
                                                     const segloss_score_options* options,
                                                     double* values, int64_t capacity) {
  const char* function = "segloss_confusion_matrix_class_scores";
  return guard(function, [&] {
    require(cm, function, "cm");
    require(values, function, "values");
    if (capacity < cm->cm.num_classes())
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "values holds ", capacity,
           " values; it needs ", cm->cm.num_classes());
    copy_values(class_scores(cm->cm, score_of(score, function), score_options(options, function)),
                values, capacity, function, "values");
  });
}

segloss_status segloss_confusion_matrix_average_score(const segloss_confusion_matrix* cm,
                                                      segloss_score score, segloss_average average,
                                                      const segloss_score_options* options,
                                                      double* value) {
  const char* function = "segloss_confusion_matrix_average_score";
  return guard(function, [&] {
    require(cm, function, "cm");
    require(value, function, "value");
    *value = average_score(cm->cm, score_of(score, function), average_of(average, function),
                           score_options(options, function));
  });
}

segloss_status segloss_average_score_images(const segloss_confusion_matrix* const* images,
                                            int64_t count, segloss_score score,
                                            segloss_average average,
                                            const segloss_score_options* options, double* value) {
  const char* function = "segloss_average_score_images";
  return guard(function, [&] {
    require(value, function, "value");
    check_list_size(function, "count", count);
    if (count > 0) require(images, function, "images");
    std::vector<ConfusionMatrix> list;
    list.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      if (images[i] == nullptr)
        fail(SEGLOSS_ERROR_NULL_POINTER, function, "images[", i, "] is a null pointer");
      list.push_back(images[i]->cm);
    }
    *value = average_score(list, score_of(score, function), average_of(average, function),
                           score_options(options, function));
  });
}

segloss_status segloss_confusion_matrix_pixel_accuracy(const segloss_confusion_matrix* cm,
                                                       double* value) {
  const char* function = "segloss_confusion_matrix_pixel_accuracy";
  return guard(function, [&] {
    *require(value, function, "value") = pixel_accuracy(require(cm, function, "cm")->cm);
  });
}

segloss_status segloss_confusion_matrix_cohen_kappa(const segloss_confusion_matrix* cm,
                                                    const segloss_score_options* options,
                                                    double* value) {
  const char* function = "segloss_confusion_matrix_cohen_kappa";
  return guard(function, [&] {
    *require(value, function, "value") =
        cohen_kappa(require(cm, function, "cm")->cm, score_options(options, function));
  });
}

segloss_status segloss_confusion_matrix_matthews_corrcoef(const segloss_confusion_matrix* cm,
                                                          const segloss_score_options* options,
                                                          double* value) {
  const char* function = "segloss_confusion_matrix_matthews_corrcoef";
  return guard(function, [&] {
    *require(value, function, "value") =
        matthews_corrcoef(require(cm, function, "cm")->cm, score_options(options, function));
  });
}

// ------------------------------------------------------------------------------------------
// Dice score and surface distances
// ------------------------------------------------------------------------------------------

segloss_status segloss_dice_score(const segloss_tensor* pred, const segloss_tensor* target,
                                  const segloss_dice_score_options* options,
                                  segloss_dice_score_result* result, const segloss_tensor* scores,
                                  void* cuda_stream) {
  const char* function = "segloss_dice_score";
  return guard(function, [&] {
    require(result, function, "result");
    const cuda::StreamScope stream_scope(cuda_stream);
    DiceScoreOptions o;
    if (options) {
      o.activation = enum_of<Activation>(int_of(options->activation), 2, function, "activation",
                                         "segloss_activation");
      o.threshold = options->threshold;
      o.round = options->round != 0;
      o.smooth_nr = options->smooth_nr;
      o.smooth_dr = options->smooth_dr;
      o.per_channel = options->per_channel != 0;
      o.border = options->border;
      o.empty = enum_of<EmptyPolicy>(int_of(options->empty), 4, function, "empty",
                                     "segloss_empty_policy");
      o.clamp = options->clamp != 0;
      o.check_binary = options->check_binary != 0;
    }
    with_float(pred, function, "pred", [&](auto tag) {
      using T = decltype(tag);
      const auto r = segloss::dice_score(view<T>(pred, function, "pred"),
                                         view<T>(target, function, "target"), o);
      if (scores) copy_out<double>(r.scores, scores, function, "scores");
      result->mean = r.mean;
      result->counted = r.counted;
      result->skipped = r.skipped;
      result->empty = r.empty;
    });
  });
}

}  // extern "C"

namespace {

SurfaceDistanceOptions surface_options(const segloss_surface_distance_options* c,
                                       const char* function) {
  SurfaceDistanceOptions o;
  if (!c) return o;
  check_aligned(c, function, "options");
  check_list_size(function, "options.spacing_size", c->spacing_size);
  check_list_size(function, "options.class_tolerance_size", c->class_tolerance_size);
  if (c->spacing_size > 0) {
    require(c->spacing, function, "options.spacing");
    o.spacing.assign(c->spacing, c->spacing + c->spacing_size);
  }
  o.percentile = c->percentile;
  o.tolerance = c->tolerance;
  if (c->class_tolerance_size > 0) {
    require(c->class_tolerance, function, "options.class_tolerance");
    o.class_tolerance.assign(c->class_tolerance, c->class_tolerance + c->class_tolerance_size);
  }
  o.directed = c->directed != 0;
  o.empty = enum_of<SurfaceEmpty>(int_of(c->empty), 2, function, "empty", "segloss_surface_empty");
  o.ignore_index = c->ignore_index;
  return o;
}

// The result's means and counts, and the per-pair values (4, N, K) when asked for.
void surface_out(const SurfaceDistanceResult& r, segloss_surface_distance_result* result,
                 const segloss_tensor* per_pair, const char* function) {
  if (per_pair) {
    const Shape& s = r.hausdorff.shape();
    const auto out = view<double>(per_pair, function, "per_pair");
    const Shape want{4, s[0], s[1]};
    if (out.shape() != want)
      fail(SEGLOSS_ERROR_INVALID_ARGUMENT, function, "per_pair has shape ", out.shape(),
           "; expected ", want);
    if (out.device() != Device::cpu)
      fail(SEGLOSS_ERROR_DEVICE, function,
           "per_pair is on cuda; it must be on the CPU (the surface distances' results are on "
           "the host, with CUDA inputs too)");
    const int64_t n = s.numel();
    std::copy(r.hausdorff.begin(), r.hausdorff.end(), out.data());
    std::copy(r.hausdorff_percentile.begin(), r.hausdorff_percentile.end(), out.data() + n);
    std::copy(r.average_surface_distance.begin(), r.average_surface_distance.end(),
              out.data() + 2 * n);
    std::copy(r.surface_dice.begin(), r.surface_dice.end(), out.data() + 3 * n);
  }
  result->mean_hausdorff = r.mean_hausdorff;
  result->mean_hausdorff_percentile = r.mean_hausdorff_percentile;
  result->mean_average_surface_distance = r.mean_average_surface_distance;
  result->mean_surface_dice = r.mean_surface_dice;
  result->empty = r.empty;
  result->one_empty = r.one_empty;
}

// The two forms of the surface distances. CUDA masks or label maps run on `stream` (NULL: the
// legacy default stream), which the call waits for: the result is on the host.
segloss_status surface_masks(const char* function, const segloss_tensor* pred,
                             const segloss_tensor* target,
                             const segloss_surface_distance_options* options,
                             segloss_surface_distance_result* result,
                             const segloss_tensor* per_pair, void* stream) {
  return guard(function, [&] {
    require(result, function, "result");
    const auto o = surface_options(options, function);
    const cuda::StreamScope stream_scope(stream);
    with_float(pred, function, "pred", [&](auto tag) {
      using T = decltype(tag);
      const auto r = segloss::surface_distance(view<T>(pred, function, "pred"),
                                               view<T>(target, function, "target"), o);
      surface_out(r, result, per_pair, function);
    });
  });
}

segloss_status surface_labels(const char* function, const segloss_tensor* pred_labels,
                              const segloss_tensor* true_labels, const int64_t* classes,
                              int64_t num_classes_listed,
                              const segloss_surface_distance_options* options,
                              segloss_surface_distance_result* result,
                              const segloss_tensor* per_pair, void* stream) {
  return guard(function, [&] {
    require(result, function, "result");
    check_list_size(function, "num_classes_listed", num_classes_listed);
    if (num_classes_listed > 0) require(classes, function, "classes");
    const std::vector<int64_t> list(classes, classes + num_classes_listed);
    const auto o = surface_options(options, function);
    const cuda::StreamScope stream_scope(stream);
    with_labels(pred_labels, function, "pred_labels", [&](const auto& p) {
      with_labels(true_labels, function, "true_labels", [&](const auto& t) {
        surface_out(segloss::surface_distance_labels(p, t, list, o), result, per_pair, function);
      });
    });
  });
}

}  // namespace

extern "C" {

segloss_status segloss_surface_distance(const segloss_tensor* pred, const segloss_tensor* target,
                                        const segloss_surface_distance_options* options,
                                        segloss_surface_distance_result* result,
                                        const segloss_tensor* per_pair) {
  return surface_masks("segloss_surface_distance", pred, target, options, result, per_pair,
                       nullptr);
}

segloss_status segloss_surface_distance_on_stream(const segloss_tensor* pred,
                                                  const segloss_tensor* target,
                                                  const segloss_surface_distance_options* options,
                                                  segloss_surface_distance_result* result,
                                                  const segloss_tensor* per_pair,
                                                  void* cuda_stream) {
  return surface_masks("segloss_surface_distance_on_stream", pred, target, options, result,
                       per_pair, cuda_stream);
}

segloss_status segloss_surface_distance_labels(const segloss_tensor* pred_labels,
                                               const segloss_tensor* true_labels,
                                               const int64_t* classes, int64_t num_classes_listed,
                                               const segloss_surface_distance_options* options,
                                               segloss_surface_distance_result* result,
                                               const segloss_tensor* per_pair) {
  return surface_labels("segloss_surface_distance_labels", pred_labels, true_labels, classes,
                        num_classes_listed, options, result, per_pair, nullptr);
}

segloss_status segloss_surface_distance_labels_on_stream(
    const segloss_tensor* pred_labels, const segloss_tensor* true_labels, const int64_t* classes,
    int64_t num_classes_listed, const segloss_surface_distance_options* options,
    segloss_surface_distance_result* result, const segloss_tensor* per_pair, void* cuda_stream) {
  return surface_labels("segloss_surface_distance_labels_on_stream", pred_labels, true_labels,
                        classes, num_classes_listed, options, result, per_pair, cuda_stream);
}

}  // extern "C"
