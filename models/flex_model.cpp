#include "models/flex_model.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include "design_space/error.h"
#include "models/attention_common.h"
#include "models/op_registry.h"
#include "models/pooling.h"

namespace flexnas::models {

const EnumNames<HeadType>& head_type_names() {
  static const EnumNames<HeadType> names{{"mlm", HeadType::kMlm}, {"cls", HeadType::kSequence}, {"token", HeadType::kToken}};
  return names;
}

std::string head_type_name(HeadType head) { return enum_name(head_type_names(), head); }

HeadType parse_head_type(const std::string& text, const std::string& what) {
  for (const auto& [name, head] : head_type_names())
    if (text == name) return head;
  std::string allowed;
  for (const auto& entry : head_type_names()) allowed += (allowed.empty() ? "" : ", ") + entry.first;
  throw ConfigError("error: " + what + ": unknown head type '" + text + "' (allowed: " + allowed + ")");
}

const EnumNames<ClassifierPooling>& classifier_pooling_names() {
  static const EnumNames<ClassifierPooling> names{{"mean", ClassifierPooling::kMean}, {"first", ClassifierPooling::kFirst}};
  return names;
}

nlohmann::ordered_json ModelOptions::to_json() const {
  nlohmann::ordered_json j;
  j["vocab_size"] = vocab_size;
  j["max_positions"] = max_positions;
  j["type_vocab_size"] = type_vocab_size;
  j["pad_id"] = pad_id;
  j["hidden_dropout"] = hidden_dropout;
  j["attention_dropout"] = attention_dropout;
  j["classifier_dropout"] = classifier_dropout;
  j["layer_norm_eps"] = layer_norm_eps;
  j["initializer_range"] = initializer_range;
  j["head"] = head_type_name(head);
  j["num_labels"] = num_labels;
  j["classifier_pooling"] = enum_name(classifier_pooling_names(), classifier_pooling);
  return j;
}

ModelOptions ModelOptions::from_config(const ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a map of model options, got " + node.describe());
  node.check_keys({"vocab_size", "max_positions", "type_vocab_size", "pad_id", "hidden_dropout", "attention_dropout",
                   "classifier_dropout", "layer_norm_eps", "initializer_range", "head", "num_labels",
                   "classifier_pooling"});
  ModelOptions o;
  o.classifier_pooling = ClassifierPooling::kFirst;  // checkpoints written before the key pooled [CLS]
  node.get("vocab_size", o.vocab_size);
  node.get("max_positions", o.max_positions);
  node.get("type_vocab_size", o.type_vocab_size);
  node.get("pad_id", o.pad_id);
  node.get("hidden_dropout", o.hidden_dropout);
  node.get("attention_dropout", o.attention_dropout);
  node.get("classifier_dropout", o.classifier_dropout);
  node.get("layer_norm_eps", o.layer_norm_eps);
  node.get("initializer_range", o.initializer_range);
  node.get("num_labels", o.num_labels);
  if (auto head = node.find("head")) {
    const std::string text = head->as_string();
    if (text != "mlm" && text != "cls" && text != "token") head->fail("unknown head type '" + text + "' (allowed: mlm, cls, token)");
    o.head = parse_head_type(text, "head");
  }
  node.get_enum("classifier_pooling", o.classifier_pooling, classifier_pooling_names());
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) node[key].fail(std::string(key) + " must be positive, got " + std::to_string(v));
  };
  if (node.has("vocab_size")) positive("vocab_size", o.vocab_size);
  if (node.has("max_positions")) positive("max_positions", o.max_positions);
  if (node.has("type_vocab_size")) positive("type_vocab_size", o.type_vocab_size);
  if (node.has("num_labels")) positive("num_labels", o.num_labels);
  if (node.has("pad_id") && (o.pad_id < 0 || o.pad_id >= o.vocab_size))
    node["pad_id"].fail("pad_id " + std::to_string(o.pad_id) + " is outside the vocabulary 0.." +
                        std::to_string(o.vocab_size - 1));
  return o;
}

// ---------------------------------------------------------------------------------------------
// Validation and cost from the model dict alone.

CoreConfig core_config(const LayerSpec& layer, const ModelOptions& o) {
  CoreConfig c;
  c.hidden = layer.hidden;
  c.heads = layer.heads;
  c.param = layer.param;
  c.max_positions = o.max_positions;
  c.attention_dropout = o.attention_dropout;
  return c;
}

HeadConfig head_config(const HeadSpec& head, const ModelOptions& o) {
  HeadConfig c;
  c.param = head.param;
  c.dim = head.dim;
  c.max_positions = o.max_positions;
  c.attention_dropout = o.attention_dropout;
  return c;
}

namespace {

std::string registered_list() { return join(op_registry().names()); }

// Where a validation error points: a file, and optionally the node the model dict was read from.
struct Where {
  std::string file;
  const ConfigNode* source = nullptr;
};

/// Fails at model-dict key `field`[i][j] (i, j < 0: not indexed), at its line and column when the
/// source node is known.
[[noreturn]] void fail_at(const Where& w, const std::string& field, int64_t i, int64_t j, const std::string& message) {
  if (w.source && w.source->is_map() && w.source->has(field)) {
    ConfigNode node = (*w.source)[field];
    if (i >= 0 && node.is_sequence() && size_t(i) < node.size()) {
      node = node.at(size_t(i));
      if (j >= 0 && node.is_sequence() && size_t(j) < node.size()) node = node.at(size_t(j));
    }
    node.fail(message);
  }
  std::string key = field;
  if (i >= 0) key += "[" + std::to_string(i) + "]";
  if (j >= 0) key += "[" + std::to_string(j) + "]";
  throw_config_error(Location{w.file, 0, 0, key}, message);
}

const OpDefinition& op_for(const std::string& type, const std::string& param, const Where& w, int64_t i, int64_t j) {
  const OpDefinition* def = op_registry().find(type);
  if (!def) fail_at(w, "o", i, j, "unknown operation type '" + type + "' (registered: " + registered_list() + ")");
  const std::string allowed = def->check_param(param);
  if (!allowed.empty())
    fail_at(w, j >= 0 ? "o" : "p", i, j,
            "invalid parameter '" + param + "' for operation '" + type + "' (allowed: " + allowed + ")");
  return *def;
}

// Width of the attention output that the SelfOutput maps back to h.
int64_t attention_width(const LayerSpec& layer, const ModelOptions& o) {
  if (!layer.head_list.empty()) return layer.num_heads() * layer.head_list.front().dim;
  return op_registry().find(layer.op)->core_output_width(core_config(layer, o));
}

}  // namespace

void validate_architecture(const Architecture& arch, const ModelOptions& o, const std::string& where,
                           const ConfigNode* source) {
  const Where w{where, source};
  const Where file_only{where, nullptr};
  if (arch.layers.empty()) fail_at(w, "l", -1, -1, "an architecture needs at least one layer");
  if (o.vocab_size <= 0) fail_at(file_only, "vocab_size", -1, -1, "must be positive, got " + std::to_string(o.vocab_size));
  if (o.max_positions <= 0)
    fail_at(file_only, "max_positions", -1, -1, "must be positive, got " + std::to_string(o.max_positions));
  if (o.pad_id < 0 || o.pad_id >= o.vocab_size)
    fail_at(file_only, "pad_id", -1, -1, "pad_id " + std::to_string(o.pad_id) + " is outside the vocabulary");
  if (o.head == HeadType::kToken && o.num_labels < 2)
    fail_at(file_only, "num_labels", -1, -1,
            "a token classification head needs at least 2 labels, got " + std::to_string(o.num_labels));
  if (o.head == HeadType::kSequence && o.num_labels < 1)
    fail_at(file_only, "num_labels", -1, -1, "needs at least 1 label (1 = regression), got " + std::to_string(o.num_labels));
  if (arch.pool.active()) {
    const PoolSpec& pool = arch.pool;
    if (pool.stride.size() != arch.layers.size())
      fail_at(w, "pool", -1, -1, "pool.stride needs one entry per layer (" + std::to_string(arch.layers.size()) +
                                     "), got " + std::to_string(pool.stride.size()));
    if (pool.stride.front() != 1) fail_at(w, "pool", -1, -1, "the first layer cannot pool (pool.stride[0] must be 1)");
    // Ceil-mode windows never leave fewer than one token; a total factor that folds even the longest
    // sequence into one window leaves nothing to attend over.
    const int64_t longest = o.max_positions - (pool.separate_cls ? 1 : 0);
    if (pool.total_stride() >= longest)
      fail_at(w, "pool", -1, -1,
              "the pooling strides multiply to " + std::to_string(pool.total_stride()) +
                  ", which pools even the longest sequence (" + std::to_string(longest) +
                  " tokens besides [CLS] at max_positions " + std::to_string(o.max_positions) +
                  ") into a single token; use fewer or smaller strides");
  }
  if (arch.shares()) {
    // Block parameter sharing (architecture.h): owners come first, own their parameters, and match.
    if (arch.share.size() != arch.layers.size())
      fail_at(w, "share", -1, -1, "needs one entry per layer (" + std::to_string(arch.layers.size()) + "), got " +
                                      std::to_string(arch.share.size()));
    for (size_t i = 0; i < arch.share.size(); ++i) {
      if (arch.share[i] < 0 || arch.share[i] > int64_t(i))
        fail_at(w, "share", int64_t(i), -1,
                "layer " + std::to_string(i) + " can run with the parameters of layer 0.." + std::to_string(i) +
                    " (itself or an earlier layer), got " + std::to_string(arch.share[i]));
      if (const std::string problem = arch.share_problem(i); !problem.empty()) fail_at(w, "share", int64_t(i), -1, problem);
    }
  }
  for (size_t li = 0; li < arch.layers.size(); ++li) {
    const LayerSpec& layer = arch.layers[li];
    const int64_t i = int64_t(li);
    if (layer.hidden <= 0) fail_at(w, "h", i, -1, "hidden size must be positive");
    if (layer.ffn.empty()) fail_at(w, "f", i, -1, "a layer needs at least one feed-forward width");
    if (layer.head_list.empty()) {
      const OpDefinition& def = op_for(layer.op, layer.param, w, i, -1);
      if (layer.heads <= 0) fail_at(w, "n", i, -1, "number of heads must be positive");
      const std::string problem = def.check_core(core_config(layer, o));
      if (!problem.empty()) fail_at(w, "n", i, -1, problem);
    } else {
      for (size_t j = 0; j < layer.head_list.size(); ++j) {
        const OpDefinition& def = op_for(layer.head_list[j].type, layer.head_list[j].param, w, i, int64_t(j));
        const std::string problem = def.check_head ? def.check_head(head_config(layer.head_list[j], o)) : "";
        if (!problem.empty()) fail_at(w, "o", i, int64_t(j), problem);
      }
    }
  }
}

namespace {

bool layer_pools_queries(const LayerSpec& spec);

/// Parameters and forward FLOPs per *processed* token of one layer at sequence length T, with its
/// projection to `next_hidden` (0 = none). `keys` > 0: a pool-q-only layer whose T pooled queries
/// attend over `keys` tokens.
BlockCost layer_cost(const LayerSpec& layer, int64_t next_hidden, const ModelOptions& o, int64_t T, std::string name,
                     int64_t keys = 0) {
  const int64_t h = layer.hidden;
  const int64_t Tk = keys > 0 ? keys : T;
  BlockCost b{std::move(name), 0, 0.0};
  if (layer.head_list.empty()) {
    const OpDefinition& def = *op_registry().find(layer.op);
    b.params += def.core_params(core_config(layer, o));
    b.flops_per_token += keys > 0 ? def.core_flops_pooled(core_config(layer, o), T, Tk) : def.core_flops(core_config(layer, o), T);
  } else {
    const int64_t D = layer.head_list.front().dim, W = layer.num_heads() * D;
    b.params += 3 * (h * W + W) + (2 * o.max_positions - 1) * D;
    // Q on the queries, K/V on the keys, relative scores over the keys' distances (per query).
    b.flops_per_token += 2.0 * h * W + 4.0 * h * W * double(Tk) / double(T) + 2.0 * (2 * Tk - 1) * W;
    for (const HeadSpec& head : layer.head_list) {
      const OpDefinition& def = *op_registry().find(head.type);
      b.params += def.head_params(head_config(head, o));
      b.flops_per_token += def.head_flops(head_config(head, o), Tk);
    }
  }
  const int64_t w = attention_width(layer, o);
  b.params += w * h + h + 2 * h;  // attention.output: dense + LayerNorm
  b.flops_per_token += 2.0 * w * h;
  int64_t in = h;
  for (int64_t f : layer.ffn) {
    b.params += in * f + f;
    b.flops_per_token += 2.0 * in * f;
    in = f;
  }
  b.params += in * h + h + 2 * h;  // output: dense + LayerNorm
  b.flops_per_token += 2.0 * in * h;
  if (next_hidden > 0 && next_hidden != h) {
    b.params += h * next_hidden + next_hidden;  // proj_head
    b.flops_per_token += 2.0 * h * next_hidden;
  }
  return b;
}

bool token_level(HeadType head) { return head == HeadType::kMlm || head == HeadType::kToken; }

/// Whether this model runs the Funnel decoder: pooling and a head that needs every token.
bool has_decoder(const Architecture& arch, const ModelOptions& o) { return arch.pool.active() && token_level(o.head); }

/// The layer whose output the decoder adds back (the last one before the first pooling); the
/// decoder's layers repeat its specification.
const LayerSpec& decoder_layer_spec(const Architecture& arch) { return arch.layers[arch.pool.first_pooling_layer() - 1]; }

/// Width the head reads.
int64_t head_width(const Architecture& arch, const ModelOptions& o) {
  return has_decoder(arch, o) ? decoder_layer_spec(arch).hidden : arch.layers.back().hidden;
}

}  // namespace

ModelCost model_cost(const Architecture& arch, const ModelOptions& o, int64_t T) {
  validate_architecture(arch, o);
  ModelCost cost;
  cost.seq_len = T;
  const int64_t h0 = arch.layers.front().hidden;
  cost.blocks.push_back({"embeddings", o.vocab_size * h0 + o.type_vocab_size * h0 + 2 * h0, 0.0});
  // Under pooling, layer i runs on T_i tokens; its FLOPs are scaled by T_i / T so every block's
  // figure stays "per input token". A pool-q-only layer's keys and values keep T_(i-1) tokens.
  int64_t Ti = T;
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const int64_t before = Ti;
    const bool pools = arch.pool.active() && arch.pool.stride[i] > 1;
    if (pools) Ti = pooled_length(Ti, arch.pool.stride[i], arch.pool.separate_cls);
    const int64_t keys = pools && arch.pool.q_only && layer_pools_queries(arch.layers[i]) ? before : 0;
    const int64_t next = i + 1 < arch.layers.size() ? arch.layers[i + 1].hidden : 0;
    BlockCost b = layer_cost(arch.layers[i], next, o, Ti, "layer " + std::to_string(i), keys);
    b.flops_per_token *= double(Ti) / double(T);
    if (arch.owner(i) != i) {
      // Block parameter sharing: the FLOPs of every application, the parameters once (at the
      // owner); only the projection to the next width is this layer's own.
      const int64_t h = arch.layers[i].hidden;
      b.params = next > 0 && next != h ? h * next + next : 0;
      b.name += " (shares " + std::to_string(arch.owner(i)) + ")";
    }
    cost.blocks.push_back(b);
  }
  if (has_decoder(arch, o)) {
    const LayerSpec& spec = decoder_layer_spec(arch);
    const int64_t hl = arch.layers.back().hidden;
    if (hl != spec.hidden)
      cost.blocks.push_back({"decoder up-projection", hl * spec.hidden + spec.hidden, 2.0 * hl * spec.hidden});
    for (int64_t d = 0; d < arch.pool.decoder; ++d)
      cost.blocks.push_back(layer_cost(spec, 0, o, T, "decoder layer " + std::to_string(d)));
  }
  const int64_t hl = head_width(arch, o), K = o.num_labels;
  BlockCost head{"head (" + head_type_name(o.head) + ")", 0, 0.0};
  switch (o.head) {
    case HeadType::kMlm:
      head.params = hl * hl + hl + 2 * hl + hl * o.vocab_size + o.vocab_size;
      head.flops_per_token = 2.0 * hl * hl + 2.0 * hl * o.vocab_size;
      break;
    case HeadType::kSequence:  // pooler + classifier, once per sequence (on [CLS] or the tokens' mean: no product)
      head.params = hl * hl + hl + hl * K + K;
      head.flops_per_token = (2.0 * hl * hl + 2.0 * hl * K) / double(T);
      break;
    case HeadType::kToken:
      head.params = hl * K + K;
      head.flops_per_token = 2.0 * hl * K;
      break;
  }
  cost.blocks.push_back(head);
  for (const auto& b : cost.blocks) {
    cost.total_params += b.params;
    cost.total_flops_per_token += b.flops_per_token;
  }
  return cost;
}

BaseModelCost base_model_cost(const Architecture& arch, const ModelOptions& options, int64_t T, bool include_pooler) {
  ModelOptions o = options;
  o.head = HeadType::kSequence;  // pooler + classifier once per sequence; no Funnel decoder
  const ModelCost full = model_cost(arch, o, T);
  BaseModelCost cost;
  for (const BlockCost& b : full.blocks) {
    if (&b == &full.blocks.back()) break;  // the head block
    cost.parameters += b.params;
    cost.flops_per_token += b.flops_per_token;
  }
  const int64_t h = arch.layers.back().hidden;  // the pooler: Linear(h, h)
  if (include_pooler) cost.parameters += h * h + h;
  return cost;
}

// ---------------------------------------------------------------------------------------------
// Modules.

namespace {

/// Under autocast, matrix products return bf16/fp16; LayerNorm inputs, the residual stream and the
/// logits that losses read are kept fp32 (a no-op in fp32 runs).
torch::Tensor fp32(const torch::Tensor& t) { return t.to(torch::kFloat); }

/// Hetero format attention core: shared Q/K/V (h -> n*D) and distance table, one HeadOp per head.
/// [B,T,h] -> [B,T,n*D]
class HeteroSelfAttention : public AttentionCore {
 public:
  HeteroSelfAttention(const LayerSpec& layer, const ModelOptions& o)
      : heads_(layer.num_heads()), dim_(layer.head_list.front().dim), max_positions_(o.max_positions) {
    const int64_t W = heads_ * dim_;
    query_ = register_module("query", torch::nn::Linear(layer.hidden, W));
    key_ = register_module("key", torch::nn::Linear(layer.hidden, W));
    value_ = register_module("value", torch::nn::Linear(layer.hidden, W));
    distance_ = register_module("distance_embedding", torch::nn::Embedding(2 * o.max_positions - 1, dim_));
    auto list = register_module("heads", torch::nn::ModuleList());
    for (const HeadSpec& head : layer.head_list) {
      auto op = op_registry().find(head.type)->build_head(head_config(head, o));
      list->push_back(op);
      heads_ops_.push_back(op);
    }
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in) override {
    const auto& kv = in.kv.defined() ? in.kv : x;  // pool-q-only: x holds the pooled queries
    auto q = split_heads(query_(x), heads_);  // [B,n,Tq,D]
    auto k = split_heads(key_(kv), heads_);   // [B,n,T,D]
    auto v = split_heads(value_(kv), heads_);
    auto rel = in.q_pos.defined() ? relative_key_scores_at(q, distance_->weight, max_positions_, in.q_pos, kv.size(1))
                                  : relative_key_scores(q, distance_->weight, max_positions_);  // [B,n,Tq,T]
    std::vector<torch::Tensor> outs;
    for (int64_t j = 0; j < heads_; ++j)
      outs.push_back(heads_ops_[size_t(j)]->forward({q.select(1, j), k.select(1, j), v.select(1, j), rel.select(1, j)}, in));
    return torch::cat(outs, -1);
  }

 private:
  int64_t heads_, dim_, max_positions_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr};
  torch::nn::Embedding distance_{nullptr};
  std::vector<std::shared_ptr<HeadOp>> heads_ops_;
};

struct Layer {
  std::shared_ptr<AttentionCore> core;
  torch::nn::Linear attn_dense{nullptr}, out_dense{nullptr}, proj{nullptr};
  torch::nn::LayerNorm attn_norm{nullptr}, out_norm{nullptr};
  std::vector<torch::nn::Linear> ffn;
  bool pools_queries = false;  // its attention takes pooled queries (pool-q-only)
};

/// Whether a layer's attention accepts pooled queries: every op it uses says so.
bool layer_pools_queries(const LayerSpec& spec) {
  if (spec.head_list.empty()) return op_registry().find(spec.op)->pools_queries;
  for (const HeadSpec& head : spec.head_list)
    if (!op_registry().find(head.type)->pools_queries) return false;
  return true;
}

/// Builds one encoder (or decoder) layer as Hugging Face names it (attention.self, attention.output,
/// intermediate, output, proj_head when `next_hidden` differs) and appends it to `list`.
Layer build_layer(const LayerSpec& spec, int64_t next_hidden, const ModelOptions& o, torch::nn::ModuleList list) {
  auto ln = [&](int64_t h) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(o.layer_norm_eps)); };
  const int64_t h = spec.hidden;
  Layer L;
  auto mod = std::make_shared<torch::nn::Module>();
  auto attention = mod->register_module("attention", std::make_shared<torch::nn::Module>());
  if (spec.head_list.empty())
    L.core = op_registry().find(spec.op)->build_core(core_config(spec, o));
  else
    L.core = std::make_shared<HeteroSelfAttention>(spec, o);
  L.pools_queries = layer_pools_queries(spec);
  attention->register_module("self", L.core);
  auto self_out = attention->register_module("output", std::make_shared<torch::nn::Module>());
  L.attn_dense = self_out->register_module("dense", torch::nn::Linear(attention_width(spec, o), h));
  L.attn_norm = self_out->register_module("LayerNorm", ln(h));
  auto inter = mod->register_module("intermediate", std::make_shared<torch::nn::Module>());
  int64_t in = h;
  for (size_t j = 0; j < spec.ffn.size(); ++j) {
    const std::string name = j == 0 ? "dense" : "dense_" + std::to_string(j);
    L.ffn.push_back(inter->register_module(name, torch::nn::Linear(in, spec.ffn[j])));
    in = spec.ffn[j];
  }
  auto out = mod->register_module("output", std::make_shared<torch::nn::Module>());
  L.out_dense = out->register_module("dense", torch::nn::Linear(in, h));
  L.out_norm = out->register_module("LayerNorm", ln(h));
  if (next_hidden > 0 && next_hidden != h) L.proj = mod->register_module("proj_head", torch::nn::Linear(h, next_hidden));
  list->push_back(mod);
  return L;
}

/// One layer on the stream x ([B,T,h] -> [B,T,h]); x is also the attention's residual. Under
/// pool-q-only x holds the pooled queries [B,Tq,h] and in.kv the full stream.
torch::Tensor run_layer(Layer& L, const torch::Tensor& x, const AttentionInputs& in, double drop, bool train) {
  auto a = L.core->forward(x, in);
  // fp32 islands: under autocast the dense outputs are bf16/fp16; residual sums and LayerNorm
  // run in fp32, so the stream between layers stays fp32.
  auto y = L.attn_norm(fp32(torch::dropout(L.attn_dense(a), drop, train)) + x);
  auto z = y;
  for (auto& dense : L.ffn) z = torch::gelu(dense(z));
  return L.out_norm(fp32(torch::dropout(L.out_dense(z), drop, train)) + y);
}

AttentionInputs attention_inputs(const torch::Tensor& valid, torch::ScalarType dtype) {
  AttentionInputs in;
  in.mask_add = additive_mask(valid, dtype);
  in.valid = valid.to(dtype);
  return in;
}

}  // namespace

struct FlexModelImpl::Parts {
  torch::nn::Embedding word{nullptr}, token_type{nullptr};
  torch::nn::LayerNorm emb_norm{nullptr};
  std::vector<Layer> layers;
  // Funnel decoder (pooling with a token-level head): up-projection when widths differ, layers.
  torch::nn::Linear up_proj{nullptr};
  std::vector<Layer> decoder;
  // Heads.
  torch::nn::Linear mlm_dense{nullptr}, mlm_decoder{nullptr}, pooler{nullptr}, classifier{nullptr};
  torch::nn::LayerNorm mlm_norm{nullptr};
  torch::Tensor mlm_bias;
};

FlexModelImpl::FlexModelImpl(const Architecture& arch, const ModelOptions& o)
    : arch_(arch), options_(o), parts_(std::make_shared<Parts>()) {
  validate_architecture(arch, o);
  auto ln = [&](int64_t h) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(o.layer_norm_eps)); };
  Parts& p = *parts_;
  bert_ = register_module("bert", std::make_shared<torch::nn::Module>("bert"));
  const int64_t h0 = arch.layers.front().hidden;
  auto emb = bert_->register_module("embeddings", std::make_shared<torch::nn::Module>());
  p.word = emb->register_module("word_embeddings",
                                torch::nn::Embedding(torch::nn::EmbeddingOptions(o.vocab_size, h0).padding_idx(o.pad_id)));
  p.token_type = emb->register_module("token_type_embeddings", torch::nn::Embedding(o.type_vocab_size, h0));
  p.emb_norm = emb->register_module("LayerNorm", ln(h0));

  auto encoder = bert_->register_module("encoder", std::make_shared<torch::nn::Module>());
  auto layer_list = encoder->register_module("layer", torch::nn::ModuleList());
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const int64_t next = i + 1 < arch.layers.size() ? arch.layers[i + 1].hidden : 0;
    if (arch.owner(i) == i) {
      p.layers.push_back(build_layer(arch.layers[i], next, o, layer_list));
      continue;
    }
    // Block parameter sharing: the owner's modules run here again; bert.encoder.layer.<i> holds only
    // this layer's own proj_head (when the next width differs), so each shared tensor is one
    // parameter, stored once in checkpoints and stepped once by optimisers.
    Layer L = p.layers[arch.owner(i)];
    auto mod = std::make_shared<torch::nn::Module>();
    const int64_t h = arch.layers[i].hidden;
    L.proj = next > 0 && next != h ? mod->register_module("proj_head", torch::nn::Linear(h, next)) : torch::nn::Linear{nullptr};
    layer_list->push_back(mod);
    p.layers.push_back(L);
  }
  if (has_decoder(arch, o)) {
    const LayerSpec& spec = decoder_layer_spec(arch);
    auto decoder = bert_->register_module("decoder", std::make_shared<torch::nn::Module>());
    if (arch.layers.back().hidden != spec.hidden)
      p.up_proj = decoder->register_module("up_proj", torch::nn::Linear(arch.layers.back().hidden, spec.hidden));
    auto decoder_list = decoder->register_module("layer", torch::nn::ModuleList());
    for (int64_t d = 0; d < arch.pool.decoder; ++d) p.decoder.push_back(build_layer(spec, 0, o, decoder_list));
  }

  const int64_t hl = head_width(arch, o);
  switch (o.head) {
    case HeadType::kMlm: {
      auto cls = register_module("cls", std::make_shared<torch::nn::Module>());
      auto pred = cls->register_module("predictions", std::make_shared<torch::nn::Module>());
      auto transform = pred->register_module("transform", std::make_shared<torch::nn::Module>());
      p.mlm_dense = transform->register_module("dense", torch::nn::Linear(hl, hl));
      p.mlm_norm = transform->register_module("LayerNorm", ln(hl));
      p.mlm_decoder = pred->register_module("decoder", torch::nn::Linear(torch::nn::LinearOptions(hl, o.vocab_size).bias(false)));
      p.mlm_bias = pred->register_parameter("bias", torch::zeros({o.vocab_size}));
      break;
    }
    case HeadType::kSequence: {
      auto pooler = bert_->register_module("pooler", std::make_shared<torch::nn::Module>());
      p.pooler = pooler->register_module("dense", torch::nn::Linear(hl, hl));
      p.classifier = register_module("classifier", torch::nn::Linear(hl, o.num_labels));
      break;
    }
    case HeadType::kToken:
      p.classifier = register_module("classifier", torch::nn::Linear(hl, o.num_labels));
      break;
  }

  // Initialisation (spec §5.8): Linear/Embedding/Conv1d weights N(0, r), biases 0, LayerNorm 1/0,
  // padding row 0. wma matrices (U(-0.1, 0.1)) and raw biases are set by their owners.
  torch::NoGradGuard no_grad;
  const double r = o.initializer_range;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      lin->weight.normal_(0.0, r);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* e = m->as<torch::nn::Embedding>()) {
      e->weight.normal_(0.0, r);
    } else if (auto* norm = m->as<torch::nn::LayerNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    } else if (auto* conv = m->as<torch::nn::Conv1d>()) {
      conv->weight.normal_(0.0, r);
    }
  }
  p.word->weight[o.pad_id].zero_();
}

template <typename Visit>
torch::Tensor FlexModelImpl::run_encoder(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                         int64_t run_layers, Visit&& visit, torch::Tensor* full_length) {
  Parts& p = *parts_;
  const double drop = options_.hidden_dropout;
  const bool train = is_training();
  const PoolSpec& pool = arch_.pool;
  // Floating-point input: embeddings supplied by the caller (encode_embeddings); else token ids.
  auto x = input_ids.is_floating_point() ? input_ids : embed(input_ids);
  visit(0, x);
  auto valid = attention_mask.to(x.scalar_type());  // [B,T] of the current stream
  AttentionInputs in = attention_inputs(valid, x.scalar_type());
  for (int64_t i = 0; i < run_layers; ++i) {
    Layer& L = p.layers[size_t(i)];
    const int64_t stride = pool.active() ? pool.stride[size_t(i)] : 1;
    torch::Tensor u;
    if (stride == 1) {
      u = run_layer(L, x, in, drop, train);
    } else {
      auto pooled = pool_tokens(x, valid, stride, pool.separate_cls);
      if (pool.q_only && L.pools_queries) {
        // Funnel pool-q-only: pooled queries attend over the full stream (its mask), and the pooled
        // stream is the residual.
        AttentionInputs q_in = in;
        q_in.kv = x;
        q_in.q_pos = pooled_positions(x.size(1), stride, pool.separate_cls, x.device());
        u = run_layer(L, pooled.x, q_in, drop, train);
        valid = pooled.valid;
        in = attention_inputs(valid, x.scalar_type());
      } else {
        valid = pooled.valid;
        in = attention_inputs(valid, x.scalar_type());
        u = run_layer(L, pooled.x, in, drop, train);
      }
    }
    visit(i + 1, u);
    // The decoder's residual: the last full-length layer's output (before its projection).
    if (full_length && pool.active() && size_t(i + 1) == pool.first_pooling_layer()) *full_length = u;
    x = L.proj && i + 1 < run_layers ? fp32(L.proj(u)) : u;  // the last layer run needs no projection
  }
  return x;
}

torch::Tensor FlexModelImpl::decode(const torch::Tensor& x, const torch::Tensor& full_length,
                                    const torch::Tensor& attention_mask) {
  // Funnel decoder: up-sample to full length, add the last full-length stream, refine at full length.
  Parts& p = *parts_;
  auto up = upsample_tokens(x, full_length.size(1), arch_.pool.total_stride(), arch_.pool.separate_cls);
  if (p.up_proj) up = fp32(p.up_proj(up));
  auto y = up + full_length;
  const AttentionInputs in = attention_inputs(attention_mask.to(y.scalar_type()), y.scalar_type());
  for (Layer& L : p.decoder) y = run_layer(L, y, in, options_.hidden_dropout, is_training());
  return y;
}

torch::Tensor FlexModelImpl::embed(const torch::Tensor& input_ids) {
  Parts& p = *parts_;
  auto x = p.word(input_ids) + p.token_type->weight[0];
  return torch::dropout(p.emb_norm(x), options_.hidden_dropout, is_training());  // fp32 under autocast too
}

torch::Tensor FlexModelImpl::encode_embeddings(const torch::Tensor& embeddings, const torch::Tensor& attention_mask) {
  TORCH_CHECK(embeddings.is_floating_point() && embeddings.dim() == 3, "encode_embeddings: expected [B,T,h_0] floats");
  return encode(embeddings, attention_mask);  // run_encoder takes floating-point input as the embeddings
}

torch::Tensor FlexModelImpl::encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const bool decoder = has_decoder(arch_, options_);
  torch::Tensor full_length;
  auto x = run_encoder(input_ids, attention_mask, int64_t(parts_->layers.size()), [](int64_t, const torch::Tensor&) {},
                       decoder ? &full_length : nullptr);
  return decoder ? decode(x, full_length, attention_mask) : x;
}

std::vector<torch::Tensor> FlexModelImpl::encode_layers(const torch::Tensor& input_ids,
                                                        const torch::Tensor& attention_mask, int64_t last_index) {
  const int64_t num_layers = int64_t(parts_->layers.size());
  if (last_index < -1 || last_index > num_layers)
    throw std::out_of_range("encode_layers: index " + std::to_string(last_index) + " of a model with " +
                            std::to_string(num_layers) + " layers (0 = embeddings .. " + std::to_string(num_layers) + ")");
  std::vector<torch::Tensor> outputs;
  run_encoder(input_ids, attention_mask, last_index < 0 ? num_layers : last_index,
              [&](int64_t, const torch::Tensor& x) { outputs.push_back(x); });
  return outputs;
}

torch::Tensor FlexModelImpl::head_logits(const torch::Tensor& hidden, const torch::Tensor& attention_mask) {
  Parts& p = *parts_;
  switch (options_.head) {
    case HeadType::kMlm:
      return fp32(p.mlm_decoder(p.mlm_norm(fp32(torch::gelu(p.mlm_dense(hidden)))))) + p.mlm_bias;
    case HeadType::kSequence: {
      torch::Tensor summary;  // [B,h]
      if (options_.classifier_pooling == ClassifierPooling::kFirst) {
        summary = hidden.select(1, 0);
      } else {  // the mean over the valid positions, in fp32 (a reduction)
        auto valid = stream_valid(attention_mask, hidden.size(1)).to(torch::kFloat).unsqueeze(-1);  // [B,T',1]
        summary = (fp32(hidden) * valid).sum(1) / valid.sum(1).clamp_min(1.0);
      }
      auto pooled = torch::tanh(p.pooler(summary));
      return fp32(p.classifier(torch::dropout(pooled, options_.classifier_dropout, is_training())));
    }
    case HeadType::kToken:
      return fp32(p.classifier(torch::dropout(hidden, options_.classifier_dropout, is_training())));
  }
  return {};
}

torch::Tensor FlexModelImpl::stream_valid(const torch::Tensor& attention_mask, int64_t positions) const {
  TORCH_CHECK(attention_mask.defined() && attention_mask.dim() == 2, "stream_valid: expected the [B,T] attention mask");
  auto valid = attention_mask;
  const PoolSpec& pool = arch_.pool;
  if (pool.active()) {
    for (int64_t stride : pool.stride) {
      if (valid.size(1) == positions) break;  // a token-level stream, or every pooling passed
      if (stride > 1) valid = pool_tokens(valid.unsqueeze(-1).to(torch::kFloat), valid, stride, pool.separate_cls).valid;
    }
  }
  TORCH_CHECK(valid.size(1) == positions, "stream_valid: the mask pools to ", valid.size(1), " positions, the stream has ",
              positions);
  return valid;
}

ModelOutput FlexModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  ModelOutput out;
  out.hidden = encode(input_ids, attention_mask);
  out.logits = head_logits(out.hidden, attention_mask);
  return out;
}

namespace {
/// Class weights on the logits' device (undefined stays undefined: an unweighted loss).
torch::Tensor weights_on(const torch::Tensor& weights, const torch::Tensor& logits) {
  return weights.defined() ? weights.to(logits.device(), torch::kFloat) : weights;
}
}  // namespace

torch::Tensor FlexModelImpl::loss(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                  const torch::Tensor& labels) {
  auto hidden = encode(input_ids, attention_mask);
  switch (options_.head) {
    case HeadType::kMlm: {
      // The vocabulary projection dominates the cost: run the head on labelled positions only.
      auto flat_labels = labels.reshape({-1});
      auto picked = (flat_labels != -100).nonzero().squeeze(1);
      if (picked.numel() == 0) return hidden.sum() * 0.0;
      auto logits = head_logits(hidden.reshape({-1, hidden.size(-1)}).index_select(0, picked));
      return torch::cross_entropy_loss(logits, flat_labels.index_select(0, picked));
    }
    case HeadType::kSequence: {
      auto logits = head_logits(hidden, attention_mask);
      if (options_.num_labels == 1) return torch::mse_loss(logits.squeeze(-1), labels.to(logits.scalar_type()));
      return torch::cross_entropy_loss(logits, labels, weights_on(class_weights_, logits));
    }
    case HeadType::kToken: {
      auto logits = head_logits(hidden);
      return torch::cross_entropy_loss(logits.reshape({-1, options_.num_labels}), labels.reshape({-1}),
                                       weights_on(class_weights_, logits), at::Reduction::Mean, -100);
    }
  }
  return {};
}

int64_t FlexModelImpl::output_width() const { return head_width(arch_, options_); }

int64_t FlexModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

torch::Device default_device() { return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU); }

}  // namespace flexnas::models
