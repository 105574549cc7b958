#pragma once
// A graph library (spec §2.3): architectures with their hashes, embeddings, neighbours and
// measured performances, in the reference's JSON layout plus flexnas's own keys. A library moves
// between flexnas and the reference unchanged.
//
// JSON keys (reference): dataset, design_space, ops_list, num_neighbors, model_dicts, hashes,
// embeddings, neighbors, performances. flexnas adds: format ("flexnas-library"),
// format_version (1), enumeration {layers_per_stack, heterogeneous_feed_forward, increasing},
// distance {method, ...}, embedding {method, dim, seed, stress, spearman, ...}, seed, source.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/design_space.h"

namespace flexnas {

struct Library {
  std::optional<std::string> dataset;                   // "dataset": null or a task name
  nlohmann::ordered_json design_space;                  // the YAML `architecture` map (or null)
  std::vector<std::string> ops_list;                    // spec §1.2
  int64_t num_neighbors = 100;
  std::vector<Architecture> archs;                      // "model_dicts", library order
  std::vector<std::string> hashes;                      // sha256 per architecture
  std::vector<std::vector<float>> embeddings;           // [N][d]; empty inner vector = null
  std::vector<std::vector<std::string>> neighbors;      // hashes, nearest first; empty = null
  std::vector<std::optional<double>> performances;      // null until measured
  nlohmann::ordered_json meta;                          // flexnas's own keys (format, enumeration, methods, seed)

  size_t size() const { return archs.size(); }
  int64_t embedding_dim() const { return embeddings.empty() ? 0 : int64_t(embeddings.front().size()); }
  /// Index of a hash, or -1 (built lazily; call rebuild_index() after changing `hashes`).
  int64_t find(const std::string& hash) const;
  void rebuild_index();

 private:
  std::unordered_map<std::string, int64_t> index_;
};

/// Reads a library file (flexnas's or the reference's), with located errors for bad content.
Library load_library(const std::string& path);
/// Writes it atomically (temp file + rename).
void save_library(const Library& library, const std::string& path);

}  // namespace flexnas
