#include "launch/report/model_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "datasets/metrics.h"
#include "datasets/tasks.h"
#include "design_space/error.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "models/checkpoint.h"
#include "models/flex_model.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

constexpr const char* kFinetuneKinds = "'finetune' (flexnas finetune --task T) or 'finetune_suite' (a list or suite of tasks)";

/// A number of a metrics file; null (how NaN is written) is none.
std::optional<double> optional_number(const ConfigNode& node) {
  if (node.is_null()) return std::nullopt;
  const double v = node.as_double();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

/// One task's entry: its "score", "collapsed" and, for a registered task, its metrics on each selection split.
TaskResult task_result(const ConfigNode& node, const std::string& task) {
  if (!node.is_map()) node.fail("expected the task's metrics (a JSON object), found " + node.describe());
  TaskResult r;
  r.score = optional_number(node["score"]);
  if (auto c = node.find("collapsed")) r.collapsed = c->as_bool();
  if (!datasets::is_task_or_suite(task) || datasets::is_suite(task)) return r;  // a task of another version
  const datasets::TaskInfo& info = datasets::task_info(task);
  for (const auto& split : info.eval_splits) {
    const auto s = node.find(split);
    if (!s || !s->is_map()) continue;
    for (const auto& metric : info.metrics) {
      const auto m = s->find(metric);
      if (!m) continue;
      if (auto v = optional_number(*m)) r.metrics.emplace_back(split + " " + metric, *v);
    }
  }
  return r;
}

/// "finetune", "finetune_suite", or "" when `metrics` is not a fine-tuning result.
std::string finetune_kind(const ConfigNode& metrics) {
  if (!metrics.is_map()) return "";
  if (auto k = metrics.find("kind")) {
    if (!k->is_scalar()) return "";
    const std::string kind = k->as_string();
    if (kind == "finetune" || kind == "finetune-epoch" || kind == "finetune_suite") return kind;
    return "";
  }
  return metrics.has("task") && metrics.has("score") ? "finetune" : "";  // before "kind" was written
}

/// Parameters of the fine-tuned model in `dir` (its config.json, or a suite's first task folder's).
std::optional<int64_t> model_parameters(const std::string& dir, const std::map<std::string, TaskResult>& tasks) {
  std::vector<fs::path> candidates = {fs::path(dir)};
  for (const auto& [task, r] : tasks) candidates.push_back(fs::path(dir) / datasets::task_file_name(task));
  for (const auto& c : candidates) {
    if (!fs::is_regular_file(c / models::kConfigFile)) continue;
    const models::CheckpointConfig config = models::read_checkpoint_config(c.string());
    return models::base_model_cost(config.arch, config.options).parameters;
  }
  return std::nullopt;  // metrics without their checkpoint: an empty cell
}

ModelRow dir_row(const std::string& dir, const std::string& name) {
  ModelRow row;
  row.name = name;
  row.tasks = finetune_task_results(ConfigNode::load_file((fs::path(dir) / models::kMetricsFile).string()));
  row.parameters = model_parameters(dir, row.tasks);
  return row;
}

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_field(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::map<std::string, TaskResult> finetune_task_results(const ConfigNode& metrics) {
  const std::string kind = finetune_kind(metrics);
  if (kind.empty()) {
    if (!metrics.is_map()) metrics.fail("expected a JSON object of fine-tuning metrics, found " + metrics.describe());
    if (auto k = metrics.find("kind"))
      k->fail("'" + (k->is_scalar() ? k->as_string() : k->describe()) + "' is not a fine-tuning result; expected " +
              kFinetuneKinds);
    metrics.fail(std::string("no 'kind': not a fine-tuning result; expected kind ") + kFinetuneKinds);
  }
  std::map<std::string, TaskResult> out;
  if (kind == "finetune_suite") {
    const ConfigNode tasks = metrics["tasks"];
    if (!tasks.is_map()) tasks.fail("expected task -> metrics, found " + tasks.describe());
    for (const auto& [task, node] : tasks.entries()) out[task] = task_result(node, task);
    return out;
  }
  const std::string task = metrics["task"].as_string();
  out[task] = task_result(metrics, task);
  return out;
}

bool is_finetune_output(const std::string& dir) {
  const fs::path file = fs::path(dir) / models::kMetricsFile;
  if (!fs::is_regular_file(file)) return false;
  return !finetune_kind(ConfigNode::load_file(file.string())).empty();
}

std::vector<ModelRow> read_model_dirs(const std::vector<std::string>& dirs) {
  std::vector<ModelRow> rows;
  for (const auto& dir : dirs) {
    const Location where{dir, 0, 0, ""};
    if (!fs::is_directory(dir)) throw_config_error(where, "no such directory");
    const fs::path own = fs::path(dir) / models::kMetricsFile;
    if (fs::is_regular_file(own)) {
      // The folder's own metrics.json decides: a fine-tuning result is one row, anything else an error.
      rows.push_back(dir_row(dir, dir));
      continue;
    }
    std::vector<fs::path> subs;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory()) subs.push_back(entry.path());
    std::sort(subs.begin(), subs.end());
    size_t found = 0;
    for (const auto& sub : subs) {
      if (!is_finetune_output(sub.string())) continue;  // e.g. a pretrained checkpoint beside the fine-tuned ones
      rows.push_back(dir_row(sub.string(), (fs::path(dir) / sub.filename()).string()));
      ++found;
    }
    if (found == 0)
      throw_config_error(where, "no fine-tuning metrics: expected " + own.string() + " written by flexnas finetune (kind " +
                                    kFinetuneKinds + "), or sub-folders holding one (none of its " +
                                    std::to_string(subs.size()) + " sub-folders does)");
  }
  return rows;
}

std::vector<ModelRow> read_campaign_rows(const std::string& dir, int64_t top) {
  const std::string db = campaign_db_path(dir);
  if (!fs::is_regular_file(db))
    throw_config_error(Location{dir, 0, 0, ""}, "no campaign here: expected " + db + " (a flexnas search directory)");
  CampaignStore store(db, true);
  std::string metric = "score";
  if (auto text = store.meta("config")) {
    const nlohmann::json config = nlohmann::json::parse(*text, nullptr, false);
    if (config.is_object() && config.contains("objective") && config["objective"].is_object())
      metric = config["objective"].value("metric", metric);
  }
  std::vector<TrialRow> done;
  for (TrialRow& t : store.trials())
    if (t.status == trial_status::kCompleted && t.score) done.push_back(std::move(t));
  // Best objective first (score: the sign-adjusted value the policy maximises); ties: the earlier trial.
  std::stable_sort(done.begin(), done.end(), [](const TrialRow& a, const TrialRow& b) { return *a.score > *b.score; });
  if (int64_t(done.size()) > top) done.resize(size_t(top));
  std::vector<ModelRow> rows;
  for (size_t i = 0; i < done.size(); ++i) {
    const TrialRow& t = done[i];
    ModelRow row;
    row.name = "trial " + std::to_string(t.id);
    if (t.parameters > 0) row.parameters = t.parameters;
    std::ostringstream value;
    value.precision(6);
    if (t.value) value << *t.value;
    row.extra = {{"rank", std::to_string(i + 1)}, {"hash", t.hash.substr(0, 12)}, {"objective (" + metric + ")", value.str()}};
    const ConfigNode metrics = ConfigNode::load_string(t.metrics, db + " (trial " + std::to_string(t.id) + " metrics)");
    if (!finetune_kind(metrics).empty()) row.tasks = finetune_task_results(metrics);
    rows.push_back(std::move(row));
  }
  return rows;
}

const EnumNames<TableFormat>& table_format_names() {
  static const EnumNames<TableFormat> names{{"md", TableFormat::kMarkdown}, {"csv", TableFormat::kCsv}};
  return names;
}

std::vector<std::string> table_tasks(const std::vector<ModelRow>& rows) {
  std::set<std::string> present;
  for (const auto& row : rows)
    for (const auto& [task, r] : row.tasks) present.insert(task);
  std::vector<std::string> out;
  for (const auto& info : datasets::task_registry())
    if (present.erase(info.name)) out.push_back(info.name);
  out.insert(out.end(), present.begin(), present.end());  // names the registry does not know, alphabetically
  return out;
}

std::optional<double> row_suite_score(const ModelRow& row, const std::vector<std::string>& tasks) {
  std::map<std::string, double> scores;
  for (const auto& task : tasks) {
    auto it = row.tasks.find(task);
    if (it == row.tasks.end() || !it->second.score) return std::nullopt;
    scores[task] = *it->second.score;
  }
  if (scores.empty()) return std::nullopt;
  return datasets::suite_score(scores);
}

std::string format_model_table(const std::vector<ModelRow>& rows, const ModelTableOptions& options) {
  const bool md = options.format == TableFormat::kMarkdown;
  const std::vector<std::string> tasks = table_tasks(rows);
  // Metric columns per task: every metric name any row has, in first-seen order.
  std::map<std::string, std::vector<std::string>> metric_names;
  if (options.metrics)
    for (const auto& row : rows)
      for (const auto& [task, r] : row.tasks)
        for (const auto& [name, v] : r.metrics) {
          auto& names = metric_names[task];
          if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
  std::vector<std::string> header;
  std::vector<bool> numeric;
  if (!rows.empty())
    for (const auto& [key, v] : rows.front().extra) {
      header.push_back(key);
      numeric.push_back(key != "hash");
    }
  for (const char* h : {"model", "parameters", "score"}) {
    header.push_back(h);
    numeric.push_back(std::string(h) != "model");
  }
  for (const auto& task : tasks) {
    header.push_back(task);
    numeric.push_back(true);
    for (const auto& m : metric_names[task]) {
      header.push_back(task + " " + m);
      numeric.push_back(true);
    }
  }
  if (!md) {
    header.push_back("collapsed");
    numeric.push_back(false);
  }
  const int decimals = md ? 4 : 6;
  bool any_empty = false, any_collapsed = false;
  std::vector<std::vector<std::string>> body;
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& [key, v] : row.extra) cells.push_back(v);
    cells.push_back(row.name);
    cells.push_back(row.parameters ? (md ? with_commas(*row.parameters) : std::to_string(*row.parameters)) : "");
    const auto suite = row_suite_score(row, tasks);
    cells.push_back(suite ? fixed(*suite, decimals) : "");
    std::vector<std::string> collapsed;
    for (const auto& task : tasks) {
      auto it = row.tasks.find(task);
      const TaskResult* r = it == row.tasks.end() ? nullptr : &it->second;
      if (!r || !r->score) any_empty = true;
      if (r && r->collapsed) collapsed.push_back(task);
      cells.push_back(r && r->score ? fixed(*r->score, decimals) + (md && r->collapsed ? "*" : "") : "");
      for (const auto& m : metric_names[task]) {
        std::string cell;
        if (r)
          for (const auto& [name, v] : r->metrics)
            if (name == m) cell = fixed(v, decimals);
        cells.push_back(cell);
      }
    }
    any_collapsed = any_collapsed || !collapsed.empty();
    if (!md) cells.push_back(join(collapsed, ";"));
    body.push_back(std::move(cells));
  }
  std::ostringstream out;
  if (!md) {
    for (size_t i = 0; i < header.size(); ++i) out << (i ? "," : "") << csv_field(header[i]);
    out << "\n";
    for (const auto& cells : body) {
      for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << csv_field(cells[i]);
      out << "\n";
    }
    return out.str();
  }
  out << "|";
  for (const auto& h : header) out << " " << md_field(h) << " |";
  out << "\n|";
  for (bool n : numeric) out << (n ? "---:|" : "---|");
  out << "\n";
  for (const auto& cells : body) {
    out << "|";
    for (const auto& c : cells) out << (c.empty() ? " |" : " " + md_field(c) + " |");
    out << "\n";
  }
  if (rows.empty()) out << "\n(no models)\n";
  out << "\nscore: the mean of the task scores (as GLUE aggregates); a task's score is the mean of its metrics on "
         "its selection split (datasets/metrics.h). parameters: the base model as the search counts it.\n";
  if (any_empty) out << "An empty task cell: the model has no result for that task; its score then stays empty.\n";
  if (any_collapsed) out << "*: collapsed, the model predicts one class for every example of a selection split.\n";
  return out.str();
}

}  // namespace flexnas::launch
