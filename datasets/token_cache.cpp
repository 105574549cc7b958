#include "datasets/token_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "design_space/atomic_file.h"
#include "design_space/error.h"

namespace flexnas::datasets {
namespace {

size_t padded8(size_t n) { return (n + 7) / 8 * 8; }

size_t expected_size(const TokenCacheHeader& h) {
  return sizeof(TokenCacheHeader) + padded8(h.num_tokens * sizeof(int32_t)) +
         (h.num_sentences + 1) * sizeof(uint64_t) + (h.num_documents + 1) * sizeof(uint64_t);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw Error(path + ": error: token cache: " + what + " (delete the file to re-tokenize)");
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": error: cannot open file");
  uint64_t h = 0xcbf29ce484222325ULL, size = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<size_t>(in.gcount());
    h = fnv1a64(buf.data(), got, h);
    size += got;
  }
  return fnv1a64(&size, sizeof(size), h);
}

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

TokenCacheWriter::TokenCacheWriter(uint32_t vocab_size, uint64_t tokenizer_hash, uint64_t source_hash) {
  std::memcpy(header_.magic, kTokenCacheMagic, sizeof(header_.magic));
  header_.version = kTokenCacheVersion;
  header_.vocab_size = vocab_size;
  header_.tokenizer_hash = tokenizer_hash;
  header_.source_hash = source_hash;
}

void TokenCacheWriter::add_sentence(const std::vector<int>& ids) {
  for (int id : ids) {
    FLEXNAS_CHECK(id >= 0 && static_cast<uint32_t>(id) < header_.vocab_size, "token id ", id, " out of range");
    tokens_.push_back(id);
  }
  sentence_offsets_.push_back(tokens_.size());
}

void TokenCacheWriter::end_document() { document_offsets_.push_back(sentence_offsets_.size() - 1); }

void TokenCacheWriter::save(const std::string& path) const {
  TokenCacheHeader h = header_;
  h.num_tokens = tokens_.size();
  h.num_sentences = sentence_offsets_.size() - 1;
  h.num_documents = document_offsets_.size() - 1;
  FLEXNAS_CHECK(document_offsets_.back() == h.num_sentences, "sentences after the last end_document()");
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(&h), sizeof(h));
    out.write(reinterpret_cast<const char*>(tokens_.data()), static_cast<std::streamsize>(tokens_.size() * 4));
    const size_t pad = padded8(tokens_.size() * 4) - tokens_.size() * 4;
    const char zeros[8] = {};
    out.write(zeros, static_cast<std::streamsize>(pad));
    out.write(reinterpret_cast<const char*>(sentence_offsets_.data()),
              static_cast<std::streamsize>(sentence_offsets_.size() * 8));
    out.write(reinterpret_cast<const char*>(document_offsets_.data()),
              static_cast<std::streamsize>(document_offsets_.size() * 8));
  });
}

bool read_token_cache_header(const std::string& path, TokenCacheHeader& header) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.read(reinterpret_cast<char*>(&header), sizeof(header));
  if (in.gcount() != static_cast<std::streamsize>(sizeof(header))) return false;
  return std::memcmp(header.magic, kTokenCacheMagic, sizeof(header.magic)) == 0 &&
         header.version == kTokenCacheVersion;
}

std::shared_ptr<const TokenCache> TokenCache::open(const std::string& path) {
  std::shared_ptr<TokenCache> cache(new TokenCache());
  cache->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": error: cannot open token cache: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    corrupt(path, "cannot stat");
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size < sizeof(TokenCacheHeader)) {
    ::close(fd);
    corrupt(path, "file is " + std::to_string(size) + " bytes, shorter than the 64-byte header");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) corrupt(path, std::string("mmap failed: ") + std::strerror(errno));
  cache->map_ = map;
  cache->map_size_ = size;
  const auto* base = static_cast<const char*>(map);
  cache->header_ = reinterpret_cast<const TokenCacheHeader*>(base);
  const TokenCacheHeader& h = *cache->header_;
  if (std::memcmp(h.magic, kTokenCacheMagic, sizeof(h.magic)) != 0) corrupt(path, "bad magic (not a flexnas token cache)");
  if (h.version != kTokenCacheVersion)
    corrupt(path, "version " + std::to_string(h.version) + ", expected " + std::to_string(kTokenCacheVersion));
  if (h.num_tokens > size || h.num_sentences > size || h.num_documents > size || expected_size(h) != size)
    corrupt(path, "size " + std::to_string(size) + " bytes does not match the header (truncated?)");
  cache->tokens_ = reinterpret_cast<const int32_t*>(base + sizeof(TokenCacheHeader));
  cache->sent_off_ =
      reinterpret_cast<const uint64_t*>(base + sizeof(TokenCacheHeader) + padded8(h.num_tokens * sizeof(int32_t)));
  cache->doc_off_ = cache->sent_off_ + h.num_sentences + 1;
  const uint64_t* so = cache->sent_off_;
  const uint64_t* dof = cache->doc_off_;
  if (so[0] != 0 || so[h.num_sentences] != h.num_tokens) corrupt(path, "sentence offsets do not cover the tokens");
  for (uint64_t s = 0; s < h.num_sentences; ++s)
    if (so[s] > so[s + 1]) corrupt(path, "sentence offsets decrease at sentence " + std::to_string(s));
  if (dof[0] != 0 || dof[h.num_documents] != h.num_sentences) corrupt(path, "document offsets do not cover the sentences");
  for (uint64_t d = 0; d < h.num_documents; ++d)
    if (dof[d] > dof[d + 1]) corrupt(path, "document offsets decrease at document " + std::to_string(d));
  for (uint64_t i = 0; i < h.num_tokens; ++i)
    if (cache->tokens_[i] < 0 || static_cast<uint32_t>(cache->tokens_[i]) >= h.vocab_size)
      corrupt(path, "token " + std::to_string(i) + " has id " + std::to_string(cache->tokens_[i]) +
                        " outside the vocabulary [0, " + std::to_string(h.vocab_size) + ")");
  return cache;
}

TokenCache::~TokenCache() {
  if (map_) ::munmap(map_, map_size_);
}

TokenSpan TokenCache::sentence(uint64_t s) const {
  FLEXNAS_CHECK(s < num_sentences(), "sentence ", s, " of ", num_sentences());
  return TokenSpan{tokens_ + sent_off_[s], static_cast<size_t>(sent_off_[s + 1] - sent_off_[s])};
}

}  // namespace flexnas::datasets
