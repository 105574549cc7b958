#pragma once
// The SLURM job of a search campaign: the submit options checked and resolved into a job
// specification, the batch script written from it (see slurm.h for the files and for draining), the
// sbatch command lines of a chain, and the paths under <campaign directory>/slurm/.
#include <cstdint>
#include <string>
#include <vector>

#include "design_space/enum_names.h"

namespace flexnas::launch {

/// How the job step starts `flexnas search`: srun, or mpirun inside the allocation.
enum class Launcher { kSrun, kMpirun };
const EnumNames<Launcher>& launcher_names();  // srun, mpirun

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

/// The default signal lead: the campaign's scheduler.drain_timeout plus this many seconds.
inline constexpr int64_t kSignalLeadMargin = 30;

/// Everything `flexnas slurm submit` needs (the CLI fills it; defaults here only).
struct SlurmSubmitOptions {
  std::string campaign;            // campaign.yaml
  SlurmResources resources;
  std::string setup;               // a shell file whose lines are copied into the script (module loads)
  int64_t chain = 0;               // follow-on jobs queued with --dependency=afterany:<previous>
  int64_t signal_lead = 0;         // seconds before the limit for USR1 (0 = drain_timeout + kSignalLeadMargin)
  Launcher launcher = Launcher::kSrun;  // how the job step starts `flexnas search`
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
  Launcher launcher = Launcher::kSrun;
  std::string mpi;
};

/// Seconds of a SLURM time limit. Accepts SLURM's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
/// Throws ConfigError naming `flag` for anything else or for less than SLURM's minimum of 1 minute.
int64_t parse_slurm_time(const std::string& text, const std::string& flag = "--time");
/// "HH:MM:SS" up to a day (24:00:00), "D-HH:MM:SS" beyond.
std::string format_slurm_time(int64_t seconds);

/// Checks every resource flag; throws ConfigError "error: --flag: found ...; expected ..." (exit 2,
/// launch/cli/command.h's flag_error).
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

/// The sbatch command lines of a submission: the first job, then `chain` follow-ons, each depending
/// on the one before ("{prev}" stands for the previous job's id until it is known).
std::vector<std::vector<std::string>> sbatch_commands(const std::string& script_path, int64_t chain);

/// A campaign argument: a campaign directory, or a campaign YAML (its `directory`).
std::string resolve_campaign_dir(const std::string& dir_or_yaml);

}  // namespace flexnas::launch
