#!/usr/bin/env python3
"""How much a simple model could exploit NAS-Bench-BERT within its best (width, depth) group.

    bench/nbb_group_oracle.py [BERT_benchmark.json] [--runs 400]

An "oracle" knows from the first trial that the best architectures are 256 wide with 4 layers
(133 of the 491 distinct architectures) and draws only from them: 10 at random, then greedily the
best prediction of a ridge regression on per-architecture counts (operations, types, 4-head
layers, 1024-wide and 3-deep feed-forward stacks), refitted after every trial, up to 40 trials
(a 50-trial budget with 10 initial trials outside the group's knowledge). It prints how often the
table's best (75.13) and one of its two best (>= 74.7338) are found, against drawing uniformly
from the group. Not a policy flexnas offers: the group is given, not learnt. It shows whether the
scores within the group carry a signal a surrogate could use. Needs python3-numpy (Debian).

Two fits are reported. "centred" learns the mean score (the ridge is fitted to the scores minus
their mean): a model learnt from the results alone. "raw" fits the raw scores (about 74) with the
constant column penalised like the others. That fit cannot put the level into the intercept alone,
so it spreads it over the count columns. Every count column has a positive mean, so the fit favours
architectures with more of everything: more 4-head layers, more 1024-wide and more 3-deep stacks.
That is a built-in "bigger is better" prior, not something learnt from the scores.
"""
import argparse
import json
import sys

import numpy as np

OPS = ["SA_SDP", "SA_WMA", "LT_DFT", "LT_DCT", "DSC_5", "DSC_9"]


def counts(record):
    layers = record["hparams"]["model_hparam_overrides"]["nas_config"]["encoder_layers"]
    ops = [l["operation_type"] + "_" + str(l["operation_parameter"]) for l in layers]
    f = [ops.count(o) for o in OPS]
    f += [sum(o.startswith(t + "_") for o in ops) for t in ("SA", "LT", "DSC")]
    f += [sum(l["num_operation_heads"] == 4 for l in layers), sum(l["feed_forward_dimension"] == 1024 for l in layers),
          sum(l["num_feed_forward"] == 3 for l in layers), 1.0]
    return f


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?", default="examples/nas-bench-bert/BERT_benchmark.json")
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args(argv[1:])
    runs, path = args.runs, args.table
    distinct = {}
    for r in json.load(open(path)):  # the first record of a repeated architecture is kept
        distinct.setdefault(json.dumps(r["hparams"]["model_hparam_overrides"], sort_keys=True), r)
    group = [r for r in distinct.values() if r["hparams"]["model_hparam_overrides"]["hidden_size"] == 256
             and len(r["hparams"]["model_hparam_overrides"]["nas_config"]["encoder_layers"]) == 4]
    y = np.array([r["scores"]["glue"] for r in group])
    x = np.array([counts(r) for r in group], float)
    n, best, second = len(y), np.sort(y)[-1], np.sort(y)[-2]
    print(f"{path}: {len(distinct)} distinct architectures, {n} of them 256 wide with 4 layers; best {best:g}, "
          f"2nd {second:g}")
    print(f"uniform draws, 40 of {n}: P(best found) = {40 / n:.2f}, "
          f"P(one of the two best) = {1 - (n - 40) * (n - 41) / (n * (n - 1)):.2f}")
    for centred in (True, False):
        for lam in (1.0, 10.0):
            found_best = found_top2 = 0
            for seed in range(runs):
                rng = np.random.default_rng(seed)
                seen = list(rng.choice(n, 10, replace=False))
                while len(seen) < 40:
                    a = x[seen]
                    t = y[seen] - (y[seen].mean() if centred else 0.0)
                    w = np.linalg.solve(a.T @ a + lam * np.eye(x.shape[1]), a.T @ t)
                    p = x @ w
                    p[seen] = -np.inf
                    seen.append(int(np.argmax(p)))
                top = y[seen].max()
                found_best += top >= best
                found_top2 += top >= second
            print(f"greedy ridge ({'centred' if centred else 'raw'} scores, lambda {lam:g}), 10 random + 30 greedy, "
                  f"{runs} runs: P(best found) = {found_best / runs:.2f}, P(one of the two best) = {found_top2 / runs:.2f}")


if __name__ == "__main__":
    main(sys.argv)
