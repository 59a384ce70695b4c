// @brief Counting heap allocations: the peak bytes a call allocates beyond what was live before
// it (segloss-bench's peak_extra_bytes, and the memory test tests/test_alloc_count.cpp).
//
// alloc_count.cpp replaces the global operator new and delete (every form: plain, array,
// nothrow, sized, aligned) of the program it is linked into, with versions that call malloc /
// aligned_alloc and keep a running total of the bytes live and its peak (relaxed atomics; each
// block carries its size in a small header). It is linked into segloss-bench and segloss-tests
// only, never into the library, so a program that uses segloss keeps its own allocator.
//
// What is counted: every allocation by C++ new, which is every allocation segloss makes on the
// CPU: Tensor storage (new T[n], core/tensor.hpp), std::vector and the other containers, the
// thread-local workspaces of core/parallel.hpp, and std::function and shared_ptr blocks. The
// library calls no malloc, aligned_alloc or Eigen dynamic-size allocation of its own (Eigen
// appears only as fixed-size packets on the stack, backends/cpu/simd.hpp), so nothing it
// allocates escapes the count. Not counted: the OpenMP runtime's own malloc (its thread pool,
// created at the first parallel region and kept), and CUDA device memory.
//
// Measuring: peak_extra_bytes(work) runs work() once and returns the peak, during the call, of
// the bytes live minus those live just before it, on every thread together (OpenMP workers
// included). Memory that stays allocated after the call (a thread-local buffer grown on first
// use) counts in that peak; run the call once before measuring to see the steady state that a
// training loop sees. One measurement at a time: a concurrent one resets the same peak.
//
// ThreadSanitizer and MemorySanitizer define operator new and delete themselves (a link error
// with a second definition): under them the replacements are left out, enabled() is false,
// every count is 0, and the memory tests skip. AddressSanitizer lets a program replace them
// (its malloc still sees every block), so the counting stays on there.
#pragma once

#include <cstdint>
#include <functional>

#if defined(__SANITIZE_THREAD__)
#define SEGLOSS_ALLOC_COUNT 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SEGLOSS_ALLOC_COUNT 0
#endif
#endif
#ifndef SEGLOSS_ALLOC_COUNT
#define SEGLOSS_ALLOC_COUNT 1
#endif

namespace alloc_count {

// Whether operator new is counted in this build (false under ThreadSanitizer, MemorySanitizer).
constexpr bool enabled() {
  return SEGLOSS_ALLOC_COUNT != 0;
}

// Bytes allocated by operator new and not yet freed, in the whole program.
int64_t live_bytes();
// Number of operator new calls since the program started.
int64_t allocations();

// Starts a measurement: the peak is set to the bytes live now.
void reset_peak();
// The highest live_bytes() since reset_peak().
int64_t peak_bytes();

// Runs work() and returns max(0, peak live bytes during it - live bytes before it).
int64_t peak_extra_bytes(const std::function<void()>& work);

}  // namespace alloc_count
