// train_bench: MLM training throughput of flexnas (the training step `flexnas pretrain` runs: masked
// positions only through the head, AdamW without decay on biases/LayerNorm, gradient clipping) for
// one shape and thread count, in its own process so that the peak memory is this configuration's.
//
//   train_bench --shape bert-tiny|flexibert-mini [--threads T] [--vocab V] [--batch 32] [--len 128]
//               [--steps N] [--warmup W] [--save DIR]
// Prints one JSON line {shape, threads, vocab, batch, len, params, tokens_per_second, step_ms, peak_rss_mib}.
// --save DIR writes the initial model as a flexnas checkpoint plus batch.safetensors (the exact batch),
// so bench/train_bench.py can time the same step in Python on the same model (bench/train_bench.sh).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "design_space/architecture.h"
#include "models/checkpoint.h"
#include "models/flex_model.h"
#include "models/safetensors.h"
#include "models/training.h"

namespace {

const char* shape_json(const std::string& shape) {
  if (shape == "bert-tiny") return R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";
  if (shape == "flexibert-mini")  // spec Appendix B: the paper's best FlexiBERT-Mini
    return R"({"l":4,"o":["sa","sa","l","l"],"h":[256,256,128,128],"n":[2,2,4,4],)"
           R"("f":[[512,512,512],[512,512,512],[1024],[1024]],"p":["sdp","sdp","dct","dct"]})";
  std::cerr << "unknown --shape '" << shape << "'; allowed: bert-tiny, flexibert-mini\n";
  std::exit(2);
}

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "bert-tiny", save;
  int64_t threads = 1, vocab = 8000, batch = 32, len = 128, steps = 10, warmup = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape") shape = v;
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--vocab") vocab = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--len") len = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--save") save = v;
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 2;
    }
  }
  torch::set_num_threads(int(threads));
  torch::manual_seed(1);
  using namespace flexnas;
  const Architecture arch = architecture_from_json(nlohmann::json::parse(shape_json(shape)));
  models::ModelOptions options;
  options.vocab_size = vocab;
  models::FlexModel model(arch, options);

  // The batch: random non-special ids, 15% of positions predicted (80% [MASK]), no padding.
  auto ids = torch::randint(5, vocab, {batch, len}, torch::kLong);
  ids.select(1, 0).fill_(2);
  ids.select(1, len - 1).fill_(3);
  auto pick = torch::rand({batch, len}) < 0.15;
  pick.select(1, 0).fill_(false);
  pick.select(1, len - 1).fill_(false);
  auto labels = torch::where(pick, ids, torch::full_like(ids, -100));
  auto input = torch::where(pick & (torch::rand({batch, len}) < 0.8), torch::full_like(ids, 4), ids);
  auto mask = torch::ones_like(ids);
  if (!save.empty()) {
    models::save_checkpoint(save, *model);
    models::write_safetensors(save + "/batch.safetensors", {{"input_ids", input}, {"attention_mask", mask}, {"labels", labels}});
  }

  models::AdamW opt(*model);
  model->train();
  auto one_step = [&] {
    opt.zero_grad();
    auto loss = model->loss(input, mask, labels);
    loss.backward();
    models::clip_grad_norm(*model, 1.0);
    opt.step(1e-4);
    return loss.item<double>();
  };
  for (int64_t i = 0; i < warmup; ++i) one_step();
  const auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < steps; ++i) last = one_step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tps = double(batch * len * steps) / seconds;
  std::printf(
      "{\"impl\": \"flexnas\", \"shape\": \"%s\", \"threads\": %lld, \"vocab\": %lld, \"batch\": %lld, \"len\": %lld, "
      "\"params\": %lld, \"tokens_per_second\": %.1f, \"step_ms\": %.1f, \"peak_rss_mib\": %.0f, \"last_loss\": %.4f}\n",
      shape.c_str(), (long long)threads, (long long)vocab, (long long)batch, (long long)len,
      (long long)model->num_parameters(), tps, 1000.0 * seconds / double(steps), peak_rss_mib(), last);
  return 0;
}
