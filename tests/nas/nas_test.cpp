// Tests of the search policies and their pieces (nas/): NPN moments, AdaHessian/Hutchinson, GOBI,
// snapping, determinism, never proposing twice, resume, Pareto utilities, cost model, table.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "design_space/arch_graph.h"
#include "design_space/error.h"
#include "nas/arch_features.h"
#include "nas/boshnas.h"
#include "nas/cost_model.h"
#include "nas/gobi.h"
#include "nas/kdtree.h"
#include "nas/pareto.h"
#include "nas/policy_factory.h"
#include "nas/replay.h"
#include "nas/table.h"
#include "test_library.h"

using namespace flexnas;
using namespace flexnas::nas;

namespace {

/// A small synthetic library: random standard 2-layer architectures with 16-d embeddings that
/// encode their fields (plus noise), and a smooth score of the embedding.
Library synthetic_library(int64_t n, uint64_t seed) {
  return test::random_two_layer_library(
      n, seed, {{"sa", "sdp"}, {"sa", "wma"}, {"l", "dft"}, {"l", "dct"}, {"c", "5"}, {"c", "9"}},
      [](const LayerSpec& l, std::vector<float>& e) {
        e.insert(e.end(), {l.hidden / 128.0f, l.heads / 2.0f, float(l.ffn.size()), l.ffn[0] / 512.0f,
                           l.op == "sa" ? 1.f : 0.f, l.op == "l" ? 1.f : 0.f, l.op == "c" ? 1.f : 0.f,
                           l.param == "wma" || l.param == "dct" || l.param == "9" ? 1.f : 0.f});
      },
      0.1f);
}

std::vector<std::optional<double>> synthetic_scores(const Library& lib) {
  std::vector<std::optional<double>> s;
  for (const auto& e : lib.embeddings) {
    double v = 60;
    v += 4 * e[0] + 4 * e[8] + 2 * e[4] + 2 * e[12] - 1.5 * std::abs(e[3] - 1.5) + std::sin(3 * e[1]);
    s.push_back(v);
  }
  return s;
}

BoshnasOptions fast_boshnas() {
  BoshnasOptions o;
  o.surrogate.max_epochs = 40;
  o.gobi.max_iterations = 30;
  return o;
}

}  // namespace

TEST(Npn, ReluMomentsMatchMonteCarlo) {
  torch::manual_seed(0);
  // |m|/√s <= 1: the spec's formulas replace Φ by a logistic curve, which is tight in the centre
  // and off by up to ~0.04 in the tails (an error of the reference's NPN, kept as specified).
  const at::Tensor m = at::tensor({-0.5f, -0.3f, 0.0f, 0.4f, 1.0f});
  const at::Tensor s = at::tensor({0.5f, 1.0f, 2.0f, 0.3f, 1.5f});
  auto [mo, so] = npn_relu(m, s);
  const at::Tensor x = m + at::sqrt(s) * at::randn({400000, 5});
  const at::Tensor r = at::relu(x);
  const at::Tensor mc_m = r.mean(0), mc_v = r.var(0);
  for (int i = 0; i < 5; ++i) {
    // The logistic approximation of Φ (κ = √(8/π)) is within ~2% of the scale √s.
    const double scale = std::sqrt(s[i].item<double>());
    EXPECT_NEAR(mo[i].item<double>(), mc_m[i].item<double>(), 0.03 * scale + 0.003) << i;
    EXPECT_NEAR(so[i].item<double>(), mc_v[i].item<double>(), 0.06 * scale * scale + 0.005) << i;
  }
}

TEST(Npn, SigmoidMomentsMatchMonteCarlo) {
  torch::manual_seed(1);
  // Central region again: σ(α(x + β)) approximates σ(x)² well for x >= -0.25.
  const at::Tensor m = at::tensor({-0.25f, 0.0f, 0.5f, 0.7f, 1.0f});
  const at::Tensor s = at::tensor({0.2f, 1.0f, 0.5f, 0.5f, 0.3f});
  auto [mo, so] = npn_sigmoid(m, s);
  const at::Tensor y = at::sigmoid(m + at::sqrt(s) * at::randn({400000, 5}));
  const at::Tensor mc_m = y.mean(0), mc_v = y.var(0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(mo[i].item<double>(), mc_m[i].item<double>(), 0.02) << i;
    EXPECT_NEAR(so[i].item<double>(), mc_v[i].item<double>(), 0.03) << i;
  }
}

TEST(AdaHessian, HutchinsonDiagonalOfKnownQuadratic) {
  // f(x) = ½ xᵀ A x per row: the Hessian is A. Diagonal A: one probe is exact.
  const at::Tensor A = torch::tensor({{3.0f, 0.8f, 0.0f}, {0.8f, 2.0f, -0.5f}, {0.0f, -0.5f, 1.0f}});
  auto f = [&](const at::Tensor& x) { return 0.5 * (at::mm(x, A) * x).sum(1); };
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor x = at::randn({2, 3});
  const at::Tensor est = hutchinson_diagonal(f, x, 4000, gen);
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(est[r][i].item<double>(), A[i][i].item<double>(), 0.08);
  const at::Tensor D = at::diag(at::tensor({5.0f, 0.5f, 2.0f}));
  auto g = [&](const at::Tensor& x) { return 0.5 * (at::mm(x, D) * x).sum(1); };
  const at::Tensor exact = hutchinson_diagonal(g, x, 1, gen);
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(exact[0][i].item<float>(), D[i][i].item<float>());
}

TEST(AdaHessian, MinimisesQuadraticWithinBoundsAndCosineSchedule) {
  EXPECT_DOUBLE_EQ(cosine_lr(0.5, 0, 2), 0.5);
  EXPECT_NEAR(cosine_lr(0.5, 1, 2), 0.25, 1e-12);
  EXPECT_NEAR(cosine_lr(0.5, 2, 2), 0.0, 1e-12);
  EXPECT_NEAR(cosine_lr(0.5, 3, 2), 0.25, 1e-12);
  EXPECT_NEAR(cosine_lr(0.5, 4, 2), 0.5, 1e-12);
  const at::Tensor c = at::tensor({0.5f, -0.25f, 3.0f});  // optimum; the last coordinate is outside the box
  auto f = [&](const at::Tensor& x) { return ((x - c) * (x - c) * at::tensor({1.0f, 4.0f, 2.0f})).sum(1); };
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  GobiOptions o;
  o.max_iterations = 200;
  const at::Tensor lower = at::full({3}, -1.0f), upper = at::full({3}, 1.0f);
  const GobiResult r = adahessian_minimise(f, at::zeros({4, 3}) - 0.9, lower, upper, o, gen);
  for (int k = 0; k < 4; ++k) {
    EXPECT_LT(r.final_value[k].item<double>(), r.start_value[k].item<double>());
    EXPECT_NEAR(r.x[k][0].item<double>(), 0.5, 0.05);
    EXPECT_NEAR(r.x[k][1].item<double>(), -0.25, 0.05);
    EXPECT_NEAR(r.x[k][2].item<double>(), 1.0, 1e-6);  // clamped to the upper bound
  }
}

TEST(Surrogate, FitsOneSampleAndSplitsValidationByRowNotBySize) {
  at::manual_seed(158);
  SurrogateOptions o;
  o.max_epochs = 15;
  Surrogate s(o);
  const FitReport r = s.fit(at::randn({1, 16}), at::tensor({0.5f}), 1);
  EXPECT_EQ(r.train, 1);
  EXPECT_EQ(r.validation, 0);
  EXPECT_TRUE(s.fitted());
  const auto p = s.predict(at::randn({7, 16}));
  EXPECT_EQ(p.mean.size(0), 7);
  EXPECT_TRUE(at::isfinite(p.mean).all().item<bool>());
  EXPECT_TRUE((p.aleatoric_var > 0).all().item<bool>());
  // Fixed split: the same rows go to validation whatever the data set size.
  Surrogate a(o), b(o);
  const FitReport ra = a.fit(at::randn({40, 16}), at::rand({40}), 2);
  const FitReport rb = b.fit(at::randn({40, 16}), at::rand({40}), 3);
  EXPECT_EQ(ra.validation, rb.validation);
  EXPECT_GT(ra.validation, 0);
}

TEST(Gobi, DecreasesTheAcquisition) {
  torch::manual_seed(5);
  SurrogateOptions o;
  o.max_epochs = 60;
  Surrogate s(o);
  const at::Tensor x = at::randn({48, 16});
  const at::Tensor y = at::sigmoid(x.slice(1, 0, 1).squeeze(1) - 0.5 * x.slice(1, 1, 2).squeeze(1));
  s.fit(x, y, 7);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  AcquisitionSettings acq;
  const GobiResult r = gobi(s, x.slice(0, 0, 10), std::get<0>(x.min(0)), std::get<0>(x.max(0)), acq, GobiOptions{}, gen);
  EXPECT_EQ(r.x.size(0), 10);
  EXPECT_LT(r.final_value.mean().item<double>(), r.start_value.mean().item<double>());
  EXPECT_TRUE((r.x >= std::get<0>(x.min(0)) - 1e-6).all().item<bool>());
  EXPECT_TRUE((r.x <= std::get<0>(x.max(0)) + 1e-6).all().item<bool>());
  // Aleatoric phase: the uncertainty combines two standard deviations.
  const auto p = s.predict(x.slice(0, 0, 4));
  const at::Tensor u = uncertainty(p, true);
  EXPECT_TRUE(at::allclose(u * u, p.epistemic_std * p.epistemic_std + p.aleatoric_var, 1e-4, 1e-6));
}

TEST(Gobi, HandWrittenDerivativesMatchAutogradDoubleBackward) {
  // The exact value, gradient and v ∘ Hv GOBI uses against autograd's double backward through
  // Surrogate::forward, in every acquisition mode and with μ from the NPN or the teacher.
  torch::manual_seed(6);
  const at::Tensor x = at::randn({40, 16});
  const at::Tensor y = at::sigmoid(x.slice(1, 0, 1).squeeze(1) - 0.5 * x.slice(1, 1, 2).squeeze(1));
  for (bool from_npn : {true, false}) {
    SurrogateOptions o;
    o.model = SurrogateModel::kNetworks;  // the GP's are tested in gp_test.cpp
    o.max_epochs = 30;
    o.mean_from_npn = from_npn;
    Surrogate s(o);
    s.fit(x, y, 9);
    const at::Tensor at_x = at::randn({6, 16}) * 1.5;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(10);
    const at::Tensor probes = rademacher_probes(3, 6, 16, gen);
    for (int mode = 0; mode < 3; ++mode) {
      AcquisitionSettings acq;
      acq.aleatoric = mode >= 1;
      acq.uncertainty_only = mode == 2;
      const auto hand = s.acquisition_derivatives(at_x, probes, acq);
      const auto ref = autograd_derivatives([&](const at::Tensor& z) { return acquisition(s.forward(z), acq); }, at_x, probes);
      const std::string what = std::string(from_npn ? "npn" : "teacher") + " mode " + std::to_string(mode);
      EXPECT_TRUE(at::allclose(hand.value, ref.value, 1e-4, 1e-6)) << what;
      EXPECT_TRUE(at::allclose(hand.grad, ref.grad, 1e-3, 1e-5)) << what << "\n" << hand.grad - ref.grad;
      EXPECT_TRUE(at::allclose(hand.diag, ref.diag, 1e-2, 1e-4)) << what << "\n" << hand.diag << ref.diag;
      EXPECT_GT(hand.diag.abs().max().item<double>(), 1e-4) << what;  // not trivially zero
    }
  }
}

TEST(KdTree, MatchesBruteForceWithExclusions) {
  std::mt19937_64 rng(9);
  std::normal_distribution<float> g;
  const int64_t n = 2000, d = 16;
  std::vector<float> pts(size_t(n * d));
  for (auto& v : pts) v = g(rng);
  KdTree tree(pts, d);
  std::vector<bool> ex(size_t(n), false);
  for (int64_t i = 0; i < n; i += 3) {
    tree.exclude(i);
    ex[size_t(i)] = true;
  }
  for (int q = 0; q < 50; ++q) {
    std::vector<float> query(static_cast<size_t>(d), 0.0f);
    for (auto& v : query) v = g(rng);
    int64_t best = -1;
    float bd = 1e30f;
    for (int64_t i = 0; i < n; ++i) {
      if (ex[size_t(i)]) continue;
      float s = 0;
      for (int64_t k = 0; k < d; ++k) s += (pts[size_t(i * d + k)] - query[size_t(k)]) * (pts[size_t(i * d + k)] - query[size_t(k)]);
      if (s < bd) bd = s, best = i;
    }
    EXPECT_EQ(tree.nearest(query.data()), best);
  }
  EXPECT_EQ(tree.available(), n - (n + 2) / 3);
}

TEST(Policies, NeverProposeTwiceEvenWithPendingTrials) {
  const Library lib = synthetic_library(40, 11);
  const auto scores = synthetic_scores(lib);
  for (const auto& [name, kind] : policy_kind_names()) {
    PolicyOptions po;
    po.seed = 3;
    EvolutionOptions evo;
    evo.population = 6;
    evo.sample_size = 3;
    auto policy = make_policy(kind, lib, po, fast_boshnas(), evo);
    EXPECT_EQ(policy->name(), name);
    std::set<int64_t> seen;
    std::vector<int64_t> pending;
    // Asynchronous: keep three trials in flight, observe the oldest.
    while (true) {
      while (pending.size() < 3) {
        auto p = policy->propose();
        if (!p) break;
        EXPECT_TRUE(seen.insert(p->index).second) << name << " proposed " << p->index << " twice";
        pending.push_back(p->index);
      }
      if (pending.empty()) break;
      const int64_t i = pending.front();
      pending.erase(pending.begin());
      // Every fifth architecture fails; a score of 0.0 is a real score.
      policy->observe(i, i % 5 == 0 ? std::nullopt : std::optional<double>(i % 7 == 0 ? 0.0 : *scores[size_t(i)]));
    }
    EXPECT_EQ(int64_t(seen.size()), int64_t(lib.size())) << name;
  }
}

TEST(Boshnas, SnapsOnlyToOpenArchitecturesAndIsDeterministic) {
  const Library lib = synthetic_library(120, 12);
  const auto scores = synthetic_scores(lib);
  PolicyOptions po;
  po.seed = 21;
  BoshnasOptions bo = fast_boshnas();
  bo.num_init = 5;
  auto run = [&](uint64_t seed, int64_t trials, BoshnasPolicy** keep) {
    PolicyOptions p = po;
    p.seed = seed;
    auto* policy = new BoshnasPolicy(lib, p, bo);
    std::vector<int64_t> order;
    for (int64_t t = 0; t < trials; ++t) {
      auto prop = policy->propose();
      order.push_back(prop->index);
      if (t % 4 != 3) policy->observe(prop->index, scores[size_t(prop->index)]);  // some stay pending
    }
    *keep = policy;
    return order;
  };
  BoshnasPolicy *a = nullptr, *b = nullptr, *c = nullptr;
  const auto oa = run(21, 25, &a), ob = run(21, 25, &b), oc = run(22, 25, &c);
  EXPECT_EQ(oa, ob);
  EXPECT_NE(oa, oc);
  // Snapping: random points anywhere in the box never land on a completed or pending architecture.
  at::Tensor x = a->inputs().index_select(0, at::randint(0, int64_t(lib.size()), {300}, at::kLong));
  for (int64_t i : a->snap(x)) {
    ASSERT_GE(i, 0);
    EXPECT_TRUE(a->state().is_open(i)) << i;
  }
  EXPECT_GT(a->step_counts().count("optimisation"), 0u);
  delete a;
  delete b;
  delete c;
}

TEST(Boshnas, NormalisedTargetsByRankAndByValue) {
  // Higher value = better; target 0.1 = best, 0.9 = worst.
  const std::vector<double> v = {75.0, 60.0, 74.5, 74.9, 74.5};
  const std::vector<float> rank = normalised_targets(v, SurrogateTargets::kRank);
  // Results better than each: 0, 4, 2 (+ the tie counted half: 2.5), 1, 2.5 -> 0.1 + 0.8 * k / 4.
  const std::vector<float> want_rank = {0.1f, 0.9f, 0.6f, 0.3f, 0.6f};
  ASSERT_EQ(rank.size(), want_rank.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(rank[i], want_rank[i], 1e-6) << i;
  const std::vector<float> minmax = normalised_targets(v, SurrogateTargets::kMinmax);
  // By value the outlier (60) squashes the top four into 0.1 .. 0.127.
  EXPECT_NEAR(minmax[0], 0.1f, 1e-6);
  EXPECT_NEAR(minmax[1], 0.9f, 1e-6);
  EXPECT_NEAR(minmax[2], 0.1f + 0.8f * 0.5f / 15.0f, 1e-6);
  EXPECT_NEAR(minmax[3], 0.1f + 0.8f * 0.1f / 15.0f, 1e-6);
  EXPECT_EQ(normalised_targets({3.0, 3.0}, SurrogateTargets::kRank), std::vector<float>({0.5f, 0.5f}));
  EXPECT_EQ(normalised_targets({3.0}, SurrogateTargets::kMinmax), std::vector<float>({0.5f}));
  EXPECT_TRUE(normalised_targets({}, SurrogateTargets::kRank).empty());
  // One spelling per mode, shared by campaign files and `flexnas replay --targets`.
  EXPECT_EQ(enum_spellings(surrogate_targets_names()), (std::vector<std::string>{"rank", "minmax"}));
}

TEST(Boshnas, LocalCandidatesAreOpenNeighboursOfTheBest) {
  Library lib = synthetic_library(40, 14);
  // Neighbour lists, nearest first: i + 7, i + 14, ... (mod 40).
  for (size_t i = 0; i < lib.size(); ++i)
    for (size_t k = 1; k <= 12; ++k) lib.neighbors[i].push_back(lib.hashes[(i + 7 * k) % lib.size()]);
  BoshnasOptions bo = fast_boshnas();
  bo.local_parents = 2;
  bo.local_neighbours = 3;
  // Completed 0..5 and 9 (scores: 4 best, then 2), 11 still running.
  const std::vector<double> score = {1, 2, 5, 3, 9, 4};
  std::vector<TrialRecord> history;
  for (int64_t i = 0; i < 6; ++i) history.push_back({i, "init", TrialStatus::kCompleted, score[size_t(i)]});
  history.push_back({9, "init", TrialStatus::kCompleted, 0});
  history.push_back({11, "init", TrialStatus::kPending, 0});
  BoshnasPolicy policy(lib, PolicyOptions{}, bo);
  policy.restore(history);
  // Parent 4: 11 (running) skipped, then 18, 25, 32. Parent 2: 9 (completed) skipped, 16, 23, 30.
  EXPECT_EQ(policy.local_candidates(), (std::vector<int64_t>{18, 25, 32, 16, 23, 30}));
  bo.local_parents = 0;
  BoshnasPolicy gobi_only(lib, PolicyOptions{}, bo);
  gobi_only.restore(history);
  EXPECT_TRUE(gobi_only.local_candidates().empty());
}

TEST(ArchFeatures, DepthWidthsAndOperationSharesFromTheModelDict) {
  Library lib;
  Architecture standard;  // 2 layers: 4 sa_wma heads, width 256, ffn 3 x 1024; 2 l_dct heads, width 128, ffn 512
  standard.layers.push_back({256, {1024, 1024, 1024}, "sa", "wma", 4, {}});
  standard.layers.push_back({128, {512}, "l", "dct", 2, {}});
  Architecture hetero;  // 1 layer of width 128: heads sa_sdp_64 + c_9_64, ffn 256 x 2
  hetero.format = ArchFormat::kHetero;
  hetero.layers.push_back({128, {256, 256}, "", "", 0, {{"sa", "sdp", 64}, {"c", "9", 64}}});
  lib.archs = {standard, hetero};
  EXPECT_EQ(arch_feature_names(lib),
            (std::vector<std::string>{"layers", "hidden", "heads", "ffn_width", "ffn_depth", "share:c", "share:l", "share:sa",
                                      "share:c_9", "share:l_dct", "share:sa_sdp", "share:sa_wma"}));
  const auto f = arch_features(lib);
  ASSERT_EQ(f.size(), 2u);
  // layers, mean width (256+128)/2, mean heads (4+2)/2, mean ffn width (1024+512)/2, mean ffn
  // depth (3+1)/2; shares over the 6 heads: c 0, l 2/6, sa 4/6; c_9 0, l_dct 2/6, sa_sdp 0, sa_wma 4/6.
  const std::vector<float> want_standard{2, 192, 3, 768, 2, 0, 2 / 6.f, 4 / 6.f, 0, 2 / 6.f, 0, 4 / 6.f};
  const std::vector<float> want_hetero{1, 128, 2, 256, 2, 0.5f, 0, 0.5f, 0.5f, 0, 0.5f, 0};
  for (size_t c = 0; c < want_standard.size(); ++c) {
    EXPECT_NEAR(f[0][c], want_standard[c], 1e-6) << "standard, column " << c;
    EXPECT_NEAR(f[1][c], want_hetero[c], 1e-6) << "hetero, column " << c;
  }
}

TEST(Boshnas, InputsAppendStandardisedModelDictColumns) {
  const Library lib = synthetic_library(40, 21);
  const int64_t d = lib.embedding_dim();
  const int64_t extra = int64_t(arch_feature_names(lib).size());
  ASSERT_EQ(extra, 5 + 3 + 6);
  BoshnasOptions bo = fast_boshnas();
  bo.inputs = SurrogateInputs::kEmbedding;
  const BoshnasPolicy spec(lib, PolicyOptions{}, bo);
  EXPECT_EQ(spec.inputs().size(1), d);
  const BoshnasPolicy with_dict(lib, PolicyOptions{}, fast_boshnas());  // the default
  const at::Tensor x = with_dict.inputs();
  ASSERT_EQ(x.size(1), d + extra);
  // The embedding columns are unchanged; every column has mean 0 and sd 1 over the library,
  // except "layers" (2 everywhere), which is 0.
  EXPECT_TRUE(at::allclose(x.slice(1, 0, d), spec.inputs()));
  EXPECT_EQ(x.select(1, d).abs().max().item<float>(), 0.f);
  for (int64_t c = d + 1; c < d + extra; ++c) {
    EXPECT_NEAR(x.select(1, c).mean().item<float>(), 0, 1e-5) << c;
    EXPECT_NEAR(x.select(1, c).std().item<float>(), 1, 1e-4) << c;
  }
  EXPECT_EQ(enum_spellings(surrogate_inputs_names()), (std::vector<std::string>{"embedding", "embedding+dict"}));
}

TEST(Boshnas, RestoreReplaysObservationsToTheSameNextProposal) {
  const Library lib = synthetic_library(80, 13);
  const auto scores = synthetic_scores(lib);
  PolicyOptions po;
  po.seed = 5;
  BoshnasOptions bo = fast_boshnas();
  bo.num_init = 4;
  BoshnasPolicy original(lib, po, bo);
  std::vector<TrialRecord> history;
  int64_t held = -1;
  for (int t = 0; t < 14; ++t) {
    auto p = original.propose();
    if (t == 9) {
      held = p->index;  // still running at the "crash"
      continue;
    }
    original.observe(p->index, scores[size_t(p->index)]);
    history.push_back({p->index, p->kind, TrialStatus::kCompleted, *scores[size_t(p->index)]});
  }
  history.push_back({held, original.state().kind_of(held), TrialStatus::kPending, 0});
  BoshnasPolicy resumed(lib, po, bo);
  resumed.restore(history);
  EXPECT_EQ(resumed.state().num_completed(), original.state().num_completed());
  EXPECT_EQ(resumed.state().status(held), TrialStatus::kPending);
  EXPECT_EQ(resumed.propose()->index, original.propose()->index);
}

TEST(Policies, MaxParametersIsAConstraint) {
  const Library lib = synthetic_library(60, 14);
  PolicyOptions po;
  po.max_parameters = estimate_cost(lib.archs[0]).parameters;  // cuts part of the library
  RandomPolicy policy(lib, po);
  int64_t proposed = 0;
  while (auto p = policy.propose()) {
    EXPECT_LE(policy.parameters()[size_t(p->index)], po.max_parameters);
    policy.observe(p->index, 1.0);
    ++proposed;
  }
  EXPECT_GT(proposed, 0);
  EXPECT_LT(proposed, int64_t(lib.size()));
}

TEST(Evolution, MutationIsOneFieldWhenTheLibraryHasIt) {
  Architecture a;
  LayerSpec l;
  l.hidden = 128, l.heads = 2, l.op = "sa", l.param = "sdp", l.ffn = {512};
  a.layers = {l, l};
  Architecture b = a;
  b.layers[1].op = "c";
  b.layers[1].param = "9";
  EXPECT_EQ(field_distance(a, b), 1);
  b.layers[0].ffn = {512, 512};
  EXPECT_EQ(field_distance(a, b), 2);
  Architecture c = a;
  c.layers.push_back(l);
  EXPECT_EQ(field_distance(a, c), 4);
}

TEST(Pareto, NonDominatedSortAndHypervolume) {
  // Minimise both: (1,5) (2,3) (4,1) are the front; (3,4) is dominated by (2,3); (5,5) by all.
  const std::vector<std::vector<double>> pts{{1, 5}, {3, 4}, {2, 3}, {4, 1}, {5, 5}};
  const auto fronts = non_dominated_sort(pts);
  ASSERT_EQ(fronts.size(), 3u);
  EXPECT_EQ(fronts[0], (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(fronts[1], (std::vector<int64_t>{1}));
  EXPECT_EQ(fronts[2], (std::vector<int64_t>{4}));
  EXPECT_TRUE(dominates({2, 3}, {3, 4}));
  EXPECT_FALSE(dominates({2, 3}, {2, 3}));
  // Reference (6,6): staircase 5·1 + 4·2 + 2·2 = 17 (by hand: slabs at x=1, 2, 4).
  EXPECT_DOUBLE_EQ(hypervolume_2d({{1, 5}, {3, 4}, {2, 3}, {4, 1}, {5, 5}}, {6, 6}), 17.0);
  EXPECT_DOUBLE_EQ(hypervolume_2d({{7, 1}}, {6, 6}), 0.0);
  // The 2-D sweep: ordered by the first objective; the same set as pareto_front, ties and exact
  // duplicates included (small integer coordinates make both frequent).
  EXPECT_EQ(pareto_front_2d({{1, 5}, {3, 4}, {2, 3}, {4, 1}, {5, 5}}), (std::vector<int64_t>{0, 2, 3}));
  std::mt19937_64 rng(3);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::vector<double>> v;
    std::vector<Point2> p;
    for (int i = 0; i < 30; ++i) {
      const double x = double(rng() % 6), y = double(rng() % 6);
      v.push_back({x, y});
      p.push_back({x, y});
    }
    std::vector<int64_t> sweep = pareto_front_2d(p);
    for (size_t i = 1; i < sweep.size(); ++i) EXPECT_LE(p[size_t(sweep[i - 1])][0], p[size_t(sweep[i])][0]);
    std::sort(sweep.begin(), sweep.end());
    EXPECT_EQ(sweep, pareto_front(v)) << "round " << round;
  }
}

TEST(Table, NasBenchBertLoadsAndBadMetricIsLocated) {
  const std::string path = std::string(FLEXNAS_SOURCE_DIR) + "/examples/nas-bench-bert/BERT_benchmark.json";
  const BenchmarkTable t = load_benchmark_table(path, "glue");
  EXPECT_EQ(t.size(), 491u);  // 500 records of 491 distinct architectures (first score kept)
  EXPECT_NEAR(*std::max_element(t.scores.begin(), t.scores.end()), 75.13, 1e-9);
  try {
    load_benchmark_table(path, "gleu");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("BERT_benchmark.json:1:"), std::string::npos) << m;
    EXPECT_NE(m.find("no metric 'gleu' (available: cola, mnli, mrpc, qnli, qqp, rte, sst, sts, glue)"), std::string::npos) << m;
  }
  // Replay on the table's own architectures as a library (no embeddings: random search works).
  Library lib;
  lib.archs = t.archs;
  lib.hashes = t.hashes;
  lib.embeddings.assign(t.size(), {});
  const auto scores = align_scores(t, lib);
  const ReplayTargets targets = replay_targets(scores);
  EXPECT_EQ(targets.scored, 491);
  EXPECT_NEAR(targets.best, 75.13, 1e-9);
  ReplayOptions ro;
  ro.policy = PolicyKind::kRandom;
  ro.budget = 30;
  const SeedResult r = replay_seed(lib, scores, targets, ro, 0);
  EXPECT_EQ(r.trials, 30);
  EXPECT_EQ(r.best_at.size(), 4u);
  EXPECT_FALSE(std::isnan(r.best_at[1]));
  EXPECT_TRUE(std::isnan(r.best_at[2]));
  EXPECT_EQ(median_trials({3, -1, 5}), 5);
  EXPECT_TRUE(std::isinf(median_trials({3, -1, -1})));
  EXPECT_THROW(BoshnasPolicy(lib, PolicyOptions{}), ConfigError);  // no embeddings
}


namespace {
/// A replay result of one seed with the given trials to top-1 % (-1 = never) and best at 10/25.
SeedResult fake_seed(uint64_t seed, int64_t to_top1, double best10, double best25) {
  SeedResult r;
  r.seed = seed;
  r.to_best = r.to_top5 = r.to_top1 = to_top1;
  r.best_at = {best10, best25};
  return r;
}
}  // namespace

TEST(ReplayIntervals, BootstrapCoversTheEstimateIsSeededAndNarrowsWithSeeds) {
  ReplayOptions o;
  o.budget = 30;
  o.checkpoints = {10, 25};
  std::mt19937_64 rng(2201);
  std::uniform_real_distribution<double> score(70, 75);
  std::uniform_int_distribution<int64_t> trials(1, 40);  // > 30 = never reached
  auto make = [&](size_t n) {
    std::vector<SeedResult> seeds;
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = trials(rng);
      const double s = score(rng);
      seeds.push_back(fake_seed(i, t > 30 ? -1 : t, s, s + 0.5));
    }
    return summarise(std::move(seeds), o);
  };
  const ReplaySummary small = make(20), large = make(400);
  const ReplayIntervals a = bootstrap_intervals(small, o, 1000, 7), again = bootstrap_intervals(small, o, 1000, 7);
  EXPECT_EQ(a.mean_best_at[0].lo, again.mean_best_at[0].lo);  // same results, same intervals
  EXPECT_EQ(a.median_to_top1.hi, again.median_to_top1.hi);
  for (size_t c = 0; c < 2; ++c) {
    EXPECT_LE(a.mean_best_at[c].lo, small.mean_best_at[c]);
    EXPECT_GE(a.mean_best_at[c].hi, small.mean_best_at[c]);
    EXPECT_LE(a.median_best_at[c].lo, small.median_best_at[c]);
    EXPECT_GE(a.median_best_at[c].hi, small.median_best_at[c]);
  }
  EXPECT_LE(a.median_to_top1.lo, small.median_to_top1);
  EXPECT_GE(a.median_to_top1.hi, small.median_to_top1);
  // Twenty times the seeds: the interval of a mean shrinks by about sqrt(20) = 4.5.
  const ReplayIntervals b = bootstrap_intervals(large, o, 1000, 7);
  const double wide = a.mean_best_at[0].hi - a.mean_best_at[0].lo, narrow = b.mean_best_at[0].hi - b.mean_best_at[0].lo;
  EXPECT_GT(wide / narrow, 3.0);
  EXPECT_LT(wide / narrow, 7.0);
  // The mean of uniform(70, 75) is 72.5: the 400-seed interval holds it.
  EXPECT_LT(b.mean_best_at[0].lo, 72.5);
  EXPECT_GT(b.mean_best_at[0].hi, 72.5);
}

TEST(ReplayIntervals, PairedComparisonKeepsSeedsTogether) {
  ReplayOptions o;
  o.budget = 50;
  o.checkpoints = {10, 25};
  std::vector<SeedResult> x, y;
  std::mt19937_64 rng(2202);
  std::uniform_real_distribution<double> score(70, 75);
  for (uint64_t s = 0; s < 60; ++s) {
    const double v = score(rng);
    // b is a shifted by exactly -0.25 at best@10 and needs 5 more trials (or never reaches it).
    const int64_t t = int64_t(5 + s % 30);
    x.push_back(fake_seed(s, t, v, v + 1));
    y.push_back(fake_seed(s, s % 7 == 0 ? -1 : t + 5, v - 0.25, v + 1));
  }
  const ReplaySummary a = summarise(x, o), b = summarise(y, o);
  const ReplayComparison d = compare_replays(a, b, o, 1000, 3);
  // The per-seed differences are constant, so resampling seed pairs cannot move the mean: an
  // unpaired bootstrap would give an interval as wide as the scores' spread.
  EXPECT_NEAR(d.mean_best_at[0].estimate, 0.25, 1e-9);
  EXPECT_NEAR(d.mean_best_at[0].interval.lo, 0.25, 1e-9);
  EXPECT_NEAR(d.mean_best_at[0].interval.hi, 0.25, 1e-9);
  EXPECT_NEAR(d.mean_best_at[1].estimate, 0.0, 1e-9);
  EXPECT_LT(d.median_to_top1.estimate, 0);  // a is faster
  EXPECT_LE(d.median_to_top1.interval.hi, 0);
  EXPECT_EQ(d.a_sooner, 60);
  EXPECT_EQ(d.b_sooner + d.same, 0);
  // Different seeds are not a pair.
  y[3].seed = 99;
  EXPECT_THROW(compare_replays(a, summarise(y, o), o), std::exception);
}
