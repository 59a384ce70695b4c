// Compile-time configuration shared by every layer.
#pragma once

// SEGLOSS_HD marks the pointwise math that the CPU loops and the CUDA kernels share:
// __host__ __device__ under nvcc, nothing for a host compiler.
#if defined(__CUDACC__)
#define SEGLOSS_HD __host__ __device__
#else
#define SEGLOSS_HD
#endif

#define SEGLOSS_VERSION_MAJOR 0
#define SEGLOSS_VERSION_MINOR 1
#define SEGLOSS_VERSION_PATCH 0
