// flexnas evaluate: scores a fine-tuned checkpoint on one split of its task and writes the metrics.
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "datasets/finetune_data.h"
#include "datasets/tasks.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "launch/cli/command.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/checkpoint.h"
#include "models/trainer.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

struct EvaluateOptions {
  std::string checkpoint;         // fine-tuned checkpoint directory
  std::string task;               // registered task
  std::string split;              // dev | test | ... (default: the task's first evaluation split)
  std::string data_dir = datasets::TaskLoadOptions{}.data_dir;  // task data
  std::string cache_dir;          // token caches (default <data-dir>/cache)
  std::string tokenizer;          // must be the checkpoint's (default: the recorded file)
  std::string out;                // metrics file (default <checkpoint>/eval-<task>-<split>.json)
  int64_t threads = 0;            // torch threads (0 = every core)
  datasets::FinetuneOptions data; // max length, batch size
  ComputeFlags compute;           // --device, --precision
  int64_t max_len = 0;            // 0 = the fine-tuning run's (metrics.json), else the task's default
};

void run_evaluate(EvaluateOptions o) {
  if (o.data.batch_size <= 0)
    flag_error("--batch-size", "expected a positive integer, got " + std::to_string(o.data.batch_size));
  if (o.max_len != 0 && o.max_len < 3)
    flag_error("--max-len", "expected at least 3 (or 0: the fine-tuning run's), got " + std::to_string(o.max_len));
  set_torch_threads(o.threads);
  const Compute compute = resolve_compute(o.compute);
  if (!fs::is_directory(o.checkpoint)) flag_error("--checkpoint", "'" + o.checkpoint + "': no such directory");
  const datasets::TaskInfo& info = datasets::task_info(o.task, "--task");
  if (o.split.empty()) o.split = info.eval_splits.front();
  if (std::find(info.splits.begin(), info.splits.end(), o.split) == info.splits.end()) {
    std::string allowed;
    for (const auto& s : info.splits) allowed += (allowed.empty() ? "" : ", ") + s;
    flag_error("--split", "'" + o.split + "' is not a split of " + info.name + "; allowed: " + allowed);
  }

  const models::CheckpointConfig config = models::read_checkpoint_config(o.checkpoint);
  o.data.max_length = info.max_length;
  if (o.max_len > 0) {
    o.data.max_length = o.max_len;
  } else if (fs::exists(fs::path(o.checkpoint) / models::kMetricsFile)) {
    const auto metrics = models::read_metrics(o.checkpoint);
    if (metrics.contains("run") && metrics["run"].contains("max_len") && metrics["run"]["max_len"].is_number_integer())
      o.data.max_length = metrics["run"]["max_len"].get<int64_t>();
  }
  const models::ModelOptions wanted = models::task_model_options(config.options, info);
  if (config.options.head != wanted.head || config.options.num_labels != wanted.num_labels)
    flag_error("--checkpoint", "'" + o.checkpoint + "' has a " + models::head_type_name(config.options.head) +
               " head with " + std::to_string(config.options.num_labels) + " labels; task " + info.name +
               " needs a " + models::head_type_name(wanted.head) + " head with " +
               std::to_string(wanted.num_labels) + " (fine-tune it first: flexnas finetune)");
  const datasets::Tokenizer tokenizer =
      checkpoint_task_tokenizer(o.checkpoint, config, o.tokenizer, o.cache_dir, o.data_dir, o.data.max_length);

  datasets::TaskLoadOptions load;
  load.data_dir = o.data_dir;
  const datasets::TaskData data = datasets::load_task(o.task, load);
  const datasets::TaskDataset split = models::task_dataset(data, o.split, tokenizer, o.data);
  models::FlexModel model = models::load_checkpoint(o.checkpoint, compute.device);
  const models::TaskSource source = models::task_source(split, {{o.split, &split}});
  const models::SplitResult r = models::evaluate_split(*model, source, source.selection.front(), compute.precision);

  nlohmann::ordered_json m;
  m["task"] = info.name;
  m["split"] = o.split;
  m["examples"] = split.size();
  m["score"] = r.score;
  m["metrics"] = models::split_json(r);
  m["checkpoint"] = fs::absolute(o.checkpoint).string();
  m["precision"] = models::precision_name(compute.precision);
  m["device"] = compute.device.str();
  const std::string name = datasets::task_file_name("eval-" + info.name + "-" + o.split + ".json");
  const std::string out = o.out.empty() ? (fs::path(o.checkpoint) / name).string() : o.out;
  write_file_atomic(out, m.dump(2) + "\n");
  std::cout << info.name << " " << o.split << " (" << split.size() << " examples):";
  for (const auto& [k, v] : r.metrics) std::cout << " " << k << " " << v;
  std::cout << " score " << r.score << " loss " << r.loss << "\nmetrics: " << out << "\n";
}

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "score a fine-tuned checkpoint on a split of its task");
  auto o = std::make_shared<EvaluateOptions>();
  cmd->add_option("--checkpoint", o->checkpoint, "fine-tuned checkpoint directory")->required();
  cmd->add_option("--task", o->task, "spam | brown-genre | brown-pos | glue:<task>")->required();
  cmd->add_option("--split", o->split, "dev | test | ... (default: the task's evaluation split)");
  cmd->add_option("--data-dir", o->data_dir, "task data directory");
  cmd->add_option("--cache-dir", o->cache_dir, "token caches")->default_str("<data-dir>/cache");
  cmd->add_option("--tokenizer", o->tokenizer, "the checkpoint's tokenizer, when its recorded path moved");
  cmd->add_option("--out", o->out, "metrics JSON")->default_str("<checkpoint>/eval-<task>-<split>.json");
  cmd->add_option("--batch-size", o->data.batch_size, "examples per batch");
  cmd->add_option("--max-len", o->max_len, "tokens per example; 0 = what fine-tuning used, else the task's default");
  cmd->add_option("--threads", o->threads, "torch threads; 0 = every core");
  add_compute_flags(*cmd, o->compute);
  cmd->callback([o] { run_evaluate(*o); });
}

FLEXNAS_REGISTER_COMMAND("evaluate", add_evaluate_command);

}  // namespace
}  // namespace flexnas::launch
