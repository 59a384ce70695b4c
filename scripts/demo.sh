#!/usr/bin/env bash
# Builds segloss, then runs the demos: examples/quickstart (a few losses, their gradients
# checked against finite differences, a metric), then examples/train_shapes with its defaults
# (a small network trained on synthetic shapes in pure C++; it writes out/train_shapes/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/deps.sh"
segloss_install_deps
segloss_build
"$root/build/examples/quickstart"
echo
cd "$root"
"$root/build/examples/train_shapes" "$@"
