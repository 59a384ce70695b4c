/* C wrappers for the fuzzer: the C API's enum arguments taken as int. C lets any int of the
 * enum's compatible type be converted to it; in C++ (fuzz_capi.cpp) forming and loading an
 * out-of-range enum value is undefined, so the fuzzer passes its raw integers through here. */
#include <segloss/capi/segloss.h>

const char* fuzz_status_name(int status) {
  return segloss_status_name((segloss_status)status);
}

segloss_status fuzz_class_scores(const segloss_confusion_matrix* cm, int score,
                                 const segloss_score_options* options, double* values,
                                 int64_t capacity) {
  return segloss_confusion_matrix_class_scores(cm, (segloss_score)score, options, values, capacity);
}

segloss_status fuzz_average_score(const segloss_confusion_matrix* cm, int score, int average,
                                  const segloss_score_options* options, double* value) {
  return segloss_confusion_matrix_average_score(cm, (segloss_score)score, (segloss_average)average,
                                                options, value);
}

segloss_status fuzz_average_score_images(const segloss_confusion_matrix* const* images,
                                         int64_t count, int score, int average,
                                         const segloss_score_options* options, double* value) {
  return segloss_average_score_images(images, count, (segloss_score)score, (segloss_average)average,
                                      options, value);
}

segloss_tensor fuzz_tensor_make(void* data, int dtype, int32_t ndim, const int64_t* shape) {
  return segloss_tensor_make(data, (segloss_dtype)dtype, ndim, shape);
}
