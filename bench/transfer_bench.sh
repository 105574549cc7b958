#!/usr/bin/env bash
# Does weight transfer save training? On the Brown corpus: pretrain a small source, then for targets of
# the test design space (wider, narrower, other op in one layer, deeper) and three starts (fresh, od, rp
# transfer via `flexnas pretrain --init-from SRC --init-mode od|rp`):
#   (a) the held-out MLM loss right after the start (one update at lr 1e-12 = an evaluation);
#   (b) with CAP > 0, the first evaluation step at which the held-out loss <= the source's final held-out
#       loss, training with the same schedule (--steps CAP), seed, data order, dropout stream and held-out
#       subset for every start. A run stops once it has reached the loss; "not reached" = not within CAP.
#       Step 0 counts when the start itself is already at or below the goal.
# Usage: bench/transfer_bench.sh BUILD_DIR TOKENIZER.model [SOURCE_STEPS=1000] [CAP=2000] [EVAL_EVERY=25]
#   env: TARGETS="wider narrower other-op deeper", STARTS="fresh od rp", SEED=1 (data order, masking,
#        held-out subset, initialisation, dropout, rp draw), SOURCE_CKPT=DIR (reuse a source pretrained
#        with the same SEED and flags instead of pretraining one), KEEP=DIR (keep every run's metrics.json)
# Needs data/brown/text.txt (scripts/fetch-data.sh). One thread per process; runs are sequential.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?build dir}"; spm="${2:?tokenizer}"; src_steps="${3:-1000}"; cap="${4:-2000}"; every="${5:-25}"
targets="${TARGETS:-wider narrower other-op deeper}"; seed="${SEED:-1}"
flexnas="$build/bin/flexnas"
corpus="$here/../data/brown/text.txt"
work="$(mktemp -d)"
exec 3>&2 2>"$work/progress.log"  # progress bars out of the table; errors shown below
trap 'status=$?; [ $status -ne 0 ] && cat "$work/progress.log" >&3; [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" &&
      for m in "$work"/*/metrics.json; do cp "$m" "$KEEP/$(basename "$(dirname "$m")").json"; done; rm -rf "$work"' EXIT
# Same data (seed -> shuffling and masking), held-out subset (first 40 batches), dropout stream for all runs.
common=(--tokenizer "$spm" --corpus "$corpus" --seq-len 64 --batch-size 16 --cache-dir "$work/cache" --threads 1
        --max-eval-batches 40 --seed "$seed")
echo '{"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/source.json"
echo '{"l":2,"h":[96,96],"n":[3,3],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/wider.json"
echo '{"l":2,"h":[48,48],"n":[2,2],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/narrower.json"
echo '{"l":2,"h":[64,64],"n":[2,2],"o":["sa","l"],"f":[[256],[256]],"p":["sdp","dft"]}' > "$work/other-op.json"
echo '{"l":3,"h":[64,64,64],"n":[2,2,2],"o":["sa","sa","sa"],"f":[[256],[256],[256]],"p":["sdp","sdp","sdp"]}' > "$work/deeper.json"
if [ -n "${SOURCE_CKPT:-}" ]; then cp -r "$SOURCE_CKPT" "$work/source"; else
"$flexnas" pretrain --arch "$work/source.json" "${common[@]}" --steps "$src_steps" --lr 1e-3 --eval-every "$every" \
  --out "$work/source" > /dev/null; fi
goal="$(jq '.eval_loss' "$work/source/metrics.json")"  # full precision
printf "source: %d steps, held-out loss %.4f (the goal)\n" "$(jq .step "$work/source/metrics.json")" "$goal"

# Held-out loss of a start (a checkpoint to transfer from, or fresh): one update at a negligible learning rate.
start_loss() {  # out_dir arch mode
  local init=(); [ "$3" != fresh ] && init=(--init-from "$work/source" --init-mode "$3")
  "$flexnas" pretrain --arch "$2" "${common[@]}" --steps 1 --lr 1e-12 --warmup-steps 0 "${init[@]}" --out "$1" > /dev/null
  jq '.eval_loss' "$1/metrics.json"
}
# First evaluation step with held-out loss <= goal, training up to CAP steps; prints "STEP LOSS" or "- BEST".
steps_to_goal() {  # out_dir arch mode
  local init=(); [ "$3" != fresh ] && init=(--init-from "$work/source" --init-mode "$3")
  local q='[.history[] | select(.eval_loss != null and .eval_loss <= $g)] | first | select(. != null) | "\(.step) \(.eval_loss)"'
  "$flexnas" pretrain --arch "$2" "${common[@]}" --steps "$cap" --lr 1e-3 --eval-every "$every" --save-every "$every" \
    "${init[@]}" --out "$1" > /dev/null &
  local pid=$! hit=""
  while kill -0 "$pid" 2> /dev/null; do  # metrics.json is rewritten atomically at every evaluation
    sleep 0.5
    [ -f "$1/metrics.json" ] && hit="$(jq -r --argjson g "$goal" "$q" "$1/metrics.json" 2> /dev/null || true)"
    [ -n "$hit" ] && { kill "$pid" 2> /dev/null || true; break; }
  done
  wait "$pid" || true
  hit="$(jq -r --argjson g "$goal" "$q" "$1/metrics.json")"
  [ -n "$hit" ] && echo "$hit" || jq -r '"- \([.history[] | .eval_loss // empty] | min)"' "$1/metrics.json"
}

printf "%-9s %-6s %8s %10s %9s %10s %9s\n" target start overlap "loss@0" "steps" "loss@hit" "vs fresh"
for t in $targets; do
  fresh_steps=""
  for start in ${STARTS:-fresh od rp}; do
    overlap="-"
    if [ "$start" != fresh ]; then
      overlap="$("$flexnas" transfer --from "$work/source" --to "$work/$t.json" --mode "$start" --seed "$seed" \
                   --out "$work/$t-$start-ckpt" | sed -n 's/^overlap: \([0-9.]*\).*/\1/p')"
      overlap="$(printf "%.3f" "$overlap")"
    fi
    loss0="$(start_loss "$work/zero-$t-$start" "$work/$t.json" "$start")"
    steps="-"; at="-"; ratio="-"
    if [ "$cap" -gt 0 ]; then
      if awk -v a="$loss0" -v g="$goal" 'BEGIN{exit !(a <= g)}'; then steps=0; at="$loss0"  # reached before training
      else read -r steps at < <(steps_to_goal "$work/$t-$start" "$work/$t.json" "$start"); fi
      if [ "$steps" = - ]; then steps=">$cap"; at="best $(printf "%.4f" "$at")"; else at="$(printf "%.4f" "$at")"; fi
      [ "$start" = fresh ] && fresh_steps="$steps"
      if [ "$start" != fresh ] && [[ "$steps" =~ ^[0-9]+$ ]]; then
        if [[ "$fresh_steps" =~ ^[0-9]+$ ]]; then ratio="$(awk -v a="$steps" -v b="$fresh_steps" 'BEGIN{printf "%.2f", a/b}')"
        elif [ -n "$fresh_steps" ]; then ratio="<$(awk -v a="$steps" -v b="$cap" 'BEGIN{printf "%.2f", a/b}')"; fi
      fi
    fi
    printf "%-9s %-6s %8s %10.4f %9s %10s %9s\n" "$t" "$start" "$overlap" "$loss0" "$steps" "$at" "$ratio"
  done
done
