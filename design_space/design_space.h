#pragma once
// A design space, read from the reference YAML schema unchanged (spec §1.1) plus optional flexnas
// blocks: architecture.pooling {stride: [1, 2], q_only, separate_cls, decoder} (Funnel pooling, a
// per-stack choice of stride), architecture.share: [1, 2] (block parameter sharing, a per-stack
// choice of repeat factor), and
//   enumeration: {layers_per_stack: 2, heterogeneous_feed_forward: false, increasing: false}
//   constraints: {max_parameters: N, max_flops: N, h_divisible_by_n: true}
// Every key and value is validated with located errors before anything else runs.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/config_node.h"
#include "design_space/op_catalog.h"

namespace flexnas {

/// How a design space is expanded into architectures (spec §1.5). The defaults are flexnas's
/// (and the reference CLI's): two identical layers per stack.
struct EnumerationSettings {
  int64_t layers_per_stack = 2;            // lps: a stack is lps identical consecutive layers
  bool heterogeneous_feed_forward = false; // widths may differ inside one feed-forward stack
  bool increasing = false;                 // heads, hidden sizes and nff never decrease with depth

  nlohmann::ordered_json to_json() const;
  bool operator==(const EnumerationSettings& o) const {
    return layers_per_stack == o.layers_per_stack && heterogeneous_feed_forward == o.heterogeneous_feed_forward &&
           increasing == o.increasing;
  }
};

/// Limits on architectures that need no training to check (0 = no limit). max_parameters and
/// max_flops bound OpCatalog::cost (models: the base model at BERT's vocabulary, docs/design_space.md);
/// enumeration, sampling, libraries and refinement keep only the architectures within them.
struct Constraints {
  int64_t max_parameters = 0;
  int64_t max_flops = 0;         // forward FLOPs per token
  bool h_divisible_by_n = true;  // every hidden size divisible by every head count it meets

  /// Whether max_parameters or max_flops limits anything.
  bool limits_cost() const { return max_parameters > 0 || max_flops > 0; }
  /// "" when `cost` is within the limits, else which limit it exceeds and by what.
  std::string problem(const ArchitectureCost& cost) const;
  /// "max_parameters 5,000,000, max_flops none".
  std::string describe() const;
};

struct DesignSpace {
  std::string path;                       // the file it came from ("" if built in code)
  std::vector<std::string> datasets;      // optional reference key, kept for the library file
  std::vector<int64_t> hidden_sizes;      // architecture.hidden_size, file order
  std::vector<int64_t> num_heads;         // architecture.num_heads
  std::vector<int64_t> encoder_layers;    // architecture.encoder_layers
  std::vector<std::string> op_types;      // architecture.operation_types
  std::vector<int64_t> nff;               // architecture.number_of_feed-forward_stacks
  std::vector<int64_t> ffn_widths;        // architecture.feed-forward_hidden
  std::vector<std::vector<std::string>> op_params;  // parameters per op type, aligned with op_types
  // Optional architecture.pooling block (Funnel pooling, seed 003): the strides each stack after
  // the first may pool by (empty = no pooling dimension), and the settings every pooled model shares.
  std::vector<int64_t> pool_strides;      // architecture.pooling.stride, file order
  PoolSpec pool_settings;                 // q_only, separate_cls, decoder (its stride list unused)
  // Optional architecture.share (block parameter sharing, Funnel's "3x2"): the repeat factors r a
  // stack may choose; a stack of lps layers is then lps/r parameterised layers, each run r times in
  // a row (r must divide layers_per_stack; 1 = no sharing). Empty = no sharing dimension.
  std::vector<int64_t> share_factors;     // architecture.share, file order
  std::vector<Location> share_factors_at; // where each factor stands (for messages)
  EnumerationSettings enumeration;        // from the optional `enumeration:` block
  Constraints constraints;                // from the optional `constraints:` block
  nlohmann::ordered_json architecture_json;  // the YAML `architecture` map, as the library stores it
  std::vector<Location> encoder_layers_at;   // where each encoder_layers value stands (for messages)
  /// The catalogue the space was checked with (it prices architectures for the constraints); it
  /// must outlive the space. nullptr: loaded without one (structure only, no cost constraints).
  const OpCatalog* ops = nullptr;

  /// Parameters of one operation type (empty if the type is not in the space).
  const std::vector<std::string>& params_of(const std::string& op) const;
  /// The operation vocabulary of spec §1.2: input, "{o}_h{h}_p-{p}"..., "f{w}"..., add_norm, output.
  std::vector<std::string> ops_list() const;
  /// Checks `settings` against the space (encoder_layers and share factors dividing lps, ...),
  /// located errors.
  void check_settings(const EnumerationSettings& settings) const;
};

/// Loads and validates a design-space YAML file; operation types and parameters are checked
/// against `ops` (pass models::op_catalog()).
DesignSpace load_design_space(const std::string& path, const OpCatalog& ops);
/// Same, from text (`name` stands for the file in messages).
DesignSpace parse_design_space(const std::string& text, const std::string& name, const OpCatalog& ops);
/// `ops` nullptr: the structure only (operation types and parameters unchecked, and an Enumerator
/// refuses the space's max_parameters / max_flops).
DesignSpace design_space_from_config(const ConfigNode& root, const OpCatalog* ops);
/// Structure only, for tools without the model registry (benchmarks); see design_space_from_config.
DesignSpace load_design_space(const std::string& path);

/// Re-creates a design space from the `design_space` object of a library file (`ops` as in
/// design_space_from_config).
DesignSpace design_space_from_json(const nlohmann::json& architecture, const std::string& where,
                                   const OpCatalog* ops);

/// YAML node → JSON (integers stay integers, other scalars are strings), map order kept.
nlohmann::ordered_json yaml_to_json(const YAML::Node& node);

}  // namespace flexnas
