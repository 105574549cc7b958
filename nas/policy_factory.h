#pragma once
// The search policies by name: the kinds a campaign file or `flexnas replay --policy` may name, and
// the factory that builds one. Every policy a user can choose is registered here and nowhere else.
#include <memory>
#include <string>
#include <vector>

#include "design_space/enum_names.h"
#include "nas/boshnas.h"
#include "nas/multi_objective.h"
#include "nas/policy.h"

namespace flexnas::nas {

/// The search policies make_policy builds.
enum class PolicyKind { kBoshnas, kRandom, kEvolution, kPareto, kNsga2 };
/// Their spellings in campaign files and on the command line: boshnas, random, evolution, pareto,
/// nsga2 (the last two search score vs parameters, nas/multi_objective.h).
const EnumNames<PolicyKind>& policy_kind_names();
/// The spellings alone, in that order.
const std::vector<std::string>& policy_names();

/// Builds the policy of kind `kind` (the name was checked where it was read).
std::unique_ptr<Policy> make_policy(PolicyKind kind, const Library& library, const PolicyOptions& options,
                                    const BoshnasOptions& boshnas = {}, const EvolutionOptions& evolution = {},
                                    const ParetoOptions& pareto = {}, const Nsga2Options& nsga2 = {});

}  // namespace flexnas::nas
