#!/usr/bin/env bash
# Checks the library's layout: the folders depend one way and the modules have no include cycles.
#
#   tests/layout/check_layout.sh [REPO_ROOT]      (default: this script's ../..)
#
# Scans the .h and .cpp files under the library folders, in dependency order
#   design_space <- datasets <- models <- transfer <- nas <- launch
# and reports three kinds of problem:
#   - a module include cycle: a module is a .h/.cpp pair (same folder, same name; a lone .h or .cpp
#     is a module too); module A depends on B when A's .h or .cpp includes B's header. Every cycle
#     (strongly connected set of modules, any length) is reported once, with one closed path through it;
#   - an upward include: a file of one folder including a file of a folder later in the order (e.g.
#     datasets/x.cpp including models/y.h);
#   - a file of launch/ longer than 500 lines.
# Only quoted includes of files that exist in the repository count ("design_space/error.h"; paths
# are relative to the repository root, as the build's include directory is).
#
# Output: one line per problem, then a summary:
#   cycle: launch/campaign/a -> launch/campaign/b -> launch/campaign/a (launch/campaign/a.cpp:12 includes launch/campaign/b.h; ...)
#   upward include: datasets/x.cpp:5: includes models/y.h (datasets is below models)
#   too long: launch/cli/cmd_x.cpp: 612 lines (at most 500 under launch/)
#   layout: N files, M modules, K includes between modules; P problems
# Exit status 0 when there is no problem, 1 otherwise, 2 on a usage problem. CHECK_LAYOUT_VERBOSE=1
# also lists every module dependency.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${1:-"$script_dir/../.."}
if [[ ! -d $root ]]; then
  echo "check_layout.sh: '$root' is not a directory" >&2
  exit 2
fi
root=$(cd "$root" && pwd)
command -v perl >/dev/null || { echo "check_layout.sh: needs perl (Debian: perl-base)" >&2; exit 2; }

folders=(design_space datasets models transfer nas launch)
for d in "${folders[@]}"; do
  if [[ ! -d "$root/$d" ]]; then
    echo "check_layout.sh: $root/$d does not exist (not a flexnas checkout?)" >&2
    exit 2
  fi
done

(cd "$root" && find "${folders[@]}" -type f \( -name '*.h' -o -name '*.cpp' \) -print0 | sort -z) |
  CHECK_ROOT="$root" CHECK_FOLDERS="${folders[*]}" perl -e '
use strict;
use warnings;

my $root = $ENV{CHECK_ROOT};
my @folders = split / /, $ENV{CHECK_FOLDERS};
my %rank;
$rank{$folders[$_]} = $_ for 0 .. $#folders;
my $verbose = ($ENV{CHECK_LAYOUT_VERBOSE} // "") ne "" && $ENV{CHECK_LAYOUT_VERBOSE} ne "0";
my $max_lines = 500;

local $/ = "\0";
my @files = grep { $_ ne "" } map { chomp; $_ } <STDIN>;
local $/ = "\n";
my %exists = map { $_ => 1 } @files;

sub module_of { my ($f) = @_; (my $m = $f) =~ s/\.(h|cpp)$//; return $m; }
sub folder_of { my ($f) = @_; return (split /\//, $f)[0]; }

my @problems;
my %deps;      # module -> { module -> "file:line includes header" }
my %modules;
my $edges = 0;
for my $file (@files) {
  my $m = module_of($file);
  $modules{$m} = 1;
  open(my $fh, "<", "$root/$file") or die "cannot read $file: $!\n";
  my $n = 0;
  while (my $line = <$fh>) {
    ++$n;
    next unless $line =~ /^\s*#\s*include\s*"([^"]+)"/;
    my $inc = $1;
    next unless $exists{$inc};
    my ($from, $to) = (folder_of($file), folder_of($inc));
    if ($rank{$to} > $rank{$from}) {
      push @problems, "upward include: $file:$n: includes $inc ($from is below $to)";
    }
    my $target = module_of($inc);
    next if $target eq $m;
    $edges++ unless exists $deps{$m}{$target};
    $deps{$m}{$target} //= "$file:$n includes $inc";
  }
  close($fh);
  if ($file =~ m{^launch/} && $n > $max_lines) {
    push @problems, "too long: $file: $n lines (at most $max_lines under launch/)";
  }
}

if ($verbose) {
  for my $m (sort keys %deps) {
    print "depends: $m -> $_ ($deps{$m}{$_})\n" for sort keys %{$deps{$m}};
  }
}

# Strongly connected components (Tarjan, iterative): each with more than one module is a cycle.
my ($index, @stack, %on_stack, %idx, %low, @sccs) = (0);
for my $start (sort keys %modules) {
  next if exists $idx{$start};
  my @work = ([$start, [sort keys %{$deps{$start} // {}}]]);
  $idx{$start} = $low{$start} = $index++;
  push @stack, $start;
  $on_stack{$start} = 1;
  while (@work) {
    my ($v, $next) = @{$work[-1]};
    if (@$next) {
      my $w = shift @$next;
      if (!exists $idx{$w}) {
        $idx{$w} = $low{$w} = $index++;
        push @stack, $w;
        $on_stack{$w} = 1;
        push @work, [$w, [sort keys %{$deps{$w} // {}}]];
      } elsif ($on_stack{$w}) {
        $low{$v} = $idx{$w} if $idx{$w} < $low{$v};
      }
      next;
    }
    pop @work;
    if (@work) {
      my $u = $work[-1][0];
      $low{$u} = $low{$v} if $low{$v} < $low{$u};
    }
    if ($low{$v} == $idx{$v}) {
      my @scc;
      while (1) {
        my $w = pop @stack;
        delete $on_stack{$w};
        push @scc, $w;
        last if $w eq $v;
      }
      push @sccs, [sort @scc] if @scc > 1;
    }
  }
}

# One closed path through each cycle: breadth-first from its first module back to itself.
for my $scc (sort { $a->[0] cmp $b->[0] } @sccs) {
  my %in = map { $_ => 1 } @$scc;
  my $first = $scc->[0];
  my %prev;
  my @queue = ($first);
  my $found;
  while (@queue && !defined $found) {
    my $v = shift @queue;
    for my $w (sort keys %{$deps{$v} // {}}) {
      next unless $in{$w};
      if ($w eq $first) { $found = $v; last; }
      next if exists $prev{$w};
      $prev{$w} = $v;
      push @queue, $w;
    }
  }
  my @path = ($first);
  for (my $v = $found; $v ne $first; $v = $prev{$v}) { splice @path, 1, 0, $v; }
  push @path, $first;
  my @why = map { $deps{$path[$_]}{$path[$_ + 1]} } 0 .. $#path - 1;
  my $extra = @$scc > @path - 1 ? " (cycle of " . scalar(@$scc) . " modules: @$scc)" : "";
  push @problems, "cycle: " . join(" -> ", @path) . " (" . join("; ", @why) . ")$extra";
}

print "$_\n" for @problems;
printf "layout: %d files, %d modules, %d includes between modules; %d problems\n",
  scalar(@files), scalar(keys %modules), $edges, scalar(@problems);
exit(@problems ? 1 : 0);
'
