#pragma once
// Running one trial program as a child process with limits: its own process group (a timeout or a
// cancel kills the whole group), RLIMIT_AS for the memory limit, stdout+stderr to a log file, extra
// environment variables. The outcome says why it ended, in words a user can act on.
#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flexnas::launch {

struct ChildLimits {
  double timeout = 0;            // seconds (0 = none)
  int64_t memory_limit_mb = 0;   // RLIMIT_AS (0 = none)
};

struct ChildResult {
  bool ok = false;               // exited with code 0
  int exit_code = -1;            // when it exited normally
  int signal = 0;                // when it was killed by a signal
  bool timed_out = false;
  bool cancelled = false;
  bool out_of_memory = false;    // the memory limit was hit (signal/abort with an allocation failure in the log)
  double seconds = 0;
  double cpu_seconds = 0;        // user + system of the child (and its children)
  int64_t max_rss_kb = 0;
  std::string reason;            // "" when ok; else e.g. "killed by signal 11 (SIGSEGV)"
};

/// Runs `argv` (argv[0] looked up in PATH when it has no '/') in `workdir` (created), output to
/// `log_path` (appended). `env` entries are added to the environment. `cancel` (may be null) is
/// polled; `tick` (may be empty) is called about every 0.2 s while the child runs (e.g. heartbeats).
ChildResult run_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                      const std::string& workdir, const std::string& log_path, const ChildLimits& limits,
                      const std::atomic<bool>* cancel = nullptr, const std::function<void()>& tick = {});

/// "SIGSEGV", "SIGKILL", ... ("signal N" when unknown).
std::string signal_name(int signal);

}  // namespace flexnas::launch
