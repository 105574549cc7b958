#!/bin/sh
# `flexnas report --models DIR...`: the results table from `flexnas finetune` folders (one task, a
# suite, a folder holding several; a pretrained checkpoint beside them is skipped), Markdown and CSV,
# --out, and the errors (exit 2 naming the DIR or the flag). The metrics files and checkpoint
# configs are written by hand (their format: launch/cli/cmd_finetune.cpp, models/checkpoint.h).
# Usage: report_models_test.sh FLEXNAS
set -eu
FLEXNAS=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
config() {  # config DIR: a fine-tuned checkpoint's config.json (bert-tiny-like widths, 60 pieces)
  mkdir -p "$1"
  cat > "$1/config.json" <<'JSON'
{"format": "flexnas-checkpoint", "format_version": 1,
 "architecture": {"l": 2, "h": [32, 32], "n": [2, 2], "o": ["sa", "sa"], "f": [[64], [64]], "p": ["sdp", "sdp"]},
 "model": {"vocab_size": 60, "max_positions": 32, "head": "cls", "num_labels": 2}}
JSON
}
R="$WORK/runs"
config "$R/a"
cat > "$R/a/metrics.json" <<'JSON'
{"kind": "finetune", "task": "spam", "score": 0.9725, "collapsed": false,
 "dev": {"accuracy": 0.98, "f1": 0.965, "score": 0.9725, "loss": 0.1}}
JSON
config "$R/b/spam"
cat > "$R/b/metrics.json" <<'JSON'
{"kind": "finetune_suite",
 "tasks": {"spam": {"kind": "finetune", "task": "spam", "score": 0.95, "collapsed": false,
                    "dev": {"accuracy": 0.96, "f1": 0.94, "score": 0.95}},
           "brown-genre": {"kind": "finetune", "task": "brown-genre", "score": 0.25, "collapsed": true,
                           "dev": {"accuracy": 0.3, "macro_f1": 0.2, "score": 0.25}}},
 "score": 0.6, "collapsed": true}
JSON
mkdir -p "$R/pretrained" "$R/empty"
echo '{"kind": "pretrain", "steps": 3}' > "$R/pretrained/metrics.json"

# parameters (hand count): embeddings 60x32 + 1x32 + LayerNorm 64 = 2,016; each layer: Q, K, V, O
# 4x(32x32+32) = 4,224, relative distance table (2x32-1)x16 = 1,008, FFN 32x64+64 + 64x32+32 = 4,192,
# two LayerNorms 128 -> 9,552; pooler 32x32+32 = 1,056: 2,016 + 2x9,552 + 1,056 = 22,176.
"$FLEXNAS" report --models "$R" > "$WORK/table.md"
cat > "$WORK/expected.md" <<EOF
| model | parameters | score | spam | brown-genre |
|---|---:|---:|---:|---:|
| $R/a | 22,176 | | 0.9725 | |
| $R/b | 22,176 | 0.6000 | 0.9500 | 0.2500* |

score: the mean of the task scores (as GLUE aggregates); a task's score is the mean of its metrics on its selection split (datasets/metrics.h). parameters: the base model as the search counts it.
An empty task cell: the model has no result for that task; its score then stays empty.
*: collapsed, the model predicts one class for every example of a selection split.
EOF
diff "$WORK/expected.md" "$WORK/table.md" || fail "markdown table differs"

"$FLEXNAS" report --models "$R/b" "$R/a" --format csv --metrics --out "$WORK/table.csv" > "$WORK/out.log"
grep -qF "report: 2 models, 2 tasks -> $WORK/table.csv" "$WORK/out.log" || { cat "$WORK/out.log"; fail "no summary line"; }
cat > "$WORK/expected.csv" <<EOF
model,parameters,score,spam,spam dev accuracy,spam dev f1,brown-genre,brown-genre dev accuracy,brown-genre dev macro_f1,collapsed
$R/b,22176,0.600000,0.950000,0.960000,0.940000,0.250000,0.300000,0.200000,brown-genre
$R/a,22176,,0.972500,0.980000,0.965000,,,,
EOF
diff "$WORK/expected.csv" "$WORK/table.csv" || fail "csv table differs"

expect_error() {  # expect_error PATTERN ARGS...: exit 2 and PATTERN (a fixed string) in the output
  pattern=$1; shift
  set +e
  out=$("$FLEXNAS" report "$@" 2>&1)
  code=$?
  set -e
  [ $code -eq 2 ] || { echo "$out"; fail "exit $code for: $*"; }
  echo "$out" | grep -qF -- "$pattern" || { echo "$out"; fail "no '$pattern' for: $*"; }
}
expect_error "$R/empty: error: no fine-tuning metrics: expected $R/empty/metrics.json written by flexnas finetune" --models "$R/a" "$R/empty"
expect_error "$R/pretrained/metrics.json:1:10: error: kind: 'pretrain' is not a fine-tuning result" --models "$R/pretrained"
expect_error "$WORK/nowhere: error: no such directory" --models "$WORK/nowhere"
expect_error "$WORK/nowhere: error: no campaign here: expected $WORK/nowhere/campaign.db" --campaign "$WORK/nowhere"
expect_error "error: --models: required: the fine-tuned models (--models DIR...) or a campaign (--campaign DIR)"
expect_error "error: --campaign: give --models or --campaign, not both" --models "$R" --campaign "$R"
expect_error "error: --top: only with --campaign" --models "$R" --top 3
expect_error "error: --top: expected a positive integer, got 0" --campaign "$R" --top 0
expect_error "error: --format: unknown value 'xlsx'; allowed: md, csv" --models "$R" --format xlsx
[ ! -e "$WORK/x" ] || fail "an error wrote a file"
echo "report test passed"
