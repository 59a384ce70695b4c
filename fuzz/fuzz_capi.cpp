// libFuzzer target on the C API (capi/segloss.h): decodes shapes, dtypes, options and values from
// the input and calls every entry point of libsegloss_c the way a C caller may.
//
// What the input decides:
//   - the logits' dtype (f32, f64, and now and then an integer or an invalid dtype value), rank
//     (1 to 5) and extents (mostly 1..5; 0 now and then; a long last axis that crosses the
//     kernels' chunk boundary); the device field (CPU, or CUDA or an invalid value now and then);
//   - the values: ordinary, +-1e4 and scaled, raw float bits (NaN, +-Inf, denormals, huge),
//     explicit denormals; targets (0/1, soft, outside [0, 1]); label maps as i32, i64 or u8
//     with labels in range, ignored, and out of range;
//   - every field of the options struct of the family called: sane values, or raw doubles
//     (negative, NaN, huge), enum fields with out-of-range integers (stored through memcpy, as C
//     allows), optional tensors (weights, class weights, alpha) of a good or a bad shape or
//     dtype, NULL pointers where the header allows them (options, optional tensors, lists) and
//     where it does not (value, grad, result: an error status is expected);
//   - the loss family, and which of value_and_grad / value_and_grad_into / forward / backward /
//     statistics + finalize run (value_and_grad_into's value tensor may be of the wrong size or
//     dtype, NULL, or inside another argument); the confusion matrix (create, from_counts, update,
//     update_from_logits, merge, reset, counts, data, every score), dice_score, surface distances
//     and boundary weights.
//
// Invariants (a violation aborts, which libFuzzer reports as a crash):
//   - the status is one of segloss_status's values;
//   - a status other than SEGLOSS_OK comes with segloss_last_error() starting with the entry
//     point's name (so it is this call's message, and not empty);
//   - SEGLOSS_OK on clean input (finite logits with |x| <= 1e4, targets in [0, 1], labels in range,
//     options from their sane ranges) gives a finite value and a finite gradient;
//   - nothing is read or written outside the buffers: every output is allocated with exactly its
//     size (its own heap block), so AddressSanitizer sees any overrun; UBSan sees the rest.
//
// Build and run: scripts/fuzz.sh SECONDS (clang, -DSEGLOSS_FUZZ=ON). Seeds: fuzz/corpus/.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <segloss/capi/segloss.h>

// fuzz/capi_enum_args.c: the entry points with enum arguments, taking them as int.
extern "C" {
const char* fuzz_status_name(int status);
segloss_status fuzz_class_scores(const segloss_confusion_matrix* cm, int score,
                                 const segloss_score_options* options, double* values,
                                 int64_t capacity);
segloss_status fuzz_average_score(const segloss_confusion_matrix* cm, int score, int average,
                                  const segloss_score_options* options, double* value);
segloss_status fuzz_average_score_images(const segloss_confusion_matrix* const* images,
                                         int64_t count, int score, int average,
                                         const segloss_score_options* options, double* value);
segloss_tensor fuzz_tensor_make(void* data, int dtype, int32_t ndim, const int64_t* shape);
}

namespace {

// ------------------------------------------------------------------------------------------
// Input decoding
// ------------------------------------------------------------------------------------------

// Reads bytes from the input; past its end, zeros.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint8_t byte() { return i_ < n_ ? p_[i_++] : 0; }
  bool empty() const { return i_ >= n_; }
  template <class T>
  T raw() {
    uint8_t b[sizeof(T)];
    for (auto& x : b) x = byte();
    T v;
    std::memcpy(&v, b, sizeof(T));
    return v;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

// Counts for FUZZ_CAPI_STATS=1 (printed at exit): how many calls ran, succeeded, and had their
// result checked for finiteness; a run over the corpus shows what the invariants saw.
struct Stats {
  long calls = 0, ok = 0, finite_checked = 0;
  ~Stats() {
    if (std::getenv("FUZZ_CAPI_STATS"))
      std::fprintf(stderr, "fuzz_capi: %ld calls, %ld OK, %ld results checked finite\n", calls, ok,
                   finite_checked);
  }
} stats;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_capi: %s\n", what.c_str());
  std::abort();
}

// Any int into a C enum field, as a C caller may (C++ forbids loading it, not storing bytes).
template <class E>
void set_enum(E& field, int value) {
  static_assert(sizeof(E) == sizeof(int), "a C enum is an int");
  std::memcpy(&field, &value, sizeof value);
}

// The state of one input: what it decoded, and the buffers it owns.
struct Ctx {
  explicit Ctx(Reader& reader) : r(reader) {}
  Reader& r;
  bool clean = true;  // the finite-result invariant applies
  // Every buffer is its own heap block of exactly the bytes it describes (none for 0 elements).
  std::deque<std::unique_ptr<uint8_t[]>> blocks;
  std::deque<segloss_tensor> tensors;  // stable addresses for option pointers

  void* alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    blocks.emplace_back(new uint8_t[bytes]);
    return blocks.back().get();
  }

  // An option value: usually in [lo, hi]; sometimes a raw double (negative, NaN, huge), which
  // makes the input unclean.
  double option(double lo, double hi) {
    const uint8_t k = r.byte();
    if (k < 224) return lo + (hi - lo) * (k / 223.0);
    clean = false;
    switch (k % 8) {
      case 0:
        return std::nan("");
      case 1:
        return -1.0;
      case 2:
        return HUGE_VAL;
      case 3:
        return 0.0;
      default:
        return r.raw<double>();
    }
  }
  // A flag field: 0 or 1 mostly, any int now and then.
  int flag() {
    const uint8_t k = r.byte();
    return k < 240 ? k & 1 : static_cast<int>(k) - 250;
  }
  // An enum field: a valid value mostly, out of range now and then (an error is expected).
  int enum_value(int count) {
    const uint8_t k = r.byte();
    int v = k % count;
    if (k >= 240) v = k == 255 ? -1 : k == 254 ? 1 << 30 : count + (k & 3);
    return v;
  }
  template <class E>
  void enum_field(E& field, int count) {
    set_enum(field, enum_value(count));
  }
};

size_t dtype_size(int dtype) {
  switch (dtype) {
    case SEGLOSS_F32:
      return 4;
    case SEGLOSS_F64:
      return 8;
    case SEGLOSS_I32:
      return 4;
    case SEGLOSS_I64:
      return 8;
    case SEGLOSS_U8:
      return 1;
    default:
      return 8;  // an invalid dtype: the call must refuse it before reading
  }
}

int64_t numel_of(const segloss_tensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

int dtype_of(const segloss_tensor& t) {
  int d;
  std::memcpy(&d, &t.dtype, sizeof d);
  return d;
}

// A tensor of exactly numel(shape) elements of `dtype`, zero-filled.
segloss_tensor make_tensor(Ctx& c, int dtype, int ndim, const int64_t* shape) {
  segloss_tensor t;
  std::memset(&t, 0, sizeof t);
  set_enum(t.dtype, dtype);
  t.device = SEGLOSS_CPU;
  t.ndim = ndim;
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= (t.shape[i] = shape[i]);
  const size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  t.data = c.alloc(bytes);
  if (bytes) std::memset(t.data, 0, bytes);
  return t;
}

double get(const segloss_tensor& t, int64_t i) {
  switch (dtype_of(t)) {
    case SEGLOSS_F32:
      return static_cast<const float*>(t.data)[i];
    case SEGLOSS_F64:
      return static_cast<const double*>(t.data)[i];
    case SEGLOSS_I32:
      return static_cast<const int32_t*>(t.data)[i];
    case SEGLOSS_I64:
      return static_cast<double>(static_cast<const int64_t*>(t.data)[i]);
    default:
      return static_cast<const uint8_t*>(t.data)[i];
  }
}

void put(const segloss_tensor& t, int64_t i, double v) {
  const int d = dtype_of(t);
  if (d != SEGLOSS_F32 && d != SEGLOSS_F64)  // an integer: in range (a conversion would be UB)
    v = std::isfinite(v) ? std::fmin(std::fmax(std::trunc(v), -2147483648.0), 2147483647.0) : 0.0;
  switch (d) {
    case SEGLOSS_F32:
      static_cast<float*>(t.data)[i] = static_cast<float>(v);
      break;
    case SEGLOSS_F64:
      static_cast<double*>(t.data)[i] = v;
      break;
    case SEGLOSS_I32:
      static_cast<int32_t*>(t.data)[i] = static_cast<int32_t>(v);
      break;
    case SEGLOSS_I64:
      static_cast<int64_t*>(t.data)[i] = static_cast<int64_t>(v);
      break;
    default:  // u8, or an invalid dtype (its buffer holds 8 bytes per element)
      static_cast<uint8_t*>(t.data)[i] = static_cast<uint8_t>(static_cast<int64_t>(v) & 0xff);
  }
}

bool all_finite(const segloss_tensor& t) {
  const int d = dtype_of(t);
  if (d != SEGLOSS_F32 && d != SEGLOSS_F64) return true;
  const int64_t n = numel_of(t);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(get(t, i))) return false;
  return true;
}

// ------------------------------------------------------------------------------------------
// Status checks
// ------------------------------------------------------------------------------------------

// Checks the invariants of a returned status; true when it is SEGLOSS_OK.
bool check(segloss_status s, const char* function) {
  int v;
  std::memcpy(&v, &s, sizeof v);
  ++stats.calls;
  stats.ok += v == SEGLOSS_OK;
  if (v < SEGLOSS_OK || v > SEGLOSS_ERROR_INTERNAL)
    finding(std::string(function) + " returned status " + std::to_string(v));
  if (v == SEGLOSS_OK) return true;
  const char* e = segloss_last_error();
  if (e == nullptr || std::strncmp(e, function, std::strlen(function)) != 0)
    finding(std::string(function) + " returned " + fuzz_status_name(v) + " with last error \"" +
            (e ? e : "(null)") + "\"");
  if (v == SEGLOSS_ERROR_INTERNAL)
    finding(std::string(function) + ": internal error: " + e);  // a bug by the header's word
  return false;
}

void check_finite(const Ctx& c, bool ok, const char* function, double value,
                  const segloss_tensor* grad) {
  if (!ok || !c.clean) return;
  ++stats.finite_checked;
  if (!std::isfinite(value))
    finding(std::string(function) + ": value " + std::to_string(value) + " on clean input");
  if (grad && !all_finite(*grad))
    finding(std::string(function) + ": non-finite gradient on clean input");
}

// The shape in a message "...; the result has shape (a,b,c)": what the forward's `out` needs.
bool result_shape(int& ndim, int64_t* shape) {
  const char* e = std::strstr(segloss_last_error(), "the result has shape (");
  if (!e) return false;
  e += std::strlen("the result has shape (");
  ndim = 0;
  while (*e && *e != ')') {
    char* end = nullptr;
    const long long v = std::strtoll(e, &end, 10);
    if (end == e || ndim == SEGLOSS_MAX_NDIM) return false;
    shape[ndim++] = v;
    e = *end == ',' ? end + 1 : end;
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// The decoded batch
// ------------------------------------------------------------------------------------------

struct Batch {
  segloss_tensor x;       // logits
  segloss_tensor t;       // target like the logits (0/1 or soft)
  segloss_tensor lab;     // label map (N, spatial...)
  int64_t classes = 1;    // C (the logits' axis 1)
  int64_t n = 1;          // N
  bool x_clean = true;    // finite, |x| <= 1e4
  bool t_clean = true;    // in [0, 1]
  bool lab_clean = true;  // in range or ignored (-100)
};

Batch decode_batch(Ctx& c) {
  Reader& r = c.r;
  Batch b;
  const uint8_t d = r.byte();
  int dtype = d & 1 ? SEGLOSS_F64 : SEGLOSS_F32;
  if (d >= 248) dtype = d == 255 ? 42 : d == 254 ? -1 : SEGLOSS_I32 + (d & 1);  // refused
  const uint8_t rk = r.byte();
  int rank = 1 + rk % 5;
  if (rk >= 250) rank = 0;  // a scalar: refused by every loss
  int64_t ext[SEGLOSS_MAX_NDIM] = {1, 1, 1, 1, 1};
  int64_t numel = 1;
  for (int i = 0; i < rank; ++i) {
    const uint8_t e = r.byte();
    ext[i] = e == 255 ? 0 : e >= 248 && i == rank - 1 ? 16380 + (e & 7) : 1 + e % 5;
    numel *= ext[i];
  }
  if (numel > 40000) {  // keep an input fast: the long axis only with small other extents
    ext[rank - 1] = 7;
    numel = 1;
    for (int i = 0; i < rank; ++i) numel *= ext[i];
  }
  b.n = rank >= 1 ? ext[0] : 1;
  b.classes = rank >= 2 ? ext[1] : 1;
  b.x = make_tensor(c, dtype, rank, ext);
  const uint8_t dev = r.byte();
  if (dev >= 252) set_enum(b.x.device, dev == 255 ? 9 : SEGLOSS_CUDA);  // refused on this build
  const int tdtype = dtype == SEGLOSS_F64 ? SEGLOSS_F64 : SEGLOSS_F32;
  b.t = make_tensor(c, tdtype, rank, ext);
  // Labels: (N, spatial...).
  int64_t lext[SEGLOSS_MAX_NDIM] = {b.n};
  int lrank = rank >= 2 ? rank - 1 : rank;
  for (int i = 2; i < rank; ++i) lext[i - 1] = ext[i];
  const uint8_t ld = r.byte();
  const int ldtype = ld % 3 == 0 ? SEGLOSS_I32 : ld % 3 == 1 ? SEGLOSS_I64 : SEGLOSS_U8;
  b.lab = make_tensor(c, ldtype, lrank, lext);

  const uint8_t mode = r.byte();
  const int64_t nx = numel_of(b.x);
  const bool fx = dtype == SEGLOSS_F32 || dtype == SEGLOSS_F64;
  for (int64_t i = 0; i < nx && fx; ++i) {
    const uint8_t v = r.empty() ? static_cast<uint8_t>(i * 37 + mode) : r.byte();
    double x;
    switch (mode % 5) {
      case 0:  // raw float bits now and then: NaN, Inf, denormals, huge
        x = v >= 250 ? static_cast<double>(r.raw<float>()) : (static_cast<int>(v) - 128) / 8.0;
        break;
      case 1:  // up to +-1e4
        x = (v & 1 ? 1e4 : -1e4) * (v >> 1) / 127.0;
        break;
      case 2:  // denormals and tiny values
        x = (v & 1 ? 1 : -1) * (dtype == SEGLOSS_F64 ? 4.9e-324 : 1.4e-45) * (v >> 1);
        break;
      case 3:  // the extremes
        x = v % 4 == 0 ? 1e4 : v % 4 == 1 ? -1e4 : v % 4 == 2 ? 0.0 : 9999.5;
        break;
      default:
        x = (static_cast<int>(v) - 128) / 8.0;
    }
    put(b.x, i, x);
    const double stored = get(b.x, i);
    if (!std::isfinite(stored) || std::fabs(stored) > 1e4) b.x_clean = false;
    double t;
    if (mode & 0x40) {
      t = (v * 7 % 256) / 255.0;  // soft
    } else {
      t = (v >> 3) & 1;
    }
    if ((mode & 0x80) && v >= 252) {  // outside [0, 1]: refused by binary_cross_entropy only
      t = v == 255 ? std::nan("") : v == 254 ? -0.5 : 2.0;
      b.t_clean = false;
    }
    put(b.t, i, t);
  }
  const int64_t nl = numel_of(b.lab);
  for (int64_t i = 0; i < nl; ++i) {
    const uint8_t v = r.empty() ? static_cast<uint8_t>(i * 11 + mode) : r.byte();
    int64_t l = v % (b.classes > 0 ? b.classes : 1);
    if (v == 253 && ldtype != SEGLOSS_U8) l = -100;  // ignored by default
    if (v >= 254) {
      l = v == 254 ? b.classes + (i & 3) : ldtype == SEGLOSS_U8 ? 255 : -1 - (i & 7);
      b.lab_clean = false;
    }
    put(b.lab, i, static_cast<double>(l));
  }
  return b;
}

// ------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------

// An optional tensor of options: NULL, or (C), one value, the logits' shape, or a bad shape or
// dtype; values sane (> 0) or not.
const segloss_tensor* option_tensor(Ctx& c, const Batch& b, bool per_pixel_ok) {
  const uint8_t k = c.r.byte();
  if (k < 128) return nullptr;
  int dtype = dtype_of(b.x);
  int ndim = 1;
  int64_t shape[SEGLOSS_MAX_NDIM] = {b.classes, 1, 1, 1, 1};
  switch (k % 8) {
    case 0:
      shape[0] = 1;
      break;
    case 1:
      if (per_pixel_ok) {
        ndim = b.x.ndim;
        std::memcpy(shape, b.x.shape, sizeof shape);
      }
      break;
    case 2:
      shape[0] = b.classes + 1;  // a bad shape
      break;
    case 3:
      dtype = dtype == SEGLOSS_F32 ? SEGLOSS_F64 : SEGLOSS_F32;  // a bad dtype
      break;
    default:
      break;
  }
  segloss_tensor t = make_tensor(c, dtype, ndim, shape);
  const int64_t n = numel_of(t);
  if (dtype == SEGLOSS_F32 || dtype == SEGLOSS_F64)
    for (int64_t i = 0; i < n; ++i) put(t, i, c.option(0.05, 3.0));
  if (k >= 250) t.data = nullptr;  // data NULL with elements: refused
  c.tensors.push_back(t);
  return &c.tensors.back();
}

void decode(Ctx& c, const Batch& b, segloss_bce_with_logits_options& o) {
  segloss_bce_with_logits_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.weight = option_tensor(c, b, true);
  o.pos_weight = option_tensor(c, b, false);
  c.enum_field(o.mean_over, 2);
  o.label_smoothing = c.option(0, 1);
}

void decode(Ctx& c, const Batch& b, segloss_binary_cross_entropy_options& o) {
  segloss_binary_cross_entropy_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.weight = option_tensor(c, b, true);
}

void decode(Ctx& c, const Batch& b, segloss_sigmoid_focal_options& o) {
  segloss_sigmoid_focal_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.alpha = c.r.byte() & 1 ? -1.0 : c.option(0, 1);
  o.gamma = c.option(0, 4);
  o.weight = option_tensor(c, b, true);
}

void decode(Ctx& c, const Batch& b, segloss_overlap_options& o) {
  segloss_overlap_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.smooth_nr = c.option(0, 1);
  o.smooth_dr = c.option(1e-6, 1);
  o.per_image = c.flag();
  c.enum_field(o.activation, 2);
  o.squared = c.flag();
  o.weight = option_tensor(c, b, true);
  c.enum_field(o.weighting, 2);
  o.class_weight = option_tensor(c, b, false);
  o.include_background = c.flag();
  c.enum_field(o.empty, 4);
  o.gamma = c.option(0.5, 3);
  o.log = c.flag();
  o.clamp = c.flag();
  if (o.log) c.clean = false;  // log of a zero score is -inf by design
  int activation;
  std::memcpy(&activation, &o.activation, sizeof activation);
  if (activation == SEGLOSS_ACTIVATION_NONE) c.clean = false;  // logits taken as probabilities
}

void decode(Ctx& c, const Batch& b, segloss_tversky_options& o) {
  segloss_tversky_options_init(&o);
  decode(c, b, o.overlap);
  o.alpha = c.option(0, 1);
  o.beta = c.option(0, 1);
}

void decode(Ctx& c, const Batch& b, segloss_bce_dice_options& o) {
  segloss_bce_dice_options_init(&o);
  o.bce_weight = c.option(0, 2);
  o.dice_weight = c.option(0, 2);
  decode(c, b, o.bce);
  decode(c, b, o.dice);
}

void decode(Ctx& c, const Batch& b, segloss_cross_entropy_options& o) {
  segloss_cross_entropy_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.weight = option_tensor(c, b, false);
  const uint8_t k = c.r.byte();
  o.ignore_index = k < 200 ? -100 : k < 230 ? 0 : k < 250 ? -1 : c.r.raw<int64_t>();
  o.label_smoothing = c.option(0, 1);
  o.ignore_negative = c.flag();
  c.enum_field(o.mean_over, 2);
  c.enum_field(o.all_ignored, 2);
  int all_ignored;
  std::memcpy(&all_ignored, &o.all_ignored, sizeof all_ignored);
  if (all_ignored == SEGLOSS_ALL_IGNORED_NAN) c.clean = false;  // NaN by design
}

void decode(Ctx& c, const Batch& b, segloss_softmax_focal_options& o) {
  segloss_softmax_focal_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.alpha = option_tensor(c, b, false);
  o.gamma = c.option(0, 4);
  const uint8_t k = c.r.byte();
  o.ignore_index = k < 220 ? -100 : k < 240 ? 0 : c.r.raw<int64_t>();
}

void decode(Ctx& c, const Batch& b, segloss_softmax_overlap_options& o) {
  segloss_softmax_overlap_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.smooth_nr = c.option(0, 1);
  o.smooth_dr = c.option(1e-6, 1);
  o.per_image = c.flag();
  o.squared = c.flag();
  o.class_weight = option_tensor(c, b, false);
  o.include_background = c.flag();
  c.enum_field(o.empty, 4);
  o.gamma = c.option(0.5, 3);
  o.log = c.flag();
  o.clamp = c.flag();
  const uint8_t k = c.r.byte();
  o.ignore_index = k < 220 ? -100 : k < 240 ? 0 : c.r.raw<int64_t>();
  if (o.log) c.clean = false;
}

void decode(Ctx& c, const Batch& b, segloss_softmax_tversky_options& o) {
  segloss_softmax_tversky_options_init(&o);
  decode(c, b, o.overlap);
  o.alpha = c.option(0, 1);
  o.beta = c.option(0, 1);
}

void decode(Ctx& c, const Batch&, segloss_generalized_dice_options& o) {
  segloss_generalized_dice_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.smooth_nr = c.option(0, 1);
  o.smooth_dr = c.option(1e-6, 1);
  o.per_image = c.flag();
  c.enum_field(o.w_type, 3);
  o.include_background = c.flag();
  const uint8_t k = c.r.byte();
  o.ignore_index = k < 220 ? -100 : k < 240 ? 0 : c.r.raw<int64_t>();
}

void decode(Ctx& c, const Batch& b, segloss_ce_dice_options& o) {
  segloss_ce_dice_options_init(&o);
  o.ce_weight = c.option(0, 2);
  o.dice_weight = c.option(0, 2);
  decode(c, b, o.ce);
  decode(c, b, o.dice);
}

void decode(Ctx& c, const Batch& b, segloss_dice_focal_options& o) {
  segloss_dice_focal_options_init(&o);
  o.dice_weight = c.option(0, 2);
  o.focal_weight = c.option(0, 2);
  decode(c, b, o.dice);
  decode(c, b, o.focal);
}

void decode(Ctx& c, const Batch& b, segloss_lovasz_softmax_options& o) {
  segloss_lovasz_softmax_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.per_image = c.flag();
  c.enum_field(o.classes, 2);
  const uint8_t k = c.r.byte();
  if (k >= 128) {
    const int64_t n = k % 5;  // 0 entries: use `classes`
    auto* list = static_cast<int64_t*>(c.alloc(static_cast<size_t>(n) * sizeof(int64_t)));
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t v = c.r.byte();
      list[i] = v < 240 ? v % (b.classes + 1) : -1;  // b.classes, -1: out of range
    }
    o.class_list = list;
    o.class_list_size = k >= 250 ? -1 : n;
  }
  const uint8_t g = c.r.byte();
  o.ignore_index = g < 220 ? -100 : g < 240 ? 0 : c.r.raw<int64_t>();
}

void decode(Ctx& c, const Batch&, segloss_lovasz_hinge_options& o) {
  segloss_lovasz_hinge_options_init(&o);
  c.enum_field(o.reduction, 3);
  o.per_image = c.flag();
  o.has_ignore = c.flag();
  o.ignore = c.option(0, 1);
}

// ------------------------------------------------------------------------------------------
// Losses
// ------------------------------------------------------------------------------------------

template <class O>
using VgFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*, const O*, double*,
                                const segloss_tensor*, void*);
template <class O>
using IntoFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*, const O*,
                                  const segloss_tensor*, const segloss_tensor*, void*);
template <class O>
using FwdFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*, const O*,
                                 const segloss_tensor*, void*);
template <class O>
using BwdFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*,
                                 const segloss_tensor*, const O*, const segloss_tensor*, void*);
template <class O>
using StatsFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*, const O*,
                                   segloss_statistics**, void*);
template <class O>
using FinFn = segloss_status (*)(const segloss_tensor*, const segloss_tensor*,
                                 const segloss_statistics*, const O*, double*,
                                 const segloss_tensor*, void*);

template <class O>
struct Loss {
  const char* name;
  VgFn<O> vg;
  IntoFn<O> into;  // value_and_grad_into: the value into a one-element tensor
  FwdFn<O> fwd;
  BwdFn<O> bwd;
  StatsFn<O> stats;  // NULL for the Lovasz losses
  FinFn<O> fin;
};

// The statistics of an earlier call of this input (maybe another loss, another shape): a
// finalize given them must refuse or compute, never crash.
struct StatsHolder {
  segloss_statistics* st = nullptr;
  ~StatsHolder() { segloss_statistics_destroy(st); }
};

std::string fn(const char* loss, const char* entry) {
  return std::string("segloss_") + loss + "_" + entry;
}

// The gradient buffer: the logits' shape and dtype mostly; a wrong one or NULL now and then.
const segloss_tensor* grad_buffer(Ctx& c, const Batch& b) {
  const uint8_t k = c.r.byte();
  if (k == 255) return nullptr;
  int64_t shape[SEGLOSS_MAX_NDIM];
  std::memcpy(shape, b.x.shape, sizeof shape);
  int dtype = dtype_of(b.x);
  if (k == 254 && b.x.ndim > 0) shape[b.x.ndim - 1] += 1;  // too large: refused
  if (k == 253) dtype = dtype == SEGLOSS_F32 ? SEGLOSS_F64 : SEGLOSS_F32;
  c.tensors.push_back(make_tensor(c, dtype, b.x.ndim, shape));
  return &c.tensors.back();
}

// value_and_grad_into: the value into a tensor of one element with the logits' dtype (mostly),
// or a bad one: two elements, the other float dtype, NULL, or one inside the gradient buffer or
// the logits (refused: the value may not overlap another argument). On the CPU it must store
// value_and_grad's value, rounded to the logits' dtype, when both calls succeed.
template <class O>
void run_into(Ctx& c, const Batch& b, const Loss<O>& L, const segloss_tensor* target, const O* opts,
              bool vg_ok, double vg_value) {
  const std::string f = fn(L.name, "value_and_grad_into");
  const segloss_tensor* g = grad_buffer(c, b);
  const uint8_t k = c.r.byte();
  int dtype = dtype_of(b.x);
  int64_t shape[SEGLOSS_MAX_NDIM] = {1, 1, 1, 1, 1};
  int ndim = k & 3;                      // (), (1), (1,1) or (1,1,1): any shape of one element
  if (k == 255) shape[0] = 2, ndim = 1;  // two elements: refused
  if (k == 254) dtype = dtype == SEGLOSS_F32 ? SEGLOSS_F64 : SEGLOSS_F32;  // refused
  segloss_tensor value = make_tensor(c, dtype, ndim, shape);
  const segloss_tensor* vp = &value;
  bool overlaps = false;
  if (k == 253) vp = nullptr;
  if (k == 252 && g && g->data && numel_of(*g) > 0) {  // inside grad
    value.data = g->data;
    std::memcpy(&value.dtype, &g->dtype, sizeof value.dtype);  // any int: not an enum load
    overlaps = true;
  }
  if (k == 251 && b.x.data && numel_of(b.x) > 0) {  // inside the logits
    value.data = b.x.data;
    std::memcpy(&value.dtype, &b.x.dtype, sizeof value.dtype);  // any int: not an enum load
    overlaps = true;
  }
  const bool ok = check(L.into(&b.x, target, opts, vp, g, nullptr), f.c_str());
  if (ok && overlaps) finding(f + ": accepted a value overlapping another argument");
  if (!ok || !vp) return;
  const double v = get(value, 0);
  check_finite(c, ok, f.c_str(), v, g);
  if (vg_ok && !overlaps && dtype == dtype_of(b.x) &&
      (dtype == SEGLOSS_F32 || dtype == SEGLOSS_F64)) {
    const double want =
        dtype == SEGLOSS_F32 ? static_cast<double>(static_cast<float>(vg_value)) : vg_value;
    if (!(v == want || (std::isnan(v) && std::isnan(want))))
      finding(f + ": stored " + std::to_string(v) + ", value_and_grad gave " +
              std::to_string(vg_value));
  }
}

template <class O>
void run_loss(Ctx& c, const Batch& b, const Loss<O>& L, const segloss_tensor* target,
              bool target_clean, StatsHolder& held) {
  O o;
  const bool before = c.clean;
  decode(c, b, o);
  const O* opts = c.r.byte() < 32 ? nullptr : &o;
  if (!opts) c.clean = before;  // NULL options: the defaults, which are sane
  c.clean = c.clean && b.x_clean && target_clean;
  const uint8_t which = c.r.byte();
  bool vg_ok = false;
  double vg_value = 0;
  if (which & 1) {  // value_and_grad
    const std::string f = fn(L.name, "value_and_grad");
    const segloss_tensor* g = grad_buffer(c, b);
    double* vp = c.r.byte() == 255 ? nullptr : &vg_value;
    vg_ok = check(L.vg(&b.x, target, opts, vp, g, nullptr), f.c_str()) && vp;
    check_finite(c, vg_ok, f.c_str(), vg_value, g);
  }
  if (which & 64) run_into(c, b, L, target, opts, vg_ok, vg_value);
  if (which & 2) {  // forward, then backward with the forward's shape
    const std::string f = fn(L.name, "forward");
    int ndim = 0;
    int64_t shape[SEGLOSS_MAX_NDIM] = {1, 1, 1, 1, 1};
    const uint8_t k = c.r.byte();
    if (k & 1) ndim = 1;  // (1) or ()
    segloss_tensor out = make_tensor(c, dtype_of(b.x), ndim, shape);
    bool ok = check(L.fwd(&b.x, target, opts, &out, nullptr), f.c_str());
    if (!ok && result_shape(ndim, shape)) {  // reduction none: the per-element shape
      out = make_tensor(c, dtype_of(b.x), ndim, shape);
      ok = check(L.fwd(&b.x, target, opts, &out, nullptr), f.c_str());
    }
    if (ok && c.clean && !all_finite(out)) finding(f + ": non-finite output on clean input");
    if (ok || (k & 2)) {
      const std::string fb = fn(L.name, "backward");
      segloss_tensor go = make_tensor(c, dtype_of(b.x), out.ndim, out.shape);
      const int64_t n = numel_of(go);
      for (int64_t i = 0; i < n; ++i) put(go, i, c.option(-2, 2));
      const segloss_tensor* g = grad_buffer(c, b);
      const bool okb = check(L.bwd(&b.x, target, &go, opts, g, nullptr), fb.c_str());
      check_finite(c, okb, fb.c_str(), 0.0, g);
    }
  }
  if ((which & 4) && L.stats) {  // statistics, the all-reduce (one shard), finalize
    const std::string fs = fn(L.name, "statistics");
    const std::string ff = fn(L.name, "finalize");
    segloss_statistics* st = nullptr;
    const bool ok = check(L.stats(&b.x, target, opts, &st, nullptr), fs.c_str());
    if (ok != (st != nullptr)) finding(fs + ": statistics pointer does not match the status");
    if (ok) {
      double* data = nullptr;
      int64_t count = -1;
      if (check(segloss_statistics_global(st, &data, &count), "segloss_statistics_global")) {
        if (count < 0 || (count > 0 && data == nullptr))
          finding("segloss_statistics_global: bad data or count");
        if (count > 0 && (which & 8)) {  // a corrupt reduction: any doubles
          for (int64_t i = 0; i < count; ++i) data[i] = c.option(0, 10);
          c.clean = false;
        }
      }
      const segloss_statistics* use = st;
      if ((which & 16) && held.st) {
        use = held.st;  // another call's statistics
        c.clean = false;
      }
      const segloss_tensor* g = grad_buffer(c, b);
      double value = 0;
      const bool okf = check(L.fin(&b.x, target, use, opts, &value, g, nullptr), ff.c_str());
      check_finite(c, okf, ff.c_str(), value, g);
      segloss_statistics_destroy(held.st);
      held.st = st;
    }
  }
  if (which & 32) {  // NULL logits and target: refused
    double value = 0;
    const std::string f = fn(L.name, "value_and_grad");
    if (check(L.vg(nullptr, target, opts, &value, &b.x, nullptr), f.c_str()) ||
        check(L.vg(&b.x, nullptr, opts, &value, &b.x, nullptr), f.c_str()))
      finding(f + ": accepted a NULL tensor");
  }
}

template <class O>
Loss<O> loss(const char* name, VgFn<O> vg, IntoFn<O> into, FwdFn<O> fwd, BwdFn<O> bwd,
             StatsFn<O> st, FinFn<O> fin) {
  return Loss<O>{name, vg, into, fwd, bwd, st, fin};
}

#define LOSS(NAME)                                                                       \
  loss(#NAME, segloss_##NAME##_value_and_grad, segloss_##NAME##_value_and_grad_into,     \
       segloss_##NAME##_forward, segloss_##NAME##_backward, segloss_##NAME##_statistics, \
       segloss_##NAME##_finalize)
#define LOSS_NO_SPLIT(NAME, O)                                                          \
  loss<O>(#NAME, segloss_##NAME##_value_and_grad, segloss_##NAME##_value_and_grad_into, \
          segloss_##NAME##_forward, segloss_##NAME##_backward, nullptr, nullptr)

// The target of a "classes" loss: the labels, or probabilities like the logits.
const segloss_tensor* class_target(Ctx& c, const Batch& b, bool& clean) {
  if (c.r.byte() & 1) {
    clean = b.t_clean;
    return &b.t;
  }
  clean = b.lab_clean;
  return &b.lab;
}

void run_losses(Ctx& c, const Batch& b, uint8_t family) {
  StatsHolder held;
  const int rounds = 1 + (c.r.byte() & 1);  // a second loss can finalize with the first's stats
  for (int round = 0; round < rounds; ++round, family = c.r.byte()) {
    bool tc = b.t_clean;
    switch (family % 17) {
      case 0:
        run_loss(c, b, LOSS(bce_with_logits), &b.t, b.t_clean, held);
        break;
      case 1:
        run_loss(c, b, LOSS_NO_SPLIT(binary_cross_entropy, segloss_binary_cross_entropy_options),
                 &b.t, false, held);  // probabilities in: the logits are not in [0, 1]
        break;
      case 2:
        run_loss(c, b, LOSS(sigmoid_focal), &b.t, b.t_clean, held);
        break;
      case 3:
        run_loss(c, b, LOSS(soft_dice), &b.t, b.t_clean, held);
        break;
      case 4:
        run_loss(c, b, LOSS(soft_jaccard), &b.t, b.t_clean, held);
        break;
      case 5:
        run_loss(c, b, LOSS(tversky), &b.t, b.t_clean, held);
        break;
      case 6:
        run_loss(c, b, LOSS(bce_dice), &b.t, b.t_clean, held);
        break;
      case 7:
        run_loss(c, b, LOSS_NO_SPLIT(lovasz_hinge, segloss_lovasz_hinge_options), &b.t, b.t_clean,
                 held);
        break;
      case 8: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(cross_entropy), t, tc, held);
        break;
      }
      case 9: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(softmax_dice), t, tc, held);
        break;
      }
      case 10: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(softmax_jaccard), t, tc, held);
        break;
      }
      case 11: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(softmax_tversky), t, tc, held);
        break;
      }
      case 12: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(generalized_dice), t, tc, held);
        break;
      }
      case 13: {
        const segloss_tensor* t = class_target(c, b, tc);
        run_loss(c, b, LOSS(ce_dice), t, tc, held);
        break;
      }
      case 14:
        run_loss(c, b, LOSS(softmax_focal), &b.lab, b.lab_clean, held);
        break;
      case 15:
        run_loss(c, b, LOSS(dice_focal), &b.lab, b.lab_clean, held);
        break;
      default:
        run_loss(c, b, LOSS_NO_SPLIT(lovasz_softmax, segloss_lovasz_softmax_options), &b.lab,
                 b.lab_clean, held);
        break;
    }
    c.clean = true;  // the next round decodes its own options
  }
}

// ------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------

void decode(Ctx& c, segloss_confusion_matrix_options& o) {
  segloss_confusion_matrix_options_init(&o);
  const uint8_t k = c.r.byte();
  o.ignore_index = k < 200 ? -100 : k < 230 ? 0 : k < 250 ? 255 : c.r.raw<int64_t>();
  c.enum_field(o.out_of_range, 2);
}

void decode(Ctx& c, segloss_score_options& o) {
  segloss_score_options_init(&o);
  c.enum_field(o.empty, 4);
  o.beta = c.option(0.1, 3);
}

void run_confusion(Ctx& c, const Batch& b) {
  segloss_confusion_matrix_options co;
  decode(c, co);
  const segloss_confusion_matrix_options* cop = c.r.byte() < 32 ? nullptr : &co;
  const uint8_t k = c.r.byte();
  // A matrix holds C^2 counts and its scores cost O(C^2): with C up to 32768 (a rank-2 input's
  // long axis) one input took over 10 s and 2.6 GB, so C is kept small here.
  int64_t classes = b.classes > 300 ? 1 + b.classes % 300 : b.classes;
  if (k >= 240) classes = k == 255 ? 0 : k == 254 ? -1 : k == 253 ? 32769 : 1;
  segloss_confusion_matrix* cm = nullptr;
  const bool ok =
      check(segloss_confusion_matrix_create(classes, cop, &cm), "segloss_confusion_matrix_create");
  if (ok != (cm != nullptr)) finding("segloss_confusion_matrix_create: pointer and status differ");
  if (!ok) return;
  std::unique_ptr<segloss_confusion_matrix, void (*)(segloss_confusion_matrix*)> hold(
      cm, segloss_confusion_matrix_destroy);
  const uint8_t which = c.r.byte();
  if (which & 1)
    check(segloss_confusion_matrix_update_from_logits(cm, &b.x, &b.lab, nullptr),
          "segloss_confusion_matrix_update_from_logits");
  if (which & 2) {  // predicted labels: the labels shifted, in and out of range
    segloss_tensor p = make_tensor(c, dtype_of(b.lab), b.lab.ndim, b.lab.shape);
    const int64_t n = numel_of(p);
    const int64_t shift = c.r.byte() % 3;
    for (int64_t i = 0; i < n; ++i) {
      const double v = get(b.lab, i);
      put(p, i, v < 0 ? v : std::fmod(v + static_cast<double>(shift), classes + 1.0));
    }
    check(segloss_confusion_matrix_update(cm, &p, &b.lab, nullptr),
          "segloss_confusion_matrix_update");
  }
  // A second matrix from counts (the first's, or of a bad count), merged in.
  if (which & 4) {
    const int64_t need = classes * classes;
    auto* counts = static_cast<int64_t*>(c.alloc(static_cast<size_t>(need) * sizeof(int64_t)));
    if (check(segloss_confusion_matrix_counts(cm, counts, need),
              "segloss_confusion_matrix_counts")) {
      if (c.r.byte() >= 240 && need > 0) counts[0] = -1;  // a negative count: refused
      segloss_confusion_matrix* other = nullptr;
      const int64_t oc = c.r.byte() >= 240 ? classes + 1 : classes;
      int64_t* src = counts;
      if (oc != classes) {  // from_counts reads oc^2 values
        src = static_cast<int64_t*>(c.alloc(static_cast<size_t>(oc * oc) * sizeof(int64_t)));
        std::memset(src, 0, static_cast<size_t>(oc * oc) * sizeof(int64_t));
      }
      if (check(segloss_confusion_matrix_from_counts(oc, src, cop, &other),
                "segloss_confusion_matrix_from_counts")) {
        check(segloss_confusion_matrix_merge(cm, other), "segloss_confusion_matrix_merge");
        const segloss_confusion_matrix* images[2] = {cm, other};
        segloss_score_options so;
        decode(c, so);
        const int score = c.enum_value(5);
        const int avg = c.enum_value(4);
        double v = 0;
        check(fuzz_average_score_images(images, 2, score, avg, &so, &v),
              "segloss_average_score_images");
        segloss_confusion_matrix_destroy(other);
      }
    }
    if (check(segloss_confusion_matrix_counts(cm, counts, need - 1),
              "segloss_confusion_matrix_counts"))
      finding("segloss_confusion_matrix_counts: accepted a short buffer");
  }
  if (which & 8) check(segloss_confusion_matrix_reset(cm), "segloss_confusion_matrix_reset");
  int64_t nc = 0;
  if (check(segloss_confusion_matrix_num_classes(cm, &nc),
            "segloss_confusion_matrix_num_classes") &&
      nc != classes)
    finding("segloss_confusion_matrix_num_classes: wrong count");
  int64_t* data = nullptr;
  int64_t count = 0;
  if (check(segloss_confusion_matrix_data(cm, &data, &count), "segloss_confusion_matrix_data") &&
      count != classes * classes)
    finding("segloss_confusion_matrix_data: wrong count");
  // The scores, each into an exactly sized buffer.
  segloss_score_options so;
  decode(c, so);
  const segloss_score_options* sop = c.r.byte() < 32 ? nullptr : &so;
  const int score = c.enum_value(5);
  const int avg = c.enum_value(4);
  auto* values = static_cast<double*>(c.alloc(static_cast<size_t>(classes) * sizeof(double)));
  double v = 0;
  check(fuzz_class_scores(cm, score, sop, values, classes),
        "segloss_confusion_matrix_class_scores");
  check(fuzz_average_score(cm, score, avg, sop, &v), "segloss_confusion_matrix_average_score");
  segloss_fcn_scores fs;
  auto* iou = static_cast<double*>(c.alloc(static_cast<size_t>(classes) * sizeof(double)));
  check(segloss_confusion_matrix_fcn_scores(cm, &fs, which & 16 ? nullptr : iou, classes),
        "segloss_confusion_matrix_fcn_scores");
  check(segloss_confusion_matrix_pixel_accuracy(cm, &v), "segloss_confusion_matrix_pixel_accuracy");
  check(segloss_confusion_matrix_cohen_kappa(cm, sop, &v), "segloss_confusion_matrix_cohen_kappa");
  check(segloss_confusion_matrix_matthews_corrcoef(cm, sop, &v),
        "segloss_confusion_matrix_matthews_corrcoef");
  if (which & 32) {  // NULL outputs: refused
    if (check(fuzz_average_score(cm, score, avg, sop, nullptr),
              "segloss_confusion_matrix_average_score") ||
        check(segloss_confusion_matrix_merge(cm, nullptr), "segloss_confusion_matrix_merge"))
      finding("confusion matrix: accepted a NULL pointer");
  }
}

void run_dice_score(Ctx& c, const Batch& b) {
  segloss_dice_score_options o;
  segloss_dice_score_options_init(&o);
  c.enum_field(o.activation, 2);
  o.threshold = c.option(0, 1);
  o.round = c.flag();
  o.smooth_nr = c.option(0, 1);
  o.smooth_dr = c.option(0, 1);
  o.per_channel = c.flag();
  const uint8_t k = c.r.byte();
  o.border = k < 240 ? k % 3 : -static_cast<int>(k & 3);
  c.enum_field(o.empty, 4);
  o.clamp = c.flag();
  o.check_binary = c.flag();
  const segloss_dice_score_options* op = c.r.byte() < 32 ? nullptr : &o;
  segloss_dice_score_result res;
  const uint8_t s = c.r.byte();
  const segloss_tensor* scores = nullptr;
  if (s & 1) {  // per-score output: (N, C) or (N), f64; sometimes the other one (refused)
    const bool per_channel = op ? o.per_channel != 0 : true;
    const int64_t shape[2] = {b.n, b.classes};
    c.tensors.push_back(make_tensor(c, SEGLOSS_F64, per_channel != ((s & 2) != 0) ? 2 : 1, shape));
    scores = &c.tensors.back();
  }
  check(segloss_dice_score(&b.x, &b.t, op, &res, scores, nullptr), "segloss_dice_score");
}

void decode(Ctx& c, const Batch& b, segloss_surface_distance_options& o) {
  segloss_surface_distance_options_init(&o);
  const uint8_t k = c.r.byte();
  if (k >= 128) {
    int64_t n = b.x.ndim >= 2 ? b.x.ndim - 2 : 0;
    if (k >= 240) n = k % 5;  // maybe the wrong count
    auto* sp = static_cast<double*>(c.alloc(static_cast<size_t>(n) * sizeof(double)));
    for (int64_t i = 0; i < n; ++i) sp[i] = c.option(0.1, 3);
    o.spacing = sp;
    o.spacing_size = k == 255 ? -1 : n;
  }
  o.percentile = c.option(0, 100);
  o.tolerance = c.option(0, 3);
  const uint8_t t = c.r.byte();
  if (t >= 192) {
    const int64_t n = t >= 250 ? t % 4 : b.classes;
    auto* ct = static_cast<double*>(c.alloc(static_cast<size_t>(n) * sizeof(double)));
    for (int64_t i = 0; i < n; ++i) ct[i] = c.option(0, 3);
    o.class_tolerance = ct;
    o.class_tolerance_size = n;
  }
  o.directed = c.flag();
  c.enum_field(o.empty, 2);
  const uint8_t g = c.r.byte();
  o.ignore_index = g < 220 ? -100 : g < 240 ? 0 : c.r.raw<int64_t>();
}

// The per-pair output (4, N, K): exact, or a wrong shape now and then.
const segloss_tensor* per_pair(Ctx& c, int64_t n, int64_t k) {
  const uint8_t s = c.r.byte();
  if (s < 128) return nullptr;
  const int64_t shape[3] = {4, n, s >= 250 ? k + 1 : k};
  c.tensors.push_back(make_tensor(c, SEGLOSS_F64, 3, shape));
  return &c.tensors.back();
}

void run_surface(Ctx& c, const Batch& b) {
  segloss_surface_distance_options o;
  decode(c, b, o);
  const segloss_surface_distance_options* op = c.r.byte() < 32 ? nullptr : &o;
  segloss_surface_distance_result res;
  // Binary masks: the target, and the logits thresholded at 0 (pred).
  segloss_tensor pred = make_tensor(c, dtype_of(b.t), b.x.ndim, b.x.shape);
  const int64_t n = numel_of(pred);
  const bool fx = dtype_of(b.x) == SEGLOSS_F32 || dtype_of(b.x) == SEGLOSS_F64;
  for (int64_t i = 0; i < n && fx; ++i) put(pred, i, get(b.x, i) > 0 ? 1.0 : 0.0);
  // The forms with and without a stream (NULL: the same work on the CPU), chosen by the input.
  const bool on_stream = c.r.byte() % 2 == 1;
  if (on_stream)
    check(segloss_surface_distance_on_stream(&pred, &b.t, op, &res, per_pair(c, b.n, b.classes),
                                             nullptr),
          "segloss_surface_distance_on_stream");
  else
    check(segloss_surface_distance(&pred, &b.t, op, &res, per_pair(c, b.n, b.classes)),
          "segloss_surface_distance");
  // Label maps: the classes listed by the input.
  const int64_t k = c.r.byte() % 4;
  auto* classes = static_cast<int64_t*>(c.alloc(static_cast<size_t>(k) * sizeof(int64_t)));
  for (int64_t i = 0; i < k; ++i) classes[i] = c.r.byte() % (b.classes + 2) - 1;
  segloss_tensor pl = make_tensor(c, dtype_of(b.lab), b.lab.ndim, b.lab.shape);
  const int64_t nl = numel_of(pl);
  for (int64_t i = 0; i < nl; ++i) put(pl, i, get(b.lab, (i + 1) % nl));
  const segloss_tensor* pp = per_pair(c, b.lab.ndim > 0 ? b.lab.shape[0] : 1, k);
  if (on_stream)
    check(segloss_surface_distance_labels_on_stream(&pl, &b.lab, classes, k, op, &res, pp, nullptr),
          "segloss_surface_distance_labels_on_stream");
  else
    check(segloss_surface_distance_labels(&pl, &b.lab, classes, k, op, &res, pp),
          "segloss_surface_distance_labels");
}

void run_boundary(Ctx& c, const Batch& b) {
  segloss_boundary_weights_options o;
  segloss_boundary_weights_options_init(&o);
  const uint8_t k = c.r.byte();
  o.kernel_size = k < 128 ? 0 : k < 250 ? (k % 8) : -static_cast<int>(k & 3);
  o.low = c.option(0, 0.5);
  o.high = c.option(0.5, 1);
  o.boost = c.option(0, 4);
  o.normalize = c.flag();
  const segloss_boundary_weights_options* op = c.r.byte() < 32 ? nullptr : &o;
  const segloss_tensor* w = grad_buffer(c, b);  // the mask's shape and dtype, or not
  const bool ok = check(segloss_boundary_weights(&b.t, op, w, nullptr), "segloss_boundary_weights");
  if (ok && c.clean && b.t_clean && !all_finite(*w))
    finding("segloss_boundary_weights: non-finite weights on a clean mask");
}

void run_misc(Ctx& c) {
  // The functions without a status, called with anything.
  int major = 0, minor = 0, patch = 0;
  segloss_version_numbers(&major, nullptr, &patch);
  segloss_version_numbers(nullptr, &minor, nullptr);
  if (std::strlen(segloss_version()) == 0) finding("segloss_version: empty");
  if (segloss_abi_version() != SEGLOSS_C_ABI_VERSION) finding("segloss_abi_version: mismatch");
  if (fuzz_status_name(static_cast<int>(c.r.byte()) - 4) == nullptr)
    finding("segloss_status_name: NULL");
  const int64_t shape[6] = {1, 2, 3, 4, 5, 6};
  const int d = c.r.byte() % 7;
  const int nd = c.r.byte() % 8 - 1;
  const segloss_tensor t = fuzz_tensor_make(nullptr, d, nd, c.r.byte() & 1 ? shape : nullptr);
  if (t.ndim < -1 || t.ndim > SEGLOSS_MAX_NDIM) finding("segloss_tensor_make: bad ndim");
  (void)segloss_has_cuda();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  Ctx c(r);
  const uint8_t what = r.byte();
  const Batch b = decode_batch(c);
  switch (what % 8) {
    case 0:
      run_confusion(c, b);
      break;
    case 1:
      run_dice_score(c, b);
      break;
    case 2:
      run_surface(c, b);
      break;
    case 3:
      run_boundary(c, b);
      break;
    case 4:
      run_misc(c);
      break;
    default:
      run_losses(c, b, r.byte());
      break;
  }
  return 0;
}
