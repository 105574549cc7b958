// train_bench: MLM training throughput of flexnas (the training step `flexnas pretrain` runs: masked
// positions only through the head, AdamW without decay on biases/LayerNorm, gradient clipping) for
// one shape and thread count, in its own process so that the peak memory is this configuration's.
//
//   train_bench --shape bert-tiny|flexibert-mini|conv|dct | --arch MODEL.json [--head mlm|cls]
//               [--threads T] [--vocab V] [--batch 32] [--len 128]
//               [--steps N] [--warmup W] [--save DIR] [--profile TRACE.json] [--blas-threads B]
// --head cls times a sequence-classification step (2 classes, random labels) instead of MLM: a
// Funnel model (a "pool" key) then runs without its decoder, as when fine-tuning (bench/funnel_bench.sh).
// Prints one JSON line {shape, threads, vocab, batch, len, params, tokens_per_second, step_ms,
// cpu_ms_per_step, faults_per_step, blas_threads, peak_rss_mib, last_loss}. Threads are set as
// `flexnas` sets them (models::set_compute_threads: LibTorch and OpenBLAS on T threads, freed
// memory kept); --blas-threads B overrides OpenBLAS's count alone, for experiments.
// --profile writes a chrome trace of one step (LibTorch's legacy profiler) and prints the median
// forward / backward / clipping / optimiser times of 5 steps to stderr.
// --save DIR writes the initial model as a flexnas checkpoint plus batch.safetensors (the exact batch),
// so bench/train_bench.py can time the same step in Python on the same model (bench/train_bench.sh).
// --help: every flag with its default.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <sys/resource.h>

#include "bench/bench_cli.h"
#include "design_space/architecture.h"
#include "models/checkpoint.h"
#include "models/flex_model.h"
#include "models/precision.h"
#include "models/safetensors.h"
#include "models/training.h"

namespace {

struct Options {
  std::string shape = "bert-tiny";  // a built-in architecture (shape_json)
  std::string arch;                 // MODEL.json instead of --shape
  std::string head = "mlm";         // mlm | cls
  int64_t threads = 1;
  int64_t blas_threads = 0;         // 0: as models::set_compute_threads sets it
  int64_t vocab = 8000, batch = 32, len = 128;
  int64_t steps = 10, warmup = 2;
  std::string precision = "fp32";
  std::string save, profile;
};

const char* shape_json(const std::string& shape) {
  if (shape == "bert-tiny") return R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";
  if (shape == "flexibert-mini")  // spec Appendix B: the paper's best FlexiBERT-Mini
    return R"({"l":4,"o":["sa","sa","l","l"],"h":[256,256,128,128],"n":[2,2,4,4],)"
           R"("f":[[512,512,512],[512,512,512],[1024],[1024]],"p":["sdp","sdp","dct","dct"]})";
  if (shape == "conv")  // every layer a dynamic convolution (op c, kernel 9)
    return R"({"l":4,"h":[256,256,256,256],"n":[4,4,4,4],"o":["c","c","c","c"],"f":[[1024],[1024],[1024],[1024]],"p":["9","9","9","9"]})";
  if (shape == "dct")  // every layer a DCT linear mixing (op l)
    return R"({"l":4,"h":[256,256,256,256],"n":[4,4,4,4],"o":["l","l","l","l"],"f":[[1024],[1024],[1024],[1024]],"p":["dct","dct","dct","dct"]})";
  std::cerr << "unknown --shape '" << shape << "'; allowed: bert-tiny, flexibert-mini, conv, dct\n";
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
  Options o;
  CLI::App app{"train_bench: MLM (or classification) training throughput of one shape and thread count"};
  flexnas::bench::show_defaults(app);
  app.add_option("--shape", o.shape, "built-in model: bert-tiny, flexibert-mini, conv or dct");
  app.add_option("--arch", o.arch, "model JSON instead of --shape");
  app.add_option("--head", o.head, "mlm, or cls: a sequence-classification step (2 classes, random labels)");
  app.add_option("--threads", o.threads, "compute threads (LibTorch and OpenBLAS)")->check(CLI::PositiveNumber);
  app.add_option("--blas-threads", o.blas_threads, "OpenBLAS threads alone, for experiments (0: as --threads)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--vocab", o.vocab, "vocabulary size")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--len", o.len, "tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--precision", o.precision, "fp32 or bf16");
  app.add_option("--save", o.save, "write the initial model and the batch here (for bench/train_bench.py)");
  app.add_option("--profile", o.profile, "write a chrome trace of one step here; phase times to stderr");
  if (const int code = flexnas::bench::parse_flags(app, argc, argv); code >= 0) return code;
  std::string shape = o.shape;
  const std::string &save = o.save, &profile = o.profile, &precision_name = o.precision, &arch_file = o.arch,
                    &head = o.head;
  const int64_t threads = o.threads, blas = o.blas_threads, vocab = o.vocab, batch = o.batch, len = o.len,
                steps = o.steps, warmup = o.warmup;
  flexnas::models::set_compute_threads(int(threads));
  if (blas > 0) flexnas::models::set_blas_threads(int(blas));  // experiments: OpenBLAS apart from LibTorch
  torch::manual_seed(1);
  using namespace flexnas;
  const Architecture arch =
      arch_file.empty() ? architecture_from_json(nlohmann::json::parse(shape_json(shape))) : load_architecture(arch_file);
  if (!arch_file.empty()) shape = arch_file.substr(arch_file.find_last_of('/') + 1);
  models::ModelOptions options;
  options.vocab_size = vocab;
  options.head = models::parse_head_type(head, "--head");
  models::FlexModel model(arch, options);

  // The batch: random non-special ids, 15% of positions predicted (80% [MASK]), no padding.
  auto ids = torch::randint(5, vocab, {batch, len}, torch::kLong);
  ids.select(1, 0).fill_(2);
  ids.select(1, len - 1).fill_(3);
  auto pick = torch::rand({batch, len}) < 0.15;
  pick.select(1, 0).fill_(false);
  pick.select(1, len - 1).fill_(false);
  auto labels = options.head == models::HeadType::kSequence ? torch::randint(0, 2, {batch}, torch::kLong)
                                                            : torch::where(pick, ids, torch::full_like(ids, -100));
  auto input = torch::where(pick & (torch::rand({batch, len}) < 0.8), torch::full_like(ids, 4), ids);
  auto mask = torch::ones_like(ids);
  if (!save.empty()) {
    models::save_checkpoint(save, *model);
    models::write_safetensors(save + "/batch.safetensors", {{"input_ids", input}, {"attention_mask", mask}, {"labels", labels}});
  }

  const models::Precision precision = models::parse_precision(precision_name, "--precision");
  models::AdamW opt(*model);
  model->train();
  auto one_step = [&] {
    opt.zero_grad();
    torch::Tensor loss;
    {
      models::AutocastScope autocast(precision, torch::kCPU);
      loss = model->loss(input, mask, labels);
    }
    loss.backward();
    models::clip_grad_norm(*model, 1.0);
    opt.step(1e-4);
    return loss.item<double>();
  };
  for (int64_t i = 0; i < warmup; ++i) one_step();
  if (!profile.empty()) {
    // Phase times (median of 5 steps), then one more step under the legacy profiler (chrome trace).
    using clock = std::chrono::steady_clock;
    auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    std::vector<std::vector<double>> phases(4);
    for (int r = 0; r < 5; ++r) {
      auto t0 = clock::now();
      opt.zero_grad();
      torch::Tensor loss;
      {
        models::AutocastScope autocast(precision, torch::kCPU);
        loss = model->loss(input, mask, labels);
      }
      auto t1 = clock::now();
      loss.backward();
      auto t2 = clock::now();
      models::clip_grad_norm(*model, 1.0);
      auto t3 = clock::now();
      opt.step(1e-4);
      auto t4 = clock::now();
      loss.item<double>();
      const double d[4] = {ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)};
      for (int j = 0; j < 4; ++j) phases[size_t(j)].push_back(d[j]);
    }
    for (auto& v : phases) std::sort(v.begin(), v.end());
    std::fprintf(stderr, "flexnas phases ms (median of 5): forward %.1f backward %.1f clip %.1f step %.1f\n",
                 phases[0][2], phases[1][2], phases[2][2], phases[3][2]);
    torch::autograd::profiler::RecordProfile guard(profile);
    one_step();
  }
  rusage u0{}, u1{};
  getrusage(RUSAGE_SELF, &u0);
  const auto t0 = std::chrono::steady_clock::now();
  double last = 0;
  for (int64_t i = 0; i < steps; ++i) last = one_step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  getrusage(RUSAGE_SELF, &u1);
  const double tps = double(batch * len * steps) / seconds;
  auto cpu_s = [](const rusage& u) {
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const double per_step = 1.0 / double(std::max<int64_t>(1, steps));
  std::printf(
      "{\"impl\": \"flexnas\", \"precision\": \"%s\", \"shape\": \"%s\", \"head\": \"%s\", \"threads\": %lld, \"vocab\": %lld, \"batch\": %lld, \"len\": %lld, "
      "\"params\": %lld, \"tokens_per_second\": %.1f, \"step_ms\": %.1f, \"cpu_ms_per_step\": %.1f, "
      "\"faults_per_step\": %.0f, \"blas_threads\": %d, \"peak_rss_mib\": %.0f, \"last_loss\": %.4f}\n",
      models::precision_name(precision), shape.c_str(), head.c_str(), (long long)threads, (long long)vocab, (long long)batch, (long long)len,
      (long long)model->num_parameters(), tps, 1000.0 * seconds / double(steps), 1000.0 * (cpu_s(u1) - cpu_s(u0)) * per_step,
      double(u1.ru_minflt - u0.ru_minflt) * per_step, models::blas_threads(), peak_rss_mib(), last);
  return 0;
}
