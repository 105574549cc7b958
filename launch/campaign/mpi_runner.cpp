#include "launch/campaign/mpi_runner.h"

#include <mpi.h>

#include <sched.h>
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "design_space/error.h"
#include "design_space/log.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/scheduler.h"
#include "launch/campaign/worker_pool.h"
#include "launch/evaluators/evaluator.h"

namespace flexnas::launch {

namespace {

enum Tag : int { kTask = 11, kCancel = 12, kStop = 13, kResult = 21, kHeartbeat = 22 };

using scheduling::since;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

bool send_json(const nlohmann::json& j, int rank, int tag) {
  const std::string s = j.dump();
  return MPI_Send(s.data(), int(s.size()), MPI_CHAR, rank, tag, MPI_COMM_WORLD) == MPI_SUCCESS;
}

/// Receives the probed message as text.
std::string receive(const MPI_Status& probed) {
  int count = 0;
  MPI_Get_count(&probed, MPI_CHAR, &count);
  std::string s(size_t(count), '\0');
  MPI_Recv(s.data(), count, MPI_CHAR, probed.MPI_SOURCE, probed.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return s;
}

/// How a rank waits for a message without a blocking receive (Open MPI's blocking calls busy-wait,
/// which would take the CPU from the trials on an oversubscribed node). Each idle round sleeps
/// `fraction` of the time waited so far, between min_us and max_us: right after a hand-over a reply
/// is noticed within tens of microseconds, while a rank idle for long polls rarely; the delay this
/// adds is at most ~fraction of the wait it ends. The first spin_us after reset() only yield the
/// CPU (a worker that just sent a result gets its next task within ~1 ms).
class Backoff {
 public:
  Backoff(int spin_us, int min_us, int max_us, double fraction)
      : spin_us_(spin_us), min_us_(min_us), max_us_(max_us), fraction_(fraction) {}
  void idle() {
    const double waited_us = 1e6 * since(start_);
    if (waited_us < spin_us_) {
      sched_yield();
      return;
    }
    const int us = std::max(min_us_, std::min(max_us_, int(fraction_ * waited_us)));
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
  void reset() { start_ = std::chrono::steady_clock::now(); }

 private:
  int spin_us_, min_us_, max_us_;
  double fraction_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

class MpiPool : public WorkerPool {
 public:
  MpiPool(int world, double heartbeat_timeout)
      : heartbeat_timeout_(heartbeat_timeout),
        alive_(size_t(world - 1), true),
        busy_(size_t(world - 1), false),
        last_heard_(size_t(world - 1), std::chrono::steady_clock::now()),
        started_(size_t(world - 1), std::chrono::steady_clock::now()) {
    // Rank 0 starts no trial processes: its short polling sleeps may be exact (the default 50 us
    // timer slack would double a 20-50 us sleep).
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  }

  int size() const override { return int(alive_.size()); }
  int worker_label(int worker) const override { return worker + 1; }
  bool alive(int worker) const override { return alive_[size_t(worker)]; }

  void start(int worker, const TrialTask& task) override {
    busy_[size_t(worker)] = true;
    last_heard_[size_t(worker)] = started_[size_t(worker)] = std::chrono::steady_clock::now();
    if (!send_json(task.to_json(), worker + 1, kTask)) lose(worker, "cannot send to worker rank " + std::to_string(worker + 1));
  }

  std::vector<PoolEvent> wait(double seconds) override {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS || !flag) break;
        const std::string text = receive(st);
        const int w = st.MPI_SOURCE - 1;
        if (w < 0 || w >= size()) continue;
        last_heard_[size_t(w)] = std::chrono::steady_clock::now();
        backoff_.reset();
        if (st.MPI_TAG == kResult && alive_[size_t(w)]) {
          PoolEvent e;
          e.worker = w;
          e.outcome = TrialOutcome::from_json(nlohmann::json::parse(text));
          busy_[size_t(w)] = false;
          const double took = since(started_[size_t(w)]);
          typical_seconds_ = typical_seconds_ > 0 ? 0.9 * typical_seconds_ + 0.1 * took : took;
          events_.push_back(std::move(e));
        }
      }
      for (int w = 0; w < size(); ++w) {
        if (alive_[size_t(w)] && busy_[size_t(w)] && since(last_heard_[size_t(w)]) > heartbeat_timeout_)
          lose(w, "worker rank " + std::to_string(w + 1) + " lost (no word for " +
                      std::to_string(int64_t(heartbeat_timeout_)) + " s)");
      }
      if (!events_.empty() || since(start) >= seconds) break;
      if (result_due()) std::this_thread::sleep_for(std::chrono::microseconds(kDuePollMicroseconds));
      else backoff_.idle();
    }
    std::vector<PoolEvent> out(events_.begin(), events_.end());
    events_.clear();
    return out;
  }

  void cancel_all() override {
    for (int w = 0; w < size(); ++w)
      if (alive_[size_t(w)] && busy_[size_t(w)]) send_json(nlohmann::json::object(), w + 1, kCancel);
  }

  void shutdown() override {
    if (shut_) return;
    shut_ = true;
    for (int w = 0; w < size(); ++w)
      if (alive_[size_t(w)]) send_json(nlohmann::json::object(), w + 1, kStop);
  }

  bool lost_any() const {
    for (bool a : alive_)
      if (!a) return true;
    return false;
  }

 private:
  /// True while a running attempt is between 0.8x and 1.5x the typical attempt's duration: a result
  /// is due, and the scheduler polls every kDuePollMicroseconds instead of backing off (on 8 ranks
  /// over 2 cores, backing off left a result unnoticed for 1.0 ms on average, 0.3 ms this way).
  /// Only then, because dense polling keeps a core partly busy: a rank waiting on hour-long trials
  /// polls densely only around the time they usually end.
  bool result_due() const {
    if (typical_seconds_ <= 0) return false;
    const auto now = std::chrono::steady_clock::now();
    for (int w = 0; w < size(); ++w) {
      if (!alive_[size_t(w)] || !busy_[size_t(w)]) continue;
      const double running = std::chrono::duration<double>(now - started_[size_t(w)]).count();
      if (running >= 0.8 * typical_seconds_ && running <= 1.5 * typical_seconds_) return true;
    }
    return false;
  }

  void lose(int w, const std::string& reason) {
    alive_[size_t(w)] = false;
    if (busy_[size_t(w)]) {
      PoolEvent e;
      e.kind = PoolEvent::kLost;
      e.worker = w;
      e.reason = reason;
      events_.push_back(std::move(e));
    }
    busy_[size_t(w)] = false;
    LOG_WARN(reason);
  }

  double heartbeat_timeout_;
  std::vector<bool> alive_, busy_;
  std::vector<std::chrono::steady_clock::time_point> last_heard_, started_;
  double typical_seconds_ = 0;  // moving average of start-to-result times seen here
  std::vector<PoolEvent> events_;
  // Polling sleeps when no result is due: 2% of the time since the last message, 20 us .. 1 ms (a
  // rank waiting on hour-long trials wakes 1,000 times a second, well under 1% of a core).
  Backoff backoff_{0, 20, 1000, 0.02};
  static constexpr int kDuePollMicroseconds = 50;
  bool shut_ = false;
};

/// Ranks 1..N-1: run one attempt at a time until told to stop.
void worker_loop(Evaluator& evaluator) {
  const int gpus = count_gpus();
  const int gpu = gpus > 0 ? env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", 0)) % gpus : -1;
  // Waiting for the next task: yield-spin for 1 ms after our result was sent (the scheduler
  // answers in ~0.1-0.8 ms; 300 us of spinning doubled the mean wait for the next task on 8 ranks
  // over 2 cores), then sleeps of 2% of the wait, 20 us .. 1 ms.
  Backoff backoff(1000, 20, 1000, 0.02);
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS) return;
    if (!flag) {
      backoff.idle();
      continue;
    }
    const std::string text = receive(st);
    if (st.MPI_TAG == kStop) return;
    if (st.MPI_TAG != kTask) continue;  // a cancel for an attempt that already ended
    TrialTask task = TrialTask::from_json(nlohmann::json::parse(text));
    task.gpu = gpu;
    std::atomic<bool> cancel{false};
    bool stop_after = false;
    auto last_beat = std::chrono::steady_clock::now();
    auto tick = [&] {
      if (since(last_beat) >= 1.0) {
        send_json({{"trial", task.trial_id}}, 0, kHeartbeat);
        last_beat = std::chrono::steady_clock::now();
      }
      int f = 0;
      MPI_Status s;
      while (MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &f, &s) == MPI_SUCCESS && f &&
             (s.MPI_TAG == kCancel || s.MPI_TAG == kStop)) {
        receive(s);
        cancel = true;
        if (s.MPI_TAG == kStop) stop_after = true;
      }
    };
    TrialOutcome outcome;
    try {
      outcome = evaluator.evaluate(task, &cancel, tick);
    } catch (const std::exception& e) {
      outcome.trial_id = task.trial_id;
      outcome.attempt = task.attempt;
      outcome.reason = std::string("evaluator error: ") + e.what();
    }
    send_json(outcome.to_json(), 0, kResult);
    if (stop_after) return;
    backoff.reset();
  }
}

}  // namespace

bool mpi_requested() {
  if (env_int("OMPI_COMM_WORLD_SIZE", 0) > 1) return true;
  return std::getenv("PMIX_RANK") && env_int("SLURM_NTASKS", 0) > 1;
}

int run_search_mpi(const CampaignConfig& config_in, bool resume, bool quiet) {
  CampaignConfig config = config_in;
  MPI_Init(nullptr, nullptr);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  set_log_prefix("[rank " + std::to_string(rank) + "/" + std::to_string(world) + "]");
  int code = 0;
  // Every rank read the same file; each builds its evaluator (a table loads on every worker).
  std::shared_ptr<Evaluator> evaluator = make_evaluator(config);
  if (world < 2) {
    MPI_Finalize();
    throw ConfigError("error: mpirun: the MPI runner needs at least 2 ranks (1 scheduler + workers), got " +
                      std::to_string(world));
  }
  config.workers = world - 1;  // the worker ranks (the default window is 2 x workers)
  if (rank == 0) {
    MpiPool pool(world, config.scheduler.heartbeat_timeout);
    try {
      Campaign campaign = open_campaign(config, resume);
      SchedulerOptions so;
      so.quiet = quiet;
      if (!quiet)
        std::cout << "campaign " << config.name << " (" << config.directory << "): policy " << enum_name(nas::policy_kind_names(), config.policy.name)
                  << ", evaluator " << enum_name(evaluator_type_names(), config.evaluator.type) << ", " << (world - 1) << " MPI worker ranks"
                  << (campaign.resumed ? ", resumed" : "") << std::endl;
      code = run_scheduler(campaign, pool, so);
    } catch (...) {
      pool.shutdown();  // workers must not wait forever for a scheduler that failed to start
      MPI_Finalize();
      throw;
    }
    pool.shutdown();
  } else {
    worker_loop(*evaluator);
  }
  MPI_Finalize();
  return code;
}

}  // namespace flexnas::launch
