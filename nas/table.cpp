#include "nas/table.h"

#include "design_space/arch_graph.h"
#include "design_space/config_node.h"
#include "design_space/error.h"

namespace flexnas::nas {

std::optional<double> BenchmarkTable::lookup(const std::string& hash) const {
  auto it = by_hash.find(hash);
  if (it == by_hash.end()) return std::nullopt;
  return scores[it->second];
}

BenchmarkTable load_benchmark_table(const std::string& path, const std::string& metric) {
  const ConfigNode root = ConfigNode::load_file(path);
  if (!root.is_sequence()) root.fail("expected a list of benchmark records, got " + root.describe());
  BenchmarkTable table;
  table.path = path;
  table.metric = metric;
  for (const ConfigNode& record : root.items()) {
    if (!record.is_map()) record.fail("expected a benchmark record (a map with `scores` and `hparams`), got " + record.describe());
    if (auto completed = record.find("completed"); completed && !completed->as_bool()) continue;
    const ConfigNode scores = record["scores"];
    if (!scores.is_map()) scores.fail("expected a map of metric -> score, got " + scores.describe());
    auto value = scores.find(metric);
    if (!value) {
      std::vector<std::string> names;
      for (const auto& [key, node] : scores.entries()) names.push_back(key);
      scores.fail("no metric '" + metric + "' (available: " + join(names) + ")");
    }
    Architecture arch = architecture_from_config(record);
    std::string hash = architecture_hash(arch);
    if (table.by_hash.count(hash)) continue;  // a repeated architecture keeps its first score
    table.by_hash.emplace(hash, table.scores.size());
    table.scores.push_back(value->as_double());
    table.hashes.push_back(std::move(hash));
    table.archs.push_back(std::move(arch));
  }
  if (table.scores.empty()) root.fail("the table holds no completed records");
  return table;
}

std::vector<std::optional<double>> align_scores(const BenchmarkTable& table, const Library& library) {
  std::vector<std::optional<double>> out;
  out.reserve(library.size());
  for (const std::string& hash : library.hashes) out.push_back(table.lookup(hash));
  return out;
}

}  // namespace flexnas::nas
