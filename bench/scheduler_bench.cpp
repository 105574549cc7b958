// Scheduling overhead of `flexnas search`: N trials of a `command` evaluator that sleeps 50 ms, on
// 2, 4 and 8 workers (MPI worker ranks under `mpirun --oversubscribe`, and local threads), reporting
// efficiency = ideal time / measured time with ideal = trials x 50 ms / workers.
// Peer figure: Ray Tune's own published overhead test reached 87% (625 s ideal, 715 s measured);
// that is their published number, not measured here.
//
// Usage: scheduler_bench [--trials 2000] [--workers 2,4,8] [--sleep-ms 50] [--flexnas PATH]
//                        [--work DIR] [--space YAML] [--no-local] [--no-mpi]
// Measured time: from the first trial's start to the last trial's end as recorded in campaign.db
// (the scheduler's own loop), and end to end (process start-up, mpirun, library load included).
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "design_space/atomic_file.h"
#include "design_space/design_space.h"
#include "design_space/enumeration.h"
#include "design_space/library.h"
#include "design_space/library_builder.h"
#include "launch/campaign_config.h"
#include "launch/campaign_store.h"
#include "launch/child_process.h"

namespace fs = std::filesystem;
using namespace flexnas;

namespace {

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
  int64_t completed = 0;
};

Run run_one(const std::string& runner, int workers, const std::string& flexnas, const fs::path& work,
            const std::string& library, int64_t trials, int sleep_ms) {
  const std::string name = runner + "_" + std::to_string(workers);
  const fs::path yaml = work / (name + ".yaml");
  fs::remove_all(work / name);
  std::ostringstream y;
  const std::string secs = std::to_string(sleep_ms / 1000.0);
  y << "name: " << name << "\nlibrary: " << library << "\nobjective: {metric: score}\npolicy: random\n"
    << "budget: {trials: " << trials << "}\nseed: 1\nworkers: " << workers << "\n"
    << "evaluator: {type: command, argv: [/bin/sh, -c, 'sleep " << secs
    << " && echo \"{\\\"score\\\": 1}\" > \"$FLEXNAS_OUT/metrics.json\"']}\n";
  write_file_atomic(yaml.string(), y.str());
  std::string cmd = runner == "mpi" ? "mpirun -np " + std::to_string(workers + 1) + " --oversubscribe " : "";
  cmd += flexnas + " search " + yaml.string() + " --quiet";
  const auto start = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  Run r;
  r.runner = runner;
  r.workers = workers;
  r.total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc != 0) {
    std::cerr << "command failed (" << rc << "): " << cmd << "\n";
    return r;
  }
  launch::CampaignStore store(launch::campaign_db_path((work / name).string()), true);
  double first = 0, last = 0;
  for (const launch::TrialRow& t : store.trials()) {
    if (t.status != launch::trial_status::kCompleted) continue;
    ++r.completed;
    if (first == 0 || t.start_time < first) first = t.start_time;
    last = std::max(last, t.end_time);
  }
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
  int64_t trials = 2000;
  std::vector<int> worker_counts = {2, 4, 8};
  int sleep_ms = 50;
  std::string flexnas = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "bin" / "flexnas").string();
  fs::path work = fs::temp_directory_path() / "flexnas_scheduler_bench";
  bool local = true, mpi = true;
  std::string space_file;  // default: <source>/examples/design_space_test.yaml
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << ": missing value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--trials") trials = std::stoll(next());
    else if (a == "--workers") worker_counts = parse_list(next());
    else if (a == "--sleep-ms") sleep_ms = std::stoi(next());
    else if (a == "--flexnas") flexnas = next();
    else if (a == "--work") work = next();
    else if (a == "--space") space_file = next();
    else if (a == "--no-local") local = false;
    else if (a == "--no-mpi") mpi = false;
    else {
      std::cerr << "unknown flag " << a << "\n";
      return 2;
    }
  }
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
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

  // The trial command's own cost (fork, sh, sleep, metrics write), run back to back without any
  // scheduler: separates what the command costs on this machine from what scheduling adds.
  const std::vector<std::string> probe = {"/bin/sh", "-c", "sleep " + std::to_string(sleep_ms / 1000.0) +
                                                               " && echo '{\"score\": 1}' > \"$FLEXNAS_OUT/metrics.json\""};
  double own = 0;
  const int probes = 40;
  for (int i = 0; i < probes; ++i) {
    const fs::path out = work / "probe";
    fs::create_directories(out);
    const auto t0 = std::chrono::steady_clock::now();
    launch::run_child(probe, {{"FLEXNAS_OUT", out.string()}}, out.string(), (out / "log.txt").string(), {});
    own += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  own /= probes;

  std::cout << "scheduler_bench: " << trials << " trials of a command evaluator sleeping " << sleep_ms
            << " ms (/bin/sh -c 'sleep; echo metrics'), random policy\n";
  std::cout << "peer: Ray Tune's published overhead test: 87% (625 s ideal, 715 s measured) -- their figure\n\n";
  std::cout << "one trial command alone, back to back: " << std::setprecision(4) << own * 1000
            << " ms (the 50 ms sleep + process start-up on this machine)\n";
  std::cout << "efficiency = trials x " << sleep_ms << " ms / workers / campaign time; scheduler efficiency = trials x "
            << "command-alone time / workers / campaign time\n\n";
  std::cout << std::left << std::setw(8) << "runner" << std::setw(9) << "workers" << std::setw(11) << "ideal s"
            << std::setw(12) << "campaign s" << std::setw(12) << "efficiency" << std::setw(12) << "scheduler"
            << std::setw(13) << "end-to-end s" << "end-to-end efficiency\n";
  for (int w : worker_counts) {
    for (const std::string runner : {"mpi", "local"}) {
      if ((runner == std::string("mpi") && !mpi) || (runner == std::string("local") && !local)) continue;
      const Run r = run_one(runner, w, flexnas, work, library, trials, sleep_ms);
      if (r.completed != trials) {
        std::cout << runner << " " << w << ": only " << r.completed << " trials completed\n";
        continue;
      }
      std::cout << std::left << std::setw(8) << r.runner << std::setw(9) << r.workers << std::setw(11)
                << std::setprecision(4) << r.ideal << std::setw(12) << r.span << std::setw(12)
                << (std::to_string(int(1000 * r.ideal / r.span) / 10.0).substr(0, 4) + "%") << std::setw(12)
                << (std::to_string(int(1000 * (r.ideal * own / (sleep_ms / 1000.0)) / r.span) / 10.0).substr(0, 4) + "%")
                << std::setw(13) << r.total
                << (std::to_string(int(1000 * r.ideal / r.total) / 10.0).substr(0, 4) + "%") << std::endl;
    }
  }
  return 0;
}
