#pragma once
// Embeddings of a library (spec §2.5): E in R^{N x d}, fitted so that Euclidean distances match
// the structural distances, in time near-linear in N (the reference fits all N(N-1)/2 pairs of an
// interpolated matrix).
//
//   1. landmark MDS: k random landmarks (k x k distances, classical MDS by a symmetric eigen-
//      decomposition), every point placed by distance-based triangulation (N x k distances);
//   2. refinement: each point gets `pairs_per_point` random partners plus `local_pairs_per_point`
//      partners near it in an optional similarity order (e.g. the label-sorted order the
//      neighbour rule uses, so small distances are represented too); then `iterations` damped
//      sweeps of the per-point stress-majorisation (Guttman) update on those pairs;
//   3. quality on held-out random pairs: normalised stress sqrt(sum (e-d)^2 / sum d^2) and the
//      Spearman rank correlation of e and d.
// Seeded and deterministic for any thread count (every parallel loop writes per point; random
// streams are per point). OpenMP uses the current omp_get_max_threads().
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

namespace flexnas {

struct EmbeddingOptions {
  int64_t dim = 16;                   // d
  int64_t landmarks = 256;            // k (capped at N)
  int64_t pairs_per_point = 40;       // random refinement partners per point
  int64_t local_pairs_per_point = 12; // partners adjacent in `order` (if given)
  int64_t iterations = 30;            // refinement sweeps
  double damping = 0.5;               // step towards the per-point optimum per sweep
  int64_t holdout_pairs = 20000;      // random pairs for the quality report
  uint64_t seed = 0;
  bool progress = true;               // show Progress bars

  nlohmann::ordered_json to_json() const;
};

struct EmbeddingReport {
  double stress = 0;          // normalised stress on held-out pairs, after refinement
  double spearman = 0;        // Spearman rank correlation on held-out pairs, after refinement
  double landmark_stress = 0; // the same stress right after landmark MDS (before refinement)
  int64_t holdout_pairs = 0;
  int64_t distance_evaluations = 0;  // structural distances computed (fit + evaluation)
  double seconds_distances = 0;      // wall time spent computing structural distances
  double seconds_fit = 0;            // wall time of MDS + refinement

  nlohmann::ordered_json to_json() const;
};

/// d(i, j) for i, j < n; must be symmetric and thread-safe.
using DistanceFn = std::function<double(size_t, size_t)>;

/// [n][dim] embeddings. `order` (optional): a permutation of 0..n-1 in which nearby positions are
/// structurally similar; it supplies the local refinement partners.
std::vector<std::vector<float>> fit_embeddings(size_t n, const DistanceFn& distance, const EmbeddingOptions& options,
                                               EmbeddingReport* report = nullptr,
                                               const std::vector<int64_t>* order = nullptr);

/// Stress and Spearman correlation of `embeddings` against `distance` on `pairs` random pairs.
void evaluate_embeddings(const std::vector<std::vector<float>>& embeddings, const DistanceFn& distance, int64_t pairs,
                         uint64_t seed, double* stress, double* spearman);

/// Spearman rank correlation of two samples (average ranks for ties).
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);

/// Eigen-decomposition of a symmetric n x n matrix (row-major; Householder + implicit QL):
/// eigenvalues descending, eigenvectors as columns of `vectors` (row-major n x n).
void symmetric_eigen(std::vector<double> matrix, size_t n, std::vector<double>& values, std::vector<double>& vectors);

}  // namespace flexnas
