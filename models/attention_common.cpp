#include "models/attention_common.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "design_space/error.h"

namespace flexnas::models {

torch::Tensor additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  // [B,T] -> [B,1,1,T]; exp(-10000 + s) underflows to exactly 0 in float32, so padding gets no weight.
  return ((1.0 - attention_mask.to(dtype)) * -10000.0).unsqueeze(1).unsqueeze(1);
}

torch::Tensor relative_key_scores(const torch::Tensor& q, const torch::Tensor& table, int64_t max_positions) {
  const int64_t T = q.size(-2);
  if (T > max_positions)
    throw Error("sequence length " + std::to_string(T) + " exceeds the model's max positions " +
                std::to_string(max_positions));
  // Only distances -(T-1)..T-1 occur: rows P-T .. P+T-2; row r of `sub` is distance r-(T-1).
  auto sub = table.narrow(0, max_positions - T, 2 * T - 1);
  auto qe = torch::matmul(q, sub.t());  // [..., T, 2T-1]
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  auto idx = torch::arange(T, opts).unsqueeze(1) - torch::arange(T, opts).unsqueeze(0) + (T - 1);  // [T,T]
  std::vector<int64_t> sizes = qe.sizes().vec();
  sizes.back() = T;
  return qe.gather(-1, idx.expand(sizes));
}

torch::Tensor attend(const torch::Tensor& scores, double scale_dim, const torch::Tensor& mask_add,
                     const torch::Tensor& v, double dropout, bool training) {
  // fp32 island: under autocast the scores arrive in bf16/fp16; the softmax runs in fp32.
  auto probs = torch::softmax(scores.to(torch::kFloat) / std::sqrt(scale_dim) + mask_add, -1);
  probs = torch::dropout(probs, dropout, training);
  return torch::matmul(probs, v);
}

namespace {

// Token-axis matrices of one transform for every sequence: [B,T,T] (double), zero outside the
// valid tokens. `which` 0 = cos part, 1 = sin part (DFT only).
torch::Tensor token_matrix(const torch::Tensor& valid, Transform transform, int which) {
  auto v = valid.to(torch::kLong);
  auto rank = (v.cumsum(1) - 1).clamp_min(0);               // position among the valid tokens
  auto n_valid = v.sum(1).clamp_min(1).view({-1, 1, 1});    // [B,1,1]
  auto k = rank.unsqueeze(2), n = rank.unsqueeze(1);         // [B,T,1], [B,1,T]
  auto both = (v.unsqueeze(2) * v.unsqueeze(1)).to(torch::kDouble);
  if (transform == Transform::kDft) {
    auto angle = (k * n).remainder(n_valid).to(torch::kDouble) * (2.0 * M_PI) / n_valid.to(torch::kDouble);
    return (which == 0 ? angle.cos() : angle.sin()) * both;
  }
  auto angle = (k * (2 * n + 1)).remainder(4 * n_valid).to(torch::kDouble) * M_PI / (2.0 * n_valid.to(torch::kDouble));
  return 2.0 * angle.cos() * both;
}

// Feature-axis matrix [D,D] (double).
torch::Tensor feature_matrix(int64_t D, const torch::Device& device, Transform transform, int which) {
  auto r = torch::arange(D, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto k = r.unsqueeze(1), n = r.unsqueeze(0);
  if (transform == Transform::kDft) {
    auto angle = (k * n).remainder(D).to(torch::kDouble) * (2.0 * M_PI) / double(D);
    return which == 0 ? angle.cos() : angle.sin();
  }
  auto angle = (k * (2 * n + 1)).remainder(4 * D).to(torch::kDouble) * M_PI / (2.0 * double(D));
  return 2.0 * angle.cos();
}

}  // namespace

torch::Tensor linear_mix(const torch::Tensor& x, const torch::Tensor& valid, Transform transform) {
  const auto dtype = x.scalar_type();
  const int64_t D = x.size(-1);
  auto tok = [&](int which) {
    auto m = token_matrix(valid, transform, which).to(dtype);
    return x.dim() == 4 ? m.unsqueeze(1) : m;
  };
  auto feat = [&](int which) { return feature_matrix(D, x.device(), transform, which).to(dtype); };
  if (transform == Transform::kDft) {
    // Re((C - iS) x (C - iS)^T) = C x C^T - S x S^T; the feature matrices are symmetric.
    return torch::matmul(tok(0), torch::matmul(x, feat(0))) - torch::matmul(tok(1), torch::matmul(x, feat(1)));
  }
  return torch::matmul(tok(0), torch::matmul(x, feat(0).t()));
}

torch::Tensor dynamic_conv(const torch::Tensor& values, const torch::Tensor& kernel, int64_t heads) {
  // A named scope for FLOP counters (its multiply-sum is no matmul); free when none listens.
  RECORD_FUNCTION("flexnas::dynamic_conv", std::vector<c10::IValue>({values, kernel}));
  const int64_t B = values.size(0), T = values.size(1), C = values.size(2);
  const int64_t k = kernel.size(-1), pad = (k - 1) / 2;
  auto padded = torch::constant_pad_nd(values, {0, 0, pad, pad});  // zero rows before and after the tokens
  auto windows = padded.unfold(1, k, 1).reshape({B, T, heads, C / heads, k});  // [B,T,a,d,k]
  return (windows * kernel.unsqueeze(3)).sum(-1).reshape({B, T, C});
}

torch::Tensor clipped_distance_index(int64_t T, int64_t window, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto r = torch::arange(T, opts);
  return (r.unsqueeze(0) - r.unsqueeze(1)).clamp(-window, window) + window;  // [T,T]: j - i
}

torch::Tensor window_scores(const torch::Tensor& x, const torch::Tensor& table, const torch::Tensor& idx, bool transpose) {
  auto xt = torch::matmul(x, table);  // [..., T, 2N+1]
  std::vector<int64_t> sizes = xt.sizes().vec();
  sizes.back() = idx.size(1);
  auto s = xt.gather(-1, idx.expand(sizes));  // [..., T, T]
  return transpose ? s.transpose(-1, -2) : s;
}

namespace {

constexpr int64_t kMaxWindow = 511;
const char* const kComponents[] = {"qk", "convfixed", "convq", "convk", "vconv", "qkconv"};
const char* const kGrammar = "<components>[:<N>] with components qk, convfixed, convq, convk, vconv, qkconv "
                             "joined by '+' in that order, e.g. qk+convq:9";

}  // namespace

std::string parse_attention_kernel(const std::string& p, AttentionKernelSpec& spec) {
  spec = AttentionKernelSpec{};
  if (p.find('_') != std::string::npos)
    return std::string("no '_' (it separates the fields of hetero head strings); ") + kGrammar;
  const auto colon = p.find(':');
  const std::string list = p.substr(0, colon);
  int last = -1;
  size_t start = 0;
  while (true) {
    const size_t plus = list.find('+', start);
    const std::string name = list.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
    if (name.empty()) return std::string("components joined by single '+' signs: ") + kGrammar;
    int index = -1;
    for (int c = 0; c < 6; ++c)
      if (name == kComponents[c]) index = c;
    if (index < 0)
      return "components qk, convfixed, convq, convk, vconv, qkconv ('" + name + "' is not one); " + kGrammar;
    if (spec.has[index]) return "each component at most once ('" + name + "' appears twice); " + kGrammar;
    if (index < last)
      return "components in the canonical order qk, convfixed, convq, convk, vconv, qkconv ('" + name +
             "' comes before '" + kComponents[last] + "')";
    spec.has[index] = true;
    last = index;
    if (plus == std::string::npos) break;
    start = plus + 1;
  }
  if (!spec.qk() && !spec.convfixed() && !spec.convq() && !spec.convk())
    return "at least one attention kernel among qk, convfixed, convq, convk (vconv and qkconv only convolve "
           "values or queries and keys), e.g. qk+vconv:4";
  if (spec.qkconv() && !spec.uses_q() && !spec.uses_k())
    return "qkconv only with a kernel that reads queries or keys (qk, convq or convk), e.g. convq+qkconv:4";
  const bool qk_alone = spec.qk() && !spec.convfixed() && !spec.convq() && !spec.convk() && !spec.vconv() && !spec.qkconv();
  if (colon == std::string::npos) {
    if (qk_alone) return "";
    return "a window ':N' (N = 1.." + std::to_string(kMaxWindow) + ") after '" + list +
           "' (every component but qk uses relative distances), e.g. " + list + ":4";
  }
  if (qk_alone) return "no window after qk alone (it uses no relative distances): write qk";
  const std::string digits = p.substr(colon + 1);
  const bool ok = !digits.empty() && digits.size() <= 3 && digits[0] != '0' &&
                  std::all_of(digits.begin(), digits.end(), [](unsigned char ch) { return std::isdigit(ch); });
  if (!ok || std::stoll(digits) > kMaxWindow)
    return "a window N from 1 to " + std::to_string(kMaxWindow) + " without leading zeros after ':', got '" + digits + "'";
  spec.window = std::stoll(digits);
  return "";
}

torch::Tensor split_heads(const torch::Tensor& x, int64_t heads) {
  const int64_t B = x.size(0), T = x.size(1), W = x.size(2);
  return x.view({B, T, heads, W / heads}).permute({0, 2, 1, 3});
}

torch::Tensor merge_heads(const torch::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), d = x.size(3);
  return x.permute({0, 2, 1, 3}).reshape({B, T, H * d});
}

int64_t kernel_size_of(const std::string& param) { return std::stoll(param); }

}  // namespace flexnas::models
