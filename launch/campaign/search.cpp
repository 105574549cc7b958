#include "launch/campaign/search.h"

#include <iostream>
#include <memory>

#include "launch/campaign/campaign.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/mpi_runner.h"
#include "launch/campaign/scheduler.h"
#include "launch/campaign/signals.h"
#include "launch/campaign/worker_pool.h"
#include "launch/evaluators/evaluator.h"

namespace flexnas::launch {

int run_search(const std::string& config_path, const SearchOptions& options) {
  CampaignConfig config = load_campaign_config(config_path);
  if (options.workers > 0) config.workers = options.workers;
  if (options.budget_trials >= 0) config.budget.trials = options.budget_trials;
  install_stop_handlers();
  if (mpi_requested()) return run_search_mpi(config, options.resume, options.quiet);
  // Validate everything that can be wrong before any work starts: the evaluator loads its table
  // (located errors) before the campaign directory is created.
  std::shared_ptr<Evaluator> evaluator = make_evaluator(config);
  Campaign campaign = open_campaign(config, options.resume);
  auto pool = make_local_pool(evaluator, int(config.workers));
  SchedulerOptions so;
  so.quiet = options.quiet;
  if (!options.quiet)
    std::cout << "campaign " << config.name << " (" << config.directory << "): policy " << enum_name(nas::policy_kind_names(), config.policy.name)
              << ", evaluator " << enum_name(evaluator_type_names(), config.evaluator.type) << ", " << config.workers << " local workers"
              << (campaign.resumed ? ", resumed" : "") << std::endl;
  return run_scheduler(campaign, *pool, so);
}

}  // namespace flexnas::launch
