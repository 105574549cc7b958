#pragma once
// What `flexnas finetune` and `flexnas evaluate` both check before touching a task: the thread
// count, and a checkpoint's tokenizer (recorded path and hash, defect 32), vocabulary and
// maximum sequence length. Errors name the flag (exit code 2).
#include <cstdint>
#include <string>

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

}  // namespace flexnas::launch
