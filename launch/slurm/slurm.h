#pragma once
// SLURM jobs for search campaigns (`flexnas slurm submit|status|cancel`), for any SLURM cluster
// with no site-specific edits (the reference hard-codes one cluster, an ssh host and a local
// `slist` command, and loses jobs in states it does not know: spec §4.3-4.4, defects 18-19).
//
// Files, all under <campaign directory>/slurm/ and written atomically:
//   job.sbatch       the batch script (readable; `sbatch job.sbatch` by hand resumes the campaign)
//   jobs.json        every job submitted for the campaign, in order, with its dependency
//   job-<id>.out/err the job's output; job-<id>.exit the exit code of `flexnas search` in that job
//   finished         written by the job whose `flexnas search` exited 0 (the campaign is complete):
//                    a chained job that starts later exits at once with success
//
// Draining: the script asks for `--signal=B:USR1@<lead>`, traps USR1 in the batch shell, forwards it
// to the job step (srun or mpirun forward it to every task) and waits; `flexnas search` stops
// handing out work, waits up to scheduler.drain_timeout for running trials and exits 128+10. The
// next job of the chain (`--dependency=afterany:<previous>`) runs `flexnas search --resume`.
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "design_space/process.h"
#include "launch/slurm/job_script.h"

namespace flexnas::launch {

/// Runs a client command (sbatch, squeue, scontrol, sacct, scancel); tests replace it with a fake
/// cluster. The real runner is run_command (design_space/process.h: stdout and stderr captured).
using CommandRunner = std::function<CommandOutput(const std::vector<std::string>& argv)>;

/// One recorded job.
struct SlurmJobRecord {
  std::string id;                  // SLURM job id
  std::string dependency;          // "" or "afterany:<id>"
  std::string submitted;           // ISO-8601 UTC
  int64_t submission = 0;          // which `flexnas slurm submit` queued it (1, 2, ...)
};
std::vector<SlurmJobRecord> read_job_records(const std::string& campaign_dir);
void write_job_records(const std::string& campaign_dir, const std::vector<SlurmJobRecord>& jobs);

/// What SLURM says about one job, from squeue, then scontrol, then sacct (when accounting is on),
/// then the job's own exit file.
struct SlurmJobState {
  std::string id;
  std::string state;               // PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, ... or UNKNOWN
  std::string reason;              // squeue/scontrol reason (e.g. Dependency, Resources)
  std::string exit_code;           // "code:signal" as SLURM prints it ("" = unknown)
  std::string elapsed;             // run time
  std::string source;              // squeue | scontrol | sacct | exit file | none
  int search_exit = -1;            // exit code of `flexnas search` in the job (job-<id>.exit), -1 = none
};

/// True for PENDING, RUNNING and the other states of a job that still holds or awaits resources.
bool slurm_state_active(const std::string& state);
/// A sentence for users: what the state means for the campaign and what to do.
std::string explain_slurm_state(const SlurmJobState& job);
/// What an exit code of `flexnas search` (or of the job) means.
std::string explain_exit_code(int code);

/// Queries the state of every recorded job of the campaign.
std::vector<SlurmJobState> query_jobs(const std::string& campaign_dir, const std::vector<SlurmJobRecord>& jobs,
                                      const CommandRunner& run);

/// The recorded jobs of this campaign that are still queued or running (the campaign is locked).
std::vector<SlurmJobState> active_jobs(const std::string& campaign_dir, const CommandRunner& run);

struct SubmitResult {
  std::string script_path;
  std::vector<std::string> job_ids;         // empty on a dry run
  std::vector<std::vector<std::string>> commands;  // the sbatch command lines (dry run: "{prev}" left in)
};
/// Writes the script, checks that no recorded job of the campaign is still active, submits the
/// job and its chain, records each id in jobs.json as soon as it is known. Errors: sbatch missing
/// (what to install), the cluster rejecting the job (sbatch's own message), a locked campaign.
SubmitResult submit_campaign(const SlurmJobSpec& spec, int64_t chain, bool dry_run, const CommandRunner& run);

/// `flexnas slurm status`: a table of every recorded job with an explanation; returns the states.
std::vector<SlurmJobState> print_status(const std::string& campaign_dir, const CommandRunner& run, std::ostream& out);

/// Cancels the recorded jobs (only the pending ones when `pending_only`); returns the ids cancelled.
std::vector<std::string> cancel_jobs(const std::string& campaign_dir, bool pending_only, const CommandRunner& run,
                                     std::ostream& out);

}  // namespace flexnas::launch
