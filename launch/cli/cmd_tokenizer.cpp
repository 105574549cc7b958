// flexnas tokenizer train|encode: the SentencePiece tokenizer shared by pretraining and fine-tuning
// (spec defect 32). SentencePiece runs in the helper executable flexnas-tokenize (datasets/tokenizer.h):
// this process links LibTorch, and the two crash when loaded together (PLATFORM.md).
#include <iostream>

#include "datasets/finetune_data.h"
#include "datasets/tokenizer.h"
#include "design_space/error.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"

namespace flexnas::launch {
namespace {

struct TokenizerOptions {
  datasets::TokenizerTrainOptions train;  // train: corpus, vocabulary, output, model type, seed
  std::string model;                      // encode: the tokenizer
  std::vector<std::string> corpus;        // encode: plain-text files
  std::string task;                       // encode: a registered task instead (datasets/tasks.h)
  std::string data_dir = datasets::TaskLoadOptions{}.data_dir;  // encode --task: where the task data lives
  std::string cache_dir;                  // encode: token caches (default <data-dir>/cache)
  int64_t max_length = datasets::FinetuneOptions{}.max_length;  // encode --task: tokens per example
};

void run_train(const TokenizerOptions& o) {
  if (o.train.vocab_size <= datasets::SpecialIds::kCount + 1)
    flag_error("--vocab-size", std::to_string(o.train.vocab_size) + " is too small; at least " +
               std::to_string(datasets::SpecialIds::kCount + 2));
  datasets::train_tokenizer(o.train);
  const datasets::Tokenizer tok(o.train.out, o.cache_dir.empty() ? o.data_dir + "/cache" : o.cache_dir);
  std::cout << "tokenizer: " << o.train.out << "\nvocab_size: " << tok.vocab_size() << "\nhash: " << datasets::hex64(tok.hash())
            << "\nspecial ids: pad 0, unk 1, cls 2, sep 3, mask 4\n";
}

void run_encode(const TokenizerOptions& o) {
  if (o.corpus.empty() && o.task.empty()) throw ConfigError("error: tokenizer encode: give --corpus FILE... or --task NAME");
  const datasets::Tokenizer tok(o.model, o.cache_dir.empty() ? o.data_dir + "/cache" : o.cache_dir);
  for (const auto& file : o.corpus) {
    const auto cache = tok.encode_text_file(file);
    std::cout << file << ": " << cache->num_documents() << " documents, " << cache->num_sentences() << " sentences, "
              << cache->num_tokens() << " tokens -> " << cache->path() << "\n";
  }
  if (!o.task.empty()) {
    const auto& info = datasets::task_info(o.task);
    datasets::TaskLoadOptions load;
    load.data_dir = o.data_dir;
    const auto data = datasets::load_task(o.task, load);
    datasets::FinetuneOptions ft;
    ft.max_length = o.max_length;
    for (const auto& split : info.splits) {
      const std::string name = datasets::task_file_name(o.task + "-" + split);
      const datasets::TaskDataset ds(info, data.splits.at(split), tok, name, ft);
      int64_t tokens = 0;
      for (int64_t e = 0; e < ds.size(); ++e) tokens += static_cast<int64_t>(ds.example_ids(e).size());
      std::cout << o.task << " " << split << ": " << ds.size() << " examples, " << tokens << " tokens, "
                << ds.truncated() << " truncated to " << o.max_length << "\n";
    }
  }
}

void add_tokenizer_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenizer", "train the SentencePiece tokenizer and tokenize corpora into caches");
  cmd->require_subcommand(1);
  auto o = std::make_shared<TokenizerOptions>();

  auto* train = cmd->add_subcommand("train", "train a tokenizer (special ids pad 0, unk 1, cls 2, sep 3, mask 4)");
  train->add_option("--corpus", o->train.corpus, "plain-text files, one sentence per line")->required()->expected(1, -1);
  train->add_option("--vocab-size", o->train.vocab_size, "vocabulary size including the 5 special ids")->required();
  train->add_option("--out", o->train.out, "model file to write (e.g. spm.model)")->required();
  add_choice_option(train, "--model-type", o->train.model_type, {"unigram", "bpe"}, "SentencePiece model type");
  train->add_option("--seed", o->train.seed, "random seed");
  train->add_option("--character-coverage", o->train.character_coverage, "character coverage");
  train->add_option("--max-sentences", o->train.max_sentences, "train on at most N sentences; 0 = all");
  train->add_option("--threads", o->train.threads, "trainer threads (1 is bit-reproducible)");
  train->add_option("--cache-dir", o->cache_dir, "token cache directory")->default_str("<data-dir>/cache");
  train->add_option("--data-dir", o->data_dir, "data directory");
  train->callback([o] { run_train(*o); });

  auto* encode = cmd->add_subcommand("encode", "tokenize corpora or a task once into token caches");
  encode->add_option("--model", o->model, "tokenizer model")->required();
  encode->add_option("--corpus", o->corpus, "plain-text files")->expected(1, -1);
  encode->add_option("--task", o->task, "a registered task (spam, brown-genre, brown-pos, glue:<task>)");
  encode->add_option("--data-dir", o->data_dir, "data directory");
  encode->add_option("--cache-dir", o->cache_dir, "token cache directory")->default_str("<data-dir>/cache");
  encode->add_option("--max-length", o->max_length, "task: tokens per example");
  encode->callback([o] { run_encode(*o); });
}

FLEXNAS_REGISTER_COMMAND("tokenizer", add_tokenizer_command);

}  // namespace
}  // namespace flexnas::launch
