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
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace flexnas::launch {

/// Resources of one job. Empty strings / zero mean "the cluster's default" (the line is left out).
struct SlurmResources {
  int64_t nodes = 1;               // --nodes
  int64_t ntasks_per_node = 1;     // --ntasks-per-node (ranks per node; rank 0 schedules under MPI)
  int64_t gpus_per_task = 0;       // --gpus-per-task (0: no GPU line)
  int64_t cpus_per_task = 0;       // --cpus-per-task (0: the cluster's default)
  std::string mem;                 // --mem, e.g. 16G ("" = default)
  std::string time;                // --time, e.g. 24:00:00 ("" = the partition's default limit)
  std::string partition;           // --partition
  std::string account;             // --account
  std::string qos;                 // --qos
};

/// Everything `flexnas slurm submit` needs (the CLI fills it; defaults here only).
struct SlurmSubmitOptions {
  std::string campaign;            // campaign.yaml
  SlurmResources resources;
  std::string setup;               // a shell file whose lines are copied into the script (module loads)
  int64_t chain = 0;               // follow-on jobs queued with --dependency=afterany:<previous>
  int64_t signal_lead = 0;         // seconds before the limit for USR1 (0 = drain_timeout + 30 s)
  std::string launcher = "srun";   // srun | mpirun: how the job step starts `flexnas search`
  std::string mpi;                 // srun --mpi=<type> ("" = the cluster's MpiDefault)
  std::string flexnas;             // absolute path of the flexnas binary ("" = this executable)
  bool dry_run = false;            // write the script, print the sbatch commands, submit nothing
};

/// The validated, resolved description of the job script.
struct SlurmJobSpec {
  std::string job_name;            // flexnas-<campaign name>
  std::string campaign_file;       // absolute campaign.yaml
  std::string campaign_dir;        // absolute campaign directory
  std::string flexnas;             // absolute flexnas binary
  SlurmResources resources;
  std::string setup_file;          // absolute path ("" = none)
  std::string setup_text;          // its contents
  int64_t signal_lead = 0;         // seconds
  std::string launcher = "srun";
  std::string mpi;
};

/// Seconds of a SLURM time limit. Accepts SLURM's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
/// Throws ConfigError naming `flag` for anything else or for less than SLURM's minimum of 1 minute.
int64_t parse_slurm_time(const std::string& text, const std::string& flag = "--time");
/// "HH:MM:SS" up to a day (24:00:00), "D-HH:MM:SS" beyond.
std::string format_slurm_time(int64_t seconds);

/// Checks every resource flag; throws ConfigError "error: --flag: found ...; expected ..." (exit 2).
void validate_resources(const SlurmResources& r);

/// Validates the options, reads the campaign file (located errors) and the setup file; the default
/// signal lead is the campaign's scheduler.drain_timeout + 30 s.
SlurmJobSpec make_job_spec(const SlurmSubmitOptions& options);

/// The batch script's text (deterministic: no dates, so tests can compare it line by line).
std::string sbatch_script(const SlurmJobSpec& spec);
/// Exit code the batch script records when the job step ended with 0 but `flexnas search` did not
/// write $FLEXNAS_FINISHED_FILE (srun can end with 0 without running it): the chain resumes.
inline constexpr int kSlurmStepUnconfirmedExit = 75;

/// <dir>/slurm, <dir>/slurm/job.sbatch, <dir>/slurm/jobs.json.
std::string slurm_dir(const std::string& campaign_dir);
std::string sbatch_script_path(const std::string& campaign_dir);
std::string slurm_jobs_path(const std::string& campaign_dir);
std::string slurm_finished_path(const std::string& campaign_dir);

/// Output of one client command (sbatch, squeue, scontrol, sacct, scancel).
struct CommandOutput {
  bool found = true;               // false: the program is not on PATH
  int exit_code = 0;
  std::string out, err;
};
/// Runs a client command; tests replace it with a fake cluster.
using CommandRunner = std::function<CommandOutput(const std::vector<std::string>& argv)>;
/// The real runner: fork/exec with stdout and stderr captured.
CommandOutput run_command(const std::vector<std::string>& argv);

/// One recorded job.
struct SlurmJobRecord {
  std::string id;                  // SLURM job id
  std::string dependency;          // "" or "afterany:<id>"
  std::string submitted;           // ISO-8601 UTC
  int64_t submission = 0;          // which `flexnas slurm submit` queued it (1, 2, ...)
};
std::vector<SlurmJobRecord> read_job_records(const std::string& campaign_dir);
void write_job_records(const std::string& campaign_dir, const std::vector<SlurmJobRecord>& jobs);

/// The sbatch command lines of a submission: the first job, then `chain` follow-ons, each depending
/// on the one before ("{prev}" stands for the previous job's id until it is known).
std::vector<std::vector<std::string>> sbatch_commands(const std::string& script_path, int64_t chain);

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

/// A campaign argument: a campaign directory, or a campaign YAML (its `directory`).
std::string resolve_campaign_dir(const std::string& dir_or_yaml);

}  // namespace flexnas::launch
