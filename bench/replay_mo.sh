#!/bin/sh
# Multi-objective search, score vs parameters, on NAS-Bench-BERT (GLUE score; parameters from the
# model dicts): replays the EHVI policy (pareto) and random search, each paired with NSGA-II-style
# evolution (nsga2) on the same seeds (--compare), over SEEDS seeds from FIRST with a budget of
# BUDGET trials, and prints the aggregate lines (hypervolume at 10/25/50/100 trials included) with
# their bootstrap intervals and the paired differences. Settings are the options structs'
# defaults (nas/multi_objective.h) unless FLAGS adds replay flags (e.g. FLAGS="--pareto-targets
# rank"). Report on seeds 0..199; choose settings on others (FIRST=10000). The hypervolume frame
# (reference point: the table's worst score and largest parameter count) is printed first.
#   bench/replay_mo.sh [BUILD_DIR] [SEEDS] [BUDGET] [FIRST] [POLICIES]
# POLICIES (default "pareto random") are each paired with nsga2.
set -eu
BUILD=${1:-build}
SEEDS=${2:-200}
BUDGET=${3:-100}
FIRST=${4:-0}
POLICIES=${5:-pareto random}
FLAGS=${FLAGS:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FLEXNAS=${FLEXNAS:-$BUILD/bin/flexnas}
NBB=$SRC/examples/nas-bench-bert/BERT_benchmark.json
WORK=${TMPDIR:-/tmp}/flexnas-replay-mo
mkdir -p "$WORK"
# The benchmark holds 9 architectures twice; a library holds each once (the first record is kept).
cmake -DIN="$NBB" -DOUT="$WORK/archs.json" -P "$SRC/tests/nas/dedupe_records.cmake"
"$FLEXNAS" library import --archs "$WORK/archs.json" --out "$WORK/nbb_lib.json" --quiet
for policy in $POLICIES; do
  echo "== $policy, paired with nsga2"
  # shellcheck disable=SC2086
  /usr/bin/time -f "wall %e s" "$FLEXNAS" replay --library "$WORK/nbb_lib.json" --table "$NBB" --metric glue \
    --policy "$policy" --compare nsga2 --budget "$BUDGET" --seeds "$SEEDS" --seed "$FIRST" --threads 1 \
    --summary-only $FLAGS
done
