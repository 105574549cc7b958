#!/bin/sh
# End to end: a NAS-Bench-BERT table campaign, then `flexnas refine` around its best models.
# Usage: refine_test.sh FLEXNAS SOURCE_DIR
set -eu
FLEXNAS=$1
SRC=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$FLEXNAS" library import --archs "$SRC/examples/nas-bench-bert/BERT_benchmark.json" --out "$WORK/lib.json" --neighbors 10 >/dev/null 2>&1
cat > "$WORK/campaign.yaml" <<YAML
name: refine-test
directory: $WORK/campaign
library: $WORK/lib.json
objective: {metric: glue, maximise: true}
policy: {name: random}
budget: {trials: 20}
seed: 3
evaluator: {type: table, table: $SRC/examples/nas-bench-bert/BERT_benchmark.json}
workers: 1
YAML
"$FLEXNAS" search "$WORK/campaign.yaml" >/dev/null 2>&1
# NAS-Bench-BERT layers are independent (one layer per stack), so both stack sizes are 1.
"$FLEXNAS" refine --campaign "$WORK/campaign" --top 2 --neighbors 1 --old-layers-per-stack 1 --layers-per-stack 1 \
    --library-neighbors 5 --out "$WORK/fine.json" 2>/dev/null | tee "$WORK/refine.log"
grep -q "refining around the top 2" "$WORK/refine.log"
grep -Eq "^pairs interpolated: [1-9]" "$WORK/refine.log"
n=$(sed -n 's/^new library: \([0-9]*\) architectures$/\1/p' "$WORK/refine.log")
[ "$n" -gt 2 ]
"$FLEXNAS" library info "$WORK/fine.json" | grep -q "$n"
# Refining a campaign directory that has no store is a clear error with exit code 2.
set +e
"$FLEXNAS" refine --campaign "$WORK/nowhere" --top 2 --out "$WORK/x.json" > "$WORK/err.log" 2>&1
code=$?
set -e
cat "$WORK/err.log"
[ "$code" -eq 2 ]
grep -q "is not a campaign directory" "$WORK/err.log"
echo "refine test passed: $n architectures"
