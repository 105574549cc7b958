// Operation "sa": multi-head self-attention with relative-key position scores (spec §5.5/§5.6).
// Parameter: similarity "sdp" (q.k) or "wma" (q W k, one learned d x d matrix; shared by the
// heads of a standard layer, one per head in the hetero format).
#include <torch/torch.h>

#include "models/attention_common.h"
#include "models/op_registry.h"
#include "models/pooling.h"

namespace flexnas::models {
namespace {

torch::Tensor make_wma(torch::nn::Module& m, int64_t d) {
  // Fork initialisation: U(-0.1, 0.1).
  return m.register_parameter("wma", torch::empty({d, d}).uniform_(-0.1, 0.1));
}

/// Standard format: [B,T,h] -> [B,T,h].
class SelfAttentionCore : public AttentionCore {
 public:
  explicit SelfAttentionCore(const CoreConfig& c)
      : heads_(c.heads), d_(c.hidden / c.heads), max_positions_(c.max_positions), dropout_(c.attention_dropout) {
    query_ = register_module("query", torch::nn::Linear(c.hidden, c.hidden));
    key_ = register_module("key", torch::nn::Linear(c.hidden, c.hidden));
    value_ = register_module("value", torch::nn::Linear(c.hidden, c.hidden));
    distance_ = register_module("distance_embedding", torch::nn::Embedding(2 * c.max_positions - 1, d_));
    if (c.param == "wma") wma_ = make_wma(*this, d_);
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) override {
    const auto& kv = in.kv.defined() ? in.kv : x;  // pool-q-only: x holds the pooled queries
    auto q = split_heads(query_(x), heads_);  // [B,n,Tq,d]
    auto k = split_heads(key_(kv), heads_);   // [B,n,T,d]
    auto v = split_heads(value_(kv), heads_);
    auto content = torch::matmul(wma_.defined() ? torch::matmul(q, wma_) : q, k.transpose(-1, -2));
    auto rel = in.q_pos.defined() ? relative_key_scores_at(q, distance_->weight, max_positions_, in.q_pos, kv.size(1))
                                  : relative_key_scores(q, distance_->weight, max_positions_);
    return merge_heads(attend(content + rel, double(d_), in.mask_add, v, dropout_, is_training()));
  }

 private:
  int64_t heads_, d_, max_positions_;
  double dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
  torch::nn::Embedding distance_{nullptr};
  torch::Tensor wma_;
};

/// Hetero format: one head -> [B,T,D].
class SelfAttentionHead : public HeadOp {
 public:
  explicit SelfAttentionHead(const HeadConfig& c) : dim_(c.dim), dropout_(c.attention_dropout) {
    if (c.param == "wma") wma_ = make_wma(*this, c.dim);
  }

  torch::Tensor forward(const HeadInputs& h, const AttentionInputs& in) override {
    auto content = torch::matmul(wma_.defined() ? torch::matmul(h.q, wma_) : h.q, h.k.transpose(-1, -2));
    // Defect 28 fixed: the head outputs its context (the reference outputs zeros).
    return attend(content + h.rel, double(dim_), in.mask_add.squeeze(1), h.v, dropout_, is_training());
  }

 private:
  int64_t dim_;
  double dropout_;
  torch::Tensor wma_;
};

OpDefinition make_self_attention() {
  OpDefinition def;
  def.name = "sa";
  def.summary = "multi-head self-attention with relative-key scores; parameter: similarity sdp | wma";
  def.example_params = {"sdp", "wma"};
  def.invalid_params = {"", "SDP", "sdpa", "dft", "5"};
  def.check_param = [](const std::string& p) -> std::string { return p == "sdp" || p == "wma" ? "" : "sdp, wma"; };
  def.check_core = [](const CoreConfig& c) -> std::string {
    if (c.hidden % c.heads == 0) return "";
    return std::to_string(c.heads) + " heads do not divide the hidden size " + std::to_string(c.hidden);
  };
  def.core_output_width = [](const CoreConfig& c) { return c.hidden; };
  def.core_params = [](const CoreConfig& c) {
    const int64_t h = c.hidden, d = h / c.heads;
    return 3 * (h * h + h) + (2 * c.max_positions - 1) * d + (c.param == "wma" ? d * d : 0);
  };
  def.core_flops = [](const CoreConfig& c, int64_t T) {
    const double h = double(c.hidden), d = h / double(c.heads);
    // Q/K/V, q.k, relative scores over 2T-1 distances, P.V (and q W for wma).
    return 6 * h * h + 2 * T * h + 2 * (2 * T - 1) * h + 2 * T * h + (c.param == "wma" ? 2 * h * d : 0.0);
  };
  def.build_core = [](const CoreConfig& c) -> std::shared_ptr<AttentionCore> {
    return std::make_shared<SelfAttentionCore>(c);
  };
  def.core_layout = [](const CoreConfig& c) {
    // Q/K/V [h, h] read h and write n heads of d; the [2P-1, d] relative-key table is centred on
    // distance 0; wma [d, d] acts on one head's dims.
    using A = LayoutAxis;
    const int64_t d = c.hidden / c.heads;
    CoreLayout l;
    l.output = A::head_blocks(1, c.heads, d);
    for (const char* p : {"query", "key", "value"}) l.linear(p, l.output, A::hidden_in(c.hidden));
    l.add("distance_embedding.weight", {A::centered(2 * c.max_positions - 1), A::ordered(d)});
    if (c.param == "wma") l.add("wma", {A::ordered(d), A::ordered(d)});
    return l;
  };
  def.head_params = [](const HeadConfig& c) { return c.param == "wma" ? c.dim * c.dim : int64_t(0); };
  def.head_flops = [](const HeadConfig& c, int64_t T) {
    const double D = double(c.dim);
    return 4 * T * D + (c.param == "wma" ? 2 * D * D : 0.0);
  };
  def.build_head = [](const HeadConfig& c) -> std::shared_ptr<HeadOp> { return std::make_shared<SelfAttentionHead>(c); };
  def.head_layout = [](const HeadConfig& c) {
    ParamLayout l;
    if (c.param == "wma") l.add("wma", {LayoutAxis::ordered(c.dim), LayoutAxis::ordered(c.dim)});  // [D, D]
    return l;
  };
  def.order_rank = 1;  // the reference's groups: l, sa, c
  def.param_order = [](const std::string& p) { return p == "wma" ? int64_t(1) : int64_t(0); };  // sdp < wma
  def.pools_queries = true;
  def.core_flops_pooled = [](const CoreConfig& c, int64_t tq, int64_t tk) {
    const double h = double(c.hidden), d = h / double(c.heads), Tk = double(tk);
    // Q on the queries, K/V on the keys (per query: x tk/tq), then the core_flops terms over tk keys.
    return 2 * h * h + 4 * h * h * Tk / double(tq) + 2 * Tk * h + 2 * (2 * Tk - 1) * h + 2 * Tk * h +
           (c.param == "wma" ? 2 * h * d : 0.0);
  };
  return def;
}

FLEXNAS_REGISTER_OP(self_attention, make_self_attention);

}  // namespace
}  // namespace flexnas::models
