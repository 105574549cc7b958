// MLM batches: shapes, masking statistics, special-token rules, determinism across a resume,
// held-out documents. The caches are written directly (ids known), no tokenizer needed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "datasets/mlm.h"
#include "datasets/tokenizer.h"
#include "design_space/error.h"
#include "test_util.h"

namespace flexnas::datasets {
namespace {
using testing::expect_error;
using testing::TempDir;

constexpr int64_t kVocab = 100000;

/// `docs` documents of `per_doc` tokens; every token id is unique (5, 6, 7, ...), so a position's
/// original id tells where it came from.
std::shared_ptr<const TokenCache> unique_cache(const TempDir& dir, int docs, int per_doc) {
  TokenCacheWriter w(kVocab, 1, 2);
  int32_t next = SpecialIds::kCount;
  for (int d = 0; d < docs; ++d) {
    std::vector<int> sentence;
    for (int t = 0; t < per_doc; ++t) sentence.push_back(next++);
    w.add_sentence(sentence);
    w.end_document();
  }
  w.save(dir / "u.tok");
  return TokenCache::open(dir / "u.tok");
}

/// The original ids of a row: inputs with the labels put back.
std::vector<int64_t> original_row(const MlmBatch& b, int64_t row) {
  const int64_t T = b.input_ids.size(1);
  const int64_t* ids = b.input_ids.data_ptr<int64_t>() + row * T;
  const int64_t* labels = b.labels.data_ptr<int64_t>() + row * T;
  std::vector<int64_t> out;
  for (int64_t t = 0; t < T; ++t) out.push_back(labels[t] == -100 ? ids[t] : labels[t]);
  return out;
}

TEST(Mlm, ShapesBlocksAndSpecialTokens) {
  TempDir dir;
  MlmOptions o;
  o.seq_len = 32;
  o.batch_size = 8;
  MlmData data({unique_cache(dir, 100, 150)}, kVocab, o);
  // 95 train documents of 150 tokens + [SEP] each, 30-token bodies
  EXPECT_EQ(data.train_tokens(), 95 * 151);
  EXPECT_EQ(data.eval_tokens(), 5 * 151);
  EXPECT_EQ(data.num_train_blocks(), 95 * 151 / 30);
  const MlmBatch b = data.batch_at(3);
  EXPECT_EQ(b.input_ids.sizes(), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(b.labels.dtype(), torch::kInt64);
  EXPECT_EQ(b.attention_mask.sum().item<int64_t>(), 8 * 32);
  for (int64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(b.input_ids[r][0].item<int64_t>(), SpecialIds::kCls);
    EXPECT_EQ(b.input_ids[r][31].item<int64_t>(), SpecialIds::kSep);
    const auto orig = original_row(b, r);
    // the body is a contiguous run of the stream: consecutive ids, or a document's [SEP]
    int64_t prev = -1;
    for (int64_t t = 1; t < 31; ++t) {
      if (orig[t] == SpecialIds::kSep) {
        EXPECT_EQ(b.labels[r][t].item<int64_t>(), -100) << "[SEP] is never predicted";
        continue;
      }
      if (prev >= 0) EXPECT_EQ(orig[t], prev + 1);
      prev = orig[t];
    }
  }
}

TEST(Mlm, MaskingStatistics) {
  TempDir dir;
  MlmOptions o;
  o.seq_len = 64;
  o.batch_size = 32;
  MlmData data({unique_cache(dir, 40, 2000)}, kVocab, o);
  int64_t eligible = 0, selected = 0, as_mask = 0, as_random = 0, kept = 0;
  for (int64_t step = 0; step < 50; ++step) {
    const MlmBatch b = data.batch_at(step);
    for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
      const auto orig = original_row(b, r);
      for (int64_t t = 0; t < o.seq_len; ++t) {
        const int64_t in = b.input_ids.data_ptr<int64_t>()[r * o.seq_len + t];
        const int64_t lab = b.labels.data_ptr<int64_t>()[r * o.seq_len + t];
        const bool special = orig[t] < SpecialIds::kCount;
        if (special) {
          ASSERT_EQ(lab, -100) << "special tokens are never selected";
          ASSERT_EQ(in, orig[t]);
          continue;
        }
        ++eligible;
        if (lab == -100) {
          ASSERT_EQ(in, orig[t]);
          continue;
        }
        ++selected;
        if (in == SpecialIds::kMask) ++as_mask;
        else if (in == lab) ++kept;
        else {
          ++as_random;
          ASSERT_GE(in, SpecialIds::kCount) << "random replacements are never special";
          ASSERT_LT(in, kVocab);
        }
      }
    }
  }
  ASSERT_GT(eligible, 90000);
  const double frac = static_cast<double>(selected) / static_cast<double>(eligible);
  EXPECT_NEAR(frac, 0.15, 0.005);
  EXPECT_NEAR(static_cast<double>(as_mask) / static_cast<double>(selected), 0.8, 0.015);
  EXPECT_NEAR(static_cast<double>(as_random) / static_cast<double>(selected), 0.1, 0.01);
  EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(selected), 0.1, 0.01);
}

TEST(Mlm, DeterministicAcrossResume) {
  TempDir dir;
  MlmOptions o;
  o.seq_len = 16;
  o.batch_size = 4;
  const auto cache = unique_cache(dir, 30, 40);
  MlmData first({cache}, kVocab, o);
  std::vector<MlmBatch> run;
  for (int64_t s = 0; s < 40; ++s) run.push_back(first.batch_at(s));  // crosses several epochs
  MlmData resumed({cache}, kVocab, o);  // a new process resuming at step 25
  for (int64_t s = 25; s < 40; ++s) {
    const MlmBatch b = resumed.batch_at(s);
    EXPECT_TRUE(torch::equal(b.input_ids, run[s].input_ids)) << s;
    EXPECT_TRUE(torch::equal(b.labels, run[s].labels)) << s;
    EXPECT_TRUE(torch::equal(b.attention_mask, run[s].attention_mask)) << s;
  }
  EXPECT_TRUE(torch::equal(first.batch_at(7).input_ids, run[7].input_ids)) << "random access";
  // each epoch visits every block exactly once
  const int64_t n = first.num_train_blocks();
  std::set<std::vector<int64_t>> starts;  // the original rows of epoch 0 (ids are unique, so rows are)
  for (int64_t k = 0; k < n; ++k) {
    const MlmBatch& b = run[static_cast<size_t>(k / o.batch_size)];
    starts.insert(original_row(b, k % o.batch_size));
  }
  EXPECT_EQ(static_cast<int64_t>(starts.size()), n);
  // another seed: other batches
  o.seed = 2;
  MlmData other({cache}, kVocab, o);
  EXPECT_FALSE(torch::equal(other.batch_at(0).input_ids, run[0].input_ids));
}

TEST(Mlm, HeldOutDocumentsAndFixedEvalMasks) {
  TempDir dir;
  MlmOptions o;
  o.seq_len = 16;
  o.batch_size = 4;
  o.eval_fraction = 0.2;
  MlmData data({unique_cache(dir, 50, 30)}, kVocab, o);
  std::set<int64_t> eval_docs, train_docs;
  ASSERT_GT(data.num_eval_batches(), 0);
  for (int64_t i = 0; i < data.num_eval_batches(); ++i) {
    const MlmBatch b = data.eval_batch(i);
    EXPECT_TRUE(torch::equal(b.input_ids, data.eval_batch(i).input_ids)) << "eval masks are fixed";
    for (int64_t r = 0; r < b.input_ids.size(0); ++r)
      for (int64_t id : original_row(b, r))
        if (id >= SpecialIds::kCount) eval_docs.insert((id - SpecialIds::kCount) / 30);
  }
  for (int64_t s = 0; s < 30; ++s) {
    const MlmBatch b = data.batch_at(s);
    for (int64_t r = 0; r < b.input_ids.size(0); ++r)
      for (int64_t id : original_row(b, r))
        if (id >= SpecialIds::kCount) train_docs.insert((id - SpecialIds::kCount) / 30);
  }
  EXPECT_EQ(eval_docs.size(), 10u);
  for (int64_t d : eval_docs) EXPECT_EQ(train_docs.count(d), 0u) << "document " << d << " in both splits";
}

TEST(Mlm, ShortCorpusIsPaddedAndBadOptionsAreNamed) {
  TempDir dir;
  MlmOptions o;
  o.seq_len = 64;
  o.batch_size = 2;
  o.eval_fraction = 0;
  MlmData data({unique_cache(dir, 1, 10)}, kVocab, o);
  const MlmBatch b = data.batch_at(0);
  EXPECT_EQ(b.attention_mask[0].sum().item<int64_t>(), 13);  // [CLS] 10 [SEP] [SEP]
  EXPECT_EQ(b.input_ids[0][20].item<int64_t>(), SpecialIds::kPad);
  EXPECT_EQ(b.labels[0][20].item<int64_t>(), -100);
  o.seq_len = 4;
  expect_error<ConfigError>([&] { MlmData({unique_cache(dir, 1, 10)}, kVocab, o); }, {"--seq-len: 4"});
  o.seq_len = 64;
  o.mask_prob = 1.5;
  expect_error<ConfigError>([&] { MlmData({unique_cache(dir, 1, 10)}, kVocab, o); }, {"--mask-prob"});
  o.mask_prob = 0.15;
  expect_error<ConfigError>([&] { MlmData({unique_cache(dir, 1, 10)}, 1000, o); }, {"exceeds the model's 1000"});
}

}  // namespace
}  // namespace flexnas::datasets
