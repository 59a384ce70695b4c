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

namespace {
std::atomic<bool> g_cross_entropy_staging{true};
std::atomic<bool> g_bce_value_in_gradient{true};
std::atomic<bool> g_bce_value_in_gradient_weighted{false};
std::atomic<bool> g_softmax_overlap_staging{true};
std::atomic<bool> g_last_block_tails{true};
std::atomic<bool> g_quad_loads{true};
std::atomic<bool> g_gradient_from_the_end{true};
}  // namespace

bool cross_entropy_staging() {
  return g_cross_entropy_staging.load(std::memory_order_relaxed);
}

void set_cross_entropy_staging(bool on) {
  g_cross_entropy_staging.store(on, std::memory_order_relaxed);
}

bool bce_value_in_gradient() {
  return g_bce_value_in_gradient.load(std::memory_order_relaxed);
}

void set_bce_value_in_gradient(bool on) {
  g_bce_value_in_gradient.store(on, std::memory_order_relaxed);
}

bool bce_value_in_gradient_weighted() {
  return g_bce_value_in_gradient_weighted.load(std::memory_order_relaxed);
}

void set_bce_value_in_gradient_weighted(bool on) {
  g_bce_value_in_gradient_weighted.store(on, std::memory_order_relaxed);
}

bool softmax_overlap_staging() {
  return g_softmax_overlap_staging.load(std::memory_order_relaxed);
}

void set_softmax_overlap_staging(bool on) {
  g_softmax_overlap_staging.store(on, std::memory_order_relaxed);
}

bool last_block_tails() {
  return g_last_block_tails.load(std::memory_order_relaxed);
}

void set_last_block_tails(bool on) {
  g_last_block_tails.store(on, std::memory_order_relaxed);
}

bool quad_loads() {
  return g_quad_loads.load(std::memory_order_relaxed);
}

void set_quad_loads(bool on) {
  g_quad_loads.store(on, std::memory_order_relaxed);
}

bool gradient_from_the_end() {
  return g_gradient_from_the_end.load(std::memory_order_relaxed);
}

void set_gradient_from_the_end(bool on) {
  g_gradient_from_the_end.store(on, std::memory_order_relaxed);
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
  // The largest of every call's layout (core/cuda_internal.hpp) for this input.
  const int64_t pixels = input.rank() >= 2 ? input[0] * plane_size : input.numel();
  size_t need = std::max(detail::layout(detail::plane_grid(planes, plane_size), stats).total,
                         detail::cross_entropy_bytes(pixels));
  if (input.rank() >= 2) {
    const detail::PlaneGrid images = detail::plane_grid(input[0], plane_size);
    need = std::max({need, detail::confusion_bytes(input[1]),
                     detail::softmax_layout(images, input[1]).total,
                     detail::softmax_focal_bytes(images)});
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
  // (image, class) (per_image or not), every element a record, two values per pixel, and the
  // class mask of a class_list (counted whatever C: a bound). The key of a double (8 bytes) is
  // the larger.
  const size_t need = std::max(
      detail::lovasz_layout(images, numel, 0, 8).total,
      detail::lovasz_layout(images * classes, numel, 2 * images * pixels, 8, (classes + 31) / 32)
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

}  // namespace detail
#endif

}  // namespace segloss
