#pragma once
// A search campaign's configuration (`campaign.yaml`), validated like every user file: each key is
// checked, each mistake is a located ConfigError ("file:line:col: error: key: found; allowed")
// raised before any work starts. Every default lives in the structs below. docs/campaigns.md is
// the reference of every key.
//
// Relative paths in the file are resolved against the file's own folder, so the same file works
// from any working directory; the campaign directory holds a frozen copy with absolute paths
// (`<directory>/campaign.yaml`), and a resume with a different configuration is an error.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "design_space/config_node.h"
#include "design_space/library_builder.h"
#include "models/profile.h"
#include "nas/boshnas.h"
#include "nas/policy.h"
#include "nas/policy_factory.h"
#include "transfer/transfer.h"

namespace flexnas::launch {

/// Generate the library in-process from a design space (instead of `library:`).
struct DesignSpaceSource {
  std::string file;                     // design-space YAML (absolute after loading)
  std::optional<int64_t> layers_per_stack;          // unset: the YAML's enumeration block
  std::optional<bool> heterogeneous_feed_forward;   // unset: the YAML's enumeration block
  std::optional<bool> increasing;                   // unset: the YAML's enumeration block
  int64_t sample = 0;                   // 0 = the whole space; N = N random architectures
  int64_t neighbors = LibraryBuildOptions{}.neighbors;       // neighbours per graph
  int64_t embedding_dim = EmbeddingOptions{}.dim;            // embedding width
};

/// `objective.profile`: how latency and memory are measured when a constraint or `cost: latency`
/// needs them — `flexnas model profile` at one sequence length, in a child process, once per
/// architecture (cached in campaign.db). Precision and device are the builtin evaluator's
/// (`auto` for the other evaluators).
struct ProfileConfig {
  int64_t seq_len = nas::CostSettings{}.sequence_length;  // tokens per sequence
  int64_t batch_size = models::ProfileOptions{}.batch_size;  // sequences per measured batch
  int64_t repeats = models::ProfileOptions{}.repeats;        // timed repetitions (the median is kept)
  int64_t threads = 1;                  // torch threads of the measurement (1: steady figures beside running trials)
  int64_t vocab_size = 8000;            // the MLM head's vocabulary (flexnas model profile's default)
};

struct ObjectiveConfig {
  std::string metric = "glue";          // key of the metrics JSON (table: key of `scores`)
  bool maximise = true;                 // false: the policy maximises -metric
  int64_t max_parameters = 0;           // constraint (0 = none)
  double cost_weight = 0;               // second objective: score - w * log2(cost)
  nas::CostKind cost = nas::CostKind::kParameters;  // parameters (/1e6) | flops (MFLOPs/token) | latency (ms)
  double max_latency_ms = 0;            // measured constraint: forward ms of one batch (0 = none)
  double max_memory_mb = 0;             // measured constraint: peak training MiB at that batch (0 = none)
  ProfileConfig profile;                // how latency and memory are measured
  /// True when proposals are measured (a latency/memory constraint or cost latency).
  bool measured() const { return max_latency_ms > 0 || max_memory_mb > 0 || cost == nas::CostKind::kLatency; }
};

/// `policy:` — the policy's own options structs, so each default is the one nas/ defines. The keys
/// under `policy:` are the fields of the chosen policy's struct (boshnas: num_init ... inputs;
/// evolution: population, sample_size; pareto: num_init, targets, inputs, aleatoric; nsga2:
/// population, sample_size, survival); surrogate and GOBI internals are not campaign keys.
struct PolicyConfig {
  nas::PolicyKind name = nas::PolicyKind::kBoshnas;
  nas::BoshnasOptions boshnas;
  nas::EvolutionOptions evolution;
  nas::ParetoOptions pareto;   // score vs parameters: expected hypervolume improvement (nas/multi_objective.h)
  nas::Nsga2Options nsga2;     // score vs parameters: NSGA-II-ranked evolution
};

struct BudgetConfig {
  int64_t trials = 50;                  // proposals in total, failed ones included (0 = no limit)
  double wall_time = 0;                 // seconds of campaign time over all runs (0 = no limit)
};

/// `builtin`: child processes running flexnas's own `pretrain` and `finetune` subcommands.
struct BuiltinConfig {
  std::string tokenizer;                // SentencePiece model file
  std::vector<std::string> corpus;      // pretraining text files
  int64_t steps = 1000;                 // pretraining steps from scratch
  std::string task = "spam";            // fine-tuning task, or tasks and suites comma-separated (`tasks`:
                                        // a list); several = a suite, scored by the mean task score
  /// The folder of the fine-tuned model(s) under a trial's model directory: the task, or "suite".
  std::string finetune_folder() const;
  int64_t epochs = 3;                   // fine-tuning epochs
  std::string data_dir;                 // --data-dir for the task ("" = the subcommand's default)
  bool warm_start = true;               // start from the nearest trained library neighbour
  double warm_threshold = 0.8;          // warm start only from a model whose transfer overlap is at least this
  int64_t warm_steps = 250;             // pretraining steps after a warm start (0 = transfer only)
  transfer::TransferMode transfer_mode = transfer::TransferMode::kOrdered;  // od | rp: how the weights are transferred
  std::string precision = "auto";       // --precision of pretrain and finetune (auto | fp32 | bf16 | fp16)
  std::string device = "auto";          // --device of pretrain and finetune (auto | cpu | cuda | cuda:N)
  std::vector<std::string> pretrain_args;  // extra flags appended to `flexnas pretrain`
  std::vector<std::string> finetune_args;  // extra flags appended to `flexnas finetune`
  std::string executable;               // flexnas binary ("" = this executable)
};

/// How a trial is evaluated: looked up in a benchmark table, a user command, or flexnas's own training.
enum class EvaluatorType { kTable, kCommand, kBuiltin };
const EnumNames<EvaluatorType>& evaluator_type_names();  // table, command, builtin

struct EvaluatorConfig {
  EvaluatorType type = EvaluatorType::kTable;
  // table
  std::string table;                    // benchmark JSON (NAS-Bench-BERT layout)
  // command
  std::vector<std::string> argv;        // program + arguments; {arch} {out} {seed} {trial} substituted
  BuiltinConfig builtin;
};

struct TrialConfig {
  int64_t retries = 2;                  // attempts after the first failed one
  double timeout = 0;                   // seconds per attempt (0 = none)
  int64_t memory_limit_mb = 0;          // RLIMIT_AS of the trial's child process (0 = none)
};

enum class SchedulerOrder { kOrdered, kAsync };
const EnumNames<SchedulerOrder>& scheduler_order_names();  // ordered, async

struct SchedulerConfig {
  // ordered: results reach the policy in trial order and proposal k is made after exactly
  // k - window + 1 results, so the trials depend only on the seed (any worker count, any timing,
  // resume included). async: results reach the policy as they arrive (fastest, not reproducible
  // for policies that learn).
  SchedulerOrder order = SchedulerOrder::kOrdered;
  int64_t window = 0;                   // proposals ahead of the observed results (0 = 2 x workers at first start)
  double heartbeat_timeout = 60;        // MPI: seconds without a word from a busy worker rank = lost
  double drain_timeout = 30;            // on SIGTERM/SIGINT/SIGUSR1: seconds to wait for running trials
  double library_save_interval = 5;     // seconds between saves of the library's performances
};

struct CampaignConfig {
  std::string source;                   // the YAML file it was read from
  std::string name;                     // default: the file's stem
  std::string directory;                // default: <file folder>/<name>; absolute after loading
  std::string library;                  // library file (absolute), or:
  std::optional<DesignSpaceSource> design_space;
  ObjectiveConfig objective;
  PolicyConfig policy;
  BudgetConfig budget;
  uint64_t seed = 0;
  EvaluatorConfig evaluator;
  TrialConfig trial;
  int64_t workers = 2;                  // local worker threads (MPI: ranks 1..N-1 instead)
  SchedulerConfig scheduler;
  // Parent campaign directory (hierarchical refinement): its trained models are warm-start sources,
  // architectures it trained are taken over instead of retrained, and reports show both levels.
  std::string parent;

  /// Canonical JSON of every setting (absolute paths). `for_compare` leaves out what may change
  /// between runs of one campaign (workers, drain and heartbeat timeouts, save interval).
  nlohmann::ordered_json to_json(bool for_compare = false) const;
};

/// Reads and validates a campaign file; every mistake is a located ConfigError.
CampaignConfig load_campaign_config(const std::string& path);

/// The frozen copy's text (YAML-compatible JSON with a comment header).
std::string frozen_config_text(const CampaignConfig& config);
/// Throws ConfigError naming the first differing setting when `current` is not the configuration
/// the campaign in `directory` was started with (`frozen`).
void check_same_campaign(const CampaignConfig& current, const CampaignConfig& frozen);

/// Files inside a campaign directory.
std::string campaign_db_path(const std::string& directory);       // <dir>/campaign.db
std::string frozen_config_path(const std::string& directory);     // <dir>/campaign.yaml
std::string campaign_library_path(const std::string& directory);  // <dir>/library.json (performances filled in)
std::string trial_dir(const std::string& directory, int64_t trial_id, int64_t attempt);  // <dir>/trials/<id>/<attempt>
std::string model_dir(const std::string& directory, const std::string& hash);            // <dir>/models/<hash>
std::string profile_dir(const std::string& directory, const std::string& hash);          // <dir>/profiles/<hash>

}  // namespace flexnas::launch
