#include "launch/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "design_space/error.h"

extern char** environ;

namespace flexnas::launch {
namespace fs = std::filesystem;

std::string signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGXCPU: return "SIGXCPU";
    case SIGPIPE: return "SIGPIPE";
    default: return "signal " + std::to_string(sig);
  }
}

namespace {

/// Last `bytes` of a file (the allocation-failure markers are at its end).
std::string file_tail(const std::string& path, std::streamoff bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(size > bytes ? size - bytes : 0);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool looks_like_allocation_failure(const std::string& log) {
  for (const char* marker : {"bad_alloc", "Cannot allocate memory", "MemoryError", "out of memory",
                             "DefaultCPUAllocator: can't allocate", "std::length_error"})
    if (log.find(marker) != std::string::npos) return true;
  return false;
}

}  // namespace

ChildResult run_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                      const std::string& workdir, const std::string& log_path, const ChildLimits& limits,
                      const std::atomic<bool>* cancel, const std::function<void()>& tick) {
  FLEXNAS_CHECK(!argv.empty(), "run_child: empty argv");
  fs::create_directories(workdir);
  if (fs::path(log_path).has_parent_path()) fs::create_directories(fs::path(log_path).parent_path());
  // Everything the child needs is prepared before fork (no allocation between fork and exec).
  std::vector<std::vector<char>> arg_storage;
  for (const std::string& a : argv) arg_storage.emplace_back(a.c_str(), a.c_str() + a.size() + 1);
  std::vector<char*> args;
  for (auto& a : arg_storage) args.push_back(a.data());
  args.push_back(nullptr);
  // The child's environment: ours with `env` added or replaced, built before vfork.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (!env.count(key)) env_storage.push_back(entry);
  }
  for (const auto& [k, v] : env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  struct rlimit memory_limit;
  memory_limit.rlim_cur = memory_limit.rlim_max = rlim_t(limits.memory_limit_mb) * 1024 * 1024;
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw Error("cannot open trial log " + log_path + ": " + std::strerror(errno));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  ChildResult result;
  const auto start = std::chrono::steady_clock::now();
  // vfork: the parent (a big LibTorch process) is not copied, so starting a trial costs the same
  // whatever our size. The child only makes system calls until execvpe.
  const pid_t pid = ::vfork();
  if (pid < 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw Error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: own process group (so timeouts kill grandchildren too), limits, output, exec.
    ::setpgid(0, 0);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
    // SIGUSR1 is the scheduler's drain request, and SLURM's --signal=USR1@T reaches every process
    // of the job step, trials included: the trial ignores it (kept across exec) and the scheduler
    // decides (waits drain_timeout, then cancels).
    struct sigaction ign = dfl;
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGUSR1, &ign, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (limits.memory_limit_mb > 0) ::setrlimit(RLIMIT_AS, &memory_limit);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    if (::chdir(workdir.c_str()) != 0) _exit(126);
    ::execvpe(args[0], args.data(), envp.data());
    static const char msg[] = "flexnas: cannot execute the trial program\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(127);
  }
  if (null_fd >= 0) ::close(null_fd);
  ::setpgid(pid, pid);  // also from the parent: no race with the kill below
  ::close(log_fd);

  int status = 0;
  struct rusage usage;
  std::memset(&usage, 0, sizeof usage);
  auto last_tick = start;
  // Wait on a pidfd (wakes the moment the child exits: a 50 ms trial costs no polling latency);
  // wake at least every 50 ms for the timeout, the cancel flag and the tick.
  const int pidfd = int(::syscall(SYS_pidfd_open, pid, 0));
  int sleep_us = 200;  // fallback polling when pidfds are unavailable
  for (;;) {
    const pid_t r = ::wait4(pid, &status, WNOHANG, &usage);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw Error(std::string("waitpid failed: ") + std::strerror(errno));
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const bool cancel_now = cancel && cancel->load();
    if ((limits.timeout > 0 && elapsed >= limits.timeout && !result.timed_out) || (cancel_now && !result.cancelled)) {
      if (cancel_now) result.cancelled = true;
      else result.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    if (tick && std::chrono::duration<double>(now - last_tick).count() >= 0.2) {
      tick();
      last_tick = now;
    }
    if (pidfd >= 0) {
      int wait_ms = 50;
      if (limits.timeout > 0 && !result.timed_out)
        wait_ms = std::max(1, std::min(wait_ms, int((limits.timeout - elapsed) * 1000) + 1));
      struct pollfd pfd = {pidfd, POLLIN, 0};
      ::poll(&pfd, 1, wait_ms);
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min(sleep_us * 2, 5000);
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  ::kill(-pid, SIGKILL);  // leftovers of the group (a trial's own children) die with it
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.cpu_seconds = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  result.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
    result.ok = result.exit_code == 0 && !result.timed_out && !result.cancelled;
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (result.cancelled) {
    result.ok = false;
    result.reason = "cancelled";
  } else if (result.timed_out) {
    result.ok = false;
    result.reason = "timeout after " + std::to_string(int64_t(limits.timeout)) + " s (killed)";
  } else if (!result.ok) {
    const std::string how = result.signal ? "killed by signal " + std::to_string(result.signal) + " (" +
                                                signal_name(result.signal) + ")"
                                          : "exit code " + std::to_string(result.exit_code);
    if (limits.memory_limit_mb > 0 && looks_like_allocation_failure(file_tail(log_path, 4096))) {
      result.out_of_memory = true;
      result.reason = "out of memory (memory limit " + std::to_string(limits.memory_limit_mb) + " MiB): " + how;
    } else if (result.signal == SIGKILL && limits.memory_limit_mb == 0) {
      result.reason = how + "; the system may have run out of memory (OOM killer)";
    } else {
      result.reason = how;
    }
  }
  return result;
}

}  // namespace flexnas::launch
