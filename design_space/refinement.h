#pragma once
// Hierarchical refinement (spec §7): finer architectures around pairs of good coarse ones.
//
// For two model dicts a and b (standard format) built with `old_lps` identical layers per stack,
// every coarse stack of the shorter model gets a *local design space*: the union of the two
// models' values at that stack (hidden size, heads, op type, nff, FFN width, op parameters per op
// type). The stack is split into old_lps / new_lps fine sub-stacks that choose independently from
// it; the Cartesian product over all sub-stacks gives the new architectures, each sub-stack
// expanded to new_lps identical layers. When the lengths differ, every such prefix is also emitted
// with the longer model's remaining layers appended unchanged (the reference mis-builds this tail:
// defect 40). Order: like the main enumeration (n, h, o, nff outer to inner, then p, then f).
#include <cstdint>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/library.h"

namespace flexnas {

struct RefinementSettings {
  int64_t old_layers_per_stack = 2;         // stack size of the coarse library
  int64_t new_layers_per_stack = 1;         // stack size of the fine library (divides the old one)
  bool heterogeneous_feed_forward = false;  // fine stacks may mix FFN widths inside one stack
  /// Prices the new architectures when the coarse library was built under constraints (its
  /// `constraints` key): refine_around keeps only those within them. Required then.
  const OpCatalog* ops = nullptr;
};

/// The choices of one fine sub-stack.
struct LocalChoices {
  std::vector<int64_t> hidden, heads, nff, widths;
  std::vector<std::string> ops;
  std::vector<std::vector<std::string>> params;  // aligned with ops
};

/// Local choices per fine sub-stack of the common prefix of a and b. Throws ConfigError when a
/// model is not made of old_lps-layer stacks, is hetero, or the stack sizes do not divide.
std::vector<LocalChoices> local_choices(const Architecture& a, const Architecture& b, const RefinementSettings& s);

/// Number of architectures interpolate() returns (before de-duplication against other pairs).
uint64_t interpolation_count(const Architecture& a, const Architecture& b, const RefinementSettings& s);

/// All architectures between a and b (see the header comment), duplicates removed, in order.
std::vector<Architecture> interpolate(const Architecture& a, const Architecture& b, const RefinementSettings& s);

/// What one pair of coarse models contributed to a refined library.
struct PairContribution {
  int64_t a = -1, b = -1;   // indices in the coarse library
  uint64_t produced = 0;    // architectures interpolate() returned for the pair
  uint64_t added = 0;       // of those, new (not produced by an earlier pair)
};

struct RefinedArchitectures {
  std::vector<Architecture> archs;       // de-duplicated by hash, in order of first production
  std::vector<std::string> hashes;       // architecture_hash of each
  std::vector<PairContribution> pairs;
  uint64_t outside_constraints = 0;      // distinct new architectures dropped for the library's constraints
};

/// Spec §7 with defect 39 fixed: each of `top` (coarse-library indices, best first) is
/// interpolated with each of its first `neighbors` stored neighbours, and every pair of top
/// models with each other; results are de-duplicated by hash, and kept only when within the coarse
/// library's constraints (library_constraints).
RefinedArchitectures refine_around(const Library& coarse, const std::vector<int64_t>& top, int64_t neighbors,
                                   const RefinementSettings& settings);

}  // namespace flexnas
