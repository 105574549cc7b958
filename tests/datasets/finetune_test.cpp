// Fine-tuning batches through the real tokenizer path (flexnas-tokenize + cache): per-batch padding,
// pairs joined with [SEP], token types, label layouts, deterministic shuffles.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "datasets/finetune_data.h"
#include "design_space/error.h"
#include "test_util.h"

namespace flexnas::datasets {
namespace {
using testing::TempDir;
using testing::write_text;

class FinetuneFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_text(*dir_ / "corpus.txt", testing::synthetic_corpus(10, 60, 3));
    TokenizerTrainOptions o;
    o.corpus = {*dir_ / "corpus.txt"};
    o.vocab_size = 70;
    o.out = *dir_ / "spm.model";
    train_tokenizer(o);
    tok_ = new Tokenizer(*dir_ / "spm.model", *dir_ / "cache");
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete dir_;
  }
  static TempDir* dir_;
  static Tokenizer* tok_;
};
TempDir* FinetuneFixture::dir_ = nullptr;
Tokenizer* FinetuneFixture::tok_ = nullptr;

std::vector<Example> sentences(int n, int64_t labels) {
  std::vector<Example> out;
  for (int i = 0; i < n; ++i) {
    Example e;
    std::string text;
    for (int w = 0; w <= i % 7; ++w) text += w ? " the jury" : "a city";
    e.segments = {text};
    e.label = i % labels;
    out.push_back(e);
  }
  return out;
}

TEST_F(FinetuneFixture, SingleSentencesPaddedPerBatch) {
  FinetuneOptions o;
  o.batch_size = 4;
  o.max_length = 64;
  const auto examples = sentences(10, 15);
  const TaskDataset ds(task_info("brown-genre"), examples, *tok_, "genre-test", o);
  EXPECT_EQ(ds.size(), 10);
  EXPECT_EQ(ds.num_batches(), 3);
  const TaskBatch b = ds.batch(-1, 0);  // file order
  EXPECT_EQ(b.example_ids, (std::vector<int64_t>{0, 1, 2, 3}));
  int64_t longest = 0;
  for (int64_t e = 0; e < 4; ++e) longest = std::max<int64_t>(longest, static_cast<int64_t>(ds.example_ids(e).size()));
  EXPECT_EQ(b.input_ids.size(1), longest) << "padded to the batch's longest example, not to max_length";
  EXPECT_LT(longest, 64);
  EXPECT_EQ(b.labels.sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(b.labels[3].item<int64_t>(), 3);
  for (int64_t r = 0; r < 4; ++r) {
    const auto& ids = ds.example_ids(r);
    EXPECT_EQ(ids.front(), SpecialIds::kCls);
    EXPECT_EQ(ids.back(), SpecialIds::kSep);
    EXPECT_EQ(b.attention_mask[r].sum().item<int64_t>(), static_cast<int64_t>(ids.size()));
    EXPECT_EQ(b.token_type_ids[r].sum().item<int64_t>(), 0);
    for (int64_t t = static_cast<int64_t>(ids.size()); t < longest; ++t) EXPECT_EQ(b.input_ids[r][t].item<int64_t>(), SpecialIds::kPad);
  }
  EXPECT_EQ(ds.batch(-1, 2).input_ids.size(0), 2);  // the last batch is smaller
}

TEST_F(FinetuneFixture, ShufflesBySeedAndEpoch) {
  FinetuneOptions o;
  o.batch_size = 5;
  const auto examples = sentences(20, 2);
  const TaskDataset ds(task_info("spam"), examples, *tok_, "spam-test", o);
  auto order = [&](int64_t epoch) {
    std::vector<int64_t> all;
    for (int64_t i = 0; i < ds.num_batches(); ++i)
      for (int64_t e : ds.batch(epoch, i).example_ids) all.push_back(e);
    return all;
  };
  EXPECT_EQ(order(0), order(0));
  EXPECT_NE(order(0), order(1));
  const auto o0 = order(0);
  EXPECT_EQ(std::set<int64_t>(o0.begin(), o0.end()).size(), 20u);
  o.seed = 7;
  const TaskDataset other(task_info("spam"), examples, *tok_, "spam-test", o);
  std::vector<int64_t> first;
  for (int64_t e : other.batch(0, 0).example_ids) first.push_back(e);
  EXPECT_NE(first, std::vector<int64_t>(o0.begin(), o0.begin() + 5));
}

TEST_F(FinetuneFixture, PairsRegressionAndTruncation) {
  std::vector<Example> pairs;
  for (int i = 0; i < 3; ++i) {
    Example e;
    e.segments = {"the jury said", i == 2 ? std::string(400, 'a') : "a city report"};
    e.target = 0.5 * i;
    pairs.push_back(e);
  }
  FinetuneOptions o;
  o.max_length = 24;
  const TaskDataset ds(task_info("glue:stsb"), pairs, *tok_, "stsb-test", o);
  EXPECT_EQ(ds.truncated(), 1);
  const TaskBatch b = ds.batch(-1, 0);
  EXPECT_EQ(b.labels.dtype(), torch::kFloat32);
  EXPECT_FLOAT_EQ(b.labels[2].item<float>(), 1.0f);
  EXPECT_EQ(b.input_ids.size(1), 24);
  const auto& ids = ds.example_ids(0);
  int seps = 0;
  size_t first_sep = 0;
  for (size_t t = 0; t < ids.size(); ++t)
    if (ids[t] == SpecialIds::kSep && seps++ == 0) first_sep = t;
  EXPECT_EQ(seps, 2);
  for (size_t t = 0; t < ids.size(); ++t)
    EXPECT_EQ(b.token_type_ids[0][static_cast<int64_t>(t)].item<int64_t>(), t > first_sep ? 1 : 0);
  // longest-first truncation keeps the short first segment whole
  const auto& cut = ds.example_ids(2);
  EXPECT_EQ(cut.size(), 24u);
  EXPECT_EQ(std::vector<int32_t>(cut.begin(), cut.begin() + static_cast<long>(first_sep + 1)),
            std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<long>(first_sep + 1)));
}

// A long single text keeps its beginning and its end (head+tail, the default), or its beginning
// alone (head); the label counts serve the balanced class weights.
TEST_F(FinetuneFixture, HeadTailTruncationKeepsBothEndsAndLabelsAreCounted) {
  std::vector<Example> texts(3);
  std::string longer;
  for (int w = 0; w < 40; ++w) longer += (w ? " " : "") + std::string(w < 20 ? "city" : "jury");
  texts[0].segments = {"a city report"};
  texts[1].segments = {longer};
  texts[2].segments = {"the jury said"};
  texts[0].label = 1;
  FinetuneOptions whole, head_tail, head;
  whole.max_length = 400;
  head_tail.max_length = head.max_length = 12;
  head.truncation = Truncation::kHead;
  const TaskDataset full(task_info("spam"), texts, *tok_, "trunc-full", whole);
  const TaskDataset both(task_info("spam"), texts, *tok_, "trunc-both", head_tail);
  const TaskDataset first(task_info("spam"), texts, *tok_, "trunc-head", head);
  const auto& all = full.example_ids(1);  // [CLS] pieces... [SEP]
  const std::vector<int32_t> pieces(all.begin() + 1, all.end() - 1);
  ASSERT_GT(pieces.size(), 10u);
  // budget 10: 5 from the head, 5 from the tail
  std::vector<int32_t> expect_both = {SpecialIds::kCls};
  expect_both.insert(expect_both.end(), pieces.begin(), pieces.begin() + 5);
  expect_both.insert(expect_both.end(), pieces.end() - 5, pieces.end());
  expect_both.push_back(SpecialIds::kSep);
  EXPECT_EQ(both.example_ids(1), expect_both);
  std::vector<int32_t> expect_head = {SpecialIds::kCls};
  expect_head.insert(expect_head.end(), pieces.begin(), pieces.begin() + 10);
  expect_head.push_back(SpecialIds::kSep);
  EXPECT_EQ(first.example_ids(1), expect_head);
  EXPECT_EQ(both.example_ids(0), full.example_ids(0));  // short texts untouched
  EXPECT_EQ(both.truncated(), 1);
  EXPECT_EQ(full.label_counts(), (std::vector<int64_t>{2, 1}));
}

TEST_F(FinetuneFixture, TokenClassificationLabelsFirstPieces) {
  Example e;
  e.words = {"The", "jury", "reporters", "said", "."};
  e.word_labels = {5, 0, 0, 1, 10};
  const TaskDataset ds(task_info("brown-pos"), {e}, *tok_, "pos-test");
  const TaskBatch b = ds.batch(-1, 0);
  const int64_t T = b.input_ids.size(1);
  EXPECT_EQ(b.labels.sizes(), (std::vector<int64_t>{1, T}));
  std::vector<int64_t> scored;
  for (int64_t t = 0; t < T; ++t)
    if (b.labels[0][t].item<int64_t>() != -100) scored.push_back(b.labels[0][t].item<int64_t>());
  EXPECT_EQ(scored, e.word_labels) << "one label per word, on its first piece";
  EXPECT_EQ(b.labels[0][0].item<int64_t>(), -100);
  EXPECT_EQ(b.labels[0][T - 1].item<int64_t>(), -100);
  EXPECT_GT(T, 7) << "some word splits into several pieces";
}

TEST_F(FinetuneFixture, AccumulatesPredictionsPerKind) {
  const auto examples = sentences(3, 2);  // labels 0 1 0
  const TaskDataset cls(task_info("spam"), examples, *tok_, "acc-test");
  const TaskBatch b = cls.batch(-1, 0);
  Predictions p;
  accumulate_predictions(p, cls.task(), torch::tensor({{0.1, 0.9}, {0.2, 0.8}, {0.7, 0.3}}), b);
  EXPECT_EQ(p.predicted, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(p.gold, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_NEAR(compute_metrics(cls.task(), p).at("accuracy"), 2.0 / 3, 1e-12);

  Example w;
  w.words = {"the", "jury"};
  w.word_labels = {5, 0};
  const TaskDataset pos(task_info("brown-pos"), {w}, *tok_, "acc-pos");
  const TaskBatch pb = pos.batch(-1, 0);
  auto logits = torch::zeros({1, pb.input_ids.size(1), 12});
  logits.index_put_({0, torch::indexing::Slice(), 5}, 1.0);  // always predicts DET
  Predictions q;
  accumulate_predictions(q, pos.task(), logits, pb);
  EXPECT_EQ(q.gold, (std::vector<int64_t>{5, 0}));
  EXPECT_EQ(q.predicted, (std::vector<int64_t>{5, 5}));

  Example r;
  r.segments = {"a", "b"};
  r.target = 2.5;
  const TaskDataset reg(task_info("glue:stsb"), {r, r}, *tok_, "acc-reg");
  Predictions v;
  accumulate_predictions(v, reg.task(), torch::tensor({{2.0f}, {3.0f}}), reg.batch(-1, 0));
  EXPECT_EQ(v.predicted_values, (std::vector<double>{2.0, 3.0}));
  EXPECT_EQ(v.gold_values, (std::vector<double>{2.5, 2.5}));
}

TEST_F(FinetuneFixture, BadOptionsAreNamed) {
  FinetuneOptions o;
  o.max_length = 2;
  testing::expect_error<ConfigError>([&] { TaskDataset(task_info("spam"), sentences(2, 2), *tok_, "x", o); },
                                     {"--max-length: 2"});
  Example pair;
  pair.segments = {"one"};
  testing::expect_error<ConfigError>([&] { TaskDataset(task_info("glue:rte"), {pair}, *tok_, "x"); },
                                     {"glue:rte", "1 text segments, expected 2"});
}

}  // namespace
}  // namespace flexnas::datasets
