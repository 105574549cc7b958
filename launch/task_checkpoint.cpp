#include "launch/task_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>

#include "design_space/error.h"
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

}  // namespace flexnas::launch
