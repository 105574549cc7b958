#!/usr/bin/env bash
# Held-out MLM loss right after transfer (od, rp) against a fresh initialisation, on the Brown corpus,
# for targets of a small pretrained source (wider, narrower, other op in one layer, deeper), and
# optionally the held-out loss after K further steps from each start.
# Usage: bench/transfer_bench.sh BUILD_DIR TOKENIZER.model [SOURCE_STEPS=300] [FURTHER_STEPS=0]
# Needs data/brown/text.txt (scripts/fetch-data.sh). Prints one line per (target, start).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?build dir}"; spm="${2:?tokenizer}"; src_steps="${3:-300}"; further="${4:-0}"
flexnas="$build/bin/flexnas"
corpus="$here/../data/brown/text.txt"
work="$(mktemp -d)"
exec 3>&2 2>"$work/progress.log"  # progress bars out of the table; errors shown below
trap 'status=$?; [ $status -ne 0 ] && cat "$work/progress.log" >&3; rm -rf "$work"' EXIT
common=(--tokenizer "$spm" --corpus "$corpus" --seq-len 64 --batch-size 16 --cache-dir "$work/cache" --threads 2
        --max-eval-batches 40 --seed 1)
echo '{"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/source.json"
echo '{"l":2,"h":[96,96],"n":[3,3],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/wider.json"
echo '{"l":2,"h":[48,48],"n":[2,2],"o":["sa","sa"],"f":[[256],[256]],"p":["sdp","sdp"]}' > "$work/narrower.json"
echo '{"l":2,"h":[64,64],"n":[2,2],"o":["sa","l"],"f":[[256],[256]],"p":["sdp","dft"]}' > "$work/other-op.json"
echo '{"l":3,"h":[64,64,64],"n":[2,2,2],"o":["sa","sa","sa"],"f":[[256],[256],[256]],"p":["sdp","sdp","sdp"]}' > "$work/deeper.json"
"$flexnas" pretrain --arch "$work/source.json" "${common[@]}" --steps "$src_steps" --lr 1e-3 --out "$work/source" \
  | grep "eval loss" | sed 's/^/source: /'
# Held-out loss of a checkpoint (or a fresh model): one update at a negligible learning rate.
eval_loss() {  # out_dir arch [init]
  local init=(); [ -n "${3:-}" ] && init=(--init-from "$3")
  "$flexnas" pretrain --arch "$2" "${common[@]}" --steps 1 --lr 1e-12 --warmup-steps 0 "${init[@]}" --out "$1" \
    | sed -n 's/^eval loss: \([0-9.]*\).*/\1/p'
}
train_loss() {  # out_dir arch [init]
  local init=(); [ -n "${3:-}" ] && init=(--init-from "$3")
  "$flexnas" pretrain --arch "$2" "${common[@]}" --steps "$further" --lr 1e-3 "${init[@]}" --out "$1" \
    | sed -n 's/^eval loss: \([0-9.]*\).*/\1/p'
}
printf "%-10s %-6s %8s %10s %12s\n" target start overlap "eval loss" "after $further"
for t in wider narrower other-op deeper; do
  for start in fresh od rp; do
    init=""; overlap="-"
    if [ "$start" != fresh ]; then
      out="$("$flexnas" transfer --from "$work/source" --to "$work/$t.json" --mode "$start" --seed 1 --out "$work/$t-$start")"
      overlap="$(echo "$out" | sed -n 's/^overlap: \([0-9.]*\).*/\1/p')"
      init="$work/$t-$start"
    fi
    loss="$(eval_loss "$work/eval-$t-$start" "$work/$t.json" "$init")"
    after="-"
    [ "$further" -gt 0 ] && after="$(train_loss "$work/train-$t-$start" "$work/$t.json" "$init")"
    printf "%-10s %-6s %8s %10s %12s\n" "$t" "$start" "$overlap" "$loss" "$after"
  done
done
