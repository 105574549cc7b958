#!/usr/bin/env bash
# Training throughput, flexnas (C++) against python/flexnas_torch.py (Debian's PyTorch 1.13) on the
# same model, batch and optimiser, measured in the same run, one process per configuration (peak
# memory is per process).
# Usage: bench/train_bench.sh [BUILD_DIR] [STEPS] [VOCAB] [RUNS] [SHAPES]
#   BUILD_DIR default build; STEPS timed steps per configuration (default 10); VOCAB default 8000;
#   RUNS repetitions of the whole interleaved sweep (default 1); SHAPES default "bert-tiny flexibert-mini".
# Prints one JSON line per measurement and a table: best-of and median tokens/s over the runs, the
# flexnas / Python ratios of both, CPU ms per step, minor page faults per step and peak memory.
#
# Threads: both sides get the same core budget. T threads = T LibTorch intra-op threads AND
# OPENBLAS_NUM_THREADS=T. flexnas sets OpenBLAS's pool itself (models::set_compute_threads); the
# Python peer gets it from the environment, because torch.set_num_threads leaves OpenBLAS's pool at
# every core (without it, Python's "1 thread" runs its matrix products on 2 cores). OMP_WAIT_POLICY
# is passed through unchanged to both (see bench/RESULTS-training.md for its effect).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
steps="${2:-10}"
vocab="${3:-8000}"
runs="${4:-1}"
shapes="${5:-bert-tiny flexibert-mini}"
bench="$build/bench/train_bench"
[ -x "$bench" ] || { echo "train_bench.sh: $bench not built (ninja -C $build train_bench)" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c "import torch" 2>/dev/null || { echo "train_bench.sh: $py cannot import torch (apt install python3-torch)" >&2; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}" >&2
for shape in $shapes; do
  "$bench" --shape "$shape" --vocab "$vocab" --steps 0 --warmup 0 --save "$work/$shape" > /dev/null
done
for run in $(seq 1 "$runs"); do
  for shape in $shapes; do
    for threads in 1 2; do
      run_cpp() { OPENBLAS_NUM_THREADS=$threads "$bench" --shape "$shape" --vocab "$vocab" --threads "$threads" --steps "$steps" | tee -a "$results"; }
      run_py() { OPENBLAS_NUM_THREADS=$threads "$py" "$here/train_bench.py" --checkpoint "$work/$shape" --shape "$shape" --threads "$threads" --steps "$steps" | tee -a "$results"; }
      # Alternate the order so neither side always runs first.
      if [ $(( (run + threads) % 2 )) = 0 ]; then run_cpp; run_py; else run_py; run_cpp; fi
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$py" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def pick(impl, shape, threads):
    return [r for r in rows if r["impl"] == impl and r["shape"] == shape and r["threads"] == threads]
print("\n%-15s %3s %4s | %9s %9s | %9s %9s | %6s %6s | %7s %7s | %7s %7s | %5s %5s"
      % ("shape", "thr", "runs", "C++ best", "Py best", "C++ med", "Py med", "best", "median",
         "C++ cpu", "Py cpu", "C++ flt", "Py flt", "C MiB", "P MiB"))
seen = []
for r in rows:
    key = (r["shape"], r["threads"])
    if key in seen:
        continue
    seen.append(key)
    c, p = pick("flexnas", *key), pick("python", *key)
    if not c or not p:
        continue
    ct, pt = [x["tokens_per_second"] for x in c], [x["tokens_per_second"] for x in p]
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    print("%-15s %3d %4d | %9.0f %9.0f | %9.0f %9.0f | %5.2fx %5.2fx | %7.0f %7.0f | %7.0f %7.0f | %5.0f %5.0f"
          % (key[0], key[1], len(ct), max(ct), max(pt), statistics.median(ct), statistics.median(pt),
             max(ct) / max(pt), statistics.median(ct) / statistics.median(pt),
             med(c, "cpu_ms_per_step"), med(p, "cpu_ms_per_step"), med(c, "faults_per_step"), med(p, "faults_per_step"),
             max(x["peak_rss_mib"] for x in c), max(x["peak_rss_mib"] for x in p)))
print("(tokens/s; cpu = CPU ms per step, flt = minor page faults per step, medians; MiB = peak RSS)")
PY
