#include "design_space/architecture.h"

#include <algorithm>
#include <cctype>

#include "design_space/atomic_file.h"

namespace flexnas {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

nlohmann::ordered_json param_json(const std::string& param) {
  if (all_digits(param)) return std::stoll(param);
  return param;
}

std::vector<int64_t> positive_int_list(const ConfigNode& node, size_t expected, const char* what) {
  std::vector<int64_t> values = node.as_int_list(/*non_empty=*/true, /*unique=*/false);
  if (values.size() != expected)
    node.fail("expected " + std::to_string(expected) + " entries (one per layer, l = " + std::to_string(expected) +
              "), got " + std::to_string(values.size()));
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] <= 0) node.at(i).fail(std::string(what) + " must be a positive integer, got " + std::to_string(values[i]));
  return values;
}

std::vector<std::vector<int64_t>> ffn_lists(const ConfigNode& node, size_t expected) {
  if (!node.is_sequence()) node.fail("expected a list of lists of feed-forward widths, got " + node.describe());
  if (node.size() != expected)
    node.fail("expected " + std::to_string(expected) + " entries (one per layer), got " + std::to_string(node.size()));
  std::vector<std::vector<int64_t>> out;
  for (const ConfigNode& layer : node.items()) {
    if (!layer.is_sequence()) layer.fail("expected a list of feed-forward widths, got " + layer.describe());
    std::vector<int64_t> widths = layer.as_int_list(/*non_empty=*/true, /*unique=*/false);
    for (size_t i = 0; i < widths.size(); ++i)
      if (widths[i] <= 0) layer.at(i).fail("feed-forward width must be positive, got " + std::to_string(widths[i]));
    out.push_back(widths);
  }
  return out;
}

int64_t layer_count(const ConfigNode& node) {
  ConfigNode l = node["l"];
  int64_t count = l.as_int();
  if (count < 1) l.fail("the number of layers must be at least 1, got " + std::to_string(count));
  return count;
}

PoolSpec parse_pool(const ConfigNode& node, size_t L) {
  if (!node.is_map())
    node.fail("expected a map such as {\"stride\": [1, 2], \"q_only\": true, \"separate_cls\": true, \"decoder\": 2}, got " +
              node.describe());
  node.check_keys({"stride", "q_only", "separate_cls", "decoder"});
  PoolSpec pool;
  ConfigNode stride = node["stride"];
  pool.stride = positive_int_list(stride, L, "pooling stride");
  for (size_t i = 0; i < L; ++i)
    if (const std::string problem = PoolSpec::stride_problem(pool.stride[i]); !problem.empty()) stride.at(i).fail(problem);
  if (pool.stride[0] != 1)
    stride.at(0).fail("the first layer cannot pool (it gives the decoder its full-length stream): stride must be 1, got " +
                      std::to_string(pool.stride[0]));
  if (node.has("q_only")) pool.q_only = node["q_only"].as_bool();
  if (node.has("separate_cls")) pool.separate_cls = node["separate_cls"].as_bool();
  if (node.has("decoder")) {
    ConfigNode decoder = node["decoder"];
    pool.decoder = decoder.as_int();
    if (const std::string problem = PoolSpec::decoder_problem(pool.decoder); !problem.empty()) decoder.fail(problem);
  }
  // Every stride 1 is the model without pooling: one canonical form (and hash) for both.
  if (pool.total_stride() == 1) pool = PoolSpec{};
  return pool;
}

/// The "share" key: per layer, the index of the layer whose parameters it runs with. Checked
/// against the layers already read (their specifications must agree).
std::vector<int64_t> parse_share(const ConfigNode& node, const Architecture& arch) {
  const size_t L = arch.layers.size();
  if (!node.is_sequence())
    node.fail("expected a list of layer indices such as [0, 0, 2, 2] (layer i runs with the parameters of layer "
              "share[i]; i itself = its own), got " + node.describe());
  std::vector<int64_t> share = node.as_int_list(/*non_empty=*/true, /*unique=*/false);
  if (share.size() != L)
    node.fail("expected " + std::to_string(L) + " entries (one per layer, l = " + std::to_string(L) + "), got " +
              std::to_string(share.size()));
  Architecture probe = arch;
  probe.share = share;
  for (size_t i = 0; i < L; ++i) {
    if (share[i] < 0 || share[i] > int64_t(i))
      node.at(i).fail("layer " + std::to_string(i) + " can run with the parameters of layer 0.." + std::to_string(i) +
                      " (itself or an earlier layer), got " + std::to_string(share[i]));
    if (const std::string problem = probe.share_problem(i); !problem.empty()) node.at(i).fail(problem);
  }
  // Every layer with its own parameters is the model without sharing: one canonical form (and hash).
  for (size_t i = 0; i < L; ++i)
    if (share[i] != int64_t(i)) return share;
  return {};
}

HeadSpec parse_head(const ConfigNode& node) {
  const std::string text = node.as_string();
  const auto first = text.find('_');
  const auto last = text.rfind('_');
  if (first == std::string::npos || first == last)
    node.fail("expected a head string '<type>_<param>_<dim>' such as 'sa_sdp_64', got '" + text + "'");
  HeadSpec head;
  head.type = text.substr(0, first);
  head.param = text.substr(first + 1, last - first - 1);
  const std::string dim = text.substr(last + 1);
  if (!all_digits(dim) || std::stoll(dim) <= 0)
    node.fail("head dimension in '" + text + "' must be a positive integer, got '" + dim + "'");
  head.dim = std::stoll(dim);
  if (head.type.empty() || head.param.empty()) node.fail("malformed head string '" + text + "'");
  return head;
}

Architecture parse_standard(const ConfigNode& node) {
  node.check_keys({"l", "h", "n", "o", "f", "p", "pool", "share"});
  const size_t L = size_t(layer_count(node));
  Architecture arch;
  arch.format = ArchFormat::kStandard;
  auto h = positive_int_list(node["h"], L, "hidden size");
  auto n = positive_int_list(node["n"], L, "number of heads");
  auto f = ffn_lists(node["f"], L);
  ConfigNode o = node["o"];
  std::vector<std::string> ops = o.as_string_list(true, false);
  if (ops.size() != L) o.fail("expected " + std::to_string(L) + " entries (one per layer), got " + std::to_string(ops.size()));
  ConfigNode p = node["p"];
  std::vector<std::string> params = p.as_string_list(true, false);
  if (params.size() != L) p.fail("expected " + std::to_string(L) + " entries (one per layer), got " + std::to_string(params.size()));
  for (size_t i = 0; i < L; ++i) {
    if (ops[i].empty()) o.at(i).fail("empty operation type");
    LayerSpec layer;
    layer.hidden = h[i];
    layer.heads = n[i];
    layer.ffn = f[i];
    layer.op = ops[i];
    layer.param = params[i];
    arch.layers.push_back(layer);
  }
  if (node.has("pool")) arch.pool = parse_pool(node["pool"], L);
  if (node.has("share")) arch.share = parse_share(node["share"], arch);
  return arch;
}

Architecture parse_hetero(const ConfigNode& node) {
  node.check_keys({"l", "h", "f", "o", "pool", "share"});
  const size_t L = size_t(layer_count(node));
  Architecture arch;
  arch.format = ArchFormat::kHetero;
  auto h = positive_int_list(node["h"], L, "hidden size");
  auto f = ffn_lists(node["f"], L);
  ConfigNode o = node["o"];
  if (!o.is_sequence() || o.size() != L)
    o.fail("expected a list of " + std::to_string(L) + " per-layer lists of head strings, got " + o.describe());
  for (size_t i = 0; i < L; ++i) {
    ConfigNode heads = o.at(i);
    if (!heads.is_sequence() || heads.size() == 0)
      heads.fail("expected a non-empty list of head strings such as 'sa_sdp_64', got " + heads.describe());
    LayerSpec layer;
    layer.hidden = h[i];
    layer.ffn = f[i];
    for (const ConfigNode& item : heads.items()) {
      HeadSpec head = parse_head(item);
      if (!layer.head_list.empty() && head.dim != layer.head_list.front().dim)
        item.fail("all heads of a layer must share one head dimension: got " + std::to_string(head.dim) +
                  " after " + std::to_string(layer.head_list.front().dim));
      layer.head_list.push_back(head);
    }
    arch.layers.push_back(layer);
  }
  if (node.has("pool")) arch.pool = parse_pool(node["pool"], L);
  if (node.has("share")) arch.share = parse_share(node["share"], arch);
  return arch;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

int64_t PoolSpec::total_stride() const {
  int64_t total = 1;
  for (int64_t s : stride) total *= s;
  return total;
}

std::string PoolSpec::stride_problem(int64_t stride) {
  if (stride >= 1 && stride <= kMaxStride) return "";
  return "pooling stride must be 1 (no pooling) .. " + std::to_string(kMaxStride) + ", got " + std::to_string(stride);
}

std::string PoolSpec::decoder_problem(int64_t decoder) {
  if (decoder >= 0 && decoder <= kMaxDecoder) return "";
  return "decoder layers must be 0.." + std::to_string(kMaxDecoder) + ", got " + std::to_string(decoder);
}

size_t PoolSpec::first_pooling_layer() const {
  for (size_t i = 0; i < stride.size(); ++i)
    if (stride[i] > 1) return i;
  return stride.size();
}

std::string Architecture::share_problem(size_t i) const {
  const size_t o = owner(i);
  if (o == i) return "";
  const std::string who = "layer " + std::to_string(i) + " cannot run with the parameters of layer " + std::to_string(o);
  if (o > i) return who + ": only an earlier layer's (share[" + std::to_string(i) + "] <= " + std::to_string(i) + ")";
  if (owner(o) != o)
    return who + ", which runs with those of layer " + std::to_string(owner(o)) + ": name the owner, " +
           std::to_string(owner(o)) + ", instead";
  const LayerSpec &a = layers[i], &b = layers[o];
  auto differ = [&](const std::string& what, const std::string& mine, const std::string& theirs) {
    return who + ": its " + what + " differs (" + mine + " here, " + theirs + " there); shared layers need the same h, n, o, f and p";
  };
  auto list = [](const std::vector<int64_t>& v) { return python_list_repr(v); };
  if (a.hidden != b.hidden) return differ("hidden size", std::to_string(a.hidden), std::to_string(b.hidden));
  if (a.ffn != b.ffn) return differ("feed-forward stack", list(a.ffn), list(b.ffn));
  if (a.op != b.op) return differ("operation", "'" + a.op + "'", "'" + b.op + "'");
  if (a.param != b.param) return differ("operation parameter", "'" + a.param + "'", "'" + b.param + "'");
  if (a.heads != b.heads) return differ("number of heads", std::to_string(a.heads), std::to_string(b.heads));
  if (!(a.head_list == b.head_list)) {
    auto heads = [](const LayerSpec& l) {
      std::string out;
      for (const HeadSpec& h : l.head_list) out += (out.empty() ? "" : ", ") + h.to_string();
      return "[" + out + "]";
    };
    return differ("head list", heads(a), heads(b));
  }
  return "";
}

std::string HeadSpec::to_string() const { return type + "_" + param + "_" + std::to_string(dim); }

nlohmann::ordered_json Architecture::to_json() const {
  nlohmann::ordered_json j;
  j["l"] = layers.size();
  auto h = nlohmann::ordered_json::array();
  auto f = nlohmann::ordered_json::array();
  for (const auto& layer : layers) {
    h.push_back(layer.hidden);
    f.push_back(layer.ffn);
  }
  if (format == ArchFormat::kStandard) {
    auto n = nlohmann::ordered_json::array();
    auto o = nlohmann::ordered_json::array();
    auto p = nlohmann::ordered_json::array();
    for (const auto& layer : layers) {
      n.push_back(layer.heads);
      o.push_back(layer.op);
      p.push_back(param_json(layer.param));
    }
    j["h"] = h;
    j["n"] = n;
    j["o"] = o;
    j["f"] = f;
    j["p"] = p;
  } else {
    auto o = nlohmann::ordered_json::array();
    for (const auto& layer : layers) {
      auto heads = nlohmann::ordered_json::array();
      for (const auto& head : layer.head_list) heads.push_back(head.to_string());
      o.push_back(heads);
    }
    j["h"] = h;
    j["f"] = f;
    j["o"] = o;
  }
  if (pool.active()) {
    nlohmann::ordered_json p;
    p["stride"] = pool.stride;
    p["q_only"] = pool.q_only;
    p["separate_cls"] = pool.separate_cls;
    p["decoder"] = pool.decoder;
    j["pool"] = p;
  }
  if (shares()) j["share"] = share;
  return j;
}

std::string Architecture::to_canonical_string() const { return to_json().dump(); }

Architecture architecture_from_nas_config(const ConfigNode& overrides) {
  overrides.check_keys({"hidden_size", "nas_config"});
  ConfigNode hidden_node = overrides["hidden_size"];
  const int64_t hidden = hidden_node.as_int();
  if (hidden <= 0) hidden_node.fail("hidden_size must be positive, got " + std::to_string(hidden));
  ConfigNode config = overrides["nas_config"];
  config.check_keys({"encoder_layers"});
  ConfigNode layers = config["encoder_layers"];
  if (!layers.is_sequence() || layers.size() == 0) layers.fail("expected a non-empty list of layers, got " + layers.describe());
  Architecture arch;
  for (const ConfigNode& item : layers.items()) {
    item.check_keys({"operation_type", "operation_parameter", "num_operation_heads", "feed_forward_dimension",
                     "num_feed_forward"});
    LayerSpec layer;
    layer.hidden = hidden;
    ConfigNode type = item["operation_type"];
    const std::string t = type.as_string();
    if (t == "SA") layer.op = "sa";
    else if (t == "LT") layer.op = "l";
    else if (t == "DSC") layer.op = "c";
    else type.fail("unknown operation_type '" + t + "' (allowed: SA, LT, DSC)");
    layer.param = lower(item["operation_parameter"].as_string());
    ConfigNode heads = item["num_operation_heads"];
    layer.heads = heads.as_int();
    if (layer.heads <= 0) heads.fail("num_operation_heads must be positive");
    ConfigNode width = item["feed_forward_dimension"];
    ConfigNode count = item["num_feed_forward"];
    const int64_t w = width.as_int(), c = count.as_int();
    if (w <= 0) width.fail("feed_forward_dimension must be positive");
    if (c <= 0) count.fail("num_feed_forward must be positive");
    layer.ffn.assign(size_t(c), w);
    arch.layers.push_back(layer);
  }
  return arch;
}

Architecture architecture_from_config(const ConfigNode& node) {
  if (!node.is_map()) node.fail("expected a model dict (a map with keys l, h, n, o, f, p or l, h, f, o), got " + node.describe());
  if (node.has("hparams")) return architecture_from_nas_config(node["hparams"]["model_hparam_overrides"]);
  if (node.has("nas_config")) return architecture_from_nas_config(node);
  if (node.has("p")) return parse_standard(node);
  if (node.has("o")) {
    ConfigNode o = node["o"];
    if (o.is_sequence() && o.size() > 0 && o.at(0).is_sequence()) return parse_hetero(node);
    node.fail("missing required key 'p' (a standard model dict has keys l, h, n, o, f, p; a hetero one has "
              "l, h, f and per-layer lists of head strings in o)");
  }
  node.fail("missing required key 'o' (a model dict has keys l, h, n, o, f, p or l, h, f, o)");
}

Architecture architecture_from_json(const nlohmann::json& json, const std::string& where) {
  return architecture_from_config(ConfigNode::load_string(json.dump(), where));
}

Architecture load_architecture(const std::string& path) {
  return architecture_from_config(ConfigNode::load_file(path));
}

std::string python_list_repr(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

std::string python_list_repr(const std::vector<std::vector<int64_t>>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += python_list_repr(values[i]);
  }
  return out + "]";
}

}  // namespace flexnas
