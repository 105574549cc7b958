// Scheduling overhead of `flexnas search`: N trials of a `command` evaluator that sleeps 50 ms, on
// 2, 4 and 8 workers (MPI worker ranks under `mpirun --oversubscribe`, and local threads).
// Two efficiencies, both = ideal time / measured campaign time:
//   strict    ideal = trials x 50 ms / workers (the definition: everything that is not the
//             50 ms sleep counts as overhead, the trial program's own start-up included);
//   adjusted  ideal = the trial commands' own run time as each worker measured it (campaign.db
//             `seconds`: the program's start-up, the sleep, the metrics write), summed over
//             trials / workers: the share of worker time spent running trial programs, i.e. what the
//             scheduler, the runners and the store cost, without the command's start-up.
// Peer figure: Ray Tune's own published overhead test reached 87% (625 s ideal, 715 s measured);
// that is their published number, not measured here.
//
// Usage: scheduler_bench [--trials 2000] [--workers 2,4,8] [--sleep-ms 50] [--repeat 1] [--flexnas PATH]
//                        [--work DIR] [--space YAML] [--shell | --script SH] [--no-local] [--no-mpi] [--keep]
// The trial program is a real child process per trial. Default: bench/sleep_trial (writes
// metrics.json, sleeps; one exec, no shell), so what is measured is the scheduler, not a shell's
// start-up. --shell: `/bin/sh -c` a script that writes metrics.json and execs /bin/sleep (~2 ms more
// per trial); --script SH: `/bin/sh -c SH`.
// Measured time: from the first trial's start to the last trial's end as recorded in campaign.db
// (the scheduler's own loop), and end to end (process start-up, mpirun, library load included).
// Each configuration runs --repeat times, runners interleaved (mpi, local, mpi, local, ...); every
// run prints the load averages before it and a per-trial breakdown of where the time went.
// Clean-up: a run creates ~5 files per trial, in WORK/bench-<pid>/, removed at the end (--keep:
// kept), never between runs or at the start: on ext4 without a journal (this
// platform's disk) the inode allocator skips inodes deleted in the last 1-6 minutes, reading each
// one's inode-table block, and a campaign started right after 10,000 files were deleted spent 4.8 s
// of system time instead of 1.2 s and lost 2-5 points of efficiency. Leave a minute between
// invocations for the same reason. --help: every flag with its default.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_cli.h"
#include "design_space/atomic_file.h"
#include "design_space/design_space.h"
#include "design_space/enumeration.h"
#include "design_space/library.h"
#include "design_space/library_builder.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "design_space/process.h"

namespace fs = std::filesystem;
using namespace flexnas;

namespace {

struct Options {
  int64_t trials = 2000;
  std::string workers = "2,4,8";  // worker counts, comma-separated
  int sleep_ms = 50;
  int repeat = 1;
  std::string flexnas;     // empty: <build>/bin/flexnas beside this program's bench/
  std::string work = (fs::temp_directory_path() / "flexnas_scheduler_bench").string();
  std::string space;       // empty: <source>/examples/design_space_test.yaml
  bool shell = false;      // the trial runs `/bin/sh -c` a script (--script, else the built-in one)
  std::string script;
  bool no_local = false, no_mpi = false, keep = false;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) out.push_back(std::stoi(part));
  return out;
}

struct Run {
  std::string runner;
  int workers = 0;
  double span = 0, total = 0, ideal = 0;
  double command = 0;        // sum of the trials' own run time as the workers measured it (s)
  double handover = 0;       // mean per trial: dispatch -> command start + command end -> scheduler (s)
  double scheduling = 0;     // mean per trial: result at the scheduler -> next start on that worker (s)
  int64_t completed = 0;
  std::string load;          // /proc/loadavg before the run
};

std::string loadavg() {
  std::string s = read_file("/proc/loadavg");
  std::stringstream in(s);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string percent(double x) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * x << "%";
  return s.str();
}

Run run_one(const std::string& runner, int workers, int repeat_index, const std::string& flexnas,
            const fs::path& work, const std::string& library, int64_t trials, int sleep_ms,
            const std::vector<std::string>& program) {
  // A new directory per run, and nothing deleted before or between runs: see "Clean-up" above.
  const std::string name = runner + "_" + std::to_string(workers) + "_run" + std::to_string(repeat_index + 1);
  const fs::path yaml = work / (name + ".yaml");
  // Each argument inside single quotes in YAML: a single quote is doubled.
  std::string argv;
  for (const std::string& arg : program) {
    argv += argv.empty() ? "'" : ", '";
    for (char ch : arg) argv += ch == '\'' ? std::string("''") : std::string(1, ch);
    argv += "'";
  }
  std::ostringstream y;
  y << "name: " << name << "\nlibrary: " << library << "\nobjective: {metric: score}\npolicy: random\n"
    << "budget: {trials: " << trials << "}\nseed: 1\nworkers: " << workers << "\n"
    << "evaluator: {type: command, argv: [" << argv << "]}\n";
  write_file_atomic(yaml.string(), y.str());
  std::string cmd = runner == "mpi" ? "mpirun -np " + std::to_string(workers + 1) + " --oversubscribe " : "";
  cmd += flexnas + " search " + yaml.string() + " --quiet";
  Run r;
  r.load = loadavg();
  const auto start = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  r.runner = runner;
  r.workers = workers;
  r.total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc != 0) {
    std::cerr << "command failed (" << rc << "): " << cmd << "\n";
    return r;
  }
  launch::CampaignStore store(launch::campaign_db_path((work / name).string()), true);
  double first = 0, last = 0;
  std::map<int64_t, std::vector<launch::TrialRow>> by_worker;
  for (const launch::TrialRow& t : store.trials()) {
    if (t.status != launch::trial_status::kCompleted) continue;
    ++r.completed;
    if (first == 0 || t.start_time < first) first = t.start_time;
    last = std::max(last, t.end_time);
    r.command += t.seconds;
    r.handover += t.end_time - t.start_time - t.seconds;
    by_worker[t.worker].push_back(t);
  }
  int64_t gaps = 0;
  for (auto& [w, rows] : by_worker) {
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.start_time < b.start_time; });
    for (size_t i = 1; i < rows.size(); ++i, ++gaps) r.scheduling += rows[i].start_time - rows[i - 1].end_time;
  }
  if (r.completed > 0) r.handover /= double(r.completed);
  if (gaps > 0) r.scheduling /= double(gaps);
  r.span = last - first;
  r.ideal = double(trials) * sleep_ms / 1000.0 / workers;
  return r;
}

/// The source tree, from the build directory's CMakeCache.txt (this program is <build>/bench/...).
std::string source_dir() {
  const fs::path cache = fs::canonical("/proc/self/exe").parent_path().parent_path() / "CMakeCache.txt";
  std::stringstream in(read_file(cache.string()));
  std::string line;
  const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  return ".";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"scheduler_bench: scheduling overhead of `flexnas search` with a sleeping command evaluator"};
  bench::show_defaults(app);
  app.add_option("--trials", o.trials, "trials per campaign (at most the space's size)")->check(CLI::PositiveNumber);
  app.add_option("--workers", o.workers, "worker counts to run, comma-separated");
  app.add_option("--sleep-ms", o.sleep_ms, "milliseconds each trial sleeps")->check(CLI::NonNegativeNumber);
  app.add_option("--repeat", o.repeat, "runs per configuration, runners interleaved")->check(CLI::PositiveNumber);
  app.add_option("--flexnas", o.flexnas, "flexnas executable (default: <build>/bin/flexnas)");
  app.add_option("--work", o.work, "folder for the campaigns (a bench-<pid>/ inside)");
  app.add_option("--space", o.space, "design space YAML (default: <source>/examples/design_space_test.yaml)");
  app.add_flag("--shell", o.shell, "trial program: /bin/sh -c a script writing metrics.json, then exec /bin/sleep");
  app.add_option("--script", o.script, "trial program: /bin/sh -c SH (implies --shell)");
  app.add_flag("--no-local", o.no_local, "skip the local runner");
  app.add_flag("--no-mpi", o.no_mpi, "skip the MPI runner");
  app.add_flag("--keep", o.keep, "keep the campaign folders");
  if (const int code = bench::parse_flags(app, argc, argv); code >= 0) return code;
  int64_t trials = o.trials;
  std::vector<int> worker_counts;
  try {
    worker_counts = parse_list(o.workers);
  } catch (const std::exception&) {
    std::cerr << "--workers: '" << o.workers << "' is not a comma-separated list of counts\n";
    return 2;
  }
  const int sleep_ms = o.sleep_ms, repeat = o.repeat;
  const std::string flexnas = o.flexnas.empty()
      ? (fs::canonical("/proc/self/exe").parent_path().parent_path() / "bin" / "flexnas").string()
      : o.flexnas;
  fs::path work = o.work;
  const bool local = !o.no_local, mpi = !o.no_mpi, keep = o.keep;
  std::string space_file = o.space;
  std::string script = o.script;
  const bool shell = o.shell || !script.empty();
  // The metrics file first, then the shell replaces itself by the sleep (no fork, no wait); LC_ALL=C
  // spares `sleep` loading the C.UTF-8 locale files.
  std::ostringstream secs;
  secs << sleep_ms / 1000.0;
  if (script.empty())
    script = "echo '{\"score\": 1}' > \"$FLEXNAS_OUT/metrics.json\"; LC_ALL=C exec /bin/sleep " + secs.str();
  const std::vector<std::string> program =
      shell ? std::vector<std::string>{"/bin/sh", "-c", script}
            : std::vector<std::string>{(fs::canonical("/proc/self/exe").parent_path() / "sleep_trial").string(),
                                       std::to_string(sleep_ms)};
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  // This invocation's own folder: what an earlier one left (--keep) is not deleted now.
  work /= "bench-" + std::to_string(::getpid());
  fs::remove_all(work);
  fs::create_directories(work);

  // A library with enough architectures: the first `trials` of the reference's test space.
  if (space_file.empty()) space_file = source_dir() + "/examples/design_space_test.yaml";
  const DesignSpace space = load_design_space(space_file);
  const Enumerator e(space, space.enumeration);
  Library lib;
  lib.design_space = nullptr;
  for (int64_t i = 0; i < trials && BigCount(i) < e.count(); ++i) lib.archs.push_back(e.at(BigCount(i)));
  lib.hashes = hash_architectures(lib.archs, false);
  lib.num_neighbors = 1;  // no neighbour lists: the random policy needs none
  lib.pad_to_size();
  const std::string library = (work / "library.json").string();
  save_library(lib, library);
  trials = int64_t(lib.size());

  // The trial command's own cost, run back to back without any scheduler (for reference: the
  // adjusted efficiency uses the cost measured inside each campaign).
  std::vector<double> own;
  for (int i = 0; i < 40; ++i) {
    const fs::path out = work / "probe";
    fs::create_directories(out);
    const auto t0 = std::chrono::steady_clock::now();
    run_child(program, {{"FLEXNAS_OUT", out.string()}}, out.string(), (out / "log.txt").string(), {});
    own.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(own.begin(), own.end());
  const double own_mean = std::accumulate(own.begin(), own.end(), 0.0) / double(own.size());

  std::cout << "scheduler_bench: " << trials << " trials of a command evaluator sleeping " << sleep_ms
            << " ms, random policy\ntrial program:";
  for (const std::string& arg : program) std::cout << " '" << arg << "'";
  std::cout << "\n";
  std::cout << "peer: Ray Tune's published overhead test: 87% (625 s ideal, 715 s measured) -- their figure\n\n";
  std::cout << std::fixed << std::setprecision(2) << "trial program alone, back to back (40 runs): mean "
            << own_mean * 1000 << " ms, median " << own[own.size() / 2] * 1000 << " ms, best " << own[0] * 1000
            << " ms\n";
  std::cout << "strict   = trials x " << sleep_ms << " ms / workers / campaign time (the issue's efficiency)\n"
            << "adjusted = trials x the program's own run time in the campaign / workers / campaign time\n"
            << "per trial: program = its run time measured by the worker; hand-over = dispatch to program start\n"
            << "  + program end to the scheduler; scheduling = result at the scheduler to the next start on that worker\n\n";
  std::cout << std::left << std::setw(7) << "runner" << std::setw(8) << "workers" << std::setw(9) << "ideal s"
            << std::setw(11) << "campaign s" << std::setw(8) << "strict" << std::setw(10) << "adjusted" << std::setw(11)
            << "program ms" << std::setw(13) << "hand-over ms" << std::setw(15) << "scheduling ms" << std::setw(14)
            << "end-to-end s" << std::setw(9) << "e2e eff" << "load before\n";
  std::map<std::pair<std::string, int>, std::vector<double>> strict;
  for (int w : worker_counts) {
    for (int k = 0; k < repeat; ++k) {
      for (const std::string runner : {"mpi", "local"}) {
        if ((runner == std::string("mpi") && !mpi) || (runner == std::string("local") && !local)) continue;
        const Run r = run_one(runner, w, k, flexnas, work, library, trials, sleep_ms, program);
        if (r.completed != trials) {
          std::cout << runner << " " << w << ": only " << r.completed << " trials completed\n";
          continue;
        }
        strict[{runner, w}].push_back(r.ideal / r.span);
        std::cout << std::left << std::setw(7) << r.runner << std::setw(8) << r.workers << std::setw(9)
                  << std::setprecision(1) << r.ideal << std::setw(11) << std::setprecision(2) << r.span << std::setw(8)
                  << percent(r.ideal / r.span) << std::setw(10) << percent(r.command / r.workers / r.span)
                  << std::setw(11) << r.command / double(r.completed) * 1000 << std::setw(13) << r.handover * 1000
                  << std::setw(15) << r.scheduling * 1000 << std::setw(14) << r.total << std::setw(9)
                  << percent(r.ideal / r.total) << r.load << std::endl;
      }
    }
  }
  if (repeat > 1) {
    std::cout << "\nstrict efficiency over " << repeat << " runs: best / median / worst\n";
    for (auto& [key, v] : strict) {
      std::sort(v.begin(), v.end());
      std::cout << std::left << std::setw(7) << key.first << std::setw(4) << key.second << percent(v.back()) << " / "
                << percent(v[(v.size() - 1) / 2]) << " / " << percent(v.front()) << "\n";
    }
  }
  std::cout << "load after: " << loadavg() << "\n";
  if (keep) std::cout << "campaign folders kept in " << work.string() << "\n";
  else fs::remove_all(work);
  return 0;
}
