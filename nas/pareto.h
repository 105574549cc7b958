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

}  // namespace flexnas::nas
