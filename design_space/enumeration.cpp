#include "design_space/enumeration.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

namespace flexnas {
namespace {

constexpr BigCount kMax = ~BigCount(0);

[[noreturn]] void too_large() {
  throw ConfigError("error: the design space has more than 2^128 architectures; flexnas cannot index it "
                    "(use a larger layers_per_stack or fewer choices)");
}
BigCount mul(BigCount a, BigCount b) {
  if (a != 0 && b > kMax / a) too_large();
  return a * b;
}
BigCount add(BigCount a, BigCount b) {
  if (b > kMax - a) too_large();
  return a + b;
}

/// Sequences of length s over digits [0, R), each digit weighted, optionally non-decreasing,
/// in lexicographic order (first digit most significant). A sequence's block size is the
/// product of its digits' weights times a caller-given unit.
struct SeqSpace {
  int s = 0;
  int R = 0;
  std::vector<BigCount> w;
  bool non_decreasing = false;
  std::vector<std::vector<BigCount>> W;  // W[k][v]: total weight of suffixes from k (digits >= v)

  SeqSpace() = default;
  SeqSpace(int length, std::vector<BigCount> weights, bool nondecr)
      : s(length), R(int(weights.size())), w(std::move(weights)), non_decreasing(nondecr) {
    W.assign(size_t(s) + 1, std::vector<BigCount>(size_t(R) + 1, 0));
    for (int v = 0; v <= R; ++v) W[s][v] = 1;
    for (int k = s - 1; k >= 0; --k)
      for (int v = 0; v <= R; ++v) {
        BigCount sum = 0;
        for (int d = non_decreasing ? v : 0; d < R; ++d) sum = add(sum, mul(w[d], W[k + 1][non_decreasing ? d : 0]));
        W[k][v] = sum;
      }
  }
  BigCount total() const { return W[0][0]; }
  BigCount weight(const std::vector<int>& seq) const {
    BigCount m = 1;
    for (int d : seq) m = mul(m, w[d]);
    return m;
  }
  /// `q` in [0, total()*unit) -> the sequence; `q` becomes the offset inside its block.
  std::vector<int> decode(BigCount& q, BigCount unit) const {
    std::vector<int> seq(static_cast<size_t>(s));
    BigCount m = unit;
    int lo = 0;
    for (int k = 0; k < s; ++k) {
      int d = non_decreasing ? lo : 0;
      for (; d < R; ++d) {
        const BigCount block = mul(mul(m, w[d]), W[k + 1][non_decreasing ? d : 0]);
        if (q < block) break;
        q -= block;
      }
      FLEXNAS_CHECK(d < R, "enumeration decode out of range");
      seq[k] = d;
      m = mul(m, w[d]);
      lo = d;
    }
    return seq;
  }
  /// Offset of the first element of `seq`'s block.
  BigCount encode(const std::vector<int>& seq, BigCount unit) const {
    BigCount cum = 0, m = unit;
    int lo = 0;
    for (int k = 0; k < s; ++k) {
      for (int d = non_decreasing ? lo : 0; d < seq[k]; ++d)
        cum = add(cum, mul(mul(m, w[d]), W[k + 1][non_decreasing ? d : 0]));
      m = mul(m, w[seq[k]]);
      lo = seq[k];
    }
    return cum;
  }
};

std::vector<BigCount> ones(size_t n) { return std::vector<BigCount>(n, 1); }

BigCount power(BigCount base, int exponent) {
  BigCount out = 1;
  for (int i = 0; i < exponent; ++i) out = mul(out, base);
  return out;
}

template <typename T>
int index_in(const std::vector<T>& values, const T& value) {
  auto it = std::find(values.begin(), values.end(), value);
  return it == values.end() ? -1 : int(it - values.begin());
}

}  // namespace

std::string to_string_big(BigCount value) {
  if (value == 0) return "0";
  std::string out;
  while (value > 0) {
    out.push_back(char('0' + int(value % 10)));
    value /= 10;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::string to_scientific(BigCount value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4Le", static_cast<long double>(value));
  return buf;
}

BigCount parse_big(const std::string& text, const std::string& what) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw ConfigError("error: " + what + ": expected a non-negative integer, got '" + text + "'");
  BigCount value = 0;
  for (char c : text) {
    if (value > (kMax - BigCount(c - '0')) / 10)
      throw ConfigError("error: " + what + ": value '" + text + "' is too large");
    value = value * 10 + BigCount(c - '0');
  }
  return value;
}

BigCount uniform_big(BigCount bound, std::mt19937_64& rng) {
  FLEXNAS_CHECK(bound > 0, "uniform_big with bound 0");
  BigCount mask = bound - 1;
  for (int shift = 1; shift < 128; shift <<= 1) mask |= mask >> shift;
  const bool wide = (mask >> 64) != 0;
  while (true) {
    BigCount x = BigCount(rng());
    if (wide) x = (x << 64) | BigCount(rng());
    x &= mask;
    if (x < bound) return x;
  }
}

/// Per-depth tables: everything decode/encode of one depth L needs, built once.
struct Enumerator::Depth {
  int s = 0;                           // stacks
  SeqSpace N, H, O, NFF;               // heads, hidden sizes, op types, feed-forward depths per stack
  std::vector<SeqSpace> width_tuples;  // per nff choice: the width tuples of one stack (heterogeneous)
  BigCount ffn_hom = 1;                // homogeneous: |ff|^s (one width per stack); heterogeneous: 1
  BigCount block = 0;                  // size of one (n, h) block = |O| * |NFF| * ffn_hom
  BigCount base = 0;                   // architectures per pooling choice (the reference's count)
  BigCount pool_count = 1;             // pooling choices: |strides|^(s-1) (1 without a pooling block)
  BigCount share_count = 1;            // sharing choices: |factors|^s (1 without architecture.share)
};

Enumerator::Enumerator(const DesignSpace& space, const EnumerationSettings& settings)
    : space_(space), settings_(settings) {
  space.check_settings(settings);
  const bool inc = settings.increasing, het = settings.heterogeneous_feed_forward;
  std::vector<BigCount> op_weights;
  for (const auto& params : space.op_params) op_weights.push_back(params.size());
  for (int64_t L : space.encoder_layers) {
    auto depth = std::make_shared<Depth>();
    depth->s = int(L / settings.layers_per_stack);
    const int s = depth->s;
    depth->N = SeqSpace(s, ones(space.num_heads.size()), inc);
    depth->H = SeqSpace(s, ones(space.hidden_sizes.size()), inc);
    depth->O = SeqSpace(s, op_weights, false);
    std::vector<BigCount> g;
    for (int64_t m : space.nff) {
      depth->width_tuples.emplace_back(int(m), ones(space.ffn_widths.size()), inc);
      g.push_back(het ? depth->width_tuples.back().total() : 1);
    }
    depth->NFF = SeqSpace(s, g, inc);
    depth->ffn_hom = het ? 1 : power(space.ffn_widths.size(), s);
    depth->block = mul(mul(depth->O.total(), depth->NFF.total()), depth->ffn_hom);
    depth->base = mul(mul(depth->N.total(), depth->H.total()), depth->block);
    // Pooling is the slowest choice inside a depth, so without a pooling block (one choice) the
    // order and count are the reference's.
    if (!space.pool_strides.empty()) depth->pool_count = power(space.pool_strides.size(), s - 1);
    // Sharing is slower still: without architecture.share, nothing changes.
    if (!space.share_factors.empty()) depth->share_count = power(space.share_factors.size(), s);
    const BigCount count = mul(depth->share_count, mul(depth->pool_count, depth->base));
    per_depth_.push_back(count);
    total_ = add(total_, count);
    depths_.push_back(depth);
  }
  base_per_depth_ = per_depth_;
  base_total_ = total_;
  if (space.constraints.limits_cost()) apply_constraints();
}

void Enumerator::apply_constraints() {
  const std::string where = space_.path.empty() ? std::string("design space") : space_.path;
  const std::string limits = "constraints (" + space_.constraints.describe() + ")";
  if (!space_.ops)
    throw ConfigError("error: " + where + ": " + limits +
                      " need the operation catalogue to price architectures; this tool loaded the space without it");
  if (base_total_ > BigCount(kMaxConstraintScan))
    throw ConfigError("error: " + where + ": " + limits + " are applied by pricing every architecture, and the space has " +
                      to_string_big(base_total_) + " before them (limit " + std::to_string(kMaxConstraintScan) +
                      "); narrow the space (fewer choices or a larger layers_per_stack), or drop the constraints and "
                      "limit a campaign instead (objective.max_parameters)");
  constrained_ = true;
  const int64_t n = int64_t(base_total_);
  std::vector<char> fits(size_t(n), 0);
  int64_t error_at = -1;
  std::string error;
  int64_t min_parameters = std::numeric_limits<int64_t>::max();
  double min_flops = std::numeric_limits<double>::infinity();
#pragma omp parallel for schedule(dynamic, 1024) reduction(min : min_parameters, min_flops)
  for (int64_t i = 0; i < n; ++i) {
    try {
      const ArchitectureCost cost = space_.ops->cost(base_at(BigCount(i)));
      fits[size_t(i)] = space_.constraints.problem(cost).empty();
      min_parameters = std::min(min_parameters, cost.parameters);
      min_flops = std::min(min_flops, cost.flops_per_token);
    } catch (const std::exception& e) {
#pragma omp critical(flexnas_constraint_error)
      if (error_at < 0 || i < error_at) error_at = i, error = e.what();
    }
  }
  if (error_at >= 0)
    throw ConfigError("error: " + where + ": " + limits + ": architecture " + std::to_string(error_at) +
                      " cannot be priced: " + error);
  min_cost_ = {min_parameters, min_flops};
  kept_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (fits[size_t(i)]) kept_.push_back(uint64_t(i));
  // Filtered counts per depth: the base order is depth-major, so each depth is one range of kept_.
  uint64_t start = 0;
  for (size_t d = 0; d < base_per_depth_.size(); ++d) {
    const uint64_t end = start + uint64_t(base_per_depth_[d]);
    per_depth_[d] = BigCount(std::lower_bound(kept_.begin(), kept_.end(), end) -
                             std::lower_bound(kept_.begin(), kept_.end(), start));
    start = end;
  }
  total_ = BigCount(kept_.size());
}

Architecture Enumerator::at(BigCount index) const {
  FLEXNAS_CHECK(index < total_, "index ", to_string_big(index), " out of range (count ", to_string_big(total_), ")");
  return base_at(constrained_ ? BigCount(kept_[size_t(index)]) : index);
}

Architecture Enumerator::base_at(BigCount index) const {
  size_t depth = 0;
  while (index >= base_per_depth_[depth]) index -= base_per_depth_[depth++];
  const int64_t L = space_.encoder_layers[depth];
  const int64_t lps = settings_.layers_per_stack;
  const int s = int(L / lps);
  const bool het = settings_.heterogeneous_feed_forward;
  const Depth& t = *depths_[depth];
  const SeqSpace &N = t.N, &H = t.H, &O = t.O, &NFF = t.NFF;
  const auto& width_tuples = t.width_tuples;
  const BigCount ffn_hom = t.ffn_hom, block = t.block;
  const BigCount share_idx = index / mul(t.pool_count, t.base);
  index %= mul(t.pool_count, t.base);
  const BigCount pool_idx = index / t.base;
  index %= t.base;

  BigCount nh = index / block, r = index % block;
  BigCount in = nh / H.total(), ih = nh % H.total();
  std::vector<int> n_seq = N.decode(in, 1), h_seq = H.decode(ih, 1);
  std::vector<int> o_seq = O.decode(r, mul(NFF.total(), ffn_hom));
  const BigCount p_count = O.weight(o_seq);
  std::vector<int> nff_seq = NFF.decode(r, mul(p_count, ffn_hom));
  const BigCount f_count = mul(NFF.weight(nff_seq), ffn_hom);
  BigCount p_idx = r / f_count, f_idx = r % f_count;

  // p: mixed radix over stacks, last stack fastest.
  std::vector<int> p_seq(static_cast<size_t>(s));
  for (int k = s - 1; k >= 0; --k) {
    const BigCount radix = space_.op_params[o_seq[k]].size();
    p_seq[k] = int(p_idx % radix);
    p_idx /= radix;
  }
  // f: per stack a width (homogeneous) or a width tuple (heterogeneous), last stack fastest.
  std::vector<std::vector<int64_t>> widths(static_cast<size_t>(s));
  for (int k = s - 1; k >= 0; --k) {
    const int64_t m = space_.nff[nff_seq[k]];
    if (!het) {
      const BigCount radix = space_.ffn_widths.size();
      widths[k].assign(size_t(m), space_.ffn_widths[size_t(f_idx % radix)]);
      f_idx /= radix;
    } else {
      const SeqSpace& tuples = width_tuples[nff_seq[k]];
      BigCount offset = f_idx % tuples.total();
      f_idx /= tuples.total();
      for (int d : tuples.decode(offset, 1)) widths[k].push_back(space_.ffn_widths[d]);
    }
  }

  Architecture arch;
  arch.format = ArchFormat::kStandard;
  for (int k = 0; k < s; ++k) {
    LayerSpec layer;
    layer.hidden = space_.hidden_sizes[h_seq[k]];
    layer.heads = space_.num_heads[n_seq[k]];
    layer.op = space_.op_types[o_seq[k]];
    layer.param = space_.op_params[o_seq[k]][p_seq[k]];
    layer.ffn = widths[k];
    for (int64_t j = 0; j < lps; ++j) arch.layers.push_back(layer);
  }
  if (!space_.pool_strides.empty()) {
    // Stacks 1..s-1 choose a stride (mixed radix, last stack fastest), applied at their first layer.
    arch.pool = space_.pool_settings;
    arch.pool.stride.assign(arch.layers.size(), 1);
    BigCount rest = pool_idx;
    const BigCount radix = space_.pool_strides.size();
    for (int k = s - 1; k >= 1; --k) {
      arch.pool.stride[size_t(k * lps)] = space_.pool_strides[size_t(rest % radix)];
      rest /= radix;
    }
    if (arch.pool.total_stride() == 1) arch.pool = PoolSpec{};  // one canonical form for "no pooling"
  }
  if (!space_.share_factors.empty()) {
    // Each stack chooses a repeat factor r (mixed radix, last stack fastest): its layer j runs with
    // the parameters of its layer (j / r) * r, Funnel's order (param layer a, a, b, b, ...).
    arch.share.assign(arch.layers.size(), 0);
    BigCount rest = share_idx;
    const BigCount radix = space_.share_factors.size();
    bool any = false;
    for (int k = s - 1; k >= 0; --k) {
      const int64_t r = space_.share_factors[size_t(rest % radix)];
      rest /= radix;
      for (int64_t j = 0; j < lps; ++j) {
        arch.share[size_t(k * lps + j)] = k * lps + (j / r) * r;
        any = any || j % r != 0;
      }
    }
    if (!any) arch.share.clear();  // one canonical form for "no sharing"
  }
  return arch;
}

BigCount Enumerator::index_of(const Architecture& arch, const std::string& where) const {
  const BigCount base = base_index_of(arch, where);
  if (!constrained_) return base;
  const auto it = std::lower_bound(kept_.begin(), kept_.end(), uint64_t(base));
  if (it != kept_.end() && *it == uint64_t(base)) return BigCount(it - kept_.begin());
  throw ConfigError("error: " + where + ": not in the design space" + (space_.path.empty() ? "" : " '" + space_.path + "'") +
                    ": outside its constraints: " + space_.constraints.problem(space_.ops->cost(arch)));
}

BigCount Enumerator::base_index_of(const Architecture& arch, const std::string& where) const {
  auto reject = [&](const std::string& why) -> BigCount {
    throw ConfigError("error: " + where + ": not in the design space" +
                      (space_.path.empty() ? "" : " '" + space_.path + "'") + ": " + why);
  };
  if (arch.is_hetero()) return reject("hetero model dicts are not enumerated (only the standard format is)");
  const int64_t L = arch.num_layers();
  const int depth = index_in(space_.encoder_layers, L);
  if (depth < 0) return reject("depth l = " + std::to_string(L) + " is not one of encoder_layers");
  const int64_t lps = settings_.layers_per_stack;
  const int s = int(L / lps);
  const bool inc = settings_.increasing, het = settings_.heterogeneous_feed_forward;

  std::vector<int> n_seq, h_seq, o_seq, nff_seq, p_seq;
  std::vector<std::vector<int>> width_seq;
  for (int k = 0; k < s; ++k) {
    const LayerSpec& layer = arch.layers[size_t(k * lps)];
    for (int64_t j = 1; j < lps; ++j)
      if (!(arch.layers[size_t(k * lps + j)] == layer))
        return reject("layers " + std::to_string(k * lps) + " and " + std::to_string(k * lps + j) +
                      " differ, but a stack of layers_per_stack = " + std::to_string(lps) + " layers must be identical");
    const std::string at = "layer " + std::to_string(k * lps) + ": ";
    int v;
    if ((v = index_in(space_.num_heads, layer.heads)) < 0) return reject(at + "n = " + std::to_string(layer.heads) + " is not in num_heads");
    n_seq.push_back(v);
    if ((v = index_in(space_.hidden_sizes, layer.hidden)) < 0) return reject(at + "h = " + std::to_string(layer.hidden) + " is not in hidden_size");
    h_seq.push_back(v);
    if ((v = index_in(space_.op_types, layer.op)) < 0) return reject(at + "o = '" + layer.op + "' is not in operation_types");
    o_seq.push_back(v);
    if ((v = index_in(space_.op_params[o_seq.back()], layer.param)) < 0)
      return reject(at + "p = '" + layer.param + "' is not a parameter of '" + layer.op + "'");
    p_seq.push_back(v);
    if ((v = index_in(space_.nff, int64_t(layer.ffn.size()))) < 0)
      return reject(at + std::to_string(layer.ffn.size()) + " feed-forward layers is not in number_of_feed-forward_stacks");
    nff_seq.push_back(v);
    std::vector<int> ws;
    for (int64_t w : layer.ffn) {
      if ((v = index_in(space_.ffn_widths, w)) < 0) return reject(at + "feed-forward width " + std::to_string(w) + " is not in feed-forward_hidden");
      ws.push_back(v);
    }
    if (!het && std::adjacent_find(ws.begin(), ws.end(), std::not_equal_to<int>()) != ws.end())
      return reject(at + "feed-forward widths differ inside one stack (needs heterogeneous_feed_forward)");
    if (het && inc && !std::is_sorted(ws.begin(), ws.end()))
      return reject(at + "feed-forward widths must not decrease (increasing)");
    width_seq.push_back(ws);
  }
  if (inc) {
    if (!std::is_sorted(n_seq.begin(), n_seq.end())) return reject("num_heads decrease with depth (increasing)");
    if (!std::is_sorted(h_seq.begin(), h_seq.end())) return reject("hidden sizes decrease with depth (increasing)");
    if (!std::is_sorted(nff_seq.begin(), nff_seq.end())) return reject("feed-forward depths decrease with depth (increasing)");
  }

  // Pooling: strides only at stack starts after the first, from the space's list, with its settings.
  BigCount pool_idx = 0;
  if (space_.pool_strides.empty()) {
    if (arch.pool.active()) return reject("the model pools but the space has no architecture.pooling block");
  } else {
    const std::vector<int64_t>& allowed = space_.pool_strides;
    if (arch.pool.active()) {
      const PoolSpec& want = space_.pool_settings;
      if (arch.pool.q_only != want.q_only || arch.pool.separate_cls != want.separate_cls || arch.pool.decoder != want.decoder)
        return reject("pooling settings (q_only, separate_cls, decoder) differ from the space's architecture.pooling");
    }
    for (int k = 0; k < s; ++k)
      for (int64_t j = 0; j < lps; ++j) {
        const size_t i = size_t(k * lps + j);
        const int64_t stride = arch.pool.active() ? arch.pool.stride[i] : 1;
        if ((k == 0 || j > 0) && stride != 1)
          return reject("layer " + std::to_string(i) + " pools, but only the first layer of a stack after the first may");
        if (k == 0 || j > 0) continue;
        const int v = index_in(allowed, stride);
        if (v < 0) return reject("layer " + std::to_string(i) + ": pooling stride " + std::to_string(stride) + " is not in pooling.stride");
        pool_idx = pool_idx * allowed.size() + BigCount(v);
      }
  }

  // Sharing: each stack's pattern must be one of the space's repeat factors.
  BigCount share_idx = 0;
  if (space_.share_factors.empty()) {
    if (arch.shares()) return reject("the model shares layer parameters but the space has no architecture.share");
  } else {
    for (int k = 0; k < s; ++k) {
      int found = -1;
      for (size_t v = 0; v < space_.share_factors.size() && found < 0; ++v) {
        const int64_t r = space_.share_factors[v];
        bool match = true;
        for (int64_t j = 0; j < lps && match; ++j)
          match = int64_t(arch.owner(size_t(k * lps + j))) == k * lps + (j / r) * r;
        if (match) found = int(v);
      }
      if (found < 0) {
        std::string owners;
        for (int64_t j = 0; j < lps; ++j) owners += (j ? ", " : "") + std::to_string(arch.owner(size_t(k * lps + j)));
        return reject("layers " + std::to_string(k * lps) + ".." + std::to_string(k * lps + lps - 1) + " share [" + owners +
                      "], which is no repeat factor of architecture.share (a factor r: each parameterised layer run r "
                      "times in a row)");
      }
      share_idx = share_idx * space_.share_factors.size() + BigCount(found);
    }
  }

  const Depth& t = *depths_[size_t(depth)];
  const SeqSpace &N = t.N, &H = t.H, &O = t.O, &NFF = t.NFF;
  const auto& width_tuples = t.width_tuples;
  const BigCount ffn_hom = t.ffn_hom, block = t.block;

  BigCount index = 0;
  for (int d = 0; d < depth; ++d) index = add(index, base_per_depth_[size_t(d)]);
  index = add(index, mul(share_idx, mul(t.pool_count, t.base)));
  index = add(index, mul(pool_idx, t.base));
  const BigCount nh = add(mul(N.encode(n_seq, 1), H.total()), H.encode(h_seq, 1));
  index = add(index, mul(nh, block));
  index = add(index, O.encode(o_seq, mul(NFF.total(), ffn_hom)));
  const BigCount p_count = O.weight(o_seq);
  index = add(index, NFF.encode(nff_seq, mul(p_count, ffn_hom)));
  const BigCount f_count = mul(NFF.weight(nff_seq), ffn_hom);
  BigCount p_idx = 0;
  for (int k = 0; k < s; ++k) p_idx = p_idx * space_.op_params[o_seq[k]].size() + BigCount(p_seq[k]);
  BigCount f_idx = 0;
  for (int k = 0; k < s; ++k) {
    if (!het) {
      f_idx = f_idx * space_.ffn_widths.size() + BigCount(width_seq[k][0]);
    } else {
      const SeqSpace& tuples = width_tuples[nff_seq[k]];
      f_idx = f_idx * tuples.total() + tuples.encode(width_seq[k], 1);
    }
  }
  return add(index, add(mul(p_idx, f_count), f_idx));
}

bool Enumerator::contains(const Architecture& arch) const {
  try {
    index_of(arch);
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

std::vector<BigCount> Enumerator::sample(uint64_t n, std::mt19937_64& rng) const {
  std::set<BigCount> chosen;
  if (BigCount(n) >= total_) {
    std::vector<BigCount> all;
    for (BigCount i = 0; i < total_; ++i) all.push_back(i);
    return all;
  }
  // Floyd's algorithm: n distinct values with n draws, whatever the size of the space.
  for (BigCount j = total_ - n; j < total_; ++j) {
    BigCount t = uniform_big(j + 1, rng);
    if (!chosen.insert(t).second) chosen.insert(j);
  }
  return std::vector<BigCount>(chosen.begin(), chosen.end());
}

}  // namespace flexnas
