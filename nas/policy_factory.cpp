#include "nas/policy_factory.h"

#include <stdexcept>

namespace flexnas::nas {

const EnumNames<PolicyKind>& policy_kind_names() {
  static const EnumNames<PolicyKind> names{
      {"boshnas", PolicyKind::kBoshnas}, {"random", PolicyKind::kRandom}, {"evolution", PolicyKind::kEvolution},
      {"pareto", PolicyKind::kPareto},   {"nsga2", PolicyKind::kNsga2}};
  return names;
}

const std::vector<std::string>& policy_names() {
  static const std::vector<std::string> names = enum_spellings(policy_kind_names());
  return names;
}

std::unique_ptr<Policy> make_policy(PolicyKind kind, const Library& library, const PolicyOptions& options,
                                    const BoshnasOptions& boshnas, const EvolutionOptions& evolution,
                                    const ParetoOptions& pareto, const Nsga2Options& nsga2) {
  switch (kind) {
    case PolicyKind::kBoshnas: return std::make_unique<BoshnasPolicy>(library, options, boshnas);
    case PolicyKind::kRandom: return std::make_unique<RandomPolicy>(library, options);
    case PolicyKind::kEvolution: return std::make_unique<EvolutionPolicy>(library, options, evolution);
    case PolicyKind::kPareto: return std::make_unique<ParetoPolicy>(library, options, pareto);
    case PolicyKind::kNsga2: return std::make_unique<Nsga2Policy>(library, options, nsga2);
  }
  throw std::logic_error("make_policy: unknown policy kind");
}

}  // namespace flexnas::nas
