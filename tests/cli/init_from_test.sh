#!/bin/sh
# `flexnas pretrain --init-from CKPT [--init-mode od|rp]`: warm start by weight transfer from a
# checkpoint of another architecture (what the builtin campaign evaluator runs), and its errors.
# Usage: init_from_test.sh FLEXNAS
set -eu
FLEXNAS=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
i=0
while [ $i -lt 400 ]; do
  echo "the quick brown fox $i jumps over the lazy dog and the cat sat on the mat"
  [ $((i % 20)) -eq 19 ] && echo
  i=$((i + 1))
done > "$WORK/corpus.txt"
"$FLEXNAS" tokenizer train --corpus "$WORK/corpus.txt" --vocab-size 60 --out "$WORK/spm.model" >/dev/null
echo '{"l":2,"h":[32,32],"n":[2,2],"o":["sa","sa"],"f":[[64],[64]],"p":["sdp","sdp"]}' > "$WORK/small.json"
echo '{"l":2,"h":[64,64],"n":[2,2],"o":["sa","l"],"f":[[128],[64]],"p":["sdp","dft"]}' > "$WORK/wide.json"
common="--tokenizer $WORK/spm.model --corpus $WORK/corpus.txt --seq-len 16 --batch-size 4 --threads 1 --max-positions 32"
"$FLEXNAS" pretrain --arch "$WORK/small.json" $common --steps 3 --out "$WORK/small" >/dev/null
for mode in od rp; do
  "$FLEXNAS" pretrain --arch "$WORK/wide.json" $common --steps 2 --init-from "$WORK/small" --init-mode $mode \
      --out "$WORK/wide-$mode" > "$WORK/$mode.log"
  grep -Eq "^init-from $WORK/small \\($mode\\): overlap 0\\.[0-9]+ \\([0-9]+ of [0-9]+ parameters received source values\\)" "$WORK/$mode.log" ||
    { cat "$WORK/$mode.log"; echo "no overlap line for $mode"; exit 1; }
  grep -q "\"init_mode\": \"$mode\"" "$WORK/wide-$mode/metrics.json" || { echo "init_mode not recorded"; exit 1; }
done
# Bad input: exit code 2 with the flag named, before the corpus is read.
set +e
out=$("$FLEXNAS" pretrain --arch "$WORK/wide.json" $common --steps 2 --init-from "$WORK/small" --init-mode xx --out "$WORK/x" 2>&1)
code=$?
set -e
[ $code -eq 2 ] || { echo "bad --init-mode: exit $code"; exit 1; }
echo "$out" | grep -q "init-mode" || { echo "$out"; exit 1; }
set +e
out=$("$FLEXNAS" pretrain --arch "$WORK/wide.json" $common --steps 2 --init-from "$WORK/nothing" --out "$WORK/y" 2>&1)
code=$?
set -e
[ $code -eq 2 ] || { echo "missing --init-from checkpoint: exit $code: $out"; exit 1; }
echo "$out" | grep -q "$WORK/nothing" || { echo "$out"; exit 1; }
echo "init-from test passed"
