// flexnas slurm submit|status|cancel: run a search campaign as SLURM jobs that drain before the
// time limit and resume by themselves (launch/slurm/slurm.h).
#include <iostream>
#include <regex>

#include "design_space/error.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/slurm/slurm.h"

namespace flexnas::launch {
namespace {

struct SlurmCommandOptions {
  SlurmSubmitOptions submit;         // submit: every default is in SlurmSubmitOptions / SlurmResources
  std::string campaign_dir;          // status, cancel: campaign directory (or its campaign.yaml)
  bool pending_only = false;         // cancel: leave running jobs alone (used by the job script)
};

/// A whole-number flag with a lower bound; a bad value is "error: --flag: ..." (exit 2). --help
/// shows `target` as the default when it is a value the flag accepts (0 for "the cluster's" is not).
void add_count(CLI::App* cmd, const std::string& flag, int64_t& target, int64_t min, const std::string& help,
               const std::string& type_name = "N") {
  CLI::Option* opt = cmd->add_option_function<std::string>(
      flag,
      [&target, flag, min](const std::string& text) {
        static const std::regex whole("^[0-9]{1,9}$");
        if (!std::regex_match(text, whole) || std::stoll(text) < min)
          flag_error(flag, "expected a whole number >= " + std::to_string(min) + ", got '" + text + "'");
        target = std::stoll(text);
      },
      help);
  opt->type_name(type_name);
  if (target >= min) opt->default_str(std::to_string(target));
}

void run_submit(const SlurmCommandOptions& o) {
  const SlurmJobSpec spec = make_job_spec(o.submit);
  const SubmitResult result = submit_campaign(spec, o.submit.chain, o.submit.dry_run, run_command);
  std::cout << "script: " << result.script_path << "\n";
  if (o.submit.dry_run) {
    std::cout << "dry run: nothing submitted; the jobs would be queued with:\n";
    for (const auto& argv : result.commands) {
      std::string line;
      for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
      std::cout << "  " << line << "\n";
    }
    return;
  }
  std::cout << "submitted job " << result.job_ids.front() << " for campaign " << spec.campaign_dir << "\n";
  for (size_t i = 1; i < result.job_ids.size(); ++i)
    std::cout << "queued follow-on job " << result.job_ids[i] << " (after job " << result.job_ids[i - 1] << ")\n";
  std::cout << "jobs recorded in " << slurm_jobs_path(spec.campaign_dir) << "\n"
            << "watch: flexnas slurm status " << spec.campaign_dir << "\n";
}

void add_slurm_command(CLI::App& app) {
  auto* slurm = app.add_subcommand("slurm", "run a search campaign as SLURM jobs that drain before the time limit "
                                            "and resume by themselves");
  slurm->require_subcommand(1);
  auto options = std::make_shared<SlurmCommandOptions>();
  SlurmSubmitOptions& s = options->submit;
  SlurmResources& r = s.resources;

  auto* submit = slurm->add_subcommand(
      "submit", "write <campaign dir>/slurm/job.sbatch and submit it with sbatch (plus --chain follow-on jobs)");
  submit->add_option("campaign", s.campaign, "campaign YAML file")->required();
  add_count(submit, "--nodes", r.nodes, 1, "nodes");
  add_count(submit, "--ntasks-per-node", r.ntasks_per_node, 1,
            "tasks (MPI ranks) per node; with more than one task in all, rank 0 schedules");
  add_count(submit, "--gpus-per-task", r.gpus_per_task, 0, "GPUs per task (0 = no GPU request)");
  add_count(submit, "--cpus-per-task", r.cpus_per_task, 1, "CPUs per task (default: the cluster's)");
  submit->add_option("--mem", r.mem, "memory per node, e.g. 32G (default: the cluster's)")->type_name("SIZE");
  submit->add_option("--time", r.time, "time limit per job, HH:MM:SS or D-HH:MM:SS (default: the partition's)")->type_name("TIME");
  submit->add_option("--partition", r.partition, "partition (default: the cluster's default partition)")->type_name("NAME");
  submit->add_option("--account", r.account, "account to charge")->type_name("NAME");
  submit->add_option("--qos", r.qos, "quality of service")->type_name("NAME");
  submit->add_option("--setup", s.setup, "shell file whose lines set up the environment (module load ...)")->type_name("FILE");
  add_count(submit, "--chain", s.chain, 0,
            "follow-on jobs queued with --dependency=afterany, each resuming the campaign");
  add_count(submit, "--signal-lead", s.signal_lead, 1,
            "seconds before the time limit at which SLURM sends USR1 to drain (default: the campaign's "
            "scheduler.drain_timeout + " + std::to_string(kSignalLeadMargin) + ")",
            "SECONDS");
  add_enum_option(submit, "--launcher", s.launcher, launcher_names(), "what starts `flexnas search` in the job");
  submit->add_option("--mpi", s.mpi, "srun --mpi type for multi-task jobs, e.g. pmix (default: the cluster's)")->type_name("TYPE");
  submit->add_option("--flexnas", s.flexnas, "flexnas binary the job runs (default: this one)")->type_name("PATH");
  submit->add_flag("--dry-run", s.dry_run, "write the script and print the sbatch commands; submit nothing");
  submit->callback([options] { run_submit(*options); });

  auto* status = slurm->add_subcommand("status", "state of every job submitted for a campaign, explained");
  status->add_option("campaign", options->campaign_dir, "campaign directory (or its campaign YAML)")->required();
  status->callback([options] {
    print_status(resolve_campaign_dir(options->campaign_dir), run_command, std::cout);
  });

  auto* cancel = slurm->add_subcommand("cancel", "scancel every queued or running job recorded for a campaign");
  cancel->add_option("campaign", options->campaign_dir, "campaign directory (or its campaign YAML)")->required();
  cancel->add_flag("--pending-only", options->pending_only, "cancel only jobs that have not started");
  cancel->callback([options] {
    cancel_jobs(resolve_campaign_dir(options->campaign_dir), options->pending_only, run_command, std::cout);
  });
}

FLEXNAS_REGISTER_COMMAND("slurm", add_slurm_command);

}  // namespace
}  // namespace flexnas::launch
