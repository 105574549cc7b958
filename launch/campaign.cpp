#include "launch/campaign.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "design_space/atomic_file.h"
#include "design_space/design_space.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "design_space/progress.h"
#include "launch/background_job.h"
#include "launch/mpi_runner.h"
#include "launch/report_plot.h"
#include "nas/boshnas.h"
#include "nas/policy.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

// ---- signals ----

namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, sig);
}
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
}
void request_stop(int sig) { on_stop_signal(sig); }
int stop_signal() { return g_stop_signal.load(); }
void clear_stop() { g_stop_signal.store(0); }

int drain_file_signal() {
  const char* path = std::getenv(kDrainFileEnv);
  if (!path || !*path) return 0;
  std::ifstream in(path);
  if (!in) return 0;
  int sig = 0;
  // The file names the signal its writer caught; an empty or garbled one still asks for a drain.
  if (!(in >> sig) || (sig != SIGTERM && sig != SIGINT && sig != SIGUSR1)) sig = SIGUSR1;
  return sig;
}

uint64_t trial_seed(uint64_t campaign_seed, int64_t trial_id) {
  return nas::derive_seed(campaign_seed, 0x7121a15eedull, uint64_t(trial_id));
}

// ---- local worker pool ----

namespace {

class LocalPool : public WorkerPool {
 public:
  LocalPool(std::shared_ptr<Evaluator> evaluator, int workers) : evaluator_(std::move(evaluator)), slots_(workers) {
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { loop(w); });
  }
  ~LocalPool() override { shutdown(); }

  int size() const override { return int(slots_.size()); }
  bool alive(int) const override { return true; }

  void start(int worker, const TrialTask& task) override {
    std::lock_guard<std::mutex> lock(mutex_);
    Slot& s = slots_[size_t(worker)];
    FLEXNAS_CHECK(!s.task && !s.busy, "worker ", worker, " is busy");
    s.cancel = false;
    s.task = task;
    s.busy = true;
    s.wake.notify_one();  // only this worker (one condition variable for all woke every thread)
  }

  std::vector<PoolEvent> wait(double seconds) override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return !events_.empty(); });
    std::vector<PoolEvent> out(events_.begin(), events_.end());
    events_.clear();
    return out;
  }

  void cancel_all() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Slot& s : slots_) s.cancel = true;
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      for (Slot& s : slots_) {
        s.cancel = true;
        s.wake.notify_one();
      }
    }
    for (std::thread& t : threads_) t.join();
  }

 private:
  struct Slot {
    std::optional<TrialTask> task;
    bool busy = false;
    std::atomic<bool> cancel{false};
    std::condition_variable wake;  // a task or shutdown for this worker
  };

  void loop(int w) {
    const int gpus = count_gpus();
    for (;;) {
      TrialTask task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        slots_[size_t(w)].wake.wait(lock, [&] { return stopping_ || slots_[size_t(w)].task.has_value(); });
        if (stopping_ && !slots_[size_t(w)].task) return;
        task = *slots_[size_t(w)].task;
        slots_[size_t(w)].task.reset();
      }
      if (gpus > 0) task.gpu = w % gpus;
      PoolEvent e;
      e.worker = w;
      try {
        e.outcome = evaluator_->evaluate(task, &slots_[size_t(w)].cancel, {});
      } catch (const std::exception& ex) {  // the worker survives whatever the trial does
        e.outcome.trial_id = task.trial_id;
        e.outcome.attempt = task.attempt;
        e.outcome.reason = std::string("evaluator error: ") + ex.what();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      slots_[size_t(w)].busy = false;
      events_.push_back(std::move(e));
      done_cv_.notify_one();  // the scheduler is the only waiter
      if (stopping_) return;
    }
  }

  std::shared_ptr<Evaluator> evaluator_;
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::deque<PoolEvent> events_;
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<WorkerPool> make_local_pool(std::shared_ptr<Evaluator> evaluator, int workers) {
  return std::make_unique<LocalPool>(std::move(evaluator), workers);
}

// ---- opening a campaign ----

namespace {
/// An exclusive flock on <dir>/.lock holding the owner's pid, released when the process ends (also
/// on kill -9), so a stale lock never blocks a resume.
std::shared_ptr<void> lock_directory(const std::string& dir, const std::string& source) {
  const std::string path = (fs::path(dir) / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FLEXNAS_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    throw ConfigError(source + ": error: directory: the campaign directory " + dir +
                      " is in use by another flexnas search" + (n > 0 ? " (pid " + std::string(pid, size_t(n)) + ")" : "") +
                      "; wait for it to finish or stop it (SIGTERM) before resuming");
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, me.data(), me.size(), 0) < 0) {
    // The pid is only informative.
  }
  return std::shared_ptr<void>(new int(fd), [](void* p) {
    int* fd = static_cast<int*>(p);
    ::close(*fd);
    delete fd;
  });
}

/// The parent campaign's completed trials and its trained models (read-only).
void load_parent(Campaign& c) {
  const std::string& dir = c.config.parent;
  CampaignStore parent(campaign_db_path(dir), true);
  c.parent_level = std::stoll(parent.meta("level").value_or("1"));
  c.level = c.parent_level + 1;
  const Library library = load_library(campaign_library_path(dir));
  for (TrialRow& t : parent.trials()) {
    if (t.status != trial_status::kCompleted || !t.value) continue;
    if (!t.checkpoint.empty() && fs::exists(t.checkpoint) && t.index >= 0 && size_t(t.index) < library.size())
      c.parent_models.push_back({t.hash, library.archs[size_t(t.index)], t.checkpoint});
    c.parent_completed.push_back(std::move(t));
  }
}
}  // namespace

Campaign open_campaign(const CampaignConfig& config, bool resume) {
  Campaign c;
  c.config = config;
  const std::string dir = config.directory;
  const bool exists = fs::exists(campaign_db_path(dir));
  if (exists && !resume)
    throw ConfigError(config.source + ": error: directory: the campaign directory " + dir +
                      " already holds a campaign; continue it with --resume, or choose another `directory`/`name`");
  bool budget_changed = false;
  std::string old_budget;
  if (exists) {
    const CampaignConfig frozen = load_campaign_config(frozen_config_path(dir));
    // The budget may change on --resume (a finished campaign continues with more trials, Optuna
    // style); everything else must be the campaign's own configuration.
    CampaignConfig same_budget = config;
    same_budget.budget = frozen.budget;
    check_same_campaign(same_budget, frozen);
    budget_changed = config.budget.trials != frozen.budget.trials || config.budget.wall_time != frozen.budget.wall_time;
    old_budget = std::to_string(frozen.budget.trials) + " trials, wall time " + std::to_string(frozen.budget.wall_time) + " s";
    c.resumed = true;
  }
  fs::create_directories(dir);
  c.lock = lock_directory(dir, config.source);
  fs::create_directories(fs::path(dir) / "logs");
  fs::create_directories(fs::path(dir) / "report");
  c.store = std::make_unique<CampaignStore>(campaign_db_path(dir));
  if (budget_changed) {
    write_file_atomic(frozen_config_path(dir), frozen_config_text(config));
    c.store->log_event(-1, "budget", -1,
                       "budget changed on resume: was " + old_budget + ", now " + std::to_string(config.budget.trials) +
                           " trials, wall time " + std::to_string(config.budget.wall_time) + " s");
  }
  if (!config.parent.empty()) load_parent(c);
  if (!c.resumed) {
    write_file_atomic(frozen_config_path(dir), frozen_config_text(config));
    if (config.design_space) {
      const DesignSpaceSource& d = *config.design_space;
      const DesignSpace space = load_design_space(d.file);
      LibraryBuildOptions b;
      b.enumeration = space.enumeration;
      if (d.layers_per_stack) b.enumeration.layers_per_stack = *d.layers_per_stack;
      if (d.heterogeneous_feed_forward) b.enumeration.heterogeneous_feed_forward = *d.heterogeneous_feed_forward;
      if (d.increasing) b.enumeration.increasing = *d.increasing;
      b.sample = uint64_t(d.sample);
      b.neighbors = d.neighbors;
      b.embedding.dim = d.embedding_dim;
      b.seed = config.seed;
      b.progress = false;
      c.library = build_library(space, b);
    } else {
      c.library = load_library(config.library);
    }
    // The campaign's copy starts with no measurements: performances are what this campaign measured.
    for (auto& p : c.library.performances) p.reset();
    save_library(c.library, campaign_library_path(dir));
    const int64_t window = config.scheduler.window > 0 ? config.scheduler.window : 2 * config.workers;
    CampaignStore::Transaction t(*c.store);
    c.store->set_meta("format", "flexnas-campaign 1");
    c.store->set_meta("window", std::to_string(window));
    c.store->set_meta("elapsed_seconds", "0");
    c.store->set_meta("created", std::to_string(unix_now()));
    c.store->set_meta("config", config.to_json().dump());
    c.store->set_meta("level", std::to_string(c.level));
    t.commit();
    c.store->log_event(-1, "created", -1, "campaign " + config.name + " in " + dir);
  } else {
    c.library = load_library(campaign_library_path(dir));
  }
  c.library.rebuild_index();
  return c;
}

std::string parent_trial_kind(int64_t level) { return "level" + std::to_string(level); }

int64_t trial_level(const TrialRow& trial, int64_t campaign_level) {
  if (trial.kind.rfind("level", 0) == 0 && trial.kind.size() > 5) {
    try {
      return std::stoll(trial.kind.substr(5));
    } catch (const std::exception&) {
    }
  }
  return campaign_level;
}

// ---- reports ----

std::string summarize_architecture(const Architecture& arch) {
  std::ostringstream out;
  out << "L" << arch.num_layers();
  std::string last;
  int repeat = 0;
  auto flush = [&] {
    if (repeat == 0) return;
    out << " | " << last;
    if (repeat > 1) out << " x" << repeat;
  };
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const LayerSpec& l = arch.layers[i];
    std::ostringstream s;
    // Funnel pooling before this layer: "pool2 " in front, so a pooled stack reads apart.
    if (arch.pool.active() && arch.pool.stride[i] > 1) s << "pool" << arch.pool.stride[i] << " ";
    s << "h" << l.hidden << " ";
    if (l.head_list.empty()) {
      s << l.op << "-" << l.param << " n" << l.heads;
    } else {
      std::map<std::string, int> counts;
      for (const HeadSpec& h : l.head_list) counts[h.to_string()]++;
      bool first = true;
      for (const auto& [name, n] : counts) {
        s << (first ? "" : "+") << n << "*" << name;
        first = false;
      }
    }
    s << " f";
    for (size_t k = 0; k < l.ffn.size(); ++k) s << (k ? "," : "") << l.ffn[k];
    if (s.str() == last) {
      ++repeat;
    } else {
      flush();
      last = s.str();
      repeat = 1;
    }
  }
  flush();
  return out.str();
}

std::string leaderboard(const std::vector<TrialRow>& trials, const Library& library, int64_t level, int n) {
  std::vector<const TrialRow*> done;
  for (const TrialRow& t : trials)
    if (t.status == trial_status::kCompleted && t.score) done.push_back(&t);
  std::stable_sort(done.begin(), done.end(), [](const TrialRow* a, const TrialRow* b) { return *a->score > *b->score; });
  std::ostringstream out;
  out << std::left << std::setw(5) << "rank" << std::setw(6) << "level" << std::setw(7) << "trial" << std::setw(12)
      << "score" << std::setw(12)
      << "parameters" << std::setw(14) << "hash" << "model dict\n";
  for (int i = 0; i < int(done.size()) && i < n; ++i) {
    const TrialRow& t = *done[size_t(i)];
    std::ostringstream score;
    score << std::setprecision(6) << *t.value;
    out << std::left << std::setw(5) << (i + 1) << std::setw(6) << trial_level(t, level) << std::setw(7) << t.id
        << std::setw(12) << score.str() << std::setw(12)
        << t.parameters << std::setw(14) << t.hash.substr(0, 12)
        << (t.index >= 0 && size_t(t.index) < library.size() ? summarize_architecture(library.archs[size_t(t.index)])
                                                               : std::string("?"))
        << "\n";
  }
  if (done.empty()) out << "(no completed trials)\n";
  return out.str();
}

// ---- the scheduler ----

namespace {

class Scheduler {
 public:
  Scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options)
      : c_(campaign), config_(campaign.config), store_(*campaign.store), pool_(pool), options_(options) {
    window_ = std::stoll(store_.meta("window").value_or("0"));
    if (window_ <= 0) window_ = 2 * config_.workers;
    ordered_ = config_.scheduler.order == "ordered";
    elapsed_before_ = std::stod(store_.meta("elapsed_seconds").value_or("0"));
    taken_over_ = take_over_parent_trials();
    const int64_t taken_over = taken_over_;
    nas::PolicyOptions po;
    po.seed = config_.seed;
    // The budget counts this campaign's own trials, not the ones taken over from the parent.
    po.max_trials = config_.budget.trials > 0 ? config_.budget.trials + taken_over : 0;
    po.max_parameters = config_.objective.max_parameters;
    po.cost_weight = config_.objective.cost_weight;
    nas::BoshnasOptions bo;
    bo.num_init = config_.policy.num_init;
    bo.uncertainty_prob = config_.policy.uncertainty_prob;
    bo.diversity_prob = config_.policy.diversity_prob;
    bo.patience = config_.policy.patience;
    bo.aleatoric_queries = config_.policy.aleatoric_queries;
    bo.stop_on_convergence = config_.policy.stop_on_convergence;
    bo.targets = config_.policy.targets;
    bo.local_parents = config_.policy.local_parents;
    bo.local_neighbours = config_.policy.local_neighbours;
    bo.inputs = config_.policy.inputs;
    nas::EvolutionOptions eo;
    eo.population = config_.policy.population;
    eo.sample_size = config_.policy.sample_size;
    policy_ = nas::make_policy(config_.policy.name, c_.library, po, bo, eo, "policy.name");
    if (config_.evaluator.type == "builtin" && config_.evaluator.builtin.warm_start)
      warm_ = std::make_unique<WarmStartChooser>(config_.evaluator.builtin.warm_threshold,
                                                 config_.evaluator.builtin.transfer_mode);
    busy_.assign(size_t(pool_.size()), -1);
    start_ = last_save_ = std::chrono::steady_clock::now();
    restore();
  }

  int run() {
    int exit_code = 0;
    bool draining = false;
    std::chrono::steady_clock::time_point drain_start;
    std::chrono::steady_clock::time_point last_drain_check;  // epoch: the first pass checks
    for (;;) {
      // A signal the job step lost (see kDrainFileEnv): the batch script's note stands in for it.
      if (!draining && since(last_drain_check) >= 0.5) {
        last_drain_check = std::chrono::steady_clock::now();
        if (const int file_sig = drain_file_signal()) request_stop(file_sig);
      }
      const int sig = stop_signal();
      if (sig && !draining) {
        draining = true;
        draining_ = true;
        drain_start = std::chrono::steady_clock::now();
        exit_code = 128 + sig;
        store_.log_event(-1, "stopping", -1, "signal " + std::to_string(sig) + ": no new trials; waiting up to " +
                                                 std::to_string(int64_t(config_.scheduler.drain_timeout)) +
                                                 " s for " + std::to_string(running()) + " running trials");
        say("stopping (signal " + std::to_string(sig) + "): waiting for " + std::to_string(running()) +
            " running trials");
      }
      if (!draining) {
        fill_proposals();
        dispatch();
      }
      print_progress();
      if (running() == 0) {
        if (draining || (ready_.empty() && exhausted_)) break;
        if (alive_workers() == 0) {
          store_.log_event(-1, "no_workers", -1, "every worker was lost");
          say("every worker was lost; stopping (resume with --resume)");
          exit_code = 1;
          break;
        }
      }
      if (draining && since(drain_start) > config_.scheduler.drain_timeout && !cancelled_) {
        pool_.cancel_all();
        cancelled_ = true;
      }
      std::vector<PoolEvent> events = pool_.wait(0.05);
      if (!events.empty()) {
        // One commit for a batch of results, their observations and the proposals they make due
        // (each commit costs 0.1-0.2 ms, and a freed worker waits for them).
        CampaignStore::Transaction tx(store_);
        for (PoolEvent& e : events) handle(e, draining);
        fill_proposals();
        tx.commit();
      }
      maybe_save_library(false);
    }
    print_progress();
    if (draining) interrupt_rest();
    pool_.shutdown();
    maybe_save_library(true);
    save_elapsed();
    write_report();
    if (draining) {
      store_.log_event(-1, "stopped", -1, "stopped by signal; resume with --resume");
      say("stopped; continue with: flexnas search " + config_.source + " --resume");
    } else if (exit_code == 0) {
      store_.log_event(-1, "finished", -1, summary_line());
      write_finished_file();
      if (!options_.quiet) std::cout << "campaign " << config_.name << " finished: " << summary_line() << "\n\n"
                                     << leaderboard(all_trials(), c_.library, c_.level) << std::flush;
    }
    return exit_code;
  }

 private:
  /// Tells the SLURM batch script that the campaign finished (kFinishedFileEnv): an exit code of 0
  /// from srun alone does not prove that flexnas ran.
  void write_finished_file() const {
    const char* path = std::getenv(kFinishedFileEnv);
    if (!path || !*path) return;
    try {
      write_file_atomic(path, summary_line() + "\n");
    } catch (const std::exception& e) {
      LOG_WARN("cannot write ", path, " (", kFinishedFileEnv, "): ", e.what());
    }
  }

  std::vector<TrialRow> all_trials() const { return std::vector<TrialRow>(trials_.begin(), trials_.end()); }

  void say(const std::string& line) {
    if (!options_.quiet) std::cout << line << std::endl;
  }

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

  /// Hierarchical refinement, at the first start only: the parent's completed trials whose
  /// architecture is in this library become this campaign's first trials (kind "level<N>",
  /// completed, observed before any proposal), so they are not retrained and the policy learns from
  /// them. Returns how many.
  int64_t take_over_parent_trials() {
    if (auto n = store_.meta("parent_taken_over")) return std::stoll(*n);
    CampaignStore::Transaction tx(store_);
    int64_t n = 0;
    if (store_.trials().empty()) {
      for (const TrialRow& p : c_.parent_completed) {
        const int64_t index = c_.library.find(p.hash);
        if (index < 0) continue;
        TrialRow t = p;  // value, metrics, checkpoint, seed, costs, transfer source
        t.id = n;
        t.index = index;
        t.kind = p.kind.rfind("level", 0) == 0 ? p.kind : parent_trial_kind(c_.parent_level);
        t.worker = -1;
        t.score = config_.objective.maximise ? *p.value : -*p.value;
        t.observe_seq = n;  // observed first, in id order (restore() hands them to the policy)
        store_.put_trial(t, "taken_over",
                         "trial " + std::to_string(p.id) + " of the parent campaign " + config_.parent + " (" +
                             t.kind + "), value " + format_value(*p.value));
        c_.library.performances[size_t(index)] = *p.value;
        library_dirty_ = true;
        ++n;
      }
    }
    store_.set_meta("parent_taken_over", std::to_string(n));
    tx.commit();
    if (n > 0) say("taken over from the parent campaign: " + std::to_string(n) + " trained architectures of this library");
    return n;
  }

  /// Rebuilds the policy and the queues from the store (a no-op on a fresh campaign).
  void restore() {
    const int64_t interrupted = store_.interrupt_unfinished("the previous run ended while this trial ran");
    for (TrialRow& t : store_.trials()) trials_.push_back(std::move(t));
    if (trials_.empty()) return;
    // Observation order: ordered mode = the contiguous prefix of final trials in id order;
    // async mode = observe_seq. Everything else is pending (re-run, or buffered when final).
    std::vector<const TrialRow*> observed;
    for (const TrialRow& t : trials_)
      if (t.observe_seq >= 0) observed.push_back(&t);
    std::sort(observed.begin(), observed.end(),
              [](const TrialRow* a, const TrialRow* b) { return a->observe_seq < b->observe_seq; });
    std::vector<nas::TrialRecord> history;
    std::set<int64_t> seen;
    for (const TrialRow* t : observed) {
      nas::TrialRecord r;
      r.index = t->index;
      r.kind = t->kind;
      r.status = t->status == trial_status::kCompleted ? nas::TrialStatus::kCompleted : nas::TrialStatus::kFailed;
      r.score = t->score.value_or(0);
      history.push_back(r);
      seen.insert(t->id);
    }
    for (const TrialRow& t : trials_) {
      if (seen.count(t.id)) continue;
      nas::TrialRecord r;
      r.index = t.index;
      r.kind = t.kind;
      r.status = nas::TrialStatus::kPending;
      history.push_back(r);
      if (is_final(t)) unobserved_.insert(t.id);
      else ready_.push_back(t.id);
    }
    policy_->restore(history);
    observed_ = int64_t(observed.size());
    next_seq_ = observed_;
    next_observe_ = 0;
    while (next_observe_ < int64_t(trials_.size()) && trials_[size_t(next_observe_)].observe_seq >= 0) ++next_observe_;
    for (const TrialRow& t : trials_) by_hash_[t.hash] = t.id;
    if (!c_.resumed) return;
    store_.log_event(-1, "resumed", -1,
                     std::to_string(trials_.size()) + " trials restored, " + std::to_string(observed_) + " observed, " +
                         std::to_string(ready_.size()) + " to re-run (" + std::to_string(interrupted) + " interrupted)");
    say("resumed: " + std::to_string(trials_.size()) + " trials, " + std::to_string(observed_) + " done, " +
        std::to_string(ready_.size()) + " to re-run");
    // A proposal that was due when the previous run stopped comes first; then results finished
    // before the stop but not yet observed (ordered mode) are observed in order.
    if (ordered_) fill_proposals();
    observe_ready();
  }

  double campaign_elapsed() const { return elapsed_before_ + since(start_); }

  void fill_proposals() {
    if (exhausted_ || draining_) return;
    if (config_.budget.wall_time > 0 && campaign_elapsed() >= config_.budget.wall_time) {
      exhausted_ = true;
      store_.log_event(-1, "budget", -1, "wall-time budget of " + std::to_string(config_.budget.wall_time) + " s spent");
      return;
    }
    for (;;) {
      if (ordered_) {
        if (int64_t(trials_.size()) >= observed_ + window_) return;
      } else {
        // Async: propose when a worker would otherwise idle.
        int64_t idle = 0;
        for (int w = 0; w < pool_.size(); ++w) idle += pool_.alive(w) && busy_[size_t(w)] < 0;
        if (int64_t(ready_.size()) >= idle) return;
      }
      const std::optional<nas::Proposal> p = policy_->propose();
      if (!p) {
        exhausted_ = true;
        return;
      }
      TrialRow t;
      t.id = int64_t(trials_.size());
      t.index = p->index;
      t.hash = c_.library.hashes[size_t(p->index)];
      t.kind = p->kind;
      t.seed = trial_seed(config_.seed, t.id);
      t.parameters = policy_->parameters()[size_t(p->index)];
      store_.put_trial(t, "proposed", p->kind + " #" + std::to_string(p->index));
      by_hash_[t.hash] = t.id;
      trials_.push_back(t);
      ready_.push_back(t.id);
    }
  }

  /// Warm start (builtin): the trained neighbour or parent model with the largest transfer overlap
  /// at or above the threshold (launch/warm_start.h). Returns a note for the event log.
  std::string choose_warm_start(const TrialRow& t, TrialTask& task) const {
    if (!warm_) return "";
    // Ordered mode: only trials observed before this one was proposed (ids below k - window + 1,
    // and the taken-over ones), so the source, like the trial, depends only on the seed, not on
    // which other trials happened to finish first.
    const int64_t limit = ordered_ ? std::max(taken_over_, t.id - window_ + 1) : int64_t(trials_.size());
    std::map<std::string, std::string> trained;  // hash -> checkpoint of the trained neighbours
    if (size_t(t.index) < c_.library.neighbors.size()) {
      for (const std::string& h : c_.library.neighbors[size_t(t.index)]) {
        auto it = by_hash_.find(h);
        if (it == by_hash_.end() || it->second >= limit) continue;
        const TrialRow& n = trials_[size_t(it->second)];
        if (n.status == trial_status::kCompleted && !n.checkpoint.empty() && fs::exists(n.checkpoint))
          trained[h] = n.checkpoint;
      }
    }
    const auto choice = warm_->choose(c_.library, t.index, trained, c_.parent_models);
    if (!choice) return "";
    task.warm_start_hash = choice->hash;
    task.warm_start_checkpoint = choice->checkpoint;
    std::ostringstream note;
    note << ", warm start from " << choice->hash.substr(0, 12) << (choice->from_parent ? " (parent campaign)" : "")
         << ", overlap " << std::setprecision(3) << choice->overlap;
    return note.str();
  }

  void dispatch() {
    // Free workers start first; their "started" rows follow in one commit, so the store is off the
    // path from a free worker to its next trial. A kill -9 in the ~0.1 ms between the two leaves
    // those trials "proposed": resume runs them again under the same attempt number.
    std::vector<std::pair<int64_t, std::string>> started;  // trial id, event note
    for (int w = 0; w < pool_.size() && !ready_.empty(); ++w) {
      if (!pool_.alive(w) || busy_[size_t(w)] >= 0) continue;
      const int64_t id = ready_.front();
      ready_.pop_front();
      TrialRow& t = trials_[size_t(id)];
      TrialTask task;
      task.trial_id = id;
      task.attempt = t.attempt + 1;
      task.index = t.index;
      task.hash = t.hash;
      task.arch = nlohmann::json::parse(c_.library.archs[size_t(t.index)].to_canonical_string());
      task.seed = t.seed;
      const std::string warm_note = choose_warm_start(t, task);
      t.attempt = task.attempt;
      t.status = trial_status::kRunning;
      t.worker = pool_.worker_label(w);
      t.start_time = unix_now();
      t.transfer_source = task.warm_start_hash;
      busy_[size_t(w)] = id;
      pool_.start(w, task);
      started.emplace_back(id, "attempt " + std::to_string(t.attempt) + warm_note);
    }
    if (started.empty()) return;
    CampaignStore::Transaction tx(store_);
    for (const auto& [id, note] : started) {
      const TrialRow& t = trials_[size_t(id)];
      store_.put_trial(t, "started", note, t.worker);
    }
    tx.commit();
  }

  void handle(PoolEvent& e, bool draining) {
    const int64_t id = busy_[size_t(e.worker)];
    if (id < 0) return;  // a late message from a worker already given up on
    busy_[size_t(e.worker)] = -1;
    TrialRow& t = trials_[size_t(id)];
    TrialOutcome o = e.outcome;
    if (e.kind == PoolEvent::kLost) {
      o = TrialOutcome();
      o.reason = e.reason;
      store_.log_event(id, "worker_lost", t.worker, e.reason);
      say("worker " + std::to_string(t.worker) + " lost: " + e.reason);
    } else if (o.trial_id != id || o.attempt != t.attempt) {
      return;  // not the attempt we are waiting for
    }
    t.seconds += o.seconds;
    t.cpu_seconds += o.cpu_seconds;
    t.max_rss_kb = std::max(t.max_rss_kb, o.max_rss_kb);
    if (o.ok && o.value) {
      t.status = trial_status::kCompleted;
      t.end_time = unix_now();
      t.value = o.value;
      t.score = config_.objective.maximise ? *o.value : -*o.value;
      t.metrics = o.metrics.dump();
      t.checkpoint = o.checkpoint;
      t.failure_reason.clear();
      c_.library.performances[size_t(t.index)] = *o.value;
      library_dirty_ = true;
      finalize(t, "completed", "value " + format_value(*o.value));
      return;
    }
    if (o.cancelled || (draining && t.attempt <= config_.trial.retries)) {
      // Stopped by the drain (or failed while draining with retries left): re-run on resume.
      t.status = trial_status::kInterrupted;
      t.attempt -= o.cancelled ? 1 : 0;
      if (!o.cancelled) t.failure_reason = o.reason;
      store_.put_trial(t, "interrupted", o.cancelled ? "cancelled by the drain" : o.reason, t.worker);
      return;
    }
    t.failure_reason = o.reason;
    if (t.attempt <= config_.trial.retries) {
      t.status = trial_status::kQueued;
      store_.put_trial(t, "attempt_failed", "attempt " + std::to_string(t.attempt) + ": " + o.reason, t.worker);
      say("trial " + std::to_string(id) + " attempt " + std::to_string(t.attempt) + " failed: " + o.reason +
          "; retrying");
      ready_.push_front(id);
      return;
    }
    t.status = trial_status::kFailed;
    t.end_time = unix_now();
    finalize(t, "failed", "after " + std::to_string(t.attempt) + " attempts: " + o.reason);
  }

  static std::string format_value(double v) {
    std::ostringstream s;
    s << std::setprecision(6) << v;
    return s.str();
  }

  /// Records a final result and hands results to the policy in the configured order.
  void finalize(TrialRow& t, const std::string& event, const std::string& message) {
    if (ordered_) {
      unobserved_.insert(t.id);
      store_.put_trial(t, event, message, t.worker);
      observe_ready();
    } else {
      observe_one(t, event, message);
    }
    progress(t);
  }

  void observe_one(TrialRow& t, const std::string& event, const std::string& message) {
    t.observe_seq = next_seq_++;
    store_.put_trial(t, event, message, t.worker);  // one transaction: the result and its observation
    policy_->observe(t.index, t.status == trial_status::kCompleted ? std::optional<double>(*t.score) : std::nullopt);
    ++observed_;
  }

  void observe_ready() {
    while (next_observe_ < int64_t(trials_.size()) && unobserved_.count(next_observe_)) {
      // While draining, or once the budget stopped the proposals, no proposal can be made:
      // observing past the point where one is due would let a resumed run (or one extended with a
      // larger budget) make that proposal with more observations than an uninterrupted run. The
      // rest stay stored (final, unobserved) and are observed in order on resume.
      if ((draining_ || (exhausted_ && ordered_)) && int64_t(trials_.size()) < observed_ + window_) break;
      TrialRow& t = trials_[size_t(next_observe_)];
      unobserved_.erase(next_observe_);
      t.observe_seq = next_seq_++;
      store_.put_trial(t);
      policy_->observe(t.index, t.status == trial_status::kCompleted ? std::optional<double>(*t.score) : std::nullopt);
      ++observed_;
      ++next_observe_;
      // Proposal k follows exactly k - window + 1 observations, however many results arrived together.
      fill_proposals();
    }
  }

  void progress(const TrialRow& t) {
    if (t.status == trial_status::kCompleted) ++done_now_;
    if (t.status == trial_status::kCompleted && (!best_ || *t.score > *best_->score)) best_ = t;
    if (!best_) {
      for (const TrialRow& r : trials_)
        if (r.status == trial_status::kCompleted && r.score && (!best_ || *r.score > *best_->score)) best_ = r;
    }
    if (options_.quiet || !options_.progress_lines) return;
    // Printed after the next dispatch (print_progress), so "running" counts the trial that took the
    // freed worker.
    std::ostringstream line;
    line << "  [trial " << t.id << " " << t.status
         << (t.status == trial_status::kCompleted ? " " + format_value(*t.value) : ": " + t.failure_reason) << "]";
    pending_progress_.push_back(line.str());
  }

  void print_progress() {
    if (pending_progress_.empty()) {
      // Trials of the builtin evaluator run for minutes: between results, a line every
      // running_line_seconds says what is running and for how long.
      if (options_.quiet || !options_.progress_lines || running() == 0 ||
          since(last_progress_) < options_.running_line_seconds)
        return;
      std::ostringstream line;
      line << summary_line() << " | running:";
      const double now = unix_now();
      for (int64_t id : busy_)
        if (id >= 0) line << " trial " << id << " (" << format_duration(now - trials_[size_t(id)].start_time) << ")";
      std::cout << line.str() << std::endl;
      last_progress_ = std::chrono::steady_clock::now();
      return;
    }
    const std::string summary = summary_line();
    for (const std::string& finished : pending_progress_) std::cout << summary << finished << "\n";
    std::cout << std::flush;
    pending_progress_.clear();
    last_progress_ = std::chrono::steady_clock::now();
  }


  std::string summary_line() const {
    int64_t done = 0, failed = 0, taken_over = 0;
    for (const TrialRow& r : trials_) {
      if (trial_level(r, c_.level) != c_.level) {
        ++taken_over;
        continue;
      }
      done += r.status == trial_status::kCompleted;
      failed += r.status == trial_status::kFailed;
    }
    std::ostringstream s;
    s << "done " << done << ", failed " << failed << ", running " << running();
    if (config_.budget.trials > 0) s << " of " << config_.budget.trials;
    if (taken_over > 0) s << " (+" << taken_over << " from the parent)";
    if (best_) s << " | best " << format_value(*best_->value) << " (trial " << best_->id << ")";
    const double secs = since(start_);
    if (done_now_ > 0 && secs > 0) {
      const double rate = double(done_now_) / secs;
      s << " | " << format_value(rate * 60) << " trials/min";
      if (config_.budget.trials > 0) {
        const int64_t left = config_.budget.trials - done - failed;
        if (left > 0) s << " | ETA " << format_duration(double(left) / rate);
      }
    }
    return s.str();
  }

  void interrupt_rest() {
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

  // Saves the library's performances (and, at most every report_seconds, the report) every
  // library_save_interval seconds from the background job, on a snapshot, so the scheduler goes on
  // handing out trials meanwhile; `force` (the end) waits for it and writes both here.
  void maybe_save_library(bool force) {
    if (force) {
      writer_.wait();
      if (library_dirty_) save_library(c_.library, campaign_library_path(config_.directory));
      library_dirty_ = false;
      return;  // run() records the elapsed time and writes the report next
    }
    if (!library_dirty_ || since(last_save_) < config_.scheduler.library_save_interval) return;
    const bool report_due = since(last_report_) >= options_.report_seconds;
    ReportPages pages;
    if (report_due) pages = report_pages();
    const bool started = writer_.try_start(
        [this, performances = c_.library.performances, pages = std::move(pages)] {
          // Reads the library's fixed parts, which nothing changes while the campaign runs.
          save_library(c_.library, performances, campaign_library_path(config_.directory));
          if (!pages.leaderboard.empty()) write_report_pages(pages);
        });
    if (!started) return;  // the previous save is still being written: next time round
    library_dirty_ = false;
    last_save_ = std::chrono::steady_clock::now();
    if (report_due) last_report_ = last_save_;
    save_elapsed();
  }

  void save_elapsed() { store_.set_meta("elapsed_seconds", std::to_string(campaign_elapsed())); }

  struct ReportPages {
    std::string leaderboard, svg;  // report/leaderboard.txt, report/trials.svg
    std::string pareto, embedding;  // report/pareto.svg, report/embedding.svg
  };
  ReportPages report_pages() const {
    const std::vector<TrialRow> trials = all_trials();
    const std::string& metric = config_.objective.metric;
    const bool maximise = config_.objective.maximise;
    // The library's embeddings never change during a campaign: projected once.
    if (!library_map_) library_map_ = library_map(c_.library.embeddings);
    return {leaderboard(trials, c_.library, c_.level) + "\n" + summary_line() + "\n",
            trials_svg(trials, metric, maximise, c_.level), pareto_svg(trials, metric, maximise),
            embedding_svg(trials, *library_map_, metric, maximise)};
  }
  void write_report_pages(const ReportPages& pages) const {
    const fs::path report = fs::path(config_.directory) / "report";
    write_file_atomic((report / "leaderboard.txt").string(), pages.leaderboard);
    write_file_atomic((report / "trials.svg").string(), pages.svg);
    write_file_atomic((report / "pareto.svg").string(), pages.pareto);
    write_file_atomic((report / "embedding.svg").string(), pages.embedding);
  }
  void write_report() { write_report_pages(report_pages()); }

  Campaign& c_;
  const CampaignConfig& config_;
  CampaignStore& store_;
  WorkerPool& pool_;
  SchedulerOptions options_;
  std::unique_ptr<nas::Policy> policy_;
  std::unique_ptr<WarmStartChooser> warm_;  // builtin evaluator with warm_start only
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
  BackgroundJob writer_;  // last: joined before the members its jobs read are destroyed
};

}  // namespace

int run_scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options) {
  Scheduler s(campaign, pool, options);
  return s.run();
}

// ---- flexnas search ----

int run_search(const std::string& config_path, const SearchOptions& options) {
  CampaignConfig config = load_campaign_config(config_path);
  if (options.workers > 0) config.workers = options.workers;
  if (options.budget_trials >= 0) config.budget.trials = options.budget_trials;
  install_stop_handlers();
  if (mpi_requested()) return run_search_mpi(config, options);
  // Validate everything that can be wrong before any work starts: the evaluator loads its table
  // (located errors) before the campaign directory is created.
  std::shared_ptr<Evaluator> evaluator = make_evaluator(config);
  Campaign campaign = open_campaign(config, options.resume);
  auto pool = make_local_pool(evaluator, int(config.workers));
  SchedulerOptions so;
  so.quiet = options.quiet;
  if (!options.quiet)
    std::cout << "campaign " << config.name << " (" << config.directory << "): policy " << config.policy.name
              << ", evaluator " << config.evaluator.type << ", " << config.workers << " local workers"
              << (campaign.resumed ? ", resumed" : "") << std::endl;
  return run_scheduler(campaign, *pool, so);
}

// ---- flexnas status ----

std::string campaign_status(const std::string& directory) {
  const std::string db = campaign_db_path(directory);
  if (!fs::exists(db)) throw ConfigError("error: " + directory + ": no campaign here (no campaign.db)");
  CampaignStore store(db, true);
  const std::vector<TrialRow> trials = store.trials();
  nlohmann::json config;
  if (auto text = store.meta("config")) config = nlohmann::json::parse(*text);
  const int64_t budget = config.is_object() ? config["budget"].value("trials", int64_t(0)) : 0;
  const int64_t level = std::stoll(store.meta("level").value_or("1"));
  std::map<std::string, int64_t> counts;
  std::map<int64_t, std::pair<int64_t, const TrialRow*>> levels;  // level -> (completed, best)
  const TrialRow* best = nullptr;
  double first_start = 0, last_end = 0;
  int64_t taken_over = 0;
  for (const TrialRow& t : trials) {
    const int64_t l = trial_level(t, level);
    if (t.status == trial_status::kCompleted && t.score) {
      auto& [n, b] = levels[l];
      ++n;
      if (!b || *t.score > *b->score) b = &t;
    }
    if (l != level) {  // taken over from the parent: not this campaign's work
      ++taken_over;
      if (t.status == trial_status::kCompleted && t.score && (!best || *t.score > *best->score)) best = &t;
      continue;
    }
    counts[t.status]++;
    if (t.status == trial_status::kCompleted && t.score && (!best || *t.score > *best->score)) best = &t;
    if (t.start_time > 0 && (first_start == 0 || t.start_time < first_start)) first_start = t.start_time;
    last_end = std::max(last_end, t.end_time);
  }
  std::ostringstream out;
  out << "campaign: " << (config.is_object() ? config.value("name", std::string("?")) : std::string("?")) << " ("
      << directory << ")\n";
  const int64_t done = counts[trial_status::kCompleted], failed = counts[trial_status::kFailed];
  const std::string parent = config.is_object() ? config.value("parent", std::string()) : std::string();
  if (!parent.empty() || level > 1) {
    out << "level: " << level << (parent.empty() ? "" : " (parent campaign: " + parent + ")") << "\n";
    for (const auto& [l, entry] : levels) {
      std::ostringstream v;
      v << std::setprecision(6) << *entry.second->value;
      out << "  level " << l << ": " << entry.first << " trained" << (l == level ? "" : " (taken over)") << ", best "
          << v.str() << " (trial " << entry.second->id << ")\n";
    }
  }
  out << "trials: " << int64_t(trials.size()) - taken_over;
  if (budget > 0) out << " of " << budget;
  out << " | done " << done << " | running " << counts[trial_status::kRunning] << " | queued "
      << counts[trial_status::kQueued] << " | failed " << failed << " | interrupted " << counts[trial_status::kInterrupted]
      << "\n";
  if (best) {
    std::ostringstream v;
    v << std::setprecision(6) << *best->value;
    out << "best: " << v.str() << " (trial " << best->id << ", hash " << best->hash.substr(0, 12) << ", "
        << best->parameters << " parameters)\n";
  } else {
    out << "best: none yet\n";
  }
  const double elapsed = std::stod(store.meta("elapsed_seconds").value_or("0"));
  const double span = last_end > first_start ? last_end - first_start : elapsed;
  if (done + failed > 0 && span > 0) {
    const double rate = double(done + failed) / span;
    out << "rate: " << std::fixed << std::setprecision(1) << rate * 60 << std::defaultfloat << " trials/min";
    if (budget > 0 && budget > done + failed) out << " | ETA " << format_duration(double(budget - done - failed) / rate);
    out << "\n";
  }
  int shown = 0;
  for (auto it = trials.rbegin(); it != trials.rend() && shown < 5; ++it) {
    if (it->status != trial_status::kFailed) continue;
    if (shown++ == 0) out << "recent failures:\n";
    out << "  trial " << it->id << " (" << it->attempt << " attempts): " << it->failure_reason << "\n";
  }
  const std::vector<EventRow> events = store.events(1);
  if (!events.empty()) out << "last event: " << events.back().kind << " " << events.back().message << "\n";
  Library library;
  const std::string lib_path = campaign_library_path(directory);
  if (fs::exists(lib_path)) library = load_library(lib_path);
  out << "\n" << leaderboard(trials, library, level);
  return out.str();
}

std::string campaign_trials_table(const std::string& directory) {
  const std::string db = campaign_db_path(directory);
  if (!fs::exists(db)) throw ConfigError("error: " + directory + ": no campaign here (no campaign.db)");
  CampaignStore store(db, true);
  std::ostringstream out;
  out << "# id index hash status attempts value seed\n";
  for (const TrialRow& t : store.trials()) {
    out << t.id << " " << t.index << " " << t.hash.substr(0, 12) << " " << t.status << " " << t.attempt << " ";
    if (t.value) out << std::setprecision(8) << *t.value;
    else out << "-";
    out << " " << t.seed;
    if (t.status == trial_status::kFailed) out << " " << t.failure_reason;
    out << "\n";
  }
  return out.str();
}

}  // namespace flexnas::launch
