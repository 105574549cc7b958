// campaign.db under load: many commits (enough to pass SQLite's checkpoint threshold several times,
// so the background checkpointer runs), a reader open at the same time (flexnas status), and a
// kill -9 of the writing process: every committed trial and event is there afterwards and the
// database is intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "launch/campaign/campaign_store.h"

namespace fs = std::filesystem;
using namespace flexnas::launch;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("flexnas_store_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TrialRow make_trial(int64_t id, const char* status) {
  TrialRow t;
  t.id = id;
  t.index = id * 7 % 1000;
  t.hash = std::string(64, char('a' + id % 26));
  t.kind = "random";
  t.status = status;
  t.attempt = 1;
  t.worker = int(id % 8) + 1;
  t.seed = 0xfedcba9876543210ull ^ uint64_t(id);  // needs all 64 bits
  t.start_time = 1000.0 + double(id);
  t.end_time = 1000.5 + double(id);
  t.metrics = "{\"score\": " + std::to_string(id) + "}";
  t.value = double(id) / 10;
  t.score = double(id) / 10;
  return t;
}

/// What the scheduler commits per trial: proposed, started, completed (+ observed), each a transaction.
void write_trials(CampaignStore& store, int64_t n) {
  for (int64_t id = 0; id < n; ++id) {
    store.put_trial(make_trial(id, trial_status::kQueued), "proposed", "random #" + std::to_string(id));
    store.put_trial(make_trial(id, trial_status::kRunning), "started", "attempt 1", id % 8 + 1);
    TrialRow done = make_trial(id, trial_status::kCompleted);
    store.put_trial(done, "completed", "value", id % 8 + 1);
    done.observe_seq = id;
    store.put_trial(done);
  }
}

std::string integrity(const fs::path& db_path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr);
  std::string out = sqlite3_step(s) == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0)) : "?";
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

void expect_complete(const fs::path& db, int64_t n) {
  CampaignStore reader(db.string(), true);
  const std::vector<TrialRow> trials = reader.trials();
  ASSERT_EQ(int64_t(trials.size()), n);
  for (int64_t id = 0; id < n; ++id) {
    const TrialRow& t = trials[size_t(id)];
    EXPECT_EQ(t.id, id);
    EXPECT_EQ(t.status, trial_status::kCompleted);
    EXPECT_EQ(t.observe_seq, id);
    EXPECT_EQ(t.seed, 0xfedcba9876543210ull ^ uint64_t(id));
    ASSERT_TRUE(t.value.has_value());
    EXPECT_DOUBLE_EQ(*t.value, double(id) / 10);
  }
  const std::vector<EventRow> events = reader.events();
  ASSERT_EQ(int64_t(events.size()), 3 * n);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].id, int64_t(i) + 1);  // numbered 1, 2, ...
  EXPECT_EQ(reader.events(2).back().kind, "completed");
  EXPECT_EQ(integrity(db), "ok");
}

// 1,500 trials = 6,000 commits, several WAL checkpoints; a second (read-only) connection reads
// while the writer commits, as `flexnas status` does.
TEST(CampaignStoreLoad, ManyCommitsWithAReaderKeepEverything) {
  const fs::path db = scratch("load") / "campaign.db";
  const int64_t n = 1500;
  {
    CampaignStore store(db.string());
    store.set_meta("window", "16");
    write_trials(store, n / 2);
    CampaignStore reader(db.string(), true);
    EXPECT_EQ(int64_t(reader.trials().size()), n / 2);
    write_trials(store, n);  // rewrites the first half, adds the second
    EXPECT_EQ(int64_t(reader.trials().size()), n);
    EXPECT_EQ(reader.meta("window").value_or(""), "16");
  }
  // The events of the first pass are there too.
  CampaignStore reader(db.string(), true);
  EXPECT_EQ(int64_t(reader.events().size()), 3 * (n / 2) + 3 * n);
  EXPECT_EQ(integrity(db), "ok");
}

// A writer killed with SIGKILL (no destructor, the checkpointer thread dies mid-work) loses no
// committed transaction.
TEST(CampaignStoreLoad, KillNineKeepsEveryCommit) {
  const fs::path db = scratch("kill") / "campaign.db";
  const int64_t n = 1200;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    {
      CampaignStore store(db.string());
      write_trials(store, n);
      ::raise(SIGKILL);  // still open: no checkpoint at close, the WAL holds the tail
    }
    ::_exit(3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(fs::exists(db.string() + "-wal"));
  expect_complete(db, n);
  // Reopened for writing (the resume case), it goes on numbering events after the last one.
  {
    CampaignStore store(db.string());
    store.log_event(-1, "resumed", -1, "after kill -9");
  }
  CampaignStore reader(db.string(), true);
  EXPECT_EQ(reader.events().back().id, 3 * n + 1);
  EXPECT_EQ(reader.events().back().kind, "resumed");
}

// A failed statement (here a transaction rolled back by an exception) leaves the cached statements
// usable.
TEST(CampaignStoreLoad, RollbackLeavesTheStoreUsable) {
  const fs::path db = scratch("rollback") / "campaign.db";
  CampaignStore store(db.string());
  try {
    CampaignStore::Transaction t(store);
    store.put_trial(make_trial(0, trial_status::kQueued), "proposed", "x");
    throw std::runtime_error("scheduler error");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(store.trials().empty());
  EXPECT_TRUE(store.events().empty());
  store.put_trial(make_trial(0, trial_status::kQueued), "proposed", "y");
  ASSERT_EQ(store.trials().size(), 1u);
  EXPECT_EQ(store.events().back().message, "y");
}

}  // namespace
