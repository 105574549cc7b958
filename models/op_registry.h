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

/// What one axis of an op's parameter tensor means, so weight transfer (transfer/transfer.h, which
/// maps these to its Axis kinds) knows which entries of two models' tensors correspond.
struct LayoutAxis {
  enum class Kind {
    kHiddenIn,    // the input side of a Linear reading the layer's hidden width h
    kHiddenOut,   // a vector in the hidden space h
    kHiddenDiag,  // per-unit scale or channel over h (depthwise convolutions over h)
    kHeads,       // groups x heads x dim (attention widths): common heads, first dims
    kOrdered,     // first min entries (head dims, features of one head, singleton axes)
    kCentered,    // aligned at the centre: odd sizes (kernel taps, 2N+1 windows, 2P-1 distances)
  };
  Kind kind = Kind::kOrdered;
  int64_t size = 0;
  int64_t groups = 1, heads = 1, dim = 0;  // kHeads: size = groups * heads * dim
  bool centered_dim = false;               // kHeads: the per-head entries are centred kernel taps

  static LayoutAxis hidden_in(int64_t h) { return {Kind::kHiddenIn, h}; }
  static LayoutAxis hidden_out(int64_t h) { return {Kind::kHiddenOut, h}; }
  static LayoutAxis hidden_diag(int64_t h) { return {Kind::kHiddenDiag, h}; }
  static LayoutAxis ordered(int64_t n) { return {Kind::kOrdered, n}; }
  static LayoutAxis centered(int64_t n) { return {Kind::kCentered, n}; }
  static LayoutAxis head_blocks(int64_t groups, int64_t heads, int64_t dim, bool centered_dim = false);
};

/// One parameter tensor, named relative to its module ("query.weight" under attention.self.,
/// "wma" under attention.self.heads.<j>.).
struct LayoutTensor {
  std::string name;
  std::vector<LayoutAxis> axes;
};

/// The parameters of a core or head, each once (the contract test holds names and shapes to the
/// built module's named_parameters()); their order is the transfer plan's.
struct ParamLayout {
  std::vector<LayoutTensor> tensors;
  void add(const std::string& name, std::vector<LayoutAxis> axes);
  /// A Linear in -> out: weight [out, in], bias [out].
  void linear(const std::string& prefix, const LayoutAxis& out, const LayoutAxis& in);
};

/// A standard-format core's parameters and the axis of its output width (the SelfOutput's input).
struct CoreLayout : ParamLayout {
  LayoutAxis output;
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
  /// What build_core(c)'s parameters are, axis by axis (weight transfer).
  std::function<CoreLayout(const CoreConfig&)> core_layout;

  // Hetero format (the shared Q/K/V projections and distance table belong to the layer).
  /// "" when one head's dimensions work, else the problem; optional (no check when empty).
  std::function<std::string(const HeadConfig&)> check_head;
  std::function<int64_t(const HeadConfig&)> head_params;
  std::function<double(const HeadConfig&, int64_t seq)> head_flops;
  std::function<std::shared_ptr<HeadOp>(const HeadConfig&)> build_head;
  /// What build_head(c)'s own parameters are (the layer's Q/K/V and distance table are not).
  std::function<ParamLayout(const HeadConfig&)> head_layout;

  // The operation vocabulary's cost order (design_space/distance.cpp, spec §2.4), through
  // models::op_catalog(). Groups sort by rank, equal ranks by name; the reference's groups are
  // l 0, sa 1, c 2, so a new type takes a rank after them (changing a rank changes every distance).
  int order_rank = 100;
  /// A valid parameter's place in its group: ascending, equal keys by name. Empty: by name.
  std::function<int64_t(const std::string& param)> param_order;

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
