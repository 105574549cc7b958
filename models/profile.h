#pragma once
// Measured cost of an architecture on this machine: forward latency per batch, training-step time
// and tokens/s, peak training memory, and the largest training batch that fits a memory budget,
// per sequence length (the Funnel-Transformer README's max-batch-size table). Everything is
// measured on a freshly built model with random weights and random tokens: nothing is estimated
// from the model dict except the linear fit that extrapolates memory to the largest batch.
//
// Peak memory counts every tensor LibTorch allocates while a configuration runs (weights,
// gradients, AdamW moments, activations), through c10's memory-reporting hook on the calling
// thread; oneDNN's and OpenBLAS's private scratch buffers are not included.
#include <torch/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "design_space/architecture.h"
#include "models/flex_model.h"
#include "models/precision.h"

namespace flexnas::models {

struct ProfileOptions {
  std::vector<int64_t> seq_lens = {64, 128, 256, 512};  // sequence lengths measured
  int64_t batch_size = 32;                              // batch of the timed passes
  int64_t repeats = 3;                                  // timed repetitions (the median is kept)
  int64_t memory_budget_mb = 16384;                     // budget of the largest-batch column
  Precision precision = Precision::kFp32;               // resolved (not kAuto)
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;                                    // weights and tokens
};

struct ProfileRow {
  int64_t seq_len = 0;
  int64_t batch_size = 0;
  double forward_ms = 0;           // inference forward pass of one batch (eval mode, no gradients)
  double train_step_ms = 0;        // MLM forward + backward + clipping + AdamW update
  double train_tokens_per_second = 0;
  double peak_train_mb = 0;        // peak tensor memory of a training step at batch_size
  int64_t max_train_batch = 0;     // largest training batch whose peak fits the budget (0: not even 1)
  nlohmann::ordered_json to_json() const;
};

struct ModelProfile {
  int64_t parameters = 0;
  std::vector<ProfileRow> rows;
  nlohmann::ordered_json to_json(const ProfileOptions& options) const;
};

/// Measures `arch` (an MLM head on `options`) at each sequence length <= options.max_positions.
ModelProfile profile_model(const Architecture& arch, const ModelOptions& model_options, const ProfileOptions& options);

/// Peak bytes of tensor memory allocated on this thread while `fn` runs (above what was live when
/// it started).
int64_t peak_tensor_bytes(const std::function<void()>& fn);

}  // namespace flexnas::models
