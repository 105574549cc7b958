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
  // A checkpoint without optimiser state must not keep an older one.
  if (std::find(files.begin(), files.end(), kTrainStateFile) == files.end()) fs::remove(join(dir, kTrainStateFile));
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
  if (eval_loss >= 0) {
    j["eval_loss"] = eval_loss;
    j["eval_perplexity"] = std::exp(eval_loss);
  }
  return j;
}

StepRecord StepRecord::from_json(const nlohmann::json& j) {
  StepRecord r;
  r.step = j.at("step").get<int64_t>();
  r.loss = j.at("loss").get<double>();
  r.lr = j.at("lr").get<double>();
  r.grad_norm = j.at("grad_norm").get<double>();
  r.tokens_per_second = j.at("tokens_per_second").get<double>();
  if (j.contains("eval_loss")) r.eval_loss = j.at("eval_loss").get<double>();
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
                       const nlohmann::ordered_json& metrics, const std::string& tokenizer_file) {
  fs::create_directories(dir);
  recover_checkpoint(dir);  // never stage over an unfinished commit
  const std::string staging = join(dir, kStagingDir);
  fs::remove_all(staging);
  fs::create_directories(staging);
  save_checkpoint(staging, model, tokenizer_file);
  std::vector<std::string> files = {kWeightsFile, kConfigFile, kMetricsFile};
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

PretrainResult pretrain(FlexModel& model, const MlmSource& data, const PretrainOptions& o, const std::string& out_dir,
                        const std::string& tokenizer_file, const nlohmann::ordered_json& extra_config) {
  FLEXNAS_CHECK(o.steps > 0, "steps must be positive");
  FLEXNAS_CHECK(o.precision != Precision::kAuto, "pretrain: resolve the precision first");
  prepare_training_process();  // no page faults per step, OpenBLAS on --threads cores (training.h)
  const torch::Device device = model->parameters().front().device();
  LossScaler scaler(o.precision == Precision::kFp16);
  AdamW optimizer(*model, AdamWOptions{o.lr, 0.9, o.beta2, o.eps, o.weight_decay});
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
    load_weights(*model, join(out_dir, kWeightsFile), WeightsMatch::kStrict);
    result.start_step = load_train_state(out_dir, optimizer);
    const auto old = read_metrics(out_dir);
    if (old.contains("run") && old["run"].contains("precision") && old["run"]["precision"] != run["precision"])
      throw ConfigError("error: --precision: the checkpoint in '" + out_dir + "' was trained in " +
                        old["run"]["precision"].get<std::string>() + ", not " + precision_name(o.precision) +
                        "; resume in the same precision (--precision auto takes the checkpoint's)");
    if (old.contains("run")) {
      for (const char* key : {"steps", "lr", "warmup_steps", "weight_decay", "clip_norm", "seed", "threads",
                              "batch_size", "seq_len", "accumulate"})
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
    if (!result.history.empty()) m["train_loss"] = result.history.back().loss;
    for (auto it = result.history.rbegin(); it != result.history.rend(); ++it)
      if (it->eval_loss >= 0) {
        m["eval_loss"] = it->eval_loss;
        m["eval_perplexity"] = std::exp(it->eval_loss);
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

  model->train();
  Progress progress("pretrain", uint64_t(o.steps - result.start_step), "steps");
  const auto run_start = std::chrono::steady_clock::now();
  auto record_start = run_start;
  double loss_sum = 0, train_seconds = 0;
  int64_t loss_count = 0, record_tokens = 0, run_tokens = 0;
  double last_lr = 0, last_norm = 0;
  int64_t step = result.start_step;
  while (step < o.steps) {
    const datasets::MlmBatch batch = data.train_batch(step);
    const auto t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    const double value = accumulate_gradients(*model, batch.input_ids, batch.attention_mask, batch.labels, o.accumulate,
                                              o.precision, scaler.scale());
    last_lr = schedule.lr_at(step);
    if (scaler.unscale_and_check(model->parameters())) {  // fp16: a step with overflowing gradients is skipped
      last_norm = o.clip_norm > 0 ? clip_grad_norm(*model, o.clip_norm) : 0.0;
      optimizer.step(last_lr);
    }
    train_seconds += seconds_since(t0);
    if (!std::isfinite(value)) throw Error("pretrain: the loss is " + std::to_string(value) + " at step " + std::to_string(step));
    ++step;
    result.losses.push_back(value);
    loss_sum += value;
    ++loss_count;
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
      if (eval) r.eval_loss = evaluate_mlm(*model, data, o.max_eval_batches, o.precision);
      result.history.push_back(r);
      progress.set_note("loss " + fixed(r.loss) + (eval ? ", eval " + fixed(r.eval_loss) : "") + ", " +
                        rate_text(r.tokens_per_second));
      loss_sum = 0;
      loss_count = 0;
      record_tokens = 0;
      record_start = std::chrono::steady_clock::now();
    }
    if (save) {
      result.tokens_per_second = double(run_tokens) / std::max(1e-9, train_seconds);
      commit_checkpoint(out_dir, *model, &optimizer, step, metrics_json(step), tokenizer_file);
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
      break;
    }
  return result;
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
  AdamW optimizer(*model, AdamWOptions{o.lr, 0.9, o.beta2, o.eps, o.weight_decay});
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
  if (o.balance_classes && !task.train_label_counts.empty()) {
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
