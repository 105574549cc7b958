#pragma once
// What `flexnas finetune` and `flexnas evaluate` both check before touching a task: the thread
// count, and a checkpoint's tokenizer (recorded path and hash, defect 32), vocabulary and
// maximum sequence length; and where `finetune --init-from-task` starts from (a model already
// fine-tuned on a task). Errors name the flag or the file (exit code 2).
#include <cstdint>
#include <string>

#include "datasets/task_info.h"
#include "datasets/tokenizer.h"
#include "models/checkpoint.h"
#include "models/precision.h"
#include "models/trainer.h"

namespace flexnas::launch {

/// Validates --threads (0 = every core) and sets LibTorch's intra-op threads and OpenBLAS's pool
/// (models::set_compute_threads). Used by pretrain, finetune and evaluate.
void set_torch_threads(int64_t threads);

/// The checkpoint's tokenizer (or --tokenizer, when the recorded path moved), checked against the
/// recorded hash and the model's vocabulary; --max-len checked against the model's positions.
datasets::Tokenizer checkpoint_task_tokenizer(const std::string& checkpoint, const models::CheckpointConfig& config,
                                              const std::string& tokenizer_flag, const std::string& cache_dir,
                                              const std::string& data_dir, int64_t max_len);

/// --device and --precision of a command that runs a model (launch/cli/command.h adds the flags).
struct ComputeFlags {
  std::string device = "auto";                             // auto | cpu | cuda | cuda:N
  models::Precision precision = models::Precision::kAuto;  // auto | fp32 | bf16 | fp16
};

/// What a command runs on: the resolved device and precision.
struct Compute {
  torch::Device device = torch::kCPU;
  models::Precision precision = models::Precision::kFp32;
};
/// Resolves the flags (ConfigError naming the flag, exit 2); `recorded` is the precision a
/// checkpoint was trained in ("" = none), which `auto` takes when resuming. Prints one line:
/// "compute: cpu, bf16 (auto: the CPU has AMX)".
Compute resolve_compute(const ComputeFlags& flags, const std::string& recorded = "");

/// `finetune --init-from-task CKPT`: fine-tuning starts from a model already fine-tuned on a task
/// (seed 001 starts RTE, MRPC and STS-B from an MNLI model). The encoder and the embeddings always
/// come from CKPT. The task head (pooler and classifier) is kept when the new task is of the same
/// kind with the same label names in the same order (MNLI -> MNLI, QNLI -> RTE: entailment,
/// not_entailment; regression -> regression), since its outputs then mean the same things; otherwise
/// it is new, initialised from the seed as on a pretrained checkpoint (MNLI's 3 labels -> RTE's 2,
/// classification -> STS-B regression, spam -> SST-2: the same count, other labels).
struct TaskInit {
  std::string checkpoint;   // CKPT
  std::string source_task;  // the task CKPT was fine-tuned on (its metrics.json "task")
  bool keep_head = false;   // same kind and labels: pooler and classifier kept
  std::string summary;      // the log line: what was kept and why
};

/// Checks CKPT and decides the head for `task`. Located ConfigErrors (exit 2): CKPT missing; not a
/// checkpoint (config.json, model.safetensors); not fine-tuned (an MLM head, or metrics.json not
/// written by `flexnas finetune` for one task: a suite folder names its task folders); and, when
/// `pretrained` (--checkpoint) is given, an architecture, vocabulary or tokenizer that is not the
/// pretrained checkpoint's.
TaskInit check_task_init(const std::string& checkpoint, const datasets::TaskInfo& task, const std::string& pretrained);

/// The model to fine-tune on a task with `task_options` (models::task_model_options of CKPT's options):
/// CKPT's weights, all of them when init.keep_head, else the base model only (models::WeightsMatch::kBaseOnly)
/// under a head initialised from the global torch RNG (seed it first).
models::FlexModel load_task_init(const TaskInit& init, const models::ModelOptions& task_options,
                                 const torch::Device& device);

}  // namespace flexnas::launch
