#pragma once
// Neighbour lists (spec §2.6), the reference's "biased" rule: for graph i, all other graphs sorted
// by (-overlap(i, j), |E_i - E_j|, library index j) ascending, the first k kept. overlap(i, j) =
// length of the common prefix of the two op-label sequences (vertex order of spec §2.1), i.e. how
// far bottom-up weight transfer can copy before the first mismatch.
//
// Not O(N^2 log N): the label sequences are sorted once; the graphs sharing a prefix of length >= v
// with i are then a contiguous run around i in that order (the run's bounds come from the adjacent
// LCP array), so candidates are visited level by level, longest overlap first, and only the last
// level needed is partially sorted (top-k selection). Self is excluded; a library with fewer than
// k + 1 graphs gives every other graph (the reference's defect 5 fixed).
#include <cstdint>
#include <string>
#include <vector>

#include "design_space/architecture.h"

namespace flexnas {

/// Op-label sequences of a set of architectures, labels interned to ids.
struct LabelSequences {
  std::vector<int32_t> ids;       // concatenated sequences
  std::vector<size_t> offsets;    // sequence a = ids[offsets[a] .. offsets[a+1])
  std::vector<std::string> names; // id -> label

  size_t size() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  size_t length(size_t a) const { return offsets[a + 1] - offsets[a]; }
  const int32_t* data(size_t a) const { return ids.data() + offsets[a]; }
};

LabelSequences label_sequences(const std::vector<Architecture>& archs);

/// Length of the common prefix of sequences a and b (the reference's overlap).
int64_t common_prefix(const LabelSequences& seqs, size_t a, size_t b);

/// Indices sorted by label sequence (lexicographic on interned ids, ties by index): graphs with
/// long common prefixes are adjacent. Also a good "similarity order" for embedding refinement.
std::vector<int64_t> prefix_order(const LabelSequences& seqs);

struct NeighborOptions {
  int64_t k = 100;        // neighbours per graph (fewer if the library is smaller)
  bool progress = true;   // show a Progress bar
};

/// [N][min(k, N-1)] library indices, nearest first, by the biased rule. `embeddings` may be empty
/// (or hold empty rows): ties on overlap are then broken by index alone.
std::vector<std::vector<int64_t>> biased_neighbors(const LabelSequences& seqs,
                                                   const std::vector<std::vector<float>>& embeddings,
                                                   const NeighborOptions& options);

}  // namespace flexnas
