#include "design_space/library_builder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <unordered_map>

#include "design_space/arch_graph.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "design_space/neighbors.h"
#include "design_space/progress.h"

namespace flexnas {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// §1.2-shaped ops list for architectures without a design space: input, head ops (cost order),
/// f widths ascending, add_norm, output.
std::vector<std::string> ops_list_from(const StructuralDistance& distance) {
  std::vector<std::string> heads, widths;
  for (size_t k = 4; k < distance.table().order().size(); ++k) {
    const std::string& label = distance.table().order()[k];
    if (label.empty()) continue;
    (label[0] == 'f' && label.find('_') == std::string::npos ? widths : heads).push_back(label);
  }
  std::vector<std::string> ops{"input"};
  ops.insert(ops.end(), heads.begin(), heads.end());
  ops.insert(ops.end(), widths.begin(), widths.end());
  ops.push_back("add_norm");
  ops.push_back("output");
  return ops;
}

}  // namespace

double LibraryBuildReport::total_seconds() const {
  double total = 0;
  for (const StageTime& s : stages) total += s.seconds;
  return total;
}

void LibraryBuildReport::add(const std::string& name, double seconds) {
  for (StageTime& s : stages)
    if (s.name == name) {
      s.seconds += seconds;
      return;
    }
  stages.push_back(StageTime{name, seconds});
}

std::vector<std::string> hash_architectures(const std::vector<Architecture>& archs, bool progress_on) {
  std::vector<std::string> hashes(archs.size());
  auto progress = progress_on ? std::make_unique<Progress>("hash", archs.size(), "graphs") : nullptr;
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < int64_t(archs.size()); ++i) {
    hashes[size_t(i)] = architecture_hash(archs[size_t(i)]);
    if (progress) progress->advance();
  }
  return hashes;
}

void embed_and_link(Library& lib, const LibraryBuildOptions& options, const std::vector<std::string>& extra_labels,
                    LibraryBuildReport* report) {
  LibraryBuildReport local;
  LibraryBuildReport& r = report ? *report : local;
  const size_t n = lib.size();
  auto t = Clock::now();
  const StructuralDistance distance(lib.archs, extra_labels, options.distance);
  const LabelSequences seqs = label_sequences(lib.archs);
  const std::vector<int64_t> order = prefix_order(seqs);
  r.add("distances", since(t));  // tables and encodings

  EmbeddingOptions eo = options.embedding;
  eo.seed = options.seed;
  eo.progress = options.progress;
  lib.embeddings = fit_embeddings(n, [&distance](size_t i, size_t j) { return distance(i, j); }, eo, &r.embedding, &order);
  r.add("distances", r.embedding.seconds_distances);
  r.add("embeddings", r.embedding.seconds_fit);

  t = Clock::now();
  NeighborOptions no;
  no.k = options.neighbors;
  no.progress = options.progress;
  const auto neighbors = biased_neighbors(seqs, lib.embeddings, no);
  lib.neighbors.assign(n, {});
  for (size_t i = 0; i < n; ++i) {
    lib.neighbors[i].reserve(neighbors[i].size());
    for (int64_t j : neighbors[i]) lib.neighbors[i].push_back(lib.hashes[size_t(j)]);
  }
  lib.num_neighbors = options.neighbors;
  r.add("neighbours", since(t));

  lib.performances.resize(n);
  lib.meta["distance"] = distance.describe();
  nlohmann::ordered_json emb = eo.to_json();
  emb["quality"] = r.embedding.to_json();
  lib.meta["embedding"] = emb;
  lib.meta["neighbor_rule"] = {{"method", "biased"},
                               {"key", "longest common op-label prefix desc, embedding distance asc, index asc"},
                               {"k", options.neighbors}};
  lib.meta["seed"] = options.seed;
  lib.rebuild_index();  // find() is then safe to call from many threads
}

Library build_library(const DesignSpace& space, const LibraryBuildOptions& options, LibraryBuildReport* report) {
  LibraryBuildReport local;
  LibraryBuildReport& r = report ? *report : local;
  auto t = Clock::now();
  const Enumerator enumerator(space, options.enumeration);
  r.space_size = enumerator.count();
  const std::string where = space.path.empty() ? std::string("design space") : space.path;
  if (options.sample == 0 && enumerator.count() > BigCount(options.max_architectures))
    throw ConfigError("error: " + where + ": the space has " + to_string_big(enumerator.count()) +
                      " architectures, more than a library holds (limit " + std::to_string(options.max_architectures) +
                      "); build one around a random sample with --sample N");
  if (enumerator.count() == 0)  // only a constrained space can be empty
    throw ConfigError("error: " + where + ": none of the " + to_string_big(enumerator.unconstrained_count()) +
                      " architectures is within the constraints (" + space.constraints.describe() +
                      "); the smallest has " + std::to_string(enumerator.min_cost().parameters) + " parameters and " +
                      std::to_string(std::llround(enumerator.min_cost().flops_per_token)) + " FLOPs per token");
  std::vector<BigCount> indices;
  if (options.sample > 0 && BigCount(options.sample) < enumerator.count()) {
    std::mt19937_64 rng(options.seed);
    indices = enumerator.sample(options.sample, rng);  // ascending: library order = space order
  } else {
    indices.resize(size_t(enumerator.count()));
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = BigCount(i);
  }
  Library lib;
  lib.archs.resize(indices.size());
  {
    auto progress = options.progress ? std::make_unique<Progress>("enumerate", indices.size(), "graphs") : nullptr;
#pragma omp parallel for schedule(dynamic, 256)
    for (int64_t i = 0; i < int64_t(indices.size()); ++i) {
      lib.archs[size_t(i)] = enumerator.at(indices[size_t(i)]);
      if (progress) progress->advance();
    }
  }
  r.add("enumerate", since(t));

  t = Clock::now();
  lib.hashes = hash_architectures(lib.archs, options.progress);
  r.add("hash", since(t));
  r.num_archs = lib.size();

  lib.dataset = options.dataset;
  lib.design_space = space.architecture_json;
  lib.ops_list = space.ops_list();
  lib.pad_to_size();
  lib.meta["enumeration"] = options.enumeration.to_json();
  nlohmann::ordered_json source;
  source["design_space"] = space.path;
  source["space_size"] = to_string_big(enumerator.count());
  source["sample"] = options.sample;
  lib.meta["source"] = source;
  // Only a constrained space writes the key: other libraries stay byte-identical. Refinement reads it.
  if (space.constraints.limits_cost()) lib.meta["constraints"] = constraints_to_json(space.constraints);
  LibraryBuildOptions with_ops = options;  // the space's catalogue orders the distance's cost table
  if (!with_ops.distance.ops) with_ops.distance.ops = space.ops;
  embed_and_link(lib, with_ops, lib.ops_list, &r);
  return lib;
}

Library build_library_from_archs(std::vector<Architecture> archs, const std::string& source,
                                 const LibraryBuildOptions& options, LibraryBuildReport* report,
                                 const std::vector<std::optional<double>>& performances) {
  LibraryBuildReport local;
  LibraryBuildReport& r = report ? *report : local;
  if (archs.empty()) throw ConfigError(source + ": error: the list holds no architectures");
  Library lib;
  lib.archs = std::move(archs);
  auto t = Clock::now();
  lib.hashes = hash_architectures(lib.archs, options.progress);
  r.add("hash", since(t));
  std::vector<std::optional<double>> perf = performances;
  FLEXNAS_CHECK(perf.empty() || perf.size() == lib.size(), "one performance per architecture");
  std::unordered_map<std::string, size_t> seen;
  std::vector<size_t> keep;
  std::vector<std::vector<size_t>> copies;  // per kept entry: every entry of that architecture
  for (size_t i = 0; i < lib.hashes.size(); ++i) {
    auto [it, inserted] = seen.emplace(lib.hashes[i], keep.size());
    if (inserted) {
      keep.push_back(i);
      copies.push_back({i});
      continue;
    }
    const size_t first = keep[it->second];
    if (options.duplicates == DuplicatePolicy::kError)
      throw ConfigError(source + ": error: [" + std::to_string(i) + "]: the same architecture as entry [" +
                        std::to_string(first) + "] (hash " + lib.hashes[i] + "); a library holds each once");
    copies[it->second].push_back(i);
    r.merged.emplace_back(i, first);
  }
  if (keep.size() != lib.size()) {
    std::vector<Architecture> archs_kept;
    std::vector<std::string> hashes_kept;
    std::vector<std::optional<double>> perf_kept;
    for (size_t k = 0; k < keep.size(); ++k) {
      archs_kept.push_back(std::move(lib.archs[keep[k]]));
      hashes_kept.push_back(lib.hashes[keep[k]]);
      if (!perf.empty()) {
        double sum = 0;
        int count = 0;
        for (size_t i : copies[k])
          if (perf[i]) sum += *perf[i], ++count;
        perf_kept.push_back(count ? std::optional<double>(sum / count) : std::nullopt);
      }
    }
    lib.archs = std::move(archs_kept);
    lib.hashes = std::move(hashes_kept);
    perf = std::move(perf_kept);
  }
  r.num_archs = lib.size();
  lib.dataset = options.dataset;
  lib.design_space = nullptr;
  lib.pad_to_size();
  if (!perf.empty()) lib.performances = perf;
  nlohmann::ordered_json src;
  src["archs"] = source;
  src["entries"] = lib.size() + r.merged.size();
  src["merged_duplicates"] = r.merged.size();
  lib.meta["source"] = src;
  embed_and_link(lib, options, {}, &r);
  lib.ops_list = ops_list_from(StructuralDistance(lib.archs, {}, options.distance));
  return lib;
}

}  // namespace flexnas
