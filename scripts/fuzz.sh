#!/usr/bin/env bash
# Builds the libFuzzer target fuzz/fuzz_capi (the C API; SEGLOSS_FUZZ_TARGET=fuzz_losses for
# the C++ one) with clang (-fsanitize=fuzzer,address,undefined; OpenMP off) in build-fuzz/ and
# runs it for SECONDS (default 60), from the seeds in fuzz/corpus/. Findings (crash-*, leak-*,
# timeout-*) are written to build-fuzz/findings/; the corpus grows in build-fuzz/corpus/.
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]
# Reproduce a finding: build-fuzz/fuzz/fuzz_capi build-fuzz/findings/crash-...
# Needs clang and libclang-rt-14-dev (Debian 12): scripts/fuzz.sh installs them when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
. "$root/scripts/deps.sh"
segloss_install_deps clang libclang-rt-14-dev
build="$root/build-fuzz"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$san -fsanitize=fuzzer-no-link" \
  -DSEGLOSS_FUZZ=ON -DSEGLOSS_OPENMP=OFF -DSEGLOSS_CUDA=OFF -DSEGLOSS_NATIVE=OFF \
  -DSEGLOSS_BUILD_TESTS=OFF -DSEGLOSS_BUILD_BENCH=OFF -DSEGLOSS_BUILD_EXAMPLES=OFF \
  -DSEGLOSS_BUILD_TOOLS=OFF ${SEGLOSS_FUZZ_CMAKE_ARGS:-} >/dev/null
target=${SEGLOSS_FUZZ_TARGET:-fuzz_capi}
cmake --build "$build" -j "$(nproc)" --target "$target"
mkdir -p "$build/corpus" "$build/findings"
cd "$build"
# -rss_limit_mb: the decoder caps inputs far below; -timeout: one input must not take 10 s;
# -len_control=0: long inputs (which set many values) from the start.
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
  "./fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=4096 \
  -len_control=0 -print_final_stats=1 -artifact_prefix="$build/findings/" "$@" corpus \
  "$root/fuzz/corpus"
