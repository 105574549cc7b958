#include "launch/report/report_plot.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>
#include <utility>

#include "launch/campaign/campaign_store.h"
#include "launch/report/svg_plot.h"
#include "nas/pareto.h"

namespace flexnas::launch {
namespace {

constexpr const char* kOwnColour = "#1f77b4";     // this level's trials
constexpr const char* kParentColour = "#999999";  // trials taken over from a parent campaign
constexpr const char* kBestColour = "#d62728";    // best so far, Pareto fronts, the best trial
constexpr const char* kDominatedColour = "#b5b5b5";

std::string fixed(double v, int decimals) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(decimals);
  s << v;
  return s.str();
}

/// A value as the leaderboard shows it (6 significant digits).
std::string value_text(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

std::string direction(bool maximise) { return maximise ? "higher is better" : "lower is better"; }

plot::Series points(const std::string& name, const std::string& colour) {
  plot::Series s;
  s.name = name;
  s.colour = colour;
  s.line = false;
  return s;
}

plot::Series step_line(const std::string& name, const std::string& colour) {
  plot::Series s;
  s.name = name;
  s.colour = colour;
  s.markers = false;
  return s;
}

std::vector<const TrialRow*> completed(const std::vector<TrialRow>& trials, int64_t* failed = nullptr) {
  std::vector<const TrialRow*> done;
  for (const TrialRow& t : trials) {
    if (t.status == trial_status::kCompleted && t.value) done.push_back(&t);
    if (failed) *failed += t.status == trial_status::kFailed;
  }
  std::sort(done.begin(), done.end(), [](const TrialRow* a, const TrialRow* b) { return a->id < b->id; });
  return done;
}

/// The Pareto front of (cost, value) points (cost minimised, value by `maximise`): its members in
/// cost order, and the front as a step line (the best value at that cost or less) running on to the
/// largest cost.
struct Front {
  std::vector<size_t> members;
  std::vector<double> x, y;
};
Front pareto_steps(const std::vector<double>& cost, const std::vector<double>& value, bool maximise) {
  std::vector<nas::Point2> objectives;
  for (size_t i = 0; i < cost.size(); ++i) objectives.push_back({cost[i], maximise ? -value[i] : value[i]});
  Front f;
  for (int64_t i : nas::pareto_front_2d(objectives)) f.members.push_back(size_t(i));
  for (size_t k = 0; k < f.members.size(); ++k) {
    const size_t i = f.members[k];
    if (k > 0) f.x.push_back(cost[i]), f.y.push_back(f.y.back());
    f.x.push_back(cost[i]), f.y.push_back(value[i]);
  }
  if (!f.members.empty()) {
    const double largest = *std::max_element(cost.begin(), cost.end());
    if (largest > f.x.back()) f.x.push_back(largest), f.y.push_back(f.y.back());
  }
  return f;
}

std::string message_svg(const std::string& text, double width, double height) {
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
      << "' font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n"
      << "<text x='20' y='40'>" << plot::escape_xml(text) << "</text>\n</svg>\n";
  return svg.str();
}

/// A Pareto panel: every trial with cost > 0, dominated ones grey, the front highlighted and stepped.
plot::LineChart pareto_panel(const std::vector<const TrialRow*>& done, const std::function<double(const TrialRow&)>& cost_of,
                             const std::string& title, const std::string& x_title, const std::string& metric,
                             bool maximise, bool si) {
  std::vector<double> cost, value;
  std::vector<int64_t> ids;
  for (const TrialRow* t : done)
    if (cost_of(*t) > 0) cost.push_back(cost_of(*t)), value.push_back(*t->value), ids.push_back(t->id);
  const Front front = pareto_steps(cost, value, maximise);
  std::vector<char> on_front(cost.size(), 0);
  for (size_t i : front.members) on_front[i] = 1;
  plot::Series dominated = points("dominated", kDominatedColour);
  plot::Series best = points("Pareto front (trial numbers)", kBestColour);
  best.marker_radius = 4.5;
  best.marker_stroke = "#7a1010";
  best.opacity = 1;
  for (size_t i = 0; i < cost.size(); ++i)
    if (!on_front[i]) dominated.x.push_back(cost[i]), dominated.y.push_back(value[i]);
  const bool label = front.members.size() <= 12;  // trial numbers beside the front's points
  for (size_t i : front.members) {
    best.x.push_back(cost[i]), best.y.push_back(value[i]);
    if (label) best.labels.push_back(std::to_string(ids[i]));
  }
  if (!label) best.name = "Pareto front";
  plot::Series steps = step_line("", kBestColour);
  steps.x = front.x, steps.y = front.y;
  plot::LineChart chart;
  chart.title = title + " (" + std::to_string(front.members.size()) + " of " + std::to_string(cost.size()) +
                " on the front)";
  chart.x_title = x_title;
  chart.y_title = metric + " (" + direction(maximise) + ")";
  chart.log_x = true;
  chart.x_si = si;
  chart.width = 500, chart.height = 380;
  chart.series = {dominated, steps, best};
  return chart;
}

}  // namespace

// ---- trials.svg ----

std::string trials_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       int64_t campaign_level) {
  int64_t failed = 0;
  const std::vector<const TrialRow*> done = completed(trials, &failed);
  if (done.empty()) return message_svg("no completed trials yet (" + std::to_string(failed) + " failed)", 920, 300);
  auto better = [&](double a, double b) { return maximise ? a > b : a < b; };
  auto own = [&](const TrialRow& t) { return trial_level(t, campaign_level) == campaign_level; };

  // Left: value by trial number; the best so far in trial order, as steps.
  plot::Series mine = points("level " + std::to_string(campaign_level), kOwnColour);
  plot::Series parent = points("earlier levels", kParentColour);
  plot::Series best_line = step_line("best so far", kBestColour);
  double best = *done.front()->value;
  for (const TrialRow* t : done) {
    plot::Series& s = own(*t) ? mine : parent;
    s.x.push_back(double(t->id)), s.y.push_back(*t->value);
    if (better(*t->value, best)) {
      best_line.x.push_back(double(t->id)), best_line.y.push_back(best);  // flat until this trial, then up
      best = *t->value;
    }
    best_line.x.push_back(double(t->id)), best_line.y.push_back(best);
  }
  if (parent.x.empty()) mine.name = "trial", parent.name = "";
  plot::LineChart left;
  left.title = metric + " by trial (" + std::to_string(done.size()) + " done, " + std::to_string(failed) + " failed)";
  left.x_title = "trial";
  left.y_title = metric + " (" + direction(maximise) + ")";
  left.x_min_step = 1;
  left.width = 460, left.height = 300;
  left.series = {parent, mine, best_line};

  // Right: value against parameters (log scale), the Pareto front (fewer parameters, better value).
  plot::Series mine_size = points("", kOwnColour), parent_size = points("", kParentColour);
  std::vector<double> cost, value;
  for (const TrialRow* t : done)
    if (t->parameters > 0) {
      plot::Series& s = own(*t) ? mine_size : parent_size;
      s.x.push_back(double(t->parameters)), s.y.push_back(*t->value);
      cost.push_back(double(t->parameters)), value.push_back(*t->value);
    }
  const Front front = pareto_steps(cost, value, maximise);
  plot::Series front_line = step_line("Pareto front", "#2ca02c");
  front_line.x = front.x, front_line.y = front.y;
  plot::LineChart right;
  right.title = metric + " against size (Pareto front)";
  right.x_title = "parameters";
  right.y_title = metric;
  right.log_x = true;
  right.x_si = true;
  right.width = 460, right.height = 300;
  right.series = {parent_size, mine_size, front_line};
  return plot::charts_svg({left, right});
}

// ---- pareto.svg ----

std::string pareto_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       const std::map<std::string, ProfileRow>* profiles) {
  const std::vector<const TrialRow*> done = completed(trials);
  if (done.empty()) return message_svg("no completed trials yet", 1000, 400);
  const plot::LineChart by_size = pareto_panel(
      done, [](const TrialRow& t) { return double(t.parameters); }, "against size",
      "parameters (log scale; fewer is better)", metric, maximise, true);
  // The second panel: the latency objective.profile measured, where the campaign measures it; else
  // each trial's wall time.
  std::map<std::string, double> latency;  // hash -> ms, successful measurements only
  if (profiles)
    for (const auto& [hash, row] : *profiles)
      if (row.error.empty() && row.latency_ms > 0) latency[hash] = row.latency_ms;
  const bool measured = std::any_of(done.begin(), done.end(), [&](const TrialRow* t) { return latency.count(t->hash) > 0; });
  const std::string title = metric + ": Pareto fronts of " + std::to_string(done.size()) + " completed trials";
  if (measured) {
    const plot::LineChart by_latency = pareto_panel(
        done,
        [&](const TrialRow& t) {
          const auto it = latency.find(t.hash);
          return it == latency.end() ? 0.0 : it->second;
        },
        "against latency", "latency per batch, ms (measured; log scale; less is better)",
        metric, maximise, false);
    return plot::charts_svg({by_size, by_latency}, title);
  }
  const plot::LineChart by_time = pareto_panel(
      done, [](const TrialRow& t) { return t.seconds; }, "against training time",
      "wall time of the trial, s (log scale; less is better)", metric, maximise, false);
  return plot::charts_svg({by_size, by_time}, title + " (no latency measured: wall time instead)");
}

// ---- embedding.svg ----

void symmetric_eigen(std::vector<double> a, int n, int k, std::vector<double>& values,
                     std::vector<std::vector<double>>& vectors) {
  std::vector<double> v(size_t(n) * size_t(n), 0.0);
  for (int i = 0; i < n; ++i) v[size_t(i) * size_t(n) + size_t(i)] = 1;
  auto at = [n](std::vector<double>& m, int r, int c) -> double& { return m[size_t(r) * size_t(n) + size_t(c)]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diagonal = 0;
    for (int p = 0; p < n; ++p) {
      diagonal += at(a, p, p) * at(a, p, p);
      for (int q = p + 1; q < n; ++q) off += at(a, p, q) * at(a, p, q);
    }
    if (off <= 1e-30 * (diagonal + off) || off == 0) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = at(a, p, q);
        if (std::abs(apq) < 1e-300) continue;
        const double theta = (at(a, q, q) - at(a, p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int r = 0; r < n; ++r) {  // A <- A J
          const double arp = at(a, r, p), arq = at(a, r, q);
          at(a, r, p) = c * arp - s * arq, at(a, r, q) = s * arp + c * arq;
        }
        for (int r = 0; r < n; ++r) {  // A <- J^T A
          const double apr = at(a, p, r), aqr = at(a, q, r);
          at(a, p, r) = c * apr - s * aqr, at(a, q, r) = s * apr + c * aqr;
        }
        for (int r = 0; r < n; ++r) {  // V <- V J
          const double vrp = at(v, r, p), vrq = at(v, r, q);
          at(v, r, p) = c * vrp - s * vrq, at(v, r, q) = s * vrp + c * vrq;
        }
      }
  }
  std::vector<int> order(size_t(n), 0);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return at(a, i, i) > at(a, j, j); });
  values.clear(), vectors.clear();
  for (int r = 0; r < std::min(k, n); ++r) {
    const int col = order[size_t(r)];
    values.push_back(at(a, col, col));
    std::vector<double> e(static_cast<size_t>(n), 0.0);
    size_t largest = 0;
    for (int i = 0; i < n; ++i) {
      e[size_t(i)] = at(v, i, col);
      if (std::abs(e[size_t(i)]) > std::abs(e[largest]) + 1e-12) largest = size_t(i);
    }
    if (e[largest] < 0)
      for (double& x : e) x = -x;
    vectors.push_back(std::move(e));
  }
}

LibraryMap library_map(const std::vector<std::vector<float>>& embeddings) {
  LibraryMap map;
  map.xy.assign(embeddings.size(), {{0, 0}});
  map.has.assign(embeddings.size(), 0);
  for (const auto& e : embeddings)
    if (!e.empty()) {
      map.dim = int64_t(e.size());
      break;
    }
  const size_t d = size_t(map.dim);
  std::vector<size_t> rows;
  for (size_t i = 0; i < embeddings.size(); ++i)
    if (d > 0 && embeddings[i].size() == d) rows.push_back(i), map.has[i] = 1;
  map.count = int64_t(rows.size());
  if (rows.empty()) return map;
  std::vector<double> mean(d, 0.0);
  for (size_t i : rows)
    for (size_t j = 0; j < d; ++j) mean[j] += embeddings[i][j];
  for (double& m : mean) m /= double(rows.size());
  // The covariance from at most 50,000 evenly spaced rows (a library of millions stays cheap).
  const size_t stride = std::max<size_t>(1, (rows.size() + 49999) / 50000);
  std::vector<double> cov(d * d, 0.0), centred(d);
  size_t used = 0;
  for (size_t r = 0; r < rows.size(); r += stride, ++used) {
    for (size_t j = 0; j < d; ++j) centred[j] = embeddings[rows[r]][j] - mean[j];
    for (size_t p = 0; p < d; ++p)
      for (size_t q = p; q < d; ++q) cov[p * d + q] += centred[p] * centred[q];
  }
  for (size_t p = 0; p < d; ++p)
    for (size_t q = p; q < d; ++q) cov[q * d + p] = cov[p * d + q] = cov[p * d + q] / double(std::max<size_t>(1, used - 1));
  double total = 0;
  for (size_t p = 0; p < d; ++p) total += cov[p * d + p];
  std::vector<double> values;
  std::vector<std::vector<double>> vectors;
  symmetric_eigen(cov, int(d), 2, values, vectors);
  for (size_t c = 0; c < vectors.size(); ++c) map.explained[c] = total > 0 ? std::max(0.0, values[c]) / total : 0;
  for (size_t i : rows)
    for (size_t c = 0; c < vectors.size(); ++c) {
      double x = 0;
      for (size_t j = 0; j < d; ++j) x += (embeddings[i][j] - mean[j]) * vectors[c][j];
      map.xy[i][c] = x;
    }
  return map;
}

std::string embedding_svg(const std::vector<TrialRow>& trials, const LibraryMap& map, const std::string& metric,
                          bool maximise) {
  plot::LineChart chart;
  chart.width = 760, chart.height = 560;
  if (map.count == 0) {
    chart.title = "library embedding map: the library has no embeddings";
    return plot::line_chart_svg(chart);
  }
  // Library: grey dots, one per ~1/800 of the map's extent (a dense library stays a small file).
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  bool first = true;
  for (size_t i = 0; i < map.xy.size(); ++i)
    if (map.has[i]) {
      const auto [x, y] = map.xy[i];
      if (first) x0 = x1 = x, y0 = y1 = y, first = false;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  const double cell_x = std::max(x1 - x0, 1e-12) / 800, cell_y = std::max(y1 - y0, 1e-12) / 600;
  std::set<std::pair<int64_t, int64_t>> cells;
  plot::Series library = points("", "#8c8c8c");
  library.marker_radius = 1.8;
  library.opacity = 0.5;
  for (size_t i = 0; i < map.xy.size(); ++i)
    if (map.has[i] &&
        cells.insert({int64_t(std::floor((map.xy[i][0] - x0) / cell_x)), int64_t(std::floor((map.xy[i][1] - y0) / cell_y))})
            .second)
      library.x.push_back(map.xy[i][0]), library.y.push_back(map.xy[i][1]);
  library.name = "library (" + std::to_string(map.count) + " architectures)";

  // Trained architectures coloured by value; the best (highest score) starred.
  plot::Series trained = points("", "#444444");
  trained.marker_radius = 4.5;
  trained.marker_stroke = "#333333";
  trained.opacity = 1;
  const TrialRow* best = nullptr;
  int64_t placed = 0;
  for (const TrialRow* t : completed(trials)) {
    if (t->index < 0 || size_t(t->index) >= map.xy.size() || !map.has[size_t(t->index)]) continue;
    const auto [x, y] = map.xy[size_t(t->index)];
    trained.x.push_back(x), trained.y.push_back(y), trained.colour_values.push_back(*t->value);
    ++placed;
    const double score = t->score ? *t->score : (maximise ? *t->value : -*t->value);
    const double best_score = best ? (best->score ? *best->score : (maximise ? *best->value : -*best->value)) : 0;
    if (!best || score > best_score) best = t;
  }
  trained.name = "trained (" + std::to_string(placed) + ")";
  chart.series = {library, trained};
  if (best) {
    plot::Series star = points("best: trial " + std::to_string(best->id) + ", " + value_text(*best->value), kBestColour);
    star.marker = "star";
    star.marker_radius = 6;
    star.marker_stroke = "#000000";
    star.opacity = 1;
    const auto [x, y] = map.xy[size_t(best->index)];
    star.x = {x}, star.y = {y};
    star.labels = {"best"};
    chart.series.push_back(star);
  }
  chart.title = "library embedding map: PCA of " + std::to_string(map.count) + " embeddings (d = " +
                std::to_string(map.dim) + ")";
  chart.x_title = "PC1 (" + fixed(100 * map.explained[0], 1) + "% of the variance)";
  chart.y_title = "PC2 (" + fixed(100 * map.explained[1], 1) + "%)";
  if (placed > 0) chart.colour_bar_title = metric + " (" + direction(maximise) + ")";
  return plot::line_chart_svg(chart);
}

}  // namespace flexnas::launch
