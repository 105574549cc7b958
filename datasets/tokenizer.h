#pragma once
// The one tokenizer flexnas uses for pretraining and fine-tuning (spec defect 32): a SentencePiece
// model with fixed special ids. SentencePiece never runs in this process: Debian's libsentencepiece
// and LibTorch crash when loaded together (PLATFORM.md), so training and encoding run in the helper
// executable `flexnas-tokenize` (next to `flexnas`, linked without LibTorch) and results come back as
// token caches (token_cache.h) that are memory-mapped. Each input is tokenized once per tokenizer:
// caches are keyed by the tokenizer's hash and the input's content hash.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/token_cache.h"

namespace flexnas::datasets {

/// Special ids, the same in every flexnas tokenizer (flexnas-tokenize checks them after training).
struct SpecialIds {
  static constexpr int32_t kPad = 0;   // <pad>: padding, never attended, never predicted
  static constexpr int32_t kUnk = 1;   // <unk>
  static constexpr int32_t kCls = 2;   // <s>: first token of every sequence ([CLS])
  static constexpr int32_t kSep = 3;   // </s>: end of a sequence / between segments ([SEP])
  static constexpr int32_t kMask = 4;  // [MASK]: a control symbol the encoder never produces
  static constexpr int32_t kCount = 5; // ids below kCount are special
};

struct TokenizerTrainOptions {
  std::vector<std::string> corpus;       // plain-text files (one sentence per line)
  int64_t vocab_size = 8000;             // including the 5 special ids
  std::string out;                       // model path, e.g. spm.model
  std::string model_type = "unigram";    // unigram | bpe
  uint64_t seed = 1;                     // SentencePiece's random seed (sampling of sentences)
  double character_coverage = 0.9995;    // fraction of characters covered by the vocabulary
  int64_t max_sentences = 0;             // train on at most this many sentences (0 = all)
  int64_t threads = 1;                   // trainer threads (1 = bit-reproducible)
};

/// Path of flexnas-tokenize: $FLEXNAS_TOKENIZE, else next to /proc/self/exe, else <exe dir>/../bin
/// or ../../bin (test binaries), else the build tree's bin/. Throws Error if none exists.
std::string tokenize_tool_path();

/// Runs flexnas-tokenize with `args`; its ConfigError comes back as ConfigError, other failures
/// (crash, exit 1) as Error with its message.
void run_tokenize_tool(const std::vector<std::string>& args);

/// Trains a tokenizer (in flexnas-tokenize) and writes `options.out` atomically.
void train_tokenizer(const TokenizerTrainOptions& options);

/// A trained tokenizer as seen from the LibTorch side: its hash, vocabulary size and cached encodings.
class Tokenizer {
 public:
  /// `cache_dir` holds the token caches (created when needed). Throws ConfigError if `model` is missing.
  Tokenizer(std::string model, std::string cache_dir);

  const std::string& model_path() const { return model_; }
  const std::string& cache_dir() const { return cache_dir_; }
  /// fnv1a64 of the model file (names its caches).
  uint64_t hash() const { return hash_; }
  int64_t vocab_size() const { return vocab_size_; }

  /// A plain-text file (one sentence per line, blank lines between documents): sentences = lines,
  /// documents = blank-line-separated blocks. Tokenized on first use, then read from the cache.
  std::shared_ptr<const TokenCache> encode_text_file(const std::string& path) const;
  /// Examples of 1..k text segments each: document e = example e, sentence = segment. `name` names the
  /// cache file (e.g. "spam-train"). Newlines and tabs inside a segment are encoded as spaces.
  std::shared_ptr<const TokenCache> encode_segments(const std::string& name,
                                                    const std::vector<std::vector<std::string>>& examples) const;
  /// Pre-split words: document e = sentence e of `sentences`, sentence w = word w (so the pieces of
  /// every word are known, for token classification).
  std::shared_ptr<const TokenCache> encode_words(const std::string& name,
                                                 const std::vector<std::vector<std::string>>& sentences) const;

 private:
  std::shared_ptr<const TokenCache> encode_file(const std::string& input, const std::string& format,
                                                const std::string& name, uint64_t source_hash) const;
  std::shared_ptr<const TokenCache> encode_content(const std::string& name, const std::string& content,
                                                   const std::string& format) const;
  std::string model_, cache_dir_;
  uint64_t hash_ = 0;
  int64_t vocab_size_ = 0;
};

}  // namespace flexnas::datasets
