// flexnas pretrain: masked-language-model (spec §8.2) or ELECTRA replaced-token-detection
// (models/electra.h) pretraining of one architecture on plain-text corpora, with a SentencePiece
// tokenizer shared with fine-tuning (defect 32).
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <iostream>
#include <sstream>

#include "datasets/mlm.h"
#include "datasets/tokenizer.h"
#include "design_space/architecture.h"
#include "design_space/arch_graph.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/checkpoint.h"
#include "models/electra.h"
#include "models/safetensors.h"
#include "models/trainer.h"
#include "transfer/transfer.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

/// --objective: the spellings are models::kObjectiveMlm / kObjectiveElectra (recorded in metrics.json).
enum class Objective { kMlm, kElectra };
const EnumNames<Objective>& objective_names() {
  static const EnumNames<Objective> names{{models::kObjectiveMlm, Objective::kMlm},
                                          {models::kObjectiveElectra, Objective::kElectra}};
  return names;
}

struct PretrainCliOptions {
  std::string arch;                 // model-dict JSON (optional with --resume: the checkpoint has it)
  std::string tokenizer;            // SentencePiece model from `flexnas tokenizer train`
  std::vector<std::string> corpus;  // plain-text files: one sentence per line, blank line between documents
  std::string out;                  // checkpoint directory
  std::string cache_dir;            // token caches (default: <first corpus dir>/cache)
  std::string init_from;            // warm start: weight transfer from this checkpoint (transfer/)
  transfer::TransferMode init_mode = transfer::TransferOptions{}.mode;
  int64_t threads = 0;              // torch intra-op threads (0 = every core)
  int64_t max_positions = models::ModelOptions{}.max_positions;  // relative distance tables: 2P-1 rows
  ComputeFlags compute;             // --device, --precision
  models::PretrainOptions train;    // steps, lr, warm-up, decay, clipping, eval/save cadence, seed, resume
  Objective objective = Objective::kMlm;
  models::ElectraOptions electra;   // --generator-size, --discriminator-weight, --keep-generator
  std::vector<std::string> given;   // the ELECTRA flags given on the command line (CLI11 counts)
  datasets::MlmOptions data;        // seq_len, batch_size, masking, held-out fraction
};

/// A flag's number as typed would read it: "0.25", "1.5", "-1", "nan".
std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check_positive(const char* flag, int64_t v) {
  if (v <= 0) flag_error(flag, "expected a positive integer, got " + std::to_string(v));
}
void check_non_negative(const char* flag, double v) {
  if (!(v >= 0) || !std::isfinite(v))
    flag_error(flag, "expected a non-negative number, got " + std::to_string(v));
}

void run_pretrain(PretrainCliOptions o) {
  check_positive("--steps", o.train.steps);
  check_positive("--seq-len", o.data.seq_len);
  check_positive("--batch-size", o.data.batch_size);
  check_positive("--accumulate", o.train.accumulate);
  if (o.train.accumulate > o.data.batch_size)
    flag_error("--accumulate", std::to_string(o.train.accumulate) + " micro-batches exceed --batch-size " +
               std::to_string(o.data.batch_size));
  check_positive("--max-positions", o.max_positions);
  if (o.data.seq_len < 3) flag_error("--seq-len", "expected at least 3 ([CLS] token [SEP]), got " + std::to_string(o.data.seq_len));
  if (o.data.seq_len > o.max_positions)
    flag_error("--seq-len", std::to_string(o.data.seq_len) + " exceeds --max-positions " +
               std::to_string(o.max_positions));
  if (!(o.train.lr > 0) || !std::isfinite(o.train.lr))
    flag_error("--lr", "expected a positive number, got " + std::to_string(o.train.lr));
  check_non_negative("--weight-decay", o.train.weight_decay);
  check_non_negative("--clip-norm", o.train.clip_norm);
  if (o.train.warmup_steps < -1 || o.train.warmup_steps > o.train.steps)
    flag_error("--warmup-steps", "expected 0.." + std::to_string(o.train.steps) + " (or -1: 10% of --steps), got " +
               std::to_string(o.train.warmup_steps));
  for (auto [flag, v] : {std::pair{"--eval-every", o.train.eval_every}, {"--save-every", o.train.save_every},
                         {"--log-every", o.train.log_every}, {"--stop-after", o.train.stop_after}})
    if (v < 0) flag_error(flag, "expected a non-negative integer, got " + std::to_string(v));
  if (!(o.data.mask_prob > 0 && o.data.mask_prob < 1))
    flag_error("--mask-prob", "expected a number in (0, 1), got " + std::to_string(o.data.mask_prob));
  const bool electra = o.objective == Objective::kElectra;
  const std::string objective = enum_name(objective_names(), o.objective);
  if (!(o.electra.generator_size > 0 && o.electra.generator_size <= 1))
    flag_error("--generator-size", "expected a number in (0, 1] (a fraction of the discriminator's widths), got " +
               number_text(o.electra.generator_size));
  if (!(o.electra.discriminator_weight > 0) || !std::isfinite(o.electra.discriminator_weight))
    flag_error("--discriminator-weight", "expected a positive number, got " +
               number_text(o.electra.discriminator_weight));
  if (!electra && !o.given.empty())
    flag_error(o.given.front(), "only with --objective electra");
  if (electra && o.train.stop_after > 0 && !o.electra.keep_generator)
    flag_error("--stop-after", "an ELECTRA run continues only from checkpoints with the generator; add "
               "--keep-generator");
  set_torch_threads(o.threads);
  for (const auto& file : o.corpus)
    if (!fs::is_regular_file(file)) flag_error("--corpus", "'" + file + "': no such file");
  if (!o.init_from.empty() && o.train.resume)
    flag_error("--init-from", "cannot be combined with --resume (the checkpoint being resumed has the weights)");
  if (!o.init_from.empty()) models::read_checkpoint_config(o.init_from);  // checked before the corpus is tokenized

  const bool resuming = o.train.resume && models::recover_checkpoint(o.out);
  nlohmann::ordered_json old_run = nlohmann::ordered_json::object();  // the run being resumed
  if (o.train.resume && fs::exists(fs::path(o.out) / models::kTrainStateJson)) {
    const auto old = models::read_metrics(o.out);
    if (old.contains("run")) old_run = old["run"];
  }
  // A checkpoint without run.objective was pretrained with MLM (the only objective then).
  const std::string old_objective = old_run.value("objective", std::string(models::kObjectiveMlm));
  if (o.train.resume && old_objective == models::kObjectiveElectra && !old_run.value("keep_generator", false))
    throw ConfigError(models::electra_core_only_message(o.out));
  if (o.train.resume && !resuming)
    flag_error("--resume", "no resumable checkpoint in '" + o.out +
               "' (needs config.json, model.safetensors, training_state.*)");
  if (resuming && old_objective != objective)
    flag_error("--objective", "the checkpoint in '" + o.out + "' was pretrained with the " + old_objective +
               " objective, not " + objective + "; resume it with --objective " + old_objective);
  if (resuming && electra) {
    // The generator's shape comes from the checkpoint: an explicit other size is an error.
    const double recorded = old_run.value("generator_size", o.electra.generator_size);
    if (std::find(o.given.begin(), o.given.end(), "--generator-size") != o.given.end() &&
        recorded != o.electra.generator_size)
      flag_error("--generator-size", "the checkpoint in '" + o.out + "' has a generator of size " +
                 number_text(recorded) + ", not " + number_text(o.electra.generator_size));
    o.electra.generator_size = recorded;
    if (std::find(o.given.begin(), o.given.end(), "--discriminator-weight") == o.given.end())
      o.electra.discriminator_weight = old_run.value("discriminator_weight", o.electra.discriminator_weight);
    o.electra.keep_generator = true;  // it was kept, and stays kept
  }
  if (!o.train.resume && fs::exists(fs::path(o.out) / models::kTrainStateJson))
    flag_error("--out", "'" + o.out + "' already holds a training checkpoint; pass --resume to continue it "
               "or choose another directory");

  Architecture arch;
  models::ModelOptions model_options;
  if (resuming) {
    const models::CheckpointConfig config = models::read_checkpoint_config(o.out);
    arch = config.arch;
    model_options = config.options;
    if (!o.arch.empty() && load_architecture(o.arch).to_json().dump() != arch.to_json().dump())
      flag_error("--arch", "'" + o.arch + "' is not the architecture of the checkpoint being resumed in '" + o.out + "'");
    if (!config.tokenizer_sha256.empty() && sha256_hex(read_file(o.tokenizer)) != config.tokenizer_sha256)
      flag_error("--tokenizer", "'" + o.tokenizer + "' is not the tokenizer of the checkpoint being resumed ('" +
                 config.tokenizer_file + "')");
  } else {
    if (o.arch.empty()) flag_error("--arch", "required (a model-dict JSON file)");
    arch = load_architecture(o.arch);
  }

  if (electra) {  // the derived generator must be buildable: checked before any file is written
    models::ModelOptions check = model_options;
    check.max_positions = resuming ? model_options.max_positions : o.max_positions;
    models::checked_generator_architecture(arch, check, o.electra.generator_size);
  }

  std::string recorded_precision;
  if (resuming) {
    const auto old = models::read_metrics(o.out);
    // A checkpoint from before precisions were recorded was trained in fp32.
    recorded_precision = old.contains("run") && old["run"].contains("precision") ? old["run"]["precision"] : "fp32";
  }
  const Compute compute = resolve_compute(o.compute, recorded_precision);
  o.train.precision = compute.precision;

  const std::string cache_dir =
      !o.cache_dir.empty() ? o.cache_dir : (fs::path(o.corpus.front()).parent_path() / "cache").string();
  const datasets::Tokenizer tokenizer(o.tokenizer, cache_dir);
  if (!resuming) {
    model_options.vocab_size = tokenizer.vocab_size();
    model_options.max_positions = o.max_positions;
    model_options.pad_id = datasets::SpecialIds::kPad;
    model_options.head = models::HeadType::kMlm;
    models::validate_architecture(arch, model_options, o.arch);
  } else if (model_options.vocab_size != tokenizer.vocab_size()) {
    flag_error("--tokenizer", "vocabulary " + std::to_string(tokenizer.vocab_size()) +
               " does not match the checkpoint's " + std::to_string(model_options.vocab_size));
  }
  if (o.data.seq_len > model_options.max_positions)
    flag_error("--seq-len", std::to_string(o.data.seq_len) + " exceeds the model's max positions " +
               std::to_string(model_options.max_positions));

  std::vector<std::shared_ptr<const datasets::TokenCache>> caches;
  for (const auto& file : o.corpus) caches.push_back(tokenizer.encode_text_file(file));
  o.data.seed = o.train.seed;
  const datasets::MlmData data(caches, tokenizer.vocab_size(), o.data);
  std::cout << "corpus: " << data.train_tokens() << " training tokens (" << data.num_train_blocks() << " blocks of "
            << o.data.seq_len << "), " << data.eval_tokens() << " held-out tokens (" << data.num_eval_batches()
            << " batches)\n";

  torch::manual_seed(o.train.seed);  // initialisation (a resume overwrites it with the checkpoint)
  models::FlexModel model(arch, model_options);
  std::cout << "model: " << model->num_parameters() << " parameters, vocabulary " << model_options.vocab_size << ", "
            << torch::get_num_threads() << " threads\n";
  models::ElectraModel electra_model{nullptr};
  if (electra) {
    // Built after the discriminator, from the same seeded stream.
    electra_model = models::ElectraModel(model, o.electra);
    int64_t generator_params = 0;
    for (const auto& [name, t] : electra_model->generator_tensors()) generator_params += t.numel();
    std::cout << "electra: generator " << electra_model->generator()->architecture().to_canonical_string() << " ("
              << generator_params << " parameters of its own; embeddings shared), discriminator weight "
              << o.electra.discriminator_weight << (o.electra.keep_generator ? ", generator kept" : ", core-only checkpoints")
              << "\n";
  }
  if (!o.init_from.empty()) {
    // Warm start (spec §6): every tensor the source can fill, copied, sliced or projected.
    const models::CheckpointConfig source = models::read_checkpoint_config(o.init_from);
    if (source.arch.format != arch.format)
      flag_error("--init-from", "the checkpoint '" + o.init_from + "' is in the " +
                 (source.arch.is_hetero() ? "hetero" : "standard") + " format, the architecture in the " +
                 (arch.is_hetero() ? "hetero" : "standard") + " format (transfer needs the same format)");
    const std::string weights = (fs::path(o.init_from) / models::kWeightsFile).string();
    transfer::TransferOptions to;
    to.mode = o.init_mode;
    to.seed = o.train.seed;
    const transfer::TransferPlan plan =
        transfer::transfer_weights(source.arch, source.options, models::read_safetensors(weights), *model, to, nullptr, weights);
    std::cout << "init-from " << o.init_from << " (" << transfer::mode_name(to.mode) << "): overlap " << plan.overlap()
              << " (" << plan.received << " of " << plan.total << " parameters received source values)\n";
  }

  model->to(compute.device);
  if (electra) electra_model->to(compute.device);

  nlohmann::ordered_json run;
  run["arch"] = arch.to_json();
  run["corpus"] = o.corpus;
  run["tokenizer"] = fs::absolute(o.tokenizer).string();
  run["batch_size"] = o.data.batch_size;
  run["seq_len"] = o.data.seq_len;
  run["mask_prob"] = o.data.mask_prob;
  if (!o.init_from.empty()) {
    run["init_from"] = o.init_from;
    run["init_mode"] = transfer::mode_name(o.init_mode);
  }
  const models::MlmSource source = models::mlm_source(data);
  const models::PretrainResult r =
      electra ? models::pretrain_electra(electra_model, source, o.train, o.out, fs::absolute(o.tokenizer).string(), run)
              : models::pretrain(model, source, o.train, o.out, fs::absolute(o.tokenizer).string(), run);
  std::cout << "steps: " << r.steps << " of " << o.train.steps << (r.start_step ? " (resumed at " + std::to_string(r.start_step) + ")" : "")
            << "\ntrain loss: " << (r.history.empty() ? 0.0 : r.history.back().loss);
  if (electra) {
    std::cout << "\neval loss: " << r.eval_loss << " (generator MLM + " << o.electra.discriminator_weight
              << " x discriminator BCE)";
    for (const auto& [name, value] : r.eval_metrics) std::cout << "\neval " << name << ": " << value;
  } else {
    std::cout << "\neval loss: " << r.eval_loss << " (perplexity " << r.eval_perplexity << "; ln(V) = "
              << std::log(double(model_options.vocab_size)) << ")";
  }
  std::cout << "\ntokens/s: " << r.tokens_per_second << "\ncheckpoint: " << o.out << "\n";
}

void add_pretrain_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("pretrain", "masked-language-model or ELECTRA pretraining of one architecture");
  auto o = std::make_shared<PretrainCliOptions>();
  cmd->add_option("--arch", o->arch, "model-dict JSON (standard or hetero format)");
  cmd->add_option("--tokenizer", o->tokenizer, "SentencePiece model (flexnas tokenizer train)")->required();
  cmd->add_option("--corpus", o->corpus, "plain-text files (one sentence per line, blank line between documents)")
      ->required()->expected(1, -1);
  cmd->add_option("--steps", o->train.steps, "optimiser updates in total")->required();
  cmd->add_option("--out", o->out, "checkpoint directory")->required();
  cmd->add_option("--seq-len", o->data.seq_len, "tokens per block incl. [CLS]/[SEP]");
  cmd->add_option("--batch-size", o->data.batch_size, "blocks per update");
  cmd->add_option("--lr", o->train.lr, "peak learning rate");
  cmd->add_option("--warmup-steps", o->train.warmup_steps, "linear warm-up steps; -1 = 10% of --steps");
  cmd->add_option("--weight-decay", o->train.weight_decay, "AdamW weight decay, not on biases/LayerNorm");
  cmd->add_option("--clip-norm", o->train.clip_norm, "gradient L2-norm clipping; 0 = off");
  cmd->add_option("--eval-every", o->train.eval_every, "held-out MLM evaluation every K steps; 0 = at the end");
  cmd->add_option("--max-eval-batches", o->train.max_eval_batches, "evaluate on at most N held-out batches; 0 = all");
  cmd->add_option("--save-every", o->train.save_every, "checkpoint every K steps; 0 = at the end");
  cmd->add_option("--log-every", o->train.log_every, "history entry every K steps");
  cmd->add_option("--stop-after", o->train.stop_after,
                  "stop with a checkpoint after N steps (continue with --resume); 0 = run to --steps");
  cmd->add_option("--seed", o->train.seed, "initialisation, dropout, shuffling and masking");
  cmd->add_option("--threads", o->threads, "torch threads; 0 = every core");
  cmd->add_option("--init-from", o->init_from, "warm start: transfer the weights of a checkpoint (any architecture of the same format)");
  add_enum_option(cmd, "--init-mode", o->init_mode, transfer::transfer_mode_names(),
                  "with --init-from: od copies the overlapping slices, rp projects randomly");
  cmd->add_flag("--resume", o->train.resume, "continue the checkpoint in --out bit-exactly");
  cmd->add_option("--max-positions", o->max_positions, "longest sequence the model supports");
  cmd->add_option("--mask-prob", o->data.mask_prob, "fraction of tokens predicted");
  cmd->add_option("--eval-fraction", o->data.eval_fraction, "held-out fraction of documents");
  cmd->add_option("--cache-dir", o->cache_dir, "token caches")->default_str("<corpus dir>/cache");
  cmd->add_option("--accumulate", o->train.accumulate,
                  "split each batch into N micro-batches (gradient accumulation: same update, less memory)");
  add_enum_option(cmd, "--objective", o->objective, objective_names(),
                  "mlm: masked-language modelling; electra: replaced-token detection with a small generator");
  cmd->add_option("--generator-size", o->electra.generator_size,
                  "electra: the generator's widths, heads and FFN as a fraction of the discriminator's, in (0, 1]");
  cmd->add_option("--discriminator-weight", o->electra.discriminator_weight,
                  "electra: loss = generator MLM + this x discriminator BCE");
  cmd->add_flag("--keep-generator", o->electra.keep_generator,
                "electra: store the generator and optimiser state in checkpoints (needed for --resume); without it, "
                "core-only checkpoints");
  add_compute_flags(*cmd, o->compute);
  cmd->callback([o, cmd] {
    for (const char* flag : {"--generator-size", "--discriminator-weight", "--keep-generator"})
      if (cmd->count(flag) > 0) o->given.push_back(flag);
    run_pretrain(*o);
  });
}

FLEXNAS_REGISTER_COMMAND("pretrain", add_pretrain_command);

}  // namespace
}  // namespace flexnas::launch
