#pragma once
// Shared by the launch test binaries: scratch folders, the 80-record NAS-Bench-BERT sample library,
// writing + loading a campaign.yaml, and an evaluator wrapper that scrambles completion order.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
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
#include "launch/campaign/campaign_store.h"
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

/// Starts `binary args...` with stdout and stderr in `log`; the child's pid.
inline pid_t spawn_logged(const std::string& binary, const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

/// Waits for `pid`: its exit code, or 128 + the signal that ended it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Completed trials in a campaign directory's store (0 while it does not exist or is being created).
inline int64_t count_completed(const std::string& directory) {
  if (!std::filesystem::exists(campaign_db_path(directory))) return 0;
  try {
    CampaignStore store(campaign_db_path(directory), true);
    int64_t n = 0;
    for (const TrialRow& t : store.trials()) n += t.status == trial_status::kCompleted;
    return n;
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace flexnas::launch::test_support
