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
// --help: every flag with its default.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_cli.h"
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

struct Options {
  std::string checkpoint = "runs/probe/mini-pre";
  std::string task = "brown-pos";
  std::string data_dir = "data";
  int64_t layer = -1;  // -1: the middle encode index
  int64_t batch_size = 64;
  int64_t threads = 0;
  std::string precision = "auto";
  int64_t repeats = 3;
};

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
  Options o;
  CLI::App app{"probe_bench: probe feature extraction (one layer) vs the model's inference throughput"};
  bench::show_defaults(app);
  app.add_option("--checkpoint", o.checkpoint, "pretrained checkpoint folder (skipped when missing)");
  app.add_option("--task", o.task, "task whose train split is timed");
  app.add_option("--data-dir", o.data_dir, "data folder");
  app.add_option("--layer", o.layer, "encode_layers index (0 = embeddings, l+1 = output of layer l); -1: the middle one");
  app.add_option("--batch-size", o.batch_size, "examples per batch")->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "torch threads (0 = every core)")->check(CLI::NonNegativeNumber);
  app.add_option("--precision", o.precision, "auto, fp32 or bf16 (as flexnas --precision)");
  app.add_option("--repeats", o.repeats, "timed passes of each, alternated (median)")->check(CLI::PositiveNumber);
  if (const int code = bench::parse_flags(app, argc, argv); code >= 0) return code;
  const std::string &checkpoint = o.checkpoint, &task = o.task, &data_dir = o.data_dir, &precision_flag = o.precision;
  int64_t layer = o.layer;
  const int64_t batch_size = o.batch_size, threads = o.threads, repeats = o.repeats;
  if (!fs::is_regular_file(fs::path(checkpoint) / models::kWeightsFile)) {
    std::cout << "probe_bench: skipped: " << checkpoint << "/" << models::kWeightsFile << " is missing\n";
    return 0;
  }
  Progress::set_enabled(false);
  launch::set_torch_threads(threads);
  launch::ComputeFlags flags;
  flags.precision = models::parse_precision(precision_flag, "--precision");
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
