#include "design_space/distance.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "design_space/arch_graph.h"
#include "design_space/error.h"

namespace flexnas {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

/// An attention op label split into (type, size, param): "sa_h128_p-sdp" -> (sa, 128, sdp),
/// hetero "c_9_64" -> (c, 64, 9). Returns false for other forms.
bool split_op_label(const std::string& label, std::string& type, int64_t& size, std::string& param) {
  const auto h = label.find("_h");
  const auto p = label.find("_p-");
  if (h != std::string::npos && p != std::string::npos && h < p) {
    const std::string digits = label.substr(h + 2, p - h - 2);
    if (h > 0 && all_digits(digits) && p + 3 < label.size()) {
      type = label.substr(0, h);
      size = std::stoll(digits);
      param = label.substr(p + 3);
      return true;
    }
  }
  const auto first = label.find('_');
  const auto last = label.rfind('_');
  if (first == std::string::npos || first == last || first == 0 || last == first + 1) return false;
  const std::string digits = label.substr(last + 1);
  if (!all_digits(digits)) return false;
  type = label.substr(0, first);
  param = label.substr(first + 1, last - first - 1);
  size = std::stoll(digits);
  return true;
}

using ParamKey = std::tuple<int, int64_t, std::string>;

/// The built-in order, for callers that pass no catalogue (library import, refinement and warm
/// start's structural_distance do not yet): the reference's group order l, sa, c, then ak, then
/// other types by name; sdp < wma, dft < dct, kernels ascending, ak parameters ("<components>[:<N>]")
/// by window then name. It equals the registry's answers (the op contract test); remove it once
/// every caller passes models::op_catalog().
int builtin_rank(const std::string& type) {
  if (type == "l") return 0;
  if (type == "sa") return 1;
  if (type == "c") return 2;
  if (type == "ak") return 3;
  return 4;
}

ParamKey builtin_param_key(const std::string& param) {
  if (param == "sdp" || param == "dft") return {0, 0, param};
  if (param == "wma" || param == "dct") return {0, 1, param};
  if (all_digits(param) && param.size() < 18) return {1, std::stoll(param), param};
  const auto colon = param.rfind(':');
  if (colon != std::string::npos) {
    const std::string window = param.substr(colon + 1);
    if (all_digits(window) && window.size() < 18) return {2, std::stoll(window), param};
  }
  return {2, 0, param};
}

/// An op group's rank: the catalogue's (its OpDefinition's order_rank); types it does not know
/// after the known ones, by name.
int type_rank(const std::string& type, const OpCatalog* ops) {
  if (!ops) return builtin_rank(type);
  return ops->has(type) ? ops->order_rank(type) : std::numeric_limits<int>::max();
}

/// A parameter's key inside its group: the catalogue's param_order, ties by name.
ParamKey param_key(const std::string& type, const std::string& param, const OpCatalog* ops) {
  if (!ops) return builtin_param_key(param);
  return {0, ops->has(type) ? ops->param_order(type, param) : 0, param};
}

constexpr double kInf = std::numeric_limits<double>::infinity();

/// Optimal matching of two head multisets (sorted cost indices). In 1-D with |a-b| substitution
/// and insertion/deletion priced per element, some optimal matching is non-crossing, so a DP over
/// the sorted lists is exact. `unmatched`: extra per unmatched head (its two edges); `matched`:
/// extra per matched head (its in-edge re-made after a gap, counted on both sides).
double match_heads(const std::vector<int>& a, const std::vector<int>& b, double unmatched, double matched) {
  const size_t n = a.size(), m = b.size();
  std::vector<double> prev(m + 1), cur(m + 1);
  prev[0] = 0;
  for (size_t j = 1; j <= m; ++j) prev[j] = prev[j - 1] + b[j - 1] + unmatched;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = prev[0] + a[i - 1] + unmatched;
    for (size_t j = 1; j <= m; ++j)
      cur[j] = std::min({prev[j] + a[i - 1] + unmatched, cur[j - 1] + b[j - 1] + unmatched,
                         prev[j - 1] + std::abs(a[i - 1] - b[j - 1]) + matched});
    std::swap(prev, cur);
  }
  return prev[m];
}

/// Alignment of two feed-forward chains add_norm -> f_1 -> ... -> f_k -> add_norm whose end
/// vertices are matched. Between two consecutive matched positions, g1 deleted and g2 inserted
/// vertices break (g1 + 1) + (g2 + 1) chain edges when g1 + g2 > 0; a substitution keeps its edges.
double align_chains(const std::vector<int>& a, const std::vector<int>& b, double edge) {
  const size_t n = a.size(), m = b.size();
  // best[i][j]: a_i matched with b_j as the last match (0 = the start add_norm; n+1, m+1 = the end).
  std::vector<double> best((n + 2) * (m + 2), kInf);
  auto at = [m](size_t i, size_t j) { return i * (m + 2) + j; };
  std::vector<double> del_prefix(n + 1, 0), ins_prefix(m + 1, 0);
  for (size_t i = 0; i < n; ++i) del_prefix[i + 1] = del_prefix[i] + a[i];
  for (size_t j = 0; j < m; ++j) ins_prefix[j + 1] = ins_prefix[j] + b[j];
  best[at(0, 0)] = 0;
  for (size_t i = 1; i <= n + 1; ++i)
    for (size_t j = 1; j <= m + 1; ++j) {
      if ((i == n + 1) != (j == m + 1)) continue;  // the end add_norms match only each other
      const double sub = (i <= n) ? std::abs(a[i - 1] - b[j - 1]) : 0.0;
      double cost = kInf;
      for (size_t pi = 0; pi < i; ++pi)
        for (size_t pj = 0; pj < j; ++pj) {
          const double from = best[at(pi, pj)];
          if (from == kInf) continue;
          const size_t g1 = i - pi - 1, g2 = j - pj - 1;
          double gap = 0;
          if (g1 + g2 > 0)
            gap = (del_prefix[i - 1] - del_prefix[pi]) + (ins_prefix[j - 1] - ins_prefix[pj]) + edge * double(g1 + g2 + 2);
          cost = std::min(cost, from + gap + sub);
        }
      best[at(i, j)] = cost;
    }
  return best[at(n + 1, m + 1)];
}

}  // namespace

namespace {

/// Funnel's graph vertices (arch_graph.cpp): before a pooling layer, the decoder, and a layer that
/// runs with an earlier layer's parameters (block parameter sharing).
bool is_pool_label(const std::string& label) {
  return label.rfind("pool_s", 0) == 0 || label.rfind("decoder_", 0) == 0 || label.rfind("share_", 0) == 0;
}
bool pools_at(const Architecture& arch, size_t layer) { return arch.pool.active() && arch.pool.stride[layer] > 1; }

}  // namespace

std::vector<std::string> vertex_labels(const Architecture& arch) {
  std::vector<std::string> labels{"input"};
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const LayerSpec& layer = arch.layers[i];
    if (arch.owner(i) != i) labels.push_back(share_vertex_label(arch, i));
    if (pools_at(arch, i)) labels.push_back(pool_vertex_label(arch.pool, i));
    for (std::string& h : head_labels(layer, arch.format)) labels.push_back(std::move(h));
    labels.push_back("add_norm");
    for (int64_t w : layer.ffn) labels.push_back("f" + std::to_string(w));
    labels.push_back("add_norm");
  }
  if (arch.pool.active()) labels.push_back(decoder_vertex_label(arch.pool));
  labels.push_back("output");
  return labels;
}

OpCostTable::OpCostTable(const std::vector<std::string>& labels, const OpCatalog* catalog) {
  std::vector<int64_t> widths;
  // (type rank, type, size, param key) -> labels naming that op (standard and hetero spellings).
  std::map<std::tuple<int, std::string, int64_t, ParamKey>, std::vector<std::string>> ops;
  std::set<std::string> pooling;  // Funnel's vertices (pooling, sharing), a last group (absent: the reference's table)
  for (const std::string& label : labels) {
    if (label == "input" || label == "output" || label == "add_norm" || label.empty()) continue;
    if (is_pool_label(label)) {
      pooling.insert(label);
      continue;
    }
    if (label[0] == 'f' && all_digits(label.substr(1))) {
      widths.push_back(std::stoll(label.substr(1)));
      continue;
    }
    std::string type, param;
    int64_t size = 0;
    if (!split_op_label(label, type, size, param))
      throw ConfigError("error: cannot price op label '" + label +
                        "' (expected input, output, add_norm, f<width>, <type>_h<size>_p-<param> or <type>_<param>_<dim>)");
    auto& names = ops[{type_rank(type, catalog), type, size, param_key(type, param, catalog)}];
    if (std::find(names.begin(), names.end(), label) == names.end()) names.push_back(label);
  }
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  order_ = {"input", "output", "add_norm", ""};
  for (int64_t w : widths) order_.push_back("f" + std::to_string(w));
  std::string group;
  bool first_group = true;
  for (const auto& [key, names] : ops) {
    const std::string& type = std::get<1>(key);
    if (first_group || type != group) {
      order_.push_back("");  // spacer between groups, as in the reference
      group = type;
      first_group = false;
    }
    const int slot = int(order_.size());
    order_.push_back(names.front());
    for (const std::string& name : names) lookup_.emplace_back(name, slot);
  }
  if (!pooling.empty()) order_.push_back("");
  for (const std::string& label : pooling) {  // sorted: decoder_<n>, pool_s2 < pool_s4 .., share_1 < share_2 ..
    lookup_.emplace_back(label, int(order_.size()));
    order_.push_back(label);
  }
  for (const char* fixed : {"input", "output", "add_norm"})
    lookup_.emplace_back(fixed, int(std::find(order_.begin(), order_.end(), fixed) - order_.begin()));
  for (size_t k = 4; k < 4 + widths.size(); ++k) lookup_.emplace_back(order_[k], int(k));
  std::sort(lookup_.begin(), lookup_.end());
}

int OpCostTable::index(const std::string& label) const {
  auto it = std::lower_bound(lookup_.begin(), lookup_.end(), std::make_pair(label, std::numeric_limits<int>::min()));
  FLEXNAS_CHECK(it != lookup_.end() && it->first == label, "op label '", label, "' is not in the cost table");
  return it->second;
}

namespace {

std::vector<std::string> labels_of(const std::vector<Architecture>& archs, const std::vector<std::string>& extra) {
  std::vector<std::string> labels = extra;
  for (const Architecture& arch : archs)
    for (const std::string& label : vertex_labels(arch))
      if (label != "input" && label != "output" && label != "add_norm") labels.push_back(label);
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}

}  // namespace

StructuralDistance::StructuralDistance(const std::vector<Architecture>& archs, const std::vector<std::string>& extra_labels,
                                       DistanceSettings settings)
    : table_(labels_of(archs, extra_labels), settings.ops), settings_(settings) {
  const double e = settings_.edge_cost;
  // Intern the two parts of every layer: the sorted head cost indices, the FFN width sequence.
  std::map<std::vector<int>, uint32_t> head_ids, ffn_ids;
  std::vector<std::vector<int>> head_types, ffn_types;
  auto intern = [](std::map<std::vector<int>, uint32_t>& ids, std::vector<std::vector<int>>& types,
                   std::vector<int> key) {
    auto [it, inserted] = ids.emplace(key, uint32_t(types.size()));
    if (inserted) types.push_back(std::move(key));
    return it->second;
  };
  offsets_.reserve(archs.size() + 1);
  offsets_.push_back(0);
  for (const Architecture& arch : archs) {
    for (size_t i = 0; i < arch.layers.size(); ++i) {
      const LayerSpec& layer = arch.layers[i];
      std::vector<int> heads;
      // A pooling or sharing vertex sits before the layer's heads; each is priced as one more
      // vertex of the layer's attention part (matched, inserted or deleted with them), so a layer
      // that shares differs from one that does not by that vertex's cost.
      if (arch.owner(i) != i) heads.push_back(table_.index(share_vertex_label(arch, i)));
      if (pools_at(arch, i)) heads.push_back(table_.index(pool_vertex_label(arch.pool, i)));
      for (const std::string& h : head_labels(layer, arch.format)) heads.push_back(table_.index(h));
      std::sort(heads.begin(), heads.end());
      std::vector<int> ffn;
      for (int64_t w : layer.ffn) ffn.push_back(table_.index("f" + std::to_string(w)));
      layers_.push_back(Layer{intern(head_ids, head_types, std::move(heads)), intern(ffn_ids, ffn_types, std::move(ffn))});
    }
    offsets_.push_back(layers_.size());
    decoder_.push_back(arch.pool.active() ? table_.index(decoder_vertex_label(arch.pool)) : 0);
  }
  num_heads_ = head_types.size();
  num_ffn_ = ffn_types.size();
  add_norm_pair_ = 2.0 * table_.index("add_norm");

  head_del_.resize(num_heads_);
  for (size_t t = 0; t < num_heads_; ++t) {
    double cost = e;  // the residual edge a -> add_norm1
    for (int idx : head_types[t]) cost += idx + 2 * e;  // each head and its two edges
    head_del_[t] = cost;
  }
  ffn_del_.resize(num_ffn_);
  for (size_t t = 0; t < num_ffn_; ++t) {
    double cost = e * double(ffn_types[t].size() + 2);  // the chain's k+1 edges and the residual
    for (int idx : ffn_types[t]) cost += idx;
    ffn_del_[t] = cost;
  }
  head_sub_.resize(num_heads_ * num_heads_);
  head_sub_break_.resize(num_heads_ * num_heads_);
  for (size_t a = 0; a < num_heads_; ++a)
    for (size_t b = 0; b <= a; ++b) {
      const double plain = match_heads(head_types[a], head_types[b], 2 * e, 0);
      // After a gap the layer's input vertex is new: every matched head's in-edge and the residual
      // a -> add_norm1 are deleted on one side and inserted on the other.
      const double broken = match_heads(head_types[a], head_types[b], 2 * e, 2 * e) + 2 * e;
      head_sub_[a * num_heads_ + b] = head_sub_[b * num_heads_ + a] = plain;
      head_sub_break_[a * num_heads_ + b] = head_sub_break_[b * num_heads_ + a] = broken;
    }
  ffn_sub_.resize(num_ffn_ * num_ffn_);
  for (size_t a = 0; a < num_ffn_; ++a)
    for (size_t b = 0; b <= a; ++b)
      ffn_sub_[a * num_ffn_ + b] = ffn_sub_[b * num_ffn_ + a] = align_chains(ffn_types[a], ffn_types[b], e);
}

double StructuralDistance::operator()(size_t i, size_t j) const {
  FLEXNAS_CHECK(i < size() && j < size(), "distance index out of range");
  if (i == j) return 0.0;
  const Layer* A = layers_.data() + offsets_[i];
  const Layer* B = layers_.data() + offsets_[j];
  const size_t n = offsets_[i + 1] - offsets_[i], m = offsets_[j + 1] - offsets_[j];
  // M[j]: last action matched A_i with B_j; G[j]: last action was a deletion or insertion (a gap
  // is open, so the next match re-makes its entry edges). Input is matched at (0, 0).
  thread_local std::vector<double> buf;
  buf.assign(4 * (m + 1), kInf);
  double* Mp = buf.data();
  double* Gp = Mp + (m + 1);
  double* Mc = Gp + (m + 1);
  double* Gc = Mc + (m + 1);
  auto del = [this](const Layer& l) { return head_del_[l.heads] + ffn_del_[l.ffn] + add_norm_pair_; };
  Mp[0] = 0;
  for (size_t jj = 1; jj <= m; ++jj) Gp[jj] = std::min(Mp[jj - 1], Gp[jj - 1]) + del(B[jj - 1]);
  for (size_t ii = 1; ii <= n; ++ii) {
    const Layer& a = A[ii - 1];
    const double da = del(a);
    Mc[0] = kInf;
    Gc[0] = std::min(Mp[0], Gp[0]) + da;
    for (size_t jj = 1; jj <= m; ++jj) {
      const Layer& b = B[jj - 1];
      const size_t hh = size_t(a.heads) * num_heads_ + b.heads;
      const double f = ffn_sub_[size_t(a.ffn) * num_ffn_ + b.ffn];
      Mc[jj] = std::min(Mp[jj - 1] + head_sub_[hh], Gp[jj - 1] + head_sub_break_[hh]) + f;
      Gc[jj] = std::min(std::min(Mp[jj], Gp[jj]) + da, std::min(Mc[jj - 1], Gc[jj - 1]) + del(b));
    }
    std::swap(Mp, Mc);
    std::swap(Gp, Gc);
  }
  // Output: its in-edge is kept after a match, re-made (deleted + inserted) after a gap.
  const double layers_cost = std::min(Mp[m], Gp[m] + 2 * settings_.edge_cost);
  // Funnel decoders: substituted, or one inserted/deleted with its three edges (the output edge
  // re-made). Not part of the alignment above: an upper bound like the rest.
  const int da = decoder_[i], db = decoder_[j];
  if (da == db) return layers_cost;
  if (da && db) return layers_cost + std::abs(da - db);
  return layers_cost + (da ? da : db) + 4 * settings_.edge_cost;
}

nlohmann::ordered_json StructuralDistance::describe() const {
  nlohmann::ordered_json j;
  j["method"] = "layer-alignment-ged";
  j["edge_cost"] = settings_.edge_cost;
  j["cost_order"] = table_.order();
  return j;
}

double structural_distance(const Architecture& a, const Architecture& b, DistanceSettings settings) {
  return StructuralDistance({a, b}, {}, settings)(0, 1);
}

}  // namespace flexnas
