#pragma once
// `flexnas report`: a results table across fine-tuned models, one row per model, one column per
// task score, plus the parameters and the suite score aggregated as GLUE does (each task's score
// is the mean of its metrics, datasets/metrics.h task_score; the suite score the mean of the task
// scores, datasets::suite_score). Rows come from `flexnas finetune` output folders (their
// metrics.json: kind "finetune" for one task, "finetune_suite" for a list or suite of tasks) or
// from a campaign's store (the top-K trials and the metrics their fine-tuned models wrote).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "design_space/config_node.h"
#include "design_space/enum_names.h"

namespace flexnas::launch {

/// One task of a fine-tuned model.
struct TaskResult {
  std::optional<double> score;                          // the task score on its selection splits (none: NaN/null)
  std::vector<std::pair<std::string, double>> metrics;  // "dev accuracy", ... (the task's metrics, per selection split)
  bool collapsed = false;                               // the best model predicts one class for a selection split
};

/// One row of the table: a fine-tuned model.
struct ModelRow {
  std::string name;                        // DIR as given, DIR/<sub-folder>, or "trial <id>"
  std::optional<int64_t> parameters;       // base model as built (models::base_model_cost), as the search counts
  std::map<std::string, TaskResult> tasks;  // task name -> result
  std::vector<std::pair<std::string, std::string>> extra;  // leading columns (campaign: rank, hash, objective)
};

/// The tasks of a fine-tuning metrics.json (read through ConfigNode, so errors are located):
/// kind "finetune" (one task: "task", "score", per-split objects) or "finetune_suite" ("tasks": task ->
/// the same). A metrics file without "kind" that has "task" and "score" is taken as one task (older
/// checkpoints). Anything else is a ConfigError naming the file, the key, what was found and what is
/// expected.
std::map<std::string, TaskResult> finetune_task_results(const ConfigNode& metrics);

/// True when `dir` holds a metrics.json of kind finetune or finetune_suite.
bool is_finetune_output(const std::string& dir);

/// The rows of `flexnas report --models DIR...`: a DIR that is a `flexnas finetune` output folder
/// is one row; otherwise every immediate sub-folder that is one (in name order) is a row named
/// DIR/<sub-folder>. A DIR that is missing or holds neither is a located ConfigError (exit 2) naming
/// the DIR and what was expected.
std::vector<ModelRow> read_model_dirs(const std::vector<std::string>& dirs);

/// The rows of `flexnas report --campaign DIR --top K`: the K completed trials with the best
/// objective (ties: the earlier trial), each with the per-task metrics its fine-tuned model wrote
/// (kept in campaign.db). Trials whose metrics are not fine-tuning metrics (table or command
/// evaluators) keep their objective and empty task cells. Reads campaign.db read-only.
std::vector<ModelRow> read_campaign_rows(const std::string& dir, int64_t top);

enum class TableFormat { kMarkdown, kCsv };
/// The spellings: md, csv (`flexnas report --format`).
const EnumNames<TableFormat>& table_format_names();

struct ModelTableOptions {
  TableFormat format = TableFormat::kMarkdown;  // md: for people (thousands separators, 4 decimals); csv: for programs
  bool metrics = false;                         // also one column per metric of each task and selection split
};

/// The tasks of `rows` in column order: registered tasks in registry order (datasets/tasks.h), then
/// any other task name alphabetically.
std::vector<std::string> table_tasks(const std::vector<ModelRow>& rows);

/// A row's suite score over `tasks`: the mean of its task scores when it has a score for every one
/// of them, none otherwise (as GLUE gives no score without every task).
std::optional<double> row_suite_score(const ModelRow& row, const std::vector<std::string>& tasks);

/// The table. Markdown: a header, one line per row, then notes (what the score is, what an empty
/// cell and a '*' mean). CSV: a header row and one row per model, RFC 4180 quoting, plain numbers,
/// a "collapsed" column naming the collapsed tasks.
std::string format_model_table(const std::vector<ModelRow>& rows, const ModelTableOptions& options = {});

}  // namespace flexnas::launch
