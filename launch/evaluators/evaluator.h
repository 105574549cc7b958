#pragma once
// Evaluators: how one trial (an architecture) becomes a metric. They run on a worker (a thread of
// the local runner or an MPI worker rank).
//   table   : look-up in a tabular benchmark by architecture hash, in-process (no child process);
//   command : a user program run as a child process with the architecture JSON and an output
//             folder (argv substitutions {arch} {out} ... and FLEXNAS_ARCH / FLEXNAS_OUT / FLEXNAS_SEED / FLEXNAS_TRIAL);
//             it writes `metrics.json` there;
//   builtin : flexnas's own `pretrain` then `finetune` subcommands as child processes (exact commands:
//             builtin_commands below and docs/campaigns.md).
// A crash, a signal, a timeout, the memory limit, a non-zero exit, a missing or bad metrics.json is
// a failed attempt with its reason; the scheduler decides about retries.
#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "launch/campaign/campaign_config.h"

namespace flexnas::launch {

/// One attempt of one trial, as the scheduler sends it to a worker.
struct TrialTask {
  int64_t trial_id = -1;
  int64_t attempt = 1;                 // 1-based
  int64_t index = -1;                  // library index
  std::string hash;
  nlohmann::json arch;                 // canonical model dict
  uint64_t seed = 0;                   // derived from (campaign seed, trial id): same for every attempt
  std::string warm_start_hash;         // builtin: trained neighbour the weights come from ("" = none)
  std::string warm_start_checkpoint;   // its checkpoint directory
  int gpu = -1;                        // set by the worker: CUDA device for the child (-1 = none); not sent

  nlohmann::json to_json() const;
  static TrialTask from_json(const nlohmann::json& j);
};

/// What a worker reports back for one attempt.
struct TrialOutcome {
  int64_t trial_id = -1;
  int64_t attempt = 1;
  bool ok = false;
  std::optional<double> value;         // the objective metric as measured (not sign-adjusted)
  nlohmann::json metrics = nlohmann::json::object();  // everything the evaluator reported
  std::string reason;                  // failure reason ("" when ok)
  double seconds = 0;                  // wall time of the attempt
  double cpu_seconds = 0;              // child CPU time (0 for table)
  int64_t max_rss_kb = 0;
  std::string checkpoint;              // builtin: the trained checkpoint directory
  bool cancelled = false;              // stopped by a drain (not a failure of the trial)

  nlohmann::json to_json() const;
  static TrialOutcome from_json(const nlohmann::json& j);
};

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual std::string name() const = 0;
  /// Runs one attempt. `cancel` (may be null) stops it early; `tick` is called periodically while
  /// a child process runs (heartbeats). Never throws for a failure of the trial itself.
  virtual TrialOutcome evaluate(const TrialTask& task, const std::atomic<bool>* cancel,
                                const std::function<void()>& tick) = 0;
};

/// Builds the configured evaluator (loads the table, checks the program). ConfigErrors are located.
std::unique_ptr<Evaluator> make_evaluator(const CampaignConfig& config);

/// The command evaluator's argv: {arch}, {out}, {seed}, {trial}, {attempt} replaced in every argument.
std::vector<std::string> substitute_argv(const std::vector<std::string>& argv, const std::string& arch_path,
                                         const std::string& out_dir, uint64_t seed, int64_t trial_id, int64_t attempt);

/// The builtin evaluator's child commands for one attempt, in order (each one argv):
///   no warm start:  <exe> pretrain --arch A --tokenizer T --corpus C... --steps N --seed S --out M/pretrained [pretrain_args]
///   warm start:     <exe> pretrain ... --steps warm_steps --init-from CKPT --init-mode od|rp ...   (warm_steps > 0)
///                   <exe> transfer --from CKPT --to A --mode od|rp --seed S --out M/pretrained   (warm_steps = 0)
///   then:           <exe> finetune --checkpoint M/pretrained --task TASK --epochs E --seed S --out M/<task> [--data-dir D] [finetune_args]
/// where A = <out_dir>/arch.json and M = the model directory of the architecture.
std::vector<std::vector<std::string>> builtin_commands(const BuiltinConfig& config, const std::string& exe,
                                                       const std::string& arch_path, const std::string& model_dir,
                                                       const TrialTask& task);

/// The number at `metric` (a key, or a dotted path "scores.glue") of a metrics object.
std::optional<double> metric_value(const nlohmann::json& metrics, const std::string& metric);

/// Reads <out_dir>/metrics.json: nullopt + reason when missing, not JSON, or without the metric.
std::optional<double> read_metrics_file(const std::string& path, const std::string& metric, nlohmann::json& metrics,
                                        std::string& reason);

/// CUDA devices visible on this node (/dev/nvidia0, /dev/nvidia1, ...); 0 without CUDA.
int count_gpus();

/// This executable's path (/proc/self/exe).
std::string self_executable();

}  // namespace flexnas::launch
