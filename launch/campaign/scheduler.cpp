// The scheduler's main loop, its construction (the policy from the campaign's configuration) and
// restoring its queues from the store on resume (see scheduler.h).
#include "launch/campaign/scheduler.h"

#include <algorithm>
#include <iostream>
#include <limits>

#include "launch/campaign/leaderboard.h"
#include "nas/boshnas.h"
#include "nas/policy.h"

namespace flexnas::launch {
namespace scheduling {

Scheduler::Scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options)
    : c_(campaign), config_(campaign.config), store_(*campaign.store), pool_(pool), options_(options) {
  window_ = std::stoll(store_.meta("window").value_or("0"));
  if (window_ <= 0) window_ = 2 * config_.workers;
  ordered_ = config_.scheduler.order == SchedulerOrder::kOrdered;
  elapsed_before_ = std::stod(store_.meta("elapsed_seconds").value_or("0"));
  taken_over_ = take_over_parent_trials();
  const int64_t taken_over = taken_over_;
  nas::PolicyOptions po;
  po.seed = config_.seed;
  // The budget counts this campaign's own trials, not the ones taken over from the parent.
  po.max_trials = config_.budget.trials > 0 ? config_.budget.trials + taken_over : 0;
  po.max_parameters = config_.objective.max_parameters;
  po.cost_weight = config_.objective.cost_weight;
  po.cost_kind = config_.objective.cost;
  po.max_latency_ms = config_.objective.max_latency_ms;
  po.max_memory_mb = config_.objective.max_memory_mb;
  policy_ = nas::make_policy(config_.policy.name, c_.library, po, config_.policy.boshnas, config_.policy.evolution,
                             config_.policy.pareto, config_.policy.nsga2);
  if (policy_->needs_measurement()) {
    // Latency and memory are measured when a proposal needs them, once per architecture (cached in
    // campaign.db); the policy excludes what violates a constraint and proposes again.
    profiler_ = std::make_unique<ArchitectureProfiler>(config_, store_, c_.library, options_.quiet);
    policy_->set_measure([this](int64_t index) { return profiler_->measure(index); });
  }
  if (config_.evaluator.type == EvaluatorType::kBuiltin && config_.evaluator.builtin.warm_start)
    warm_ = std::make_unique<WarmStartChooser>(config_.evaluator.builtin.warm_threshold,
                                               config_.evaluator.builtin.transfer_mode);
  busy_.assign(size_t(pool_.size()), -1);
  start_ = last_save_ = std::chrono::steady_clock::now();
  restore();
}

Scheduler::~Scheduler() = default;

int Scheduler::run() {
  int exit_code = 0;
  for (;;) {
    check_stop(exit_code);
    if (!draining_) {
      fill_proposals();
      dispatch();
    }
    print_progress();
    if (running() == 0) {
      if (draining_ || (ready_.empty() && exhausted_)) break;
      if (alive_workers() == 0) {
        store_.log_event(-1, "no_workers", -1, "every worker was lost");
        say("every worker was lost; stopping (resume with --resume)");
        exit_code = 1;
        break;
      }
    }
    cancel_after_drain_timeout();
    std::vector<PoolEvent> events = pool_.wait(0.05);
    if (!events.empty()) {
      // One commit for a batch of results, their observations and the proposals they make due
      // (each commit costs 0.1-0.2 ms, and a freed worker waits for them).
      CampaignStore::Transaction tx(store_);
      for (PoolEvent& e : events) handle(e, draining_);
      fill_proposals();
      tx.commit();
    }
    maybe_save_library(false);
  }
  print_progress();
  if (draining_) interrupt_rest();
  pool_.shutdown();
  maybe_save_library(true);
  save_elapsed();
  write_report();
  if (draining_) {
    store_.log_event(-1, "stopped", -1, "stopped by signal; resume with --resume");
    say("stopped; continue with: flexnas search " + config_.source + " --resume");
  } else if (exit_code == 0) {
    store_.log_event(-1, "finished", -1, summary_line());
    write_finished_file();
    if (!options_.quiet) std::cout << "campaign " << config_.name << " finished: " << summary_line() << "\n\n"
                                   << leaderboard(all_trials(), c_.library, c_.level, 10, profiler_ ? &profiler_->rows() : nullptr)
                                   << std::flush;
  }
  return exit_code;
}

void Scheduler::restore() {
  const int64_t interrupted = store_.interrupt_unfinished("the previous run ended while this trial ran");
  for (TrialRow& t : store_.trials()) trials_.push_back(std::move(t));
  const std::vector<const ProfileRow*> exclusions =
      profiler_ ? profiler_->exclusions() : std::vector<const ProfileRow*>();
  if (trials_.empty() && exclusions.empty()) return;
  // Observation order: ordered mode = the contiguous prefix of final trials in id order;
  // async mode = observe_seq. Everything else is pending (re-run, or buffered when final).
  std::vector<const TrialRow*> observed;
  for (const TrialRow& t : trials_)
    if (t.observe_seq >= 0) observed.push_back(&t);
  std::sort(observed.begin(), observed.end(),
            [](const TrialRow* a, const TrialRow* b) { return a->observe_seq < b->observe_seq; });
  std::vector<nas::TrialRecord> history;
  std::set<int64_t> seen;
  auto measured = [this](const std::string& hash) {
    const ProfileRow* row = profiler_ ? profiler_->find(hash) : nullptr;
    return row ? std::optional<nas::Measurement>(to_measurement(*row)) : std::nullopt;
  };
  // Exclusions by measured constraints go back in their place: after the observations the policy
  // had made when it excluded them.
  size_t next_exclusion = 0;
  auto replay_exclusions = [&](int64_t observed_so_far) {
    for (; next_exclusion < exclusions.size() && exclusions[next_exclusion]->observed_before <= observed_so_far;
         ++next_exclusion) {
      const ProfileRow& e = *exclusions[next_exclusion];
      nas::TrialRecord r;
      r.index = e.index;
      r.kind = e.kind;
      r.status = nas::TrialStatus::kExcluded;
      r.measured = to_measurement(e);
      r.observed_before = e.observed_before;
      r.reason = e.excluded;
      history.push_back(r);
    }
  };
  for (const TrialRow* t : observed) {
    replay_exclusions(int64_t(seen.size()));
    nas::TrialRecord r;
    r.index = t->index;
    r.kind = t->kind;
    r.status = t->status == trial_status::kCompleted ? nas::TrialStatus::kCompleted : nas::TrialStatus::kFailed;
    r.score = t->score.value_or(0);
    r.measured = measured(t->hash);
    history.push_back(r);
    seen.insert(t->id);
  }
  replay_exclusions(std::numeric_limits<int64_t>::max());
  recorded_exclusions_ = exclusions.size();
  for (const TrialRow& t : trials_) {
    if (seen.count(t.id)) continue;
    nas::TrialRecord r;
    r.index = t.index;
    r.kind = t.kind;
    r.status = nas::TrialStatus::kPending;
    r.measured = measured(t.hash);
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
      std::to_string(ready_.size()) + " to re-run" +
      (exclusions.empty() ? "" : ", " + std::to_string(exclusions.size()) + " excluded by measured constraints"));
  // A proposal that was due when the previous run stopped comes first; then results finished
  // before the stop but not yet observed (ordered mode) are observed in order.
  if (ordered_) fill_proposals();
  observe_ready();
}

void Scheduler::say(const std::string& line) {
  if (!options_.quiet) std::cout << line << std::endl;
}

}  // namespace scheduling

int run_scheduler(Campaign& campaign, WorkerPool& pool, const SchedulerOptions& options) {
  scheduling::Scheduler s(campaign, pool, options);
  return s.run();
}

}  // namespace flexnas::launch
