#include "models/precision.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>

#include "design_space/error.h"
#include "design_space/log.h"
#include "models/cpu_kernels.h"

namespace flexnas::models {

const EnumNames<Precision>& precision_enum_names() {
  static const EnumNames<Precision> names{
      {"auto", Precision::kAuto}, {"fp32", Precision::kFp32}, {"bf16", Precision::kBf16}, {"fp16", Precision::kFp16}};
  return names;
}

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names = enum_spellings(precision_enum_names());
  return names;
}

const char* precision_name(Precision p) { return enum_name(precision_enum_names(), p).c_str(); }

Precision parse_precision(const std::string& text, const std::string& what) {
  for (const auto& [name, p] : precision_enum_names())
    if (text == name) return p;
  std::string allowed;
  for (const std::string& name : precision_names()) allowed += (allowed.empty() ? "" : ", ") + name;
  throw ConfigError("error: " + what + ": unknown precision '" + text + "' (allowed: " + allowed + ")");
}

torch::Device resolve_device(const std::string& text, const std::string& what) {
  if (text == "auto") {
    if (torch::cuda::is_available()) return torch::Device(torch::kCUDA, 0);
    return torch::Device(torch::kCPU);
  }
  if (text == "cpu") return torch::Device(torch::kCPU);
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    int64_t index = 0;
    if (text.size() > 5) {
      const std::string digits = text.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 4)
        throw ConfigError("error: " + what + ": '" + text + "' is not a device (allowed: auto, cpu, cuda, cuda:N)");
      index = std::stoll(digits);
    }
    if (!at::hasCUDA())
      throw ConfigError("error: " + what + ": '" + text +
                        "': this LibTorch was built without CUDA (Debian's is CPU-only); build flexnas against a "
                        "CUDA LibTorch (docs/cluster.md) or use --device cpu");
    const int64_t count = int64_t(torch::cuda::device_count());
    if (index >= count)
      throw ConfigError("error: " + what + ": '" + text + "': " + std::to_string(count) +
                        " CUDA device(s) visible (CUDA_VISIBLE_DEVICES decides which)");
    return torch::Device(torch::kCUDA, int8_t(index));
  }
  throw ConfigError("error: " + what + ": '" + text + "' is not a device (allowed: auto, cpu, cuda, cuda:N)");
}

Precision resolve_precision(Precision requested, const torch::Device& device, const std::string& what) {
  const bool cuda = device.is_cuda();
  if (requested == Precision::kAuto) {
    if (cuda) return Precision::kBf16;
    const CpuFeatures cpu = cpu_features();
    return cpu.amx_bf16 || cpu.avx512_bf16 ? Precision::kBf16 : Precision::kFp32;
  }
  if (requested == Precision::kFp16 && !cuda)
    throw ConfigError("error: " + what + ": fp16 needs a CUDA device (on CPU use bf16 or fp32)");
  if (requested == Precision::kBf16 && !cuda) {
    const CpuFeatures cpu = cpu_features();
    if (!cpu.amx_bf16 && !cpu.avx512_bf16)
      LOG_WARN(what, " bf16: this CPU has neither AMX nor AVX512-BF16; bf16 products will be slower than fp32");
  }
  return requested;
}

torch::ScalarType autocast_dtype(Precision p) {
  switch (p) {
    case Precision::kBf16: return torch::kBFloat16;
    case Precision::kFp16: return torch::kHalf;
    default: return torch::kFloat;
  }
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device) {
  if (precision != Precision::kBf16 && precision != Precision::kFp16) return;
  active_ = true;
  cuda_ = device.is_cuda();
  if (cuda_) {
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(autocast_dtype(precision));
    at::autocast::set_enabled(true);
  } else {
    previous_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(autocast_dtype(precision));
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The weights cast for this forward pass are cached until the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_cpu_enabled(previous_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
}

bool LossScaler::unscale_and_check(const std::vector<torch::Tensor>& params) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sums;  // one reduction per tensor, one device sync for all
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.grad().div_(scale_);
    sums.push_back(p.grad().sum().to(torch::kFloat).view({1}));
  }
  // The sum of a tensor is finite only if every element is (inf - inf and nan give nan).
  const bool finite = sums.empty() || torch::isfinite(torch::cat(sums)).all().item<bool>();
  if (!finite) {
    scale_ = std::max(1.0, scale_ / 2.0);
    good_steps_ = 0;
    return false;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
  return true;
}

double matmul_peak_gflops(const torch::Device& device, Precision precision, int64_t n, double seconds) {
  torch::NoGradGuard no_grad;
  const auto opts = torch::TensorOptions().device(device);
  const torch::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  auto once = [&] {
    AutocastScope autocast(precision, device);
    return torch::mm(a, b);
  };
  once();  // warm-up: oneDNN primitives, OpenBLAS buffers
  if (device.is_cuda()) torch::cuda::synchronize();
  double best = 0, spent = 0;
  while (spent < seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) once();
    if (device.is_cuda()) torch::cuda::synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spent += dt;
    best = std::max(best, 3.0 * 2.0 * double(n) * double(n) * double(n) / dt / 1e9);
  }
  return best;
}

}  // namespace flexnas::models
