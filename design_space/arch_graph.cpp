#include "design_space/arch_graph.h"

#include <openssl/evp.h>

#include <algorithm>
#include <optional>

#include "design_space/error.h"

namespace flexnas {
namespace {

// OpenSSL 3 looks the algorithm up on every EVP_Digest(EVP_sha256()) call; fetching it once and
// reusing one context per thread makes hashing a graph ~5x cheaper.
const EVP_MD* fetched(HashAlgorithm algorithm) {
  static const EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static const EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  const EVP_MD* md = algorithm == HashAlgorithm::kSha256 ? sha256 : md5;
  FLEXNAS_CHECK(md != nullptr, "OpenSSL has no ", algorithm == HashAlgorithm::kSha256 ? "SHA256" : "MD5");
  return md;
}

std::string hex_digest(const std::string& data, HashAlgorithm algorithm) {
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context context;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  FLEXNAS_CHECK(EVP_DigestInit_ex(context.ctx, fetched(algorithm), nullptr) == 1 &&
                    EVP_DigestUpdate(context.ctx, data.data(), data.size()) == 1 &&
                    EVP_DigestFinal_ex(context.ctx, digest, &size) == 1,
                "OpenSSL digest failed");
  static const char* kHex = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (unsigned int i = 0; i < size; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

std::string digest(const std::string& data, HashAlgorithm algorithm) { return hex_digest(data, algorithm); }

}  // namespace

std::string sha256_hex(const std::string& data) { return hex_digest(data, HashAlgorithm::kSha256); }

std::vector<std::string> head_labels(const LayerSpec& layer, ArchFormat format) {
  std::vector<std::string> labels;
  if (format == ArchFormat::kHetero) {
    for (const auto& head : layer.head_list) labels.push_back(head.to_string());
  } else {
    const std::string label = layer.op + "_h" + std::to_string(layer.hidden) + "_p-" + layer.param;
    labels.assign(size_t(layer.heads), label);
  }
  return labels;
}

std::string pool_vertex_label(const PoolSpec& pool, size_t layer) {
  return "pool_s" + std::to_string(pool.stride[layer]) + (pool.q_only ? "_q" : "") + (pool.separate_cls ? "_cls" : "");
}

std::string decoder_vertex_label(const PoolSpec& pool) { return "decoder_" + std::to_string(pool.decoder); }

std::string share_vertex_label(const Architecture& arch, size_t layer) {
  return "share_" + std::to_string(layer - arch.owner(layer));
}

ArchGraph ArchGraph::from_architecture(const Architecture& arch) {
  ArchGraph g;
  auto add = [&](const std::string& label) { return boost::add_vertex(ArchVertex{label}, g.graph_); };
  auto input = add("input");
  auto full_length = input;  // the last stream before the first pooling (the decoder's residual)
  std::vector<ArchGraphBase::vertex_descriptor> outputs;  // each layer's last add_norm
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const LayerSpec& layer = arch.layers[i];
    // Block parameter sharing (no vertex without it, so reference hashes stay): "share_<d>" on an
    // edge from the owner's output, into this layer's output (added below).
    std::optional<ArchGraphBase::vertex_descriptor> share;
    if (arch.owner(i) != i) {
      share = add(share_vertex_label(arch, i));
      boost::add_edge(outputs[arch.owner(i)], *share, g.graph_);
    }
    // Funnel pooling (no vertex without it, so reference hashes stay): a "pool_s<stride>[_q][_cls]"
    // vertex feeds the heads and the residual; with q_only the heads also read the full stream.
    auto query_input = input;
    const bool pools = arch.pool.active() && arch.pool.stride[i] > 1;
    if (pools) {
      if (i == arch.pool.first_pooling_layer()) full_length = input;
      query_input = add(pool_vertex_label(arch.pool, i));
      boost::add_edge(input, query_input, g.graph_);
    }
    std::vector<ArchGraphBase::vertex_descriptor> heads;
    for (const auto& label : head_labels(layer, arch.format)) heads.push_back(add(label));
    auto norm1 = add("add_norm");
    std::vector<ArchGraphBase::vertex_descriptor> ffn;
    for (int64_t width : layer.ffn) ffn.push_back(add("f" + std::to_string(width)));
    auto norm2 = add("add_norm");
    for (auto head : heads) {
      boost::add_edge(query_input, head, g.graph_);
      if (pools && arch.pool.q_only) boost::add_edge(input, head, g.graph_);
      boost::add_edge(head, norm1, g.graph_);
    }
    boost::add_edge(query_input, norm1, g.graph_);
    auto previous = norm1;
    for (auto f : ffn) {
      boost::add_edge(previous, f, g.graph_);
      previous = f;
    }
    boost::add_edge(previous, norm2, g.graph_);
    if (!ffn.empty()) boost::add_edge(norm1, norm2, g.graph_);
    if (share) boost::add_edge(*share, norm2, g.graph_);
    outputs.push_back(norm2);
    input = norm2;
  }
  if (arch.pool.active()) {
    // The up-sampling decoder: the last stream plus the full-length residual.
    auto decoder = add(decoder_vertex_label(arch.pool));
    boost::add_edge(full_length, decoder, g.graph_);
    boost::add_edge(input, decoder, g.graph_);
    input = decoder;
  }
  auto output = add("output");
  boost::add_edge(input, output, g.graph_);
  return g;
}

std::vector<std::string> ArchGraph::labels() const {
  std::vector<std::string> out;
  for (auto v : boost::make_iterator_range(boost::vertices(graph_))) out.push_back(graph_[v].label);
  return out;
}

std::vector<std::pair<int, int>> ArchGraph::edges() const {
  std::vector<std::pair<int, int>> out;
  for (auto e : boost::make_iterator_range(boost::edges(graph_)))
    out.emplace_back(int(boost::source(e, graph_)), int(boost::target(e, graph_)));
  std::sort(out.begin(), out.end());
  return out;
}

std::string ArchGraph::hash(HashAlgorithm algorithm) const {
  const size_t n = num_vertices();
  std::vector<std::string> hashes(n), next(n);
  for (size_t v = 0; v < n; ++v) {
    // Python: str((out_degree, in_degree, label)).
    hashes[v] = digest("(" + std::to_string(boost::out_degree(v, graph_)) + ", " +
                           std::to_string(boost::in_degree(v, graph_)) + ", '" + graph_[v].label + "')",
                       algorithm);
  }
  std::vector<std::string> in, out;
  for (int round = 0; round < 5; ++round) {
    for (size_t v = 0; v < n; ++v) {
      in.clear();
      out.clear();
      for (auto e : boost::make_iterator_range(boost::in_edges(v, graph_))) in.push_back(hashes[boost::source(e, graph_)]);
      for (auto e : boost::make_iterator_range(boost::out_edges(v, graph_))) out.push_back(hashes[boost::target(e, graph_)]);
      std::sort(in.begin(), in.end());
      std::sort(out.begin(), out.end());
      std::string text;
      text.reserve((in.size() + out.size() + 1) * 64 + 2);
      for (const auto& h : in) text += h;
      text += '|';
      for (const auto& h : out) text += h;
      text += '|';
      text += hashes[v];
      next[v] = digest(text, algorithm);
    }
    hashes.swap(next);
  }
  std::sort(hashes.begin(), hashes.end());
  // Python: str(sorted(hashes)) -> "['a', 'b']".
  std::string text = "[";
  for (size_t v = 0; v < n; ++v) text += (v ? ", '" : "'") + hashes[v] + "'";
  text += "]";
  return digest(text, algorithm);
}

std::string architecture_hash(const Architecture& arch) { return ArchGraph::from_architecture(arch).hash(); }

std::string architecture_hash_salted(const Architecture& arch, HashAlgorithm algorithm) {
  std::vector<int64_t> h;
  std::vector<std::vector<int64_t>> f;
  for (const auto& layer : arch.layers) {
    h.push_back(layer.hidden);
    f.push_back(layer.ffn);
  }
  const std::string fingerprint = ArchGraph::from_architecture(arch).hash(algorithm);
  return digest(fingerprint + python_list_repr(h) + python_list_repr(f), algorithm);
}

}  // namespace flexnas
