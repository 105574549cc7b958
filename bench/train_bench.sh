#!/usr/bin/env bash
# Training throughput, flexnas (C++) against python/flexnas_torch.py (Debian's PyTorch 1.13) on the
# same model, batch and optimiser, in fp32 and in bf16 (autocast on both sides), measured in the same
# run, one process per configuration (peak memory is per process).
# Usage: bench/train_bench.sh [BUILD_DIR] [STEPS] [VOCAB] [RUNS] [SHAPES] [PRECISIONS]
#   BUILD_DIR default build; STEPS timed steps per configuration (default 10); VOCAB default 8000;
#   RUNS repetitions of the whole interleaved sweep (default 1); SHAPES default "bert-tiny flexibert-mini"
#   (any --shape that build/bench/train_bench knows); PRECISIONS default "fp32 bf16".
#   THREADS (environment) the thread counts to sweep, default "1 2".
# Prints one JSON line per measurement and three tables: (1) per shape, threads and precision the
# best-of and median tokens/s over the runs, the flexnas / Python ratios of both, CPU ms per step,
# minor page faults per step and peak memory; (2) achieved GFLOP/s of both sides next to the
# matrix-multiply peak `flexnas device --peak` measured in the same precision at the same thread
# count (once per run and thread count, best of the runs shown), and how many of Python's matrix
# products / convolutions ran in fp32 (under bf16 a non-zero count is a fallback); (3) each side's
# best path (its fastest precision) against the other's.
#
# Achieved FLOP/s = 3 x forward FLOPs per step / step time, the forward FLOPs from
# `flexnas model info` (2 per multiply-add of every matrix product and convolution): the encoder's
# per-token FLOPs for every token plus the MLM head's per-token FLOPs for the labelled tokens only
# (the training step runs the head on those alone; counting it for every token would overstate
# the rate several-fold at vocabulary 8000). Elementwise work, LayerNorm, softmax and the optimiser
# are not counted.
#
# Threads: both sides get the same core budget. T threads = T LibTorch intra-op threads AND
# OPENBLAS_NUM_THREADS=T. flexnas sets OpenBLAS's pool itself (models::set_compute_threads); the
# Python peer gets it from the environment, because torch.set_num_threads leaves OpenBLAS's pool at
# every core (without it, Python's "1 thread" runs its matrix products on 2 cores). OMP_WAIT_POLICY
# is passed through unchanged to both (see bench/RESULTS-training.md for its effect).
#
# BLAS kernel: both sides must run the same OpenBLAS kernel. The kernel `flexnas device --json`
# reports (blas_kernel: the one flexnas's compute commands run, after replacing a generic pick on
# CPUs OpenBLAS does not know; an OPENBLAS_CORETYPE already set is kept) is exported as
# OPENBLAS_CORETYPE for train_bench, the Python peer and the peak measurement. The Python rows
# report the kernel they ran (blas_kernel); a mismatch is printed under the tables.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
steps="${2:-10}"
vocab="${3:-8000}"
runs="${4:-1}"
shapes="${5:-bert-tiny flexibert-mini}"
precisions="${6:-fp32 bf16}"
thread_counts="${THREADS:-1 2}"
bench="$build/bench/train_bench"
flexnas="$build/bin/flexnas"
[ -x "$bench" ] || { echo "train_bench.sh: $bench not built (ninja -C $build train_bench)" >&2; exit 2; }
[ -x "$flexnas" ] || { echo "train_bench.sh: $flexnas not built (ninja -C $build flexnas)" >&2; exit 2; }
for p in $precisions; do
  case "$p" in fp32|bf16) ;; *) echo "train_bench.sh: unknown precision '$p' (allowed: fp32, bf16)" >&2; exit 2;; esac
done
py=/usr/bin/python3
"$py" -c "import torch" 2>/dev/null || { echo "train_bench.sh: $py cannot import torch (apt install python3-torch)" >&2; exit 77; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
peaks="$work/peaks.jsonl"
: > "$results"
: > "$peaks"
json_field() { "$py" -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

# One OpenBLAS kernel for everything below.
device_json="$("$flexnas" device --json --device cpu)"
kernel="$(printf '%s' "$device_json" | json_field blas_kernel)"
if [ -n "$kernel" ]; then
  export OPENBLAS_CORETYPE="$kernel"
  echo "OpenBLAS kernel: $kernel (exported as OPENBLAS_CORETYPE for both sides; flexnas device: $(printf '%s' "$device_json" | json_field blas_kernel_note))" >&2
else
  echo "OpenBLAS kernel: unknown (flexnas device reports no OpenBLAS); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >&2
fi
echo "CPU: $(printf '%s' "$device_json" | json_field cpu_features)" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}" >&2

# Checkpoints, batches and FLOPs per token (the architecture of the saved checkpoint).
for shape in $shapes; do
  "$bench" --shape "$shape" --vocab "$vocab" --steps 0 --warmup 0 --save "$work/$shape" > /dev/null ||
    { echo "train_bench.sh: train_bench cannot build --shape $shape (add it to shape_json in bench/train_bench.cpp)" >&2; exit 2; }
  "$py" -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["architecture"], open(sys.argv[2], "w"))' \
    "$work/$shape/config.json" "$work/$shape/arch.json"
  "$flexnas" model info --arch "$work/$shape/arch.json" --vocab-size "$vocab" --seq-len 128 --json > "$work/$shape/info.json"
done

peak_precision=fp32
case " $precisions " in *" bf16 "*) peak_precision=bf16;; esac
cell=0
for run in $(seq 1 "$runs"); do
  for threads in $thread_counts; do
    OPENBLAS_NUM_THREADS=$threads "$flexnas" device --peak --json --device cpu --precision "$peak_precision" --threads "$threads" |
      "$py" -c 'import json, sys; d = json.load(sys.stdin); d.update(run=int(sys.argv[1]), threads=int(sys.argv[2]))
print(json.dumps({k: v for k, v in d.items() if k.startswith("peak_") or k in ("run", "threads", "blas_kernel")}))' \
        "$run" "$threads" | tee -a "$peaks"
  done
  for shape in $shapes; do
    for threads in $thread_counts; do
      for precision in $precisions; do
        run_cpp() { OPENBLAS_NUM_THREADS=$threads "$bench" --shape "$shape" --vocab "$vocab" --threads "$threads" --steps "$steps" --precision "$precision" | tee -a "$results"; }
        run_py() { OPENBLAS_NUM_THREADS=$threads "$py" "$here/train_bench.py" --checkpoint "$work/$shape" --shape "$shape" --threads "$threads" --steps "$steps" --precision "$precision" | tee -a "$results"; }
        # Alternate the order so neither side always runs first (across cells and across runs).
        if [ $(( (run + cell) % 2 )) = 0 ]; then run_cpp; run_py; else run_py; run_cpp; fi
        cell=$((cell + 1))
      done
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$py" - "$results" "$peaks" "$work" "${OPENBLAS_CORETYPE:-}" <<'PY'
import array, json, os, statistics, struct, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peaks = [json.loads(l) for l in open(sys.argv[2])]
work, kernel = sys.argv[3], sys.argv[4]

def labelled(shape):
    """Positions the MLM head runs on: labels != -100 in the saved batch (safetensors, I64)."""
    raw = open(os.path.join(work, shape, "batch.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    entry = json.loads(raw[8:8 + n])["labels"]
    assert entry["dtype"] == "I64", entry
    begin, end = entry["data_offsets"]
    labels = array.array("q", raw[8 + n + begin:8 + n + end])
    if sys.byteorder != "little":
        labels.byteswap()
    return sum(1 for x in labels if x != -100)

def flops_per_token(shape, batch, length):
    """3 x forward FLOPs of one step / tokens: encoder on every token, MLM head on the labelled ones."""
    info = json.load(open(os.path.join(work, shape, "info.json")))
    picked = labelled(shape)
    enc = sum(b["flops_per_token"] for b in info["blocks"] if not b["name"].startswith("head"))
    hd = sum(b["flops_per_token"] for b in info["blocks"] if b["name"].startswith("head"))
    return 3.0 * (enc + hd * picked / (batch * length)), picked

def pick(impl, shape, threads, precision):
    return [r for r in rows if r["impl"] == impl and r["shape"] == shape and r["threads"] == threads
            and r.get("precision", "fp32") == precision]

def peak(threads, precision):
    v = [p.get("peak_gflops_" + precision) for p in peaks if p["threads"] == threads]
    v = [x for x in v if x]
    return max(v) if v else float("nan")

med = lambda rs, k: statistics.median(x[k] for x in rs)
cells = []
for r in rows:
    key = (r["shape"], r["threads"], r.get("precision", "fp32"))
    if key not in cells:
        cells.append(key)
print("\n(1) throughput, tokens/s (best-of and median over runs)")
print("%-15s %3s %4s %4s | %8s %8s | %8s %8s | %6s %6s | %7s %7s | %7s %7s | %5s %5s"
      % ("shape", "thr", "prec", "runs", "C++ best", "Py best", "C++ med", "Py med", "best", "median",
         "C++ cpu", "Py cpu", "C++ flt", "Py flt", "C MiB", "P MiB"))
for key in cells:
    c, p = pick("flexnas", *key), pick("python", *key)
    if not c or not p:
        continue
    ct, pt = [x["tokens_per_second"] for x in c], [x["tokens_per_second"] for x in p]
    print("%-15s %3d %4s %4d | %8.0f %8.0f | %8.0f %8.0f | %5.2fx %5.2fx | %7.0f %7.0f | %7.0f %7.0f | %5.0f %5.0f"
          % (key[0], key[1], key[2], len(ct), max(ct), max(pt), statistics.median(ct), statistics.median(pt),
             max(ct) / max(pt), statistics.median(ct) / statistics.median(pt),
             med(c, "cpu_ms_per_step"), med(p, "cpu_ms_per_step"), med(c, "faults_per_step"), med(p, "faults_per_step"),
             max(x["peak_rss_mib"] for x in c), max(x["peak_rss_mib"] for x in p)))
print("(cpu = CPU ms per step, flt = minor page faults per step, medians; MiB = peak RSS)")

print("\n(2) achieved GFLOP/s (best-of runs) against the matrix-multiply peak in the same precision and threads")
print("%-15s %3s %4s | %8s %6s | %8s %8s | %8s | %6s %6s | %s"
      % ("shape", "thr", "prec", "MFLOP/tk", "masked", "C++", "Py", "peak", "C++ %", "Py %", "Py products by dtype"))
for key in cells:
    c, p = pick("flexnas", *key), pick("python", *key)
    if not c or not p:
        continue
    fpt, picked = flops_per_token(key[0], c[0]["batch"], c[0]["len"])
    cg = fpt * max(x["tokens_per_second"] for x in c) / 1e9
    pg = fpt * max(x["tokens_per_second"] for x in p) / 1e9
    pk = peak(key[1], key[2])
    dtypes = {}
    for op in p[-1].get("products", {}).values():
        for dt, n in op.items():
            dtypes[dt] = dtypes.get(dt, 0) + n
    fallback = key[2] == "bf16" and dtypes.get("float32", 0) > 0
    print("%-15s %3d %4s | %8.2f %6d | %8.1f %8.1f | %8.1f | %5.1f%% %5.1f%% | %s%s"
          % (key[0], key[1], key[2], fpt / 1e6, picked, cg, pg, pk, 100 * cg / pk, 100 * pg / pk,
             " ".join("%s:%d" % kv for kv in sorted(dtypes.items())), "  <- fp32 fallback" if fallback else ""))
print("(MFLOP/tk = 3 x forward MFLOPs per token of a step, head on the `masked` labelled tokens only;"
      " peak = flexnas device --peak, 1024^3 products, best of the runs)")

print("\n(3) best path: each side at its fastest precision (best-of runs; median ratio = medians of those precisions)")
print("%-15s %3s | %8s %4s | %8s %4s | %6s %6s" % ("shape", "thr", "C++", "prec", "Py", "prec", "best", "median"))
seen = []
for shape, threads, _ in cells:
    if (shape, threads) in seen:
        continue
    seen.append((shape, threads))
    def best(impl):
        opts = [(max(x["tokens_per_second"] for x in rs), med(rs, "tokens_per_second"), prec)
                for prec in sorted({k[2] for k in cells}) for rs in [pick(impl, shape, threads, prec)] if rs]
        return max(opts) if opts else None
    c, p = best("flexnas"), best("python")
    if c and p:
        print("%-15s %3d | %8.0f %4s | %8.0f %4s | %5.2fx %5.2fx" % (shape, threads, c[0], c[2], p[0], p[2], c[0] / p[0], c[1] / p[1]))

kernels = sorted({r.get("blas_kernel", "") for r in rows if r["impl"] == "python"})
print("\nOpenBLAS kernel: %s (OPENBLAS_CORETYPE for both sides)" % (kernel or "unset"))
if kernel and kernels != [kernel]:
    print("WARNING: the Python peer ran OpenBLAS kernel(s) %s, not %s" % (kernels, kernel))
PY
