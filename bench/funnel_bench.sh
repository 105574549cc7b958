#!/bin/sh
# funnel_bench.sh: training throughput of a Funnel-pooled model against the same model without
# pooling (seed 003's point: compute shrinks with the sequence), at one sequence length.
#
#   bench/funnel_bench.sh [BUILD_DIR] [LEN] [REPEATS] [THREADS] [PRECISION] [WHAT]
#     defaults:           build      512   3         2         bf16 (flexnas's `auto` on this CPU)  pool
#
# WHAT = share instead compares Funnel's block parameter sharing: examples/archs/funnel_b6_3x2_3x2.json
# (B6-3x2-3x2 at h 256: blocks 2 and 3 are 3 parameterised layers each applied twice) against the same
# model with every layer its own (the "share" key removed), MLM steps: the same FLOPs, fewer
# parameters; the table shows parameters, median tokens/s and the ratio shared/unshared.
#
# Models: examples/archs/stacks_3x2.json (3 stacks of 2 layers, h 256, 4 heads, FFN 1024) and
# examples/archs/funnel_3x2.json (the same, pooled by 2 before stacks 2 and 3, pool-q-only, separate
# [CLS], 2 decoder layers). Two steps per model and head: a sequence-classification step (no decoder,
# as when fine-tuning) and an MLM step (the decoder up-samples to full length). Runs alternate
# pooled/unpooled; each prints tokens/s; the table shows medians and the ratio pooled/unpooled.
set -eu
BUILD=${1:-build}
LEN=${2:-512}
REPEATS=${3:-3}
THREADS=${4:-2}
PRECISION=${5:-bf16}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$BUILD/bench/train_bench
[ -x "$BENCH" ] || { echo "error: $BENCH not found (build the train_bench target)" >&2; exit 2; }
BATCH=$((4096 / LEN)); [ "$BATCH" -ge 1 ] || BATCH=1
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [ "${6:-pool}" = share ]; then
  UNSHARED=$(mktemp --suffix=.json)
  trap 'rm -f "$OUT" "$UNSHARED"' EXIT
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d.pop("share"); json.dump(d, open(sys.argv[2], "w"))' \
    "$HERE/examples/archs/funnel_b6_3x2_3x2.json" "$UNSHARED"
  r=1
  while [ "$r" -le "$REPEATS" ]; do
    for arch in "$HERE/examples/archs/funnel_b6_3x2_3x2.json" "$UNSHARED"; do
      "$BENCH" --arch "$arch" --head mlm --threads "$THREADS" --len "$LEN" --batch "$BATCH" --steps 4 --warmup 1 \
        --precision "$PRECISION" | tee -a "$OUT"
    done
    r=$((r + 1))
  done
  python3 - "$OUT" "$LEN" "$BATCH" "$THREADS" "$PRECISION" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
shared = [r for r in rows if r["shape"] == "funnel_b6_3x2_3x2.json"]
unshared = [r for r in rows if r["shape"] != "funnel_b6_3x2_3x2.json"]
print("\nsequence length %s, batch %s, %s threads, %s, MLM steps; medians of %d runs" %
      (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], len(shared)))
print("%-28s | %12s | %10s" % ("model", "parameters", "tok/s"))
s = statistics.median(r["tokens_per_second"] for r in shared)
u = statistics.median(r["tokens_per_second"] for r in unshared)
print("%-28s | %12d | %10.0f" % ("B6-3x2-3x2 (shared)", shared[0]["params"], s))
print("%-28s | %12d | %10.0f" % ("B6-6-6 (every layer its own)", unshared[0]["params"], u))
print("shared / unshared: parameters %.3f, tokens/s %.2fx" % (shared[0]["params"] / unshared[0]["params"], s / u))
PY
  exit 0
fi
r=1
while [ "$r" -le "$REPEATS" ]; do
  for head in cls mlm; do
    for arch in stacks_3x2 funnel_3x2; do
      "$BENCH" --arch "$HERE/examples/archs/$arch.json" --head "$head" --threads "$THREADS" --len "$LEN" \
        --batch "$BATCH" --steps 4 --warmup 1 --precision "$PRECISION" | tee -a "$OUT"
    done
  done
  r=$((r + 1))
done
python3 - "$OUT" "$LEN" "$BATCH" "$THREADS" "$PRECISION" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\nsequence length %s, batch %s, %s threads, %s; medians of %d runs" %
      (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], len(rows) // 4))
print("%-5s | %16s | %16s | %s" % ("head", "no pooling tok/s", "pooled tok/s", "pooled / no pooling"))
for head in ("cls", "mlm"):
    med = {}
    for arch in ("stacks_3x2.json", "funnel_3x2.json"):
        med[arch] = statistics.median(r["tokens_per_second"] for r in rows if r["shape"] == arch and r["head"] == head)
    print("%-5s | %16.0f | %16.0f | %.2fx" % (head, med["stacks_3x2.json"], med["funnel_3x2.json"],
                                             med["funnel_3x2.json"] / med["stacks_3x2.json"]))
PY
