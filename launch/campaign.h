#pragma once
// Running a search campaign: the scheduler (the only writer of campaign.db) and its workers.
//   local : the scheduler plus `workers` threads in this process (table look-ups run in the
//           thread; command/builtin trials in child processes);
//   MPI   : under mpirun (detected from OMPI_COMM_WORLD_SIZE / PMIx), rank 0 schedules and ranks
//           1..N-1 each run one trial at a time. Messages are JSON strings (see campaign.cpp).
// The scheduler is asynchronous: a free worker gets the next trial at once. With
// scheduler.order = ordered (default) results reach the policy in trial order and proposal k is
// made after exactly k - window + 1 results, so the trials depend only on the seed.
//
// Stop and resume: SIGTERM, SIGINT or SIGUSR1 stops new work, waits up to drain_timeout for
// running trials, records the rest as interrupted and returns 128 + signal. `--resume` continues.
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "design_space/library.h"
#include "launch/campaign_config.h"
#include "launch/campaign_store.h"
#include "launch/evaluator.h"
#include "launch/warm_start.h"

namespace flexnas::nas {
class Policy;
}

namespace flexnas::launch {

/// Something that happened on a worker.
struct PoolEvent {
  enum Kind { kResult, kLost } kind = kResult;
  int worker = -1;
  TrialOutcome outcome;   // kResult
  std::string reason;     // kLost
};

/// The workers as the scheduler sees them (local threads or MPI ranks).
class WorkerPool {
 public:
  virtual ~WorkerPool() = default;
  virtual int size() const = 0;
  /// Worker id as stored in the database (thread number, or MPI rank).
  virtual int worker_label(int worker) const { return worker; }
  virtual bool alive(int worker) const = 0;
  /// Starts one attempt on an idle, alive worker.
  virtual void start(int worker, const TrialTask& task) = 0;
  /// Events that arrived, waiting up to `seconds` for the first one.
  virtual std::vector<PoolEvent> wait(double seconds) = 0;
  /// Asks every busy worker to stop its attempt (drain timeout); they report cancelled outcomes.
  virtual void cancel_all() = 0;
  /// Tells the workers to exit (after the last result).
  virtual void shutdown() = 0;
};

/// `workers` threads sharing one evaluator.
std::unique_ptr<WorkerPool> make_local_pool(std::shared_ptr<Evaluator> evaluator, int workers);

struct SchedulerOptions {
  bool quiet = false;            // no progress lines or leaderboard on stdout
  bool progress_lines = true;    // a line per finished trial
  double running_line_seconds = 60;  // between results, a line on what runs at most this often
  double report_seconds = 60;        // report/ (leaderboard, trials.svg) rewritten at most this often, and at the end
};

/// Opens or creates the campaign directory: locks it (a second `flexnas search` on the same
/// directory is an error while the first runs), checks/freezes the configuration, opens the store,
/// loads or generates the library (with performances reset on the first start).
struct Campaign {
  CampaignConfig config;
  std::unique_ptr<CampaignStore> store;
  Library library;
  bool resumed = false;
  int64_t level = 1;                     // 1 + the parent's level (hierarchical refinement)
  // Parent campaign (config.parent): its completed trials and its trained models.
  std::vector<TrialRow> parent_completed;
  std::vector<ParentModel> parent_models;
  int64_t parent_level = 0;
  std::shared_ptr<void> lock;            // exclusive lock on <directory>/.lock while the campaign is open
};
Campaign open_campaign(const CampaignConfig& config, bool resume);

/// The scheduler loop. Returns the exit code: 0 when the campaign finished, 128 + signal after a
/// graceful stop.
int run_scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options = {});

/// Runs `flexnas search`: detects MPI, starts the scheduler and the workers. Returns the exit code.
struct SearchOptions {
  bool resume = false;
  bool quiet = false;
  int64_t workers = 0;           // local runner: overrides the config's `workers` (0 = keep)
  int64_t budget_trials = -1;    // overrides budget.trials (-1 = keep); with resume: extends a campaign
};
int run_search(const std::string& config_path, const SearchOptions& options);

/// Signals: the handler records the first stop signal; tests may request a stop directly.
void install_stop_handlers();
void request_stop(int signal);
int stop_signal();               // 0 = none
void clear_stop();

/// Files shared with the SLURM batch script (launch/slurm.cpp). srun can swallow a signal that
/// arrives while it starts the job step, and SLURM may signal a job seconds after it starts, so
/// the script also writes the signal number to $FLEXNAS_DRAIN_FILE, which the scheduler polls
/// (every 0.5 s) as if the signal had arrived. When the campaign finishes, the scheduler writes
/// its summary to $FLEXNAS_FINISHED_FILE: the script trusts that, not srun's exit code of 0.
inline constexpr const char* kDrainFileEnv = "FLEXNAS_DRAIN_FILE";
inline constexpr const char* kFinishedFileEnv = "FLEXNAS_FINISHED_FILE";
/// The signal named by $FLEXNAS_DRAIN_FILE when that file exists (USR1 when unreadable), else 0.
int drain_file_signal();

/// Seed of a trial: derived from (campaign seed, trial id); the same for every attempt.
uint64_t trial_seed(uint64_t campaign_seed, int64_t trial_id);

/// "L4 h256 | sa-wma n4 f1024x3 | l-dct n2 f512x3 | ..." (layers merged when identical).
std::string summarize_architecture(const Architecture& arch);

/// Top `n` completed trials by score: rank, level, trial, score, parameters, hash prefix, model-dict
/// summary. Trials taken over from a parent campaign (kind "level<N>") show their own level.
std::string leaderboard(const std::vector<TrialRow>& trials, const Library& library, int64_t level, int n = 10);

/// Kind of a trial taken over from a parent campaign of level `level` ("level1", ...); the level of
/// a trial of a campaign at `campaign_level` (its own trials are at that level).
std::string parent_trial_kind(int64_t level);
int64_t trial_level(const TrialRow& trial, int64_t campaign_level);

/// `flexnas status DIR` text: done/running/failed, best so far, rate and ETA, recent failures.
std::string campaign_status(const std::string& directory);
/// One line per trial: "id index hash status attempts value seed" (+ reason when failed), for
/// scripts and diffs (`flexnas status DIR --trials`).
std::string campaign_trials_table(const std::string& directory);

}  // namespace flexnas::launch
