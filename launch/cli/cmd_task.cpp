// flexnas task list|export: the registered tasks, and a task's splits written out exactly as flexnas
// makes them (the same seeded splits fine-tuning uses), so other programs — bench/baselines.py's
// TF-IDF + logistic regression, a user's own model — are compared on the same examples.
//
// export writes DIR/<task>/ (':' -> '-'): task.json (kind, labels, metrics, score rule, splits) and
// one JSON-lines file per split, one example per line:
//   sequence tasks  {"segments": ["text", ...], "label": 1}   (regression: "target": 0.73)
//   token tasks     {"words": ["The", "jury"], "word_labels": [3, 5]}
// Files are written atomically; an existing export of the same task is replaced whole.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "datasets/metrics.h"
#include "datasets/tasks.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "launch/cli/command.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

struct TaskCliOptions {
  std::vector<std::string> tasks;  // export: registered task names
  std::string data_dir = datasets::TaskLoadOptions{}.data_dir;  // where the task data lives (scripts/fetch-data.sh)
  std::string out;                 // export: output folder
  uint64_t split_seed = datasets::TaskLoadOptions{}.split_seed;  // seed of the made splits (spam, Brown): fine-tuning uses 0
};

const char* score_rule_name(datasets::ScoreRule rule) {
  switch (rule) {
    case datasets::ScoreRule::kAccuracy: return "accuracy";
    case datasets::ScoreRule::kMcc: return "mcc";
    case datasets::ScoreRule::kMeanAccuracyF1: return "mean_accuracy_f1";
    case datasets::ScoreRule::kMeanPearsonSpearman: return "mean_pearson_spearman";
  }
  return "accuracy";
}

nlohmann::ordered_json example_json(const datasets::TaskInfo& info, const datasets::Example& ex) {
  nlohmann::ordered_json j;
  if (info.kind == datasets::TaskKind::kTokenClassification) {
    j["words"] = ex.words;
    j["word_labels"] = ex.word_labels;
  } else {
    j["segments"] = ex.segments;
    if (info.kind == datasets::TaskKind::kRegression)
      j["target"] = ex.target;
    else
      j["label"] = ex.label;
  }
  return j;
}

void run_export(const TaskCliOptions& o) {
  for (const auto& name : o.tasks) datasets::task_info(name, "--task");  // all names checked first
  for (const auto& name : o.tasks) {
    const datasets::TaskInfo& info = datasets::task_info(name, "--task");
    datasets::TaskLoadOptions load;
    load.data_dir = o.data_dir;
    load.split_seed = o.split_seed;
    const datasets::TaskData data = datasets::load_task(name, load);
    const fs::path folder = fs::path(o.out) / datasets::task_file_name(info.name);
    fs::create_directories(folder);
    nlohmann::ordered_json meta;
    meta["name"] = info.name;
    meta["kind"] = datasets::task_kind_name(info.kind);
    meta["num_labels"] = info.num_labels;
    meta["label_names"] = info.label_names;
    meta["metrics"] = info.metrics;
    meta["score"] = score_rule_name(info.score);
    meta["eval_splits"] = info.eval_splits;
    meta["splits"] = info.splits;
    meta["split_seed"] = o.split_seed;
    meta["data_dir"] = fs::absolute(o.data_dir).string();
    std::cout << info.name << ":";
    for (const auto& split : info.splits) {
      std::string lines;
      const auto it = data.splits.find(split);
      const size_t n = it == data.splits.end() ? 0 : it->second.size();
      if (it != data.splits.end())
        for (const auto& ex : it->second) lines += example_json(info, ex).dump() + "\n";
      write_file_atomic((folder / (split + ".jsonl")).string(), lines);
      meta["examples"][split] = n;
      std::cout << " " << split << " " << n;
    }
    write_file_atomic((folder / "task.json").string(), meta.dump(2) + "\n");  // last: marks the export complete
    std::cout << " -> " << folder.string() << "\n";
  }
}

void run_list() {
  for (const auto& t : datasets::task_registry()) {
    std::cout << t.name << "  " << datasets::task_kind_name(t.kind) << ", " << t.num_labels << " label"
              << (t.num_labels == 1 ? "" : "s") << ", metrics";
    for (const auto& m : t.metrics) std::cout << " " << m;
    std::cout << ", selected on";
    for (const auto& s : t.eval_splits) std::cout << " " << s;
    std::cout << "\n";
  }
}

void add_task_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("task", "the tasks models are fine-tuned on: list them, export their splits");
  cmd->require_subcommand(1);
  auto o = std::make_shared<TaskCliOptions>();
  auto* list = cmd->add_subcommand("list", "every registered task, its kind, metrics and selection split");
  list->callback([] { run_list(); });
  auto* exp = cmd->add_subcommand("export", "write a task's splits as JSON lines (the examples fine-tuning sees)");
  exp->add_option("--task", o->tasks, "task names (spam, brown-genre, brown-pos, glue:<task>)")
      ->required()
      ->delimiter(',');
  exp->add_option("--data-dir", o->data_dir, "task data directory");
  exp->add_option("--out", o->out, "output folder (one sub-folder per task)")->required();
  exp->add_option("--split-seed", o->split_seed, "seed of the made splits (spam, Brown); fine-tuning uses 0");
  exp->callback([o] { run_export(*o); });
}

FLEXNAS_REGISTER_COMMAND("task", add_task_command);

}  // namespace
}  // namespace flexnas::launch
