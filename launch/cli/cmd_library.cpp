// flexnas library generate|import|info: the design-space compiler. A design space (or an explicit
// list of architectures) becomes a graph library file with hashes, embeddings and neighbours, in
// the reference's JSON layout plus flexnas's own keys.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "design_space/library_builder.h"
#include "design_space/progress.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "models/op_catalog.h"

namespace flexnas::launch {
namespace {

/// --duplicates: what import does with entries of one architecture.
const EnumNames<DuplicatePolicy>& duplicate_policy_names() {
  static const EnumNames<DuplicatePolicy> names{{"merge", DuplicatePolicy::kMerge}, {"error", DuplicatePolicy::kError}};
  return names;
}

struct LibraryCliOptions {
  // generate
  std::string design_space;          // YAML file
  EnumerationSettings enumeration;   // from the YAML's enumeration block, overridden by flags
  bool lps_given = false, het_given = false, inc_given = false;
  int64_t sample = 0;                // 0 = whole space
  // import
  std::string archs;                 // JSON list of model dicts or NAS-Bench-BERT records
  std::string performance_key;       // dotted key of each record to store as its performance
  DuplicatePolicy duplicates = LibraryBuildOptions{}.duplicates;  // entries with one hash
  // both
  std::string out;                   // library file to write
  int64_t embedding_dim = EmbeddingOptions{}.dim;
  int64_t neighbors = LibraryBuildOptions{}.neighbors;
  int64_t seed = int64_t(LibraryBuildOptions{}.seed);
  int64_t threads = 0;               // 0 = every core
  std::string dataset;               // the library's "dataset" key ("" = null)
  bool quiet = false;                // no progress bars
  // info
  std::string library;
  int64_t rows = 3;
  bool verify_hashes = false;        // info: recompute every hash from its model dict
};

/// Flags with a bad value raise ConfigError naming the flag (exit code 2).
void check_flags(const LibraryCliOptions& o, bool generate) {
  auto positive = [](const char* flag, int64_t value) {
    if (value < 1)
      flag_error(flag, "expected a positive integer, got " + std::to_string(value));
  };
  positive("--embedding-dim", o.embedding_dim);
  positive("--neighbors", o.neighbors);
  if (o.threads < 0) flag_error("--threads", "expected a positive integer (or 0 = every core), got " + std::to_string(o.threads));
  if (o.seed < 0) flag_error("--seed", "expected a non-negative integer, got " + std::to_string(o.seed));
  if (generate) {
    if (o.sample < 0) flag_error("--sample", "expected a positive integer, got " + std::to_string(o.sample));
    if (o.lps_given) positive("--layers-per-stack", o.enumeration.layers_per_stack);
  }
  if (o.out.empty()) flag_error("--out", "give the library file to write");
}

void set_threads(int64_t threads) { omp_set_num_threads(threads > 0 ? int(threads) : omp_get_num_procs()); }

LibraryBuildOptions build_options(const LibraryCliOptions& o) {
  LibraryBuildOptions b;
  b.neighbors = o.neighbors;
  b.seed = uint64_t(o.seed);
  b.embedding.dim = o.embedding_dim;
  b.sample = uint64_t(o.sample);
  b.progress = !o.quiet;
  b.distance.ops = &models::op_catalog();  // imported architectures: the registry orders the op groups
  if (!o.dataset.empty()) b.dataset = o.dataset;
  return b;
}

void print_report(const LibraryBuildReport& r, double save_seconds, const std::string& out) {
  std::cout << "architectures: " << r.num_archs << "\n";
  std::cout << "embedding quality (" << r.embedding.holdout_pairs << " held-out pairs): stress "
            << std::setprecision(4) << r.embedding.stress << " (landmark MDS alone " << r.embedding.landmark_stress
            << "), Spearman " << r.embedding.spearman << "\n";
  std::cout << "structural distances computed: " << r.embedding.distance_evaluations << "\n";
  std::cout << "timing:";
  for (const StageTime& s : r.stages) std::cout << " " << s.name << " " << format_duration(s.seconds) << ";";
  std::cout << " save " << format_duration(save_seconds) << "; total " << format_duration(r.total_seconds() + save_seconds)
            << "\n";
  std::cout << "wrote " << out << "\n";
}

double save_timed(const Library& lib, const std::string& out) {
  const auto t = std::chrono::steady_clock::now();
  save_library(lib, out);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void run_generate(const LibraryCliOptions& o) {
  check_flags(o, true);
  set_threads(o.threads);
  const DesignSpace space = load_design_space(o.design_space, models::op_catalog());
  LibraryBuildOptions b = build_options(o);
  b.enumeration = space.enumeration;
  if (o.lps_given) b.enumeration.layers_per_stack = o.enumeration.layers_per_stack;
  if (o.het_given) b.enumeration.heterogeneous_feed_forward = true;
  if (o.inc_given) b.enumeration.increasing = true;
  if (b.dataset && !space.datasets.empty() &&
      std::find(space.datasets.begin(), space.datasets.end(), *b.dataset) == space.datasets.end())
    flag_error("--dataset", "'" + *b.dataset + "' is not one of the design space's datasets (" +
               join(space.datasets) + ")");
  LibraryBuildReport report;
  const Library lib = build_library(space, b, &report);
  std::cout << "design space: " << o.design_space << " (" << to_string_big(report.space_size)
            << " architectures; layers_per_stack " << b.enumeration.layers_per_stack << ", heterogeneous_feed_forward "
            << (b.enumeration.heterogeneous_feed_forward ? "true" : "false") << ", increasing "
            << (b.enumeration.increasing ? "true" : "false") << ")\n";
  if (space.constraints.limits_cost())
    std::cout << "constraints: " << space.constraints.describe() << " (" << space.ops->cost_description() << ")\n";
  if (BigCount(lib.size()) < report.space_size)
    std::cout << "sample: " << lib.size() << " random architectures (seed " << b.seed << ")\n";
  else if (b.sample)
    std::cout << "sample: --sample " << b.sample << " covers the whole space\n";
  const double save = save_timed(lib, o.out);
  print_report(report, save, o.out);
}

/// Reads `key` ("scores.glue") of a record; nullopt when absent or null.
std::optional<double> performance_of(const ConfigNode& record, const std::string& key) {
  ConfigNode node = record;
  std::stringstream parts(key);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (!node.is_map()) return std::nullopt;
    auto child = node.find(part);
    if (!child) return std::nullopt;
    node = *child;
  }
  if (node.is_null()) return std::nullopt;
  return node.as_double();
}

void run_import(const LibraryCliOptions& o) {
  check_flags(o, false);
  set_threads(o.threads);
  const ConfigNode root = ConfigNode::load_file(o.archs);
  if (!root.is_sequence() || root.size() == 0)
    root.fail("expected a non-empty list of model dicts (standard or hetero) or NAS-Bench-BERT records, got " +
              root.describe());
  std::vector<Architecture> archs;
  std::vector<std::optional<double>> performances;
  for (const ConfigNode& item : root.items()) {
    archs.push_back(architecture_from_config(item));
    if (!o.performance_key.empty()) performances.push_back(performance_of(item, o.performance_key));
  }
  LibraryBuildOptions b = build_options(o);
  b.duplicates = o.duplicates;
  LibraryBuildReport report;
  const size_t entries = archs.size();
  const Library lib = build_library_from_archs(std::move(archs), o.archs, b, &report, performances);
  std::cout << "imported: " << o.archs << " (" << entries << " entries)\n";
  if (!report.merged.empty()) {
    std::cout << "merged " << report.merged.size() << " duplicate entries (same architecture; performance = mean):";
    for (const auto& [dropped, kept] : report.merged) std::cout << " [" << dropped << "]=[" << kept << "]";
    std::cout << "\n";
  }
  if (!o.performance_key.empty())
    std::cout << "performances (" << o.performance_key << "): " << lib.num_performances() << " of " << lib.size() << "\n";
  const double save = save_timed(lib, o.out);
  print_report(report, save, o.out);
}

void run_info(const LibraryCliOptions& o) {
  set_threads(o.threads);
  LibraryLoadOptions load_options;
  load_options.verify_hashes = o.verify_hashes;
  load_options.ops = &models::op_catalog();
  const Library lib = load_library(o.library, load_options);
  std::cout << "library: " << o.library << "\n";
  if (o.verify_hashes) std::cout << "hashes verified: " << lib.size() << " of " << lib.size() << " match their model dicts\n";
  std::cout << "format: " << (lib.meta.is_null() ? "reference (no flexnas keys)" : std::string(kLibraryFormat)) << "\n";
  std::cout << "architectures: " << lib.size() << "\n";
  size_t embedded = 0, linked = 0;
  for (size_t i = 0; i < lib.size(); ++i) {
    embedded += !lib.embeddings[i].empty();
    linked += !lib.neighbors[i].empty();
  }
  std::cout << "embeddings: " << embedded << " (dim " << lib.embedding_dim() << ")\n";
  std::cout << "neighbour lists: " << linked << " (num_neighbors " << lib.num_neighbors << ")\n";
  std::cout << "performances set: " << lib.num_performances() << "\n";
  std::cout << "dataset: " << (lib.dataset ? *lib.dataset : "null") << "\n";
  std::cout << "ops_list: " << lib.ops_list.size() << " ops\n";
  if (!lib.design_space.is_null()) std::cout << "design_space: " << lib.design_space.dump() << "\n";
  if (lib.meta.contains("constraints")) std::cout << "constraints: " << library_constraints(lib).describe() << "\n";
  if (lib.meta.is_object())
    for (auto it = lib.meta.begin(); it != lib.meta.end(); ++it) {
      nlohmann::ordered_json value = it.value();
      if (value.is_object() && value.contains("cost_order")) value["cost_order"] = std::to_string(value["cost_order"].size()) + " slots";
      std::cout << it.key() << ": " << value.dump() << "\n";
    }
  // The first `rows` rows and the last one.
  const size_t rows = std::min(lib.size(), size_t(std::max<int64_t>(o.rows, 0)));
  auto print_row = [&lib](size_t i) {
    std::cout << "[" << i << "] " << lib.hashes[i] << " " << lib.archs[i].to_canonical_string();
    if (lib.performances[i]) std::cout << " performance " << *lib.performances[i];
    if (!lib.neighbors[i].empty())
      std::cout << " neighbours " << lib.neighbors[i].size() << " (first " << lib.neighbors[i][0].substr(0, 12) << ")";
    std::cout << "\n";
  };
  for (size_t i = 0; i < rows; ++i) print_row(i);
  if (rows > 0 && rows < lib.size()) {
    if (rows + 1 < lib.size()) std::cout << "...\n";
    print_row(lib.size() - 1);
  }
}

void add_common_flags(CLI::App* cmd, LibraryCliOptions& o) {
  cmd->add_option("--out,-o", o.out, "library JSON file to write (atomically)")->required();
  cmd->add_option("--embedding-dim", o.embedding_dim, "embedding dimension");
  cmd->add_option("--neighbors", o.neighbors, "neighbours per graph");
  cmd->add_option("--seed", o.seed, "seed for sampling and embeddings");
  cmd->add_option("--threads", o.threads, "OpenMP threads; 0 = every core");
  cmd->add_option("--dataset", o.dataset, "the library's dataset name (null when not given)");
  cmd->add_flag("--quiet,-q", o.quiet, "no progress bars");
}

void add_library_command(CLI::App& app) {
  auto* library = app.add_subcommand("library", "build, import and inspect graph libraries");
  library->require_subcommand(1);
  auto options = std::make_shared<LibraryCliOptions>();
  LibraryCliOptions& o = *options;

  auto* generate = library->add_subcommand("generate", "compile a design space into a library file");
  generate->add_option("--design-space,-d", o.design_space, "design-space YAML file")->required();
  generate->add_option_function<int64_t>(
      "--layers-per-stack", [&o](const int64_t& v) { o.enumeration.layers_per_stack = v; o.lps_given = true; },
      "identical consecutive layers per stack (default: the YAML's enumeration block, else " +
          std::to_string(EnumerationSettings{}.layers_per_stack) + ")");
  generate->add_flag_function("--heterogeneous-ff", [&o](int64_t) { o.het_given = true; },
                              "feed-forward widths may differ inside one stack");
  generate->add_flag_function("--increasing", [&o](int64_t) { o.inc_given = true; },
                              "heads, hidden sizes and FFN depths never decrease with depth");
  generate->add_option("--sample", o.sample,
                       "build the library around N random architectures (for spaces too large to materialise); "
                       "0 = every architecture");
  add_common_flags(generate, o);
  generate->callback([options] { run_generate(*options); });

  auto* import = library->add_subcommand("import", "build a library from a list of architectures");
  import->add_option("--archs,-a", o.archs, "JSON list of model dicts, or the NAS-Bench-BERT benchmark file")->required();
  import->add_option("--performance-key", o.performance_key,
                     "dotted key of each record stored as its performance (e.g. scores.glue)");
  add_enum_option(import, "--duplicates", o.duplicates, duplicate_policy_names(),
                  "entries of one architecture: merge keeps the first with the mean performance; error stops");
  add_common_flags(import, o);
  import->callback([options] { run_import(*options); });

  auto* info = library->add_subcommand("info", "print counts, settings, methods and a few rows of a library");
  info->add_option("library", o.library, "library JSON file")->required();
  info->add_option("--rows", o.rows, "rows to show from the start (the last row is shown too)");
  info->add_flag("--verify-hashes", o.verify_hashes, "recompute every hash from its model dict and compare");
  info->add_option("--threads", o.threads, "OpenMP threads for --verify-hashes; 0 = every core");
  info->callback([options] { run_info(*options); });
}

FLEXNAS_REGISTER_COMMAND("library", add_library_command);

}  // namespace
}  // namespace flexnas::launch
