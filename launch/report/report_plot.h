#pragma once
// The pictures of a campaign's report, written with every report next to leaderboard.txt: plain
// SVG (launch/report/svg_plot.h), no plotting dependency, open in any browser. Same inputs, same bytes.
//   DIR/report/trials.svg     left:  each completed trial's value by trial number, and the best so far
//                                    as a step line; right: value against parameter count (log
//                                    scale) with the Pareto front (the best value at that size or
//                                    smaller) as a step line. Trials taken over from a parent
//                                    campaign (an earlier level) are grey, this level's are blue.
//   DIR/report/pareto.svg     value against parameters and against latency (log scales): the
//                                    forward latency objective.profile measured, or, in a campaign that
//                                    does not measure it, the trial's wall time; each with its Pareto
//                                    front as a step line and the front's points highlighted, dominated
//                                    points grey.
//   DIR/report/embedding.svg  the library embedding map: the library's architecture embeddings
//                                    projected on their top two principal components (grey dots),
//                                    trained architectures coloured by value (viridis, with a colour
//                                    bar), the best one marked with a star.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "launch/campaign/campaign_store.h"

namespace flexnas::launch {

std::string trials_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       int64_t campaign_level);

/// `profiles` (hash -> measurement; nullptr or no measured trial = wall time instead): the latency panel.
std::string pareto_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       const std::map<std::string, ProfileRow>* profiles = nullptr);

/// A library's embeddings ([N][d], an empty row = no embedding) projected on their top two principal
/// components: deterministic (Jacobi eigen solver on the d x d covariance, each component's largest
/// entry made positive).
struct LibraryMap {
  int64_t dim = 0;                          // d (0: no embeddings)
  int64_t count = 0;                        // rows with an embedding
  std::vector<std::array<double, 2>> xy;    // [N] (PC1, PC2); meaningful where `has` is set
  std::vector<char> has;                    // [N] 1 when the row has an embedding of length d
  std::array<double, 2> explained{{0, 0}};  // fraction of the variance along PC1, PC2
};
LibraryMap library_map(const std::vector<std::vector<float>>& embeddings);

/// Top `k` eigenpairs of a symmetric matrix (row-major, n x n), eigenvalues descending; each
/// eigenvector's largest-magnitude entry positive. Cyclic Jacobi rotations.
void symmetric_eigen(std::vector<double> matrix, int n, int k, std::vector<double>& values,
                     std::vector<std::vector<double>>& vectors);

/// Trials are placed by their library index (TrialRow::index); the best is the highest score.
std::string embedding_svg(const std::vector<TrialRow>& trials, const LibraryMap& map, const std::string& metric,
                          bool maximise);

}  // namespace flexnas::launch
