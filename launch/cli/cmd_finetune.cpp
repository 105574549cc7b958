// flexnas finetune: a fresh task head on a pretrained checkpoint, trained on the task's train split,
// the best epoch on dev kept (spec §8.3), metrics.json with the task's metrics and its "score".
// --init-from-task starts from a model already fine-tuned on a task instead (task_checkpoint.h
// TaskInit: the encoder always, the head only for the same kind and labels).
#include <algorithm>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "datasets/finetune_data.h"
#include "datasets/tasks.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "datasets/splits.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/checkpoint.h"
#include "models/trainer.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

struct FinetuneCliOptions {
  std::string checkpoint;              // pretrained checkpoint directory (optional with init_from_task)
  std::string init_from_task;          // a fine-tuned checkpoint to start from ("" = --checkpoint's weights)
  std::vector<std::string> tasks;      // registered tasks and suites (datasets/tasks.h), comma-separated
  std::string out;                     // fine-tuned checkpoint directory
  std::string data_dir = datasets::TaskLoadOptions{}.data_dir;  // task data (scripts/fetch-data.sh)
  std::string cache_dir;               // token caches (default <data-dir>/cache)
  std::string tokenizer;               // must be the checkpoint's (default: the recorded file)
  int64_t threads = 0;                 // torch threads (0 = every core)
  models::FinetuneTrainOptions train;  // epochs, lr, warm-up, decay, clipping, seed
  int64_t max_train_examples = 0;      // 0 = the whole training split
  datasets::FinetuneOptions data;      // max length, batch size (shuffle seed = --seed)
  ComputeFlags compute;                // --device, --precision
  std::vector<double> lr_search;       // learning rates tried, the best on dev kept (empty = --lr only)
  int64_t max_len = 0;                 // tokens per example (0 = the task's default, TaskInfo::max_length)
  bool save_epochs = false;            // also keep every epoch's model in <out>/epochs/epoch-<n>
  models::ClassifierPooling pooling = models::ModelOptions{}.classifier_pooling;  // a sequence head's input
  bool pooling_given = false;          // --pooling on the command line (else a kept head keeps its own)
};

nlohmann::ordered_json finetune_task(FinetuneCliOptions o, const std::string& task, const std::string& out,
                                     const Compute& compute);

/// A learning rate as a folder name: "0.001" -> "0.001", 3e-05 -> "3e-05".
std::string lr_text(double lr) {
  std::ostringstream s;
  s << lr;
  return s.str();
}

void run_finetune(FinetuneCliOptions o) {
  if (o.train.epochs <= 0) flag_error("--epochs", "expected a positive integer, got " + std::to_string(o.train.epochs));
  if (o.data.batch_size <= 0)
    flag_error("--batch-size", "expected a positive integer, got " + std::to_string(o.data.batch_size));
  if (!(o.train.lr >= 0) || !std::isfinite(o.train.lr))
    flag_error("--lr", "expected a positive number (or 0: auto), got " + std::to_string(o.train.lr));
  if (!(o.train.embedding_lr_scale > 0) || !std::isfinite(o.train.embedding_lr_scale))
    flag_error("--embedding-lr-scale", "expected a positive number, got " + std::to_string(o.train.embedding_lr_scale));
  if (!(o.train.warmup_fraction >= 0 && o.train.warmup_fraction <= 1))
    flag_error("--warmup-fraction", "expected a number in [0, 1], got " + std::to_string(o.train.warmup_fraction));
  for (double lr : o.lr_search)
    if (!(lr > 0) || !std::isfinite(lr))
      flag_error("--lr-search", "expected positive learning rates, got " + std::to_string(lr));
  if (o.train.patience < 0)
    flag_error("--patience", "expected 0 (never stop early) or a positive count, got " +
               std::to_string(o.train.patience));
  if (o.train.accumulate <= 0 || o.train.accumulate > o.data.batch_size)
    flag_error("--accumulate", "expected 1..--batch-size (" + std::to_string(o.data.batch_size) + "), got " +
               std::to_string(o.train.accumulate));
  if (o.max_len != 0 && o.max_len < 3)
    flag_error("--max-len", "expected at least 3 (or 0: the task's default), got " + std::to_string(o.max_len));
  if (o.checkpoint.empty() && o.init_from_task.empty())
    flag_error("--checkpoint", "required: a pretrained checkpoint (or --init-from-task: a fine-tuned one)");
  if (!o.checkpoint.empty() && !fs::is_directory(o.checkpoint))
    flag_error("--checkpoint", "'" + o.checkpoint + "': no such directory");
  const std::vector<std::string> tasks = datasets::expand_tasks(o.tasks, o.data_dir, "--task");
  // Checked before any data is read (each task decides its head again in finetune_task).
  if (!o.init_from_task.empty()) check_task_init(o.init_from_task, datasets::task_info(tasks.front()), o.checkpoint);
  set_torch_threads(o.threads);
  const Compute compute = resolve_compute(o.compute);
  o.train.precision = compute.precision;
  if (tasks.size() == 1) {
    finetune_task(o, tasks.front(), o.out, compute);
    return;
  }
  // A suite: one fine-tuned checkpoint per task in OUT/<task>/, and OUT/metrics.json with every
  // task's metrics and the suite score (the mean of the task scores, as GLUE aggregates).
  nlohmann::ordered_json suite;
  suite["kind"] = "finetune_suite";
  suite["tasks"] = nlohmann::ordered_json::object();
  std::map<std::string, double> scores;
  bool collapsed = false;
  for (const auto& task : tasks) {
    std::cout << "== " << task << "\n";
    const nlohmann::ordered_json m = finetune_task(o, task, (fs::path(o.out) / datasets::task_file_name(task)).string(), compute);
    scores[task] = m["score"].get<double>();
    collapsed = collapsed || m["collapsed"].get<bool>();
    suite["tasks"][task] = m;
    suite["tasks"][task].erase("run");
    suite["tasks"][task].erase("epochs");
  }
  suite["score"] = datasets::suite_score(scores);
  suite["score_definition"] = "mean of the task scores (each task's score: datasets/metrics.h)";
  suite["task_scores"] = scores;
  suite["collapsed"] = collapsed;  // some task's best model predicts one class for a whole selection split
  write_file_atomic((fs::path(o.out) / models::kMetricsFile).string(), suite.dump(2) + "\n");
  std::cout << "suite (" << tasks.size() << " tasks):";
  for (const auto& [task, score] : scores) std::cout << " " << task << " " << score;
  std::cout << "\nsuite score: " << suite["score"].get<double>() << "\nmetrics: " << (fs::path(o.out) / models::kMetricsFile).string() << "\n";
}

/// Fine-tunes the checkpoint on one task into `out`; returns the metrics written there.
nlohmann::ordered_json finetune_task(FinetuneCliOptions o, const std::string& task, const std::string& out,
                                     const Compute& compute) {
  const datasets::TaskInfo& info = datasets::task_info(task, "--task");
  o.data.max_length = o.max_len > 0 ? o.max_len : info.max_length;

  // The checkpoint whose weights start the run: its architecture, options and tokenizer.
  const std::string start = o.init_from_task.empty() ? o.checkpoint : o.init_from_task;
  std::optional<TaskInit> init;
  if (!o.init_from_task.empty()) {
    init = check_task_init(o.init_from_task, info, o.checkpoint);
    std::cout << init->summary << "\n";
  }
  const models::CheckpointConfig config = models::read_checkpoint_config(start);
  const datasets::Tokenizer tokenizer =
      checkpoint_task_tokenizer(start, config, o.tokenizer, o.cache_dir, o.data_dir, o.data.max_length);

  datasets::TaskLoadOptions load;
  load.data_dir = o.data_dir;
  datasets::TaskData data = datasets::load_task(task, load);
  // A seeded subsample of the training split: quick fine-tuning for campaigns on small budgets.
  auto& train_examples = data.splits["train"];
  if (o.max_train_examples > 0 && int64_t(train_examples.size()) > o.max_train_examples) {
    const auto order = datasets::permutation(int64_t(train_examples.size()), o.train.seed);
    std::vector<int64_t> keep(order.begin(), order.begin() + o.max_train_examples);
    std::sort(keep.begin(), keep.end());  // keep the split's own order
    std::vector<datasets::Example> subset;
    subset.reserve(keep.size());
    for (int64_t i : keep) subset.push_back(train_examples[size_t(i)]);
    train_examples.swap(subset);
  }
  o.data.seed = o.train.seed;
  const datasets::TaskDataset train = models::task_dataset(data, "train", tokenizer, o.data);
  std::vector<datasets::TaskDataset> selection, report;
  selection.reserve(info.splits.size());
  report.reserve(info.splits.size());
  std::vector<std::pair<std::string, const datasets::TaskDataset*>> sel, rep;
  for (const auto& split : info.eval_splits) {
    selection.push_back(models::task_dataset(data, split, tokenizer, o.data));
    sel.emplace_back(split, &selection.back());
  }
  for (const auto& split : info.splits) {
    if (split == "train" || std::find(info.eval_splits.begin(), info.eval_splits.end(), split) != info.eval_splits.end())
      continue;
    report.push_back(models::task_dataset(data, split, tokenizer, o.data));
    rep.emplace_back(split, &report.back());
  }
  std::cout << "task " << info.name << ": " << train.size() << " training examples";
  for (const auto& [name, ds] : sel) std::cout << ", " << ds->size() << " " << name;
  for (const auto& [name, ds] : rep) std::cout << ", " << ds->size() << " " << name;
  std::cout << " (" << train.truncated() << " training examples cut to " << o.data.max_length << " tokens)\n";

  models::ModelOptions options = models::task_model_options(config.options, info);
  // A head kept from --init-from-task reads what it was trained on, unless --pooling says otherwise.
  if (!init || !init->keep_head || o.pooling_given) options.classifier_pooling = o.pooling;
  const models::TaskSource source = models::task_source(train, sel, rep);
  // One run per learning rate (the same seed: the same head initialisation and data order); the
  // best dev score wins, ties to the earlier rate.
  if (o.train.lr == 0) {
    o.train.lr = models::auto_finetune_lr(config.arch);
    std::cout << "lr: " << o.train.lr << " (auto: 1e-3 x min(1, 128 / the widest layer))\n";
  }
  if (o.train.embedding_lr_scale != 1)
    std::cout << "word embeddings: lr x " << o.train.embedding_lr_scale << " (--embedding-lr-scale)\n";
  std::vector<double> rates = o.lr_search.empty() ? std::vector<double>{o.train.lr} : o.lr_search;
  models::FlexModel model{nullptr};
  models::FinetuneResult r;
  auto searched = nlohmann::ordered_json::array();
  for (double lr : rates) {
    torch::manual_seed(o.train.seed);  // the fresh head's initialisation
    models::FlexModel candidate = init ? load_task_init(*init, options, compute.device)
                                       : models::load_checkpoint(o.checkpoint, compute.device, nullptr, &options);
    models::FinetuneTrainOptions train_options = o.train;
    train_options.lr = lr;
    if (rates.size() > 1) std::cout << "lr search: " << lr << "\n";
    // --save-epochs: every epoch's model as a checkpoint of its own (for `flexnas probe --experiment`).
    const fs::path epochs_dir = fs::path(out) / "epochs" / (rates.size() > 1 ? "lr-" + lr_text(lr) : "");
    auto save_epoch = [&](int64_t epoch, double score) {
      nlohmann::ordered_json em = {{"kind", "finetune-epoch"}, {"task", info.name}, {"epoch", epoch},
                                   {"lr", lr},           {"score", score},     {"checkpoint", fs::absolute(start).string()}};
      models::commit_checkpoint((epochs_dir / ("epoch-" + std::to_string(epoch))).string(), *candidate, nullptr, epoch, em,
                                fs::absolute(tokenizer.model_path()).string());
    };
    models::FinetuneResult result =
        models::finetune(candidate, source, train_options,
                         o.save_epochs ? std::function<void(int64_t, double)>(save_epoch) : nullptr);
    searched.push_back({{"lr", lr}, {"score", result.score}, {"best_epoch", result.best_epoch}});
    if (model.is_empty() || result.score > r.score) {
      model = candidate;
      r = std::move(result);
      o.train.lr = lr;
    }
  }

  nlohmann::ordered_json m;
  m["kind"] = "finetune";
  m["task"] = info.name;
  m["score"] = r.score;
  m["score_definition"] = "task score on " + nlohmann::json(info.eval_splits).dump() + " (datasets/metrics.h)";
  m["best_epoch"] = r.best_epoch;
  bool collapsed = false;
  for (const auto& split : r.best)
    if (std::find(info.eval_splits.begin(), info.eval_splits.end(), split.split) != info.eval_splits.end())
      collapsed = collapsed || split.collapsed();
  m["collapsed"] = collapsed;  // the best model predicts one class for a whole selection split
  for (const auto& split : r.best) m[split.split] = models::split_json(split);
  auto epochs = nlohmann::ordered_json::array();
  for (size_t e = 0; e < r.epoch_scores.size(); ++e)
    epochs.push_back({{"epoch", e + 1}, {"train_loss", r.epoch_train_loss[e]}, {"score", r.epoch_scores[e]}});
  m["epochs"] = epochs;
  if (rates.size() > 1) m["lr_search"] = searched;
  if (!r.class_weights.empty()) m["class_weights"] = r.class_weights;
  if (r.stopped_early) m["stopped_early"] = true;
  m["run"] = {{"checkpoint", fs::absolute(start).string()}, {"data_dir", o.data_dir}, {"epochs", o.train.epochs}, {"max_train_examples", o.max_train_examples},
              {"lr", o.train.lr}, {"embedding_lr_scale", o.train.embedding_lr_scale}, {"batch_size", o.data.batch_size}, {"max_len", o.data.max_length},
              {"seed", o.train.seed}, {"threads", torch::get_num_threads()},
              {"precision", models::precision_name(compute.precision)}, {"device", compute.device.str()},
              {"truncation", datasets::truncation_name(o.data.truncation)}, {"head_fraction", o.data.head_fraction},
              {"balance_classes", enum_name(models::class_balance_names(), o.train.balance_classes)}, {"patience", o.train.patience},
              {"warmup_fraction", o.train.warmup_fraction}};
  if (options.head == models::HeadType::kSequence)
    m["run"]["pooling"] = enum_name(models::classifier_pooling_names(), options.classifier_pooling);
  if (init) {  // where the run started: the fine-tuned model, its task, and whether its head was kept
    m["run"]["init_from_task"] = fs::absolute(init->checkpoint).string();
    m["run"]["init_task"] = init->source_task;
    m["run"]["head"] = init->keep_head ? "kept" : "new";
    if (!o.checkpoint.empty()) m["run"]["pretrained"] = fs::absolute(o.checkpoint).string();
  }
  models::commit_checkpoint(out, *model, nullptr, r.best_epoch, m, fs::absolute(tokenizer.model_path()).string());

  std::cout << "best epoch: " << r.best_epoch << " of " << o.train.epochs << "\n";
  for (const auto& split : r.best) {
    std::cout << split.split << ":";
    for (const auto& [k, v] : split.metrics) std::cout << " " << k << " " << v;
    std::cout << " score " << split.score << "\n";
  }
  if (collapsed)
    std::cout << "warning: the model predicts one class for every " << info.eval_splits.front()
              << " example (collapsed): it learnt only the class prior\n";
  std::cout << "score: " << r.score << "\ncheckpoint: " << out << "\n";
  return m;
}

void add_finetune_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "fine-tune a pretrained checkpoint on a task (best epoch on dev)");
  auto o = std::make_shared<FinetuneCliOptions>();
  cmd->add_option("--checkpoint", o->checkpoint, "pretrained checkpoint directory (required unless --init-from-task)");
  cmd->add_option("--init-from-task", o->init_from_task,
                  "start from a checkpoint fine-tuned on a task: its encoder and embeddings, and its head when the "
                  "task has the same kind and labels (else a new head)");
  cmd->add_option("--task", o->tasks,
                  "spam | brown-genre | brown-pos | glue:<task>, a comma-separated list, or a suite: glue (the GLUE "
                  "tasks in <data-dir>/glue), flexnas (spam, brown-genre, brown-pos)")
      ->required()
      ->delimiter(',');
  cmd->add_option("--out", o->out, "output checkpoint directory")->required();
  cmd->add_option("--data-dir", o->data_dir, "task data directory");
  cmd->add_option("--cache-dir", o->cache_dir, "token caches")->default_str("<data-dir>/cache");
  cmd->add_option("--tokenizer", o->tokenizer, "the checkpoint's tokenizer, when its recorded path moved");
  cmd->add_option("--epochs", o->train.epochs, "passes over the training split");
  cmd->add_option("--max-train-examples", o->max_train_examples,
                  "train on a seeded subsample of at most N examples; 0 = all")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", o->train.lr, "peak learning rate; 0 = auto: 1e-3 x min(1, 128 / the widest hidden size)");
  cmd->add_option("--embedding-lr-scale", o->train.embedding_lr_scale,
                  "the word embeddings learn at --lr x this (their rows move only when their token occurs)");
  cmd->add_option("--warmup-fraction", o->train.warmup_fraction, "warm-up share of the updates");
  cmd->add_option("--weight-decay", o->train.weight_decay, "AdamW weight decay");
  cmd->add_option("--batch-size", o->data.batch_size, "examples per update");
  cmd->add_option("--max-len", o->max_len,
                  "tokens per example incl. [CLS]/[SEP]; 0 = the task's default (spam 256, others 128)");
  cmd->add_option("--seed", o->train.seed, "head initialisation, dropout and shuffling");
  cmd->add_option("--threads", o->threads, "torch threads; 0 = every core");
  cmd->add_option("--accumulate", o->train.accumulate,
                  "split each batch into N micro-batches (gradient accumulation: same update, less memory)");
  add_enum_option(cmd, "--truncation", o->data.truncation, datasets::truncation_names(),
                  "long single texts keep their head, or head and tail");
  cmd->add_option("--head-fraction", o->data.head_fraction, "head+tail: share of --max-len taken from the beginning");
  add_enum_option(cmd, "--balance-classes", o->train.balance_classes, models::class_balance_names(),
                  "weight the loss by inverse class frequency; auto = where the task's score is F1 or MCC");
  CLI::Option* pooling = add_enum_option(cmd, "--pooling", o->pooling, models::classifier_pooling_names(),
                  "what a sequence head reads: the mean of the tokens, or the first ([CLS], as BERT); a head kept "
                  "by --init-from-task reads what it was trained on unless this is given");
  cmd->add_option("--patience", o->train.patience, "stop after N epochs without a better dev score; 0 = never");
  cmd->add_flag("--save-epochs", o->save_epochs,
                 "also keep every epoch's model in <out>/epochs/epoch-<n> (lr-<rate>/ with --lr-search), for flexnas probe --experiment");
  cmd->add_option("--lr-search", o->lr_search, "learning rates to try (comma-separated); the best on dev is kept")
      ->delimiter(',');
  add_compute_flags(*cmd, o->compute);
  cmd->callback([o, pooling] {
    o->pooling_given = pooling->count() > 0;
    run_finetune(*o);
  });
}

FLEXNAS_REGISTER_COMMAND("finetune", add_finetune_command);

}  // namespace
}  // namespace flexnas::launch
