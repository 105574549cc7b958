#pragma once
// Parameters and forward FLOPs of an architecture from its model dict alone (no model is built,
// no training), for the policies' constraint (`max_parameters`), the second objective and a
// campaign's `parameters` column. One cost source: this asks models::base_model_cost, which reads
// every operation's counts from the registry and counts Funnel pooling, so the figures are those
// of the model flexnas builds (the base model of a sequence task: embeddings, encoder, pooler).
// The header is Torch-free.
#include <cstdint>

#include "design_space/architecture.h"

namespace flexnas::nas {

struct CostSettings {
  int64_t vocab_size = 30522;     // BERT uncased (spec §5.1); 50265 for RoBERTa BPE
  int64_t max_positions = 514;    // relative distance tables of 2*514-1 rows
  int64_t sequence_length = 128;  // tokens per sequence for the FLOP count
  bool include_pooler = true;
};

struct ModelCost {
  int64_t parameters = 0;      // trainable parameters of the base model (+ pooler)
  double flops_per_token = 0;  // forward FLOPs per token (2 per multiply-add) of the encoder
};

/// Throws ConfigError when the architecture cannot be built (unknown op, heads not dividing h, ...).
ModelCost estimate_cost(const Architecture& arch, const CostSettings& settings = {});

}  // namespace flexnas::nas
