// A tiny trial program for the command evaluator's tests (no LibTorch: starts in a millisecond).
// Usage: trial_helper MODE [OUT_DIR]   (OUT_DIR defaults to $FLEXNAS_OUT)
// Modes: ok | sleep:MS | fail | segfault | oom | hang | nometrics | badjson | chaos | env
//   ok       metrics.json {"score": s} with s a deterministic function of the architecture file and seed
//   chaos    by trial id: id % 6 == 1 segfaults, == 2 runs out of memory, == 3 hangs (timeout) on the
//            first attempt; every other attempt succeeds like `ok`
//   env      like ok, and also fails unless FLEXNAS_ARCH/OUT/SEED/TRIAL are set
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

static std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

static int write_ok(const std::string& out) {
  std::ifstream in(env("FLEXNAS_ARCH"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string arch = ss.str() + "/" + env("FLEXNAS_SEED");
  unsigned long long h = 1469598103934665603ull;  // FNV-1a of the architecture text and seed
  for (char c : arch) h = (h ^ (unsigned char)c) * 1099511628211ull;
  const double score = double(h % 100000) / 1000.0;
  std::ofstream(out + "/metrics.json") << "{\"score\": " << score << ", \"trial\": \"" << env("FLEXNAS_TRIAL") << "\"}\n";
  return 0;
}

static void hang() {
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

static void oom() {
  std::vector<char*> blocks;
  for (;;) {
    char* p = new char[64 << 20];
    std::memset(p, 1, 64 << 20);
    blocks.push_back(p);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) return 64;
  const std::string mode = argv[1];
  const std::string out = argc > 2 ? argv[2] : env("FLEXNAS_OUT");
  if (mode == "ok") return write_ok(out);
  if (mode.rfind("sleep:", 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(mode.c_str() + 6)));
    return write_ok(out);
  }
  if (mode == "fail") {
    std::cerr << "trial_helper: failing on purpose\n";
    return 3;
  }
  if (mode == "segfault") std::raise(SIGSEGV);
  if (mode == "oom") oom();
  if (mode == "hang") hang();
  if (mode == "nometrics") return 0;
  if (mode == "badjson") {
    std::ofstream(out + "/metrics.json") << "{not json";
    return 0;
  }
  if (mode == "env") {
    for (const char* v : {"FLEXNAS_ARCH", "FLEXNAS_OUT", "FLEXNAS_SEED", "FLEXNAS_TRIAL"})
      if (env(v).empty()) return 5;
    return write_ok(out);
  }
  if (mode == "chaos") {
    const long id = std::atol(env("FLEXNAS_TRIAL").c_str());
    if (env("FLEXNAS_ATTEMPT") == "1") {
      if (id % 6 == 1) std::raise(SIGSEGV);
      if (id % 6 == 2) oom();
      if (id % 6 == 3) hang();
    }
    return write_ok(out);
  }
  return 64;
}
