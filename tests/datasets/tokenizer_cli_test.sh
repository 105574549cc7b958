#!/usr/bin/env bash
# The shipped flexnas (which links LibTorch) trains a SentencePiece tokenizer and tokenizes a corpus
# and a task through flexnas-tokenize, without the SentencePiece/LibTorch crash (PLATFORM.md).
# usage: tokenizer_cli_test.sh FLEXNAS_BINARY TEST_DATA_DIR
set -euo pipefail
FLEXNAS="$1"; DATA="$2"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# a corpus: 40 documents of short sentences over a small vocabulary
awk 'BEGIN { srand(5); split("the a jury court city said found report election money house river music story night", w, " ");
             for (d = 0; d < 40; d++) { if (d) print ""; for (s = 0; s < 30; s++) { n = 4 + int(rand() * 8); line = "";
             for (i = 0; i < n; i++) line = line (i ? " " : "") w[1 + int(rand() * 15)] (rand() < 0.3 ? "s" : ""); print line " ." } } }' > "$T/corpus.txt"

"$FLEXNAS" tokenizer train --corpus "$T/corpus.txt" --vocab-size 40 --out "$T/spm.model" --cache-dir "$T/cache" > "$T/train.out" 2> "$T/train.err" \
  || { rc=$?; cat "$T/train.err"; fail "flexnas tokenizer train exited $rc"; }
grep -q "vocab_size: 40" "$T/train.out" || { cat "$T/train.out"; fail "no vocab_size line"; }
grep -q "special ids: pad 0, unk 1, cls 2, sep 3, mask 4" "$T/train.out" || fail "no special ids line"
[[ -s "$T/spm.model" ]] || fail "no model written"

"$FLEXNAS" tokenizer encode --model "$T/spm.model" --corpus "$T/corpus.txt" --cache-dir "$T/cache" > "$T/enc.out" 2> "$T/enc.err" \
  || { rc=$?; cat "$T/enc.err"; fail "flexnas tokenizer encode exited $rc"; }
grep -q "corpus.txt: 40 documents, 1200 sentences" "$T/enc.out" || { cat "$T/enc.out"; fail "wrong counts"; }
ls "$T"/cache/corpus.txt.*.tok > /dev/null || fail "no token cache"

# a task through the LibTorch side (fine-tuning batches) in the same process
"$FLEXNAS" tokenizer encode --model "$T/spm.model" --task spam --data-dir "$DATA" --cache-dir "$T/cache" > "$T/task.out" 2> "$T/task.err" \
  || { rc=$?; cat "$T/task.err"; fail "flexnas tokenizer encode --task spam exited $rc"; }
grep -q "^spam train: " "$T/task.out" || { cat "$T/task.out"; fail "no spam train line"; }

# bad input: a located message and exit code 2
set +e
"$FLEXNAS" tokenizer train --corpus "$T/missing.txt" --vocab-size 60 --out "$T/x.model" > /dev/null 2> "$T/bad.err"
rc=$?
set -e
[[ $rc -eq 2 ]] || { cat "$T/bad.err"; fail "missing corpus: exit $rc, expected 2"; }
grep -q "missing.txt: error: --corpus: cannot open file" "$T/bad.err" || { cat "$T/bad.err"; fail "message"; }
set +e
"$FLEXNAS" tokenizer encode --model "$T/spm.model" --task glue:nope --data-dir "$DATA" > /dev/null 2> "$T/bad2.err"
rc=$?
set -e
[[ $rc -eq 2 ]] || { cat "$T/bad2.err"; fail "unknown task: exit $rc, expected 2"; }
grep -q "unknown task 'glue:nope'" "$T/bad2.err" || { cat "$T/bad2.err"; fail "message 2"; }
echo "ok"
