#pragma once
// Measured latency and memory of library architectures for a campaign's measured constraints
// (objective.max_latency_ms, max_memory_mb) and `objective.cost: latency` (docs/campaigns.md).
// Each architecture is measured once, by this build's profile code (`flexnas model profile`, the
// builtin evaluator's executable when it names one) in a child process with the campaign's trial
// limits, at objective.profile's sequence length, batch, repeats and threads and the builtin
// evaluator's precision and device. Results are cached in campaign.db (the profiles table), so a
// resumed campaign never measures an architecture again; a failed measurement is recorded with
// its reason (the policy excludes that architecture).
#include <map>
#include <string>
#include <vector>

#include "design_space/library.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "nas/policy.h"

namespace flexnas::launch {

class ArchitectureProfiler {
 public:
  /// Loads the cache from `store`; `quiet`: no line per measurement on stdout.
  ArchitectureProfiler(const CampaignConfig& config, CampaignStore& store, const Library& library, bool quiet);

  /// The measurement of library architecture `index`: from the cache, or measured now and stored.
  nas::Measurement measure(int64_t index);
  /// The cached row of `hash`, if measured.
  const ProfileRow* find(const std::string& hash) const;
  /// Records the exclusion of a measured architecture (the policy's log entry number `seq`).
  void record_exclusion(const nas::TrialRecord& r, int64_t seq);
  /// The stored exclusions in order (exclude_seq).
  std::vector<const ProfileRow*> exclusions() const;
  int64_t measured_now() const { return measured_now_; }
  /// Every measurement so far, by hash.
  const std::map<std::string, ProfileRow>& rows() const { return cache_; }

 private:
  std::vector<std::string> command(const std::string& arch_path, const std::string& json_path) const;

  const CampaignConfig& config_;
  CampaignStore& store_;
  const Library& library_;
  bool quiet_;
  std::string exe_;
  std::map<std::string, ProfileRow> cache_;  // by hash
  int64_t measured_now_ = 0;
};

/// The measurement of a stored row, as the policy takes it.
nas::Measurement to_measurement(const ProfileRow& row);

}  // namespace flexnas::launch
