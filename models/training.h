#pragma once
// Training building blocks that need no data pipeline: AdamW (as torch.optim.AdamW, no decay on
// biases and LayerNorm), the linear warm-up + linear decay schedule, gradient clipping, and a
// train state (step, optimiser moments, RNG) whose save/load makes a resumed run bit-exact.
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "models/flex_model.h"

namespace flexnas::models {

struct AdamWOptions {
  double lr = 1e-4;            // peak learning rate (the schedule scales it)
  double beta1 = 0.9;
  double beta2 = 0.98;         // spec §8.2
  double eps = 1e-6;
  double weight_decay = 0.01;  // not applied to biases and LayerNorm parameters
};

/// True for the parameters that get weight decay: everything except biases and LayerNorm.
bool decays(const std::string& parameter_name);

class AdamW {
 public:
  /// Optimises every parameter of `model` (kept by reference; the model must outlive this).
  AdamW(torch::nn::Module& model, AdamWOptions options = {});

  /// One update with learning rate `lr` from the current gradients (parameters without a
  /// gradient are skipped, as in PyTorch).
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  const AdamWOptions& options() const { return options_; }

  /// Moments as named tensors ("exp_avg.<param>", "exp_avg_sq.<param>") and the step count.
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
  /// Restores what state_tensors wrote; a missing or mis-shaped moment is a ConfigError naming `where`.
  void load_state_tensors(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& where);

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  AdamWOptions options_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

/// Linear warm-up to the peak over `warmup_steps`, then linear decay to 0 at `total_steps`
/// (Hugging Face get_linear_schedule_with_warmup): factor(s) for the update after s updates.
struct LinearSchedule {
  double peak_lr = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double lr_at(int64_t step) const;
};

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
double clip_grad_norm(torch::nn::Module& model, double max_norm);

/// Writes dir/training_state.safetensors atomically: optimiser moments, CPU (and CUDA) RNG
/// states, and metadata {step, optimizer_steps}.
void save_train_state(const std::string& dir, const AdamW& optimizer, int64_t step);
/// Restores the optimiser and the RNG states; returns the step. ConfigError naming the file when
/// it is missing or does not fit the optimiser.
int64_t load_train_state(const std::string& dir, AdamW& optimizer);

inline constexpr const char* kTrainStateFile = "training_state.safetensors";

}  // namespace flexnas::models
