#include "datasets/mlm.h"

#include <torch/torch.h>

#include <algorithm>

#include "datasets/splits.h"
#include "datasets/tokenizer.h"
#include "design_space/error.h"

namespace flexnas::datasets {
namespace {

constexpr int64_t kIgnore = -100;

/// Appends [begin, end) of cache tokens and, when `sep`, a [SEP].
void append(std::vector<int32_t>& stream, const TokenCache& c, uint64_t begin, uint64_t end, bool sep) {
  stream.insert(stream.end(), c.tokens() + begin, c.tokens() + end);
  if (sep) stream.push_back(SpecialIds::kSep);
}

}  // namespace

MlmData::MlmData(std::vector<std::shared_ptr<const TokenCache>> caches, int64_t vocab_size, MlmOptions o)
    : options_(o), vocab_size_(vocab_size) {
  auto bad = [](const std::string& what) { throw ConfigError("error: " + what); };
  if (o.seq_len < 8) bad("--seq-len: " + std::to_string(o.seq_len) + "; must be at least 8");
  if (o.batch_size < 1) bad("--batch-size: " + std::to_string(o.batch_size) + "; must be positive");
  if (!(o.mask_prob > 0 && o.mask_prob < 1)) bad("--mask-prob: " + std::to_string(o.mask_prob) + "; allowed: (0, 1)");
  if (o.mask_token_prob < 0 || o.random_token_prob < 0 || o.mask_token_prob + o.random_token_prob > 1)
    bad("masking: [MASK] " + std::to_string(o.mask_token_prob) + " + random " + std::to_string(o.random_token_prob) +
        " must be >= 0 and at most 1");
  if (!(o.eval_fraction >= 0 && o.eval_fraction < 1))
    bad("--eval-fraction: " + std::to_string(o.eval_fraction) + "; allowed: [0, 1)");
  if (vocab_size <= SpecialIds::kCount) bad("vocabulary size " + std::to_string(vocab_size) + " is too small");
  if (caches.empty()) bad("--corpus: no corpus given");
  uint64_t docs = 0;
  for (const auto& c : caches) {
    if (static_cast<int64_t>(c->vocab_size()) > vocab_size)
      bad(c->path() + ": token cache vocabulary " + std::to_string(c->vocab_size()) + " exceeds the model's " +
          std::to_string(vocab_size));
    docs += c->num_documents();
  }
  // Held-out unit: documents, or sentences when there are too few documents to hold some out.
  const bool by_doc = docs >= 20;
  std::vector<std::pair<size_t, uint64_t>> units;  // (cache, document or sentence)
  for (size_t ci = 0; ci < caches.size(); ++ci) {
    const uint64_t n = by_doc ? caches[ci]->num_documents() : caches[ci]->num_sentences();
    for (uint64_t u = 0; u < n; ++u) units.emplace_back(ci, u);
  }
  if (units.empty()) bad("--corpus: the corpus has no text");
  auto n_eval = static_cast<int64_t>(static_cast<double>(units.size()) * o.eval_fraction + 0.5);
  if (o.eval_fraction > 0 && n_eval == 0 && units.size() >= 2) n_eval = 1;
  const auto order = permutation(static_cast<int64_t>(units.size()), mix_seed({o.split_seed, 0x3e1d}));
  std::vector<bool> held(units.size(), false);
  for (int64_t k = 0; k < n_eval; ++k) held[static_cast<size_t>(order[static_cast<size_t>(k)])] = true;
  for (size_t i = 0; i < units.size(); ++i) {
    const TokenCache& c = *caches[units[i].first];
    const uint64_t u = units[i].second;
    auto& stream = held[i] ? eval_ : train_;
    if (by_doc) append(stream, c, c.document_token_begin(u), c.document_token_end(u), true);
    else {
      const TokenSpan s = c.sentence(u);
      const auto begin = static_cast<uint64_t>(s.data - c.tokens());
      append(stream, c, begin, begin + s.size, true);
    }
  }
  if (train_.empty()) bad("--corpus: no training text left after holding out the eval split");
}

int64_t MlmData::num_eval_blocks() const {
  if (eval_.empty()) return 0;
  return std::max<int64_t>(1, static_cast<int64_t>(eval_.size()) / block_body());
}

int64_t MlmData::num_eval_batches() const {
  return (num_eval_blocks() + options_.batch_size - 1) / options_.batch_size;
}

void MlmData::fill_block(const std::vector<int32_t>& stream, int64_t block, uint64_t mask_seed, int64_t row,
                         int64_t* ids, int64_t* mask, int64_t* labels) const {
  const int64_t T = options_.seq_len, body = block_body();
  int64_t* id = ids + row * T;
  int64_t* am = mask + row * T;
  int64_t* lb = labels + row * T;
  const auto begin = static_cast<size_t>(block * body);
  const size_t end = std::min(stream.size(), begin + static_cast<size_t>(body));
  int64_t t = 0;
  id[t++] = SpecialIds::kCls;
  for (size_t i = begin; i < end; ++i) id[t++] = stream[i];
  id[t++] = SpecialIds::kSep;
  const int64_t real = t;
  for (; t < T; ++t) id[t] = SpecialIds::kPad;
  Rng rng(mask_seed);
  const auto n_random = static_cast<uint64_t>(vocab_size_ - SpecialIds::kCount);
  for (t = 0; t < T; ++t) {
    am[t] = t < real ? 1 : 0;
    lb[t] = kIgnore;
    const int64_t orig = id[t];
    // Draw for every position (special or not) so a position's fate depends only on (seed, t).
    const double select = rng.uniform(), how = rng.uniform();
    const auto random_id = static_cast<int64_t>(SpecialIds::kCount + rng.below(n_random));
    if (t >= real || orig == SpecialIds::kCls || orig == SpecialIds::kSep || orig == SpecialIds::kPad ||
        orig == SpecialIds::kMask)
      continue;
    if (select >= options_.mask_prob) continue;
    lb[t] = orig;
    if (how < options_.mask_token_prob) id[t] = SpecialIds::kMask;
    else if (how < options_.mask_token_prob + options_.random_token_prob) id[t] = random_id;
  }
}

MlmBatch MlmData::batch_at(int64_t step) const {
  FLEXNAS_CHECK(step >= 0, "negative step ", step);
  const int64_t B = options_.batch_size, T = options_.seq_len;
  const int64_t n = std::max<int64_t>(1, num_train_blocks());
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  MlmBatch batch{torch::empty({B, T}, opts), torch::empty({B, T}, opts), torch::empty({B, T}, opts)};
  for (int64_t b = 0; b < B; ++b) {
    const int64_t k = step * B + b;
    const int64_t epoch = k / n, pos = k % n;
    int64_t block;
    {
      std::lock_guard<std::mutex> lock(perm_mutex_);
      if (perm_epoch_ != epoch) {
        perm_ = permutation(n, mix_seed({options_.seed, static_cast<uint64_t>(epoch), 0x9e2f}));
        perm_epoch_ = epoch;
      }
      block = perm_[static_cast<size_t>(pos)];
    }
    fill_block(train_, block, mix_seed({options_.seed, static_cast<uint64_t>(k), 0x4d4c4d}), b,
               batch.input_ids.data_ptr<int64_t>(), batch.attention_mask.data_ptr<int64_t>(),
               batch.labels.data_ptr<int64_t>());
  }
  return batch;
}

MlmBatch MlmData::eval_batch(int64_t i) const {
  FLEXNAS_CHECK(i >= 0 && i < num_eval_batches(), "eval batch ", i, " of ", num_eval_batches());
  const int64_t first = i * options_.batch_size;
  const int64_t B = std::min(options_.batch_size, num_eval_blocks() - first), T = options_.seq_len;
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  MlmBatch batch{torch::empty({B, T}, opts), torch::empty({B, T}, opts), torch::empty({B, T}, opts)};
  for (int64_t b = 0; b < B; ++b)
    fill_block(eval_, first + b, mix_seed({options_.seed, static_cast<uint64_t>(first + b), 0xe7a1}), b,
               batch.input_ids.data_ptr<int64_t>(), batch.attention_mask.data_ptr<int64_t>(),
               batch.labels.data_ptr<int64_t>());
  return batch;
}

}  // namespace flexnas::datasets
