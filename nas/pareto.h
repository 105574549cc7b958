#pragma once
// Pareto-front utilities for multi-objective search (score up, cost down). Torch-free.
//
// Every objective here is MINIMISED: callers pass (-score, parameters) or (loss, flops). A point
// a dominates b when a is no worse in every objective and strictly better in at least one.
#include <array>
#include <cstdint>
#include <vector>

namespace flexnas::nas {

using Point2 = std::array<double, 2>;

/// True when `a` dominates `b` (all objectives minimised).
bool dominates(const std::vector<double>& a, const std::vector<double>& b);

/// Non-dominated sorting (Deb et al., NSGA-II): fronts[0] = indices of the Pareto front, fronts[1]
/// the front once fronts[0] is removed, ... Indices inside a front are ascending. O(M N^2).
std::vector<std::vector<int64_t>> non_dominated_sort(const std::vector<std::vector<double>>& points);

/// Indices of the first front only (ascending).
std::vector<int64_t> pareto_front(const std::vector<std::vector<double>>& points);

/// Indices of the Pareto front of 2-D points (both minimised), ordered by the first objective: the
/// same set as pareto_front (exact duplicates of a front point included), by an O(N log N) sweep.
std::vector<int64_t> pareto_front_2d(const std::vector<Point2>& points);

/// Hypervolume dominated by `points` inside the box bounded by `reference` (both objectives
/// minimised; points not strictly better than the reference in both objectives add nothing).
/// Exact 2-D sweep, O(N log N).
double hypervolume_2d(const std::vector<Point2>& points, const Point2& reference);

/// Crowding distance (Deb et al., NSGA-II) of each member of one front (`front` indexes `points`):
/// per objective, the front sorted by it (ties by index), its two ends get +infinity and every
/// other member adds (next - previous) / (max - min) of that objective (nothing when max == min).
/// Returned in the order of `front`. A front of one or two members is all +infinity.
std::vector<double> crowding_distance(const std::vector<std::vector<double>>& points, const std::vector<int64_t>& front);

/// NSGA-II's ranking of a set: each point's front (0 = non-dominated) and its crowding distance
/// within that front. The crowded comparison prefers the lower rank, then the larger distance.
struct NsgaRanking {
  std::vector<int64_t> rank;
  std::vector<double> crowding;
  /// True when point a is preferred to point b (strictly).
  bool better(int64_t a, int64_t b) const {
    return rank[size_t(a)] != rank[size_t(b)] ? rank[size_t(a)] < rank[size_t(b)]
                                              : crowding[size_t(a)] > crowding[size_t(b)];
  }
};
NsgaRanking nsga_ranking(const std::vector<std::vector<double>>& points);

/// NSGA-II survival: the `count` preferred points, most preferred first: whole fronts
/// in order, the front that does not fit cut by crowding distance (larger first; ties by index).
std::vector<int64_t> nsga_select(const std::vector<std::vector<double>>& points, int64_t count);

}  // namespace flexnas::nas
