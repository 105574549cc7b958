#pragma once
// The `table` evaluator's data: scores looked up in a tabular benchmark (NAS-Bench-BERT's
// BERT_benchmark.json: a list of records with `scores` and the architecture in
// `hparams.model_hparam_overrides`), matched to library entries by architecture hash. Torch-free.
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/library.h"

namespace flexnas::nas {

struct BenchmarkTable {
  std::string path;
  std::string metric;                   // key of `scores` ("glue", "cola", ...)
  std::vector<Architecture> archs;
  std::vector<std::string> hashes;      // architecture_hash of each record
  std::vector<double> scores;           // scores[metric], higher is better
  std::unordered_map<std::string, size_t> by_hash;

  size_t size() const { return scores.size(); }
  /// Score of an architecture hash, nullopt when the table has no such architecture.
  std::optional<double> lookup(const std::string& hash) const;
};

/// Reads the table; every record must be a map with `scores` (holding `metric`, a number) and an
/// architecture `architecture_from_config` understands. Records with "completed": false are
/// skipped. Located ConfigErrors otherwise (an unknown metric lists the available ones).
BenchmarkTable load_benchmark_table(const std::string& path, const std::string& metric);

/// The table's score of every library entry, in library order (nullopt = not in the table).
std::vector<std::optional<double>> align_scores(const BenchmarkTable& table, const Library& library);

}  // namespace flexnas::nas
