#include "models/training.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <dlfcn.h>

#include <filesystem>
#include <limits>
#include <thread>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "design_space/error.h"
#include "models/safetensors.h"

namespace flexnas::models {
namespace fs = std::filesystem;

bool decays(const std::string& name) {
  const bool bias = name == "bias" || (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
  return !bias && name.find("LayerNorm") == std::string::npos;
}

AdamW::AdamW(torch::nn::Module& model, AdamWOptions options,
             const std::function<double(const std::string& name)>& lr_scale)
    : options_(options) {
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    slots_.push_back({item.key(), item.value(), torch::zeros_like(item.value()), torch::zeros_like(item.value()),
                      decays(item.key()), lr_scale ? lr_scale(item.key()) : 1.0});
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bc1 = 1.0 - std::pow(b1, double(steps_));
  const double bc2 = 1.0 - std::pow(b2, double(steps_));
  for (Slot& s : slots_) {
    const torch::Tensor& g = s.param.grad();
    if (!g.defined()) continue;
    const double lr_here = lr * s.lr_scale;
    // Same order of operations as torch.optim.AdamW (single-tensor path).
    if (s.decay) s.param.mul_(1.0 - lr_here * options_.weight_decay);
    s.exp_avg.mul_(b1).add_(g, 1.0 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1.0 - b2);
    auto denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(options_.eps);
    s.param.addcdiv_(s.exp_avg, denom, -lr_here / bc1);
  }
}

void AdamW::zero_grad() {
  for (Slot& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad() = torch::Tensor();
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const Slot& s : slots_) {
    out.emplace_back("exp_avg." + s.name, s.exp_avg);
    out.emplace_back("exp_avg_sq." + s.name, s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state_tensors(const std::map<std::string, torch::Tensor>& tensors, int64_t steps,
                               const std::string& where) {
  torch::NoGradGuard no_grad;
  for (Slot& s : slots_)
    for (auto* pair : {&s.exp_avg, &s.exp_avg_sq}) {
      const std::string name = (pair == &s.exp_avg ? "exp_avg." : "exp_avg_sq.") + s.name;
      auto it = tensors.find(name);
      if (it == tensors.end())
        throw_config_error(Location{where, 0, 0, "tensor '" + name + "'"}, "missing from the training state");
      if (it->second.sizes() != pair->sizes())
        throw_config_error(Location{where, 0, 0, "tensor '" + name + "'"},
                           "shape does not match the parameter (another architecture?)");
      pair->copy_(it->second);
    }
  steps_ = steps;
}

double LinearSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return peak_lr * double(step) / double(std::max<int64_t>(1, warmup_steps));
  const double left = double(total_steps - step) / double(std::max<int64_t>(1, total_steps - warmup_steps));
  return peak_lr * std::max(0.0, left);
}

double clip_grad_norm(torch::nn::Module& model, double max_norm) {
  std::vector<torch::Tensor> params;
  for (auto& p : model.parameters())
    if (p.grad().defined()) params.push_back(p);
  if (params.empty()) return 0.0;
  return torch::nn::utils::clip_grad_norm_(params, max_norm);
}

void save_train_state(const std::string& dir, const AdamW& optimizer, int64_t step) {
  fs::create_directories(dir);
  auto tensors = optimizer.state_tensors();
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // shares the global generator
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    tensors.emplace_back("rng.cpu", cpu.get_state());
  }
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < int64_t(torch::cuda::device_count()); ++i) {
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, i));
      std::lock_guard<std::mutex> lock(gen.mutex());
      tensors.emplace_back("rng.cuda." + std::to_string(i), gen.get_state());
    }
  }
  write_safetensors((fs::path(dir) / kTrainStateFile).string(), tensors,
                    {{"step", std::to_string(step)}, {"optimizer_steps", std::to_string(optimizer.steps())}});
}

int64_t load_train_state(const std::string& dir, AdamW& optimizer) {
  const std::string path = (fs::path(dir) / kTrainStateFile).string();
  if (!fs::exists(path)) throw_config_error(Location{path, 0, 0, ""}, "training state is missing (cannot resume)");
  std::map<std::string, std::string> meta;
  auto tensors = read_safetensors(path, &meta);
  auto number = [&](const char* key) -> int64_t {
    auto it = meta.find(key);
    if (it == meta.end()) throw_config_error(Location{path, 0, 0, key}, "missing from the metadata");
    try {
      return std::stoll(it->second);
    } catch (const std::exception&) {
      throw_config_error(Location{path, 0, 0, key}, "expected an integer, got '" + it->second + "'");
    }
  };
  const int64_t step = number("step");
  optimizer.load_state_tensors(tensors, number("optimizer_steps"), path);
  auto it = tensors.find("rng.cpu");
  if (it == tensors.end()) throw_config_error(Location{path, 0, 0, "tensor 'rng.cpu'"}, "missing from the training state");
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // shares the global generator
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(it->second);
  }
  if (torch::cuda::is_available())
    for (int64_t i = 0; i < int64_t(torch::cuda::device_count()); ++i) {
      auto found = tensors.find("rng.cuda." + std::to_string(i));
      if (found == tensors.end()) continue;  // saved on a CPU-only machine
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, i));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(found->second);
    }
  return step;
}

namespace {

// OpenBLAS's thread controls, looked up at run time: LibTorch reaches OpenBLAS through libblas.so.3,
// and another BLAS (reference, BLIS) has no such symbols.
using SetThreads = void (*)(int);
using GetThreads = int (*)();
SetThreads openblas_set() { return reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreads openblas_get() { return reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }

}  // namespace

void keep_freed_memory() {
#if defined(__GLIBC__)
  static const bool done = [] {
    // Setting any of these turns off glibc's dynamic thresholds, so set both: blocks up to 32 MiB
    // (glibc's maximum) come from the heap, and the heap top is never given back.
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
    return true;
  }();
  (void)done;
#endif
}

int set_compute_threads(int threads) {
  const int n = threads > 0 ? threads : std::max(1, int(std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  set_blas_threads(n);
  keep_freed_memory();
  return n;
}

void set_blas_threads(int threads) {
  if (auto set = openblas_set()) set(std::max(1, threads));
}

void prepare_training_process() {
  keep_freed_memory();
  set_blas_threads(torch::get_num_threads());
}

int blas_threads() {
  auto get = openblas_get();
  return get ? get() : 0;
}

}  // namespace flexnas::models
