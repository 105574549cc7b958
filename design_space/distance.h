#pragma once
// Structural distance between architectures: an exact graph-edit distance over the family of
// edit paths that keep the graphs' chain-of-layers structure (docs/library.md has the derivation).
//
// The reference (spec §2.4) runs networkx's approximate GED on 1% of the pairs and interpolates
// the other 99% over the (i, j) index grid (defect 3). Here every pair is computed for real, in
// O(L_a * L_b) after a per-library precomputation:
//   - op cost index table as the reference's (input 0, output 1, add_norm 2, spacer, f widths,
//     spacer, l ops, spacer, sa ops, spacer, c ops), but with widths and hidden sizes ascending
//     (defect 4: the reference iterates Python sets);
//   - node substitution |idx a - idx b|, insertion/deletion idx(label), edge insertion/deletion
//     `edge_cost` (0.1), edge substitution 0;
//   - layers are aligned as a sequence (a layer is matched with one layer, or deleted/inserted
//     whole); inside a matched layer the heads are matched optimally (sorted 1-D assignment) and the
//     feed-forward chains are aligned with the edges a chain alignment breaks counted exactly.
// The result is the exact minimum over that family, so an upper bound on the unrestricted GED,
// like the reference's first anytime value, but deterministic, symmetric and order-independent.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/op_catalog.h"

namespace flexnas {

struct DistanceSettings {
  double edge_cost = 0.1;  // cost of inserting or deleting one edge (the reference's 0.1)
  /// Orders the op groups and parameters of the cost table (OpCatalog::order_rank, param_order;
  /// it must outlive the distance). nullptr: the built-in order of distance.cpp, the same for the
  /// registered types (tests/models/op_contract_test.cpp).
  const OpCatalog* ops = nullptr;
};

/// The op cost index of spec §2.4 with ascending widths. Built from every label it must price.
class OpCostTable {
 public:
  /// `labels`: op labels ("sa_h128_p-sdp", hetero "sa_sdp_64", "f512", "input", ...); unknown
  /// forms are a ConfigError. `ops` orders the op groups (DistanceSettings::ops).
  explicit OpCostTable(const std::vector<std::string>& labels, const OpCatalog* ops = nullptr);
  /// The cost index of a label; throws Error for a label the table was not built with.
  int index(const std::string& label) const;
  /// Slot order with "" spacers: entry k costs k.
  const std::vector<std::string>& order() const { return order_; }

 private:
  std::vector<std::string> order_;
  std::vector<std::pair<std::string, int>> lookup_;  // sorted by label
};

/// Distances between the architectures of one set (a library). Thread-safe after construction.
class StructuralDistance {
 public:
  /// `extra_labels`: labels to include in the cost table beyond those in `archs` (the design
  /// space's ops_list), so costs do not depend on which architectures were sampled.
  StructuralDistance(const std::vector<Architecture>& archs, const std::vector<std::string>& extra_labels = {},
                     DistanceSettings settings = {});

  size_t size() const { return offsets_.size() - 1; }
  /// Distance between architectures i and j of the set (symmetric, 0 on the diagonal).
  double operator()(size_t i, size_t j) const;
  const OpCostTable& table() const { return table_; }
  /// {"method": "layer-alignment-ged", "edge_cost": 0.1, "cost_order": [...]} for the library file.
  nlohmann::ordered_json describe() const;

 private:
  struct Layer {
    uint32_t heads;  // head-type id
    uint32_t ffn;    // ffn-type id
  };
  OpCostTable table_;
  DistanceSettings settings_;
  std::vector<Layer> layers_;      // all architectures' layers, concatenated
  std::vector<size_t> offsets_;    // architecture a = layers_[offsets_[a] .. offsets_[a+1])
  size_t num_heads_ = 0, num_ffn_ = 0;
  // [type x type] substitution costs of the parts of a matched layer pair; *_break_ when the
  // pair follows a gap, so the edges entering its heads are re-made too.
  std::vector<double> head_sub_, head_sub_break_, ffn_sub_;
  std::vector<double> head_del_, ffn_del_;  // deleting a part (nodes + the edges it owns)
  double add_norm_pair_ = 0;                // the two add_norm vertices of a layer: 2 * idx(add_norm)
  std::vector<int> decoder_;                // per architecture: cost index of its Funnel decoder (0 = none)
};

/// Convenience for two architectures (builds a table from their own labels).
double structural_distance(const Architecture& a, const Architecture& b, DistanceSettings settings = {});

/// The op-label sequence of an architecture's graph (spec §2.1 vertex order): input, per layer its
/// head labels, add_norm, f{w}..., add_norm; output. Funnel pooling adds pool_s<k>.. before a
/// pooling layer's heads and decoder_<n> before output, block parameter sharing share_<d> before a
/// sharing layer's (pool and) heads (arch_graph.h).
std::vector<std::string> vertex_labels(const Architecture& arch);

}  // namespace flexnas
