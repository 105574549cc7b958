#pragma once
// The campaign's store: `campaign.db` (SQLite, WAL journal, one transaction per change), written
// only by the scheduler. Tables:
//   meta(key, value)     settings fixed at the first start (format, window, ...) and run counters
//   trials(...)          one row per trial (TrialRow); attempts and their reasons go to `events`
//   events(...)          the event log: proposed, started, attempt_failed, completed, failed,
//                        interrupted, resumed, worker_lost, stopped, measured, excluded ...
//   profiles(...)        measured latency and memory, one row per architecture (ProfileRow): the
//                        cache that makes each measurement happen once, and the ordered log of
//                        proposals excluded by a measured constraint (replayed on resume)
// A crash (kill -9) leaves the last committed state: completed trials are never lost.
// Cost per commit (the scheduler's critical path): prepared statements are cached, a commit is a
// write into the WAL without fsync (synchronous=NORMAL), and WAL checkpoints (the fsyncs) run on a
// background thread instead of inside every ~1000th commit.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace flexnas::launch {

/// Trial states in the store.
namespace trial_status {
constexpr const char* kQueued = "queued";            // proposed, waiting for a worker
constexpr const char* kRunning = "running";          // an attempt is running
constexpr const char* kCompleted = "completed";
constexpr const char* kFailed = "failed";            // every attempt failed
constexpr const char* kInterrupted = "interrupted";  // stopped by a drain or a crash; re-run on resume
}  // namespace trial_status

struct TrialRow {
  int64_t id = -1;                  // 0, 1, 2, ... in proposal order
  int64_t index = -1;               // library index
  std::string hash;
  std::string kind;                 // what proposed it ("init", "random", ...)
  std::string status = trial_status::kQueued;
  int64_t attempt = 0;              // attempts started
  int64_t worker = -1;              // worker (thread number or MPI rank) of the last attempt
  uint64_t seed = 0;
  double start_time = 0;            // Unix seconds of the last attempt's start (0 = never)
  double end_time = 0;              // Unix seconds of the end (0 = not ended)
  std::string metrics = "{}";       // metrics JSON of the successful attempt
  std::optional<double> value;      // the objective metric as measured
  std::optional<double> score;      // what the policy maximises (sign-adjusted value)
  int64_t parameters = 0;           // estimated parameter count
  double seconds = 0;               // wall time of all attempts
  double cpu_seconds = 0;           // child CPU time of all attempts
  int64_t max_rss_kb = 0;
  std::string checkpoint;           // trained checkpoint directory (builtin)
  std::string transfer_source;      // hash of the warm-start neighbour ("" = none)
  std::string failure_reason;       // reason of the last failed attempt
  int64_t observe_seq = -1;         // position in the order results reached the policy (-1 = not yet)
};

/// One architecture's measurement (objective.max_latency_ms / max_memory_mb / cost latency) and,
/// when a constraint excluded it, the exclusion's place in the policy's log.
struct ProfileRow {
  std::string hash;
  int64_t index = -1;               // library index
  double latency_ms = 0;            // forward pass of one batch (objective.profile)
  double memory_mb = 0;             // peak tensor memory of a training step at that batch
  std::string error;                // non-empty: the measurement failed (then the values mean nothing)
  double seconds = 0;               // wall time of the measurement
  double time = 0;                  // Unix seconds when it was measured
  std::string excluded;             // the violated constraint ("" = not excluded)
  int64_t exclude_seq = -1;         // order among the exclusions (-1 = not excluded)
  int64_t observed_before = -1;     // results the policy had observed when it was excluded
  std::string kind;                 // what proposed it when it was excluded
};

struct EventRow {
  int64_t id = 0;
  double time = 0;
  int64_t trial = -1;
  std::string kind;
  int64_t worker = -1;
  std::string message;
};

class CampaignStore {
 public:
  /// Opens (creating if needed) the database at `path`. `read_only` for `flexnas status`.
  explicit CampaignStore(const std::string& path, bool read_only = false);
  ~CampaignStore();
  CampaignStore(const CampaignStore&) = delete;
  CampaignStore& operator=(const CampaignStore&) = delete;

  const std::string& path() const { return path_; }

  std::optional<std::string> meta(const std::string& key) const;
  void set_meta(const std::string& key, const std::string& value);

  /// Inserts or replaces a trial row (with an event, in one transaction when `event_kind` is set).
  void put_trial(const TrialRow& row, const std::string& event_kind = "", const std::string& message = "",
                 int64_t worker = -1);
  void log_event(int64_t trial, const std::string& kind, int64_t worker, const std::string& message);
  std::vector<TrialRow> trials() const;
  std::optional<TrialRow> trial(int64_t id) const;
  std::vector<EventRow> events(int64_t limit = 0) const;  // oldest first; limit = the last N (0 = all)

  /// Inserts or replaces the profile row of `row.hash`.
  void put_profile(const ProfileRow& row);
  /// Every profile row in measurement order (none for a campaign.db from before the table).
  std::vector<ProfileRow> profiles() const;

  /// Queued and running trials become interrupted (a previous run ended without recording them).
  int64_t interrupt_unfinished(const std::string& why);

  /// RAII transaction (BEGIN IMMEDIATE ... COMMIT; rolled back on exception).
  class Transaction {
   public:
    explicit Transaction(CampaignStore& store);
    ~Transaction();
    void commit();

   private:
    CampaignStore& store_;
    bool done_ = false;
  };

 private:
  class Checkpointer;
  static int wal_hook(void* self, sqlite3* db, const char* name, int pages);
  void exec(const std::string& sql) const;
  sqlite3_stmt* cached(const std::string& sql) const;  // prepared once, reused
  void step(const std::string& sql) const;             // runs a cached statement
  void write_trial(const TrialRow& row);
  void write_event(int64_t trial, const std::string& kind, int64_t worker, const std::string& message);

  std::string path_;
  sqlite3* db_ = nullptr;
  int depth_ = 0;
  mutable std::map<std::string, sqlite3_stmt*> cache_;
  std::unique_ptr<Checkpointer> checkpointer_;  // started at the first full WAL
};

/// Unix time in seconds.
double unix_now();

/// Kind of a trial taken over from a parent campaign of level `level` ("level1", ...); the level of
/// a trial of a campaign at `campaign_level` (its own trials are at that level).
std::string parent_trial_kind(int64_t level);
int64_t trial_level(const TrialRow& trial, int64_t campaign_level);

}  // namespace flexnas::launch
