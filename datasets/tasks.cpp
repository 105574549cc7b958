#include "datasets/tasks.h"

#include <algorithm>
#include <filesystem>

#include "datasets/corpus.h"
#include "datasets/glue.h"
#include "design_space/error.h"
#include "design_space/log.h"

namespace flexnas::datasets {
namespace {

std::vector<TaskInfo> make_registry() {
  std::vector<TaskInfo> r;
  const std::vector<std::string> made = {"train", "dev", "test"};
  r.push_back({"spam", TaskKind::kSequenceClassification, 2, {"ham", "spam"}, 1, {"accuracy", "f1"},
               ScoreRule::kMeanAccuracyF1, {"dev"}, made});
  // E-mails are long (median ~300 pieces with an 8k vocabulary): 256 tokens (head + tail) lifted
  // dev accuracy from 0.962-0.967 to 0.979 over 128 on two small models (docs/training.md).
  r.back().max_length = 256;
  r.push_back({"brown-genre", TaskKind::kSequenceClassification, 15, brown_genres(), 1, {"accuracy", "macro_f1"},
               ScoreRule::kAccuracy, {"dev"}, made});
  r.push_back({"brown-pos", TaskKind::kTokenClassification, 12, coarse_pos_tags(), 1, {"accuracy"},
               ScoreRule::kAccuracy, {"dev"}, made});
  const std::vector<std::string> glue = {"train", "dev"};
  const std::vector<std::string> binary = {"0", "1"}, nli2 = {"entailment", "not_entailment"};
  r.push_back({"glue:cola", TaskKind::kSequenceClassification, 2, binary, 1, {"mcc", "accuracy"}, ScoreRule::kMcc,
               {"dev"}, glue});
  r.push_back({"glue:mnli", TaskKind::kSequenceClassification, 3, {"entailment", "neutral", "contradiction"}, 2,
               {"accuracy"}, ScoreRule::kAccuracy, {"dev_matched", "dev_mismatched"},
               {"train", "dev_matched", "dev_mismatched"}});
  r.push_back({"glue:mrpc", TaskKind::kSequenceClassification, 2, binary, 2, {"accuracy", "f1"},
               ScoreRule::kMeanAccuracyF1, {"dev"}, glue});
  r.push_back({"glue:qnli", TaskKind::kSequenceClassification, 2, nli2, 2, {"accuracy"}, ScoreRule::kAccuracy, {"dev"},
               glue});
  r.push_back({"glue:qqp", TaskKind::kSequenceClassification, 2, binary, 2, {"accuracy", "f1"},
               ScoreRule::kMeanAccuracyF1, {"dev"}, glue});
  r.push_back({"glue:rte", TaskKind::kSequenceClassification, 2, nli2, 2, {"accuracy"}, ScoreRule::kAccuracy, {"dev"},
               glue});
  r.push_back({"glue:sst2", TaskKind::kSequenceClassification, 2, binary, 1, {"accuracy"}, ScoreRule::kAccuracy,
               {"dev"}, glue});
  r.push_back({"glue:stsb", TaskKind::kRegression, 1, {}, 2, {"pearson", "spearman"},
               ScoreRule::kMeanPearsonSpearman, {"dev"}, glue});
  r.push_back({"glue:wnli", TaskKind::kSequenceClassification, 2, binary, 2, {"accuracy"}, ScoreRule::kAccuracy,
               {"dev"}, glue});
  return r;
}

std::string allowed_names() {
  std::string s;
  for (const auto& t : task_registry()) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

TaskData load_spam(const TaskInfo& info, const TaskLoadOptions& o) {
  const auto emails = read_spam_assassin(o.data_dir + "/spam-assassin");
  std::vector<int64_t> strata;
  for (const auto& e : emails) strata.push_back(e.spam ? 1 : 0);
  const auto assign = stratified_split(strata, mix_seed({o.split_seed, 0x5ba3}), o.fractions);
  TaskData data{info, {}};
  for (size_t i = 0; i < emails.size(); ++i) {
    Example ex;
    ex.segments = {emails[i].text};
    ex.label = strata[i];
    data.splits[split_name(assign[i])].push_back(std::move(ex));
  }
  return data;
}

TaskData load_brown_task(const TaskInfo& info, const TaskLoadOptions& o) {
  if (o.genre_chunk_words <= 0)
    throw ConfigError("error: genre_chunk_words: " + std::to_string(o.genre_chunk_words) + "; must be positive");
  const auto docs = read_brown(o.data_dir + "/brown");
  std::vector<std::string> genres;
  for (const auto& d : docs) genres.push_back(d.genre);
  const auto assign = brown_document_splits(genres, o.split_seed, o.fractions);
  const auto& names = brown_genres();
  TaskData data{info, {}};
  for (size_t d = 0; d < docs.size(); ++d) {
    auto& out = data.splits[split_name(assign[d])];
    const int64_t genre = std::find(names.begin(), names.end(), docs[d].genre) - names.begin();
    if (info.kind == TaskKind::kTokenClassification) {
      for (const auto& sentence : docs[d].sentences) {
        Example ex;
        for (const auto& w : sentence) {
          ex.words.push_back(w.word);
          ex.word_labels.push_back(coarse_pos_id(w.tag));
        }
        out.push_back(std::move(ex));
      }
      continue;
    }
    // brown-genre: consecutive sentences up to genre_chunk_words words (a longer sentence alone).
    std::string text;
    int64_t words = 0;
    auto flush = [&] {
      if (words == 0) return;
      Example ex;
      ex.segments = {text};
      ex.label = genre;
      out.push_back(std::move(ex));
      text.clear();
      words = 0;
    };
    for (const auto& sentence : docs[d].sentences) {
      const auto n = static_cast<int64_t>(sentence.size());
      if (words > 0 && words + n > o.genre_chunk_words) flush();
      text += (text.empty() ? "" : " ") + brown_sentence_text(sentence);
      words += n;
    }
    flush();
  }
  return data;
}

TaskData load_glue(const TaskInfo& info, const TaskLoadOptions& o) {
  const std::string task = info.name.substr(5);
  const std::string dir = o.data_dir + "/glue/" + glue_directory(task);
  TaskData data{info, {}};
  for (const auto& split : glue_splits(task)) {
    auto& out = data.splits[split];
    for (auto& g : read_glue_tsv(dir + "/" + split + ".tsv", task)) {
      Example ex;
      ex.segments = std::move(g.segments);
      ex.label = g.label;
      ex.target = g.target;
      out.push_back(std::move(ex));
    }
  }
  return data;
}

}  // namespace

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::kSequenceClassification: return "sequence_classification";
    case TaskKind::kRegression: return "regression";
    case TaskKind::kTokenClassification: return "token_classification";
  }
  return "?";
}

const std::vector<TaskInfo>& task_registry() {
  static const std::vector<TaskInfo> registry = make_registry();
  return registry;
}

const TaskInfo& task_info(const std::string& name, const std::string& flag) {
  for (const auto& t : task_registry())
    if (t.name == name) return t;
  throw ConfigError("error: " + flag + ": unknown task '" + name + "'; allowed: " + allowed_names());
}

std::vector<Split> brown_document_splits(const std::vector<std::string>& genres, uint64_t seed,
                                         const SplitFractions& fractions) {
  const auto& names = brown_genres();
  std::vector<int64_t> strata;
  for (const auto& g : genres) strata.push_back(std::find(names.begin(), names.end(), g) - names.begin());
  return stratified_split(strata, mix_seed({seed, 0xb5}), fractions);
}

const std::vector<std::string>& suite_names() {
  static const std::vector<std::string> names = {"glue", "flexnas"};
  return names;
}

bool is_suite(const std::string& name) {
  return std::find(suite_names().begin(), suite_names().end(), name) != suite_names().end();
}

bool is_task_or_suite(const std::string& name) {
  if (is_suite(name)) return true;
  for (const auto& t : task_registry())
    if (t.name == name) return true;
  return false;
}

std::string task_and_suite_names() {
  std::string suites;
  for (const auto& s : suite_names()) suites += (suites.empty() ? "" : ", ") + s;
  return allowed_names() + "; suites: " + suites;
}

std::string task_file_name(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (c == ':') c = '-';
  return out;
}

std::string missing_task_data(const std::string& task, const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (task == "spam") {
    files = {data_dir + "/spam-assassin"};
  } else if (task == "brown-genre" || task == "brown-pos") {
    files = {data_dir + "/brown/cats.txt"};
  } else {
    const std::string t = task.substr(task.find(':') + 1);
    for (const auto& split : glue_splits(t)) files.push_back(data_dir + "/glue/" + glue_directory(t) + "/" + split + ".tsv");
  }
  std::string missing;
  for (const auto& f : files)
    if (!fs::exists(f)) missing += (missing.empty() ? "" : ", ") + f;
  return missing.empty() ? "" : task + ": missing " + missing;
}

std::vector<std::string> expand_tasks(const std::vector<std::string>& names, const std::string& data_dir,
                                      const std::string& flag) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const auto& name : names) {
    if (name == "flexnas") {
      std::string missing;
      for (const char* t : {"spam", "brown-genre", "brown-pos"}) {
        const std::string m = missing_task_data(t, data_dir);
        if (!m.empty()) missing += (missing.empty() ? "" : "; ") + m;
        add(t);
      }
      if (!missing.empty())
        throw ConfigError("error: " + flag + ": suite flexnas: " + missing + " (scripts/fetch-data.sh " + data_dir + ")");
    } else if (name == "glue") {
      size_t found = 0;
      for (const auto& t : glue_tasks())
        if (missing_task_data("glue:" + t, data_dir).empty()) {
          add("glue:" + t);
          ++found;
        }
      if (found == 0)
        throw ConfigError("error: " + flag + ": suite glue: no GLUE task has its files under " + data_dir +
                          "/glue (looked for CoLA/train.tsv, SST-2/train.tsv, ... MNLI/dev_matched.tsv)");
    } else {
      if (!is_task_or_suite(name))
        throw ConfigError("error: " + flag + ": unknown task or suite '" + name + "'; allowed: " + task_and_suite_names());
      add(name);
    }
  }
  if (out.empty()) throw ConfigError("error: " + flag + ": no task given");
  return out;
}

TaskData load_task(const std::string& name, const TaskLoadOptions& o) {
  const TaskInfo& info = task_info(name);
  TaskData data;
  if (name == "spam") data = load_spam(info, o);
  else if (name == "brown-genre" || name == "brown-pos") data = load_brown_task(info, o);
  else data = load_glue(info, o);
  for (const auto& split : info.splits) data.splits[split];  // every split present, maybe empty
  std::string sizes;
  for (const auto& split : info.splits) sizes += " " + split + " " + std::to_string(data.splits[split].size());
  LOG_DEBUG("task ", name, ":", sizes);
  return data;
}

}  // namespace flexnas::datasets
