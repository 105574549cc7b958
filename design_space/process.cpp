#include "design_space/process.h"

#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
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

namespace flexnas {
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

Spawned spawn_process(const SpawnOptions& o) {
  FLEXNAS_CHECK(!o.argv.empty(), "spawn_process: empty argv");
  // Everything the child needs is prepared before vfork (no allocation between vfork and exec).
  std::vector<std::vector<char>> arg_storage;
  for (const std::string& a : o.argv) arg_storage.emplace_back(a.c_str(), a.c_str() + a.size() + 1);
  std::vector<char*> args;
  for (auto& a : arg_storage) args.push_back(a.data());
  args.push_back(nullptr);
  // The child's environment: ours with `env` added or replaced.
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  if (o.env) {
    for (char** e = environ; *e; ++e) {
      const std::string entry(*e);
      const std::string key = entry.substr(0, entry.find('='));
      if (!o.env->count(key)) env_storage.push_back(entry);
    }
    for (const auto& [k, v] : *o.env) env_storage.push_back(k + "=" + v);
    for (std::string& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  char* const* child_env = o.env ? envp.data() : environ;
  struct rlimit memory_limit;
  memory_limit.rlim_cur = memory_limit.rlim_max = rlim_t(o.memory_limit_mb) * 1024 * 1024;
  const char* workdir = o.workdir.empty() ? nullptr : o.workdir.c_str();
  const char* note = o.exec_failure_note.c_str();
  const size_t note_size = o.exec_failure_note.size();
  // exec's errno comes back through a close-on-exec pipe: end of file = exec succeeded.
  int exec_pipe[2];
  Spawned result;
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    result.fork_error = errno;
    return result;
  }

  // vfork: the parent (a big LibTorch process) is not copied and no atfork handler runs; the child
  // only makes system calls until exec. Signals stay blocked until the child has reset the parent's
  // handlers (it shares the parent's memory: a handler of ours must not run in it), as posix_spawn does.
  sigset_t all, parent_mask;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &parent_mask);
  const pid_t pid = ::vfork();
  if (pid < 0) {
    result.fork_error = errno;
    ::pthread_sigmask(SIG_SETMASK, &parent_mask, nullptr);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    return result;
  }
  if (pid == 0) {
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction current;
      if (sig == SIGKILL || sig == SIGSTOP || ::sigaction(sig, nullptr, &current) != 0) continue;
      if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN) ::sigaction(sig, &dfl, nullptr);
    }
    if (o.own_group) ::setpgid(0, 0);  // so timeouts kill grandchildren too
    if (o.trial_signals) {
      for (int sig : {SIGINT, SIGTERM, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
      // SIGUSR1 is the scheduler's drain request, and SLURM's --signal=USR1@T reaches every process
      // of the job step, trials included: the trial ignores it (kept across exec) and the scheduler
      // decides (waits drain_timeout, then cancels).
      struct sigaction ign = dfl;
      ign.sa_handler = SIG_IGN;
      ::sigaction(SIGUSR1, &ign, nullptr);
    }
    if (o.memory_limit_mb > 0) ::setrlimit(RLIMIT_AS, &memory_limit);
    if (o.stdout_fd >= 0) ::dup2(o.stdout_fd, STDOUT_FILENO);
    if (o.stderr_fd >= 0) ::dup2(o.stderr_fd, STDERR_FILENO);
    if (o.stdin_fd >= 0) ::dup2(o.stdin_fd, STDIN_FILENO);
    if (workdir && ::chdir(workdir) != 0) _exit(126);
    // A trial starts with no signal blocked; anything else with the caller's mask.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, o.trial_signals ? &none : &parent_mask, nullptr);
    if (o.search_path) ::execvpe(args[0], args.data(), child_env);
    else ::execve(args[0], args.data(), child_env);
    const int e = errno;
    if (note_size > 0) (void)!::write(STDERR_FILENO, note, note_size);
    (void)!::write(exec_pipe[1], &e, sizeof e);  // tell the parent why exec failed
    _exit(127);
  }
  ::pthread_sigmask(SIG_SETMASK, &parent_mask, nullptr);
  ::close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t n;
  while ((n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  ::close(exec_pipe[0]);
  result.pid = pid;
  if (n == sizeof exec_errno) result.exec_error = exec_errno;
  return result;
}

int wait_process(pid_t pid, int& status) {
  for (;;) {
    if (::waitpid(pid, &status, 0) >= 0) return 0;
    if (errno != EINTR) return -1;
  }
}

ChildResult run_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                      const std::string& workdir, const std::string& log_path, const ChildLimits& limits,
                      const std::atomic<bool>* cancel, const std::function<void()>& tick) {
  FLEXNAS_CHECK(!argv.empty(), "run_child: empty argv");
  fs::create_directories(workdir);
  if (fs::path(log_path).has_parent_path()) fs::create_directories(fs::path(log_path).parent_path());
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw Error("cannot open trial log " + log_path + ": " + std::strerror(errno));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  SpawnOptions o;
  o.argv = argv;
  o.env = &env;
  o.workdir = workdir;
  o.stdin_fd = null_fd;
  o.stdout_fd = o.stderr_fd = log_fd;
  o.own_group = true;
  o.trial_signals = true;
  o.memory_limit_mb = limits.memory_limit_mb;
  o.exec_failure_note = "flexnas: cannot execute the trial program\n";
  ChildResult result;
  const auto start = std::chrono::steady_clock::now();
  const Spawned child = spawn_process(o);
  const pid_t pid = child.pid;
  if (pid < 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw Error(std::string("fork failed: ") + std::strerror(child.fork_error));
  }
  // A program that cannot be executed exits with 127 (the note is in its log): reported as such.
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

CommandOutput run_command(const std::vector<std::string>& argv) {
  FLEXNAS_CHECK(!argv.empty(), "run_command without a program");
  CommandOutput result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw Error(std::string("cannot create pipes to run ") + argv[0] + ": " + std::strerror(errno));
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  SpawnOptions o;
  o.argv = argv;
  o.stdin_fd = devnull;
  o.stdout_fd = out_pipe[1];
  o.stderr_fd = err_pipe[1];
  const Spawned child = spawn_process(o);
  if (devnull >= 0) ::close(devnull);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (child.pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw Error(std::string("cannot start ") + argv[0] + ": " + std::strerror(child.fork_error));
  }
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  char buf[4096];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  int status = 0;
  wait_process(child.pid, status);
  if (child.exec_error != 0) {
    result.found = child.exec_error != ENOENT;
    result.exit_code = 127;
    result.err = argv[0] + ": " + std::strerror(child.exec_error);
    return result;
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace flexnas
