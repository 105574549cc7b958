// probe_bench: speed of probe feature extraction (models::extract_features, one layer) against the
// model's own inference throughput on the same split, both measured in this run (issue 21:
// "probe features for one layer over the Brown POS train split extracted at >= the model's
// inference throughput, no per-example loops").
//   peer: what `flexnas evaluate` runs per batch (models::evaluate_split, forward part only): eval
//         mode, no gradients, autocast, model->forward(ids, mask) through every layer and the
//         task's head, logits moved to the CPU as fp32. The checkpoint is loaded with the task's head
//         (as `flexnas finetune` builds it; its weights are fresh, which does not change the cost).
//   ours: models::extract_features(model, split, kind, {layer}, kMean, precision) on the same model.
// Both are timed over every batch of the split, alternately, `--repeats` times after one warm-up
// each (token caches and the allocator warm); tokens/s = real tokens (attention_mask sum) / wall s.
//
//   probe_bench [--checkpoint runs/probe/mini-pre] [--task brown-pos] [--data-dir data] [--layer L]
//               [--batch-size 64] [--threads 0] [--precision auto] [--repeats 3]
// --layer: an encode_layers index (0 = embeddings, l+1 = output of layer l); default the middle one.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "datasets/finetune_data.h"
#include "datasets/tasks.h"
#include "design_space/progress.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/checkpoint.h"
#include "models/precision.h"
#include "models/probe.h"
#include "models/trainer.h"

namespace fs = std::filesystem;
using namespace flexnas;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The peer: evaluate_split's forward passes over the whole split; returns tokens/s.
double inference_tokens_per_second(models::FlexModelImpl& model, const models::EvalSplit& split,
                                   models::Precision precision) {
  const auto t0 = std::chrono::steady_clock::now();
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  int64_t tokens = 0;
  for (int64_t i = 0; i < split.num_batches; ++i) {
    const datasets::TaskBatch b = split.batch(i);  // ids, mask [B,T] int64
    tokens += b.attention_mask.sum().item<int64_t>();
    torch::Tensor logits;  // [B,T,K] for a token task
    {
      models::AutocastScope autocast(precision, device);
      logits = model.forward(b.input_ids.to(device), b.attention_mask.to(device)).logits;
    }
    logits = logits.to(torch::kCPU, torch::kFloat);  // as evaluate_split hands them to the metrics
  }
  return double(tokens) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint = "runs/probe/mini-pre", task = "brown-pos", data_dir = "data", precision_flag = "auto";
  int64_t layer = -1, batch_size = 64, threads = 0, repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--checkpoint") checkpoint = v;
    else if (k == "--task") task = v;
    else if (k == "--data-dir") data_dir = v;
    else if (k == "--layer") layer = std::stoll(v);
    else if (k == "--batch-size") batch_size = std::stoll(v);
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--precision") precision_flag = v;
    else if (k == "--repeats") repeats = std::stoll(v);
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  if (!fs::is_regular_file(fs::path(checkpoint) / models::kWeightsFile)) {
    std::cout << "probe_bench: skipped: " << checkpoint << "/" << models::kWeightsFile << " is missing\n";
    return 0;
  }
  Progress::set_enabled(false);
  launch::set_torch_threads(threads);
  launch::ComputeFlags flags;
  flags.precision = precision_flag;
  const launch::Compute compute = launch::resolve_compute(flags);  // prints "compute: cpu, bf16 (...)"

  const datasets::TaskInfo& info = datasets::task_info(task, "--task");
  const models::CheckpointConfig config = models::read_checkpoint_config(checkpoint);
  const int64_t num_layers = config.arch.num_layers();
  if (layer < 0) layer = (num_layers + 1) / 2;  // encode indices 0..L: the middle one
  if (layer > num_layers) {
    std::cerr << "--layer: " << layer << " exceeds the model's " << num_layers << " layers\n";
    return 2;
  }
  datasets::FinetuneOptions fo;
  fo.max_length = info.max_length;
  fo.batch_size = batch_size;
  const datasets::Tokenizer tokenizer = launch::checkpoint_task_tokenizer(checkpoint, config, "", "", data_dir, fo.max_length);
  datasets::TaskLoadOptions load;
  load.data_dir = data_dir;
  const datasets::TaskData data = datasets::load_task(task, load);
  const datasets::TaskDataset train = models::task_dataset(data, "train", tokenizer, fo);
  const models::EvalSplit split = models::eval_split("train", train);
  // The task's head on the pretrained body: the model `flexnas evaluate` would run for this task.
  const models::ModelOptions options = models::task_model_options(config.options, info);
  models::FlexModel model = models::load_checkpoint(checkpoint, compute.device, nullptr, &options);

  // One warm-up of each, then alternate: both see the same machine state.
  inference_tokens_per_second(*model, split, compute.precision);
  models::LayerFeatures f =
      models::extract_features(*model, split, info.kind, {layer}, models::ProbePooling::kMean, compute.precision);
  std::vector<double> peer, ours;
  for (int64_t r = 0; r < repeats; ++r) {
    peer.push_back(inference_tokens_per_second(*model, split, compute.precision));
    f = models::extract_features(*model, split, info.kind, {layer}, models::ProbePooling::kMean, compute.precision);
    ours.push_back(double(f.tokens) / f.seconds);
    std::cerr << "pass " << r + 1 << ": inference " << peer.back() << ", features " << ours.back() << " tokens/s\n";
  }
  const double peer_tps = median(peer), ours_tps = median(ours);
  const torch::Tensor& x = f.features.front();  // [items, h_layer] bf16
  const double feature_mb = double(x.numel() * x.element_size()) / (1024.0 * 1024.0);
  std::cout << info.name << " train: " << f.num_examples << " examples, " << f.tokens << " tokens, " << split.num_batches
            << " batches of " << batch_size << "; model " << num_layers << " layers, threads "
            << torch::get_num_threads() << ", precision " << models::precision_name(compute.precision) << "\n"
            << "inference (forward + " << models::head_type_name(options.head) << " head, all layers): " << peer_tps
            << " tokens/s (median of " << repeats << ")\n"
            << "probe features (layer " << layer << " of 0.." << num_layers << ", extract_features): " << ours_tps
            << " tokens/s (median of " << repeats << "); " << x.size(0) << " items x " << x.size(1) << " = "
            << feature_mb << " MB bf16\n"
            << "ratio ours/peer: " << ours_tps / peer_tps
            << "x (ratio >= 1 means feature extraction is at least as fast as inference)\n";
  return 0;
}
