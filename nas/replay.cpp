#include "nas/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "design_space/error.h"

namespace flexnas::nas {

ReplayTargets replay_targets(const std::vector<std::optional<double>>& scores, const std::vector<int64_t>& parameters) {
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
  if (!parameters.empty()) {
    t.parameters = parameters;
    t.frame = hypervolume_frame(scores, parameters);
    std::vector<std::pair<double, int64_t>> all;
    for (size_t i = 0; i < scores.size(); ++i)
      if (scores[i]) all.push_back({*scores[i], parameters[i]});
    t.library_hypervolume = frame_hypervolume(t.frame, all);
  }
  return t;
}

SeedResult replay_seed(const Library& library, const std::vector<std::optional<double>>& scores,
                       const ReplayTargets& targets, const ReplayOptions& options, uint64_t seed) {
  FLEXNAS_CHECK(scores.size() == library.size(), "scores are not aligned with the library");
  const auto start = std::chrono::steady_clock::now();
  PolicyOptions po = options.policy_options;
  po.seed = seed;
  po.max_trials = options.budget;
  std::unique_ptr<Policy> policy =
      make_policy(options.policy, library, po, options.boshnas, options.evolution, options.pareto, options.nsga2);
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
  // Hypervolume of the (score, parameters) results of the first c trials (failures add nothing).
  FLEXNAS_CHECK(targets.parameters.empty() || targets.parameters.size() == library.size(),
                "replay parameters are not aligned with the library");
  for (int64_t c : options.checkpoints) {
    if (targets.parameters.empty() || c <= 0 || c > r.trials) {
      r.hypervolume_at.push_back(std::nan(""));
      continue;
    }
    std::vector<std::pair<double, int64_t>> done;
    for (int64_t t = 0; t < c; ++t) {
      const ReplayTrial& x = r.trials_log[size_t(t)];
      if (x.score) done.push_back({*x.score, targets.parameters[size_t(x.index)]});
    }
    r.hypervolume_at.push_back(frame_hypervolume(targets.frame, done));
  }
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
    } else {
      std::sort(v.begin(), v.end());
      const size_t m = v.size();
      s.median_best_at.push_back(m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2);
      double sum = 0;
      for (double x : v) sum += x;
      s.mean_best_at.push_back(sum / double(m));
    }
    std::vector<double> h;
    for (const auto& r : seeds)
      if (c < r.hypervolume_at.size() && !std::isnan(r.hypervolume_at[c])) h.push_back(r.hypervolume_at[c]);
    if (h.empty()) {
      s.median_hypervolume_at.push_back(std::nan(""));
      s.mean_hypervolume_at.push_back(std::nan(""));
      continue;
    }
    std::sort(h.begin(), h.end());
    const size_t m = h.size();
    s.median_hypervolume_at.push_back(m % 2 ? h[m / 2] : (h[m / 2 - 1] + h[m / 2]) / 2);
    double sum = 0;
    for (double x : h) sum += x;
    s.mean_hypervolume_at.push_back(sum / double(m));
  }
  s.seeds = std::move(seeds);
  return s;
}

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

/// The 2.5 % and 97.5 % points of `stats` (NaN entries dropped; +inf sorts last).
Interval percentile_interval(std::vector<double> stats) {
  stats.erase(std::remove_if(stats.begin(), stats.end(), [](double x) { return std::isnan(x); }), stats.end());
  if (stats.empty()) return {};
  std::sort(stats.begin(), stats.end());
  const auto at = [&](double q) { return stats[std::min(stats.size() - 1, size_t(q * double(stats.size())))]; };
  return {at(0.025), at(0.975)};
}

/// Trials to reach a target, +inf when never reached.
double trials_or_inf(int64_t t) { return t < 0 ? std::numeric_limits<double>::infinity() : double(t); }

/// Best score after checkpoint c of each seed (NaN when the seed ran fewer trials).
double best_at(const SeedResult& r, size_t c) { return c < r.best_at.size() ? r.best_at[c] : std::nan(""); }
/// Hypervolume after checkpoint c (NaN when the seed ran fewer trials or has none).
double hypervolume_at(const SeedResult& r, size_t c) {
  return c < r.hypervolume_at.size() ? r.hypervolume_at[c] : std::nan("");
}

std::vector<double> finite_only(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  return v;
}

/// `resamples` index sets of size n drawn with replacement from one seeded generator.
template <typename Fn>
void for_each_resample(size_t n, int64_t resamples, uint64_t rng_seed, Fn&& fn) {
  std::mt19937_64 rng(rng_seed ^ 0x6a09e667f3bcc909ULL);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<size_t> idx(n);
  for (int64_t b = 0; b < resamples; ++b) {
    for (size_t& i : idx) i = pick(rng);
    fn(idx);
  }
}

}  // namespace

ReplayIntervals bootstrap_intervals(const ReplaySummary& summary, const ReplayOptions& options, int64_t resamples,
                                    uint64_t rng_seed) {
  ReplayIntervals out;
  const std::vector<SeedResult>& seeds = summary.seeds;
  const size_t checkpoints = options.checkpoints.size();
  out.median_best_at.resize(checkpoints);
  out.mean_best_at.resize(checkpoints);
  out.median_hypervolume_at.resize(checkpoints);
  out.mean_hypervolume_at.resize(checkpoints);
  if (seeds.empty() || resamples < 1) return out;
  std::vector<double> to_best, to_top1, to_top5;
  std::vector<std::vector<double>> med_at(checkpoints), mean_at(checkpoints), med_hv(checkpoints), mean_hv(checkpoints);
  for_each_resample(seeds.size(), resamples, rng_seed, [&](const std::vector<size_t>& idx) {
    std::vector<double> b, t1, t5;
    for (size_t i : idx) {
      b.push_back(trials_or_inf(seeds[i].to_best));
      t1.push_back(trials_or_inf(seeds[i].to_top1));
      t5.push_back(trials_or_inf(seeds[i].to_top5));
    }
    to_best.push_back(median_of(b));
    to_top1.push_back(median_of(t1));
    to_top5.push_back(median_of(t5));
    for (size_t c = 0; c < checkpoints; ++c) {
      std::vector<double> v;
      for (size_t i : idx) v.push_back(best_at(seeds[i], c));
      v = finite_only(std::move(v));
      med_at[c].push_back(median_of(v));
      mean_at[c].push_back(mean_of(v));
      std::vector<double> h;
      for (size_t i : idx) h.push_back(hypervolume_at(seeds[i], c));
      h = finite_only(std::move(h));
      med_hv[c].push_back(median_of(h));
      mean_hv[c].push_back(mean_of(h));
    }
  });
  out.median_to_best = percentile_interval(to_best);
  out.median_to_top1 = percentile_interval(to_top1);
  out.median_to_top5 = percentile_interval(to_top5);
  for (size_t c = 0; c < checkpoints; ++c) {
    out.median_best_at[c] = percentile_interval(med_at[c]);
    out.mean_best_at[c] = percentile_interval(mean_at[c]);
    out.median_hypervolume_at[c] = percentile_interval(med_hv[c]);
    out.mean_hypervolume_at[c] = percentile_interval(mean_hv[c]);
  }
  return out;
}

ReplayComparison compare_replays(const ReplaySummary& a, const ReplaySummary& b, const ReplayOptions& options,
                                 int64_t resamples, uint64_t rng_seed) {
  FLEXNAS_CHECK(a.seeds.size() == b.seeds.size(), "paired replays need the same seeds");
  for (size_t i = 0; i < a.seeds.size(); ++i)
    FLEXNAS_CHECK(a.seeds[i].seed == b.seeds[i].seed, "paired replays need the same seeds");
  const size_t n = a.seeds.size(), checkpoints = options.checkpoints.size();
  ReplayComparison out;
  out.mean_best_at.resize(checkpoints);
  out.mean_hypervolume_at.resize(checkpoints);
  if (n == 0) return out;
  // Not reached = budget + 1: censored, so that the difference stays a number.
  const auto censored = [&](int64_t t) { return t < 0 ? double(options.budget + 1) : double(t); };
  const auto median_diff = [&](const std::vector<size_t>& idx) {
    std::vector<double> x, y;
    for (size_t i : idx) {
      x.push_back(censored(a.seeds[i].to_top1));
      y.push_back(censored(b.seeds[i].to_top1));
    }
    return median_of(x) - median_of(y);
  };
  const auto mean_diff = [&](const std::vector<size_t>& idx, size_t c) {
    std::vector<double> d;
    for (size_t i : idx) d.push_back(best_at(a.seeds[i], c) - best_at(b.seeds[i], c));
    return mean_of(finite_only(std::move(d)));
  };
  const auto mean_hv_diff = [&](const std::vector<size_t>& idx, size_t c) {
    std::vector<double> d;
    for (size_t i : idx) d.push_back(hypervolume_at(a.seeds[i], c) - hypervolume_at(b.seeds[i], c));
    return mean_of(finite_only(std::move(d)));
  };
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  out.median_to_top1.estimate = median_diff(all);
  for (size_t c = 0; c < checkpoints; ++c) {
    out.mean_best_at[c].estimate = mean_diff(all, c);
    out.mean_hypervolume_at[c].estimate = mean_hv_diff(all, c);
  }
  for (size_t i = 0; i < n; ++i) {
    const double x = censored(a.seeds[i].to_top1), y = censored(b.seeds[i].to_top1);
    (x < y ? out.a_sooner : y < x ? out.b_sooner : out.same) += 1;
  }
  std::vector<double> med;
  std::vector<std::vector<double>> means(checkpoints), hvs(checkpoints);
  for_each_resample(n, resamples, rng_seed, [&](const std::vector<size_t>& idx) {
    med.push_back(median_diff(idx));
    for (size_t c = 0; c < checkpoints; ++c) {
      means[c].push_back(mean_diff(idx, c));
      hvs[c].push_back(mean_hv_diff(idx, c));
    }
  });
  out.median_to_top1.interval = percentile_interval(med);
  for (size_t c = 0; c < checkpoints; ++c) {
    out.mean_best_at[c].interval = percentile_interval(means[c]);
    out.mean_hypervolume_at[c].interval = percentile_interval(hvs[c]);
  }
  return out;
}

}  // namespace flexnas::nas
