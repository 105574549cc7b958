// Library generation benchmark: the whole pipeline (enumerate, hash, distances, embeddings,
// neighbours, save; plus load) for the reference's test space and small space at lps 2, and a
// library around a sample of the full space (432,653,508 architectures at lps 2). Each case runs
// in a forked child so its peak memory (getrusage ru_maxrss) is its own.
//
// The peer figure is the reference's published one, measured on this 2-core machine (issue 2):
// generate_library.py needed 367 s to enumerate, hash and save the 9,312 test-space graphs, then
// ran ~70 GED evaluations/s over its 433,521 sampled pairs (~6,190 s) before interpolating and
// fitting embeddings; on the small space it did not finish the first stage in 20 minutes.
//
// usage: library_bench [--threads N] [--sample N] [--examples DIR] [test] [small] [full]
//        (default: all three; DIR defaults to ./examples or the repository of the executable;
//        --help: the defaults)
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_cli.h"
#include "design_space/library_builder.h"
#include "design_space/progress.h"

using namespace flexnas;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int threads = omp_get_num_procs();
  uint64_t sample = 20000;            // architectures sampled around in the full space
  std::string examples;               // empty: find_examples()
  std::vector<std::string> cases;     // empty: test, small, full
};

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Case {
  std::string name;
  std::string file;
  uint64_t sample;
  double reference_seconds;  // the reference's published time (lower bound), 0 = none
  const char* reference_note;
};

/// The examples/ folder: --examples DIR, else ./examples, else <exe>/../../examples (build*/bench/).
std::string find_examples(const std::string& given) {
  if (!given.empty()) return given;
  if (std::filesystem::exists("examples/design_space_test.yaml")) return "examples";
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto guess = exe.parent_path().parent_path().parent_path() / "examples";
  return guess.string();
}

std::string g_examples;

int run_case(const Case& c, int threads) {
  omp_set_num_threads(threads);
  Progress::set_enabled(false);
  const std::string path = g_examples + "/" + c.file;
  auto t = Clock::now();
  const DesignSpace space = load_design_space(path);
  LibraryBuildOptions o;
  o.progress = false;
  o.sample = c.sample;
  const Enumerator counter(space, o.enumeration);
  const double count_seconds = since(t);
  LibraryBuildReport report;
  const Library lib = build_library(space, o, &report);
  const std::string out =
      (std::filesystem::temp_directory_path() / ("flexnas_library_bench_" + std::to_string(::getpid()) + ".json")).string();
  t = Clock::now();
  save_library(lib, out);
  const double save_seconds = since(t);
  const auto bytes = std::filesystem::file_size(out);
  t = Clock::now();
  const Library back = load_library(out);
  const double load_seconds = since(t);
  std::filesystem::remove(out);
  if (back.size() != lib.size()) {
    std::cerr << "load returned " << back.size() << " graphs\n";
    return 1;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);

  const double total = report.total_seconds() + save_seconds;
  std::printf("%s: %s, lps 2, space %s architectures (counted in %.3f s), library %zu graphs, %d threads\n",
              c.name.c_str(), c.file.c_str(), to_string_big(counter.count()).c_str(), count_seconds, lib.size(), threads);
  for (const StageTime& s : report.stages) std::printf("  %-11s %8.3f s\n", s.name.c_str(), s.seconds);
  std::printf("  %-11s %8.3f s  (%.1f MB)\n", "save", save_seconds, double(bytes) / 1e6);
  std::printf("  %-11s %8.3f s\n", "total", total);
  std::printf("  %-11s %8.3f s  (not part of the total)\n", "load", load_seconds);
  std::printf("  distances computed: %lld (%.0f per second of distance time)\n",
              (long long)report.embedding.distance_evaluations,
              double(report.embedding.distance_evaluations) /
                  std::max(1e-9, [&] {
                    for (const StageTime& s : report.stages)
                      if (s.name == "distances") return s.seconds;
                    return 0.0;
                  }()));
  std::printf("  embedding: stress %.4f (landmark MDS %.4f), Spearman %.4f on %lld held-out pairs\n",
              report.embedding.stress, report.embedding.landmark_stress, report.embedding.spearman,
              (long long)report.embedding.holdout_pairs);
  std::printf("  peak memory: %.1f MB (ru_maxrss)\n", double(usage.ru_maxrss) / 1024.0);
  std::printf("  cpu time: %.1f s user + %.1f s system (whole case, load included)\n",
              double(usage.ru_utime.tv_sec) + 1e-6 * double(usage.ru_utime.tv_usec),
              double(usage.ru_stime.tv_sec) + 1e-6 * double(usage.ru_stime.tv_usec));
  if (c.reference_seconds > 0)
    std::printf("  reference (published, same machine): %s -> flexnas is >= %.0fx faster\n", c.reference_note,
                c.reference_seconds / total);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"library_bench: library generation (enumerate, hash, distances, embeddings, neighbours, save, load)"};
  bench::show_defaults(app);
  app.add_option("--threads", o.threads, "OpenMP threads")->check(CLI::PositiveNumber);
  app.add_option("--sample", o.sample, "architectures of the full space's library (sampled)");
  app.add_option("--examples", o.examples, "the examples/ folder (default: ./examples, else the executable's repository)");
  app.add_option("cases", o.cases, "cases to run, in order (default: test small full)")
      ->check(CLI::IsMember({"test", "small", "full"}))
      ->default_str("");
  if (const int code = bench::parse_flags(app, argc, argv); code >= 0) return code;
  const int threads = o.threads;
  const uint64_t sample = o.sample;
  std::vector<std::string> wanted = o.cases;
  if (wanted.empty()) wanted = {"test", "small", "full"};
  g_examples = find_examples(o.examples);
  const std::vector<Case> cases = {
      {"test", "design_space_test.yaml", 0, 367.0 + 433521.0 / 70.0,
       "367 s enumerate+hash+save, then 433,521 GED pairs at ~70/s (~6,560 s before interpolation and embedding)"},
      {"small", "design_space_small.yaml", 0, 1200.0, "did not finish enumerate+hash in 1,200 s"},
      {"full", "design_space.yaml", sample, 0.0, ""},
  };
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) > 0)
    std::printf("machine: %d cores, load average %.2f (1 min) when the benchmark started\n", omp_get_num_procs(), load[0]);
  int status = 0;
  for (const std::string& name : wanted)
    for (const Case& c : cases) {
      if (c.name != name) continue;
      std::fflush(stdout);
      const pid_t pid = fork();
      if (pid == 0) _exit(run_case(c, threads));
      int child = 0;
      waitpid(pid, &child, 0);
      if (!WIFEXITED(child) || WEXITSTATUS(child) != 0) status = 1;
    }
  return status;
}
