// Token caches and the tokenizer client (SentencePiece runs in flexnas-tokenize; this binary links
// neither SentencePiece nor LibTorch).
#include <gtest/gtest.h>

#include <filesystem>

#include "datasets/token_cache.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "test_util.h"

namespace flexnas::datasets {
namespace {
using testing::expect_error;
using testing::TempDir;
using testing::write_text;

TEST(TokenCache, RoundTripAndValidation) {
  TempDir dir;
  TokenCacheWriter w(100, 0xabc, 0xdef);
  w.add_sentence({5, 6, 7});
  w.add_sentence({});
  w.end_document();
  w.add_sentence({99});
  w.end_document();
  w.end_document();  // an empty document
  w.save(dir / "c.tok");
  const auto c = TokenCache::open(dir / "c.tok");
  EXPECT_EQ(c->num_tokens(), 4u);
  EXPECT_EQ(c->num_sentences(), 3u);
  EXPECT_EQ(c->num_documents(), 3u);
  EXPECT_EQ(c->header().tokenizer_hash, 0xabcu);
  EXPECT_EQ(c->header().source_hash, 0xdefu);
  EXPECT_EQ(std::vector<int32_t>(c->sentence(0).begin(), c->sentence(0).end()), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(c->sentence(1).size, 0u);
  EXPECT_EQ(c->document_begin(1), 2u);
  EXPECT_EQ(c->document_end(2), 3u);
  EXPECT_EQ(c->document_token_begin(1), 3u);
  EXPECT_EQ(c->document_token_end(1), 4u);
  // truncated
  const std::string bytes = read_file(dir / "c.tok");
  write_text(dir / "t.tok", bytes.substr(0, bytes.size() - 8));
  expect_error<Error>([&] { TokenCache::open(dir / "t.tok"); }, {"t.tok: error: token cache: size", "truncated"});
  write_text(dir / "s.tok", bytes.substr(0, 10));
  expect_error<Error>([&] { TokenCache::open(dir / "s.tok"); }, {"shorter than the 64-byte header"});
  std::string bad = bytes;
  bad[0] = 'X';
  write_text(dir / "m.tok", bad);
  expect_error<Error>([&] { TokenCache::open(dir / "m.tok"); }, {"bad magic"});
  bad = bytes;
  bad[64 + 4 * 3] = 100;  // token 3 := 100, outside a vocabulary of 100
  write_text(dir / "v.tok", bad);
  expect_error<Error>([&] { TokenCache::open(dir / "v.tok"); }, {"token 3 has id 100 outside the vocabulary [0, 100)"});
}

TEST(TokenCache, Hashes) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);  // FNV-1a 64 test vector
  EXPECT_EQ(hex64(0xabcULL), "0000000000000abc");
}

class TokenizerFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_text(*dir_ / "corpus.txt", testing::synthetic_corpus(20, 60));
    TokenizerTrainOptions o;
    o.corpus = {*dir_ / "corpus.txt"};
    o.vocab_size = 80;
    o.out = *dir_ / "spm.model";
    train_tokenizer(o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* TokenizerFixture::dir_ = nullptr;

TEST_F(TokenizerFixture, TrainsWithFixedSpecialIds) {
  const Tokenizer tok(*dir_ / "spm.model", *dir_ / "cache");
  EXPECT_EQ(tok.vocab_size(), 80);
  EXPECT_EQ(tok.hash(), file_hash(*dir_ / "spm.model"));
  // the same seed gives the same model
  TokenizerTrainOptions o;
  o.corpus = {*dir_ / "corpus.txt"};
  o.vocab_size = 80;
  o.out = *dir_ / "again.model";
  train_tokenizer(o);
  EXPECT_EQ(file_hash(*dir_ / "again.model"), tok.hash());
}

TEST_F(TokenizerFixture, EncodesOnceIntoCaches) {
  const Tokenizer tok(*dir_ / "spm.model", *dir_ / "cache2");
  const auto c = tok.encode_text_file(*dir_ / "corpus.txt");
  EXPECT_EQ(c->num_documents(), 20u);
  EXPECT_EQ(c->num_sentences(), 20u * 60);
  EXPECT_GT(c->num_tokens(), c->num_sentences() * 4);
  for (uint64_t i = 0; i < c->num_tokens(); ++i) {
    ASSERT_GE(c->tokens()[i], SpecialIds::kCount) << "the encoder never emits special ids";
    ASSERT_LT(c->tokens()[i], 80);
  }
  const std::string path = c->path();
  const auto mtime = std::filesystem::last_write_time(path);
  const auto again = tok.encode_text_file(*dir_ / "corpus.txt");
  EXPECT_EQ(again->path(), path);
  EXPECT_EQ(std::filesystem::last_write_time(path), mtime) << "a cached corpus is not tokenized again";
  // a changed input gets a new cache
  write_text(*dir_ / "corpus2.txt", "the jury said .\n");
  const auto small = tok.encode_text_file(*dir_ / "corpus2.txt");
  EXPECT_NE(small->path(), path);
  EXPECT_EQ(small->num_sentences(), 1u);
  // segments: one document per example, one sentence per segment; newlines inside a segment are spaces
  const auto seg = tok.encode_segments("pairs", {{"the jury said", "a city\nreport"}, {"money"}, {""}});
  ASSERT_EQ(seg->num_documents(), 3u);
  EXPECT_EQ(seg->document_end(0) - seg->document_begin(0), 2u);
  EXPECT_EQ(seg->document_end(1) - seg->document_begin(1), 1u);
  EXPECT_EQ(seg->sentence(3).size, 0u);
  const auto words = tok.encode_words("words", {{"the", "jury"}, {"said", "money", "."}});
  ASSERT_EQ(words->num_documents(), 2u);
  EXPECT_EQ(words->num_sentences(), 5u);
  for (uint64_t w = 0; w < 5; ++w) EXPECT_GE(words->sentence(w).size, 1u);
}

TEST_F(TokenizerFixture, ErrorsComeBackLocated) {
  TokenizerTrainOptions o;
  o.corpus = {*dir_ / "no-such-corpus.txt"};
  o.vocab_size = 100;
  o.out = *dir_ / "x.model";
  expect_error<ConfigError>([&] { train_tokenizer(o); }, {"no-such-corpus.txt: error: --corpus: cannot open file"});
  o.corpus = {*dir_ / "corpus.txt"};
  o.model_type = "wordpiece";
  expect_error<ConfigError>([&] { train_tokenizer(o); }, {"--model-type: 'wordpiece'; allowed: unigram, bpe"});
  o.model_type = "unigram";
  o.vocab_size = 100000;  // far more pieces than the corpus has
  expect_error<ConfigError>([&] { train_tokenizer(o); }, {"--vocab-size"});
  write_text(*dir_ / "fake.model", "not a model");
  expect_error<ConfigError>([&] { Tokenizer(*dir_ / "fake.model", *dir_ / "cache3"); }, {"fake.model", "not a SentencePiece model"});
  expect_error<ConfigError>([&] { Tokenizer(*dir_ / "none.model", *dir_ / "cache3"); }, {"none.model", "file not found"});
  const Tokenizer tok(*dir_ / "spm.model", *dir_ / "cache3");
  expect_error<ConfigError>([&] { tok.encode_text_file(*dir_ / "none.txt"); }, {"none.txt", "file not found"});
}

}  // namespace
}  // namespace flexnas::datasets
