// Operation "c": dynamic span-based convolution mixed with self-attention (ConvBERT; spec §5.5/§5.6).
// Parameter: an odd kernel size k >= 3. Standard format: a = max(n/2, 1) attention heads and a
// convolution heads of size d = h/n; their concatenation (width 2ad) goes to the SelfOutput, so
// n = 1 and odd n work (defect 35 fixed; for even n, 2ad = h as in the reference). Padded tokens
// are zeroed before every convolution over tokens, so they neither leak nor shift results.
#include <torch/torch.h>

#include "models/attention_common.h"
#include "models/op_registry.h"

namespace flexnas::models {
namespace {

/// Separable convolution over tokens (ConvBERT's SeparableConv1D): depthwise (k taps per channel,
/// zero padding k/2) then pointwise in -> out, plus a bias. [B,T,in] -> [B,T,out].
class SepConv : public torch::nn::Module {
 public:
  SepConv(int64_t in, int64_t out, int64_t k) {
    depthwise_ = register_module(
        "depthwise", torch::nn::Conv1d(torch::nn::Conv1dOptions(in, in, k).groups(in).padding(k / 2).bias(false)));
    pointwise_ = register_module("pointwise", torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, 1).bias(false)));
    bias_ = register_parameter("bias", torch::zeros({out, 1}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return (pointwise_(depthwise_(x.transpose(1, 2))) + bias_).transpose(1, 2);
  }

 private:
  torch::nn::Conv1d depthwise_{nullptr}, pointwise_{nullptr};
  torch::Tensor bias_;
};

int64_t attn_heads(const CoreConfig& c) { return std::max<int64_t>(c.heads / 2, 1); }

/// Standard format: [B,T,h] -> [B,T,2ad].
class DynamicConvCore : public AttentionCore {
 public:
  explicit DynamicConvCore(const CoreConfig& c)
      : a_(attn_heads(c)), d_(c.hidden / c.heads), k_(kernel_size_of(c.param)), max_positions_(c.max_positions),
        dropout_(c.attention_dropout) {
    const int64_t h = c.hidden, A = a_ * d_;
    query_ = register_module("query", torch::nn::Linear(h, A));
    key_ = register_module("key", torch::nn::Linear(h, A));
    value_ = register_module("value", torch::nn::Linear(h, A));
    key_conv_ = register_module("key_conv_attn_layer", std::make_shared<SepConv>(h, A, k_));
    conv_kernel_ = register_module("conv_kernel_layer", torch::nn::Linear(A, a_ * k_));
    conv_out_ = register_module("conv_out_layer", torch::nn::Linear(h, A));
    distance_ = register_module("distance_embedding", torch::nn::Embedding(2 * c.max_positions - 1, d_));
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) override {
    const int64_t B = x.size(0), T = x.size(1);
    auto valid = in.valid.unsqueeze(-1);  // [B,T,1]
    auto q_full = query_(x);              // [B,T,A]
    // Convolution branch: span-based dynamic kernel from the key convolution gated by the query.
    auto gate = key_conv_->forward(x * valid) * q_full;
    auto kernel = torch::softmax(conv_kernel_(gate).view({B, T, a_, k_}), -1, torch::kFloat);  // fp32 island
    auto conv = dynamic_conv(conv_out_(x) * valid, kernel, a_);  // [B,T,A]
    // Attention branch: a heads with relative-key scores.
    auto q = split_heads(q_full, a_), k = split_heads(key_(x), a_), v = split_heads(value_(x), a_);
    auto scores = torch::matmul(q, k.transpose(-1, -2)) + relative_key_scores(q, distance_->weight, max_positions_);
    auto context = merge_heads(attend(scores, double(d_), in.mask_add, v, dropout_, is_training()));
    return torch::cat({context.view({B, T, a_, d_}), conv.view({B, T, a_, d_})}, 2).reshape({B, T, 2 * a_ * d_});
  }

 private:
  int64_t a_, d_, k_, max_positions_;
  double dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, conv_kernel_{nullptr}, conv_out_{nullptr};
  std::shared_ptr<SepConv> key_conv_;
  torch::nn::Embedding distance_{nullptr};
};

/// Hetero format: one head -> [B,T,D]: positional attention context + dynamic convolution of its
/// own K (gated by Q) and V slices.
class DynamicConvHead : public HeadOp {
 public:
  explicit DynamicConvHead(const HeadConfig& c)
      : dim_(c.dim), k_(kernel_size_of(c.param)), dropout_(c.attention_dropout) {
    key_conv_ = register_module("key_conv_attn_layer", std::make_shared<SepConv>(c.dim, c.dim, k_));
    conv_kernel_ = register_module("conv_kernel_layer", torch::nn::Linear(c.dim, k_));
    conv_out_ = register_module("conv_out_layer", torch::nn::Linear(c.dim, c.dim));
  }

  torch::Tensor forward(const HeadInputs& h, const AttentionInputs& in) override {
    const int64_t B = h.q.size(0), T = h.q.size(1);
    auto valid = in.valid.unsqueeze(-1);
    auto gate = key_conv_->forward(h.k * valid) * h.q;
    auto kernel = torch::softmax(conv_kernel_(gate).view({B, T, 1, k_}), -1, torch::kFloat);  // fp32 island
    auto conv = dynamic_conv(conv_out_(h.v) * valid, kernel, 1);
    auto context = attend(h.rel, double(dim_), in.mask_add.squeeze(1), h.v, dropout_, is_training());
    return context + conv;
  }

 private:
  int64_t dim_, k_;
  double dropout_;
  std::shared_ptr<SepConv> key_conv_;
  torch::nn::Linear conv_kernel_{nullptr}, conv_out_{nullptr};
};

std::string check_kernel(const std::string& p) {
  const bool digits = !p.empty() && p.size() < 4 && std::all_of(p.begin(), p.end(), [](unsigned char ch) {
                        return std::isdigit(ch);
                      });
  // k = 1 would make the dynamic kernel a constant softmax over one tap (its layers unused).
  if (digits && std::stoi(p) % 2 == 1 && std::stoi(p) >= 3) return "";
  return "an odd kernel size >= 3 such as 5, 9 or 13";
}

OpDefinition make_dynamic_conv() {
  OpDefinition def;
  def.name = "c";
  def.summary = "dynamic span-based convolution mixed with self-attention (ConvBERT); parameter: odd kernel size k >= 3";
  def.example_params = {"3", "5"};
  def.invalid_params = {"", "1", "4", "0", "-3", "1001", "5x", "sdp"};  // k = 1: see check_kernel
  def.check_param = check_kernel;
  def.check_core = [](const CoreConfig& c) -> std::string {
    if (c.hidden % c.heads == 0) return "";
    return std::to_string(c.heads) + " heads do not divide the hidden size " + std::to_string(c.hidden);
  };
  def.core_output_width = [](const CoreConfig& c) { return 2 * attn_heads(c) * (c.hidden / c.heads); };
  def.core_params = [](const CoreConfig& c) {
    const int64_t h = c.hidden, d = h / c.heads, a = attn_heads(c), A = a * d, k = kernel_size_of(c.param);
    return 3 * (h * A + A)            // query, key, value
           + h * k + h * A + A        // separable convolution
           + A * a * k + a * k        // dynamic kernel
           + h * A + A                // convolution values
           + (2 * c.max_positions - 1) * d;
  };
  def.core_flops = [](const CoreConfig& c, int64_t T) {
    const double h = double(c.hidden), d = h / double(c.heads), a = double(attn_heads(c)), A = a * d,
                 k = double(kernel_size_of(c.param));
    return 6 * h * A + 2 * h * k + 2 * h * A + 2 * A * a * k + 2 * h * A + 2 * A * k  // projections, convolutions
           + 2 * T * A + 2 * (2 * T - 1) * A + 2 * T * A;                              // attention branch
  };
  def.build_core = [](const CoreConfig& c) -> std::shared_ptr<AttentionCore> {
    return std::make_shared<DynamicConvCore>(c);
  };
  def.core_layout = [](const CoreConfig& c) {
    // a heads of d in every branch; depthwise [h, 1, k] per input channel, its k taps centred; the
    // dynamic kernel [a*k, A] writes a heads of k centred taps; the [2P-1, d] table as sa's.
    using A = LayoutAxis;
    const int64_t h = c.hidden, a = attn_heads(c), d = h / c.heads, k = kernel_size_of(c.param);
    const LayoutAxis heads = A::head_blocks(1, a, d);
    CoreLayout l;
    for (const char* p : {"query", "key", "value"}) l.linear(p, heads, A::hidden_in(h));
    l.add("key_conv_attn_layer.depthwise.weight", {A::hidden_diag(h), A::ordered(1), A::centered(k)});
    l.add("key_conv_attn_layer.pointwise.weight", {heads, A::hidden_in(h), A::ordered(1)});
    l.add("key_conv_attn_layer.bias", {heads, A::ordered(1)});
    l.linear("conv_kernel_layer", A::head_blocks(1, a, k, /*centered_dim=*/true), heads);
    l.linear("conv_out_layer", heads, A::hidden_in(h));
    l.add("distance_embedding.weight", {A::centered(2 * c.max_positions - 1), A::ordered(d)});
    l.output = A::head_blocks(2, a, d);  // [attention heads | convolution heads]
    return l;
  };
  def.head_params = [](const HeadConfig& c) {
    const int64_t D = c.dim, k = kernel_size_of(c.param);
    return (D * k + D * D + D) + (D * k + k) + (D * D + D);
  };
  def.head_flops = [](const HeadConfig& c, int64_t T) {
    const double D = double(c.dim), k = double(kernel_size_of(c.param));
    return 2 * D * k + 2 * D * D + 2 * D * k + 2 * D * D + 2 * D * k + 2 * T * D;
  };
  def.build_head = [](const HeadConfig& c) -> std::shared_ptr<HeadOp> { return std::make_shared<DynamicConvHead>(c); };
  def.head_layout = [](const HeadConfig& c) {
    // The head's own D features throughout; the kernel's k taps centred.
    using A = LayoutAxis;
    const int64_t D = c.dim, k = kernel_size_of(c.param);
    ParamLayout l;
    l.add("key_conv_attn_layer.depthwise.weight", {A::ordered(D), A::ordered(1), A::centered(k)});
    l.add("key_conv_attn_layer.pointwise.weight", {A::ordered(D), A::ordered(D), A::ordered(1)});
    l.add("key_conv_attn_layer.bias", {A::ordered(D), A::ordered(1)});
    l.linear("conv_kernel_layer", A::centered(k), A::ordered(D));
    l.linear("conv_out_layer", A::ordered(D), A::ordered(D));
    return l;
  };
  def.order_rank = 2;  // the reference's groups: l, sa, c
  // Kernel sizes ascending (check_kernel: at most 3 digits).
  def.param_order = [](const std::string& p) { return check_kernel(p).empty() ? int64_t(std::stoi(p)) : int64_t(0); };
  return def;
}

FLEXNAS_REGISTER_OP(dynamic_conv, make_dynamic_conv);

}  // namespace
}  // namespace flexnas::models
