#pragma once
// Building blocks shared by the operation files and the hetero attention module. Every function
// here has a line-for-line twin in python/flexnas_torch.py; change both together.
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace flexnas::models {

/// Additive key mask from a [B,T] 0/1 attention mask: [B,1,1,T], 0 for tokens, -10000 for padding.
torch::Tensor additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype);

/// Relative-key scores (spec §5.3): s[..., i, j] = q[..., i, :] . table[i - j + P - 1, :].
/// q: [..., T, d]; table: [2P-1, d] -> [..., T, T]. Throws Error when T > P.
torch::Tensor relative_key_scores(const torch::Tensor& q, const torch::Tensor& table, int64_t max_positions);

/// softmax(scores / sqrt(d) + mask_add) -> dropout -> @ v.
/// scores: [B,H,T,T] (or [B,T,T] with a [B,1,T] mask); v: [..., T, d] -> [..., T, d].
torch::Tensor attend(const torch::Tensor& scores, double scale_dim, const torch::Tensor& mask_add,
                     const torch::Tensor& v, double dropout, bool training);

enum class Transform { kDft, kDct };

/// Parameter-free 2-D token mixing over the valid tokens and the feature axis (defect 33 fixed):
///   dft: Re(F_T x F_D^T)   (FNet: DFT over features, then over tokens)
///   dct: C_T x C_D^T, C_N[k, n] = 2 cos(pi k (2n+1) / 2N)  (unnormalised DCT-II, both axes)
/// where the token transform of each sequence runs over its own valid tokens only (rank among the
/// valid tokens, length = number of valid tokens); padded rows and columns are zero, so padding
/// neither leaks into tokens nor changes their result.
/// x: [B,T,D] or [B,H,T,D]; valid: [B,T] 0/1 -> same shape as x.
torch::Tensor linear_mix(const torch::Tensor& x, const torch::Tensor& valid, Transform transform);

/// Light-weight dynamic convolution (ConvBERT): out[b,t,c] = sum_j window(values)[b,t,c,j] * kernel[b,t,head(c),j]
/// values: [B,T,a*d] (zero at padded tokens); kernel: [B,T,a,k] (softmax over taps) -> [B,T,a*d].
torch::Tensor dynamic_conv(const torch::Tensor& values, const torch::Tensor& kernel, int64_t heads);

/// Clipped relative-distance index of the attention kernels (op `ak`): [T,T] int64,
/// idx[i][j] = clamp(j - i, -window, window) + window, i.e. a column of a [.., 2*window+1] table.
/// Distances beyond the window share the edge column (they are not masked).
torch::Tensor clipped_distance_index(int64_t T, int64_t window, const torch::Device& device);

/// Window scores: s[..., i, j] = x[..., i, :] . table[:, idx[i][j]] (x: [..., T, d]; table:
/// [d, 2N+1]; idx from clipped_distance_index) -> [..., T, T], unscaled. With `transpose` the
/// result is transposed in its last two axes: s[..., i, j] = x[..., j, :] . table[:, idx[j][i]]
/// (the key-side kernel k_j . s_clip(i-j)).
torch::Tensor window_scores(const torch::Tensor& x, const torch::Tensor& table, const torch::Tensor& idx, bool transpose);

/// A parsed parameter of op `ak` (models/ops/attention_kernel.cpp): <components>[:<N>].
struct AttentionKernelSpec {
  bool has[6] = {false, false, false, false, false, false};  // qk, convfixed, convq, convk, vconv, qkconv
  int64_t window = 0;                                         // N (0: qk alone)
  bool qk() const { return has[0]; }
  bool convfixed() const { return has[1]; }
  bool convq() const { return has[2]; }
  bool convk() const { return has[3]; }
  bool vconv() const { return has[4]; }
  bool qkconv() const { return has[5]; }
  bool uses_q() const { return qk() || convq(); }  // a query projection exists
  bool uses_k() const { return qk() || convk(); }  // a key projection exists
  int64_t taps() const { return 2 * window + 1; }
  /// Projections convolved by qkconv (0, 1 or 2).
  int64_t conv_projections() const { return qkconv() ? int64_t(uses_q()) + int64_t(uses_k()) : 0; }
};

/// The `ak` parameter checker: "" and `spec` filled when `param` is valid, else what is allowed.
std::string parse_attention_kernel(const std::string& param, AttentionKernelSpec& spec);

/// Splits [B,T,H*d] into heads: [B,H,T,d].
torch::Tensor split_heads(const torch::Tensor& x, int64_t heads);
/// [B,H,T,d] -> [B,T,H*d].
torch::Tensor merge_heads(const torch::Tensor& x);

/// Parses a kernel-size parameter ("9" -> 9); the catalogue checker has validated it.
int64_t kernel_size_of(const std::string& param);

}  // namespace flexnas::models
