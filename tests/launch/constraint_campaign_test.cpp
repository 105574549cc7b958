// Latency and memory as campaign constraints and objectives (issue 18): located configuration
// errors; a campaign with tight objective.max_latency_ms / max_memory_mb never trains an excluded
// architecture, measures each architecture once, counts only trained trials against the budget,
// shows the measurements in status and the leaderboard; a stop (SIGTERM drain, or kill -9 of the
// real executable) and --resume re-propose exactly as an uninterrupted run. The builtin evaluator
// runs tests/launch/fake_flexnas.sh, whose `model profile` derives latency and memory from the
// architecture alone, so every run measures the same values.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "design_space/atomic_file.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch_test_support.h"

namespace fs = std::filesystem;
using namespace flexnas;
using namespace flexnas::launch;
using namespace flexnas::launch::test_support;

namespace {

constexpr const char* kTight = "max_latency_ms: 50, max_memory_mb: 800";

std::string yaml(const std::string& policy, int64_t trials, const std::string& objective = kTight) {
  return "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: score, " + objective + "}\npolicy: " + policy +
         "\nbudget: {trials: " + std::to_string(trials) + "}\nseed: 11\nworkers: 2\nscheduler: {window: 4, drain_timeout: 20}\n"
         "evaluator: {type: builtin, executable: " + FAKE_FLEXNAS + ", tokenizer: " + kSample + ", corpus: " + kSample +
         ", steps: 10, warm_start: false}\n";
}

const std::string kEvolution = "{name: evolution, population: 5, sample_size: 2}";

std::string config_error(const std::string& objective) {
  const fs::path dir = temp_dir("bad");
  try {
    write_config(dir, "library: " + sample_library() + "\nobjective: " + objective + "\nevaluator: {type: table, table: " +
                          kSample + "}\n");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

int run(const CampaignConfig& config, bool resume, int64_t stop_at = -1, uint64_t scramble = 1) {
  auto evaluator = std::make_shared<ScrambledEvaluator>(make_evaluator(config), scramble, stop_at);
  Campaign campaign = open_campaign(config, resume);
  auto pool = make_local_pool(evaluator, int(config.workers));
  SchedulerOptions so;
  so.quiet = true;
  const int code = run_scheduler(campaign, *pool, so);
  clear_stop();
  return code;
}

std::vector<std::string> trial_signature(const std::string& directory) {
  CampaignStore store(campaign_db_path(directory), true);
  std::vector<std::string> out;
  for (const TrialRow& t : store.trials())
    out.push_back(std::to_string(t.id) + " " + t.kind + " " + std::to_string(t.index) + " " + t.status + " " +
                  (t.value ? std::to_string(*t.value) : "-"));
  return out;
}

/// The exclusions in order: index, what proposed it, observations before it, why.
std::vector<std::string> exclusion_signature(const std::string& directory) {
  CampaignStore store(campaign_db_path(directory), true);
  std::map<int64_t, std::string> ordered;
  for (const ProfileRow& p : store.profiles())
    if (p.exclude_seq >= 0)
      ordered[p.exclude_seq] = std::to_string(p.index) + " " + p.kind + " " + std::to_string(p.observed_before) + " " + p.excluded;
  std::vector<std::string> out;
  for (const auto& [seq, s] : ordered) out.push_back(s);
  return out;
}

/// Lines of the fake profiler's log (one per measurement).
std::vector<std::string> log_lines(const fs::path& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST(ConstraintConfig, EachMistakeIsLocatedWithWhatIsAllowed) {
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: -1}")
                .find("campaign.yaml:2:43: error: objective.max_latency_ms: expected a non-negative number of "
                      "milliseconds (0 = none), got -1"),
            std::string::npos)
      << config_error("{metric: glue, max_latency_ms: -1}");
  EXPECT_NE(config_error("{metric: glue, max_memory_mb: -5}")
                .find("error: objective.max_memory_mb: expected a non-negative number of MiB (0 = none), got -5"),
            std::string::npos)
      << config_error("{metric: glue, max_memory_mb: -5}");
  EXPECT_NE(config_error("{metric: glue, max_memory_mb: lots}").find("objective.max_memory_mb"), std::string::npos);
  EXPECT_NE(config_error("{metric: glue, cost: energy}")
                .find("campaign.yaml:2:33: error: objective.cost: unknown value 'energy'; allowed: parameters, flops, latency"),
            std::string::npos)
      << config_error("{metric: glue, cost: energy}");
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: 5, profile: {seq_len: 2}}")
                .find("error: objective.profile.seq_len: expected an integer in 3..514, got 2"),
            std::string::npos)
      << config_error("{metric: glue, max_latency_ms: 5, profile: {seq_len: 2}}");
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: 5, profile: {seq_len: 1024}}")
                .find("objective.profile.seq_len: expected an integer in 3..514 (the models' max positions), got 1024"),
            std::string::npos);
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: 5, profile: {batch: 4}}")
                .find("objective.profile.batch: unknown key 'batch' (expected one of: batch_size, repeats, seq_len, "
                      "threads, vocab_size)"),
            std::string::npos)
      << config_error("{metric: glue, max_latency_ms: 5, profile: {batch: 4}}");
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: 5, profile: {batch_size: 0}}")
                .find("objective.profile.batch_size: expected a positive integer, got 0"),
            std::string::npos);
  EXPECT_NE(config_error("{metric: glue, max_latency_ms: 5, profile: 128}").find("objective.profile: expected a map"),
            std::string::npos);
}

TEST(ConstraintConfig, DefaultsAndFrozenCopy) {
  const fs::path dir = temp_dir("defaults");
  // Without the new keys the frozen configuration is unchanged (older campaigns resume).
  const CampaignConfig plain = write_config(dir / "a", yaml("random", 4, "cost_weight: 0"));
  EXPECT_FALSE(plain.objective.measured());
  EXPECT_FALSE(plain.to_json()["objective"].contains("profile"));
  EXPECT_FALSE(plain.to_json()["objective"].contains("cost"));
  const CampaignConfig c =
      write_config(dir / "b", yaml("random", 4, "cost: latency, cost_weight: 0.2, max_memory_mb: 900, profile: {seq_len: 64}"));
  EXPECT_TRUE(c.objective.measured());
  EXPECT_EQ(c.objective.cost, nas::CostKind::kLatency);
  EXPECT_EQ(c.objective.profile.seq_len, 64);
  EXPECT_EQ(c.objective.profile.batch_size, models::ProfileOptions{}.batch_size);
  EXPECT_EQ(c.objective.profile.threads, 1);
  const std::string frozen = (dir / "frozen.yaml").string();
  write_file_atomic(frozen, frozen_config_text(c));
  EXPECT_EQ(load_campaign_config(frozen).to_json(true), c.to_json(true));
  EXPECT_EQ(c.to_json()["objective"]["cost"], "latency");
  EXPECT_EQ(c.to_json()["objective"]["profile"]["seq_len"], 64);
}

TEST(ConstraintCampaign, ExcludedArchitecturesAreNeverTrainedAndTheBudgetCountsTrials) {
  const fs::path dir = temp_dir("tight");
  const fs::path log = dir / "profile.log";
  setenv("FAKE_PROFILE_LOG", log.c_str(), 1);
  const CampaignConfig c = write_config(dir, yaml("random", 12));
  ASSERT_EQ(run(c, false), 0);
  unsetenv("FAKE_PROFILE_LOG");
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 12u);  // the budget counts trained trials only
  std::map<std::string, ProfileRow> profiles;
  for (const ProfileRow& p : store.profiles()) profiles[p.hash] = p;
  std::set<std::string> trained;
  for (const TrialRow& t : trials) {
    EXPECT_EQ(t.status, trial_status::kCompleted) << t.id << " " << t.failure_reason;
    ASSERT_TRUE(profiles.count(t.hash)) << "trial " << t.id << " was not measured";
    const ProfileRow& p = profiles[t.hash];
    EXPECT_TRUE(p.error.empty());
    EXPECT_LE(p.latency_ms, 50) << t.id;
    EXPECT_LE(p.memory_mb, 800) << t.id;
    EXPECT_EQ(p.exclude_seq, -1);
    trained.insert(t.hash);
  }
  int64_t excluded = 0;
  for (const auto& [hash, p] : profiles) {
    if (p.exclude_seq < 0) continue;
    ++excluded;
    EXPECT_TRUE(p.latency_ms > 50 || p.memory_mb > 800) << p.excluded;
    EXPECT_NE(p.excluded.find(p.latency_ms > 50 ? "ms > max_latency_ms 50" : "MiB > max_memory_mb 800"), std::string::npos)
        << p.excluded;
    EXPECT_FALSE(trained.count(hash));
    EXPECT_FALSE(fs::exists(model_dir(c.directory, hash))) << "excluded " << hash << " was trained";
  }
  EXPECT_GT(excluded, 0);
  // Measured once each: the profiler ran once per stored row, for trials and exclusions only.
  const auto lines = log_lines(log);
  EXPECT_EQ(lines.size(), profiles.size());
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()).size(), lines.size());
  EXPECT_EQ(int64_t(profiles.size()), 12 + excluded);
  // status and the leaderboard show the measurements.
  const std::string status = campaign_status(c.directory);
  EXPECT_NE(status.find("measured: " + std::to_string(profiles.size()) + " architectures (latency, memory) | excluded by "
                        "measured constraints: " + std::to_string(excluded) + " (never trained)"),
            std::string::npos)
      << status;
  EXPECT_NE(status.find("latency ms  memory MiB"), std::string::npos) << status;
  const std::string board = read_file((fs::path(c.directory) / "report" / "leaderboard.txt").string());
  EXPECT_NE(board.find("latency ms"), std::string::npos) << board;
  EXPECT_NE(board.find("excluded " + std::to_string(excluded) + " (measured constraints)"), std::string::npos) << board;
}

TEST(ConstraintCampaign, SigtermDrainThenResumeEqualsUninterrupted) {
  const fs::path full = temp_dir("full"), cut = temp_dir("cut");
  ASSERT_EQ(run(write_config(full, yaml(kEvolution, 16)), false, -1, 3), 0);
  const fs::path log = cut / "profile.log";
  setenv("FAKE_PROFILE_LOG", log.c_str(), 1);
  const CampaignConfig c = write_config(cut, yaml(kEvolution, 16));
  ASSERT_EQ(run(c, false, /*stop_at=*/7, 4), 128 + SIGTERM);
  EXPECT_LT(trial_signature(c.directory).size(), 16u);
  ASSERT_EQ(run(c, true, -1, 5), 0);
  unsetenv("FAKE_PROFILE_LOG");
  EXPECT_EQ(trial_signature((full / "c").string()), trial_signature(c.directory));
  const auto excl = exclusion_signature(c.directory);
  EXPECT_FALSE(excl.empty());
  EXPECT_EQ(exclusion_signature((full / "c").string()), excl);
  // Nothing measured twice across the stop.
  const auto lines = log_lines(log);
  EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()).size(), lines.size());
}

// cost: latency measures every proposal (no constraint: nothing is excluded) and the leaderboard
// shows each trial's latency.
TEST(ConstraintCampaign, CostLatencyMeasuresEveryTrial) {
  const fs::path dir = temp_dir("cost");
  const CampaignConfig c = write_config(dir, yaml(kEvolution, 10, "cost: latency, cost_weight: 0.3"));
  ASSERT_EQ(run(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto profiles = store.profiles();
  EXPECT_EQ(profiles.size(), 10u);
  for (const ProfileRow& p : profiles) EXPECT_EQ(p.exclude_seq, -1);
  EXPECT_EQ(store.trials().size(), 10u);
}

// A constraint nothing meets: every architecture is measured once and excluded, none is trained,
// and the campaign finishes (exit 0) saying why.
TEST(ConstraintCampaign, AConstraintNothingMeetsExcludesTheWholeLibrary) {
  const fs::path dir = temp_dir("none");
  const CampaignConfig c = write_config(dir, yaml("random", 10, "max_latency_ms: 0.1"));
  ASSERT_EQ(run(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  EXPECT_TRUE(store.trials().empty());
  const auto profiles = store.profiles();
  EXPECT_EQ(profiles.size(), load_library(sample_library()).size());
  for (const ProfileRow& p : profiles) EXPECT_GE(p.exclude_seq, 0);
  bool said = false;
  for (const EventRow& e : store.events())
    said = said || (e.kind == "exhausted" && e.message == "no architecture left to propose: " +
                                                               std::to_string(profiles.size()) +
                                                               " excluded by the measured constraints, 0 proposed");
  EXPECT_TRUE(said);
  EXPECT_FALSE(fs::exists(fs::path(c.directory) / "models"));
}

// ---- the real executable: kill -9 mid-campaign, then --resume ----

TEST(ConstraintCampaign, KillNineThenResumeReproposesExactly) {
  const fs::path full = temp_dir("exe_full"), cut = temp_dir("exe_cut");
  ASSERT_EQ(run(write_config(full, yaml(kEvolution, 16)), false), 0);
  write_config(cut, yaml(kEvolution, 16));
  const std::string yaml_path = (cut / "campaign.yaml").string(), cdir = (cut / "c").string();
  setenv("FAKE_SLEEP", "0.15", 1);  // trials long enough to be killed in the middle
  const pid_t pid = spawn_logged(FLEXNAS_BINARY, {"search", yaml_path}, (cut / "log1").string());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_completed(cdir) < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGKILL);
  wait_exit(pid);
  unsetenv("FAKE_SLEEP");
  ASSERT_GE(count_completed(cdir), 5);
  ASSERT_LT(count_completed(cdir), 16) << "the campaign finished before the kill";
  EXPECT_EQ(wait_exit(spawn_logged(FLEXNAS_BINARY, {"search", yaml_path, "--resume"}, (cut / "log2").string())), 0)
      << read_file((cut / "log2").string());
  EXPECT_EQ(trial_signature((full / "c").string()), trial_signature(cdir));
  EXPECT_EQ(exclusion_signature((full / "c").string()), exclusion_signature(cdir));
}
