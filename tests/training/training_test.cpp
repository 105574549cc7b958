// Training: schedule and AdamW decay groups by hand, bit-exact resume (stop and crash), loss going
// down on a tiny corpus, warm start, checkpoint commit recovery, best-on-dev selection, ELECTRA
// pretraining (learning, bit-exact resume, its checkpoints fine-tuned and probed), and the CLI
// (errors exit 2 naming the flag; a tiny pretrain -> finetune -> evaluate run end to end).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "datasets/mlm.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/progress.h"
#include "models/checkpoint.h"
#include "models/electra.h"
#include "models/safetensors.h"
#include "models/trainer.h"
#include "../launch/xml_check.h"

namespace flexnas::models {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("flexnas-train-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Seeded synthetic text with structure to learn: each sentence repeats a pattern of its topic.
std::string corpus_text(int docs, int sentences, unsigned seed) {
  static const std::vector<std::vector<std::string>> topics = {
      {"the", "jury", "said", "the", "court", "found", "the", "report"},
      {"a", "river", "runs", "past", "the", "old", "mill", "house"},
      {"music", "played", "in", "the", "church", "every", "sunday", "morning"},
      {"people", "bought", "paper", "at", "the", "market", "near", "school"}};
  std::mt19937 rng(seed);
  std::string out;
  for (int d = 0; d < docs; ++d) {
    if (d) out += "\n";
    const auto& topic = topics[rng() % topics.size()];
    for (int s = 0; s < sentences; ++s) {
      const size_t start = rng() % 3, len = 4 + rng() % 5;
      for (size_t w = 0; w < len; ++w) out += (w ? " " : "") + topic[(start + w) % topic.size()];
      out += " .\n";
    }
  }
  return out;
}

Architecture tiny_arch(int layers = 2) {
  std::string h, n, o, f, p;
  for (int i = 0; i < layers; ++i) {
    const char* sep = i ? "," : "";
    h += sep + std::string("32");
    n += sep + std::string("2");
    o += sep + std::string("\"sa\"");
    f += sep + std::string("[64]");
    p += sep + std::string("\"sdp\"");
  }
  return architecture_from_json(nlohmann::json::parse("{\"l\":" + std::to_string(layers) + ",\"h\":[" + h + "],\"n\":[" + n +
                                                      "],\"o\":[" + o + "],\"f\":[" + f + "],\"p\":[" + p + "]}"));
}

// One tokenizer + corpus per test binary (flexnas-tokenize trains it in well under a second).
struct Fixture {
  TempDir dir;
  std::string corpus, tokenizer;
  std::unique_ptr<datasets::Tokenizer> tok;
  Fixture() {
    corpus = dir / "corpus.txt";
    write_text(corpus, corpus_text(60, 12, 5));
    tokenizer = dir / "spm.model";
    datasets::TokenizerTrainOptions t;
    t.corpus = {corpus};
    t.vocab_size = 48;
    t.out = tokenizer;
    datasets::train_tokenizer(t);
    tok = std::make_unique<datasets::Tokenizer>(tokenizer, dir / "cache");
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

ModelOptions tiny_options() {
  ModelOptions o;
  o.vocab_size = fixture().tok->vocab_size();
  o.max_positions = 64;
  return o;
}

datasets::MlmOptions mlm_options() {
  datasets::MlmOptions m;
  m.seq_len = 32;
  m.batch_size = 4;
  m.seed = 3;
  m.eval_fraction = 0.1;
  return m;
}

class TrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    Progress::set_enabled(false);
  }
};

TEST_F(TrainingTest, ScheduleValuesByHand) {
  const LinearSchedule s{1e-3, 4, 12};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 2.5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(2), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(8), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(11), 1.25e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(12), 0.0);
  const LinearSchedule no_warmup{2e-4, 0, 4};
  EXPECT_DOUBLE_EQ(no_warmup.lr_at(0), 2e-4);
  EXPECT_DOUBLE_EQ(no_warmup.lr_at(2), 1e-4);
}

struct DecayProbe : torch::nn::Module {
  torch::Tensor weight, bias, ln_weight, ln_bias;
  DecayProbe() {
    auto dense = register_module("dense", std::make_shared<torch::nn::Module>());
    weight = dense->register_parameter("weight", torch::full({3}, 2.0));
    bias = dense->register_parameter("bias", torch::full({3}, 2.0));
    auto ln = register_module("LayerNorm", std::make_shared<torch::nn::Module>());
    ln_weight = ln->register_parameter("weight", torch::full({3}, 2.0));
    ln_bias = ln->register_parameter("bias", torch::full({3}, 2.0));
  }
};

TEST_F(TrainingTest, AdamWDecaysWeightsOnlyNotBiasesOrLayerNorm) {
  EXPECT_TRUE(decays("bert.encoder.layer.0.intermediate.dense.weight"));
  EXPECT_FALSE(decays("bert.encoder.layer.0.intermediate.dense.bias"));
  EXPECT_FALSE(decays("bert.embeddings.LayerNorm.weight"));
  EXPECT_FALSE(decays("bert.encoder.layer.1.output.LayerNorm.bias"));
  DecayProbe m;
  AdamW opt(m, AdamWOptions{});  // defaults: beta2 0.98, eps 1e-6, weight decay 0.01
  EXPECT_DOUBLE_EQ(opt.options().beta2, 0.98);
  EXPECT_DOUBLE_EQ(opt.options().eps, 1e-6);
  EXPECT_DOUBLE_EQ(opt.options().weight_decay, 0.01);
  // Zero gradients: the Adam step is 0, only decoupled weight decay moves a parameter.
  for (auto& p : m.parameters()) p.mutable_grad() = torch::zeros_like(p);
  opt.step(0.5);
  EXPECT_TRUE(torch::allclose(m.weight, torch::full({3}, 2.0 * (1 - 0.5 * 0.01))));
  EXPECT_TRUE(torch::equal(m.bias, torch::full({3}, 2.0)));
  EXPECT_TRUE(torch::equal(m.ln_weight, torch::full({3}, 2.0)));
  EXPECT_TRUE(torch::equal(m.ln_bias, torch::full({3}, 2.0)));
}

PretrainOptions resume_options() {
  PretrainOptions p;
  p.steps = 12;
  p.lr = 2e-3;
  p.warmup_steps = 3;
  p.save_every = 4;
  p.eval_every = 6;
  p.log_every = 1;
  p.seed = 11;
  return p;
}

PretrainResult run_pretrain(const std::string& out, PretrainOptions p, const MlmSource& source) {
  torch::manual_seed(p.seed);
  FlexModel model(tiny_arch(), tiny_options());
  return pretrain(model, source, p, out, fixture().tokenizer);
}

std::vector<double> eval_losses(const std::vector<StepRecord>& h) {
  std::vector<double> out;
  for (const auto& r : h)
    if (r.eval_loss >= 0) out.push_back(r.eval_loss);
  return out;
}

TEST_F(TrainingTest, ResumeAfterStopIsBitExact) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  const PretrainResult full = run_pretrain(f.dir / "full", resume_options(), source);
  ASSERT_EQ(full.losses.size(), 12u);

  PretrainOptions first = resume_options();
  first.stop_after = 7;  // not a multiple of save_every: the stop itself commits
  const PretrainResult part = run_pretrain(f.dir / "part", first, source);
  EXPECT_EQ(part.steps, 7);
  PretrainOptions second = resume_options();
  second.resume = true;
  const PretrainResult rest = run_pretrain(f.dir / "part", second, source);
  EXPECT_EQ(rest.start_step, 7);
  EXPECT_EQ(rest.losses, full.losses);  // exact, every step
  EXPECT_EQ(eval_losses(rest.history), eval_losses(full.history));
  // Same weights at the end, bit for bit.
  const auto a = read_safetensors(f.dir / "full/model.safetensors");
  const auto b = read_safetensors(f.dir / "part/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  const auto metrics = read_metrics(f.dir / "part");
  EXPECT_EQ(metrics["step"].get<int64_t>(), 12);
  EXPECT_EQ(metrics["losses"].size(), 12u);
}

TEST_F(TrainingTest, ResumeAfterCrashContinuesFromLastCheckpointBitExactly) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  const PretrainResult full = run_pretrain(f.dir / "full2", resume_options(), source);
  // A run that dies while computing step 10 (checkpoints at 4 and 8).
  MlmSource crashing = source;
  crashing.train_batch = [&](int64_t step) {
    if (step == 9) throw std::runtime_error("killed");
    return data.batch_at(step);
  };
  EXPECT_THROW(run_pretrain(f.dir / "crash", resume_options(), crashing), std::runtime_error);
  EXPECT_EQ(read_metrics(f.dir / "crash")["step"].get<int64_t>(), 8);
  PretrainOptions again = resume_options();
  again.resume = true;
  const PretrainResult rest = run_pretrain(f.dir / "crash", again, source);
  EXPECT_EQ(rest.start_step, 8);
  EXPECT_EQ(rest.losses, full.losses);
  EXPECT_EQ(eval_losses(rest.history), eval_losses(full.history));
  // Resuming without a checkpoint is a user error.
  EXPECT_THROW(run_pretrain(f.dir / "nothing", again, source), ConfigError);
}

TEST_F(TrainingTest, Bf16ResumeIsBitExactAndThePrecisionIsRecordedAndEnforced) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  PretrainOptions bf16 = resume_options();
  bf16.precision = Precision::kBf16;
  const PretrainResult full = run_pretrain(f.dir / "bf16-full", bf16, source);
  PretrainOptions first = bf16;
  first.stop_after = 5;
  run_pretrain(f.dir / "bf16-part", first, source);
  EXPECT_EQ(read_metrics(f.dir / "bf16-part")["run"]["precision"], "bf16");
  // Resuming in another precision would not continue the same run.
  PretrainOptions wrong = resume_options();
  wrong.resume = true;
  try {
    run_pretrain(f.dir / "bf16-part", wrong, source);
    ADD_FAILURE() << "resuming a bf16 run in fp32 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--precision: the checkpoint in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("was trained in bf16, not fp32"), std::string::npos) << e.what();
  }
  PretrainOptions second = bf16;
  second.resume = true;
  const PretrainResult rest = run_pretrain(f.dir / "bf16-part", second, source);
  EXPECT_EQ(rest.losses, full.losses);  // bit-exact within one precision
  // The checkpoint stays fp32 and loads for an fp32 run.
  for (const auto& [name, t] : read_safetensors(f.dir / "bf16-part/model.safetensors"))
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
  // bf16 follows fp32 closely on this tiny run (same data, same seed).
  const PretrainResult fp32 = run_pretrain(f.dir / "fp32-full", resume_options(), source);
  EXPECT_NEAR(full.eval_loss, fp32.eval_loss, 0.05 * fp32.eval_loss);
}

TEST_F(TrainingTest, AccumulatedMicroBatchesGiveTheWholeBatchGradient) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const datasets::MlmBatch batch = data.batch_at(0);
  auto gradients = [&](int64_t micro, Precision precision) {
    torch::manual_seed(4);
    FlexModel model(tiny_arch(), tiny_options());
    model->eval();  // no dropout: the same function whatever the split
    const double loss = accumulate_gradients(*model, batch.input_ids, batch.attention_mask, batch.labels, micro, precision);
    std::vector<torch::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return std::make_pair(loss, g);
  };
  const auto [whole_loss, whole] = gradients(1, Precision::kFp32);
  for (int64_t micro : {2, 3, 4}) {
    const auto [loss, parts] = gradients(micro, Precision::kFp32);
    EXPECT_NEAR(loss, whole_loss, 1e-5 * whole_loss) << micro;
    for (size_t i = 0; i < whole.size(); ++i)
      EXPECT_TRUE(torch::allclose(parts[i], whole[i], 1e-4, 1e-6)) << "micro " << micro << " parameter " << i;
  }
  // The fp32 islands under bf16: the loss is fp32 and close to the fp32 one, every gradient fp32.
  const auto [bf16_loss, bf16_grads] = gradients(1, Precision::kBf16);
  EXPECT_NEAR(bf16_loss, whole_loss, 0.02 * whole_loss);
  for (const auto& g : bf16_grads) EXPECT_EQ(g.scalar_type(), torch::kFloat);
}

TEST_F(TrainingTest, BalancedClassWeightsAndCollapseDetection) {
  // sklearn's "balanced": n / (K * count).
  const auto w = balanced_class_weights({30, 10});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_DOUBLE_EQ(w[0], 40.0 / 60.0);
  EXPECT_DOUBLE_EQ(w[1], 2.0);
  EXPECT_EQ(balanced_class_weights({5, 0, 5}), (std::vector<double>{1.0, 0.0, 1.0}));  // K = 2 classes occur
  EXPECT_TRUE(balanced_class_weights({}).empty());
  // The learning-rate default: inversely proportional to the width above 128.
  EXPECT_DOUBLE_EQ(auto_finetune_lr(tiny_arch()), 1e-3);  // h = 32
  EXPECT_DOUBLE_EQ(auto_finetune_lr(architecture_from_json(nlohmann::json::parse(
                       R"({"l":2,"h":[256,128],"n":[2,2],"o":["sa","sa"],"f":[[64],[64]],"p":["sdp","sdp"]})"))),
                   5e-4);
  // A weighted loss counts the rare class more: the same logits, a larger loss on its examples.
  torch::manual_seed(1);
  ModelOptions o = tiny_options();
  o.head = HeadType::kSequence;
  FlexModel model(tiny_arch(), o);
  model->eval();
  const auto ids = torch::full({2, 8}, 7, torch::kLong), mask = torch::ones({2, 8}, torch::kLong);
  const auto labels = torch::tensor({1, 1});
  const double plain = model->loss(ids, mask, labels).item<double>();
  model->set_class_weights(torch::tensor({1.0f, 3.0f}));
  EXPECT_NEAR(model->loss(ids, mask, labels).item<double>(), plain, 1e-6);  // one class only: the mean is unchanged
  const auto mixed = torch::tensor({0, 1});
  const double weighted = model->loss(ids, mask, mixed).item<double>();
  model->set_class_weights({});
  const double unweighted = model->loss(ids, mask, mixed).item<double>();
  // Identical inputs: equal logits, so the weighted mean moves towards class 1's loss.
  const auto logits = model->forward(ids, mask).logits;
  const auto per = torch::cross_entropy_loss(logits, mixed, {}, at::Reduction::None);
  EXPECT_NEAR(weighted, (per[0].item<double>() + 3 * per[1].item<double>()) / 4, 1e-6);
  EXPECT_NEAR(unweighted, per.mean().item<double>(), 1e-6);
  // Collapse: one predicted class for a split with several gold classes.
  SplitResult r;
  r.gold_classes = 2;
  r.predicted_classes = 1;
  EXPECT_TRUE(r.collapsed());
  EXPECT_TRUE(split_json(r)["collapsed"].get<bool>());
  r.predicted_classes = 2;
  EXPECT_FALSE(r.collapsed());
  r.gold_classes = 1;
  r.predicted_classes = 1;
  EXPECT_FALSE(r.collapsed());  // a split with one gold class cannot tell
}

TEST_F(TrainingTest, PretrainingLowersHeldOutLoss) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  torch::manual_seed(2);
  FlexModel model(tiny_arch(), tiny_options());
  const double before = evaluate_mlm(*model, source);
  PretrainOptions p;
  p.steps = 80;
  p.lr = 3e-3;
  p.warmup_steps = 8;
  p.seed = 2;
  const PretrainResult r = pretrain(model, source, p, f.dir / "learn", f.tokenizer);
  EXPECT_NEAR(before, std::log(double(f.tok->vocab_size())), 0.5);  // untrained: about ln(V)
  EXPECT_LT(r.eval_loss, before - 0.4);                               // measured: 3.88 -> 3.19
  EXPECT_LT(r.history.back().loss, r.history.front().loss - 0.4);  // training loss too
  EXPECT_NEAR(r.eval_perplexity, std::exp(r.eval_loss), 1e-9);
  // The checkpoint has every DESIGN.md §3 file and records the tokenizer.
  for (const char* file : {"config.json", "model.safetensors", "training_state.safetensors", "training_state.json", "metrics.json"})
    EXPECT_TRUE(fs::exists(fs::path(f.dir / "learn") / file)) << file;
  const auto config = read_checkpoint_config(f.dir / "learn");
  EXPECT_EQ(config.tokenizer_file, f.tokenizer);
  EXPECT_FALSE(config.tokenizer_sha256.empty());
  EXPECT_FALSE(fs::exists(fs::path(f.dir / "learn") / ".commit"));
}

TEST_F(TrainingTest, CommitRecoveryFinishesCompleteStagingAndDropsIncompleteOne) {
  const auto& f = fixture();
  torch::manual_seed(6);
  FlexModel model(tiny_arch(1), tiny_options());
  AdamW opt(*model);
  const std::string dir = f.dir / "commit";
  commit_checkpoint(dir, *model, &opt, 3, {{"step", 3}}, "");
  EXPECT_TRUE(recover_checkpoint(dir));
  // An incomplete staging (killed while writing) is dropped; the committed step 3 stays.
  write_text(dir + "/.commit/model.safetensors", "partial");
  EXPECT_TRUE(recover_checkpoint(dir));
  EXPECT_FALSE(fs::exists(dir + "/.commit"));
  EXPECT_EQ(read_metrics(dir)["step"], 3);
  // A complete staging whose renames were interrupted is finished.
  fs::create_directories(dir + "/.commit");
  write_text(dir + "/.commit/metrics.json", "{\"step\": 5}\n");
  write_text(dir + "/.commit/training_state.json",
             "{\"step\": 5, \"optimizer_steps\": 0, \"files\": [\"metrics.json\", \"training_state.safetensors\", "
             "\"training_state.json\"]}\n");
  EXPECT_TRUE(recover_checkpoint(dir));
  EXPECT_EQ(read_metrics(dir)["step"], 5);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/training_state.json"))["step"], 5);
}

// A synthetic sequence task: label 1 iff token 7 occurs. Batches are [B, T] with T = 8.
datasets::TaskBatch synthetic_batch(int64_t seed, int64_t rows) {
  torch::manual_seed(1000 + seed);
  auto ids = torch::randint(10, 40, {rows, 8}, torch::kLong);
  auto labels = torch::randint(0, 2, {rows}, torch::kLong);
  ids.index_put_({torch::indexing::Slice(), 3}, torch::where(labels == 1, torch::full({rows}, 7L), ids.select(1, 3)));
  ids.index_put_({torch::indexing::Slice(), 0}, 2);
  datasets::TaskBatch b;
  b.input_ids = ids;
  b.attention_mask = torch::ones_like(ids);
  b.token_type_ids = torch::zeros_like(ids);
  b.labels = labels;
  return b;
}

TaskSource synthetic_task() {
  TaskSource s;
  s.info.name = "synthetic";
  s.info.kind = datasets::TaskKind::kSequenceClassification;
  s.info.num_labels = 2;
  s.num_train_batches = 12;
  s.train_batch = [](int64_t epoch, int64_t i) { return synthetic_batch(epoch * 100 + i, 16); };
  s.selection.push_back(EvalSplit{"dev", 3, [](int64_t i) { return synthetic_batch(50000 + i, 16); }});
  s.report.push_back(EvalSplit{"test", 3, [](int64_t i) { return synthetic_batch(60000 + i, 16); }});
  s.metrics = [](const datasets::Predictions& p) {
    int64_t right = 0;
    for (size_t i = 0; i < p.gold.size(); ++i) right += p.predicted[i] == p.gold[i];
    return datasets::MetricSet{{"accuracy", double(right) / double(p.gold.size())}};
  };
  s.score = [](const datasets::MetricSet& m) { return m.at("accuracy"); };
  return s;
}

TEST_F(TrainingTest, FinetuneLearnsAndKeepsTheBestDevEpoch) {
  ModelOptions o = tiny_options();
  o.head = HeadType::kSequence;
  o.num_labels = 2;
  torch::manual_seed(7);
  FlexModel model(tiny_arch(1), o);
  TaskSource task = synthetic_task();
  // Real scores from the real predictions, then a forced ranking: epoch 2 best. The weights after
  // each epoch's dev evaluation are recorded to check which ones come back.
  const std::vector<double> forced = {0.5, 0.9, 0.7};
  std::vector<std::vector<torch::Tensor>> after_epoch;
  std::vector<double> real;
  auto real_score = task.score;
  task.score = [&](const datasets::MetricSet& m) {
    const size_t e = after_epoch.size();
    if (e >= forced.size()) return real_score(m);  // the final evaluation of the restored model
    real.push_back(real_score(m));
    std::vector<torch::Tensor> w;
    for (auto& p : model->parameters()) w.push_back(p.detach().clone());
    after_epoch.push_back(w);
    return forced[e];
  };
  FinetuneTrainOptions fo;
  fo.epochs = 3;
  fo.lr = 3e-3;
  const FinetuneResult r = finetune(model, task, fo);
  EXPECT_EQ(r.best_epoch, 2);
  EXPECT_DOUBLE_EQ(r.score, 0.9);
  ASSERT_EQ(after_epoch.size(), 3u);
  const auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], after_epoch[1][i]));
  EXPECT_FALSE(torch::equal(after_epoch[1].back(), after_epoch[2].back()));
  // The task is learnt (token 7 at position 3 decides the label).
  EXPECT_GT(*std::max_element(real.begin(), real.end()), 0.85);
  ASSERT_EQ(r.best.size(), 2u);
  EXPECT_EQ(r.best[0].split, "dev");
  EXPECT_EQ(r.best[1].split, "test");
  EXPECT_LT(r.epoch_train_loss.back(), r.epoch_train_loss.front());
}

TEST_F(TrainingTest, FinetuneWordEmbeddingsLearnAtTheScaledRate) {
  // One update at the peak rate (no warm-up): Adam's first step moves every weight with a gradient by
  // the rate itself (m / sqrt(v) = +-1), so the largest move of each tensor reads off its rate: the
  // word embeddings' is lr x embedding_lr_scale (default 1), every other tensor's is lr.
  ModelOptions o = tiny_options();
  o.head = HeadType::kSequence;
  o.num_labels = 2;
  for (double scale : {10.0, 1.0}) {
    torch::manual_seed(7);
    FlexModel model(tiny_arch(1), o);
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : model->named_parameters()) before[p.key()] = p.value().detach().clone();
    TaskSource task = synthetic_task();
    task.num_train_batches = 1;
    FinetuneTrainOptions fo;
    fo.epochs = 1;
    fo.lr = 1e-3;
    fo.warmup_fraction = 0;
    fo.weight_decay = 0;
    fo.embedding_lr_scale = scale;
    finetune(model, task, fo);
    // Tensors whose gradients are near Adam's eps (attention key biases, ...) move less than their
    // rate, never more; the word embeddings and the classifier have large gradients.
    for (const auto& p : model->named_parameters()) {
      const double moved = (p.value() - before[p.key()]).abs().max().item<double>();
      const bool word = p.key().find("word_embeddings") != std::string::npos;
      EXPECT_LE(moved / fo.lr, (word ? scale : 1.0) * 1.001) << p.key() << " scale " << scale;
      if (word) EXPECT_NEAR(moved / fo.lr, scale, 0.001 * scale) << "scale " << scale;
      if (p.key() == "classifier.weight") EXPECT_NEAR(moved / fo.lr, 1.0, 0.001) << "scale " << scale;
    }
  }
  EXPECT_DOUBLE_EQ(FinetuneTrainOptions{}.embedding_lr_scale, 1.0);
}

TEST_F(TrainingTest, ClassBalanceAutoWeightsOnlyTasksScoredByF1OrMcc) {
  // auto: weighted where the score is F1/MCC (spam, MRPC, QQP, CoLA), plain where it is accuracy
  // (brown-genre: weighting cost it 0.19 dev accuracy, docs/training.md); true/false override.
  EXPECT_TRUE(datasets::score_rewards_minority_classes(datasets::ScoreRule::kMeanAccuracyF1));
  EXPECT_TRUE(datasets::score_rewards_minority_classes(datasets::ScoreRule::kMcc));
  EXPECT_FALSE(datasets::score_rewards_minority_classes(datasets::ScoreRule::kAccuracy));
  EXPECT_FALSE(datasets::score_rewards_minority_classes(datasets::ScoreRule::kMeanPearsonSpearman));
  ModelOptions o = tiny_options();
  o.head = HeadType::kSequence;
  o.num_labels = 2;
  auto weights_of = [&](datasets::ScoreRule rule, ClassBalance balance) {
    torch::manual_seed(7);
    FlexModel model(tiny_arch(1), o);
    TaskSource task = synthetic_task();
    task.num_train_batches = 2;
    task.info.score = rule;
    task.train_label_counts = {30, 10};
    FinetuneTrainOptions fo;
    fo.epochs = 1;
    fo.lr = 1e-3;
    fo.balance_classes = balance;
    return finetune(model, task, fo).class_weights;
  };
  const std::vector<double> balanced = {40.0 / 60.0, 2.0};
  EXPECT_EQ(weights_of(datasets::ScoreRule::kMeanAccuracyF1, ClassBalance::kAuto), balanced);
  EXPECT_EQ(weights_of(datasets::ScoreRule::kMcc, ClassBalance::kAuto), balanced);
  EXPECT_TRUE(weights_of(datasets::ScoreRule::kAccuracy, ClassBalance::kAuto).empty());
  EXPECT_EQ(weights_of(datasets::ScoreRule::kAccuracy, ClassBalance::kOn), balanced);
  EXPECT_TRUE(weights_of(datasets::ScoreRule::kMeanAccuracyF1, ClassBalance::kOff).empty());
  EXPECT_EQ(enum_spellings(class_balance_names()), (std::vector<std::string>{"auto", "true", "false"}));
}

// ---- CLI (the shipped flexnas executable) ----

struct CliRun {
  int code;
  std::string output;
};
CliRun flexnas(const std::string& args) {
  const std::string cmd = std::string(FLEXNAS_BIN) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void expect_usage_error(const std::string& args, const std::string& needle) {
  const CliRun r = flexnas(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
}

void write_sst2(const std::string& data_dir) {
  std::mt19937 rng(9);
  const std::vector<std::string> words = {"the", "film", "was", "a", "story", "plot", "actor", "scene", "long", "old"};
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", 160}, {"dev", 40}}) {
    std::string tsv = "sentence\tlabel\n";
    for (int i = 0; i < n; ++i) {
      const int label = int(rng() % 2);
      std::string s;
      for (int w = 0; w < 6; ++w) s += words[rng() % words.size()] + " ";
      s += label ? "good" : "bad";
      tsv += s + "\t" + std::to_string(label) + "\n";
    }
    write_text(data_dir + "/glue/SST-2/" + split + ".tsv", tsv);
  }
}

TEST_F(TrainingTest, CliReportsBadFlagsAndFilesWithExitCode2) {
  const auto& f = fixture();
  const std::string arch = f.dir / "arch.json";
  write_text(arch, tiny_arch().to_json().dump());
  const std::string base = "pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus;
  expect_usage_error(base + " --steps 0 --out " + (f.dir / "x"), "--steps: expected a positive integer, got 0");
  expect_usage_error(base + " --steps 5 --lr -1 --out " + (f.dir / "x"), "--lr");
  expect_usage_error(base + " --steps 5 --seq-len 600 --out " + (f.dir / "x"), "--seq-len: 600 exceeds --max-positions 514");
  expect_usage_error("pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + (f.dir / "missing.txt") +
                         " --steps 5 --out " + (f.dir / "x"),
                     "--corpus: '" + (f.dir / "missing.txt") + "': no such file");
  expect_usage_error(base + " --steps 5 --resume --out " + (f.dir / "empty"), "--resume: no resumable checkpoint");
  expect_usage_error("finetune --checkpoint " + (f.dir / "nope") + " --task spam --out " + (f.dir / "y"),
                     "--checkpoint: '" + (f.dir / "nope") + "': no such directory");
}

void write_rte(const std::string& data_dir, const std::string& bad_row = "") {
  std::mt19937 rng(10);
  const std::vector<std::string> words = {"the", "film", "was", "a", "story", "plot"};
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", 120}, {"dev", 30}}) {
    std::string tsv = "index\tsentence1\tsentence2\tlabel\n";
    for (int i = 0; i < n; ++i) {
      const bool entails = rng() % 2;
      std::string a, b;
      for (int w = 0; w < 4; ++w) a += words[rng() % words.size()] + " ";
      b = entails ? "good" : "bad";
      tsv += std::to_string(i) + "\t" + a + "\t" + b + "\t" + (entails ? "entailment" : "not_entailment") + "\n";
    }
    if (split == "dev" && !bad_row.empty()) tsv += bad_row;
    write_text(data_dir + "/glue/RTE/" + split + ".tsv", tsv);
  }
}

// --task glue: every GLUE task with files in the data dir (here SST-2 and RTE), one checkpoint per
// task, metrics.json with per-task metrics and the suite score = mean of the task scores.
TEST_F(TrainingTest, CliFinetuneSuiteScoresEveryTaskAndTheirMean) {
  const auto& f = fixture();
  const std::string arch = f.dir / "arch-suite.json";
  write_text(arch, tiny_arch().to_json().dump());
  const std::string data_dir = f.dir / "suite-data";
  write_sst2(data_dir);
  write_rte(data_dir);
  const std::string ckpt = f.dir / "suite-pre";
  CliRun r = flexnas("pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus +
                     " --steps 3 --seq-len 32 --batch-size 4 --threads 1 --seed 3 --out " + ckpt);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string out = f.dir / "suite-ft";
  r = flexnas("finetune --checkpoint " + ckpt + " --task glue --data-dir " + data_dir +
              " --epochs 1 --batch-size 16 --max-len 32 --threads 1 --embedding-lr-scale 10 --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("word embeddings: lr x 10 (--embedding-lr-scale)"), std::string::npos) << r.output;
  const auto m = nlohmann::json::parse(read_file(out + "/metrics.json"));
  ASSERT_EQ(m["tasks"].size(), 2u) << m.dump();
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(read_file(out + "/glue-rte/metrics.json"))["run"]["embedding_lr_scale"].get<double>(), 10.0);
  const double rte = m["task_scores"]["glue:rte"].get<double>(), sst2 = m["task_scores"]["glue:sst2"].get<double>();
  EXPECT_DOUBLE_EQ(m["score"].get<double>(), (rte + sst2) / 2);
  EXPECT_DOUBLE_EQ(m["tasks"]["glue:rte"]["dev"]["accuracy"].get<double>(), rte);  // RTE: accuracy alone
  EXPECT_TRUE(fs::exists(out + "/glue-sst2/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/glue-rte/metrics.json"));
  EXPECT_TRUE(m.contains("collapsed"));
  // A list of tasks works the same way; an unknown name lists the tasks and suites.
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue:sst2,superglue --data-dir " + data_dir + " --out " +
                         (f.dir / "x"),
                     "--task: unknown task or suite 'superglue'; allowed: spam, brown-genre");
  // A suite whose data is missing says which task's files and where it looked.
  expect_usage_error("finetune --checkpoint " + ckpt + " --task flexnas --data-dir " + data_dir + " --out " + (f.dir / "x"),
                     "--task: suite flexnas: spam: missing " + data_dir + "/spam-assassin");
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue --data-dir " + (f.dir / "empty-data") + " --out " +
                         (f.dir / "x"),
                     "suite glue: no GLUE task has its files under");
  // A GLUE TSV with a bad row: file, line and column; nothing written.
  const std::string bad_dir = f.dir / "bad-data";
  write_rte(bad_dir, "31\tsome words\tgood\tmaybe\n");
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue:rte --data-dir " + bad_dir + " --out " +
                         (f.dir / "bad-out"),
                     bad_dir + "/glue/RTE/dev.tsv:32");
  EXPECT_FALSE(fs::exists(f.dir / "bad-out/metrics.json"));
}

TEST_F(TrainingTest, CliPretrainFinetuneEvaluateEndToEnd) {
  const auto& f = fixture();
  const std::string arch = f.dir / "arch-e2e.json";
  write_text(arch, tiny_arch().to_json().dump());
  const std::string data_dir = f.dir / "data";
  write_sst2(data_dir);
  // Pretraining corpus with the SST-2 words, so the tokenizer covers them.
  const std::string ckpt = f.dir / "e2e-pre";
  CliRun r = flexnas("pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus +
                  " --steps 6 --seq-len 32 --batch-size 4 --save-every 3 --threads 1 --seed 3 --out " + ckpt);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("eval loss:"), std::string::npos) << r.output;
  // Pretraining again into the same directory without --resume is refused.
  expect_usage_error("pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus +
                         " --steps 6 --out " + ckpt,
                     "pass --resume");

  // Defect 32: another tokenizer than the checkpoint's is an error.
  const std::string other = f.dir / "other.model";
  write_text(f.dir / "other.txt", corpus_text(30, 10, 99) + "good bad film plot\n");
  datasets::TokenizerTrainOptions t;
  t.corpus = {f.dir / "other.txt"};
  t.vocab_size = 50;
  t.out = other;
  datasets::train_tokenizer(t);
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue:sst2 --data-dir " + data_dir + " --tokenizer " +
                         other + " --out " + (f.dir / "ft-bad"),
                     "is not the tokenizer checkpoint");
  expect_usage_error("finetune --checkpoint " + ckpt + " --task nope --out " + (f.dir / "ft-bad"), "--task");
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue:sst2 --epochs 0 --out " + (f.dir / "ft-bad"),
                     "--epochs: expected a positive integer, got 0");
  expect_usage_error("finetune --checkpoint " + ckpt + " --task glue:sst2 --embedding-lr-scale 0 --out " +
                         (f.dir / "ft-bad"),
                     "--embedding-lr-scale: expected a positive number, got 0");

  const std::string ft = f.dir / "e2e-ft";
  r = flexnas("finetune --checkpoint " + ckpt + " --task glue:sst2 --data-dir " + data_dir +
              " --epochs 2 --lr 1e-3 --batch-size 16 --max-len 32 --threads 1 --seed 4 --out " + ft);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto m = nlohmann::json::parse(read_file(ft + "/metrics.json"));
  ASSERT_TRUE(m.contains("score") && m["score"].is_number()) << m.dump();
  EXPECT_EQ(m["task"], "glue:sst2");
  EXPECT_TRUE(m["dev"].contains("accuracy"));
  EXPECT_DOUBLE_EQ(m["score"].get<double>(), m["dev"]["score"].get<double>());
  EXPECT_EQ(m["epochs"].size(), 2u);
  EXPECT_DOUBLE_EQ(m["run"]["embedding_lr_scale"].get<double>(), 1.0);  // the default: one rate
  EXPECT_EQ(r.output.find("word embeddings: lr x"), std::string::npos) << r.output;

  r = flexnas("evaluate --checkpoint " + ft + " --task glue:sst2 --data-dir " + data_dir + " --max-len 32 --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto e = nlohmann::json::parse(read_file(ft + "/eval-glue-sst2-dev.json"));
  EXPECT_DOUBLE_EQ(e["score"].get<double>(), m["score"].get<double>());  // same model, same split
  expect_usage_error("evaluate --checkpoint " + ft + " --task glue:sst2 --split test --data-dir " + data_dir,
                     "--split: 'test' is not a split of glue:sst2");
  expect_usage_error("evaluate --checkpoint " + ckpt + " --task glue:sst2 --data-dir " + data_dir, "head");
}

// A synthetic Brown corpus (word/tag tokens, two genres, 24 texts) in the words of corpus_text, so
// the fixture's tokenizer covers it: enough texts for train, dev and test splits.
void write_brown(const std::string& data_dir) {
  static const std::map<std::string, std::string> tag = {
      {"the", "at"},   {"a", "at"},     {"jury", "nn"},  {"court", "nn"}, {"report", "nn"}, {"river", "nn"},
      {"mill", "nn"},  {"house", "nn"}, {"music", "nn"}, {"church", "nn"}, {"market", "nn"}, {"school", "nn"},
      {"paper", "nn"}, {"people", "nns"}, {"said", "vbd"}, {"found", "vbd"}, {"runs", "vbz"}, {"played", "vbd"},
      {"bought", "vbd"}, {"past", "in"}, {"in", "in"},   {"at", "in"},    {"near", "in"},  {"old", "jj"},
      {"every", "at"}, {"sunday", "nr"}, {"morning", "nn"}};
  std::string cats;
  std::mt19937 rng(21);
  for (int t = 0; t < 24; ++t) {
    const std::string genre = t % 2 ? "news" : "lore";
    const std::string name = std::string(t % 2 ? "ca" : "cf") + (t / 2 < 9 ? "0" : "") + std::to_string(t / 2 + 1);
    cats += name + " " + genre + "\n";
    std::string text;
    std::istringstream sentences(corpus_text(1, 8, unsigned(rng())));
    std::string line;
    while (std::getline(sentences, line)) {
      if (line.empty()) continue;
      std::istringstream words(line);
      std::string w, tagged;
      while (words >> w) tagged += (tagged.empty() ? "" : " ") + w + "/" + (w == "." ? std::string(".") : tag.at(w));
      text += "\n\n\t" + tagged + "\n";
    }
    write_text(data_dir + "/brown/" + name, text);
  }
  write_text(data_dir + "/brown/cats.txt", cats);
}

// flexnas probe: a pretrained and a fine-tuned checkpoint compared layer by layer, an experiment
// folder, a token task; bad input exits 2 naming the flag and leaves nothing behind.
TEST_F(TrainingTest, CliProbeComparesCheckpointsPerLayer) {
  const auto& f = fixture();
  const std::string arch = f.dir / "arch-probe.json";
  write_text(arch, tiny_arch(2).to_json().dump());
  const std::string data_dir = f.dir / "probe-data";
  write_sst2(data_dir);
  write_brown(data_dir);
  const std::string pre = f.dir / "probe-pre", ft = f.dir / "probe-ft";
  CliRun r = flexnas("pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus +
                     " --steps 3 --seq-len 32 --batch-size 4 --threads 1 --seed 3 --out " + pre);
  ASSERT_EQ(r.code, 0) << r.output;
  r = flexnas("finetune --checkpoint " + pre + " --task glue:sst2 --data-dir " + data_dir +
              " --epochs 2 --save-epochs --batch-size 16 --max-len 32 --threads 1 --out " + ft);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* epoch : {"epoch-1", "epoch-2"}) {
    const auto m = nlohmann::json::parse(read_file(ft + "/epochs/" + epoch + "/metrics.json"));
    EXPECT_EQ(m["kind"], "finetune-epoch");
    EXPECT_TRUE(fs::exists(ft + "/epochs/" + epoch + "/model.safetensors"));
  }

  const std::string out = f.dir / "probe-out";
  r = flexnas("probe --checkpoint " + pre + " --compare " + ft + " --task glue:sst2 --data-dir " + data_dir +
              " --max-len 32 --threads 1 --bootstrap 200 --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("best layer on dev"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(read_file(out + "/probes.json"));
  ASSERT_EQ(j["checkpoints"].size(), 2u);
  EXPECT_EQ(j["checkpoints"][1]["name"], "probe-ft");
  ASSERT_EQ(j["checkpoints"][0]["layers"].size(), 3u);  // embeddings + 2 layers
  const auto& layer1 = j["checkpoints"][0]["layers"][1];
  EXPECT_EQ(layer1["op"], "sa_sdp");
  const double score = layer1["dev"]["score"].get<double>();
  EXPECT_GE(score, layer1["dev"]["interval"][0].get<double>());
  EXPECT_LE(score, layer1["dev"]["interval"][1].get<double>());
  EXPECT_EQ(j["checkpoints"][0]["features"]["train"]["examples"], 160);
  // What fine-tuning changed: per layer, the fine-tuned score minus the pretrained one, paired.
  const auto& versus = j["checkpoints"][1]["versus_first"];
  EXPECT_EQ(versus["checkpoint"], "probe-pre");
  ASSERT_EQ(versus["layers"].size(), 3u);
  EXPECT_NEAR(versus["layers"][1]["difference"].get<double>(),
              j["checkpoints"][1]["layers"][1]["dev"]["score"].get<double>() - score, 1e-9);
  const auto svg = testing_xml::check_xml(read_file(out + "/probes.svg"));
  EXPECT_TRUE(svg.ok) << svg.error;
  EXPECT_EQ(svg.root, "svg");

  // An experiment folder: the fine-tuning run (its best model first), then its epochs in natural
  // order (epoch-2 before epoch-10).
  fs::copy(ft + "/epochs/epoch-1", ft + "/epochs/epoch-10", fs::copy_options::recursive);
  r = flexnas("probe --experiment " + ft + " --task glue:sst2 --layers 0,2 --data-dir " + data_dir +
              " --max-len 32 --threads 1 --bootstrap 200");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto e = nlohmann::json::parse(read_file(ft + "/probes-glue-sst2/probes.json"));
  ASSERT_EQ(e["checkpoints"].size(), 4u);
  EXPECT_EQ(e["checkpoints"][0]["name"], "probe-ft");
  EXPECT_EQ(e["checkpoints"][2]["name"], "epochs/epoch-2");
  EXPECT_EQ(e["checkpoints"][3]["name"], "epochs/epoch-10");
  EXPECT_EQ(e["checkpoints"][0]["layers"].size(), 2u);
  EXPECT_EQ(e["checkpoints"][0]["layers"][1]["layer"], 2);

  // A token task: one item per word, dev and test scored.
  r = flexnas("probe --checkpoint " + pre + " --task brown-pos --data-dir " + data_dir +
              " --max-len 32 --threads 1 --bootstrap 200 --max-train-examples 40 --out " + (f.dir / "probe-pos"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto pos = nlohmann::json::parse(read_file(f.dir / "probe-pos/probes.json"));
  const auto& features = pos["checkpoints"][0]["features"];
  EXPECT_GT(features["train"]["items"].get<int64_t>(), features["train"]["examples"].get<int64_t>());
  EXPECT_EQ(features["train"]["examples"], 40);  // a seeded subset of the training sentences
  EXPECT_GT(pos["train_examples"]["of"].get<int64_t>(), 40);
  EXPECT_TRUE(pos["checkpoints"][0]["layers"][0].contains("test"));
  EXPECT_TRUE(pos["checkpoints"][0]["best"].contains("significant"));

  // Bad input: exit 2, the flag named, nothing written.
  const std::string bad = f.dir / "probe-bad";
  const std::string base = " --data-dir " + data_dir + " --out " + bad;
  expect_usage_error("probe --checkpoint " + pre + " --task glue:sst2 --layers 3" + base,
                     "--layers: 3 is out of range for '" + pre + "' (2 layers); allowed: 0..2");
  expect_usage_error("probe --checkpoint " + pre + " --task glue:sst2 --layers 1,x" + base,
                     "--layers: 'x' is not a layer index");
  expect_usage_error("probe --checkpoint " + ft + " --task brown-pos" + base,
                     "--checkpoint: '" + ft + "' has a cls head with 2 labels, fine-tuned for another task; brown-pos needs a token head");
  expect_usage_error("probe --experiment " + (f.dir / "probe-data") + " --task glue:sst2" + base,
                     "holds no checkpoint");
  expect_usage_error("probe --task glue:sst2" + base, "give exactly one of --checkpoint and --experiment");
  expect_usage_error("probe --checkpoint " + pre + " --task glue:sst2 --pool max" + base, "error: --pool: unknown value 'max'; allowed: mean, cls");
  const std::string other = f.dir / "probe-other.model";
  write_text(f.dir / "probe-other.txt", corpus_text(30, 10, 98) + "good bad film plot\n");
  datasets::TokenizerTrainOptions t;
  t.corpus = {f.dir / "probe-other.txt"};
  t.vocab_size = 52;
  t.out = other;
  datasets::train_tokenizer(t);
  expect_usage_error("probe --checkpoint " + pre + " --task glue:sst2 --tokenizer " + other + base,
                     "is not the tokenizer checkpoint");
  EXPECT_FALSE(fs::exists(bad));
}

// ---- ELECTRA (--objective electra) ----

ElectraModel tiny_electra_model(uint64_t seed, bool keep_generator, double size = 0.25) {
  torch::manual_seed(seed);  // as the CLI: the discriminator, then the generator, from one stream
  FlexModel disc(tiny_arch(), tiny_options());
  ElectraOptions eo;
  eo.generator_size = size;
  eo.keep_generator = keep_generator;
  return ElectraModel(disc, eo);
}

PretrainResult run_electra(const std::string& out, PretrainOptions p, const MlmSource& source, bool keep_generator = true) {
  ElectraModel model = tiny_electra_model(p.seed, keep_generator);
  return pretrain_electra(model, source, p, out, fixture().tokenizer);
}

double metric(const std::vector<std::pair<std::string, double>>& metrics, const std::string& name) {
  for (const auto& [k, v] : metrics)
    if (k == name) return v;
  ADD_FAILURE() << "no metric " << name;
  return 0;
}

TEST_F(TrainingTest, ElectraPretrainingLowersBothLossesAndLearnsThePrior) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  ElectraModel model = tiny_electra_model(2, /*keep_generator=*/false);
  const ElectraEval before = evaluate_electra(*model, source, 2);
  PretrainOptions p;
  p.steps = 100;
  p.lr = 3e-3;
  p.warmup_steps = 10;
  p.log_every = 10;
  p.seed = 2;
  const PretrainResult r = pretrain_electra(model, source, p, f.dir / "electra-learn", f.tokenizer);
  const ElectraEval after = evaluate_electra(*model, source, 2);
  EXPECT_NEAR(before.generator_loss, std::log(double(f.tok->vocab_size())), 0.5);  // untrained: about ln(V)
  EXPECT_LT(after.generator_loss, before.generator_loss - 0.4) << before.generator_loss << " -> " << after.generator_loss;
  EXPECT_LT(after.discriminator_loss, before.discriminator_loss - 0.1)
      << before.discriminator_loss << " -> " << after.discriminator_loss;
  EXPECT_LT(r.history.back().loss, r.history.front().loss - 5.0);  // the weighted sum, training batches
  // After 100 steps the discriminator has learnt the prior (it answers "original" about as often as
  // that is right). Beating that all-original baseline takes far longer here: with the CLI on this
  // kind of corpus (2 x 32, batch 16 x 32, lr 3e-3) it stayed at the baseline up to ~1,000 steps and
  // was above it from 1,250 (0.891 vs 0.880; 1,500: 0.894 vs 0.881) -- too slow and too seed-bound
  // for a unit test, so only the reliable part is checked.
  const double accuracy = double(after.correct) / double(after.tokens);
  const double baseline = 1.0 - double(after.replaced) / double(after.tokens);
  EXPECT_GT(accuracy, baseline - 0.01) << accuracy << " vs " << baseline;
  EXPECT_GT(accuracy, double(before.correct) / double(before.tokens)) << "untrained: " << before.correct;
  EXPECT_DOUBLE_EQ(metric(r.eval_metrics, "rtd_accuracy"), accuracy);  // the loop's last evaluation, same model
  EXPECT_DOUBLE_EQ(metric(r.eval_metrics, "original_baseline"), baseline);
  EXPECT_NEAR(r.eval_loss, after.generator_loss + 50.0 * after.discriminator_loss, 1e-9);
  // Core-only checkpoint: the discriminator as the model, its head beside it, no generator or state.
  const std::string dir = f.dir / "electra-learn";
  for (const char* file : {"config.json", "model.safetensors", "discriminator_head.safetensors", "metrics.json",
                           "training_state.json"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / file)) << file;
  for (const char* file : {"generator.safetensors", "training_state.safetensors"})
    EXPECT_FALSE(fs::exists(fs::path(dir) / file)) << file;
  const auto m = read_metrics(dir);
  EXPECT_EQ(m["run"]["objective"], "electra");
  EXPECT_DOUBLE_EQ(m["run"]["generator_size"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(m["run"]["discriminator_weight"].get<double>(), 50.0);
  EXPECT_FALSE(m["run"]["keep_generator"].get<bool>());
  for (const char* key : {"train_generator_loss", "train_discriminator_loss", "train_rtd_accuracy",
                          "train_replaced_fraction", "eval_generator_loss", "eval_discriminator_loss",
                          "eval_rtd_accuracy", "eval_replaced_fraction"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_FALSE(m.contains("eval_perplexity"));  // the weighted sum has none; eval_generator_perplexity does
  EXPECT_TRUE(m["history"][0].contains("rtd_accuracy"));
  // The model is the trained discriminator, loadable as any pretrained checkpoint.
  FlexModel loaded = load_checkpoint(dir);
  const auto disc = model->discriminator()->named_parameters();
  for (const auto& item : loaded->named_parameters()) EXPECT_TRUE(torch::equal(item.value(), disc[item.key()])) << item.key();
  // Without the generator there is nothing to resume from, and the message says why.
  PretrainOptions again = p;
  again.resume = true;
  try {
    run_electra(dir, again, source, false);
    ADD_FAILURE() << "resuming a core-only ELECTRA checkpoint was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is core-only (pretrained without --keep-generator)"), std::string::npos) << e.what();
  }
}

TEST_F(TrainingTest, ElectraResumeWithTheGeneratorIsBitExactInFp32AndBf16) {
  const auto& f = fixture();
  const datasets::MlmData data({f.tok->encode_text_file(f.corpus)}, f.tok->vocab_size(), mlm_options());
  const MlmSource source = mlm_source(data);
  for (Precision precision : {Precision::kFp32, Precision::kBf16}) {
    const std::string tag = std::string("electra-") + precision_name(precision);
    PretrainOptions p = resume_options();
    p.precision = precision;
    const PretrainResult full = run_electra(f.dir / (tag + "-full"), p, source);
    ASSERT_EQ(full.losses.size(), 12u);
    PretrainOptions first = p;
    first.stop_after = 7;
    EXPECT_EQ(run_electra(f.dir / (tag + "-part"), first, source).steps, 7);
    EXPECT_TRUE(fs::exists(f.dir / (tag + "-part/generator.safetensors")));
    // Another objective is refused.
    PretrainOptions mlm = p;
    mlm.resume = true;
    try {
      run_pretrain(f.dir / (tag + "-part"), mlm, source);
      ADD_FAILURE() << "an MLM resume of an ELECTRA checkpoint was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--objective: the checkpoint in '" + (f.dir / (tag + "-part")) +
                                           "' was pretrained with the electra objective, not mlm"),
                std::string::npos)
          << e.what();
    }
    PretrainOptions second = p;
    second.resume = true;
    const PretrainResult rest = run_electra(f.dir / (tag + "-part"), second, source);
    EXPECT_EQ(rest.start_step, 7);
    EXPECT_EQ(rest.losses, full.losses) << tag;  // exact, every step
    EXPECT_EQ(eval_losses(rest.history), eval_losses(full.history)) << tag;
    ASSERT_EQ(rest.history.size(), full.history.size());
    for (size_t i = 0; i < full.history.size(); ++i) {
      EXPECT_EQ(rest.history[i].metrics, full.history[i].metrics) << tag << " record " << i;
      EXPECT_EQ(rest.history[i].eval_metrics, full.history[i].eval_metrics) << tag << " record " << i;
    }
    for (const char* file : {"model.safetensors", "generator.safetensors", "discriminator_head.safetensors"}) {
      const auto a = read_safetensors(f.dir / (tag + "-full/") + file);
      const auto b = read_safetensors(f.dir / (tag + "-part/") + file);
      ASSERT_EQ(a.size(), b.size()) << file;
      for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << tag << " " << file << " " << name;
    }
  }
}

// flexnas pretrain --objective electra end to end: a core-only checkpoint fine-tunes and probes like
// an MLM one; resuming it, bad ELECTRA flags and objective mismatches exit 2 with nothing written.
TEST_F(TrainingTest, CliElectraCheckpointFinetunesAndProbesAndBadFlagsExit2) {
  const auto& f = fixture();
  const std::string arch = f.dir / "arch-electra.json";
  write_text(arch, tiny_arch().to_json().dump());
  const std::string data_dir = f.dir / "electra-data";
  write_sst2(data_dir);
  const std::string base = "pretrain --arch " + arch + " --tokenizer " + f.tokenizer + " --corpus " + f.corpus +
                           " --seq-len 32 --batch-size 4 --threads 1 --seed 3";
  const std::string ckpt = f.dir / "electra-pre";
  CliRun r = flexnas(base + " --steps 6 --objective electra --out " + ckpt);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("electra: generator {\"l\":2,\"h\":[8,8],\"n\":[1,1]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("eval rtd_accuracy:"), std::string::npos) << r.output;
  const auto pre = read_metrics(ckpt);
  EXPECT_EQ(pre["run"]["objective"], "electra");
  EXPECT_TRUE(pre["run"].contains("generator_arch"));

  // Fine-tuning and probing load the discriminator as they load an MLM-pretrained model.
  const std::string ft = f.dir / "electra-ft";
  r = flexnas("finetune --checkpoint " + ckpt + " --task glue:sst2 --data-dir " + data_dir +
              " --epochs 1 --batch-size 16 --max-len 32 --threads 1 --out " + ft);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto m = nlohmann::json::parse(read_file(ft + "/metrics.json"));
  EXPECT_TRUE(m["score"].is_number()) << m.dump();
  // The fine-tuned encoder starts from the ELECTRA discriminator's weights.
  const auto ft_weights = read_safetensors(ft + "/model.safetensors");
  EXPECT_TRUE(ft_weights.count("bert.encoder.layer.0.attention.self.query.weight"));
  r = flexnas("probe --checkpoint " + ckpt + " --task glue:sst2 --layers 0,2 --data-dir " + data_dir +
              " --max-len 32 --threads 1 --bootstrap 100 --out " + (f.dir / "electra-probe"));
  ASSERT_EQ(r.code, 0) << r.output;

  // Resuming a core-only checkpoint is refused, saying why.
  expect_usage_error(base + " --steps 8 --objective electra --resume --out " + ckpt,
                     "error: --resume: the ELECTRA checkpoint in '" + ckpt +
                         "' is core-only (pretrained without --keep-generator)");
  // A kept generator resumes; another objective does not.
  const std::string kept = f.dir / "electra-kept";
  r = flexnas(base + " --steps 6 --objective electra --keep-generator --stop-after 3 --out " + kept);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_usage_error(base + " --steps 6 --resume --out " + kept,
                     "error: --objective: the checkpoint in '" + kept +
                         "' was pretrained with the electra objective, not mlm; resume it with --objective electra");
  expect_usage_error(base + " --steps 6 --objective electra --generator-size 0.5 --resume --out " + kept,
                     "error: --generator-size: the checkpoint in '" + kept + "' has a generator of size 0.25, not 0.5");
  r = flexnas(base + " --steps 6 --objective electra --resume --out " + kept);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(resumed at 3)"), std::string::npos) << r.output;
  expect_usage_error(base + " --steps 6 --objective electra --out " + (f.dir / "electra-pre"), "pass --resume");

  // Bad ELECTRA flags: the flag, the value and what is allowed; exit 2; nothing written.
  const std::string bad = f.dir / "electra-bad";
  const std::string out = " --steps 4 --out " + bad;
  expect_usage_error(base + " --objective bert" + out,
                     "error: --objective: unknown value 'bert'; allowed: mlm, electra");
  expect_usage_error(base + " --objective electra --generator-size 0" + out,
                     "error: --generator-size: expected a number in (0, 1] (a fraction of the discriminator's widths), got 0");
  expect_usage_error(base + " --objective electra --generator-size 1.5" + out,
                     "error: --generator-size: expected a number in (0, 1] (a fraction of the discriminator's widths), got 1.5");
  expect_usage_error(base + " --objective electra --discriminator-weight 0" + out,
                     "error: --discriminator-weight: expected a positive number, got 0");
  expect_usage_error(base + " --objective electra --discriminator-weight -2.5" + out,
                     "error: --discriminator-weight: expected a positive number, got -2.5");
  expect_usage_error(base + " --keep-generator" + out, "error: --keep-generator: only with --objective electra");
  expect_usage_error(base + " --generator-size 0.5" + out, "error: --generator-size: only with --objective electra");
  expect_usage_error(base + " --objective electra --stop-after 2" + out,
                     "error: --stop-after: an ELECTRA run continues only from checkpoints with the generator; add "
                     "--keep-generator");
  EXPECT_FALSE(fs::exists(bad));
}

}  // namespace
}  // namespace flexnas::models
