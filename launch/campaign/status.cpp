#include "launch/campaign/status.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "design_space/error.h"
#include "design_space/library.h"
#include "design_space/progress.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch/campaign/leaderboard.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

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
    // Builtin evaluator: where its checkpoints are, to train the winner further (a taken-over best
    // trained in the parent campaign keeps its models there).
    for (const std::string& owner : {directory, parent}) {
      if (owner.empty()) continue;
      const fs::path models = model_dir(owner, best->hash);
      if (!fs::is_directory(models / "pretrained")) continue;
      out << "best model: " << (models / "pretrained").string() << " (pretrained)";
      std::vector<std::string> finetuned;
      for (const auto& entry : fs::directory_iterator(models))
        if (entry.is_directory() && entry.path().filename() != "pretrained") finetuned.push_back(entry.path().string());
      std::sort(finetuned.begin(), finetuned.end());
      for (const std::string& f : finetuned) out << ", " << f << " (fine-tuned)";
      out << "\n";
      break;
    }
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
  // Measured latency and memory (objective.max_latency_ms, max_memory_mb, cost latency).
  std::map<std::string, ProfileRow> profiles;
  int64_t excluded = 0, failed_measurements = 0;
  for (ProfileRow& p : store.profiles()) {
    excluded += p.exclude_seq >= 0;
    failed_measurements += !p.error.empty();
    profiles[p.hash] = std::move(p);
  }
  if (!profiles.empty()) {
    out << "measured: " << profiles.size() << " architectures (latency, memory)";
    if (failed_measurements > 0) out << ", " << failed_measurements << " measurements failed";
    out << " | excluded by measured constraints: " << excluded << " (never trained)\n";
  }
  const std::vector<EventRow> events = store.events(1);
  if (!events.empty()) out << "last event: " << events.back().kind << " " << events.back().message << "\n";
  Library library;
  const std::string lib_path = campaign_library_path(directory);
  if (fs::exists(lib_path)) library = load_library(lib_path);
  out << "\n" << leaderboard(trials, library, level, 10, &profiles);
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
