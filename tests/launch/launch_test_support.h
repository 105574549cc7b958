#pragma once
// Shared by the launch test binaries: scratch folders, the 80-record NAS-Bench-BERT sample library,
// writing + loading a campaign.yaml, and an evaluator wrapper that scrambles completion order.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "design_space/atomic_file.h"
#include "design_space/config_node.h"
#include "design_space/library_builder.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/leaderboard.h"
#include "launch/campaign/scheduler.h"
#include "launch/campaign/search.h"
#include "launch/campaign/signals.h"
#include "launch/campaign/status.h"
#include "launch/campaign/worker_pool.h"
#include "launch/evaluators/evaluator.h"

namespace flexnas::launch::test_support {

inline const std::string kSample = std::string(FLEXNAS_TEST_DATA) + "/launch/nas_bench_bert_sample.json";

/// A fresh, empty folder under /tmp private to this test process.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("flexnas_launch_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

/// A library of the 80 NAS-Bench-BERT sample records (built once per process).
inline const std::string& sample_library() {
  static const std::string path = [] {
    const ConfigNode root = ConfigNode::load_file(kSample);
    std::vector<Architecture> archs;
    for (const ConfigNode& item : root.items()) archs.push_back(architecture_from_config(item));
    LibraryBuildOptions b;
    b.neighbors = 10;
    b.progress = false;
    const std::string out = (temp_dir("library") / "lib.json").string();
    save_library(build_library_from_archs(std::move(archs), kSample, b), out);
    return out;
  }();
  return path;
}

/// Writes campaign.yaml into `dir` (created if needed) and parses it.
inline CampaignConfig write_config(const std::filesystem::path& dir, const std::string& body) {
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "campaign.yaml").string();
  write_file_atomic(path, body);
  return load_campaign_config(path);
}

/// Wraps an evaluator: random delays (to scramble completion order) and an optional stop request.
class ScrambledEvaluator : public Evaluator {
 public:
  ScrambledEvaluator(std::shared_ptr<Evaluator> inner, uint64_t seed, int64_t stop_at = -1)
      : inner_(std::move(inner)), seed_(seed), stop_at_(stop_at) {}
  std::string name() const override { return "scrambled"; }
  TrialOutcome evaluate(const TrialTask& task, const std::atomic<bool>* cancel,
                        const std::function<void()>& tick) override {
    if (task.trial_id == stop_at_) request_stop(SIGTERM);
    std::mt19937 rng(uint32_t(seed_ * 1000 + uint64_t(task.trial_id)));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 15));
    return inner_->evaluate(task, cancel, tick);
  }

 private:
  std::shared_ptr<Evaluator> inner_;
  uint64_t seed_;
  int64_t stop_at_;
};

}  // namespace flexnas::launch::test_support
