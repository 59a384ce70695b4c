#!/usr/bin/env bash
# Builds here, with the real nvcc, the three programs that scripts/gpu-check.sh runs on a GPU
# machine, so that its few minutes of device time are not spent compiling (issue 7):
#   segloss-tests (the CUDA test files only: SEGLOSS_CUDA_TESTS_ONLY), segloss-cuda-bench and
#   examples/train_shapes,
# for sm_90 machine code plus PTX (the project's default CMAKE_CUDA_ARCHITECTURES, 90-real and
# 75-virtual: an H100/H200 runs the sm_90 code, any other GPU from Turing on JIT-compiles the
# PTX), without -march=native (the device's CPU differs), libstdc++ and libgcc linked statically,
# and the shared libraries they need (libsegloss_c, libcudart, libgomp) copied beside them with
# RUNPATH $ORIGIN/../lib, so that another Linux image (the device's is Ubuntu-like with a newer
# glibc; this one is Debian 12) runs them. Everything is stripped, then packed with xz: each of
# the four holds the library's device code (about 57 MiB unpacked, 12 packed), and the device
# tool carries 64 MiB in all. Result, in the ignored folder .gpu-prebuilt/ (carry it with .deps
# to the GPU machine; gpu-check.sh unpacks it into its build folder):
#   binaries.tar.xz bin/segloss-tests bin/segloss-cuda-bench bin/train_shapes,
#                  lib/libsegloss_c.so.<ver> lib/libcudart.so.<ver> lib/libgomp.so.1
#   manifest.txt   commit, whether the tree had uncommitted changes, date, nvcc and g++
#                  versions, the CMake options, each file's size, the archive's and the total
#   sources.sha256 the sha256 of every file the build reads (the sources, CMake files; see
#                  segloss_build_inputs): gpu-check.sh uses the binaries only when every one of
#                  these files is unchanged and no such file was added or removed (it works
#                  without .git, which the device copy may lack), and says why not otherwise.
# Usage: bash scripts/gpu-prebuild.sh   (JOBS=2 by default, niced; build folder build-prebuilt/)
# Rebuild after every commit that changes a source: gpu-check.sh refuses stale binaries.

# The files whose contents decide the binaries, one path a line (relative, sorted): every C/C++/
# CUDA source and header and every CMake file of the tree. A superset of what the three targets
# read (the CPU test files are included too): a change anywhere there makes gpu-check.sh build
# from source, which is slower but never wrong. With git: the tracked and untracked-not-ignored
# files (what the device tool sends); without (the device's copy may have no .git): every file
# present, less the build, scratch and carried folders, which is what arrived there. The CUDA
# emulator's sources are left out: the GPU build never compiles them.
segloss_build_inputs() {
  local pattern='(\.(cpp|hpp|h|c|cu|cuh|inc|cmake|in|map)|(^|/)CMakeLists\.txt)$'
  local skip='^(\.git|build[^/]*|\.deps|\.gpu-prebuilt|out|\.cache|third_party_local|\.whl|\.gl|shared|backends/cuda/emulator)/|(^|/)__pycache__/'
  (
    cd "$1" || exit 1
    if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
      git ls-files --cached --others --exclude-standard
    else
      find . -type f | sed 's|^\./||'
    fi | grep -E "$pattern" | grep -vE "$skip" | while IFS= read -r f; do
      if [ -f "$f" ]; then printf '%s\n' "$f"; fi
    done | LC_ALL=C sort
  )
}

# Sourced by gpu-check.sh for segloss_build_inputs only.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  return 0
fi

set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="$root/build-prebuilt"
dest="$root/.gpu-prebuilt"
jobs=${JOBS:-2}
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "gpu-prebuild: no nvcc at $nvcc (set NVCC)"; exit 1; }
[ -d "$root/.deps" ] || { echo "gpu-prebuild: run scripts/gpu-deps.sh first (.deps/ is missing)"; exit 1; }
launcher=()
if command -v ccache > /dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

# Record the inputs before building: a file edited during the build then makes them stale.
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=no
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=yes; fi
inputs=$(segloss_build_inputs "$root")
sums=$(cd "$root" && printf '%s\n' "$inputs" | tr '\n' '\0' | xargs -0 sha256sum)

# -static-libstdc++/-static-libgcc: CUDA executables are linked by the host compiler too
# (CMAKE_CUDA_HOST_LINK_LAUNCHER), so the flags reach every link. RUNPATH $ORIGIN/../lib (the
# build tree's own entries come after it and do not exist on the GPU machine).
opts=(-DCMAKE_BUILD_TYPE=Release -DSEGLOSS_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
      -DCMAKE_PREFIX_PATH="$root/.deps" -DSEGLOSS_NATIVE=OFF -DSEGLOSS_CUDA_TESTS_ONLY=ON
      -DSEGLOSS_BUILD_TOOLS=OFF -DSEGLOSS_BUILD_EXAMPLES=ON -DSEGLOSS_BUILD_BENCH=ON
      "-DCMAKE_CUDA_ARCHITECTURES=90-real;75-virtual"
      "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc"
      "-DCMAKE_SHARED_LINKER_FLAGS=-static-libstdc++ -static-libgcc"
      '-DCMAKE_BUILD_RPATH=$ORIGIN/../lib')
mkdir -p "$build"
echo "gpu-prebuild: configure ($build)"
cmake -S "$root" -B "$build" "${opts[@]}" "${launcher[@]}" > "$build/configure.log" 2>&1 \
  || { tail -30 "$build/configure.log"; exit 1; }
grep "segloss:" "$build/configure.log" || true
echo "gpu-prebuild: build -j$jobs (segloss-tests segloss-cuda-bench train_shapes)"
start=$(date +%s)
nice cmake --build "$build" -j"$jobs" --target segloss-tests segloss-cuda-bench train_shapes
echo "gpu-prebuild: built in $(( $(date +%s) - start )) s"

stage="$build/stage"  # what goes into the archive
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib"
cp "$build/tests/segloss-tests" "$build/bench/segloss-cuda-bench" "$build/examples/train_shapes" \
  "$stage/bin/"
# The shared libraries the programs need that the GPU machine's image may lack or have in
# another version: each under its SONAME (the name the loader looks for), as a plain file.
copy_lib() {  # $1: a library file; copies it as its SONAME
  local so
  so=$(objdump -p "$1" | awk '/SONAME/ {print $2}')
  cp -L "$1" "$stage/lib/${so:-$(basename "$1")}"
}
copy_lib "$(ls "$build"/libsegloss_c.so.*.* | head -1)"
for lib in libcudart.so libgomp.so; do
  path=$(ldd "$stage/bin/segloss-tests" | awk -v l="$lib" 'index($1, l) == 1 {print $3}')
  if [ -n "$path" ] && [ -e "$path" ]; then copy_lib "$path"; fi
done
strip "$stage/bin/"*
strip --strip-unneeded "$stage/lib/libsegloss_c.so."*

# The binaries must load with only lib/ beside them (their RUNPATH also names the build tree
# and the toolkit, which exist here but not there): segloss_c, cudart and gomp must resolve
# into lib/, and nothing may be missing.
for b in "$stage/bin/"* "$stage/lib/libsegloss_c.so."*; do
  if LD_LIBRARY_PATH='' ldd "$b" | grep -q "not found"; then
    echo "gpu-prebuild: $b has unresolved libraries:"; ldd "$b"; exit 1
  fi
  if LD_LIBRARY_PATH='' ldd "$b" | grep -E "lib(segloss_c|cudart|gomp)\.so" | grep -v "=> $stage/\(bin/\.\./\)\{0,1\}lib/" | grep -q .; then
    echo "gpu-prebuild: $b finds a library outside lib/:"; ldd "$b"; exit 1
  fi
  if ldd "$b" | grep -E "libstdc\+\+|libgcc_s" | grep -q .; then
    echo "gpu-prebuild: $b still needs a shared libstdc++/libgcc_s:"; ldd "$b"; exit 1
  fi
done
"$stage/bin/segloss-tests" -ltc -tc='*cuda*' > /dev/null \
  || { echo "gpu-prebuild: segloss-tests -ltc failed here"; exit 1; }

rm -rf "$dest"
mkdir -p "$dest"
echo "gpu-prebuild: packing (xz)"
tar -C "$stage" -cf - bin lib | xz -6 -T"$jobs" > "$dest/binaries.tar.xz"
printf '%s\n' "$sums" > "$dest/sources.sha256"
{
  echo "commit $commit"
  echo "uncommitted_changes $dirty"
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nvcc $("$nvcc" --version | grep -oE 'release [0-9.]+, V[0-9.]+' | head -1)"
  echo "cxx $(c++ --version | head -1)"
  echo "glibc $(ldd --version | head -1 | grep -oE '[0-9]+\.[0-9]+$')"
  # The newest glibc symbol version the programs and libraries ask for: the GPU machine's glibc
  # must be at least that (2.36 with GCC 12's static libstdc++: arc4random in random_device).
  echo "needs_glibc $(for f in "$stage"/bin/* "$stage"/lib/*; do objdump -T "$f"; done \
    | grep -oE 'GLIBC_[0-9.]+' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  echo "cuda_architectures 90-real;75-virtual (sm_90 machine code, compute_75 PTX)"
  echo "options ${opts[*]}"
  echo "sources $(printf '%s\n' "$inputs" | wc -l) files (sources.sha256)"
  (cd "$stage" && find bin lib -type f -printf 'file %p %s\n' | sort)
  echo "unpacked_bytes $(du -sb "$stage" | cut -f1)"
  echo "archive_bytes $(stat -c %s "$dest/binaries.tar.xz")"
} > "$dest/manifest.txt"
cat "$dest/manifest.txt"
# What travels to the GPU machine: the tracked and untracked-not-ignored files plus the carried
# .deps and .gpu-prebuilt, 64 MiB in all (the device tool's limit).
tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null || true) \
       | awk '/\ttotal$/ {s += $1} END {print s + 0}')
deps=$(du -sb "$root/.deps" | cut -f1)
pre=$(du -sb "$dest" | cut -f1)
total=$((tree + deps + pre))
awk -v t="$total" -v a="$tree" -v b="$deps" -v c="$pre" 'BEGIN {m = 1048576;
  printf "gpu-prebuild: travels %.1f MiB (tree %.1f, .deps %.1f, .gpu-prebuilt %.1f) of 64 MiB\n",
         t / m, a / m, b / m, c / m}'
if [ "$total" -gt $((56 * 1048576)) ]; then
  echo "gpu-prebuild: WARNING: over 56 MiB of the device tool's 64 MiB"
fi
if [ "$dirty" = yes ]; then
  echo "gpu-prebuild: note: the tree had uncommitted changes; sources.sha256 holds what was built"
fi
