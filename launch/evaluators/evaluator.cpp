#include "launch/evaluators/evaluator.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/process.h"
#include "nas/table.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

// ---- wire format (MPI messages) ----

nlohmann::json TrialTask::to_json() const {
  return {{"trial", trial_id}, {"attempt", attempt}, {"index", index}, {"hash", hash}, {"arch", arch},
          {"seed", seed},      {"warm_hash", warm_start_hash}, {"warm_ckpt", warm_start_checkpoint}};
}

TrialTask TrialTask::from_json(const nlohmann::json& j) {
  TrialTask t;
  t.trial_id = j.at("trial").get<int64_t>();
  t.attempt = j.at("attempt").get<int64_t>();
  t.index = j.at("index").get<int64_t>();
  t.hash = j.at("hash").get<std::string>();
  t.arch = j.at("arch");
  t.seed = j.at("seed").get<uint64_t>();
  t.warm_start_hash = j.at("warm_hash").get<std::string>();
  t.warm_start_checkpoint = j.at("warm_ckpt").get<std::string>();
  return t;
}

nlohmann::json TrialOutcome::to_json() const {
  nlohmann::json j = {{"trial", trial_id},         {"attempt", attempt},   {"ok", ok},
                      {"metrics", metrics},        {"reason", reason},     {"seconds", seconds},
                      {"cpu_seconds", cpu_seconds}, {"max_rss_kb", max_rss_kb}, {"checkpoint", checkpoint},
                      {"cancelled", cancelled}};
  j["value"] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  return j;
}

TrialOutcome TrialOutcome::from_json(const nlohmann::json& j) {
  TrialOutcome o;
  o.trial_id = j.at("trial").get<int64_t>();
  o.attempt = j.at("attempt").get<int64_t>();
  o.ok = j.at("ok").get<bool>();
  if (!j.at("value").is_null()) o.value = j.at("value").get<double>();
  o.metrics = j.at("metrics");
  o.reason = j.at("reason").get<std::string>();
  o.seconds = j.at("seconds").get<double>();
  o.cpu_seconds = j.at("cpu_seconds").get<double>();
  o.max_rss_kb = j.at("max_rss_kb").get<int64_t>();
  o.checkpoint = j.at("checkpoint").get<std::string>();
  o.cancelled = j.at("cancelled").get<bool>();
  return o;
}

// ---- helpers ----

int count_gpus() {
  int n = 0;
  while (fs::exists("/dev/nvidia" + std::to_string(n))) ++n;
  return n;
}

std::string self_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  FLEXNAS_CHECK(!ec, "cannot resolve /proc/self/exe: ", ec.message());
  return p.string();
}

std::vector<std::string> substitute_argv(const std::vector<std::string>& argv, const std::string& arch_path,
                                         const std::string& out_dir, uint64_t seed, int64_t trial_id, int64_t attempt) {
  const std::vector<std::pair<std::string, std::string>> table = {{"{arch}", arch_path},
                                                                  {"{out}", out_dir},
                                                                  {"{seed}", std::to_string(seed)},
                                                                  {"{trial}", std::to_string(trial_id)},
                                                                  {"{attempt}", std::to_string(attempt)}};
  std::vector<std::string> out;
  for (std::string arg : argv) {
    for (const auto& [key, value] : table) {
      for (size_t pos = arg.find(key); pos != std::string::npos; pos = arg.find(key, pos + value.size()))
        arg.replace(pos, key.size(), value);
    }
    out.push_back(std::move(arg));
  }
  return out;
}

std::optional<double> metric_value(const nlohmann::json& metrics, const std::string& metric) {
  const nlohmann::json* node = &metrics;
  if (node->is_object() && node->contains(metric)) {
    node = &(*node)[metric];
  } else {
    std::stringstream parts(metric);
    std::string part;
    while (std::getline(parts, part, '.')) {
      if (!node->is_object() || !node->contains(part)) return std::nullopt;
      node = &(*node)[part];
    }
  }
  if (!node->is_number()) return std::nullopt;
  const double v = node->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<double> read_metrics_file(const std::string& path, const std::string& metric, nlohmann::json& metrics,
                                        std::string& reason) {
  if (!fs::is_regular_file(path)) {
    reason = "the program wrote no " + fs::path(path).filename().string() + " (expected " + path + ")";
    return std::nullopt;
  }
  std::string text;
  try {
    text = read_file(path);
    metrics = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    reason = path + ": invalid JSON: " + e.what();
    return std::nullopt;
  }
  if (!metrics.is_object()) {
    reason = path + ": expected a JSON object of metrics, got " + std::string(metrics.type_name());
    return std::nullopt;
  }
  auto value = metric_value(metrics, metric);
  if (!value) {
    std::vector<std::string> keys;
    for (auto it = metrics.begin(); it != metrics.end(); ++it) keys.push_back(it.key());
    reason = path + ": no finite number at '" + metric + "' (keys: " + join(keys) + ")";
  }
  return value;
}

std::vector<std::vector<std::string>> builtin_commands(const BuiltinConfig& c, const std::string& exe,
                                                       const std::string& arch_path, const std::string& model_dir,
                                                       const TrialTask& task) {
  const std::string seed = std::to_string(task.seed);
  const std::string pretrained = (fs::path(model_dir) / "pretrained").string();
  const std::string finetuned = (fs::path(model_dir) / c.finetune_folder()).string();
  const bool warm = c.warm_start && !task.warm_start_checkpoint.empty();
  std::vector<std::vector<std::string>> commands;
  if (warm && c.warm_steps == 0) {
    commands.push_back({exe, "transfer", "--from", task.warm_start_checkpoint, "--to", arch_path, "--mode",
                        transfer::mode_name(c.transfer_mode), "--seed", seed, "--out", pretrained});
  } else {
    std::vector<std::string> pre = {exe, "pretrain", "--arch", arch_path, "--tokenizer", c.tokenizer, "--corpus"};
    pre.insert(pre.end(), c.corpus.begin(), c.corpus.end());
    pre.insert(pre.end(), {"--steps", std::to_string(warm ? c.warm_steps : c.steps), "--seed", seed, "--out", pretrained});
    if (warm) pre.insert(pre.end(), {"--init-from", task.warm_start_checkpoint, "--init-mode", transfer::mode_name(c.transfer_mode)});
    if (c.precision != "auto") pre.insert(pre.end(), {"--precision", c.precision});
    if (c.device != "auto") pre.insert(pre.end(), {"--device", c.device});
    pre.insert(pre.end(), c.pretrain_args.begin(), c.pretrain_args.end());
    commands.push_back(std::move(pre));
  }
  std::vector<std::string> fine = {exe,    "finetune", "--checkpoint", pretrained, "--task", c.task, "--epochs",
                                   std::to_string(c.epochs), "--seed", seed, "--out", finetuned};
  if (!c.data_dir.empty()) fine.insert(fine.end(), {"--data-dir", c.data_dir});
  if (c.precision != "auto") fine.insert(fine.end(), {"--precision", c.precision});
  if (c.device != "auto") fine.insert(fine.end(), {"--device", c.device});
  fine.insert(fine.end(), c.finetune_args.begin(), c.finetune_args.end());
  commands.push_back(std::move(fine));
  return commands;
}

namespace {

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- table ----

class TableEvaluator : public Evaluator {
 public:
  explicit TableEvaluator(const CampaignConfig& config)
      : table_(nas::load_benchmark_table(config.evaluator.table, config.objective.metric)),
        metric_(config.objective.metric) {}
  std::string name() const override { return "table"; }

  TrialOutcome evaluate(const TrialTask& task, const std::atomic<bool>*, const std::function<void()>&) override {
    const auto start = std::chrono::steady_clock::now();
    TrialOutcome o;
    o.trial_id = task.trial_id;
    o.attempt = task.attempt;
    o.value = table_.lookup(task.hash);
    if (o.value) {
      o.ok = true;
      o.metrics[metric_] = *o.value;
    } else {
      o.reason = "architecture " + task.hash.substr(0, 12) + " is not in the table " + table_.path;
    }
    o.seconds = since(start);
    return o;
  }

 private:
  nas::BenchmarkTable table_;
  std::string metric_;
};

// ---- child-process evaluators (command, builtin) ----

class ChildEvaluator : public Evaluator {
 public:
  explicit ChildEvaluator(const CampaignConfig& config) : config_(config) {
    if (config.evaluator.type == EvaluatorType::kBuiltin)
      exe_ = config.evaluator.builtin.executable.empty() ? self_executable() : config.evaluator.builtin.executable;
  }
  std::string name() const override { return enum_name(evaluator_type_names(), config_.evaluator.type); }

  TrialOutcome evaluate(const TrialTask& task, const std::atomic<bool>* cancel,
                        const std::function<void()>& tick) override {
    TrialOutcome o;
    o.trial_id = task.trial_id;
    o.attempt = task.attempt;
    const std::string out = trial_dir(config_.directory, task.trial_id, task.attempt);
    std::error_code ec;
    fs::remove_all(out, ec);  // a re-run attempt (resume) starts from an empty folder
    fs::create_directories(out);
    const std::string arch_path = (fs::path(out) / "arch.json").string();
    // Scratch input of this attempt (rewritten on a re-run): a plain write, no fsync.
    std::ofstream(arch_path) << task.arch.dump(2) << "\n";
    const std::string log = (fs::path(out) / "log.txt").string();
    std::vector<std::vector<std::string>> commands;
    std::string metrics_path = (fs::path(out) / "metrics.json").string();
    if (config_.evaluator.type == EvaluatorType::kCommand) {
      commands.push_back(substitute_argv(config_.evaluator.argv, arch_path, out, task.seed, task.trial_id, task.attempt));
    } else {
      const std::string models = model_dir(config_.directory, task.hash);
      fs::remove_all(models, ec);
      commands = builtin_commands(config_.evaluator.builtin, exe_, arch_path, models, task);
      metrics_path = (fs::path(models) / config_.evaluator.builtin.finetune_folder() / "metrics.json").string();
      o.checkpoint = (fs::path(models) / "pretrained").string();
    }
    std::map<std::string, std::string> env = {{"FLEXNAS_ARCH", arch_path},
                                                    {"FLEXNAS_OUT", out},
                                                    {"FLEXNAS_SEED", std::to_string(task.seed)},
                                                    {"FLEXNAS_TRIAL", std::to_string(task.trial_id)},
                                                    {"FLEXNAS_ATTEMPT", std::to_string(task.attempt)},
                                                    {"OMP_WAIT_POLICY", "passive"}};
    // Worker ranks/threads bind to GPUs by local rank (unless the user pinned devices already).
    if (task.gpu >= 0 && !std::getenv("CUDA_VISIBLE_DEVICES")) env["CUDA_VISIBLE_DEVICES"] = std::to_string(task.gpu);
    ChildLimits limits;
    limits.memory_limit_mb = config_.trial.memory_limit_mb;
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < commands.size(); ++i) {
      // The timeout covers the whole attempt (all its commands).
      if (config_.trial.timeout > 0) limits.timeout = std::max(0.001, config_.trial.timeout - since(start));
      const ChildResult r = run_child(commands[i], env, out, log, limits, cancel, tick);
      o.cpu_seconds += r.cpu_seconds;
      o.max_rss_kb = std::max(o.max_rss_kb, r.max_rss_kb);
      if (!r.ok) {
        o.cancelled = r.cancelled;
        o.reason = (commands.size() > 1 ? "step " + std::to_string(i + 1) + " (" + commands[i][1] + "): " : "") +
                   r.reason + " (log: " + log + ")";
        if (r.timed_out && config_.trial.timeout > 0)
          o.reason = "timeout after " + std::to_string(int64_t(config_.trial.timeout)) + " s (killed) (log: " + log + ")";
        o.seconds = since(start);
        o.checkpoint.clear();
        return o;
      }
    }
    std::string reason;
    o.value = read_metrics_file(metrics_path, config_.objective.metric, o.metrics, reason);
    o.ok = bool(o.value);
    if (!o.ok) {
      o.reason = reason;
      o.checkpoint.clear();
    }
    o.seconds = since(start);
    return o;
  }

 private:
  CampaignConfig config_;
  std::string exe_;
};

}  // namespace

std::unique_ptr<Evaluator> make_evaluator(const CampaignConfig& config) {
  if (config.evaluator.type == EvaluatorType::kTable) return std::make_unique<TableEvaluator>(config);
  return std::make_unique<ChildEvaluator>(config);
}

}  // namespace flexnas::launch
