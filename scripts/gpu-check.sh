#!/usr/bin/env bash
# The CUDA check for a GPU machine (issue 7), run from the repository root:
#     bash scripts/gpu-check.sh
# It needs nvcc, cmake, a C++ compiler and python3 with PyTorch (CUDA), and .deps/ filled by
# scripts/gpu-deps.sh on a machine with Eigen and doctest (the GPU machine has neither and no
# network). Steps, each timestamped: configure with -DSEGLOSS_CUDA=ON against .deps, build the
# tests and the CUDA benchmark (-j16), run the CUDA tests (segloss-tests -tc='*cuda*'), the
# benchmark (bench/cuda_bench.cu) and the PyTorch comparison (bench/compare_cuda_pytorch.py),
# then print a table. Writes under $OUT (default build-gpu/out): gpu-check.log, tests.log,
# cuda_bench.jsonl, torch.jsonl, summary.json. Meant to finish in under 5 minutes.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="$root/build-gpu"
OUT=${OUT:-$build/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
ts() { echo "[$(date -u +%H:%M:%S)] $*"; }
status=0

ts "gpu-check: start"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 || true
nvcc --version | tail -2
if [ ! -d "$root/.deps" ]; then
  echo "gpu-check: .deps/ is missing: run scripts/gpu-deps.sh where Eigen and doctest are installed"
  exit 1
fi

ts "configure"
configure() {
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGLOSS_CUDA=ON \
    -DCMAKE_PREFIX_PATH="$root/.deps" -DSEGLOSS_BUILD_TOOLS=OFF -DSEGLOSS_BUILD_EXAMPLES=OFF "$@" \
    > "$OUT/configure.txt" 2>&1
}
if ! configure; then
  echo "gpu-check: configure failed; retrying without OpenMP"
  configure -DSEGLOSS_OPENMP=OFF || { tail -30 "$OUT/configure.txt"; exit 1; }
fi
grep "segloss:" "$OUT/configure.txt"
rm -f "$OUT/configure.txt"

ts "build (segloss-tests, segloss-cuda-bench)"
if ! cmake --build "$build" -j16 --target segloss-tests segloss-cuda-bench > "$OUT/tests.log" 2>&1; then
  grep -E "error|Error" -A3 "$OUT/tests.log" | head -60
  exit 1
fi

ts "CUDA tests"
if ! "$build/tests/segloss-tests" -tc='*cuda*' --duration=true >> "$OUT/tests.log" 2>&1; then
  status=1
fi
grep -E "skipped|ERROR|FAILED|test cases" "$OUT/tests.log" | tail -25

ts "benchmark (segloss-cuda-bench)"
timeout 120 "$build/bench/segloss-cuda-bench" --reps 20 | tee "$OUT/cuda_bench.jsonl" || status=1

ts "PyTorch comparison"
PYTHONUNBUFFERED=1 timeout 120 python3 "$root/bench/compare_cuda_pytorch.py" --reps 20 \
  | tee "$OUT/torch.jsonl" || status=1

ts "table"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(name):
    rows = {}
    try:
        with open(os.path.join(out, name)) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    r = json.loads(line)
                    rows[r["name"]] = r
    except OSError:
        pass
    return rows
ours, torch = load("cuda_bench.jsonl"), load("torch.jsonl")
table = []
print(f"{'case':18} {'segloss ms':>11} {'of copy':>8} {'torch ms':>9} {'speedup':>8}")
for name in sorted(set(ours) | set(torch)):
    o, t = ours.get(name, {}), torch.get(name, {})
    ms, tms = o.get("median_ms"), t.get("median_ms")
    frac = o.get("fraction_of_copy")
    sp = tms / ms if ms and tms else None
    table.append({"name": name, "segloss_ms": ms, "fraction_of_copy": frac, "torch_ms": tms,
                  "speedup": sp, "device": o.get("device") or t.get("device"),
                  "shape": o.get("shape") or t.get("shape")})
    f = lambda v, p: ("%.*f" % (p, v)) if isinstance(v, (int, float)) else "-"
    print(f"{name:18} {f(ms, 3):>11} {f(frac, 2):>8} {f(tms, 3):>9} {f(sp, 2):>8}")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(table, f, indent=1)
PY
ts "gpu-check: done (status $status)"
exit $status
