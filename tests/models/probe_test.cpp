// Per-layer representations (FlexModel::encode_layers) and the layer-wise probes of seed 002.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "datasets/metrics.h"
#include "models/probe.h"
#include "test_util.h"

namespace flexnas::models {
namespace {
using testing::arch_from;
using testing::tiny_batch;
using testing::tiny_options;

// Three layers of different widths and op types (projections between them), standard format.
const char* kThreeLayers =
    R"({"l":3,"h":[16,24,16],"n":[2,2,2],"o":["sa","l","c"],"f":[[20],[32],[24]],"p":["sdp","dct","3"]})";

/// The first `k` layers of `arch` as an architecture of their own.
Architecture first_layers(const Architecture& arch, int64_t k) {
  Architecture a = arch;
  a.layers.resize(size_t(k));
  return a;
}

/// Copies every base-model parameter of `from` into `to` (the heads differ in width).
void copy_base(FlexModelImpl& from, FlexModelImpl& to) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters();
  int64_t copied = 0;
  for (auto& p : to.named_parameters())
    if (p.key().rfind("bert.", 0) == 0) {
      ASSERT_TRUE(src.contains(p.key())) << p.key();
      p.value().copy_(src[p.key()]);
      ++copied;
    }
  ASSERT_GT(copied, 0);
}

TEST(EncodeLayers, EachOutputIsTheForwardPassOfTheLayersBelow) {
  // The model cut after layer k, with the same weights, must compute exactly element k+1: the
  // per-layer outputs are the forward pass's intermediates, before the projection to the next width.
  torch::manual_seed(3);
  const Architecture arch = arch_from(kThreeLayers);
  FlexModel full(arch, tiny_options());
  full->eval();
  const auto [ids, mask] = tiny_batch();
  const auto outputs = full->encode_layers(ids, mask);
  ASSERT_EQ(outputs.size(), 4u);
  EXPECT_EQ(outputs[0].sizes(), (std::vector<int64_t>{2, 7, 16}));
  EXPECT_EQ(outputs[2].sizes(), (std::vector<int64_t>{2, 7, 24}));
  EXPECT_TRUE(torch::equal(outputs.back(), full->encode(ids, mask)));
  for (int64_t k = 1; k <= 2; ++k) {
    torch::manual_seed(4);
    FlexModel cut(first_layers(arch, k), tiny_options());
    copy_base(*full, *cut);
    cut->eval();
    EXPECT_TRUE(torch::allclose(outputs[size_t(k)], cut->encode(ids, mask), 0, 0)) << "layer " << k;
  }
}

TEST(EncodeLayers, StopsAtTheDeepestRequestedLayer) {
  torch::manual_seed(3);
  FlexModel model(arch_from(kThreeLayers), tiny_options());
  model->eval();
  const auto [ids, mask] = tiny_batch();
  const auto all = model->encode_layers(ids, mask);
  const auto two = model->encode_layers(ids, mask, 1);  // embeddings and layer 0
  ASSERT_EQ(two.size(), 2u);
  EXPECT_TRUE(torch::equal(two[1], all[1]));
  EXPECT_EQ(model->encode_layers(ids, mask, 0).size(), 1u);
  EXPECT_THROW(model->encode_layers(ids, mask, 4), std::out_of_range);
}

TEST(ExtractFeatures, PoolsSequencesAndKeepsLabelledTokens) {
  torch::manual_seed(3);
  FlexModel model(arch_from(kThreeLayers), tiny_options());
  const auto [ids, mask] = tiny_batch();  // row 1 has 4 real tokens
  datasets::TaskBatch b;
  b.input_ids = ids;
  b.attention_mask = mask;
  b.example_ids = {0, 1};
  b.labels = torch::tensor({1, 0}, torch::kLong);
  EvalSplit split{"dev", 2, [&](int64_t i) {
                    datasets::TaskBatch c = b;
                    c.example_ids = {2 * i, 2 * i + 1};
                    return c;
                  }};
  const LayerFeatures seq = extract_features(*model, split, datasets::TaskKind::kSequenceClassification, {0, 2},
                                             ProbePooling::kMean, Precision::kFp32);
  ASSERT_EQ(seq.features.size(), 2u);
  EXPECT_EQ(seq.features[1].sizes(), (std::vector<int64_t>{4, 24}));
  EXPECT_TRUE(torch::equal(seq.example, torch::tensor({0, 1, 2, 3}, torch::kLong)));
  EXPECT_EQ(seq.tokens, 2 * (7 + 4));
  model->eval();
  const auto h = model->encode_layers(ids, mask)[2];  // [2,7,24]
  const auto mean1 = h[1].slice(0, 0, 4).mean(0);      // the padded row: its 4 real tokens only
  EXPECT_TRUE(torch::allclose(seq.features[1][1].to(torch::kFloat), mean1, 1e-2, 1e-2));
  const LayerFeatures cls = extract_features(*model, split, datasets::TaskKind::kSequenceClassification, {2},
                                             ProbePooling::kCls, Precision::kFp32);
  EXPECT_TRUE(torch::allclose(cls.features[0][0].to(torch::kFloat), h[0][0], 1e-2, 1e-2));

  // Token task: one item per label that is not -100, tagged with its example.
  b.labels = torch::full({2, 7}, -100, torch::kLong);
  b.labels.index_put_({0, 1}, 2);
  b.labels.index_put_({0, 3}, 1);
  b.labels.index_put_({1, 2}, 0);
  const LayerFeatures tok = extract_features(*model, split, datasets::TaskKind::kTokenClassification, {1},
                                             ProbePooling::kMean, Precision::kFp32);
  EXPECT_TRUE(torch::equal(tok.labels, torch::tensor({2, 1, 0, 2, 1, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(tok.example, torch::tensor({0, 0, 1, 2, 2, 3}, torch::kLong)));
  const auto h1 = model->encode_layers(ids, mask)[1];
  EXPECT_TRUE(torch::allclose(tok.features[0][2].to(torch::kFloat), h1[1][2], 1e-2, 1e-2));
}

double accuracy_of(const datasets::Predictions& p) { return datasets::accuracy(p.predicted, p.gold); }

TEST(Probe, FindsTheLayerWithAPlantedLinearSignal) {
  // Five "layers" of 32-dim features over 3 classes; only layer 3 carries the label (through a
  // random linear map), the others are noise. The probe must single out layer 3.
  torch::manual_seed(11);
  const int64_t n_train = 1500, n_test = 600, d = 32, K = 3, planted = 3;
  const auto signal = torch::randn({d, K});
  auto make = [&](int64_t n, std::vector<torch::Tensor>& layers, torch::Tensor& labels) {
    layers.clear();
    for (int64_t l = 0; l < 5; ++l) layers.push_back(torch::randn({n, d}));
    labels = torch::matmul(layers[planted], signal).argmax(1);
  };
  std::vector<torch::Tensor> train, test;
  torch::Tensor y_train, y_test;
  make(n_train, train, y_train);
  make(n_test, test, y_test);
  const auto example_train = torch::arange(n_train), example_test = torch::arange(n_test);
  std::vector<double> scores;
  for (int64_t l = 0; l < 5; ++l) {
    const Probe probe = train_probe(train[l].to(torch::kBFloat16), y_train, example_train, K, accuracy_of);
    scores.push_back(accuracy_of(probe_predictions(probe, test[l].to(torch::kBFloat16), y_test)));
  }
  const int64_t best = std::max_element(scores.begin(), scores.end()) - scores.begin();
  EXPECT_EQ(best, planted);
  EXPECT_GT(scores[planted], 0.9);
  for (int64_t l = 0; l < 5; ++l)
    if (l != planted) EXPECT_LT(scores[size_t(l)], 0.5) << "layer " << l;  // chance is about 1/3
}

TEST(Probe, IsDeterministicAndPicksThePenaltyOnHeldOutExamples) {
  torch::manual_seed(5);
  const auto x = torch::randn({400, 8});
  const auto y = (x.select(1, 0) > 0).to(torch::kLong);
  const auto ex = torch::arange(400);
  ProbeOptions o;
  o.l2_grid = {10.0, 1e-4};  // a huge penalty shrinks the weights; the held-out score prefers the small one
  const Probe a = train_probe(x, y, ex, 2, accuracy_of, o), b = train_probe(x, y, ex, 2, accuracy_of, o);
  EXPECT_TRUE(torch::equal(a.weight, b.weight));
  EXPECT_DOUBLE_EQ(a.l2, 1e-4);
  EXPECT_GT(a.held_out_score, 0.95);
}

TEST(Probe, RegressionRecoversALinearTarget) {
  torch::manual_seed(6);
  const auto x = torch::randn({500, 6});
  const auto y = 3.0 * x.select(1, 2) - 2.0 * x.select(1, 4) + 5.0 + 0.1 * torch::randn({500});
  auto pearson = [](const datasets::Predictions& p) { return datasets::pearson(p.predicted_values, p.gold_values); };
  const Probe probe = train_probe(x, y, torch::arange(500), 1, pearson);
  const auto p = probe_predictions(probe, x, y);
  EXPECT_GT(pearson(p), 0.99);
  // Targets come back in their own units.
  EXPECT_NEAR(probe.predict(x).mean().item<double>(), y.mean().item<double>(), 0.01);
  EXPECT_LT(torch::mse_loss(probe.predict(x), y).item<double>(), 0.05);
}

TEST(Bootstrap, IntervalsResampleWholeExamples) {
  // 100 examples of 5 tokens; the first 70 examples entirely right, the rest entirely wrong.
  datasets::Predictions p;
  std::vector<int64_t> example;
  for (int64_t e = 0; e < 100; ++e)
    for (int t = 0; t < 5; ++t) {
      p.gold.push_back(1);
      p.predicted.push_back(e < 70 ? 1 : 0);
      example.push_back(e);
    }
  const auto ex = torch::tensor(example, torch::kLong);
  const Interval i = bootstrap_interval(p, ex, accuracy_of, 1000, 1);
  EXPECT_LT(i.low, 0.7);
  EXPECT_GT(i.high, 0.7);
  // With whole examples resampled the interval is as wide as for 100 items (about +-0.09), not
  // as narrow as for 500 independent tokens (about +-0.04).
  EXPECT_GT(i.high - i.low, 0.13);
  EXPECT_EQ(bootstrap_interval(p, ex, accuracy_of, 1000, 1).low, i.low);  // seeded
  const Interval same = bootstrap_difference(p, p, ex, accuracy_of, 500, 2);
  EXPECT_EQ(same.low, 0.0);
  EXPECT_EQ(same.high, 0.0);
}

TEST(Probe, LayerLabelsNameTheOperations) {
  const Architecture standard = arch_from(kThreeLayers);
  EXPECT_EQ(layer_op_label(standard, 0), "embeddings");
  EXPECT_EQ(layer_op_label(standard, 1), "sa_sdp");
  EXPECT_EQ(layer_op_label(standard, 3), "c_3");
  const Architecture hetero = testing::hetero_arch("l", "dft");
  EXPECT_EQ(layer_op_label(hetero, 1), "l_dft+sa_sdp");
  EXPECT_EQ(layer_op_label(hetero, 2), "l_dft+sa_wma+l_dct+c_3");
}

}  // namespace
}  // namespace flexnas::models
