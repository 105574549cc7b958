// flexnas search CAMPAIGN.yaml [--resume]: runs a search campaign (docs/campaigns.md). Without MPI
// the scheduler and `workers` local workers run in this process; under `mpirun -np N` rank 0
// schedules and ranks 1..N-1 run trials. Exit codes: 0 finished, 1 error, 2 bad input,
// 128+signal after a graceful stop (SIGTERM 143, SIGINT 130, SIGUSR1 138).
#include <optional>

#include "design_space/error.h"
#include "launch/campaign/search.h"
#include "launch/cli/command.h"

namespace flexnas::launch {
namespace {

struct SearchCliOptions {
  std::string config;
  SearchOptions search;
  std::optional<int64_t> budget;  // --budget, when given: SearchOptions::budget_trials
};

void add_search_command(CLI::App& app) {
  auto options = std::make_shared<SearchCliOptions>();
  CLI::App* cmd = app.add_subcommand("search", "run (or --resume) a search campaign described by a campaign YAML");
  cmd->add_option("campaign", options->config, "campaign YAML file")->required();
  cmd->add_flag("--resume", options->search.resume, "continue the campaign in the configured directory");
  cmd->add_flag("--quiet,-q", options->search.quiet, "no progress lines or leaderboard");
  cmd->add_option("--workers", options->search.workers,
                  "local runner: number of worker threads (overrides `workers`; ignored under MPI); 0 = the "
                  "campaign's `workers`");
  cmd->add_option("--budget", options->budget,
                  "trials in total (overrides budget.trials; with --resume, continues a campaign with more trials; "
                  "0 = no limit)");
  cmd->callback([options] {
    if (options->budget) {
      if (*options->budget < 0)
        flag_error("--budget", "expected a non-negative number of trials, got " + std::to_string(*options->budget));
      options->search.budget_trials = *options->budget;
    }
    if (options->search.workers < 0)
      flag_error("--workers", "expected a positive integer, got " + std::to_string(options->search.workers));
    command_exit_code() = run_search(options->config, options->search);
  });
}

}  // namespace
FLEXNAS_REGISTER_COMMAND("search", add_search_command);
}  // namespace flexnas::launch
