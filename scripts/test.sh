#!/usr/bin/env bash
# Builds segloss, then runs every test through ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/deps.sh"
segloss_install_deps
segloss_build
cd "$root/build"
ctest --output-on-failure -j "$(nproc)"
