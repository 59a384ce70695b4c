/* segloss C API: the stable C ABI over segloss's losses and metrics, for other languages and
 * for engines that are not written in C++. C99; usable from C and C++. docs/c-api.md has the
 * rules (ownership, contiguity, errors, versioning) and an example.
 *
 * Tensors. A segloss_tensor describes memory the caller owns: a data pointer, a dtype, a
 * device, ndim and shape (DLPack's DLTensor without strides: always contiguous, row-major).
 * segloss never keeps a pointer after a call returns and never frees caller memory. Inputs
 * are only read; outputs (grad, out, ...) are buffers the caller allocated with the right
 * dtype and shape.
 *
 * Status. Every entry point returns a segloss_status; SEGLOSS_OK is 0. On failure,
 * segloss_last_error() returns a message naming the function, the argument and the values
 * (thread-local, valid until the thread's next failing call). No C++ exception crosses this
 * boundary. On failure the outputs may be partly written (a C++ check that runs before the
 * kernel leaves them untouched; see each loss's C++ header).
 *
 * 16-bit logits. Every loss takes SEGLOSS_F16 and SEGLOSS_BF16 logits in its forward, backward,
 * value_and_grad, value_and_grad_into and statistics / finalize; every other floating tensor of the
 * call (target, weights, grad_out, grad, out) then has the logits' dtype; a label target stays a
 * label map. They run the float loss on widened copies and round the results
 * (losses/half_logits.hpp). The metrics and boundary_weights answer SEGLOSS_ERROR_DTYPE for them.
 *
 * Options. Each loss family has an options struct; segloss_X_options_init(&o) sets the
 * defaults documented in the C++ header losses/X.hpp (the same names, the same meaning).
 * Passing NULL for options means the defaults. Optional tensors in options (weights, class
 * weights, ...) are pointers: NULL means "not given". Boolean fields are int (0 or not 0).
 *
 * Per loss X (X = bce_with_logits, soft_dice, cross_entropy, ...):
 *   segloss_X_value_and_grad(logits, target, options, &value, grad, cuda_stream)
 *       fused value (double) and gradient into `grad` (shaped and typed like the logits);
 *       reduction mean or sum.
 *   segloss_X_forward(logits, target, options, out, cuda_stream)
 *       the loss into `out`: one element for mean and sum (shape () or any shape with one
 *       element), the per-element or per-score shape for none; dtype of the logits.
 *   segloss_X_backward(logits, target, grad_out, options, grad, cuda_stream)
 *       d(loss)/d(logits) scaled by grad_out (one element for mean and sum, the forward's
 *       shape for none) into `grad`.
 *   segloss_X_value_and_grad_into(logits, target, options, value, grad, cuda_stream)
 *       value_and_grad with the value written into the tensor `value` (one element, the
 *       logits' dtype and device) instead of a double: on CUDA nothing waits, so a training
 *       step on a stream never synchronizes.
 * and, for the losses with a statistics/finalize split (all but binary_cross_entropy and the
 * Lovasz losses), segloss_X_statistics and segloss_X_finalize (see segloss_statistics below).
 *
 * cuda_stream: a cudaStream_t passed as void*; NULL means the default (legacy) stream. The
 * call enqueues its kernels on it (segloss::cuda::StreamScope) when the tensors live on a CUDA
 * device; CPU tensors ignore it. A call that returns a host value (value_and_grad's double)
 * waits for that stream only. segloss_has_cuda() says whether CUDA tensors can be used; every
 * loss and metric has a CUDA path (docs/cuda.md). Calls run on the current CUDA device
 * (cudaSetDevice): a call's CUDA tensors and stream must belong to it.
 *
 * Thread safety: calls on distinct outputs may run concurrently from any threads; a confusion
 * matrix or statistics object must not be used by two threads at once.
 */
#ifndef SEGLOSS_C_H
#define SEGLOSS_C_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(SEGLOSS_C_BUILDING)
#define SEGLOSS_C_API __declspec(dllexport)
#else
#define SEGLOSS_C_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define SEGLOSS_C_API __attribute__((visibility("default")))
#else
#define SEGLOSS_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* The version of this header. The ABI (struct layouts, enum values, signatures) changes only
 * with SEGLOSS_C_ABI_VERSION; a program may check segloss_abi_version() == SEGLOSS_C_ABI_VERSION
 * at start-up. */
#define SEGLOSS_C_VERSION_MAJOR 0
#define SEGLOSS_C_VERSION_MINOR 1
#define SEGLOSS_C_VERSION_PATCH 0
#define SEGLOSS_C_ABI_VERSION 1

/* "0.1.0": the library's version. */
SEGLOSS_C_API const char* segloss_version(void);
/* The same as numbers; any pointer may be NULL. */
SEGLOSS_C_API void segloss_version_numbers(int* major, int* minor, int* patch);
/* The ABI version the library was built with (SEGLOSS_C_ABI_VERSION of its header). */
SEGLOSS_C_API int segloss_abi_version(void);
/* 1 when the library was built with its CUDA backend and a CUDA device is available, else 0.
 * CUDA tensors are refused (SEGLOSS_ERROR_DEVICE) when it is 0. */
SEGLOSS_C_API int segloss_has_cuda(void);

/* ---------------------------------------------------------------------------------------- */
/* Status and errors                                                                        */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_status {
  SEGLOSS_OK = 0,
  SEGLOSS_ERROR_INVALID_ARGUMENT = 1, /* a value, shape or option segloss refuses */
  SEGLOSS_ERROR_NULL_POINTER = 2,     /* a required pointer is NULL */
  SEGLOSS_ERROR_DTYPE = 3,            /* a tensor's dtype is not one this argument takes */
  SEGLOSS_ERROR_DEVICE = 4,           /* a device this build or call does not support */
  SEGLOSS_ERROR_OUT_OF_MEMORY = 5,    /* an allocation failed */
  SEGLOSS_ERROR_INTERNAL = 6          /* anything else (a bug: please report it) */
} segloss_status;

/* The message of this thread's last failed call ("" when none), e.g.
 * "segloss_bce_with_logits_value_and_grad: bce_with_logits_value_and_grad: target (2,1,4,4)
 * does not match logits (2,1,4,5)". The pointer stays valid until this thread's next failing
 * call, or until the thread exits. */
SEGLOSS_C_API const char* segloss_last_error(void);
/* "SEGLOSS_OK", "SEGLOSS_ERROR_DTYPE", ...; "unknown status" for other values. */
SEGLOSS_C_API const char* segloss_status_name(segloss_status status);

/* The length of an array the caller passes with a count (class_list_size, spacing_size,
 * class_tolerance_size, num_classes_listed, and segloss_average_score_images' count) must be in
 * [0, 2^31 - 1]; any other count is SEGLOSS_ERROR_INVALID_ARGUMENT before the array is read. */

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_dtype {
  SEGLOSS_F32 = 0,
  SEGLOSS_F64 = 1,
  SEGLOSS_I32 = 2,
  SEGLOSS_I64 = 3,
  SEGLOSS_U8 = 4,  /* label maps only (8-bit PNG labels); copied to int32 inside the call */
  SEGLOSS_F16 = 5, /* IEEE float16 logits (and their target, weights, grad): every loss (labels
                      stay i32/i64/u8); not the metrics */
  SEGLOSS_BF16 = 6 /* bfloat16, as SEGLOSS_F16 */
} segloss_dtype;

typedef enum segloss_device { SEGLOSS_CPU = 0, SEGLOSS_CUDA = 1 } segloss_device;

#define SEGLOSS_MAX_NDIM 5

typedef struct segloss_tensor {
  void* data;                      /* the first element, aligned to its dtype's size (an error
                                      otherwise); may be NULL only when an extent is 0 */
  segloss_dtype dtype;             /* element type */
  segloss_device device;           /* where data lives */
  int32_t ndim;                    /* 0 (a scalar) to SEGLOSS_MAX_NDIM */
  int64_t shape[SEGLOSS_MAX_NDIM]; /* the first ndim are used; contiguous, row-major */
} segloss_tensor;

/* A CPU tensor descriptor over `data` with the given shape (ndim <= SEGLOSS_MAX_NDIM; larger
 * ndim leaves the descriptor with ndim = -1, which every call refuses). */
SEGLOSS_C_API segloss_tensor segloss_tensor_make(void* data, segloss_dtype dtype, int32_t ndim,
                                                 const int64_t* shape);

/* ---------------------------------------------------------------------------------------- */
/* Enums shared by the options (losses/..., core/reduction.hpp)                             */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_reduction {
  SEGLOSS_REDUCTION_NONE = 0,
  SEGLOSS_REDUCTION_MEAN = 1,
  SEGLOSS_REDUCTION_SUM = 2
} segloss_reduction;

typedef enum segloss_activation {
  SEGLOSS_ACTIVATION_SIGMOID = 0,
  SEGLOSS_ACTIVATION_NONE = 1
} segloss_activation;

typedef enum segloss_empty_policy {
  SEGLOSS_EMPTY_FORMULA = 0,
  SEGLOSS_EMPTY_ONE = 1,
  SEGLOSS_EMPTY_ZERO = 2,
  SEGLOSS_EMPTY_SKIP = 3
} segloss_empty_policy;

/* ---------------------------------------------------------------------------------------- */
/* Binary losses: bce_with_logits, binary_cross_entropy, sigmoid_focal                      */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_bce_mean_over {
  SEGLOSS_BCE_MEAN_OVER_ELEMENTS = 0,
  SEGLOSS_BCE_MEAN_OVER_WEIGHT_SUM = 1
} segloss_bce_mean_over;

/* losses/bce_with_logits.hpp. Defaults: mean, no weight, no pos_weight, mean over elements,
 * label_smoothing 0. */
typedef struct segloss_bce_with_logits_options {
  segloss_reduction reduction;
  const segloss_tensor* weight;     /* NULL: none; broadcasts to the logits */
  const segloss_tensor* pos_weight; /* NULL: none; (C), (C,1,1), (1,C,1,1) or one value */
  segloss_bce_mean_over mean_over;
  double label_smoothing;
} segloss_bce_with_logits_options;

/* losses/binary_cross_entropy.hpp (probabilities in). Defaults: mean, no weight. */
typedef struct segloss_binary_cross_entropy_options {
  segloss_reduction reduction;
  const segloss_tensor* weight;
} segloss_binary_cross_entropy_options;

/* losses/focal.hpp, sigmoid form. Defaults: mean, alpha 0.25 (< 0: none), gamma 2, no weight. */
typedef struct segloss_sigmoid_focal_options {
  segloss_reduction reduction;
  double alpha;
  double gamma;
  const segloss_tensor* weight;
} segloss_sigmoid_focal_options;

SEGLOSS_C_API void segloss_bce_with_logits_options_init(segloss_bce_with_logits_options* o);
SEGLOSS_C_API void segloss_binary_cross_entropy_options_init(
    segloss_binary_cross_entropy_options* o);
SEGLOSS_C_API void segloss_sigmoid_focal_options_init(segloss_sigmoid_focal_options* o);

/* ---------------------------------------------------------------------------------------- */
/* Overlap losses: soft_dice, soft_jaccard, tversky, bce_dice (losses/overlap.hpp)           */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_overlap_weighting {
  SEGLOSS_OVERLAP_WEIGHTING_SQUARED = 0,
  SEGLOSS_OVERLAP_WEIGHTING_ON_INPUTS = 1
} segloss_overlap_weighting;

/* Defaults: mean, smooth_nr 1e-5, smooth_dr 1e-5, per_image 1, sigmoid, squared 0, no weight,
 * weighting squared, no class_weight, include_background 1, empty formula, gamma 1, log 0,
 * clamp 0. */
typedef struct segloss_overlap_options {
  segloss_reduction reduction;
  double smooth_nr;
  double smooth_dr;
  int per_image;
  segloss_activation activation;
  int squared;
  const segloss_tensor* weight; /* per pixel, broadcasts to the input; NULL: 1 */
  segloss_overlap_weighting weighting;
  const segloss_tensor* class_weight; /* (C), >= 0; NULL: 1 */
  int include_background;
  segloss_empty_policy empty;
  double gamma;
  int log;
  int clamp;
} segloss_overlap_options;

/* losses/tversky.hpp: the overlap options plus alpha (false positives) and beta (false
 * negatives), both 0.5 by default. */
typedef struct segloss_tversky_options {
  segloss_overlap_options overlap;
  double alpha;
  double beta;
} segloss_tversky_options;

/* losses/bce_dice.hpp. Defaults: weights 1 and 1, each term's own defaults. */
typedef struct segloss_bce_dice_options {
  double bce_weight;
  double dice_weight;
  segloss_bce_with_logits_options bce;
  segloss_overlap_options dice;
} segloss_bce_dice_options;

SEGLOSS_C_API void segloss_overlap_options_init(segloss_overlap_options* o);
SEGLOSS_C_API void segloss_tversky_options_init(segloss_tversky_options* o);
SEGLOSS_C_API void segloss_bce_dice_options_init(segloss_bce_dice_options* o);

/* ---------------------------------------------------------------------------------------- */
/* Multi-class losses (losses/cross_entropy.hpp, focal.hpp, softmax_overlap.hpp,              */
/* generalized_dice.hpp, combined.hpp, lovasz.hpp)                                           */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_mean_over {
  SEGLOSS_MEAN_OVER_WEIGHTS = 0,
  SEGLOSS_MEAN_OVER_VALID_PIXELS = 1
} segloss_mean_over;

typedef enum segloss_all_ignored {
  SEGLOSS_ALL_IGNORED_ZERO = 0,
  SEGLOSS_ALL_IGNORED_NAN = 1
} segloss_all_ignored;

/* Defaults: mean, no weight, ignore_index -100, label_smoothing 0, ignore_negative 0, mean over
 * weights, all_ignored zero. Targets: labels (N, spatial...) as i32, i64 or u8, or
 * probabilities shaped and typed like the logits. */
typedef struct segloss_cross_entropy_options {
  segloss_reduction reduction;
  const segloss_tensor* weight; /* (C) class weights; NULL: 1 */
  int64_t ignore_index;
  double label_smoothing;
  int ignore_negative;
  segloss_mean_over mean_over;
  segloss_all_ignored all_ignored;
} segloss_cross_entropy_options;

/* Softmax focal (labels only). Defaults: mean, no alpha, gamma 2, ignore_index -100. */
typedef struct segloss_softmax_focal_options {
  segloss_reduction reduction;
  const segloss_tensor* alpha; /* (C); NULL: 1 */
  double gamma;
  int64_t ignore_index;
} segloss_softmax_focal_options;

/* softmax_dice and softmax_jaccard. Defaults: mean, smooth 1e-5 and 1e-5, per_image 1,
 * squared 0, no class_weight, include_background 1, empty formula, gamma 1, log 0, clamp 0,
 * ignore_index -100. */
typedef struct segloss_softmax_overlap_options {
  segloss_reduction reduction;
  double smooth_nr;
  double smooth_dr;
  int per_image;
  int squared;
  const segloss_tensor* class_weight; /* (C), >= 0; NULL: 1 */
  int include_background;
  segloss_empty_policy empty;
  double gamma;
  int log;
  int clamp;
  int64_t ignore_index;
} segloss_softmax_overlap_options;

typedef struct segloss_softmax_tversky_options {
  segloss_softmax_overlap_options overlap;
  double alpha; /* 0.5 */
  double beta;  /* 0.5 */
} segloss_softmax_tversky_options;

typedef enum segloss_generalized_dice_weight {
  SEGLOSS_GDICE_WEIGHT_SQUARE = 0,
  SEGLOSS_GDICE_WEIGHT_SIMPLE = 1,
  SEGLOSS_GDICE_WEIGHT_UNIFORM = 2
} segloss_generalized_dice_weight;

/* Defaults: mean, smooth 1e-5 and 1e-5, per_image 1, w_type square, include_background 1,
 * ignore_index -100. */
typedef struct segloss_generalized_dice_options {
  segloss_reduction reduction;
  double smooth_nr;
  double smooth_dr;
  int per_image;
  segloss_generalized_dice_weight w_type;
  int include_background;
  int64_t ignore_index;
} segloss_generalized_dice_options;

/* ce_weight * cross_entropy + dice_weight * softmax_dice; weights 1 and 1. */
typedef struct segloss_ce_dice_options {
  double ce_weight;
  double dice_weight;
  segloss_cross_entropy_options ce;
  segloss_softmax_overlap_options dice;
} segloss_ce_dice_options;

/* dice_weight * softmax_dice + focal_weight * softmax_focal; weights 1 and 1; labels only. */
typedef struct segloss_dice_focal_options {
  double dice_weight;
  double focal_weight;
  segloss_softmax_overlap_options dice;
  segloss_softmax_focal_options focal;
} segloss_dice_focal_options;

typedef enum segloss_lovasz_classes {
  SEGLOSS_LOVASZ_CLASSES_PRESENT = 0,
  SEGLOSS_LOVASZ_CLASSES_ALL = 1
} segloss_lovasz_classes;

/* Defaults: mean, per_image 0, classes present, no class_list, ignore_index -100. */
typedef struct segloss_lovasz_softmax_options {
  segloss_reduction reduction;
  int per_image;
  segloss_lovasz_classes classes;
  const int64_t* class_list; /* class_list_size entries; size 0: use `classes` (a size > 0
                                needs a pointer: NULL is SEGLOSS_ERROR_NULL_POINTER) */
  int64_t class_list_size;
  int64_t ignore_index;
} segloss_lovasz_softmax_options;

/* Defaults: mean, per_image 1, no ignore label (has_ignore 0). */
typedef struct segloss_lovasz_hinge_options {
  segloss_reduction reduction;
  int per_image;
  int has_ignore; /* not 0: pixels labelled `ignore` belong to no problem */
  double ignore;
} segloss_lovasz_hinge_options;

SEGLOSS_C_API void segloss_cross_entropy_options_init(segloss_cross_entropy_options* o);
SEGLOSS_C_API void segloss_softmax_focal_options_init(segloss_softmax_focal_options* o);
SEGLOSS_C_API void segloss_softmax_overlap_options_init(segloss_softmax_overlap_options* o);
SEGLOSS_C_API void segloss_softmax_tversky_options_init(segloss_softmax_tversky_options* o);
SEGLOSS_C_API void segloss_generalized_dice_options_init(segloss_generalized_dice_options* o);
SEGLOSS_C_API void segloss_ce_dice_options_init(segloss_ce_dice_options* o);
SEGLOSS_C_API void segloss_dice_focal_options_init(segloss_dice_focal_options* o);
SEGLOSS_C_API void segloss_lovasz_softmax_options_init(segloss_lovasz_softmax_options* o);
SEGLOSS_C_API void segloss_lovasz_hinge_options_init(segloss_lovasz_hinge_options* o);

/* ---------------------------------------------------------------------------------------- */
/* The loss entry points                                                                    */
/* ---------------------------------------------------------------------------------------- */

#define SEGLOSS_C_DECLARE_LOSS(NAME, OPTIONS)                                                     \
  SEGLOSS_C_API segloss_status segloss_##NAME##_value_and_grad(                                   \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options,         \
      double* value, const segloss_tensor* grad, void* cuda_stream);                              \
  SEGLOSS_C_API segloss_status segloss_##NAME##_forward(                                          \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options,         \
      const segloss_tensor* out, void* cuda_stream);                                              \
  SEGLOSS_C_API segloss_status segloss_##NAME##_backward(                                         \
      const segloss_tensor* logits, const segloss_tensor* target, const segloss_tensor* grad_out, \
      const OPTIONS* options, const segloss_tensor* grad, void* cuda_stream);

/* segloss_X_value_and_grad_into: as value_and_grad, but the value goes into `value`, a tensor
 * of one element (any shape with one element) with the logits' dtype, on the logits' device.
 * On CPU tensors it is value_and_grad with the value stored (the same errors). On CUDA nothing
 * waits: the value is written on the stream, after the gradient, and is only known when the
 * stream has run; so a bad label (or a bad class weight), which value_and_grad reports as
 * SEGLOSS_ERROR_INVALID_ARGUMENT, makes the value NaN instead (the gradient as the C++ form's
 * documentation says), and checks that need no device value still fail at once. The C++
 * functions are the five-argument X_value_and_grad(logits, target, grad, value, options). */
#define SEGLOSS_C_DECLARE_LOSS_INTO(NAME, OPTIONS)                                        \
  SEGLOSS_C_API segloss_status segloss_##NAME##_value_and_grad_into(                      \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options, \
      const segloss_tensor* value, const segloss_tensor* grad, void* cuda_stream);
#define SEGLOSS_C_DECLARE_LOSS_PAIR(NAME, OPTIONS) \
  SEGLOSS_C_DECLARE_LOSS(NAME, OPTIONS)            \
  SEGLOSS_C_DECLARE_LOSS_INTO(NAME, OPTIONS)

/* Target: same shape and dtype as the logits (probabilities for binary_cross_entropy's
 * "logits"). */
SEGLOSS_C_DECLARE_LOSS_PAIR(bce_with_logits, segloss_bce_with_logits_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(binary_cross_entropy, segloss_binary_cross_entropy_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(sigmoid_focal, segloss_sigmoid_focal_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(soft_dice, segloss_overlap_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(soft_jaccard, segloss_overlap_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(tversky, segloss_tversky_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(bce_dice, segloss_bce_dice_options)
/* lovasz_hinge: labels 0/1 shaped and typed like the logits. */
SEGLOSS_C_DECLARE_LOSS_PAIR(lovasz_hinge, segloss_lovasz_hinge_options)
/* Target: labels (N, spatial...) as i32, i64 or u8, or probabilities like the logits. */
SEGLOSS_C_DECLARE_LOSS_PAIR(cross_entropy, segloss_cross_entropy_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(softmax_dice, segloss_softmax_overlap_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(softmax_jaccard, segloss_softmax_overlap_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(softmax_tversky, segloss_softmax_tversky_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(generalized_dice, segloss_generalized_dice_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(ce_dice, segloss_ce_dice_options)
/* Target: labels (N, spatial...) as i32, i64 or u8. */
SEGLOSS_C_DECLARE_LOSS_PAIR(softmax_focal, segloss_softmax_focal_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(dice_focal, segloss_dice_focal_options)
SEGLOSS_C_DECLARE_LOSS_PAIR(lovasz_softmax, segloss_lovasz_softmax_options)

/* ---------------------------------------------------------------------------------------- */
/* Exact losses across data-parallel shards: statistics / finalize                          */
/* ---------------------------------------------------------------------------------------- */

/* The statistics of one shard (opaque; C++'s ShardStatistics or OverlapStatistics; the layout
 * of the numbers is in each loss's C++ header and docs/distributed.md). The protocol:
 *   1. segloss_X_statistics(logits, target, options, &st, stream)       on every shard;
 *   2. segloss_statistics_global(st, &data, &count); the caller sums the `count` doubles at
 *      `data` element-wise across the shards, in place (MPI_Allreduce(MPI_IN_PLACE, data,
 *      count, MPI_DOUBLE, MPI_SUM, comm), or ncclAllReduce on a device copy);
 *   3. segloss_X_finalize(logits, target, st, options, &value, grad, stream)  on every shard:
 *      the loss of the whole batch, and the gradient of this shard's logits;
 *   4. segloss_statistics_destroy(st).
 * Reduction mean or sum; options must be the same in steps 1 and 3. Statistics remember the
 * loss that made them and a digest of its options (every scalar and enum, and the shape of each
 * option tensor, not its values): another loss's finalize refuses them, and so does a finalize
 * given other options (SEGLOSS_ERROR_INVALID_ARGUMENT). */
typedef struct segloss_statistics segloss_statistics;

/* The numbers to all-reduce (sum): a pointer into `st`, valid until it is destroyed. */
SEGLOSS_C_API segloss_status segloss_statistics_global(segloss_statistics* st, double** data,
                                                       int64_t* count);
SEGLOSS_C_API void segloss_statistics_destroy(segloss_statistics* st); /* NULL is allowed */

#define SEGLOSS_C_DECLARE_SPLIT(NAME, OPTIONS)                                            \
  SEGLOSS_C_API segloss_status segloss_##NAME##_statistics(                               \
      const segloss_tensor* logits, const segloss_tensor* target, const OPTIONS* options, \
      segloss_statistics** statistics, void* cuda_stream);                                \
  SEGLOSS_C_API segloss_status segloss_##NAME##_finalize(                                 \
      const segloss_tensor* logits, const segloss_tensor* target,                         \
      const segloss_statistics* reduced, const OPTIONS* options, double* value,           \
      const segloss_tensor* grad, void* cuda_stream);

SEGLOSS_C_DECLARE_SPLIT(bce_with_logits, segloss_bce_with_logits_options)
SEGLOSS_C_DECLARE_SPLIT(sigmoid_focal, segloss_sigmoid_focal_options)
SEGLOSS_C_DECLARE_SPLIT(soft_dice, segloss_overlap_options)
SEGLOSS_C_DECLARE_SPLIT(soft_jaccard, segloss_overlap_options)
SEGLOSS_C_DECLARE_SPLIT(tversky, segloss_tversky_options)
SEGLOSS_C_DECLARE_SPLIT(bce_dice, segloss_bce_dice_options)
SEGLOSS_C_DECLARE_SPLIT(cross_entropy, segloss_cross_entropy_options)
SEGLOSS_C_DECLARE_SPLIT(softmax_dice, segloss_softmax_overlap_options)
SEGLOSS_C_DECLARE_SPLIT(softmax_jaccard, segloss_softmax_overlap_options)
SEGLOSS_C_DECLARE_SPLIT(softmax_tversky, segloss_softmax_tversky_options)
SEGLOSS_C_DECLARE_SPLIT(generalized_dice, segloss_generalized_dice_options)
SEGLOSS_C_DECLARE_SPLIT(ce_dice, segloss_ce_dice_options)
SEGLOSS_C_DECLARE_SPLIT(softmax_focal, segloss_softmax_focal_options)
SEGLOSS_C_DECLARE_SPLIT(dice_focal, segloss_dice_focal_options)

/* ---------------------------------------------------------------------------------------- */
/* Boundary weights (losses/boundary_weights.hpp)                                           */
/* ---------------------------------------------------------------------------------------- */

/* Defaults: kernel_size 0 (from the height), low 0.01, high 0.99, boost 2, normalize 1. */
typedef struct segloss_boundary_weights_options {
  int kernel_size;
  double low;
  double high;
  double boost;
  int normalize;
} segloss_boundary_weights_options;

SEGLOSS_C_API void segloss_boundary_weights_options_init(segloss_boundary_weights_options* o);
/* The weight map of `mask` (N, C, H, W) or (N, C, D, H, W), f32 or f64, into `weights` (same
 * shape and dtype, not the mask's memory). */
SEGLOSS_C_API segloss_status segloss_boundary_weights(
    const segloss_tensor* mask, const segloss_boundary_weights_options* options,
    const segloss_tensor* weights, void* cuda_stream);

/* ---------------------------------------------------------------------------------------- */
/* Confusion matrix and its scores (metrics/confusion_matrix.hpp, metrics/scores.hpp)       */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_out_of_range {
  SEGLOSS_OUT_OF_RANGE_ERROR = 0,
  SEGLOSS_OUT_OF_RANGE_DROP = 1
} segloss_out_of_range;

/* Defaults: ignore_index -100, out_of_range error. An ignore_index inside [0, C) (0: leave the
 * background out) names a class that is not scored: NaN in the per-class scores, left out of
 * every class mean (metrics/scores.hpp). */
typedef struct segloss_confusion_matrix_options {
  int64_t ignore_index;
  segloss_out_of_range out_of_range;
} segloss_confusion_matrix_options;

SEGLOSS_C_API void segloss_confusion_matrix_options_init(segloss_confusion_matrix_options* o);

/* An opaque matrix of int64 counts hist[true][pred]. Not safe to update from two threads at
 * once; distinct matrices are independent. */
typedef struct segloss_confusion_matrix segloss_confusion_matrix;

SEGLOSS_C_API segloss_status segloss_confusion_matrix_create(
    int64_t num_classes, const segloss_confusion_matrix_options* options,
    segloss_confusion_matrix** out);
/* A matrix holding `counts` (num_classes^2 values, row-major hist[t * C + p]), e.g. after an
 * all-reduce of segloss_confusion_matrix_counts. */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_from_counts(
    int64_t num_classes, const int64_t* counts, const segloss_confusion_matrix_options* options,
    segloss_confusion_matrix** out);
SEGLOSS_C_API void segloss_confusion_matrix_destroy(segloss_confusion_matrix* cm); /* NULL ok */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_reset(segloss_confusion_matrix* cm);
/* Label maps of the same shape (rank >= 1), i32, i64 or u8 each. */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_update(segloss_confusion_matrix* cm,
                                                             const segloss_tensor* pred_labels,
                                                             const segloss_tensor* true_labels,
                                                             void* cuda_stream);
/* Logits (N, C, spatial...) f32 or f64, predicted label = argmax over C; labels (N, spatial...). */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_update_from_logits(
    segloss_confusion_matrix* cm, const segloss_tensor* logits, const segloss_tensor* true_labels,
    void* cuda_stream);
/* cm += other (same number of classes). */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_merge(segloss_confusion_matrix* cm,
                                                            const segloss_confusion_matrix* other);
SEGLOSS_C_API segloss_status
segloss_confusion_matrix_num_classes(const segloss_confusion_matrix* cm, int64_t* num_classes);
/* The counts in place (C^2 int64, row-major), for an all-reduce across shards:
 * MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_INT64_T, MPI_SUM, comm). Valid until destroy. */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_data(segloss_confusion_matrix* cm,
                                                           int64_t** data, int64_t* count);
/* Copies the counts into `counts`, which holds `capacity` values (at least C^2). */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_counts(const segloss_confusion_matrix* cm,
                                                             int64_t* counts, int64_t capacity);

typedef enum segloss_score {
  SEGLOSS_SCORE_IOU = 0,
  SEGLOSS_SCORE_DICE = 1,
  SEGLOSS_SCORE_PRECISION = 2,
  SEGLOSS_SCORE_RECALL = 3,
  SEGLOSS_SCORE_FBETA = 4
} segloss_score;

typedef enum segloss_average {
  SEGLOSS_AVERAGE_MICRO = 0,
  SEGLOSS_AVERAGE_MACRO = 1,
  SEGLOSS_AVERAGE_WEIGHTED = 2,
  SEGLOSS_AVERAGE_PER_IMAGE = 3
} segloss_average;

/* Defaults: empty skip, beta 1. */
typedef struct segloss_score_options {
  segloss_empty_policy empty;
  double beta;
} segloss_score_options;

SEGLOSS_C_API void segloss_score_options_init(segloss_score_options* o);

/* pytorch-fcn's label_accuracy_score: acc, acc_cls, mean_iu, fwavacc. */
typedef struct segloss_fcn_scores {
  double pixel_accuracy;
  double mean_class_accuracy;
  double mean_iou;
  double fw_iou;
} segloss_fcn_scores;

/* The four scores, and (when iou is not NULL) the per-class IoU into iou[0 .. C). */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_fcn_scores(const segloss_confusion_matrix* cm,
                                                                 segloss_fcn_scores* scores,
                                                                 double* iou, int64_t iou_capacity);
/* One value per class into values[0 .. C); capacity >= C. */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_class_scores(
    const segloss_confusion_matrix* cm, segloss_score score, const segloss_score_options* options,
    double* values, int64_t capacity);
/* micro, macro or weighted over one matrix. */
SEGLOSS_C_API segloss_status segloss_confusion_matrix_average_score(
    const segloss_confusion_matrix* cm, segloss_score score, segloss_average average,
    const segloss_score_options* options, double* value);
/* Over per-image matrices: per_image (the mean of each image's macro score), or micro, macro,
 * weighted over their sum. */
SEGLOSS_C_API segloss_status segloss_average_score_images(
    const segloss_confusion_matrix* const* images, int64_t count, segloss_score score,
    segloss_average average, const segloss_score_options* options, double* value);
SEGLOSS_C_API segloss_status
segloss_confusion_matrix_pixel_accuracy(const segloss_confusion_matrix* cm, double* value);
SEGLOSS_C_API segloss_status segloss_confusion_matrix_cohen_kappa(
    const segloss_confusion_matrix* cm, const segloss_score_options* options, double* value);
SEGLOSS_C_API segloss_status segloss_confusion_matrix_matthews_corrcoef(
    const segloss_confusion_matrix* cm, const segloss_score_options* options, double* value);

/* ---------------------------------------------------------------------------------------- */
/* Thresholded Dice score (metrics/dice_score.hpp)                                          */
/* ---------------------------------------------------------------------------------------- */

/* Defaults: sigmoid, threshold 0.5, round 0, smooth 0 and 0, per_channel 1, border 0,
 * empty skip, clamp 0, check_binary 0. */
typedef struct segloss_dice_score_options {
  segloss_activation activation;
  double threshold;
  int round;
  double smooth_nr;
  double smooth_dr;
  int per_channel;
  int border;
  segloss_empty_policy empty;
  int clamp;
  int check_binary;
} segloss_dice_score_options;

typedef struct segloss_dice_score_result {
  double mean;     /* over the counted scores; NaN when none */
  int64_t counted; /* scores in the mean */
  int64_t skipped; /* empty scores left out (empty = skip) */
  int64_t empty;   /* scores with P = G = 0, whatever the policy */
} segloss_dice_score_result;

SEGLOSS_C_API void segloss_dice_score_options_init(segloss_dice_score_options* o);
/* pred (N, C, spatial...) and target alike (f32 or f64). `scores`, when not NULL, receives the
 * per-score values: f64, shape (N, C) (per_channel) or (N). */
SEGLOSS_C_API segloss_status segloss_dice_score(const segloss_tensor* pred,
                                                const segloss_tensor* target,
                                                const segloss_dice_score_options* options,
                                                segloss_dice_score_result* result,
                                                const segloss_tensor* scores, void* cuda_stream);

/* ---------------------------------------------------------------------------------------- */
/* Surface distances (metrics/surface_distance.hpp)                                          */
/* ---------------------------------------------------------------------------------------- */

typedef enum segloss_surface_empty {
  SEGLOSS_SURFACE_EMPTY_MONAI = 0,
  SEGLOSS_SURFACE_EMPTY_BOUNDED = 1
} segloss_surface_empty;

/* Defaults: spacing 1 per axis (NULL), percentile 95, tolerance 1, no class_tolerance,
 * directed 0, empty monai, ignore_index -100. */
typedef struct segloss_surface_distance_options {
  const double* spacing; /* spacing_size values, one per spatial axis (D, H, W order); size 0:
                            1 per axis (a size > 0 needs a pointer: NULL is an error) */
  int64_t spacing_size;
  double percentile;
  double tolerance;
  const double* class_tolerance; /* one per scored column; size 0: tolerance for all */
  int64_t class_tolerance_size;
  int directed;
  segloss_surface_empty empty;
  int64_t ignore_index; /* labels form only */
} segloss_surface_distance_options;

/* The means over the (image, class) pairs, each over its values that are not NaN. */
typedef struct segloss_surface_distance_result {
  double mean_hausdorff;
  double mean_hausdorff_percentile;
  double mean_average_surface_distance;
  double mean_surface_dice;
  int64_t empty;     /* pairs with both masks empty */
  int64_t one_empty; /* pairs with exactly one mask empty */
} segloss_surface_distance_result;

SEGLOSS_C_API void segloss_surface_distance_options_init(segloss_surface_distance_options* o);
/* Binary masks pred and target (N, C, spatial...), f32 or f64, values 0 or 1. `per_pair`, when
 * not NULL, receives f64 values shaped (4, N, C): hausdorff, hausdorff_percentile,
 * average_surface_distance, surface_dice.
 * CUDA masks (both on the device, i32/i64 label maps likewise; u8 labels are CPU only) run
 * their borders and distance transforms on the device: the _on_stream forms enqueue them on
 * cuda_stream (a cudaStream_t; NULL is the default stream) and wait for it; the forms without
 * a stream use the default (legacy) stream, which does not wait for work on a stream created
 * with cudaStreamNonBlocking. The result and per_pair are on the host (per_pair on the CPU). */
SEGLOSS_C_API segloss_status
segloss_surface_distance(const segloss_tensor* pred, const segloss_tensor* target,
                         const segloss_surface_distance_options* options,
                         segloss_surface_distance_result* result, const segloss_tensor* per_pair);
SEGLOSS_C_API segloss_status segloss_surface_distance_on_stream(
    const segloss_tensor* pred, const segloss_tensor* target,
    const segloss_surface_distance_options* options, segloss_surface_distance_result* result,
    const segloss_tensor* per_pair, void* cuda_stream);
/* Label maps (N, spatial...), i32, i64 or u8; class classes[k] is the mask label == classes[k];
 * per_pair shaped (4, N, K) with K = num_classes_listed. */
SEGLOSS_C_API segloss_status segloss_surface_distance_labels(
    const segloss_tensor* pred_labels, const segloss_tensor* true_labels, const int64_t* classes,
    int64_t num_classes_listed, const segloss_surface_distance_options* options,
    segloss_surface_distance_result* result, const segloss_tensor* per_pair);
SEGLOSS_C_API segloss_status segloss_surface_distance_labels_on_stream(
    const segloss_tensor* pred_labels, const segloss_tensor* true_labels, const int64_t* classes,
    int64_t num_classes_listed, const segloss_surface_distance_options* options,
    segloss_surface_distance_result* result, const segloss_tensor* per_pair, void* cuda_stream);

/* Every enum of this header is int-sized in the ABI (the option structs hold them, and
 * functions take them). A compiler told to pack enums into fewer bytes (gcc's and clang's
 * -fshort-enums, some embedded ABIs) would give those structs another layout than the
 * library's; such a build stops here, at this typedef's negative array size, instead of passing
 * misread options. */
typedef char segloss_enums_must_be_int_sized
    [(sizeof(segloss_status) == sizeof(int) && sizeof(segloss_dtype) == sizeof(int) &&
      sizeof(segloss_device) == sizeof(int) && sizeof(segloss_reduction) == sizeof(int) &&
      sizeof(segloss_activation) == sizeof(int) && sizeof(segloss_empty_policy) == sizeof(int) &&
      sizeof(segloss_bce_mean_over) == sizeof(int) &&
      sizeof(segloss_overlap_weighting) == sizeof(int) &&
      sizeof(segloss_mean_over) == sizeof(int) && sizeof(segloss_all_ignored) == sizeof(int) &&
      sizeof(segloss_generalized_dice_weight) == sizeof(int) &&
      sizeof(segloss_lovasz_classes) == sizeof(int) &&
      sizeof(segloss_out_of_range) == sizeof(int) && sizeof(segloss_score) == sizeof(int) &&
      sizeof(segloss_average) == sizeof(int) && sizeof(segloss_surface_empty) == sizeof(int))
         ? 1
         : -1];

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SEGLOSS_C_H */
