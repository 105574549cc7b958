#pragma once
// The operation registry (STYLE.md B2), the one catalogue of operation types. Adding an operation
// type is adding one file in models/ops/ that fills an OpDefinition and registers it with
// FLEXNAS_REGISTER_OP (docs/models.md); design-space YAML sees it through models::op_catalog()
// (models/op_catalog.h), which reads this registry.
//
// An operation type serves both model-dict formats (spec §1.3-1.4):
//  - standard format: one AttentionCore per layer ("attention.self"), all heads of one type;
//  - hetero format: one HeadOp per head inside the generic hetero attention module.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace flexnas::models {

/// What every attention-bearing module needs besides its input, computed once per forward.
struct AttentionInputs {
  torch::Tensor mask_add;  // [B,1,1,T] additive key mask: 0 for tokens, -10000 for padding
  torch::Tensor valid;     // [B,T] float, 1 for tokens and 0 for padding
  // Funnel pool-q-only (models/pooling.h), only for ops with OpDefinition::pools_queries: the
  // forward's x holds the pooled queries [B,Tq,h]; keys and values come from `kv` [B,T,h] (mask_add
  // and valid describe kv), and query i sits at position q_pos[i] of kv ([Tq] int64). Undefined
  // otherwise.
  torch::Tensor kv, q_pos;
};

/// Standard format: the attention core of one layer. [B,T,h] -> [B,T,output_width]; the layer's
/// SelfOutput maps output_width back to h.
class AttentionCore : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) = 0;
};

/// Hetero format: the slices one head sees. q, k, v: [B,T,D]; rel: [B,T,T] relative-key scores
/// q_i . r_(i-j) (unscaled) from the layer's shared distance table. Under pool-q-only (heads of
/// ops with pools_queries only) q and rel have Tq < T rows.
struct HeadInputs {
  torch::Tensor q, k, v, rel;
};

/// Hetero format: one head. -> [B,T,D]
class HeadOp : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const HeadInputs& h, const AttentionInputs& in) = 0;
};

/// Dimensions of a standard-format core.
struct CoreConfig {
  int64_t hidden = 0;            // h_i
  int64_t heads = 0;             // n_i
  std::string param;             // the op parameter ("sdp", "dct", "9", ...)
  int64_t max_positions = 514;   // relative distance table has 2*max_positions-1 rows
  double attention_dropout = 0.1;
};

/// Dimensions of one hetero head.
struct HeadConfig {
  std::string param;             // "sdp", "dft", "9", ...
  int64_t dim = 0;               // D
  int64_t max_positions = 514;
  double attention_dropout = 0.1;
};

/// Everything the model needs to know about one operation type.
struct OpDefinition {
  std::string name;                          // "sa"
  std::string summary;                       // one line for `flexnas ops` and docs
  std::vector<std::string> example_params;   // valid parameters used by the contract tests
  std::vector<std::string> invalid_params;   // parameters check_param rejects (contract tests)
  /// "" when `param` is valid, else what is allowed ("sdp, wma").
  std::function<std::string(const std::string& param)> check_param;

  // Standard format.
  /// "" when the layer's dimensions work, else the problem ("4 heads do not divide h = 130").
  std::function<std::string(const CoreConfig&)> check_core;
  std::function<int64_t(const CoreConfig&)> core_output_width;
  std::function<int64_t(const CoreConfig&)> core_params;
  /// Forward FLOPs per token at sequence length `seq` (2 per multiply-add; matmuls only).
  std::function<double(const CoreConfig&, int64_t seq)> core_flops;
  std::function<std::shared_ptr<AttentionCore>(const CoreConfig&)> build_core;

  // Hetero format (the shared Q/K/V projections and distance table belong to the layer).
  /// "" when one head's dimensions work, else the problem; optional (no check when empty).
  std::function<std::string(const HeadConfig&)> check_head;
  std::function<int64_t(const HeadConfig&)> head_params;
  std::function<double(const HeadConfig&, int64_t seq)> head_flops;
  std::function<std::shared_ptr<HeadOp>(const HeadConfig&)> build_head;

  /// Whether the core and the head accept pooled queries (AttentionInputs::kv/q_pos). Layers of
  /// other ops that pool see a pooled stream throughout (Funnel's pool_q_only = false).
  bool pools_queries = false;
  /// With pools_queries: the core's forward FLOPs per *query* when `tq` queries attend over `tk`
  /// keys (the key/value projections run on tk tokens). head_flops(c, tk) is already per query.
  std::function<double(const CoreConfig&, int64_t tq, int64_t tk)> core_flops_pooled;
};

class OpRegistry {
 public:
  /// Adds a type; a duplicate name is an internal error.
  void add(OpDefinition def);
  /// nullptr when unknown.
  const OpDefinition* find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::map<std::string, OpDefinition> ops_;
};

/// The process-wide registry (function-local static, filled by the registrars in models/ops/).
OpRegistry& op_registry();

struct OpRegistrar {
  explicit OpRegistrar(OpDefinition def);
};

}  // namespace flexnas::models

/// Registers the OpDefinition returned by `make_fn()` under its name (one per file in models/ops/).
#define FLEXNAS_REGISTER_OP(ident, make_fn) \
  static ::flexnas::models::OpRegistrar flexnas_op_registrar_##ident(make_fn())
