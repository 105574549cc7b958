#include "nas/policy.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "design_space/error.h"

namespace flexnas::nas {

uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t counter) {
  // splitmix64 over a mix of the three words: independent, reproducible streams.
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + counter * 0x8CB92BA72F3D8DD7ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---- SearchState ----

SearchState::SearchState(int64_t library_size)
    : status_(size_t(library_size), TrialStatus::kOpen), kinds_(size_t(library_size)), num_open_(library_size) {}

std::vector<int64_t> SearchState::open_indices() const {
  std::vector<int64_t> out;
  out.reserve(size_t(num_open_));
  for (int64_t i = 0; i < size(); ++i)
    if (status_[size_t(i)] == TrialStatus::kOpen) out.push_back(i);
  return out;
}

std::vector<int64_t> SearchState::pending() const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i)
    if (status_[size_t(i)] == TrialStatus::kPending) out.push_back(i);
  return out;
}

void SearchState::set_status(int64_t index, TrialStatus status) {
  FLEXNAS_CHECK(index >= 0 && index < size(), "library index ", index, " out of range 0..", size() - 1);
  auto count = [this](TrialStatus s, int64_t delta) {
    if (s == TrialStatus::kOpen) num_open_ += delta;
    if (s == TrialStatus::kPending) num_pending_ += delta;
    if (s == TrialStatus::kCompleted) num_completed_ += delta;
  };
  count(status_[size_t(index)], -1);
  status_[size_t(index)] = status;
  count(status, +1);
}

// ---- Policy ----

const EnumNames<CostKind>& cost_kind_names() {
  static const EnumNames<CostKind> names{
      {"parameters", CostKind::kParameters}, {"flops", CostKind::kFlops}, {"latency", CostKind::kLatency}};
  return names;
}

Policy::Policy(const Library& library, PolicyOptions options)
    : library_(library), options_(std::move(options)), state_(int64_t(library.size())),
      start_(std::chrono::steady_clock::now()), measurements_(library.size()) {
  parameters_.reserve(library.size());
  flops_.reserve(library.size());
  for (const Architecture& arch : library.archs) {
    const ModelCost c = estimate_cost(arch, options_.cost);
    parameters_.push_back(c.parameters);
    flops_.push_back(c.flops_per_token);
  }
  if (options_.max_parameters > 0)
    for (int64_t i = 0; i < int64_t(library.size()); ++i)
      if (parameters_[size_t(i)] > options_.max_parameters) state_.set_status(i, TrialStatus::kExcluded);
}

double Policy::cost(int64_t index) const {
  switch (options_.cost_kind) {
    case CostKind::kParameters: return double(parameters_[size_t(index)]) / 1e6;
    case CostKind::kFlops: return flops_[size_t(index)] / 1e6;
    case CostKind::kLatency: break;
  }
  const std::optional<Measurement>& m = measurements_[size_t(index)];
  FLEXNAS_CHECK(m && m->error.empty(), "cost latency: architecture ", index, " has no measured latency");
  return m->latency_ms;
}

double Policy::objective(int64_t index, double score) const {
  if (options_.cost_weight == 0) return score;
  return score - options_.cost_weight * std::log2(cost(index));
}

bool Policy::needs_measurement() const {
  return options_.max_latency_ms > 0 || options_.max_memory_mb > 0 || options_.cost_kind == CostKind::kLatency;
}

std::string Policy::violation(const Measurement& m) const {
  auto number = [](double v) {
    std::ostringstream s;
    s << std::setprecision(4) << v;
    return s.str();
  };
  std::string out;
  if (options_.max_latency_ms > 0 && m.latency_ms > options_.max_latency_ms)
    out = "latency " + number(m.latency_ms) + " ms > max_latency_ms " + number(options_.max_latency_ms);
  if (options_.max_memory_mb > 0 && m.memory_mb > options_.max_memory_mb)
    out += (out.empty() ? "" : "; ") + std::string("memory ") + number(m.memory_mb) + " MiB > max_memory_mb " +
           number(options_.max_memory_mb);
  return out;
}

const Measurement& Policy::measure(int64_t index) {
  std::optional<Measurement>& m = measurements_[size_t(index)];
  if (!m) {
    FLEXNAS_CHECK(bool(measure_), name(), ": measured constraints or cost latency need set_measure()");
    m = measure_(index);
  }
  return *m;
}

void Policy::exclude(int64_t index, const std::string& kind, const std::string& reason) {
  FLEXNAS_CHECK(state_.is_open(index), "exclude(", index, "): the architecture is not open");
  state_.set_status(index, TrialStatus::kExcluded);
  state_.kinds_[size_t(index)] = kind;
  ++excluded_proposals_;
  TrialRecord r;
  r.index = index;
  r.kind = kind;
  r.status = TrialStatus::kExcluded;
  r.measured = measurements_[size_t(index)];
  r.observed_before = int64_t(state_.observations_.size());
  r.reason = reason;
  state_.rejections_.push_back(std::move(r));
  on_pending(index);  // out of the open set for good (BOSHNAS drops it from its snapping tree)
}

int64_t Policy::random_open(std::mt19937_64& rng) const {
  if (state_.num_open() == 0) return -1;
  // Draw the k-th open index (one pass; the library is at most a few hundred thousand entries).
  int64_t k = int64_t(std::uniform_int_distribution<int64_t>(0, state_.num_open() - 1)(rng));
  for (int64_t i = 0; i < state_.size(); ++i)
    if (state_.is_open(i) && k-- == 0) return i;
  FLEXNAS_CHECK(false, "open count out of sync");
  return -1;
}

std::optional<Proposal> Policy::propose() {
  for (;;) {
    if (options_.max_trials > 0 && state_.proposals_ >= options_.max_trials) return std::nullopt;
    if (options_.max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() >= options_.max_seconds)
      return std::nullopt;
    if (state_.num_open() == 0 || converged()) return std::nullopt;
    // Stream number = proposals + exclusions: a choice after an exclusion draws afresh, and
    // without measured constraints the streams are those of plain proposals.
    std::mt19937_64 rng(derive_seed(options_.seed, 1, uint64_t(state_.proposals_ + excluded_proposals_)));
    Proposal p = choose(rng);
    if (p.index < 0) return std::nullopt;
    FLEXNAS_CHECK(state_.is_open(p.index), name(), " proposed architecture ", p.index, " which is not open");
    if (needs_measurement()) {
      const Measurement& m = measure(p.index);
      const std::string why = m.error.empty() ? violation(m) : "measurement failed: " + m.error;
      if (!why.empty()) {
        exclude(p.index, p.kind, why);  // not a trial: the budget is untouched; choose again
        continue;
      }
    }
    state_.set_status(p.index, TrialStatus::kPending);
    state_.kinds_[size_t(p.index)] = p.kind;
    ++state_.proposals_;
    on_pending(p.index);
    return p;
  }
}

void Policy::mark_pending(int64_t index, const std::string& kind) {
  FLEXNAS_CHECK(index >= 0 && index < state_.size(), "library index ", index, " out of range");
  if (state_.status(index) == TrialStatus::kPending) return;
  FLEXNAS_CHECK(state_.status(index) == TrialStatus::kOpen || state_.status(index) == TrialStatus::kExcluded,
                "architecture ", index, " is already completed or failed");
  // cost latency: the objective of a trial the scheduler declares (e.g. taken over from a parent
  // campaign) needs its latency too.
  if (options_.cost_kind == CostKind::kLatency) measure(index);
  state_.set_status(index, TrialStatus::kPending);
  state_.kinds_[size_t(index)] = kind;
  ++state_.proposals_;
  on_pending(index);
}

void Policy::observe(int64_t index, std::optional<double> score) {
  FLEXNAS_CHECK(index >= 0 && index < state_.size(), "library index ", index, " out of range");
  FLEXNAS_CHECK(state_.status(index) == TrialStatus::kPending, "observe(", index, "): the trial is not pending");
  TrialRecord record;
  record.index = index;
  record.kind = state_.kinds_[size_t(index)];
  std::optional<double> value;
  if (score) {
    FLEXNAS_CHECK(std::isfinite(*score), "observe(", index, "): score is not finite");
    record.status = TrialStatus::kCompleted;
    record.score = *score;
    value = objective(index, *score);
    // Defect 11 fix: a score of 0.0 is a real result (no truthiness test anywhere).
    if (!state_.best_ || *value > *state_.best_) {
      state_.best_ = value;
      state_.best_index_ = index;
    }
  } else {
    record.status = TrialStatus::kFailed;
  }
  state_.set_status(index, record.status);
  state_.observations_.push_back(record);
  on_observe(index, value, record.kind);
}

void Policy::restore(const std::vector<TrialRecord>& history) {
  FLEXNAS_CHECK(state_.proposals_ == 0 && state_.observations_.empty() && excluded_proposals_ == 0,
                "restore() needs a fresh policy");
  for (const TrialRecord& t : history) {
    FLEXNAS_CHECK(t.index >= 0 && t.index < state_.size(), "restore: library index ", t.index, " out of range");
    if (t.measured) measurements_[size_t(t.index)] = *t.measured;
    if (t.status == TrialStatus::kExcluded) {
      exclude(t.index, t.kind, t.reason);
      continue;
    }
    mark_pending(t.index, t.kind);
    if (t.status == TrialStatus::kCompleted) observe(t.index, t.score);
    else if (t.status == TrialStatus::kFailed) observe(t.index, std::nullopt);
  }
}

// ---- random search ----

Proposal RandomPolicy::choose(std::mt19937_64& rng) { return {random_open(rng), "random"}; }

// ---- regularized evolution ----

int64_t field_distance(const Architecture& a, const Architecture& b) {
  const size_t common = std::min(a.layers.size(), b.layers.size());
  int64_t d = 4 * int64_t(std::max(a.layers.size(), b.layers.size()) - common);
  for (size_t i = 0; i < common; ++i) {
    const LayerSpec& x = a.layers[i];
    const LayerSpec& y = b.layers[i];
    d += x.hidden != y.hidden;
    if (!x.head_list.empty() || !y.head_list.empty()) {
      d += !(x.head_list == y.head_list);
    } else {
      d += (x.op != y.op || x.param != y.param);
      d += x.heads != y.heads;
    }
    d += x.ffn != y.ffn;
  }
  return d;
}

EvolutionPolicy::EvolutionPolicy(const Library& library, PolicyOptions options, EvolutionOptions evolution)
    : Policy(library, std::move(options)), evolution_(evolution) {
  if (evolution_.population < 1) throw ConfigError("error: evolution.population: must be at least 1, got " + std::to_string(evolution_.population));
  if (evolution_.sample_size < 1 || evolution_.sample_size > evolution_.population)
    throw ConfigError("error: evolution.sample_size: must be in 1.." + std::to_string(evolution_.population) + ", got " +
                      std::to_string(evolution_.sample_size));
}

Proposal EvolutionPolicy::choose(std::mt19937_64& rng) {
  // Population: the last `population` completed trials, in observation order (oldest first).
  std::vector<const TrialRecord*> population;
  const auto& obs = state_.observations();
  for (auto it = obs.rbegin(); it != obs.rend() && int64_t(population.size()) < evolution_.population; ++it)
    if (it->status == TrialStatus::kCompleted) population.push_back(&*it);
  // Until the population is full, and as long as proposals outnumber it, sample at random.
  if (int64_t(population.size()) < evolution_.population &&
      state_.proposals() < evolution_.population)
    return {random_open(rng), "init"};
  if (population.empty()) return {random_open(rng), "init"};
  // Tournament: best of `sample_size` members drawn with replacement.
  const TrialRecord* parent = nullptr;
  double parent_value = -std::numeric_limits<double>::infinity();
  std::uniform_int_distribution<size_t> pick(0, population.size() - 1);
  for (int64_t s = 0; s < evolution_.sample_size; ++s) {
    const TrialRecord* member = population[pick(rng)];
    const double v = objective(member->index, member->score);
    if (!parent || v > parent_value) {
      parent = member;
      parent_value = v;
    }
  }
  return {snapped_mutation(library_, state_, parent->index, rng), "mutation"};
}

int64_t snapped_mutation(const Library& library, const SearchState& state, int64_t parent, std::mt19937_64& rng) {
  const Architecture& p = library.archs[size_t(parent)];
  int64_t best_d = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> best;
  for (int64_t i = 0; i < state.size(); ++i) {
    if (!state.is_open(i)) continue;
    const int64_t d = field_distance(p, library.archs[size_t(i)]);
    if (d < best_d) {
      best_d = d;
      best.clear();
    }
    if (d == best_d) best.push_back(i);
  }
  if (best.empty()) return -1;
  if (best_d == 1 || best.size() == 1 || library.embedding_dim() == 0)
    return best[std::uniform_int_distribution<size_t>(0, best.size() - 1)(rng)];
  const auto& e = library.embeddings[size_t(parent)];
  int64_t choice = -1;
  double choice_d = std::numeric_limits<double>::infinity();
  for (int64_t i : best) {
    const auto& x = library.embeddings[size_t(i)];
    double d2 = 0;
    for (size_t k = 0; k < e.size() && k < x.size(); ++k) d2 += double(x[k] - e[k]) * double(x[k] - e[k]);
    if (d2 < choice_d) {
      choice_d = d2;
      choice = i;
    }
  }
  return choice;
}

}  // namespace flexnas::nas
