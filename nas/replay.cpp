#include "nas/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "design_space/error.h"

namespace flexnas::nas {

ReplayTargets replay_targets(const std::vector<std::optional<double>>& scores) {
  std::vector<double> s;
  for (const auto& v : scores)
    if (v) s.push_back(*v);
  FLEXNAS_CHECK(!s.empty(), "no library entry has a score");
  std::sort(s.begin(), s.end(), std::greater<double>());
  auto kth = [&](double fraction) {
    const size_t k = std::max<size_t>(1, size_t(std::ceil(fraction * double(s.size()))));
    return s[std::min(k, s.size()) - 1];
  };
  ReplayTargets t;
  t.best = s.front();
  t.top1 = kth(0.01);
  t.top5 = kth(0.05);
  t.scored = int64_t(s.size());
  return t;
}

SeedResult replay_seed(const Library& library, const std::vector<std::optional<double>>& scores,
                       const ReplayTargets& targets, const ReplayOptions& options, uint64_t seed) {
  FLEXNAS_CHECK(scores.size() == library.size(), "scores are not aligned with the library");
  const auto start = std::chrono::steady_clock::now();
  PolicyOptions po = options.policy_options;
  po.seed = seed;
  po.max_trials = options.budget;
  std::unique_ptr<Policy> policy = make_policy(options.policy, library, po, options.boshnas, options.evolution);
  SeedResult r;
  r.seed = seed;
  r.best = -std::numeric_limits<double>::infinity();
  while (auto p = policy->propose()) {
    const std::optional<double> score = scores[size_t(p->index)];
    policy->observe(p->index, score);
    r.trials_log.push_back({p->index, p->kind, score});
    ++r.trials;
    if (score && *score > r.best) {
      r.best = *score;
      r.best_index = p->index;
    }
    if (r.to_best < 0 && r.best >= targets.best) r.to_best = r.trials;
    if (r.to_top1 < 0 && r.best >= targets.top1) r.to_top1 = r.trials;
    if (r.to_top5 < 0 && r.best >= targets.top5) r.to_top5 = r.trials;
    r.trace.push_back(r.best);
  }
  for (int64_t c : options.checkpoints)
    r.best_at.push_back(c <= int64_t(r.trace.size()) && c > 0 ? r.trace[size_t(c - 1)] : std::nan(""));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.description = policy->describe();
  return r;
}

double median_trials(std::vector<int64_t> values) {
  std::vector<double> v;
  for (int64_t x : values) v.push_back(x < 0 ? std::numeric_limits<double>::infinity() : double(x));
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

ReplaySummary summarise(std::vector<SeedResult> seeds, const ReplayOptions& options) {
  ReplaySummary s;
  std::vector<int64_t> best, top1, top5;
  for (const auto& r : seeds) {
    best.push_back(r.to_best);
    top1.push_back(r.to_top1);
    top5.push_back(r.to_top5);
    s.reached_best += r.to_best >= 0;
    s.reached_top1 += r.to_top1 >= 0;
    s.reached_top5 += r.to_top5 >= 0;
  }
  const double n = std::max<double>(1, double(seeds.size()));
  s.reached_best /= n;
  s.reached_top1 /= n;
  s.reached_top5 /= n;
  s.median_to_best = median_trials(best);
  s.median_to_top1 = median_trials(top1);
  s.median_to_top5 = median_trials(top5);
  for (size_t c = 0; c < options.checkpoints.size(); ++c) {
    std::vector<double> v;
    for (const auto& r : seeds)
      if (c < r.best_at.size() && !std::isnan(r.best_at[c])) v.push_back(r.best_at[c]);
    if (v.empty()) {
      s.median_best_at.push_back(std::nan(""));
      s.mean_best_at.push_back(std::nan(""));
      continue;
    }
    std::sort(v.begin(), v.end());
    const size_t m = v.size();
    s.median_best_at.push_back(m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2);
    double sum = 0;
    for (double x : v) sum += x;
    s.mean_best_at.push_back(sum / double(m));
  }
  s.seeds = std::move(seeds);
  return s;
}

}  // namespace flexnas::nas
