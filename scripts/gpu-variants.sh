#!/usr/bin/env bash
# The pass experiment (bench/cuda_variants.cu; bench/RESULTS.md, "CUDA on NVIDIA H200, session
# 13"): builds it with nvcc for sm_90 (static CUDA runtime) into .gpu-exp/cuda_variants, then runs
# it when a GPU answers. Build here (nvcc, no GPU needed), carry .gpu-exp to the GPU machine
# (.gitignore ignores it; the device tool's `carry`), run there:
#     bash scripts/gpu-variants.sh --build-only     here
#     bash scripts/gpu-variants.sh [reps]           on the GPU machine (20 timed calls by default)
# Prints a JSON line per variant, then a table; exit 1 if a CUDA call fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.gpu-exp/cuda_variants"
if [ "${1:-}" = "--build-only" ] || [ ! -x "$bin" ]; then
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  mkdir -p "$root/.gpu-exp"
  "$nvcc" -O3 -std=c++17 --expt-relaxed-constexpr -arch=sm_90 -cudart static -DSEGLOSS_WITH_CUDA \
    "$root/bench/cuda_variants.cu" -o "$bin"
  echo "built $bin"
  [ "${1:-}" = "--build-only" ] && exit 0
fi
exec "$bin" "${1:-20}"
