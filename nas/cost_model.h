#pragma once
// Parameters and forward FLOPs of an architecture computed from its model dict alone (no model is
// built, no training), for constraints (`max_parameters`) and as a second objective. The header is
// Torch-free; the .cpp asks the model registry for op types the fork layout does not know (`ak`).
// Funnel pooling is not counted here (no decoder parameters, unpooled FLOPs): models::model_cost is
// exact for it.
//
// The count follows the layer layout of spec §5 (fork layout): embeddings (word, 514 positions,
// 1 token type, LayerNorm), per layer the attention core (Q/K/V, wma matrix, relative-position
// table, ConvBERT span convolution for `c`), SelfOutput (Linear + LayerNorm), the feed-forward
// stack, Output (Linear + LayerNorm), the projection when the width changes, and the pooler. The
// models helper's exact counter (models/) supersedes it for trained models; this one is what the
// search uses because it needs no LibTorch model per candidate.
#include <cstdint>

#include "design_space/architecture.h"

namespace flexnas::nas {

struct CostSettings {
  int64_t vocab_size = 30522;     // BERT uncased (spec §5.1); 50265 for RoBERTa BPE
  int64_t max_positions = 514;    // absolute table + relative tables of 2*514-1 rows
  int64_t sequence_length = 128;  // tokens per sequence for the FLOP count
  bool include_pooler = true;
};

struct ModelCost {
  int64_t parameters = 0;      // trainable parameters of the base model (+ pooler)
  double flops_per_token = 0;  // forward FLOPs per token (2 per multiply-add), embeddings excluded
};

ModelCost estimate_cost(const Architecture& arch, const CostSettings& settings = {});

}  // namespace flexnas::nas
