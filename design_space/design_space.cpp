#include "design_space/design_space.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace flexnas {
namespace {

const char* const kHidden = "hidden_size";
const char* const kHeads = "num_heads";
const char* const kLayers = "encoder_layers";
const char* const kOps = "operation_types";
const char* const kNff = "number_of_feed-forward_stacks";
const char* const kFfn = "feed-forward_hidden";
const char* const kParams = "operation_parameters";
const char* const kPooling = "pooling";
const char* const kShare = "share";

/// 5000000 -> "5,000,000".
std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::vector<int64_t> positive_list(const ConfigNode& node) {
  std::vector<int64_t> values = node.as_int_list(/*non_empty=*/true, /*unique=*/true);
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] <= 0) node.at(i).fail("expected a positive integer, got " + std::to_string(values[i]));
  return values;
}

}  // namespace

nlohmann::ordered_json EnumerationSettings::to_json() const {
  nlohmann::ordered_json j;
  j["layers_per_stack"] = layers_per_stack;
  j["heterogeneous_feed_forward"] = heterogeneous_feed_forward;
  j["increasing"] = increasing;
  return j;
}

nlohmann::ordered_json yaml_to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& kv : node) j[kv.first.Scalar()] = yaml_to_json(kv.second);
    return j;
  }
  if (node.IsSequence()) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& item : node) j.push_back(yaml_to_json(item));
    return j;
  }
  if (node.IsScalar()) {
    ConfigNode scalar(node, std::make_shared<const std::string>(""), "");
    if (scalar.is_int()) return scalar.as_int();
    return node.Scalar();
  }
  return nullptr;
}

const std::vector<std::string>& DesignSpace::params_of(const std::string& op) const {
  static const std::vector<std::string> kNone;
  for (size_t i = 0; i < op_types.size(); ++i)
    if (op_types[i] == op) return op_params[i];
  return kNone;
}

std::vector<std::string> DesignSpace::ops_list() const {
  std::vector<std::string> ops{"input"};
  for (size_t i = 0; i < op_types.size(); ++i)
    for (int64_t h : hidden_sizes)
      for (const auto& p : op_params[i]) ops.push_back(op_types[i] + "_h" + std::to_string(h) + "_p-" + p);
  for (int64_t w : ffn_widths) ops.push_back("f" + std::to_string(w));
  ops.push_back("add_norm");
  ops.push_back("output");
  return ops;
}

void DesignSpace::check_settings(const EnumerationSettings& settings) const {
  if (settings.layers_per_stack < 1)
    throw_config_error(Location{path, 0, 0, "enumeration.layers_per_stack"},
                       "layers_per_stack must be at least 1, got " + std::to_string(settings.layers_per_stack));
  for (size_t i = 0; i < encoder_layers.size(); ++i)
    if (encoder_layers[i] % settings.layers_per_stack != 0)
      throw_config_error(i < encoder_layers_at.size() ? encoder_layers_at[i] : Location{path, 0, 0, "architecture.encoder_layers"},
                         "encoder_layers value " + std::to_string(encoder_layers[i]) + " is not divisible by layers_per_stack = " +
                                    std::to_string(settings.layers_per_stack) +
                                    " (every depth must be a whole number of stacks)");
  for (size_t i = 0; i < share_factors.size(); ++i)
    if (settings.layers_per_stack % share_factors[i] != 0)
      throw_config_error(i < share_factors_at.size() ? share_factors_at[i] : Location{path, 0, 0, "architecture.share"},
                         "share factor " + std::to_string(share_factors[i]) + " does not divide layers_per_stack = " +
                             std::to_string(settings.layers_per_stack) +
                             " (a stack of layers_per_stack layers is layers_per_stack / r parameterised layers, each "
                             "run r times)");
}

std::string Constraints::problem(const ArchitectureCost& cost) const {
  if (max_parameters > 0 && cost.parameters > max_parameters)
    return with_commas(cost.parameters) + " parameters, above max_parameters = " + with_commas(max_parameters);
  if (max_flops > 0 && cost.flops_per_token > double(max_flops))
    return with_commas(int64_t(std::llround(cost.flops_per_token))) + " FLOPs per token, above max_flops = " +
           with_commas(max_flops);
  return "";
}

std::string Constraints::describe() const {
  auto limit = [](int64_t v) { return v > 0 ? with_commas(v) : std::string("none"); };
  return "max_parameters " + limit(max_parameters) + ", max_flops " + limit(max_flops);
}

DesignSpace design_space_from_config(const ConfigNode& root, const OpCatalog* catalog) {
  if (!root.is_map()) root.fail("expected a design space (a map with an 'architecture' key), got " + root.describe());
  root.check_keys({"datasets", "architecture", "enumeration", "constraints"});
  DesignSpace space;
  space.path = root.file();
  space.ops = catalog;
  if (auto datasets = root.find("datasets")) space.datasets = datasets->as_string_list(/*non_empty=*/false, /*unique=*/true);

  ConfigNode arch = root["architecture"];
  if (!arch.is_map()) arch.fail("expected a map, got " + arch.describe());
  arch.check_keys({kHidden, kHeads, kLayers, kOps, kNff, kFfn, kParams, kPooling, kShare});
  space.hidden_sizes = positive_list(arch[kHidden]);
  space.num_heads = positive_list(arch[kHeads]);
  space.encoder_layers = positive_list(arch[kLayers]);
  space.nff = positive_list(arch[kNff]);
  space.ffn_widths = positive_list(arch[kFfn]);

  ConfigNode ops = arch[kOps];
  space.op_types = ops.as_string_list(/*non_empty=*/true, /*unique=*/true);
  for (size_t i = 0; i < space.op_types.size() && catalog; ++i)
    if (!catalog->has(space.op_types[i]))
      ops.at(i).fail("unknown operation type '" + space.op_types[i] + "' (registered: " + join(catalog->names()) + ")");

  ConfigNode params = arch[kParams];
  if (!params.is_map()) params.fail("expected a map from operation type to its parameter list, got " + params.describe());
  space.op_params.assign(space.op_types.size(), {});
  std::vector<bool> seen(space.op_types.size(), false);
  std::set<std::string> all_params;
  for (const auto& [op, list] : params.entries()) {
    auto it = std::find(space.op_types.begin(), space.op_types.end(), op);
    if (it == space.op_types.end())
      list.fail("operation type '" + op + "' is not listed in architecture.operation_types (listed: " +
                join(space.op_types) + ")");
    const size_t index = size_t(it - space.op_types.begin());
    seen[index] = true;
    std::vector<std::string> values = list.as_string_list(/*non_empty=*/true, /*unique=*/true);
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string allowed = catalog ? catalog->check_param(op, values[k]) : "";
      if (!allowed.empty())
        list.at(k).fail("unknown parameter '" + values[k] + "' for operation type '" + op + "' (allowed: " + allowed + ")");
      // The reference files parameters under op types by name (hierarchical refinement relies on it).
      if (!all_params.insert(values[k]).second)
        list.at(k).fail("parameter '" + values[k] + "' appears under two operation types; parameter names must be unique");
    }
    space.op_params[index] = values;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) params.fail("missing parameters for operation type '" + space.op_types[i] + "'");

  if (auto pooling = arch.find(kPooling)) {
    if (!pooling->is_map())
      pooling->fail("expected a map such as {stride: [1, 2], q_only: true, separate_cls: true, decoder: 2}, got " +
                    pooling->describe());
    pooling->check_keys({"stride", "q_only", "separate_cls", "decoder"});
    ConfigNode stride = (*pooling)["stride"];
    space.pool_strides = positive_list(stride);
    for (size_t i = 0; i < space.pool_strides.size(); ++i)
      if (const std::string problem = PoolSpec::stride_problem(space.pool_strides[i]); !problem.empty())
        stride.at(i).fail(problem);
    pooling->get("q_only", space.pool_settings.q_only);
    pooling->get("separate_cls", space.pool_settings.separate_cls);
    pooling->get("decoder", space.pool_settings.decoder);
    if (const std::string problem = PoolSpec::decoder_problem(space.pool_settings.decoder); !problem.empty())
      (*pooling)["decoder"].fail(problem);
  }
  if (auto share = arch.find(kShare)) {
    if (!share->is_sequence())
      share->fail("expected a list of repeat factors such as [1, 2] (a stack of layers_per_stack layers is "
                  "layers_per_stack / r parameterised layers, each run r times in a row), got " + share->describe());
    space.share_factors = positive_list(*share);
    for (size_t i = 0; i < space.share_factors.size(); ++i) space.share_factors_at.push_back(share->at(i).location());
  }
  if (auto block = root.find("enumeration")) {
    block->check_keys({"layers_per_stack", "heterogeneous_feed_forward", "increasing"});
    block->get("layers_per_stack", space.enumeration.layers_per_stack);
    block->get("heterogeneous_feed_forward", space.enumeration.heterogeneous_feed_forward);
    block->get("increasing", space.enumeration.increasing);
    if (space.enumeration.layers_per_stack < 1)
      (*block)["layers_per_stack"].fail("layers_per_stack must be at least 1, got " +
                                        std::to_string(space.enumeration.layers_per_stack));
  }
  if (auto block = root.find("constraints")) {
    block->check_keys({"max_parameters", "max_flops", "h_divisible_by_n"});
    block->get("max_parameters", space.constraints.max_parameters);
    block->get("max_flops", space.constraints.max_flops);
    block->get("h_divisible_by_n", space.constraints.h_divisible_by_n);
    if (space.constraints.max_parameters < 0) (*block)["max_parameters"].fail("must be >= 0 (0 = no limit)");
    if (space.constraints.max_flops < 0) (*block)["max_flops"].fail("must be >= 0 (0 = no limit)");
  }
  if (space.constraints.h_divisible_by_n) {
    ConfigNode heads = arch[kHeads];
    for (size_t i = 0; i < space.num_heads.size(); ++i)
      for (int64_t h : space.hidden_sizes)
        if (h % space.num_heads[i] != 0)
          heads.at(i).fail("num_heads = " + std::to_string(space.num_heads[i]) + " must divide every hidden_size (" +
                           std::to_string(h) + " is not divisible)");
  }
  ConfigNode layers = arch[kLayers];
  for (size_t i = 0; i < space.encoder_layers.size(); ++i) space.encoder_layers_at.push_back(layers.at(i).location());
  // A stack size named in the file is checked now; one given on the command line when enumerating.
  if (root.has("enumeration")) space.check_settings(space.enumeration);

  space.architecture_json = yaml_to_json(arch.yaml());
  const auto ops_list = space.ops_list();
  std::set<std::string> unique(ops_list.begin(), ops_list.end());
  FLEXNAS_CHECK(unique.size() == ops_list.size(), "duplicate entries in ops_list");
  return space;
}

DesignSpace parse_design_space(const std::string& text, const std::string& name, const OpCatalog& ops) {
  return design_space_from_config(ConfigNode::load_string(text, name), &ops);
}

DesignSpace load_design_space(const std::string& path, const OpCatalog& ops) {
  return design_space_from_config(ConfigNode::load_file(path), &ops);
}

DesignSpace load_design_space(const std::string& path) {
  return design_space_from_config(ConfigNode::load_file(path), nullptr);
}

DesignSpace design_space_from_json(const nlohmann::json& architecture, const std::string& where, const OpCatalog* ops) {
  nlohmann::json root;
  root["architecture"] = architecture;
  return design_space_from_config(ConfigNode::load_string(root.dump(), where), ops);
}

}  // namespace flexnas
