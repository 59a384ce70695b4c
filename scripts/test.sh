#!/usr/bin/env bash
# Builds segloss, then runs every test through ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/deps.sh"
segloss_install_deps
segloss_build
cd "$root/build"
# One test per core, each with OpenMP threads: idle threads sleep rather than spin.
export OMP_WAIT_POLICY=PASSIVE
ctest --output-on-failure -j "$(nproc)"
