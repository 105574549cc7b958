// Hierarchical refinement across campaigns (issue 8): a campaign with a `parent` takes over the
// parent's trained architectures instead of retraining them, counts only its own trials against
// its budget, reports both levels, and resumes exactly; bad `parent` values are located errors.
// The builtin warm-start choice (launch/evaluators/warm_start.h) over own neighbours and parent models.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "design_space/atomic_file.h"
#include "design_space/config_node.h"
#include "design_space/library_builder.h"
#include "launch/campaign/campaign.h"
#include "launch/campaign/campaign_config.h"
#include "launch/campaign/campaign_store.h"
#include "launch/campaign/status.h"
#include "launch/evaluators/warm_start.h"
#include "launch_test_support.h"
#include "models/checkpoint.h"
#include "models/flex_model.h"
#include "transfer/transfer.h"

namespace fs = std::filesystem;
using namespace flexnas;
using namespace flexnas::launch;
using namespace flexnas::launch::test_support;

namespace {

std::string campaign_yaml(const std::string& name, int64_t trials, const std::string& extra = "",
                          const std::string& objective = "{metric: glue}") {
  return "name: " + name + "\nlibrary: " + sample_library() + "\nobjective: " + objective +
         "\npolicy: {name: evolution, population: 6, sample_size: 3}\nbudget: {trials: " + std::to_string(trials) +
         "}\nseed: 3\nevaluator: {type: table, table: " + kSample + "}\nworkers: 2\nscheduler: {window: 4}\n" + extra;
}

int run(const CampaignConfig& config, bool resume, int64_t stop_after_results = -1, uint64_t scramble = 0) {
  std::shared_ptr<Evaluator> evaluator = make_evaluator(config);
  if (scramble > 0) evaluator = std::make_shared<ScrambledEvaluator>(evaluator, scramble);
  Campaign campaign = open_campaign(config, resume);
  auto pool = make_local_pool(evaluator, int(config.workers));
  SchedulerOptions so;
  so.quiet = true;
  if (stop_after_results >= 0) request_stop(SIGTERM);
  const int code = run_scheduler(campaign, *pool, so);
  clear_stop();
  return code;
}

std::vector<std::string> signature(const std::string& directory) {
  CampaignStore store(campaign_db_path(directory), true);
  std::vector<std::string> out;
  for (const TrialRow& t : store.trials())
    out.push_back(std::to_string(t.id) + " " + t.kind + " " + std::to_string(t.index) + " " + t.status + " " +
                  (t.value ? std::to_string(*t.value) : "-"));
  return out;
}

}  // namespace

TEST(ParentCampaign, TakesOverTrainedArchitecturesAndCountsOnlyItsOwnTrials) {
  const fs::path dir = temp_dir("levels");
  const CampaignConfig parent = write_config(dir / "p", campaign_yaml("level1", 12));
  ASSERT_EQ(run(parent, false), 0);
  const CampaignConfig child = write_config(dir / "c", campaign_yaml("level2", 10, "parent: ../p/level1\n"));
  EXPECT_EQ(child.parent, (dir / "p" / "level1").string());
  ASSERT_EQ(run(child, false), 0);

  CampaignStore ps(campaign_db_path(parent.directory), true), cs(campaign_db_path(child.directory), true);
  const auto parent_trials = ps.trials(), trials = cs.trials();
  ASSERT_EQ(trials.size(), 22u);  // 12 taken over + a budget of 10 own trials
  std::set<int64_t> taken;
  for (size_t i = 0; i < 12; ++i) {
    const TrialRow& t = trials[i];
    EXPECT_EQ(t.kind, "level1");
    EXPECT_EQ(t.status, trial_status::kCompleted);
    EXPECT_EQ(t.hash, parent_trials[i].hash);
    EXPECT_EQ(*t.value, *parent_trials[i].value);
    EXPECT_EQ(t.observe_seq, int64_t(i));
    taken.insert(t.index);
  }
  for (size_t i = 12; i < trials.size(); ++i) {
    EXPECT_NE(trials[i].kind.rfind("level", 0), 0u) << trials[i].kind;
    EXPECT_EQ(taken.count(trials[i].index), 0u) << "trial " << i << " retrains an architecture of the parent";
  }
  // The campaign's library copy knows the parent's results.
  EXPECT_EQ(load_library(campaign_library_path(child.directory)).num_performances(), 22u);
  EXPECT_EQ(cs.meta("level").value_or(""), "2");

  const std::string status = campaign_status(child.directory);
  EXPECT_NE(status.find("level: 2 (parent campaign: " + parent.directory + ")"), std::string::npos) << status;
  EXPECT_NE(status.find("level 1: 12 trained (taken over)"), std::string::npos) << status;
  EXPECT_NE(status.find("level 2: 10 trained"), std::string::npos) << status;
  EXPECT_NE(status.find("trials: 10 of 10 | done 10"), std::string::npos) << status;
  EXPECT_NE(status.find("rank level trial"), std::string::npos) << status;
}

TEST(ParentCampaign, ResumeAfterAStopEqualsAnUninterruptedChild) {
  const fs::path dir = temp_dir("resume");
  ASSERT_EQ(run(write_config(dir / "p", campaign_yaml("level1", 8)), false), 0);
  const CampaignConfig full = write_config(dir / "a", campaign_yaml("full", 12, "parent: ../p/level1\n"));
  ASSERT_EQ(run(full, false), 0);
  const CampaignConfig cut = write_config(dir / "b", campaign_yaml("cut", 12, "parent: ../p/level1\n"));
  ASSERT_EQ(run(cut, false, /*stop at once*/ 0), 128 + SIGTERM);
  ASSERT_EQ(run(cut, true), 0);
  auto a = signature(full.directory), b = signature(cut.directory);
  ASSERT_EQ(a.size(), 20u);
  EXPECT_EQ(a, b);
}

TEST(ParentCampaign, BadParentsAreLocatedErrors) {
  const fs::path dir = temp_dir("bad");
  auto error = [&](const std::string& body) -> std::string {
    try {
      write_config(dir / "x", body);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  };
  fs::create_directories(dir / "x" / "empty");
  std::string e = error(campaign_yaml("c", 5, "parent: empty\n"));
  EXPECT_NE(e.find("campaign.yaml:10:9: error: parent: not a campaign directory"), std::string::npos) << e;
  ASSERT_EQ(run(write_config(dir / "p", campaign_yaml("level1", 4)), false), 0);
  e = error(campaign_yaml("c", 5, "parent: ../p/level1\n", "{metric: mnli}"));
  EXPECT_NE(e.find("error: parent: the parent campaign"), std::string::npos) << e;
  EXPECT_NE(e.find("measured 'glue' (maximised), this campaign 'mnli'"), std::string::npos) << e;
  e = error(campaign_yaml("c", 5, "parent: c\n"));
  EXPECT_NE(e.find("not a campaign directory"), std::string::npos) << e;
}

TEST(WarmStartChooser, LargestOverlapAmongTrainedNeighboursAndParentModels) {
  const fs::path dir = temp_dir("warm");
  auto arch = [](const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "arch")); };
  // Library: the target (0), a trained neighbour of another width (1), an untrained one (2).
  std::vector<Architecture> archs = {
      arch(R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})"),
      arch(R"({"l":2,"h":[32,32],"n":[2,2],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})"),
      arch(R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","l"],"f":[[128],[128]],"p":["sdp","dft"]})")};
  LibraryBuildOptions b;
  b.neighbors = 2;
  b.progress = false;
  const Library lib = build_library_from_archs(archs, "test", b);
  models::ModelOptions options;
  options.vocab_size = 50;
  options.max_positions = 16;
  auto checkpoint = [&](const Architecture& a, const std::string& name) {
    models::FlexModel model(a, options);
    const std::string path = (dir / name).string();
    models::save_checkpoint(path, *model);
    return path;
  };
  auto index_of = [&](const Architecture& a) {
    for (size_t i = 0; i < lib.size(); ++i)
      if (lib.archs[i] == a) return int64_t(i);
    return int64_t(-1);
  };
  const int64_t target = index_of(archs[0]), narrow = index_of(archs[1]);
  ASSERT_GE(target, 0);
  ASSERT_GE(narrow, 0);
  const std::map<std::string, std::string> trained = {{lib.hashes[size_t(narrow)], checkpoint(lib.archs[size_t(narrow)], "narrow")}};
  const double own_overlap = transfer::transfer_overlap(lib.archs[size_t(narrow)], lib.archs[size_t(target)], options);
  ASSERT_GT(own_overlap, 0.0);
  ASSERT_LT(own_overlap, 1.0);

  WarmStartChooser chooser(0.0, transfer::TransferMode::kOrdered);
  auto choice = chooser.choose(lib, target, trained, {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(choice->hash, lib.hashes[size_t(narrow)]);
  EXPECT_DOUBLE_EQ(choice->overlap, own_overlap);
  EXPECT_FALSE(choice->from_parent);

  // A parent model with a deeper FFN but the target's widths covers more of the target: it wins.
  const Architecture coarse = arch(R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[128,128],[128]],"p":["sdp","sdp"]})");
  const std::vector<ParentModel> parents = {{"coarse-hash", coarse, checkpoint(coarse, "coarse")}};
  const double parent_overlap = transfer::transfer_overlap(coarse, lib.archs[size_t(target)], options);
  ASSERT_GT(parent_overlap, own_overlap);
  choice = chooser.choose(lib, target, trained, parents);
  ASSERT_TRUE(choice);
  EXPECT_EQ(choice->hash, "coarse-hash");
  EXPECT_TRUE(choice->from_parent);
  EXPECT_DOUBLE_EQ(choice->overlap, parent_overlap);

  // The threshold: nothing below it is a source.
  WarmStartChooser strict(parent_overlap + 1e-9, transfer::TransferMode::kOrdered);
  EXPECT_FALSE(strict.choose(lib, target, trained, parents));
  WarmStartChooser middle(own_overlap + 1e-9, transfer::TransferMode::kOrdered);
  choice = middle.choose(lib, target, trained, parents);
  ASSERT_TRUE(choice);
  EXPECT_EQ(choice->hash, "coarse-hash");
  // A checkpoint that disappeared is not a candidate.
  fs::remove_all(dir / "coarse");
  WarmStartChooser fresh(0.0, transfer::TransferMode::kOrdered);
  choice = fresh.choose(lib, target, trained, parents);
  ASSERT_TRUE(choice);
  EXPECT_EQ(choice->hash, lib.hashes[size_t(narrow)]);
}

// ---- builtin evaluator: warm starts (tests/launch/fake_flexnas.sh stands in for flexnas) ----

namespace {

std::string builtin_yaml(const std::string& name, int64_t trials, int64_t workers, const std::string& extra = "") {
  return "name: " + name + "\nlibrary: " + sample_library() +
         "\nobjective: {metric: score}\npolicy: {name: evolution, population: 6, sample_size: 3}\nbudget: {trials: " +
         std::to_string(trials) + "}\nseed: 5\nworkers: " + std::to_string(workers) +
         "\nscheduler: {window: 4}\nevaluator: {type: builtin, executable: " + FAKE_FLEXNAS + ", tokenizer: " + kSample +
         ", corpus: " + kSample + ", steps: 10, warm_steps: 3, warm_threshold: 0.0}\n" + extra;
}

/// Per trial: id, index, value, warm-start source (from the store) and what pretraining started from.
std::vector<std::string> warm_signature(const std::string& directory) {
  CampaignStore store(campaign_db_path(directory), true);
  std::vector<std::string> out;
  for (const TrialRow& t : store.trials()) {
    std::string init = "-";
    if (!t.checkpoint.empty() && fs::exists(fs::path(t.checkpoint) / "init_from.txt"))
      init = read_file((fs::path(t.checkpoint) / "init_from.txt").string());
    // The source's checkpoint lives in its own campaign's models/ folder: compare by hash.
    init = init.find("/models/") != std::string::npos ? init.substr(init.find("/models/") + 8, 12) : init;
    out.push_back(std::to_string(t.id) + " " + std::to_string(t.index) + " " + t.status + " " +
                  (t.value ? std::to_string(*t.value) : "-") + " from " + t.transfer_source.substr(0, 12) + " init " +
                  init);
  }
  return out;
}

/// The completed trial of highest value (the objective maximises the score).
TrialRow best_trial(const std::vector<TrialRow>& trials) {
  auto best = trials.end();
  for (auto t = trials.begin(); t != trials.end(); ++t)
    if (t->value && (best == trials.end() || *t->value > *best->value)) best = t;
  EXPECT_NE(best, trials.end());
  return best == trials.end() ? TrialRow{} : *best;
}

/// The line `flexnas status` prints for a builtin campaign's best model (task spam).
std::string best_model_line(const std::string& models) {
  return "best model: " + models + "/pretrained (pretrained), " + models + "/spam (fine-tuned)\n";
}

}  // namespace

TEST(BuiltinWarmStart, SourcesDependOnlyOnTheSeedNotOnTiming) {
  const fs::path dir = temp_dir("builtin");
  const CampaignConfig a = write_config(dir / "a", builtin_yaml("one", 30, 1));
  const CampaignConfig b = write_config(dir / "b", builtin_yaml("three", 30, 3));
  ASSERT_EQ(run(a, false, -1, 1), 0);
  ASSERT_EQ(run(b, false, -1, 2), 0);
  const auto sa = warm_signature(a.directory), sb = warm_signature(b.directory);
  ASSERT_EQ(sa.size(), 30u);
  EXPECT_EQ(sa, sb);
  int64_t warm = 0;
  CampaignStore store(campaign_db_path(a.directory), true);
  for (const TrialRow& t : store.trials()) {
    if (t.transfer_source.empty()) continue;
    ++warm;
    // The source was observed before this trial was proposed (ordered mode, window 4).
    const int64_t source = [&] {
      for (const TrialRow& s : store.trials())
        if (s.hash == t.transfer_source) return s.id;
      return int64_t(-1);
    }();
    EXPECT_GE(source, 0);
    EXPECT_LT(source, t.id - 4 + 1) << "trial " << t.id;
  }
  EXPECT_GT(warm, 0) << "no warm start happened: the test does not exercise the choice";
}

TEST(BuiltinWarmStart, ChildCampaignStartsFromParentModels) {
  const fs::path dir = temp_dir("builtin_parent");
  const CampaignConfig parent = write_config(dir / "p", builtin_yaml("level1", 8, 2));
  ASSERT_EQ(run(parent, false), 0);
  const CampaignConfig child = write_config(dir / "c", builtin_yaml("level2", 8, 2, "parent: ../p/level1\n"));
  ASSERT_EQ(run(child, false), 0);
  CampaignStore store(campaign_db_path(child.directory), true);
  int64_t from_parent = 0;
  for (const EventRow& e : store.events())
    if (e.kind == "started" && e.message.find("(parent campaign)") != std::string::npos) ++from_parent;
  EXPECT_GT(from_parent, 0);
  // The first own trials can only start from parent models (nothing of their own is observed yet).
  const auto trials = store.trials();
  ASSERT_EQ(trials.size(), 16u);
  for (const TrialRow& t : trials) {
    if (t.kind.rfind("level", 0) == 0 || t.transfer_source.empty()) continue;
    EXPECT_TRUE(fs::exists(fs::path(t.checkpoint) / "init_from.txt"));
    EXPECT_NE(read_file((fs::path(t.checkpoint) / "init_from.txt").string()), "scratch\n");
  }
  // status names the best model's checkpoints, in whichever campaign trained it.
  const TrialRow best = best_trial(trials);
  const std::string owner = best.kind.rfind("level", 0) == 0 ? parent.directory : child.directory;
  const std::string status = campaign_status(child.directory);
  EXPECT_NE(status.find(best_model_line(model_dir(owner, best.hash))), std::string::npos) << status;
}

TEST(BuiltinStatus, NamesTheBestModelsCheckpoints) {
  const fs::path dir = temp_dir("builtin_status");
  const CampaignConfig c = write_config(dir / "a", builtin_yaml("one", 4, 1));
  ASSERT_EQ(run(c, false), 0);
  CampaignStore store(campaign_db_path(c.directory), true);
  const std::string models = model_dir(c.directory, best_trial(store.trials()).hash);
  const std::string status = campaign_status(c.directory);
  EXPECT_NE(status.find(best_model_line(models)), std::string::npos) << status;
  // Without its checkpoints (deleted, or a table campaign) there is no such line.
  fs::remove_all(models);
  EXPECT_EQ(campaign_status(c.directory).find("best model:"), std::string::npos);
}
