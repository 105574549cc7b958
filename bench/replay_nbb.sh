#!/bin/sh
# Replays BOSHNAS, random search and regularized evolution on NAS-Bench-BERT (GLUE score) over
# SEEDS seeds with a budget of BUDGET trials and prints the aggregate lines of each. Every
# setting is the default of the options structs (nas/boshnas.h, nas/surrogate.h, nas/gobi.h).
#   bench/replay_nbb.sh [BUILD_DIR] [SEEDS] [BUDGET]
set -eu
BUILD=${1:-build}
SEEDS=${2:-30}
BUDGET=${3:-100}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FLEXNAS=$BUILD/bin/flexnas
NBB=$SRC/examples/nas-bench-bert/BERT_benchmark.json
WORK=${TMPDIR:-/tmp}/flexnas-replay-nbb
mkdir -p "$WORK"
# The benchmark holds 9 architectures twice; a library holds each once (the first record is kept).
cmake -DIN="$NBB" -DOUT="$WORK/archs.json" -P "$SRC/tests/nas/dedupe_records.cmake"
"$FLEXNAS" library import --archs "$WORK/archs.json" --out "$WORK/nbb_lib.json" --quiet
for policy in boshnas random evolution; do
  echo "== $policy"
  /usr/bin/time -f "wall %e s" "$FLEXNAS" replay --library "$WORK/nbb_lib.json" --table "$NBB" --metric glue \
    --policy "$policy" --budget "$BUDGET" --seeds "$SEEDS" --seed 0 --threads 1 --summary-only
done
