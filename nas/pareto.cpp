#include "nas/pareto.h"

#include <algorithm>
#include <limits>

#include "design_space/error.h"

namespace flexnas::nas {

bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
  FLEXNAS_CHECK(a.size() == b.size(), "objective counts differ: ", a.size(), " vs ", b.size());
  bool strictly = false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) strictly = true;
  }
  return strictly;
}

std::vector<std::vector<int64_t>> non_dominated_sort(const std::vector<std::vector<double>>& points) {
  const int64_t n = int64_t(points.size());
  std::vector<std::vector<int64_t>> dominated_by_me(n);  // S_p
  std::vector<int64_t> domination_count(n, 0);           // n_p
  for (int64_t p = 0; p < n; ++p)
    for (int64_t q = p + 1; q < n; ++q) {
      if (dominates(points[p], points[q])) {
        dominated_by_me[p].push_back(q);
        ++domination_count[q];
      } else if (dominates(points[q], points[p])) {
        dominated_by_me[q].push_back(p);
        ++domination_count[p];
      }
    }
  std::vector<std::vector<int64_t>> fronts;
  std::vector<int64_t> current;
  for (int64_t p = 0; p < n; ++p)
    if (domination_count[p] == 0) current.push_back(p);
  while (!current.empty()) {
    fronts.push_back(current);
    std::vector<int64_t> next;
    for (int64_t p : current)
      for (int64_t q : dominated_by_me[p])
        if (--domination_count[q] == 0) next.push_back(q);
    std::sort(next.begin(), next.end());
    current = std::move(next);
  }
  return fronts;
}

std::vector<int64_t> pareto_front(const std::vector<std::vector<double>>& points) {
  auto fronts = non_dominated_sort(points);
  return fronts.empty() ? std::vector<int64_t>{} : fronts.front();
}

std::vector<int64_t> pareto_front_2d(const std::vector<Point2>& points) {
  std::vector<int64_t> order(points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return points[size_t(a)] < points[size_t(b)]; });
  // Sweep by the first objective: a point is on the front when it lowers the running minimum of
  // the second, or repeats the last front point exactly (neither of two equal points dominates).
  std::vector<int64_t> front;
  for (int64_t i : order) {
    const Point2& p = points[size_t(i)];
    if (front.empty() || p[1] < points[size_t(front.back())][1] || p == points[size_t(front.back())]) front.push_back(i);
  }
  return front;
}

double hypervolume_2d(const std::vector<Point2>& points, const Point2& reference) {
  std::vector<Point2> inside;
  for (const auto& p : points)
    if (p[0] < reference[0] && p[1] < reference[1]) inside.push_back(p);
  // Sweep by the first objective; keep the running minimum of the second: each point that lowers
  // it adds the slab between its own x and the reference's x.
  std::sort(inside.begin(), inside.end());
  double volume = 0.0;
  double best_y = reference[1];
  for (size_t i = 0; i < inside.size(); ++i) {
    if (inside[i][1] >= best_y) continue;  // dominated (or equal) by an earlier point
    const double next_x = reference[0];
    // Area of the rectangle [x_i, ref_x] x [y_i, best_y] not covered yet.
    volume += (next_x - inside[i][0]) * (best_y - inside[i][1]);
    best_y = inside[i][1];
  }
  return volume;
}

std::vector<double> crowding_distance(const std::vector<std::vector<double>>& points, const std::vector<int64_t>& front) {
  const size_t n = front.size();
  std::vector<double> distance(n, 0.0);
  if (n == 0) return distance;
  const size_t objectives = points[size_t(front[0])].size();
  std::vector<size_t> order(n);
  for (size_t m = 0; m < objectives; ++m) {
    for (size_t i = 0; i < n; ++i) order[i] = i;
    const auto f = [&](size_t i) { return points[size_t(front[i])][m]; };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f(a) < f(b); });
    const double range = f(order.back()) - f(order.front());
    distance[order.front()] = distance[order.back()] = std::numeric_limits<double>::infinity();
    if (!(range > 0)) continue;
    for (size_t k = 1; k + 1 < n; ++k) distance[order[k]] += (f(order[k + 1]) - f(order[k - 1])) / range;
  }
  return distance;
}

NsgaRanking nsga_ranking(const std::vector<std::vector<double>>& points) {
  NsgaRanking out;
  out.rank.assign(points.size(), 0);
  out.crowding.assign(points.size(), 0.0);
  const auto fronts = non_dominated_sort(points);
  for (size_t r = 0; r < fronts.size(); ++r) {
    const std::vector<double> d = crowding_distance(points, fronts[r]);
    for (size_t k = 0; k < fronts[r].size(); ++k) {
      out.rank[size_t(fronts[r][k])] = int64_t(r);
      out.crowding[size_t(fronts[r][k])] = d[k];
    }
  }
  return out;
}

std::vector<int64_t> nsga_select(const std::vector<std::vector<double>>& points, int64_t count) {
  std::vector<int64_t> chosen;
  if (count <= 0) return chosen;
  for (const std::vector<int64_t>& front : non_dominated_sort(points)) {
    if (int64_t(chosen.size() + front.size()) <= count) {
      chosen.insert(chosen.end(), front.begin(), front.end());
      if (int64_t(chosen.size()) == count) break;
      continue;
    }
    // The front that does not fit: its least crowded members first (ties by index).
    const std::vector<double> d = crowding_distance(points, front);
    std::vector<size_t> order(front.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] > d[b]; });
    for (size_t k = 0; int64_t(chosen.size()) < count; ++k) chosen.push_back(front[order[k]]);
    break;
  }
  return chosen;
}

}  // namespace flexnas::nas
