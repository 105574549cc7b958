#pragma once
// Training loops: MLM pretraining (spec §8.2), ELECTRA pretraining (models/electra.h) and task
// fine-tuning (§8.3), with checkpoints that resume bit-exactly.
//
// The loops see their data through callbacks (MlmSource, TaskSource) so that this file needs no
// symbol of flexnas::datasets at link time (the models library is linked whole into binaries that
// may not link datasets); the inline adapters at the bottom build the callbacks from MlmData and
// TaskDataset where datasets is linked (launch, tests, bench).
//
// Checkpoint commit (DESIGN.md §3): every file is first written into DIR/.commit/, then
// training_state.json is written there last (marking the staged set complete), then the files are
// renamed into DIR one by one, training_state.json last. recover_checkpoint finishes a commit that a
// kill interrupted after staging (or drops an incomplete staging), so DIR always holds one consistent
// checkpoint.
#include <torch/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/finetune_data.h"
#include "datasets/metrics.h"
#include "datasets/mlm.h"
#include "datasets/tasks.h"
#include "design_space/enum_names.h"
#include "models/electra.h"
#include "models/flex_model.h"
#include "models/precision.h"
#include "models/safetensors.h"
#include "models/training.h"

namespace flexnas::models {

inline constexpr const char* kTrainStateJson = "training_state.json";

/// MLM pretraining settings; these initialisers are the only defaults (the CLI binds to them).
struct PretrainOptions {
  int64_t steps = 1000;          // optimiser updates in total (a resumed run continues to this)
  double lr = 1e-4;              // peak learning rate
  int64_t warmup_steps = -1;     // linear warm-up; -1 = 10% of steps (spec: 10k of 100k)
  double weight_decay = 0.01;    // AdamW, not on biases / LayerNorm
  double beta2 = 0.98;           // spec §8.2
  double eps = 1e-6;             // spec §8.2
  double clip_norm = 1.0;        // global gradient L2 norm; <= 0 disables clipping
  int64_t eval_every = 0;        // held-out evaluation every K steps (0 = only at the end)
  int64_t save_every = 0;        // checkpoint every K steps (0 = only at the end)
  int64_t log_every = 10;        // a history entry (loss, lr, tokens/s) every K steps
  int64_t max_eval_batches = 0;  // evaluate on at most this many held-out batches (0 = all)
  uint64_t seed = 1;             // model initialisation and dropout (data seeds are MlmOptions')
  int64_t stop_after = 0;        // stop after this many steps, with a checkpoint, as a time-limited
                                 // job would (0 = run to `steps`); --resume continues
  bool resume = false;           // continue from the checkpoint in the output directory
  Precision precision = Precision::kFp32;  // resolved (not kAuto): autocast of the forward passes
  int64_t accumulate = 1;        // micro-batches per batch (gradient accumulation); same update
};

/// How the pretraining loop reads batches: pure functions of the step / index.
struct MlmSource {
  std::function<datasets::MlmBatch(int64_t step)> train_batch;
  int64_t num_eval_batches = 0;
  std::function<datasets::MlmBatch(int64_t i)> eval_batch;
};

/// One line of the training history.
struct StepRecord {
  int64_t step = 0;               // updates done
  double loss = 0;                // mean training loss of the steps since the previous record
  double lr = 0;                  // learning rate of the last update
  double grad_norm = 0;           // before clipping, last update
  double tokens_per_second = 0;   // non-padding tokens, since the previous record
  double eval_loss = -1;          // held-out loss of the objective (-1 = not evaluated at this step)
  // Further per-objective values (ELECTRA: generator_loss, discriminator_loss, rtd_accuracy,
  // replaced_fraction), means since the previous record; eval_metrics are the held-out ones, written
  // with an "eval_" prefix. Both empty for MLM.
  std::vector<std::pair<std::string, double>> metrics, eval_metrics;
  nlohmann::ordered_json to_json() const;
  static StepRecord from_json(const nlohmann::ordered_json& j);  // ordered: the metrics keep their order
};

struct PretrainResult {
  int64_t start_step = 0;       // > 0 when resumed
  int64_t steps = 0;            // updates done in total
  double eval_loss = 0;         // held-out loss at the end (MLM; ELECTRA: generator + weight x discriminator)
  double eval_perplexity = 0;   // exp(eval_loss) (meaningful for MLM only)
  std::vector<std::pair<std::string, double>> eval_metrics;  // the last evaluation's further values (ELECTRA)
  double tokens_per_second = 0; // this process's mean training throughput
  std::vector<StepRecord> history;  // whole run, resumed parts included
  std::vector<double> losses;       // training loss of every step (whole run)
};

/// Held-out MLM loss: token-weighted mean over the predicted positions of the eval batches
/// (at most `max_batches`, 0 = all), forward passes in `precision`. The model is put in eval mode
/// and back.
double evaluate_mlm(FlexModelImpl& model, const MlmSource& data, int64_t max_batches = 0,
                    Precision precision = Precision::kFp32);

/// One batch's loss and gradients, in `micro` micro-batches (split along the batch) whose losses
/// are weighted by their share of the labelled positions, so the gradients equal the whole batch's
/// (up to rounding). Forward passes under autocast in `precision`; backward outside it; the loss is
/// multiplied by `loss_scale` before backward (fp16). Returns the batch's loss.
double accumulate_gradients(FlexModelImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                            const torch::Tensor& labels, int64_t micro, Precision precision, double loss_scale = 1.0);

/// Pretrains `model` (already initialised, or loaded for a resume) and commits checkpoints to
/// `out_dir`. With options.resume the checkpoint in out_dir (which must exist) provides weights,
/// optimiser moments, RNG state and history, and the run continues from its step; the losses are
/// then bit-identical to an uninterrupted run (same thread count). `tokenizer_file` is recorded in
/// config.json with its SHA-256; `extra_config` goes into metrics.json under "run".
PretrainResult pretrain(FlexModel& model, const MlmSource& data, const PretrainOptions& options,
                        const std::string& out_dir, const std::string& tokenizer_file = "",
                        const nlohmann::ordered_json& extra_config = {});

/// Held-out ELECTRA quantities over the eval batches (at most `max_batches`, 0 = all), each batch's
/// replacements sampled with sampling_uniforms(seed, 1, batch index): the same at every evaluation.
struct ElectraEval {
  double loss = 0;                // generator_loss + discriminator_weight x discriminator_loss
  double generator_loss = 0;      // token-weighted over the masked positions
  double discriminator_loss = 0;  // token-weighted over the non-padding tokens
  int64_t masked = 0, tokens = 0, replaced = 0, correct = 0;
  /// generator_loss, generator_perplexity, discriminator_loss, rtd_accuracy (correct / tokens),
  /// replaced_fraction (replaced / tokens) and original_baseline (the accuracy of answering
  /// "original" everywhere: 1 - replaced_fraction).
  std::vector<std::pair<std::string, double>> metrics() const;
};
ElectraEval evaluate_electra(ElectraModelImpl& model, const MlmSource& data, uint64_t seed, int64_t max_batches = 0,
                             Precision precision = Precision::kFp32);

/// ELECTRA pretraining (models/electra.h) with the loop, schedule, checkpoints and bit-exact resume
/// of pretrain(). The discriminator is committed as the checkpoint's model (config.json,
/// model.safetensors: what finetune, probe and transfer load), its replaced-token head as
/// discriminator_head.safetensors; with keep_generator also generator.safetensors and the optimiser
/// state, so the run can resume (without: a core-only checkpoint, whose --resume is a ConfigError
/// saying why). metrics.json records run.objective = "electra", the generator size and weight, and
/// per record generator_loss, discriminator_loss, rtd_accuracy, replaced_fraction (eval_* held out).
PretrainResult pretrain_electra(ElectraModel& model, const MlmSource& data, const PretrainOptions& options,
                                const std::string& out_dir, const std::string& tokenizer_file = "",
                                const nlohmann::ordered_json& extra_config = {});

/// The message of resuming a core-only ELECTRA checkpoint in `dir`.
std::string electra_core_only_message(const std::string& dir);

/// Completes or discards an interrupted checkpoint commit in `dir`; true if `dir` then holds a
/// checkpoint with a training state (something to resume from).
bool recover_checkpoint(const std::string& dir);

/// Writes config.json, model.safetensors, training_state.{safetensors,json} and metrics.json into
/// `dir` through the staged commit described above. `state` may be null (no optimiser state:
/// a finished fine-tuned model). `extra_files` (file name, tensors) are committed with them
/// (ELECTRA's discriminator head and generator).
void commit_checkpoint(const std::string& dir, FlexModelImpl& model, const AdamW* optimizer, int64_t step,
                       const nlohmann::ordered_json& metrics, const std::string& tokenizer_file,
                       const std::vector<std::pair<std::string, NamedTensors>>& extra_files = {});

/// Fine-tuning settings (spec §8.3's Trainer defaults except the learning rate; the recipe and its
/// measurements: docs/training.md).
/// --balance-classes: weight a classification loss by inverse class frequency. auto = where the
/// task's score is F1 or MCC (datasets::score_rewards_minority_classes), not where it is accuracy.
enum class ClassBalance { kAuto, kOn, kOff };
const EnumNames<ClassBalance>& class_balance_names();  // auto, true, false

struct FinetuneTrainOptions {
  int64_t epochs = 3;            // passes over the training split
  double lr = 0;                 // peak learning rate; 0 = auto_finetune_lr(architecture)
  double embedding_lr_scale = 1;  // the word embeddings' rate = lr x this (10 for one-epoch budgets: docs/training.md)
  double warmup_fraction = 0.1;  // of all updates, linear warm-up; then linear decay to 0
  double weight_decay = 0.01;    // AdamW, not on biases / LayerNorm
  double beta2 = 0.999;          // HF Trainer default
  double eps = 1e-8;             // HF Trainer default
  double clip_norm = 1.0;        // <= 0 disables
  uint64_t seed = 42;            // dropout (head initialisation: seed before building the model)
  Precision precision = Precision::kFp32;  // resolved (not kAuto): autocast of the forward passes
  int64_t accumulate = 1;        // micro-batches per batch (gradient accumulation); same update
  ClassBalance balance_classes = ClassBalance::kAuto;  // classification: weight the loss by inverse class frequency
  int64_t patience = 0;          // stop after this many epochs without a better dev score (0 = never)
};

/// One evaluation split seen through callbacks.
struct EvalSplit {
  std::string name;  // "dev", "test", "dev_matched", ...
  int64_t num_batches = 0;
  std::function<datasets::TaskBatch(int64_t i)> batch;
};

/// How the fine-tuning loop reads a task.
struct TaskSource {
  datasets::TaskInfo info;
  int64_t num_train_batches = 0;
  std::vector<int64_t> train_label_counts;  // classification: training examples (tokens) per class
  std::function<datasets::TaskBatch(int64_t epoch, int64_t i)> train_batch;
  std::vector<EvalSplit> selection;  // splits whose combined score picks the best epoch (eval_splits)
  std::vector<EvalSplit> report;     // further splits evaluated once with the best model (test)
  std::function<datasets::MetricSet(const datasets::Predictions&)> metrics;
  std::function<double(const datasets::MetricSet&)> score;
};

struct SplitResult {
  std::string split;
  datasets::MetricSet metrics;
  double score = 0;
  double loss = 0;
  int64_t predicted_classes = 0;  // classification: distinct predicted classes
  int64_t gold_classes = 0;       // classification: distinct gold classes
  /// A classifier that predicts one class for every example of a split with several: it learnt
  /// nothing but the prior (a "collapsed" evaluation).
  bool collapsed() const { return gold_classes > 1 && predicted_classes == 1; }
};

struct FinetuneResult {
  int64_t best_epoch = 0;                  // 1-based
  double score = 0;                        // best selection score (mean over selection splits)
  std::vector<double> epoch_scores;        // selection score after every epoch
  std::vector<double> epoch_train_loss;    // mean training loss of every epoch
  std::vector<SplitResult> best;           // metrics of the best model on selection + report splits
  std::vector<double> class_weights;       // the loss's class weights (empty: unweighted)
  bool stopped_early = false;              // patience ran out before the last epoch
};

/// The default fine-tuning learning rate of an architecture: 1e-3 x min(1, 128 / its widest hidden
/// size), i.e. inversely proportional to the width above 128. Small models pretrained briefly from scratch need far
/// more than BERT's 5e-5 (at which spam fine-tuning predicted one class for every e-mail), while
/// 1e-3 made a 256-wide model diverge (docs/training.md has the measurements).
double auto_finetune_lr(const Architecture& arch);

/// Balanced class weights from label counts: n / (K * count_c) with K the classes that occur
/// (sklearn's "balanced"), a class without examples weighted 0. Empty when `counts` is empty.
std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts);

/// Predictions of `model` on one split (classification: argmax; token classification: every
/// labelled position; regression: the value) and its mean loss; forward passes in `precision`.
SplitResult evaluate_split(FlexModelImpl& model, const TaskSource& task, const EvalSplit& split,
                           Precision precision = Precision::kFp32);

/// Fine-tunes `model` (task head already in place), evaluates the selection splits after every
/// epoch, keeps the best weights in memory and restores them at the end (best-on-dev selection).
/// `after_epoch(epoch, score)` (1-based epoch, its selection score) runs after each epoch's
/// evaluation, with the model as that epoch left it (e.g. to save every epoch's weights).
FinetuneResult finetune(FlexModel& model, const TaskSource& task, const FinetuneTrainOptions& options,
                        const std::function<void(int64_t epoch, double score)>& after_epoch = {});

/// ModelOptions of a task head on top of a pretrained model's options.
ModelOptions task_model_options(const ModelOptions& base, const datasets::TaskInfo& task);

/// The tokenizer a checkpoint was pretrained with (spec defect 32: one tokenizer for pretraining
/// and fine-tuning). `flag_value` (--tokenizer, may be empty) must have the recorded SHA-256;
/// without it the recorded file is used and must still have that hash. ConfigError otherwise,
/// naming both files and hashes. `dir` names the checkpoint in messages.
std::string checkpoint_tokenizer(const std::string& dir, const std::string& recorded_file,
                                 const std::string& recorded_sha256, const std::string& flag_value);

/// metrics.json entry of one split: its metrics, "score" and "loss".
nlohmann::ordered_json split_json(const SplitResult& r);

// ---- adapters (inline: they call flexnas::datasets, which is linked where they are used) ----

inline MlmSource mlm_source(const datasets::MlmData& data) {
  MlmSource s;
  s.train_batch = [&data](int64_t step) { return data.batch_at(step); };
  s.num_eval_batches = data.num_eval_batches();
  s.eval_batch = [&data](int64_t i) { return data.eval_batch(i); };
  return s;
}

/// A task split tokenized with `tokenizer` (cache "<task>-<split>", ':' replaced by '-').
inline datasets::TaskDataset task_dataset(const datasets::TaskData& data, const std::string& split,
                                          const datasets::Tokenizer& tokenizer,
                                          const datasets::FinetuneOptions& options) {
  return datasets::TaskDataset(data.info, data.splits.at(split), tokenizer,
                               datasets::task_file_name(data.info.name + "-" + split), options);
}

inline EvalSplit eval_split(const std::string& name, const datasets::TaskDataset& data) {
  return EvalSplit{name, data.num_batches(), [&data](int64_t i) { return data.batch(-1, i); }};
}

/// `train` and the datasets in `selection`/`report` must outlive the returned source.
inline TaskSource task_source(const datasets::TaskDataset& train,
                              const std::vector<std::pair<std::string, const datasets::TaskDataset*>>& selection,
                              const std::vector<std::pair<std::string, const datasets::TaskDataset*>>& report = {}) {
  TaskSource s;
  s.info = train.task();
  s.num_train_batches = train.num_batches();
  s.train_label_counts = train.label_counts();
  s.train_batch = [&train](int64_t epoch, int64_t i) { return train.batch(epoch, i); };
  for (const auto& [name, ds] : selection) s.selection.push_back(eval_split(name, *ds));
  for (const auto& [name, ds] : report) s.report.push_back(eval_split(name, *ds));
  const datasets::TaskInfo info = train.task();
  s.metrics = [info](const datasets::Predictions& p) { return datasets::compute_metrics(info, p); };
  s.score = [info](const datasets::MetricSet& m) { return datasets::task_score(info, m); };
  return s;
}

}  // namespace flexnas::models
