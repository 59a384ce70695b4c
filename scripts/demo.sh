#!/usr/bin/env bash
# Builds segloss, then runs the main demo (for now examples/quickstart).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/deps.sh"
segloss_install_deps
segloss_build
"$root/build/examples/quickstart"
