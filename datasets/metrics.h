#pragma once
// Evaluation metrics and the one per-task score definition flexnas uses everywhere (spec defect 24:
// the reference averaged in one place and took the max in another). Torch-free.
//
// Task score (docs/data.md):
//   cola                 MCC
//   stsb                 mean of Pearson and Spearman
//   mrpc, qqp, spam      mean of accuracy and F1 (positive class 1)
//   mnli                 mean of matched and mismatched accuracy (combine_split_scores)
//   everything else      accuracy (token accuracy for brown-pos)
// GLUE-style score: arithmetic mean of the task scores of the nine GLUE tasks (WNLI included, as in the
// reference and the GLUE leaderboard); glue_score requires all nine.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/task_info.h"

namespace flexnas::datasets {

double accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold);
/// F1 of class `positive` (0 when there are no true positives).
double f1_score(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold, int64_t positive = 1);
/// Unweighted mean of the per-class F1 over classes 0..num_classes-1 that occur in gold or predicted.
double macro_f1(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold, int64_t num_classes);
/// Matthews correlation coefficient (multi-class R_K form; the usual MCC for two classes; 0 when undefined).
double matthews_corrcoef(const std::vector<int64_t>& predicted, const std::vector<int64_t>& gold, int64_t num_classes = 2);
/// Pearson correlation (0 when a side is constant).
double pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman rank correlation: Pearson of the ranks, ties get their average rank.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// Predictions of one evaluation split: class ids (classification; for token classification one entry
/// per labelled token) or values (regression).
struct Predictions {
  std::vector<int64_t> predicted, gold;
  std::vector<double> predicted_values, gold_values;
};

using MetricSet = std::map<std::string, double>;  // e.g. {"accuracy": 0.9, "f1": 0.8}

/// The task's metrics (TaskInfo::metrics) on one split.
MetricSet compute_metrics(const TaskInfo& task, const Predictions& p);
/// The task score of one split from its metrics (definition above).
double task_score(const TaskInfo& task, const MetricSet& metrics);
/// A task's score over its evaluation splits (TaskInfo::eval_splits): the mean of the split scores
/// (only mnli has two). `scores` maps split name -> task_score; every eval split must be present.
double combine_split_scores(const TaskInfo& task, const std::map<std::string, double>& scores);
/// A suite's score, as GLUE aggregates: the mean of its tasks' scores (each task's score is the
/// mean of its metrics per its ScoreRule, averaged over its evaluation splits). Error when empty.
double suite_score(const std::map<std::string, double>& task_scores);
/// GLUE-style score: mean of the nine GLUE task scores, keyed "cola", ..., "wnli" or "glue:cola", ...
double glue_score(const std::map<std::string, double>& task_scores);

}  // namespace flexnas::datasets
