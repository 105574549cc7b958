#pragma once
// The task registry: every task a model can be fine-tuned and scored on, and its loader.
//   spam          SpamAssassin e-mails, spam (1) vs ham (0)            sequence classification, 2 labels
//   brown-genre   Brown text chunks -> one of 15 genres                sequence classification, 15 labels
//   brown-pos     Brown sentences, one coarse POS tag per word         token classification, 12 labels
//   glue:<task>   cola mnli mrpc qnli qqp rte sst2 stsb wnli from the GLUE TSVs (stsb: regression)
// Splits: spam and Brown have none, so flexnas makes seeded stratified ones (80/10/10; Brown by whole
// text, stratified by genre, so the sentences of one text never straddle splits). GLUE: train + dev
// (mnli: dev_matched + dev_mismatched); GLUE test labels are not public.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/metrics.h"
#include "datasets/splits.h"
#include "datasets/task_info.h"

namespace flexnas::datasets {

const char* task_kind_name(TaskKind kind);  // "sequence_classification" | "regression" | "token_classification"

/// Every registered task, in a fixed order.
const std::vector<TaskInfo>& task_registry();
/// The task named `name`; ConfigError listing the allowed names otherwise (`flag` names the option).
const TaskInfo& task_info(const std::string& name, const std::string& flag = "--task");

/// One example. Sequence tasks: `segments` (1 or 2 texts) and `label` or `target`. Token
/// classification: `words` and one `word_labels` entry per word.
struct Example {
  std::vector<std::string> segments;
  int64_t label = 0;     // class id
  double target = 0.0;   // regression target
  std::vector<std::string> words;
  std::vector<int64_t> word_labels;
};

struct TaskLoadOptions {
  std::string data_dir = "data";     // holds brown/, spam-assassin/, glue/
  uint64_t split_seed = 0;           // seed of the made splits (spam, Brown)
  SplitFractions fractions;          // dev/test fractions of the made splits
  int64_t genre_chunk_words = 80;    // brown-genre: an example is consecutive sentences up to this many words
};

struct TaskData {
  TaskInfo info;
  std::map<std::string, std::vector<Example>> splits;  // "train", "dev", "test" / mnli "dev_matched", ...
};

/// Suites a --task value may name: "glue" (every GLUE task whose files are under <data-dir>/glue)
/// and "flexnas" (spam, brown-genre, brown-pos).
const std::vector<std::string>& suite_names();
/// True for a suite name.
bool is_suite(const std::string& name);
/// True for a registered task or a suite name.
bool is_task_or_suite(const std::string& name);
/// "spam, brown-genre, ...; suites: glue, flexnas", for messages.
std::string task_and_suite_names();
/// A task name made safe for files and folders: ':' -> '-' (glue:cola -> glue-cola).
std::string task_file_name(const std::string& name);

/// The tasks that `names` (task names and suite names, in order) stand for, each once. An unknown
/// name is a ConfigError naming `flag` and listing the tasks and suites; a suite whose data is
/// missing says which task's files are missing and where it looked.
std::vector<std::string> expand_tasks(const std::vector<std::string>& names, const std::string& data_dir,
                                      const std::string& flag = "--task");

/// "" when the files `task` reads exist under `data_dir`, else what is missing and where.
std::string missing_task_data(const std::string& task, const std::string& data_dir);

/// Loads a task's examples from `options.data_dir`. Deterministic in (data, options).
TaskData load_task(const std::string& name, const TaskLoadOptions& options = {});

/// The document-level split of the Brown corpus used by brown-genre and brown-pos (and available to
/// keep pretraining off their dev/test texts): one Split per text in cats.txt order.
std::vector<Split> brown_document_splits(const std::vector<std::string>& genres, uint64_t seed,
                                         const SplitFractions& fractions = {});

}  // namespace flexnas::datasets
