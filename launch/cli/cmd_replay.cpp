// flexnas replay: replays a search policy on a tabular benchmark (scores looked up, no training),
// over several seeds, and prints per-seed and aggregate results.
#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/library.h"
#include "design_space/progress.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "models/op_catalog.h"
#include "nas/cost_model.h"
#include "nas/replay.h"
#include "nas/table.h"

namespace flexnas::launch {
namespace {

struct ReplayCliOptions {
  std::string library;             // LIB.json (flexnas library import / generate)
  std::string table;               // BERT_benchmark.json
  std::string metric = "glue";
  nas::PolicyKind policy = nas::ReplayOptions{}.policy;
  int64_t budget = nas::ReplayOptions{}.budget;
  int64_t seeds = nas::ReplayOptions{}.seeds;
  uint64_t seed = nas::ReplayOptions{}.seed;
  int threads = 1;                 // torch intra-op threads (tiny networks: one is fastest)
  int64_t max_parameters = nas::PolicyOptions{}.max_parameters;
  double cost_weight = nas::PolicyOptions{}.cost_weight;
  int64_t best_starts = nas::BoshnasOptions{}.best_starts;
  nas::SurrogateTargets targets = nas::BoshnasOptions{}.targets;
  int64_t local_parents = nas::BoshnasOptions{}.local_parents;
  int64_t local_neighbours = nas::BoshnasOptions{}.local_neighbours;
  nas::SurrogateInputs inputs = nas::BoshnasOptions{}.inputs;
  std::string trials_csv;          // optional: every trial of every seed
  int64_t num_init = nas::BoshnasOptions{}.num_init;
  int64_t gobi_iterations = nas::GobiOptions{}.max_iterations;
  int64_t max_epochs = nas::SurrogateOptions{}.max_epochs;
  nas::SurrogateModel surrogate = nas::SurrogateOptions{}.model;  // boshnas and pareto
  // Multi-objective policies (nas/multi_objective.h).
  int64_t pareto_num_init = nas::ParetoOptions{}.num_init;
  nas::SurrogateTargets pareto_targets = nas::ParetoOptions{}.targets;
  nas::SurrogateInputs pareto_inputs = nas::ParetoOptions{}.inputs;
  bool pareto_aleatoric = nas::ParetoOptions{}.aleatoric;
  int64_t nsga2_population = nas::Nsga2Options{}.population;
  int64_t nsga2_sample_size = nas::Nsga2Options{}.sample_size;
  nas::Nsga2Survival nsga2_survival = nas::Nsga2Options{}.survival;
  bool quiet_seeds = false;
  bool compare = false;            // --compare given: also replay `compare_policy` on the same seeds
  nas::PolicyKind compare_policy = nas::PolicyKind::kEvolution;
};

std::string trials_text(int64_t t) { return t < 0 ? "never" : std::to_string(t); }
std::string median_text(double m, int64_t budget) {
  if (std::isinf(m)) return "> " + std::to_string(budget) + " (not reached)";
  std::ostringstream out;
  out << m;
  return out.str();
}

std::string interval_text(const nas::Interval& i, int64_t budget) {
  if (std::isnan(i.lo)) return "";
  std::ostringstream out;
  out << "95% CI [";
  if (std::isinf(i.lo)) out << "> " << budget << ", ";  // the median is "not reached" in most resamples
  else out << i.lo << ", ";
  if (std::isinf(i.hi)) out << "> " << budget;
  else out << i.hi;
  out << "]";
  return out.str();
}

/// The aggregate lines of one policy's replays, each figure with its bootstrap interval over seeds.
void print_summary(const nas::ReplaySummary& sum, const nas::ReplayOptions& ro) {
  const nas::ReplayIntervals ci = nas::bootstrap_intervals(sum, ro);
  const auto trials_line = [&](const char* what, double median, double reached, const nas::Interval& i) {
    std::cout << "median trials to " << what << ": " << median_text(median, ro.budget) << " (reached by "
              << 100 * reached << "% of seeds; " << interval_text(i, ro.budget) << ")\n";
  };
  trials_line("best", sum.median_to_best, sum.reached_best, ci.median_to_best);
  trials_line("top-1%", sum.median_to_top1, sum.reached_top1, ci.median_to_top1);
  trials_line("top-5%", sum.median_to_top5, sum.reached_top5, ci.median_to_top5);
  for (size_t c = 0; c < ro.checkpoints.size(); ++c)
    if (!std::isnan(sum.median_best_at[c]))
      std::cout << "median best score at " << ro.checkpoints[c] << ": " << sum.median_best_at[c] << " ("
                << interval_text(ci.median_best_at[c], ro.budget) << "; mean " << sum.mean_best_at[c] << ", "
                << interval_text(ci.mean_best_at[c], ro.budget) << ")\n";
  for (size_t c = 0; c < ro.checkpoints.size(); ++c)
    if (!std::isnan(sum.mean_hypervolume_at[c]))
      std::cout << "hypervolume (score, parameters) at " << ro.checkpoints[c] << ": mean " << sum.mean_hypervolume_at[c]
                << " (" << interval_text(ci.mean_hypervolume_at[c], ro.budget) << "; median "
                << sum.median_hypervolume_at[c] << ", " << interval_text(ci.median_hypervolume_at[c], ro.budget) << ")\n";
}

void run_replay(const ReplayCliOptions& o) {
  if (o.budget < 1) flag_error("--budget", "expected a positive number of trials, got " + std::to_string(o.budget));
  if (o.seeds < 1) flag_error("--seeds", "expected a positive number of seeds, got " + std::to_string(o.seeds));
  if (o.threads < 1) flag_error("--threads", "expected at least 1, got " + std::to_string(o.threads));
  if (o.gobi_iterations < 1) flag_error("--gobi-iterations", "expected at least 1, got " + std::to_string(o.gobi_iterations));
  if (o.max_epochs < 1) flag_error("--max-epochs", "expected at least 1, got " + std::to_string(o.max_epochs));
  if (o.max_parameters < 0)
    flag_error("--max-parameters", "expected a positive number of parameters (or 0 for no limit), got " +
               std::to_string(o.max_parameters));
  if (!std::isfinite(o.cost_weight) || o.cost_weight < 0) {
    std::ostringstream v;
    v << o.cost_weight;
    flag_error("--cost-weight", "expected a finite number >= 0 (0 = score only), got " + v.str());
  }
  if (o.best_starts < 0) flag_error("--best-starts", "expected at least 0, got " + std::to_string(o.best_starts));
  if (o.local_parents < 0)
    flag_error("--local-parents", "expected at least 0, got " + std::to_string(o.local_parents));
  if (o.local_neighbours < 0)
    flag_error("--local-neighbours", "expected at least 0, got " + std::to_string(o.local_neighbours));
  if (o.num_init < 1) flag_error("--num-init", "expected at least 1, got " + std::to_string(o.num_init));
  if (o.pareto_num_init < 1)
    flag_error("--pareto-num-init", "expected at least 1, got " + std::to_string(o.pareto_num_init));
  if (o.nsga2_population < 1)
    flag_error("--nsga2-population", "expected at least 1, got " + std::to_string(o.nsga2_population));
  if (o.nsga2_sample_size < 1 || o.nsga2_sample_size > o.nsga2_population)
    flag_error("--nsga2-sample-size", "expected 1.." + std::to_string(o.nsga2_population) +
               " (at most --nsga2-population), got " + std::to_string(o.nsga2_sample_size));
  if (!o.trials_csv.empty()) {  // checked before hours of replays, not after
    const std::filesystem::path folder = std::filesystem::absolute(o.trials_csv).parent_path();
    if (!std::filesystem::is_directory(folder))
      flag_error("--trials-csv", "folder '" + folder.string() + "' does not exist");
    if (std::filesystem::is_directory(o.trials_csv))
      flag_error("--trials-csv", "'" + o.trials_csv + "' is a folder; expected a file name");
  }
  at::set_num_threads(o.threads);  // PLATFORM.md: LibTorch picks 1 on these machines; say it explicitly
  LibraryLoadOptions checked;
  checked.ops = &models::op_catalog();
  const Library library = load_library(o.library, checked);
  const nas::BenchmarkTable table = nas::load_benchmark_table(o.table, o.metric);
  const auto scores = nas::align_scores(table, library);
  // Parameters from the model dicts (the cost model every policy uses): the second objective.
  std::vector<int64_t> parameters;
  for (const Architecture& arch : library.archs)
    parameters.push_back(nas::estimate_cost(arch, nas::PolicyOptions{}.cost).parameters);
  const nas::ReplayTargets targets = nas::replay_targets(scores, parameters);
  int64_t matched = targets.scored;
  if (matched == 0)
    flag_error("--table", "no architecture of " + o.table + " is in the library " + o.library +
               " (rows are matched by architecture hash)");

  nas::ReplayOptions ro;
  ro.policy = o.policy;
  ro.budget = o.budget;
  ro.seeds = o.seeds;
  ro.seed = o.seed;
  ro.policy_options.max_parameters = o.max_parameters;
  ro.policy_options.cost_weight = o.cost_weight;
  ro.boshnas.best_starts = o.best_starts;
  ro.boshnas.targets = o.targets;
  ro.boshnas.local_parents = o.local_parents;
  ro.boshnas.local_neighbours = o.local_neighbours;
  ro.boshnas.inputs = o.inputs;
  ro.boshnas.num_init = o.num_init;
  ro.boshnas.gobi.max_iterations = o.gobi_iterations;
  ro.boshnas.surrogate.max_epochs = o.max_epochs;
  ro.boshnas.surrogate.model = o.surrogate;
  ro.pareto.surrogate.model = o.surrogate;
  ro.pareto.num_init = o.pareto_num_init;
  ro.pareto.targets = o.pareto_targets;
  ro.pareto.inputs = o.pareto_inputs;
  ro.pareto.aleatoric = o.pareto_aleatoric;
  ro.nsga2.population = o.nsga2_population;
  ro.nsga2.sample_size = o.nsga2_sample_size;
  ro.nsga2.survival = o.nsga2_survival;
  std::cout << "replay: policy " << enum_name(nas::policy_kind_names(), o.policy) << ", library " << o.library << " (" << library.size()
            << " architectures, " << matched << " with a " << o.metric << " score), budget " << o.budget << ", seeds "
            << o.seed << ".." << o.seed + uint64_t(o.seeds) - 1 << "\n"
            << "hypervolume frame: reference (score " << targets.frame.worst_score << ", parameters "
            << targets.frame.max_parameters << "), best score " << targets.frame.best_score << ", fewest parameters "
            << targets.frame.min_parameters << "; both axes scaled to [0, 1]; the library's front: "
            << targets.library_hypervolume << "\n"
            << "targets: best " << targets.best << ", top-1% >= " << targets.top1 << ", top-5% >= " << targets.top5 << "\n";
  // Printed from the mapped options, so a flag that did not reach the policy shows here.
  if (ro.policy_options.cost_weight > 0)
    std::cout << "objective: score - " << ro.policy_options.cost_weight
              << " * log2(parameters / 1e6) (results below are raw scores)\n";
  if (ro.policy_options.max_parameters > 0)
    std::cout << "constraint: at most " << ro.policy_options.max_parameters << " parameters\n";
  std::vector<nas::SeedResult> results;
  std::optional<Progress> progress;  // with --summary-only, the seeds' lines give way to a progress line
  if (o.quiet_seeds) progress.emplace(enum_name(nas::policy_kind_names(), o.policy), uint64_t(o.seeds), "seeds");
  for (int64_t s = 0; s < o.seeds; ++s) {
    nas::SeedResult r = nas::replay_seed(library, scores, targets, ro, o.seed + uint64_t(s));
    if (progress) progress->advance();
    if (!o.quiet_seeds) {
      std::cout << "seed " << r.seed << ": trials " << r.trials << ", best " << r.best << " (trial " << trials_text(r.to_best < 0 ? -1 : r.to_best)
                << " reached the library's best), top-1% at " << trials_text(r.to_top1) << ", top-5% at "
                << trials_text(r.to_top5);
      for (size_t c = 0; c < ro.checkpoints.size(); ++c)
        if (!std::isnan(r.best_at[c])) std::cout << ", best@" << ro.checkpoints[c] << " " << r.best_at[c];
      std::cout << ", " << std::fixed << std::setprecision(2) << r.seconds << " s" << std::defaultfloat
                << std::setprecision(6) << "\n";
    }
    results.push_back(std::move(r));
  }
  if (!o.trials_csv.empty()) {
    write_file_atomic(o.trials_csv, [&](std::ostream& out) {
      out << "seed,trial,index,hash,kind,score\n" << std::setprecision(10);
      for (const nas::SeedResult& r : results)
        for (size_t t = 0; t < r.trials_log.size(); ++t) {
          const nas::ReplayTrial& x = r.trials_log[t];
          out << r.seed << ',' << t + 1 << ',' << x.index << ',' << library.hashes[size_t(x.index)] << ',' << x.kind << ',';
          if (x.score) out << *x.score;
          out << '\n';
        }
    });
    std::cout << "trials written to " << o.trials_csv << "\n";
  }
  if (progress) progress->finish();
  const nas::ReplaySummary sum = nas::summarise(std::move(results), ro);
  print_summary(sum, ro);
  if (!o.compare) return;

  // The same seeds and options with the other policy; then policy minus other, seed by seed.
  nas::ReplayOptions other = ro;
  other.policy = o.compare_policy;
  const std::string a = enum_name(nas::policy_kind_names(), o.policy), b = enum_name(nas::policy_kind_names(), o.compare_policy);
  std::vector<nas::SeedResult> other_results;
  {
    Progress other_progress(b, uint64_t(o.seeds), "seeds");
    for (int64_t s = 0; s < o.seeds; ++s) {
      other_results.push_back(nas::replay_seed(library, scores, targets, other, o.seed + uint64_t(s)));
      other_progress.advance();
    }
  }
  const nas::ReplaySummary other_sum = nas::summarise(std::move(other_results), other);
  std::cout << "compared with " << b << " on the same seeds:\n";
  print_summary(other_sum, other);
  const nas::ReplayComparison d = nas::compare_replays(sum, other_sum, ro);
  std::cout << "paired " << a << " - " << b << " (" << o.seeds << " seeds; a seed that never reached a top-1% "
            << "architecture counts " << o.budget + 1 << " trials):\n"
            << "  median trials to top-1%: " << d.median_to_top1.estimate << " ("
            << interval_text(d.median_to_top1.interval, o.budget) << "); " << a << " first on " << d.a_sooner
            << " seeds, " << b << " first on " << d.b_sooner << ", same on " << d.same << "\n";
  for (size_t c = 0; c < ro.checkpoints.size(); ++c)
    if (!std::isnan(d.mean_best_at[c].estimate))
      std::cout << "  mean best score at " << ro.checkpoints[c] << ": " << std::showpos << d.mean_best_at[c].estimate
                << std::noshowpos << " (" << interval_text(d.mean_best_at[c].interval, o.budget) << ")\n";
  for (size_t c = 0; c < ro.checkpoints.size(); ++c)
    if (!std::isnan(d.mean_hypervolume_at[c].estimate))
      std::cout << "  mean hypervolume at " << ro.checkpoints[c] << ": " << std::showpos
                << d.mean_hypervolume_at[c].estimate << std::noshowpos << " ("
                << interval_text(d.mean_hypervolume_at[c].interval, o.budget) << ")\n";
}

void add_replay_command(CLI::App& app) {
  auto o = std::make_shared<ReplayCliOptions>();
  auto* cmd = app.add_subcommand("replay", "replay a search policy on a tabular benchmark (scores looked up)");
  cmd->add_option("--library", o->library, "library JSON (flexnas library import|generate)")->required();
  cmd->add_option("--table", o->table, "tabular benchmark (NAS-Bench-BERT BERT_benchmark.json)")->required();
  cmd->add_option("--metric", o->metric, "score key in the table");
  add_enum_option(cmd, "--policy", o->policy, nas::policy_kind_names(), "search policy");
  cmd->add_option("--budget", o->budget, "trials per seed");
  cmd->add_option("--seeds", o->seeds, "number of seeds: seed, seed+1, ...");
  cmd->add_option("--seed", o->seed, "first seed");
  cmd->add_option("--threads", o->threads, "LibTorch threads");
  cmd->add_option("--max-parameters", o->max_parameters, "never propose architectures above this; 0 = no limit");
  cmd->add_option("--cost-weight", o->cost_weight,
                  "second objective: maximise score - W*log2(parameters/1e6); 0 = score only");
  cmd->add_option("--best-starts", o->best_starts,
                  "BOSHNAS: GOBI restarts started at the best completed architectures; 0 = all random (spec)");
  add_enum_option(cmd, "--targets", o->targets, nas::surrogate_targets_names(), "BOSHNAS surrogate targets");
  cmd->add_option("--local-parents", o->local_parents,
                  "BOSHNAS: rank the open library neighbours of this many best architectures too; 0 = GOBI only");
  cmd->add_option("--local-neighbours", o->local_neighbours,
                  "BOSHNAS: open library neighbours taken per local parent, nearest first");
  add_enum_option(cmd, "--inputs", o->inputs, nas::surrogate_inputs_names(),
                  "BOSHNAS surrogate inputs (embedding+dict: the embedding plus depth, widths and operation "
                  "shares from the model dict)");
  cmd->add_option("--trials-csv", o->trials_csv,
                  "write every trial of every seed to this CSV (seed,trial,index,hash,kind,score), e.g. to plot or "
                  "to see where a policy spends its trials");
  cmd->add_option("--num-init", o->num_init, "BOSHNAS random initial designs");
  cmd->add_option("--gobi-iterations", o->gobi_iterations, "BOSHNAS: AdaHessian iterations per GOBI step");
  cmd->add_option("--max-epochs", o->max_epochs, "BOSHNAS: epochs per network and refit (early stopping)");
  add_enum_option(cmd, "--surrogate", o->surrogate, nas::surrogate_model_names(),
                  "BOSHNAS and pareto: the surrogate, a Gaussian process (gp) or the spec's teacher/student/NPN "
                  "networks");
  cmd->add_option("--pareto-num-init", o->pareto_num_init, "pareto: random initial designs");
  add_enum_option(cmd, "--pareto-targets", o->pareto_targets, nas::surrogate_targets_names(),
                  "pareto: surrogate targets (EHVI is computed on their scale)");
  add_enum_option(cmd, "--pareto-inputs", o->pareto_inputs, nas::surrogate_inputs_names(), "pareto: surrogate inputs");
  cmd->add_flag("--pareto-aleatoric", o->pareto_aleatoric,
                "pareto: the score's sd includes the aleatoric variance (else epistemic only)");
  cmd->add_option("--nsga2-population", o->nsga2_population, "nsga2: population size");
  cmd->add_option("--nsga2-sample-size", o->nsga2_sample_size, "nsga2: tournament size (drawn with replacement)");
  add_enum_option(cmd, "--nsga2-survival", o->nsga2_survival, nas::nsga2_survival_names(),
                  "nsga2: population = the last completed trials (aging) or NSGA-II's best of all (elitist)");
  cmd->add_flag("--summary-only", o->quiet_seeds, "print only the aggregate lines");
  add_enum_option(cmd, "--compare", o->compare_policy, nas::policy_kind_names(),
                  "also replay this policy on the same seeds and print the paired differences (policy minus "
                  "this one) with bootstrap intervals")
      ->default_str("");
  cmd->callback([o, cmd] {
    o->compare = cmd->count("--compare") > 0;
    run_replay(*o);
  });
}

FLEXNAS_REGISTER_COMMAND("replay", add_replay_command);

}  // namespace
}  // namespace flexnas::launch
