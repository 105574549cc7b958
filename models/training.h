#pragma once
// Training building blocks that need no data pipeline: AdamW (as torch.optim.AdamW, no decay on
// biases and LayerNorm), the linear warm-up + linear decay schedule, gradient clipping, and a
// train state (step, optimiser moments, RNG) whose save/load makes a resumed run bit-exact.
#include <torch/types.h>

#include <functional>
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
  /// `lr_scale(name)`, when given, multiplies the learning rate of that parameter (a parameter
  /// group of its own in PyTorch terms; weight decay scales with it as in torch.optim.AdamW).
  AdamW(torch::nn::Module& model, AdamWOptions options = {},
        const std::function<double(const std::string& name)>& lr_scale = {});

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
    double lr_scale = 1.0;
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

/// Compute threads of this process, everywhere they are decided (PLATFORM.md "Threads"):
/// LibTorch's intra-op pool (OpenMP) and OpenBLAS's own pool, which ignores torch::set_num_threads
/// and otherwise runs every matrix product on all cores (so "1 thread" used 2 cores, and 2 threads
/// meant 2 OpenMP + 2 OpenBLAS threads spinning against each other on 2 cores). `threads` <= 0 =
/// every core. Returns the count set. Also calls keep_freed_memory().
int set_compute_threads(int threads);

/// Keeps freed tensor memory inside the process (glibc malloc: no trimming of the heap top, no
/// per-allocation mmap up to 32 MiB). By default glibc returns the memory of a training step's
/// activations to the kernel when they are freed and the next step page-faults every page back in
/// (about 40,000 faults, 0.1 s of kernel time per BERT-Tiny step). Peak memory is unchanged; the
/// process keeps its peak until it exits. Idempotent; a no-op off glibc.
void keep_freed_memory();

/// OpenBLAS's thread count, or 0 when the BLAS is not OpenBLAS.
int blas_threads();
/// Sets OpenBLAS's thread count alone (no-op without OpenBLAS); set_compute_threads sets both.
void set_blas_threads(int threads);
/// What pretrain() and finetune() call first: keep_freed_memory(), and OpenBLAS's pool matched to
/// LibTorch's current intra-op thread count (whoever set that: the CLI's --threads, a test).
void prepare_training_process();

}  // namespace flexnas::models
