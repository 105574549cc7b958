#pragma once
// A seeded synthetic library for the nas tests: random distinct standard 2-layer architectures
// (width 128|256, 2|4 heads, one operation from `ops`, 1 or 3 FFN layers of 512|1024) whose
// embeddings each test encodes from the layers as it needs, plus optional Gaussian noise.
#include <functional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "design_space/arch_graph.h"
#include "design_space/library.h"

namespace flexnas::nas::test {

using OpChoices = std::vector<std::pair<std::string, std::string>>;  // (operation, parameter)
/// Appends one layer's embedding entries.
using LayerEncoder = std::function<void(const LayerSpec& layer, std::vector<float>& embedding)>;

inline Library random_two_layer_library(int64_t n, uint64_t seed, const OpChoices& ops, const LayerEncoder& encode,
                                        float noise_sd = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0, noise_sd > 0 ? noise_sd : 1.0f);
  Library lib;
  std::set<std::string> seen;
  while (int64_t(lib.archs.size()) < n) {
    Architecture a;
    for (int i = 0; i < 2; ++i) {
      LayerSpec l;
      l.hidden = rng() % 2 ? 256 : 128;
      l.heads = rng() % 2 ? 4 : 2;
      const auto& op = ops[rng() % ops.size()];
      l.op = op.first;
      l.param = op.second;
      l.ffn = std::vector<int64_t>(rng() % 2 ? 3 : 1, rng() % 2 ? 1024 : 512);
      a.layers.push_back(l);
    }
    if (!seen.insert(a.to_canonical_string()).second) continue;
    std::vector<float> e;
    for (const auto& l : a.layers) encode(l, e);
    if (noise_sd > 0)
      for (auto& v : e) v += noise(rng);
    lib.archs.push_back(a);
    lib.hashes.push_back(architecture_hash(a));
    lib.embeddings.push_back(e);
    lib.neighbors.emplace_back();
    lib.performances.emplace_back();
  }
  lib.rebuild_index();
  return lib;
}

}  // namespace flexnas::nas::test
