#include "launch/campaign/campaign.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "design_space/atomic_file.h"
#include "design_space/design_space.h"
#include "design_space/error.h"
#include "models/op_catalog.h"
#include "nas/policy.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

uint64_t trial_seed(uint64_t campaign_seed, int64_t trial_id) {
  return nas::derive_seed(campaign_seed, 0x7121a15eedull, uint64_t(trial_id));
}

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
      const DesignSpace space = load_design_space(d.file, models::op_catalog());
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
      LibraryLoadOptions checked;
      checked.ops = &models::op_catalog();  // a user's library: its design-space ops are checked too
      c.library = load_library(config.library, checked);
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

}  // namespace flexnas::launch
