// The replaced global operator new and delete of alloc_count.hpp.
//
// Every block starts with a header that holds its size: kHeader bytes (16, so the user pointer
// keeps malloc's 16-byte alignment, __STDCPP_DEFAULT_NEW_ALIGNMENT__) for the plain forms, and
// `align` bytes for the aligned forms (aligned_alloc of a multiple of align; the size sits in
// the last 8 bytes before the user pointer). delete reads the size back, so the unsized forms
// (delete[] of a trivial type never passes one) are counted exactly as well.
#include "alloc_count.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace alloc_count {
namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_count{0};

#if SEGLOSS_ALLOC_COUNT
constexpr size_t kHeader = 16;

void on_alloc(size_t bytes) {
  const int64_t now = g_live.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed) +
                      static_cast<int64_t>(bytes);
  g_count.fetch_add(1, std::memory_order_relaxed);
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void on_free(size_t bytes) {
  g_live.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

// nullptr when the allocation fails (or the size with its header overflows).
void* allocate(size_t bytes, size_t align) noexcept {
  const size_t header = align > kHeader ? align : kHeader;
  if (bytes > static_cast<size_t>(-1) - 2 * header) return nullptr;
  void* base;
  if (align > kHeader) {
    const size_t total = (bytes + header + align - 1) / align * align;
    base = std::aligned_alloc(align, total);
  } else {
    base = std::malloc(bytes + header);
  }
  if (base == nullptr) return nullptr;
  char* user = static_cast<char*>(base) + header;
  reinterpret_cast<size_t*>(user)[-1] = bytes;
  on_alloc(bytes);
  return user;
}

void release(void* p, size_t align) noexcept {
  if (p == nullptr) return;
  const size_t header = align > kHeader ? align : kHeader;
  char* user = static_cast<char*>(p);
  on_free(reinterpret_cast<size_t*>(user)[-1]);
  std::free(user - header);
}

void* allocate_or_throw(size_t bytes, size_t align) {
  for (;;) {
    if (void* p = allocate(bytes, align)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

#endif  // SEGLOSS_ALLOC_COUNT

}  // namespace

int64_t live_bytes() {
  return g_live.load(std::memory_order_relaxed);
}
int64_t allocations() {
  return g_count.load(std::memory_order_relaxed);
}
void reset_peak() {
  g_peak.store(g_live.load(std::memory_order_relaxed), std::memory_order_relaxed);
}
int64_t peak_bytes() {
  return g_peak.load(std::memory_order_relaxed);
}

int64_t peak_extra_bytes(const std::function<void()>& work) {
  const int64_t before = live_bytes();
  reset_peak();
  work();
  const int64_t extra = peak_bytes() - before;
  return extra > 0 ? extra : 0;
}

}  // namespace alloc_count

#if SEGLOSS_ALLOC_COUNT
using alloc_count::allocate;
using alloc_count::allocate_or_throw;
using alloc_count::release;

namespace {
constexpr size_t kPlain = 0;
size_t al(std::align_val_t a) {
  return static_cast<size_t>(a);
}
}  // namespace

void* operator new(size_t n) {
  return allocate_or_throw(n, kPlain);
}
void* operator new[](size_t n) {
  return allocate_or_throw(n, kPlain);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, kPlain);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, kPlain);
}
void* operator new(size_t n, std::align_val_t a) {
  return allocate_or_throw(n, al(a));
}
void* operator new[](size_t n, std::align_val_t a) {
  return allocate_or_throw(n, al(a));
}
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, al(a));
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, al(a));
}

void operator delete(void* p) noexcept {
  release(p, kPlain);
}
void operator delete[](void* p) noexcept {
  release(p, kPlain);
}
void operator delete(void* p, size_t) noexcept {
  release(p, kPlain);
}
void operator delete[](void* p, size_t) noexcept {
  release(p, kPlain);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  release(p, kPlain);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  release(p, kPlain);
}
void operator delete(void* p, std::align_val_t a) noexcept {
  release(p, al(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept {
  release(p, al(a));
}
void operator delete(void* p, size_t, std::align_val_t a) noexcept {
  release(p, al(a));
}
void operator delete[](void* p, size_t, std::align_val_t a) noexcept {
  release(p, al(a));
}
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  release(p, al(a));
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  release(p, al(a));
}
#endif  // SEGLOSS_ALLOC_COUNT
