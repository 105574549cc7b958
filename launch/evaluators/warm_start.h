#pragma once
// Warm start for the builtin evaluator: which trained model a new trial starts from (spec §4.5,
// §6; defect 25 fixed). Candidates, nearest first:
//   - the campaign's own trained library neighbours of the trial (the library's neighbour lists);
//   - the parent campaign's trained models (hierarchical refinement: coarse -> fine), ordered by
//     structural distance to the trial, since they are not in this library's neighbour lists.
// The candidate with the largest transfer overlap (fraction of the trial's parameters that receive
// source values) at or above the threshold wins; ties go to the nearer one (own neighbours before
// parent models). Overlaps come from the
// model dicts alone (no model is built); each checkpoint's model options are read once.
// Torch-free header: the scheduler includes it.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/library.h"
#include "transfer/transfer.h"

namespace flexnas::launch {

/// A trained model of a parent campaign.
struct ParentModel {
  std::string hash;
  Architecture arch;
  std::string checkpoint;  // its pretrained checkpoint directory
};

struct WarmStartChoice {
  std::string hash;
  std::string checkpoint;
  double overlap = 0;
  bool from_parent = false;
};

class WarmStartChooser {
 public:
  /// `mode`: "od" | "rp" (the overlap depends on it only through which tensors can be filled).
  WarmStartChooser(double threshold, transfer::TransferMode mode);
  ~WarmStartChooser();
  WarmStartChooser(const WarmStartChooser&) = delete;
  WarmStartChooser& operator=(const WarmStartChooser&) = delete;

  /// `trained`: hash -> checkpoint of this campaign's completed trials.
  std::optional<WarmStartChoice> choose(const Library& library, int64_t target,
                                        const std::map<std::string, std::string>& trained,
                                        const std::vector<ParentModel>& parent_models);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexnas::launch
