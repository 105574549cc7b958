// Campaign tests: configuration errors, the store, evaluators (command success and every kind of
// failure), local campaigns with the table evaluator on NAS-Bench-BERT records, determinism,
// SIGTERM drain + resume = uninterrupted, kill -9 of the scheduler + resume.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <random>
#include <thread>

#include "design_space/atomic_file.h"
#include "design_space/config_node.h"
#include "design_space/library_builder.h"
#include "design_space/process.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch/evaluators/evaluator.h"
#include "launch/report/report_plot.h"
#include "launch_test_support.h"
#include "tests/launch/xml_check.h"
#include "nas/boshnas.h"

namespace fs = std::filesystem;
using namespace flexnas;
using namespace flexnas::launch;
using namespace flexnas::launch::test_support;

namespace {

std::string table_campaign(const std::string& policy, int64_t trials, int64_t workers, int64_t window = 4,
                           uint64_t seed = 7) {
  return "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: glue}\npolicy: " + policy +
         "\nbudget: {trials: " + std::to_string(trials) + "}\nseed: " + std::to_string(seed) +
         "\nevaluator: {type: table, table: " + kSample + "}\nworkers: " + std::to_string(workers) +
         "\nscheduler: {window: " + std::to_string(window) + ", drain_timeout: 20}\n";
}

std::string config_error(const std::string& body) {
  const fs::path dir = temp_dir("bad");
  try {
    write_config(dir, body);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

/// Trials as comparable tuples: id, index, seed, status, value.
std::vector<std::string> trial_signature(const std::string& directory) {
  CampaignStore store(campaign_db_path(directory), true);
  std::vector<std::string> out;
  for (const TrialRow& t : store.trials())
    out.push_back(std::to_string(t.id) + " " + std::to_string(t.index) + " " + std::to_string(t.seed) + " " +
                  t.status + " " + (t.value ? std::to_string(*t.value) : "-"));
  return out;
}

int run_campaign(const CampaignConfig& config, bool resume, uint64_t scramble_seed = 1, int64_t stop_at = -1) {
  std::shared_ptr<Evaluator> ev =
      std::make_shared<ScrambledEvaluator>(make_evaluator(config), scramble_seed, stop_at);
  Campaign campaign = open_campaign(config, resume);
  auto pool = make_local_pool(ev, int(config.workers));
  SchedulerOptions so;
  so.quiet = true;
  const int code = run_scheduler(campaign, *pool, so);
  clear_stop();
  return code;
}

}  // namespace

// ---- configuration ----

TEST(CampaignConfig, DefaultsAndResolvedPaths) {
  const fs::path dir = temp_dir("defaults");
  const CampaignConfig c = write_config(dir, table_campaign("random", 10, 2));
  EXPECT_EQ(c.name, "c");
  EXPECT_EQ(c.directory, (dir / "c").string());
  EXPECT_EQ(c.library, sample_library());
  EXPECT_EQ(c.objective.metric, "glue");
  EXPECT_TRUE(c.objective.maximise);
  EXPECT_EQ(c.trial.retries, TrialConfig{}.retries);
  EXPECT_EQ(c.scheduler.order, SchedulerOrder::kOrdered);
  // The frozen copy loads back to the same configuration.
  const std::string frozen = (dir / "frozen.yaml").string();
  write_file_atomic(frozen, frozen_config_text(c));
  const CampaignConfig again = load_campaign_config(frozen);
  EXPECT_EQ(again.to_json(true), c.to_json(true));
}

TEST(CampaignConfig, EachMistakeHasALocatedMessage) {
  const std::string lib = sample_library();
  const std::string base = "library: " + lib + "\nobjective: {metric: glue}\nevaluator: {type: table, table: " + kSample + "}\n";
  // Unknown top-level key, with the allowed ones.
  EXPECT_NE(config_error(base + "wokers: 2\n").find("campaign.yaml:4:1: error: wokers"), std::string::npos)
      << config_error(base + "wokers: 2\n");
  EXPECT_NE(config_error(base + "wokers: 2\n").find("expected one of"), std::string::npos);
  // Unknown policy name.
  EXPECT_NE(config_error(base + "policy: bayes\n").find("policy: unknown value 'bayes'; allowed: boshnas, random, evolution"),
            std::string::npos);
  // Wrong type.
  EXPECT_NE(config_error(base + "workers: two\n").find("workers"), std::string::npos);
  EXPECT_NE(config_error(base + "workers: 0\n").find("workers: expected a positive integer, got 0"), std::string::npos);
  // Missing library file.
  EXPECT_NE(config_error("library: nope.json\nobjective: {metric: glue}\nevaluator: {type: table, table: " + kSample + "}\n")
                .find("library: file not found"),
            std::string::npos);
  // Neither library nor design space; both.
  EXPECT_NE(config_error("objective: {metric: glue}\nevaluator: {type: table, table: " + kSample + "}\n")
                .find("missing key `library`"),
            std::string::npos);
  EXPECT_NE(config_error(base + "design_space: x.yaml\n").find("give either `library` or `design_space`"),
            std::string::npos);
  // Evaluator keys are checked per type.
  EXPECT_NE(config_error("library: " + lib + "\nobjective: {metric: glue}\nevaluator: {type: command, table: x}\n")
                .find("evaluator.table"),
            std::string::npos);
  EXPECT_NE(config_error("library: " + lib + "\nobjective: {metric: glue}\nevaluator: {type: command, argv: ./x.sh}\n")
                .find("evaluator.argv: expected a list"),
            std::string::npos);
  EXPECT_NE(config_error("library: " + lib + "\nobjective: {metric: glue}\nevaluator: {type: magic}\n")
                .find("evaluator.type: unknown value 'magic'; allowed: table, command, builtin"),
            std::string::npos);
  // Out-of-range values.
  EXPECT_NE(config_error(base + "trial: {retries: -1}\n").find("trial.retries: expected a non-negative integer, got -1"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: boshnas, uncertainty_prob: 1.5}\n").find("uncertainty_prob: expected a probability"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: random, population: 3}\n").find("policy.population"), std::string::npos);
  // The two-objective policies: their own keys, and no cost folded into the score.
  EXPECT_NE(config_error(base + "policy: {name: nsga2, survival: young}\n")
                .find("policy.survival: unknown value 'young'; allowed: aging, elitist"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: nsga2, population: 4, sample_size: 5}\n")
                .find("policy.sample_size: expected at most population (4), got 5"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: pareto, population: 4}\n").find("policy.population"), std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: pareto, num_init: 0}\n").find("policy.num_init: expected a positive integer"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: boshnas, targets: quantile}\n")
                .find("policy.targets: unknown value 'quantile'; allowed: rank, minmax"),
            std::string::npos);
  EXPECT_NE(config_error(base + "policy: {name: boshnas, local_parents: -2}\n")
                .find("policy.local_parents: expected a non-negative integer, got -2"),
            std::string::npos)
      << config_error(base + "policy: {name: boshnas, local_parents: -2}\n");
  EXPECT_NE(config_error(base + "policy: {name: boshnas, inputs: graph}\n")
                .find("policy.inputs: unknown value 'graph'; allowed: embedding, embedding+dict"),
            std::string::npos);
  EXPECT_NE(config_error(base + "scheduler: {order: fifo}\n").find("scheduler.order: unknown value 'fifo'"),
            std::string::npos);
  EXPECT_NE(config_error(base + "budget: {trials: 0}\n").find("no budget"), std::string::npos);
  // Missing objective.
  EXPECT_NE(config_error("library: " + lib + "\nevaluator: {type: table, table: " + kSample + "}\n").find("objective"),
            std::string::npos);
}

TEST(CampaignConfig, UnknownTableMetricFailsBeforeAnyWork) {
  const fs::path dir = temp_dir("metric");
  CampaignConfig c = write_config(dir, table_campaign("random", 5, 1));
  c.objective.metric = "accuracy";
  try {
    make_evaluator(c);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no metric 'accuracy' (available: cola"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(c.directory));
}

TEST(CampaignConfig, ResumeWithAnotherConfigurationIsAnError) {
  const fs::path dir = temp_dir("other");
  CampaignConfig c = write_config(dir, table_campaign("random", 4, 1));
  ASSERT_EQ(run_campaign(c, false), 0);
  // Starting again without --resume is an error, and so is resuming with another seed.
  EXPECT_THROW(open_campaign(c, false), ConfigError);
  c.seed = 8;
  try {
    open_campaign(c, true);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("seed: the campaign in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("was started with 7, this configuration has 8"), std::string::npos) << e.what();
  }
  // Another worker count is fine.
  c.seed = 7;
  c.workers = 3;
  EXPECT_NO_THROW(open_campaign(c, true));
}

// A finished campaign continues with a larger budget on --resume (the budget is the one setting
// that may change): the trials already run stay exactly as they were, and the extended campaign
// equals one that had the larger budget from the start.
TEST(LocalCampaign, ResumeWithALargerBudgetExtendsAFinishedCampaign) {
  const std::string pol = "{name: evolution, population: 6, sample_size: 3}";
  const fs::path full = temp_dir("budget_full"), grown = temp_dir("budget_grown");
  ASSERT_EQ(run_campaign(write_config(full, table_campaign(pol, 24, 2)), false, 1), 0);
  CampaignConfig c = write_config(grown, table_campaign(pol, 12, 2));
  ASSERT_EQ(run_campaign(c, false, 1), 0);
  std::vector<TrialRow> first;
  {
    CampaignStore store(campaign_db_path(c.directory), true);
    first = store.trials();
  }
  ASSERT_EQ(first.size(), 12u);
  c.budget.trials = 24;
  ASSERT_EQ(run_campaign(c, true, 1), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto all = store.trials();
  ASSERT_EQ(all.size(), 24u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(all[i].hash, first[i].hash) << i;
    EXPECT_EQ(all[i].value, first[i].value) << i;
    EXPECT_EQ(all[i].seed, first[i].seed) << i;
  }
  EXPECT_EQ(trial_signature((full / "c").string()), trial_signature(c.directory));
  bool logged = false;
  for (const auto& e : store.events()) logged = logged || (e.kind == "budget" && e.message.find("budget changed on resume") != std::string::npos);
  EXPECT_TRUE(logged);
  // The frozen configuration now has the new budget; any other change is still refused.
  EXPECT_EQ(load_campaign_config(frozen_config_path(c.directory)).budget.trials, 24);
  c.seed = 99;
  EXPECT_THROW(open_campaign(c, true), ConfigError);
}

// ---- store ----

TEST(CampaignStore, RowsRoundTripAndUnfinishedBecomeInterrupted) {
  const fs::path dir = temp_dir("store");
  {
    CampaignStore store((dir / "campaign.db").string());
    TrialRow a;
    a.id = 0;
    a.index = 5;
    a.hash = "abc";
    a.kind = "random";
    a.status = trial_status::kCompleted;
    a.seed = 0xFFFFFFFFFFFFFFF0ull;  // full 64 bits survive
    a.value = 0.0;                   // a zero score is a score
    a.score = 0.0;
    a.metrics = "{\"glue\":0}";
    a.observe_seq = 0;
    store.put_trial(a, "completed", "value 0");
    TrialRow b = a;
    b.id = 1;
    b.status = trial_status::kRunning;
    b.attempt = 1;
    b.value.reset();
    b.score.reset();
    b.observe_seq = -1;
    store.put_trial(b, "started");
    {
      CampaignStore::Transaction t(store);  // rolled back: never committed
      store.set_meta("x", "1");
    }
    EXPECT_FALSE(store.meta("x"));
    EXPECT_EQ(store.interrupt_unfinished("crash"), 1);
  }
  CampaignStore store((dir / "campaign.db").string(), true);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(trials[0].seed, 0xFFFFFFFFFFFFFFF0ull);
  ASSERT_TRUE(trials[0].value);
  EXPECT_EQ(*trials[0].value, 0.0);
  EXPECT_EQ(trials[1].status, trial_status::kInterrupted);
  EXPECT_FALSE(trials[1].value);
  const auto events = store.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].kind, "interrupted");
  EXPECT_EQ(events[2].message, "crash");
}

// ---- evaluators ----

namespace {
TrialOutcome run_command(const std::string& mode, const fs::path& dir, double timeout = 0, int64_t memory = 0) {
  CampaignConfig c = write_config(dir, "library: " + sample_library() +
                                           "\nobjective: {metric: score}\nevaluator: {type: command, argv: [" +
                                           std::string(TRIAL_HELPER) + ", " + mode + ", \"{out}\"]}\n");
  c.trial.timeout = timeout;
  c.trial.memory_limit_mb = memory;
  auto ev = make_evaluator(c);
  TrialTask t;
  t.trial_id = 3;
  t.attempt = 1;
  t.hash = "h";
  t.arch = {{"l", 2}};
  t.seed = 42;
  return ev->evaluate(t, nullptr, {});
}
}  // namespace

TEST(Evaluators, CommandSuccessAndEveryFailure) {
  const fs::path dir = temp_dir("eval");
  TrialOutcome ok = run_command("env", dir);
  EXPECT_TRUE(ok.ok) << ok.reason;
  ASSERT_TRUE(ok.value);
  EXPECT_EQ(ok.metrics["trial"], "3");
  EXPECT_EQ(*run_command("ok", dir).value, *ok.value);  // deterministic in (architecture, seed)

  TrialOutcome fail = run_command("fail", dir);
  EXPECT_FALSE(fail.ok);
  EXPECT_NE(fail.reason.find("exit code 3"), std::string::npos) << fail.reason;

  TrialOutcome seg = run_command("segfault", dir);
  EXPECT_FALSE(seg.ok);
  EXPECT_NE(seg.reason.find("killed by signal 11 (SIGSEGV)"), std::string::npos) << seg.reason;

  TrialOutcome slow = run_command("hang", dir, 0.5);
  EXPECT_FALSE(slow.ok);
  EXPECT_NE(slow.reason.find("timeout after"), std::string::npos) << slow.reason;

  TrialOutcome oom = run_command("oom", dir, 30, 256);
  EXPECT_FALSE(oom.ok);
  EXPECT_NE(oom.reason.find("out of memory (memory limit 256 MiB)"), std::string::npos) << oom.reason;

  TrialOutcome none = run_command("nometrics", dir);
  EXPECT_FALSE(none.ok);
  EXPECT_NE(none.reason.find("wrote no metrics.json"), std::string::npos) << none.reason;

  TrialOutcome bad = run_command("badjson", dir);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.reason.find("invalid JSON"), std::string::npos) << bad.reason;
}

TEST(Evaluators, CancelKillsTheChild) {
  const fs::path dir = temp_dir("cancel");
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  const ChildResult r = run_child({TRIAL_HELPER, "hang", dir.string()}, {}, dir.string(), (dir / "log").string(), {},
                                  &cancel);
  t.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.ok);
}

TEST(Evaluators, ArgvSubstitutionAndMetricPaths) {
  EXPECT_EQ(substitute_argv({"p", "{arch}", "--out={out}", "{seed}:{trial}:{attempt}"}, "/a.json", "/o", 9, 4, 2),
            (std::vector<std::string>{"p", "/a.json", "--out=/o", "9:4:2"}));
  const nlohmann::json m = {{"glue", 70.5}, {"scores", {{"cola", 40}}}, {"bad", "x"}};
  EXPECT_EQ(*metric_value(m, "glue"), 70.5);
  EXPECT_EQ(*metric_value(m, "scores.cola"), 40);
  EXPECT_FALSE(metric_value(m, "bad"));
  EXPECT_FALSE(metric_value(m, "missing"));
}

TEST(Evaluators, BuiltinCommands) {
  BuiltinConfig b;
  b.tokenizer = "/t/spm.model";
  b.corpus = {"/c/a.txt", "/c/b.txt"};
  b.steps = 500;
  b.task = "spam";
  b.epochs = 2;
  b.data_dir = "/data";
  b.warm_steps = 100;
  TrialTask t;
  t.seed = 11;
  auto cmds = builtin_commands(b, "/bin/flexnas", "/o/arch.json", "/m/h", t);
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[0], (std::vector<std::string>{"/bin/flexnas", "pretrain", "--arch", "/o/arch.json", "--tokenizer",
                                               "/t/spm.model", "--corpus", "/c/a.txt", "/c/b.txt", "--steps", "500",
                                               "--seed", "11", "--out", "/m/h/pretrained"}));
  EXPECT_EQ(cmds[1], (std::vector<std::string>{"/bin/flexnas", "finetune", "--checkpoint", "/m/h/pretrained", "--task",
                                               "spam", "--epochs", "2", "--seed", "11", "--out", "/m/h/spam",
                                               "--data-dir", "/data"}));
  // Warm start: shortened pretraining from the neighbour's checkpoint.
  t.warm_start_checkpoint = "/m/n/pretrained";
  cmds = builtin_commands(b, "/bin/flexnas", "/o/arch.json", "/m/h", t);
  EXPECT_EQ(std::vector<std::string>(cmds[0].begin() + 9, cmds[0].end()),
            (std::vector<std::string>{"--steps", "100", "--seed", "11", "--out", "/m/h/pretrained", "--init-from",
                                      "/m/n/pretrained", "--init-mode", "od"}));
  // warm_steps 0: transfer only, no pretraining.
  b.warm_steps = 0;
  cmds = builtin_commands(b, "/bin/flexnas", "/o/arch.json", "/m/h", t);
  EXPECT_EQ(cmds[0], (std::vector<std::string>{"/bin/flexnas", "transfer", "--from", "/m/n/pretrained", "--to",
                                               "/o/arch.json", "--mode", "od", "--seed", "11", "--out",
                                               "/m/h/pretrained"}));
  // Warm start disabled: full pretraining.
  b.warm_start = false;
  cmds = builtin_commands(b, "/bin/flexnas", "/o/arch.json", "/m/h", t);
  EXPECT_EQ(cmds[0][1], "pretrain");
  EXPECT_EQ(cmds[0][10], "500");
}

// The `policy:` keys land in the policy's own options structs (nas::BoshnasOptions,
// nas::EvolutionOptions): no copy of their defaults in launch/. The frozen configuration writes
// the enums with their one spelling.
TEST(CampaignConfig, PolicyKeysFillThePolicysOwnOptions) {
  const fs::path dir = temp_dir("policy_keys");
  const std::string head = "library: " + sample_library() + "\nobjective: {metric: glue}\nevaluator: {type: table, table: " +
                           kSample + "}\n";
  std::ofstream(dir / "b.yaml") << head
                                << "policy: {name: boshnas, num_init: 3, uncertainty_prob: 0.2, diversity_prob: 0.3, "
                                   "patience: 7, aleatoric_queries: 2, stop_on_convergence: true, targets: minmax, "
                                   "local_parents: 1, local_neighbours: 4, inputs: embedding, surrogate: networks}\n";
  const CampaignConfig c = load_campaign_config((dir / "b.yaml").string());
  EXPECT_EQ(c.policy.name, nas::PolicyKind::kBoshnas);
  const nas::BoshnasOptions& b = c.policy.boshnas;
  EXPECT_EQ(b.num_init, 3);
  EXPECT_EQ(b.uncertainty_prob, 0.2);
  EXPECT_EQ(b.diversity_prob, 0.3);
  EXPECT_EQ(b.patience, 7);
  EXPECT_EQ(b.aleatoric_queries, 2);
  EXPECT_TRUE(b.stop_on_convergence);
  EXPECT_EQ(b.targets, nas::SurrogateTargets::kMinmax);
  EXPECT_EQ(b.local_parents, 1);
  EXPECT_EQ(b.local_neighbours, 4);
  EXPECT_EQ(b.inputs, nas::SurrogateInputs::kEmbedding);
  EXPECT_EQ(b.surrogate.model, nas::SurrogateModel::kNetworks);
  const auto j = c.to_json();
  EXPECT_EQ(j["policy"]["name"], "boshnas");
  EXPECT_EQ(j["policy"]["targets"], "minmax");
  EXPECT_EQ(j["policy"]["inputs"], "embedding");
  EXPECT_EQ(j["policy"]["surrogate"], "networks");
  EXPECT_EQ(load_campaign_config((dir / "b.yaml").string()).to_json(), j);
  // Unset keys keep nas's defaults.
  std::ofstream(dir / "d.yaml") << head << "policy: {name: evolution, sample_size: 2}\n";
  const CampaignConfig d = load_campaign_config((dir / "d.yaml").string());
  EXPECT_EQ(d.policy.name, nas::PolicyKind::kEvolution);
  EXPECT_EQ(d.policy.evolution.sample_size, 2);
  EXPECT_EQ(d.policy.evolution.population, nas::EvolutionOptions{}.population);
  EXPECT_EQ(d.to_json()["policy"]["population"], nas::EvolutionOptions{}.population);
  EXPECT_NE(config_error(std::string("name: c\nlibrary: ") + sample_library() +
                         "\nobjective: {metric: glue}\nevaluator: {type: table, table: " + kSample +
                         "}\npolicy: {name: boshnas, surrogate: forest}\n")
                .find("policy.surrogate: unknown value 'forest'; allowed: networks, gp"),
            std::string::npos);
  // The two-objective policies (score vs parameters, nas/multi_objective.h).
  std::ofstream(dir / "p.yaml") << head << "policy: {name: pareto, num_init: 6, targets: rank, aleatoric: true}\n";
  const CampaignConfig p = load_campaign_config((dir / "p.yaml").string());
  EXPECT_EQ(p.policy.name, nas::PolicyKind::kPareto);
  EXPECT_EQ(p.policy.pareto.num_init, 6);
  EXPECT_EQ(p.policy.pareto.targets, nas::SurrogateTargets::kRank);
  EXPECT_EQ(p.policy.pareto.inputs, nas::ParetoOptions{}.inputs);
  EXPECT_TRUE(p.policy.pareto.aleatoric);
  EXPECT_EQ(p.to_json()["policy"]["targets"], "rank");
  std::ofstream(dir / "n.yaml") << head << "policy: {name: nsga2, population: 12, survival: aging}\n";
  const CampaignConfig n = load_campaign_config((dir / "n.yaml").string());
  EXPECT_EQ(n.policy.nsga2.population, 12);
  EXPECT_EQ(n.policy.nsga2.sample_size, nas::Nsga2Options{}.sample_size);
  EXPECT_EQ(n.policy.nsga2.survival, nas::Nsga2Survival::kAging);
  EXPECT_EQ(n.to_json()["policy"]["survival"], "aging");
  // They keep parameters as an objective of their own: no cost folded into the score.
  std::ofstream(dir / "w.yaml") << "library: " + sample_library() +
                                       "\nobjective: {metric: glue, cost_weight: 0.5}\nevaluator: {type: table, table: " +
                                       kSample + "}\npolicy: nsga2\n";
  try {
    load_campaign_config((dir / "w.yaml").string());
    ADD_FAILURE() << "cost_weight with nsga2 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("w.yaml:2:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("objective.cost_weight: policy nsga2 keeps parameters as a second objective of "
                                         "its own; expected 0, got 0.5"),
              std::string::npos)
        << e.what();
  }
}

// ---- local campaigns ----

// library_save_interval 0: the library is saved from the background job as often as it can be,
// on snapshots, while results keep arriving; the file at the end holds every result.
TEST(LocalCampaign, BackgroundLibrarySavesEndWithEveryResult) {
  const fs::path dir = temp_dir("table_saves");
  std::string body = table_campaign("random", 40, 4);
  body.replace(body.find("drain_timeout: 20"), 17, "drain_timeout: 20, library_save_interval: 0");
  const CampaignConfig c = write_config(dir, body);
  ASSERT_EQ(c.scheduler.library_save_interval, 0);
  ASSERT_EQ(run_campaign(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 40u);
  const Library lib = load_library(campaign_library_path(c.directory));
  EXPECT_EQ(lib.num_performances(), 40u);
  for (const TrialRow& t : trials) EXPECT_EQ(*lib.performances[size_t(t.index)], *t.value);
  EXPECT_TRUE(fs::exists(fs::path(c.directory) / "report" / "trials.svg"));
}

TEST(LocalCampaign, TableCampaignFillsStoreLibraryAndReport) {
  const fs::path dir = temp_dir("table");
  const CampaignConfig c = write_config(dir, table_campaign("random", 20, 3));
  ASSERT_EQ(run_campaign(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 20u);
  std::set<int64_t> indices;
  for (const TrialRow& t : trials) {
    EXPECT_EQ(t.status, trial_status::kCompleted);
    EXPECT_EQ(t.seed, trial_seed(7, t.id));
    EXPECT_GT(t.parameters, 0);
    indices.insert(t.index);
  }
  EXPECT_EQ(indices.size(), 20u);  // never the same architecture twice
  const Library lib = load_library(campaign_library_path(c.directory));
  EXPECT_EQ(lib.num_performances(), 20u);
  for (const TrialRow& t : trials) EXPECT_EQ(*lib.performances[size_t(t.index)], *t.value);
  EXPECT_TRUE(fs::exists(fs::path(c.directory) / "report" / "leaderboard.txt"));
  const std::string status = campaign_status(c.directory);
  EXPECT_NE(status.find("trials: 20 of 20 | done 20"), std::string::npos) << status;
  EXPECT_NE(status.find("rank"), std::string::npos);
}

TEST(LocalCampaign, ASecondSearchOnTheSameDirectoryIsRefusedWhileTheFirstRuns) {
  const fs::path dir = temp_dir("lock");
  const CampaignConfig c = write_config(dir, table_campaign("random", 4, 1));
  {
    Campaign first = open_campaign(c, false);
    try {
      open_campaign(c, true);
      ADD_FAILURE() << "the second open succeeded";
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("error: directory: the campaign directory " + c.directory + " is in use by another flexnas search (pid " +
                       std::to_string(::getpid()) + ")"),
                std::string::npos)
          << m;
    }
  }
  // Released with the campaign (and by the kernel when a process dies, kill -9 included).
  EXPECT_NO_THROW(open_campaign(c, true));
}

TEST(LocalCampaign, SameSeedSameTrialsWhateverTheWorkersAndTiming) {
  for (const std::string policy : {"random", "evolution"}) {
    const fs::path a = temp_dir("det_a_" + policy), b = temp_dir("det_b_" + policy), c = temp_dir("det_c_" + policy);
    const std::string pol = policy == "evolution" ? "{name: evolution, population: 6, sample_size: 3}" : policy;
    ASSERT_EQ(run_campaign(write_config(a, table_campaign(pol, 24, 1)), false, 1), 0);
    ASSERT_EQ(run_campaign(write_config(b, table_campaign(pol, 24, 3)), false, 2), 0);
    EXPECT_EQ(trial_signature((a / "c").string()), trial_signature((b / "c").string())) << policy;
    ASSERT_EQ(run_campaign(write_config(c, table_campaign(pol, 24, 3, 4, 8)), false, 3), 0);
    EXPECT_NE(trial_signature((a / "c").string()), trial_signature((c / "c").string())) << policy;
  }
}

TEST(LocalCampaign, SigtermDrainThenResumeEqualsUninterrupted) {
  const std::string pol = "{name: evolution, population: 6, sample_size: 3}";
  const fs::path full = temp_dir("full"), cut = temp_dir("cut");
  ASSERT_EQ(run_campaign(write_config(full, table_campaign(pol, 30, 3)), false, 4), 0);
  const CampaignConfig c = write_config(cut, table_campaign(pol, 30, 3));
  ASSERT_EQ(run_campaign(c, false, 5, /*stop_at=*/12), 128 + SIGTERM);
  {
    CampaignStore store(campaign_db_path(c.directory), true);
    const auto trials = store.trials();
    EXPECT_LT(trials.size(), 30u);
    const auto events = store.events();
    EXPECT_EQ(events.back().kind, "stopped");
  }
  // Resume with another worker count.
  CampaignConfig again = c;
  again.workers = 2;
  ASSERT_EQ(run_campaign(again, true, 6), 0);
  EXPECT_EQ(trial_signature((full / "c").string()), trial_signature(c.directory));
}

// The SLURM batch script's files (launch/campaign/signals.h): a drain file present at the start (a USR1
// that came before the job step existed) drains the campaign before any trial and marks nothing
// finished; the resume without it finishes and writes the finished file.
TEST(LocalCampaign, DrainFileStopsLikeUsrOneAndFinishedFileIsWrittenAtTheEnd) {
  const fs::path dir = temp_dir("drainfile");
  const CampaignConfig c = write_config(dir, table_campaign("random", 6, 2));
  const std::string drain = (dir / "job-7.drain").string(), finished = (dir / "job-7.finished").string();
  write_file_atomic(drain, "10\n");
  setenv(kDrainFileEnv, drain.c_str(), 1);
  setenv(kFinishedFileEnv, finished.c_str(), 1);
  EXPECT_EQ(drain_file_signal(), SIGUSR1);
  EXPECT_EQ(run_campaign(c, false), 128 + SIGUSR1);
  EXPECT_FALSE(fs::exists(finished));
  {
    CampaignStore store(campaign_db_path(c.directory), true);
    for (const TrialRow& t : store.trials()) EXPECT_NE(t.status, trial_status::kCompleted) << t.id;
    EXPECT_EQ(store.events().back().kind, "stopped");
  }
  write_file_atomic(drain, "15\n");  // TERM noted by the trap
  EXPECT_EQ(drain_file_signal(), SIGTERM);
  write_file_atomic(drain, "garbage");  // still a drain request
  EXPECT_EQ(drain_file_signal(), SIGUSR1);
  fs::remove(drain);
  EXPECT_EQ(drain_file_signal(), 0);
  EXPECT_EQ(run_campaign(c, true), 0);
  unsetenv(kDrainFileEnv);
  unsetenv(kFinishedFileEnv);
  ASSERT_TRUE(fs::exists(finished));
  EXPECT_EQ(read_file(finished).rfind("done 6, failed 0", 0), 0u) << read_file(finished);
  CampaignStore store(campaign_db_path(c.directory), true);
  int64_t completed = 0;
  for (const TrialRow& t : store.trials()) completed += t.status == trial_status::kCompleted;
  EXPECT_EQ(completed, 6);
}

TEST(LocalCampaign, ReportHasLeaderboardAndPicture) {
  const fs::path dir = temp_dir("report_svg");
  const CampaignConfig c = write_config(dir, table_campaign("random", 12, 2));
  ASSERT_EQ(run_campaign(c, false), 0);
  const std::string svg = read_file((fs::path(c.directory) / "report" / "trials.svg").string());
  ASSERT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 200);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // One point per completed trial in each panel (by trial; by size), and both step lines.
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
  CampaignStore store(campaign_db_path(c.directory), true);
  size_t completed = 0;
  for (const TrialRow& t : store.trials()) completed += t.status == trial_status::kCompleted;
  ASSERT_GT(completed, 0u);
  EXPECT_EQ(circles, 2 * completed);
  size_t lines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_NE(svg.find("glue by trial (" + std::to_string(completed) + " done, 0 failed)"), std::string::npos);
  EXPECT_TRUE(fs::exists(fs::path(c.directory) / "report" / "leaderboard.txt"));
  // The Pareto fronts and the library embedding map beside it, well-formed.
  for (const char* name : {"trials.svg", "pareto.svg", "embedding.svg"}) {
    const auto xml = flexnas::testing_xml::check_xml(read_file((fs::path(c.directory) / "report" / name).string()));
    EXPECT_TRUE(xml.ok) << name << ": " << xml.error;
  }
  EXPECT_NE(read_file((fs::path(c.directory) / "report" / "embedding.svg").string()).find("best: trial "),
            std::string::npos);
  // Nothing completed: a picture that says so.
  EXPECT_NE(trials_svg({}, "glue", true, 1).find("no completed trials yet (0 failed)"), std::string::npos);
}

TEST(LocalCampaign, LongTrialsGetRunningLinesBetweenResults) {
  const fs::path dir = temp_dir("running_lines");
  const CampaignConfig c = write_config(
      dir, "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: score}\npolicy: random\nbudget: {trials: 1}\n"
           "evaluator: {type: command, argv: [/bin/sh, -c, 'sleep 1.2; echo ''{\"score\": 1}'' > \"$FLEXNAS_OUT/metrics.json\"']}\n");
  Campaign campaign = open_campaign(c, false);
  auto pool = make_local_pool(make_evaluator(c), 1);
  SchedulerOptions so;
  so.running_line_seconds = 0.3;
  testing::internal::CaptureStdout();
  const int code = run_scheduler(campaign, *pool, so);
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(code, 0) << out;
  // "done 0, failed 0, running 1 of 1 | running: trial 0 (0.3 s)" at least once before the result.
  const size_t running = out.find("running 1 of 1 | running: trial 0 (");
  const size_t result = out.find("[trial 0 completed 1]");
  ASSERT_NE(running, std::string::npos) << out;
  ASSERT_NE(result, std::string::npos) << out;
  EXPECT_LT(running, result) << out;
}

TEST(LocalCampaign, RetriesThenFailureIsReportedAndCampaignFinishes) {
  const fs::path dir = temp_dir("chaos");
  const CampaignConfig c = write_config(
      dir, "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: score}\npolicy: random\nbudget: {trials: 8}\n"
           "evaluator: {type: command, argv: [" + std::string(TRIAL_HELPER) + ", chaos]}\n"
           "trial: {retries: 1, timeout: 1.5, memory_limit_mb: 256}\nworkers: 2\n");
  ASSERT_EQ(run_campaign(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 8u);
  for (const TrialRow& t : trials) {
    EXPECT_EQ(t.status, trial_status::kCompleted) << t.id << " " << t.failure_reason;
    EXPECT_EQ(t.attempt, (t.id % 6 >= 1 && t.id % 6 <= 3) ? 2 : 1) << t.id;
  }
  std::string reasons;
  for (const EventRow& e : store.events())
    if (e.kind == "attempt_failed") reasons += e.message + "\n";
  EXPECT_NE(reasons.find("SIGSEGV"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("out of memory"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("timeout after"), std::string::npos) << reasons;

  // With no retries left, a failing program is recorded failed and the campaign still finishes.
  const fs::path dir2 = temp_dir("fail");
  const CampaignConfig f = write_config(
      dir2, "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: score}\npolicy: random\nbudget: {trials: 3}\n"
            "evaluator: {type: command, argv: [" + std::string(TRIAL_HELPER) + ", fail]}\ntrial: {retries: 1}\n");
  ASSERT_EQ(run_campaign(f, false), 0);
  CampaignStore s2(campaign_db_path(f.directory), true);
  for (const TrialRow& t : s2.trials()) {
    EXPECT_EQ(t.status, trial_status::kFailed);
    EXPECT_EQ(t.attempt, 2);
    EXPECT_NE(t.failure_reason.find("exit code 3"), std::string::npos);
  }
}

// ---- the real executable: SIGTERM exit code, kill -9 of the scheduler + resume ----

namespace {
std::string sleepy_campaign(int64_t trials) {
  return "name: c\nlibrary: " + sample_library() + "\nobjective: {metric: score}\npolicy: random\nbudget: {trials: " +
         std::to_string(trials) + "}\nevaluator: {type: command, argv: [" + std::string(TRIAL_HELPER) +
         ", \"sleep:150\"]}\nworkers: 2\nscheduler: {drain_timeout: 10}\n";
}
}  // namespace

/// Polls the store until `n` trials completed; false after 120 s (a hung campaign fails the test
/// instead of hanging it).
bool wait_for_completed(const std::string& cdir, int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_completed(cdir) < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST(Executable, SigtermDrainsAndExits143ThenResumeFinishes) {
  const fs::path dir = temp_dir("exe_term");
  write_config(dir, sleepy_campaign(16));
  const std::string yaml = (dir / "campaign.yaml").string(), cdir = (dir / "c").string();
  const pid_t pid = spawn_logged(FLEXNAS_BINARY, {"search", yaml}, (dir / "log1").string());
  ASSERT_TRUE(wait_for_completed(cdir, 3)) << "fewer than 3 trials completed within 120 s";
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 143);
  const int64_t done = count_completed(cdir);
  EXPECT_LT(done, 16);
  EXPECT_EQ(wait_exit(spawn_logged(FLEXNAS_BINARY, {"search", yaml, "--resume"}, (dir / "log2").string())), 0);
  EXPECT_EQ(count_completed(cdir), 16);
}

TEST(Executable, KillNineOfTheSchedulerKeepsCompletedTrialsAndTheBudget) {
  const fs::path dir = temp_dir("exe_kill");
  write_config(dir, sleepy_campaign(16));
  const std::string yaml = (dir / "campaign.yaml").string(), cdir = (dir / "c").string();
  const pid_t pid = spawn_logged(FLEXNAS_BINARY, {"search", yaml}, (dir / "log1").string());
  ASSERT_TRUE(wait_for_completed(cdir, 4)) << "fewer than 4 trials completed within 120 s";
  kill(pid, SIGKILL);
  wait_exit(pid);
  std::map<int64_t, TrialRow> before;
  {
    CampaignStore store(campaign_db_path(cdir), true);
    for (const TrialRow& t : store.trials())
      if (t.status == trial_status::kCompleted) before[t.id] = t;
  }
  ASSERT_GE(before.size(), 4u);
  EXPECT_EQ(wait_exit(spawn_logged(FLEXNAS_BINARY, {"search", yaml, "--resume"}, (dir / "log2").string())), 0);
  CampaignStore store(campaign_db_path(cdir), true);
  const auto trials = store.trials();
  EXPECT_EQ(trials.size(), 16u);  // the budget holds across the crash
  for (const TrialRow& t : trials) EXPECT_EQ(t.status, trial_status::kCompleted);
  for (const auto& [id, old] : before) {  // every completed trial kept, unchanged
    EXPECT_EQ(trials[size_t(id)].end_time, old.end_time);
    EXPECT_EQ(*trials[size_t(id)].value, *old.value);
  }
  const std::string log = read_file((dir / "log2").string());
  EXPECT_NE(log.find("resumed:"), std::string::npos) << log;
}
