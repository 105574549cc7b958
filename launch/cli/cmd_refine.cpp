// flexnas refine: a finer library around the best models of a campaign (spec §7, defects 39-40
// fixed): the top K trained models, each with its first M library neighbours and with each other,
// are interpolated at a smaller stack size, de-duplicated by hash, embedded and saved.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "design_space/atomic_file.h"
#include "design_space/library_builder.h"
#include "design_space/refinement.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch/cli/command.h"
#include "models/op_catalog.h"

namespace flexnas::launch {
namespace {

struct RefineOptions {
  std::string campaign;               // campaign directory
  int64_t top = 5;                    // TOP_NUM_MODELS of the reference
  int64_t neighbors = 5;              // NUM_NEIGHBORS_FOR_INTERPOLATION of the reference
  int64_t new_layers_per_stack = RefinementSettings{}.new_layers_per_stack;  // stack size of the finer library
  std::optional<int64_t> old_layers_per_stack;  // none = the coarse library's own setting (else 2)
  bool heterogeneous_ff = false;      // fine stacks may mix FFN widths
  int64_t library_neighbors = LibraryBuildOptions{}.neighbors;  // neighbours per graph in the new library
  int64_t embedding_dim = EmbeddingOptions{}.dim;
  uint64_t seed = LibraryBuildOptions{}.seed;
  std::string out;                    // new library file
};

/// The coarse library's stack size: its enumeration settings, else 2 (the reference's level 1).
int64_t coarse_stack_size(const Library& lib) {
  if (lib.meta.contains("enumeration") && lib.meta["enumeration"].contains("layers_per_stack"))
    return lib.meta["enumeration"]["layers_per_stack"].get<int64_t>();
  return EnumerationSettings{}.layers_per_stack;
}

void run_refine(const RefineOptions& o) {
  const std::string frozen = frozen_config_path(o.campaign);
  if (!std::filesystem::exists(frozen) || !std::filesystem::exists(campaign_db_path(o.campaign)))
    flag_error("--campaign", "'" + o.campaign +
               "' is not a campaign directory (it needs campaign.yaml and campaign.db from `flexnas search`)");
  const CampaignConfig config = load_campaign_config(frozen);
  const std::string library_path = campaign_library_path(o.campaign);
  LibraryLoadOptions checked;
  checked.ops = &models::op_catalog();
  const Library coarse =
      load_library(std::filesystem::exists(library_path) ? library_path : config.library, checked);
  const CampaignStore store(campaign_db_path(o.campaign), /*read_only=*/true);

  // Best score per library index among completed trials.
  std::map<int64_t, double> best;
  for (const auto& t : store.trials())
    if (t.status == trial_status::kCompleted && t.score && t.index >= 0)
      if (!best.count(t.index) || *t.score > best[t.index]) best[t.index] = *t.score;
  if (best.empty())
    flag_error("--campaign", o.campaign + " has no completed trials to refine around");
  std::vector<std::pair<int64_t, double>> ranked(best.begin(), best.end());
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (int64_t(ranked.size()) > o.top) ranked.resize(size_t(o.top));

  RefinementSettings settings;
  settings.old_layers_per_stack = o.old_layers_per_stack ? *o.old_layers_per_stack : coarse_stack_size(coarse);
  settings.new_layers_per_stack = o.new_layers_per_stack;
  settings.heterogeneous_feed_forward = o.heterogeneous_ff;
  settings.ops = &models::op_catalog();  // prices the new architectures when the library has constraints

  std::cout << "campaign " << o.campaign << ": " << best.size() << " trained models; refining around the top "
            << ranked.size() << " (stack size " << settings.old_layers_per_stack << " -> "
            << settings.new_layers_per_stack << (o.heterogeneous_ff ? ", heterogeneous FFN" : "") << ")\n";
  std::vector<int64_t> top;
  for (size_t i = 0; i < ranked.size(); ++i) {
    top.push_back(ranked[i].first);
    std::cout << "  #" << i + 1 << " score " << ranked[i].second << "  " << coarse.hashes[size_t(ranked[i].first)].substr(0, 12)
              << "  " << coarse.archs[size_t(ranked[i].first)].to_canonical_string() << "\n";
  }
  const RefinedArchitectures refined = refine_around(coarse, top, o.neighbors, settings);
  std::cout << "pairs interpolated: " << refined.pairs.size() << "\n";
  for (const auto& p : refined.pairs)
    std::cout << "  " << coarse.hashes[size_t(p.a)].substr(0, 12) << " x " << coarse.hashes[size_t(p.b)].substr(0, 12)
              << ": " << p.produced << " architectures, " << p.added << " new\n";
  if (refined.outside_constraints > 0)
    std::cout << "left out: " << refined.outside_constraints << " architectures outside the library's constraints ("
              << library_constraints(coarse).describe() << ")\n";
  std::cout << "new library: " << refined.archs.size() << " architectures\n";

  LibraryBuildOptions options;
  options.neighbors = o.library_neighbors;
  options.embedding.dim = o.embedding_dim;
  options.seed = o.seed;
  options.enumeration.layers_per_stack = settings.new_layers_per_stack;
  options.enumeration.heterogeneous_feed_forward = settings.heterogeneous_feed_forward;
  options.distance.ops = &models::op_catalog();
  LibraryBuildReport report;
  Library lib = build_library_from_archs(refined.archs, "refine:" + o.campaign, options, &report);
  lib.design_space = coarse.design_space;
  if (coarse.meta.contains("constraints")) lib.meta["constraints"] = coarse.meta["constraints"];
  lib.meta["enumeration"] = options.enumeration.to_json();
  lib.meta["source"] = {{"refined_from_campaign", o.campaign},
                              {"library", library_path},
                              {"top", top.size()},
                              {"neighbors", o.neighbors},
                              {"old_layers_per_stack", settings.old_layers_per_stack}};
  save_library(lib, o.out);
  std::cout << "wrote " << o.out << " (" << lib.size() << " architectures, " << report.total_seconds() << " s)\n";
}

void add_refine_command(CLI::App& app) {
  auto o = std::make_shared<RefineOptions>();
  auto* cmd = app.add_subcommand("refine", "build a finer library around the best models of a campaign");
  cmd->add_option("--campaign", o->campaign, "campaign directory")->required();
  cmd->add_option("--top", o->top, "how many of the best trained models")->check(CLI::PositiveNumber);
  cmd->add_option("--neighbors", o->neighbors, "library neighbours interpolated with each")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--layers-per-stack", o->new_layers_per_stack, "stack size of the new library")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--old-layers-per-stack", o->old_layers_per_stack,
                  "stack size of the campaign's library (default: its own setting, else " +
                      std::to_string(EnumerationSettings{}.layers_per_stack) + ")")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--heterogeneous-ff", o->heterogeneous_ff, "fine stacks may mix feed-forward widths");
  cmd->add_option("--library-neighbors", o->library_neighbors, "neighbours per graph in the new library")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--embedding-dim", o->embedding_dim, "embedding width")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "embedding seed");
  cmd->add_option("--out", o->out, "new library file")->required();
  cmd->callback([o] { run_refine(*o); });
}

FLEXNAS_REGISTER_COMMAND("refine", add_refine_command);

}  // namespace
}  // namespace flexnas::launch
