#!/usr/bin/env python3
"""Where a replayed policy spends its trials, by (hidden width, depth) group of the architectures.

    bench/replay_groups.py LIB.json TRIALS.csv [TRIALS.csv ...] [--by 50]

LIB.json is the library the replay used; TRIALS.csv comes from `flexnas replay --trials-csv`
(several files, e.g. one policy's seeds 0..14 and 15..29, are taken together; a seed must not
repeat across them). The "best group" is the group of the best score in the CSVs. It prints the
mean number of trials per seed spent in each group within the first --by trials, and how many of
the trials outside the best group each step kind proposed. Standard library only (no numpy).
"""
import argparse
import collections
import csv
import json
import sys


def group_of(model_dict):
    widths = sorted(set(model_dict["h"]))
    return "h" + "/".join(str(w) for w in widths) + " x" + str(model_dict["l"])


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("library")
    parser.add_argument("trials", nargs="+")
    parser.add_argument("--by", type=int, default=50)
    args = parser.parse_args(argv[1:])
    by = args.by
    library = json.load(open(args.library))
    groups = [group_of(m) for m in library["model_dicts"]]
    seeds = collections.defaultdict(list)
    best = (float("-inf"), None)
    for path in args.trials:
        with open(path) as f:
            for row in csv.DictReader(f):
                index = int(row["index"])
                seeds[row["seed"]].append((index, row["kind"]))
                if row["score"] and float(row["score"]) > best[0]:
                    best = (float(row["score"]), groups[index])
    best_group = best[1]
    per_group = collections.Counter()
    outside = collections.Counter()
    for trials in seeds.values():
        for index, kind in trials[:by]:
            per_group[groups[index]] += 1
            if groups[index] != best_group:
                outside[kind] += 1
    n = len(seeds)
    print(f"{' + '.join(args.trials)}: {n} seeds, first {by} trials; best group {best_group} (best score {best[0]:g})")
    for g, c in sorted(per_group.items(), key=lambda x: -x[1]):
        print(f"  {g}: {c / n:.1f} trials per seed")
    kinds = ", ".join(f"{k} {c / n:.1f}" for k, c in sorted(outside.items(), key=lambda x: -x[1]))
    print(f"  outside the best group, per seed, by step kind: {kinds}")

if __name__ == "__main__":
    main(sys.argv)
