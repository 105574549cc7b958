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
// pooling choice (a stride for every stack after the first, last stack fastest), pooling slowest.
// Nothing is materialised, so spaces of 10^22 architectures can be counted, sampled and indexed.
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
  /// Checks `settings` against the space (located errors) and prepares the counts. Throws
  /// ConfigError if the space has more than 2^127 architectures.
  Enumerator(const DesignSpace& space, const EnumerationSettings& settings);

  BigCount count() const { return total_; }
  /// Count per depth, aligned with space.encoder_layers.
  const std::vector<BigCount>& count_per_depth() const { return per_depth_; }

  /// The architecture at `index` (< count()).
  Architecture at(BigCount index) const;
  /// The index of `arch`, or throws ConfigError (naming `where`) when it is not in the space
  /// under these settings (explaining which layer or value is outside it).
  BigCount index_of(const Architecture& arch, const std::string& where = "architecture") const;
  /// True if `arch` belongs to the space under these settings.
  bool contains(const Architecture& arch) const;

  /// `n` distinct indices drawn uniformly (without replacement) from `rng`; sorted ascending.
  std::vector<BigCount> sample(uint64_t n, std::mt19937_64& rng) const;

  const DesignSpace& space() const { return space_; }
  const EnumerationSettings& settings() const { return settings_; }

 private:
  struct Depth;  // per-depth tables, built once
  DesignSpace space_;
  std::vector<std::shared_ptr<const Depth>> depths_;
  EnumerationSettings settings_;
  std::vector<BigCount> per_depth_;
  BigCount total_ = 0;
};

/// A uniform random 128-bit value in [0, bound).
BigCount uniform_big(BigCount bound, std::mt19937_64& rng);

}  // namespace flexnas
