#include "launch/campaign/campaign_config.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "datasets/tasks.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "models/precision.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

namespace {

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(base_dir) / p;
  return p.lexically_normal().string();
}

std::string non_empty_string(const ConfigNode& node) {
  std::string value = node.as_string();
  node.check(!value.empty(), "expected a non-empty string, got an empty one");
  return value;
}

int64_t int_at_least(const ConfigNode& node, int64_t minimum, const std::string& what) {
  const int64_t value = node.as_int();
  node.check(value >= minimum, "expected " + what + ", got " + std::to_string(value));
  return value;
}

double number_at_least(const ConfigNode& node, double minimum, const std::string& what) {
  const double value = node.as_double();
  node.check(value >= minimum, "expected " + what + ", got " + node.as_string());
  return value;
}

std::string one_of(const ConfigNode& node, const std::vector<std::string>& allowed) {
  const std::string value = node.as_string();
  node.check(std::find(allowed.begin(), allowed.end(), value) != allowed.end(),
             "unknown value '" + value + "'; allowed: " + join(allowed));
  return value;
}

/// A file the campaign reads: resolved against the YAML's folder; must exist.
std::string existing_file(const ConfigNode& node, const std::string& base_dir) {
  const std::string path = resolve(base_dir, non_empty_string(node));
  node.check(fs::is_regular_file(path), "file not found: " + path);
  return path;
}

void parse_design_space(const ConfigNode& node, const std::string& base_dir, DesignSpaceSource& out) {
  if (node.is_scalar()) {  // shorthand: `design_space: file.yaml`
    out.file = existing_file(node, base_dir);
    return;
  }
  node.check(node.is_map(), "expected a design-space file or a map with `file`, got " + node.describe());
  node.check_keys({"file", "layers_per_stack", "heterogeneous_feed_forward", "increasing", "sample", "neighbors",
                   "embedding_dim"});
  out.file = existing_file(node["file"], base_dir);
  if (auto v = node.find("layers_per_stack")) out.layers_per_stack = int_at_least(*v, 1, "a positive integer");
  if (auto v = node.find("heterogeneous_feed_forward")) out.heterogeneous_feed_forward = v->as_bool();
  if (auto v = node.find("increasing")) out.increasing = v->as_bool();
  if (auto v = node.find("sample")) out.sample = int_at_least(*v, 0, "a non-negative integer (0 = whole space)");
  if (auto v = node.find("neighbors")) out.neighbors = int_at_least(*v, 1, "a positive integer");
  if (auto v = node.find("embedding_dim")) out.embedding_dim = int_at_least(*v, 1, "a positive integer");
}

void parse_profile(const ConfigNode& node, ProfileConfig& out) {
  node.check(node.is_map(), "expected a map (seq_len, batch_size, repeats, threads, vocab_size), got " + node.describe());
  node.check_keys({"seq_len", "batch_size", "repeats", "threads", "vocab_size"});
  if (auto v = node.find("seq_len")) {
    const int64_t most = models::ModelOptions{}.max_positions;
    out.seq_len = int_at_least(*v, 3, "an integer in 3.." + std::to_string(most));
    v->check(out.seq_len <= most, "expected an integer in 3.." + std::to_string(most) + " (the models' max positions), got " +
                                      std::to_string(out.seq_len));
  }
  if (auto v = node.find("batch_size")) out.batch_size = int_at_least(*v, 1, "a positive integer");
  if (auto v = node.find("repeats")) out.repeats = int_at_least(*v, 1, "a positive integer");
  if (auto v = node.find("threads")) out.threads = int_at_least(*v, 0, "a non-negative integer (0 = every core)");
  if (auto v = node.find("vocab_size")) out.vocab_size = int_at_least(*v, 8, "an integer >= 8");
}

void parse_objective(const ConfigNode& node, ObjectiveConfig& out) {
  node.check(node.is_map(), "expected a map with `metric`, got " + node.describe());
  node.check_keys({"metric", "maximise", "maximize", "max_parameters", "cost_weight", "cost", "max_latency_ms",
                   "max_memory_mb", "profile"});
  out.metric = non_empty_string(node["metric"]);
  node.get("maximise", out.maximise);
  node.get("maximize", out.maximise);
  if (auto v = node.find("max_parameters")) out.max_parameters = int_at_least(*v, 0, "a non-negative integer (0 = none)");
  if (auto v = node.find("cost_weight")) out.cost_weight = number_at_least(*v, 0, "a non-negative number");
  node.get_enum("cost", out.cost, nas::cost_kind_names());
  if (auto v = node.find("max_latency_ms"))
    out.max_latency_ms = number_at_least(*v, 0, "a non-negative number of milliseconds (0 = none)");
  if (auto v = node.find("max_memory_mb"))
    out.max_memory_mb = number_at_least(*v, 0, "a non-negative number of MiB (0 = none)");
  if (auto v = node.find("profile")) parse_profile(*v, out.profile);
}

void parse_policy(const ConfigNode& node, PolicyConfig& out) {
  if (node.is_scalar()) {  // shorthand: `policy: random`
    out.name = node.as_enum(nas::policy_kind_names());
    return;
  }
  node.check(node.is_map(), "expected a policy name or a map with `name`, got " + node.describe());
  out.name = node["name"].as_enum(nas::policy_kind_names());
  if (out.name == nas::PolicyKind::kBoshnas) {
    nas::BoshnasOptions& b = out.boshnas;
    node.check_keys({"name", "num_init", "uncertainty_prob", "diversity_prob", "patience", "aleatoric_queries",
                     "stop_on_convergence", "targets", "local_parents", "local_neighbours", "inputs", "surrogate"});
    if (auto v = node.find("num_init")) b.num_init = int_at_least(*v, 1, "a positive integer");
    auto probability = [](const ConfigNode& v) {
      const double p = v.as_double();
      v.check(p >= 0 && p <= 1, "expected a probability in [0, 1], got " + v.as_string());
      return p;
    };
    if (auto v = node.find("uncertainty_prob")) b.uncertainty_prob = probability(*v);
    if (auto v = node.find("diversity_prob")) b.diversity_prob = probability(*v);
    if (b.uncertainty_prob + b.diversity_prob > 1)
      node.fail("uncertainty_prob + diversity_prob must be at most 1, got " +
                std::to_string(b.uncertainty_prob + b.diversity_prob));
    if (auto v = node.find("patience")) b.patience = int_at_least(*v, 1, "a positive integer");
    if (auto v = node.find("aleatoric_queries")) b.aleatoric_queries = int_at_least(*v, 0, "a non-negative integer");
    node.get("stop_on_convergence", b.stop_on_convergence);
    node.get_enum("targets", b.targets, nas::surrogate_targets_names());
    if (auto v = node.find("local_parents")) b.local_parents = int_at_least(*v, 0, "a non-negative integer");
    if (auto v = node.find("local_neighbours")) b.local_neighbours = int_at_least(*v, 0, "a non-negative integer");
    node.get_enum("inputs", b.inputs, nas::surrogate_inputs_names());
    node.get_enum("surrogate", b.surrogate.model, nas::surrogate_model_names());
  } else if (out.name == nas::PolicyKind::kEvolution) {
    nas::EvolutionOptions& e = out.evolution;
    node.check_keys({"name", "population", "sample_size"});
    if (auto v = node.find("population")) e.population = int_at_least(*v, 2, "an integer >= 2");
    if (auto v = node.find("sample_size")) e.sample_size = int_at_least(*v, 1, "a positive integer");
    if (e.sample_size > e.population)
      node["sample_size"].fail("expected at most population (" + std::to_string(e.population) + "), got " +
                               std::to_string(e.sample_size));
  } else if (out.name == nas::PolicyKind::kPareto) {
    nas::ParetoOptions& p = out.pareto;
    node.check_keys({"name", "num_init", "targets", "inputs", "aleatoric", "surrogate"});
    if (auto v = node.find("num_init")) p.num_init = int_at_least(*v, 1, "a positive integer");
    node.get_enum("targets", p.targets, nas::surrogate_targets_names());
    node.get_enum("inputs", p.inputs, nas::surrogate_inputs_names());
    node.get("aleatoric", p.aleatoric);
    node.get_enum("surrogate", p.surrogate.model, nas::surrogate_model_names());
  } else if (out.name == nas::PolicyKind::kNsga2) {
    nas::Nsga2Options& n = out.nsga2;
    node.check_keys({"name", "population", "sample_size", "survival"});
    if (auto v = node.find("population")) n.population = int_at_least(*v, 2, "an integer >= 2");
    if (auto v = node.find("sample_size")) n.sample_size = int_at_least(*v, 1, "a positive integer");
    node.get_enum("survival", n.survival, nas::nsga2_survival_names());
    if (n.sample_size > n.population)
      node["sample_size"].fail("expected at most population (" + std::to_string(n.population) + "), got " +
                               std::to_string(n.sample_size));
  } else {
    node.check_keys({"name"});
  }
}

void parse_budget(const ConfigNode& node, BudgetConfig& out) {
  node.check(node.is_map(), "expected a map with `trials` and/or `wall_time`, got " + node.describe());
  node.check_keys({"trials", "wall_time"});
  if (auto v = node.find("trials")) out.trials = int_at_least(*v, 0, "a non-negative integer (0 = no limit)");
  if (auto v = node.find("wall_time")) out.wall_time = number_at_least(*v, 0, "a non-negative number of seconds");
}

void parse_builtin(const ConfigNode& node, const std::string& base_dir, BuiltinConfig& out) {
  node.check_keys({"type", "tokenizer", "corpus", "steps", "task", "tasks", "epochs", "data_dir", "warm_start", "warm_threshold",
                   "warm_steps", "transfer_mode", "precision", "device", "pretrain_args", "finetune_args",
                   "executable"});
  out.tokenizer = existing_file(node["tokenizer"], base_dir);
  const ConfigNode corpus = node["corpus"];
  if (corpus.is_scalar()) {
    out.corpus = {existing_file(corpus, base_dir)};
  } else {
    corpus.check(corpus.is_sequence() && corpus.size() > 0, "expected a file or a non-empty list of files, got " +
                                                                 corpus.describe());
    for (const ConfigNode& item : corpus.items()) out.corpus.push_back(existing_file(item, base_dir));
  }
  if (auto v = node.find("steps")) out.steps = int_at_least(*v, 1, "a positive integer");
  if (node.has("task") && node.has("tasks")) node["tasks"].fail("give `task` or `tasks`, not both");
  std::vector<std::pair<ConfigNode, std::string>> names;  // each named task or suite, with its node
  if (auto v = node.find("task")) {
    out.task = non_empty_string(*v);
    std::stringstream in(out.task);
    for (std::string name; std::getline(in, name, ',');) names.emplace_back(*v, name);
  }
  if (auto v = node.find("tasks")) {
    v->check(v->is_sequence() && v->size() > 0, "expected a non-empty list of tasks or suites, got " + v->describe());
    out.task.clear();
    for (const ConfigNode& item : v->items()) {
      names.emplace_back(item, non_empty_string(item));
      out.task += (out.task.empty() ? "" : ",") + names.back().second;
    }
  }
  for (const auto& [where, name] : names)
    if (!datasets::is_task_or_suite(name))
      where.fail("unknown task or suite '" + name + "' (allowed: " + datasets::task_and_suite_names() + ")");
  if (auto v = node.find("epochs")) out.epochs = int_at_least(*v, 1, "a positive integer");
  if (auto v = node.find("data_dir")) {
    out.data_dir = resolve(base_dir, non_empty_string(*v));
    v->check(fs::is_directory(out.data_dir), "directory not found: " + out.data_dir);
  }
  node.get("warm_start", out.warm_start);
  if (auto v = node.find("warm_threshold")) {
    out.warm_threshold = number_at_least(*v, 0, "a number in [0, 1]");
    v->check(out.warm_threshold <= 1, "expected a number in [0, 1] (a fraction of the parameters), got " +
                                          std::to_string(out.warm_threshold));
  }
  if (auto v = node.find("warm_steps")) out.warm_steps = int_at_least(*v, 0, "a non-negative integer");
  node.get_enum("transfer_mode", out.transfer_mode, transfer::transfer_mode_names());
  if (auto v = node.find("precision")) out.precision = one_of(*v, models::precision_names());
  if (auto v = node.find("device")) {
    out.device = non_empty_string(*v);
    const std::string& d = out.device;
    const bool cuda_n = d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos;
    v->check(d == "auto" || d == "cpu" || d == "cuda" || cuda_n,
             "unknown device '" + d + "' (allowed: auto, cpu, cuda, cuda:N)");
  }
  if (auto v = node.find("pretrain_args")) out.pretrain_args = v->as_string_list(false, false);
  if (auto v = node.find("finetune_args")) out.finetune_args = v->as_string_list(false, false);
  if (auto v = node.find("executable")) out.executable = existing_file(*v, base_dir);
}

void parse_evaluator(const ConfigNode& node, const std::string& base_dir, EvaluatorConfig& out) {
  node.check(node.is_map(), "expected a map with `type` (table, command or builtin), got " + node.describe());
  out.type = node["type"].as_enum(evaluator_type_names());
  if (out.type == EvaluatorType::kTable) {
    node.check_keys({"type", "table"});
    out.table = existing_file(node["table"], base_dir);
  } else if (out.type == EvaluatorType::kCommand) {
    node.check_keys({"type", "argv"});
    const ConfigNode argv = node["argv"];
    if (argv.is_scalar()) argv.fail("expected a list: the program and its arguments, e.g. [./train.sh, \"{arch}\", \"{out}\"]");
    out.argv = argv.as_string_list(true, false);
    // A program named with a path is resolved against the YAML's folder; a bare name is looked up in PATH.
    if (out.argv[0].find('/') != std::string::npos) {
      out.argv[0] = resolve(base_dir, out.argv[0]);
      argv.at(0).check(fs::is_regular_file(out.argv[0]), "program not found: " + out.argv[0]);
    }
  } else {
    parse_builtin(node, base_dir, out.builtin);
  }
}

void parse_trial(const ConfigNode& node, TrialConfig& out) {
  node.check(node.is_map(), "expected a map, got " + node.describe());
  node.check_keys({"retries", "timeout", "memory_limit_mb"});
  if (auto v = node.find("retries")) out.retries = int_at_least(*v, 0, "a non-negative integer");
  if (auto v = node.find("timeout")) out.timeout = number_at_least(*v, 0, "a non-negative number of seconds (0 = none)");
  if (auto v = node.find("memory_limit_mb")) out.memory_limit_mb = int_at_least(*v, 0, "a non-negative integer (0 = none)");
}

void parse_scheduler(const ConfigNode& node, SchedulerConfig& out) {
  node.check(node.is_map(), "expected a map, got " + node.describe());
  node.check_keys({"order", "window", "heartbeat_timeout", "drain_timeout", "library_save_interval"});
  node.get_enum("order", out.order, scheduler_order_names());
  if (auto v = node.find("window")) out.window = int_at_least(*v, 0, "a non-negative integer (0 = 2 x workers)");
  if (auto v = node.find("heartbeat_timeout")) out.heartbeat_timeout = number_at_least(*v, 1, "at least 1 second");
  if (auto v = node.find("drain_timeout")) out.drain_timeout = number_at_least(*v, 0, "a non-negative number of seconds");
  if (auto v = node.find("library_save_interval"))
    out.library_save_interval = number_at_least(*v, 0, "a non-negative number of seconds");
}

/// `parent`: an existing campaign directory whose objective is the same as this campaign's.
void parse_parent(const ConfigNode& node, const std::string& base_dir, CampaignConfig& c) {
  c.parent = resolve(base_dir, non_empty_string(node));
  node.check(fs::is_regular_file(campaign_db_path(c.parent)) && fs::is_regular_file(frozen_config_path(c.parent)),
             "not a campaign directory (no campaign.db and campaign.yaml in " + c.parent + ")");
  node.check(!fs::exists(c.directory) || !fs::equivalent(c.parent, c.directory), "the parent is this campaign's own directory");
  const CampaignConfig parent = load_campaign_config(frozen_config_path(c.parent));
  node.check(parent.objective.metric == c.objective.metric && parent.objective.maximise == c.objective.maximise,
             "the parent campaign " + c.parent + " measured '" + parent.objective.metric + "' (" +
                 (parent.objective.maximise ? "maximised" : "minimised") + "), this campaign '" + c.objective.metric +
                 "' (" + (c.objective.maximise ? "maximised" : "minimised") +
                 "): their results are not comparable; allowed: a parent with the same objective");
}

CampaignConfig parse_root(const ConfigNode& root, const std::string& base_dir, const std::string& stem) {
  root.check(root.is_map(), "expected a campaign map (name, library, objective, policy, budget, evaluator, ...), got " +
                                root.describe());
  root.check_keys({"name", "directory", "library", "design_space", "objective", "policy", "budget", "seed", "evaluator",
                   "trial", "workers", "scheduler", "parent"});
  CampaignConfig c;
  c.source = root.file();
  c.name = stem;
  if (auto v = root.find("name")) {
    c.name = non_empty_string(*v);
    v->check(c.name.find('/') == std::string::npos, "expected a name without '/', got '" + c.name + "'");
  }
  c.directory = resolve(base_dir, c.name);
  if (auto v = root.find("directory")) c.directory = resolve(base_dir, non_empty_string(*v));
  const auto library = root.find("library");
  const auto space = root.find("design_space");
  if (library && space) space->fail("give either `library` or `design_space`, not both");
  if (!library && !space)
    root.fail("missing key `library` (a library file) or `design_space` (a design space to enumerate)");
  if (library) c.library = existing_file(*library, base_dir);
  if (space) {
    c.design_space.emplace();
    parse_design_space(*space, base_dir, *c.design_space);
  }
  parse_objective(root["objective"], c.objective);
  if (auto v = root.find("policy")) parse_policy(*v, c.policy);
  if (c.policy.name == nas::PolicyKind::kPareto || c.policy.name == nas::PolicyKind::kNsga2) {
    // These search score and parameters as two objectives: a cost folded into the score would count
    // parameters twice, and another cost is not what they minimise.
    const std::string name = enum_name(nas::policy_kind_names(), c.policy.name);
    if (c.objective.cost_weight > 0)
      root["objective"]["cost_weight"].fail("policy " + name +
                                            " keeps parameters as a second objective of its own; expected 0, got " +
                                            root["objective"]["cost_weight"].as_string());
    if (c.objective.cost != nas::CostKind::kParameters)
      root["objective"]["cost"].fail("policy " + name + " searches score vs parameters; expected parameters, got " +
                                     enum_name(nas::cost_kind_names(), c.objective.cost));
  }
  if (auto v = root.find("budget")) parse_budget(*v, c.budget);
  if (auto v = root.find("seed")) c.seed = uint64_t(int_at_least(*v, 0, "a non-negative integer"));
  parse_evaluator(root["evaluator"], base_dir, c.evaluator);
  if (auto v = root.find("trial")) parse_trial(*v, c.trial);
  if (auto v = root.find("workers")) c.workers = int_at_least(*v, 1, "a positive integer");
  if (auto v = root.find("scheduler")) parse_scheduler(*v, c.scheduler);
  if (auto v = root.find("parent")) parse_parent(*v, base_dir, c);
  if (c.budget.trials == 0 && c.budget.wall_time == 0 && !(c.policy.name == nas::PolicyKind::kBoshnas && c.policy.boshnas.stop_on_convergence))
    root.fail("the campaign has no budget: set budget.trials or budget.wall_time (or policy.stop_on_convergence)");
  return c;
}

}  // namespace

nlohmann::ordered_json CampaignConfig::to_json(bool for_compare) const {
  nlohmann::ordered_json j;
  j["name"] = name;
  j["directory"] = directory;
  if (design_space) {
    nlohmann::ordered_json d;
    d["file"] = design_space->file;
    if (design_space->layers_per_stack) d["layers_per_stack"] = *design_space->layers_per_stack;
    if (design_space->heterogeneous_feed_forward) d["heterogeneous_feed_forward"] = *design_space->heterogeneous_feed_forward;
    if (design_space->increasing) d["increasing"] = *design_space->increasing;
    d["sample"] = design_space->sample;
    d["neighbors"] = design_space->neighbors;
    d["embedding_dim"] = design_space->embedding_dim;
    j["design_space"] = d;
  } else {
    j["library"] = library;
  }
  j["objective"] = {{"metric", objective.metric},
                    {"maximise", objective.maximise},
                    {"max_parameters", objective.max_parameters},
                    {"cost_weight", objective.cost_weight}};
  // Written when set, so campaigns started before these keys existed resume unchanged.
  nlohmann::ordered_json& o = j["objective"];
  if (objective.cost != nas::CostKind::kParameters) o["cost"] = enum_name(nas::cost_kind_names(), objective.cost);
  if (objective.max_latency_ms > 0) o["max_latency_ms"] = objective.max_latency_ms;
  if (objective.max_memory_mb > 0) o["max_memory_mb"] = objective.max_memory_mb;
  if (objective.measured())
    o["profile"] = {{"seq_len", objective.profile.seq_len},
                    {"batch_size", objective.profile.batch_size},
                    {"repeats", objective.profile.repeats},
                    {"threads", objective.profile.threads},
                    {"vocab_size", objective.profile.vocab_size}};
  nlohmann::ordered_json p;
  p["name"] = enum_name(nas::policy_kind_names(), policy.name);
  if (policy.name == nas::PolicyKind::kBoshnas) {
    const nas::BoshnasOptions& b = policy.boshnas;
    p["num_init"] = b.num_init;
    p["uncertainty_prob"] = b.uncertainty_prob;
    p["diversity_prob"] = b.diversity_prob;
    p["patience"] = b.patience;
    p["aleatoric_queries"] = b.aleatoric_queries;
    p["stop_on_convergence"] = b.stop_on_convergence;
    p["targets"] = enum_name(nas::surrogate_targets_names(), b.targets);
    p["local_parents"] = b.local_parents;
    p["local_neighbours"] = b.local_neighbours;
    p["inputs"] = enum_name(nas::surrogate_inputs_names(), b.inputs);
    // Written only when not the default, so campaigns frozen before the key resume unchanged.
    if (b.surrogate.model != nas::SurrogateOptions{}.model)
      p["surrogate"] = enum_name(nas::surrogate_model_names(), b.surrogate.model);
  } else if (policy.name == nas::PolicyKind::kEvolution) {
    p["population"] = policy.evolution.population;
    p["sample_size"] = policy.evolution.sample_size;
  } else if (policy.name == nas::PolicyKind::kPareto) {
    p["num_init"] = policy.pareto.num_init;
    p["targets"] = enum_name(nas::surrogate_targets_names(), policy.pareto.targets);
    p["inputs"] = enum_name(nas::surrogate_inputs_names(), policy.pareto.inputs);
    p["aleatoric"] = policy.pareto.aleatoric;
    p["surrogate"] = enum_name(nas::surrogate_model_names(), policy.pareto.surrogate.model);
  } else if (policy.name == nas::PolicyKind::kNsga2) {
    p["population"] = policy.nsga2.population;
    p["sample_size"] = policy.nsga2.sample_size;
    p["survival"] = enum_name(nas::nsga2_survival_names(), policy.nsga2.survival);
  }
  j["policy"] = p;
  j["budget"] = {{"trials", budget.trials}, {"wall_time", budget.wall_time}};
  j["seed"] = seed;
  nlohmann::ordered_json e;
  e["type"] = enum_name(evaluator_type_names(), evaluator.type);
  if (evaluator.type == EvaluatorType::kTable) {
    e["table"] = evaluator.table;
  } else if (evaluator.type == EvaluatorType::kCommand) {
    e["argv"] = evaluator.argv;
  } else {
    const BuiltinConfig& b = evaluator.builtin;
    e["tokenizer"] = b.tokenizer;
    e["corpus"] = b.corpus;
    e["steps"] = b.steps;
    e["task"] = b.task;
    e["epochs"] = b.epochs;
    if (!b.data_dir.empty()) e["data_dir"] = b.data_dir;
    e["warm_start"] = b.warm_start;
    e["warm_threshold"] = b.warm_threshold;
    e["warm_steps"] = b.warm_steps;
    e["transfer_mode"] = transfer::mode_name(b.transfer_mode);
    if (b.precision != "auto") e["precision"] = b.precision;  // written when set: older campaigns resume unchanged
    if (b.device != "auto") e["device"] = b.device;
    e["pretrain_args"] = b.pretrain_args;
    e["finetune_args"] = b.finetune_args;
    if (!b.executable.empty()) e["executable"] = b.executable;
  }
  j["evaluator"] = e;
  j["trial"] = {{"retries", trial.retries}, {"timeout", trial.timeout}, {"memory_limit_mb", trial.memory_limit_mb}};
  nlohmann::ordered_json s;
  s["order"] = enum_name(scheduler_order_names(), scheduler.order);
  s["window"] = scheduler.window;
  if (!for_compare) {
    j["workers"] = workers;
    s["heartbeat_timeout"] = scheduler.heartbeat_timeout;
    s["drain_timeout"] = scheduler.drain_timeout;
    s["library_save_interval"] = scheduler.library_save_interval;
  }
  j["scheduler"] = s;
  if (!parent.empty()) j["parent"] = parent;
  return j;
}

CampaignConfig load_campaign_config(const std::string& path) {
  const ConfigNode root = ConfigNode::load_file(path);
  const fs::path abs = fs::absolute(path);
  return parse_root(root, abs.parent_path().string(), abs.stem().string());
}

std::string frozen_config_text(const CampaignConfig& config) {
  return "# flexnas campaign configuration, frozen at the campaign's first start (absolute paths).\n"
         "# `flexnas search <this file> --resume` continues the campaign.\n" +
         config.to_json().dump(2) + "\n";
}

void check_same_campaign(const CampaignConfig& current, const CampaignConfig& frozen) {
  const nlohmann::ordered_json a = current.to_json(true), b = frozen.to_json(true);
  if (a == b) return;
  const nlohmann::json diff = nlohmann::json::diff(nlohmann::json(b), nlohmann::json(a));
  std::string where = diff.empty() ? std::string("?") : diff[0].value("path", std::string("?"));
  std::replace(where.begin(), where.end(), '/', '.');
  if (!where.empty() && where[0] == '.') where.erase(0, 1);
  const nlohmann::json::json_pointer ptr(diff.empty() ? "" : diff[0].value("path", std::string("")));
  const nlohmann::json ja(a), jb(b);
  const std::string was = jb.contains(ptr) ? jb.at(ptr).dump() : "(absent)";
  const std::string now = ja.contains(ptr) ? ja.at(ptr).dump() : "(absent)";
  throw ConfigError(current.source + ": error: " + where + ": the campaign in " + current.directory +
                    " was started with " + was + ", this configuration has " + now +
                    "; a campaign resumes only with its own configuration (" + frozen_config_path(current.directory) +
                    "), or choose another `directory`/`name`");
}

const EnumNames<EvaluatorType>& evaluator_type_names() {
  static const EnumNames<EvaluatorType> names{
      {"table", EvaluatorType::kTable}, {"command", EvaluatorType::kCommand}, {"builtin", EvaluatorType::kBuiltin}};
  return names;
}

const EnumNames<SchedulerOrder>& scheduler_order_names() {
  static const EnumNames<SchedulerOrder> names{{"ordered", SchedulerOrder::kOrdered}, {"async", SchedulerOrder::kAsync}};
  return names;
}

std::string campaign_db_path(const std::string& directory) { return (fs::path(directory) / "campaign.db").string(); }
std::string frozen_config_path(const std::string& directory) { return (fs::path(directory) / "campaign.yaml").string(); }
std::string campaign_library_path(const std::string& directory) { return (fs::path(directory) / "library.json").string(); }
std::string trial_dir(const std::string& directory, int64_t trial_id, int64_t attempt) {
  return (fs::path(directory) / "trials" / std::to_string(trial_id) / std::to_string(attempt)).string();
}
std::string model_dir(const std::string& directory, const std::string& hash) {
  return (fs::path(directory) / "models" / hash).string();
}
std::string profile_dir(const std::string& directory, const std::string& hash) {
  return (fs::path(directory) / "profiles" / hash).string();
}

std::string BuiltinConfig::finetune_folder() const {
  return task.find(',') != std::string::npos || datasets::is_suite(task) ? "suite" : task;
}

}  // namespace flexnas::launch
