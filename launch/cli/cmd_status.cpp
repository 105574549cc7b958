// flexnas status DIR: progress of a campaign (done/running/failed, best so far, rate, ETA,
// recent failures, leaderboard). Reads campaign.db read-only; safe while the campaign runs.
#include <iostream>

#include "launch/campaign/status.h"
#include "launch/cli/command.h"

namespace flexnas::launch {
namespace {

void add_status_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto trials = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("status", "print the progress of a search campaign");
  cmd->add_option("directory", *dir, "campaign directory (holds campaign.db)")->required();
  cmd->add_flag("--trials", *trials, "print every trial (id index hash status attempts value seed) instead");
  cmd->callback([dir, trials] { std::cout << (*trials ? campaign_trials_table(*dir) : campaign_status(*dir)); });
}

}  // namespace
FLEXNAS_REGISTER_COMMAND("status", add_status_command);
}  // namespace flexnas::launch
