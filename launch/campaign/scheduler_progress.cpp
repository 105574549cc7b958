// What the scheduler shows and saves while it runs: a line per finished trial, the summary line,
// the library's performances and the report pages (see scheduler.h).
#include "launch/campaign/scheduler.h"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "design_space/atomic_file.h"
#include "design_space/progress.h"
#include "launch/campaign/leaderboard.h"

namespace flexnas::launch::scheduling {
namespace fs = std::filesystem;

std::string Scheduler::format_value(double v) {
  std::ostringstream s;
  s << std::setprecision(6) << v;
  return s.str();
}

void Scheduler::progress(const TrialRow& t) {
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

void Scheduler::print_progress() {
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

std::string Scheduler::summary_line() const {
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
  if (!policy_->state().rejections().empty())
    s << ", excluded " << policy_->state().rejections().size() << " (measured constraints)";
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

void Scheduler::maybe_save_library(bool force) {
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

Scheduler::ReportPages Scheduler::report_pages() const {
  const std::vector<TrialRow> trials = all_trials();
  const std::string& metric = config_.objective.metric;
  const bool maximise = config_.objective.maximise;
  // The library's embeddings never change during a campaign: projected once.
  if (!library_map_) library_map_ = library_map(c_.library.embeddings);
  return {leaderboard(trials, c_.library, c_.level, 10, profiler_ ? &profiler_->rows() : nullptr) + "\n" +
              summary_line() + "\n",
          trials_svg(trials, metric, maximise, c_.level), pareto_svg(trials, metric, maximise, profiler_ ? &profiler_->rows() : nullptr),
          embedding_svg(trials, *library_map_, metric, maximise)};
}

void Scheduler::write_report_pages(const ReportPages& pages) const {
  const fs::path report = fs::path(config_.directory) / "report";
  write_file_atomic((report / "leaderboard.txt").string(), pages.leaderboard);
  write_file_atomic((report / "trials.svg").string(), pages.svg);
  write_file_atomic((report / "pareto.svg").string(), pages.pareto);
  write_file_atomic((report / "embedding.svg").string(), pages.embedding);
}

}  // namespace flexnas::launch::scheduling
