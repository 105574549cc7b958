#pragma once
// The search-policy interface a campaign scheduler drives (issue 5/6), and the state every policy
// shares. Torch-free header: the scheduler includes it without pulling in LibTorch.
//
// Protocol (asynchronous):
//   auto p = policy->propose();          // next library index (now pending), or nullopt when done
//   ... train it (other proposals may be asked for meanwhile) ...
//   policy->observe(p->index, score);    // score (higher is better) or std::nullopt on failure
// A pending or completed architecture is never proposed again. Retrying a failed trial is the
// scheduler's job: it reports a failure only once its retries are exhausted.
//
// Resume: construct the policy with the same library, options and seed, then call
// `restore(history)` with the trials in the order their results were observed (completed and
// failed ones) followed by the still-pending ones. Every random draw of a proposal comes from a
// stream seeded by (seed, proposal number) and every surrogate refit happens inside `observe`, so
// replaying the observations in order re-derives the same state, and the next proposal equals
// the one an uninterrupted run would have made.
//
// Measured constraints (max_latency_ms, max_memory_mb) and the latency cost: latency and memory
// cannot be known for every library architecture up front, so they are measured lazily. Inside
// propose(), an architecture the policy chose whose measurement is not known is measured once
// through the function given to set_measure(); if it violates a constraint it is excluded (never
// proposed again, never trained, not counted by the budget) and the policy chooses again with the
// next random stream. The exclusion is logged in order (SearchState::rejections(), with the
// measured values and the number of observations before it); on resume, `restore` receives those
// records (status kExcluded) among the others and replays them, so the random streams, the open
// set and the next proposal equal an uninterrupted run's. Records of trials carry their
// measurement too (cost: latency needs it for the objective).
#include <chrono>
#include <functional>
#include <map>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "design_space/enum_names.h"
#include "design_space/library.h"
#include "nas/cost_model.h"

namespace flexnas::nas {

enum class TrialStatus : uint8_t { kOpen = 0, kPending, kCompleted, kFailed, kExcluded };

/// What proposed an architecture (kept with the trial so resume can replay it).
struct Proposal {
  int64_t index = -1;
  std::string kind;  // "init", "optimisation", "uncertainty", "diversity", "random", "mutation"
};

/// Latency and memory of one architecture, measured on the campaign's hardware (models/profile:
/// forward pass of one batch; peak tensor memory of a training step).
struct Measurement {
  double latency_ms = 0;
  double memory_mb = 0;
  std::string error;  // non-empty: the measurement failed (the architecture is excluded)
};

/// One trial as the scheduler stores it, or (status kExcluded) a proposal excluded by a measured
/// constraint.
struct TrialRecord {
  int64_t index = -1;
  std::string kind;
  TrialStatus status = TrialStatus::kPending;  // kCompleted, kFailed, kPending or kExcluded
  double score = 0;                            // meaningful when kCompleted (0.0 is a real score)
  std::optional<Measurement> measured;         // latency/memory when measured (always for kExcluded)
  int64_t observed_before = -1;                // kExcluded: observations made before the exclusion
  std::string reason;                          // kExcluded: which constraint (or "measurement failed: ...")
};

/// What the second objective (cost_weight term, Pareto fronts) counts.
enum class CostKind { kParameters, kFlops, kLatency };
/// parameters, flops, latency
const EnumNames<CostKind>& cost_kind_names();

/// Settings every policy shares. Defaults here are the only defaults.
struct PolicyOptions {
  uint64_t seed = 0;
  int64_t max_trials = 0;          // budget: proposals in total (0 = no limit)
  double max_seconds = 0;          // budget: wall time since construction (0 = no limit)
  int64_t max_parameters = 0;      // constraint: architectures above are never proposed (0 = none)
  CostSettings cost;               // how parameters are counted for the constraint
  // Second objective: the policy maximises score - cost_weight * log2(cost), cost in units of
  // `cost_kind`: parameters / 1e6, forward MFLOPs per token (cost.sequence_length), or measured
  // latency in ms (0 = score only). Pareto fronts are reported either way.
  double cost_weight = 0;
  CostKind cost_kind = CostKind::kParameters;
  // Measured constraints (0 = none): architectures measured above are excluded when proposed.
  double max_latency_ms = 0;
  double max_memory_mb = 0;
};

/// Per-architecture status, the observation log and the best result so far.
class SearchState {
 public:
  explicit SearchState(int64_t library_size);

  int64_t size() const { return int64_t(status_.size()); }
  TrialStatus status(int64_t index) const { return status_[size_t(index)]; }
  bool is_open(int64_t index) const { return status_[size_t(index)] == TrialStatus::kOpen; }
  /// Open = neither pending, completed, failed nor excluded by a constraint.
  std::vector<int64_t> open_indices() const;
  int64_t num_open() const { return num_open_; }

  void set_status(int64_t index, TrialStatus status);
  const std::vector<TrialRecord>& observations() const { return observations_; }  // completed + failed, in order
  std::vector<int64_t> pending() const;
  int64_t num_pending() const { return num_pending_; }
  int64_t num_completed() const { return num_completed_; }
  int64_t proposals() const { return proposals_; }
  /// Proposals excluded by a measured constraint, in order (status kExcluded, with the values).
  const std::vector<TrialRecord>& rejections() const { return rejections_; }
  const std::string& kind_of(int64_t index) const { return kinds_[size_t(index)]; }

  /// Best objective value among completed trials (nullopt before the first).
  std::optional<double> best() const { return best_; }
  int64_t best_index() const { return best_index_; }

 private:
  friend class Policy;
  std::vector<TrialStatus> status_;
  std::vector<std::string> kinds_;
  std::vector<TrialRecord> observations_;
  std::vector<TrialRecord> rejections_;
  std::optional<double> best_;
  int64_t best_index_ = -1;
  int64_t num_open_ = 0, num_pending_ = 0, num_completed_ = 0, proposals_ = 0;
};

class Policy {
 public:
  Policy(const Library& library, PolicyOptions options);
  virtual ~Policy() = default;
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  virtual std::string name() const = 0;

  /// The next architecture to evaluate, marked pending; nullopt when the budget is spent, nothing
  /// is left to propose, or the policy has converged and stops.
  std::optional<Proposal> propose();
  /// The result of a pending trial: its score (higher is better), or nullopt if it failed.
  void observe(int64_t index, std::optional<double> score);
  /// Declares a trial as running (the scheduler started it, e.g. on resume); it is never proposed.
  void mark_pending(int64_t index, const std::string& kind);
  /// Rebuilds the state from stored trials and exclusions (see the header comment). Call on a
  /// fresh policy (after set_measure when measurements are needed).
  void restore(const std::vector<TrialRecord>& history);

  /// Measures one library architecture (latency, memory); called at most once per architecture.
  using MeasureFn = std::function<Measurement(int64_t index)>;
  void set_measure(MeasureFn measure) { measure_ = std::move(measure); }
  /// True when proposals must be measured: a latency or memory constraint, or cost_kind latency.
  bool needs_measurement() const;
  /// The measurement of `index`, when known.
  const std::optional<Measurement>& measurement(int64_t index) const { return measurements_[size_t(index)]; }
  /// "" when `m` meets the constraints; else what it violates ("latency 12.5 ms > max_latency_ms 10").
  std::string violation(const Measurement& m) const;
  /// The second objective's value of `index` (parameters / 1e6, MFLOPs per token or latency ms).
  double cost(int64_t index) const;

  const SearchState& state() const { return state_; }
  const Library& library() const { return library_; }
  const PolicyOptions& options() const { return options_; }
  /// True once the policy stopped by itself (convergence), not counting the budget.
  virtual bool converged() const { return false; }
  /// Parameters of every library architecture (the constraint and the second objective).
  const std::vector<int64_t>& parameters() const { return parameters_; }
  /// The value the policy maximises for a measured score at `index` (score or score - cost term).
  double objective(int64_t index, double score) const;
  /// Human-readable one-line state (step counts, convergence counter), for logs.
  virtual std::string describe() const { return name(); }

 protected:
  /// Chooses among open indices; `rng` is seeded by (seed, proposal number). Return -1 if none.
  virtual Proposal choose(std::mt19937_64& rng) = 0;
  /// Called after the state recorded an observation (score is the objective value, not raw).
  virtual void on_observe(int64_t index, std::optional<double> objective, const std::string& kind) {}
  /// Called when an open architecture leaves the open set by a proposal or mark_pending: it
  /// became pending, or it was proposed and then excluded by a measured constraint.
  virtual void on_pending(int64_t index) {}
  /// Uniformly random open index, or -1.
  int64_t random_open(std::mt19937_64& rng) const;

  const Library& library_;
  PolicyOptions options_;
  SearchState state_;
  std::vector<int64_t> parameters_;
  std::vector<double> flops_;  // forward FLOPs per token (cost_kind flops)
  std::chrono::steady_clock::time_point start_;

 private:
  /// Measures `index` unless known (through measure_).
  const Measurement& measure(int64_t index);
  /// An open architecture that was chosen becomes excluded (logged in order).
  void exclude(int64_t index, const std::string& kind, const std::string& reason);
  std::vector<std::optional<Measurement>> measurements_;
  MeasureFn measure_;
  int64_t excluded_proposals_ = 0;  // random streams are numbered by proposals + exclusions
};

/// A seeded stream for one purpose: splitmix64 of (seed, stream, counter).
uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t counter);

/// Random search: a uniformly random open architecture each time.
class RandomPolicy : public Policy {
 public:
  using Policy::Policy;
  std::string name() const override { return "random"; }

 protected:
  Proposal choose(std::mt19937_64& rng) override;
};

/// Regularized evolution (Real et al. 2019): the population is the last `population` completed
/// trials (oldest ages out); each proposal samples `sample_size` members, mutates the best of them
/// (one change in the model dict) and snaps the child to the library: a uniformly random open
/// library architecture that differs from the parent in exactly one field if any, else the open
/// architecture with the fewest differing fields (ties: nearest embedding to the parent).
struct EvolutionOptions {
  int64_t population = 20;
  int64_t sample_size = 5;
};

class EvolutionPolicy : public Policy {
 public:
  EvolutionPolicy(const Library& library, PolicyOptions options, EvolutionOptions evolution = {});
  std::string name() const override { return "evolution"; }

 protected:
  Proposal choose(std::mt19937_64& rng) override;

 private:
  EvolutionOptions evolution_;
};

/// Number of differing model-dict fields between two architectures: per layer hidden size,
/// operation (type + parameter, or the head list in the hetero format), head count, FFN widths;
/// each missing or extra layer counts as 4.
int64_t field_distance(const Architecture& a, const Architecture& b);

/// Regularized evolution's mutation (EvolutionPolicy, Nsga2Policy): a uniformly random open
/// architecture at the smallest field distance from `parent` (one field when any is left); ties
/// beyond one field broken by the nearest embedding. -1 when nothing is open.
int64_t snapped_mutation(const Library& library, const SearchState& state, int64_t parent, std::mt19937_64& rng);

}  // namespace flexnas::nas
