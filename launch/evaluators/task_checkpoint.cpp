#include "launch/evaluators/task_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <iostream>

#include "design_space/error.h"
#include "models/cpu_kernels.h"
#include "models/training.h"

namespace flexnas::launch {

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

}  // namespace flexnas::launch
