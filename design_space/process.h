#pragma once
// Starting other programs: the one module that forks, used by every spawner of the project.
//   run_child      a trial program with limits (the command evaluator): its own process group (a
//                  timeout or a cancel kills the whole group), RLIMIT_AS for the memory limit,
//                  stdout+stderr to a log file, extra environment variables. The outcome says why it
//                  ended, in words a user can act on.
//   run_command    a client command (sbatch, squeue, scontrol, sacct, scancel) with stdout and stderr
//                  captured, and whether the program exists at all.
//   spawn_process + wait_process
//                  a helper executable that shares our terminal (flexnas-tokenize).
// All of them start the child with spawn_process: vfork + exec, with everything the child needs
// prepared before the fork, so the child makes only system calls until exec, and with signals
// blocked until it has reset the parent's handlers (as posix_spawn does). It never runs code of the
// parent (LibTorch, SentencePiece, atfork or signal handlers), and starting it costs the same however
// big the parent is. No LibTorch here: design_space is the bottom layer.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flexnas {

/// How spawn_process starts a child.
struct SpawnOptions {
  std::vector<std::string> argv;                 // argv[0]: the program
  bool search_path = true;                       // look argv[0] up in PATH when it has no '/'
  const std::map<std::string, std::string>* env = nullptr;  // added to (or replacing in) our environment
  std::string workdir;                           // the child's directory ("" = ours); exit 126 if it cannot enter it
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;  // dup2'ed onto 0, 1, 2 (-1 = inherited)
  bool own_group = false;                        // own process group (kill(-pid) reaches its children)
  bool trial_signals = false;                    // SIGINT/SIGTERM/SIGPIPE default, SIGUSR1 ignored, no mask
  int64_t memory_limit_mb = 0;                   // RLIMIT_AS (0 = none)
  std::string exec_failure_note;                 // written to the child's stderr when exec fails
};

/// A started child. When exec failed, the child exited with 127 (wait for it) and `exec_error`
/// holds exec's errno; when the fork itself failed, `pid` is -1 and `fork_error` holds its errno.
struct Spawned {
  pid_t pid = -1;
  int fork_error = 0;
  int exec_error = 0;
};
Spawned spawn_process(const SpawnOptions& options);

/// waitpid(pid, &status, 0) retried on EINTR: 0, or -1 with errno set when waitpid fails.
int wait_process(pid_t pid, int& status);

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

/// Output of one client command.
struct CommandOutput {
  bool found = true;               // false: the program is not on PATH
  int exit_code = 0;
  std::string out, err;
};
/// Runs `argv` (argv[0] looked up in PATH) with stdin from /dev/null and stdout and stderr
/// captured; exit code 128 + N when killed by signal N, 127 when the program cannot be executed.
CommandOutput run_command(const std::vector<std::string>& argv);

/// "SIGSEGV", "SIGKILL", ... ("signal N" when unknown).
std::string signal_name(int signal);

}  // namespace flexnas
