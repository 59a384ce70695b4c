#!/usr/bin/env bash
# The CUDA check for a GPU machine (issue 7), run from the repository root:
#     bash scripts/gpu-check.sh              on the GPU machine (docs/cuda.md "Checking on a GPU")
#     bash scripts/gpu-check.sh --dry-run    here, without a GPU: every step's plumbing on the
#                                            CPU emulator (also SEGLOSS_GPU_CHECK_EMULATE=1)
# Needs cmake, a C++ compiler, python3 with PyTorch (CUDA) and .deps/ (scripts/gpu-deps.sh, made
# where Eigen and doctest are installed: the GPU machine has neither and no network); nvcc only
# when it has to build. Steps, each timed, inside a wall-clock budget (GPU_CHECK_BUDGET_S, 300 s
# by default: issue 7's 5 minutes for the whole script; a larger budget, e.g. 420, leaves the
# optional compute-sanitizer step time to run), each capped so that the table is always written:
#   1. binaries: .gpu-prebuilt/ (scripts/gpu-prebuild.sh, built here with the real nvcc) when
#      its recorded sources equal this tree's and its programs start here; otherwise configure
#      with -DSEGLOSS_CUDA=ON against .deps and build segloss-tests (SEGLOSS_CUDA_TESTS_ONLY),
#      segloss-cuda-bench and examples/train_shapes (-j16, cap 240 s), saying why; the
#      budget's clock restarts after such a build;
#   2. the CUDA tests, every case of segloss-tests -tc='*cuda*' in one process (cap 180 s);
#   3. examples/train_shapes --quick --device cuda (cap 60 s);
#   4. segloss-cuda-bench, each case in its own process (cap 60 s each, 270 s in all), in the
#      order of --list: issue 7's two cases first, then the other losses, then the A/B lines
#      (the code a change replaced), so that a short budget drops the A/B lines first (a note;
#      skipping one of issue 7's two fails); it leaves 60 s of the budget to PyTorch;
#   5. bench/compare_cuda_pytorch.py, PyTorch eager (cap 120 s);
#   6. the table (results.md, summary.json), with issue 7's PASS/MISS lines;
#   7. if the one-process run failed: every case again in its own process, first the cases that
#      failed and the one that was running when it crashed or hung, while the budget lasts;
#   8. if more than 110 s are left: compute-sanitizer memcheck, then racecheck, on one test case
#      per kernel family, 45 s a case, 180 s in all (GPU_CHECK_SANITIZER_S; GPU_CHECK_SANITIZER=0
#      skips it): optional, "not available" when it refuses to run; errors it finds fail;
#   9. the table again, with everything that finished.
# The dry run builds the emulator binaries in build-gpu-dry (its budget clock starts after that
# build), runs 20 test cases through a stand-in that plants one failure and one crash, the bench
# and torch (--device cpu, /usr/bin/python3) at tiny sizes, a stand-in compute-sanitizer, and
# then checks that exactly the planted failures were reported: exit 0 when the plumbing works.
# Writes under $OUT (default build-gpu/out; build-gpu-dry/out for the dry run), at most 8 files
# (the device tool brings back 8): gpu-check.log (this output), tests.log (the one-process run,
# then each rerun case's output), cuda_bench.jsonl, torch.jsonl, results.md (the table for
# bench/RESULTS.md), summary.json, sanitizer.log; scratch files stay in the build folder.
# Exit status: 0 when every step ran and passed; 1 when a test, train_shapes, a bench case,
# torch or a sanitizer check failed, or a required step (tests, issue 7's two bench cases,
# torch) timed out or was skipped for lack of time; 2 for a bad argument. The whole command
# stays within GPU_CHECK_WALL_S (520 s) even after a build from source.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

dry=0
case "${SEGLOSS_GPU_CHECK_EMULATE:-0}" in 1 | yes | true) dry=1 ;; esac
for a in "$@"; do
  case "$a" in
    --dry-run) dry=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument '$a' (--dry-run, --help)"; exit 2 ;;
  esac
done

if [ "$dry" = 1 ]; then
  build="$root/build-gpu-dry"
  label="EMULATOR DRY RUN (the CPU emulator; no number here is a GPU measurement)"
else
  build="$root/build-gpu"
  label="GPU"
fi
OUT=${OUT:-$build/out}
scratch="$build/scratch"
mkdir -p "$OUT" "$build"
rm -rf "$scratch"
mkdir -p "$scratch"
for f in gpu-check.log tests.log cuda_bench.jsonl torch.jsonl results.md summary.json sanitizer.log; do
  rm -f "$OUT/$f"
done
exec > >(tee "$OUT/gpu-check.log") 2>&1
tee_pid=$!
# At exit, close the pipe to tee and wait for it, so the log holds the last lines too.
trap 'exec 1>&- 2>&-; wait "$tee_pid" 2> /dev/null' EXIT

budget=${GPU_CHECK_BUDGET_S:-300}
reserve=20  # seconds kept for the tables at the end
t0=$(date +%s)
start_all=$t0  # the whole command's start: a build from source restarts t0, not this
wall=${GPU_CHECK_WALL_S:-520}  # the most the whole command may take (the docs' timeout_s: 540)
status=0
left() { echo $(($budget - ($(date +%s) - t0))); }
# The seconds a step may run: min($1, what is left less the reserve); 0 when nothing is left.
cap_for() {
  local l=$(($(left) - reserve))
  [ "$l" -gt "$1" ] && l=$1
  [ "$l" -lt 0 ] && l=0
  echo "$l"
}
# step NAME: ends the step under way (its seconds go to the log and summary.json) and starts NAME.
steps="$scratch/steps.tsv"
: > "$steps"
cur_step=""
cur_start=$t0
cur_note=""
step() {
  local now
  now=$(date +%s)
  if [ -n "$cur_step" ]; then
    echo "[$(date -u +%H:%M:%S)] $cur_step: $((now - cur_start)) s${cur_note:+ ($cur_note)}; $((now - t0)) of $budget s used"
    printf '%s\t%s\t%s\n' "$cur_step" "$((now - cur_start))" "${cur_note:-ok}" >> "$steps"
  fi
  cur_step=$1
  cur_start=$now
  cur_note=""
  if [ -n "$1" ]; then echo "[$(date -u +%H:%M:%S) +$((now - t0))s] $1"; fi
}
meta="$scratch/meta.tsv"
: > "$meta"
setmeta() { printf '%s\t%s\n' "$1" "$2" >> "$meta"; }
setmeta label "$label"
setmeta budget_s "$budget"
fail() {  # fail REASON: the check failed (status 1), with the reason in summary.json
  status=1
  printf 'fail\t%s\n' "$1" >> "$meta"
}
# The test cases a doctest log reports failing (an ERROR, a FATAL ERROR, a crash), each once:
# the last "TEST CASE:" header before each error line, however many subcase lines lie between.
failed_cases() {
  awk '/^TEST CASE:/ {tc = $0; sub(/^TEST CASE: */, "", tc)}
       /(^|: )(FATAL )?ERROR: / && tc != "" && !seen[tc]++ {print tc}' "$1"
}
# A program killed by its cap: timeout's 124 (TERM), or 137 (the KILL after 10 more seconds).
timed_out() { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }

ts() { echo "[$(date -u +%H:%M:%S)] $*"; }
ts "gpu-check: start ($label; budget $budget s)"
step "machine"
if [ "$dry" = 1 ]; then
  gpu="none (emulator dry run)"
  driver="-"
else
  if smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
      --format=csv,noheader 2>&1); then
    smi=$(echo "$smi" | head -1)
    echo "nvidia-smi: $smi"
    gpu=$(echo "$smi" | cut -d, -f1 | sed 's/^ *//; s/ *$//')
    driver=$(echo "$smi" | cut -d, -f2 | sed 's/^ *//; s/ *$//')
  else
    echo "nvidia-smi failed: $(echo "$smi" | head -2 | tr '\n' ' ')"
    gpu="unknown (nvidia-smi failed)"
    driver="unknown"
  fi
fi
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
nvcc_here=$("$nvcc_bin" --version 2>/dev/null | grep -oE 'release [0-9.]+, V[0-9.]+' | head -1)
echo "nvcc here: ${nvcc_here:-none}"
setmeta gpu "$gpu"
setmeta driver "$driver"
setmeta nvcc_here "${nvcc_here:-none}"
setmeta date "$(date -u +%Y-%m-%d)"
if [ ! -d "$root/.deps" ]; then
  echo "gpu-check: .deps/ is missing: run scripts/gpu-deps.sh where Eigen and doctest are installed"
  echo "  (a prebuilt .gpu-prebuilt/ needs no .deps; a build from source does)"
fi

# ---------------------------------------------------------------------------------------------
# 1. The binaries: tests_bin, bench_bin, train_bin.
# ---------------------------------------------------------------------------------------------
step "binaries"
pre="$root/.gpu-prebuilt"
pre_dir="$scratch/prebuilt"  # its binaries.tar.xz unpacked
why_not_prebuilt=""
# Sets why_not_prebuilt and returns 1 when .gpu-prebuilt/ cannot be used here.
check_prebuilt() {
  if [ ! -d "$pre" ]; then why_not_prebuilt="there is no .gpu-prebuilt/ (scripts/gpu-prebuild.sh makes it; carry it)"; return 1; fi
  local f
  for f in manifest.txt sources.sha256 binaries.tar.xz; do
    [ -e "$pre/$f" ] || { why_not_prebuilt=".gpu-prebuilt/$f is missing"; return 1; }
  done
  # shellcheck source=gpu-prebuild.sh
  . "$root/scripts/gpu-prebuild.sh"  # segloss_build_inputs only
  segloss_build_inputs "$root" > "$scratch/inputs.now"
  awk '{print $2}' "$pre/sources.sha256" > "$scratch/inputs.then"
  if [ "$(cat "$scratch/inputs.now")" != "$(cat "$scratch/inputs.then")" ]; then
    why_not_prebuilt="source files were added or removed since the prebuild: $(LC_ALL=C comm -3 "$scratch/inputs.then" "$scratch/inputs.now" | head -3 | tr '\n\t' '  ')"
    return 1
  fi
  if ! sha256sum --quiet -c "$pre/sources.sha256" > "$scratch/sums.txt" 2>&1; then
    why_not_prebuilt="sources changed since the prebuild: $(grep -i -E 'FAILED' "$scratch/sums.txt" | head -3 | tr '\n' ' ')"
    return 1
  fi
  local made head
  made=$(awk '$1 == "commit" {print $2}' "$pre/manifest.txt")
  head=$(git rev-parse HEAD 2>/dev/null || true)
  if [ -z "$head" ]; then
    echo "prebuilt at commit $made; no git here: its $(wc -l < "$scratch/inputs.now") source files are the same"
  elif [ "$made" = "$head" ]; then
    echo "prebuilt at commit $made = HEAD; its sources are this tree's"
  else
    echo "prebuilt at commit $made, HEAD is $head: every source file the build reads is the same"
  fi
  # Unpacked into the scratch folder (tar's xz, or Python's when there is no xz program).
  rm -rf "$pre_dir"
  mkdir -p "$pre_dir"
  if ! tar -C "$pre_dir" -xJf "$pre/binaries.tar.xz" 2> "$scratch/untar.txt" \
      && ! python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$pre/binaries.tar.xz" "$pre_dir" 2>> "$scratch/untar.txt"; then
    why_not_prebuilt="binaries.tar.xz does not unpack: $(tail -2 "$scratch/untar.txt" | tr '\n' ' ')"
    return 1
  fi
  for f in bin/segloss-tests bin/segloss-cuda-bench bin/train_shapes; do
    [ -x "$pre_dir/$f" ] || { why_not_prebuilt="binaries.tar.xz holds no $f"; return 1; }
  done
  local env_lib="LD_LIBRARY_PATH=$pre_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ! env "$env_lib" timeout -k 5 60 "$pre_dir/bin/segloss-tests" -ltc -tc='*cuda*' > "$scratch/ltc.txt" 2>&1 \
      || ! grep -q '^cuda ' "$scratch/ltc.txt"; then
    why_not_prebuilt="its segloss-tests does not start here: $(tail -3 "$scratch/ltc.txt" | tr '\n' ' ')(it needs glibc $(awk '$1 == "needs_glibc" {print $2}' "$pre/manifest.txt"); here: $(ldd --version 2>&1 | head -1))"
    return 1
  fi
  if ! env "$env_lib" timeout -k 5 30 "$pre_dir/bin/train_shapes" --help > "$scratch/ts_help.txt" 2>&1; then
    why_not_prebuilt="its train_shapes does not start here: $(tail -3 "$scratch/ts_help.txt" | tr '\n' ' ')"
    return 1
  fi
  if ! env "$env_lib" timeout -k 5 60 "$pre_dir/bin/segloss-cuda-bench" --list > "$scratch/bench_list.txt" 2>&1; then
    why_not_prebuilt="its segloss-cuda-bench --list fails here: $(tail -3 "$scratch/bench_list.txt" | tr '\n' ' ')"
    return 1
  fi
  return 0
}
use_prebuilt=0
if check_prebuilt; then use_prebuilt=1; fi
if [ "$use_prebuilt" = 1 ]; then
  pre_nvcc=$(awk '$1 == "nvcc" {$1 = ""; print substr($0, 2)}' "$pre/manifest.txt")
  echo "prebuilt binaries: usable ($(grep -E '^(date|nvcc|cuda_architectures) ' "$pre/manifest.txt" | tr '\n' ';'))"
else
  pre_nvcc=""
  echo "prebuilt binaries: not used: $why_not_prebuilt"
fi

build_from_source() {  # the GPU build: -DSEGLOSS_CUDA=ON against .deps, -j16
  if [ ! -d "$root/.deps" ]; then
    echo "FAIL  no binaries: no usable .gpu-prebuilt/ and no .deps/ to build against"
    return 1
  fi
  local cap launcher=()
  # ccache where there is one (not on the GPU machine; a test of this path elsewhere).
  command -v ccache > /dev/null \
    && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  configure() {
    timeout -k 5 120 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_CUDA=ON \
      -DCMAKE_PREFIX_PATH="$root/.deps" -DSEGLOSS_BUILD_TOOLS=OFF -DSEGLOSS_BUILD_EXAMPLES=ON \
      -DSEGLOSS_CUDA_TESTS_ONLY=ON "${launcher[@]}" "$@" > "$scratch/configure.txt" 2>&1
  }
  if ! configure; then
    echo "configure failed; retrying without OpenMP"
    configure -DSEGLOSS_OPENMP=OFF || { tail -30 "$scratch/configure.txt"; return 1; }
  fi
  grep "segloss:" "$scratch/configure.txt"
  # Its own cap, outside the budget (whose clock restarts after the build): the check's 5
  # minutes are for the check; a build from source is the fallback when .gpu-prebuilt is stale.
  cap=240
  echo "building -j${GPU_CHECK_JOBS:-16} (cap ${cap} s; the budget's clock restarts after it)"
  timeout -k 10 "$cap" nice cmake --build "$build" -j"${GPU_CHECK_JOBS:-16}" --target segloss-tests segloss-cuda-bench train_shapes \
    > "$scratch/build.txt" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    timed_out "$rc" && echo "the build ran out of its ${cap} s"
    grep -E "error|Error" -A3 "$scratch/build.txt" | head -60
    tail -5 "$scratch/build.txt"
    return 1
  fi
}

build_dry() {  # the emulator build here: the same programs on the CPU emulator
  local launcher=()
  command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_CUDA=EMULATE \
    -DSEGLOSS_CUDA_TESTS_ONLY=ON -DSEGLOSS_BUILD_BENCH=OFF -DSEGLOSS_BUILD_EXAMPLES=ON \
    -DSEGLOSS_BUILD_TOOLS=OFF "${launcher[@]}" > "$scratch/configure.txt" 2>&1 \
    || { tail -30 "$scratch/configure.txt"; return 1; }
  grep "segloss:" "$scratch/configure.txt"
  nice cmake --build "$build" -j"${JOBS:-2}" --target segloss-tests train_shapes > "$scratch/build.txt" 2>&1 \
    || { grep -E "error|Error" -A3 "$scratch/build.txt" | head -40; return 1; }
  # bench/CMakeLists.txt builds segloss-cuda-bench only with the real nvcc: compile the same
  # cuda_bench.cu as C++ against the emulator, as CMake compiles the library's .cu files.
  local cc=(c++)
  command -v ccache > /dev/null && cc=(ccache c++)
  nice "${cc[@]}" -std=c++17 -O2 -DNDEBUG -fopenmp -x c++ -include cuda_runtime.h -Wall -Wextra \
    -Wno-unknown-pragmas -DSEGLOSS_CUDA_EMULATION -I"$root/backends/cuda/emulator" -I"$build/include" \
    "$root/bench/cuda_bench.cu" -x none "$build/libsegloss.a" -o "$build/segloss-cuda-bench-emu" \
    > "$scratch/bench_build.txt" 2>&1 || { head -40 "$scratch/bench_build.txt"; return 1; }
}

lib_env=()
if [ "$dry" = 1 ]; then
  # The dry run builds the emulator binaries whatever the prebuilt folder holds (its programs
  # need a GPU), after checking that folder as on the GPU machine. Its build time is no guide
  # to the GPU machine's (2 cores, -j2 here): the budget clock restarts after it.
  echo "dry run: building the emulator binaries in $build (-j${JOBS:-2})"
  if ! build_dry; then
    echo "FAIL  the dry run's emulator build"
    exit 1
  fi
  tests_real="$build/tests/segloss-tests"
  bench_bin="$build/segloss-cuda-bench-emu"
  train_bin="$build/examples/train_shapes"
  binaries="emulator build ($build); prebuilt: $([ "$use_prebuilt" = 1 ] && echo "would be used" || echo "would not be used: $why_not_prebuilt")"
  if [ "$use_prebuilt" = 1 ]; then
    # Its no-device detection, here where there is no GPU: the check below must see the skip.
    env "LD_LIBRARY_PATH=$pre_dir/lib" timeout -k 5 60 "$pre_dir/bin/segloss-tests" \
      -tc='cuda runtime: device tensors copy to and from the host' > "$scratch/pre_nodev.txt" 2>&1
    if grep -q "skipped: no CUDA device" "$scratch/pre_nodev.txt"; then
      echo "prebuilt segloss-tests, one case without a GPU: says 'skipped: no CUDA device' (as the check expects)"
    else
      echo "WARNING: the prebuilt segloss-tests without a GPU did not say 'skipped: no CUDA device':"
      tail -5 "$scratch/pre_nodev.txt"
    fi
  fi
  t0=$(date +%s)
  cur_start=$t0
else
  if [ "$use_prebuilt" = 1 ]; then
    tests_real="$pre_dir/bin/segloss-tests"
    bench_bin="$pre_dir/bin/segloss-cuda-bench"
    train_bin="$pre_dir/bin/train_shapes"
    lib_env=("LD_LIBRARY_PATH=$pre_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    binaries="prebuilt (.gpu-prebuilt, $(awk '$1 == "commit" {print substr($2, 1, 12)}' "$pre/manifest.txt"))"
  else
    echo "building from source (-DSEGLOSS_CUDA=ON, -j${GPU_CHECK_JOBS:-16})"
    if ! build_from_source; then
      cur_note="FAIL"
      fail "no binaries: the build failed or ran out of time"
      binaries="none (the build failed)"
    else
      binaries="built here"
    fi
    # The budget counts from here (the build's own cap is above; the step's seconds still
    # include the build), within the whole command's wall limit.
    t0=$(date +%s)
    if [ $((t0 - start_all + budget)) -gt "$wall" ]; then
      budget=$((wall - (t0 - start_all)))
      [ "$budget" -lt 0 ] && budget=0
      echo "the build took $((t0 - start_all)) s: the budget is now $budget s (GPU_CHECK_WALL_S $wall s in all)"
      setmeta budget_s "$budget"
    fi
    tests_real="$build/tests/segloss-tests"
    bench_bin="$build/bench/segloss-cuda-bench"
    train_bin="$build/examples/train_shapes"
  fi
fi
echo "binaries: $binaries"
setmeta binaries "$binaries"
if [ "$dry" = 1 ]; then
  setmeta nvcc_binaries "none (the emulator build: c++)"
elif [ "$use_prebuilt" = 1 ]; then
  setmeta nvcc_binaries "$pre_nvcc (prebuilt)"
else
  setmeta nvcc_binaries "${nvcc_here:-none}"
fi
run_bin() { env "${lib_env[@]+"${lib_env[@]}"}" "$@"; }

# The dry run's stand-in for segloss-tests: the emulator build's binary, except that one case
# fails (a doctest-style error, exit 1) and another crashes (SIGSEGV) whenever the run selects
# them (the one-process run, or their own rerun), so that the one-process run fails and the
# per-case rerun path runs, with one failure and one crash to report. With
# SEGLOSS_GPU_CHECK_DRY_HANG=1 the one-process run hangs instead (its cap must stop it).
tests_bin="$tests_real"
if [ "$dry" = 1 ]; then
  tc_filter='cuda runtime: *,cuda cross_entropy: CPU parity\, float*,cuda distance_transform*,cuda confusion_matrix: label maps*,cuda tape: softmax and log_softmax*,tensor: undefined and cuda'
  dry_fail='cuda runtime: available implies built'
  dry_crash='cuda distance_transform: the CPU'"'"'s messages'
  tests_bin="$scratch/segloss-tests-dry"
  { echo '#!/usr/bin/env bash'
    printf 'real=%q\nfail_name=%q\ncrash_name=%q\n' "$tests_real" "$dry_fail" "$dry_crash"
  } > "$tests_bin"
  cat >> "$tests_bin" << 'EOF'
tc=""
for a in "$@"; do case "$a" in -ltc | --list-test-cases) exec "$real" "$@" ;; -tc=*) tc=${a#-tc=} ;; esac; done
case "$tc" in *'*'*) [ "${SEGLOSS_GPU_CHECK_DRY_HANG:-0}" = 1 ] && { echo "dry run: planted hang"; exec sleep 100000; } ;; esac
"$real" "$@"
rc=$?
planted() {
  printf '%s\n' "===============================================================================" \
    "scripts/gpu-check.sh:1:" "TEST CASE:  $1" "" \
    "scripts/gpu-check.sh:1: ERROR: CHECK( planted by gpu-check --dry-run ) is NOT correct!" ""
}
if [ "$tc" = "${crash_name//,/\\,}" ]; then echo "dry run: planted crash"; kill -SEGV $$; fi
if [ "$tc" = "${fail_name//,/\\,}" ]; then planted "$fail_name"; exit 1; fi
case "$tc" in *'*'*) planted "$fail_name"; exit 1 ;; esac
exit $rc
EOF
  chmod +x "$tests_bin"
  bench_args=(--n "1,1,64,64" --ce-shape "1,21,32,32" --reps 3)
  torch_args=(--device cpu --shape "1,1,64,64" --ce-shape "1,21,32,32" --reps 3)
  train_args=(--quick --threads 2 --device cuda)
  python=/usr/bin/python3
else
  tc_filter='*cuda*'
  bench_args=(--reps 20)
  torch_args=(--reps 20)
  train_args=(--quick --threads 16 --device cuda)
  python=python3
fi
have_bins=1
[ -x "$tests_real" ] && [ -x "$bench_bin" ] && [ -x "$train_bin" ] || have_bins=0

# ---------------------------------------------------------------------------------------------
# 2. The CUDA tests in one process.
# ---------------------------------------------------------------------------------------------
step "CUDA tests, one process"
: > "$OUT/tests.log"
cases="$scratch/cases.txt"
: > "$cases"
tests_pass=0
tests_fail=0
tests_total=0
one_process_rc=""
failed=()
if [ "$have_bins" = 0 ]; then
  cur_note="skipped: no binaries"
  fail "tests not run: no binaries"
else
  run_bin timeout -k 5 60 "$tests_bin" -ltc -tc="$tc_filter" 2> /dev/null \
    | grep -v -E '^\[doctest\]|^=+$' | sed '/^$/d' > "$cases"
  tests_total=$(wc -l < "$cases")
  cap=$(cap_for 180)
  echo "$tests_total CUDA test cases; one process, cap ${cap} s"
  if [ "$cap" -lt 10 ]; then
    cur_note="skipped: out of time"
    one_process_rc=skipped
    fail "CUDA tests skipped: out of time"
  else
    # One CUDA context for every case (200 processes' start-ups would take minutes); its log
    # keeps each case's duration, which also names the case running when it crashed or hung.
    # Line-buffered (stdbuf): after a kill the log still holds every line written before it.
    line_buffered=()
    command -v stdbuf > /dev/null && line_buffered=(stdbuf -oL -eL)
    run_bin timeout -k 10 "$cap" "${line_buffered[@]+"${line_buffered[@]}"}" "$tests_bin" \
      -tc="$tc_filter" --duration=true > "$scratch/one_process.log" 2>&1
    one_process_rc=$?
    { echo "=== one process: segloss-tests -tc='$tc_filter' --duration=true (rc $one_process_rc)"
      cat "$scratch/one_process.log"; } >> "$OUT/tests.log"
    grep -E '^\[doctest\] (test cases|assertions):' "$scratch/one_process.log" || tail -3 "$scratch/one_process.log"
    if [ "$one_process_rc" -eq 0 ] \
        && grep -qE '^\[doctest\] test cases: +[1-9][0-9]* \| +[0-9]+ passed \| +0 failed' "$scratch/one_process.log"; then
      tests_pass=$(grep -E '^\[doctest\] test cases:' "$scratch/one_process.log" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
      echo "one process: rc 0, every case passed ($tests_pass)"
    else
      why="rc $one_process_rc"
      timed_out "$one_process_rc" && why="timed out after ${cap} s"
      [ "$one_process_rc" -gt 128 ] && [ "$one_process_rc" -ne 137 ] && why="signal $((one_process_rc - 128))"
      cur_note="FAIL: $why"
      fail "the one-process CUDA test run failed ($why)"
      echo "FAIL  one process: $why; the cases are rerun apart after the benchmark (step 7)"
      failed_cases "$scratch/one_process.log" | sed 's/^/  failed in the one-process run: /' | head -20
    fi
    # SEGLOSS_REQUIRE_GPU returns (a pass) with this message when no device is visible: on the
    # GPU machine that is a failure of the check, not of the code.
    if [ "$dry" = 0 ] && grep -q "skipped: no CUDA device" "$scratch/one_process.log"; then
      fail "the tests saw no CUDA device"
      echo "FAIL  the tests saw no CUDA device (cuda::available() is false): nothing was checked"
    fi
  fi
fi
setmeta one_process_rc "$one_process_rc"
setmeta one_process "$(grep -E '^\[doctest\] test cases:' "$scratch/one_process.log" 2> /dev/null | sed 's/^\[doctest\] test cases: *//; s/  */ /g')"

# ---------------------------------------------------------------------------------------------
# 3. train_shapes on the GPU.
# ---------------------------------------------------------------------------------------------
step "train_shapes --quick --device cuda"
cap=$(cap_for 60)
train_result="not run"
if [ "$have_bins" = 0 ]; then
  cur_note="skipped: no binaries"
elif [ "$cap" -lt 10 ]; then
  cur_note="skipped: out of time"
  train_result="skipped: out of time"
else
  # The demo's loss and gradient on the GPU; the program checks that the loss falls and the
  # mIoU rises. Its images go to the scratch folder (the device tool brings back 8 files).
  run_bin timeout -k 10 "$cap" "$train_bin" "${train_args[@]}" --out "$scratch/train_shapes" \
    > "$scratch/train_shapes.log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    train_result="ok"
    echo "train_shapes: ok"
    tail -3 "$scratch/train_shapes.log"
  else
    train_result="FAIL (rc $rc$(timed_out "$rc" && echo ", timed out after ${cap} s"))"
    cur_note="$train_result"
    fail "train_shapes --device cuda: $train_result"
    echo "FAIL  train_shapes --device cuda: $train_result"
    tail -15 "$scratch/train_shapes.log"
  fi
  { echo "=== train_shapes ${train_args[*]} (rc $rc)"; cat "$scratch/train_shapes.log"; } >> "$OUT/tests.log"
fi
setmeta train_shapes "$train_result"

# ---------------------------------------------------------------------------------------------
# 4. The benchmark, one process per case.
# ---------------------------------------------------------------------------------------------
step "benchmark (segloss-cuda-bench, a process per case)"
: > "$OUT/cuda_bench.jsonl"
bench_ok=0
bench_fail=0
bench_skipped=0
# 29 cases since 2026-12-04 (6 in session 13); PyTorch's step after it keeps up to 60 s.
bench_cap=$(cap_for 270)
[ "$bench_cap" -gt $(($(left) - reserve - 60)) ] && bench_cap=$(($(left) - reserve - 60))
[ "$bench_cap" -lt 0 ] && bench_cap=0
bench_deadline=$(($(date +%s) + bench_cap))
required_cases=" bce_dice_vg cross_entropy_vg "  # issue 7's; a skipped A/B line is only a note
if [ "$have_bins" = 1 ]; then
  names=$(run_bin timeout -k 5 60 "$bench_bin" --list | grep -E '^[A-Za-z0-9_]+$')
  if [ -z "$names" ]; then
    fail "segloss-cuda-bench --list printed no case"
    echo "FAIL  segloss-cuda-bench --list printed no case: $(run_bin timeout -k 5 60 "$bench_bin" --list 2>&1 | head -2 | tr '\n' ' ')"
  fi
  for c in $names; do
    [ "$c" = "copy" ] && continue
    cap=$((bench_deadline - $(date +%s)))
    [ "$cap" -gt 60 ] && cap=60
    if [ "$cap" -lt 5 ]; then
      bench_skipped=$((bench_skipped + 1))
      echo "skipped bench $c: out of time"
      case "$required_cases" in *" $c "*) fail "bench $c (issue 7's) skipped: out of time" ;; esac
      continue
    fi
    # Each process measures the copy case too, for its own fraction_of_copy.
    run_bin timeout -k 10 "$cap" "$bench_bin" "${bench_args[@]}" --filter "$c" \
      > "$scratch/bench_case.jsonl" 2> "$scratch/bench_case.err"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "\"name\": \"$c\"" "$scratch/bench_case.jsonl"; then
      bench_ok=$((bench_ok + 1))
    else
      bench_fail=$((bench_fail + 1))
      why="rc $rc"
      timed_out "$rc" && why="timed out after ${cap} s"
      [ "$rc" -eq 0 ] && why="no line for $c"
      echo "FAIL  bench $c ($why): $(tail -3 "$scratch/bench_case.err" | tr '\n' ' ')"
      fail "bench $c: $why"
    fi
    tee -a "$OUT/cuda_bench.jsonl" < "$scratch/bench_case.jsonl"
    cat "$scratch/bench_case.err" >&2
  done
fi
echo "benchmark: $bench_ok ok, $bench_fail failed, $bench_skipped skipped for time"
[ "$bench_fail$bench_skipped" != "00" ] && cur_note="$bench_ok ok, $bench_fail failed, $bench_skipped skipped"
setmeta bench "$bench_ok ok, $bench_fail failed, $bench_skipped skipped"

# ---------------------------------------------------------------------------------------------
# 5. PyTorch eager, the same work.
# ---------------------------------------------------------------------------------------------
step "PyTorch comparison"
: > "$OUT/torch.jsonl"
cap=$(cap_for 120)
torch_result="not run"
if [ "$cap" -lt 10 ]; then
  cur_note="skipped: out of time"
  torch_result="skipped: out of time"
  fail "PyTorch comparison skipped: out of time"
elif ! "$python" -c "import torch" 2> /dev/null; then
  cur_note="skipped: no torch"
  torch_result="skipped: $python has no torch"
  echo "$torch_result"
  [ "$dry" = 1 ] && echo "  (the dry run needs Debian's CPU torch: apt-get install python3-torch)"
  [ "$dry" = 0 ] && fail "no torch on the GPU machine's $python"
else
  PYTHONUNBUFFERED=1 timeout -k 10 "$cap" "$python" "$root/bench/compare_cuda_pytorch.py" "${torch_args[@]}" \
    > "$OUT/torch.jsonl" 2> "$scratch/torch.err"
  rc=$?
  cat "$OUT/torch.jsonl"
  cat "$scratch/torch.err"
  if [ "$rc" -eq 0 ] && grep -q '"median_ms"' "$OUT/torch.jsonl"; then
    torch_result="ok ($(grep -m1 -oE 'torch [0-9][^ ]*' "$scratch/torch.err"))"
  else
    torch_result="FAIL (rc $rc$(timed_out "$rc" && echo ", timed out after ${cap} s"))"
    grep -q '"skipped"' "$OUT/torch.jsonl" && torch_result="FAIL (torch sees no CUDA device)"
    cur_note="$torch_result"
    fail "PyTorch comparison: $torch_result"
    echo "FAIL  PyTorch comparison: $torch_result"
  fi
fi
setmeta torch "$torch_result"

# ---------------------------------------------------------------------------------------------
# 6. and 9. The table: results.md (ready for bench/RESULTS.md) and summary.json.
# ---------------------------------------------------------------------------------------------
write_table() {
  printf '%s\t%s\n' tests "$tests_pass ok, $tests_fail failed, $tests_total cases" >> "$meta"
  "$python" - "$OUT" "$meta" "$steps" "$scratch/sanitizer.tsv" "$status" << 'PY' \
    || echo "gpu-check: the table could not be written ($python failed)"
import json, os, sys

out, meta_path, steps_path, san_path, status = sys.argv[1:6]
meta, fails = {}, []
for line in open(meta_path):
    k, _, v = line.rstrip("\n").partition("\t")
    if k == "fail":
        fails.append(v)
    else:
        meta[k] = v  # the last value of a key wins


def rows(path):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return []
    return [line.split("\t") for line in lines if line.strip()]


def load(name):
    found = {}
    try:
        with open(os.path.join(out, name)) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if "name" in r and "median_ms" in r:
                        found[r["name"]] = r
    except OSError:
        pass
    return found


ours, torch = load("cuda_bench.jsonl"), load("torch.jsonl")
order = ["copy", "bce_dice_vg", "bce_dice_vg_stats_bce", "bce_dice_vg_tail_kernels",
         "bce_dice_vg_scalar_loads", "bce_dice_vg_forward_order", "bce_dice_vg_target_floats",
         "bce_dice_weighted_vg",
         "bce_dice_weighted_vg_stats_bce", "bce_vg", "bce_vg_scalar_loads", "soft_dice_vg",
         "soft_dice_vg_scalar_loads", "soft_dice_vg_forward_order", "soft_dice_vg_target_floats",
         "cross_entropy_vg", "cross_entropy_vg_registers", "cross_entropy_vg_tail_kernels",
         "cross_entropy_vg_label_reads", "cross_entropy_vg_label_grid",
         "cross_entropy_vg_quads", "cross_entropy_vg_c4", "cross_entropy_vg_one_pixel",
         "softmax_focal_vg", "softmax_focal_vg_one_pixel", "bce_vg_one_pixel",
         "softmax_dice_vg", "softmax_dice_vg_walk", "softmax_dice_vg_tail_kernels", "ce_dice_vg"]
names = [n for n in order if n in ours or n in torch]
names += sorted((set(ours) | set(torch)) - set(names))


def num(v, p):
    return ("%.*f" % (p, v)) if isinstance(v, (int, float)) else "-"


dry = meta.get("label", "GPU") != "GPU"
if meta.get("gpu", "").startswith("unknown"):  # nvidia-smi failed: the programs' own name
    named = [r.get("device") for r in list(ours.values()) + list(torch.values()) if r.get("device")]
    if named:
        meta["gpu"] = named[0] + " (as the programs name it; nvidia-smi failed)"
cases = []
for name in names:
    o, t = ours.get(name, {}), torch.get(name, {})
    ms, tms = o.get("median_ms"), t.get("median_ms")
    sp = tms / ms if ms and tms and name != "copy" else None
    cases.append({"name": name, "shape": o.get("shape") or t.get("shape"), "segloss_ms": ms,
                  "min_bytes": o.get("min_bytes"), "gb_per_s": o.get("gb_per_s"),
                  "fraction_of_copy": o.get("fraction_of_copy"), "torch_ms": tms,
                  "speedup": sp, "device": o.get("device") or t.get("device"),
                  "back_to_back_ms": o.get("back_to_back_ms"),
                  "back_to_back_fraction_of_copy": o.get("back_to_back_fraction_of_copy"),
                  "bytes_moved": o.get("bytes_moved"),
                  "moved_fraction_of_copy": o.get("moved_fraction_of_copy")})

# Issue 7's targets: BCE+Dice and cross_entropy (C = 21), value and gradient, each >= 0.75 of
# the copy bandwidth (min bytes, bench/cuda_bench.cu) and >= 3x PyTorch eager.
targets = []
for name, what in (("bce_dice_vg", "BCE+Dice value and gradient"),
                   ("cross_entropy_vg", "cross_entropy C = 21 value and gradient")):
    c = next((c for c in cases if c["name"] == name), {})
    fr, sp = c.get("fraction_of_copy"), c.get("speedup")
    ok_fr = None if fr is None else fr >= 0.75
    ok_sp = None if sp is None else sp >= 3.0
    word = lambda ok: "no data" if ok is None else ("PASS" if ok else "MISS")
    overall = "no data" if None in (ok_fr, ok_sp) else ("PASS" if ok_fr and ok_sp else "MISS")
    # bce_dice_vg may read its binary targets as bits in the gradient pass (session 17), so it
    # can move fewer bytes than min_bytes counts: quote the same call reading the targets in
    # both passes beside it (docs/cuda.md, "Binary targets as bits").
    floats = next((c for c in cases if c["name"] == name + "_target_floats"), {})
    targets.append({"name": name, "what": what, "fraction_of_copy": fr, "speedup": sp,
                    "bandwidth_target": word(ok_fr), "speedup_target": word(ok_sp),
                    "result": overall,
                    "target_floats_fraction_of_copy": floats.get("fraction_of_copy"),
                    "moved_fraction_of_copy": c.get("moved_fraction_of_copy")})

steps = [{"step": r[0], "seconds": int(r[1]), "note": r[2] if len(r) > 2 else ""}
         for r in rows(steps_path)]
sanitizer = [{"tool": r[0], "case": r[1], "result": r[2], "seconds": int(r[3])}
             for r in rows(san_path) if len(r) >= 4]

title = ("CUDA check: " + meta.get("label", "") if dry else "CUDA on " + meta.get("gpu", "?"))
md = []
md.append(f"## {title} ({meta.get('date', '?')})")
md.append("")
if dry:
    md.append("**EMULATOR DRY RUN: the CPU emulator and a CPU torch at tiny sizes; these numbers "
              "measure nothing and must not go to bench/RESULTS.md.**")
    md.append("")
md.append(f"GPU {meta.get('gpu', '?')}, driver {meta.get('driver', '?')}, nvcc "
          f"{meta.get('nvcc_binaries', '?')} (here: {meta.get('nvcc_here', '?')}), binaries "
          f"{meta.get('binaries', '?')}; PyTorch: {meta.get('torch', '?')}. segloss-cuda-bench: "
          "median of the timed calls (CUDA events, after a warm-up of at least 3 calls and 200 ms), value and gradient, float32, "
          "the value kept on the device; GB/s = minimum bytes (each input read once per pass "
          "the math needs, the gradient written once) / time; of copy = that over the "
          "device-to-device copy's (read + written) in the same process; back to back = the "
          "time per call of the timed calls enqueued without a wait (the host ahead of the GPU), "
          "of copy against the copy measured the same way; moved of copy = the same on the bytes "
          "the kernels move by their design (bytes_moved: more than the minimum where a pass "
          "reads the labels again or writes codes or bits, fewer where it reads binary targets "
          "as bits; bench/cuda_bench.cu).")
md.append("")
md.append("| case | shape | segloss ms | GB/s | of copy | moved of copy | back to back ms "
          "(of copy) | torch ms | speedup |")
md.append("|---|---|---|---|---|---|---|---|---|")
for c in cases:
    md.append(f"| {c['name']} | {c['shape'] or '-'} | {num(c['segloss_ms'], 3)} | "
              f"{num(c['gb_per_s'], 0)} | {num(c['fraction_of_copy'], 2)} | "
              f"{num(c['moved_fraction_of_copy'], 2)} | "
              f"{num(c['back_to_back_ms'], 3)} ({num(c['back_to_back_fraction_of_copy'], 2)}) | "
              f"{num(c['torch_ms'], 3)} | "
              f"{(num(c['speedup'], 2) + 'x') if c['speedup'] else '-'} |")
if not cases:
    md.append("| (no case finished) | | | | | | | | |")
md.append("")
for t in targets:
    md.append(f"- issue 7, {t['what']} ({t['name']}): **{t['result']}**; of copy "
              f"{num(t['fraction_of_copy'], 2)} (>= 0.75: {t['bandwidth_target']}), speedup "
              f"{num(t['speedup'], 2)}x (>= 3x: {t['speedup_target']}); on the bytes it moves: "
              f"of copy {num(t['moved_fraction_of_copy'], 2)}"
              + (f"; reading the targets in both passes ({t['name']}_target_floats): of copy "
                 f"{num(t['target_floats_fraction_of_copy'], 2)}"
                 if t["target_floats_fraction_of_copy"] is not None else ""))
md.append(f"- CUDA tests: {meta.get('tests', '?')} (one process: rc "
          f"{meta.get('one_process_rc', '-')}, {meta.get('one_process') or 'no doctest summary'})"
          f"; train_shapes: {meta.get('train_shapes', '-')}; "
          f"bench: {meta.get('bench', '-')}; sanitizer: {meta.get('sanitizer', 'not run')}")
md.append("- steps (s): " + ", ".join(f"{s['step']} {s['seconds']}"
                                      + (f" [{s['note']}]" if s['note'] != 'ok' else "")
                                      for s in steps))
if fails:
    md.append("- failures: " + "; ".join(dict.fromkeys(fails)))
text = "\n".join(md) + "\n"
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(text)
summary = {"label": meta.get("label"), "dry_run": dry, "date": meta.get("date"),
           "gpu": meta.get("gpu"), "driver": meta.get("driver"),
           "nvcc": meta.get("nvcc_binaries"), "nvcc_here": meta.get("nvcc_here"),
           "binaries": meta.get("binaries"), "status": int(status),
           "failures": list(dict.fromkeys(fails)), "tests": meta.get("tests"),
           "one_process_rc": meta.get("one_process_rc"),
           "one_process": meta.get("one_process"), "train_shapes": meta.get("train_shapes"),
           "bench": meta.get("bench"), "torch": meta.get("torch"), "cases": cases,
           "targets": targets, "sanitizer": sanitizer, "steps": steps,
           "budget_s": int(meta.get("budget_s", 0))}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(text)
PY
}
step "table"
write_table

# ---------------------------------------------------------------------------------------------
# 7. The per-case reruns, when the one-process run failed.
# ---------------------------------------------------------------------------------------------
if [ -n "$one_process_rc" ] && [ "$one_process_rc" != 0 ] && [ "$one_process_rc" != skipped ]; then
  step "CUDA tests, a process per case"
  # First the cases that reported an error (a crash is reported as the case's FATAL ERROR, and
  # doctest also prints that case's duration line), then the first case without a duration line
  # (the one running when a hang was killed, or the next one after a crash: harmless), then the
  # rest in order.
  failed_cases "$scratch/one_process.log" > "$scratch/first.txt"
  sed -nE 's/^[0-9.]+ s: //p' "$scratch/one_process.log" > "$scratch/finished.txt"
  grep -vxF -f "$scratch/finished.txt" "$cases" | head -1 >> "$scratch/first.txt"
  { cat "$scratch/first.txt"; cat "$cases"; } | awk 'NF && !seen[$0]++' > "$scratch/rerun.txt"
  not_rerun=0
  while IFS= read -r name; do
    cap=$(cap_for 60)
    if [ "$cap" -lt 10 ]; then
      not_rerun=$((not_rerun + 1))
      continue
    fi
    # doctest's -tc takes a comma-separated list of patterns: a comma in a name is escaped.
    pattern=${name//,/\\,}
    start=$(date +%s.%N)
    run_bin timeout -k 10 "$cap" "$tests_bin" -tc="$pattern" < /dev/null > "$scratch/case.log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    ran=$(grep -E '^\[doctest\] test cases:' "$scratch/case.log" | grep -oE '[0-9]+ passed' | head -1)
    { echo "=== $name (rc $rc)"; cat "$scratch/case.log"; } >> "$OUT/tests.log"
    if [ "$rc" -eq 0 ] && [ "$ran" != "0 passed" ]; then
      tests_pass=$((tests_pass + 1))
      printf 'ok    %5ss  %s\n' "$secs" "$name"
    else
      tests_fail=$((tests_fail + 1))
      failed+=("$name")
      why="rc $rc"
      timed_out "$rc" && why="timeout after ${cap} s"
      [ "$rc" -gt 128 ] && [ "$rc" -ne 137 ] && why="signal $((rc - 128))"
      grep -q "CRASHED" "$scratch/case.log" && why="$why, crashed"
      [ "$ran" = "0 passed" ] && [ "$rc" -eq 0 ] && why="no test case matched the name"
      printf 'FAIL  %5ss  %s  (%s)\n' "$secs" "$name" "$why"
      grep -E "ERROR|FATAL|THREW|CHECK|REQUIRE|values:|logged:|failed:" "$scratch/case.log" | head -8 \
        | sed 's/^/        /'
    fi
  done < "$scratch/rerun.txt"
  echo "CUDA tests apart: $tests_pass ok, $tests_fail failed, $not_rerun not rerun (out of time), $tests_total in all"
  [ "$not_rerun" -gt 0 ] && cur_note="$not_rerun not rerun: out of time"
  if [ "$tests_fail" -eq 0 ] && [ "$not_rerun" -eq 0 ]; then
    echo "FAIL  the one-process run failed (rc $one_process_rc) but every case passed alone:" \
      "an order-dependent failure (tests.log)"
  fi
  for n in "${failed[@]+"${failed[@]}"}"; do
    echo "  failed: $n"
    fail "test case failed: $n"
  done
fi

# ---------------------------------------------------------------------------------------------
# 8. compute-sanitizer (optional): memcheck and racecheck, one case per kernel family.
# ---------------------------------------------------------------------------------------------
: > "$scratch/sanitizer.tsv"
: > "$OUT/sanitizer.log"
sanitizer_cases=(
  'cuda cross_entropy: CPU parity, float, C = 21, 2D, int64 and int32 labels'
  "cuda bce_dice: CPU parity with both terms' options (float and double)"
  'cuda softmax overlap: C = 1, C = 21, C = 200, a 1x1 image, several blocks per image'
  'cuda lovasz_softmax: CPU parity, every form, reduction and class option<float>'
  'cuda confusion_matrix: label maps equal the CPU, int32/int64, C = 1 to 150'
  'cuda tape: softmax and log_softmax on CUDA equal the CPU tape, bitwise on repeat'
  "cuda distance_transform: the CPU's values bit for bit (float, double, int32, int64)"
)
sanitizer_summary="not run"
if [ "${GPU_CHECK_SANITIZER:-1}" = 0 ]; then
  sanitizer_summary="skipped: GPU_CHECK_SANITIZER=0"
  echo "compute-sanitizer: $sanitizer_summary"
elif [ "$(left)" -le $((90 + reserve)) ]; then
  sanitizer_summary="skipped: $(left) s left (it runs with more than $((90 + reserve)))"
  echo "compute-sanitizer: $sanitizer_summary"
elif [ "$have_bins" = 0 ]; then
  sanitizer_summary="skipped: no binaries"
else
  step "compute-sanitizer (optional)"
  san=$(command -v compute-sanitizer || true)
  for c in "$(dirname "$nvcc_bin")/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
      /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    if [ -z "$san" ] && [ -x "$c" ]; then san=$c; fi
  done
  # The real test binary, not the dry run's stand-in. The dry run has no GPU for a sanitizer:
  # a stand-in compute-sanitizer runs the emulator binary and answers as the real one does,
  # memcheck "0 errors" (but 3 errors for the Lovász case) and racecheck a refusal, so that the
  # clean, the error and the "not available" paths all run.
  san_bin="$tests_real"
  if [ "$dry" = 1 ]; then
    san="$scratch/compute-sanitizer-dry"
    cat > "$san" << 'EOF'
#!/usr/bin/env bash
tool=$2
shift 4  # --tool NAME --error-exitcode N
if [ "$tool" = racecheck ]; then
  # racecheck's own summary line; a refusal for one case, a race for another.
  case "$*" in *confusion_matrix*) echo "========= Error: Device not supported (dry run stand-in)"; exit 1 ;; esac
  "$@"
  rc=$?
  case "$*" in *tape*) echo "========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings) (dry run stand-in)"; exit 99 ;; esac
  echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings) (dry run stand-in)"
  exit $rc
fi
"$@"
rc=$?
case "$*" in *lovasz*) echo "========= ERROR SUMMARY: 3 errors (dry run stand-in)"; exit 99 ;; esac
echo "========= ERROR SUMMARY: 0 errors (dry run stand-in)"
exit $rc
EOF
    chmod +x "$san"
  fi
  if [ -z "$san" ]; then
    sanitizer_summary="not available (no compute-sanitizer)"
  else
    # The cases must still exist by these names.
    run_bin timeout -k 5 60 "$san_bin" -ltc -tc='*cuda*' 2> /dev/null | grep -v -E '^\[doctest\]|^=+$' > "$scratch/all_cases.txt"
    n_err=0
    n_clean=0
    n_na=0
    n_skip=0
    # At most 180 s in all (GPU_CHECK_SANITIZER_S): the rest of the lease may have other uses.
    san_deadline=$(($(date +%s) + ${GPU_CHECK_SANITIZER_S:-180}))
    for tool in memcheck racecheck; do
      for name in "${sanitizer_cases[@]}"; do
        if ! grep -qxF "$name" "$scratch/all_cases.txt"; then
          printf '%s\t%s\t%s\t0\n' "$tool" "$name" "no such test case (renamed?)" >> "$scratch/sanitizer.tsv"
          echo "sanitizer $tool: no test case named '$name'"
          continue
        fi
        cap=$(cap_for 45)
        [ "$((san_deadline - $(date +%s)))" -lt "$cap" ] && cap=$((san_deadline - $(date +%s)))
        if [ "$cap" -lt 15 ]; then
          n_skip=$((n_skip + 1))
          printf '%s\t%s\t%s\t0\n' "$tool" "$name" "skipped: out of time" >> "$scratch/sanitizer.tsv"
          continue
        fi
        start=$(date +%s)
        run_bin timeout -k 10 "$cap" "$san" --tool "$tool" --error-exitcode 99 \
          "$san_bin" -tc="${name//,/\\,}" > "$scratch/san.log" 2>&1
        rc=$?
        secs=$(($(date +%s) - start))
        { echo "=== $tool: $name (rc $rc, $secs s)"; cat "$scratch/san.log"; } >> "$OUT/sanitizer.log"
        # memcheck ends with "ERROR SUMMARY: N errors"; racecheck with "RACECHECK SUMMARY: N
        # hazards displayed (E errors, W warnings)" (E counts; warnings are reported, not failed).
        # A refusal of the device (the gVisor runtime: "Device not supported", then error 999)
        # is "not available" whatever else it prints; exit status 99 (--error-exitcode) is a
        # finding even if no summary was parsed.
        errors=""
        if grep -qE "Device not supported|error 999|CUDA_ERROR_NOT_SUPPORTED" "$scratch/san.log"; then
          errors=""
        elif [ "$tool" = racecheck ]; then
          summary_line=$(grep -E "RACECHECK SUMMARY: [0-9]+ hazard" "$scratch/san.log" | tail -1)
          [ -n "$summary_line" ] && errors=$(echo "$summary_line" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+' | head -1)
          [ -n "$summary_line" ] && [ -z "$errors" ] && errors=0
        else
          summary_line=$(grep -E "ERROR SUMMARY: [0-9]+ error" "$scratch/san.log" | tail -1)
          errors=$(echo "$summary_line" | grep -oE '[0-9]+' | head -1)
        fi
        if [ "$rc" -eq 99 ] && { [ -z "$errors" ] || [ "$errors" -eq 0 ]; } \
            && ! grep -qE "Device not supported|error 999" "$scratch/san.log"; then
          errors="some"  # the sanitizer's error exit status without a summary we could read
        fi
        if [ "$errors" = some ] || { [ -n "$errors" ] && [ "$errors" -gt 0 ]; }; then
          result="$errors errors"
          n_err=$((n_err + 1))
          fail "compute-sanitizer $tool: $errors errors in '$name'"
        elif [ -n "$errors" ] && [ "$rc" -eq 0 ]; then
          result="0 errors"
          n_clean=$((n_clean + 1))
        elif timed_out "$rc"; then
          result="timed out after ${cap} s (not a finding)"
          n_na=$((n_na + 1))
        elif [ -n "$errors" ]; then
          result="0 errors, but the test failed under the sanitizer (rc $rc)"
          n_na=$((n_na + 1))
        else
          # No summary: the sanitizer refused to run (no device, unsupported, ...).
          result="not available: $(grep -m1 -E 'Error|error|not supported|failed' "$scratch/san.log" | cut -c1-120)"
          n_na=$((n_na + 1))
        fi
        printf 'sanitizer %-9s %4ss  %s: %s\n' "$tool" "$secs" "$name" "$result"
        printf '%s\t%s\t%s\t%s\n' "$tool" "$name" "$result" "$secs" >> "$scratch/sanitizer.tsv"
        # A sanitizer that refuses the first case refuses every case: stop asking.
        case "$result" in not\ available*) [ "$n_clean$n_err" = 00 ] && break 2 ;; esac
      done
    done
    sanitizer_summary="$n_clean clean, $n_err with errors, $n_na not available or timed out, $n_skip skipped for time"
  fi
  echo "compute-sanitizer: $sanitizer_summary"
  cur_note="$sanitizer_summary"
fi
setmeta sanitizer "$sanitizer_summary"

# ---------------------------------------------------------------------------------------------
# 9. The table again, with everything that finished; the files under $OUT.
# ---------------------------------------------------------------------------------------------
step ""
write_table
n_files=$(find "$OUT" -type f | wc -l)
bad=$(find "$OUT" -mindepth 1 | sed "s|^$OUT/||" | grep -vE '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,2}$' || true)
if [ "$n_files" -gt 8 ] || [ -n "$bad" ]; then
  echo "WARNING: \$OUT holds $n_files files (the device tool brings back 8)${bad:+; odd names: $bad}"
fi
ts "gpu-check: done (status $status, $(($(date +%s) - t0)) s of the $budget s budget; $label)"
ls -l "$OUT" | tail -n +2 | awk '{print "  " $5 "  " $9}'
if [ "$dry" = 1 ]; then
  # The dry run checks its own plumbing: exactly the planted failures (the one-process run, one
  # failing case, one crashing case by signal 11), everything else ok, and the files written.
  problems=()
  [ "$n_files" -le 8 ] || problems+=("$n_files files under \$OUT")
  for f in gpu-check.log tests.log cuda_bench.jsonl torch.jsonl results.md summary.json; do
    [ -s "$OUT/$f" ] || problems+=("$f missing or empty")
  done
  "$python" - "$OUT/summary.json" "$dry_fail" "$dry_crash" "${SEGLOSS_GPU_CHECK_DRY_HANG:-0}" \
    > "$scratch/dry_check.txt" 2>&1 << 'PY' || problems+=("$(cat "$scratch/dry_check.txt")")
import json, sys
s = json.load(open(sys.argv[1]))
fail_case, crash_case, hang = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
expect = {"test case failed: " + fail_case, "test case failed: " + crash_case,
          "compute-sanitizer memcheck: 3 errors in 'cuda lovasz_softmax: CPU parity, every form, "
          "reduction and class option<float>'",
          "compute-sanitizer racecheck: 2 errors in 'cuda tape: softmax and log_softmax on CUDA "
          "equal the CPU tape, bitwise on repeat'"}
expect.add("the one-process CUDA test run failed (timed out after %s s)" % "X" if hang else
           "the one-process CUDA test run failed (rc 1)")
got = set(s["failures"])
if hang:
    got = {g if not g.startswith("the one-process CUDA test run failed (timed out") else
           "the one-process CUDA test run failed (timed out after X s)" for g in got}
bad = []
if got != expect:
    bad.append("failures %s, expected %s" % (sorted(got), sorted(expect)))
names = {c["name"] for c in s["cases"] if c["segloss_ms"] is not None and c["torch_ms"] is not None}
want = {"copy", "bce_dice_vg", "bce_vg", "soft_dice_vg", "cross_entropy_vg", "softmax_dice_vg", "ce_dice_vg"}
if names != want:
    bad.append("cases with both timings %s, expected %s" % (sorted(names), sorted(want)))
if [t["result"] for t in s["targets"]] != ["MISS", "MISS"]:
    bad.append("targets %s (the emulator cannot reach them)" % [t["result"] for t in s["targets"]])
if not s["dry_run"] or s["status"] != 1:
    bad.append("dry_run %s, status %s" % (s["dry_run"], s["status"]))
san = [(x["tool"], x["result"].split(":")[0]) for x in s["sanitizer"]]
results = {}
for tool, res in san:
    results.setdefault(tool, []).append(res)
if (results.get("memcheck", []) != ["0 errors"] * 3 + ["3 errors"] + ["0 errors"] * 3
        or results.get("racecheck", []) != ["0 errors"] * 4 + ["not available", "2 errors",
                                                                "0 errors"]):
    bad.append("sanitizer results %s" % results)
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
  grep -q "FAIL .*$dry_crash  (signal 11)" "$OUT/gpu-check.log" || problems+=("the planted crash was not reported as signal 11")
  if [ "${#problems[@]}" -eq 0 ]; then
    echo "dry run: the plumbing works (the planted failure and crash were found, every other step ran; status 1 is the planted failures')"
    exit 0
  fi
  printf 'dry run: PLUMBING PROBLEM: %s\n' "${problems[@]}"
  exit 1
fi
exit $status
