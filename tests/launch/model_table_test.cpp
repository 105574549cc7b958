// launch/report/model_table: the results table of `flexnas report` on hand-written metrics.json
// files and a hand-filled campaign store: parsing one task and a suite, the GLUE-style suite score
// against a hand computation, the Markdown and CSV golden tables, folder discovery, the top-K
// trials of a campaign, and the located errors.
#include "launch/report/model_table.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"

using namespace flexnas;
using namespace flexnas::launch;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("flexnas_model_table_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

ModelRow row_from(const std::string& name, const std::string& metrics_json) {
  ModelRow row;
  row.name = name;
  row.tasks = finetune_task_results(ConfigNode::load_string(metrics_json, name + ".json"));
  return row;
}

// One task as `flexnas finetune --task spam` writes it (abridged: epochs and run left out).
const char* kSpam = R"({
  "kind": "finetune",
  "task": "spam",
  "score": 0.925,
  "best_epoch": 2,
  "collapsed": false,
  "dev": {"accuracy": 0.95, "f1": 0.9, "score": 0.925, "loss": 0.2, "predicted_classes": 2, "collapsed": false},
  "test": {"accuracy": 0.5, "f1": 0.5, "score": 0.5, "loss": 0.9, "predicted_classes": 2, "collapsed": false}
})";

// A GLUE suite with hand-computed task scores, each the mean of its metrics (datasets/metrics.h):
//   mnli: (0.80 + 0.70) / 2 = 0.75 (matched and mismatched accuracy)   mrpc: (0.80 + 0.90) / 2 = 0.85
//   stsb: (0.60 + 0.40) / 2 = 0.50 (Pearson, Spearman)                  cola: MCC 0.30
// GLUE score: (0.75 + 0.85 + 0.50 + 0.30) / 4 = 0.60.
const char* kGlue = R"({
  "kind": "finetune_suite",
  "tasks": {
    "glue:cola": {"kind": "finetune", "task": "glue:cola", "score": 0.3, "collapsed": false,
                  "dev": {"mcc": 0.3, "accuracy": 0.7, "score": 0.3}},
    "glue:mnli": {"kind": "finetune", "task": "glue:mnli", "score": 0.75, "collapsed": false,
                  "dev_matched": {"accuracy": 0.8, "score": 0.8}, "dev_mismatched": {"accuracy": 0.7, "score": 0.7}},
    "glue:mrpc": {"kind": "finetune", "task": "glue:mrpc", "score": 0.85, "collapsed": false,
                  "dev": {"accuracy": 0.8, "f1": 0.9, "score": 0.85}},
    "glue:stsb": {"kind": "finetune", "task": "glue:stsb", "score": 0.5, "collapsed": false,
                  "dev": {"pearson": 0.6, "spearman": 0.4, "score": 0.5}}
  },
  "score": 0.6,
  "collapsed": false
})";

// The same suite without STS-B, and CoLA collapsed.
const char* kGluePartial = R"({
  "kind": "finetune_suite",
  "tasks": {
    "glue:cola": {"score": 0.0, "collapsed": true, "dev": {"mcc": 0.0, "accuracy": 0.69, "score": 0.0}},
    "glue:mnli": {"score": 0.5, "collapsed": false, "dev_matched": {"accuracy": 0.5}, "dev_mismatched": {"accuracy": 0.5}},
    "glue:mrpc": {"score": 0.7, "collapsed": false, "dev": {"accuracy": 0.6, "f1": 0.8}}
  },
  "score": 0.4
})";

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

TEST(ModelTable, OneTaskHasItsScoreAndSelectionSplitMetrics) {
  const auto tasks = finetune_task_results(ConfigNode::load_string(kSpam, "m.json"));
  ASSERT_EQ(tasks.size(), 1u);
  const TaskResult& r = tasks.at("spam");
  ASSERT_TRUE(r.score.has_value());
  EXPECT_DOUBLE_EQ(*r.score, 0.925);
  EXPECT_FALSE(r.collapsed);
  // dev only (the selection split), the task's metrics only (no loss or class count).
  ASSERT_EQ(r.metrics.size(), 2u);
  EXPECT_EQ(r.metrics[0].first, "dev accuracy");
  EXPECT_DOUBLE_EQ(r.metrics[0].second, 0.95);
  EXPECT_EQ(r.metrics[1].first, "dev f1");
}

TEST(ModelTable, SuiteScoreIsTheMeanOfTaskScoresAsGlueAggregates) {
  const ModelRow row = row_from("glue", kGlue);
  ASSERT_EQ(row.tasks.size(), 4u);
  const auto& mnli = row.tasks.at("glue:mnli").metrics;
  ASSERT_EQ(mnli.size(), 2u);
  EXPECT_EQ(mnli[0].first, "dev_matched accuracy");
  EXPECT_EQ(mnli[1].first, "dev_mismatched accuracy");
  const std::vector<std::string> tasks = table_tasks({row});
  EXPECT_EQ(tasks, (std::vector<std::string>{"glue:cola", "glue:mnli", "glue:mrpc", "glue:stsb"}));  // registry order
  ASSERT_TRUE(row_suite_score(row, tasks).has_value());
  EXPECT_NEAR(*row_suite_score(row, tasks), 0.60, 1e-12);
  // Over a subset of tasks: the mean of those.
  EXPECT_NEAR(*row_suite_score(row, {"glue:mnli", "glue:stsb"}), 0.625, 1e-12);
  // A model lacking a task of the table has no suite score (GLUE gives none without every task).
  EXPECT_FALSE(row_suite_score(row_from("partial", kGluePartial), tasks).has_value());
}

TEST(ModelTable, MarkdownGolden) {
  std::vector<ModelRow> rows = {row_from("runs/a|b", kGlue), row_from("runs/partial", kGluePartial)};
  rows[0].parameters = 1234567;
  EXPECT_EQ(format_model_table(rows),
            "| model | parameters | score | glue:cola | glue:mnli | glue:mrpc | glue:stsb |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n"
            "| runs/a\\|b | 1,234,567 | 0.6000 | 0.3000 | 0.7500 | 0.8500 | 0.5000 |\n"
            "| runs/partial | | | 0.0000* | 0.5000 | 0.7000 | |\n"
            "\n"
            "score: the mean of the task scores (as GLUE aggregates); a task's score is the mean of its metrics on its "
            "selection split (datasets/metrics.h). parameters: the base model as the search counts it.\n"
            "An empty task cell: the model has no result for that task; its score then stays empty.\n"
            "*: collapsed, the model predicts one class for every example of a selection split.\n");
}

TEST(ModelTable, CsvGolden) {
  std::vector<ModelRow> rows = {row_from("runs/spam, \"long\"", kSpam), row_from("runs/partial", kGluePartial)};
  rows[0].parameters = 1234567;
  ModelTableOptions o;
  o.format = TableFormat::kCsv;
  o.metrics = true;
  EXPECT_EQ(format_model_table(rows, o),
            "model,parameters,score,spam,spam dev accuracy,spam dev f1,glue:cola,glue:cola dev mcc,glue:cola dev accuracy,"
            "glue:mnli,glue:mnli dev_matched accuracy,glue:mnli dev_mismatched accuracy,glue:mrpc,glue:mrpc dev accuracy,"
            "glue:mrpc dev f1,collapsed\n"
            "\"runs/spam, \"\"long\"\"\",1234567,,0.925000,0.950000,0.900000,,,,,,,,,,\n"
            "runs/partial,,,,,,0.000000,0.000000,0.690000,0.500000,0.500000,0.500000,0.700000,0.600000,0.800000,glue:cola\n");
}

TEST(ModelTable, FoldersOneModelOrSeveralAndTheirErrors) {
  const fs::path root = scratch("folders");
  for (const char* d : {"many/spam", "many/glue", "many/pretrained", "many/empty", "bad"}) fs::create_directories(root / d);
  write_file_atomic((root / "many/spam/metrics.json").string(), kSpam);
  write_file_atomic((root / "many/glue/metrics.json").string(), kGlue);
  write_file_atomic((root / "many/pretrained/metrics.json").string(), R"({"kind": "pretrain", "steps": 3})");
  const std::string many = (root / "many").string();
  const std::vector<ModelRow> rows = read_model_dirs({many, many + "/spam"});
  ASSERT_EQ(rows.size(), 3u);  // glue, spam (name order; the pretrained folder skipped), then spam as given
  EXPECT_EQ(rows[0].name, many + "/glue");
  EXPECT_EQ(rows[1].name, many + "/spam");
  EXPECT_EQ(rows[2].name, many + "/spam");
  EXPECT_FALSE(rows[0].parameters.has_value());  // no config.json beside the metrics: an empty cell

  EXPECT_EQ(error_of([&] { read_model_dirs({many + "/empty"}); }),
            many + "/empty: error: no fine-tuning metrics: expected " + many +
                "/empty/metrics.json written by flexnas finetune (kind 'finetune' (flexnas finetune --task T) or "
                "'finetune_suite' (a list or suite of tasks)), or sub-folders holding one (none of its 0 sub-folders does)");
  EXPECT_EQ(error_of([&] { read_model_dirs({many + "/pretrained"}); }),
            many + "/pretrained/metrics.json:1:10: error: kind: 'pretrain' is not a fine-tuning result; expected "
                   "'finetune' (flexnas finetune --task T) or 'finetune_suite' (a list or suite of tasks)");
  EXPECT_EQ(error_of([&] { read_model_dirs({many + "/nothing"}); }), many + "/nothing: error: no such directory");
  write_file_atomic((root / "bad/metrics.json").string(), "{\"kind\": \"finetune\", \"task\": \"spam\", \"score\": \"high\"}");
  EXPECT_EQ(error_of([&] { read_model_dirs({(root / "bad").string()}); }),
            (root / "bad/metrics.json").string() + ":1:47: error: score: expected a number, got 'high'");
}

TEST(ModelTable, CampaignTopTrialsWithTheirTaskMetrics) {
  const fs::path dir = scratch("campaign");
  {
    CampaignStore store(campaign_db_path(dir.string()));
    store.set_meta("config", R"({"objective": {"metric": "score", "maximise": true}})");
    auto trial = [&](int64_t id, std::optional<double> value, const std::string& status, const std::string& metrics) {
      TrialRow t;
      t.id = id;
      t.index = id;
      t.hash = std::string(64, char('a' + id));
      t.status = status;
      t.value = value;
      t.score = value;
      t.parameters = 1000 * (id + 1);
      t.metrics = metrics;
      store.put_trial(t);
    };
    trial(0, 0.6, trial_status::kCompleted, kGlue);
    trial(1, 0.925, trial_status::kCompleted, kSpam);
    trial(2, 0.99, trial_status::kFailed, "{}");
    trial(3, 0.6, trial_status::kCompleted, R"({"score": 0.6})");  // a command evaluator's metrics: no tasks
    trial(4, 0.1, trial_status::kCompleted, kSpam);
  }
  const std::vector<ModelRow> rows = read_campaign_rows(dir.string(), 3);
  ASSERT_EQ(rows.size(), 3u);  // best first; the failed trial left out; ties to the earlier trial
  EXPECT_EQ(rows[0].name, "trial 1");
  EXPECT_EQ(rows[1].name, "trial 0");
  EXPECT_EQ(rows[2].name, "trial 3");
  EXPECT_EQ(rows[1].extra, (std::vector<std::pair<std::string, std::string>>{
                               {"rank", "2"}, {"hash", "aaaaaaaaaaaa"}, {"objective (score)", "0.6"}}));
  EXPECT_EQ(*rows[0].parameters, 2000);
  EXPECT_EQ(rows[1].tasks.size(), 4u);
  EXPECT_TRUE(rows[2].tasks.empty());
  ModelTableOptions o;
  o.format = TableFormat::kCsv;
  EXPECT_EQ(format_model_table(rows, o),
            "rank,hash,objective (score),model,parameters,score,spam,glue:cola,glue:mnli,glue:mrpc,glue:stsb,collapsed\n"
            "1,bbbbbbbbbbbb,0.925,trial 1,2000,,0.925000,,,,,\n"
            "2,aaaaaaaaaaaa,0.6,trial 0,1000,,,0.300000,0.750000,0.850000,0.500000,\n"
            "3,dddddddddddd,0.6,trial 3,4000,,,,,,,\n");
  EXPECT_EQ(error_of([&] { read_campaign_rows((dir / "none").string(), 3); }),
            (dir / "none").string() + ": error: no campaign here: expected " + (dir / "none/campaign.db").string() +
                " (a flexnas search directory)");
}

}  // namespace
