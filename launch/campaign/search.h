#pragma once
// `flexnas search`: the entry point of a campaign. It reads the configuration, installs the stop
// handlers and picks the runner:
//   local : the scheduler plus `workers` threads in this process (worker_pool.h);
//   MPI   : under mpirun (detected from OMPI_COMM_WORLD_SIZE / PMIx), rank 0 schedules and ranks
//           1..N-1 each run one trial at a time (mpi_runner.h).
// Both open the campaign (campaign.h) and run the scheduler (scheduler.h).
#include <cstdint>
#include <string>

namespace flexnas::launch {

/// Runs `flexnas search`: detects MPI, starts the scheduler and the workers. Returns the exit code.
struct SearchOptions {
  bool resume = false;
  bool quiet = false;
  int64_t workers = 0;           // local runner: overrides the config's `workers` (0 = keep)
  int64_t budget_trials = -1;    // overrides budget.trials (-1 = keep); with resume: extends a campaign
};
int run_search(const std::string& config_path, const SearchOptions& options);

}  // namespace flexnas::launch
