// The scheduler and earlier work: the parent campaign's trials taken over at the first start, and the
// trained model each new trial warm-starts from (see scheduler.h).
#include "launch/campaign/scheduler.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>

namespace flexnas::launch::scheduling {
namespace fs = std::filesystem;

int64_t Scheduler::take_over_parent_trials() {
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

std::string Scheduler::choose_warm_start(const TrialRow& t, TrialTask& task) const {
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

}  // namespace flexnas::launch::scheduling
