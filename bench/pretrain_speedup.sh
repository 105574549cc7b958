#!/usr/bin/env bash
# Pretraining speed against an older flexnas: FlexiBERT-Mini MLM pretraining (vocabulary 8,000,
# batch 32 x 128, 2 threads) with each side's defaults, one fresh process per configuration,
# configurations interleaved within every run, held-out MLM loss after the same steps.
#
# Usage: bench/pretrain_speedup.sh [OLD] [NEW] [RUNS] [STEPS]
#   OLD   an older flexnas: a path to its executable, or a git revision that is built here (a
#         worktree and build under $FLEXNAS_BENCH_DIR, default /tmp/flexnas-bench/<rev>, reused when
#         already built). Default af0a892: main when the training-speed issue was filed.
#   NEW   this build's executable (default build/bin/flexnas)
#   RUNS  interleaved repetitions (default 3); STEPS optimiser updates per process (default 150)
#   THREADS (environment) torch threads per process, default 2.
#
# Configurations, in this order in every run:
#   old-generic  OLD with OPENBLAS_CORETYPE=Prescott: what OLD runs on a CPU whose model name
#                OpenBLAS does not recognise (virtual machines reporting "Intel(R) Xeon(R) Processor"
#                fall back to this generic kernel; the issue's machine did). OLD has no kernel choice
#                of its own, so this is OLD's default there.
#   old-native   OLD with OpenBLAS's own pick on this machine (its default here).
#   new          NEW with its defaults: its own kernel choice (never overriding a value the user set,
#                so OPENBLAS_CORETYPE is unset for it) and --precision auto.
# NEW's defaults are the same on both kinds of machine: on the generic-kernel one it replaces the
# generic pick itself (docs/training.md, "OpenBLAS's kernel on the CPU"), so new/old-generic is the
# speed-up a user of that machine sees, and new/old-native the one a user of this machine sees.
#
# Prints one line per process (tokens/s as `flexnas pretrain` reports it: trained tokens over the
# training time, start-up and evaluation excluded; held-out loss), then per configuration the
# median and range of tokens/s, the ratios of the medians, and the held-out loss difference
# against old-native (the seed is the same, so each side's loss is the same in every run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
old="${1:-af0a892}"
new="${2:-$root/build/bin/flexnas}"
runs="${3:-3}"
steps="${4:-150}"
threads="${THREADS:-2}"
corpus="$root/data/brown/text.txt"
arch="$root/examples/archs/flexibert_mini.json"
die() { echo "pretrain_speedup.sh: $*" >&2; exit 2; }
[ -x "$new" ] || die "NEW '$new' is not an executable (scripts/build.sh builds build/bin/flexnas)"
[ -f "$corpus" ] || die "'$corpus' missing (scripts/fetch-data.sh data)"
case "$runs$steps" in *[!0-9]*) die "RUNS and STEPS must be positive integers, got '$runs' '$steps'";; esac

if [ ! -x "$old" ]; then  # a revision: build it in its own worktree
  rev="$(git -C "$root" rev-parse --verify --quiet "$old^{commit}")" || die "OLD '$old' is neither an executable nor a git revision"
  tree="${FLEXNAS_BENCH_DIR:-/tmp/flexnas-bench}/${rev:0:7}"
  if [ ! -x "$tree/build/bin/flexnas" ]; then
    [ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$rev" >/dev/null
    echo "building flexnas at ${rev:0:7} in $tree (a few minutes with ccache)"
    "$tree/scripts/build.sh" --target flexnas
  fi
  old="$tree/build/bin/flexnas"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tokenizer="${FLEXNAS_BENCH_TOKENIZER:-$work/spm8k.model}"
if [ ! -f "$tokenizer" ]; then
  echo "training an 8,000-piece tokenizer on Brown"
  "$new" tokenizer train --corpus "$corpus" --vocab-size 8000 --out "$tokenizer" >/dev/null
fi

results="$work/results.tsv"
: > "$results"
run_one() {  # name exe coretype(or "") run
  local name="$1" exe="$2" core="$3" run="$4" out="$work/$1-$4" log="$work/$1-$4.log"
  local env_args=(env -u OPENBLAS_CORETYPE)
  [ -n "$core" ] && env_args=(env OPENBLAS_CORETYPE="$core")
  # Each side keeps its own token cache (the cache format is a side's own business).
  if ! "${env_args[@]}" "$exe" pretrain --arch "$arch" --tokenizer "$tokenizer" --corpus "$corpus" --steps "$steps" \
      --batch-size 32 --seq-len 128 --threads "$threads" --seed 1 --max-eval-batches 20 \
      --cache-dir "$work/cache-$name" --out "$out" > "$log" 2>&1; then
    echo "pretrain_speedup.sh: $name run $run failed; its log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  local tps loss kernel
  tps="$(sed -n 's/^tokens\/s: \([0-9.]*\).*/\1/p' "$log" | tail -1)"
  loss="$(sed -n 's/^eval loss: \([0-9.]*\).*/\1/p' "$log" | tail -1)"
  kernel="$(sed -n 's/^flexnas: OpenBLAS kernel \([A-Za-z0-9]*\).*/\1/p' "$log" | tail -1)"
  [ -n "$tps" ] && [ -n "$loss" ] || { echo "pretrain_speedup.sh: no tokens/s or eval loss in $log" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\n' "$name" "$run" "$tps" "$loss" >> "$results"
  printf '%-12s run %d  %8.1f tokens/s  held-out loss %s%s\n' "$name" "$run" "$tps" "$loss" \
    "$( [ -n "$kernel" ] && echo "  (kernel $kernel)" )"
  rm -rf "$out"
}

echo "FlexiBERT-Mini MLM pretraining, vocabulary 8000, batch 32 x 128, $threads threads, $steps steps, $runs runs"
echo "old: $old"
echo "new: $new"
for run in $(seq 1 "$runs"); do
  run_one old-generic "$old" Prescott "$run"
  run_one old-native "$old" "" "$run"
  run_one new "$new" "" "$run"
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
tps, loss = {}, {}
for name, run, t, l in rows:
    tps.setdefault(name, []).append(float(t))
    loss.setdefault(name, []).append(float(l))
med = {k: statistics.median(v) for k, v in tps.items()}
print("\nconfiguration  tokens/s median [min, max]   held-out loss")
for k in ("old-generic", "old-native", "new"):
    print("%-13s  %8.1f [%.1f, %.1f]   %.4f" % (k, med[k], min(tps[k]), max(tps[k]), statistics.median(loss[k])))
print("\nnew / old-generic: %.2fx (the generic-kernel machine)" % (med["new"] / med["old-generic"]))
print("new / old-native:  %.2fx (this machine)" % (med["new"] / med["old-native"]))
ref = statistics.median(loss["old-native"])
for k in ("old-generic", "new"):
    print("held-out loss %s vs old-native: %+.2f %%" % (k, 100 * (statistics.median(loss[k]) - ref) / ref))
EOF
