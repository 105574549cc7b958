// Operation "ak": the attention kernels of Chang et al., "Convolutions and Self-Attention:
// Re-interpreting Relative Positions in Pre-trained Language Models" (ACL 2021): lightweight
// convolutions written as attention scores over clipped relative distances, optionally combined
// with the content score and with depthwise convolutions of the values / queries and keys.
//
// Parameter: <components>[:<N>], components joined by '+' in the order
//   qk, convfixed, convq, convk, vconv, qkconv  (each at most once, at least one of the first four)
// and N the window (1..511): required when any component other than qk is present, forbidden for
// `qk` alone. Scores of head h, query i, key j, head dim d, clip(x) = clamp(x, -N, N):
//   [qk] q_i.k_j/sqrt(d) + [convfixed] beta_(h, clip(j-i)) + [convq] q_i.r_clip(j-i)/sqrt(d)
//   + [convk] k_j.s_clip(i-j)/sqrt(d)
// then the additive padding mask, softmax, attention dropout, @ v. Distances beyond the window share
// the edge weight (they are not masked), as in the seed. Without qk the content term is 0.
//   - beta ("convfixed"): [heads, 2N+1], zero at start (uniform attention, as the seed);
//   - r ("convq"), s ("convk"): [d, 2N+1], shared by the heads of a standard layer (one each per
//     hetero head); initialised as the seed does, kaiming_uniform_(a = sqrt(5)) = U(+-1/sqrt(2N+1))
//     (not the model's N(0, initializer_range): the op does not see that option);
//   - vconv / qkconv (the seed's --value_forward / --qk "convolution_depth_mixed_no_act N"): a
//     depthwise convolution with 2N+1 taps over the token axis (no bias; padded tokens zeroed first,
//     zero padding at the ends) of the projected values / queries and keys of the FIRST HALF of the
//     layer's heads (max(n/2, 1) heads; in the hetero format the head's own slice). The order is
//     pointwise (the layer's existing projection) then depthwise, the reverse of the seed's
//     depthwise-then-pointwise: both are linear (no_act), this order reuses the plain projection
//     (so the layer keeps the tensors and names of a plain layer and transfers to and from one), and
//     it adds only (2N+1) taps per convolved channel (the seed's order adds h(2N+1) taps + h biases
//     and splits the projection in two).
// Query / key projections exist only when a present kernel reads them (qk or convq: queries; qk or
// convk: keys), as in the seed. The kernels carry their own positions: a standard layer has no
// relative-key table, and a hetero head ignores the layer's shared relative scores (HeadInputs::rel).
// flexnas models have no absolute position embeddings (the seed's --remove_position_embeddings).
#include <torch/torch.h>

#include "design_space/error.h"
#include "models/attention_common.h"
#include "models/op_registry.h"

namespace flexnas::models {
namespace {

using KernelSpec = AttentionKernelSpec;

KernelSpec kernel_of(const std::string& p) {
  KernelSpec spec;
  const std::string problem = parse_attention_kernel(p, spec);
  FLEXNAS_CHECK(problem.empty(), "ak parameter '", p, "' was not validated: ", problem);
  return spec;
}

int64_t conv_heads(int64_t heads) { return std::max<int64_t>(heads / 2, 1); }

/// A depthwise convolution over tokens: C channels, 2N+1 taps, zero padding N, no bias.
torch::nn::Conv1d depthwise(int64_t channels, const KernelSpec& s) {
  return torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, channels, s.taps()).groups(channels).padding(s.window).bias(false));
}

/// Convolves the first `channels` features of x over tokens (padding zeroed first); the rest pass.
/// x: [B,T,W]; valid: [B,T,1] -> [B,T,W].
torch::Tensor convolve_first(const torch::Tensor& x, const torch::Tensor& valid, torch::nn::Conv1d& conv, int64_t channels) {
  auto head = x.narrow(2, 0, channels) * valid;
  auto out = conv(head.transpose(1, 2)).transpose(1, 2);
  if (channels == x.size(2)) return out;
  return torch::cat({out.to(x.scalar_type()), x.narrow(2, channels, x.size(2) - channels)}, 2);
}

torch::Tensor window_table(torch::nn::Module& m, const std::string& name, int64_t d, int64_t taps) {
  // The seed's nn.init.kaiming_uniform_(a = sqrt(5)) on a [d, 2N+1] tensor: fan_in = 2N+1,
  // bound = sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(2N+1).
  const double bound = 1.0 / std::sqrt(double(taps));
  return m.register_parameter(name, torch::empty({d, taps}).uniform_(-bound, bound));
}

/// The scores of one layer or head, scaled, fp32: [..., T, T] (or [1, H, T, T] / [1, T, T] for
/// convfixed alone). q, k: [..., T, d] (undefined when unused); beta: [H, 2N+1] or undefined.
torch::Tensor kernel_scores(const KernelSpec& s, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& r,
                            const torch::Tensor& sk, const torch::Tensor& beta, int64_t T, int64_t d, bool heads_axis,
                            const torch::Device& device) {
  torch::Tensor idx = s.window > 0 ? clipped_distance_index(T, s.window, device) : torch::Tensor();
  torch::Tensor content;  // unscaled, in the autocast dtype
  auto add = [&](const torch::Tensor& t) { content = content.defined() ? content + t : t; };
  if (s.qk()) add(torch::matmul(q, k.transpose(-1, -2)));
  if (s.convq()) add(window_scores(q, r, idx, /*transpose=*/false));
  if (s.convk()) add(window_scores(k, sk, idx, /*transpose=*/true));
  torch::Tensor scores;
  if (content.defined()) scores = content.to(torch::kFloat) / std::sqrt(double(d));  // fp32 island
  if (s.convfixed()) {
    const int64_t H = beta.size(0);
    auto fixed = beta.index_select(1, idx.reshape({-1})).view({H, T, T}).to(torch::kFloat);
    fixed = heads_axis ? fixed.unsqueeze(0) : fixed;  // [1,H,T,T] | [1,T,T] (H = 1)
    scores = scores.defined() ? scores + fixed : fixed;
  }
  return scores;
}

/// Standard format: [B,T,h] -> [B,T,h].
class AttentionKernelCore : public AttentionCore {
 public:
  explicit AttentionKernelCore(const CoreConfig& c)
      : spec_(kernel_of(c.param)), heads_(c.heads), d_(c.hidden / c.heads),
        conv_channels_(conv_heads(c.heads) * (c.hidden / c.heads)), dropout_(c.attention_dropout) {
    const int64_t h = c.hidden, R = spec_.taps();
    if (spec_.uses_q()) query_ = register_module("query", torch::nn::Linear(h, h));
    if (spec_.uses_k()) key_ = register_module("key", torch::nn::Linear(h, h));
    value_ = register_module("value", torch::nn::Linear(h, h));
    if (spec_.convfixed()) beta_ = register_parameter("convfixed", torch::zeros({heads_, R}));
    if (spec_.convq()) r_ = window_table(*this, "convq", d_, R);
    if (spec_.convk()) s_ = window_table(*this, "convk", d_, R);
    if (spec_.vconv()) value_conv_ = register_module("value_conv", depthwise(conv_channels_, spec_));
    if (spec_.qkconv() && spec_.uses_q()) query_conv_ = register_module("query_conv", depthwise(conv_channels_, spec_));
    if (spec_.qkconv() && spec_.uses_k()) key_conv_ = register_module("key_conv", depthwise(conv_channels_, spec_));
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) override {
    const int64_t T = x.size(1);
    auto valid = in.valid.unsqueeze(-1);  // [B,T,1]
    torch::Tensor q, k;
    if (spec_.uses_q()) {
      auto full = query_(x);
      if (query_conv_) full = convolve_first(full, valid, query_conv_, conv_channels_);
      q = split_heads(full, heads_);  // [B,n,T,d]
    }
    if (spec_.uses_k()) {
      auto full = key_(x);
      if (key_conv_) full = convolve_first(full, valid, key_conv_, conv_channels_);
      k = split_heads(full, heads_);
    }
    auto v_full = value_(x);
    if (value_conv_) v_full = convolve_first(v_full, valid, value_conv_, conv_channels_);
    auto v = split_heads(v_full, heads_);
    auto scores = kernel_scores(spec_, q, k, r_, s_, beta_, T, d_, /*heads_axis=*/true, x.device());
    return merge_heads(attend(scores, 1.0, in.mask_add, v, dropout_, is_training()));
  }

 private:
  KernelSpec spec_;
  int64_t heads_, d_, conv_channels_;
  double dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
  torch::nn::Conv1d value_conv_{nullptr}, query_conv_{nullptr}, key_conv_{nullptr};
  torch::Tensor beta_, r_, s_;
};

/// Hetero format: one head -> [B,T,D] from the layer's q/k/v slices; ignores the layer's relative
/// scores (the kernels carry their own positions).
class AttentionKernelHead : public HeadOp {
 public:
  explicit AttentionKernelHead(const HeadConfig& c) : spec_(kernel_of(c.param)), dim_(c.dim), dropout_(c.attention_dropout) {
    if (spec_.window > c.max_positions - 1)
      throw ConfigError("error: head 'ak_" + c.param + "_" + std::to_string(c.dim) + "': window " +
                        std::to_string(spec_.window) + " exceeds max_positions - 1 = " + std::to_string(c.max_positions - 1));
    const int64_t D = c.dim, R = spec_.taps();
    if (spec_.convfixed()) beta_ = register_parameter("convfixed", torch::zeros({1, R}));
    if (spec_.convq()) r_ = window_table(*this, "convq", D, R);
    if (spec_.convk()) s_ = window_table(*this, "convk", D, R);
    if (spec_.vconv()) value_conv_ = register_module("value_conv", depthwise(D, spec_));
    if (spec_.qkconv() && spec_.uses_q()) query_conv_ = register_module("query_conv", depthwise(D, spec_));
    if (spec_.qkconv() && spec_.uses_k()) key_conv_ = register_module("key_conv", depthwise(D, spec_));
  }

  torch::Tensor forward(const HeadInputs& h, const AttentionInputs& in) override {
    const int64_t T = h.v.size(1);
    auto valid = in.valid.unsqueeze(-1);
    torch::Tensor q = spec_.uses_q() ? h.q : torch::Tensor(), k = spec_.uses_k() ? h.k : torch::Tensor(), v = h.v;
    if (query_conv_) q = convolve_first(q, valid, query_conv_, dim_);
    if (key_conv_) k = convolve_first(k, valid, key_conv_, dim_);
    if (value_conv_) v = convolve_first(v, valid, value_conv_, dim_);
    auto scores = kernel_scores(spec_, q, k, r_, s_, beta_, T, dim_, /*heads_axis=*/false, h.v.device());
    return attend(scores, 1.0, in.mask_add.squeeze(1), v, dropout_, is_training());
  }

 private:
  KernelSpec spec_;
  int64_t dim_;
  double dropout_;
  torch::nn::Conv1d value_conv_{nullptr}, query_conv_{nullptr}, key_conv_{nullptr};
  torch::Tensor beta_, r_, s_;
};

OpDefinition make_attention_kernel() {
  OpDefinition def;
  def.name = "ak";
  def.summary = "attention kernels over clipped relative distances (Chang et al. 2021): content qk, fixed/query/key "
                "lightweight convolutions, convolved values or queries/keys; parameter: <components>[:<N>], e.g. qk+convq:9";
  // Windows <= 6: every table column is reached by the tests' 7-token sequences (each gets a gradient).
  def.example_params = {"qk", "convfixed:3", "qk+convq:4", "convk+qkconv:2", "qk+convfixed+convq+convk:3",
                        "convq+vconv+qkconv:6"};
  def.invalid_params = {"",       "qk:4",         "convq",       "convq+qk:4", "vconv:3", "qk+qk",
                        "convq:0", "convq:512",    "convq:04",    "conv_q:3",   "qkconv:2", "sdp"};
  def.check_param = [](const std::string& p) {
    KernelSpec spec;
    return parse_attention_kernel(p, spec);
  };
  def.check_core = [](const CoreConfig& c) -> std::string {
    if (c.hidden % c.heads != 0)
      return std::to_string(c.heads) + " heads do not divide the hidden size " + std::to_string(c.hidden);
    const KernelSpec s = kernel_of(c.param);
    if (s.window > c.max_positions - 1)
      return "the ak window " + std::to_string(s.window) + " of '" + c.param + "' exceeds max_positions - 1 = " +
             std::to_string(c.max_positions - 1) + " (no longer distance occurs)";
    return "";
  };
  def.check_head = [](const HeadConfig& c) -> std::string {
    const KernelSpec s = kernel_of(c.param);
    if (s.window > c.max_positions - 1)
      return "the ak window " + std::to_string(s.window) + " of '" + c.param + "' exceeds max_positions - 1 = " +
             std::to_string(c.max_positions - 1) + " (no longer distance occurs)";
    return "";
  };
  def.core_output_width = [](const CoreConfig& c) { return c.hidden; };
  def.core_params = [](const CoreConfig& c) {
    const KernelSpec s = kernel_of(c.param);
    const int64_t h = c.hidden, n = c.heads, d = h / n, R = s.taps(), C = conv_heads(n) * d;
    return (int64_t(s.uses_q()) + int64_t(s.uses_k()) + 1) * (h * h + h)  // query, key, value
           + (s.convfixed() ? n * R : 0) + (s.convq() ? d * R : 0) + (s.convk() ? d * R : 0)
           + (s.vconv() ? C * R : 0) + s.conv_projections() * C * R;
  };
  def.core_flops = [](const CoreConfig& c, int64_t T) {
    const KernelSpec s = kernel_of(c.param);
    const double h = double(c.hidden), d = h / double(c.heads), R = double(s.taps()),
                 C = double(conv_heads(c.heads)) * d;
    // Projections, q.k, q.r and k.s over the 2N+1 window columns, P.V, depthwise convolutions.
    return 2 * h * h * double(int64_t(s.uses_q()) + int64_t(s.uses_k()) + 1) + (s.qk() ? 2 * T * h : 0.0) +
           (s.convq() ? 2 * h * R : 0.0) + (s.convk() ? 2 * h * R : 0.0) + 2 * T * h + (s.vconv() ? 2 * C * R : 0.0) +
           2 * C * R * double(s.conv_projections());
  };
  def.build_core = [](const CoreConfig& c) -> std::shared_ptr<AttentionCore> {
    return std::make_shared<AttentionKernelCore>(c);
  };
  def.core_layout = [](const CoreConfig& c) {
    // Projections only when read; beta [n, 2N+1] and the [d, 2N+1] tables have centred distance
    // axes, so layers with other windows exchange the columns around distance 0; the depthwise
    // convolutions [C, 1, 2N+1] cover the first max(n/2, 1) heads. Kernels absent on one side are
    // fresh (the tensor is missing there).
    using A = LayoutAxis;
    const KernelSpec s = kernel_of(c.param);
    const int64_t h = c.hidden, n = c.heads, d = h / n, R = s.taps();
    const LayoutAxis C = A::head_blocks(1, conv_heads(n), d);
    CoreLayout l;
    l.output = A::head_blocks(1, n, d);
    if (s.uses_q()) l.linear("query", l.output, A::hidden_in(h));
    if (s.uses_k()) l.linear("key", l.output, A::hidden_in(h));
    l.linear("value", l.output, A::hidden_in(h));
    if (s.convfixed()) l.add("convfixed", {A::ordered(n), A::centered(R)});
    if (s.convq()) l.add("convq", {A::ordered(d), A::centered(R)});
    if (s.convk()) l.add("convk", {A::ordered(d), A::centered(R)});
    if (s.vconv()) l.add("value_conv.weight", {C, A::ordered(1), A::centered(R)});
    if (s.qkconv() && s.uses_q()) l.add("query_conv.weight", {C, A::ordered(1), A::centered(R)});
    if (s.qkconv() && s.uses_k()) l.add("key_conv.weight", {C, A::ordered(1), A::centered(R)});
    return l;
  };
  def.head_params = [](const HeadConfig& c) {
    const KernelSpec s = kernel_of(c.param);
    const int64_t D = c.dim, R = s.taps();
    return (s.convfixed() ? R : 0) + (s.convq() ? D * R : 0) + (s.convk() ? D * R : 0) + (s.vconv() ? D * R : 0) +
           s.conv_projections() * D * R;
  };
  def.head_flops = [](const HeadConfig& c, int64_t T) {
    const KernelSpec s = kernel_of(c.param);
    const double D = double(c.dim), R = double(s.taps());
    return (s.qk() ? 2 * T * D : 0.0) + (s.convq() ? 2 * D * R : 0.0) + (s.convk() ? 2 * D * R : 0.0) + 2 * T * D +
           (s.vconv() ? 2 * D * R : 0.0) + 2 * D * R * double(s.conv_projections());
  };
  def.build_head = [](const HeadConfig& c) -> std::shared_ptr<HeadOp> { return std::make_shared<AttentionKernelHead>(c); };
  def.head_layout = [](const HeadConfig& c) {
    // As the core's, for one head of D: beta [1, 2N+1], tables [D, 2N+1], convolutions [D, 1, 2N+1].
    using A = LayoutAxis;
    const KernelSpec s = kernel_of(c.param);
    const int64_t D = c.dim, R = s.taps();
    ParamLayout l;
    if (s.convfixed()) l.add("convfixed", {A::ordered(1), A::centered(R)});
    if (s.convq()) l.add("convq", {A::ordered(D), A::centered(R)});
    if (s.convk()) l.add("convk", {A::ordered(D), A::centered(R)});
    if (s.vconv()) l.add("value_conv.weight", {A::ordered(D), A::ordered(1), A::centered(R)});
    if (s.qkconv() && s.uses_q()) l.add("query_conv.weight", {A::ordered(D), A::ordered(1), A::centered(R)});
    if (s.qkconv() && s.uses_k()) l.add("key_conv.weight", {A::ordered(D), A::ordered(1), A::centered(R)});
    return l;
  };
  def.order_rank = 3;  // not in the reference: after its l, sa, c
  def.param_order = [](const std::string& p) {  // by window ("qk" has none: 0), then by name
    KernelSpec spec;
    return parse_attention_kernel(p, spec).empty() ? int64_t(spec.window) : int64_t(0);
  };
  return def;
}

FLEXNAS_REGISTER_OP(attention_kernel, make_attention_kernel);

}  // namespace
}  // namespace flexnas::models
