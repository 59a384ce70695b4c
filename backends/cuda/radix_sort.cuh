// A stable block-wide LSD radix sort on 4-bit digits and the block scans it uses, for the
// kernels that sort one segment per block of cuda::kThreads threads (backends/cuda/lovasz.cu,
// the tape's sort_desc in backends/cuda/tape.cu). Not installed; include it from .cu files only
// (its device functions live in an anonymous namespace, one copy per file).
//
// block_radix_sort sorts n records (key, index) by ascending key, least significant digit first:
// per pass each thread counts the digits of its contiguous chunk, an exclusive scan over
// (digit, thread) in that order gives each thread its first slot per digit, and each thread
// moves its chunk in order. Equal keys keep their order (stable). The records go from A to B and
// back: an even number of passes (8 for a 32-bit key, 16 for a 64-bit one) ends them in A.
#pragma once

#include <type_traits>

#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace {

// The unsigned key of the same width as T.
template <class T>
using KeyOf = std::conditional_t<std::is_same_v<T, float>, unsigned int, unsigned long long>;

constexpr int kDigitBits = 4;
constexpr int kBuckets = 1 << kDigitBits;
static_assert(kBuckets * kThreads % kThreads == 0 && kBuckets == 16,
              "the scan gives each thread 16 consecutive (digit, thread) counts");

// The block's shared scratch: the (digit, thread) counts of a sort pass, the scan's partials,
// and a few block-wide values.
struct Shared {
  long long counts[kBuckets][kThreads];
  long long part[kThreads];
  long long total[2];
  int bad;
};

// Exclusive scan of v over the threads in thread order; every thread gets its prefix, and
// *total the sum (all threads). Integers: exact. Ends with a barrier.
__device__ long long block_exclusive_scan(Shared& sh, long long v, long long* total) {
  const int t = static_cast<int>(threadIdx.x);
  sh.part[t] = v;
  __syncthreads();
  if (t == 0) {
    long long run = 0;
    for (int u = 0; u < kThreads; ++u) {
      const long long c = sh.part[u];
      sh.part[u] = run;
      run += c;
    }
    sh.total[0] = run;
  }
  __syncthreads();
  const long long mine = sh.part[t];
  *total = sh.total[0];
  __syncthreads();  // part and total may be reused next
  return mine;
}

// Thread t's contiguous chunk [lo, hi) of n items.
__device__ __forceinline__ void chunk_of(long long n, long long* lo, long long* hi) {
  const long long t = threadIdx.x;
  *lo = n * t / kThreads;
  *hi = n * (t + 1) / kThreads;
}

// Stable LSD radix sort of the n records (ka, ia) by key, least significant digit first, through
// (kb, ib); the result is back in (ka, ia) (an even number of passes).
template <class K>
__device__ void block_radix_sort(Shared& sh, K* ka, unsigned long long* ia, K* kb,
                                 unsigned long long* ib, long long n) {
  constexpr int kPasses = static_cast<int>(8 * sizeof(K)) / kDigitBits;
  static_assert(kPasses % 2 == 0, "the sorted records end in A");
  const int t = static_cast<int>(threadIdx.x);
  long long lo, hi;
  chunk_of(n, &lo, &hi);
  long long* flat = &sh.counts[0][0];
  for (int p = 0; p < kPasses; ++p) {
    const int shift = p * kDigitBits;
    for (int d = 0; d < kBuckets; ++d) sh.counts[d][t] = 0;
    for (long long i = lo; i < hi; ++i)
      ++sh.counts[static_cast<int>((ka[i] >> shift) & K(kBuckets - 1))][t];
    __syncthreads();
    // The exclusive scan of the counts in (digit, thread) order: thread t takes the 16
    // consecutive entries [16 t, 16 t + 16).
    long long sum = 0;
    for (int q = 0; q < kBuckets; ++q) sum += flat[t * kBuckets + q];
    long long all;
    long long run = block_exclusive_scan(sh, sum, &all);
    for (int q = 0; q < kBuckets; ++q) {
      const long long c = flat[t * kBuckets + q];
      flat[t * kBuckets + q] = run;
      run += c;
    }
    __syncthreads();
    for (long long i = lo; i < hi; ++i) {
      const K k = ka[i];
      const long long o = sh.counts[static_cast<int>((k >> shift) & K(kBuckets - 1))][t]++;
      kb[o] = k;
      ib[o] = ia[i];
    }
    __syncthreads();  // the pass's output is complete before the next pass reads it
    K* tk = ka;
    ka = kb;
    kb = tk;
    unsigned long long* ti = ia;
    ia = ib;
    ib = ti;
  }
}

}  // namespace
}  // namespace cuda
}  // namespace segloss
