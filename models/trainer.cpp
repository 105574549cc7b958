#include "models/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "design_space/arch_graph.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "design_space/progress.h"
#include "models/checkpoint.h"
#include "models/electra.h"
#include "models/safetensors.h"

namespace flexnas::models {
namespace fs = std::filesystem;

namespace {

constexpr const char* kStagingDir = ".commit";

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string rate_text(double tokens_per_second) {
  char buf[64];
  if (tokens_per_second >= 1000)
    std::snprintf(buf, sizeof buf, "%.1fk tok/s", tokens_per_second / 1000);
  else
    std::snprintf(buf, sizeof buf, "%.0f tok/s", tokens_per_second);
  return buf;
}

std::string fixed(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Moves the staged files of a complete commit into `dir`; training_state.json goes last.
void finish_commit(const std::string& dir) {
  const std::string staging = join(dir, kStagingDir);
  const std::string marker = join(staging, kTrainStateJson);
  const auto state = nlohmann::json::parse(read_file(marker));
  std::vector<std::string> files = state.at("files").get<std::vector<std::string>>();
  for (const auto& f : files) {
    if (f == kTrainStateJson) continue;
    if (fs::exists(join(staging, f))) fs::rename(join(staging, f), join(dir, f));
  }
  // A checkpoint without optimiser state (or generator) must not keep an older one.
  for (const char* optional : {kTrainStateFile, kGeneratorFile})
    if (std::find(files.begin(), files.end(), optional) == files.end()) fs::remove(join(dir, optional));
  fs::rename(marker, join(dir, kTrainStateJson));
  fs::remove_all(staging);
}

}  // namespace

nlohmann::ordered_json StepRecord::to_json() const {
  nlohmann::ordered_json j;
  j["step"] = step;
  j["loss"] = loss;
  j["lr"] = lr;
  j["grad_norm"] = grad_norm;
  j["tokens_per_second"] = tokens_per_second;
  for (const auto& [k, v] : metrics) j[k] = v;
  if (eval_loss >= 0) {
    j["eval_loss"] = eval_loss;
    // MLM: eval_loss is the MLM loss. Objectives with further metrics (ELECTRA) name their own.
    if (eval_metrics.empty()) j["eval_perplexity"] = std::exp(eval_loss);
    for (const auto& [k, v] : eval_metrics) j["eval_" + k] = v;
  }
  return j;
}

StepRecord StepRecord::from_json(const nlohmann::ordered_json& j) {
  StepRecord r;
  r.step = j.at("step").get<int64_t>();
  r.loss = j.at("loss").get<double>();
  r.lr = j.at("lr").get<double>();
  r.grad_norm = j.at("grad_norm").get<double>();
  r.tokens_per_second = j.at("tokens_per_second").get<double>();
  if (j.contains("eval_loss")) r.eval_loss = j.at("eval_loss").get<double>();
  static const std::set<std::string> known = {"step", "loss", "lr", "grad_norm", "tokens_per_second", "eval_loss",
                                              "eval_perplexity"};
  for (auto it = j.begin(); it != j.end(); ++it) {  // in file order, which to_json wrote
    if (known.count(it.key()) || !it.value().is_number()) continue;
    if (it.key().rfind("eval_", 0) == 0)
      r.eval_metrics.emplace_back(it.key().substr(5), it.value().get<double>());
    else
      r.metrics.emplace_back(it.key(), it.value().get<double>());
  }
  return r;
}

bool recover_checkpoint(const std::string& dir) {
  const std::string staging = join(dir, kStagingDir);
  if (fs::exists(staging)) {
    if (fs::exists(join(staging, kTrainStateJson))) {
      LOG_WARN("completing an interrupted checkpoint commit in ", dir);
      finish_commit(dir);
    } else {
      LOG_WARN("discarding an incomplete checkpoint commit in ", dir);
      fs::remove_all(staging);
    }
  }
  return fs::exists(join(dir, kTrainStateJson)) && fs::exists(join(dir, kTrainStateFile)) &&
         fs::exists(join(dir, kConfigFile)) && fs::exists(join(dir, kWeightsFile));
}

void commit_checkpoint(const std::string& dir, FlexModelImpl& model, const AdamW* optimizer, int64_t step,
                       const nlohmann::ordered_json& metrics, const std::string& tokenizer_file,
                       const std::vector<std::pair<std::string, NamedTensors>>& extra_files) {
  fs::create_directories(dir);
  recover_checkpoint(dir);  // never stage over an unfinished commit
  const std::string staging = join(dir, kStagingDir);
  fs::remove_all(staging);
  fs::create_directories(staging);
  save_checkpoint(staging, model, tokenizer_file);
  std::vector<std::string> files = {kWeightsFile, kConfigFile, kMetricsFile};
  for (const auto& [name, tensors] : extra_files) {
    write_safetensors(join(staging, name), tensors, {{"format", "pt"}});
    files.push_back(name);
  }
  if (optimizer) {
    save_train_state(staging, *optimizer, step);
    files.push_back(kTrainStateFile);
  }
  write_metrics(staging, metrics);
  files.push_back(kTrainStateJson);
  nlohmann::ordered_json state;
  state["step"] = step;
  state["optimizer_steps"] = optimizer ? optimizer->steps() : 0;
  state["files"] = files;
  // Written last: its presence marks the staged set as complete.
  write_file_atomic(join(staging, kTrainStateJson), state.dump(2) + "\n");
  finish_commit(dir);
}

double accumulate_gradients(FlexModelImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                            const torch::Tensor& labels, int64_t micro, Precision precision, double loss_scale) {
  const torch::Device device = model.parameters().front().device();
  const int64_t B = input_ids.size(0);
  micro = std::clamp<int64_t>(micro, 1, B);
  if (micro == 1) {
    torch::Tensor loss;
    {
      AutocastScope autocast(precision, device);
      loss = model.loss(input_ids.to(device), attention_mask.to(device), labels.to(device));
    }
    (loss_scale == 1.0 ? loss : loss * loss_scale).backward();
    return loss.item<double>();
  }
  // Each example's share of the batch loss: its labelled positions ([B] labels: one each).
  const auto counted = labels.dim() == 1 ? torch::ones({B}) : (labels != -100).reshape({B, -1}).sum(1).to(torch::kFloat);
  const double total = std::max(1.0, counted.sum().item<double>());
  double loss_sum = 0;
  const int64_t size = (B + micro - 1) / micro;
  for (int64_t start = 0; start < B; start += size) {
    const int64_t n = std::min(size, B - start);
    const double weight = counted.narrow(0, start, n).sum().item<double>() / total;
    if (weight == 0) continue;
    torch::Tensor loss;
    {
      AutocastScope autocast(precision, device);
      loss = model.loss(input_ids.narrow(0, start, n).to(device), attention_mask.narrow(0, start, n).to(device),
                        labels.narrow(0, start, n).to(device));
    }
    (loss * (weight * loss_scale)).backward();
    loss_sum += loss.item<double>() * weight;
  }
  return loss_sum;
}

double evaluate_mlm(FlexModelImpl& model, const MlmSource& data, int64_t max_batches, Precision precision) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  int64_t n = data.num_eval_batches;
  if (max_batches > 0) n = std::min(n, max_batches);
  FLEXNAS_CHECK(n > 0, "no held-out MLM batches");
  double total = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const datasets::MlmBatch b = data.eval_batch(i);
    const int64_t predicted = (b.labels != -100).sum().item<int64_t>();
    if (predicted == 0) continue;
    AutocastScope autocast(precision, device);
    const auto loss = model.loss(b.input_ids.to(device), b.attention_mask.to(device), b.labels.to(device));
    total += loss.item<double>() * double(predicted);
    count += predicted;
  }
  if (was_training) model.train();
  FLEXNAS_CHECK(count > 0, "the held-out MLM batches predict no position");
  return total / double(count);
}

namespace {

/// One metric of a training step, averaged over the steps of a history record with `weight`.
struct StepMetric {
  std::string name;
  double value = 0;
  double weight = 1;
};

/// A held-out evaluation: the loss StepRecord::eval_loss holds, and further named values.
struct EvalOutcome {
  double loss = 0;
  std::vector<std::pair<std::string, double>> metrics;
};

/// What the pretraining loop needs of an objective (MLM or ELECTRA).
struct Objective {
  std::string name;                  // recorded as run.objective (MLM records none: older checkpoints)
  torch::nn::Module* trainable = nullptr;  // optimised, clipped and (fp16) unscaled
  FlexModelImpl* model = nullptr;    // committed as config.json + model.safetensors
  bool save_optimizer = true;        // training_state.safetensors in every commit
  /// zero_grad is done; the batch's forward and backward; returns the loss and further metrics.
  std::function<double(const datasets::MlmBatch& batch, int64_t step, double loss_scale,
                       std::vector<StepMetric>& metrics)> step;
  std::function<EvalOutcome()> evaluate;
  std::function<std::string(const EvalOutcome&)> eval_note;  // progress-line text of an evaluation
  std::function<std::vector<std::pair<std::string, NamedTensors>>()> extra_files;  // committed beside the model
  std::function<void(const std::string& dir)> load_extra;  // resume: what extra_files wrote
};

PretrainResult pretrain_loop(const Objective& obj, const MlmSource& data, const PretrainOptions& o,
                             const std::string& out_dir, const std::string& tokenizer_file,
                             const nlohmann::ordered_json& extra_config) {
  FLEXNAS_CHECK(o.steps > 0, "steps must be positive");
  FLEXNAS_CHECK(o.precision != Precision::kAuto, "pretrain: resolve the precision first");
  prepare_training_process();  // no page faults per step, OpenBLAS on --threads cores (training.h)
  torch::nn::Module& trainable = *obj.trainable;
  const torch::Device device = trainable.parameters().front().device();
  LossScaler scaler(o.precision == Precision::kFp16);
  AdamW optimizer(trainable, AdamWOptions{o.lr, 0.9, o.beta2, o.eps, o.weight_decay});
  const int64_t warmup = o.warmup_steps < 0 ? o.steps / 10 : o.warmup_steps;
  const LinearSchedule schedule{o.lr, warmup, o.steps};

  PretrainResult result;
  nlohmann::ordered_json run = extra_config.is_null() ? nlohmann::ordered_json::object() : extra_config;
  run["steps"] = o.steps;
  run["lr"] = o.lr;
  run["warmup_steps"] = warmup;
  run["weight_decay"] = o.weight_decay;
  run["beta2"] = o.beta2;
  run["eps"] = o.eps;
  run["clip_norm"] = o.clip_norm;
  run["seed"] = o.seed;
  run["threads"] = torch::get_num_threads();
  run["precision"] = precision_name(o.precision);
  run["device"] = device.str();
  if (o.accumulate > 1) run["accumulate"] = o.accumulate;

  if (o.resume) {
    if (!recover_checkpoint(out_dir))
      throw ConfigError("error: --resume: no resumable checkpoint in '" + out_dir +
                        "' (needs config.json, model.safetensors, training_state.*)");
    const auto old = read_metrics(out_dir);
    // A checkpoint without run.objective was pretrained with MLM (the only objective then).
    const std::string old_objective =
        old.contains("run") && old["run"].contains("objective") ? old["run"]["objective"].get<std::string>() : kObjectiveMlm;
    if (old_objective != obj.name)
      throw ConfigError("error: --objective: the checkpoint in '" + out_dir + "' was pretrained with the " + old_objective +
                        " objective, not " + obj.name + "; resume it with --objective " + old_objective);
    load_weights(*obj.model, join(out_dir, kWeightsFile), WeightsMatch::kStrict);
    if (obj.load_extra) obj.load_extra(out_dir);
    result.start_step = load_train_state(out_dir, optimizer);
    if (old.contains("run") && old["run"].contains("precision") && old["run"]["precision"] != run["precision"])
      throw ConfigError("error: --precision: the checkpoint in '" + out_dir + "' was trained in " +
                        old["run"]["precision"].get<std::string>() + ", not " + precision_name(o.precision) +
                        "; resume in the same precision (--precision auto takes the checkpoint's)");
    if (old.contains("run")) {
      for (const char* key : {"steps", "lr", "warmup_steps", "weight_decay", "clip_norm", "seed", "threads",
                              "batch_size", "seq_len", "accumulate", "discriminator_weight"})
        if (old["run"].contains(key) && run.contains(key) && old["run"][key] != run[key])
          LOG_WARN("--resume: ", key, " was ", old["run"][key].dump(), ", now ", run[key].dump(),
                   ": the run will not match an uninterrupted one");
    }
    if (old.contains("history"))
      for (const auto& h : old["history"]) {
        StepRecord r = StepRecord::from_json(h);
        if (r.step <= result.start_step) result.history.push_back(r);
      }
    if (old.contains("losses"))
      for (const auto& l : old["losses"])
        if (int64_t(result.losses.size()) < result.start_step) result.losses.push_back(l.get<double>());
    if (result.start_step > o.steps)
      throw ConfigError("error: --steps: " + std::to_string(o.steps) + " is below the checkpoint's step " +
                        std::to_string(result.start_step));
    LOG_INFO("resuming ", out_dir, " at step ", result.start_step, " of ", o.steps);
  } else {
    torch::manual_seed(o.seed);  // dropout stream of a fresh run
  }

  auto metrics_json = [&](int64_t step) {
    nlohmann::ordered_json m;
    m["kind"] = "pretrain";
    m["step"] = step;
    if (!result.history.empty()) {
      m["train_loss"] = result.history.back().loss;
      for (const auto& [k, v] : result.history.back().metrics) m["train_" + k] = v;
    }
    for (auto it = result.history.rbegin(); it != result.history.rend(); ++it)
      if (it->eval_loss >= 0) {
        m["eval_loss"] = it->eval_loss;
        if (it->eval_metrics.empty()) m["eval_perplexity"] = std::exp(it->eval_loss);
        for (const auto& [k, v] : it->eval_metrics) m["eval_" + k] = v;
        m["eval_step"] = it->step;
        break;
      }
    m["tokens_per_second"] = result.tokens_per_second;
    m["run"] = run;
    auto hist = nlohmann::ordered_json::array();
    for (const auto& r : result.history) hist.push_back(r.to_json());
    m["history"] = hist;
    m["losses"] = result.losses;
    return m;
  };

  trainable.train();
  Progress progress("pretrain", uint64_t(o.steps - result.start_step), "steps");
  const auto run_start = std::chrono::steady_clock::now();
  auto record_start = run_start;
  double loss_sum = 0, train_seconds = 0;
  int64_t loss_count = 0, record_tokens = 0, run_tokens = 0;
  std::vector<StepMetric> metric_sums;  // value x weight and weight, summed since the last record
  double last_lr = 0, last_norm = 0;
  int64_t step = result.start_step;
  while (step < o.steps) {
    const datasets::MlmBatch batch = data.train_batch(step);
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    std::vector<StepMetric> step_metrics;
    const double value = obj.step(batch, step, scaler.scale(), step_metrics);
    last_lr = schedule.lr_at(step);
    if (scaler.unscale_and_check(trainable.parameters())) {  // fp16: a step with overflowing gradients is skipped
      last_norm = o.clip_norm > 0 ? clip_grad_norm(trainable, o.clip_norm) : 0.0;
      optimizer.step(last_lr);
    }
    train_seconds += seconds_since(t0);
    if (!std::isfinite(value)) throw Error("pretrain: the loss is " + std::to_string(value) + " at step " + std::to_string(step));
    ++step;
    result.losses.push_back(value);
    loss_sum += value;
    ++loss_count;
    if (metric_sums.empty())
      for (const auto& m : step_metrics) metric_sums.push_back({m.name, 0.0, 0.0});
    for (size_t i = 0; i < step_metrics.size(); ++i) {
      metric_sums[i].value += step_metrics[i].value * step_metrics[i].weight;
      metric_sums[i].weight += step_metrics[i].weight;
    }
    const int64_t tokens = batch.attention_mask.sum().item<int64_t>();
    record_tokens += tokens;
    run_tokens += tokens;
    progress.advance();

    const bool last = step == o.steps;
    const bool stop = o.stop_after > 0 && step >= o.stop_after && !last;
    const bool eval = last || (o.eval_every > 0 && step % o.eval_every == 0);
    const bool save = last || stop || (o.save_every > 0 && step % o.save_every == 0);
    if (last || stop || eval || save || (o.log_every > 0 && step % o.log_every == 0)) {
      StepRecord r;
      r.step = step;
      r.loss = loss_sum / double(loss_count);
      r.lr = last_lr;
      r.grad_norm = last_norm;
      r.tokens_per_second = double(record_tokens) / std::max(1e-9, seconds_since(record_start));
      std::string note;
      for (auto& m : metric_sums) {
        r.metrics.emplace_back(m.name, m.weight > 0 ? m.value / m.weight : 0.0);
        note += (note.empty() ? "" : ", ") + m.name + " " + fixed(r.metrics.back().second);
        m.value = m.weight = 0;
      }
      if (eval) {
        const EvalOutcome e = obj.evaluate();
        r.eval_loss = e.loss;
        r.eval_metrics = e.metrics;
      }
      result.history.push_back(r);
      progress.set_note("loss " + fixed(r.loss) + (note.empty() ? "" : " (" + note + ")") +
                        (eval ? ", eval " + (obj.eval_note ? obj.eval_note({r.eval_loss, r.eval_metrics}) : fixed(r.eval_loss))
                              : "") +
                        ", " + rate_text(r.tokens_per_second));
      loss_sum = 0;
      loss_count = 0;
      record_tokens = 0;
      record_start = std::chrono::steady_clock::now();
    }
    if (save) {
      result.tokens_per_second = double(run_tokens) / std::max(1e-9, train_seconds);
      const auto extra = obj.extra_files ? obj.extra_files() : std::vector<std::pair<std::string, NamedTensors>>{};
      commit_checkpoint(out_dir, *obj.model, obj.save_optimizer ? &optimizer : nullptr, step, metrics_json(step),
                        tokenizer_file, extra);
    }
    if (stop) break;
  }
  progress.finish();
  result.steps = step;
  result.tokens_per_second = double(run_tokens) / std::max(1e-9, train_seconds);
  for (auto it = result.history.rbegin(); it != result.history.rend(); ++it)
    if (it->eval_loss >= 0) {
      result.eval_loss = it->eval_loss;
      result.eval_perplexity = std::exp(it->eval_loss);
      result.eval_metrics = it->eval_metrics;
      break;
    }
  return result;
}

}  // namespace

PretrainResult pretrain(FlexModel& model, const MlmSource& data, const PretrainOptions& o, const std::string& out_dir,
                        const std::string& tokenizer_file, const nlohmann::ordered_json& extra_config) {
  Objective obj;
  obj.name = kObjectiveMlm;
  obj.trainable = model.get();
  obj.model = model.get();
  obj.step = [&](const datasets::MlmBatch& batch, int64_t, double loss_scale, std::vector<StepMetric>&) {
    return accumulate_gradients(*model, batch.input_ids, batch.attention_mask, batch.labels, o.accumulate, o.precision,
                                loss_scale);
  };
  obj.evaluate = [&] { return EvalOutcome{evaluate_mlm(*model, data, o.max_eval_batches, o.precision), {}}; };
  return pretrain_loop(obj, data, o, out_dir, tokenizer_file, extra_config);
}

ElectraEval evaluate_electra(ElectraModelImpl& model, const MlmSource& data, uint64_t seed, int64_t max_batches,
                             Precision precision) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  int64_t n = data.num_eval_batches;
  if (max_batches > 0) n = std::min(n, max_batches);
  FLEXNAS_CHECK(n > 0, "no held-out MLM batches");
  double gen_sum = 0, disc_sum = 0;
  ElectraEval e;
  for (int64_t i = 0; i < n; ++i) {
    const datasets::MlmBatch b = data.eval_batch(i);
    // Held-out batch i's replacements come from stream 1: the same at every evaluation of a run.
    const auto uniforms = sampling_uniforms(seed, 1, i, b.input_ids.size(0), b.input_ids.size(1));
    ElectraStats s;
    {
      AutocastScope autocast(precision, device);
      s = model.forward(b.input_ids.to(device), b.attention_mask.to(device), b.labels.to(device), uniforms);
    }
    gen_sum += s.generator_loss * double(s.masked);
    disc_sum += s.discriminator_loss * double(s.tokens);
    e.masked += s.masked;
    e.tokens += s.tokens;
    e.replaced += s.replaced;
    e.correct += s.correct;
  }
  if (was_training) model.train();
  FLEXNAS_CHECK(e.masked > 0 && e.tokens > 0, "the held-out batches predict no position");
  e.generator_loss = gen_sum / double(e.masked);
  e.discriminator_loss = disc_sum / double(e.tokens);
  e.loss = e.generator_loss + model.options().discriminator_weight * e.discriminator_loss;
  return e;
}

std::vector<std::pair<std::string, double>> ElectraEval::metrics() const {
  return {{"generator_loss", generator_loss},
          {"generator_perplexity", std::exp(generator_loss)},
          {"discriminator_loss", discriminator_loss},
          {"rtd_accuracy", tokens ? double(correct) / double(tokens) : 0.0},
          {"replaced_fraction", tokens ? double(replaced) / double(tokens) : 0.0},
          {"original_baseline", tokens ? 1.0 - double(replaced) / double(tokens) : 0.0}};
}

PretrainResult pretrain_electra(ElectraModel& model, const MlmSource& data, const PretrainOptions& o,
                                const std::string& out_dir, const std::string& tokenizer_file,
                                const nlohmann::ordered_json& extra_config) {
  const ElectraOptions& eo = model->options();
  if (o.resume) {
    recover_checkpoint(out_dir);  // finishes an interrupted commit first
    if (!fs::exists(join(out_dir, kGeneratorFile)) && fs::exists(join(out_dir, kTrainStateJson))) {
      const auto old = read_metrics(out_dir);
      if (old.contains("run") && old["run"].value("objective", "") == kObjectiveElectra)
        throw ConfigError(electra_core_only_message(out_dir));
    }
  }
  nlohmann::ordered_json run = extra_config.is_null() ? nlohmann::ordered_json::object() : extra_config;
  run["objective"] = kObjectiveElectra;
  run["generator_size"] = eo.generator_size;
  run["discriminator_weight"] = eo.discriminator_weight;
  run["keep_generator"] = eo.keep_generator;
  run["generator_arch"] = model->generator()->architecture().to_json();
  run["checkpoint_model"] = "the discriminator (its cls.predictions MLM head is the untrained initialisation; "
                            "the replaced-token head is in " + std::string(kDiscriminatorHeadFile) + ")";
  Objective obj;
  obj.name = kObjectiveElectra;
  obj.trainable = model.get();
  obj.model = model->discriminator().get();
  obj.save_optimizer = eo.keep_generator;  // core-only: no optimiser state, as the Funnel/ELECTRA releases
  obj.step = [&](const datasets::MlmBatch& batch, int64_t step, double loss_scale, std::vector<StepMetric>& metrics) {
    const auto uniforms = sampling_uniforms(o.seed, 0, step, batch.input_ids.size(0), batch.input_ids.size(1));
    const ElectraStats s = electra_accumulate_gradients(*model, batch.input_ids, batch.attention_mask, batch.labels,
                                                        uniforms, o.accumulate, o.precision, loss_scale);
    const double tokens = double(std::max<int64_t>(1, s.tokens));
    metrics = {{"generator_loss", s.generator_loss, 1.0},
               {"discriminator_loss", s.discriminator_loss, 1.0},
               {"rtd_accuracy", double(s.correct) / tokens, tokens},
               {"replaced_fraction", double(s.replaced) / tokens, tokens}};
    return s.generator_loss + eo.discriminator_weight * s.discriminator_loss;
  };
  obj.evaluate = [&] {
    const ElectraEval e = evaluate_electra(*model, data, o.seed, o.max_eval_batches, o.precision);
    return EvalOutcome{e.loss, e.metrics()};
  };
  obj.eval_note = [](const EvalOutcome& e) {
    std::string text = fixed(e.loss);
    for (const auto& [k, v] : e.metrics)
      if (k == "generator_loss" || k == "rtd_accuracy") text += " " + k + " " + fixed(v);
    return text;
  };
  obj.extra_files = [&] {
    std::vector<std::pair<std::string, NamedTensors>> files = {{kDiscriminatorHeadFile, model->discriminator_head_tensors()}};
    if (eo.keep_generator) files.emplace_back(kGeneratorFile, model->generator_tensors());
    return files;
  };
  obj.load_extra = [&](const std::string& dir) {
    model->load_discriminator_head(join(dir, kDiscriminatorHeadFile));
    const std::string generator = join(dir, kGeneratorFile);
    if (!fs::exists(generator)) throw ConfigError(electra_core_only_message(dir));
    model->load_generator(generator);
  };
  return pretrain_loop(obj, data, o, out_dir, tokenizer_file, run);
}

std::string electra_core_only_message(const std::string& dir) {
  return "error: --resume: the ELECTRA checkpoint in '" + dir + "' is core-only (pretrained without --keep-generator): "
         "it holds the discriminator but not the generator and the optimiser state needed to continue pretraining; "
         "fine-tune or probe it as it is, or pretrain again with --keep-generator to be able to resume";
}

ModelOptions task_model_options(const ModelOptions& base, const datasets::TaskInfo& task) {
  ModelOptions o = base;
  switch (task.kind) {
    case datasets::TaskKind::kSequenceClassification:
      o.head = HeadType::kSequence;
      o.num_labels = task.num_labels;
      break;
    case datasets::TaskKind::kRegression:
      o.head = HeadType::kSequence;
      o.num_labels = 1;
      break;
    case datasets::TaskKind::kTokenClassification:
      o.head = HeadType::kToken;
      o.num_labels = task.num_labels;
      break;
  }
  return o;
}

std::string checkpoint_tokenizer(const std::string& dir, const std::string& recorded_file,
                                 const std::string& recorded_sha256, const std::string& flag_value) {
  const std::string where = join(dir, kConfigFile);
  if (recorded_file.empty()) {
    if (flag_value.empty())
      throw_config_error(Location{where, 0, 0, "tokenizer"},
                         "the checkpoint records no tokenizer; pass the one it was pretrained with as --tokenizer");
    return flag_value;
  }
  if (!flag_value.empty()) {
    if (!fs::exists(flag_value)) throw ConfigError("error: --tokenizer: '" + flag_value + "': no such file");
    const std::string sha = sha256_hex(read_file(flag_value));
    if (sha != recorded_sha256)
      throw ConfigError("error: --tokenizer: '" + flag_value + "' (sha256 " + sha.substr(0, 16) +
                        "...) is not the tokenizer checkpoint '" + dir + "' was pretrained with ('" + recorded_file +
                        "', sha256 " + recorded_sha256.substr(0, 16) + "...); one tokenizer must serve pretraining "
                        "and fine-tuning");
    return flag_value;
  }
  if (!fs::exists(recorded_file))
    throw_config_error(Location{where, 0, 0, "tokenizer.file"},
                       "'" + recorded_file + "' does not exist; pass the tokenizer as --tokenizer");
  const std::string sha = sha256_hex(read_file(recorded_file));
  if (sha != recorded_sha256)
    throw_config_error(Location{where, 0, 0, "tokenizer.sha256"},
                       "'" + recorded_file + "' changed since pretraining (sha256 " + sha.substr(0, 16) +
                           "..., recorded " + recorded_sha256.substr(0, 16) + "...)");
  return recorded_file;
}

nlohmann::ordered_json split_json(const SplitResult& r) {
  nlohmann::ordered_json j;
  for (const auto& [k, v] : r.metrics) j[k] = v;
  j["score"] = r.score;
  j["loss"] = r.loss;
  if (r.gold_classes > 0) {
    j["predicted_classes"] = r.predicted_classes;
    j["collapsed"] = r.collapsed();
  }
  return j;
}

SplitResult evaluate_split(FlexModelImpl& model, const TaskSource& task, const EvalSplit& split, Precision precision) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  datasets::Predictions p;
  double loss_sum = 0;
  int64_t loss_count = 0;
  for (int64_t i = 0; i < split.num_batches; ++i) {
    const datasets::TaskBatch b = split.batch(i);
    torch::Tensor logits;
    {
      AutocastScope autocast(precision, device);
      logits = model.forward(b.input_ids.to(device), b.attention_mask.to(device)).logits;
    }
    logits = logits.to(torch::kCPU, torch::kFloat);
    switch (task.info.kind) {
      case datasets::TaskKind::kSequenceClassification: {  // logits [B,K], labels [B]
        loss_sum += torch::cross_entropy_loss(logits, b.labels, {}, at::Reduction::Sum).item<double>();
        loss_count += b.labels.size(0);
        const auto pred = logits.argmax(-1).contiguous();
        const auto gold = b.labels.contiguous();
        p.predicted.insert(p.predicted.end(), pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
        p.gold.insert(p.gold.end(), gold.data_ptr<int64_t>(), gold.data_ptr<int64_t>() + gold.numel());
        break;
      }
      case datasets::TaskKind::kRegression: {  // logits [B,1], targets [B] float
        const auto values = logits.squeeze(-1).to(torch::kDouble).contiguous();
        const auto gold = b.labels.to(torch::kDouble).contiguous();
        loss_sum += torch::mse_loss(values, gold, at::Reduction::Sum).item<double>();
        loss_count += gold.size(0);
        p.predicted_values.insert(p.predicted_values.end(), values.data_ptr<double>(),
                                  values.data_ptr<double>() + values.numel());
        p.gold_values.insert(p.gold_values.end(), gold.data_ptr<double>(), gold.data_ptr<double>() + gold.numel());
        break;
      }
      case datasets::TaskKind::kTokenClassification: {  // logits [B,T,K], labels [B,T] (-100 = not scored)
        const auto flat_labels = b.labels.reshape({-1});
        const auto keep = (flat_labels != -100).nonzero().squeeze(1);
        if (keep.numel() == 0) break;
        const auto kept_logits = logits.reshape({-1, logits.size(-1)}).index_select(0, keep);
        const auto gold = flat_labels.index_select(0, keep).contiguous();
        loss_sum += torch::cross_entropy_loss(kept_logits, gold, {}, at::Reduction::Sum).item<double>();
        loss_count += gold.numel();
        const auto pred = kept_logits.argmax(-1).contiguous();
        p.predicted.insert(p.predicted.end(), pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
        p.gold.insert(p.gold.end(), gold.data_ptr<int64_t>(), gold.data_ptr<int64_t>() + gold.numel());
        break;
      }
    }
  }
  if (was_training) model.train();
  SplitResult r;
  r.split = split.name;
  if (!p.predicted.empty()) {
    r.predicted_classes = int64_t(std::set<int64_t>(p.predicted.begin(), p.predicted.end()).size());
    r.gold_classes = int64_t(std::set<int64_t>(p.gold.begin(), p.gold.end()).size());
  }
  r.metrics = task.metrics(p);
  r.score = task.score(r.metrics);
  r.loss = loss_count ? loss_sum / double(loss_count) : 0.0;
  return r;
}

double auto_finetune_lr(const Architecture& arch) {
  int64_t widest = 1;
  for (const LayerSpec& layer : arch.layers) widest = std::max(widest, layer.hidden);
  return 1e-3 * std::min(1.0, 128.0 / double(widest));
}

const EnumNames<ClassBalance>& class_balance_names() {
  static const EnumNames<ClassBalance> names{
      {"auto", ClassBalance::kAuto}, {"true", ClassBalance::kOn}, {"false", ClassBalance::kOff}};
  return names;
}

std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts) {
  std::vector<double> w;
  int64_t n = 0, present = 0;
  for (int64_t c : counts) {
    n += c;
    present += c > 0;
  }
  // As sklearn: K counts the classes that occur, so the weights average 1 over the examples.
  for (int64_t c : counts) w.push_back(c > 0 ? double(n) / (double(present) * double(c)) : 0.0);
  return w;
}

FinetuneResult finetune(FlexModel& model, const TaskSource& task, const FinetuneTrainOptions& o,
                        const std::function<void(int64_t epoch, double score)>& after_epoch) {
  FLEXNAS_CHECK(o.epochs > 0, "epochs must be positive");
  FLEXNAS_CHECK(task.num_train_batches > 0, "empty training split");
  FLEXNAS_CHECK(!task.selection.empty(), "no selection split");
  FLEXNAS_CHECK(o.precision != Precision::kAuto, "finetune: resolve the precision first");
  FLEXNAS_CHECK(o.lr > 0, "finetune: resolve the learning rate first (auto_finetune_lr)");
  prepare_training_process();
  const torch::Device device = model->parameters().front().device();
  LossScaler scaler(o.precision == Precision::kFp16);
  torch::manual_seed(o.seed);  // dropout stream
  // Word embeddings learn at lr x embedding_lr_scale (a parameter group of their own).
  AdamW optimizer(*model, AdamWOptions{o.lr, 0.9, o.beta2, o.eps, o.weight_decay}, [&](const std::string& name) {
    return name.find("word_embeddings") != std::string::npos ? o.embedding_lr_scale : 1.0;
  });
  const int64_t total = o.epochs * task.num_train_batches;
  const LinearSchedule schedule{o.lr, int64_t(std::llround(o.warmup_fraction * double(total))), total};

  // The best epoch's weights, kept in memory ([name] -> clone).
  std::vector<std::pair<torch::Tensor, torch::Tensor>> best;  // (live tensor, saved copy)
  auto snapshot = [&] {
    torch::NoGradGuard no_grad;
    best.clear();
    for (auto& t : model->parameters()) best.emplace_back(t, t.detach().clone());
    for (auto& t : model->buffers()) best.emplace_back(t, t.detach().clone());
  };

  FinetuneResult result;
  const bool balance = o.balance_classes == ClassBalance::kAuto
                           ? datasets::score_rewards_minority_classes(task.info.score)
                           : o.balance_classes == ClassBalance::kOn;
  if (balance && !task.train_label_counts.empty()) {
    result.class_weights = balanced_class_weights(task.train_label_counts);
    model->set_class_weights(torch::tensor(result.class_weights, torch::kFloat));
  }
  Progress progress("finetune " + task.info.name, uint64_t(total), "steps");
  int64_t epochs_without_gain = 0;
  int64_t step = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    double loss_sum = 0;
    int64_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < task.num_train_batches; ++i) {
      const datasets::TaskBatch b = task.train_batch(epoch, i);
      optimizer.zero_grad();
      const double value =
          accumulate_gradients(*model, b.input_ids, b.attention_mask, b.labels, o.accumulate, o.precision, scaler.scale());
      if (scaler.unscale_and_check(model->parameters())) {  // fp16: a step with overflowing gradients is skipped
        if (o.clip_norm > 0) clip_grad_norm(*model, o.clip_norm);
        optimizer.step(schedule.lr_at(step));
      }
      ++step;
      if (!std::isfinite(value)) throw Error("finetune: the loss is " + std::to_string(value) + " at step " + std::to_string(step));
      loss_sum += value;
      tokens += b.attention_mask.sum().item<int64_t>();
      progress.advance();
      progress.set_note("epoch " + std::to_string(epoch + 1) + ", loss " + fixed(loss_sum / double(i + 1)) + ", " +
                        rate_text(double(tokens) / std::max(1e-9, seconds_since(t0))));
    }
    result.epoch_train_loss.push_back(loss_sum / double(task.num_train_batches));
    double score = 0;
    std::string summary;
    for (const auto& split : task.selection) {
      const SplitResult r = evaluate_split(*model, task, split, o.precision);
      score += r.score;
      summary += " " + split.name + " score " + fixed(r.score);
    }
    score /= double(task.selection.size());
    result.epoch_scores.push_back(score);
    LOG_INFO("finetune ", task.info.name, " epoch ", epoch + 1, "/", o.epochs, ": train loss ",
             fixed(result.epoch_train_loss.back()), summary);
    if (after_epoch) after_epoch(epoch + 1, score);
    if (score > best_score) {  // ties keep the earlier epoch
      best_score = score;
      result.best_epoch = epoch + 1;
      epochs_without_gain = 0;
      snapshot();
    } else if (o.patience > 0 && ++epochs_without_gain >= o.patience && epoch + 1 < o.epochs) {
      LOG_INFO("finetune ", task.info.name, ": no better dev score for ", o.patience, " epochs, stopping early");
      result.stopped_early = true;
      break;
    }
  }
  progress.finish();
  model->set_class_weights({});
  {
    torch::NoGradGuard no_grad;
    for (auto& [live, saved] : best) live.copy_(saved);
  }
  result.score = best_score;
  for (const auto& split : task.selection) result.best.push_back(evaluate_split(*model, task, split, o.precision));
  for (const auto& split : task.report) result.best.push_back(evaluate_split(*model, task, split, o.precision));
  return result;
}

}  // namespace flexnas::models
