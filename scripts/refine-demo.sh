#!/usr/bin/env bash
# Hierarchical refinement end to end on real data (issue 8), at toy budgets:
#   level 1: a builtin campaign over the test design space at two layers per stack;
#   refine : `flexnas refine` builds a one-layer-per-stack library around level 1's best models;
#   level 2: a builtin campaign on that library with level 1 as its parent (warm starts from
#            level-1 checkpoints; architectures level 1 trained are taken over, not retrained).
# Output: runs/refine/. Re-running continues where it stopped. About 15-20 minutes on 2 cores once
# flexnas is built. Usage: scripts/refine-demo.sh [TOP] [NEIGHBORS]
set -euo pipefail
cd "$(dirname "$0")/.."
TOP="${1:-2}"
NEIGHBORS="${2:-2}"
BUILD_DIR="${FLEXNAS_BUILD_DIR:-build}"
FLEXNAS="$BUILD_DIR/bin/flexnas"
[ -x "$FLEXNAS" ] || { echo "refine-demo: $FLEXNAS not built (run scripts/build.sh)" >&2; exit 2; }
scripts/fetch-data.sh data
mkdir -p runs/refine
[ -f runs/refine/spm.model ] ||
  "$FLEXNAS" tokenizer train --corpus data/brown/text.txt --vocab-size 4000 --out runs/refine/spm.model

search() {  # search CONFIG DIR: start, or continue a stopped campaign
  if [ -f "$2/campaign.db" ]; then "$FLEXNAS" search "$1" --resume; else "$FLEXNAS" search "$1"; fi
}
search examples/campaigns/refine_level1.yaml runs/refine/level1
[ -f runs/refine/level2_library.json ] ||
  "$FLEXNAS" refine --campaign runs/refine/level1 --top "$TOP" --neighbors "$NEIGHBORS" --layers-per-stack 1 \
    --out runs/refine/level2_library.json
"$FLEXNAS" library info runs/refine/level2_library.json
search examples/campaigns/refine_level2.yaml runs/refine/level2
"$FLEXNAS" status runs/refine/level1
"$FLEXNAS" status runs/refine/level2
