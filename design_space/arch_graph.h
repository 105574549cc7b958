#pragma once
// The graph of an architecture (spec §2.1) on Boost.Graph, and its Weisfeiler-Lehman hash
// (spec §2.2), bit-for-bit equal to the reference's so hashes name the same architecture in both.
//
// Vertices: input; per layer i: n_i heads ("{o}_h{h}_p-{p}" or the hetero head string), add_norm,
// nff_i feed-forward vertices "f{w}", add_norm; output. Edges per layer from its input vertex a:
// a->head_j->add_norm1, a->add_norm1, add_norm1->f1->...->f_nff->add_norm2, add_norm1->add_norm2;
// last add_norm->output. Funnel pooling (architecture.h PoolSpec) adds a "pool_s<k>[_q][_cls]" vertex
// before each pooling layer and a "decoder_<n>" vertex before output; block parameter sharing
// (Architecture::share) adds a "share_<d>" vertex per layer that runs with the parameters of the
// layer d places before it, on an edge from that layer's output to this layer's output. Without
// pooling and sharing the graph is the reference's.
#include <boost/graph/adjacency_list.hpp>
#include <string>
#include <utility>
#include <vector>

#include "design_space/architecture.h"

namespace flexnas {

struct ArchVertex {
  std::string label;
};
using ArchGraphBase = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, ArchVertex>;

enum class HashAlgorithm { kSha256, kMd5 };

class ArchGraph {
 public:
  static ArchGraph from_architecture(const Architecture& arch);

  size_t num_vertices() const { return boost::num_vertices(graph_); }
  size_t num_edges() const { return boost::num_edges(graph_); }
  std::vector<std::string> labels() const;
  /// Edges (source, target) sorted; sources < targets (the graph is upper triangular).
  std::vector<std::pair<int, int>> edges() const;
  const ArchGraphBase& graph() const { return graph_; }

  /// The reference's WL hash: 5 synchronous refinement rounds, lowercase hex digest.
  std::string hash(HashAlgorithm algorithm = HashAlgorithm::kSha256) const;

 private:
  ArchGraphBase graph_;
};

/// The library hash of an architecture (SHA-256 of the graph).
std::string architecture_hash(const Architecture& arch);
/// Hash with the optional h/f salt of spec §2.2 step 4 (offered for hetero dicts, whose labels
/// do not carry the hidden size): H(fingerprint + "[128, 128]" + "[[512], [512, 512]]").
std::string architecture_hash_salted(const Architecture& arch, HashAlgorithm algorithm);

/// Lowercase hex SHA-256 digest of `data`.
std::string sha256_hex(const std::string& data);

/// The op label of one head vertex in layer `layer` ("sa_h128_p-sdp" or "sa_sdp_64").
std::vector<std::string> head_labels(const LayerSpec& layer, ArchFormat format);
/// Funnel pooling's vertex labels: before pooling layer `layer` ("pool_s2_q_cls"), and the decoder
/// ("decoder_2").
std::string pool_vertex_label(const PoolSpec& pool, size_t layer);
std::string decoder_vertex_label(const PoolSpec& pool);
/// Block parameter sharing's vertex label of layer `layer` (which must share): "share_<d>", d =
/// layer - its owner.
std::string share_vertex_label(const Architecture& arch, size_t layer);

}  // namespace flexnas
