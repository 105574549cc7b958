#pragma once
// Multi-objective search over (score, parameters): score up, parameters down (issue 22).
//
// The parameter count of every library architecture is exact before training (model dicts,
// nas/cost_model.h), so only the score is unknown. Two policies, built by nas/policy_factory.h:
//   pareto — expected hypervolume improvement (EHVI) with the BOSHNAS surrogate: the surrogate's
//            mean and uncertainty for the score, the exact parameter count, and the current front
//            give every open architecture a closed-form EHVI; the largest is proposed.
//   nsga2  — regularized evolution with NSGA-II's non-dominated sorting: a tournament on (front
//            rank, crowding distance) over the population, the winner mutated in one model-dict
//            field and snapped to the library as EvolutionPolicy does.
// The hypervolume that judges them lives here too (HypervolumeFrame): a fixed frame per table so
// that figures are comparable across policies and seeds. See docs/multi_objective.md.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "design_space/enum_names.h"
#include "nas/boshnas.h"
#include "nas/pareto.h"
#include "nas/policy.h"
#include "nas/surrogate.h"

namespace flexnas::nas {

// ---- the measure ----

/// The fixed frame of the (score, parameters) hypervolume for one table and library: the
/// reference point is (worst score, largest parameter count) over the library entries that have a
/// score; both axes are scaled to [0, 1] by the entries' ranges: u = (score - worst) / (best -
/// worst), v = (largest - parameters) / (largest - smallest), both maximised from (0, 0). A
/// hypervolume is then a fraction of the unit square; the library's own front is the ceiling.
struct HypervolumeFrame {
  double worst_score = 0, best_score = 0;
  int64_t min_parameters = 0, max_parameters = 0;
  bool valid() const { return best_score > worst_score || max_parameters > min_parameters; }
};
/// The frame of `scores` (aligned with the library; nullopt = no score) and `parameters` (same
/// length). Throws an internal error when no entry has a score.
HypervolumeFrame hypervolume_frame(const std::vector<std::optional<double>>& scores,
                                   const std::vector<int64_t>& parameters);
/// Hypervolume of the (score, parameters) results inside the frame, in [0, 1]. Results at the
/// reference in either axis add nothing; results outside the frame are clipped to it.
double frame_hypervolume(const HypervolumeFrame& frame, const std::vector<std::pair<double, int64_t>>& results);

/// Hypervolume improvement of a point (c, y) (both maximised) over a set of maximised points,
/// reference (0, y_ref) in cheapness and y_ref in y: exact, piecewise linear in y.
/// `front` may hold dominated points (they add nothing). c is clipped to >= 0.
double hypervolume_improvement(const std::vector<Point2>& front, double c, double y, double y_ref);
/// Its expectation for y ~ N(mean, sd²): sum over the steps of the front below c of
/// width · ((mean - h) Φ(z) + sd φ(z)), z = (mean - h) / sd, h the step's height (at least y_ref).
/// sd <= 0 gives the deterministic improvement at y = mean.
double expected_hypervolume_improvement(const std::vector<Point2>& front, double c, double mean, double sd,
                                        double y_ref);

// ---- the surrogate policy ----

struct ParetoOptions {
  int64_t num_init = 10;  // random initial designs before the surrogate proposes
  // Surrogate targets and inputs, as in BOSHNAS (nas/boshnas.h): EHVI is computed in target space
  // (y = 1 - normalised loss, reference y = 0), where "minmax" is linear in the score.
  SurrogateTargets targets = SurrogateTargets::kMinmax;
  SurrogateInputs inputs = SurrogateInputs::kEmbeddingDict;
  // The score's predictive sd: the epistemic sd alone (false), or sqrt(σ_ep² + σ²_al) (true).
  bool aleatoric = false;
  SurrogateOptions surrogate;
};

/// EHVI with the BOSHNAS surrogate. Cheapness c = (largest - parameters) / (largest - smallest)
/// over the whole library (reference c = 0). The surrogate is refitted inside observe() (after each
/// completed trial), so restore() re-derives the same state. Pending trials are not on the front.
class ParetoPolicy : public Policy {
 public:
  ParetoPolicy(const Library& library, PolicyOptions options, ParetoOptions pareto = {});
  ~ParetoPolicy() override;
  std::string name() const override { return "pareto"; }
  std::string describe() const override;
  /// Cheapness of every library architecture, in [0, 1] (1 = the smallest).
  const std::vector<double>& cheapness() const { return cheapness_; }
  /// The maximised (cheapness, 1 - target) points of the completed trials, in observation order.
  std::vector<Point2> observed_points() const;
  /// EHVI of each of `candidates` under the current surrogate (fitted() must hold).
  std::vector<double> ehvi(const std::vector<int64_t>& candidates) const;
  const Surrogate& surrogate() const { return surrogate_; }

 protected:
  Proposal choose(std::mt19937_64& rng) override;
  void on_observe(int64_t index, std::optional<double> objective, const std::string& kind) override;

 private:
  ParetoOptions pareto_;
  at::Tensor inputs_;  // [N, d] standardised surrogate inputs
  std::vector<double> cheapness_;
  Surrogate surrogate_;
  int64_t ehvi_steps_ = 0;
};

// ---- NSGA-II-style evolution ----

/// Which completed trials form the population: the last `population` (regularized evolution's
/// aging), or the `population` best by NSGA-II survival over all completed trials (elitist).
enum class Nsga2Survival { kAging, kElitist };
const EnumNames<Nsga2Survival>& nsga2_survival_names();  // aging, elitist

// Defaults chosen on NAS-Bench-BERT seeds 10000..10199 by hypervolume at 50 and 100 trials among 17
// settings (survival, population 10..40, sample size 2..10; bench/RESULTS-multiobjective.md), never
// on the reporting seeds 0..199.
struct Nsga2Options {
  int64_t population = 20;
  int64_t sample_size = 5;  // tournament size, drawn with replacement (NSGA-II's binary tournament: 2)
  Nsga2Survival survival = Nsga2Survival::kElitist;
};

/// Regularized evolution ranked by NSGA-II: objectives (-score, parameters), rank and crowding
/// distance computed over the population; random proposals until the population is full.
class Nsga2Policy : public Policy {
 public:
  Nsga2Policy(const Library& library, PolicyOptions options, Nsga2Options nsga2 = {});
  std::string name() const override { return "nsga2"; }
  /// Library indices of the current population (observation order for aging, preference for elitist).
  std::vector<int64_t> population() const;

 protected:
  Proposal choose(std::mt19937_64& rng) override;

 private:
  Nsga2Options nsga2_;
};

}  // namespace flexnas::nas
