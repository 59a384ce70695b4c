// segloss::cuda's thread-local state and shape arithmetic, in every build; without the CUDA
// backend (SEGLOSS_WITH_CUDA undefined) also the stand-ins of its runtime functions, which
// report that the build has none. backends/cuda/runtime.cu defines them otherwise.
#include "cuda.hpp"

#include <algorithm>
#include <atomic>

#include "cuda_internal.hpp"
#include "tensor.hpp"

namespace segloss {
namespace cuda {
namespace detail {

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

// The switches of cuda_internal.hpp (what each one switches is written there): a relaxed atomic
// flag with its default, its getter and its setter.
#define SEGLOSS_CUDA_SWITCH(name, initial)           \
  namespace {                                        \
  std::atomic<bool> g_##name{initial};               \
  }                                                  \
  bool name() {                                      \
    return g_##name.load(std::memory_order_relaxed); \
  }                                                  \
  void set_##name(bool on) {                         \
    g_##name.store(on, std::memory_order_relaxed);   \
  }

SEGLOSS_CUDA_SWITCH(cross_entropy_staging, true)
SEGLOSS_CUDA_SWITCH(cross_entropy_quads, false)
SEGLOSS_CUDA_SWITCH(bce_value_in_gradient, true)
SEGLOSS_CUDA_SWITCH(bce_value_in_gradient_weighted, true)
SEGLOSS_CUDA_SWITCH(softmax_overlap_staging, true)
SEGLOSS_CUDA_SWITCH(last_block_tails, true)
SEGLOSS_CUDA_SWITCH(quad_loads, true)
SEGLOSS_CUDA_SWITCH(gradient_from_the_end, true)
SEGLOSS_CUDA_SWITCH(target_bits, true)
SEGLOSS_CUDA_SWITCH(label_codes, true)
SEGLOSS_CUDA_SWITCH(label_pass_own_grid, true)
#undef SEGLOSS_CUDA_SWITCH

std::atomic<int64_t>& emulated_quad_loads() {
  static std::atomic<int64_t> count{0};
  return count;
}

std::atomic<int64_t>& cross_entropy_quad_launches() {
  static std::atomic<int64_t> count{0};
  return count;
}

std::atomic<int64_t>& label_code_launches() {
  static std::atomic<int64_t> count{0};
  return count;
}

}  // namespace detail

bool built() {
#if defined(SEGLOSS_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

bool emulated() {
#if defined(SEGLOSS_CUDA_EMULATION)
  return true;
#else
  return false;
#endif
}

void* current_stream() {
  return detail::thread_state().stream;
}

StreamScope::StreamScope(void* stream) : previous_(detail::thread_state().stream) {
  detail::thread_state().stream = stream;
}
StreamScope::~StreamScope() {
  detail::thread_state().stream = previous_;
}

WorkspaceScope::WorkspaceScope(void* data, size_t bytes)
    : previous_data_(detail::thread_state().workspace),
      previous_bytes_(detail::thread_state().workspace_bytes) {
  detail::thread_state().workspace = data;
  detail::thread_state().workspace_bytes = data ? bytes : 0;
}
WorkspaceScope::~WorkspaceScope() {
  detail::thread_state().workspace = previous_data_;
  detail::thread_state().workspace_bytes = previous_bytes_;
}

size_t workspace_size(const Shape& input, int stats) {
  const int64_t planes = input.rank() >= 2 ? input[0] * input[1] : 1;
  const int64_t plane_size = input.rank() >= 2 ? input.numel_from(2) : input.numel();
  // The largest of every call's layout (core/cuda_internal.hpp) for this input. The elementwise
  // losses' joined small planes (backends/cpu/flat_planes.hpp) need no more than the planes'
  // own layout: one plane's partials exceed the planes' by fewer than P, where the P planes
  // hold 3 P values more (a sum and two coefficients each).
  const int64_t pixels = input.rank() >= 2 ? input[0] * plane_size : input.numel();
  size_t need = std::max(detail::layout(detail::plane_grid(planes, plane_size), stats).total,
                         detail::cross_entropy_bytes(pixels));
  if (input.rank() >= 2) {
    const detail::PlaneGrid images = detail::plane_grid(input[0], plane_size);
    need = std::max(
        {need, detail::confusion_bytes(input[1]), detail::softmax_layout(images, input[1]).total,
         detail::softmax_focal_bytes(detail::softmax_focal_grid(input[0], plane_size))});
  }
  // kAlign more than the layout: a caller's buffer may start anywhere.
  return need + detail::kAlign;
}

size_t boundary_weights_workspace_size(const Shape& mask) {
  const int64_t planes = mask.rank() >= 2 ? mask[0] * mask[1] : 1;
  return detail::boundary_layout(planes, mask.numel(), mask.rank() == 5).total + detail::kAlign;
}

size_t distance_transform_workspace_size(const Shape& mask) {
  const int64_t planes = mask.rank() >= 2 ? mask[0] * mask[1] : 1;
  const int64_t plane_size = mask.rank() >= 2 ? mask.numel_from(2) : mask.numel();
  return detail::distance_layout(planes, plane_size).total + detail::kAlign;
}

size_t surface_distance_workspace_size(const Shape& masks) {
  const int64_t planes = masks.rank() >= 2 ? masks[0] * masks[1] : 1;
  const int64_t plane_size = masks.rank() >= 2 ? masks.numel_from(2) : masks.numel();
  return detail::surface_layout(planes, plane_size).total + detail::kAlign;
}

size_t surface_distance_labels_workspace_size(const Shape& labels, int64_t classes) {
  const int64_t images = labels.rank() >= 1 ? labels[0] : 1;
  const int64_t plane_size = labels.rank() >= 1 ? labels.numel_from(1) : 1;
  const int64_t k = std::max<int64_t>(classes, 0);
  return detail::surface_layout(images * k, plane_size, k).total + detail::kAlign;
}

size_t lovasz_workspace_size(const Shape& input) {
  const int64_t numel = input.numel();
  const int64_t images = input.rank() >= 1 ? input[0] : 1;
  const int64_t classes = input.rank() >= 2 ? input[1] : 1;
  const int64_t pixels = input.rank() >= 2 ? input.numel_from(2) : numel;
  // lovasz_hinge: one segment per image, every element a record; lovasz_softmax: one segment per
  // (image, class) (per_image or not), every element a record, three values per pixel, and the
  // class mask of a class_list (counted whatever C: a bound). The key of a double (8 bytes) is
  // the larger.
  const size_t need = std::max(
      detail::lovasz_layout(images, numel, 0, 8).total,
      detail::lovasz_layout(images * classes, numel, 3 * images * pixels, 8, (classes + 31) / 32)
          .total);
  return need + detail::kAlign;
}

#if !defined(SEGLOSS_WITH_CUDA)
bool available() {
  return false;
}
size_t pool_bytes() {
  return 0;
}
void release_pool() {}
#endif

}  // namespace cuda

#if !defined(SEGLOSS_WITH_CUDA)
namespace detail {

void* device_alloc(size_t, const char* function) {
  fail(function, "device cuda is not available: this build has no CUDA backend");
}
void device_free(void*) noexcept {}
void device_copy(void*, Device, const void*, Device, size_t, const char* function) {
  fail(function, "device cuda is not available: this build has no CUDA backend");
}
void device_fill(void*, const void*, size_t, size_t, const char* function) {
  fail(function, "device cuda is not available: this build has no CUDA backend");
}
void device_take_pending(const char*) {}

}  // namespace detail
#endif

}  // namespace segloss
