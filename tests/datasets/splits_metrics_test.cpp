// Seeded splits, the portable RNG, metrics against hand-computed values, task registry and scores.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "datasets/corpus.h"
#include "datasets/glue.h"
#include "datasets/metrics.h"
#include "datasets/splits.h"
#include "datasets/tasks.h"
#include "design_space/error.h"
#include "test_util.h"

namespace flexnas::datasets {
namespace {
using testing::expect_error;
using testing::TempDir;
using testing::write_text;

TEST(Rng, PortableAndUniform) {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
  // SplitMix64 reference value for seed 0 (first output).
  EXPECT_EQ(Rng(0).next(), 0xe220a8397b1dcdafULL);
  std::vector<int> counts(10, 0);
  Rng r(3);
  for (int i = 0; i < 100000; ++i) counts[r.below(10)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
  const auto p = permutation(1000, 5);
  EXPECT_EQ(std::set<int64_t>(p.begin(), p.end()).size(), 1000u);
  EXPECT_EQ(p, permutation(1000, 5));
  EXPECT_NE(p, permutation(1000, 6));
}

TEST(Splits, StratifiedAndDeterministic) {
  std::vector<int64_t> strata;
  for (int i = 0; i < 1000; ++i) strata.push_back(i % 3 == 0 ? 1 : 0);  // 334 of class 1, 666 of class 0
  const auto a = stratified_split(strata, 11);
  EXPECT_EQ(a, stratified_split(strata, 11));
  EXPECT_NE(a, stratified_split(strata, 12));
  int count[2][3] = {};
  for (size_t i = 0; i < a.size(); ++i) count[strata[i]][static_cast<int>(a[i])]++;
  EXPECT_EQ(count[0][1], 67);  // round(666 * 0.1)
  EXPECT_EQ(count[0][2], 67);
  EXPECT_EQ(count[1][1], 33);  // round(334 * 0.1)
  EXPECT_EQ(count[1][2], 33);
  // a small stratum still gets one dev and one test item
  const auto small = stratified_split({5, 5, 5}, 1);
  EXPECT_EQ(std::set<Split>(small.begin(), small.end()).size(), 3u);
  expect_error<ConfigError>([&] { stratified_split(strata, 1, {0.6, 0.5}); }, {"split fractions"});
}

TEST(Metrics, HandComputed) {
  // gold 1 1 1 0 0 0 0 1 ; pred 1 0 1 0 1 0 0 1 -> TP 3, FN 1, FP 1, TN 3
  const std::vector<int64_t> g = {1, 1, 1, 0, 0, 0, 0, 1}, p = {1, 0, 1, 0, 1, 0, 0, 1};
  EXPECT_DOUBLE_EQ(accuracy(p, g), 0.75);
  EXPECT_DOUBLE_EQ(f1_score(p, g), 0.75);                // 2*3 / (6 + 1 + 1)
  EXPECT_DOUBLE_EQ(matthews_corrcoef(p, g), 0.5);        // (3*3 - 1*1) / sqrt(4*4*4*4)
  EXPECT_DOUBLE_EQ(macro_f1(p, g, 2), 0.75);
  // unbalanced: TP 1, FN 2, FP 0, TN 2 -> MCC = (1*2 - 0*2)/sqrt(1*3*2*4) = 2/sqrt(24)
  EXPECT_NEAR(matthews_corrcoef({1, 0, 0, 0, 0}, {1, 1, 1, 0, 0}), 2.0 / std::sqrt(24.0), 1e-12);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 1, 1}, {1, 0, 1}), 0.0);  // constant prediction: undefined -> 0
  EXPECT_DOUBLE_EQ(f1_score({0, 0}, {1, 0}), 0.0);
  // 3 classes: f1(0) = 1, f1(1) = 2*2/(4+1+0) = 0.8, f1(2) = 0
  EXPECT_NEAR(macro_f1({0, 1, 1, 1}, {0, 1, 2, 1}, 3), (1.0 + 0.8 + 0.0) / 3, 1e-12);
  // Pearson of (1,2,3,4) and (2,4,5,9): deviations (-1.5,-.5,.5,1.5), (-3,-1,0,4): sxy 11, sxx 5, syy 26
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 5, 9}), 11.0 / std::sqrt(5.0 * 26.0), 1e-12);
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3}, {3, 2, 1}), -1.0);
  // Spearman: monotone -> 1; ties get average ranks: x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4)
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {1, 10, 100, 1000}), 1.0);
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5.0), 1e-12);
}

TEST(Tasks, Registry) {
  EXPECT_EQ(task_registry().size(), 12u);
  EXPECT_EQ(task_info("spam").num_labels, 2);
  EXPECT_EQ(task_info("brown-genre").num_labels, 15);
  EXPECT_EQ(task_info("brown-pos").kind, TaskKind::kTokenClassification);
  EXPECT_EQ(task_info("brown-pos").num_labels, 12);
  EXPECT_EQ(task_info("glue:stsb").kind, TaskKind::kRegression);
  EXPECT_EQ(task_info("glue:stsb").num_labels, 1);
  EXPECT_EQ(task_info("glue:mnli").num_labels, 3);
  EXPECT_EQ(task_info("glue:mnli").eval_splits, (std::vector<std::string>{"dev_matched", "dev_mismatched"}));
  EXPECT_EQ(task_info("glue:mrpc").num_segments, 2);
  EXPECT_EQ(task_info("glue:cola").num_segments, 1);
  expect_error<ConfigError>([] { task_info("glue:colaa"); }, {"error: --task: unknown task 'glue:colaa'; allowed: spam, brown-genre"});
}

TEST(Tasks, ScoresOneDefinition) {
  // defect 24: one definition (means), never the max
  Predictions p;
  p.predicted = {1, 0, 1, 0, 1, 0, 0, 1};
  p.gold = {1, 1, 1, 0, 0, 0, 0, 1};
  const auto mrpc = compute_metrics(task_info("glue:mrpc"), p);
  EXPECT_DOUBLE_EQ(task_score(task_info("glue:mrpc"), mrpc), (0.75 + 0.75) / 2);
  const auto cola = compute_metrics(task_info("glue:cola"), p);
  EXPECT_DOUBLE_EQ(task_score(task_info("glue:cola"), cola), 0.5);
  EXPECT_DOUBLE_EQ(cola.at("accuracy"), 0.75);
  Predictions r;
  r.predicted_values = {1, 2, 2, 3};
  r.gold_values = {1, 2, 3, 4};
  const auto sts = compute_metrics(task_info("glue:stsb"), r);
  EXPECT_NEAR(task_score(task_info("glue:stsb"), sts), (sts.at("pearson") + sts.at("spearman")) / 2, 1e-15);
  EXPECT_NEAR(sts.at("spearman"), 4.5 / std::sqrt(22.5), 1e-12);
  EXPECT_DOUBLE_EQ(combine_split_scores(task_info("glue:mnli"), {{"dev_matched", 0.8}, {"dev_mismatched", 0.7}}), 0.75);
  std::map<std::string, double> scores;
  double sum = 0;
  for (size_t i = 0; i < glue_tasks().size(); ++i) {
    scores[(i % 2 ? "glue:" : "") + glue_tasks()[i]] = 0.1 * static_cast<double>(i);
    sum += 0.1 * static_cast<double>(i);
  }
  EXPECT_NEAR(glue_score(scores), sum / 9, 1e-12);
  scores.erase("wnli");
  scores.erase("glue:wnli");
  expect_error<Error>([&] { glue_score(scores); }, {"missing: wnli"});
}

// A suite's score as GLUE aggregates: each task's score from its own metrics (CoLA: MCC; MRPC: the
// mean of accuracy and F1; STS-B: the mean of Pearson and Spearman; MNLI: the mean of its two dev
// splits), then the plain mean over the tasks. Hand-computed:
//   cola 0.5, mrpc (0.75 + 0.75) / 2 = 0.75, mnli (0.8 + 0.7) / 2 = 0.75 -> (0.5 + 0.75 + 0.75) / 3.
TEST(Tasks, SuiteScoreIsTheMeanOfTaskScoresByHand) {
  Predictions p;
  p.predicted = {1, 0, 1, 0, 1, 0, 0, 1};
  p.gold = {1, 1, 1, 0, 0, 0, 0, 1};
  std::map<std::string, double> scores;
  scores["glue:cola"] = task_score(task_info("glue:cola"), compute_metrics(task_info("glue:cola"), p));
  scores["glue:mrpc"] = task_score(task_info("glue:mrpc"), compute_metrics(task_info("glue:mrpc"), p));
  scores["glue:mnli"] = combine_split_scores(task_info("glue:mnli"), {{"dev_matched", 0.8}, {"dev_mismatched", 0.7}});
  EXPECT_DOUBLE_EQ(suite_score(scores), (0.5 + 0.75 + 0.75) / 3);
  expect_error<Error>([] { suite_score({}); }, {"at least one task score"});
}

TEST(Tasks, ExpandsSuitesAndListsAndNamesWhatIsMissing) {
  testing::TempDir dir;
  const std::string data = dir.str();
  // GLUE: only the tasks whose files exist.
  for (const char* f : {"/glue/SST-2/train.tsv", "/glue/SST-2/dev.tsv", "/glue/RTE/train.tsv", "/glue/RTE/dev.tsv",
                        "/glue/MNLI/train.tsv"})  // MNLI lacks its dev files: not part of the suite
    testing::write_text(data + f, "x\n");
  EXPECT_EQ(expand_tasks({"glue"}, data), (std::vector<std::string>{"glue:rte", "glue:sst2"}));
  EXPECT_EQ(expand_tasks({"glue:sst2", "glue", "glue:sst2"}, data), (std::vector<std::string>{"glue:sst2", "glue:rte"}));
  EXPECT_EQ(missing_task_data("glue:mnli", data),
            "glue:mnli: missing " + data + "/glue/MNLI/dev_matched.tsv, " + data + "/glue/MNLI/dev_mismatched.tsv");
  expect_error<ConfigError>([&] { expand_tasks({"flexnas"}, data); },
                            {"error: --task: suite flexnas: spam: missing " + data + "/spam-assassin",
                             "brown-genre: missing " + data + "/brown/cats.txt"});
  expect_error<ConfigError>([&] { expand_tasks({"glue"}, data + "/nothing"); },
                            {"suite glue: no GLUE task has its files under " + data + "/nothing/glue"});
  expect_error<ConfigError>([&] { expand_tasks({"spam", "sst2"}, data, "evaluator.task"); },
                            {"error: evaluator.task: unknown task or suite 'sst2'", "glue:sst2", "suites: glue, flexnas"});
}

TEST(Tasks, LoadSpamAndBrown) {
  TaskLoadOptions o;
  o.data_dir = testing::test_data("");
  const auto spam = load_task("spam", o);
  size_t total = 0;
  for (const auto& [split, ex] : spam.splits) total += ex.size();
  EXPECT_EQ(total, 6u);
  EXPECT_EQ(spam.splits.size(), 3u);
  const auto pos = load_task("brown-pos", o);
  total = 0;
  for (const auto& [split, ex] : pos.splits)
    for (const auto& e : ex) {
      EXPECT_EQ(e.words.size(), e.word_labels.size());
      ++total;
    }
  EXPECT_EQ(total, 4u);
}

TEST(Tasks, BrownSplitsAreByDocument) {
  // 30 texts in 2 genres, 3 sentences each; every sentence names its text, so a chunk's text tells
  // where it came from.
  TempDir dir;
  std::string cats;
  for (int d = 0; d < 30; ++d) {
    const std::string id = (d < 20 ? "ca" : "cb") + std::to_string(10 + d);
    cats += id + (d < 20 ? " news\n" : " editorial\n");
    std::string text;
    for (int s = 0; s < 3; ++s) text += "\n\t" + id + "/np word/nn " + std::to_string(s) + "/cd ./.\n";
    write_text(dir / ("data/brown/" + id), text);
  }
  write_text(dir / "data/brown/cats.txt", cats);
  TaskLoadOptions o;
  o.data_dir = dir / "data";
  o.genre_chunk_words = 4;  // one sentence per example
  const auto genre = load_task("brown-genre", o);
  const auto pos = load_task("brown-pos", o);
  std::map<std::string, std::string> split_of;
  for (const auto* data : {&genre, &pos})
    for (const auto& [split, examples] : data->splits)
      for (const auto& e : examples) {
        const std::string id = data == &genre ? e.segments[0].substr(0, 4) : e.words[0];
        auto [it, inserted] = split_of.emplace(id, split);
        EXPECT_EQ(it->second, split) << id << " straddles splits";
      }
  EXPECT_EQ(split_of.size(), 30u);
  EXPECT_EQ(genre.splits.at("dev").size(), 3u * 3);   // 2 news + 1 editorial texts
  EXPECT_EQ(genre.splits.at("test").size(), 3u * 3);
  EXPECT_EQ(genre.splits.at("train").size(), 24u * 3);
  const auto again = load_task("brown-genre", o);
  EXPECT_EQ(again.splits.at("dev")[0].segments, genre.splits.at("dev")[0].segments);
  o.split_seed = 1;
  const auto other = load_task("brown-genre", o);
  bool differs = false;
  for (size_t i = 0; i < other.splits.at("dev").size(); ++i)
    differs |= other.splits.at("dev")[i].segments != genre.splits.at("dev")[i].segments;
  EXPECT_TRUE(differs);
}

TEST(Tasks, LoadGlue) {
  TempDir dir;
  testing::write_glue(dir / "data/glue");
  TaskLoadOptions o;
  o.data_dir = dir / "data";
  for (const auto& t : task_registry()) {
    if (t.name.rfind("glue:", 0) != 0) continue;
    const auto data = load_task(t.name, o);
    for (const auto& split : t.splits) {
      ASSERT_FALSE(data.splits.at(split).empty()) << t.name << " " << split;
      for (const auto& e : data.splits.at(split)) EXPECT_EQ(static_cast<int64_t>(e.segments.size()), t.num_segments);
    }
  }
  expect_error<ConfigError>([&] { o.data_dir = dir / "nowhere"; load_task("glue:rte", o); }, {"RTE/train.tsv", "cannot open"});
}

}  // namespace
}  // namespace flexnas::datasets
