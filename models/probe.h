#pragma once
// Layer-wise probes (seed 002): a linear softmax-regression probe trained on the frozen hidden
// states of one layer, scored with the task's own metrics. Which layers carry a task's
// information, and what fine-tuning changed, is read off the probes' scores per layer.
//
//   extract_features: one batched, no-grad forward pass per batch that keeps every requested
//     layer's output (FlexModel::encode_layers): sequence tasks one vector per example ([CLS] or
//     the mean over its tokens), token tasks one vector per labelled token (a word's first piece).
//   train_probe: standardised features, a linear layer, cross-entropy (MSE for regression) plus an
//     L2 penalty, full-batch L-BFGS; the penalty is picked on a held-out tenth of the training split,
//     so dev and test stay untouched by the choice.
//   bootstrap_interval: percentile intervals over examples (a sentence's tokens resampled
//     together), paired between two probes on the same split.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/metrics.h"
#include "datasets/tasks.h"
#include "models/flex_model.h"
#include "models/precision.h"
#include "models/trainer.h"

namespace flexnas::models {

/// How a sequence task's example becomes one vector (token tasks use every labelled token).
enum class ProbePooling { kMean, kCls };
/// The spellings: mean, cls (`flexnas probe --pool`).
const EnumNames<ProbePooling>& probe_pooling_names();
/// "mean" | "cls".
std::string probe_pooling_name(ProbePooling pooling);
/// Parses "mean" | "cls"; ConfigError naming `flag` otherwise.
ProbePooling parse_probe_pooling(const std::string& text, const std::string& flag);

/// Frozen features of one split: per requested layer [N, h_layer] (bf16 to halve the memory of
/// large token splits), with the items' labels and the example each item came from.
struct LayerFeatures {
  std::vector<int64_t> layers;         // encode_layers indices: 0 = embeddings, l+1 = layer l
  std::vector<torch::Tensor> features; // one per layer: [N, h] bf16, CPU
  torch::Tensor labels;                // [N] int64 (classification) or float32 (regression)
  torch::Tensor example;               // [N] int64: index of the example in the split
  int64_t num_examples = 0;
  int64_t tokens = 0;                  // real tokens run through the model
  double seconds = 0;                  // wall time of the extraction
};

/// Runs `model` (eval mode, no gradients, autocast in `precision`) over every batch of `split` and
/// keeps the outputs of `layers` (sorted, unique encode_layers indices) at the items the probe
/// scores. The pass stops at the deepest requested layer.
LayerFeatures extract_features(FlexModelImpl& model, const EvalSplit& split, datasets::TaskKind kind,
                               const std::vector<int64_t>& layers, ProbePooling pooling, Precision precision);

/// These initialisers are the only defaults.
struct ProbeOptions {
  std::vector<double> l2_grid = {1e-2, 1e-3, 1e-4};  // penalties tried (large to small, warm-started)
  int64_t max_iterations = 100;                      // L-BFGS iterations per penalty
  double held_out_fraction = 0.1;                    // of the training examples, for picking the penalty
  uint64_t seed = 0;                                 // the held-out examples and the bootstrap
};

/// A trained probe: standardisation and a linear layer on the features of one layer.
struct Probe {
  torch::Tensor mean, inv_std;  // [h]
  torch::Tensor weight, bias;   // [h, K], [K] (K = 1 for regression)
  double target_mean = 0, target_std = 1;  // regression: the probe predicts standardised targets
  double l2 = 0;                // the penalty picked
  double held_out_score = 0;    // the task score on the held-out training examples at that penalty
  int64_t evaluations = 0;      // loss evaluations of L-BFGS at the picked penalty
  /// Classification: class ids [N] int64; regression: values [N] float32.
  torch::Tensor predict(const torch::Tensor& features) const;
};

/// Trains a probe on `train` (features [N, h] of one layer, labels as in LayerFeatures).
/// `num_labels` = the task's classes (1 = regression); `score` maps predictions to the task score.
Probe train_probe(const torch::Tensor& features, const torch::Tensor& labels, const torch::Tensor& example,
                  int64_t num_labels, const std::function<double(const datasets::Predictions&)>& score,
                  const ProbeOptions& options = {});

/// Predictions of `probe` against `labels` in the metrics' format.
datasets::Predictions probe_predictions(const Probe& probe, const torch::Tensor& features, const torch::Tensor& labels);

/// A percentile bootstrap interval.
struct Interval {
  double low = 0, high = 0;
};
/// The score's 95 % interval over `resamples` bootstrap resamples of the split's examples (the
/// items of one example stay together). `example` [N] gives each item's example.
Interval bootstrap_interval(const datasets::Predictions& p, const torch::Tensor& example,
                            const std::function<double(const datasets::Predictions&)>& score, int64_t resamples,
                            uint64_t seed);
/// The 95 % interval of score(a) - score(b), both on the same items, resampled together (paired).
Interval bootstrap_difference(const datasets::Predictions& a, const datasets::Predictions& b,
                              const torch::Tensor& example,
                              const std::function<double(const datasets::Predictions&)>& score, int64_t resamples,
                              uint64_t seed);

/// A short name of a layer's operations for tables and axes: "sa_sdp", "l_dft", "c_9", or the
/// hetero format's distinct head types joined by '+' ("sa_sdp+c_5"); "embeddings" for index 0.
std::string layer_op_label(const Architecture& arch, int64_t encode_index);

}  // namespace flexnas::models
