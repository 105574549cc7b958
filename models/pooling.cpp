#include "models/pooling.h"

#include <torch/torch.h>

#include "design_space/error.h"

namespace flexnas::models {

int64_t pooled_length(int64_t T, int64_t stride, bool separate_cls) {
  if (separate_cls) return T <= 1 ? T : 1 + (T - 1 + stride - 1) / stride;
  return (T + stride - 1) / stride;
}

PooledTokens pool_tokens(const torch::Tensor& x, const torch::Tensor& valid, int64_t stride, bool separate_cls) {
  FLEXNAS_CHECK(stride >= 1, "pooling stride ", stride);
  if (stride == 1) return {x, valid};
  const int64_t first = separate_cls ? 1 : 0;  // tokens kept alone at the front
  const int64_t B = x.size(0), T = x.size(1), h = x.size(2);
  const int64_t rest = T - first;
  if (rest <= 0) return {x, valid};
  const int64_t windows = (rest + stride - 1) / stride;
  const int64_t padded = windows * stride;
  auto w = valid.narrow(1, first, rest).to(x.scalar_type());          // [B,rest]
  auto body = x.narrow(1, first, rest) * w.unsqueeze(-1);              // padding contributes nothing
  if (padded > rest) {
    body = torch::constant_pad_nd(body, {0, 0, 0, padded - rest});
    w = torch::constant_pad_nd(w, {0, padded - rest});
  }
  auto sums = body.view({B, windows, stride, h}).sum(2);              // [B,W,h]
  auto counts = w.view({B, windows, stride}).sum(2);                  // [B,W]
  auto pooled = sums / counts.clamp_min(1.0).unsqueeze(-1);
  auto pooled_valid = (counts > 0).to(valid.scalar_type());
  if (first == 0) return {pooled, pooled_valid};
  return {torch::cat({x.narrow(1, 0, 1), pooled}, 1), torch::cat({valid.narrow(1, 0, 1), pooled_valid}, 1)};
}

torch::Tensor pooled_positions(int64_t T, int64_t stride, bool separate_cls, const torch::Device& device) {
  const int64_t n = pooled_length(T, stride, separate_cls);
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  if (!separate_cls) return torch::arange(n, opts) * stride;
  // [CLS] at 0, window i >= 1 starts at 1 + (i-1)*stride.
  return torch::cat({torch::zeros({1}, opts), 1 + torch::arange(n - 1, opts) * stride});
}

torch::Tensor upsample_tokens(const torch::Tensor& x, int64_t T, int64_t total_stride, bool separate_cls) {
  if (total_stride == 1) return x;
  const int64_t first = separate_cls ? 1 : 0;
  if (T <= first) return x.narrow(1, 0, T);
  auto body = x.narrow(1, first, x.size(1) - first).repeat_interleave(total_stride, 1).narrow(1, 0, T - first);
  return first ? torch::cat({x.narrow(1, 0, 1), body}, 1) : body;
}

torch::Tensor relative_key_scores_at(const torch::Tensor& q, const torch::Tensor& table, int64_t max_positions,
                                     const torch::Tensor& q_pos, int64_t key_length) {
  const int64_t Tk = key_length, Tq = q.size(-2);
  if (Tk > max_positions)
    throw Error("sequence length " + std::to_string(Tk) + " exceeds the model's max positions " +
                std::to_string(max_positions));
  FLEXNAS_CHECK(q_pos.numel() == Tq, "query positions ", q_pos.numel(), " for ", Tq, " queries");
  // Distances q_pos[i] - j lie in -(Tk-1)..Tk-1: rows P-Tk .. P+Tk-2; row r of `sub` is distance r-(Tk-1).
  auto sub = table.narrow(0, max_positions - Tk, 2 * Tk - 1);
  auto qe = torch::matmul(q, sub.t());  // [..., Tq, 2Tk-1]
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  auto idx = q_pos.to(opts).unsqueeze(1) - torch::arange(Tk, opts).unsqueeze(0) + (Tk - 1);  // [Tq,Tk]
  std::vector<int64_t> sizes = qe.sizes().vec();
  sizes.back() = Tk;
  return qe.gather(-1, idx.expand(sizes));
}

}  // namespace flexnas::models
