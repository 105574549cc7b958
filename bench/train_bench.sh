#!/usr/bin/env bash
# Training throughput, flexnas (C++) against python/flexnas_torch.py (Debian's PyTorch 1.13) on the
# same model, batch and optimiser, measured in the same run, one process per configuration (peak
# memory is per process). Usage: bench/train_bench.sh [BUILD_DIR] [STEPS] [VOCAB]
#   BUILD_DIR default build; STEPS timed steps per configuration (default 10); VOCAB default 8000.
# Prints one JSON line per measurement and a table with the flexnas / Python ratio.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
steps="${2:-10}"
vocab="${3:-8000}"
bench="$build/bench/train_bench"
[ -x "$bench" ] || { echo "train_bench.sh: $bench not built (ninja -C $build train_bench)" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c "import torch" 2>/dev/null || { echo "train_bench.sh: $py cannot import torch (apt install python3-torch)" >&2; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
for shape in bert-tiny flexibert-mini; do
  "$bench" --shape "$shape" --vocab "$vocab" --steps 0 --warmup 0 --save "$work/$shape" > /dev/null
  for threads in 1 2; do
    # Alternate the order so neither side always runs first.
    run_cpp() { "$bench" --shape "$shape" --vocab "$vocab" --threads "$threads" --steps "$steps" | tee -a "$results"; }
    run_py() { "$py" "$here/train_bench.py" --checkpoint "$work/$shape" --shape "$shape" --threads "$threads" --steps "$steps" | tee -a "$results"; }
    if [ "$threads" = 1 ]; then run_cpp; run_py; else run_py; run_cpp; fi
  done
done
"$py" - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n%-15s %7s %12s %12s %7s %11s %11s" % ("shape", "threads", "flexnas t/s", "python t/s", "ratio", "flexnas MiB", "python MiB"))
for r in rows:
    if r["impl"] != "flexnas":
        continue
    p = next(x for x in rows if x["impl"] == "python" and x["shape"] == r["shape"] and x["threads"] == r["threads"])
    print("%-15s %7d %12.0f %12.0f %6.2fx %11.0f %11.0f" % (r["shape"], r["threads"], r["tokens_per_second"],
          p["tokens_per_second"], r["tokens_per_second"] / p["tokens_per_second"], r["peak_rss_mib"], p["peak_rss_mib"]))
PY
