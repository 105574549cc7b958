#pragma once
// Where a model runs and in what precision: --device auto|cpu|cuda|cuda:N and
// --precision auto|fp32|bf16|fp16 for every command that runs a model.
//
// Mixed precision is autocast's: inside an AutocastScope matrix products and convolutions run in
// bf16 (or fp16 on CUDA) while the weights, the optimiser state and the gradients stay fp32, and
// FlexModel keeps LayerNorm, softmax, the losses and reductions in fp32 (the "fp32 islands",
// flex_model.cpp). Checkpoints are fp32 whatever the precision.
//
// `auto` rule (documented in docs/training.md): on CPU, bf16 when the CPU has AMX or AVX512-BF16
// (oneDNN runs bf16 products on them, 2.4-2.6x the best fp32 kernel on AMX), fp32 otherwise; on
// CUDA, bf16 (Ampere or newer; use --precision fp16 on older GPUs).
#include <torch/types.h>

#include <string>

#include "design_space/enum_names.h"

namespace flexnas::models {

enum class Precision { kAuto, kFp32, kBf16, kFp16 };
/// The spellings: auto, fp32, bf16, fp16 (--precision, a campaign's precision key, metrics files).
const EnumNames<Precision>& precision_enum_names();
/// "auto" | "fp32" | "bf16" | "fp16".
const char* precision_name(Precision p);
/// Parses a precision name; ConfigError naming `what` and the allowed names otherwise.
Precision parse_precision(const std::string& text, const std::string& what);
/// The spellings in order, for messages and readers of plain text.
const std::vector<std::string>& precision_names();

/// Parses "auto" | "cpu" | "cuda" | "cuda:N" and resolves it: auto = the first visible GPU when
/// LibTorch has CUDA and one is present, else the CPU. Asking for CUDA that is not there is a
/// ConfigError naming `what` (the flag), saying whether LibTorch lacks CUDA or sees no device.
torch::Device resolve_device(const std::string& text, const std::string& what);

/// The precision to run with on `device`: kAuto resolved by the rule above; fp16 off CUDA and
/// bf16 on a CPU that cannot run bf16 products are ConfigErrors naming `what`.
Precision resolve_precision(Precision requested, const torch::Device& device, const std::string& what);

/// The autocast dtype of a resolved precision (kFloat for fp32).
torch::ScalarType autocast_dtype(Precision p);

/// Autocast for the current thread while alive (nothing for fp32). Matrix products and
/// convolutions of the forward pass run in the lower precision; backward() belongs outside.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false, cuda_ = false, previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat;
};

/// Dynamic loss scaling for fp16 (as torch.cuda.amp.GradScaler): the loss is multiplied by
/// `scale` before backward; a step whose gradients overflow is skipped and the scale halved;
/// after `growth_interval` good steps the scale doubles.
class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial_scale = 65536.0, int64_t growth_interval = 2000)
      : enabled_(enabled), scale_(initial_scale), growth_interval_(growth_interval) {}
  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  /// Divides the gradients of `params` by the scale; false (and the scale halved) when any is not
  /// finite: skip the optimiser step. Always true when disabled.
  bool unscale_and_check(const std::vector<torch::Tensor>& params);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_, good_steps_ = 0;
};

/// Measured matrix-multiply rate of this process on `device` in `precision` (fp32 products, or
/// bf16/fp16 ones under autocast): the best of a few n x n products repeated for about `seconds`,
/// in GFLOP/s (2 n^3 per product). The peak that training efficiency is reported against.
double matmul_peak_gflops(const torch::Device& device, Precision precision, int64_t n = 1024, double seconds = 0.5);

}  // namespace flexnas::models
