// Measured constraints and the cost kinds of nas::Policy (issue 18): latency/memory constraints are
// honoured by every policy's proposals (boshnas, random, evolution go through the same code path),
// each architecture is measured at most once, exclusions do not consume the budget, and restoring
// the ordered log of trials and exclusions gives the state and the later proposals of an
// uninterrupted run. Seeded, a 60-architecture synthetic library, a deterministic "measurement".
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "design_space/arch_graph.h"
#include "nas/boshnas.h"
#include "nas/policy_factory.h"
#include "test_library.h"

using namespace flexnas;
using namespace flexnas::nas;

namespace {

/// Random standard 2-layer architectures with 16-d embeddings encoding their fields (seeded).
Library small_library(int64_t n, uint64_t seed) {
  return test::random_two_layer_library(
      n, seed, {{"sa", "sdp"}, {"sa", "wma"}, {"l", "dft"}, {"c", "5"}}, [](const LayerSpec& l, std::vector<float>& e) {
        e.insert(e.end(), {l.hidden / 128.0f, l.heads / 2.0f, float(l.ffn.size()), l.ffn[0] / 512.0f,
                           l.op == "sa" ? 1.f : 0.f, l.op == "l" ? 1.f : 0.f, l.op == "c" ? 1.f : 0.f,
                           l.param == "wma" ? 1.f : 0.f});
      });
}

/// A stand-in for the profiler: latency grows with the parameters, memory is scrambled by index,
/// so each constraint cuts a different part of the library. Counts the calls per index.
struct FakeProfiler {
  const Library* lib = nullptr;
  std::map<int64_t, int> calls;
  Measurement operator()(int64_t i) {
    ++calls[i];
    Measurement m;
    m.latency_ms = double(estimate_cost(lib->archs[size_t(i)]).parameters) / 1e6;
    m.memory_mb = double((i * 7919) % 100);
    if (i % 23 == 7) m.error = "profile crashed";  // a failed measurement excludes too
    return m;
  }
};

double score_of(int64_t i) { return 50 + double((i * 31) % 17) + 0.1 * double(i % 5); }

PolicyOptions constrained(const Library& lib) {
  PolicyOptions po;
  po.seed = 9;
  po.max_trials = 14;
  std::vector<double> latencies;
  for (const auto& a : lib.archs) latencies.push_back(double(estimate_cost(a).parameters) / 1e6);
  std::sort(latencies.begin(), latencies.end());
  po.max_latency_ms = latencies[latencies.size() * 2 / 3];  // about a third of the library is too slow
  po.max_memory_mb = 75;                                     // a quarter uses too much memory
  return po;
}

std::unique_ptr<Policy> make(PolicyKind kind, const Library& lib, const PolicyOptions& po, FakeProfiler& prof) {
  BoshnasOptions bo;
  bo.num_init = 4;
  bo.surrogate.max_epochs = 30;
  bo.gobi.max_iterations = 20;
  EvolutionOptions evo;
  evo.population = 5;
  evo.sample_size = 2;
  ParetoOptions pareto;
  pareto.num_init = 4;
  pareto.surrogate.max_epochs = 30;
  Nsga2Options nsga2;
  nsga2.population = 5;
  nsga2.sample_size = 2;
  auto p = make_policy(kind, lib, po, bo, evo, pareto, nsga2);
  prof.lib = &lib;
  p->set_measure([&prof](int64_t i) { return prof(i); });
  return p;
}

/// Runs `steps` proposals with two trials in flight (the older one observed first); returns the
/// proposed indices. `pending` carries the in-flight trials across calls.
std::vector<int64_t> run(Policy& p, int64_t steps, std::vector<int64_t>& pending) {
  std::vector<int64_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    auto q = p.propose();
    if (!q) break;
    out.push_back(q->index);
    pending.push_back(q->index);
    if (pending.size() > 2) {
      const int64_t i = pending.front();
      pending.erase(pending.begin());
      p.observe(i, i % 11 == 0 ? std::nullopt : std::optional<double>(score_of(i)));
    }
  }
  return out;
}

/// What the scheduler stores, in the order restore expects: observations with the exclusions
/// placed after the observations that preceded them, then the pending trials (with measurements).
std::vector<TrialRecord> history_of(const Policy& p) {
  std::vector<TrialRecord> h;
  const auto& obs = p.state().observations();
  const auto& rej = p.state().rejections();
  size_t r = 0;
  for (size_t k = 0; k <= obs.size(); ++k) {
    while (r < rej.size() && rej[r].observed_before <= int64_t(k)) h.push_back(rej[r++]);
    if (k == obs.size()) break;
    TrialRecord t = obs[k];
    t.measured = p.measurement(t.index);
    h.push_back(t);
  }
  for (int64_t i : p.state().pending()) {
    TrialRecord t;
    t.index = i;
    t.kind = p.state().kind_of(i);
    t.measured = p.measurement(i);
    h.push_back(t);
  }
  return h;
}

}  // namespace

class PolicyConstraint : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(PolicyConstraint, NoProposalViolatesAndEachArchitectureIsMeasuredOnce) {
  const Library lib = small_library(60, 3);
  const PolicyOptions po = constrained(lib);
  FakeProfiler prof;
  auto p = make(GetParam(), lib, po, prof);
  ASSERT_TRUE(p->needs_measurement());
  std::vector<int64_t> pending;
  const std::vector<int64_t> proposed = run(*p, 100, pending);
  // The budget counts trials only: 14 proposals, however many were excluded on the way.
  EXPECT_EQ(int64_t(proposed.size()), po.max_trials) << p->name();
  EXPECT_EQ(p->state().proposals(), po.max_trials);
  EXPECT_GT(p->state().rejections().size(), 0u) << p->name();
  for (int64_t i : proposed) {
    const Measurement& m = *p->measurement(i);
    EXPECT_TRUE(m.error.empty()) << p->name() << " proposed " << i << " whose measurement failed";
    EXPECT_LE(m.latency_ms, po.max_latency_ms) << p->name() << " proposed " << i;
    EXPECT_LE(m.memory_mb, po.max_memory_mb) << p->name() << " proposed " << i;
    EXPECT_EQ(p->violation(m), "");
  }
  std::set<int64_t> excluded;
  for (const TrialRecord& r : p->state().rejections()) {
    EXPECT_EQ(r.status, TrialStatus::kExcluded);
    ASSERT_TRUE(r.measured);
    EXPECT_EQ(p->state().status(r.index), TrialStatus::kExcluded);
    EXPECT_TRUE(excluded.insert(r.index).second) << "excluded twice: " << r.index;
    if (r.measured->error.empty()) {
      EXPECT_EQ(r.reason, p->violation(*r.measured));
      EXPECT_NE(r.reason, "");
    } else {
      EXPECT_EQ(r.reason, "measurement failed: profile crashed");
    }
  }
  for (const auto& [i, n] : prof.calls) EXPECT_EQ(n, 1) << "architecture " << i << " measured " << n << " times";
  // Measured = proposed + excluded: nothing else was measured.
  EXPECT_EQ(prof.calls.size(), proposed.size() + excluded.size());
}

TEST_P(PolicyConstraint, RestoreOfTrialsAndExclusionsContinuesLikeAnUninterruptedRun) {
  const Library lib = small_library(60, 4);
  PolicyOptions po = constrained(lib);
  po.max_trials = 16;
  FakeProfiler prof_a, prof_b;
  auto original = make(GetParam(), lib, po, prof_a);
  std::vector<int64_t> pending;
  run(*original, 9, pending);
  ASSERT_GT(original->state().rejections().size(), 0u) << original->name();
  const std::vector<TrialRecord> history = history_of(*original);

  auto resumed = make(GetParam(), lib, po, prof_b);
  resumed->restore(history);
  EXPECT_TRUE(prof_b.calls.empty()) << "restore measured again";
  for (int64_t i = 0; i < int64_t(lib.size()); ++i)
    ASSERT_EQ(resumed->state().status(i), original->state().status(i)) << original->name() << " index " << i;
  EXPECT_EQ(resumed->state().proposals(), original->state().proposals());
  ASSERT_EQ(resumed->state().rejections().size(), original->state().rejections().size());
  for (size_t k = 0; k < original->state().rejections().size(); ++k) {
    EXPECT_EQ(resumed->state().rejections()[k].index, original->state().rejections()[k].index);
    EXPECT_EQ(resumed->state().rejections()[k].observed_before, original->state().rejections()[k].observed_before);
  }
  // Control: the same history without its exclusions resumes another run (the replay matters).
  std::vector<TrialRecord> forgetful_history;
  for (const TrialRecord& r : history)
    if (r.status != TrialStatus::kExcluded) forgetful_history.push_back(r);
  FakeProfiler prof_c;
  auto forgetful = make(GetParam(), lib, po, prof_c);
  forgetful->restore(forgetful_history);
  std::vector<int64_t> pending_c = pending;
  const std::vector<int64_t> next_c = run(*forgetful, 100, pending_c);
  // The same later proposals and exclusions.
  std::vector<int64_t> pending_b = pending;
  const std::vector<int64_t> next_a = run(*original, 100, pending);
  const std::vector<int64_t> next_b = run(*resumed, 100, pending_b);
  EXPECT_EQ(next_a, next_b) << original->name();
  if (GetParam() == PolicyKind::kPareto)  // EHVI's argmax draws no random numbers after the initial designs:
    // forgetting the exclusions costs new measurements of the excluded architectures instead.
    EXPECT_FALSE(prof_c.calls.empty()) << "a resume that forgot the exclusions measured nothing again";
  else
    EXPECT_NE(next_a, next_c) << original->name() << ": a resume that forgot the exclusions proposed the same";
  EXPECT_EQ(int64_t(next_b.size()) + 9, po.max_trials);
  ASSERT_EQ(resumed->state().rejections().size(), original->state().rejections().size());
  for (size_t k = 0; k < original->state().rejections().size(); ++k)
    EXPECT_EQ(resumed->state().rejections()[k].index, original->state().rejections()[k].index) << k;
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, PolicyConstraint,
                         ::testing::Values(PolicyKind::kBoshnas, PolicyKind::kRandom, PolicyKind::kEvolution,
                                           PolicyKind::kPareto, PolicyKind::kNsga2),
                         [](const ::testing::TestParamInfo<PolicyKind>& info) {
                           return enum_name(policy_kind_names(), info.param);
                         });

// Without measured constraints the random streams are those of plain proposals: nothing is
// measured and the proposals equal those of a policy that never heard of measurements.
TEST(PolicyConstraintDefaults, NoConstraintMeansNoMeasurementAndUnchangedProposals) {
  const Library lib = small_library(40, 5);
  PolicyOptions po;
  po.seed = 2;
  po.max_trials = 10;
  RandomPolicy plain(lib, po);
  EXPECT_FALSE(plain.needs_measurement());
  std::vector<int64_t> a;
  while (auto p = plain.propose()) a.push_back(p->index);
  RandomPolicy hooked(lib, po);
  int calls = 0;
  hooked.set_measure([&](int64_t) {
    ++calls;
    return Measurement{};
  });
  std::vector<int64_t> b;
  while (auto p = hooked.propose()) b.push_back(p->index);
  EXPECT_EQ(a, b);
  EXPECT_EQ(calls, 0);
}

// objective.cost: the cost_weight term counts parameters (default), MFLOPs per token, or the
// measured latency in ms.
TEST(PolicyConstraintDefaults, CostKindChoosesTheSecondObjective) {
  const Library lib = small_library(20, 6);
  PolicyOptions po;
  po.cost_weight = 0.5;
  RandomPolicy by_params(lib, po);
  const ModelCost c = estimate_cost(lib.archs[3], po.cost);
  EXPECT_DOUBLE_EQ(by_params.objective(3, 80), 80 - 0.5 * std::log2(double(c.parameters) / 1e6));
  po.cost_kind = CostKind::kFlops;
  RandomPolicy by_flops(lib, po);
  EXPECT_FALSE(by_flops.needs_measurement());
  EXPECT_DOUBLE_EQ(by_flops.objective(3, 80), 80 - 0.5 * std::log2(c.flops_per_token / 1e6));
  po.cost_kind = CostKind::kLatency;
  RandomPolicy by_latency(lib, po);
  EXPECT_TRUE(by_latency.needs_measurement());
  by_latency.set_measure([](int64_t i) {
    Measurement m;
    m.latency_ms = 2.0 + double(i);
    return m;
  });
  const auto p = by_latency.propose();
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(by_latency.objective(p->index, 80), 80 - 0.5 * std::log2(2.0 + double(p->index)));
  EXPECT_EQ(enum_spellings(cost_kind_names()), (std::vector<std::string>{"parameters", "flops", "latency"}));
}
