// flexnas model info: parameters per block and in total, forward FLOPs per token, for a model dict
// — computed from the model dict alone (no model is built).
// flexnas model profile: the same model built and measured here — forward latency, training step,
// peak memory and the largest training batch within a memory budget, per sequence length.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "design_space/architecture.h"
#include "design_space/config_node.h"
#include "design_space/error.h"
#include "design_space/atomic_file.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/flex_model.h"
#include "models/profile.h"

namespace flexnas::launch {
namespace {

struct ModelInfoOptions {
  std::string arch;                 // model-dict JSON file
  int64_t vocab_size = models::ModelOptions{}.vocab_size;        // tokenizer vocabulary
  models::HeadType head = models::ModelOptions{}.head;            // mlm | cls | token
  int64_t num_labels = models::ModelOptions{}.num_labels;        // cls/token heads
  int64_t max_positions = models::ModelOptions{}.max_positions;  // relative distance tables: 2P-1 rows
  int64_t seq_len = 128;            // sequence length the FLOPs assume
  bool json = false;                // machine-readable output
};

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

std::string layer_label(const LayerSpec& layer) {
  if (layer.head_list.empty())
    return layer.op + "/" + layer.param + " h" + std::to_string(layer.hidden) + " n" + std::to_string(layer.heads);
  return "hetero h" + std::to_string(layer.hidden) + " " + std::to_string(layer.num_heads()) + " heads";
}

void check_positive(const char* flag, int64_t v) {
  if (v <= 0) flag_error(flag, "expected a positive integer, got " + std::to_string(v));
}

void run_model_info(const ModelInfoOptions& o) {
  check_positive("--vocab-size", o.vocab_size);
  check_positive("--num-labels", o.num_labels);
  check_positive("--max-positions", o.max_positions);
  check_positive("--seq-len", o.seq_len);
  if (o.seq_len > o.max_positions)
    flag_error("--seq-len", std::to_string(o.seq_len) + " exceeds --max-positions " +
               std::to_string(o.max_positions));
  models::ModelOptions options;
  options.vocab_size = o.vocab_size;
  options.head = o.head;
  options.num_labels = o.num_labels;
  options.max_positions = o.max_positions;
  if (options.pad_id >= options.vocab_size) options.pad_id = 0;
  const ConfigNode node = ConfigNode::load_file(o.arch);
  const Architecture arch = architecture_from_config(node);
  models::validate_architecture(arch, options, o.arch, &node);
  const models::ModelCost cost = models::model_cost(arch, options, o.seq_len);
  if (o.json) {
    nlohmann::ordered_json j;
    j["architecture"] = arch.to_json();
    j["model"] = options.to_json();
    j["seq_len"] = cost.seq_len;
    auto blocks = nlohmann::ordered_json::array();
    for (const auto& b : cost.blocks) blocks.push_back({{"name", b.name}, {"params", b.params}, {"flops_per_token", b.flops_per_token}});
    j["blocks"] = blocks;
    j["total_params"] = cost.total_params;
    j["total_flops_per_token"] = cost.total_flops_per_token;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "architecture: " << o.arch << " (" << (arch.is_hetero() ? "hetero" : "standard") << " format, "
            << arch.num_layers() << " layers)\n"
            << "model: head " << models::head_type_name(o.head) << ", vocabulary " << o.vocab_size << ", max positions " << o.max_positions
            << (options.head == models::HeadType::kMlm ? "" : ", labels " + std::to_string(o.num_labels)) << "\n";
  // The name column fits the longest block name (at least 34 wide, e.g. "layer 7 (shares 6) (sa/sdp h256 n4)").
  std::vector<std::string> names;
  int width = 34;
  for (size_t i = 0; i < cost.blocks.size(); ++i) {
    std::string name = cost.blocks[i].name;
    if (i > 0 && i <= arch.layers.size()) name += " (" + layer_label(arch.layers[i - 1]) + ")";
    width = std::max(width, int(name.size()));
    names.push_back(std::move(name));
  }
  char line[512];
  std::snprintf(line, sizeof line, "%-*s %14s %16s\n", width, "block", "parameters", "MFLOPs/token");
  std::cout << line;
  for (size_t i = 0; i < cost.blocks.size(); ++i) {
    std::snprintf(line, sizeof line, "%-*s %14s %16.3f\n", width, names[i].c_str(),
                  with_commas(cost.blocks[i].params).c_str(), cost.blocks[i].flops_per_token / 1e6);
    std::cout << line;
  }
  std::snprintf(line, sizeof line, "%-*s %14s %16.3f\n", width, "total", with_commas(cost.total_params).c_str(),
                cost.total_flops_per_token / 1e6);
  std::cout << line << "(FLOPs: 2 per multiply-add of the matrix products, sequences of " << o.seq_len << " tokens)\n";
}

struct ModelProfileOptions {
  std::string arch;                        // model-dict JSON file
  int64_t vocab_size = 8000;               // tokenizer vocabulary (the MLM head's size)
  int64_t max_positions = models::ModelOptions{}.max_positions;  // longest sequence the model supports
  models::ProfileOptions profile;          // lengths, batch, repeats, budget, seed
  std::string memory_budget;               // parsed into profile.memory_budget_mb ("" = its default)
  ComputeFlags compute;                    // --device, --precision
  int64_t threads = 0;                     // torch threads (0 = every core)
  std::string json;                        // also write the table as JSON here
};

/// "16G", "512M", "1.5G" or a number of MiB.
/// A size in MiB as --memory-budget reads it: "16G", "1536M".
std::string memory_text(int64_t mb) {
  return mb % 1024 == 0 ? std::to_string(mb / 1024) + "G" : std::to_string(mb) + "M";
}

int64_t parse_memory_mb(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double mb = value;
  if (unit == "G" || unit == "GB" || unit == "GiB") mb = value * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TiB") mb = value * 1024 * 1024;
  else if (!(unit.empty() || unit == "M" || unit == "MB" || unit == "MiB")) used = 0;
  if (used == 0 || !(mb >= 1) || !std::isfinite(mb))
    flag_error("--memory-budget", "'" + text + "' is not a memory size (e.g. 16G, 512M, or MiB)");
  return int64_t(mb);
}

void run_model_profile(ModelProfileOptions o) {
  check_positive("--vocab-size", o.vocab_size);
  check_positive("--batch-size", o.profile.batch_size);
  check_positive("--repeats", o.profile.repeats);
  check_positive("--max-positions", o.max_positions);
  if (!o.memory_budget.empty()) o.profile.memory_budget_mb = parse_memory_mb(o.memory_budget);
  for (int64_t T : o.profile.seq_lens)
    if (T < 3 || T > o.max_positions)
      flag_error("--seq-lens", std::to_string(T) + " is outside 3..--max-positions (" +
                 std::to_string(o.max_positions) + ")");
  const Architecture arch = load_architecture(o.arch);
  models::ModelOptions options;
  options.vocab_size = o.vocab_size;
  options.max_positions = o.max_positions;
  models::validate_architecture(arch, options, o.arch);
  set_torch_threads(o.threads);
  const Compute compute = resolve_compute(o.compute);
  o.profile.device = compute.device;
  o.profile.precision = compute.precision;
  const models::ModelProfile p = models::profile_model(arch, options, o.profile);
  std::printf("%s: %s parameters, %s, %s, %d threads, batch %lld, memory budget %lld MiB\n", o.arch.c_str(),
              with_commas(p.parameters).c_str(), compute.device.str().c_str(), models::precision_name(compute.precision),
              torch::get_num_threads(), (long long)o.profile.batch_size, (long long)o.profile.memory_budget_mb);
  std::printf("%8s %12s %14s %14s %13s %15s\n", "seq_len", "forward ms", "train step ms", "train tok/s", "peak MiB",
              "max train batch");
  for (const auto& r : p.rows)
    std::printf("%8lld %12.1f %14.1f %14.0f %13.1f %15lld\n", (long long)r.seq_len, r.forward_ms, r.train_step_ms,
                r.train_tokens_per_second, r.peak_train_mb, (long long)r.max_train_batch);
  if (!o.json.empty()) {
    nlohmann::ordered_json j = p.to_json(o.profile);
    j["arch"] = arch.to_json();
    write_file_atomic(o.json, j.dump(2) + "\n");
    std::cout << "json: " << o.json << "\n";
  }
}

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "inspect models built from model dicts");
  model->require_subcommand(1);
  auto options = std::make_shared<ModelInfoOptions>();
  auto* info = model->add_subcommand("info", "parameters per block and in total, forward FLOPs per token");
  info->add_option("--arch", options->arch, "model-dict JSON file (standard or hetero format)")->required();
  info->add_option("--vocab-size", options->vocab_size, "vocabulary size");
  add_enum_option(info, "--head", options->head, models::head_type_names(), "head on top");
  info->add_option("--num-labels", options->num_labels, "labels of a cls/token head; 1 = regression");
  info->add_option("--max-positions", options->max_positions, "longest sequence");
  info->add_option("--seq-len", options->seq_len, "sequence length for the FLOPs");
  info->add_flag("--json", options->json, "print JSON");
  info->callback([options] { run_model_info(*options); });

  auto p = std::make_shared<ModelProfileOptions>();
  auto* profile = model->add_subcommand("profile", "measure latency, training speed, peak memory and the largest batch");
  profile->add_option("--arch", p->arch, "model-dict JSON file (standard or hetero format)")->required();
  profile->add_option("--seq-lens", p->profile.seq_lens, "sequence lengths (comma-separated)")->delimiter(',');
  profile->add_option("--batch-size", p->profile.batch_size, "batch of the timed passes");
  profile->add_option("--memory-budget", p->memory_budget, "memory for the largest-batch column (16G, 512M, MiB)")
      ->default_str(memory_text(p->profile.memory_budget_mb));
  profile->add_option("--vocab-size", p->vocab_size, "vocabulary size of the MLM head");
  profile->add_option("--max-positions", p->max_positions, "longest sequence the model supports");
  profile->add_option("--repeats", p->profile.repeats, "timed repetitions per measurement (median)");
  profile->add_option("--threads", p->threads, "torch threads; 0 = every core");
  profile->add_option("--json", p->json, "also write the table as JSON to this file");
  add_compute_flags(*profile, p->compute);
  profile->callback([p] { run_model_profile(*p); });
}

FLEXNAS_REGISTER_COMMAND("model", add_model_command);

}  // namespace
}  // namespace flexnas::launch
