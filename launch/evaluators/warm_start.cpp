#include "launch/evaluators/warm_start.h"

#include <algorithm>

#include "design_space/distance.h"
#include "models/checkpoint.h"
#include "models/op_catalog.h"
#include "transfer/transfer.h"

namespace flexnas::launch {

struct WarmStartChooser::Impl {
  double threshold = 0.8;
  transfer::TransferMode mode = transfer::TransferMode::kOrdered;
  std::map<std::string, models::ModelOptions> options;  // checkpoint dir -> its model options

  const models::ModelOptions& options_of(const std::string& checkpoint) {
    auto it = options.find(checkpoint);
    if (it == options.end()) it = options.emplace(checkpoint, models::read_checkpoint_config(checkpoint).options).first;
    return it->second;
  }
};

WarmStartChooser::WarmStartChooser(double threshold, transfer::TransferMode mode) : impl_(std::make_unique<Impl>()) {
  impl_->threshold = threshold;
  impl_->mode = mode;
}

WarmStartChooser::~WarmStartChooser() = default;

std::optional<WarmStartChoice> WarmStartChooser::choose(const Library& library, int64_t target,
                                                        const std::map<std::string, std::string>& trained,
                                                        const std::vector<ParentModel>& parent_models) {
  const Architecture& arch = library.archs[size_t(target)];
  std::vector<transfer::WarmStartCandidate> candidates;
  auto add = [&](const std::string& hash, const Architecture& source, const std::string& checkpoint, int64_t index) {
    try {
      candidates.push_back({hash, &source, checkpoint, impl_->options_of(checkpoint), index});
    } catch (const std::exception&) {
      // A checkpoint that cannot be read (deleted, damaged) is simply not a candidate.
    }
  };
  if (size_t(target) < library.neighbors.size()) {
    for (const std::string& hash : library.neighbors[size_t(target)]) {  // nearest first
      auto it = trained.find(hash);
      const int64_t index = library.find(hash);
      if (it != trained.end() && index >= 0 && index != target) add(hash, library.archs[size_t(index)], it->second, index);
    }
  }
  std::vector<std::pair<double, const ParentModel*>> parents;
  DistanceSettings distance;
  distance.ops = &models::op_catalog();  // the op groups' order comes from the registry
  for (const ParentModel& p : parent_models)
    if (p.arch.format == arch.format) parents.emplace_back(structural_distance(p.arch, arch, distance), &p);
  std::stable_sort(parents.begin(), parents.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const size_t own = candidates.size();
  for (const auto& [distance, p] : parents) add(p->hash, p->arch, p->checkpoint, -1);
  const auto best = transfer::choose_warm_start(arch, candidates, impl_->threshold, impl_->mode);
  if (!best) return std::nullopt;
  WarmStartChoice choice{best->hash, best->checkpoint, best->overlap, false};
  for (size_t i = own; i < candidates.size(); ++i)
    if (candidates[i].checkpoint == best->checkpoint) choice.from_parent = true;
  return choice;
}

}  // namespace flexnas::launch
