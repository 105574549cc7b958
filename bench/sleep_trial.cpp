// A trial program for bench/scheduler_bench: writes {"score": 1} to $FLEXNAS_OUT/metrics.json and
// sleeps MS milliseconds (`sleep_trial MS`; --help). The least a `command` trial can cost (one exec,
// no shell, no locale, no LibTorch), so the benchmark measures the scheduler rather than /bin/sh's
// start-up. Exit codes: 0; 1 when metrics.json cannot be written; 2 for bad flags or no FLEXNAS_OUT.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "bench/bench_cli.h"

namespace {

struct Options {
  long ms = 0;  // milliseconds to sleep after writing metrics.json
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"sleep_trial: writes {\"score\": 1} to $FLEXNAS_OUT/metrics.json, then sleeps"};
  flexnas::bench::show_defaults(app);
  app.add_option("ms", o.ms, "milliseconds to sleep")->required()->check(CLI::NonNegativeNumber)->default_str("");
  if (const int code = flexnas::bench::parse_flags(app, argc, argv); code >= 0) return code;
  const char* out = std::getenv("FLEXNAS_OUT");
  if (!out) return 2;
  char path[4096];
  const size_t n = std::strlen(out);
  if (n + sizeof "/metrics.json" > sizeof path) return 2;
  std::memcpy(path, out, n);
  std::memcpy(path + n, "/metrics.json", sizeof "/metrics.json");
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  static const char kMetrics[] = "{\"score\": 1}\n";
  if (::write(fd, kMetrics, sizeof kMetrics - 1) != ssize_t(sizeof kMetrics - 1) || ::close(fd) != 0) return 1;
  timespec t{o.ms / 1000, (o.ms % 1000) * 1000000L};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
  return 0;
}
