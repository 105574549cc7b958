#pragma once
// A picture of a campaign's trials (DIR/report/trials.svg), written with every report: plain SVG,
// no plotting dependency, opens in any browser.
//   left:  each completed trial's value by trial number, and the best so far as a step line;
//   right: value against parameter count (log scale), the Pareto front (the best value at that
//          size or smaller) joined.
// Trials taken over from a parent campaign (an earlier level) are grey, this level's are blue.
#include <cstdint>
#include <string>
#include <vector>

#include "launch/campaign_store.h"

namespace flexnas::launch {

std::string trials_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       int64_t campaign_level);

}  // namespace flexnas::launch
