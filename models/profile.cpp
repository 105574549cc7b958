#include "models/profile.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "design_space/error.h"
#include "design_space/progress.h"
#include "models/training.h"

namespace flexnas::models {
namespace {

/// Receives c10's allocation reports while installed: a running total and its maximum.
class PeakTracker : public c10::MemoryReportingInfoBase {
 public:
  void reportMemoryUsage(void*, int64_t alloc_size, int64_t, int64_t, c10::Device) override {
    current_ += alloc_size;  // frees arrive as negative sizes
    peak_ = std::max(peak_, current_);
  }
  bool memoryProfilingEnabled() const override { return true; }
  int64_t peak() const { return peak_; }

 private:
  int64_t current_ = 0, peak_ = 0;
};

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double median_ms(int64_t repeats, const torch::Device& device, const std::function<void()>& fn) {
  std::vector<double> ms;
  for (int64_t i = 0; i < std::max<int64_t>(1, repeats); ++i) {
    synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

/// A random MLM batch: [B,T] ids in 5..V-1 with [CLS]/[SEP] at the ends, 15 % of positions labelled.
struct Batch {
  torch::Tensor ids, mask, labels;
};
Batch random_batch(int64_t B, int64_t T, int64_t vocab, const torch::Device& device) {
  Batch b;
  b.ids = torch::randint(5, vocab, {B, T}, torch::kLong);
  b.ids.select(1, 0).fill_(2);
  b.ids.select(1, T - 1).fill_(3);
  auto pick = torch::rand({B, T}) < 0.15;
  pick.select(1, 0).fill_(false);
  b.labels = torch::where(pick, b.ids, torch::full_like(b.ids, -100));
  b.mask = torch::ones_like(b.ids);
  b.ids = b.ids.to(device);
  b.mask = b.mask.to(device);
  b.labels = b.labels.to(device);
  return b;
}

int64_t parameter_bytes(FlexModelImpl& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel() * int64_t(p.element_size());
  return n;
}

/// Tensor memory of a training step in steady state, in two phases: forward + backward at batch B
/// (activations and the gradients they produce; grows linearly with B) and the optimiser update
/// (gradients plus AdamW's temporaries; independent of B). Weights and AdamW's two moments are
/// live throughout, so both phases add them.
struct StepMemory {
  int64_t resident = 0;       // weights + moments
  int64_t forward_backward = 0;
  int64_t update = 0;
  int64_t peak() const { return resident + std::max(forward_backward, update); }
};
StepMemory training_memory(FlexModelImpl& model, int64_t B, int64_t T, const ProfileOptions& o) {
  const Batch batch = random_batch(B, T, model.options().vocab_size, o.device);
  AdamW optimizer(model);  // allocated before tracking: its moments are counted in `resident`
  optimizer.zero_grad();
  StepMemory m;
  m.resident = 3 * parameter_bytes(model);
  m.forward_backward = peak_tensor_bytes([&] {
    torch::Tensor loss;
    {
      AutocastScope autocast(o.precision, o.device);
      loss = model.loss(batch.ids, batch.mask, batch.labels);
    }
    loss.backward();
  });
  int64_t grads = 0;
  for (const auto& p : model.parameters())
    if (p.grad().defined()) grads += p.grad().numel() * int64_t(p.grad().element_size());
  m.update = grads + peak_tensor_bytes([&] {
               clip_grad_norm(model, 1.0);
               optimizer.step(1e-4);
             });
  optimizer.zero_grad();
  return m;
}

}  // namespace

int64_t peak_tensor_bytes(const std::function<void()>& fn) {
  auto tracker = std::make_shared<PeakTracker>();
  {
    c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, tracker);
    fn();
  }
  return tracker->peak();
}

nlohmann::ordered_json ProfileRow::to_json() const {
  nlohmann::ordered_json j;
  j["seq_len"] = seq_len;
  j["batch_size"] = batch_size;
  j["forward_ms"] = forward_ms;
  j["train_step_ms"] = train_step_ms;
  j["train_tokens_per_second"] = train_tokens_per_second;
  j["peak_train_mb"] = peak_train_mb;
  j["max_train_batch"] = max_train_batch;
  return j;
}

nlohmann::ordered_json ModelProfile::to_json(const ProfileOptions& o) const {
  nlohmann::ordered_json j;
  j["parameters"] = parameters;
  j["device"] = o.device.str();
  j["precision"] = precision_name(o.precision);
  j["threads"] = torch::get_num_threads();
  j["memory_budget_mb"] = o.memory_budget_mb;
  auto rows_json = nlohmann::ordered_json::array();
  for (const auto& r : rows) rows_json.push_back(r.to_json());
  j["rows"] = rows_json;
  return j;
}

ModelProfile profile_model(const Architecture& arch, const ModelOptions& model_options, const ProfileOptions& o) {
  FLEXNAS_CHECK(o.precision != Precision::kAuto, "profile: resolve the precision first");
  ModelOptions mo = model_options;
  mo.head = HeadType::kMlm;
  torch::manual_seed(int64_t(o.seed));
  FlexModel model(arch, mo);
  model->to(o.device);
  ModelProfile profile;
  profile.parameters = model->num_parameters();
  std::vector<int64_t> lens;
  for (int64_t T : o.seq_lens)
    if (T >= 3 && T <= mo.max_positions) lens.push_back(T);
  Progress progress("profile", uint64_t(lens.size()), "lengths");
  for (int64_t T : lens) {
    ProfileRow r;
    r.seq_len = T;
    r.batch_size = o.batch_size;
    const Batch batch = random_batch(o.batch_size, T, mo.vocab_size, o.device);
    {  // inference
      model->eval();
      torch::NoGradGuard no_grad;
      auto forward = [&] {
        AutocastScope autocast(o.precision, o.device);
        model->forward(batch.ids, batch.mask);
      };
      forward();  // warm-up: oneDNN primitives, allocator
      r.forward_ms = median_ms(o.repeats, o.device, forward);
    }
    {  // training
      model->train();
      AdamW optimizer(*model);
      auto step = [&] {
        optimizer.zero_grad();
        torch::Tensor loss;
        {
          AutocastScope autocast(o.precision, o.device);
          loss = model->loss(batch.ids, batch.mask, batch.labels);
        }
        loss.backward();
        clip_grad_norm(*model, 1.0);
        optimizer.step(1e-4);
      };
      step();
      r.train_step_ms = median_ms(o.repeats, o.device, step);
      r.train_tokens_per_second = double(o.batch_size * T) / (r.train_step_ms / 1000.0);
    }
    // Forward + backward memory grows linearly with the batch (a + b * B, fitted on batches 1 and
    // batch_size); the update's does not. The largest batch keeps both phases within the budget.
    const StepMemory at_batch = training_memory(*model, o.batch_size, T, o);
    const StepMemory at_one = o.batch_size > 1 ? training_memory(*model, 1, T, o) : at_batch;
    r.peak_train_mb = double(at_batch.peak()) / (1024.0 * 1024.0);
    const double budget = double(o.memory_budget_mb) * 1024.0 * 1024.0;
    const double slope = o.batch_size > 1 ? double(at_batch.forward_backward - at_one.forward_backward) / double(o.batch_size - 1)
                                          : double(at_one.forward_backward);
    const double base = double(at_one.resident + at_one.forward_backward) - slope;  // memory at batch 0
    if (double(at_one.peak()) > budget) r.max_train_batch = 0;
    else if (slope <= 0) r.max_train_batch = o.batch_size;  // no growth seen: the measured batch fits
    else r.max_train_batch = int64_t(std::floor((budget - base) / slope));
    profile.rows.push_back(r);
    progress.advance();
  }
  progress.finish();
  return profile;
}

}  // namespace flexnas::models
