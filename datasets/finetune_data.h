#pragma once
// Fine-tuning data: one task split tokenized (once per tokenizer, through the token cache) into
// model inputs, batched with padding to the longest example of each batch (not to a fixed 512 —
// spec defect 41), shuffled deterministically by (seed, epoch).
//
// Sequences: [CLS] a [SEP] for one segment, [CLS] a [SEP] b [SEP] for pairs (longest-first truncation
// to max_length). Token classification: [CLS] pieces of each word [SEP]; a word's label sits on its
// first piece, every other position is -100 (words cut off by max_length are not scored).
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/tasks.h"
#include "design_space/enum_names.h"
#include "datasets/tokenizer.h"

namespace flexnas::datasets {

/// How a single text longer than max_length is cut: keep its beginning, or its beginning and its
/// end (an e-mail's subject and opening plus its closing lines; Sun et al. 2019 found head+tail best
/// for long documents). Sentence pairs are always cut longest-first.
enum class Truncation { kHead, kHeadTail };
const EnumNames<Truncation>& truncation_names();  // head, head+tail (`flexnas finetune --truncation`)
const char* truncation_name(Truncation t);  // "head" | "head+tail"

struct FinetuneOptions {
  int64_t max_length = 128;  // tokens per example, [CLS]/[SEP] included
  int64_t batch_size = 32;   // examples per batch
  uint64_t seed = 42;        // shuffling
  Truncation truncation = Truncation::kHeadTail;  // single texts: beginning + end
  double head_fraction = 0.5;  // head+tail: share of the token budget kept from the beginning
};

/// One batch; T = the longest example in the batch (<= max_length). CPU tensors.
struct TaskBatch {
  torch::Tensor input_ids;       // [B, T] int64, [PAD] = 0 after each example
  torch::Tensor attention_mask;  // [B, T] int64, 1 = real token
  torch::Tensor token_type_ids;  // [B, T] int64, 0 up to and including the first [SEP], 1 after
  torch::Tensor labels;          // [B] int64 (classification) | [B] float32 (regression) |
                                 // [B, T] int64 with -100 where not scored (token classification)
  std::vector<int64_t> example_ids;  // positions in the split, in batch order
};

/// Adds one batch's model outputs to `p` (metrics.h) for compute_metrics:
///   classification  logits [B, C]    -> argmax vs labels [B]
///   regression      logits [B] or [B, 1] -> values vs labels [B] (float)
///   token           logits [B, T, C] -> argmax at every position whose label is not -100
void accumulate_predictions(Predictions& p, const TaskInfo& task, const torch::Tensor& logits, const TaskBatch& batch);

class TaskDataset {
 public:
  /// Tokenizes `examples` (cache file named `<cache_name>.<tokenizer>.<content>.tok`).
  TaskDataset(const TaskInfo& task, const std::vector<Example>& examples, const Tokenizer& tokenizer,
              const std::string& cache_name, FinetuneOptions options = {});

  const TaskInfo& task() const { return task_; }
  const FinetuneOptions& options() const { return options_; }
  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t num_batches() const { return (size() + options_.batch_size - 1) / options_.batch_size; }
  /// Batch i of `epoch`, examples shuffled by (seed, epoch); epoch < 0: file order (evaluation).
  TaskBatch batch(int64_t epoch, int64_t i) const;
  /// The encoded ids of example e (with [CLS]/[SEP]).
  const std::vector<int32_t>& example_ids(int64_t e) const { return ids_[static_cast<size_t>(e)]; }
  /// Number of examples cut by max_length (for a warning / the report).
  int64_t truncated() const { return truncated_; }
  /// Classification: examples per class; token classification: scored positions per class;
  /// regression: empty.
  std::vector<int64_t> label_counts() const;

 private:
  TaskInfo task_;
  FinetuneOptions options_;
  std::vector<std::vector<int32_t>> ids_;
  std::vector<int32_t> first_sep_;                // position of the first [SEP]
  std::vector<int64_t> labels_;                   // classification
  std::vector<float> targets_;                    // regression
  std::vector<std::vector<int64_t>> token_labels_;// token classification, aligned with ids_
  int64_t truncated_ = 0;
};

}  // namespace flexnas::datasets
