// Compile-time configuration shared by every layer.
#pragma once

// SEGLOSS_HD marks the pointwise math that the CPU loops and the CUDA kernels share:
// __host__ __device__ under nvcc, nothing for a host compiler.
#if defined(__CUDACC__)
#define SEGLOSS_HD __host__ __device__
#else
#define SEGLOSS_HD
#endif

// SEGLOSS_INLINE forces inlining of the pointwise math: its SIMD values are 64-byte arrays,
// which an outlined call would pass through memory (measured: 2-3x slower loops).
#if defined(__CUDACC__)
#define SEGLOSS_INLINE __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define SEGLOSS_INLINE inline __attribute__((always_inline))
#else
#define SEGLOSS_INLINE inline
#endif

#define SEGLOSS_VERSION_MAJOR 0
#define SEGLOSS_VERSION_MINOR 1
#define SEGLOSS_VERSION_PATCH 0
