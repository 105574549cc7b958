#include "launch/report/probe_report.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include "launch/report/svg_plot.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

std::string format_fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

nlohmann::ordered_json result_json(const CheckpointResult& r) {
  nlohmann::ordered_json j;
  j["name"] = r.name;
  j["checkpoint"] = fs::absolute(r.path).string();
  j["features"] = r.extraction;
  auto layers = nlohmann::ordered_json::array();
  for (const LayerResult& l : r.layers) {
    nlohmann::ordered_json lj;
    lj["layer"] = l.index;
    lj["op"] = l.op;
    lj["width"] = l.width;
    lj["l2"] = l.l2;
    lj["held_out_score"] = l.held_out_score;
    lj["seconds"] = l.seconds;
    for (const SplitScore& s : l.splits)
      lj[s.split] = {{"score", s.score}, {"interval", {s.interval.low, s.interval.high}}, {"metrics", s.metrics}};
    layers.push_back(lj);
  }
  j["layers"] = layers;
  j["best"] = r.comparison;
  if (!r.versus_first.is_null()) j["versus_first"] = r.versus_first;
  return j;
}

/// probes.svg: the report split's score per layer, one line per checkpoint, 95 % intervals as bars.
std::string probes_svg(const std::vector<CheckpointResult>& results, const datasets::TaskInfo& info,
                       const std::string& split, const std::string& pooling) {
  static const std::vector<std::string> palette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  // x axis: every probed index; a label carries the op when all checkpoints agree on it.
  std::map<int64_t, std::set<std::string>> ops;
  for (const auto& r : results)
    for (const auto& l : r.layers) ops[l.index].insert(l.op);
  std::vector<int64_t> indices;
  plot::LineChart chart;
  for (const auto& [index, names] : ops) {
    indices.push_back(index);
    chart.x_categories.push_back(std::to_string(index) + (names.size() == 1 ? " " + *names.begin() : ""));
  }
  chart.title = info.name + ": linear probe per layer (" + split + ", 95% bootstrap intervals)";
  chart.x_title = "layer (0 = embeddings) and its operation";
  chart.y_title = info.name + " score on " + split;
  chart.width = std::max(640.0, 90.0 * double(indices.size()) + 160);
  chart.height = 400;
  for (size_t c = 0; c < results.size(); ++c) {
    plot::Series s;
    s.name = results[c].name;
    s.colour = palette[c % palette.size()];
    for (const auto& l : results[c].layers)
      for (const auto& sc : l.splits)
        if (sc.split == split) {
          // Lines side by side within a layer's slot, so their interval bars do not hide each other.
          const double offset = results.size() > 1 ? 0.12 * (double(c) / double(results.size() - 1) - 0.5) : 0.0;
          s.x.push_back(double(std::find(indices.begin(), indices.end(), l.index) - indices.begin()) + offset);
          s.y.push_back(sc.score);
          s.y_low.push_back(sc.interval.low);
          s.y_high.push_back(sc.interval.high);
        }
    chart.series.push_back(s);
  }
  if (!pooling.empty()) chart.title += ", " + pooling + " pooling";
  return plot::line_chart_svg(chart);
}

void print_table(const std::vector<CheckpointResult>& results, const std::vector<std::string>& splits) {
  std::cout << "\n" << std::left << std::setw(6) << "layer" << std::setw(16) << "op";
  for (const auto& r : results)
    for (const auto& s : splits) std::cout << std::setw(26) << (results.size() > 1 ? r.name + " " : "") + s;
  std::cout << "\n";
  std::set<int64_t> indices;
  for (const auto& r : results)
    for (const auto& l : r.layers) indices.insert(l.index);
  for (int64_t index : indices) {
    std::string op;
    for (const auto& r : results)
      for (const auto& l : r.layers)
        if (l.index == index && op.empty()) op = l.op;
    std::cout << std::setw(6) << index << std::setw(16) << op;
    for (const auto& r : results) {
      const LayerResult* found = nullptr;
      for (const auto& l : r.layers)
        if (l.index == index) found = &l;
      for (const auto& s : splits) {
        std::string cell = "-";
        if (found)
          for (const auto& sc : found->splits)
            if (sc.split == s)
              cell = format_fixed(sc.score) + " [" + format_fixed(sc.interval.low, 3) + "," + format_fixed(sc.interval.high, 3) + "]";
        std::cout << std::setw(26) << cell;
      }
    }
    std::cout << "\n";
  }
  for (const auto& r : results) {
    const auto& c = r.comparison;
    std::cout << r.name << ": best layer on " << c["chosen_on"].get<std::string>() << " is " << c["best_layer"].get<int64_t>();
    if (c.contains("difference_vs_embeddings"))
      std::cout << "; the best above the embeddings (" << c["best_layer_above_embeddings"].get<int64_t>() << ") vs them on "
                << c["split"].get<std::string>() << ": "
                << (c["difference_vs_embeddings"].get<double>() >= 0 ? "+" : "") << format_fixed(c["difference_vs_embeddings"].get<double>())
                << " [" << format_fixed(c["interval"][0].get<double>()) << ", " << format_fixed(c["interval"][1].get<double>()) << "]"
                << (c["significant"].get<bool>() ? " (significant)" : " (not significant)");
    std::cout << "\n";
    if (!r.versus_first.is_null()) {
      std::cout << r.name << " - " << r.versus_first["checkpoint"].get<std::string>() << " on "
                << r.versus_first["split"].get<std::string>() << ", per layer (95% paired bootstrap):";
      for (const auto& l : r.versus_first["layers"])
        std::cout << "\n  layer " << l["layer"].get<int64_t>() << ": " << (l["difference"].get<double>() >= 0 ? "+" : "")
                  << format_fixed(l["difference"].get<double>()) << " [" << format_fixed(l["interval"][0].get<double>()) << ", "
                  << format_fixed(l["interval"][1].get<double>()) << "]" << (l["significant"].get<bool>() ? " *" : "");
      std::cout << "\n";
    }
  }
}

}  // namespace flexnas::launch
