#pragma once
// GLUE TSV files as distributed (gluebenchmark.com download, e.g. via download_glue_data.py):
// <glue dir>/<Task dir>/train.tsv and dev.tsv (MNLI: dev_matched.tsv, dev_mismatched.tsv). Fields are
// tab-separated with no quoting. Columns (by header name; CoLA has no header):
//   cola  (no header) source, label, original label, sentence      -> sentence; label 0/1
//   sst2  sentence, label                                           -> label 0/1
//   mrpc  Quality, #1 ID, #2 ID, #1 String, #2 String                -> label = Quality 0/1
//   qqp   id, qid1, qid2, question1, question2, is_duplicate         -> label 0/1
//   stsb  ..., sentence1, sentence2, score                           -> target in [0, 5]
//   mnli  ..., sentence1, sentence2, ..., gold_label                 -> entailment 0, neutral 1, contradiction 2
//   qnli  index, question, sentence, label                           -> entailment 0, not_entailment 1
//   rte   index, sentence1, sentence2, label                         -> entailment 0, not_entailment 1
//   wnli  index, sentence1, sentence2, label                         -> label 0/1
#include <cstdint>
#include <string>
#include <vector>

namespace flexnas::datasets {

struct GlueExample {
  std::vector<std::string> segments;  // 1 or 2 texts
  int64_t label = 0;                  // classification tasks
  double target = 0.0;                // stsb
};

/// The nine task names: cola mnli mrpc qnli qqp rte sst2 stsb wnli.
const std::vector<std::string>& glue_tasks();
/// The distribution's directory name of a task ("CoLA", "SST-2", "STS-B", ...).
std::string glue_directory(const std::string& task);
/// The split files of a task: {"train", "dev"}, or {"train", "dev_matched", "dev_mismatched"} for mnli.
std::vector<std::string> glue_splits(const std::string& task);
/// Reads one TSV file of `task`. Errors name file:line, the column and what was found.
std::vector<GlueExample> read_glue_tsv(const std::string& path, const std::string& task);

}  // namespace flexnas::datasets
