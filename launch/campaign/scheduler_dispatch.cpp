// The scheduler's hand-over: proposals from the policy, dispatch to free workers, results, and the
// order in which results reach the policy (see scheduler.h).
#include "launch/campaign/scheduler.h"

#include <algorithm>

#include "nas/policy.h"

namespace flexnas::launch::scheduling {

void Scheduler::fill_proposals() {
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
    record_exclusions();
    if (!p) {
      exhausted_ = true;
      const nas::SearchState& state = policy_->state();
      if (state.num_open() == 0 && !state.rejections().empty()) {
        // Said once: the library ran out because the measured constraints excluded the rest.
        const std::string why = "no architecture left to propose: " + std::to_string(state.rejections().size()) +
                                " excluded by the measured constraints, " + std::to_string(state.proposals()) + " proposed";
        store_.log_event(-1, "exhausted", -1, why);
        say(why);
      }
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

void Scheduler::record_exclusions() {
  const std::vector<nas::TrialRecord>& excluded = policy_->state().rejections();
  for (; recorded_exclusions_ < excluded.size(); ++recorded_exclusions_)
    profiler_->record_exclusion(excluded[recorded_exclusions_], int64_t(recorded_exclusions_));
}

void Scheduler::dispatch() {
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

void Scheduler::handle(PoolEvent& e, bool draining) {
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

void Scheduler::finalize(TrialRow& t, const std::string& event, const std::string& message) {
  if (ordered_) {
    unobserved_.insert(t.id);
    store_.put_trial(t, event, message, t.worker);
    observe_ready();
  } else {
    observe_one(t, event, message);
  }
  progress(t);
}

void Scheduler::observe_one(TrialRow& t, const std::string& event, const std::string& message) {
  t.observe_seq = next_seq_++;
  store_.put_trial(t, event, message, t.worker);  // one transaction: the result and its observation
  policy_->observe(t.index, t.status == trial_status::kCompleted ? std::optional<double>(*t.score) : std::nullopt);
  ++observed_;
}

void Scheduler::observe_ready() {
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

}  // namespace flexnas::launch::scheduling
