#pragma once
// Implicit enumeration of a design space (spec §1.5): a bijection between an index in
// [0, count()) and a model dict, in exactly the reference's library order:
//   for L in encoder_layers, s = L / lps stacks:
//     for n in N, for h in H, for o in O, for nff in NFF   (N, H, NFF: Cartesian powers, or
//                                                           non-decreasing tuples if `increasing`)
//       for p in prod_k params(o_k)
//         for f in F                                        (homogeneous: one width per stack;
//                                                           heterogeneous: an nff_k-tuple per stack)
// With flexnas's optional architecture.pooling block, each depth's block above repeats once per
// pooling choice (a stride for every stack after the first, last stack fastest), pooling slowest;
// with architecture.share, that block repeats once per sharing choice (a repeat factor for every
// stack, last stack fastest), sharing slower still.
// Nothing is materialised, so spaces of 10^22 architectures can be counted, sampled and indexed.
//
// A space with constraints {max_parameters, max_flops} holds only the architectures within them,
// in the same relative order: index i is the i-th architecture of the order above that fits. The
// constructor prices every architecture once (OpCatalog::cost, in parallel) and keeps the indices
// that fit, so a constrained space may hold at most kMaxConstraintScan architectures before its
// constraints (a located error otherwise).
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/design_space.h"

namespace flexnas {

using BigCount = unsigned __int128;

/// Decimal text of a 128-bit count ("3317817600").
std::string to_string_big(BigCount value);
/// "2.196e+22" style, for counts too long to read.
std::string to_scientific(BigCount value);
/// Parses a decimal index (for --index); throws ConfigError naming `what` on bad text.
BigCount parse_big(const std::string& text, const std::string& what);

class Enumerator {
 public:
  /// Largest space (before constraints) whose max_parameters / max_flops are applied.
  static constexpr uint64_t kMaxConstraintScan = 20'000'000;

  /// Checks `settings` against the space (located errors) and prepares the counts. Throws
  /// ConfigError if the space has more than 2^127 architectures.
  Enumerator(const DesignSpace& space, const EnumerationSettings& settings);

  /// Architectures in the space (within its constraints).
  BigCount count() const { return total_; }
  /// Architectures before the constraints (= count() without max_parameters / max_flops).
  BigCount unconstrained_count() const { return base_total_; }
  /// Whether max_parameters or max_flops removed candidates from the order (or could have).
  bool constrained() const { return constrained_; }
  /// Constrained: the fewest parameters and the fewest FLOPs per token over the space before its
  /// constraints (each minimum on its own; for messages about limits nothing meets).
  const ArchitectureCost& min_cost() const { return min_cost_; }
  /// Count per depth (within the constraints), aligned with space.encoder_layers.
  const std::vector<BigCount>& count_per_depth() const { return per_depth_; }

  /// The architecture at `index` (< count()).
  Architecture at(BigCount index) const;
  /// The index of `arch`, or throws ConfigError (naming `where`) when it is not in the space
  /// under these settings (explaining which layer or value is outside it, or which constraint it
  /// exceeds).
  BigCount index_of(const Architecture& arch, const std::string& where = "architecture") const;
  /// True if `arch` belongs to the space under these settings.
  bool contains(const Architecture& arch) const;

  /// `n` distinct indices drawn uniformly (without replacement) from `rng`; sorted ascending.
  std::vector<BigCount> sample(uint64_t n, std::mt19937_64& rng) const;

  const DesignSpace& space() const { return space_; }
  const EnumerationSettings& settings() const { return settings_; }

 private:
  struct Depth;  // per-depth tables, built once
  /// The bijection without constraints.
  Architecture base_at(BigCount index) const;
  BigCount base_index_of(const Architecture& arch, const std::string& where) const;
  /// Prices every architecture and keeps those within the constraints (constructor).
  void apply_constraints();

  DesignSpace space_;
  std::vector<std::shared_ptr<const Depth>> depths_;
  EnumerationSettings settings_;
  std::vector<BigCount> per_depth_, base_per_depth_;
  BigCount total_ = 0, base_total_ = 0;
  bool constrained_ = false;
  std::vector<uint64_t> kept_;  // constrained: base indices within the constraints, ascending
  ArchitectureCost min_cost_;
};

/// A uniform random 128-bit value in [0, bound).
BigCount uniform_big(BigCount bound, std::mt19937_64& rng);

}  // namespace flexnas
