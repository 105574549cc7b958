// Data pipeline benchmark on the real Brown corpus (scripts/fetch-data.sh first):
//   1. tokenizing Brown text.txt through flexnas-tokenize (cold) vs opening its token cache (warm):
//      the speed-up of tokenizing once per tokenizer, both measured in this run;
//   2. MLM batch production (seq 128, batch 32) in tokens/s, against the ~11k tokens/s of a
//      BERT-Tiny-sized training step on one thread quoted in PLATFORM.md (not measured here): the
//      data side must be far faster than training so it never stalls it.
// usage: data_bench [--data DIR] [--tokenizer spm.model] [--steps N]   (--help: the defaults)
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "bench/bench_cli.h"
#include "datasets/mlm.h"
#include "datasets/tokenizer.h"
#include "design_space/progress.h"

namespace fs = std::filesystem;
using namespace flexnas::datasets;

namespace {

struct Options {
  std::string data = "data";  // holds brown/text.txt
  std::string tokenizer;      // empty: train a BPE 8000 tokenizer on Brown first
  int64_t steps = 300;        // MLM batches timed
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"data_bench: tokenizing Brown (cold vs cached) and MLM batch production"};
  flexnas::bench::show_defaults(app);
  app.add_option("--data", o.data, "data folder (scripts/fetch-data.sh): reads DIR/brown/text.txt");
  app.add_option("--tokenizer", o.tokenizer, "SentencePiece model; none: train a BPE 8000 one on Brown first");
  app.add_option("--steps", o.steps, "MLM batches to time")->check(CLI::NonNegativeNumber);
  if (const int code = flexnas::bench::parse_flags(app, argc, argv); code >= 0) return code;
  const std::string& data = o.data;
  std::string model = o.tokenizer;
  const int64_t steps = o.steps;
  const std::string text = data + "/brown/text.txt";
  if (!fs::is_regular_file(text)) {
    std::cout << "data_bench: skipped: " << text << " is missing (run scripts/fetch-data.sh)\n";
    return 0;
  }
  flexnas::Progress::set_enabled(false);
  const fs::path tmp = fs::temp_directory_path() / ("flexnas-data-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  if (model.empty()) {
    TokenizerTrainOptions o;
    o.corpus = {text};
    o.vocab_size = 8000;
    o.model_type = "bpe";
    o.out = (tmp / "spm.model").string();
    const auto t0 = std::chrono::steady_clock::now();
    train_tokenizer(o);
    std::cout << "train BPE 8000 on Brown: " << seconds_since(t0) << " s\n";
    model = o.out;
  }
  const Tokenizer tok(model, (tmp / "cache").string());
  auto t0 = std::chrono::steady_clock::now();
  auto cache = tok.encode_text_file(text);
  const double cold = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  cache = tok.encode_text_file(text);
  const double warm = seconds_since(t0);
  std::cout << "Brown: " << cache->num_sentences() << " sentences, " << cache->num_tokens() << " tokens\n"
            << "tokenize (cold, flexnas-tokenize): " << cold << " s; open cache (warm): " << warm * 1e3 << " ms; ratio "
            << cold / warm << "x\n";

  MlmOptions mo;
  MlmData mlm({cache}, tok.vocab_size(), mo);
  t0 = std::chrono::steady_clock::now();
  int64_t checksum = 0;
  for (int64_t s = 0; s < steps; ++s) checksum += mlm.batch_at(s).labels.ne(-100).sum().item<int64_t>();
  const double secs = seconds_since(t0);
  const double tps = static_cast<double>(steps * mo.batch_size * mo.seq_len) / secs;
  std::cout << "MLM batches (B 32 x T 128): " << steps << " in " << secs << " s = " << tps << " tokens/s ("
            << checksum << " predicted positions); vs the ~11,000 tokens/s training step of PLATFORM.md (quoted, "
            << "not measured here): " << tps / 11000.0 << "x\n";
  fs::remove_all(tmp);
  return 0;
}
