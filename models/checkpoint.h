#pragma once
// Checkpoint directories (DESIGN.md §3):
//   config.json        {"format": "flexnas-checkpoint", "format_version": 1, "architecture": model dict,
//                       "model": ModelOptions (vocab size, max positions, head, labels, ...),
//                       "tokenizer": {"file": ..., "sha256": ...}}   (tokenizer only when given)
//   model.safetensors  every parameter under its Hugging Face BERT-style name
//   metrics.json       free-form metrics (write_metrics / read_metrics)
//   training_state.*   written by models/training.h
// Every file is written atomically; corrupt or mismatched files give ConfigErrors naming the file
// and the tensor.
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "design_space/architecture.h"
#include "models/flex_model.h"

namespace flexnas::models {

inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kMetricsFile = "metrics.json";

struct CheckpointConfig {
  Architecture arch;
  ModelOptions options;
  std::string tokenizer_file;    // "" when none was given
  std::string tokenizer_sha256;  // hex SHA-256 of the tokenizer file

  nlohmann::ordered_json to_json() const;
};

/// Writes config.json and model.safetensors into `dir` (created if needed). When
/// `tokenizer_file` is not empty its SHA-256 is recorded.
void save_checkpoint(const std::string& dir, FlexModelImpl& model, const std::string& tokenizer_file = "");

/// Reads and validates dir/config.json (located ConfigErrors).
CheckpointConfig read_checkpoint_config(const std::string& dir);

/// How load_weights matches the file against the model.
enum class WeightsMatch {
  kStrict,    // every model tensor present with its shape, nothing else in the file
  kBaseOnly,  // only the base model ("bert.*" except the pooler) is required and loaded; heads stay fresh
};

/// Copies the tensors of a safetensors file into the model's parameters.
void load_weights(FlexModelImpl& model, const std::string& path, WeightsMatch match = WeightsMatch::kStrict);

/// Builds the model described by dir/config.json and loads dir/model.safetensors (strict).
/// `options_override`, when given, replaces the stored head/labels/dropouts (e.g. fine-tuning an MLM
/// checkpoint with a fresh classification head; the base weights are then loaded with kBaseOnly).
FlexModel load_checkpoint(const std::string& dir, const torch::Device& device = torch::kCPU,
                          CheckpointConfig* config_out = nullptr, const ModelOptions* options_override = nullptr);

/// metrics.json helpers (atomic write; read returns an empty object when the file is absent).
void write_metrics(const std::string& dir, const nlohmann::ordered_json& metrics);
nlohmann::ordered_json read_metrics(const std::string& dir);

}  // namespace flexnas::models
