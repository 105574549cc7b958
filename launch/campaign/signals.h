#pragma once
// Stopping a campaign: SIGTERM, SIGINT or SIGUSR1 asks the scheduler to stop new work, wait up to
// scheduler.drain_timeout for running trials, record the rest as interrupted and return
// 128 + signal (`--resume` continues). The handler records the first stop signal; tests may request
// a stop directly.
namespace flexnas::launch {

void install_stop_handlers();
void request_stop(int signal);
int stop_signal();               // 0 = none
void clear_stop();

/// Files shared with the SLURM batch script (launch/slurm/job_script.cpp). srun can swallow a signal that
/// arrives while it starts the job step, and SLURM may signal a job seconds after it starts, so
/// the script also writes the signal number to $FLEXNAS_DRAIN_FILE, which the scheduler polls
/// (every 0.5 s) as if the signal had arrived. When the campaign finishes, the scheduler writes
/// its summary to $FLEXNAS_FINISHED_FILE: the script trusts that, not srun's exit code of 0.
inline constexpr const char* kDrainFileEnv = "FLEXNAS_DRAIN_FILE";
inline constexpr const char* kFinishedFileEnv = "FLEXNAS_FINISHED_FILE";
/// The signal named by $FLEXNAS_DRAIN_FILE when that file exists (USR1 when unreadable), else 0.
int drain_file_signal();

}  // namespace flexnas::launch
