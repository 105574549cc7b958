#pragma once
// The MPI runner: rank 0 runs the scheduler, ranks 1..N-1 run trials. Detected from the
// environment (Open MPI's OMPI_COMM_WORLD_SIZE, or PMIx under srun), so one binary serves both.
//
// Protocol (every message a JSON string, MPI_CHAR):
//   0 -> w  task      TrialTask           start an attempt
//   0 -> w  cancel    {}                  kill the running attempt (drain timeout)
//   0 -> w  stop      {}                  exit
//   w -> 0  result    TrialOutcome        the attempt ended
//   w -> 0  heartbeat {"trial": id}       every second while a child process runs
// Rank 0 only uses non-blocking probes, with MPI_ERRORS_RETURN: a busy worker that is silent for
// scheduler.heartbeat_timeout seconds is declared lost, its attempt failed ("worker rank r lost"),
// retried elsewhere, and it gets no more work. Whether the job survives a dead rank at all is up
// to the launcher: plain Open MPI 4.1 `mpirun` aborts the whole job when a rank is killed (then
// `flexnas search ... --resume` recovers: completed trials are kept, the running ones re-run).
#include <string>

#include "launch/campaign/campaign_config.h"

namespace flexnas::launch {

/// True when this process was started by an MPI launcher with more than one rank.
bool mpi_requested();

/// Runs the campaign under MPI (scheduler on rank 0, workers elsewhere). Returns the exit code.
int run_search_mpi(const CampaignConfig& config, bool resume, bool quiet);

}  // namespace flexnas::launch
