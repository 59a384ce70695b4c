#!/usr/bin/env bash
# The CUDA backend's tests without a GPU: builds segloss-tests with -DSEGLOSS_CUDA=EMULATE (the
# .cu files compiled by the C++ compiler against backends/cuda/emulator, which runs every kernel
# on the CPU, one fiber per CUDA thread; docs/cuda.md "The emulator") in build-emu/, then runs
# every CUDA test case (ctest -R cuda: parity with the CPU, determinism over 10 runs, error
# flags, graph capture, the emulator's own tests). Extra arguments go to ctest.
# It checks the kernels' logic, not their speed or nvcc's compilation (scripts/test.sh compiles
# the real backend when nvcc is present; scripts/gpu-check.sh runs it on a GPU).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/deps.sh"
segloss_install_deps
cmake -S "$root" -B "$root/build-emu" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_CUDA=EMULATE -DSEGLOSS_CUDA_TESTS_ONLY=ON \
  -DSEGLOSS_TEST_COMPILE_OPTIONS=-O0 -DSEGLOSS_BUILD_BENCH=OFF -DSEGLOSS_BUILD_EXAMPLES=OFF -DSEGLOSS_BUILD_TOOLS=OFF
cmake --build "$root/build-emu" -j "$(nproc)" --target segloss-tests
cd "$root/build-emu"
export OMP_WAIT_POLICY=PASSIVE
ctest --output-on-failure -j "$(nproc)" -R cuda "$@"
