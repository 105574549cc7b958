#include "nas/boshnas.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "design_space/error.h"
#include "nas/arch_features.h"

namespace flexnas::nas {

const EnumNames<SurrogateTargets>& surrogate_targets_names() {
  static const EnumNames<SurrogateTargets> names{{"rank", SurrogateTargets::kRank},
                                                 {"minmax", SurrogateTargets::kMinmax}};
  return names;
}

const EnumNames<SurrogateInputs>& surrogate_inputs_names() {
  static const EnumNames<SurrogateInputs> names{{"embedding", SurrogateInputs::kEmbedding},
                                                {"embedding+dict", SurrogateInputs::kEmbeddingDict}};
  return names;
}

int64_t surrogate_input_dim(const Library& library, SurrogateInputs inputs) {
  return library.embedding_dim() +
         (inputs == SurrogateInputs::kEmbeddingDict ? int64_t(arch_feature_names(library).size()) : 0);
}

at::Tensor surrogate_inputs(const Library& library, SurrogateInputs inputs) {
  const int64_t d = library.embedding_dim(), total = surrogate_input_dim(library, inputs);
  if (d == 0 || std::any_of(library.embeddings.begin(), library.embeddings.end(),
                            [d](const std::vector<float>& e) { return int64_t(e.size()) != d; }))
    throw ConfigError("error: library: BOSHNAS needs an embedding for every architecture (the library has " +
                      std::string(d == 0 ? "none" : "some missing") +
                      "); build it with `flexnas library generate` or `flexnas library import`");
  std::vector<std::vector<float>> features;
  if (inputs == SurrogateInputs::kEmbeddingDict) features = arch_features(library);
  std::vector<float> flat;
  flat.reserve(library.size() * size_t(total));
  for (size_t i = 0; i < library.size(); ++i) {
    flat.insert(flat.end(), library.embeddings[i].begin(), library.embeddings[i].end());
    if (!features.empty()) flat.insert(flat.end(), features[i].begin(), features[i].end());
  }
  // Library-wide statistics: known before any trial.
  const at::Tensor raw = at::from_blob(flat.data(), {int64_t(library.size()), total}, at::kFloat).clone();
  const at::Tensor mean = raw.mean(0), sd = raw.std(0);
  const at::Tensor constant = sd <= 1e-6 * (1 + mean.abs());  // float rounding must not blow up
  return at::where(constant, at::zeros_like(raw), (raw - mean) / sd.clamp_min(1e-6)).contiguous();
}

BoshnasPolicy::BoshnasPolicy(const Library& library, PolicyOptions options, BoshnasOptions boshnas)
    : Policy(library, std::move(options)), boshnas_(boshnas), surrogate_([&] {
        SurrogateOptions s = boshnas.surrogate;
        s.input_dim = surrogate_input_dim(library, boshnas.inputs);
        s.seed = derive_seed(options_.seed, 5, 0);  // defect 8 fix: the surrogate's own stream
        return s;
      }()) {
  const int64_t n = int64_t(library.size());
  if (n == 0) throw ConfigError("error: library: it holds no architectures");
  if (boshnas_.uncertainty_prob < 0 || boshnas_.diversity_prob < 0 || boshnas_.uncertainty_prob + boshnas_.diversity_prob > 1)
    throw ConfigError("error: boshnas: uncertainty_prob + diversity_prob must lie in [0, 1]");
  if (boshnas_.best_starts < 0)
    throw ConfigError("error: boshnas: best_starts must be at least 0, got " + std::to_string(boshnas_.best_starts));
  inputs_ = surrogate_inputs(library, boshnas_.inputs);
  const int64_t d = inputs_.size(1);
  // GOBI bounds: per-dimension min and max over the whole library (spec §3.1).
  lower_ = std::get<0>(inputs_.min(0));
  upper_ = std::get<0>(inputs_.max(0));
  tree_ = KdTree(std::vector<float>(inputs_.data_ptr<float>(), inputs_.data_ptr<float>() + n * d), d);
  for (int64_t i = 0; i < n; ++i)
    if (!state_.is_open(i)) tree_.exclude(i);  // e.g. over max_parameters
}

BoshnasPolicy::~BoshnasPolicy() = default;

bool BoshnasPolicy::converged() const { return boshnas_.stop_on_convergence && convergences_ > 0; }

std::string BoshnasPolicy::describe() const {
  std::ostringstream out;
  out << "boshnas: " << state_.num_completed() << " completed, " << state_.num_pending() << " pending; steps";
  for (const auto& [kind, count] : steps_) out << " " << kind << " " << count;
  out << "; same_performance " << same_performance_ << (aleatoric_phase() ? " (aleatoric phase)" : "")
      << "; convergences " << convergences_;
  return out.str();
}

void BoshnasPolicy::on_pending(int64_t index) { tree_.exclude(index); }

std::vector<int64_t> BoshnasPolicy::snap(const at::Tensor& x) const {
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  std::vector<int64_t> out;
  for (int64_t k = 0; k < xf.size(0); ++k) out.push_back(tree_.nearest(xf[k].data_ptr<float>()));
  return out;
}

void BoshnasPolicy::refit() {
  // Data: every completed trial in observation order (rows append, so the split stays fixed).
  std::vector<int64_t> rows;
  std::vector<double> values;
  for (const TrialRecord& t : state_.observations())
    if (t.status == TrialStatus::kCompleted) {
      rows.push_back(t.index);
      values.push_back(objective(t.index, t.score));
    }
  if (rows.empty()) return;
  // y = normalised loss in [0.1, 0.9], recomputed at every refit (defect 11 fix: the reference
  // froze max_loss after the initial designs, so later, better results could leave the sigmoid's range).
  const std::vector<float> y = normalised_targets(values, boshnas_.targets);
  const at::Tensor x = inputs_.index_select(0, at::tensor(rows, at::kLong));
  surrogate_.fit(x, at::tensor(y, at::kFloat), derive_seed(options_.seed, 3, uint64_t(state_.observations().size())));
}

std::vector<float> normalised_targets(const std::vector<double>& values, SurrogateTargets mode) {
  std::vector<float> y;
  if (values.empty()) return y;
  const double best = *std::max_element(values.begin(), values.end());
  const double worst = *std::min_element(values.begin(), values.end());
  if (!(best > worst)) return std::vector<float>(values.size(), 0.5f);
  for (double v : values) {
    if (mode == SurrogateTargets::kMinmax) {
      y.push_back(float(0.1 + 0.8 * (best - v) / (best - worst)));
      continue;
    }
    double better = -0.5;  // v itself counts as a tie with itself
    for (double w : values) better += w > v ? 1.0 : (w == v ? 0.5 : 0.0);
    y.push_back(float(0.1 + 0.8 * better / double(values.size() - 1)));
  }
  return y;
}

void BoshnasPolicy::on_observe(int64_t index, std::optional<double> objective, const std::string& kind) {
  const bool improved = objective && (!best_seen_ || *objective > *best_seen_);
  if (objective && improved) best_seen_ = objective;
  // Defect 16 fix: only an improvement resets the count; exploration steps leave it alone.
  if (improved) same_performance_ = 0;
  else if (kind == "optimisation") ++same_performance_;
  if (same_performance_ >= boshnas_.patience + boshnas_.aleatoric_queries) {
    ++convergences_;
    if (!boshnas_.stop_on_convergence) same_performance_ = 0;  // restart within the budget
  }
  // Defect 10 fix: refit after the new result is part of the data.
  if (objective) refit();
}

int64_t BoshnasPolicy::optimisation_step(std::mt19937_64& rng) {
  const int64_t n = inputs_.size(0), K = boshnas_.gobi.restarts;
  // Start points: the `best_starts` best completed architectures, then library embeddings drawn
  // uniformly with replacement (spec §3.4), seeded.
  std::vector<int64_t> starts = best_completed(std::min(boshnas_.best_starts, K));
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  while (int64_t(starts.size()) < K) starts.push_back(pick(rng));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(rng());
  AcquisitionSettings acq;
  acq.k = boshnas_.ucb_k;
  acq.aleatoric = aleatoric_phase();
  const GobiResult r = gobi(surrogate_, inputs_.index_select(0, at::tensor(starts, at::kLong)), lower_, upper_, acq,
                            boshnas_.gobi, gen);
  // Snap to open architectures; rank the DISTINCT candidates by their own acquisition (defect 9 fix).
  std::vector<int64_t> snapped = snap(r.x);
  std::set<int64_t> unique(snapped.begin(), snapped.end());
  unique.erase(-1);
  for (int64_t i : local_candidates()) unique.insert(i);
  if (unique.empty()) return -1;
  std::vector<int64_t> candidates(unique.begin(), unique.end());
  const at::Tensor a = acquisition(surrogate_.predict(inputs_.index_select(0, at::tensor(candidates, at::kLong))), acq);
  return candidates[size_t(a.argmin().item<int64_t>())];
}

std::vector<int64_t> BoshnasPolicy::best_completed(int64_t count) const {
  if (count <= 0) return {};
  std::vector<std::pair<double, int64_t>> done;
  for (const TrialRecord& t : state_.observations())
    if (t.status == TrialStatus::kCompleted) done.push_back({objective(t.index, t.score), t.index});
  // Best first; ties by observation order (stable) so the choice is deterministic.
  std::stable_sort(done.begin(), done.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> out;
  for (size_t i = 0; i < done.size() && int64_t(out.size()) < count; ++i) out.push_back(done[i].second);
  return out;
}

std::vector<int64_t> BoshnasPolicy::local_candidates() const {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t parent : best_completed(boshnas_.local_parents)) {
    if (size_t(parent) >= library().neighbors.size()) continue;
    int64_t taken = 0;
    for (const std::string& hash : library().neighbors[size_t(parent)]) {  // nearest first
      if (taken >= boshnas_.local_neighbours) break;
      const int64_t j = library().find(hash);
      if (j < 0 || !state_.is_open(j)) continue;
      ++taken;
      if (seen.insert(j).second) out.push_back(j);
    }
  }
  return out;
}

int64_t BoshnasPolicy::uncertainty_step() {
  const std::vector<int64_t> open = state_.open_indices();
  if (open.empty()) return -1;
  const at::Tensor u = uncertainty(surrogate_.predict(inputs_.index_select(0, at::tensor(open, at::kLong))), aleatoric_phase());
  return open[size_t(u.argmax().item<int64_t>())];  // open by construction (defect 22 cannot happen)
}

Proposal BoshnasPolicy::choose(std::mt19937_64& rng) {
  Proposal p;
  if (state_.proposals() < boshnas_.num_init || !surrogate_.fitted()) {
    p = {random_open(rng), "init"};
  } else {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    if (u < 1 - boshnas_.uncertainty_prob - boshnas_.diversity_prob) p = {optimisation_step(rng), "optimisation"};
    else if (u < 1 - boshnas_.diversity_prob) p = {uncertainty_step(), "uncertainty"};
    else p = {random_open(rng), "diversity"};
  }
  if (p.index >= 0) ++steps_[p.kind];
  return p;
}

}  // namespace flexnas::nas
