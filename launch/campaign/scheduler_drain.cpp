// Stopping a campaign gracefully: a stop signal (or the SLURM batch script's drain file standing in for
// one) stops new work, running trials get drain_timeout, the rest are recorded as interrupted; and the
// note that tells the batch script the campaign finished (see scheduler.h, signals.h).
#include "launch/campaign/scheduler.h"

#include <cstdlib>

#include "design_space/atomic_file.h"
#include "design_space/log.h"
#include "launch/campaign/signals.h"

namespace flexnas::launch::scheduling {

void Scheduler::check_stop(int& exit_code) {
  // A signal the job step lost (see kDrainFileEnv): the batch script's note stands in for it.
  if (!draining_ && since(last_drain_check_) >= 0.5) {
    last_drain_check_ = std::chrono::steady_clock::now();
    if (const int file_sig = drain_file_signal()) request_stop(file_sig);
  }
  const int sig = stop_signal();
  if (sig && !draining_) {
    draining_ = true;
    drain_start_ = std::chrono::steady_clock::now();
    exit_code = 128 + sig;
    store_.log_event(-1, "stopping", -1, "signal " + std::to_string(sig) + ": no new trials; waiting up to " +
                                             std::to_string(int64_t(config_.scheduler.drain_timeout)) +
                                             " s for " + std::to_string(running()) + " running trials");
    say("stopping (signal " + std::to_string(sig) + "): waiting for " + std::to_string(running()) +
        " running trials");
  }
}

void Scheduler::cancel_after_drain_timeout() {
  if (draining_ && since(drain_start_) > config_.scheduler.drain_timeout && !cancelled_) {
    pool_.cancel_all();
    cancelled_ = true;
  }
}

void Scheduler::interrupt_rest() {
  CampaignStore::Transaction tx(store_);
  for (int w = 0; w < pool_.size(); ++w) {
    const int64_t id = busy_[size_t(w)];
    if (id < 0) continue;
    TrialRow& t = trials_[size_t(id)];
    t.status = trial_status::kInterrupted;
    t.attempt -= 1;
    store_.put_trial(t, "interrupted", "still running at the end of the drain", t.worker);
    busy_[size_t(w)] = -1;
  }
  for (int64_t id : ready_) {
    TrialRow& t = trials_[size_t(id)];
    t.status = trial_status::kInterrupted;
    store_.put_trial(t);
  }
  tx.commit();
}

void Scheduler::write_finished_file() const {
  const char* path = std::getenv(kFinishedFileEnv);
  if (!path || !*path) return;
  try {
    write_file_atomic(path, summary_line() + "\n");
  } catch (const std::exception& e) {
    LOG_WARN("cannot write ", path, " (", kFinishedFileEnv, "): ", e.what());
  }
}

}  // namespace flexnas::launch::scheduling
