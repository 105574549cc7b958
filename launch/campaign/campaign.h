#pragma once
// A campaign as a directory: open_campaign creates it (or opens it for --resume), locks it, freezes
// or checks its configuration, opens its store (campaign.db) and loads or builds its library; the
// parent campaign of a hierarchical refinement is read here too. What runs a campaign is above this
// file: search.h picks the local or the MPI runner, both run the scheduler (scheduler.h) on the
// Campaign opened here.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "design_space/library.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch/evaluators/warm_start.h"

namespace flexnas::launch {

/// Opens or creates the campaign directory: locks it (a second `flexnas search` on the same
/// directory is an error while the first runs), checks/freezes the configuration, opens the store,
/// loads or generates the library (with performances reset on the first start).
struct Campaign {
  CampaignConfig config;
  std::unique_ptr<CampaignStore> store;
  Library library;
  bool resumed = false;
  int64_t level = 1;                     // 1 + the parent's level (hierarchical refinement)
  // Parent campaign (config.parent): its completed trials and its trained models.
  std::vector<TrialRow> parent_completed;
  std::vector<ParentModel> parent_models;
  int64_t parent_level = 0;
  std::shared_ptr<void> lock;            // exclusive lock on <directory>/.lock while the campaign is open
};
Campaign open_campaign(const CampaignConfig& config, bool resume);

/// Seed of a trial: derived from (campaign seed, trial id); the same for every attempt.
uint64_t trial_seed(uint64_t campaign_seed, int64_t trial_id);

}  // namespace flexnas::launch
