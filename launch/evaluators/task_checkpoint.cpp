#include "launch/evaluators/task_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "datasets/tasks.h"
#include "design_space/config_node.h"
#include "design_space/error.h"
#include "models/cpu_kernels.h"
#include "models/training.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

/// "glue:mnli (sequence classification, 3 labels: entailment, neutral, contradiction)".
std::string describe_task(const datasets::TaskInfo& info) {
  std::string out = info.name + " (" + datasets::task_kind_name(info.kind);
  if (info.kind == datasets::TaskKind::kRegression) return out + ")";
  out += ", " + std::to_string(info.num_labels) + " labels: ";
  const size_t shown = std::min<size_t>(info.label_names.size(), 4);
  std::vector<std::string> names(info.label_names.begin(), info.label_names.begin() + long(shown));
  if (shown < info.label_names.size()) names.push_back("...");
  return out + join(names) + ")";
}

}  // namespace

void set_torch_threads(int64_t threads) {
  if (threads < 0)
    throw ConfigError("error: --threads: expected 0 (every core) or a positive count, got " + std::to_string(threads));
  models::set_compute_threads(int(threads));  // LibTorch and OpenBLAS together; 0 = every core
}

datasets::Tokenizer checkpoint_task_tokenizer(const std::string& checkpoint, const models::CheckpointConfig& config,
                                              const std::string& tokenizer_flag, const std::string& cache_dir,
                                              const std::string& data_dir, int64_t max_len) {
  if (max_len > config.options.max_positions)
    throw ConfigError("error: --max-len: " + std::to_string(max_len) + " exceeds the model's max positions " +
                      std::to_string(config.options.max_positions));
  const std::string tokenizer_file =
      models::checkpoint_tokenizer(checkpoint, config.tokenizer_file, config.tokenizer_sha256, tokenizer_flag);
  datasets::Tokenizer tokenizer(tokenizer_file, cache_dir.empty() ? data_dir + "/cache" : cache_dir);
  if (tokenizer.vocab_size() != config.options.vocab_size)
    throw ConfigError("error: --tokenizer: vocabulary " + std::to_string(tokenizer.vocab_size()) +
                      " does not match the checkpoint's " + std::to_string(config.options.vocab_size));
  return tokenizer;
}

Compute resolve_compute(const ComputeFlags& flags, const std::string& recorded) {
  Compute c;
  models::Precision requested = flags.precision;
  c.device = models::resolve_device(flags.device, "--device");
  std::string why;
  if (requested == models::Precision::kAuto && !recorded.empty()) {
    requested = models::parse_precision(recorded, "--precision");
    why = " (auto: the checkpoint's)";
  } else if (requested == models::Precision::kAuto) {
    const models::CpuFeatures cpu = models::cpu_features();
    why = c.device.is_cuda() ? " (auto: CUDA)"
          : cpu.amx_bf16     ? " (auto: the CPU has AMX)"
          : cpu.avx512_bf16  ? " (auto: the CPU has AVX512-BF16)"
                             : " (auto: no bf16 units on this CPU)";
  }
  c.precision = models::resolve_precision(requested, c.device, "--precision");
  std::cout << "compute: " << c.device.str() << ", " << models::precision_name(c.precision) << why << "\n";
  return c;
}

TaskInit check_task_init(const std::string& checkpoint, const datasets::TaskInfo& task, const std::string& pretrained) {
  const std::string flag = "--init-from-task";
  if (!fs::is_directory(checkpoint)) throw ConfigError("error: " + flag + ": '" + checkpoint + "': no such directory");
  const std::string metrics_path = (fs::path(checkpoint) / models::kMetricsFile).string();
  const std::string expected = "expected the output of flexnas finetune for one task (metrics.json kind 'finetune')";
  if (!fs::is_regular_file(metrics_path))
    throw_config_error(Location{metrics_path, 0, 0, ""}, "not a fine-tuned checkpoint: metrics.json is missing; " + expected);
  const ConfigNode metrics = ConfigNode::load_file(metrics_path);
  if (!metrics.is_map()) metrics.fail("expected a JSON object, found " + metrics.describe() + "; " + expected);
  const auto kind = metrics.find("kind");
  if (!kind) metrics.fail("no 'kind': not a fine-tuned checkpoint; " + expected);
  const std::string kind_text = kind->is_scalar() ? kind->as_string() : kind->describe();
  if (kind_text == "finetune_suite") {
    // A suite folder: its tasks' checkpoints are its sub-folders (cmd_finetune: OUT/<task>/).
    std::vector<std::string> folders;
    if (auto tasks = metrics.find("tasks"); tasks && tasks->is_map())
      for (const auto& [name, node] : tasks->entries())
        folders.push_back((fs::path(checkpoint) / datasets::task_file_name(name)).string());
    kind->fail("'finetune_suite' is a suite folder, not one fine-tuned checkpoint; pass one of its tasks' checkpoints (" +
               join(folders) + ")");
  }
  if (kind_text != "finetune" && kind_text != "finetune-epoch")
    kind->fail("'" + kind_text + "' is not a fine-tuned checkpoint; " + expected +
               (kind_text == "pretrain" ? " (a pretrained checkpoint goes to --checkpoint)" : ""));

  const std::string config_path = (fs::path(checkpoint) / models::kConfigFile).string();
  const models::CheckpointConfig config = models::read_checkpoint_config(checkpoint);  // located errors
  const ConfigNode config_node = ConfigNode::load_file(config_path);
  if (config.options.head == models::HeadType::kMlm) {
    const ConfigNode model = config_node["model"];
    const auto head = model.find("head");
    (head ? *head : model).fail("'" + models::head_type_name(config.options.head) +
                                "': a pretraining head, not a task head; " + expected);
  }
  const std::string weights = (fs::path(checkpoint) / models::kWeightsFile).string();
  if (!fs::is_regular_file(weights)) throw_config_error(Location{weights, 0, 0, ""}, "checkpoint weights are missing");

  if (!pretrained.empty()) {
    // --checkpoint as well: CKPT must be a fine-tuned copy of that architecture and vocabulary.
    const models::CheckpointConfig base = models::read_checkpoint_config(pretrained);
    const std::string base_config = (fs::path(pretrained) / models::kConfigFile).string();
    if (config.arch.to_canonical_string() != base.arch.to_canonical_string())
      config_node["architecture"].fail("architecture mismatch: " + config.arch.to_canonical_string() + " is not --checkpoint's " +
                                       base.arch.to_canonical_string() + " (" + base_config + ")");
    if (config.options.vocab_size != base.options.vocab_size || config.options.max_positions != base.options.max_positions)
      config_node["model"].fail("architecture mismatch: vocabulary " + std::to_string(config.options.vocab_size) +
                                ", max positions " + std::to_string(config.options.max_positions) +
                                " are not --checkpoint's " + std::to_string(base.options.vocab_size) + ", " +
                                std::to_string(base.options.max_positions) + " (" + base_config + ")");
    if (!config.tokenizer_sha256.empty() && !base.tokenizer_sha256.empty() &&
        config.tokenizer_sha256 != base.tokenizer_sha256)
      config_node["tokenizer"].fail("tokenizer mismatch: sha256 " + config.tokenizer_sha256.substr(0, 12) +
                                    "... is not --checkpoint's " + base.tokenizer_sha256.substr(0, 12) + "... (" +
                                    base_config + ")");
  }

  TaskInit init;
  init.checkpoint = checkpoint;
  init.source_task = metrics["task"].as_string();
  std::string why;
  if (!datasets::is_task_or_suite(init.source_task) || datasets::is_suite(init.source_task)) {
    why = "its task '" + init.source_task + "' is not a task of this flexnas (" + datasets::task_and_suite_names() + ")";
  } else {
    const datasets::TaskInfo& source = datasets::task_info(init.source_task);
    init.keep_head = source.kind == task.kind && source.num_labels == task.num_labels && source.label_names == task.label_names;
    why = init.keep_head ? "the same kind and labels: " + describe_task(task)
                         : describe_task(source) + " -> " + describe_task(task);
  }
  init.summary = "init-from-task " + checkpoint + " (fine-tuned on " + init.source_task + "): " +
                 (init.keep_head ? "encoder, embeddings and task head kept (" + why + ")"
                                 : "encoder and embeddings kept; task head new (" + why + ")");
  return init;
}

models::FlexModel load_task_init(const TaskInit& init, const models::ModelOptions& task_options,
                                 const torch::Device& device) {
  // Same head type and label count: load_checkpoint loads every tensor (strict).
  if (init.keep_head) return models::load_checkpoint(init.checkpoint, device, nullptr, &task_options);
  // A new head even where the shapes agree (other labels): the base model only, as from a pretrained checkpoint.
  const models::CheckpointConfig config = models::read_checkpoint_config(init.checkpoint);
  models::FlexModel model(config.arch, task_options);
  models::load_weights(*model, (fs::path(init.checkpoint) / models::kWeightsFile).string(),
                       models::WeightsMatch::kBaseOnly);
  model->to(device);
  return model;
}

}  // namespace flexnas::launch
