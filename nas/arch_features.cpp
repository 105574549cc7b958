#include "nas/arch_features.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace flexnas::nas {
namespace {

constexpr size_t kNumericFeatures = 5;  // layers, hidden, heads, ffn_width, ffn_depth

// Every head of a layer as (type, "type_param"); a standard layer's heads share one operation.
std::vector<std::pair<std::string, std::string>> layer_heads(const LayerSpec& layer) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!layer.head_list.empty()) {
    for (const HeadSpec& h : layer.head_list) out.push_back({h.type, h.type + "_" + h.param});
  } else {
    for (int64_t i = 0; i < std::max<int64_t>(layer.heads, 1); ++i) out.push_back({layer.op, layer.op + "_" + layer.param});
  }
  return out;
}

}  // namespace

std::vector<std::string> arch_feature_names(const Library& library) {
  std::set<std::string> types, ops;
  for (const Architecture& a : library.archs)
    for (const LayerSpec& l : a.layers)
      for (const auto& [type, op] : layer_heads(l)) {
        types.insert(type);
        ops.insert(op);
      }
  std::vector<std::string> names{"layers", "hidden", "heads", "ffn_width", "ffn_depth"};
  for (const std::string& t : types) names.push_back("share:" + t);
  for (const std::string& o : ops) names.push_back("share:" + o);
  return names;
}

std::vector<std::vector<float>> arch_features(const Library& library) {
  const std::vector<std::string> names = arch_feature_names(library);
  std::map<std::string, size_t> column;  // "sa" / "sa_wma" → its share column
  for (size_t c = kNumericFeatures; c < names.size(); ++c) column[names[c].substr(6)] = c;
  std::vector<std::vector<float>> rows;
  rows.reserve(library.archs.size());
  for (const Architecture& a : library.archs) {
    std::vector<double> f(names.size(), 0.0);
    const double layers = double(std::max<int64_t>(a.num_layers(), 1));
    double heads_total = 0;
    for (const LayerSpec& l : a.layers) {
      f[1] += double(l.hidden) / layers;
      f[2] += double(l.num_heads()) / layers;
      double width = 0;
      for (int64_t w : l.ffn) width += double(w);
      if (!l.ffn.empty()) f[3] += width / double(l.ffn.size()) / layers;
      f[4] += double(l.ffn.size()) / layers;
      for (const auto& [type, op] : layer_heads(l)) {
        f[column[type]] += 1;
        f[column[op]] += 1;
        heads_total += 1;
      }
    }
    f[0] = double(a.num_layers());
    for (size_t c = kNumericFeatures; c < f.size(); ++c) f[c] /= std::max(heads_total, 1.0);
    rows.emplace_back(f.begin(), f.end());
  }
  return rows;
}

}  // namespace flexnas::nas
