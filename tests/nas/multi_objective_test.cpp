// Multi-objective search (issue 22): the hypervolume frame, (expected) hypervolume improvement,
// NSGA-II ranking and survival, and the pareto and nsga2 policies.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "design_space/arch_graph.h"
#include "nas/multi_objective.h"
#include "nas/pareto.h"
#include "nas/policy_factory.h"
#include "nas/replay.h"
#include "test_library.h"

using namespace flexnas;
using namespace flexnas::nas;

namespace {

/// Random standard 2-layer architectures (widths, heads, operations, FFN stacks vary, so the
/// parameter counts do) with embeddings that encode their fields.
Library small_library(int64_t n, uint64_t seed) {
  return test::random_two_layer_library(
      n, seed, {{"sa", "sdp"}, {"l", "dft"}, {"c", "5"}, {"c", "9"}}, [](const LayerSpec& l, std::vector<float>& e) {
        e.insert(e.end(), {l.hidden / 128.0f, l.heads / 2.0f, float(l.ffn.size()), l.ffn[0] / 512.0f,
                           l.op == "sa" ? 1.f : 0.f, l.op == "c" ? 1.f : 0.f});
      });
}

/// A score that rises with width (so it trades against parameters) plus a wiggle.
std::vector<std::optional<double>> small_scores(const Library& lib) {
  std::vector<std::optional<double>> s;
  for (const auto& e : lib.embeddings) s.push_back(70 + 2 * e[0] + 2 * e[6] + e[4] - e[11] + std::sin(5 * e[3]));
  return s;
}

/// A stored trial (set field by field: TrialRecord has more members than these).
TrialRecord record(int64_t index, const std::string& kind, TrialStatus status, double score) {
  TrialRecord t;
  t.index = index;
  t.kind = kind;
  t.status = status;
  t.score = score;
  return t;
}

ParetoOptions fast_pareto() {
  ParetoOptions o;
  o.num_init = 5;
  o.surrogate.max_epochs = 20;
  return o;
}

Nsga2Options small_nsga2(Nsga2Survival survival) {
  Nsga2Options o;
  o.population = 6;
  o.sample_size = 2;
  o.survival = survival;
  return o;
}

}  // namespace

TEST(Hypervolume, FrameScalesBothAxesToTheUnitSquare) {
  // Scores 70..80, parameters 1M..5M; reference (70, 5M).
  const std::vector<std::optional<double>> scores{70.0, std::nullopt, 80.0, 75.0};
  const std::vector<int64_t> params{5'000'000, 100, 1'000'000, 3'000'000};  // the unscored 100 is outside
  const HypervolumeFrame f = hypervolume_frame(scores, params);
  EXPECT_EQ(f.worst_score, 70.0);
  EXPECT_EQ(f.best_score, 80.0);
  EXPECT_EQ(f.min_parameters, 1'000'000);
  EXPECT_EQ(f.max_parameters, 5'000'000);
  // At the reference in either axis: nothing.
  EXPECT_DOUBLE_EQ(frame_hypervolume(f, {{80.0, 5'000'000}, {70.0, 1'000'000}}), 0.0);
  // (75, 3M) -> u = 0.5, v = 0.5.
  EXPECT_DOUBLE_EQ(frame_hypervolume(f, {{75.0, 3'000'000}}), 0.25);
  // u, v = (.5, .5), (.8, .25), (.2, .75): by hand .2·.75 + .3·.5 + .3·.25 = .375.
  EXPECT_NEAR(frame_hypervolume(f, {{75.0, 3'000'000}, {78.0, 4'000'000}, {72.0, 2'000'000}}), 0.375, 1e-12);
  // The ideal corner fills the square; outside the frame is clipped.
  EXPECT_DOUBLE_EQ(frame_hypervolume(f, {{80.0, 1'000'000}}), 1.0);
  EXPECT_DOUBLE_EQ(frame_hypervolume(f, {{90.0, 10}}), 1.0);
  EXPECT_DOUBLE_EQ(frame_hypervolume(f, {}), 0.0);
}

TEST(Hypervolume, ImprovementIsTheDifferenceOfHypervolumesAndItsExpectationMatchesMonteCarlo) {
  // By hand: front {(0.5, 0.5)}, candidate (1, 0.8): [0,1]x[0,.8] minus [0,.5]x[0,.5] = .55.
  EXPECT_NEAR(hypervolume_improvement({{0.5, 0.5}}, 1.0, 0.8, 0.0), 0.55, 1e-12);
  EXPECT_NEAR(hypervolume_improvement({{0.5, 0.5}}, 0.4, 0.45, 0.0), 0.0, 1e-12);  // dominated
  EXPECT_NEAR(hypervolume_improvement({}, 0.5, 0.6, 0.1), 0.25, 1e-12);           // box to y_ref 0.1
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0, 1);
  const auto hv = [](const std::vector<Point2>& max_points) {
    std::vector<Point2> minimised;
    for (const auto& p : max_points) minimised.push_back({-p[0], -p[1]});
    return hypervolume_2d(minimised, {0.0, 0.0});
  };
  for (int round = 0; round < 30; ++round) {
    std::vector<Point2> front;
    for (int i = 0; i < 6; ++i) front.push_back({unit(rng), unit(rng)});
    const Point2 p{unit(rng), unit(rng)};
    std::vector<Point2> with = front;
    with.push_back(p);
    EXPECT_NEAR(hypervolume_improvement(front, p[0], p[1], 0.0), hv(with) - hv(front), 1e-12) << round;
  }
  // EHVI against 200k draws of y ~ N(0.6, 0.2²), front {(.7,.3), (.4,.6), (.1,.9)}, c = 0.8.
  const std::vector<Point2> front{{0.7, 0.3}, {0.4, 0.6}, {0.1, 0.9}};
  std::normal_distribution<double> y(0.6, 0.2);
  double sum = 0;
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) sum += hypervolume_improvement(front, 0.8, y(rng), 0.0);
  EXPECT_NEAR(expected_hypervolume_improvement(front, 0.8, 0.6, 0.2, 0.0), sum / draws, 2e-3);
  // sd 0 is the deterministic improvement; more uncertainty, more expected improvement.
  EXPECT_DOUBLE_EQ(expected_hypervolume_improvement(front, 0.8, 0.6, 0.0, 0.0),
                   hypervolume_improvement(front, 0.8, 0.6, 0.0));
  EXPECT_GT(expected_hypervolume_improvement(front, 0.8, 0.6, 0.3, 0.0),
            expected_hypervolume_improvement(front, 0.8, 0.6, 0.1, 0.0));
}

TEST(Nsga2, RankCrowdingAndSurvivalOnAHandMadeSet) {
  // Minimised. Fronts: {A, B, C}, {D}, {E} (as in Pareto.NonDominatedSortAndHypervolume).
  const std::vector<std::vector<double>> pts{{1, 5}, {2, 3}, {4, 1}, {3, 4}, {5, 5}};
  const NsgaRanking r = nsga_ranking(pts);
  EXPECT_EQ(r.rank, (std::vector<int64_t>{0, 0, 0, 1, 2}));
  const double inf = std::numeric_limits<double>::infinity();
  // B: (4 - 1) / 3 in the first objective + (5 - 1) / 4 in the second = 2; the ends are infinite.
  EXPECT_EQ(r.crowding[0], inf);
  EXPECT_DOUBLE_EQ(r.crowding[1], 2.0);
  EXPECT_EQ(r.crowding[2], inf);
  EXPECT_EQ(r.crowding[3], inf);  // alone in its front
  EXPECT_TRUE(r.better(1, 3));    // lower rank wins over crowding
  EXPECT_TRUE(r.better(0, 1));    // same rank: larger crowding
  EXPECT_FALSE(r.better(0, 2));   // equal: neither
  // One front of four: interior members 2/3 + 2/3 = 4/3 and 2/3 + 1/2 = 7/6.
  const std::vector<std::vector<double>> line{{1, 4}, {2, 2.5}, {3, 2}, {4, 1}};
  const std::vector<double> d = crowding_distance(line, {0, 1, 2, 3});
  EXPECT_NEAR(d[1], 4.0 / 3, 1e-12);
  EXPECT_NEAR(d[2], 7.0 / 6, 1e-12);
  // Survival: both ends, then the less crowded interior member.
  EXPECT_EQ(nsga_select(line, 3), (std::vector<int64_t>{0, 3, 1}));
  // Whole fronts first: {A, B, C} then D, then E cut.
  EXPECT_EQ(nsga_select(pts, 4), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(nsga_select(pts, 2), (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(nsga_select(pts, 0).empty());
}

/// Runs `trials` proposals with two trials in flight (the older observed first; every 7th fails).
std::vector<TrialRecord> drive(Policy& policy, const std::vector<std::optional<double>>& scores, int64_t trials) {
  std::vector<TrialRecord> log;
  std::vector<Proposal> in_flight;
  std::set<int64_t> seen;
  int64_t proposed = 0;
  while (true) {
    while (in_flight.size() < 2 && proposed < trials) {
      auto p = policy.propose();
      if (!p) break;
      EXPECT_TRUE(seen.insert(p->index).second) << policy.name() << " proposed " << p->index << " twice";
      if (policy.options().max_parameters > 0) {
        EXPECT_LE(policy.parameters()[size_t(p->index)], policy.options().max_parameters);
      }
      in_flight.push_back(*p);
      ++proposed;
    }
    if (in_flight.empty()) break;
    const Proposal p = in_flight.front();
    in_flight.erase(in_flight.begin());
    const bool fail = p.index % 7 == 0;
    policy.observe(p.index, fail ? std::nullopt : scores[size_t(p.index)]);
    log.push_back(record(p.index, p.kind, fail ? TrialStatus::kFailed : TrialStatus::kCompleted,
                         fail ? 0.0 : *scores[size_t(p.index)]));
  }
  return log;
}

class MultiObjectivePolicies : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Policy> make(const Library& lib, uint64_t seed, int64_t max_parameters = 0,
                               Nsga2Survival survival = Nsga2Survival::kAging) {
    PolicyOptions po;
    po.seed = seed;
    po.max_parameters = max_parameters;
    PolicyKind kind = PolicyKind::kRandom;
    for (const auto& [name, k] : policy_kind_names())
      if (name == GetParam()) kind = k;
    return make_policy(kind, lib, po, {}, {}, fast_pareto(), small_nsga2(survival));
  }
};

/// The two spellings; nsga2 runs with aging survival, and with elitist survival in the restore test.
INSTANTIATE_TEST_SUITE_P(Kinds, MultiObjectivePolicies, ::testing::Values("pareto", "nsga2"));

TEST_P(MultiObjectivePolicies, DeterministicPerSeedNeverRepeatAndRespectMaxParameters) {
  torch::manual_seed(0);
  const Library lib = small_library(36, 3);
  const auto scores = small_scores(lib);
  auto a = make(lib, 11), b = make(lib, 11), c = make(lib, 12);
  EXPECT_EQ(a->name(), GetParam());
  const auto la = drive(*a, scores, 25), lb = drive(*b, scores, 25), lc = drive(*c, scores, 25);
  std::vector<int64_t> ia, ib, ic;
  for (const auto& t : la) ia.push_back(t.index);
  for (const auto& t : lb) ib.push_back(t.index);
  for (const auto& t : lc) ic.push_back(t.index);
  EXPECT_EQ(ia, ib);
  EXPECT_NE(ia, ic);
  // The policy's own steps happened (not only the random initial designs).
  std::set<std::string> kinds;
  for (const auto& t : la) kinds.insert(t.kind);
  EXPECT_TRUE(kinds.count(GetParam() == "pareto" ? "ehvi" : "mutation")) << GetParam();
  // Run the whole library down: every architecture exactly once (checked in drive).
  auto whole = make(lib, 5);
  EXPECT_EQ(int64_t(drive(*whole, scores, 1000).size()), int64_t(lib.size()));
  // The constraint: a median parameter count cuts about half the library.
  std::vector<int64_t> p = a->parameters();
  std::nth_element(p.begin(), p.begin() + int64_t(p.size()) / 2, p.end());
  const int64_t cap = p[p.size() / 2];
  auto capped = make(lib, 6, cap);
  const int64_t allowed = std::count_if(a->parameters().begin(), a->parameters().end(), [&](int64_t x) { return x <= cap; });
  ASSERT_LT(allowed, int64_t(lib.size()));
  EXPECT_EQ(int64_t(drive(*capped, scores, 1000).size()), allowed);
}

TEST_P(MultiObjectivePolicies, RestoreGivesTheNextProposalOfAnUninterruptedRun) {
  const Library lib = small_library(60, 4);
  const auto scores = small_scores(lib);
  auto original = make(lib, 21, 0, Nsga2Survival::kElitist);
  std::vector<TrialRecord> history = drive(*original, scores, 16);
  // One more trial still running at the "crash".
  const auto held = original->propose();
  ASSERT_TRUE(held);
  history.push_back(record(held->index, held->kind, TrialStatus::kPending, 0));
  auto resumed = make(lib, 21, 0, Nsga2Survival::kElitist);
  resumed->restore(history);
  EXPECT_EQ(resumed->state().num_completed(), original->state().num_completed());
  EXPECT_EQ(resumed->state().status(held->index), TrialStatus::kPending);
  for (int k = 0; k < 3; ++k) {
    const auto x = original->propose(), y = resumed->propose();
    ASSERT_TRUE(x && y);
    EXPECT_EQ(x->index, y->index) << "proposal " << k << " after resume";
    original->observe(x->index, scores[size_t(x->index)]);
    resumed->observe(y->index, scores[size_t(y->index)]);
  }
}

TEST(Pareto, EhviPrefersWhatCanExtendTheFront) {
  const Library lib = small_library(50, 8);
  const auto scores = small_scores(lib);
  PolicyOptions po;
  po.seed = 2;
  ParetoPolicy policy(lib, po, fast_pareto());
  drive(policy, scores, 12);
  ASSERT_TRUE(policy.surrogate().fitted());
  const std::vector<int64_t> open = policy.state().open_indices();
  const std::vector<double> e = policy.ehvi(open);
  ASSERT_EQ(e.size(), open.size());
  for (double v : e) EXPECT_TRUE(std::isfinite(v) && v >= 0) << v;
  // The wiring: EHVI from the surrogate's prediction, y = 1 - mean, sd = epistemic sd, reference 0.
  const SurrogatePrediction pred = policy.surrogate().predict(surrogate_inputs(lib, ParetoOptions{}.inputs).index_select(0, at::tensor(std::vector<int64_t>{open[0], open[1]}, at::kLong)));
  for (int k = 0; k < 2; ++k)
    EXPECT_NEAR(e[size_t(k)],
                expected_hypervolume_improvement(policy.observed_points(), policy.cheapness()[size_t(open[size_t(k)])],
                                                 1.0 - pred.mean[k].item<double>(),
                                                 uncertainty(pred, false)[k].item<double>(), 0.0),
                1e-6);
  // Its choice is the largest EHVI among the open architectures.
  const auto next = policy.propose();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->kind, "ehvi");
  EXPECT_EQ(next->index, open[size_t(std::max_element(e.begin(), e.end()) - e.begin())]);
  const auto& c = policy.cheapness();
  EXPECT_EQ(*std::max_element(c.begin(), c.end()), 1.0);
  EXPECT_EQ(*std::min_element(c.begin(), c.end()), 0.0);
  // Observed points live on the surrogate's target scale: y = 1 - loss in [0.1, 0.9].
  for (const Point2& p : policy.observed_points()) {
    EXPECT_GE(p[1], 0.1 - 1e-6);
    EXPECT_LE(p[1], 0.9 + 1e-6);
  }
}

TEST(ReplayHypervolume, CheckpointsHoldTheHypervolumeOfTheFirstTrialsAndPairsCancel) {
  const Library lib = small_library(40, 9);
  const auto scores = small_scores(lib);
  std::vector<int64_t> params;
  for (const auto& a : lib.archs) params.push_back(estimate_cost(a).parameters);
  const ReplayTargets t = replay_targets(scores, params);
  EXPECT_GT(t.library_hypervolume, 0.0);
  EXPECT_LE(t.library_hypervolume, 1.0);
  ReplayOptions ro;
  ro.policy = PolicyKind::kNsga2;
  ro.nsga2 = small_nsga2(Nsga2Survival::kAging);
  ro.budget = 20;
  ro.checkpoints = {5, 20, 30};
  std::vector<SeedResult> seeds;
  for (uint64_t s = 0; s < 4; ++s) seeds.push_back(replay_seed(lib, scores, t, ro, s));
  for (const SeedResult& r : seeds) {
    ASSERT_EQ(r.hypervolume_at.size(), 3u);
    std::vector<std::pair<double, int64_t>> first5;
    for (int k = 0; k < 5; ++k) first5.push_back({*r.trials_log[size_t(k)].score, params[size_t(r.trials_log[size_t(k)].index)]});
    EXPECT_DOUBLE_EQ(r.hypervolume_at[0], frame_hypervolume(t.frame, first5));
    EXPECT_LE(r.hypervolume_at[0], r.hypervolume_at[1]);
    EXPECT_LE(r.hypervolume_at[1], t.library_hypervolume + 1e-12);
    EXPECT_TRUE(std::isnan(r.hypervolume_at[2]));  // beyond the budget
  }
  const ReplaySummary sum = summarise(seeds, ro);
  double mean = 0;
  for (const SeedResult& r : seeds) mean += r.hypervolume_at[1] / 4;
  EXPECT_NEAR(sum.mean_hypervolume_at[1], mean, 1e-12);
  const ReplayIntervals ci = bootstrap_intervals(sum, ro, 500, 1);
  EXPECT_LE(ci.mean_hypervolume_at[1].lo, mean);
  EXPECT_GE(ci.mean_hypervolume_at[1].hi, mean);
  // Against itself: a zero difference with a zero-width interval; against random: the paired mean.
  const ReplayComparison same = compare_replays(sum, sum, ro, 500, 1);
  EXPECT_EQ(same.mean_hypervolume_at[1].estimate, 0.0);
  EXPECT_EQ(same.mean_hypervolume_at[1].interval.lo, 0.0);
  EXPECT_EQ(same.mean_hypervolume_at[1].interval.hi, 0.0);
  ReplayOptions rnd = ro;
  rnd.policy = PolicyKind::kRandom;
  std::vector<SeedResult> other;
  for (uint64_t s = 0; s < 4; ++s) other.push_back(replay_seed(lib, scores, t, rnd, s));
  const ReplayComparison d = compare_replays(sum, summarise(other, rnd), ro, 500, 1);
  double diff = 0;
  for (size_t i = 0; i < 4; ++i) diff += (seeds[i].hypervolume_at[1] - other[i].hypervolume_at[1]) / 4;
  EXPECT_NEAR(d.mean_hypervolume_at[1].estimate, diff, 1e-12);
  // Without parameters there is no hypervolume.
  const SeedResult bare = replay_seed(lib, scores, replay_targets(scores), ro, 0);
  EXPECT_TRUE(std::isnan(bare.hypervolume_at[0]));
}
