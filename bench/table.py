"""Makes the markdown table of bench/RESULTS.md from the JSON lines of the benchmark tools.

Input: files of JSON lines (one object per line; other lines are skipped), in any order:
  segloss-bench's   {"name", "shape", "threads", "median_ms", "floor_ms", "ratio_to_floor",
                     "peak_extra_bytes", ["baseline"]}
  compare_pytorch.py's and compare_numpy.py's   {"name", "shape", "threads", "median_ms", "impl"}
A line with "floor_ms" is segloss's; one with "impl" a reference's (the impl text says numpy
for compare_numpy's confusion-matrix lines: they are named "numpy" in the notes). Lines are
paired by (name, shape, threads); when a key appears twice, the last line wins.

Output (stdout): a header line (date, machine, commit), the table
  | case | shape | threads | segloss ms | floor ms | ratio to floor | peak extra | PyTorch ms |
  | speedup | targets |
in segloss-bench's order, and a summary of the targets met and missed. The targets of issue 10,
judged on the 2-thread lines:
  floor    a fused loss <= 2.0x its floor, <= 2.5x for a loss with a statistics pass (the
           Dice/Jaccard/Tversky family, generalized Dice, the combinations with them, the
           statistics/finalize splits); the Lovasz losses are bound by their sorts and the
           metrics have no floor target (shown as "-");
  speedup  a fused loss >= 5x faster than the reference on the CPU (where there is one);
  scaling  on the larger shapes (every shape but the binary 2D (8,1,512,512)), the 2-thread
           throughput >= 1.7x the 1-thread one (1-thread ms / 2-thread ms);
  memory   peak_extra_bytes is O(N*C): "O(px)" marks a loss whose extra bytes exceed 1% of its
           logits' bytes (numel of the shape * 4); the metrics' bytes are shown, not judged
           (the confusion matrix keeps C^2 counts per thread, the EDT returns its output).
The tape lines ("baseline": "fused") are judged against issue 5's 1.05 (tape_node) or not at all
(composed).

Usage:
    build/bench/segloss-bench --threads 1,2 > seg.jsonl
    /usr/bin/python3 bench/compare_pytorch.py --threads 1,2 > torch.jsonl
    /usr/bin/python3 bench/compare_numpy.py --threads 1,2 > numpy.jsonl
    python3 bench/table.py seg.jsonl torch.jsonl numpy.jsonl [--commit abc1234] [--machine text]
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

METRICS = ("dice_score", "confusion_matrix", "mean_iou", "per_image_scores", "boundary_weights",
           "hd95", "distance_transform", "surface_distance")
STATISTICS = ("dice", "jaccard", "tversky", "carvana", "_split")
SORTS = ("lovasz",)
BINARY_2D = "(8,1,512,512)"


def kind(name):
    if name.startswith(METRICS):
        return "metric"
    if any(s in name for s in SORTS):
        return "sort"
    if any(s in name for s in STATISTICS):
        return "statistics"
    return "single"


def numel(shape):
    n = 1
    for d in shape.strip("()").split(","):
        if d:
            n *= int(d)
    return n


def read(paths):
    seg, ref, order = {}, {}, []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue
                key = (d.get("name"), d.get("shape"), d.get("threads"))
                if "floor_ms" in d:
                    if key not in seg:
                        order.append(key)
                    seg[key] = d
                elif "impl" in d:
                    ref[key] = d
    return seg, ref, order


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores" % (model, os.cpu_count() or 0)


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt_bytes(b):
    if b is None:
        return "-"
    if b < 1024:
        return "%d B" % b
    if b < 1024 * 1024:
        return "%.1f KiB" % (b / 1024)
    return "%.1f MiB" % (b / (1024 * 1024))


def fmt_ms(ms):
    return "%.2f" % ms if ms < 100 else "%.1f" % ms


def judge(d, seg, ref):
    """The target marks of one segloss line, and a list of (target, met) for the summary."""
    name, shape, threads = d["name"], d["shape"], d["threads"]
    marks, results = [], []
    extra = d.get("peak_extra_bytes")
    if extra is not None and kind(name) != "metric" and d.get("baseline") is None:
        grows = extra > 0.01 * numel(shape) * 4
        if grows:
            marks.append("O(px)")
        results.append(("memory", not grows))
    if threads != 2:
        return marks, results
    k = kind(name)
    ratio = d["ratio_to_floor"]
    if d.get("baseline") == "fused":
        if name.startswith("tape_node"):
            ok = ratio <= 1.05
            marks.append("tape <= 1.05 %s" % ("met" if ok else "missed"))
            results.append(("tape", ok))
    elif k in ("single", "statistics"):
        bound = 2.0 if k == "single" else 2.5
        ok = ratio <= bound
        marks.append("floor <= %.1f %s" % (bound, "met" if ok else "missed"))
        results.append(("floor", ok))
    r = ref.get((name, shape, threads))
    if r is not None and k != "metric" and d.get("baseline") is None:
        ok = r["median_ms"] / d["median_ms"] >= 5.0
        marks.append(">= 5x %s" % ("met" if ok else "missed"))
        results.append(("speedup", ok))
    one = seg.get((name, shape, 1))
    if shape != BINARY_2D and one is not None and d.get("baseline") is None:
        scale = one["median_ms"] / d["median_ms"]
        ok = scale >= 1.7
        marks.append("scaling %.2fx %s" % (scale, "met" if ok else "missed"))
        results.append(("scaling", ok))
    return marks, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="files of JSON lines")
    ap.add_argument("--commit", default=None, help="commit to name (default: git HEAD)")
    ap.add_argument("--machine", default=None, help="machine to name (default: /proc/cpuinfo)")
    args = ap.parse_args()
    seg, ref, order = read(args.files)
    if not seg:
        sys.exit("table.py: no segloss-bench lines (with floor_ms) in " + ", ".join(args.files))

    print("Run of %s on %s, commit %s." % (datetime.date.today().isoformat(),
                                          args.machine or machine(), args.commit or commit()))
    print()
    print("| case | shape | threads | segloss ms | floor ms | ratio to floor | peak extra "
          "| PyTorch ms | speedup | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for key in order:
        d = seg[key]
        r = ref.get(key)
        marks, results = judge(d, seg, ref)
        for target, ok in results:
            met, missed = summary.get(target, (0, 0))
            summary[target] = (met + ok, missed + (not ok))
        ref_ms = "-"
        speed = "-"
        if r is not None:
            ref_ms = fmt_ms(r["median_ms"]) + (" (numpy)" if "np." in r.get("impl", "") or
                                               "_fast_hist" in r.get("impl", "") else "")
            speed = "%.1fx" % (r["median_ms"] / d["median_ms"])
        floor_note = " (fused)" if d.get("baseline") == "fused" else ""
        print("| %s | %s | %d | %s | %s%s | %.2f | %s | %s | %s | %s |" % (
            d["name"], d["shape"], d["threads"], fmt_ms(d["median_ms"]), fmt_ms(d["floor_ms"]),
            floor_note, d["ratio_to_floor"], fmt_bytes(d.get("peak_extra_bytes")), ref_ms, speed,
            "; ".join(marks) if marks else "-"))
    print()
    names = {"floor": "floor ratio (2 threads)", "speedup": ">= 5x the reference (2 threads)",
             "scaling": "2-thread scaling >= 1.7x", "memory": "peak extra O(N*C) (losses)",
             "tape": "tape overhead <= 1.05"}
    for target in ("floor", "speedup", "scaling", "memory", "tape"):
        if target in summary:
            met, missed = summary[target]
            print("- %s: %d met, %d missed" % (names[target], met, missed))


if __name__ == "__main__":
    main()
