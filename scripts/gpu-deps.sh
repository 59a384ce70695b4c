#!/usr/bin/env bash
# Fills .deps/ (ignored by git) with copies of the headers and CMake packages that the GPU
# machine lacks: Eigen 3 and doctest, from this machine's Debian packages (libeigen3-dev,
# doctest-dev). scripts/gpu-check.sh builds against them there (CMAKE_PREFIX_PATH=.deps).
# About 9 MiB; carry `.deps` with the repository to the GPU machine, with .gpu-prebuilt
# (scripts/gpu-prebuild.sh, which needs .deps too): gpu-check.sh builds from source against .deps
# only when the prebuilt binaries are missing, stale or do not start there (docs/cuda.md
# "Checking on a GPU").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
for p in /usr/include/eigen3 /usr/share/eigen3/cmake /usr/include/doctest /usr/lib/cmake/doctest; do
  [ -e "$p" ] || { echo "gpu-deps: $p is missing (apt-get install libeigen3-dev doctest-dev)"; exit 1; }
done
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/share/eigen3" "$deps/lib/cmake"
cp -r /usr/include/eigen3 "$deps/include/"
cp -r /usr/share/eigen3/cmake "$deps/share/eigen3/"
cp -r /usr/include/doctest "$deps/include/"
cp -r /usr/lib/cmake/doctest "$deps/lib/cmake/"
# Eigen's package finds its headers relative to itself; doctest's names /usr: make it relative.
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$deps/lib/cmake/doctest/doctestTargets.cmake"
du -sh "$deps"
