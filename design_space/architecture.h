#pragma once
// An architecture ("model dict") of a heterogeneous transformer encoder, in the reference's two
// JSON formats (spec §1.3-1.4):
//   standard: {"l": L, "h": [..], "n": [..], "o": ["sa"|"l"|"c", ..], "f": [[..], ..], "p": [..]}
//   hetero:   {"l": L, "h": [..], "f": [[..], ..], "o": [["sa_sdp_64", "l_dft_64", ..], ..]}
// each optionally with flexnas's "pool" key (Funnel pooling, below) and "share" key (block
// parameter sharing, Architecture::share) after the reference keys, and NAS-Bench-BERT's
// "nas_config" (read only). Canonical JSON keeps the reference's key order
// (standard l,h,n,o,f,p; hetero l,h,f,o) and writes all-digit parameters as integers (conv kernels).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "design_space/config_node.h"

namespace flexnas {

/// One head of a hetero layer: "<type>_<param>_<dim>", e.g. "sa_wma_32", "c_9_64".
struct HeadSpec {
  std::string type;   // "sa" | "l" | "c" (any registered operation type)
  std::string param;  // "sdp" | "wma" | "dft" | "dct" | kernel size "5" ...
  int64_t dim = 0;    // per-head dimension D

  std::string to_string() const;  // "sa_wma_32"
  bool operator==(const HeadSpec& o) const { return type == o.type && param == o.param && dim == o.dim; }
};

/// One encoder layer.
struct LayerSpec {
  int64_t hidden = 0;          // h_i: width of the layer's input/output
  std::vector<int64_t> ffn;    // f_i: widths of the feed-forward stack (its length = nff_i)
  // Standard format (all heads share one operation):
  std::string op;              // "sa" | "l" | "c"
  std::string param;           // "sdp" | "wma" | "dft" | "dct" | "5" | "9" | "13"
  int64_t heads = 0;           // n_i
  // Hetero format (one entry per head; empty in the standard format):
  std::vector<HeadSpec> head_list;

  int64_t num_heads() const { return head_list.empty() ? heads : int64_t(head_list.size()); }
  bool operator==(const LayerSpec& o) const {
    return hidden == o.hidden && ffn == o.ffn && op == o.op && param == o.param && heads == o.heads &&
           head_list == o.head_list;
  }
};

enum class ArchFormat { kStandard, kHetero };

/// Funnel-Transformer pooling (seed 003, Dai et al. 2020): the token stream is mean-pooled before
/// chosen layers, so the layers above run on a shorter sequence; token-level heads (mlm, token) get a
/// decoder that up-samples back to full length. Model-dict key "pool" (both formats):
///   {"stride": [1, 1, 2, 1, 2, 1], "q_only": true, "separate_cls": true, "decoder": 2}
/// No pooling (every stride 1) is the same model as no key, so it is stored as an empty stride list
/// and the canonical JSON leaves the key out: models without pooling keep their reference hashes.
struct PoolSpec {
  std::vector<int64_t> stride;  // per layer: pool by this factor before the layer (1 = no pooling); empty = none
  bool q_only = true;           // the pooling layer pools its queries only; keys and values see the full stream
  bool separate_cls = true;     // [CLS] (token 0) is never pooled with other tokens
  int64_t decoder = 2;          // layers after up-sampling, at full length (token-level heads only)

  // Allowed values (a design choice: Funnel uses stride 2 and 2 decoder layers; a factor of 8 twice
  // already folds a 512-token sequence into 8 tokens).
  static constexpr int64_t kMaxStride = 8;
  static constexpr int64_t kMaxDecoder = 12;

  bool active() const { return !stride.empty(); }
  /// Product of the strides (1 without pooling).
  int64_t total_stride() const;
  /// Index of the first layer that pools (num_layers when none).
  size_t first_pooling_layer() const;
  /// "" when a stride / a decoder depth is allowed, else the error text (model dicts and YAML share it).
  static std::string stride_problem(int64_t stride);
  static std::string decoder_problem(int64_t decoder);
  bool operator==(const PoolSpec& o) const {
    return stride == o.stride && q_only == o.q_only && separate_cls == o.separate_cls && decoder == o.decoder;
  }
};

struct Architecture {
  ArchFormat format = ArchFormat::kStandard;
  std::vector<LayerSpec> layers;
  PoolSpec pool;  // Funnel pooling; inactive by default
  // Block parameter sharing (Funnel-Transformer's "3x2" blocks: 3 parameterised layers, each run
  // twice in a row). Model-dict key "share", one entry per layer: the index of the layer whose
  // parameters layer i runs with, i itself when it owns them, e.g. [0, 0, 2, 2, 4, 4]. An owner
  // owns its parameters (share[share[i]] == share[i]), comes first (share[i] <= i) and has the
  // same specification (h, n, o, f, p; hetero heads). Only proj_head, the projection to the next
  // layer's width, stays per layer. Nothing shared is stored as an empty list and the canonical
  // JSON leaves the key out, so models without sharing keep their reference hashes.
  std::vector<int64_t> share;

  int64_t num_layers() const { return int64_t(layers.size()); }
  bool is_hetero() const { return format == ArchFormat::kHetero; }
  bool shares() const { return !share.empty(); }
  /// The layer whose parameters layer i runs with (i without sharing).
  size_t owner(size_t i) const { return share.empty() ? i : size_t(share[i]); }
  /// "" when layer i may run with layer share[i]'s parameters, else why not (model dicts, the
  /// models' validation and design spaces share the text). Needs share[i] to be in range.
  std::string share_problem(size_t i) const;

  /// Canonical JSON (ordered keys as the reference writes them).
  nlohmann::ordered_json to_json() const;
  /// Canonical JSON text, compact ("{"l":2,...}") — stable, usable as a key.
  std::string to_canonical_string() const;

  bool operator==(const Architecture& o) const {
    return format == o.format && layers == o.layers && pool == o.pool && share == o.share;
  }
  bool operator!=(const Architecture& o) const { return !(*this == o); }
};

/// Reads a model dict in either format, or a NAS-Bench-BERT record / nas_config (detected by keys),
/// with located errors for every wrong key, type, length or value.
Architecture architecture_from_config(const ConfigNode& node);
/// Same, from JSON already parsed (e.g. library files); `where` names the source in messages.
Architecture architecture_from_json(const nlohmann::json& json, const std::string& where = "<json>");
/// Reads a file holding one model dict.
Architecture load_architecture(const std::string& path);

/// NAS-Bench-BERT nas_config ({"hidden_size": H, "nas_config": {"encoder_layers": [...]}}) →
/// standard model dict: op SA/LT/DSC → sa/l/c, SDP/WMA/DFT/DCT → lower case, kernels as digits,
/// every layer of width H, nff copies of feed_forward_dimension.
Architecture architecture_from_nas_config(const ConfigNode& model_hparam_overrides);

/// Python-repr helpers used by the hash salt (spec §2.2 step 4): "[128, 128]", "[[512], [512, 512]]".
std::string python_list_repr(const std::vector<int64_t>& values);
std::string python_list_repr(const std::vector<std::vector<int64_t>>& values);

}  // namespace flexnas
