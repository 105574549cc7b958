#include "datasets/glue.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "design_space/error.h"

namespace flexnas::datasets {
namespace {

struct Columns {
  std::vector<std::string> text;  // header names of the text columns (or indices for cola)
  std::string label;              // header name of the label column
  std::vector<std::string> label_values;  // empty: integer labels 0..n-1 (or a float for stsb)
  int64_t num_labels = 2;                 // 0 = regression
};

const std::map<std::string, Columns>& columns() {
  static const std::map<std::string, Columns> c = {
      {"cola", {{"sentence"}, "label", {}, 2}},
      {"sst2", {{"sentence"}, "label", {}, 2}},
      {"mrpc", {{"#1 String", "#2 String"}, "Quality", {}, 2}},
      {"qqp", {{"question1", "question2"}, "is_duplicate", {}, 2}},
      {"stsb", {{"sentence1", "sentence2"}, "score", {}, 0}},
      {"mnli", {{"sentence1", "sentence2"}, "gold_label", {"entailment", "neutral", "contradiction"}, 3}},
      {"qnli", {{"question", "sentence"}, "label", {"entailment", "not_entailment"}, 2}},
      {"rte", {{"sentence1", "sentence2"}, "label", {"entailment", "not_entailment"}, 2}},
      {"wnli", {{"sentence1", "sentence2"}, "label", {}, 2}},
  };
  return c;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

const std::vector<std::string>& glue_tasks() {
  static const std::vector<std::string> t = {"cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli"};
  return t;
}

std::string glue_directory(const std::string& task) {
  static const std::map<std::string, std::string> d = {{"cola", "CoLA"}, {"mnli", "MNLI"},   {"mrpc", "MRPC"},
                                                       {"qnli", "QNLI"}, {"qqp", "QQP"},     {"rte", "RTE"},
                                                       {"sst2", "SST-2"}, {"stsb", "STS-B"}, {"wnli", "WNLI"}};
  auto it = d.find(task);
  if (it == d.end()) throw ConfigError("error: GLUE task: '" + task + "'; allowed: " + join(glue_tasks()));
  return it->second;
}

std::vector<std::string> glue_splits(const std::string& task) {
  glue_directory(task);  // validates
  if (task == "mnli") return {"train", "dev_matched", "dev_mismatched"};
  return {"train", "dev"};
}

std::vector<GlueExample> read_glue_tsv(const std::string& path, const std::string& task) {
  glue_directory(task);
  const Columns& cols = columns().at(task);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": error: GLUE " + task + ": cannot open file (expected the GLUE distribution's " +
                             glue_directory(task) + "/ directory)");
  std::vector<size_t> text_idx;
  size_t label_idx = 0, num_fields = 0;
  std::string line;
  int64_t line_no = 0;
  if (task == "cola") {
    text_idx = {3};
    label_idx = 1;
    num_fields = 4;
  } else {
    if (!std::getline(in, line)) throw ConfigError(path + ":1: error: header: the file is empty");
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto header = split_tabs(line);
    num_fields = header.size();
    auto find = [&](const std::string& name) {
      auto it = std::find(header.begin(), header.end(), name);
      if (it == header.end())
        throw ConfigError(path + ":1: error: column '" + name + "': missing from the header; found columns: " +
                          join(header));
      return static_cast<size_t>(it - header.begin());
    };
    for (const auto& name : cols.text) text_idx.push_back(find(name));
    label_idx = find(cols.label);
  }
  std::vector<GlueExample> out;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto fields = split_tabs(line);
    const std::string where = path + ":" + std::to_string(line_no);
    if (fields.size() != num_fields)
      throw ConfigError(where + ": error: row: expected " + std::to_string(num_fields) + " tab-separated fields, found " +
                        std::to_string(fields.size()));
    GlueExample ex;
    for (size_t i : text_idx) ex.segments.push_back(fields[i]);
    const std::string& value = fields[label_idx];
    const std::string column = task == "cola" ? "column 2 (label)" : "column '" + cols.label + "'";
    if (cols.num_labels == 0) {
      char* end = nullptr;
      ex.target = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !std::isfinite(ex.target))
        throw ConfigError(where + ": error: " + column + ": expected a number, found '" + value + "'");
    } else if (!cols.label_values.empty()) {
      auto it = std::find(cols.label_values.begin(), cols.label_values.end(), value);
      if (it == cols.label_values.end())
        throw ConfigError(where + ": error: " + column + ": '" + value + "'; allowed: " + join(cols.label_values));
      ex.label = it - cols.label_values.begin();
    } else {
      if (value != "0" && value != "1")
        throw ConfigError(where + ": error: " + column + ": '" + value + "'; allowed: 0, 1");
      ex.label = value == "1" ? 1 : 0;
    }
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace flexnas::datasets
