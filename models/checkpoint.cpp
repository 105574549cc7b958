#include "models/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <set>

#include "design_space/arch_graph.h"
#include "design_space/atomic_file.h"
#include "design_space/config_node.h"
#include "design_space/error.h"
#include "models/safetensors.h"

namespace flexnas::models {
namespace fs = std::filesystem;

namespace {

std::string join_path(const std::string& dir, const char* file) { return (fs::path(dir) / file).string(); }

std::string shape_text(const torch::IntArrayRef& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

nlohmann::ordered_json CheckpointConfig::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "flexnas-checkpoint";
  j["format_version"] = 1;
  j["architecture"] = arch.to_json();
  j["model"] = options.to_json();
  if (!tokenizer_file.empty()) j["tokenizer"] = {{"file", tokenizer_file}, {"sha256", tokenizer_sha256}};
  return j;
}

void save_checkpoint(const std::string& dir, FlexModelImpl& model, const std::string& tokenizer_file) {
  fs::create_directories(dir);
  CheckpointConfig config;
  config.arch = model.architecture();
  config.options = model.options();
  if (!tokenizer_file.empty()) {
    config.tokenizer_file = tokenizer_file;
    config.tokenizer_sha256 = sha256_hex(read_file(tokenizer_file));
  }
  NamedTensors tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) tensors.emplace_back(item.key(), item.value());
  // Weights first: a config.json never points at weights that are not there yet.
  write_safetensors(join_path(dir, kWeightsFile), tensors, {{"format", "pt"}});
  write_file_atomic(join_path(dir, kConfigFile), config.to_json().dump(2) + "\n");
}

CheckpointConfig read_checkpoint_config(const std::string& dir) {
  const std::string path = join_path(dir, kConfigFile);
  if (!fs::exists(path)) throw_config_error(Location{path, 0, 0, ""}, "not a flexnas checkpoint: config.json is missing");
  ConfigNode node = ConfigNode::load_file(path);
  if (!node.is_map()) node.fail("expected a checkpoint config (a map), got " + node.describe());
  node.check_keys({"format", "format_version", "architecture", "model", "tokenizer"});
  if (auto f = node.find("format"))
    if (f->as_string() != "flexnas-checkpoint") f->fail("expected 'flexnas-checkpoint', got '" + f->as_string() + "'");
  if (auto v = node.find("format_version"))
    if (v->as_int() != 1) v->fail("unsupported format_version " + std::to_string(v->as_int()) + " (supported: 1)");
  CheckpointConfig config;
  const ConfigNode arch_node = node["architecture"];
  config.arch = architecture_from_config(arch_node);
  config.options = ModelOptions::from_config(node["model"]);
  if (auto t = node.find("tokenizer")) {
    t->check_keys({"file", "sha256"});
    t->get("file", config.tokenizer_file);
    t->get("sha256", config.tokenizer_sha256);
  }
  validate_architecture(config.arch, config.options, path, &arch_node);
  return config;
}

void load_weights(FlexModelImpl& model, const std::string& path, WeightsMatch match) {
  auto tensors = read_safetensors(path);
  auto fail = [&](const std::string& name, const std::string& message) {
    throw_config_error(Location{path, 0, 0, "tensor '" + name + "'"}, message);
  };
  auto wanted = [&](const std::string& name) {
    if (match == WeightsMatch::kStrict) return true;
    return name.rfind("bert.", 0) == 0 && name.rfind("bert.pooler.", 0) != 0;
  };
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto copy_all = [&](const torch::OrderedDict<std::string, torch::Tensor>& dict) {
    for (const auto& item : dict) {
      const std::string& name = item.key();
      if (!wanted(name)) continue;
      auto it = tensors.find(name);
      // A Funnel decoder serves token-level heads only: a checkpoint of a sequence-level model has
      // none, and a token-level model fine-tuned from it starts its decoder fresh.
      if (it == tensors.end() && match == WeightsMatch::kBaseOnly && name.rfind("bert.decoder.", 0) == 0) continue;
      if (it == tensors.end()) fail(name, "missing from the file (the model needs shape " + shape_text(item.value().sizes()) + ")");
      if (it->second.sizes() != item.value().sizes())
        fail(name, "shape " + shape_text(it->second.sizes()) + " in the file, the model expects " +
                       shape_text(item.value().sizes()));
      if (!it->second.is_floating_point() && item.value().is_floating_point())
        fail(name, std::string("dtype ") + c10::toString(it->second.scalar_type()) + " in the file, expected a floating-point tensor");
      item.value().copy_(it->second);
      used.insert(name);
    }
  };
  copy_all(model.named_parameters());
  copy_all(model.named_buffers());
  if (match == WeightsMatch::kStrict)
    for (const auto& [name, t] : tensors)
      if (!used.count(name)) fail(name, "in the file but not in the model (another architecture or head?)");
}

FlexModel load_checkpoint(const std::string& dir, const torch::Device& device, CheckpointConfig* config_out,
                          const ModelOptions* options_override) {
  CheckpointConfig config = read_checkpoint_config(dir);
  const std::string weights = join_path(dir, kWeightsFile);
  if (!fs::exists(weights)) throw_config_error(Location{weights, 0, 0, ""}, "checkpoint weights are missing");
  ModelOptions options = config.options;
  WeightsMatch match = WeightsMatch::kStrict;
  if (options_override) {
    ModelOptions o = *options_override;
    o.vocab_size = options.vocab_size;  // the base model must match the stored one
    o.max_positions = options.max_positions;
    o.type_vocab_size = options.type_vocab_size;
    o.pad_id = options.pad_id;
    if (o.head != options.head || o.num_labels != options.num_labels) match = WeightsMatch::kBaseOnly;
    options = o;
    config.options = o;
  }
  FlexModel model(config.arch, options);
  load_weights(*model, weights, match);
  model->to(device);
  if (config_out) *config_out = config;
  return model;
}

void write_metrics(const std::string& dir, const nlohmann::ordered_json& metrics) {
  fs::create_directories(dir);
  write_file_atomic(join_path(dir, kMetricsFile), metrics.dump(2) + "\n");
}

nlohmann::ordered_json read_metrics(const std::string& dir) {
  const std::string path = join_path(dir, kMetricsFile);
  if (!fs::exists(path)) return nlohmann::ordered_json::object();
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw_config_error(Location{path, 0, 0, ""}, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace flexnas::models
