#pragma once
// A corpus tokenized once per tokenizer: a binary file of int32 token ids that training memory-maps.
//
// File layout (little-endian, docs/data.md):
//   TokenCacheHeader (64 bytes)
//   int32    tokens[num_tokens]                  all sentences back to back, no special tokens
//   (zero padding to a multiple of 8 bytes)
//   uint64   sentence_offsets[num_sentences + 1] sentence s = tokens[off[s], off[s+1])
//   uint64   document_offsets[num_documents + 1] document d = sentences [doc[d], doc[d+1])
// "Sentence" and "document" follow the input format: a plain text's lines and blank-line-separated
// documents; for a task's examples, one document per example with one sentence per text segment; for
// words (token classification), one sentence per word and one document per sentence of words.
//
// Torch-free: written by flexnas-tokenize, read (mmap) by the LibTorch side.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flexnas::datasets {

inline constexpr char kTokenCacheMagic[8] = {'F', 'L', 'X', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kTokenCacheVersion = 1;

struct TokenCacheHeader {
  char magic[8];            // kTokenCacheMagic
  uint32_t version;         // kTokenCacheVersion
  uint32_t vocab_size;      // of the tokenizer that wrote it; every id is < vocab_size
  uint64_t tokenizer_hash;  // fnv1a64 of the tokenizer .model file bytes
  uint64_t source_hash;     // fnv1a64 of the encoded input (the file's bytes)
  uint64_t num_tokens;
  uint64_t num_sentences;
  uint64_t num_documents;
  uint64_t reserved;        // 0
};
static_assert(sizeof(TokenCacheHeader) == 64, "the header is 64 bytes on disk");

/// 64-bit FNV-1a; `seed` chains calls (pass the previous result).
uint64_t fnv1a64(const void* data, size_t size, uint64_t seed = 0xcbf29ce484222325ULL);
/// fnv1a64 of a whole file's bytes, mixed with its size. Throws ConfigError if it cannot be read.
uint64_t file_hash(const std::string& path);
/// 16 lowercase hex digits.
std::string hex64(uint64_t value);

/// A view of one sentence's ids (points into the mapped file).
struct TokenSpan {
  const int32_t* data = nullptr;
  size_t size = 0;
  const int32_t* begin() const { return data; }
  const int32_t* end() const { return data + size; }
};

/// Builds a cache in memory; `save` writes it atomically.
class TokenCacheWriter {
 public:
  TokenCacheWriter(uint32_t vocab_size, uint64_t tokenizer_hash, uint64_t source_hash);
  void add_sentence(const std::vector<int>& ids);
  /// Closes the current document (an empty document is allowed: an example with no text).
  void end_document();
  void save(const std::string& path) const;
  uint64_t num_sentences() const { return sentence_offsets_.size() - 1; }

 private:
  TokenCacheHeader header_{};
  std::vector<int32_t> tokens_;
  std::vector<uint64_t> sentence_offsets_{0};
  std::vector<uint64_t> document_offsets_{0};
};

/// A read-only memory-mapped cache. Opening validates magic, version, sizes, offsets and ids.
class TokenCache {
 public:
  /// Throws Error naming the file and what is wrong (truncated, bad magic, bad offsets...).
  static std::shared_ptr<const TokenCache> open(const std::string& path);
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  const std::string& path() const { return path_; }
  const TokenCacheHeader& header() const { return *header_; }
  uint64_t num_tokens() const { return header_->num_tokens; }
  uint64_t num_sentences() const { return header_->num_sentences; }
  uint64_t num_documents() const { return header_->num_documents; }
  uint32_t vocab_size() const { return header_->vocab_size; }
  /// All ids, [num_tokens].
  const int32_t* tokens() const { return tokens_; }
  TokenSpan sentence(uint64_t s) const;
  /// Sentences [first, last) of document d.
  uint64_t document_begin(uint64_t d) const { return doc_off_[d]; }
  uint64_t document_end(uint64_t d) const { return doc_off_[d + 1]; }
  /// Token range [begin, end) of document d in tokens().
  uint64_t document_token_begin(uint64_t d) const { return sent_off_[doc_off_[d]]; }
  uint64_t document_token_end(uint64_t d) const { return sent_off_[doc_off_[d + 1]]; }

 private:
  TokenCache() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const TokenCacheHeader* header_ = nullptr;
  const int32_t* tokens_ = nullptr;
  const uint64_t* sent_off_ = nullptr;
  const uint64_t* doc_off_ = nullptr;
};

/// Reads only the header; false if the file is missing, short or has the wrong magic/version.
bool read_token_cache_header(const std::string& path, TokenCacheHeader& header);

}  // namespace flexnas::datasets
