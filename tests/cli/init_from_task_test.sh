#!/bin/sh
# `flexnas finetune --init-from-task CKPT`: fine-tuning that starts from a model already fine-tuned
# on a task (seed 001 starts RTE and STS-B from MNLI). The head is kept for the same kind and labels
# and new otherwise; the errors (missing, pretrained, suite folder, architecture mismatch) exit 2.
# Tiny data: a 400-line corpus, a 60-piece tokenizer, a 3-step pretrain, 8-example GLUE TSVs.
# Usage: init_from_task_test.sh FLEXNAS
set -eu
FLEXNAS=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
i=0
while [ $i -lt 400 ]; do
  echo "the quick brown fox $i jumps over the lazy dog and the cat sat on the mat"
  [ $((i % 20)) -eq 19 ] && echo
  i=$((i + 1))
done > "$WORK/corpus.txt"
"$FLEXNAS" tokenizer train --corpus "$WORK/corpus.txt" --vocab-size 60 --out "$WORK/spm.model" >/dev/null
echo '{"l":2,"h":[32,32],"n":[2,2],"o":["sa","sa"],"f":[[64],[64]],"p":["sdp","sdp"]}' > "$WORK/small.json"
echo '{"l":2,"h":[32,32],"n":[2,2],"o":["sa","l"],"f":[[64],[64]],"p":["sdp","dft"]}' > "$WORK/other.json"
common="--tokenizer $WORK/spm.model --corpus $WORK/corpus.txt --seq-len 16 --batch-size 4 --threads 1 --max-positions 32"
"$FLEXNAS" pretrain --arch "$WORK/small.json" $common --steps 3 --out "$WORK/pre" >/dev/null
"$FLEXNAS" pretrain --arch "$WORK/other.json" $common --steps 1 --out "$WORK/other" >/dev/null

# GLUE TSVs in the distribution's columns, 8 training and 4 dev rows each.
G="$WORK/data/glue"
mkdir -p "$G/MNLI" "$G/RTE" "$G/QNLI" "$G/STS-B"
mnli_head="index	promptID	pairID	genre	s1b	s2b	s1p	s2p	sentence1	sentence2	label1	gold_label"
rows() {  # rows N FORMAT-COMMAND: N rows, row k from the command
  k=0
  while [ $k -lt "$1" ]; do "$2" $k; k=$((k + 1)); done
}
mnli_row() {
  set -- "$1" entailment neutral contradiction
  n=$1; shift $((n % 3 + 1)); label=$1
  printf '%s\t1\t1e\tgov\t(a)\t(b)\t(A)\t(B)\tthe quick brown fox %s jumps\tthe lazy dog sat\t%s\t%s\n' "$n" "$n" "$label" "$label"
}
nli2_row() {
  if [ $(($1 % 2)) -eq 0 ]; then label=entailment; else label=not_entailment; fi
  printf '%s\tthe cat sat on the mat %s\tthe dog jumps\t%s\n' "$1" "$1" "$label"
}
sts_row() {
  printf '%s\tmain\tx\t2012\t%s\tnone\tnone\tthe cat %s sat\tthe dog jumps\t%s.0\n' "$1" "$1" "$1" $(($1 % 5))
}
{ echo "$mnli_head"; rows 8 mnli_row; } > "$G/MNLI/train.tsv"
{ echo "$mnli_head"; rows 4 mnli_row; } > "$G/MNLI/dev_matched.tsv"
{ echo "$mnli_head"; rows 4 mnli_row; } > "$G/MNLI/dev_mismatched.tsv"
for t in RTE; do
  { echo "index	sentence1	sentence2	label"; rows 8 nli2_row; } > "$G/$t/train.tsv"
  { echo "index	sentence1	sentence2	label"; rows 4 nli2_row; } > "$G/$t/dev.tsv"
done
{ echo "index	question	sentence	label"; rows 8 nli2_row; } > "$G/QNLI/train.tsv"
{ echo "index	question	sentence	label"; rows 4 nli2_row; } > "$G/QNLI/dev.tsv"
sts_head="index	genre	filename	year	old_index	source1	source2	sentence1	sentence2	score"
{ echo "$sts_head"; rows 8 sts_row; } > "$G/STS-B/train.tsv"
{ echo "$sts_head"; rows 4 sts_row; } > "$G/STS-B/dev.tsv"
ft="--data-dir $WORK/data --batch-size 4 --max-len 24 --threads 1 --precision fp32"

# 1. MNLI from the pretrained checkpoint (4 epochs: a head far from a fresh one), then RTE (2 labels, not MNLI's 3: new head) from MNLI.
"$FLEXNAS" finetune --checkpoint "$WORK/pre" --task glue:mnli $ft --epochs 4 --lr 3e-3 --out "$WORK/mnli" >/dev/null
"$FLEXNAS" finetune --init-from-task "$WORK/mnli" --task glue:rte $ft --epochs 1 --out "$WORK/rte" > "$WORK/rte.log"
grep -qF "init-from-task $WORK/mnli (fine-tuned on glue:mnli): encoder and embeddings kept; task head new (glue:mnli (sequence_classification, 3 labels: entailment, neutral, contradiction) -> glue:rte (sequence_classification, 2 labels: entailment, not_entailment))" "$WORK/rte.log" ||
  { cat "$WORK/rte.log"; fail "no new-head line for mnli -> rte"; }
grep -q '"head": "new"' "$WORK/rte/metrics.json" || fail "run.head not recorded"
grep -q '"init_task": "glue:mnli"' "$WORK/rte/metrics.json" || fail "run.init_task not recorded"

# 2. RTE -> QNLI: the same kind and labels, the head is kept.
"$FLEXNAS" finetune --init-from-task "$WORK/rte" --task glue:qnli $ft --epochs 1 --out "$WORK/qnli" > "$WORK/qnli.log"
grep -qF "init-from-task $WORK/rte (fine-tuned on glue:rte): encoder, embeddings and task head kept (the same kind and labels: glue:qnli (sequence_classification, 2 labels: entailment, not_entailment))" "$WORK/qnli.log" ||
  { cat "$WORK/qnli.log"; fail "no kept-head line for rte -> qnli"; }

# 3. MNLI -> MNLI with a vanishing learning rate: every weight, the head included, is MNLI's, so the
#    dev predictions and losses are MNLI's own (a new head would change the loss); --checkpoint may
#    name the pretrained model too.
"$FLEXNAS" finetune --checkpoint "$WORK/pre" --init-from-task "$WORK/mnli" --task glue:mnli $ft --epochs 1 --lr 1e-12 \
    --out "$WORK/mnli2" > "$WORK/mnli2.log"
grep -q "task head kept" "$WORK/mnli2.log" || { cat "$WORK/mnli2.log"; fail "mnli -> mnli did not keep the head"; }
value() {  # value DIR SPLIT KEY: metrics.json's SPLIT.KEY to 4 decimals
  awk -v part="\"$2\": {" -v key="\"$3\":" '
    index($0, part) { inside = 1; next }
    inside && index($0, key) { gsub(/[ ,]/, "", $2); printf "%.4f\n", $2; exit }
    inside && /}/ { inside = 0 }' FS=: "$1/metrics.json"
}
for split in dev_matched dev_mismatched; do
  for key in accuracy loss; do
    a=$(value "$WORK/mnli" $split $key)
    b=$(value "$WORK/mnli2" $split $key)
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "$split $key: '$a' (mnli) vs '$b' (head kept at lr 1e-12)"
  done
done
grep -q "\"pretrained\": \"$WORK/pre\"" "$WORK/mnli2/metrics.json" || fail "run.pretrained not recorded"

# 4. A suite from MNLI: RTE and STS-B (regression: new head), one folder per task.
"$FLEXNAS" finetune --init-from-task "$WORK/mnli" --task glue:rte,glue:stsb $ft --epochs 1 --out "$WORK/suite" > "$WORK/suite.log"
grep -qF "task head new (glue:mnli (sequence_classification, 3 labels: entailment, neutral, contradiction) -> glue:stsb (regression))" "$WORK/suite.log" ||
  { cat "$WORK/suite.log"; fail "no new-head line for mnli -> stsb"; }
grep -q '"kind": "finetune_suite"' "$WORK/suite/metrics.json" || fail "no suite metrics"

# 5. The sequence head's pooling: the mean of the tokens by default, [CLS] with --pooling first; the
#    choice is in config.json (evaluate rebuilds the same model: the same dev loss) and metrics.json.
grep -q '"classifier_pooling": "mean"' "$WORK/rte/config.json" || fail "config.json: classifier_pooling not mean by default"
grep -q '"pooling": "mean"' "$WORK/rte/metrics.json" || fail "run.pooling not recorded"
"$FLEXNAS" finetune --checkpoint "$WORK/pre" --task glue:rte $ft --epochs 1 --pooling first --out "$WORK/rte-first" >/dev/null
grep -q '"classifier_pooling": "first"' "$WORK/rte-first/config.json" || fail "config.json: classifier_pooling not first"
grep -q '"pooling": "first"' "$WORK/rte-first/metrics.json" || fail "run.pooling first not recorded"
mkdir -p "$WORK/ev-first"
"$FLEXNAS" evaluate --checkpoint "$WORK/rte-first" --task glue:rte --data-dir "$WORK/data" --batch-size 4 --threads 1 \
    --precision fp32 --out "$WORK/ev-first/metrics.json" >/dev/null
a=$(value "$WORK/rte-first" dev loss)
b=$(value "$WORK/ev-first" metrics loss)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "dev loss of the --pooling first model: '$a' (finetune) vs '$b' (evaluate)"
# A head kept by --init-from-task reads what it was trained on, unless --pooling is given.
"$FLEXNAS" finetune --init-from-task "$WORK/rte-first" --task glue:qnli $ft --epochs 1 --out "$WORK/qnli-first" >/dev/null
grep -q '"classifier_pooling": "first"' "$WORK/qnli-first/config.json" || fail "a kept head lost its [CLS] pooling"
"$FLEXNAS" finetune --init-from-task "$WORK/rte-first" --task glue:qnli $ft --epochs 1 --pooling mean --out "$WORK/qnli-mean" >/dev/null
grep -q '"classifier_pooling": "mean"' "$WORK/qnli-mean/config.json" || fail "--pooling mean not applied to a kept head"

# Errors: exit code 2 and a message naming the file (and line:column, key) or the flag.
expect_error() {  # expect_error PATTERN ARGS...: exit 2 and PATTERN (fixed string) in the output
  pattern=$1; shift
  set +e
  out=$("$FLEXNAS" finetune "$@" 2>&1)
  code=$?
  set -e
  [ $code -eq 2 ] || { echo "$out"; fail "exit $code for: $*"; }
  echo "$out" | grep -qF -- "$pattern" || { echo "$out"; fail "no '$pattern' for: $*"; }
}
expect_error "error: --init-from-task: '$WORK/nothing': no such directory" \
  --init-from-task "$WORK/nothing" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "error: kind: 'pretrain' is not a fine-tuned checkpoint; expected the output of flexnas finetune for one task (metrics.json kind 'finetune') (a pretrained checkpoint goes to --checkpoint)" \
  --init-from-task "$WORK/pre" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "$WORK/pre/metrics.json:" --init-from-task "$WORK/pre" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "$WORK/suite/metrics.json:" --init-from-task "$WORK/suite" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "error: kind: 'finetune_suite' is a suite folder, not one fine-tuned checkpoint; pass one of its tasks' checkpoints ($WORK/suite/glue-rte, $WORK/suite/glue-stsb)" \
  --init-from-task "$WORK/suite" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "$WORK/mnli/config.json:" --checkpoint "$WORK/other" --init-from-task "$WORK/mnli" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error 'error: architecture: architecture mismatch: {"l":2,"h":[32,32],"n":[2,2],"o":["sa","sa"],"f":[[64],[64]],"p":["sdp","sdp"]} is not --checkpoint'"'"'s {"l":2,"h":[32,32],"n":[2,2],"o":["sa","l"],"f":[[64],[64]],"p":["sdp","dft"]}' \
  --checkpoint "$WORK/other" --init-from-task "$WORK/mnli" --task glue:rte $ft --epochs 1 --out "$WORK/x"
expect_error "unknown value 'max'; allowed: mean, first" --checkpoint "$WORK/pre" --task glue:rte $ft --pooling max --out "$WORK/x"
expect_error "error: --checkpoint: required: a pretrained checkpoint (or --init-from-task: a fine-tuned one)" \
  --task glue:rte $ft --epochs 1 --out "$WORK/x"
rm -f "$WORK/rte/model.safetensors"
expect_error "$WORK/rte/model.safetensors: error: checkpoint weights are missing" \
  --init-from-task "$WORK/rte" --task glue:rte $ft --epochs 1 --out "$WORK/x"
[ ! -e "$WORK/x" ] || fail "an error left $WORK/x behind"
echo "init-from-task test passed"
