#pragma once
// What `flexnas probe` reports: the results of the layer-wise probes of one or more checkpoints, as
// probes.json (result_json), probes.svg (the report split's score per layer, one line per
// checkpoint, 95 % intervals as bars) and the table printed at the end.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/metrics.h"
#include "datasets/tasks.h"
#include "models/probe.h"

namespace flexnas::launch {

struct SplitScore {
  std::string split;
  datasets::MetricSet metrics;
  double score = 0;
  models::Interval interval;
};
struct LayerResult {
  int64_t index = 0;
  std::string op;
  int64_t width = 0;
  double l2 = 0, held_out_score = 0;
  double seconds = 0;  // probe training
  std::vector<SplitScore> splits;
  std::map<std::string, datasets::Predictions> predictions;  // per evaluation split (for paired intervals)
};
struct CheckpointResult {
  std::string name, path;
  std::vector<LayerResult> layers;
  nlohmann::ordered_json extraction = nlohmann::ordered_json::object();
  nlohmann::ordered_json comparison;  // best layer vs embeddings
  std::string report_split;           // the split the comparisons are made on (test when there is one)
  torch::Tensor report_example;       // [N] the example of each item of that split (pairs checkpoints)
  nlohmann::ordered_json versus_first;  // per layer: this checkpoint's score minus the first checkpoint's
};

/// `v` with `digits` decimals.
std::string format_fixed(double v, int digits = 4);

/// One checkpoint's entry of probes.json.
nlohmann::ordered_json result_json(const CheckpointResult& r);

/// probes.svg: the report split's score per layer, one line per checkpoint, 95 % intervals as bars.
std::string probes_svg(const std::vector<CheckpointResult>& results, const datasets::TaskInfo& info,
                       const std::string& split, const std::string& pooling);

/// The table on stdout: each layer's scores on `splits`, then the best layer of each checkpoint.
void print_table(const std::vector<CheckpointResult>& results, const std::vector<std::string>& splits);

}  // namespace flexnas::launch
