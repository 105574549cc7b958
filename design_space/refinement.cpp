#include "design_space/refinement.h"

#include <algorithm>
#include <set>

#include "design_space/arch_graph.h"
#include "design_space/error.h"

namespace flexnas {
namespace {

template <typename T>
void add_unique(std::vector<T>& values, const T& v) {
  if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
}

/// Checks that `arch` is made of `lps`-layer stacks of identical layers.
void check_stacks(const Architecture& arch, int64_t lps, const char* which) {
  const std::string name = std::string("refine: model ") + which;
  if (arch.is_hetero()) throw ConfigError("error: " + name + ": hetero model dicts cannot be refined (standard format only)");
  if (arch.num_layers() % lps != 0)
    throw ConfigError("error: " + name + ": " + std::to_string(arch.num_layers()) +
                      " layers are not a whole number of stacks of " + std::to_string(lps));
  for (int64_t i = 0; i < arch.num_layers(); ++i)
    if (!(arch.layers[size_t(i)] == arch.layers[size_t(i - i % lps)]))
      throw ConfigError("error: " + name + ": layer " + std::to_string(i) + " differs from the first layer of its stack (" +
                        std::to_string(lps) + " identical layers per stack expected)");
}

void check_settings(const RefinementSettings& s) {
  if (s.old_layers_per_stack < 1 || s.new_layers_per_stack < 1 || s.new_layers_per_stack > s.old_layers_per_stack ||
      s.old_layers_per_stack % s.new_layers_per_stack != 0)
    throw ConfigError("error: refine: the new stack size (" + std::to_string(s.new_layers_per_stack) +
                      ") must divide the old one (" + std::to_string(s.old_layers_per_stack) + ")");
}

uint64_t checked_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) throw ConfigError("error: refine: too many interpolated architectures");
  return a * b;
}

uint64_t tuples_of(uint64_t choices, int64_t length) {
  uint64_t n = 1;
  for (int64_t i = 0; i < length; ++i) n = checked_mul(n, choices);
  return n;
}

/// Architectures per sub-stack (for one choice each of n, h, o, nff, p, f).
uint64_t substack_count(const LocalChoices& c, bool het_ff) {
  uint64_t p_total = 0;
  for (const auto& params : c.params) p_total += params.size();
  uint64_t f_total = 0;
  for (int64_t m : c.nff) f_total += het_ff ? tuples_of(c.widths.size(), m) : c.widths.size();
  return checked_mul(checked_mul(checked_mul(c.heads.size(), c.hidden.size()), p_total), f_total);
}

/// Recursively enumerates sub-stack k onward in the main enumeration's order; the per-field loops
/// are nested across sub-stacks (n for all, then h for all, ...) like the reference's product.
struct Expander {
  const std::vector<LocalChoices>& choices;
  int64_t lps;
  bool het_ff;
  std::vector<Architecture>& out;
  const std::vector<LayerSpec>& tail;

  std::vector<int64_t> n, h, nff;
  std::vector<size_t> o;
  std::vector<std::string> p;
  std::vector<std::vector<int64_t>> f;

  size_t S() const { return choices.size(); }

  void run() { loop_n(0); }
  void loop_n(size_t k) {
    if (k == S()) return loop_h(0);
    for (int64_t v : choices[k].heads) { n.push_back(v); loop_n(k + 1); n.pop_back(); }
  }
  void loop_h(size_t k) {
    if (k == S()) return loop_o(0);
    for (int64_t v : choices[k].hidden) { h.push_back(v); loop_h(k + 1); h.pop_back(); }
  }
  void loop_o(size_t k) {
    if (k == S()) return loop_nff(0);
    for (size_t v = 0; v < choices[k].ops.size(); ++v) { o.push_back(v); loop_o(k + 1); o.pop_back(); }
  }
  void loop_nff(size_t k) {
    if (k == S()) return loop_p(0);
    for (int64_t v : choices[k].nff) { nff.push_back(v); loop_nff(k + 1); nff.pop_back(); }
  }
  void loop_p(size_t k) {
    if (k == S()) return loop_f(0);
    for (const auto& v : choices[k].params[o[k]]) { p.push_back(v); loop_p(k + 1); p.pop_back(); }
  }
  void loop_f(size_t k) {
    if (k == S()) return emit();
    if (!het_ff) {
      for (int64_t w : choices[k].widths) { f.emplace_back(size_t(nff[k]), w); loop_f(k + 1); f.pop_back(); }
      return;
    }
    std::vector<int64_t> tuple;
    width_tuples(k, tuple);
  }
  void width_tuples(size_t k, std::vector<int64_t>& tuple) {
    if (int64_t(tuple.size()) == nff[k]) {
      f.push_back(tuple);
      loop_f(k + 1);
      f.pop_back();
      return;
    }
    for (int64_t w : choices[k].widths) { tuple.push_back(w); width_tuples(k, tuple); tuple.pop_back(); }
  }
  void emit() {
    Architecture arch;
    for (size_t k = 0; k < S(); ++k) {
      LayerSpec layer;
      layer.heads = n[k];
      layer.hidden = h[k];
      layer.op = choices[k].ops[o[k]];
      layer.param = p[k];
      layer.ffn = f[k];
      for (int64_t j = 0; j < lps; ++j) arch.layers.push_back(layer);
    }
    out.push_back(arch);
    if (!tail.empty()) {
      arch.layers.insert(arch.layers.end(), tail.begin(), tail.end());
      out.push_back(arch);
    }
  }
};

}  // namespace

std::vector<LocalChoices> local_choices(const Architecture& a, const Architecture& b, const RefinementSettings& s) {
  check_settings(s);
  check_stacks(a, s.old_layers_per_stack, "a");
  check_stacks(b, s.old_layers_per_stack, "b");
  const int64_t mult = s.old_layers_per_stack / s.new_layers_per_stack;
  const int64_t stacks = std::min(a.num_layers(), b.num_layers()) / s.old_layers_per_stack;
  std::vector<LocalChoices> out;
  for (int64_t k = 0; k < stacks; ++k) {
    LocalChoices c;
    for (const Architecture* m : {&a, &b}) {
      const LayerSpec& layer = m->layers[size_t(k * s.old_layers_per_stack)];
      add_unique(c.hidden, layer.hidden);
      add_unique(c.heads, layer.heads);
      add_unique(c.nff, int64_t(layer.ffn.size()));
      add_unique(c.widths, layer.ffn.front());
      add_unique(c.ops, layer.op);
    }
    // Values in ascending order, op types in order of appearance (a before b): deterministic.
    std::sort(c.hidden.begin(), c.hidden.end());
    std::sort(c.heads.begin(), c.heads.end());
    std::sort(c.nff.begin(), c.nff.end());
    std::sort(c.widths.begin(), c.widths.end());
    c.params.assign(c.ops.size(), {});
    for (const Architecture* m : {&a, &b}) {
      const LayerSpec& layer = m->layers[size_t(k * s.old_layers_per_stack)];
      const size_t op = size_t(std::find(c.ops.begin(), c.ops.end(), layer.op) - c.ops.begin());
      add_unique(c.params[op], layer.param);
    }
    for (int64_t j = 0; j < mult; ++j) out.push_back(c);
  }
  return out;
}

uint64_t interpolation_count(const Architecture& a, const Architecture& b, const RefinementSettings& s) {
  const auto choices = local_choices(a, b, s);
  uint64_t total = 1;
  for (const auto& c : choices) total = checked_mul(total, substack_count(c, s.heterogeneous_feed_forward));
  if (a.num_layers() != b.num_layers()) total = checked_mul(total, 2);
  return total;
}

std::vector<Architecture> interpolate(const Architecture& a, const Architecture& b, const RefinementSettings& s) {
  const auto choices = local_choices(a, b, s);
  const Architecture& longer = a.num_layers() >= b.num_layers() ? a : b;
  const size_t common = std::min(a.layers.size(), b.layers.size());
  const std::vector<LayerSpec> tail(longer.layers.begin() + long(common), longer.layers.end());
  std::vector<Architecture> raw;
  Expander{choices, s.new_layers_per_stack, s.heterogeneous_feed_forward, raw, tail}.run();
  std::vector<Architecture> out;
  std::set<std::string> seen;
  for (auto& arch : raw)
    if (seen.insert(arch.to_canonical_string()).second) out.push_back(std::move(arch));
  return out;
}

RefinedArchitectures refine_around(const Library& coarse, const std::vector<int64_t>& top, int64_t neighbors,
                                   const RefinementSettings& settings) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  std::set<std::pair<int64_t, int64_t>> seen_pairs;
  auto add_pair = [&](int64_t a, int64_t b) {
    if (a == b) return;
    if (seen_pairs.insert({std::min(a, b), std::max(a, b)}).second) pairs.emplace_back(a, b);
  };
  for (int64_t t : top) {
    FLEXNAS_CHECK(t >= 0 && t < int64_t(coarse.size()), "top index out of range");
    const auto& list = coarse.neighbors.size() > size_t(t) ? coarse.neighbors[size_t(t)] : std::vector<std::string>{};
    int64_t taken = 0;
    for (const auto& hash : list) {
      if (taken == neighbors) break;
      const int64_t j = coarse.find(hash);
      if (j < 0) continue;  // a neighbour list may name graphs of another library
      add_pair(t, j);
      ++taken;
    }
  }
  for (size_t i = 0; i < top.size(); ++i)
    for (size_t j = i + 1; j < top.size(); ++j) add_pair(top[i], top[j]);

  const Constraints limits = library_constraints(coarse);
  if (limits.limits_cost() && !settings.ops)
    throw ConfigError("error: the library was built under constraints (" + limits.describe() +
                      ") and refinement needs the operation catalogue to keep to them");
  RefinedArchitectures out;
  std::set<std::string> seen;
  for (const auto& [a, b] : pairs) {
    PairContribution c;
    c.a = a;
    c.b = b;
    for (auto& arch : interpolate(coarse.archs[size_t(a)], coarse.archs[size_t(b)], settings)) {
      ++c.produced;
      std::string hash = architecture_hash(arch);
      if (!seen.insert(hash).second) continue;
      if (limits.limits_cost() && !limits.problem(settings.ops->cost(arch)).empty()) {
        ++out.outside_constraints;
        continue;
      }
      ++c.added;
      out.hashes.push_back(std::move(hash));
      out.archs.push_back(std::move(arch));
    }
    out.pairs.push_back(c);
  }
  return out;
}

}  // namespace flexnas
