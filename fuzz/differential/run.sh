#!/usr/bin/env bash
# Differential fuzz of segloss against PyTorch / scipy (README.md in this folder).
#
# usage: fuzz/differential/run.sh [COUNT [SEED [FAMILY ...]]]
#   COUNT cases per family (default 200) from SEED (default 1); families lovasz, bcedice,
#   combined, surface (default all), run one after the other, then summary.py over this run's
#   reports. Exit status 0 even where results differ: read the summary.
#
# Environment (all optional):
#   SEGLOSS_ROOT     the segloss source tree (default: two levels above this script)
#   BUILD_DIR        a built segloss build directory, whose libsegloss.a the driver links
#                    (default $SEGLOSS_ROOT/build-dev)
#   DIFFFUZZ_WORK    the driver binary, case, result and report files
#                    (default $SEGLOSS_ROOT/.cache/difffuzz)
#   DIFFFUZZ_PYTHON  a Python with torch, numpy and scipy to use as is; otherwise
#   DIFFFUZZ_VENV    a venv made (once) and used (default $SEGLOSS_ROOT/.cache/difffuzz-venv)
#   DIFFFUZZ_TORCH_INDEX  where the venv's CPU-only torch comes from (default PyTorch's CPU
#                    index; where it cannot be reached, PyPI's torch, which on Linux also
#                    installs the CUDA libraries, a few GB)
#   DIFFFUZZ_MONAI=1 install monai into the venv and run monai_check.py after the surface family
#   DIFFFUZZ_ARGS    more fuzz.py options (e.g. --emulate-order)
# It runs one job at a time; prefix `nice -n 19` on a shared machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${SEGLOSS_ROOT:-$(cd "$here/../.." && pwd)}
build=${BUILD_DIR:-$root/build-dev}
work=${DIFFFUZZ_WORK:-$root/.cache/difffuzz}
venv=${DIFFFUZZ_VENV:-$root/.cache/difffuzz-venv}
torch_index=${DIFFFUZZ_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
count=${1:-200}
seed=${2:-1}
shift $(($# < 2 ? $# : 2))
families=("$@")
[ ${#families[@]} -gt 0 ] || families=(lovasz bcedice combined surface)

# The compile flags of the library's build: the CUDA emulator's define where the build is one
# (CMake gives it to consumers as a PUBLIC definition), the CUDA runtime for a real CUDA build.
build_flags() {
  local cache=$build/CMakeCache.txt nvcc
  if grep -q '^SEGLOSS_CUDA:STRING=EMULATE$' "$cache"; then
    echo "-DSEGLOSS_CUDA_EMULATION"
  elif ! grep -q '^SEGLOSS_CUDA:STRING=OFF$' "$cache"; then
    nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=\(\/.*\)$/\1/p' "$cache")
    [ -z "$nvcc" ] || echo "-L${nvcc%/bin/*}/lib64 -Wl,-rpath,${nvcc%/bin/*}/lib64 -lcudart"
  fi
}

# Builds $work/driver when it is missing or older than driver.cpp or the library.
build_driver() {
  local lib=$build/libsegloss.a driver=$work/driver
  [ -f "$lib" ] || { echo "no $lib: build segloss in $build first" >&2; exit 1; }
  if [ -x "$driver" ] && [ "$driver" -nt "$here/driver.cpp" ] && [ "$driver" -nt "$lib" ]; then
    return
  fi
  echo "building $driver against $lib"
  # shellcheck disable=SC2046  # build_flags is a list of words
  "${CXX:-g++}" -std=c++17 -O1 -fopenmp -I"$build/include" -I"$root" -I/usr/include/eigen3 \
    "$here/driver.cpp" "$lib" $(build_flags) -o "$driver"
}

# Prints the Python to run: $DIFFFUZZ_PYTHON, or the venv's, made on first use.
python_with_torch() {
  if [ -n "${DIFFFUZZ_PYTHON:-}" ]; then
    echo "$DIFFFUZZ_PYTHON"
    return
  fi
  local py=$venv/bin/python
  if ! "$py" -c "import torch, numpy, scipy" 2>/dev/null; then
    echo "making $venv (torch, numpy, scipy)" >&2
    python3 -m venv "$venv"
    "$py" -m pip install -q numpy scipy >&2
    "$py" -m pip install -q --retries 1 --timeout 30 --index-url "$torch_index" torch >&2 ||
      "$py" -m pip install -q torch >&2
  fi
  if [ "${DIFFFUZZ_MONAI:-0}" = 1 ] && ! "$py" -c "import monai" 2>/dev/null; then
    "$py" -m pip install -q monai >&2
  fi
  echo "$py"
}

mkdir -p "$work"
build_driver
python=$(python_with_torch)
reports=()
for family in "${families[@]}"; do
  # shellcheck disable=SC2086  # DIFFFUZZ_ARGS is a list of options
  OMP_NUM_THREADS=1 "$python" "$here/fuzz.py" "$family" "$count" "$seed" \
    --work-dir "$work" --driver "$work/driver" ${DIFFFUZZ_ARGS:-}
  reports+=("$work/report_${family}_$seed.json")
  if [ "$family" = surface ] && [ "${DIFFFUZZ_MONAI:-0}" = 1 ]; then
    "$python" "$here/monai_check.py" "$count" "$seed" --work-dir "$work"
  fi
done
echo
"$python" "$here/summary.py" "${reports[@]}"
