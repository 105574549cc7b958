#pragma once
// The scheduler: the only writer of campaign.db. It asks the policy for trials, hands them to free
// workers, records the results and hands them back to the policy. It is asynchronous: a free worker
// gets the next trial at once. With scheduler.order = ordered (default) results reach the policy in
// trial order and proposal k is made after exactly k - window + 1 results, so the trials depend only
// on the seed.
//
// run_scheduler is the interface; the class below is shared by the files that define its parts:
//   scheduler.cpp           construction, the main loop, restoring the queues from the store
//   scheduler_dispatch.cpp  proposals, dispatch to free workers, results, observation order
//   scheduler_drain.cpp     stop signals and the drain file, the drain timeout, the end-of-campaign marker
//   scheduler_parent.cpp    taking over a parent campaign's trials, choosing warm starts
//   scheduler_progress.cpp  progress lines, the summary line, saving the library and the report
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "launch/campaign/background_job.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/profiler.h"
#include "launch/campaign/worker_pool.h"
#include "launch/evaluators/warm_start.h"
#include "launch/report/report_plot.h"

namespace flexnas::nas {
class Policy;
}

namespace flexnas::launch {

struct SchedulerOptions {
  bool quiet = false;            // no progress lines or leaderboard on stdout
  bool progress_lines = true;    // a line per finished trial
  double running_line_seconds = 60;  // between results, a line on what runs at most this often
  double report_seconds = 60;        // report/ (leaderboard, trials.svg) rewritten at most this often, and at the end
};

/// The scheduler loop. Returns the exit code: 0 when the campaign finished, 128 + signal after a
/// graceful stop (SIGTERM, SIGINT or SIGUSR1 stop new work, running trials get up to drain_timeout,
/// the rest are recorded as interrupted; `--resume` continues).
int run_scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options = {});

namespace scheduling {

/// Seconds since `t`.
inline double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

class Scheduler {
 public:
  Scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options);
  ~Scheduler();
  int run();

 private:
  // scheduler.cpp
  /// Rebuilds the policy and the queues from the store (a no-op on a fresh campaign).
  void restore();

  // scheduler_drain.cpp
  /// A stop signal, or the drain file standing in for one, starts the drain (sets `exit_code`).
  void check_stop(int& exit_code);
  /// Past drain_timeout, the running attempts are cancelled.
  void cancel_after_drain_timeout();
  void interrupt_rest();
  /// Tells the SLURM batch script that the campaign finished (kFinishedFileEnv): an exit code of 0
  /// from srun alone does not prove that flexnas ran.
  void write_finished_file() const;

  // scheduler_parent.cpp
  /// Hierarchical refinement, at the first start only: the parent's completed trials whose
  /// architecture is in this library become this campaign's first trials (kind "level<N>",
  /// completed, observed before any proposal), so they are not retrained and the policy learns from
  /// them. Returns how many.
  int64_t take_over_parent_trials();
  /// Warm start (builtin): the trained neighbour or parent model with the largest transfer overlap
  /// at or above the threshold (launch/evaluators/warm_start.h). Returns a note for the event log.
  std::string choose_warm_start(const TrialRow& t, TrialTask& task) const;

  // scheduler_dispatch.cpp
  void fill_proposals();
  /// Stores the policy's new exclusions (measured constraints) in order.
  void record_exclusions();
  void dispatch();
  void handle(PoolEvent& e, bool draining);
  /// Records a final result and hands results to the policy in the configured order.
  void finalize(TrialRow& t, const std::string& event, const std::string& message);
  void observe_one(TrialRow& t, const std::string& event, const std::string& message);
  void observe_ready();

  // scheduler_progress.cpp
  void progress(const TrialRow& t);
  void print_progress();
  std::string summary_line() const;
  // Saves the library's performances (and, at most every report_seconds, the report) every
  // library_save_interval seconds from the background job, on a snapshot, so the scheduler goes on
  // handing out trials meanwhile; `force` (the end) waits for it and writes both here.
  void maybe_save_library(bool force);
  struct ReportPages {
    std::string leaderboard, svg;  // report/leaderboard.txt, report/trials.svg
    std::string pareto, embedding;  // report/pareto.svg, report/embedding.svg
  };
  ReportPages report_pages() const;
  void write_report_pages(const ReportPages& pages) const;
  static std::string format_value(double v);

  std::vector<TrialRow> all_trials() const { return std::vector<TrialRow>(trials_.begin(), trials_.end()); }
  void say(const std::string& line);
  int64_t running() const {
    int64_t n = 0;
    for (int64_t t : busy_) n += t >= 0;
    return n;
  }
  int alive_workers() const {
    int n = 0;
    for (int w = 0; w < pool_.size(); ++w) n += pool_.alive(w);
    return n;
  }
  bool is_final(const TrialRow& t) const {
    return t.status == trial_status::kCompleted || t.status == trial_status::kFailed;
  }
  double campaign_elapsed() const { return elapsed_before_ + since(start_); }
  void save_elapsed() { store_.set_meta("elapsed_seconds", std::to_string(campaign_elapsed())); }
  void write_report() { write_report_pages(report_pages()); }

  Campaign& c_;
  const CampaignConfig& config_;
  CampaignStore& store_;
  WorkerPool& pool_;
  SchedulerOptions options_;
  std::unique_ptr<nas::Policy> policy_;
  std::unique_ptr<WarmStartChooser> warm_;  // builtin evaluator with warm_start only
  std::unique_ptr<ArchitectureProfiler> profiler_;  // measured constraints or cost latency only
  size_t recorded_exclusions_ = 0;          // policy exclusions already in the store
  std::deque<TrialRow> trials_;  // a deque: references stay valid while proposals are appended
  std::map<std::string, int64_t> by_hash_;
  std::deque<int64_t> ready_;
  std::vector<int64_t> busy_;   // trial id per worker, -1 = idle
  std::set<int64_t> unobserved_;
  int64_t window_ = 0, observed_ = 0, next_seq_ = 0, next_observe_ = 0, done_now_ = 0, taken_over_ = 0;
  bool ordered_ = true, exhausted_ = false, draining_ = false, cancelled_ = false, library_dirty_ = false;
  double elapsed_before_ = 0;
  std::optional<TrialRow> best_;
  mutable std::optional<LibraryMap> library_map_;  // report/embedding.svg's projection, made at the first report
  std::vector<std::string> pending_progress_;  // finished-trial notes waiting for print_progress
  std::chrono::steady_clock::time_point start_, last_save_;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_report_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drain_start_;
  std::chrono::steady_clock::time_point last_drain_check_;  // epoch: the first pass checks
  BackgroundJob writer_;  // last: joined before the members its jobs read are destroyed
};

}  // namespace scheduling
}  // namespace flexnas::launch
