#pragma once
// Funnel-Transformer pooling (seed 003; Dai et al., NeurIPS 2020) on a token stream, and the
// up-sampling its decoder uses. The architecture side (where, stride, q_only, separate [CLS],
// decoder depth) is design_space/architecture.h PoolSpec; models/flex_model.cpp runs it.
//
// Differences from the Funnel code, on purpose: the mean runs over the valid tokens of a window only
// (Funnel averages padding in, so a sequence's result depends on how much padding its batch adds),
// and a window is always `stride` tokens wide (Funnel's pooling_size equals the stride too).
#include <torch/types.h>

#include <cstdint>

namespace flexnas::models {

struct PooledTokens {
  torch::Tensor x;      // [B,T',h]
  torch::Tensor valid;  // [B,T'] 0/1 (same dtype as the input mask): 1 when any token of the window is valid
};

/// Length after one pooling step: with separate_cls 1 + ceil((T-1)/stride), else ceil(T/stride).
int64_t pooled_length(int64_t T, int64_t stride, bool separate_cls);

/// Masked mean pooling over the token axis, windows of `stride` consecutive tokens (the last one may
/// be shorter); with separate_cls token 0 ([CLS]) is its own window. x: [B,T,h]; valid: [B,T] 0/1.
PooledTokens pool_tokens(const torch::Tensor& x, const torch::Tensor& valid, int64_t stride, bool separate_cls);

/// Where each pooled token starts in the stream it was pooled from (its first token): [T'] int64 on
/// `device`. Pool-q-only attention measures relative distances from these positions to the keys.
torch::Tensor pooled_positions(int64_t T, int64_t stride, bool separate_cls, const torch::Device& device);

/// Up-sampling back to full length: x: [B,T',h], pooled by a total factor `total_stride` from `T`
/// tokens -> [B,T,h], every token a copy of the pooled token whose window covers it (repeated
/// floor-division composes, so one step undoes a chain of poolings).
torch::Tensor upsample_tokens(const torch::Tensor& x, int64_t T, int64_t total_stride, bool separate_cls);

/// Relative-key scores of queries that sit at positions `q_pos` of the key stream:
/// s[..., i, j] = q[..., i, :] . table[q_pos[i] - j + P - 1, :].
/// q: [..., Tq, d]; table: [2P-1, d]; q_pos: [Tq] int64 in 0..Tk-1 -> [..., Tq, Tk].
/// relative_key_scores (attention_common.h) is the case q_pos = 0..T-1, Tk = T.
torch::Tensor relative_key_scores_at(const torch::Tensor& q, const torch::Tensor& table, int64_t max_positions,
                                     const torch::Tensor& q_pos, int64_t key_length);

}  // namespace flexnas::models
