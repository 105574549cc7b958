#pragma once
// `flexnas status DIR`: what a campaign directory holds, read-only (the scheduler may be running).
#include <string>

namespace flexnas::launch {

/// `flexnas status DIR` text: done/running/failed, best so far, rate and ETA, recent failures.
std::string campaign_status(const std::string& directory);
/// One line per trial: "id index hash status attempts value seed" (+ reason when failed), for
/// scripts and diffs (`flexnas status DIR --trials`).
std::string campaign_trials_table(const std::string& directory);

}  // namespace flexnas::launch
