#pragma once
// The leaderboard: the best completed trials with their model dicts in one line each, as
// report/leaderboard.txt, the end of `flexnas search` and `flexnas status` show it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/library.h"
#include "launch/campaign/campaign_store.h"

namespace flexnas::launch {

/// "L4 | h256 sa-wma n4 f1024,1024,1024 x2 | pool2 h256 l-dct n2 f512 x2 (1 shared)": identical
/// consecutive layers merged as "xN"; "(k shared)" counts those of them that run with an earlier
/// layer's parameters (Architecture::share); "poolS" marks Funnel pooling before a layer.
std::string summarize_architecture(const Architecture& arch);

/// Top `n` completed trials by score: rank, level, trial, score, parameters, hash prefix, model-dict
/// summary. Trials taken over from a parent campaign (kind "level<N>") show their own level. With
/// `profiles` (measured latency and memory by hash) that hold any row, two more columns show them
/// ("-" where not measured).
std::string leaderboard(const std::vector<TrialRow>& trials, const Library& library, int64_t level, int n = 10,
                        const std::map<std::string, ProfileRow>* profiles = nullptr);

}  // namespace flexnas::launch
