#include "nas/multi_objective.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "design_space/error.h"

namespace flexnas::nas {

// ---- the measure ----

HypervolumeFrame hypervolume_frame(const std::vector<std::optional<double>>& scores,
                                   const std::vector<int64_t>& parameters) {
  FLEXNAS_CHECK(scores.size() == parameters.size(), "scores and parameters are not aligned: ", scores.size(), " vs ",
                parameters.size());
  HypervolumeFrame f;
  bool any = false;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!scores[i]) continue;
    const double s = *scores[i];
    const int64_t p = parameters[i];
    if (!any) {
      f.worst_score = f.best_score = s;
      f.min_parameters = f.max_parameters = p;
      any = true;
      continue;
    }
    f.worst_score = std::min(f.worst_score, s);
    f.best_score = std::max(f.best_score, s);
    f.min_parameters = std::min(f.min_parameters, p);
    f.max_parameters = std::max(f.max_parameters, p);
  }
  FLEXNAS_CHECK(any, "no library entry has a score");
  return f;
}

double frame_hypervolume(const HypervolumeFrame& frame, const std::vector<std::pair<double, int64_t>>& results) {
  // A degenerate axis (one value) is 1 for everyone: the hypervolume is then the other axis' best.
  const double ds = frame.best_score - frame.worst_score;
  const double dp = double(frame.max_parameters - frame.min_parameters);
  std::vector<Point2> minimised;
  minimised.reserve(results.size());
  for (const auto& [score, params] : results) {
    const double u = ds > 0 ? std::clamp((score - frame.worst_score) / ds, 0.0, 1.0) : 1.0;
    const double v = dp > 0 ? std::clamp(double(frame.max_parameters - params) / dp, 0.0, 1.0) : 1.0;
    minimised.push_back({-u, -v});
  }
  return hypervolume_2d(minimised, {0.0, 0.0});
}

namespace {

/// The attainment steps of `front` over [0, c]: (width, height) pairs, where height is the best y
/// of the points at least as cheap as every u in the step (y_ref when there is none).
std::vector<std::pair<double, double>> steps_below(const std::vector<Point2>& front, double c, double y_ref) {
  std::vector<Point2> sorted = front;
  std::sort(sorted.begin(), sorted.end(), [](const Point2& a, const Point2& b) { return a[0] > b[0]; });
  std::vector<std::pair<double, double>> steps;
  double h = y_ref, pos = std::max(c, 0.0);
  for (const Point2& p : sorted) {
    if (p[0] >= pos) {  // at least as cheap as the rest of [0, pos]
      h = std::max(h, p[1]);
      continue;
    }
    const double left = std::max(p[0], 0.0);
    if (pos > left) steps.push_back({pos - left, h});
    h = std::max(h, p[1]);
    pos = left;
  }
  if (pos > 0) steps.push_back({pos, h});
  return steps;
}

}  // namespace

double hypervolume_improvement(const std::vector<Point2>& front, double c, double y, double y_ref) {
  double gain = 0;
  for (const auto& [width, h] : steps_below(front, c, y_ref)) gain += width * std::max(0.0, y - h);
  return gain;
}

double expected_hypervolume_improvement(const std::vector<Point2>& front, double c, double mean, double sd,
                                        double y_ref) {
  if (!(sd > 0)) return hypervolume_improvement(front, c, mean, y_ref);
  constexpr double kInvSqrt2Pi = 0.3989422804014327;
  double gain = 0;
  for (const auto& [width, h] : steps_below(front, c, y_ref)) {
    // E[max(0, y - h)] for y ~ N(mean, sd²).
    const double z = (mean - h) / sd;
    const double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
    const double pdf = kInvSqrt2Pi * std::exp(-0.5 * z * z);
    gain += width * ((mean - h) * cdf + sd * pdf);
  }
  return gain;
}

// ---- the surrogate policy ----

ParetoPolicy::ParetoPolicy(const Library& library, PolicyOptions options, ParetoOptions pareto)
    : Policy(library, std::move(options)), pareto_(pareto), surrogate_([&] {
        SurrogateOptions s = pareto.surrogate;
        s.input_dim = surrogate_input_dim(library, pareto.inputs);
        s.seed = derive_seed(options_.seed, 7, 0);  // the surrogate's own stream
        return s;
      }()) {
  if (library.size() == 0) throw ConfigError("error: library: it holds no architectures");
  if (pareto_.num_init < 1)
    throw ConfigError("error: pareto.num_init: must be at least 1, got " + std::to_string(pareto_.num_init));
  inputs_ = surrogate_inputs(library, pareto_.inputs);
  const auto [lo, hi] = std::minmax_element(parameters_.begin(), parameters_.end());
  const double range = double(*hi - *lo);
  cheapness_.reserve(parameters_.size());
  for (int64_t p : parameters_) cheapness_.push_back(range > 0 ? double(*hi - p) / range : 1.0);
}

ParetoPolicy::~ParetoPolicy() = default;

std::string ParetoPolicy::describe() const {
  std::ostringstream out;
  out << "pareto: " << state_.num_completed() << " completed, " << state_.num_pending() << " pending; ehvi steps "
      << ehvi_steps_;
  return out.str();
}

std::vector<Point2> ParetoPolicy::observed_points() const {
  std::vector<int64_t> rows;
  std::vector<double> values;
  for (const TrialRecord& t : state_.observations())
    if (t.status == TrialStatus::kCompleted) {
      rows.push_back(t.index);
      values.push_back(t.score);  // the raw score: parameters are the other objective, not a penalty
    }
  const std::vector<float> loss = normalised_targets(values, pareto_.targets);
  std::vector<Point2> points;
  for (size_t k = 0; k < rows.size(); ++k) points.push_back({cheapness_[size_t(rows[k])], 1.0 - double(loss[k])});
  return points;
}

std::vector<double> ParetoPolicy::ehvi(const std::vector<int64_t>& candidates) const {
  FLEXNAS_CHECK(surrogate_.fitted(), "ehvi() before the surrogate was fitted");
  if (candidates.empty()) return {};
  const std::vector<Point2> front = observed_points();
  const SurrogatePrediction p = surrogate_.predict(inputs_.index_select(0, at::tensor(candidates, at::kLong)));
  // [n] each; y = 1 - normalised loss (higher = better), same scale as observed_points().
  const at::Tensor mean = p.mean.to(at::kDouble).contiguous();
  const at::Tensor sd = uncertainty(p, pareto_.aleatoric).to(at::kDouble).contiguous();
  const double* m = mean.data_ptr<double>();
  const double* s = sd.data_ptr<double>();
  std::vector<double> out(candidates.size());
  for (size_t k = 0; k < candidates.size(); ++k)
    out[k] = expected_hypervolume_improvement(front, cheapness_[size_t(candidates[k])], 1.0 - m[k], s[k], 0.0);
  return out;
}

Proposal ParetoPolicy::choose(std::mt19937_64& rng) {
  if (state_.proposals() < pareto_.num_init || !surrogate_.fitted()) return {random_open(rng), "init"};
  const std::vector<int64_t> open = state_.open_indices();
  if (open.empty()) return {-1, "ehvi"};
  const std::vector<double> e = ehvi(open);
  // The largest EHVI; ties (e.g. all zero) go to the first open index, so the choice is deterministic.
  const size_t best = size_t(std::max_element(e.begin(), e.end()) - e.begin());
  ++ehvi_steps_;
  return {open[best], "ehvi"};
}

void ParetoPolicy::on_observe(int64_t index, std::optional<double> objective, const std::string& kind) {
  if (!objective) return;  // a failure adds no data
  // Refit after the new result is in the data (as BOSHNAS does: restore() replays these refits).
  std::vector<int64_t> rows;
  std::vector<double> values;
  for (const TrialRecord& t : state_.observations())
    if (t.status == TrialStatus::kCompleted) {
      rows.push_back(t.index);
      values.push_back(t.score);
    }
  const std::vector<float> y = normalised_targets(values, pareto_.targets);
  const at::Tensor x = inputs_.index_select(0, at::tensor(rows, at::kLong));
  surrogate_.fit(x, at::tensor(y, at::kFloat), derive_seed(options_.seed, 8, uint64_t(state_.observations().size())));
}

// ---- NSGA-II-style evolution ----

const EnumNames<Nsga2Survival>& nsga2_survival_names() {
  static const EnumNames<Nsga2Survival> names{{"aging", Nsga2Survival::kAging}, {"elitist", Nsga2Survival::kElitist}};
  return names;
}

Nsga2Policy::Nsga2Policy(const Library& library, PolicyOptions options, Nsga2Options nsga2)
    : Policy(library, std::move(options)), nsga2_(nsga2) {
  if (nsga2_.population < 1)
    throw ConfigError("error: nsga2.population: must be at least 1, got " + std::to_string(nsga2_.population));
  if (nsga2_.sample_size < 1 || nsga2_.sample_size > nsga2_.population)
    throw ConfigError("error: nsga2.sample_size: must be in 1.." + std::to_string(nsga2_.population) + ", got " +
                      std::to_string(nsga2_.sample_size));
}

namespace {

/// Minimised objectives (-score, parameters) of completed trials.
std::vector<std::vector<double>> objectives_of(const std::vector<const TrialRecord*>& trials,
                                               const std::vector<int64_t>& parameters) {
  std::vector<std::vector<double>> points;
  points.reserve(trials.size());
  for (const TrialRecord* t : trials) points.push_back({-t->score, double(parameters[size_t(t->index)])});
  return points;
}

}  // namespace

std::vector<int64_t> Nsga2Policy::population() const {
  std::vector<const TrialRecord*> done;
  for (const TrialRecord& t : state_.observations())
    if (t.status == TrialStatus::kCompleted) done.push_back(&t);
  std::vector<int64_t> out;
  if (nsga2_.survival == Nsga2Survival::kAging) {
    const size_t first = done.size() > size_t(nsga2_.population) ? done.size() - size_t(nsga2_.population) : 0;
    for (size_t i = first; i < done.size(); ++i) out.push_back(done[i]->index);
  } else {
    for (int64_t k : nsga_select(objectives_of(done, parameters_), nsga2_.population)) out.push_back(done[size_t(k)]->index);
  }
  return out;
}

Proposal Nsga2Policy::choose(std::mt19937_64& rng) {
  const std::vector<int64_t> members = population();
  // Until the population is full, and as long as proposals outnumber it, sample at random.
  if ((int64_t(members.size()) < nsga2_.population && state_.proposals() < nsga2_.population) || members.empty())
    return {random_open(rng), "init"};
  // Scores of the members (each library index is completed at most once).
  std::vector<const TrialRecord*> trials;
  for (int64_t i : members)
    for (const TrialRecord& t : state_.observations())
      if (t.index == i && t.status == TrialStatus::kCompleted) {
        trials.push_back(&t);
        break;
      }
  const NsgaRanking ranking = nsga_ranking(objectives_of(trials, parameters_));
  // Tournament with replacement: the crowded comparison picks; ties keep the first drawn.
  std::uniform_int_distribution<int64_t> pick(0, int64_t(trials.size()) - 1);
  int64_t winner = pick(rng);
  for (int64_t s = 1; s < nsga2_.sample_size; ++s) {
    const int64_t challenger = pick(rng);
    if (ranking.better(challenger, winner)) winner = challenger;
  }
  return {snapped_mutation(library_, state_, trials[size_t(winner)]->index, rng), "mutation"};
}

}  // namespace flexnas::nas
