// flexnas space count|show|sample: the design space as an implicit index <-> model dict bijection,
// usable on spaces far too large to materialise.
#include <iostream>
#include <random>

#include "design_space/enumeration.h"
#include "launch/cli/command.h"
#include "models/op_catalog.h"

namespace flexnas::launch {
namespace {

struct SpaceOptions {
  std::string design_space;            // YAML file
  EnumerationSettings enumeration;     // lps, heterogeneous FFN, increasing
  bool lps_given = false, het_given = false, inc_given = false;
  std::string index;                   // show: decimal index (may exceed 64 bits)
  std::string arch;                    // show: a model dict file to look up instead
  uint64_t n = 10;                     // sample: how many
  uint64_t seed = 0;                   // sample: seed
};

/// Enumeration settings: the YAML's `enumeration:` block, overridden by flags that were given.
EnumerationSettings effective_settings(const DesignSpace& space, const SpaceOptions& o) {
  EnumerationSettings s = space.enumeration;
  if (o.lps_given) s.layers_per_stack = o.enumeration.layers_per_stack;
  if (o.het_given) s.heterogeneous_feed_forward = o.enumeration.heterogeneous_feed_forward;
  if (o.inc_given) s.increasing = o.enumeration.increasing;
  return s;
}

void add_enumeration_flags(CLI::App* cmd, SpaceOptions& o) {
  cmd->add_option("--design-space,-d", o.design_space, "design-space YAML file")->required();
  cmd->add_option_function<int64_t>(
         "--layers-per-stack", [&o](const int64_t& v) { o.enumeration.layers_per_stack = v; o.lps_given = true; },
         "identical consecutive layers per stack (default: the YAML's enumeration block, else " +
             std::to_string(EnumerationSettings{}.layers_per_stack) + ")")
      ->check(CLI::PositiveNumber);
  cmd->add_flag_function("--heterogeneous-ff", [&o](int64_t) { o.enumeration.heterogeneous_feed_forward = true; o.het_given = true; },
                         "feed-forward widths may differ inside one stack");
  cmd->add_flag_function("--increasing", [&o](int64_t) { o.enumeration.increasing = true; o.inc_given = true; },
                         "heads, hidden sizes and FFN depths never decrease with depth");
}

void run_count(const SpaceOptions& o) {
  const DesignSpace space = load_design_space(o.design_space, models::op_catalog());
  const EnumerationSettings settings = effective_settings(space, o);
  const Enumerator e(space, settings);
  std::cout << "design space: " << o.design_space << "\n"
            << "settings: layers_per_stack " << settings.layers_per_stack << ", heterogeneous_feed_forward "
            << (settings.heterogeneous_feed_forward ? "true" : "false") << ", increasing "
            << (settings.increasing ? "true" : "false") << "\n";
  for (size_t i = 0; i < space.encoder_layers.size(); ++i)
    std::cout << "  L = " << space.encoder_layers[i] << ": " << to_string_big(e.count_per_depth()[i]) << "\n";
  std::cout << "total: " << to_string_big(e.count()) << " (" << to_scientific(e.count()) << ")\n";
  if (e.constrained())
    std::cout << "constraints: " << space.constraints.describe() << ": " << to_string_big(e.count()) << " of "
              << to_string_big(e.unconstrained_count()) << " architectures (" << space.ops->cost_description() << ")\n";
}

void run_show(const SpaceOptions& o) {
  const DesignSpace space = load_design_space(o.design_space, models::op_catalog());
  const Enumerator e(space, effective_settings(space, o));
  if (!o.arch.empty()) {
    const Architecture arch = load_architecture(o.arch);
    std::cout << "index: " << to_string_big(e.index_of(arch, o.arch)) << "\n";
    return;
  }
  const BigCount index = parse_big(o.index, "--index");
  if (e.count() == 0)
    flag_error("--index", "the space has no architectures (none is within its constraints: " +
               space.constraints.describe() + ")");
  if (index >= e.count())
    flag_error("--index", o.index + " is out of range (the space has " + to_string_big(e.count()) +
               " architectures, indices 0.." + to_string_big(e.count() - 1) + ")");
  const Architecture arch = e.at(index);
  std::cout << arch.to_json().dump() << "\n";
}

void run_sample(const SpaceOptions& o) {
  const DesignSpace space = load_design_space(o.design_space, models::op_catalog());
  const Enumerator e(space, effective_settings(space, o));
  std::mt19937_64 rng(o.seed);
  for (BigCount index : e.sample(o.n, rng)) {
    nlohmann::ordered_json line;
    line["index"] = to_string_big(index);
    line["model_dict"] = e.at(index).to_json();
    std::cout << line.dump() << "\n";
  }
}

void add_space_command(CLI::App& app) {
  auto* space = app.add_subcommand("space", "count, show and sample the architectures of a design space");
  space->require_subcommand(1);
  auto options = std::make_shared<SpaceOptions>();

  auto* count = space->add_subcommand("count", "count the architectures (per depth and in total)");
  add_enumeration_flags(count, *options);
  count->callback([options] { run_count(*options); });

  auto* show = space->add_subcommand("show", "print the model dict at an index, or the index of a model dict");
  add_enumeration_flags(show, *options);
  auto* index = show->add_option("--index,-i", options->index, "architecture index (decimal, any size)");
  show->add_option("--arch", options->arch, "a model-dict JSON file: print its index instead")->excludes(index);
  show->callback([options] {
    if (options->index.empty() && options->arch.empty()) throw ConfigError("error: space show: give --index I or --arch FILE");
    run_show(*options);
  });

  auto* sample = space->add_subcommand("sample", "print N distinct random architectures (JSON lines)");
  add_enumeration_flags(sample, *options);
  sample->add_option("--n,-n", options->n, "how many")->check(CLI::PositiveNumber);
  sample->add_option("--seed", options->seed, "random seed");
  sample->callback([options] { run_sample(*options); });
}

FLEXNAS_REGISTER_COMMAND("space", add_space_command);

}  // namespace
}  // namespace flexnas::launch
