#!/usr/bin/env bash
# Checks that every citation of the reference implementation in the code and docs resolves inside the
# repository: each "spec §N.M" / "§N.M" and each "defect N" must have a heading in docs/reference.md
# ("## §N ...", "### §N.M ...", "### Defect N: ...").
#
#   tests/docs/check_citations.sh [REPO_ROOT]      (default: this script's ../..)
#
# Scans the .cpp, .h, .py, .sh and .md files under design_space datasets models transfer nas launch
# bench python scripts tests docs, except docs/reference.md itself and this script (whose comments
# show the forms). Recognised forms:
#   sections: "spec §8.2", "§8.2", "(§8.3)", "§5.5/§5.6", "§1.3-1.4" and "§4.3–4.4" (ranges expand
#             to every subsection in between), "spec §4.4, §6";
#   defects:  "defect 32", "Defect 11 fix", "defects 32 and 41", "defects 28, 33, 34 and 35",
#             "defects 18–19" / "29-31" (ranges expand), "defects (28, 33)", test names such as
#             "Defect34NoAbsolutePositionTable...".
# A citation whose line ends with "defects" or "spec" and continues on the next line (after a comment
# marker) is joined with that line.
#
# Qualified citations are ignored: a "§" (or "defect") directly preceded by another document's name,
# such as "DESIGN.md §3" or "STYLE.md §2", refers to that document, not to docs/reference.md; so do the
# further sections of the same list ("DESIGN.md §3, §4"). A citation qualified with the spec's own file
# name (FLEXIBERT_SPEC.md) counts as a spec citation.
#
# Output: one line per missing heading ("FILE:LINE: defect N: no heading 'Defect N' in
# docs/reference.md"), then "citations: N checked, M missing". Exit status 0 when nothing is missing,
# 1 otherwise, 2 on a usage problem. CHECK_CITATIONS_VERBOSE=1 also lists every citation found and
# every qualified one ignored.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${1:-"$script_dir/../.."}
if [[ ! -d $root ]]; then
  echo "check_citations.sh: '$root' is not a directory" >&2
  exit 2
fi
root=$(cd "$root" && pwd)
reference="$root/docs/reference.md"
if [[ ! -f $reference ]]; then
  echo "check_citations.sh: $reference does not exist" >&2
  exit 2
fi
command -v perl >/dev/null || { echo "check_citations.sh: needs perl (Debian: perl-base)" >&2; exit 2; }

self=$(cd "$script_dir" && pwd)/$(basename "${BASH_SOURCE[0]}")
dirs=(design_space datasets models transfer nas launch bench python scripts tests docs)

files=()
for d in "${dirs[@]}"; do
  [[ -d "$root/$d" ]] || continue
  while IFS= read -r -d '' f; do
    [[ $f == "$reference" || $f == "$self" || $f == "$root/tests/docs/check_citations.sh" ]] && continue
    files+=("$f")
  done < <(find "$root/$d" -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.py' -o -name '*.sh' -o -name '*.md' \) -print0 | sort -z)
done

printf '%s\0' "${files[@]}" | CHECK_ROOT="$root" CHECK_REFERENCE="$reference" perl -e '
use strict;
use warnings;

# Everything is handled as bytes: "\xC2\xA7" is the section sign, "\xE2\x80\x93"/"\xE2\x80\x94" dashes.
my $SECT = qr/\xC2\xA7/;
my $NUM = qr/\d+(?:\.\d+)*/;
my $DASH = qr/(?:-|\xE2\x80\x93|\xE2\x80\x94)/;
my $root = $ENV{CHECK_ROOT};
my $verbose = ($ENV{CHECK_CITATIONS_VERBOSE} // "") ne "" && $ENV{CHECK_CITATIONS_VERBOSE} ne "0";

# Headings of docs/reference.md.
my (%section, %defect);
open(my $rf, "<:raw", $ENV{CHECK_REFERENCE}) or die "cannot read $ENV{CHECK_REFERENCE}: $!\n";
while (my $l = <$rf>) {
  next unless $l =~ /^#{1,6}\s+(.*)$/;
  my $h = $1;
  $section{$1} = 1 if $h =~ /^$SECT\s*($NUM)(?![\d.]*\d)/;
  $defect{$1 + 0} = 1 if $h =~ /^Defect\s+(\d+)\b/i;
}
close($rf);

# A document name right before a citation ("DESIGN.md ", "STYLE.md "): the citation is that
# document'"'"'s, unless it is the spec itself.
sub qualifier {
  my ($before) = @_;
  return undef unless $before =~ /([A-Za-z0-9_.\/-]*[A-Za-z0-9_-]\.(?:md|txt|rst|pdf|html?))[\s:,]*$/;
  my $doc = $1;
  return undef if $doc =~ /(?:^|\/)FLEXIBERT_SPEC\.md$/i;
  return $doc;
}

sub expand_sections {
  my ($a, $b) = @_;
  return ($a) unless defined $b;
  my @a = split /\./, $a;
  my @b = split /\./, $b;
  if (@a == @b && join(".", @a[0 .. $#a - 1]) eq join(".", @b[0 .. $#b - 1]) && $a[-1] <= $b[-1]
      && $b[-1] - $a[-1] <= 20) {
    my $p = @a > 1 ? join(".", @a[0 .. $#a - 1]) . "." : "";
    return map { $p . $_ } ($a[-1] .. $b[-1]);
  }
  return ($a, $b);
}

my ($checked, $missing, $ignored) = (0, 0, 0);
my %seen;
local $/ = "\0";
my @files = map { chomp; $_ } <STDIN>;
local $/ = "\n";
for my $file (@files) {
  next if $file eq "";
  (my $rel = $file) =~ s/^\Q$root\E\/?//;
  open(my $fh, "<:raw", $file) or die "cannot read $file: $!\n";
  my @lines = <$fh>;
  close($fh);
  for my $i (0 .. $#lines) {
    (my $cur = $lines[$i]) =~ s/\r?\n\z//;
    my $nxt = $i < $#lines ? $lines[$i + 1] : "";
    $nxt =~ s/\r?\n\z//;
    $nxt =~ s/^\s*(?:\/\/\/?|#+|\*+|--)?\s*//;
    my $text = "$cur $nxt";
    my $limit = length($cur);
    my $lineno = $i + 1;
    my @found;  # [kind, number]

    # Sections.
    pos($text) = undef;
    my $prev_qualified;
    while ($text =~ /$SECT\s*($NUM)/g) {
      my ($start, $end, $n) = ($-[0], $+[0], $1);
      last if $start >= $limit;
      my $before = substr($text, 0, $start);
      my $doc = qualifier($before);
      if (!defined $doc && defined $prev_qualified && $before =~ /$SECT\s*$NUM\s*(?:,|\/|and|or|&|$DASH)\s*$/) {
        $doc = $prev_qualified;
      }
      my $upper;
      pos($text) = $end;
      if ($text =~ /\G\s*$DASH\s*(?:$SECT\s*)?($NUM)(?![\w.]*\w)/gc) {
        $upper = $1;
      } else {
        pos($text) = $end;
      }
      if (defined $doc) {
        $prev_qualified = $doc;
        $ignored++;
        print "$rel:$lineno: ignored: $doc \xC2\xA7$n\n" if $verbose;
        next;
      }
      $prev_qualified = undef;
      push @found, ["section", $_] for expand_sections($n, $upper);
    }

    # Defects (the section loop may have stopped early, leaving pos() inside the text).
    pos($text) = undef;
    while ($text =~ /\bdefects?\s*\(?\s*(\d+)(?!\d)/gi) {
      my ($start, $end, $n) = ($-[0], $+[0], $1);
      last if $start >= $limit;
      my $doc = qualifier(substr($text, 0, $start));
      my @nums;
      my $last = $n;
      push @nums, $n;
      pos($text) = $end;
      while (1) {
        if ($text =~ /\G\s*(?:$DASH|to)\s*(\d+)(?![\d.]*\d)/gc) {
          my $hi = $1;
          push @nums, ($last + 1 .. $hi) if $hi > $last && $hi - $last <= 50;
          push @nums, $hi if $hi <= $last || $hi - $last > 50;
          $last = $hi;
        } elsif ($text =~ /\G\s*(?:,\s*and|,|and|&|or)\s*(\d+)(?![\d.]*\d)/gc) {
          push @nums, $1;
          $last = $1;
        } else {
          last;
        }
      }
      if (defined $doc) {
        $ignored++;
        print "$rel:$lineno: ignored: $doc defect $n\n" if $verbose;
        next;
      }
      push @found, ["defect", $_ + 0] for @nums;
    }

    for my $c (@found) {
      my ($kind, $n) = @$c;
      next if $seen{"$rel\0$lineno\0$kind\0$n"}++;
      $checked++;
      my $ok = $kind eq "section" ? $section{$n} : $defect{$n};
      my $what = $kind eq "section" ? "spec \xC2\xA7$n" : "defect $n";
      my $heading = $kind eq "section" ? "\xC2\xA7$n" : "Defect $n";
      print "$rel:$lineno: $what\n" if $verbose && $ok;
      next if $ok;
      $missing++;
      print "$rel:$lineno: $what: no heading \x27$heading\x27 in docs/reference.md\n";
    }
  }
}
print "qualified citations of other documents ignored: $ignored\n" if $verbose;
print "citations: $checked checked, $missing missing\n";
exit($missing ? 1 : 0);
'
