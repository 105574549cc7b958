#pragma once
// The design-space compiler pipeline: design space (or an explicit list of architectures) ->
// architectures -> hashes -> structural distances -> embeddings -> neighbours -> Library.
// Used by `flexnas library generate|import` and bench/library_bench.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "design_space/distance.h"
#include "design_space/embedding.h"
#include "design_space/enumeration.h"
#include "design_space/library.h"

namespace flexnas {

/// What `build_library_from_archs` does with two entries of one architecture (same hash).
enum class DuplicatePolicy {
  kError,  // a ConfigError naming both entries
  kMerge,  // keep the first; its performance = mean of the entries' non-null performances
};

struct LibraryBuildOptions {
  EnumerationSettings enumeration;          // how the space is expanded (generate only)
  uint64_t sample = 0;                      // 0 = every architecture; N = N random ones (seeded)
  uint64_t max_architectures = 5'000'000;   // larger spaces need `sample`
  int64_t neighbors = 100;                  // neighbours per graph
  uint64_t seed = 0;                        // sampling and embedding seed
  EmbeddingOptions embedding;               // dim, landmarks, refinement (its seed is set from `seed`)
  DistanceSettings distance;                // edge cost
  std::optional<std::string> dataset;       // the library's "dataset" key
  DuplicatePolicy duplicates = DuplicatePolicy::kMerge;  // import only
  bool progress = true;                     // Progress bars per stage
};

struct StageTime {
  std::string name;  // enumerate, hash, distances, embeddings, neighbours, save
  double seconds = 0;
};

struct LibraryBuildReport {
  BigCount space_size = 0;   // architectures in the space under the settings (generate only)
  size_t num_archs = 0;      // architectures in the library
  std::vector<StageTime> stages;
  EmbeddingReport embedding;
  std::vector<std::pair<size_t, size_t>> merged;  // import: (dropped entry, entry it duplicated)

  double total_seconds() const;
  void add(const std::string& name, double seconds);
};

/// Enumerates (or samples) `space` and builds the whole library. Throws ConfigError when the space
/// is larger than `max_architectures` and no sample size was given.
Library build_library(const DesignSpace& space, const LibraryBuildOptions& options, LibraryBuildReport* report = nullptr);

/// Builds a library from explicit architectures (e.g. NAS-Bench-BERT). `source` names them in
/// messages and in the file; two entries with one hash are handled by `options.duplicates`
/// (NAS-Bench-BERT's 500 records hold 491 architectures: 9 were trained twice).
Library build_library_from_archs(std::vector<Architecture> archs, const std::string& source,
                                 const LibraryBuildOptions& options, LibraryBuildReport* report = nullptr,
                                 const std::vector<std::optional<double>>& performances = {});

/// Hashes of `archs` (parallel).
std::vector<std::string> hash_architectures(const std::vector<Architecture>& archs, bool progress);

/// Fills embeddings, neighbours and the method keys of a library whose archs and hashes are set.
/// `extra_labels`: labels the distance's cost table must include (the space's ops_list).
void embed_and_link(Library& library, const LibraryBuildOptions& options, const std::vector<std::string>& extra_labels,
                    LibraryBuildReport* report = nullptr);

}  // namespace flexnas
