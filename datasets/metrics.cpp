#include "datasets/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "datasets/glue.h"
#include "design_space/error.h"

namespace flexnas::datasets {
namespace {

void check_sizes(size_t a, size_t b, const char* what) {
  FLEXNAS_CHECK(a == b, what, ": ", a, " predictions for ", b, " gold values");
  FLEXNAS_CHECK(a > 0, what, ": no examples");
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;  // 1-based average rank
    for (size_t k = i; k <= j; ++k) r[order[k]] = avg;
    i = j + 1;
  }
  return r;
}

}  // namespace

double accuracy(const std::vector<int64_t>& p, const std::vector<int64_t>& g) {
  check_sizes(p.size(), g.size(), "accuracy");
  size_t right = 0;
  for (size_t i = 0; i < p.size(); ++i) right += p[i] == g[i];
  return static_cast<double>(right) / static_cast<double>(p.size());
}

double f1_score(const std::vector<int64_t>& p, const std::vector<int64_t>& g, int64_t positive) {
  check_sizes(p.size(), g.size(), "f1");
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    tp += p[i] == positive && g[i] == positive;
    fp += p[i] == positive && g[i] != positive;
    fn += p[i] != positive && g[i] == positive;
  }
  return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

double macro_f1(const std::vector<int64_t>& p, const std::vector<int64_t>& g, int64_t num_classes) {
  check_sizes(p.size(), g.size(), "macro_f1");
  double sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    if (std::find(g.begin(), g.end(), c) == g.end() && std::find(p.begin(), p.end(), c) == p.end()) continue;
    sum += f1_score(p, g, c);
    ++present;
  }
  return present == 0 ? 0.0 : sum / static_cast<double>(present);
}

double matthews_corrcoef(const std::vector<int64_t>& p, const std::vector<int64_t>& g, int64_t k) {
  check_sizes(p.size(), g.size(), "mcc");
  // Gorodkin's R_K from the confusion matrix C: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
  // c = correct, s = samples, p_k = predicted k, t_k = true k. Equals the binary MCC for K = 2.
  for (size_t i = 0; i < p.size(); ++i) k = std::max<int64_t>(k, std::max(p[i], g[i]) + 1);
  std::vector<double> pk(static_cast<size_t>(k), 0.0), tk(static_cast<size_t>(k), 0.0);
  double c = 0, s = static_cast<double>(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    pk[static_cast<size_t>(p[i])] += 1;
    tk[static_cast<size_t>(g[i])] += 1;
    c += p[i] == g[i];
  }
  double pt = 0, pp = 0, tt = 0;
  for (int64_t j = 0; j < k; ++j) {
    pt += pk[j] * tk[j];
    pp += pk[j] * pk[j];
    tt += tk[j] * tk[j];
  }
  const double denom = std::sqrt((s * s - pp) * (s * s - tt));
  return denom == 0 ? 0.0 : (c * s - pt) / denom;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x.size(), y.size(), "pearson");
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx == 0 || syy == 0 ? 0.0 : sxy / std::sqrt(sxx * syy);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x.size(), y.size(), "spearman");
  return pearson(ranks(x), ranks(y));
}

MetricSet compute_metrics(const TaskInfo& task, const Predictions& p) {
  MetricSet m;
  for (const auto& name : task.metrics) {
    if (name == "accuracy") m[name] = accuracy(p.predicted, p.gold);
    else if (name == "f1") m[name] = f1_score(p.predicted, p.gold, 1);
    else if (name == "macro_f1") m[name] = macro_f1(p.predicted, p.gold, task.num_labels);
    else if (name == "mcc") m[name] = matthews_corrcoef(p.predicted, p.gold, task.num_labels);
    else if (name == "pearson") m[name] = pearson(p.predicted_values, p.gold_values);
    else if (name == "spearman") m[name] = spearman(p.predicted_values, p.gold_values);
    else FLEXNAS_CHECK(false, "unknown metric ", name);
  }
  return m;
}

double task_score(const TaskInfo& task, const MetricSet& m) {
  auto get = [&](const char* key) {
    auto it = m.find(key);
    FLEXNAS_CHECK(it != m.end(), "task ", task.name, ": metric ", key, " missing");
    return it->second;
  };
  switch (task.score) {
    case ScoreRule::kAccuracy: return get("accuracy");
    case ScoreRule::kMcc: return get("mcc");
    case ScoreRule::kMeanAccuracyF1: return (get("accuracy") + get("f1")) / 2;
    case ScoreRule::kMeanPearsonSpearman: return (get("pearson") + get("spearman")) / 2;
  }
  return 0;
}

double combine_split_scores(const TaskInfo& task, const std::map<std::string, double>& scores) {
  double sum = 0;
  for (const auto& split : task.eval_splits) {
    auto it = scores.find(split);
    FLEXNAS_CHECK(it != scores.end(), "task ", task.name, ": no score for split ", split);
    sum += it->second;
  }
  return sum / static_cast<double>(task.eval_splits.size());
}

double suite_score(const std::map<std::string, double>& task_scores) {
  if (task_scores.empty()) throw Error("a suite score needs at least one task score");
  double sum = 0;
  for (const auto& [task, score] : task_scores) sum += score;
  return sum / static_cast<double>(task_scores.size());
}

double glue_score(const std::map<std::string, double>& task_scores) {
  double sum = 0;
  std::string missing;
  for (const auto& t : glue_tasks()) {
    auto it = task_scores.find(t);
    if (it == task_scores.end()) it = task_scores.find("glue:" + t);
    if (it == task_scores.end()) {
      missing += (missing.empty() ? "" : ", ") + t;
      continue;
    }
    sum += it->second;
  }
  if (!missing.empty()) throw Error("GLUE score needs all nine task scores; missing: " + missing);
  return sum / static_cast<double>(glue_tasks().size());
}

}  // namespace flexnas::datasets
