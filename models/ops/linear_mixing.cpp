// Operation "l": linear token mixing (FNet-style) plus purely positional attention (spec §5.5).
// Parameter: transform "dft" or "dct". One definition in both formats (defect 33 fixed): each head
// outputs  softmax(q.r / sqrt(d) + mask) V  +  transform(V_head)  where the 2-D transform runs
// over the head's features and the sequence's valid tokens only (models/attention_common.h).
// The content score is 0, so the layer has no key projection (no unused tensors, cf. defect 34).
#include <torch/torch.h>

#include "models/attention_common.h"
#include "models/op_registry.h"

namespace flexnas::models {
namespace {

Transform transform_of(const std::string& p) { return p == "dft" ? Transform::kDft : Transform::kDct; }

// FLOPs per token of the 2-D transform of a [T, D] block: D x D on features, T x T on tokens.
double mix_flops(double D, int64_t T, const std::string& p) {
  const double one = 2 * D * D + 2 * double(T) * D;
  return p == "dft" ? 2 * one : one;
}

/// Standard format: [B,T,h] -> [B,T,h].
class LinearMixingCore : public AttentionCore {
 public:
  explicit LinearMixingCore(const CoreConfig& c)
      : heads_(c.heads), d_(c.hidden / c.heads), max_positions_(c.max_positions), dropout_(c.attention_dropout),
        transform_(transform_of(c.param)) {
    query_ = register_module("query", torch::nn::Linear(c.hidden, c.hidden));
    value_ = register_module("value", torch::nn::Linear(c.hidden, c.hidden));
    distance_ = register_module("distance_embedding", torch::nn::Embedding(2 * c.max_positions - 1, d_));
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) override {
    auto q = split_heads(query_(x), heads_);  // [B,n,T,d]
    auto v = split_heads(value_(x), heads_);
    auto rel = relative_key_scores(q, distance_->weight, max_positions_);
    auto context = attend(rel, double(d_), in.mask_add, v, dropout_, is_training());
    return merge_heads(context + linear_mix(v, in.valid, transform_));
  }

 private:
  int64_t heads_, d_, max_positions_;
  double dropout_;
  Transform transform_;
  torch::nn::Linear query_{nullptr}, value_{nullptr};
  torch::nn::Embedding distance_{nullptr};
};

/// Hetero format: one head -> [B,T,D]; no parameters of its own.
class LinearMixingHead : public HeadOp {
 public:
  explicit LinearMixingHead(const HeadConfig& c)
      : dim_(c.dim), dropout_(c.attention_dropout), transform_(transform_of(c.param)) {}

  torch::Tensor forward(const HeadInputs& h, const AttentionInputs& in) override {
    auto context = attend(h.rel, double(dim_), in.mask_add.squeeze(1), h.v, dropout_, is_training());
    return context + linear_mix(h.v, in.valid, transform_);
  }

 private:
  int64_t dim_;
  double dropout_;
  Transform transform_;
};

OpDefinition make_linear_mixing() {
  OpDefinition def;
  def.name = "l";
  def.summary = "linear token mixing (2-D DFT/DCT over valid tokens and features) + positional attention; "
                "parameter: transform dft | dct";
  def.example_params = {"dft", "dct"};
  def.invalid_params = {"", "fft", "DCT", "sdp", "9"};
  def.check_param = [](const std::string& p) -> std::string { return p == "dft" || p == "dct" ? "" : "dft, dct"; };
  def.check_core = [](const CoreConfig& c) -> std::string {
    if (c.hidden % c.heads == 0) return "";
    return std::to_string(c.heads) + " heads do not divide the hidden size " + std::to_string(c.hidden);
  };
  def.core_output_width = [](const CoreConfig& c) { return c.hidden; };
  def.core_params = [](const CoreConfig& c) {
    const int64_t h = c.hidden, d = h / c.heads;
    return 2 * (h * h + h) + (2 * c.max_positions - 1) * d;
  };
  def.core_flops = [](const CoreConfig& c, int64_t T) {
    const double h = double(c.hidden), d = h / double(c.heads);
    return 4 * h * h + 2 * (2 * T - 1) * h + 2 * T * h + double(c.heads) * mix_flops(d, T, c.param);
  };
  def.build_core = [](const CoreConfig& c) -> std::shared_ptr<AttentionCore> {
    return std::make_shared<LinearMixingCore>(c);
  };
  def.core_layout = [](const CoreConfig& c) {
    // Q/V [h, h] as sa's (no key); the [2P-1, d] relative-key table is centred on distance 0.
    using A = LayoutAxis;
    const int64_t d = c.hidden / c.heads;
    CoreLayout l;
    l.output = A::head_blocks(1, c.heads, d);
    l.linear("query", l.output, A::hidden_in(c.hidden));
    l.linear("value", l.output, A::hidden_in(c.hidden));
    l.add("distance_embedding.weight", {A::centered(2 * c.max_positions - 1), A::ordered(d)});
    return l;
  };
  def.head_params = [](const HeadConfig&) { return int64_t(0); };
  def.head_flops = [](const HeadConfig& c, int64_t T) { return 2.0 * T * c.dim + mix_flops(double(c.dim), T, c.param); };
  def.build_head = [](const HeadConfig& c) -> std::shared_ptr<HeadOp> { return std::make_shared<LinearMixingHead>(c); };
  def.head_layout = [](const HeadConfig&) { return ParamLayout{}; };
  def.order_rank = 0;  // the reference's groups: l, sa, c
  def.param_order = [](const std::string& p) { return p == "dct" ? int64_t(1) : int64_t(0); };  // dft < dct
  return def;
}

FLEXNAS_REGISTER_OP(linear_mixing, make_linear_mixing);

}  // namespace
}  // namespace flexnas::models
