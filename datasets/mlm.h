#pragma once
// Masked-language-model data for pretraining, from token caches (token_cache.h).
//
// The documents of the caches are split (seeded) into train and held-out eval documents. Each split's
// documents are laid end to end, each followed by [SEP], and cut into blocks of seq_len - 2 tokens,
// each wrapped as [CLS] ... [SEP] (the last partial block is dropped unless it is the only one, then
// it is padded). Masking (BERT): every non-special position is selected with probability mask_prob;
// a selected position gets [MASK] (80%), a uniformly random non-special id (10%) or stays (10%), and
// its label is the original id; every other label is -100. [PAD], [CLS], [SEP] are never selected.
//
// Batches are pure functions of (options, step): training example k = step * batch_size + b is
// block perm_e[k mod N] of epoch e = k / N (perm_e a seeded shuffle), masked with an RNG seeded by
// (seed, k). So a run resumed at step s sees exactly the batches an uninterrupted run sees.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "datasets/token_cache.h"

namespace flexnas::datasets {

struct MlmOptions {
  int64_t seq_len = 128;            // tokens per block, [CLS] and [SEP] included
  int64_t batch_size = 32;          // blocks per batch
  double mask_prob = 0.15;          // fraction of non-special positions predicted
  double mask_token_prob = 0.8;     // of those: replaced by [MASK]
  double random_token_prob = 0.1;   // of those: replaced by a random non-special id (the rest: kept)
  uint64_t seed = 1;                // shuffling and masking
  double eval_fraction = 0.05;      // held-out documents (sentences if there are fewer than 20 documents)
  uint64_t split_seed = 0;          // which documents are held out
};

/// One MLM batch. All tensors [batch, seq_len] int64 on the CPU.
struct MlmBatch {
  torch::Tensor input_ids;       // masked ids
  torch::Tensor attention_mask;  // 1 = real token, 0 = padding
  torch::Tensor labels;          // original id where predicted, -100 elsewhere
};

class MlmData {
 public:
  /// `vocab_size` bounds random replacements (ids kCount..vocab_size-1). Throws ConfigError on
  /// invalid options or an empty corpus.
  MlmData(std::vector<std::shared_ptr<const TokenCache>> caches, int64_t vocab_size, MlmOptions options = {});

  const MlmOptions& options() const { return options_; }
  int64_t num_train_blocks() const { return static_cast<int64_t>(train_.size() / block_body()); }
  int64_t num_eval_blocks() const;
  int64_t train_tokens() const { return static_cast<int64_t>(train_.size()); }
  int64_t eval_tokens() const { return static_cast<int64_t>(eval_.size()); }
  /// Training batch `step` (>= 0); thread-safe.
  MlmBatch batch_at(int64_t step) const;
  /// Held-out batches with fixed masks: i in [0, num_eval_batches()); the last may be smaller.
  int64_t num_eval_batches() const;
  MlmBatch eval_batch(int64_t i) const;

 private:
  int64_t block_body() const { return options_.seq_len - 2; }
  void fill_block(const std::vector<int32_t>& stream, int64_t block, uint64_t mask_seed, int64_t row,
                  int64_t* ids, int64_t* mask, int64_t* labels) const;
  MlmOptions options_;
  int64_t vocab_size_;
  std::vector<int32_t> train_, eval_;  // token streams: documents each followed by [SEP]
  mutable std::mutex perm_mutex_;
  mutable int64_t perm_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace flexnas::datasets
