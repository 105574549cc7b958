#!/bin/sh
# Replays BOSHNAS and random search on NAS-Bench-BERT (GLUE score), each paired with regularized
# evolution on the same seeds (--compare), over SEEDS seeds from FIRST with a budget of BUDGET
# trials, and prints the aggregate lines with their bootstrap intervals and the paired
# differences. Every setting is the default of the options structs (nas/boshnas.h,
# nas/surrogate.h, nas/gobi.h). The reporting seeds are 0..199; choose settings on others
# (FIRST=10000). BOSHNAS takes about 1 s of CPU per seed with its default GP surrogate (about 8 s
# with SurrogateOptions::model = networks).
#   bench/replay_nbb.sh [BUILD_DIR] [SEEDS] [BUDGET] [FIRST]
set -eu
BUILD=${1:-build}
SEEDS=${2:-200}
BUDGET=${3:-100}
FIRST=${4:-0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FLEXNAS=$BUILD/bin/flexnas
NBB=$SRC/examples/nas-bench-bert/BERT_benchmark.json
WORK=${TMPDIR:-/tmp}/flexnas-replay-nbb
mkdir -p "$WORK"
# The benchmark holds 9 architectures twice; a library holds each once (the first record is kept).
cmake -DIN="$NBB" -DOUT="$WORK/archs.json" -P "$SRC/tests/nas/dedupe_records.cmake"
"$FLEXNAS" library import --archs "$WORK/archs.json" --out "$WORK/nbb_lib.json" --quiet
for policy in boshnas random; do
  echo "== $policy, paired with evolution"
  /usr/bin/time -f "wall %e s" "$FLEXNAS" replay --library "$WORK/nbb_lib.json" --table "$NBB" --metric glue \
    --policy "$policy" --compare evolution --budget "$BUDGET" --seeds "$SEEDS" --seed "$FIRST" --threads 1 --summary-only
done
