// Time to transfer one model (od and rp) against the peer measured in the same run: building and
// initialising the target model from scratch. The reference's RP runs scikit-learn's
// GaussianRandomProjection on CPU once per tensor (spec §6.1/§6.3); flexnas draws one matrix per
// width pair and applies it with LibTorch.
//   transfer_bench [--repeats N] [--vocab V] [--threads T]   (--help: defaults)
// Prints one line per (pair, mode): best and median milliseconds per transfer and per fresh build
// (interleaved), the ratio of the medians, the overlap.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_cli.h"
#include "design_space/architecture.h"
#include "transfer/transfer.h"

using namespace flexnas;

namespace {

struct Options {
  int repeats = 5;        // transfers (and fresh builds) per target and mode
  int64_t vocab = 30522;  // BERT's vocabulary
  int threads = 1;
};

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

double best(std::vector<double> v) { return *std::min_element(v.begin(), v.end()); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Architecture arch(const char* json) { return architecture_from_json(nlohmann::json::parse(json), "bench"); }

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"transfer_bench: time to transfer FlexiBERT-Mini's weights (od, rp) vs building the target fresh"};
  bench::show_defaults(app);
  app.add_option("--repeats", opt.repeats, "transfers and fresh builds per target and mode, interleaved")
      ->check(CLI::PositiveNumber);
  app.add_option("--vocab", opt.vocab, "vocabulary size of the models")->check(CLI::PositiveNumber);
  app.add_option("--threads", opt.threads, "torch threads")->check(CLI::PositiveNumber);
  if (const int code = bench::parse_flags(app, argc, argv); code >= 0) return code;
  const int repeats = opt.repeats, threads = opt.threads;
  const int64_t vocab = opt.vocab;
  torch::set_num_threads(threads);
  models::ModelOptions o;
  o.vocab_size = vocab;
  // FlexiBERT-Mini (spec Appendix B) as the source; targets: same, wider, narrower, other op, deeper.
  const char* mini =
      R"({"l":4,"h":[256,256,128,128],"n":[4,4,2,2],"o":["sa","sa","l","l"],"f":[[1024],[1024],[512,512,512],[512,512,512]],"p":["sdp","sdp","dct","dct"]})";
  struct Case {
    const char* name;
    const char* target;
  } cases[] = {
      {"identical", mini},
      {"wider", R"({"l":4,"h":[512,512,256,256],"n":[8,8,4,4],"o":["sa","sa","l","l"],"f":[[2048],[2048],[1024,1024,1024],[1024,1024,1024]],"p":["sdp","sdp","dct","dct"]})"},
      {"narrower", R"({"l":4,"h":[128,128,128,128],"n":[2,2,2,2],"o":["sa","sa","l","l"],"f":[[512],[512],[512,512],[512,512]],"p":["sdp","sdp","dct","dct"]})"},
      {"other-op", R"({"l":4,"h":[256,256,128,128],"n":[4,4,2,2],"o":["sa","c","l","l"],"f":[[1024],[1024],[512,512,512],[512,512,512]],"p":["sdp","9","dct","dct"]})"},
      {"deeper", R"({"l":6,"h":[256,256,128,128,128,128],"n":[4,4,2,2,2,2],"o":["sa","sa","l","l","sa","sa"],"f":[[1024],[1024],[512,512,512],[512,512,512],[512],[512]],"p":["sdp","sdp","dct","dct","sdp","sdp"]})"},
  };
  const Architecture src_arch = arch(mini);
  torch::manual_seed(0);
  models::FlexModel src(src_arch, o);
  std::printf("%-10s %-4s %8s %8s %8s %8s %8s %9s\n", "target", "mode", "xfer min", "xfer med", "new min", "new med",
              "ratio", "overlap");
  for (const Case& c : cases) {
    const Architecture tgt = arch(c.target);
    for (auto mode : {transfer::TransferMode::kOrdered, transfer::TransferMode::kRandomProjection}) {
      std::vector<double> fresh, moved;  // interleaved: build, transfer, build, transfer, ...
      double overlap = 0;
      for (int r = 0; r < repeats; ++r) {
        const double t0 = now_ms();
        torch::manual_seed(uint64_t(r));
        models::FlexModel dst(tgt, o);
        const double t1 = now_ms();
        const auto plan = transfer::transfer_model(*src, *dst, {mode, uint64_t(r)});
        const double t2 = now_ms();
        fresh.push_back(t1 - t0);
        moved.push_back(t2 - t1);
        overlap = plan.overlap();
      }
      std::printf("%-10s %-4s %8.1f %8.1f %8.1f %8.1f %7.2fx %9.4f\n", c.name, transfer::mode_name(mode).c_str(),
                  best(moved), median(moved), best(fresh), median(fresh), median(moved) / median(fresh), overlap);
    }
  }
  return 0;
}
