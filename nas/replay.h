#pragma once
// Replaying a search policy on a tabular benchmark: each proposal is "trained" by looking its
// score up, so a whole search takes seconds. Used by `flexnas replay` and the acceptance runs.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "design_space/library.h"
#include "nas/boshnas.h"
#include "nas/multi_objective.h"
#include "nas/policy.h"
#include "nas/policy_factory.h"

namespace flexnas::nas {

struct ReplayOptions {
  PolicyKind policy = PolicyKind::kBoshnas;
  int64_t budget = 100;                          // trials per seed
  int64_t seeds = 1;                             // seeds seed, seed+1, ...
  uint64_t seed = 0;
  std::vector<int64_t> checkpoints{10, 25, 50, 100};  // "best score found at budget B"
  PolicyOptions policy_options;                  // its seed and max_trials are set per run
  BoshnasOptions boshnas;
  EvolutionOptions evolution;
  ParetoOptions pareto;
  Nsga2Options nsga2;
};

/// Targets derived from the table's scores of the library entries.
struct ReplayTargets {
  double best = 0;        // the best score in the library
  double top1 = 0;        // score of the ceil(1%)-th best: reaching >= it = a top-1% architecture
  double top5 = 0;        // likewise for 5%
  int64_t scored = 0;     // library entries with a score
  // Second objective (empty parameters = none): the parameters of every library entry, the fixed
  // (score, parameters) hypervolume frame of the scored entries, and the hypervolume of their
  // own front (the ceiling a search can reach).
  std::vector<int64_t> parameters;
  HypervolumeFrame frame;
  double library_hypervolume = std::nan("");
};
/// `parameters` (aligned with `scores`, e.g. Policy::parameters()) adds the hypervolume targets.
ReplayTargets replay_targets(const std::vector<std::optional<double>>& scores,
                             const std::vector<int64_t>& parameters = {});

/// One replayed trial, in proposal order.
struct ReplayTrial {
  int64_t index = -1;            // library index
  std::string kind;              // the policy's step kind: init, optimisation, mutation, ...
  std::optional<double> score;   // looked up; none = no score in the table (a failure)
};

struct SeedResult {
  uint64_t seed = 0;
  int64_t trials = 0;
  double best = 0;                       // best score found
  int64_t best_index = -1;
  int64_t to_best = -1, to_top1 = -1, to_top5 = -1;  // trial (1-based) of first reaching, -1 = never
  std::vector<double> best_at;           // best score after checkpoints[i] trials (NaN if fewer trials)
  std::vector<double> hypervolume_at;    // (score, parameters) hypervolume in targets.frame after
                                         // checkpoints[i] trials (NaN if fewer trials or no parameters)
  std::vector<double> trace;             // best score after each trial
  std::vector<ReplayTrial> trials_log;   // every trial, in order
  double seconds = 0;
  std::string description;               // the policy's final state line
};

/// One sequential replay: propose, look up, observe, until the budget or the library is used up.
/// Entries without a score are observed as failures.
SeedResult replay_seed(const Library& library, const std::vector<std::optional<double>>& scores,
                       const ReplayTargets& targets, const ReplayOptions& options, uint64_t seed);

struct ReplaySummary {
  std::vector<SeedResult> seeds;
  // Medians over seeds; "not reached" counts as +infinity (printed as "> budget").
  double median_to_best = 0, median_to_top1 = 0, median_to_top5 = 0;
  double reached_best = 0, reached_top1 = 0, reached_top5 = 0;  // fractions of seeds
  std::vector<double> median_best_at, mean_best_at;
  std::vector<double> median_hypervolume_at, mean_hypervolume_at;  // NaN where no seed has one
};
ReplaySummary summarise(std::vector<SeedResult> seeds, const ReplayOptions& options);

/// Median with +inf for values < 0 (not reached).
double median_trials(std::vector<int64_t> values);

/// A two-sided 95 % percentile-bootstrap interval (NaN when undefined, e.g. no values).
struct Interval {
  double lo = std::nan(""), hi = std::nan("");
};

/// How much the summary's figures move with the seeds: each is recomputed on `resamples` sets of
/// seeds drawn with replacement (a fixed generator from `rng_seed`, so the same results give the
/// same intervals). Medians of trials may be +inf ("not reached") at either end.
struct ReplayIntervals {
  Interval median_to_best, median_to_top1, median_to_top5;
  std::vector<Interval> median_best_at, mean_best_at;  // per checkpoint
  std::vector<Interval> median_hypervolume_at, mean_hypervolume_at;
};
ReplayIntervals bootstrap_intervals(const ReplaySummary& summary, const ReplayOptions& options,
                                    int64_t resamples = 2000, uint64_t rng_seed = 0);

/// Policy a minus policy b, replayed on the same seeds (paired): the difference of their medians of
/// trials to a top-1 % architecture (a seed that never reached it counts as budget + 1 trials, so
/// the difference is finite) and of their mean best scores at each checkpoint, each with an
/// interval from resampling seeds (the pair of one seed stays together); likewise their mean
/// (score, parameters) hypervolumes at each checkpoint.
struct PairedDifference {
  double estimate = std::nan("");
  Interval interval;
};
struct ReplayComparison {
  PairedDifference median_to_top1;           // trials, a - b (< 0: a is faster)
  std::vector<PairedDifference> mean_best_at;  // score, a - b (> 0: a finds better)
  std::vector<PairedDifference> mean_hypervolume_at;  // hypervolume, a - b (> 0: a's fronts are better)
  int64_t a_sooner = 0, b_sooner = 0, same = 0;  // seeds by which reached a top-1 % architecture first
};
/// Throws when a and b were not replayed on the same seeds.
ReplayComparison compare_replays(const ReplaySummary& a, const ReplaySummary& b, const ReplayOptions& options,
                                 int64_t resamples = 2000, uint64_t rng_seed = 0);

}  // namespace flexnas::nas
