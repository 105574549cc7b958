#include "launch/campaign/campaign_store.h"

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "design_space/error.h"

namespace flexnas::launch {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

sqlite3_stmt* prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), int(sql.size()), &stmt, nullptr) != SQLITE_OK)
    throw Error(std::string("campaign.db: ") + sqlite3_errmsg(db) + " in: " + sql);
  return stmt;
}

/// A prepared statement: owned (finalized on scope exit) or borrowed from the store's cache
/// (reset and unbound on scope exit, so it holds no read transaction and can be reused).
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db), stmt_(prepare(db, sql)), owned_(true) {}
  Statement(sqlite3* db, sqlite3_stmt* cached) : db_(db), stmt_(cached), owned_(false) {}
  ~Statement() {
    if (owned_) {
      sqlite3_finalize(stmt_);
    } else {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void bind(int i, const std::string& v) { sqlite3_bind_text(stmt_, i, v.c_str(), int(v.size()), SQLITE_TRANSIENT); }
  void bind(int i, const std::optional<double>& v) {
    if (v) sqlite3_bind_double(stmt_, i, *v);
    else sqlite3_bind_null(stmt_, i);
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(std::string("campaign.db: ") + sqlite3_errmsg(db_));
  }
  int64_t i64(int c) const { return sqlite3_column_int64(stmt_, c); }
  double f64(int c) const { return sqlite3_column_double(stmt_, c); }
  std::optional<double> opt(int c) const {
    if (sqlite3_column_type(stmt_, c) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(stmt_, c);
  }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(stmt_, c);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool owned_ = true;
};

constexpr const char* kTrialColumns =
    "id, library_index, hash, kind, status, attempt, worker, seed, start_time, end_time, metrics, value, score, "
    "parameters, seconds, cpu_seconds, max_rss_kb, checkpoint, transfer_source, failure_reason, observe_seq";

TrialRow read_trial(const Statement& s) {
  TrialRow r;
  r.id = s.i64(0);
  r.index = s.i64(1);
  r.hash = s.text(2);
  r.kind = s.text(3);
  r.status = s.text(4);
  r.attempt = s.i64(5);
  r.worker = s.i64(6);
  r.seed = uint64_t(std::stoull(s.text(7)));
  r.start_time = s.f64(8);
  r.end_time = s.f64(9);
  r.metrics = s.text(10);
  r.value = s.opt(11);
  r.score = s.opt(12);
  r.parameters = s.i64(13);
  r.seconds = s.f64(14);
  r.cpu_seconds = s.f64(15);
  r.max_rss_kb = s.i64(16);
  r.checkpoint = s.text(17);
  r.transfer_source = s.text(18);
  r.failure_reason = s.text(19);
  r.observe_seq = s.i64(20);
  return r;
}

}  // namespace

/// Checkpoints of the WAL into campaign.db, on a thread of their own. A checkpoint is the only
/// place where SQLite fsyncs under synchronous=NORMAL (a commit is a write into the WAL); run
/// inline, every ~1000 pages one commit of the scheduler would stall for the fsyncs (10-30 ms seen
/// on the build VM, up to 270 ms under load) while results wait. A PASSIVE checkpoint from another
/// connection never blocks the writer; the WAL is restarted by the next commit after it.
class CampaignStore::Checkpointer {
 public:
  explicit Checkpointer(const std::string& path) : thread_([this, path] { run(path); }) {}
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void request() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_ = true;
    }
    cv_.notify_one();
  }

 private:
  void run(const std::string& path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return;  // the WAL then only grows until the store is closed (which checkpoints): not fatal
    }
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return stop_ || pending_; });
        if (stop_) break;
        pending_ = false;
      }
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);  // BUSY: next time
    }
    sqlite3_close(db);
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false, pending_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

namespace {
constexpr int kCheckpointPages = 1000;  // SQLite's own auto-checkpoint threshold
}

int CampaignStore::wal_hook(void* self, sqlite3*, const char*, int pages) {
  auto* store = static_cast<CampaignStore*>(self);
  if (pages >= kCheckpointPages) {
    if (!store->checkpointer_) store->checkpointer_ = std::make_unique<Checkpointer>(store->path_);
    store->checkpointer_->request();
  }
  return SQLITE_OK;
}

CampaignStore::CampaignStore(const std::string& path, bool read_only) : path_(path) {
  const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("cannot open campaign database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  if (read_only) return;
  // Durability: WAL with synchronous=NORMAL. A commit is a write() into campaign.db-wal, no fsync:
  // it survives a crash or a kill -9 of the process (the kernel has the data), so every committed
  // result is kept; only a power loss or an OS crash may lose the last commits, never corrupting the
  // database. synchronous=FULL would fsync every commit (several per trial) for that last case only.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  // Replaces SQLite's inline auto-checkpoint with the background Checkpointer.
  sqlite3_wal_hook(db_, &CampaignStore::wal_hook, this);
  exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS trials (id INTEGER PRIMARY KEY, library_index INTEGER NOT NULL, hash TEXT NOT NULL, "
      "kind TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL, worker INTEGER NOT NULL, seed TEXT NOT NULL, "
      "start_time REAL NOT NULL, end_time REAL NOT NULL, metrics TEXT NOT NULL, value REAL, score REAL, "
      "parameters INTEGER NOT NULL, seconds REAL NOT NULL, cpu_seconds REAL NOT NULL, max_rss_kb INTEGER NOT NULL, "
      "checkpoint TEXT NOT NULL, transfer_source TEXT NOT NULL, failure_reason TEXT NOT NULL, "
      "observe_seq INTEGER NOT NULL)");
  // Events are never deleted, so a plain INTEGER PRIMARY KEY numbers them like AUTOINCREMENT did,
  // without a write to sqlite_sequence in every commit (databases created before keep AUTOINCREMENT).
  exec(
      "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, time REAL NOT NULL, trial INTEGER NOT "
      "NULL, kind TEXT NOT NULL, worker INTEGER NOT NULL, message TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS profiles (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, library_index INTEGER "
      "NOT NULL, latency_ms REAL NOT NULL, memory_mb REAL NOT NULL, error TEXT NOT NULL, seconds REAL NOT NULL, "
      "time REAL NOT NULL, exclusion TEXT NOT NULL, exclude_seq INTEGER NOT NULL, observed_before INTEGER NOT NULL, "
      "kind TEXT NOT NULL)");
}

CampaignStore::~CampaignStore() {
  checkpointer_.reset();  // joins the thread before the last connection closes (and checkpoints)
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

sqlite3_stmt* CampaignStore::cached(const std::string& sql) const {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return it->second;
  return cache_.emplace(sql, prepare(db_, sql)).first->second;
}

void CampaignStore::step(const std::string& sql) const {
  Statement s(db_, cached(sql));
  while (s.step()) {
  }
}

void CampaignStore::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error(path_ + ": " + msg + " in: " + sql);
  }
}

CampaignStore::Transaction::Transaction(CampaignStore& store) : store_(store) {
  if (store_.depth_++ == 0) store_.step("BEGIN IMMEDIATE");
}
CampaignStore::Transaction::~Transaction() {
  if (!done_ && --store_.depth_ == 0) {
    try {
      store_.step("ROLLBACK");
    } catch (...) {
    }
  }
}
void CampaignStore::Transaction::commit() {
  done_ = true;
  if (--store_.depth_ == 0) store_.step("COMMIT");
}

std::optional<std::string> CampaignStore::meta(const std::string& key) const {
  Statement s(db_, cached("SELECT value FROM meta WHERE key = ?"));
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void CampaignStore::set_meta(const std::string& key, const std::string& value) {
  Statement s(db_, cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"));
  s.bind(1, key);
  s.bind(2, value);
  s.step();
}

void CampaignStore::write_trial(const TrialRow& r) {
  Statement s(db_, cached(std::string("INSERT OR REPLACE INTO trials (") + kTrialColumns +
                              ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  s.bind(1, r.id);
  s.bind(2, r.index);
  s.bind(3, r.hash);
  s.bind(4, r.kind);
  s.bind(5, r.status);
  s.bind(6, r.attempt);
  s.bind(7, r.worker);
  s.bind(8, std::to_string(r.seed));  // full 64 bits (SQLite integers are signed)
  s.bind(9, r.start_time);
  s.bind(10, r.end_time);
  s.bind(11, r.metrics);
  s.bind(12, r.value);
  s.bind(13, r.score);
  s.bind(14, r.parameters);
  s.bind(15, r.seconds);
  s.bind(16, r.cpu_seconds);
  s.bind(17, r.max_rss_kb);
  s.bind(18, r.checkpoint);
  s.bind(19, r.transfer_source);
  s.bind(20, r.failure_reason);
  s.bind(21, r.observe_seq);
  s.step();
}

void CampaignStore::write_event(int64_t trial, const std::string& kind, int64_t worker, const std::string& message) {
  Statement s(db_, cached("INSERT INTO events (time, trial, kind, worker, message) VALUES (?, ?, ?, ?, ?)"));
  s.bind(1, unix_now());
  s.bind(2, trial);
  s.bind(3, kind);
  s.bind(4, worker);
  s.bind(5, message);
  s.step();
}

void CampaignStore::put_trial(const TrialRow& row, const std::string& event_kind, const std::string& message,
                              int64_t worker) {
  Transaction t(*this);
  write_trial(row);
  if (!event_kind.empty()) write_event(row.id, event_kind, worker, message);
  t.commit();
}

void CampaignStore::log_event(int64_t trial, const std::string& kind, int64_t worker, const std::string& message) {
  Transaction t(*this);
  write_event(trial, kind, worker, message);
  t.commit();
}

std::vector<TrialRow> CampaignStore::trials() const {
  Statement s(db_, cached(std::string("SELECT ") + kTrialColumns + " FROM trials ORDER BY id"));
  std::vector<TrialRow> out;
  while (s.step()) out.push_back(read_trial(s));
  return out;
}

std::optional<TrialRow> CampaignStore::trial(int64_t id) const {
  Statement s(db_, cached(std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?"));
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_trial(s);
}

std::vector<EventRow> CampaignStore::events(int64_t limit) const {
  const std::string sql = limit > 0 ? "SELECT * FROM (SELECT id, time, trial, kind, worker, message FROM events ORDER BY "
                                      "id DESC LIMIT " + std::to_string(limit) + ") ORDER BY id"
                                    : "SELECT id, time, trial, kind, worker, message FROM events ORDER BY id";
  Statement s(db_, sql);
  std::vector<EventRow> out;
  while (s.step()) out.push_back({s.i64(0), s.f64(1), s.i64(2), s.text(3), s.i64(4), s.text(5)});
  return out;
}

namespace {
constexpr const char* kProfileColumns =
    "hash, library_index, latency_ms, memory_mb, error, seconds, time, exclusion, exclude_seq, observed_before, kind";
}

void CampaignStore::put_profile(const ProfileRow& r) {
  // An UPSERT keeps the row's place (seq) in measurement order when its exclusion is added.
  Statement s(db_, cached(std::string("INSERT INTO profiles (") + kProfileColumns +
                              ") VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(hash) DO UPDATE SET library_index = "
                              "excluded.library_index, latency_ms = excluded.latency_ms, memory_mb = excluded.memory_mb, "
                              "error = excluded.error, seconds = excluded.seconds, time = excluded.time, exclusion = "
                              "excluded.exclusion, exclude_seq = excluded.exclude_seq, observed_before = "
                              "excluded.observed_before, kind = excluded.kind"));
  s.bind(1, r.hash);
  s.bind(2, r.index);
  s.bind(3, r.latency_ms);
  s.bind(4, r.memory_mb);
  s.bind(5, r.error);
  s.bind(6, r.seconds);
  s.bind(7, r.time);
  s.bind(8, r.excluded);
  s.bind(9, r.exclude_seq);
  s.bind(10, r.observed_before);
  s.bind(11, r.kind);
  s.step();
}

std::vector<ProfileRow> CampaignStore::profiles() const {
  std::vector<ProfileRow> out;
  {
    Statement exists(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profiles'");
    if (!exists.step()) return out;  // a read-only look at a campaign.db from before the table
  }
  Statement s(db_, std::string("SELECT ") + kProfileColumns + " FROM profiles ORDER BY seq");
  while (s.step()) {
    ProfileRow r;
    r.hash = s.text(0);
    r.index = s.i64(1);
    r.latency_ms = s.f64(2);
    r.memory_mb = s.f64(3);
    r.error = s.text(4);
    r.seconds = s.f64(5);
    r.time = s.f64(6);
    r.excluded = s.text(7);
    r.exclude_seq = s.i64(8);
    r.observed_before = s.i64(9);
    r.kind = s.text(10);
    out.push_back(std::move(r));
  }
  return out;
}

int64_t CampaignStore::interrupt_unfinished(const std::string& why) {
  Transaction t(*this);
  int64_t n = 0;
  for (TrialRow r : trials()) {
    if (r.status != trial_status::kQueued && r.status != trial_status::kRunning) continue;
    const bool was_running = r.status == trial_status::kRunning;
    r.status = trial_status::kInterrupted;
    write_trial(r);
    if (was_running) write_event(r.id, "interrupted", r.worker, why);
    ++n;
  }
  t.commit();
  return n;
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

}  // namespace flexnas::launch
