// A trial program for bench/scheduler_bench: writes {"score": 1} to $FLEXNAS_OUT/metrics.json and
// sleeps argv[1] milliseconds. The least a `command` trial can cost (one exec, no shell, no
// locale), so the benchmark measures the scheduler rather than /bin/sh's start-up.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const char* out = std::getenv("FLEXNAS_OUT");
  if (argc != 2 || !out) return 2;
  char path[4096];
  const size_t n = std::strlen(out);
  if (n + sizeof "/metrics.json" > sizeof path) return 2;
  std::memcpy(path, out, n);
  std::memcpy(path + n, "/metrics.json", sizeof "/metrics.json");
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  static const char kMetrics[] = "{\"score\": 1}\n";
  if (::write(fd, kMetrics, sizeof kMetrics - 1) != ssize_t(sizeof kMetrics - 1) || ::close(fd) != 0) return 1;
  const long ms = std::strtol(argv[1], nullptr, 10);
  timespec t{ms / 1000, (ms % 1000) * 1000000L};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
  return 0;
}
