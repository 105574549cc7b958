#pragma once
// A graph library (spec §2.3): architectures with their hashes, embeddings, neighbours and
// measured performances, in the reference's JSON layout plus flexnas's own keys. A library moves
// between flexnas and the reference unchanged.
//
// JSON keys (reference): dataset, design_space, ops_list, num_neighbors, model_dicts, hashes,
// embeddings, neighbors, performances. flexnas adds: format ("flexnas-library"),
// format_version (1), enumeration {layers_per_stack, heterogeneous_feed_forward, increasing},
// distance {method, ...}, embedding {method, dim, seed, stress, spearman, ...}, neighbor_rule,
// seed, source, and constraints {max_parameters, max_flops} (constrained design spaces only). A file without them (one the reference wrote) loads too.
//
// The file is read with nlohmann's SAX interface straight into these vectors (no DOM of the big
// arrays), and written as a stream, one row per line, so libraries of 10^5 graphs x 100 neighbours
// load and save in seconds. Bad content is a ConfigError naming the file and the JSON path:
//   "lib.json: error: model_dicts[3].h: expected 2 entries (one per layer, l = 2), got 3"
//   "lib.json:12:7: error: invalid JSON: syntax error while parsing value - ..."
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/design_space.h"

namespace flexnas {

/// Library file format written by this version.
constexpr const char* kLibraryFormat = "flexnas-library";
constexpr int64_t kLibraryFormatVersion = 1;

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
  // flexnas's own keys except format/format_version (always written): enumeration, distance,
  // embedding, neighbor_rule, seed, source, constraints. Empty (null) for a reference-made library.
  nlohmann::ordered_json meta;

  size_t size() const { return archs.size(); }
  int64_t embedding_dim() const;  // length of the first non-null embedding, 0 if none
  /// Index of a hash, or -1. The index is rebuilt when `hashes` changed size; after editing hashes
  /// in place call rebuild_index(). Not thread-safe until built (call rebuild_index() first).
  int64_t find(const std::string& hash) const;
  void rebuild_index();
  /// Resizes embeddings/neighbors/performances to size() with nulls (after filling archs/hashes).
  void pad_to_size();
  /// Number of performances that are set.
  size_t num_performances() const;

 private:
  mutable std::unordered_map<std::string, int64_t> index_;
};

struct LibraryLoadOptions {
  bool verify_hashes = false;  // recompute every hash from its model dict (parallel) and compare
  /// Checks the operation types and parameters of the `design_space` key (nullptr: its structure only).
  const OpCatalog* ops = nullptr;
};

/// The `constraints` meta key ({"max_parameters": N, "max_flops": N}) of a library built from a
/// constrained design space; refinement keeps its architectures within the same limits.
nlohmann::ordered_json constraints_to_json(const Constraints& constraints);
/// The library's constraints (no limits when it has no `constraints` key).
Constraints library_constraints(const Library& library);

/// Reads a library file (flexnas's or the reference's), with located errors for bad content.
Library load_library(const std::string& path, const LibraryLoadOptions& options = {});
/// Same, from text; `name` stands for the file in messages.
Library parse_library(const std::string& text, const std::string& name, const LibraryLoadOptions& options = {});
/// Writes it atomically (temp file + rename).
void save_library(const Library& library, const std::string& path);
/// Same, with `performances` in place of library.performances: a campaign saves a snapshot of them
/// from a background thread while the scheduler goes on filling in the library's own.
void save_library(const Library& library, const std::vector<std::optional<double>>& performances,
                  const std::string& path);
/// The file text save_library writes.
std::string library_to_string(const Library& library);

/// True if the two libraries hold the same content (embeddings compared exactly).
bool libraries_equal(const Library& a, const Library& b);

}  // namespace flexnas
