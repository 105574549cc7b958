#pragma once
// What flexnas knows about a task: its kind, labels, reported metrics and score rule (TaskInfo).
// Its own header so that the metrics (metrics.h: how a TaskInfo is scored) and the task registry
// (tasks.h: every TaskInfo and its loader) both build on it without including each other.
#include <cstdint>
#include <string>
#include <vector>

namespace flexnas::datasets {

enum class TaskKind { kSequenceClassification, kRegression, kTokenClassification };

/// How a task's score follows from its metrics (metrics.h task_score).
enum class ScoreRule { kAccuracy, kMcc, kMeanAccuracyF1, kMeanPearsonSpearman };

struct TaskInfo {
  std::string name;                      // "spam", "brown-genre", "glue:cola", ...
  TaskKind kind = TaskKind::kSequenceClassification;
  int64_t num_labels = 2;                // 1 for regression
  std::vector<std::string> label_names;  // label id -> name (empty for regression)
  int64_t num_segments = 1;              // texts per example (2: sentence pairs joined with [SEP])
  std::vector<std::string> metrics;      // reported metrics (metrics.h names)
  ScoreRule score = ScoreRule::kAccuracy;
  std::vector<std::string> eval_splits;  // splits whose mean task score is the task's score
  std::vector<std::string> splits;       // all splits the loader returns
  int64_t max_length = 128;              // default tokens per example (--max-len) for fine-tuning
};

/// True when the score punishes a model that favours the majority classes (F1, MCC): the
/// fine-tuning default then weights the loss by inverse class frequency; accuracy-scored tasks
/// train on the plain loss (docs/training.md, "How the defaults were chosen").
inline bool score_rewards_minority_classes(ScoreRule rule) {
  return rule == ScoreRule::kMcc || rule == ScoreRule::kMeanAccuracyF1;
}

}  // namespace flexnas::datasets
